//! `linux.cgroupsPath` and `linux.resources`, checked from the host's
//! cgroupfs.

use std::path::Path;

use serde_json::{json, Value};

use super::sleep_args;
use crate::harness::{cgroup_dir, expect_eq, host_is_cgroup_v1, skip, Ctx, Test, TestResult};
use crate::t;

pub fn all() -> Vec<Test> {
    vec![
        t!("linux", cgroups_path),
        t!("resources", resources_memory),
        t!("resources", resources_cpu),
        t!("resources", resources_pids),
        t!("resources", resources_blkio_weight),
        t!("resources", resources_hugepages),
    ]
}

/// Creates the container with a known cgroups path; returns the path.
fn create_in_cgroup(ctx: &Ctx, resources: Value) -> Result<String, String> {
    let path = format!("/{}-cg", ctx.id);
    ctx.config(|c| {
        c["linux"]["cgroupsPath"] = Value::from(path.clone());
        if let Some(obj) = resources.as_object() {
            for (k, v) in obj {
                c["linux"]["resources"][k] = v.clone();
            }
        }
    })?;
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    Ok(path)
}

fn read_cg(controller: &str, path: &str, file: &str) -> Result<String, String> {
    let p = cgroup_dir(controller, path).join(file);
    std::fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{}: {e}", p.display()))
}

fn cgroups_path(ctx: &mut Ctx) -> TestResult {
    if !host_is_cgroup_v1() {
        return skip("checks v1 controller directories; this host is not cgroup v1");
    }
    let path = create_in_cgroup(ctx, json!({}))?;
    let pid = ctx.state()?["pid"].as_i64().unwrap_or(0).to_string();
    for ctl in ["pids", "memory", "cpu", "devices", "freezer"] {
        let procs = read_cg(ctl, &path, "cgroup.procs")?;
        if !procs.lines().any(|l| l == pid) {
            return Err(format!("init {pid} not in {ctl} cgroup {path}: {procs:?}"));
        }
    }
    ctx.ok(&["delete", "--force", &ctx.id])?;
    if cgroup_dir("pids", &path).exists() {
        return Err(format!("cgroup {path} left after delete"));
    }
    Ok(())
}

fn resources_memory(ctx: &mut Ctx) -> TestResult {
    if !host_is_cgroup_v1() {
        return skip("this host is not cgroup v1");
    }
    let path = create_in_cgroup(
        ctx,
        json!({"memory": {"limit": 67108864, "reservation": 33554432}}),
    )?;
    expect_eq(
        "memory.limit_in_bytes",
        "67108864".to_string(),
        read_cg("memory", &path, "memory.limit_in_bytes")?,
    )?;
    expect_eq(
        "memory.soft_limit_in_bytes",
        "33554432".to_string(),
        read_cg("memory", &path, "memory.soft_limit_in_bytes")?,
    )
}

fn resources_cpu(ctx: &mut Ctx) -> TestResult {
    if !host_is_cgroup_v1() {
        return skip("this host is not cgroup v1");
    }
    let path = create_in_cgroup(
        ctx,
        json!({"cpu": {"shares": 512, "quota": 50000, "period": 100000}}),
    )?;
    expect_eq(
        "cpu.shares",
        "512".to_string(),
        read_cg("cpu", &path, "cpu.shares")?,
    )?;
    expect_eq(
        "cpu.cfs_quota_us",
        "50000".to_string(),
        read_cg("cpu", &path, "cpu.cfs_quota_us")?,
    )?;
    expect_eq(
        "cpu.cfs_period_us",
        "100000".to_string(),
        read_cg("cpu", &path, "cpu.cfs_period_us")?,
    )
}

fn resources_pids(ctx: &mut Ctx) -> TestResult {
    if !host_is_cgroup_v1() {
        return skip("this host is not cgroup v1");
    }
    let path = create_in_cgroup(ctx, json!({"pids": {"limit": 42}}))?;
    expect_eq(
        "pids.max",
        "42".to_string(),
        read_cg("pids", &path, "pids.max")?,
    )
}

fn resources_blkio_weight(ctx: &mut Ctx) -> TestResult {
    if !cgroup_dir("blkio", "/").join("blkio.weight").exists() {
        return skip(
            "blkio.weight is absent on this host (no BFQ/CFQ weights in the v1 blkio controller)",
        );
    }
    let path = create_in_cgroup(ctx, json!({"blockIO": {"weight": 300}}))?;
    expect_eq(
        "blkio.weight",
        "300".to_string(),
        read_cg("blkio", &path, "blkio.weight")?,
    )
}

fn resources_hugepages(ctx: &mut Ctx) -> TestResult {
    if !Path::new("/sys/fs/cgroup/hugetlb").exists() {
        return skip(
            "no v1 hugetlb hierarchy on this host (hugetlb is only in the hybrid cgroup2 mount)",
        );
    }
    let path = create_in_cgroup(
        ctx,
        json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}),
    )?;
    expect_eq(
        "hugetlb limit",
        "4194304".to_string(),
        read_cg("hugetlb", &path, "hugetlb.2MB.limit_in_bytes")?,
    )
}
