//! Wasm services driven with real traffic: guests that listen on sockets,
//! wasi:http proxy components served per request, outgoing wasi:http,
//! stop signals, `exec` into a serving container, and worlds refused at
//! `create`. Traffic stays on loopback: the host's (containers that share
//! the host network namespace and listen on 127.0.0.1) or the container's
//! own network namespace (from an `exec` inside it).

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{http_get, wait_for_http, Env, TestServer};
use serde_json::json;

/// The container shares the host's network namespace (its services are on
/// the host's loopback).
fn host_network(env: &Env) {
    env.config(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .retain(|n| n["type"] != "network")
    });
}

/// The http-probe component in a bundle that serves on a free port of the
/// host's loopback; returns the bundle and the address.
fn http_on_host_loopback(name: &str, extra_env: &[String]) -> (Env, String) {
    let env = Env::new_wasm(name, &["/app/http-probe.wasm"]);
    host_network(&env);
    let addr = format!("127.0.0.1:{}", common::free_port());
    let mut vars = vec![format!("WASMTIME_HTTP_PROXY_SOCKET_ADDR={addr}")];
    vars.extend_from_slice(extra_env);
    set_env(&env, &vars);
    (env, addr)
}

/// `runlet run` in the foreground, whose exit status is the container's.
fn foreground_run(env: &Env, id: &str) -> std::process::Child {
    env.cmd()
        .args(["run", "--bundle", env.bundle_str(), id])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run")
}

fn set_env(env: &Env, vars: &[String]) {
    env.config(|c| {
        let list = c["process"]["env"].as_array_mut().expect("env");
        for v in vars {
            list.push(json!(v));
        }
    });
}

/// `busybox wget` from an `exec` inside the container: its own loopback.
fn wget_inside(env: &Env, id: &str, url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = env.run(&["exec", id, "busybox", "wget", "-qO-", url]);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{url} never answered inside {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn tcp_listener_guest_answers_in_its_network_namespace() {
    require_root!();
    // The guides' first example: std::net::TcpListener in a wasip2 guest,
    // in the container's own network namespace (loopback up, as runc).
    let env = Env::new_wasm("svc-tcp", &["/app/probe-p2.wasm", "serve", "0.0.0.0:8080"]);
    let id = env.id("tcp");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    let body = wget_inside(&env, &id, "http://127.0.0.1:8080/");
    assert_eq!(body, "hello from a wasm socket\n");
    // exec of a Wasm command into the serving container.
    let out = env.ok(&["exec", &id, "/app/probe-p2.wasm", "hello"]);
    assert_eq!(out, "hello from wasm\n");
    env.ok(&["kill", &id, "TERM"]);
    env.wait_status(&id, "stopped");
    env.ok(&["delete", &id]);
    env.assert_gone(&id);

    // WASI p1 has no bind: the guest's own error, and its exit status.
    let env = Env::new_wasm(
        "svc-tcp-p1",
        &["/app/probe-p1.wasm", "serve", "0.0.0.0:8080"],
    );
    let out = env.run(&["run", "--bundle", env.bundle_str(), &env.id("p1")]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bind 0.0.0.0:8080"),
        "{out:?}"
    );
}

#[test]
fn wasi_http_component_is_served_per_request() {
    require_root!();
    let (env, addr) = http_on_host_loopback("svc-http", &["GREETING=from the spec".into()]);
    let id = env.id("http");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    assert_eq!(wait_for_http(&addr), (200, "hello from wasi:http\n".into()));

    // The guest sees the container's env, but not the server's own setting.
    let env_of = |name: &str| http_get(&addr, &format!("/env?name={name}")).expect("env");
    assert_eq!(env_of("GREETING"), (200, "from the spec\n".into()));
    assert_eq!(
        env_of("WASMTIME_HTTP_PROXY_SOCKET_ADDR"),
        (200, "\n".into())
    );

    // Concurrent requests, each answered by a fresh instance.
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                (0..8)
                    .map(|_| http_get(&addr, "/").expect("get"))
                    .filter(|r| *r == (200, "hello from wasi:http\n".to_string()))
                    .count()
            })
        })
        .collect();
    let ok: usize = workers.into_iter().map(|w| w.join().expect("join")).sum();
    assert_eq!(ok, 16 * 8);
    assert_eq!(http_get(&addr, "/missing").expect("404").0, 404);

    // HTTP/2 with prior knowledge, as gRPC-style clients speak it.
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--http2-prior-knowledge",
            "-w",
            " http/%{http_version}",
        ])
        .arg(format!("http://{addr}/"))
        .output()
        .expect("curl (scripts/setup installs it)");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from wasi:http\n http/2"
    );

    // A process exec'd into the serving container.
    let out = env.ok(&["exec", &id, "/app/probe-p2.wasm", "hello"]);
    assert_eq!(out, "hello from wasm\n");

    env.ok(&["kill", &id, "TERM"]);
    env.wait_status(&id, "stopped");
    env.ok(&["delete", &id]);
    env.assert_gone(&id);
}

