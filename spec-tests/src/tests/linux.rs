//! `linux`: devices, sysctl, maskedPaths, readonlyPaths,
//! rootfsPropagation, personality.

use std::path::Path;

use serde_json::json;

use super::{mount_line, mountinfo};
use crate::harness::{expect_eq, Ctx, Report, Test, TestResult};
use crate::t;

pub fn all() -> Vec<Test> {
    vec![
        t!("linux", devices),
        t!("linux", sysctl),
        t!("linux", masked_paths),
        t!("linux", readonly_paths),
        t!("linux", rootfs_propagation),
        t!("linux", personality),
    ]
}

fn devices(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| {
        c["linux"]["devices"] = json!([{"path": "/dev/specnull", "type": "c", "major": 1, "minor": 3, "fileMode": 438, "uid": 0, "gid": 0}]);
        if let Some(d) = c["linux"]["resources"]["devices"].as_array_mut() {
            d.push(json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}));
        }
    })?;
    ctx.args(&["/bin/spec-helper", "stat", "/dev/specnull"])?;
    let r = Report::parse(&ctx.run_output().stdout);
    r.expect("type", "char")?;
    r.expect("dev", "1:3")?;
    r.expect("mode", "0666")?;
    ctx.args(&["/bin/spec-helper", "write", "/dev/specnull"])?;
    expect_eq(
        "write to the allowed device",
        "ok",
        ctx.run_output().stdout.trim(),
    )
}

fn sysctl(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| {
        c["linux"]["sysctl"] = json!({"kernel.shm_rmid_forced": "1", "net.ipv4.ip_forward": "1"})
    })?;
    ctx.args(&[
        "/bin/spec-helper",
        "read",
        "/proc/sys/kernel/shm_rmid_forced",
    ])?;
    expect_eq(
        "kernel.shm_rmid_forced",
        "1",
        ctx.run_output().stdout.trim(),
    )?;
    ctx.args(&["/bin/spec-helper", "read", "/proc/sys/net/ipv4/ip_forward"])?;
    expect_eq("net.ipv4.ip_forward", "1", ctx.run_output().stdout.trim())
}

fn masked_paths(ctx: &mut Ctx) -> TestResult {
    // Files in maskedPaths that exist on this kernel (kcore and sched_debug
    // do not everywhere): /proc/timer_list and /proc/keys.
    ctx.args(&["/bin/spec-helper", "stat", "/proc/timer_list"])?;
    let r = Report::parse(&ctx.run_output().stdout);
    r.expect("type", "char")?;
    r.expect("dev", "1:3")?;
    ctx.args(&["/bin/spec-helper", "read", "/proc/keys"])?;
    expect_eq("masked /proc/keys", "", ctx.run_output().stdout.as_str())?;
    let info = mountinfo(ctx)?;
    let line = mount_line(&info, "/sys/firmware")
        .ok_or("masked directory /sys/firmware not mounted over")?;
    if !line.contains(" - tmpfs ")
        || !line
            .split(' ')
            .nth(5)
            .unwrap_or("")
            .split(',')
            .any(|o| o == "ro")
    {
        return Err(format!("masked directory is not a read-only tmpfs: {line}"));
    }
    Ok(())
}

fn readonly_paths(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["root"]["readonly"] = false.into())?;
    ctx.args(&[
        "/bin/spec-helper",
        "write",
        "/proc/sys/kernel/shm_rmid_forced",
    ])?;
    expect_eq(
        "write under readonly /proc/sys",
        "EROFS",
        ctx.run_output().stdout.trim(),
    )?;
    let info = mountinfo(ctx)?;
    for path in ["/proc/fs", "/proc/irq", "/proc/bus"] {
        if !Path::new(path).exists() {
            continue;
        }
        let line = mount_line(&info, path)
            .ok_or_else(|| format!("{path} is not a read-only mount:\n{info}"))?;
        if !line
            .split(' ')
            .nth(5)
            .unwrap_or("")
            .split(',')
            .any(|o| o == "ro")
        {
            return Err(format!("{path} is not mounted read-only: {line}"));
        }
    }
    Ok(())
}

fn rootfs_propagation(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["linux"]["rootfsPropagation"] = "shared".into())?;
    let info = mountinfo(ctx)?;
    let line = mount_line(&info, "/").ok_or("no / in mountinfo")?;
    if !line.contains("shared:") {
        return Err(format!("rootfsPropagation shared: / is not shared: {line}"));
    }
    ctx.config(|c| c["linux"]["rootfsPropagation"] = "private".into())?;
    let info = mountinfo(ctx)?;
    let line = mount_line(&info, "/").ok_or("no / in mountinfo")?;
    if line.contains("shared:") || line.contains("master:") {
        return Err(format!("rootfsPropagation private: / propagates: {line}"));
    }
    Ok(())
}

fn personality(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["linux"]["personality"] = json!({"domain": "LINUX32"}))?;
    let r = ctx.report()?;
    r.expect("machine", "i686")?;
    r.expect("personality", "0x8")
}
