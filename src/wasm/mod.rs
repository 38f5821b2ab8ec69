//! Running a Wasm workload through libcontainer's `Executor` trait.
//!
//! At `create` (or `exec`), runlet finds the module inside the container's
//! root filesystem from the host (confined by `openat2(RESOLVE_IN_ROOT)`)
//! and has the handler compile it, or load it from the compiled-code cache.
//! That happens before libcontainer clones the container's processes, so
//! the loaded module is already in the init's memory: `start` only
//! instantiates and calls it. Where the module is not visible from the host
//! at create (a volume mounted over the rootfs), it is loaded inside the
//! container instead, without the cache.
//!
//! Bounds: `create` reads at most `--wasm-max-module-size` bytes (64 MiB by
//! default) of an entrypoint and refuses a larger one before reading it, so
//! a huge or sparse file cannot make the runtime's memory and compile time
//! unbounded (compilation runs on the host, before the container's cgroup
//! exists). And since a Wasm container's init is runlet for its whole life,
//! `create` and `exec` refuse to go on when any file mapped into runlet is
//! on a writable mount (see `runlet_handler::rofs`, docs/security.md).
//!
//! Layout: `dispatch` decides whether a container is Wasm, `entrypoint`
//! finds the module inside the rootfs, `engines` is the table of handlers
//! (the core sees only the `runlet_handler::Handler` trait), this file is
//! libcontainer's `Executor` for Wasm, and `http` serves `wasi:http` proxy
//! components.
//!
//! Signals: a command guest cannot install handlers, and as PID 1 of its
//! pid namespace the init would ignore SIGTERM. runlet installs handlers
//! that end the process as the default action ends a native one: 128+N
//! (143 for SIGTERM, 130 for SIGINT). A proxy server stops gracefully
//! instead (see `http`).
//!
//! The executor runs in the container's init process after namespaces,
//! mounts, cgroup, capabilities and the seccomp filter are in place — the
//! same sandbox a native process gets — and ends that process with the
//! module's exit status.

pub mod dispatch;
pub mod engines;
pub mod entrypoint;
pub mod http;

use std::io::Write;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Result};
use libcontainer::oci_spec::runtime::{Process, Spec};
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use runlet_handler::cache::Cache;
use runlet_handler::{Handler, HandlerError, Invocation, Loaded, Source, World};

use dispatch::Workload;

#[derive(Clone)]
pub struct WasmExecutor {
    handler: Arc<dyn Handler>,
    /// None when the module must be loaded inside the container.
    loaded: Option<Loaded>,
    /// The module as a path inside the container.
    module_path: PathBuf,
    /// For `exec`: the pipe that tells `runlet exec` the process started.
    exec_notify_fd: Option<RawFd>,
    /// Where a wasi:http proxy is served (decided and checked at create).
    serve: http::ServeConfig,
    /// The fds passed to the container above stdio.
    preserve_fds: i32,
    /// The fds the loaded module holds (wasmtime keeps a cached module's
    /// file open to map its memory images from it).
    engine_fds: Vec<RawFd>,
}

/// The executor for a workload. `root` is the container's root filesystem
/// as seen from the host (the bundle's rootfs, or /proc/<init>/root);
/// `exec_notify_fd` is the write end of the exec-notify pipe for `exec`;
/// `preserve_fds` are passed to the container above stdio.
pub fn executor_for(
    workload: &Workload,
    process: &Process,
    annotations: Option<&std::collections::HashMap<String, String>>,
    root: &Path,
    ctx: &crate::Ctx,
    exec_notify_fd: Option<RawFd>,
    preserve_fds: i32,
) -> Result<Box<dyn Executor>> {
    match workload {
        Workload::Native => Ok(crate::container::native::executor()),
        Workload::Wasm { engine } => {
            let before = crate::container::fds::open_fds();
            let mut executor = prepare(engine, process, root, ctx)?;
            executor.engine_fds = opened_since(&before);
            executor.preserve_fds = preserve_fds;
            executor.serve = http::ServeConfig::from_container(
                process.env().as_deref().unwrap_or_default(),
                annotations,
            )?
            .0;
            executor.exec_notify_fd = exec_notify_fd;
            refuse_writable_mappings()?;
            Ok(Box::new(executor))
        }
    }
}

