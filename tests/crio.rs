//! conmon invoked exactly as CRI-O invokes it (create, start, exec, kill,
//! delete with CRI-O's arguments), native and Wasm.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::callers::{assert_ok, rand_suffix};
use common::{output_of, runlet_bin, Env};

/// conmon with the arguments CRI-O gives it; the sync pipe (fd 3) carries
/// back `{"pid": N}` after create, or `{"exit_code": N}` after an exec.
fn conmon(env: &Env, args: &[String]) -> String {
    let sync = env.dir.path().join(format!(
        "sync-{}",
        args.len() + std::process::id() as usize + rand_suffix()
    ));
    let mut quoted = String::new();
    for a in args {
        quoted.push_str(&format!(" '{a}'"));
    }
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!(
            "_OCI_SYNCPIPE=3 exec conmon{quoted} 3>'{}'",
            sync.display()
        ))
        .env("RUNLET_WASM_CACHE", env.wasm_cache());
    assert_ok(&output_of(&mut c), "conmon");
    text_once(&sync, |s| s.contains('}')).expect("conmon never reported through the sync pipe")
}

/// The text of `path` once `done` holds for it (None after 60 s).
fn text_once(path: &Path, done: impl Fn(&str) -> bool) -> Option<String> {
    common::poll(Duration::from_secs(60), || {
        let s = std::fs::read_to_string(path).unwrap_or_default();
        done(&s).then_some(s)
    })
}

/// conmon's arguments for creating container `id`, as CRI-O passes them
/// (with `-t` for a terminal), and the directory holding its files.
fn conmon_create_args(env: &Env, id: &str, terminal: bool) -> (PathBuf, Vec<String>) {
    let dir = env.dir.path().join(format!("crio-{id}"));
    for d in ["exits", "persist", "sockets", "exec-exits"] {
        std::fs::create_dir_all(dir.join(d)).expect("mkdir");
    }
    let p = |name: &str| dir.join(name).to_str().expect("utf8").to_string();
    let mut args: Vec<String> = vec![
        "-b".into(),
        env.bundle_str().into(),
        "-c".into(),
        id.into(),
        "--exit-dir".into(),
        p("exits"),
        "-l".into(),
        p("ctr.log"),
        "--log-level".into(),
        "info".into(),
        "-n".into(),
        format!("k8s_{id}_pod_default_0"),
        "-P".into(),
        p("conmon.pid"),
        "-p".into(),
        p("pidfile"),
        "--persist-dir".into(),
        p("persist"),
        "-r".into(),
        runlet_bin().to_str().expect("utf8").into(),
        "--runtime-arg".into(),
        format!("--root={}", env.root.display()),
        "--socket-dir-path".into(),
        p("sockets"),
        "-u".into(),
        id.into(),
        "--log-size-max".into(),
        "-1".into(),
    ];
    if terminal {
        args.push("-t".into());
    }
    (dir, args)
}

