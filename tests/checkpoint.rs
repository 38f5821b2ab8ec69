//! `checkpoint` and `restore` with CRIU, as runc has them. They need a
//! kernel where `criu check` passes: scripts/vm-test runs them in its VM
//! (on these hosts criu 3.17's check fails on the vDSO).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{alive, Env};

/// Why CRIU cannot run here, if it cannot.
fn criu_unusable() -> Option<String> {
    match std::process::Command::new("criu").arg("check").output() {
        Err(e) => Some(format!("criu: {e} (install criu: scripts/setup)")),
        Ok(o) if !o.status.success() => {
            let text = String::from_utf8_lossy(&o.stderr).into_owned()
                + &String::from_utf8_lossy(&o.stdout);
            let last = text.lines().rev().find(|l| !l.trim().is_empty());
            Some(format!(
                "`criu check` fails on this kernel ({}); scripts/vm-test runs this test in a VM",
                last.unwrap_or("no output").trim()
            ))
        }
        Ok(_) => None,
    }
}

/// A bundle whose shell `script` counts into /count (a writable root), or
/// None, saying why, where CRIU cannot run.
fn counting_env(name: &str, script: &str) -> Option<Env> {
    if let Some(why) = criu_unusable() {
        eprintln!("SKIPPED: {why}");
        return None;
    }
    let env = Env::new(name);
    env.config(|c| c["root"]["readonly"] = false.into());
    env.set_args(&["sh", "-c", script]);
    Some(env)
}

