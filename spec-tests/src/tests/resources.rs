//! `linux.cgroupsPath` and `linux.resources`, checked from the host's
//! cgroupfs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{sleep_args, wait_status};
use crate::harness::{
    cgroup_dir, cgroups_path as test_cgroup, expect_eq, host_is_cgroup_v1, host_is_cgroup_v2,
    nested_cgroups_path, skip, systemd, Ctx, Test, TestResult,
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
        t!("resources", resources_memory_swap),
        t!("resources", resources_cpuset),
        t!("resources", resources_unified),
        t!("resources", resources_io_throttle),
        t!("resources", resources_nested_path),
        t!("resources", resources_oom_event),
        t!("resources", resources_systemd_scope),
    ]
}

/// Creates the container with a known cgroups path; returns the path.
fn create_in_cgroup(ctx: &Ctx, resources: Value) -> Result<String, String> {
    create_at(ctx, test_cgroup(&format!("{}-cg", ctx.id)), resources)
}

/// Creates the container in cgroup (config path, path under the root).
fn create_at(ctx: &Ctx, cgroup: (String, String), resources: Value) -> Result<String, String> {
    let (config_path, path) = cgroup;
    ctx.config(|c| {
        c["linux"]["cgroupsPath"] = Value::from(config_path);
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

fn resources_memory_swap(ctx: &mut Ctx) -> TestResult {
    if let Some(s) = v1_or_v2() {
        return s;
    }
    if host_is_cgroup_v1()
        && !cgroup_dir("memory", "/")
            .join("memory.memsw.limit_in_bytes")
            .exists()
    {
        return skip("no memory.memsw files on this v1 host (swap accounting is off)");
    }
    // The spec's swap is memory plus swap; v2's memory.swap.max is swap only.
    let path = create_in_cgroup(
        ctx,
        json!({"memory": {"limit": 67108864, "swap": 100663296}}),
    )?;
    if host_is_cgroup_v2() {
        expect_eq(
            "memory.swap.max",
            "33554432".to_string(),
            read_cg("", &path, "memory.swap.max")?,
        )
    } else {
        expect_eq(
            "memory.memsw.limit_in_bytes",
            "100663296".to_string(),
            read_cg("memory", &path, "memory.memsw.limit_in_bytes")?,
        )
    }
}

fn resources_cpuset(ctx: &mut Ctx) -> TestResult {
    if let Some(s) = v1_or_v2() {
        return s;
    }
    let path = create_in_cgroup(ctx, json!({"cpu": {"cpus": "0", "mems": "0"}}))?;
    for file in ["cpuset.cpus", "cpuset.mems"] {
        expect_eq(
            file,
            "0".to_string(),
            read_either(&path, ("cpuset", file), file)?,
        )?;
    }
    Ok(())
}

/// `unified` keys are written as given (or, with systemd, as the unit
/// properties they stand for).
fn resources_unified(ctx: &mut Ctx) -> TestResult {
    if !host_is_cgroup_v2() {
        return skip("linux.resources.unified needs a cgroup v2 host");
    }
    let path = create_in_cgroup(
        ctx,
        json!({"unified": {"memory.high": "50331648", "pids.max": "17"}}),
    )?;
    expect_eq(
        "memory.high",
        "50331648".to_string(),
        read_cg("", &path, "memory.high")?,
    )?;
    expect_eq(
        "pids.max",
        "17".to_string(),
        read_cg("", &path, "pids.max")?,
    )
}

/// A real block device's "major:minor" (not a loop, RAM or mapper device).
fn block_device() -> Option<(u64, u64)> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !["loop", "ram", "zram", "nbd", "dm-"]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .collect();
    names.sort();
    let dev = std::fs::read_to_string(format!("/sys/block/{}/dev", names.first()?)).ok()?;
    let (major, minor) = dev.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn resources_io_throttle(ctx: &mut Ctx) -> TestResult {
    if let Some(s) = v1_or_v2() {
        return s;
    }
    let Some((major, minor)) = block_device() else {
        return skip("no block device on this machine to throttle");
    };
    let path = create_in_cgroup(
        ctx,
        json!({"blockIO": {
            "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
            "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}]
        }}),
    )?;
    let dev = format!("{major}:{minor}");
    if host_is_cgroup_v2() {
        let max = read_cg("", &path, "io.max")?;
        let line = max.lines().find(|l| l.starts_with(&format!("{dev} ")));
        return expect_eq(
            "io.max",
            Some(format!("{dev} rbps=1048576 wbps=max riops=max wiops=100")),
            line.map(String::from),
        );
    }
    expect_eq(
        "blkio.throttle.read_bps_device",
        format!("{dev} 1048576"),
        read_cg("blkio", &path, "blkio.throttle.read_bps_device")?,
    )?;
    expect_eq(
        "blkio.throttle.write_iops_device",
        format!("{dev} 100"),
        read_cg("blkio", &path, "blkio.throttle.write_iops_device")?,
    )
}

/// A cgroups path two levels below the root (a slice inside a slice with
/// systemd): the init lands there and `delete` removes the leaf.
fn resources_nested_path(ctx: &mut Ctx) -> TestResult {
    if let Some(s) = v1_or_v2() {
        return s;
    }
    let cgroup = nested_cgroups_path(&ctx.id);
    let path = create_at(ctx, cgroup, json!({"pids": {"limit": 50}}))?;
    let pid = ctx.state()?["pid"].as_i64().unwrap_or(0).to_string();
    let result = (|| {
        let procs = read_cg("pids", &path, "cgroup.procs")?;
        if !procs.lines().any(|l| l == pid) {
            return Err(format!("init {pid} not in cgroup {path}: {procs:?}"));
        }
        expect_eq(
            "pids.max",
            "50".to_string(),
            read_cg("pids", &path, "pids.max")?,
        )?;
        ctx.ok(&["delete", "--force", &ctx.id])?;
        if cgroup_dir("pids", &path).exists() {
            return Err(format!("cgroup {path} left after delete"));
        }
        Ok(())
    })();
    // The intermediate levels are the caller's (runc leaves them too).
    if !systemd() {
        let _ = ctx.runtime(&["delete", "--force", &ctx.id]);
        let mid = Path::new(&path)
            .parent()
            .map(|p| p.to_string_lossy().into_owned());
        for ctl in [
            "",
            "pids",
            "memory",
            "cpu",
            "cpuset",
            "devices",
            "freezer",
            "blkio",
            "hugetlb",
            "net_cls",
            "perf_event",
        ] {
            if let Some(mid) = &mid {
                let _ = std::fs::remove_dir(cgroup_dir(ctl, mid));
            }
        }
    }
    result
}

/// The container's process is OOM-killed under its memory limit; the
/// `events` stream reports it (`{"type":"oom"}`) as runc's does.
fn resources_oom_event(ctx: &mut Ctx) -> TestResult {
    if let Some(s) = v1_or_v2() {
        return s;
    }
    let mut memory = json!({"limit": 33554432});
    if host_is_cgroup_v2()
        || cgroup_dir("memory", "/")
            .join("memory.memsw.limit_in_bytes")
            .exists()
    {
        // No swap to escape to.
        memory["swap"] = json!(33554432);
    }
    let (config_path, _) = test_cgroup(&format!("{}-cg", ctx.id));
    ctx.config(|c| {
        c["linux"]["cgroupsPath"] = Value::from(config_path);
        c["linux"]["resources"]["memory"] = memory;
    })?;
    ctx.args(&["/bin/spec-helper", "alloc", "512"])?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    let mut events = ctx.spawn_runtime(&["events", "--interval", "1s", &ctx.id])?;
    let stdout = events.stdout.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Some(out) = stdout {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        }
    });
    // The first stats line says the stream is up before the workload starts.
    let first = rx.recv_timeout(Duration::from_secs(60));
    let result = (|| {
        first.map_err(|_| "events printed nothing".to_string())?;
        ctx.ok(&["start", &ctx.id])?;
        wait_status(ctx, "stopped")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    let v: Value = serde_json::from_str(&line).unwrap_or_default();
                    if v["type"] == "oom" {
                        return expect_eq("oom event id", json!(ctx.id), v["id"].clone());
                    }
                    seen.push(v["type"].as_str().unwrap_or("?").to_string());
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => break,
            }
        }
        Err(format!("no oom event; saw {seen:?}"))
    })();
    let _ = events.kill();
    let _ = events.wait();
    result
}