/// The CRI-O flow for one container: conmon create, then start, state,
/// exec through conmon, kill, delete --force, all with CRI-O's --root.
fn crio_flow(
    env: &Env,
    id: &str,
    terminal: bool,
    expect_output: &str,
    exec_args: &[&str],
    exec_code: i32,
) {
    // runtime_root from the shipped drop-in, relocated under the test dir.
    let dropin = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/crio/10-runlet.conf"
    ))
    .expect("drop-in");
    assert!(dropin.contains("runtime_root = \"/run/runlet\""));
    let root = env.root.clone();
    let bin = runlet_bin().to_str().expect("utf8").to_string();
    let (dir, args) = conmon_create_args(env, id, terminal);
    let p = |name: &str| dir.join(name).to_str().expect("utf8").to_string();
    let sync = conmon(env, &args);
    let pid: i64 = serde_json::from_str::<serde_json::Value>(&sync).expect("sync json")["pid"]
        .as_i64()
        .expect("pid");
    assert!(pid > 0, "{sync}");
    assert_eq!(env.state(id)["status"], "created");
    assert_eq!(
        std::fs::read_to_string(dir.join("pidfile"))
            .expect("pid file")
            .trim(),
        pid.to_string()
    );

    env.ok(&["start", id]);
    assert_eq!(env.status(id), "running");
    let log = text_once(&dir.join("ctr.log"), |s| s.contains(expect_output)).unwrap_or_else(|| {
        panic!(
            "no output in the CRI log: {:?}",
            std::fs::read_to_string(dir.join("ctr.log"))
        )
    });
    // The CRI log format: RFC3339 time, stream, tag, text.
    let line = log
        .lines()
        .find(|l| l.contains(expect_output))
        .expect("line");
    assert!(
        line.contains(if terminal { " stdout " } else { " stdout F " }),
        "{line}"
    );

    // ExecSync goes through conmon: exec --process F --detach.
    let process = dir.join("process.json");
    std::fs::write(
        &process,
        serde_json::to_vec(&serde_json::json!({
            "terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": "/",
            "args": exec_args, "env": ["PATH=/bin:/app"]
        }))
        .expect("json"),
    )
    .expect("write process.json");
    let exec_sync = conmon(
        env,
        &[
            "-c".into(),
            id.into(),
            "-u".into(),
            format!("{id}-exec"),
            "-n".into(),
            format!("k8s_{id}_pod_default_0"),
            "-r".into(),
            bin.clone(),
            "--runtime-arg".into(),
            format!("--root={}", root.display()),
            "-p".into(),
            p("exec.pid"),
            "-l".into(),
            p("exec.log"),
            "--exit-dir".into(),
            p("exec-exits"),
            "--socket-dir-path".into(),
            p("sockets"),
            "-e".into(),
            "--exec-process-spec".into(),
            process.to_str().expect("utf8").into(),
        ],
    );
    let code =
        serde_json::from_str::<serde_json::Value>(&exec_sync).expect("json")["exit_code"].as_i64();
    assert_eq!(code, Some(exec_code as i64), "{exec_sync}");

    // StopContainer: TERM (ignored by a PID 1 without handlers), then KILL.
    env.ok(&["kill", id, "TERM"]);
    env.ok(&["kill", id, "SIGKILL"]);
    let exit_file = dir.join("exits").join(id);
    let code = text_once(&exit_file, |s| !s.trim().is_empty()).expect("conmon wrote no exit file");
    assert_eq!(code.trim(), "137");
    env.fails(&["kill", id, "KILL"], "container not running");
    env.ok(&["delete", "--force", id]);
    env.fails(&["state", id], "does not exist");
    env.assert_gone(id);
}

#[test]
fn crio_conmon_native() {
    require!("conmon");
    let env = Env::new("crio-native");
    env.set_args(&["sh", "-c", "echo hello-crio; sleep 100"]);
    crio_flow(
        &env,
        &env.id("n"),
        false,
        "hello-crio",
        &["sh", "-c", "echo from-exec; exit 4"],
        4,
    );
    // With a terminal: conmon passes --console-socket and reads the pty.
    env.config(|c| c["process"]["terminal"] = true.into());
    crio_flow(
        &env,
        &env.id("t"),
        true,
        "hello-crio",
        &["sh", "-c", "exit 0"],
        0,
    );
}

