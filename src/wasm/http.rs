//! Serving a `wasi:http` proxy component, inside the container.
//!
//! The container's init (or an `exec` process) listens on the address the
//! container asks for, in the container's own network namespace, cgroup,
//! capabilities and seccomp filter, and answers each request with a fresh
//! instance of the pre-instantiated component (the engine's
//! [`HttpService`]), as `wasmtime serve` and runwasi's wasmtime shim do.
//!
//! - Address: `WASMTIME_HTTP_PROXY_SOCKET_ADDR` in `process.env` (runwasi's
//!   name), else the annotation `run.oci.wasm.http-address`, else
//!   `0.0.0.0:8080`. `WASMTIME_HTTP_PROXY_BACKLOG` sets the listen backlog
//!   (default 100). Both variables are consumed, not passed to the guest,
//!   as runwasi does. A bad value fails `create`.
//! - Protocols: HTTP/1.1 and HTTP/2 (prior knowledge), one connection per
//!   task.
//! - Concurrency: a tokio runtime with one worker per CPU the container may
//!   use (`available_parallelism`, which follows the cgroup CPU quota);
//!   requests on a worker interleave while they wait.
//! - Stopping: on SIGTERM, SIGINT or SIGHUP the listener closes at once, requests in
//!   flight get up to [`GRACE`] to finish, and the process exits 0 — a
//!   clean, asked-for stop (SIGKILL stays immediate).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use runlet_handler::{HttpBody, HttpService};

pub const ADDR_ENV: &str = "WASMTIME_HTTP_PROXY_SOCKET_ADDR";
pub const BACKLOG_ENV: &str = "WASMTIME_HTTP_PROXY_BACKLOG";
pub const ADDR_ANNOTATION: &str = "run.oci.wasm.http-address";
pub const DEFAULT_ADDR: &str = "0.0.0.0:8080";
const DEFAULT_BACKLOG: u32 = 100;
/// How long requests in flight may take to finish after SIGTERM/SIGINT.
pub const GRACE: Duration = Duration::from_secs(5);
/// Set once the server handles stop signals itself (read by the handler
/// the executor installs before `start`).
pub static SERVING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Where and how a proxy component is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub backlog: u32,
}

impl ServeConfig {
    /// From the process's environment and the container's annotations;
    /// returns the environment without the server's own variables.
    pub fn from_container(
        env: &[String],
        annotations: Option<&std::collections::HashMap<String, String>>,
    ) -> Result<(ServeConfig, Vec<String>)> {
        let mut addr = None;
        let mut backlog = None;
        let mut rest = Vec::with_capacity(env.len());
        for kv in env {
            match kv.split_once('=') {
                Some((ADDR_ENV, v)) => addr = Some((format!("process.env {ADDR_ENV}"), v)),
                Some((BACKLOG_ENV, v)) => backlog = Some(v),
                _ => rest.push(kv.clone()),
            }
        }
        let addr = addr.or_else(|| {
            annotations
                .and_then(|a| a.get(ADDR_ANNOTATION))
                .map(|v| (format!("annotation {ADDR_ANNOTATION}"), v.as_str()))
        });
        let addr = match addr {
            Some((field, v)) => v.trim().parse().map_err(|_| {
                anyhow!("{field}: {v:?} is not a socket address (e.g. 0.0.0.0:8080 or [::]:80)")
            })?,
            None => DEFAULT_ADDR.parse()?,
        };
        let backlog = match backlog {
            Some(v) => v.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                anyhow!("process.env {BACKLOG_ENV}: {v:?} is not a positive number")
            })?,
            None => DEFAULT_BACKLOG,
        };
        Ok((ServeConfig { addr, backlog }, rest))
    }
}

fn error_response(status: u16, text: &str) -> http::Response<HttpBody> {
    let body = Full::new(Bytes::from(text.to_string()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut resp = http::Response::new(body);
    *resp.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    resp
}

/// Serves until SIGTERM or SIGINT; returns the process's exit status.
pub fn serve(service: Arc<dyn HttpService>, config: &ServeConfig) -> Result<i32> {
    // The init is a clone of `runlet create`: its heap still holds what
    // create parsed and loaded. An idle service should keep only what it
    // serves with, so give the freed part back before serving.
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe { libc::malloc_trim(0) };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .max_blocking_threads(workers.max(2))
        .thread_name("runlet-http")
        .enable_all()
        .build()
        .map_err(|e| anyhow!("tokio runtime: {e}"))?;
    rt.block_on(run(service, config))
}

async fn run(service: Arc<dyn HttpService>, config: &ServeConfig) -> Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    // Handlers first: as PID 1 of its pid namespace the process ignores
    // signals it has no handler for.
    let mut term = signal(SignalKind::terminate()).map_err(|e| anyhow!("SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| anyhow!("SIGINT handler: {e}"))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| anyhow!("SIGHUP handler: {e}"))?;
    SERVING.store(true, std::sync::atomic::Ordering::SeqCst);

    let socket = if config.addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| anyhow!("socket: {e}"))?;
    socket.set_reuseaddr(true)?;
    socket
        .bind(config.addr)
        .map_err(|e| anyhow!("wasi:http: binding {}: {e}", config.addr))?;
    let listener = socket
        .listen(config.backlog)
        .map_err(|e| anyhow!("wasi:http: listening on {}: {e}", config.addr))?;
    tracing::info!(addr = %config.addr, "serving wasi:http");

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of fds or memory: keep serving the connections we have.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let svc = hyper::service::service_fn(move |req| {
            let service = service.clone();
            async move {
                Ok::<_, Infallible>(match service.handle(req).await {
                    Ok(resp) => resp,
                    Err(e) => {
                        eprintln!("runlet: wasi:http: {e}");
                        error_response(500, "internal error\n")
                    }
                })
            }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(GRACE) => {
            tracing::warn!("requests still running {GRACE:?} after the stop signal");
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_from_env_annotation_or_default() {
        let env = vec!["A=1".to_string()];
        let (c, rest) = ServeConfig::from_container(&env, None).expect("default");
        assert_eq!(c.addr, "0.0.0.0:8080".parse().expect("addr"));
        assert_eq!(c.backlog, 100);
        assert_eq!(rest, env);

        let mut ann = std::collections::HashMap::new();
        ann.insert(ADDR_ANNOTATION.to_string(), "127.0.0.1:9000".to_string());
        let (c, _) = ServeConfig::from_container(&env, Some(&ann)).expect("annotation");
        assert_eq!(c.addr, "127.0.0.1:9000".parse().expect("addr"));

        let env = vec![
            format!("{ADDR_ENV}=[::1]:81"),
            format!("{BACKLOG_ENV}=7"),
            "B=2".to_string(),
        ];
        let (c, rest) = ServeConfig::from_container(&env, Some(&ann)).expect("env wins");
        assert_eq!(c.addr, "[::1]:81".parse().expect("addr"));
        assert_eq!(c.backlog, 7);
        assert_eq!(rest, vec!["B=2".to_string()]);

        let bad = vec![format!("{ADDR_ENV}=nowhere")];
        let e = ServeConfig::from_container(&bad, None).expect_err("bad addr");
        assert!(e.to_string().contains(ADDR_ENV), "{e}");
    }
}
