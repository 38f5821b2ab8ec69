//! The lifecycle: state transitions and the state JSON, operations on
//! missing containers and in the wrong state, delete with and without
//! --force, duplicate ids, signals.

use super::{sleep_args, wait_status, wait_until};
use crate::harness::{cgroup_dir, cgroups_path as test_cgroup, expect_eq, Ctx, Test, TestResult};
use crate::t;

pub fn all() -> Vec<Test> {
    vec![
        t!("lifecycle", lifecycle_states),
        t!("lifecycle", lifecycle_state_of_missing),
        t!("lifecycle", lifecycle_ops_on_missing),
        t!("lifecycle", lifecycle_start_wrong_state),
        t!("lifecycle", lifecycle_kill_stopped),
        t!("lifecycle", lifecycle_delete_created),
        t!("lifecycle", lifecycle_delete_running),
        t!("lifecycle", lifecycle_duplicate_id),
        t!("lifecycle", lifecycle_kill_signals),
        t!("lifecycle", lifecycle_delete_right_after_kill),
        t!("lifecycle", lifecycle_notify_socket_without_ready),
    ]
}

fn lifecycle_states(ctx: &mut Ctx) -> TestResult {
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    let st = ctx.state()?;
    expect_eq(
        "status after create",
        "created",
        st["status"].as_str().unwrap_or(""),
    )?;
    expect_eq("id", ctx.id.as_str(), st["id"].as_str().unwrap_or(""))?;
    let canonical = ctx.bundle.canonicalize().map_err(|e| e.to_string())?;
    expect_eq(
        "bundle",
        canonical.to_str().unwrap_or(""),
        st["bundle"].as_str().unwrap_or(""),
    )?;
    if st["pid"].as_i64().unwrap_or(0) <= 0 || st["ociVersion"].as_str().is_none() {
        return Err(format!("state lacks pid or ociVersion: {st}"));
    }
    ctx.ok(&["start", &ctx.id])?;
    expect_eq("status after start", "running".to_string(), ctx.status())?;
    ctx.ok(&["kill", &ctx.id, "KILL"])?;
    wait_status(ctx, "stopped")?;
    ctx.ok(&["delete", &ctx.id])?;
    if ctx.runtime(&["state", &ctx.id]).code == Some(0) {
        return Err("state succeeds after delete".into());
    }
    Ok(())
}

fn lifecycle_state_of_missing(ctx: &mut Ctx) -> TestResult {
    let r = ctx.runtime(&["state", "no-such-container"]);
    expect_eq(
        "state of a missing container fails",
        true,
        r.code.is_some_and(|c| c != 0),
    )
}

/// Every operation on a container that does not exist fails (delete
/// --force aside, which callers use to clean up idempotently).
fn lifecycle_ops_on_missing(ctx: &mut Ctx) -> TestResult {
    for op in [
        vec!["start", "ghost"],
        vec!["kill", "ghost", "KILL"],
        vec!["delete", "ghost"],
        vec!["state", "ghost"],
    ] {
        if ctx.runtime(&op).code == Some(0) {
            return Err(format!(
                "`{}` on a missing container succeeded",
                op.join(" ")
            ));
        }
    }
    Ok(())
}

fn lifecycle_start_wrong_state(ctx: &mut Ctx) -> TestResult {
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    ctx.ok(&["start", &ctx.id])?;
    expect_eq(
        "start of a running container fails",
        true,
        ctx.runtime(&["start", &ctx.id]).code != Some(0),
    )?;
    ctx.ok(&["kill", &ctx.id, "KILL"])?;
    wait_status(ctx, "stopped")?;
    expect_eq(
        "start of a stopped container fails",
        true,
        ctx.runtime(&["start", &ctx.id]).code != Some(0),
    )
}

fn lifecycle_kill_stopped(ctx: &mut Ctx) -> TestResult {
    ctx.args(&["/bin/spec-helper", "exit", "0"])?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    ctx.ok(&["start", &ctx.id])?;
    wait_status(ctx, "stopped")?;
    expect_eq(
        "kill of a stopped container fails",
        true,
        ctx.runtime(&["kill", &ctx.id, "TERM"]).code != Some(0),
    )
}