#[test]
fn crio_conmon_wasm() {
    require!("conmon");
    let env = Env::new_wasm("crio-wasm", &["/app/probe-p1.wasm", "info", "crio"]);
    // CRI-O's pod annotation; the pause container would carry the sandbox marker.
    env.config(|c| c["annotations"] = serde_json::json!({"run.oci.handler": "wasm-smart", "io.kubernetes.cri-o.ContainerType": "container"}));
    // Under wasm-smart a native process (the shell) stays native; a module
    // exec'd into it runs on the Wasm handler.
    env.set_args(&["sh", "-c", "echo native-sidecar; sleep 100"]);
    crio_flow(
        &env,
        &env.id("side"),
        false,
        "native-sidecar",
        &["/app/exit42.wat"],
        42,
    );
    // A container whose own process is the module.
    env.set_args(&["/app/probe-p1.wasm", "info", "crio-wasm"]);
    env.config(|c| c["annotations"] = serde_json::json!({"run.oci.handler": "wasm"}));
    let id = env.id("w");
    let (dir, args) = conmon_create_args(&env, &id, false);
    let sync = conmon(&env, &args);
    assert!(sync.contains("\"pid\""), "{sync}");
    env.ok(&["start", &id]);
    let exit_file = dir.join("exits").join(&id);
    let code = text_once(&exit_file, |s| !s.trim().is_empty()).expect("the module never exited");
    assert_eq!(code.trim(), "0");
    let log = std::fs::read_to_string(dir.join("ctr.log")).expect("log");
    assert!(
        log.contains("stdout F argv=/app/probe-p1.wasm info crio-wasm"),
        "{log}"
    );
    env.ok(&["delete", "--force", &id]);
    env.assert_gone(&id);
}

/// What CRI-O does that containerd does not: the pod's Wasm annotation
/// lands on the infra container too, marked
/// `io.kubernetes.cri-o.ContainerType=sandbox`, which must stay native; the
/// shipped drop-in lets `run.oci.` and the variant through in exactly the
/// form CRI-O 1.30 wants; and an in-place resize is `update --resources -`
/// with the new resources as JSON on stdin.
#[test]
fn crio_sandbox_marker_allowed_annotations_and_resize() {
    require!("conmon");
    let dropin = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/crio/10-runlet.conf"
    ))
    .expect("drop-in");
    let allowed = dropin
        .split("allowed_annotations = [")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .expect("allowed_annotations in contrib/crio/10-runlet.conf");
    for want in ["\"run.oci.\"", "\"module.wasm.image/variant\""] {
        assert!(
            allowed.contains(want),
            "allowed_annotations lacks {want}: {allowed}"
        );
    }

    // The infra container of a pod whose annotation asks for Wasm.
    let env = Env::new("crio-sandbox");
    env.set_args(&["sh", "-c", "echo infra-native; exec sleep 100"]);
    env.config(|c| {
        c["annotations"] = serde_json::json!({
            "run.oci.handler": "wasm",
            "module.wasm.image/variant": "compat",
            "io.kubernetes.cri-o.ContainerType": "sandbox",
        })
    });
    let id = env.id("infra");
    let (dir, args) = conmon_create_args(&env, &id, false);
    let sync = conmon(&env, &args);
    assert!(sync.contains("\"pid\""), "{sync}");
    env.ok(&["start", &id]);
    text_once(&dir.join("ctr.log"), |s| s.contains("infra-native"))
        .expect("the infra container ran no shell");

    // Resize, as CRI-O's UpdateContainerResources runs it.
    let out = env.run_with_stdin(
        &["update", "--resources", "-", &id],
        r#"{"memory": {"limit": 67108864}, "cpu": {"quota": 50000, "period": 100000}, "pids": {"limit": 99}}"#,
    );
    assert_ok(&out, "update --resources -");
    let (dir_of, file) = if common::cgroup_v2() {
        (common::cgroup_dir_of("", &id), "memory.max")
    } else {
        (
            common::cgroup_dir_of("memory", &id),
            "memory.limit_in_bytes",
        )
    };
    assert_eq!(
        std::fs::read_to_string(dir_of.join(file))
            .expect("memory limit")
            .trim(),
        "67108864"
    );
    let pids = common::cgroup_dir_of("pids", &id).join("pids.max");
    assert_eq!(
        std::fs::read_to_string(pids).expect("pids.max").trim(),
        "99"
    );
    env.ok(&["delete", "--force", &id]);
    env.assert_gone(&id);
}