#[test]
fn wasi_http_component_in_its_own_network_namespace() {
    require_root!();
    // The default 0.0.0.0:8080, reached from inside the container.
    let env = Env::new_wasm("svc-http-ns", &["/app/http-probe.wasm"]);
    let id = env.id("ns");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    assert_eq!(
        wget_inside(&env, &id, "http://127.0.0.1:8080/"),
        "hello from wasi:http\n"
    );
    env.ok(&["delete", "-f", &id]);
    env.assert_gone(&id);
}

#[test]
fn outgoing_wasi_http_request() {
    require_root!();
    let upstream = TestServer::start("upstream body");
    let (env, addr) = http_on_host_loopback("svc-out", &[]);
    let id = env.id("out");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    wait_for_http(&addr);
    let (status, body) =
        http_get(&addr, &format!("/fetch?url=http://{}/data", upstream.addr)).expect("fetch");
    assert_eq!((status, body.as_str()), (200, "fetched 200: upstream body"));
    assert_eq!(
        upstream.paths.recv_timeout(Duration::from_secs(30)).ok(),
        Some("/data".to_string())
    );
    env.ok(&["delete", "-f", &id]);
}

#[test]
fn sigterm_lets_requests_in_flight_finish_then_exits_0() {
    require_root!();
    let notify = TestServer::start("ok");
    let (env, addr) = http_on_host_loopback("svc-term", &[]);
    let id = env.id("term");
    let run = foreground_run(&env, &id);
    wait_for_http(&addr);
    let slow = {
        let addr = addr.clone();
        let path = format!("/slow?ms=1500&notify=http://{}/started", notify.addr);
        std::thread::spawn(move || http_get(&addr, &path))
    };
    // The guest has the request once it calls back.
    assert_eq!(
        notify.paths.recv_timeout(Duration::from_secs(60)).ok(),
        Some("/started".to_string())
    );
    env.ok(&["kill", &id, "TERM"]);
    // The listener closes at once; the request in flight still completes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(&addr, "/").is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let answered = slow.join().expect("join").expect("slow request");
    assert_eq!(answered, (200, "slow done\n".to_string()));
    let out = run.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.assert_gone(&id);
}

#[test]
fn stop_signals_end_a_command_guest_like_a_native_process() {
    require_root!();
    let env = Env::new_wasm("svc-sig", &["/app/probe-p2.wasm", "sleep", "300"]);
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let id = env.id(&format!("sig{code}"));
        let run = foreground_run(&env, &id);
        env.wait_status(&id, "running");
        env.ok(&["kill", &id, signal]);
        let out = run.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(code), "SIG{signal}");
        env.assert_gone(&id);
    }
}

#[test]
fn unsupported_worlds_fail_create_naming_the_reason() {
    require_root!();
    for (module, needle) in [
        (
            "/app/no-world.wat",
            "exports neither wasi:cli/run (a command) nor wasi:http/incoming-handler (an HTTP proxy); it exports my:app/ping",
        ),
        ("/app/p3-env.wat", "WASI 0.3 component: not supported by wasmtime 48"),
    ] {
        let env = Env::new_wasm("svc-world", &[module]);
        let id = env.id("w");
        env.fails(&["create", "--bundle", env.bundle_str(), &id], needle);
        env.assert_gone(&id);
    }
    // A native binary under run.oci.handler=wasm.
    let env = Env::new_wasm("svc-elf", &["/bin/busybox", "true"]);
    env.config(|c| c["annotations"] = json!({"run.oci.handler": "wasm"}));
    let id = env.id("elf");
    env.fails(
        &["create", "--bundle", env.bundle_str(), &id],
        "/bin/busybox: an ELF executable, not Wasm",
    );
    env.assert_gone(&id);
    // A bad listen address is a create error, not a crash loop.
    let env = Env::new_wasm("svc-addr", &["/app/http-probe.wasm"]);
    set_env(&env, &["WASMTIME_HTTP_PROXY_SOCKET_ADDR=nowhere".into()]);
    let id = env.id("addr");
    env.fails(
        &["create", "--bundle", env.bundle_str(), &id],
        "process.env WASMTIME_HTTP_PROXY_SOCKET_ADDR: \"nowhere\" is not a socket address",
    );
    env.assert_gone(&id);
}
