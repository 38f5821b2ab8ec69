//! The container lifecycle as callers drive it: create/start/state/kill/
//! delete, run, exec, pause/resume, pid files, fd passing, logging.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::{alive, Env};

#[test]
fn create_start_kill_delete() {
    require_root!();
    let env = Env::new("life");
    let id = env.id("c");
    // Options after the container ID are accepted, as runc's tests pass them.
    env.ok(&["create", &id, "--bundle", env.bundle_str()]);
    let st = env.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(
        st["bundle"],
        env.bundle
            .canonicalize()
            .expect("bundle")
            .to_str()
            .expect("utf8")
    );
    assert_eq!(
        st["rootfs"],
        env.bundle
            .join("rootfs")
            .canonicalize()
            .expect("rootfs")
            .to_str()
            .expect("utf8")
    );
    for key in ["ociVersion", "created", "owner", "annotations"] {
        assert!(st.get(key).is_some(), "state lacks {key}: {st}");
    }
    let pid = st["pid"].as_i64().expect("pid") as i32;
    assert!(pid > 0 && alive(pid));
    // runc's default cgroup path when cgroupsPath is unset: <caller's>/<id>.
    let pids_dir = common::cgroup_dir_of("pids", &id);
    assert!(
        pids_dir.exists(),
        "cgroup {} not created",
        pids_dir.display()
    );
    let procs = std::fs::read_to_string(pids_dir.join("cgroup.procs")).expect("procs");
    assert!(
        procs.lines().any(|l| l == pid.to_string()),
        "init {pid} not in its cgroup: {procs}"
    );

    env.ok(&["start", &id]);
    assert_eq!(env.status(&id), "running");
    assert_eq!(env.pid(&id), pid);

    env.ok(&["kill", &id, "KILL"]);
    env.wait_status(&id, "stopped");
    assert_eq!(env.pid(&id), 0, "a stopped container reports pid 0");
    env.ok(&["delete", &id]);
    env.fails(&["state", &id], &format!("container {id} does not exist"));
    env.assert_gone(&id);
    assert!(common::dies(pid));
}

#[test]
fn kill_signal_spellings_and_stopped() {
    require_root!();
    let env = Env::new("kill");
    env.set_args(&[
        "sh",
        "-c",
        "trap 'exit 3' USR1; while true; do sleep 0.05; done",
    ]);
    let id = env.id("k");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    for sig in ["SIGCONT", "CONT", "18", "cont"] {
        env.ok(&["kill", &id, sig]);
    }
    env.fails(&["kill", &id, "NOSUCHSIG"], "invalid signal");
    env.ok(&["kill", &id, "USR1"]);
    env.wait_status(&id, "stopped");
    env.fails(&["kill", &id, "TERM"], "container not running");
    env.ok(&["delete", &id]);
    env.assert_gone(&id);
}

#[test]
fn kill_all_reaches_every_process() {
    require_root!();
    let env = Env::new("killall");
    env.set_args(&["sh", "-c", "sleep 100 & sleep 100 & wait"]);
    let id = env.id("a");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    let pids: Vec<i32> =
        serde_json::from_str(&env.ok(&["ps", "--format", "json", &id])).expect("ps json");
    assert!(pids.len() >= 3, "expected shell and two sleeps: {pids:?}");
    env.ok(&["kill", "--all", &id, "KILL"]);
    env.wait_status(&id, "stopped");
    env.ok(&["delete", &id]);
    for p in pids {
        assert!(common::dies(p), "pid {p} survived kill --all");
    }
}

