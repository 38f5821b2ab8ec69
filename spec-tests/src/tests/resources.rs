//! `linux.cgroupsPath` and `linux.resources`, checked from the host's
//! cgroupfs.

use std::path::Path;

use serde_json::{json, Value};

use super::sleep_args;
use crate::harness::{
    cgroup_dir, expect_eq, host_is_cgroup_v1, host_is_cgroup_v2, skip, Ctx, Test, TestResult,
};
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

/// Reads `v1` (controller, file) on a v1 host, `v2` on a v2 host; skips on
/// anything else (the hybrid's cgroup2 holds no controller runc uses).
fn read_either(path: &str, v1: (&str, &str), v2: &str) -> Result<String, String> {
    if host_is_cgroup_v2() {
        read_cg("", path, v2)
    } else {
        read_cg(v1.0, path, v1.1)
    }
}

fn v1_or_v2() -> Option<TestResult> {
    (!host_is_cgroup_v1() && !host_is_cgroup_v2())
        .then(|| skip("neither a cgroup v1 nor a pure v2 host"))
}

fn cgroups_path(ctx: &mut Ctx) -> TestResult {
    if let Some(s) = v1_or_v2() {
        return s;
    }
    let path = create_in_cgroup(ctx, json!({}))?;
    let pid = ctx.state()?["pid"].as_i64().unwrap_or(0).to_string();
    let controllers: &[&str] = if host_is_cgroup_v2() {
        &[""]
    } else {
        &["pids", "memory", "cpu", "devices", "freezer"]
    };
    for ctl in controllers {
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
    if let Some(s) = v1_or_v2() {
        return s;
    }
    let path = create_in_cgroup(
        ctx,
        json!({"memory": {"limit": 67108864, "reservation": 33554432}}),
    )?;
    expect_eq(
        "memory limit",
        "67108864".to_string(),
        read_either(&path, ("memory", "memory.limit_in_bytes"), "memory.max")?,
    )?;
    expect_eq(
        "memory reservation",
        "33554432".to_string(),
        read_either(
            &path,
            ("memory", "memory.soft_limit_in_bytes"),
            "memory.low",
        )?,
    )
}

fn resources_cpu(ctx: &mut Ctx) -> TestResult {
    if let Some(s) = v1_or_v2() {
        return s;
    }
    let path = create_in_cgroup(
        ctx,
        json!({"cpu": {"shares": 512, "quota": 50000, "period": 100000}}),
    )?;
    if host_is_cgroup_v2() {
        // The spec leaves the conversion of shares to a weight open: runc
        // 1.1 maps 512 linearly to 20, crun (and libcgroups) on a log scale
        // to 59. Either is a faithful translation.
        let weight = read_cg("", &path, "cpu.weight")?;
        if weight != "20" && weight != "59" {
            return Err(format!(
                "cpu.weight for shares 512: {weight} (runc: 20, crun: 59)"
            ));
        }
        return expect_eq(
            "cpu.max",
            "50000 100000".to_string(),
            read_cg("", &path, "cpu.max")?,
        );
    }
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
    if let Some(s) = v1_or_v2() {
        return s;
    }
    let path = create_in_cgroup(ctx, json!({"pids": {"limit": 42}}))?;
    expect_eq(
        "pids.max",
        "42".to_string(),
        read_either(&path, ("pids", "pids.max"), "pids.max")?,
    )
}

fn resources_blkio_weight(ctx: &mut Ctx) -> TestResult {
    if !host_is_cgroup_v2() && !cgroup_dir("blkio", "/").join("blkio.weight").exists() {
        return skip(
            "blkio.weight is absent on this host (no BFQ/CFQ weights in the v1 blkio controller)",
        );
    }
    let path = create_in_cgroup(ctx, json!({"blockIO": {"weight": 300}}))?;
    if !host_is_cgroup_v2() {
        return expect_eq(
            "blkio.weight",
            "300".to_string(),
            read_cg("blkio", &path, "blkio.weight")?,
        );
    }
    // io.bfq.weight takes the weight as is; io.weight gets runc's
    // conversion from [10, 1000] to [1, 10000].
    let dir = cgroup_dir("", &path);
    let Some((file, want)) = [("io.bfq.weight", "300"), ("io.weight", "2930")]
        .into_iter()
        .find(|(f, _)| dir.join(f).exists())
    else {
        return skip("no io.bfq.weight or io.weight in the container's cgroup on this v2 host");
    };
    let got = read_cg("", &path, file)?;
    expect_eq(
        file,
        format!("default {want}"),
        got.lines().next().unwrap_or_default().to_string(),
    )
}

fn resources_hugepages(ctx: &mut Ctx) -> TestResult {
    if !Path::new("/sys/fs/cgroup/hugetlb").exists() && !host_is_cgroup_v2() {
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
        read_either(
            &path,
            ("hugetlb", "hugetlb.2MB.limit_in_bytes"),
            "hugetlb.2MB.max",
        )?,
    )
}
