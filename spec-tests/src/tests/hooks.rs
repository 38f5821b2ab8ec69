//! `hooks`: all six kinds, the state each gets, and what a failing hook
//! does in each phase.

use serde_json::{json, Value};

use super::{sleep_args, wait_status, wait_until};
use crate::harness::{expect_eq, Ctx, Test, TestResult};
use crate::t;

pub fn all() -> Vec<Test> {
    vec![
        t!("hooks", hooks_all_kinds_and_state),
        t!("hooks", hook_prestart_failure),
        t!("hooks", hook_create_runtime_failure),
        t!("hooks", hook_create_container_failure),
        t!("hooks", hook_start_container_failure),
        t!("hooks", hook_poststart_failure_is_warning),
        t!("hooks", hook_poststop_failure_is_warning),
    ]
}

fn hook(script: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", script]})
}

fn hooks_all_kinds_and_state(ctx: &mut Ctx) -> TestResult {
    let out = ctx.dir.join("hooks");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let o = out.display();
    ctx.config(|c| {
        c["root"]["readonly"] = false.into();
        c["hooks"] = json!({
            "prestart": [hook(&format!("cat > {o}/prestart.json"))],
            "createRuntime": [hook(&format!("cat > {o}/createRuntime.json"))],
            // Runs in the container namespace before pivot_root: host paths still resolve.
            "createContainer": [hook(&format!("cat > {o}/createContainer.json"))],
            // Runs in the container after pivot_root: a path inside the rootfs.
            "startContainer": [hook("cat > /tmp/startContainer.json")],
            "poststart": [hook(&format!("cat > {o}/poststart.json"))],
            "poststop": [hook(&format!("cat > {o}/poststop.json"))]
        });
    })?;
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    let pid = ctx.state()?["pid"].as_i64().unwrap_or(0);
    ctx.ok(&["start", &ctx.id])?;
    // startContainer runs in the container before the process is exec'd:
    // once the init is spec-helper, it has run.
    wait_until("the container process exec'd after start", || {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.starts_with(b"/bin/spec-helper"))
    })?;
    ctx.ok(&["kill", &ctx.id, "KILL"])?;
    wait_status(ctx, "stopped")?;
    ctx.ok(&["delete", &ctx.id])?;
    let canonical = ctx.bundle.canonicalize().map_err(|e| e.to_string())?;
    for (kind, file, status) in [
        ("prestart", out.join("prestart.json"), None),
        (
            "createRuntime",
            out.join("createRuntime.json"),
            Some("creating"),
        ),
        ("createContainer", out.join("createContainer.json"), None),
        (
            "startContainer",
            ctx.bundle.join("rootfs/tmp/startContainer.json"),
            None,
        ),
        ("poststart", out.join("poststart.json"), Some("running")),
        ("poststop", out.join("poststop.json"), Some("stopped")),
    ] {
        let text =
            std::fs::read_to_string(&file).map_err(|_| format!("{kind} hook did not run"))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{kind}: state on stdin is not JSON ({e}): {text}"))?;
        expect_eq(
            &format!("{kind} state.id"),
            ctx.id.as_str(),
            v["id"].as_str().unwrap_or(""),
        )?;
        expect_eq(
            &format!("{kind} state.bundle"),
            canonical.to_str().unwrap_or(""),
            v["bundle"].as_str().unwrap_or(""),
        )?;
        if v["ociVersion"].as_str().is_none() {
            return Err(format!("{kind}: state lacks ociVersion: {text}"));
        }
        if let Some(s) = status {
            expect_eq(
                &format!("{kind} state.status"),
                s,
                v["status"].as_str().unwrap_or(""),
            )?;
        }
        // Hooks in the runtime namespace see the init's host pid.
        if matches!(kind, "prestart" | "createRuntime" | "poststart") {
            expect_eq(
                &format!("{kind} state.pid"),
                pid,
                v["pid"].as_i64().unwrap_or(0),
            )?;
        }
    }
    Ok(())
}

fn failing_hook(ctx: &mut Ctx, kind: &str) -> TestResult {
    ctx.config(|c| c["hooks"] = json!({kind: [hook("exit 3")]}))?;
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    let r = ctx.runtime(&["create", "--bundle", &bundle, &ctx.id]);
    if r.code == Some(0) {
        return Err(format!("create succeeded although a {kind} hook failed"));
    }
    // Nothing of the container is left.
    if ctx.runtime(&["state", &ctx.id]).code == Some(0) {
        return Err(format!(
            "container still exists after a failing {kind} hook"
        ));
    }
    Ok(())
}

fn hook_prestart_failure(ctx: &mut Ctx) -> TestResult {
    failing_hook(ctx, "prestart")
}

fn hook_create_runtime_failure(ctx: &mut Ctx) -> TestResult {
    failing_hook(ctx, "createRuntime")
}

fn hook_create_container_failure(ctx: &mut Ctx) -> TestResult {
    failing_hook(ctx, "createContainer")
}

/// A failing startContainer hook stops the container (the spec: generate
/// an error and stop it). The hook runs in the init after `start` may have
/// returned, so what is checked is that the process never keeps running.
fn hook_start_container_failure(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["hooks"] = json!({"startContainer": [hook("exit 3")]}))?;
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    let _ = ctx.runtime(&["start", &ctx.id]);
    wait_status(ctx, "stopped")
        .map_err(|_| "container kept running after a failing startContainer hook".to_string())
}

/// A failing poststart hook is only a warning: start succeeds and the
/// container keeps running.
fn hook_poststart_failure_is_warning(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["hooks"] = json!({"poststart": [hook("exit 3")]}))?;
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    ctx.ok(&["start", &ctx.id])?;
    expect_eq(
        "status after a failing poststart hook",
        "running".to_string(),
        ctx.status(),
    )
}

fn hook_poststop_failure_is_warning(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["hooks"] = json!({"poststop": [hook("exit 3")]}))?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    ctx.ok(&["delete", "--force", &ctx.id])?;
    if ctx.runtime(&["state", &ctx.id]).code == Some(0) {
        return Err("container left after delete with a failing poststop hook".into());
    }
    Ok(())
}
