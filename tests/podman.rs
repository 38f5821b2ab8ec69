//! podman with conmon drives runlet: native and Wasm images, a terminal,
//! limits, no cgroups, a pod with a Wasm service and a native sidecar.
//! podman runs with private storage and a containers.conf built from
//! contrib/podman/.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::callers::{assert_ok, prun, text, Podman, ULIMITS};
use common::{output_of, Env};

#[test]
fn podman_native_lifecycle() {
    require!("podman", "conmon");
    let env = Env::new("podman-native");
    let p = Podman::new(&env);
    p.import_busybox(&env);

    // Attached: output and the process's exit code.
    let out = prun(
        &p,
        &env,
        &["--rm", "localhost/rl-bb", "echo", "hello-from-podman"],
    );
    assert_eq!(assert_ok(&out, "podman run"), "hello-from-podman\n");
    assert_eq!(
        prun(&p, &env, &["--rm", "localhost/rl-bb", "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );

    // Detached, exec, logs.
    let out = prun(
        &p,
        &env,
        &[
            "-d",
            "--name",
            "d1",
            "localhost/rl-bb",
            "sh",
            "-c",
            "echo started; sleep 100",
        ],
    );
    assert_ok(&out, "podman run -d");
    let out = p.run(&env, &["exec", "d1", "sh", "-c", "echo in-exec; exit 3"]);
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(3), "in-exec\n".into())
    );
    assert_eq!(p.logs_containing(&env, "d1", "started"), "started\n");

    // stop: sh as PID 1 ignores SIGTERM, so podman sends SIGKILL after the timeout.
    let t = Instant::now();
    assert_ok(&p.run(&env, &["stop", "-t", "2", "d1"]), "podman stop");
    assert!(
        t.elapsed() >= Duration::from_secs(2),
        "stop did not wait for the timeout"
    );
    assert_eq!(p.exit_code(&env, "d1"), "137");
    assert_ok(&p.run(&env, &["rm", "d1"]), "podman rm");

    // A process that handles SIGTERM stops at once with its own status.
    let trap = "trap 'exit 0' TERM; echo trapping; while true; do sleep 0.1; done";
    assert_ok(
        &prun(
            &p,
            &env,
            &["-d", "--name", "d2", "localhost/rl-bb", "sh", "-c", trap],
        ),
        "run -d",
    );
    // Once the trap is set; exit status 0 (not 137) shows SIGTERM arrived
    // and was handled before the grace period ran out.
    assert_eq!(p.logs_containing(&env, "d2", "trapping"), "trapping\n");
    assert_ok(&p.run(&env, &["stop", "-t", "60", "d2"]), "podman stop");
    assert_eq!(p.exit_code(&env, "d2"), "0");
    assert_ok(&p.run(&env, &["rm", "d2"]), "podman rm");

    // podman passes --log-format=json to runtimes in runtime_supports_json
    // and shows the runtime's message: a missing executable.
    let out = prun(&p, &env, &["--rm", "localhost/rl-bb", "/no/such/binary"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("/no/such/binary"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn podman_terminal_through_conmon() {
    require!("podman", "conmon", "script");
    let env = Env::new("podman-tty");
    let p = Podman::new(&env);
    p.import_busybox(&env);
    let podman = p.cmd(&env);
    let mut line = format!("{:?}", podman.get_program());
    for a in podman.get_args() {
        line.push(' ');
        line.push_str(&format!("'{}'", a.to_string_lossy()));
    }
    line.push_str(&format!(
        " run -it --rm {} localhost/rl-bb sh",
        ULIMITS.join(" ")
    ));
    // script(1) gives podman a real terminal; we type into it.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("(sleep 2; printf 'tty; echo typed-$((6*7))\\nexit 5\\n') | script -qec \"{}\" /dev/null", line.replace('"', "\\\"")))
        .env("CONTAINERS_CONF", &p.conf)
        .env("RUNLET_WASM_CACHE", env.wasm_cache());
    let out = output_of(&mut cmd);
    let seen = text(&out.stdout).replace('\r', "");
    assert!(
        seen.contains("/dev/pts/"),
        "no terminal in the container: {seen}"
    );
    assert!(seen.contains("typed-42"), "{seen}");
    assert_eq!(out.status.code(), Some(5), "{seen} {}", text(&out.stderr));
}

#[test]
fn podman_memory_and_pids_limits() {
    require!("podman", "conmon");
    let env = Env::new("podman-limits");
    let p = Podman::new(&env);
    p.import_busybox(&env);
    let out = prun(
        &p,
        &env,
        &[
            "--rm",
            "--memory",
            "32m",
            "localhost/rl-bb",
            "cat",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        ],
    );
    assert_eq!(assert_ok(&out, "memory limit").trim(), "33554432");
    // Enforced: holding 100 MiB under a 32 MiB limit gets the OOM killer.
    let out = prun(
        &p,
        &env,
        &[
            "--rm",
            "--memory",
            "32m",
            "localhost/rl-bb",
            "sh",
            "-c",
            "head -c 100m /dev/zero | tail",
        ],
    );
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));

    let out = prun(
        &p,
        &env,
        &[
            "--rm",
            "--pids-limit",
            "10",
            "localhost/rl-bb",
            "cat",
            "/sys/fs/cgroup/pids/pids.max",
        ],
    );
    assert_eq!(assert_ok(&out, "pids limit").trim(), "10");
    let out = prun(
        &p,
        &env,
        &[
            "--rm",
            "--pids-limit",
            "10",
            "localhost/rl-bb",
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do sleep 2 & done; wait",
        ],
    );
    assert!(
        text(&out.stderr).contains("can't fork"),
        "15 processes under pids.max=10: {}",
        text(&out.stderr)
    );

    // `podman update` resizes a running container through `runlet update`.
    let out = prun(
        &p,
        &env,
        &[
            "-d",
            "--name",
            "resize",
            "--memory",
            "32m",
            "localhost/rl-bb",
            "sleep",
            "100",
        ],
    );
    assert_ok(&out, "podman run -d");
    assert_ok(
        &p.run(
            &env,
            &["update", "--memory", "64m", "--cpu-shares", "512", "resize"],
        ),
        "podman update",
    );
    let out = p.run(
        &env,
        &[
            "exec",
            "resize",
            "cat",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/cpu/cpu.shares",
        ],
    );
    assert_eq!(assert_ok(&out, "podman exec"), "67108864\n512\n");
    assert_ok(
        &p.run(&env, &["rm", "-f", "-t", "0", "resize"]),
        "podman rm",
    );
}

#[test]
fn podman_wasm_image() {
    require!("podman", "conmon");
    let env = Env::new("podman-wasm");
    let p = Podman::new(&env);
    p.import_wasm(&env);
    let out = prun(&p, &env, &["--rm", "localhost/rl-wasm", "info", "podman"]);
    assert!(assert_ok(&out, "wasm run").contains("argv=/probe.wasm info podman"));
    assert_eq!(
        prun(&p, &env, &["--rm", "localhost/rl-wasm", "exit", "12"])
            .status
            .code(),
        Some(12)
    );

    assert_ok(
        &prun(
            &p,
            &env,
            &["-d", "--name", "w1", "localhost/rl-wasm", "sleep", "100"],
        ),
        "run -d",
    );
    let out = p.run(&env, &["exec", "w1", "/probe.wasm", "hello"]);
    assert_eq!(assert_ok(&out, "exec module"), "hello from wasm\n");
    assert_eq!(
        p.run(&env, &["exec", "w1", "/exit42.wat"]).status.code(),
        Some(42)
    );
    assert_ok(
        &prun(
            &p,
            &env,
            &["-d", "--name", "w2", "localhost/rl-wasm", "info", "logged"],
        ),
        "run -d",
    );
    assert!(p
        .logs_containing(&env, "w2", "logged")
        .contains("argv=/probe.wasm info logged"));
    // A guest cannot handle SIGTERM; runlet ends it as the signal ends a
    // native process (143), at once rather than after the timeout.
    assert_ok(&p.run(&env, &["stop", "-t", "30", "w1"]), "stop");
    assert_eq!(p.exit_code(&env, "w1"), "143");
    assert_ok(&p.run(&env, &["rm", "-f", "w1", "w2"]), "rm");
}

#[test]
fn podman_without_cgroups() {
    require!("podman", "conmon");
    // `--cgroups=disabled`: podman passes --cgroup-manager=disabled to the
    // runtimes contrib/podman lists in runtime_supports_nocgroups.
    let env = Env::new("podman-nocg");
    let p = Podman::new(&env);
    p.import_busybox(&env);
    let out = prun(
        &p,
        &env,
        &[
            "--rm",
            "--cgroups=disabled",
            "localhost/rl-bb",
            "echo",
            "no cgroup",
        ],
    );
    assert_eq!(assert_ok(&out, "run --cgroups=disabled"), "no cgroup\n");
}

#[test]
fn podman_pod_with_a_wasm_service_and_a_native_sidecar() {
    require!("podman", "conmon");
    let env = Env::new("podman-pod");
    let p = Podman::new(&env);
    p.import_busybox(&env);
    // The pause (infra) container is native; the pod shares one network
    // namespace (loopback only: --network none needs no CNI).
    assert_ok(
        &p.run(
            &env,
            &[
                "pod",
                "create",
                "--name",
                "pod1",
                "--network",
                "none",
                "--infra-image",
                "localhost/rl-bb",
                "--infra-command",
                "/pause",
            ],
        ),
        "pod create",
    );
    // The Wasm service: detected by its magic bytes, no annotation.
    assert_ok(
        &p.run(
            &env,
            &[
                "run",
                "-d",
                "--pod",
                "pod1",
                "--name",
                "web",
                "localhost/rl-bb",
                "/http.wasm",
            ],
        ),
        "run wasm service",
    );
    // A native sidecar in the same pod reaches it on the pod's loopback.
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        let out = p.run(
            &env,
            &[
                "run",
                "--rm",
                "--pod",
                "pod1",
                "localhost/rl-bb",
                "busybox",
                "wget",
                "-qO-",
                "http://127.0.0.1:8080/",
            ],
        );
        if out.status.success() || Instant::now() > deadline {
            break assert_ok(&out, "sidecar wget");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(body, "hello from wasi:http\n");
    // podman stop: SIGTERM ends the server at once (exit 0), well before
    // the 30 s timeout would send SIGKILL.
    assert_ok(&p.run(&env, &["stop", "-t", "30", "web"]), "stop");
    assert_eq!(p.exit_code(&env, "web"), "0");
    assert_ok(
        &p.run(&env, &["pod", "rm", "-f", "-t", "0", "pod1"]),
        "pod rm",
    );
}