#[test]
fn delete_semantics() {
    require_root!();
    let env = Env::new("delete");
    // A created container is deleted without --force, its init killed.
    let created = env.id("created");
    env.ok(&["create", "--bundle", env.bundle_str(), &created]);
    let pid = env.pid(&created);
    env.ok(&["delete", &created]);
    env.assert_gone(&created);
    assert!(
        common::dies(pid),
        "init of a deleted created container survived"
    );

    // A running one needs --force.
    let running = env.id("running");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &running]);
    env.fails(&["delete", &running], "that is not stopped: running");
    assert_eq!(env.status(&running), "running");
    let pid = env.pid(&running);
    env.ok(&["delete", "-f", &running]);
    env.assert_gone(&running);
    assert!(common::dies(pid));

    // --force on a container that does not exist succeeds, as with runc.
    env.ok(&["delete", "--force", "never-existed"]);
    env.fails(
        &["delete", "never-existed"],
        "container never-existed does not exist",
    );
}

#[test]
fn run_foreground_returns_exit_code_and_cleans_up() {
    require_root!();
    let env = Env::new("run");
    env.set_args(&["sh", "-c", "echo out-line; echo err-line >&2; exit 7"]);
    let id = env.id("r");
    let out = env.run(&["run", "--bundle", env.bundle_str(), &id]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out-line\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err-line\n");
    env.assert_gone(&id);

    // Killed by a signal (from outside: a pid namespace's init ignores
    // SIGKILL sent from inside): 128 + N.
    env.set_args(&["sleep", "30"]);
    let sig = env.id("sig");
    let mut child = env
        .cmd()
        .args(["run", "--bundle", env.bundle_str(), &sig])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn run");
    env.wait_status(&sig, "running");
    env.ok(&["kill", &sig, "KILL"]);
    assert_eq!(child.wait().expect("wait").code(), Some(137));
    env.assert_gone(&sig);

    // --keep leaves the stopped container for inspection.
    env.set_args(&["true"]);
    let kept = env.id("kept");
    let out = env.run(&["run", "--keep", "--bundle", env.bundle_str(), &kept]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(env.status(&kept), "stopped");
    env.ok(&["delete", &kept]);
    env.assert_gone(&kept);
}

#[test]
fn run_forwards_signals() {
    require_root!();
    let env = Env::new("fwd");
    env.set_args(&[
        "sh",
        "-c",
        "trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.05; done",
    ]);
    let id = env.id("f");
    let mut child = env
        .cmd()
        .args(["run", "--bundle", env.bundle_str(), &id])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 6];
    std::io::Read::read_exact(&mut stdout, &mut first).expect("ready line");
    assert_eq!(&first, b"ready\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal runlet");
    let status = child.wait().expect("wait");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read");
    assert_eq!(status.code(), Some(42), "output: {rest}");
    assert!(rest.contains("got-term"));
    env.assert_gone(&id);
}

#[test]
fn pid_file_holds_init_pid() {
    require_root!();
    let env = Env::new("pidfile");
    let id = env.id("p");
    let pid_file = env.dir.path().join("sub-pid");
    env.ok(&[
        "create",
        "--bundle",
        env.bundle_str(),
        "--pid-file",
        pid_file.to_str().expect("utf8"),
        &id,
    ]);
    let written: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("number");
    assert_eq!(written, env.pid(&id));
    env.ok(&["delete", &id]);
}

#[test]
fn exec_into_running_container() {
    require_root!();
    let env = Env::new("exec");
    env.config(|c| c["process"]["env"] = serde_json::json!(["PATH=/bin", "FROM_SPEC=spec"]));
    let id = env.id("e");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    let init = env.pid(&id);

    // Output, exit code, env merge, cwd; options between ID and command.
    let out = env.run(&[
        "exec",
        &id,
        "--env",
        "EXTRA=1",
        "--cwd",
        "/tmp",
        "sh",
        "-c",
        "echo $FROM_SPEC $EXTRA $(pwd); exit 5",
    ]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "spec 1 /tmp\n");

    // The process joins the container's namespaces and cgroup.
    let out = env.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "readlink /proc/self/ns/pid; cat /proc/self/cgroup",
    ]);
    let init_ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).expect("ns");
    assert!(
        out.starts_with(init_ns.to_str().expect("utf8")),
        "{out} vs {init_ns:?}"
    );

    // From the host, the exec'd process is in the container's cgroup.
    env.assert_exec_joins_cgroup(&id, &["sleep", "5"]);

    // --process with a process.json, as CRI-O and conmon exec.
    let pj = env.dir.path().join("process.json");
    std::fs::write(
        &pj,
        serde_json::to_vec(&serde_json::json!({
            "terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": "/",
            "args": ["sh", "-c", "echo via-process-json $ONLY"], "env": ["PATH=/bin", "ONLY=here"]
        }))
        .expect("json"),
    )
    .expect("write");
    let out = env.ok(&["exec", "--process", pj.to_str().expect("utf8"), &id]);
    assert_eq!(out, "via-process-json here\n");

    env.fails(&["exec", &id, "/does/not/exist"], "not found");
    env.ok(&["delete", "-f", &id]);
    env.fails(&["exec", &id, "true"], "does not exist");
}

