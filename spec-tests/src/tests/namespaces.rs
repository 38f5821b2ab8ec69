//! `linux.namespaces`: each type, user namespace mappings, time
//! offsets, joining a namespace by path.

use std::path::Path;

use serde_json::{json, Value};

use crate::harness::{expect_eq, skip, Ctx, Test, TestResult};
use crate::t;

pub fn all() -> Vec<Test> {
    vec![
        t!("namespaces", ns_pid),
        t!("namespaces", ns_net),
        t!("namespaces", ns_ipc_uts_mount),
        t!("namespaces", ns_cgroup),
        t!("namespaces", ns_user_mappings),
        t!("namespaces", ns_time),
        t!("namespaces", ns_join_by_path),
    ]
}

fn host_ns(ns: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{ns}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn ns_pid(ctx: &mut Ctx) -> TestResult {
    let r = ctx.report()?;
    r.expect("pid", "1")?;
    if r.get("ns.pid") == host_ns("pid") {
        return Err("pid namespace is the host's".into());
    }
    Ok(())
}

fn ns_net(ctx: &mut Ctx) -> TestResult {
    ctx.args(&["/bin/spec-helper", "read", "/proc/net/dev"])?;
    let out = ctx.run_output().stdout;
    let ifaces: Vec<&str> = out
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(str::trim))
        .collect();
    expect_eq("interfaces in a new network namespace", vec!["lo"], ifaces)
}

fn ns_ipc_uts_mount(ctx: &mut Ctx) -> TestResult {
    let r = ctx.report()?;
    for ns in ["ipc", "uts", "mnt"] {
        if r.get(&format!("ns.{ns}")) == host_ns(ns) {
            return Err(format!("{ns} namespace is the host's"));
        }
    }
    Ok(())
}

fn ns_cgroup(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| {
        if let Some(a) = c["linux"]["namespaces"].as_array_mut() {
            a.push(json!({"type": "cgroup"}))
        }
    })?;
    let r = ctx.report()?;
    if r.get("ns.cgroup") == host_ns("cgroup") {
        return Err("cgroup namespace is the host's".into());
    }
    // Inside its own cgroup namespace the container sees itself at the root.
    for line in r.get("cgroup").split(';').filter(|l| !l.is_empty()) {
        if !line.ends_with(":/") {
            return Err(format!("cgroup path not at the namespace root: {line}"));
        }
    }
    Ok(())
}

fn ns_user_mappings(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| {
        if let Some(a) = c["linux"]["namespaces"].as_array_mut() {
            a.push(json!({"type": "user"}))
        }
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        // A user namespace may not mount cgroup v1 hierarchies.
        if let Some(m) = c["mounts"].as_array_mut() {
            m.retain(|m| m["type"] != "cgroup");
        }
    })?;
    let r = ctx.report()?;
    r.expect("uid_map", "0 100000 65536")?;
    r.expect("gid_map", "0 100000 65536")?;
    r.expect("uid", "0")
}

fn ns_time(ctx: &mut Ctx) -> TestResult {
    if !Path::new("/proc/self/ns/time").exists() {
        return skip("the kernel has no time namespaces");
    }
    ctx.config(|c| {
        if let Some(a) = c["linux"]["namespaces"].as_array_mut() {
            a.push(json!({"type": "time"}))
        }
    })?;
    let r = ctx.report()?;
    if r.get("ns.time").is_empty() || r.get("ns.time") == host_ns("time") {
        return Err(format!(
            "time namespace is the host's: {}",
            r.get("ns.time")
        ));
    }
    Ok(())
}

fn ns_join_by_path(ctx: &mut Ctx) -> TestResult {
    // A network namespace kept alive by a bind mount, as `ip netns` does.
    let file = ctx.dir.join("netns");
    std::fs::write(&file, "").map_err(|e| e.to_string())?;
    let made = std::process::Command::new("unshare")
        .arg(format!("--net={}", file.display()))
        .arg("true")
        .status()
        .map_err(|e| format!("unshare: {e}"))?;
    if !made.success() {
        return skip("cannot create a persistent network namespace with unshare(1)");
    }
    let inode = std::fs::metadata(&file)
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap_or(0);
    ctx.config(|c| {
        if let Some(a) = c["linux"]["namespaces"].as_array_mut() {
            for ns in a.iter_mut() {
                if ns["type"] == "network" {
                    ns["path"] = Value::from(file.to_string_lossy().into_owned());
                }
            }
        }
    })?;
    let result = ctx
        .report()
        .and_then(|r| r.expect("ns.net", &format!("net:[{inode}]")));
    let _ = std::process::Command::new("umount").arg(&file).status();
    result
}