fn lifecycle_delete_created(ctx: &mut Ctx) -> TestResult {
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    let pid = ctx.state()?["pid"].as_i64().unwrap_or(0);
    ctx.ok(&["delete", &ctx.id])?;
    // A killed process takes a moment to exit (longer on a loaded machine).
    wait_until("init of a deleted created container is gone", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
    })
}

fn lifecycle_delete_running(ctx: &mut Ctx) -> TestResult {
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["run", "--detach", "--bundle", &bundle, &ctx.id])?;
    expect_eq(
        "delete of a running container without --force fails",
        true,
        ctx.runtime(&["delete", &ctx.id]).code != Some(0),
    )?;
    expect_eq("still running", "running".to_string(), ctx.status())?;
    ctx.ok(&["delete", "--force", &ctx.id])?;
    expect_eq(
        "gone after delete --force",
        true,
        ctx.runtime(&["state", &ctx.id]).code != Some(0),
    )
}

fn lifecycle_duplicate_id(ctx: &mut Ctx) -> TestResult {
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    let pid = ctx.state()?["pid"].clone();
    expect_eq(
        "second create with the same id fails",
        true,
        ctx.runtime(&["create", "--bundle", &bundle, &ctx.id]).code != Some(0),
    )?;
    expect_eq(
        "the first container is untouched",
        pid,
        ctx.state()?["pid"].clone(),
    )
}

fn lifecycle_kill_signals(ctx: &mut Ctx) -> TestResult {
    ctx.args(&[
        "/bin/sh",
        "-c",
        "trap 'exit 7' USR1; while true; do sleep 0.05; done",
    ])?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["run", "--detach", "--bundle", &bundle, &ctx.id])?;
    for sig in ["SIGCONT", "CONT", "18"] {
        ctx.ok(&["kill", &ctx.id, sig])?;
    }
    ctx.ok(&["kill", &ctx.id, "USR1"])?;
    wait_status(ctx, "stopped")
}

/// `kill ID KILL` and at once `delete ID`: the init may have exited but
/// not been reaped yet (a zombie); that is `stopped`, so the delete works
/// and leaves no cgroup. Ten rounds, to meet the race.
fn lifecycle_delete_right_after_kill(ctx: &mut Ctx) -> TestResult {
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    for round in 0..10 {
        let id = format!("{}-{round}", ctx.id);
        let (config_path, path) = test_cgroup(&format!("{id}-cg"));
        ctx.config(|c| c["linux"]["cgroupsPath"] = config_path.into())?;
        ctx.ok(&["run", "--detach", "--bundle", &bundle, &id])?;
        ctx.ok(&["kill", &id, "KILL"])?;
        ctx.ok(&["delete", &id])
            .map_err(|e| format!("round {round}: {e}"))?;
        let dir = cgroup_dir("pids", &path);
        if dir.exists() {
            return Err(format!("round {round}: {} left behind", dir.display()));
        }
    }
    Ok(())
}

/// `run` with NOTIFY_SOCKET set, for a container that exits without
/// sending READY=1: `run` must end with the container's exit status, not
/// wait for a READY that never comes.
fn lifecycle_notify_socket_without_ready(ctx: &mut Ctx) -> TestResult {
    let sock = ctx.dir.join("notify.sock");
    let _listener =
        std::os::unix::net::UnixDatagram::bind(&sock).map_err(|e| format!("notify socket: {e}"))?;
    ctx.args(&["/bin/spec-helper", "exit", "3"])?;
    let bundle = ctx.bundle_str();
    // A short id: runc binds its relay socket in the state dir, and a
    // socket path must fit in 108 bytes.
    let id = format!("n{}", std::process::id());
    let r = ctx.runtime_env(
        &["run", "--bundle", &bundle, &id],
        &[("NOTIFY_SOCKET", sock.to_str().unwrap_or_default())],
    );
    expect_eq("exit status of run (None: it hung)", Some(3), r.code)
        .map_err(|e| format!("{e}: {}", r.stderr.trim()))
}