#[test]
fn exec_into_stopped_container_fails() {
    require_root!();
    let env = Env::new("execstop");
    env.set_args(&["true"]);
    let id = env.id("s");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    env.wait_status(&id, "stopped");
    env.fails(&["exec", &id, "true"], "cannot exec in a stopped container");
    env.ok(&["delete", &id]);
}

#[test]
fn pause_and_resume() {
    require_root!();
    let env = Env::new("pause");
    env.set_args(&["sh", "-c", "while true; do sleep 0.05; done"]);
    let id = env.id("p");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    env.ok(&["pause", &id]);
    assert_eq!(env.status(&id), "paused");
    let (file, frozen) = if common::cgroup_v2() {
        ("cgroup.freeze", "1")
    } else {
        ("freezer.state", "FROZEN")
    };
    let state =
        std::fs::read_to_string(common::cgroup_dir_of("freezer", &id).join(file)).expect("freezer");
    assert_eq!(state.trim(), frozen);
    env.fails(&["resume", &env.id("nope")], "does not exist");
    env.ok(&["resume", &id]);
    assert_eq!(env.status(&id), "running");
    env.fails(&["resume", &id], "container not paused");
    // A paused container can be force-deleted.
    env.ok(&["pause", &id]);
    env.ok(&["delete", "--force", &id]);
    env.assert_gone(&id);
}

#[test]
fn two_containers_at_once() {
    require_root!();
    let env = Env::new("two");
    let a = env.id("a");
    let b = env.id("b");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &a]);
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &b]);
    assert_ne!(env.pid(&a), env.pid(&b));
    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["list", "--format", "json"])).expect("json");
    let ids: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(
        ids.contains(&a.as_str()) && ids.contains(&b.as_str()),
        "{ids:?}"
    );
    let quiet = env.ok(&["list", "-q"]);
    assert_eq!(quiet.lines().count(), 2);
    let table = env.ok(&["list"]);
    assert!(table.starts_with("ID"), "{table}");
    env.ok(&["kill", &a, "KILL"]);
    env.wait_status(&a, "stopped");
    assert_eq!(
        env.status(&b),
        "running",
        "killing one container touched the other"
    );
    env.ok(&["delete", &a]);
    env.ok(&["delete", "-f", &b]);
    env.assert_gone(&a);
    env.assert_gone(&b);
}