/// With the systemd driver the container is a transient scope whose unit
/// properties carry the limits (as runc sets them), and `delete` stops it.
fn resources_systemd_scope(ctx: &mut Ctx) -> TestResult {
    if !systemd() {
        return skip("only with --systemd-cgroup (systemd as PID 1: scripts/vm-test)");
    }
    let path = create_in_cgroup(
        ctx,
        json!({"memory": {"limit": 67108864}, "pids": {"limit": 42}, "cpu": {"shares": 512}}),
    )?;
    let unit = Path::new(&path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let show = |props: &str| -> Result<String, String> {
        let out = std::process::Command::new("systemctl")
            .args(["show", "--property", props, &unit])
            .output()
            .map_err(|e| format!("systemctl: {e}"))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let props = show("ActiveState,MemoryMax,TasksMax,CPUWeight,Delegate")?;
    for want in [
        "ActiveState=active",
        "MemoryMax=67108864",
        "TasksMax=42",
        "Delegate=yes",
    ] {
        if !props.lines().any(|l| l == want) {
            return Err(format!("{unit}: no {want} in\n{props}"));
        }
    }
    if !props
        .lines()
        .any(|l| l == "CPUWeight=20" || l == "CPUWeight=59")
    {
        return Err(format!(
            "{unit}: CPUWeight for shares 512 is neither 20 (runc) nor 59 (crun):\n{props}"
        ));
    }
    ctx.ok(&["delete", "--force", &ctx.id])?;
    // Stopping a scope is a job systemd finishes on its own time; then the
    // unit is unloaded (systemctl shows a unit it cannot find as not-found).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let load = show("LoadState,ActiveState")?;
        if load.contains("LoadState=not-found") {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("{unit} still there after delete:\n{load}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if cgroup_dir("", &path).exists() {
        return Err(format!("cgroup {path} left after delete"));
    }
    Ok(())
}
