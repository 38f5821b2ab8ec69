//! `update`: change a live container's resource limits, as runc does — what
//! CRI-O (`update --resources -`), containerd's runc shim and `podman
//! update` call for in-place resizing.
//!
//! The new values are merged into the container's current
//! `linux.resources` (from the spec saved at create): a JSON object from
//! `--resources` field by field, then the flags. The result goes to the
//! cgroup through libcgroups (v1, v2 or systemd), and is saved as the
//! container's spec so that the next `update` or `exec` starts from it.
//!
//! A Wasm container's limits change the same way: the kernel enforces the
//! cgroup's. The guest's own linear-memory cap is fixed when the module is
//! instantiated and does not follow (see docs/wasm.md).

use std::io::Read;

use anyhow::{anyhow, bail, Result};
use libcontainer::container::ContainerStatus;
use libcontainer::oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};

use crate::cli::UpdateArgs;
use crate::state;
use crate::Ctx;

pub fn run(ctx: &Ctx, args: &UpdateArgs) -> Result<i32> {
    let id = &args.container_id;
    if args.l3_cache_schema.is_some() || args.mem_bw_schema.is_some() {
        bail!("--l3-cache-schema/--mem-bw-schema: Intel RDT is not supported by runlet");
    }
    let l = state::load(&ctx.root, id)?;
    match l.container.status() {
        ContainerStatus::Running | ContainerStatus::Created | ContainerStatus::Paused => {}
        _ => bail!("container not running"),
    }
    if l.extra.cgroups_disabled {
        bail!("cannot update container {id}: it has no cgroup (created with --cgroup-manager=disabled)");
    }
    let mut spec = state::load_spec_copy(&ctx.root, id)?;
    let mut linux = spec.linux().clone().unwrap_or_default();
    let current = serde_json::to_value(linux.resources().clone().unwrap_or_default())?;

    let mut merged = current;
    if let Some(path) = &args.resources {
        let (what, text) = if path.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| anyhow!("--resources -: reading standard input: {e}"))?;
            ("standard input".to_string(), s)
        } else {
            let s = std::fs::read_to_string(path)
                .map_err(|e| anyhow!("--resources {}: {e}", path.display()))?;
            (path.display().to_string(), s)
        };
        let given: Value = serde_json::from_str(&text)
            .map_err(|e| anyhow!("--resources {what}: invalid JSON: {e}"))?;
        if !given.is_object() {
            bail!("--resources {what}: must be a JSON object (linux.resources)");
        }
        merge(&mut merged, given);
    }
    merge(&mut merged, from_flags(args)?);
    let mut resources: LinuxResources = serde_path_to_error::deserialize(merged).map_err(|e| {
        anyhow!(
            "linux.resources.{}: {}",
            e.path().to_string().trim_start_matches('.'),
            e.into_inner()
        )
    })?;

    let config = l
        .container
        .spec()
        .map_err(|e| anyhow!("container {id}: {e}"))?;
    let cgroups = crate::cgroups::cgroup_config(config.cgroup_path, l.container.systemd(), id);
    let manager = libcgroups::common::create_cgroup_manager(cgroups.clone())
        .map_err(|e| anyhow!("container {id}: cgroup: {e}"))?;
    let saved = resources.clone();
    crate::cgroups::prepare_resources(&mut resources, l.container.systemd());
    let disable_oom_killer = resources
        .memory()
        .as_ref()
        .and_then(|m| m.disable_oom_killer())
        .unwrap_or(false);
    {
        use libcgroups::common::CgroupManager;
        manager
            .apply(&libcgroups::common::ControllerOpt {
                resources: &resources,
                disable_oom_killer,
                oom_score_adj: None,
                freezer_state: None,
            })
            .map_err(|e| anyhow!("container {id}: updating the cgroup: {e}"))?;
    }
    linux.set_resources(Some(saved));
    spec.set_linux(Some(linux));
    // libcgroups' v1 device controller writes its default allow rules
    // again on every apply: take back the ones runc does not allow.
    crate::cgroups::finish_apply(&cgroups, &spec)?;
    crate::cgroups::apply_oom_killer_setting(&cgroups, &spec)?;
    let dir = state::container_dir(&ctx.root, id);
    state::write_atomic(&dir.join(state::SPEC_COPY), &serde_json::to_vec(&spec)?)?;
    Ok(0)
}