#[test]
fn preserve_fds_and_socket_activation() {
    require_root!();
    let env = Env::new("fds");
    let data = env.dir.path().join("data");
    std::fs::write(&data, "passed-through\n").expect("write");
    env.set_args(&[
        "sh",
        "-c",
        "cat /proc/self/fd/3; echo LISTEN_FDS=$LISTEN_FDS LISTEN_PID=$LISTEN_PID",
    ]);
    // Runs `runlet run` from a shell that opened `data` as fd 3; `prefix`
    // goes before the exec (environment for socket activation).
    let run_with_fd3 = |prefix: &str, flags: &str, id: &str| {
        let script = format!(
            "{prefix} exec {} --root {} run {flags} --bundle {} {id} 3<{}",
            common::runlet_bin().display(),
            env.root.display(),
            env.bundle_str(),
            data.display()
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // --preserve-fds 1 passes fd 3.
    assert_eq!(
        run_with_fd3("", "--preserve-fds 1", &env.id("p")),
        "passed-through\nLISTEN_FDS= LISTEN_PID=\n"
    );
    // LISTEN_FDS for our pid passes fds and tells the container, as runc does.
    assert_eq!(
        run_with_fd3("export LISTEN_PID=$$ LISTEN_FDS=1;", "", &env.id("l")),
        "passed-through\nLISTEN_FDS=1 LISTEN_PID=1\n"
    );
    // Without either, fd 3 is not leaked into the container.
    assert!(!run_with_fd3("", "", &env.id("n")).contains("passed-through"));
}

#[test]
fn json_log_lines() {
    require_root!();
    let env = Env::new("log");
    let log = env.dir.path().join("runtime.log");
    let log_s = log.to_str().expect("utf8");
    let out = env.run(&["--log", log_s, "--log-format=json", "state", "missing-one"]);
    assert_eq!(out.status.code(), Some(1));
    let id = env.id("dbg");
    env.ok(&[
        "--debug",
        "--log",
        log_s,
        "--log-format",
        "json",
        "run",
        "-d",
        "--bundle",
        env.bundle_str(),
        &id,
    ]);
    env.ok(&["delete", "-f", &id]);
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.lines().count() > 2, "{text}");
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        let obj = v.as_object().expect("object");
        assert!(
            obj.contains_key("level") && obj.contains_key("msg") && obj.contains_key("time"),
            "{line}"
        );
    }
    assert!(
        text.contains(r#""msg":"container missing-one does not exist""#),
        "{text}"
    );
}

#[test]
fn version_and_features() {
    let out = std::process::Command::new(common::runlet_bin())
        .arg("--version")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("runlet version "), "{text}");
    assert!(text.contains("spec: 1."), "{text}");
    let out = std::process::Command::new(common::runlet_bin())
        .arg("features")
        .output()
        .expect("run");
    let f: serde_json::Value = serde_json::from_slice(&out.stdout).expect("features JSON");
    assert_eq!(f["ociVersionMin"], "1.0.0");
    assert!(f["ociVersionMax"]
        .as_str()
        .is_some_and(|v| v.starts_with("1.")));
    assert!(f["hooks"].as_array().is_some_and(|h| h.len() == 6));
    assert!(f["linux"]["namespaces"]
        .as_array()
        .is_some_and(|n| n.len() == 8));
}