/// Fails when a host file on a writable mount is mapped into this process:
/// the container's init (or exec process), cloned from it, would expose it
/// through `/proc/<pid>/map_files/` for the container's whole life.
fn refuse_writable_mappings() -> Result<()> {
    let files = runlet_handler::rofs::writable_mapped_files()
        .map_err(|e| anyhow!("checking runlet's mapped files: {e}"))?;
    if files.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    anyhow::bail!(
        "refusing to run a Wasm container: {} mapped into runlet from a writable mount, which the container could open for writing through /proc/1/map_files; install it on a read-only mount (docs/security.md)",
        names.join(", ")
    )
}

fn prepare(engine: &str, process: &Process, root: &Path, ctx: &crate::Ctx) -> Result<WasmExecutor> {
    let handler = crate::wasm::engines::get(engine)?;
    let args0 = process
        .args()
        .as_ref()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_default();
    if args0.ends_with(".cwasm") {
        anyhow::bail!("process.args[0] {args0:?}: precompiled modules from an image are never loaded; ship the .wasm");
    }
    let env = process.env().clone().unwrap_or_default();
    let Some((module_path, mut file)) =
        crate::wasm::entrypoint::find_entrypoint(root, &args0, &env, process.cwd())
    else {
        // Perhaps on a mount that only exists inside the container.
        return Ok(WasmExecutor {
            handler,
            loaded: None,
            module_path: PathBuf::from(&args0),
            exec_notify_fd: None,
            serve: default_serve(),
            preserve_fds: 0,
            engine_fds: Vec::new(),
        });
    };
    let bytes = read_bounded(&mut file, ctx.wasm_max_module_size)
        .map_err(|e| anyhow!("process.args[0] {}: {e}", module_path.display()))?;
    let cache = match Cache::open(&ctx.wasm_cache) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!("wasm cache unusable, compiling without it: {e}");
            None
        }
    };
    let loaded = handler
        .load(Source::Bytes(bytes), cache.as_ref())
        .map_err(|e| anyhow!("process.args[0] {}: {e}", module_path.display()))?;
    tracing::debug!(cache_hit = loaded.cache_hit, "wasm module loaded");
    Ok(WasmExecutor {
        handler,
        loaded: Some(loaded),
        module_path,
        exec_notify_fd: None,
        serve: default_serve(),
        preserve_fds: 0,
        engine_fds: Vec::new(),
    })
}

/// The fds open now that were not in `before`.
fn opened_since(before: &[RawFd]) -> Vec<RawFd> {
    crate::container::fds::open_fds()
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .collect()
}

fn default_serve() -> http::ServeConfig {
    http::ServeConfig {
        addr: std::net::SocketAddr::from(([0, 0, 0, 0], 8080)),
        backlog: 100,
    }
}

/// Ends the process as the default action of `signal` ends a native one.
extern "C" fn exit_on_signal(signal: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(128 + signal) }
}

/// Ends a proxy server that is not serving yet: nothing is in flight, so
/// this is the clean stop the server itself would make. Once the server
/// handles the signals itself ([`http::SERVING`]), this does nothing: tokio
/// chains to the handler it found installed, which is this one.
extern "C" fn exit_cleanly(_signal: libc::c_int) {
    if !http::SERVING.load(std::sync::atomic::Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(0) }
    }
}

