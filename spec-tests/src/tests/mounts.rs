//! `mounts`: bind, tmpfs options, proc/sys/dev, mqueue/devpts, a
//! read-only cgroup mount, propagation of bind mounts.

use serde_json::{json, Value};

use super::{mount_line, mountinfo};
use crate::harness::{expect_eq, Ctx, Report, Test, TestResult};
use crate::t;

pub fn all() -> Vec<Test> {
    vec![
        t!("mounts", mount_bind),
        t!("mounts", mount_tmpfs_options),
        t!("mounts", mount_proc_sys_dev),
        t!("mounts", mount_mqueue_devpts),
        t!("mounts", mount_cgroup_ro),
        t!("mounts", mount_bind_propagation),
    ]
}

fn add_mount(ctx: &Ctx, m: Value) -> TestResult {
    ctx.config(|c| {
        if let Some(a) = c["mounts"].as_array_mut() {
            a.push(m)
        }
    })
}

fn mount_bind(ctx: &mut Ctx) -> TestResult {
    let src = ctx.dir.join("host-data");
    std::fs::create_dir_all(&src).map_err(|e| e.to_string())?;
    std::fs::write(src.join("file"), "from the host").map_err(|e| e.to_string())?;
    add_mount(
        ctx,
        json!({"destination": "/mnt", "type": "bind", "source": src, "options": ["rbind", "ro"]}),
    )?;
    ctx.args(&["/bin/spec-helper", "read", "/mnt/file"])?;
    expect_eq(
        "read through the bind mount",
        "from the host",
        ctx.run_output().stdout.as_str(),
    )?;
    ctx.args(&["/bin/spec-helper", "write", "/mnt/file"])?;
    expect_eq(
        "write to a ro bind mount",
        "EROFS",
        ctx.run_output().stdout.trim(),
    )
}

fn mount_tmpfs_options(ctx: &mut Ctx) -> TestResult {
    add_mount(
        ctx,
        json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
        "options": ["ro", "nosuid", "nodev", "noexec", "size=1m"]}),
    )?;
    let info = mountinfo(ctx)?;
    let line = mount_line(&info, "/mnt").ok_or_else(|| format!("no /mnt in mountinfo:\n{info}"))?;
    let opts = line.split(' ').nth(5).unwrap_or_default();
    for want in ["ro", "nosuid", "nodev", "noexec"] {
        if !opts.split(',').any(|o| o == want) {
            return Err(format!("/mnt options: expected {want}, saw {opts:?}"));
        }
    }
    if !line.contains(" - tmpfs ") {
        return Err(format!("/mnt is not tmpfs: {line}"));
    }
    Ok(())
}

fn mount_proc_sys_dev(ctx: &mut Ctx) -> TestResult {
    let info = mountinfo(ctx)?;
    for (dest, fstype) in [
        ("/proc", "proc"),
        ("/sys", "sysfs"),
        ("/dev", "tmpfs"),
        ("/dev/shm", "tmpfs"),
    ] {
        let line = mount_line(&info, dest).ok_or_else(|| format!("{dest} not mounted:\n{info}"))?;
        if !line.contains(&format!(" - {fstype} ")) {
            return Err(format!("{dest}: expected {fstype}: {line}"));
        }
    }
    // The default devices exist.
    for dev in [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
    ] {
        ctx.args(&["/bin/spec-helper", "stat", dev])?;
        let r = Report::parse(&ctx.run_output().stdout);
        r.expect("type", "char")
            .map_err(|e| format!("{dev}: {e}"))?;
    }
    Ok(())
}

fn mount_mqueue_devpts(ctx: &mut Ctx) -> TestResult {
    let info = mountinfo(ctx)?;
    for (dest, fstype) in [("/dev/mqueue", "mqueue"), ("/dev/pts", "devpts")] {
        let line = mount_line(&info, dest).ok_or_else(|| format!("{dest} not mounted"))?;
        if !line.contains(&format!(" - {fstype} ")) {
            return Err(format!("{dest}: expected {fstype}: {line}"));
        }
    }
    Ok(())
}

fn mount_cgroup_ro(ctx: &mut Ctx) -> TestResult {
    let info = mountinfo(ctx)?;
    let cg: Vec<&str> = info
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|d| d.starts_with("/sys/fs/cgroup"))
        })
        .collect();
    if cg.is_empty() {
        return Err(format!("no cgroup mounts:\n{info}"));
    }
    ctx.args(&[
        "/bin/spec-helper",
        "write",
        "/sys/fs/cgroup/pids/spec-escape",
    ])?;
    let w = ctx.run_output().stdout;
    if w.trim() == "ok" {
        return Err("created a cgroup through the read-only cgroup mount".into());
    }
    Ok(())
}

fn mount_bind_propagation(ctx: &mut Ctx) -> TestResult {
    let src = ctx.dir.join("prop");
    std::fs::create_dir_all(&src).map_err(|e| e.to_string())?;
    add_mount(
        ctx,
        json!({"destination": "/mnt", "type": "bind", "source": src, "options": ["rbind", "rshared"]}),
    )?;
    let info = mountinfo(ctx)?;
    let line = mount_line(&info, "/mnt").ok_or("no /mnt")?;
    if !line.contains("shared:") {
        return Err(format!("/mnt with rshared is not shared: {line}"));
    }
    Ok(())
}