#[test]
fn notify_socket_is_relayed() {
    require_root!();
    let env = Env::new("notify");
    let helper = env.bundle.join("rootfs/bin/sd-notify");
    if let Err(reason) = common::build_c("sd-notify.c", &helper, &["-static"]) {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    env.set_args(&[
        "sh",
        "-c",
        "sd-notify STATUS=warming; sleep 0.2; sd-notify READY=1; sleep 30",
    ]);
    let host_sock = env.dir.path().join("notify.sock");
    let listener = std::os::unix::net::UnixDatagram::bind(&host_sock).expect("bind");
    listener
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .expect("timeout");
    let id = env.id("n");
    let with_notify = |args: &[&str]| {
        let mut cmd = env.cmd();
        cmd.env("NOTIFY_SOCKET", &host_sock).args(args);
        let out = common::output_of(&mut cmd);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    with_notify(&["create", "--bundle", env.bundle_str(), &id]);
    // start returns only once the container said READY=1.
    with_notify(&["start", &id]);
    let pid = env.pid(&id);
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = listener.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        if got.last().is_some_and(|m| m.contains("READY=1")) {
            break;
        }
    }
    assert_eq!(
        got,
        vec![
            "STATUS=warming".to_string(),
            format!("MAINPID={pid}\n"),
            "READY=1".to_string()
        ]
    );
    env.ok(&["delete", "-f", &id]);
    env.assert_gone(&id);
}

#[test]
fn exec_keeps_the_seccomp_filter() {
    require_root!();
    let env = Env::new("seccomp");
    env.config(|c| {
        c["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
        c["root"]["readonly"] = false.into();
    });
    let id = env.id("s");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    let out = env.run(&["exec", &id, "sh", "-c", "mkdir /tmp/blocked && echo made"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(0),
        "mkdir succeeded despite the container's filter"
    );
    assert!(err.contains("Operation not permitted"), "{err}");
    env.ok(&["delete", "-f", &id]);
}

#[test]
fn placement_parents_go_with_the_last_container() {
    require_root!();
    // Without cgroupsPath a container goes below the caller's cgroup; on v1
    // the parents that mirror another controller's path (e.g. pids under
    // the caller's memory cgroup) must not outlive the containers, whichever
    // order they are deleted in.
    let env = Env::new("placement");
    let (a, b) = (env.id("a"), env.id("b"));
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &a]);
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &b]);
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.root.join(&b).join("runlet.json")).expect("runlet.json"),
    )
    .expect("json");
    let prune: Vec<std::path::PathBuf> = record["cgroup"]["prune"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|p| p.as_str().map(Into::into))
                .collect()
        })
        .unwrap_or_default();
    env.ok(&["delete", "-f", &a]);
    env.ok(&["delete", "-f", &b]);
    for dir in &prune {
        // Gone, or still holding another test's containers.
        let busy = std::fs::read_dir(dir)
            .map(|d| d.flatten().any(|e| e.file_type().is_ok_and(|t| t.is_dir())))
            .unwrap_or(false);
        assert!(!dir.exists() || busy, "{} left behind", dir.display());
    }
    env.assert_gone(&a);
    env.assert_gone(&b);
}

#[test]
fn a_signal_the_process_survives_leaves_it_running() {
    require_root!();
    // sh as PID 1 traps USR1 and goes on: the container is still running.
    let env = Env::new("kill-usr1");
    env.set_args(&[
        "sh",
        "-c",
        "trap 'echo usr1' USR1; while :; do sleep 1; done",
    ]);
    let id = env.id("u");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    env.ok(&["kill", &id, "USR1"]);
    assert_eq!(env.status(&id), "running");
    env.ok(&["kill", &id, "KILL"]);
    env.wait_status(&id, "stopped");
    env.ok(&["delete", &id]);
    env.assert_gone(&id);
}