fn count(env: &Env) -> u64 {
    std::fs::read_to_string(env.bundle.join("rootfs/count"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the counter is above `n`; returns it.
fn count_above(env: &Env, n: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = count(env);
        if c > n {
            return c;
        }
        assert!(Instant::now() < deadline, "the counter stayed at {c}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A container that counts in a shell variable (writing each value to
/// /count) is checkpointed, which stops it; restored, it counts on from
/// where it was, not from 1. Then a checkpoint with --leave-running keeps
/// it running.
#[test]
fn checkpoint_and_restore_count_on() {
    require_root!();
    let Some(env) = counting_env(
        "criu",
        "i=0; while true; do i=$((i+1)); echo $i > /count; echo $i; sleep 0.05; done",
    ) else {
        return;
    };
    let id = env.id("c");
    let dir = env.dir.path();
    let (image, work) = (dir.join("image"), dir.join("work"));
    let (image, work) = (image.to_str().expect("utf8"), work.to_str().expect("utf8"));
    // stdout is a pipe, as conmon and containerd give it.
    let (_old_pipes, status) = detached(&env, &["run", "-d", "--bundle", env.bundle_str(), &id]);
    status.expect("run");
    let old_pid = env.pid(&id);
    count_above(&env, 20);

    env.ok(&[
        "checkpoint",
        "--image-path",
        image,
        "--work-path",
        work,
        "--tcp-established",
        &id,
    ]);
    // Without --leave-running the container is gone, as with runc.
    assert!(common::dies(old_pid), "the init outlived its checkpoint");
    env.fails(&["state", &id], "does not exist");
    let at_checkpoint = count(&env);
    assert!(
        Path::new(work).join("dump.log").exists(),
        "no dump.log in --work-path"
    );
    assert!(Path::new(image).join("inventory.img").exists());

    let pid_file = dir.join("restored.pid");
    let ((out, _err), status) = restore_detached(
        &env,
        &id,
        image,
        &[
            "--work-path",
            work,
            "--tcp-established",
            "--pid-file",
            pid_file.to_str().expect("utf8"),
        ],
    );
    status.expect("restore");
    assert_eq!(env.status(&id), "running");
    let pid = env.pid(&id);
    assert!(alive(pid));
    assert_eq!(
        std::fs::read_to_string(&pid_file).expect("pid file").trim(),
        pid.to_string()
    );
    // It counts on: each value is one more than the last, from where the
    // checkpoint left it.
    let after = count_above(&env, at_checkpoint);
    assert!(
        after > at_checkpoint && after < at_checkpoint + 200,
        "checkpointed at {at_checkpoint}, restored and saw {after}"
    );
    // Its stdout is now restore's pipe (the old one's key in
    // descriptors.json), and what comes through it counts on too.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(out));
    let first: u64 = lines
        .next()
        .expect("a line from the restored container")
        .expect("read")
        .trim()
        .parse()
        .expect("a number");
    assert!(
        first > at_checkpoint && first < at_checkpoint + 200,
        "checkpointed at {at_checkpoint}, its stdout now says {first}"
    );
    // The restored process is in the container's cgroup.
    let cg = common::cgroup_dir_of("pids", &id);
    let procs = std::fs::read_to_string(cg.join("cgroup.procs")).expect("cgroup.procs");
    assert!(
        procs.lines().any(|l| l == pid.to_string()),
        "restored init {pid} not in {}: {procs}",
        cg.display()
    );

    // --leave-running: the container goes on.
    let image2 = dir.join("image2");
    env.ok(&[
        "checkpoint",
        "--leave-running",
        "--image-path",
        image2.to_str().expect("utf8"),
        &id,
    ]);
    assert_eq!(env.status(&id), "running");
    let c = count(&env);
    count_above(&env, c);
    env.ok(&["delete", "-f", &id]);
    env.assert_gone(&id);
}

/// runc runs the prestart and createRuntime hooks on restore too, once
/// CRIU has made the namespaces, with the restored init's pid in the state;
/// a failing one fails the restore, which then leaves nothing behind.
/// The hooks run on the host and write into the test's own directory.
#[test]
fn restore_runs_prestart_and_create_runtime_hooks() {
    require_root!();
    let Some(env) = counting_env(
        "criu-hooks",
        "i=0; while true; do i=$((i+1)); echo $i > /count; sleep 0.05; done",
    ) else {
        return;
    };
    let dir = env.dir.path().to_path_buf();
    let hook = |name: &str| {
        let out = dir.join(name);
        serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat >> {}", out.display())],
        })
    };
    env.config(|c| {
        c["hooks"] = serde_json::json!({
            "prestart": [hook("prestart.json")],
            "createRuntime": [hook("createRuntime.json")],
        })
    });
    let id = env.id("h");
    let (_pipes, status) = detached(&env, &["run", "-d", "--bundle", env.bundle_str(), &id]);
    status.expect("run");
    count_above(&env, 5);
    for name in ["prestart.json", "createRuntime.json"] {
        std::fs::remove_file(dir.join(name)).expect("the hook ran at create");
    }
    let image = dir.join("image");
    let image = image.to_str().expect("utf8");
    env.ok(&["checkpoint", "--image-path", image, &id]);
    assert!(
        !dir.join("prestart.json").exists(),
        "hooks ran on checkpoint"
    );

    let (_pipes, status) = restore_detached(&env, &id, image, &[]);
    status.expect("restore");
    let pid = env.pid(&id);
    for name in ["prestart.json", "createRuntime.json"] {
        let text = std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: the hook did not run on restore: {e}"));
        let state: serde_json::Value = serde_json::from_str(&text).expect("the state, in JSON");
        assert_eq!(state["id"], id.as_str(), "{name}: {text}");
        assert_eq!(state["pid"], pid, "{name}: {text}");
    }
    count_above(&env, count(&env));

    // Checkpointed again, and restored with a createRuntime hook that fails.
    let image2 = dir.join("image2");
    let image2 = image2.to_str().expect("utf8");
    env.ok(&["checkpoint", "--image-path", image2, &id]);
    env.config(|c| {
        c["hooks"]["createRuntime"] =
            serde_json::json!([{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}])
    });
    let (_pipes, status) = restore_detached(&env, &id, image2, &[]);
    let err = status.expect_err("a restore whose createRuntime hook fails");
    assert!(err.contains("hooks.createRuntime"), "{err}");
    env.fails(&["state", &id], "does not exist");
    // Its cgroup is gone, so no restored process is left in it.
    env.assert_gone(&id);
}

/// An established TCP connection inside the container (busybox nc to an
/// echo server on its loopback): CRIU refuses to dump it without
/// --tcp-established (and the container runs on), dumps and restores it
/// with the flag, and the numbers keep coming back through it.
#[test]
fn checkpoint_keeps_tcp_connections_with_tcp_established() {
    require_root!();
    let Some(env) = counting_env(
        "criu-tcp",
        "busybox nc -ll -p 5555 -e cat & \
         until busybox grep -q ':15B3 [0-9A-F]*:0000 0A' /proc/net/tcp /proc/net/tcp6; \
         do sleep 0.05; done; \
         i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done \
         | busybox nc 127.0.0.1 5555 | while read n; do echo $n > /count; done",
    ) else {
        return;
    };
    let id = env.id("t");
    let image = env.dir.path().join("image");
    let image = image.to_str().expect("utf8");
    let (_old_pipes, status) = detached(&env, &["run", "-d", "--bundle", env.bundle_str(), &id]);
    status.expect("run");
    count_above(&env, 20);

    let err = env.fails(
        &["checkpoint", "--leave-running", "--image-path", image, &id],
        "criu failed",
    );
    assert!(err.contains("tcp-established"), "{err}");
    assert_eq!(env.status(&id), "running");
    count_above(&env, count(&env));

    env.ok(&[
        "checkpoint",
        "--tcp-established",
        "--image-path",
        image,
        &id,
    ]);
    env.fails(&["state", &id], "does not exist");
    let at_checkpoint = count(&env);
    let (_pipes, status) = restore_detached(&env, &id, image, &["--tcp-established"]);
    status.expect("restore");
    let after = count_above(&env, at_checkpoint);
    assert!(
        after < at_checkpoint + 200,
        "checkpointed at {at_checkpoint}, then {after}"
    );
    env.ok(&["delete", "-f", &id]);
    env.assert_gone(&id);
}

/// Runs runlet with stdout and stderr on pipes, as conmon and containerd
/// give them (CRIU cannot dump a descriptor of a file outside the
/// container), stdin on /dev/null, and waits for it; the container keeps
/// the pipes. Returns stdout's read end and stderr's, and runlet's stderr
/// if it failed.
/// `restore -d` of `id` from `image` with the test's bundle, `extra`
/// flags added; see [`detached`].
fn restore_detached(
    env: &Env,
    id: &str,
    image: &str,
    extra: &[&str],
) -> (
    (std::process::ChildStdout, std::process::ChildStderr),
    Result<(), String>,
) {
    let mut args = vec!["restore", "-d", "--image-path", image];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--bundle", env.bundle_str(), id]);
    detached(env, &args)
}

fn detached(
    env: &Env,
    args: &[&str],
) -> (
    (std::process::ChildStdout, std::process::ChildStderr),
    Result<(), String>,
) {
    let mut child = env
        .cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runlet");
    let out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let status = child.wait().expect("wait");
    let result = if status.success() {
        Ok(())
    } else {
        // Failed: no container holds the pipe open any more.
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut text);
        Err(format!("runlet {args:?}: {status}: {text}"))
    };
    ((out, err), result)
}

/// A Wasm container is refused by both, with an error that says so.
#[test]
fn wasm_containers_refuse_checkpoint_and_restore() {
    require_root!();
    let env = Env::new_wasm("criu-wasm", &["/app/probe-p1.wasm", "sleep", "30"]);
    let id = env.id("w");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    let image = env.dir.path().join("image");
    let image = image.to_str().expect("utf8");
    let err = env.fails(&["checkpoint", "--image-path", image, &id], "Wasm");
    assert!(
        err.contains("CRIU cannot checkpoint a Wasm container"),
        "{err}"
    );
    assert_eq!(env.status(&id), "running");
    env.ok(&["delete", "-f", &id]);
    let err = env.fails(
        &[
            "restore",
            "-d",
            "--image-path",
            image,
            "--bundle",
            env.bundle_str(),
            &id,
        ],
        "Wasm",
    );
    assert!(
        err.contains("CRIU cannot restore a Wasm container"),
        "{err}"
    );
    env.assert_gone(&id);
}

/// Flags runlet does not support, and a missing image, fail in one line
/// and leave nothing.
#[test]
fn restore_without_an_image_fails_cleanly() {
    require_root!();
    let env = Env::new("criu-bad");
    let id = env.id("b");
    let missing = env.dir.path().join("nothing-here");
    env.fails(
        &[
            "restore",
            "--image-path",
            missing.to_str().expect("utf8"),
            "--bundle",
            env.bundle_str(),
            &id,
        ],
        "no checkpoint there",
    );
    env.assert_gone(&id);
    env.fails(&["checkpoint", "--pre-dump", &id], "not supported");
    env.fails(&["checkpoint", &id], "does not exist");
}
