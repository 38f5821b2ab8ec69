//! The tests, one file per section of config.json and the runtime spec's
//! lifecycle. Each gets a fresh bundle (busybox + spec-helper) whose
//! process runs `spec-helper report` unless the test changes it.

mod hooks;
mod lifecycle;
mod linux;
mod mounts;
mod namespaces;
mod process;
mod resources;
mod root;
mod seccomp;

use std::time::{Duration, Instant};

use crate::harness::{Ctx, Test, TestResult};

pub fn all() -> Vec<Test> {
    [
        process::all(),
        root::all(),
        mounts::all(),
        hooks::all(),
        namespaces::all(),
        linux::all(),
        resources::all(),
        seccomp::all(),
        lifecycle::all(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

pub(super) fn sleep_args(ctx: &Ctx) -> TestResult {
    ctx.args(&["/bin/spec-helper", "sleep", "30"])
}

/// Waits (60 s at most) until `cond` holds; `what` names it in the error.
pub(super) fn wait_until(what: &str, mut cond: impl FnMut() -> bool) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        if Instant::now() > deadline {
            return Err(format!("{what}: not within 60 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

pub(super) fn wait_status(ctx: &Ctx, want: &str) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if ctx.status() == want {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("status never became {want}: {}", ctx.status()))
}

pub(crate) fn mountinfo(ctx: &Ctx) -> Result<String, String> {
    ctx.args(&["/bin/spec-helper", "mounts"])?;
    let r = ctx.run_output();
    if r.code != Some(0) {
        return Err(format!("run exited {:?}: {}", r.code, r.stderr.trim()));
    }
    Ok(r.stdout)
}

pub(super) fn mount_line<'a>(info: &'a str, dest: &str) -> Option<&'a str> {
    info.lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some(dest))
}