#[test]
fn cgroup_manager_disabled_keeps_the_container_in_the_callers_cgroups() {
    require_root!();
    let env = Env::new("nocgroup");
    let id = env.id("n");
    let run = |args: &[&str]| {
        let mut all = vec!["--cgroup-manager=disabled"];
        all.extend_from_slice(args);
        env.ok(&all)
    };
    run(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    let init = env.pid(&id);
    let theirs = std::fs::read_to_string(format!("/proc/{init}/cgroup")).expect("cgroup");
    let ours = std::fs::read_to_string("/proc/self/cgroup").expect("cgroup");
    assert_eq!(theirs, ours, "the container left the caller's cgroups");
    for ctl in ["memory", "pids", "cpu", "freezer", "devices"] {
        let p = common::cgroup_dir_of(ctl, &id);
        assert!(
            !p.exists(),
            "a cgroup was left for the container: {}",
            p.display()
        );
    }
    // exec'd processes stay in the caller's cgroups too.
    let pid_file = env.dir.path().join("exec.pid");
    let pid_file = pid_file.to_str().expect("utf8");
    run(&["exec", "-d", "--pid-file", pid_file, &id, "sleep", "30"]);
    let exec_pid = std::fs::read_to_string(pid_file).expect("pid file");
    let exec_cg =
        std::fs::read_to_string(format!("/proc/{}/cgroup", exec_pid.trim())).expect("exec cgroup");
    assert_eq!(
        exec_cg, ours,
        "the exec'd process left the caller's cgroups"
    );
    let err = env.run(&["--cgroup-manager=disabled", "pause", &id]);
    assert!(!err.status.success());
    run(&["kill", "--all", &id, "KILL"]);
    env.wait_status(&id, "stopped");
    run(&["delete", &id]);
    assert!(common::dies(init));
    env.assert_gone(&id);
}

/// Reads a cgroup file of default-placed container `id`: `v1` = (controller,
/// file) on the hybrid v1 hosts, `v2` on a pure v2 host (scripts/vm-test).
fn cg_read(id: &str, v1: (&str, &str), v2: &str) -> String {
    let (dir, file) = if common::cgroup_v2() {
        (common::cgroup_dir_of("", id), v2)
    } else {
        (common::cgroup_dir_of(v1.0, id), v1.1)
    };
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

/// `update` as runc has it: flags, `--resources -` (CRI-O's and
/// containerd's way), values merged into what the container has, refused
/// with the field named, and for a stopped container.
#[test]
fn update_changes_limits_of_a_live_container() {
    require_root!();
    let env = Env::new("update");
    let id = env.id("u");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    env.ok(&[
        "update",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        "--cpu-quota",
        "50000",
        "--cpu-period",
        "100000",
        &id,
    ]);
    let mem = || cg_read(&id, ("memory", "memory.limit_in_bytes"), "memory.max");
    let pids = || cg_read(&id, ("pids", "pids.max"), "pids.max");
    let quota = || {
        if common::cgroup_v2() {
            cg_read(&id, ("", ""), "cpu.max")
        } else {
            cg_read(&id, ("cpu", "cpu.cfs_quota_us"), "")
        }
    };
    assert_eq!(mem(), "67108864");
    assert_eq!(pids(), "50");
    let want_quota = if common::cgroup_v2() {
        "50000 100000"
    } else {
        "50000"
    };
    assert_eq!(quota(), want_quota);

    // A resources object on stdin changes what it names and keeps the rest.
    let out = env.run_with_stdin(
        &["update", "--resources", "-", &id],
        r#"{"memory": {"limit": 134217728}, "pids": {"limit": 60}}"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mem(), "134217728");
    assert_eq!(pids(), "60");
    assert_eq!(quota(), want_quota);
    // Saved: the next update starts from it.
    env.ok(&["update", "--pids-limit", "70", &id]);
    assert_eq!(mem(), "134217728");
    assert_eq!(pids(), "70");
    if !common::cgroup_v2() {
        // libcgroups rewrites its default device rules on every apply.
        let list =
            std::fs::read_to_string(common::cgroup_dir_of("devices", &id).join("devices.list"))
                .unwrap_or_default();
        for unwanted in ["a *:* rwm", "c 10:200 rwm", "c 5:1 rwm"] {
            assert!(
                !list.contains(unwanted),
                "{unwanted} allowed after update: {list}"
            );
        }
    }

    env.fails(&["update", "--memory", "lots", &id], "--memory \"lots\"");
    let out = env.run_with_stdin(
        &["update", "--resources", "-", &id],
        r#"{"memory": {"limit": "x"}}"#,
    );
    let err = common::error_message(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("linux.resources.memory.limit"), "{err}");
    assert_eq!(mem(), "134217728", "a refused update changed the cgroup");

    env.ok(&["kill", &id, "KILL"]);
    env.wait_status(&id, "stopped");
    env.fails(&["update", "--memory", "64m", &id], "container not running");
    env.ok(&["delete", &id]);
    env.assert_gone(&id);
}

type Lines = std::io::Lines<std::io::BufReader<std::process::ChildStdout>>;

/// `runlet events --interval INTERVAL ID`, and its output line by line.
fn events_stream(env: &Env, id: &str, interval: &str) -> (std::process::Child, Lines) {
    let mut stream = env
        .cmd()
        .args(["events", "--interval", interval, id])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("events");
    let lines = std::io::BufRead::lines(std::io::BufReader::new(
        stream.stdout.take().expect("stdout"),
    ));
    (stream, lines)
}

/// A process the OOM killer ends: `state` says `oomKilled` (runlet's
/// addition; with cgroupfs, where the cgroup outlives the process) and the
/// `events` stream reports `{"type":"oom"}` before its next stats line is
/// due, then ends with the container.
#[test]
fn oom_kill_shows_in_state_and_events() {
    require_root!();
    let env = Env::new("oom");
    let memsw = Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists();
    env.config(|c| {
        c["linux"]["resources"]["memory"] = serde_json::json!({"limit": 16 << 20});
        if common::cgroup_v2() || memsw {
            // No swap to escape to.
            c["linux"]["resources"]["memory"]["swap"] = serde_json::json!(16 << 20);
        }
    });
    // dd's 64 MiB buffer, filled from /dev/zero, cannot fit in 16 MiB.
    env.set_args(&[
        "/bin/busybox",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=4",
    ]);
    let id = env.id("o");
    env.ok(&["create", "--bundle", env.bundle_str(), &id]);
    assert!(
        env.state(&id).get("oomKilled").is_none(),
        "{}",
        env.state(&id)
    );
    // The stream's first stats line: it is watching before the start.
    let (mut stream, mut lines) = events_stream(&env, &id, "1h");
    let first = lines.next().expect("a first event").expect("read");
    assert!(first.contains(r#""type":"stats""#), "{first}");
    env.ok(&["start", &id]);
    env.wait_status(&id, "stopped");
    let rest: Vec<String> = lines.map(|l| l.expect("read")).collect();
    assert!(stream.wait().expect("wait").success());
    assert_eq!(rest, vec![format!(r#"{{"id":"{id}","type":"oom"}}"#)]);
    // A systemd scope goes with its last process, and its counter with it.
    if !common::systemd_driver() {
        assert_eq!(env.state(&id)["oomKilled"], true, "{}", env.state(&id));
    }
    env.ok(&["delete", &id]);
    env.assert_gone(&id);
}

/// `events --stats` once, and the stream, which ends when the container
/// stops; both in runc's JSON shape.
#[test]
fn events_report_stats_and_end_with_the_container() {
    require_root!();
    let env = Env::new("events");
    env.set_args(&["sh", "-c", "while true; do sleep 0.05; done"]);
    let id = env.id("e");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    let out = env.ok(&["events", "--stats", &id]);
    let ev: serde_json::Value = serde_json::from_str(out.trim()).expect("events JSON");
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], id.as_str());
    let data = &ev["data"];
    assert!(data["pids"]["current"].as_u64().unwrap_or(0) >= 1, "{ev}");
    assert!(
        data["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{ev}"
    );
    assert!(data["cpu"]["usage"]["total"].as_u64().is_some(), "{ev}");

    let (mut stream, mut lines) = events_stream(&env, &id, "100ms");
    let first = lines.next().expect("a first event").expect("read");
    let ev: serde_json::Value = serde_json::from_str(&first).expect("event JSON");
    assert_eq!(ev["type"], "stats");
    env.ok(&["kill", &id, "KILL"]);
    // The stream ends by itself once the container has stopped.
    for line in lines {
        line.expect("read");
    }
    let status = stream.wait().expect("wait");
    assert!(status.success(), "events ended with {status}");
    env.fails(&["events", "--stats", &id], "container not running");
    env.ok(&["delete", &id]);
}