/// Installs a handler for the signals that stop a process by default and
/// that callers send to stop a container. Done before the init waits for
/// `start`, so a stop is never lost in between; the proxy server replaces
/// it with its own graceful handling once it serves.
fn handle_stop_signals(world: World) {
    let handler = match world {
        World::Command => exit_on_signal as extern "C" fn(libc::c_int),
        World::HttpProxy => exit_cleanly as extern "C" fn(libc::c_int),
    };
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction with a valid handler and an empty
        // mask is a valid argument; the handler only calls _exit.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// The whole file, refused without reading it when it is larger than `max`
/// (and read no further than `max` should it grow meanwhile).
fn read_bounded(file: &mut std::fs::File, max: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let too_large = |size: u64| {
        anyhow!(
            "{size} bytes is larger than the {max}-byte Wasm module limit (--wasm-max-module-size)"
        )
    };
    let size = file.metadata()?.len();
    if size > max {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

fn invocation(spec: &Spec, module_path: &Path, world: World) -> Invocation {
    let process = spec.process().as_ref();
    let mut env = process.and_then(|p| p.env().clone()).unwrap_or_default();
    if world == World::HttpProxy {
        // The server's own settings are not the guest's (as runwasi).
        env.retain(|kv| {
            !kv.starts_with(&format!("{}=", http::ADDR_ENV))
                && !kv.starts_with(&format!("{}=", http::BACKLOG_ENV))
        });
    }
    Invocation {
        args: process.and_then(|p| p.args().clone()).unwrap_or_default(),
        module_path: module_path.to_path_buf(),
        env,
        cwd: process
            .map(|p| p.cwd().clone())
            .unwrap_or_else(|| "/".into()),
        readonly_root: spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        memory_limit: spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.memory().as_ref())
            .and_then(|m| m.limit())
            .and_then(|l| u64::try_from(l).ok())
            .filter(|l| *l > 0),
    }
}

/// Ends the container's process with `code`, flushing what the guest wrote.
fn exit_now(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(code)
}

impl Executor for WasmExecutor {
    fn validate(&self, _spec: &Spec) -> Result<(), ExecutorValidationError> {
        // Runs inside the container, after pivot_root, before the wait for
        // `start`.
        if let Some(loaded) = &self.loaded {
            handle_stop_signals(loaded.world);
        }
        if self.loaded.is_none() && !self.module_path.is_file() {
            return Err(ExecutorValidationError::ArgValidationError(format!(
                "executable '{}' not found in the container",
                self.module_path.display()
            )));
        }
        Ok(())
    }

    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let mut engine_fds = self.engine_fds.clone();
        let loaded = match &self.loaded {
            Some(l) => l.clone(),
            None => {
                let before = crate::container::fds::open_fds();
                let bytes = std::fs::read(&self.module_path).map_err(|e| {
                    ExecutorError::Other(format!("{}: {e}", self.module_path.display()))
                })?;
                let loaded = self.handler.load(Source::Bytes(bytes), None).map_err(|e| {
                    ExecutorError::Other(format!("{}: {e}", self.module_path.display()))
                })?;
                engine_fds.extend(opened_since(&before));
                loaded
            }
        };
        if let Some(fd) = self.exec_notify_fd {
            // `runlet exec` waits for this pipe to close, which a native
            // process's execve does; the guest never calls execve.
            // SAFETY: the fd is the write end of libcontainer's exec-notify
            // pipe in this (cloned) process; nothing uses it after this.
            unsafe { libc::close(fd) };
        }
        // What a native process's execve would close: every fd but stdio,
        // the preserved ones and the engine's (src/container/fds.rs). The guest and
        // the engine open their own from here on.
        crate::logging::leave_child_channel();
        crate::container::fds::keep_only(3 + self.preserve_fds, &engine_fds);
        let inv = invocation(spec, &self.module_path, loaded.world);
        let result = match loaded.world {
            World::Command => {
                if self.loaded.is_none() {
                    handle_stop_signals(World::Command);
                }
                self.handler.run(&loaded, &inv)
            }
            World::HttpProxy => {
                let served = self
                    .handler
                    .http_service(&loaded, &inv)
                    .and_then(|service| {
                        http::serve(service, &self.serve)
                            .map_err(|e| HandlerError::Other(format!("{e:#}")))
                    });
                served
            }
        };
        match result {
            Ok(code) => exit_now(code),
            Err(HandlerError::Trap(msg)) => {
                eprintln!("runlet: {}: wasm trap: {msg}", self.module_path.display());
                exit_now(runlet_wasmtime::TRAP_EXIT)
            }
            Err(e) => {
                eprintln!("runlet: {}: {e}", self.module_path.display());
                exit_now(1)
            }
        }
    }
}