/// Object fields of `new` replace or merge into those of `base`; anything
/// else replaces.
fn merge(base: &mut Value, new: Value) {
    match (base, new) {
        (Value::Object(b), Value::Object(n)) => {
            for (k, v) in n {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, n) => *b = n,
    }
}

/// The flags as a `linux.resources` object.
fn from_flags(a: &UpdateArgs) -> Result<Value> {
    let mut r = json!({});
    let mut set = |section: &str, key: &str, v: Value| {
        r[section][key] = v;
    };
    if let Some(v) = &a.memory {
        set("memory", "limit", json!(ram("--memory", v)?));
    }
    if let Some(v) = &a.memory_reservation {
        set(
            "memory",
            "reservation",
            json!(ram("--memory-reservation", v)?),
        );
    }
    if let Some(v) = &a.memory_swap {
        set("memory", "swap", json!(ram("--memory-swap", v)?));
    }
    if let Some(v) = a.cpu_share {
        set("cpu", "shares", json!(v));
    }
    if let Some(v) = a.cpu_quota {
        set("cpu", "quota", json!(v));
    }
    if let Some(v) = a.cpu_period {
        set("cpu", "period", json!(v));
    }
    if let Some(v) = a.cpu_rt_runtime {
        set("cpu", "realtimeRuntime", json!(v));
    }
    if let Some(v) = a.cpu_rt_period {
        set("cpu", "realtimePeriod", json!(v));
    }
    if let Some(v) = &a.cpuset_cpus {
        set("cpu", "cpus", json!(v));
    }
    if let Some(v) = &a.cpuset_mems {
        set("cpu", "mems", json!(v));
    }
    if let Some(v) = a.pids_limit {
        // runc: 0 and -1 both mean no limit.
        set("pids", "limit", json!(if v <= 0 { -1 } else { v }));
    }
    if let Some(v) = a.blkio_weight {
        if !(10..=1000).contains(&v) {
            bail!("--blkio-weight {v}: must be between 10 and 1000");
        }
        set("blockIO", "weight", json!(v));
    }
    if a.kernel_memory.is_some() || a.kernel_memory_tcp.is_some() {
        crate::logging::warn("--kernel-memory and --kernel-memory-tcp are obsolete and ignored");
    }
    Ok(r)
}

/// A size as runc reads it (docker's RAMInBytes: `1024`, `64m`, `1.5g`,
/// `512MiB`), or -1 for no limit.
fn ram(flag: &str, s: &str) -> Result<i64> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let lower = t.to_ascii_lowercase();
    let body = lower.trim_end_matches('b').trim_end_matches('i');
    let (num, mult) = match body.chars().last() {
        Some('k') => (&body[..body.len() - 1], 1u64 << 10),
        Some('m') => (&body[..body.len() - 1], 1 << 20),
        Some('g') => (&body[..body.len() - 1], 1 << 30),
        Some('t') => (&body[..body.len() - 1], 1 << 40),
        _ => (body, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| anyhow!("{flag} {s:?}: not a size (e.g. 67108864, 64m, 1g, or -1)"))?;
    if n.is_nan() || n < 0.0 {
        bail!("{flag} {s:?}: must not be negative (except -1)");
    }
    let bytes = n * mult as f64;
    if bytes > i64::MAX as f64 {
        bail!("{flag} {s:?}: too large");
    }
    Ok(bytes as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_runc_reads_them() {
        assert_eq!(ram("-m", "1024").ok(), Some(1024));
        assert_eq!(ram("-m", "64m").ok(), Some(64 << 20));
        assert_eq!(ram("-m", "64MiB").ok(), Some(64 << 20));
        assert_eq!(ram("-m", "1.5g").ok(), Some(3 << 29));
        assert_eq!(ram("-m", "-1").ok(), Some(-1));
        assert!(ram("-m", "lots").is_err());
        assert!(ram("-m", "-5").is_err());
    }

    #[test]
    fn merge_replaces_leaves_and_keeps_the_rest() {
        let mut base = json!({"memory": {"limit": 1, "swap": 2}, "pids": {"limit": 5}});
        merge(
            &mut base,
            json!({"memory": {"limit": 9}, "cpu": {"shares": 3}}),
        );
        assert_eq!(
            base,
            json!({"memory": {"limit": 9, "swap": 2}, "pids": {"limit": 5}, "cpu": {"shares": 3}})
        );
    }
}
