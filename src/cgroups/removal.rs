//! Removing a container's processes and cgroup on `delete` (and when
//! `create` fails), touching only the container (see the module doc of
//! `cgroups`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use libcgroups::common::CgroupConfig;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::paths::{
    cgroup_in, depth_first, hierarchies, hierarchy_dirs, is_cgroupfs, own_cgroups, pids_in,
};
use super::placement::Ownership;

/// A container whose processes and cgroup are to go.
pub struct Target<'a> {
    pub id: &'a str,
    pub config: CgroupConfig,
    /// The init, when it is known to be the container's (start time
    /// checked) and has not been reaped.
    pub init: Option<Pid>,
    /// The container has a pid namespace of its own.
    pub own_pidns: bool,
    pub ownership: &'a Ownership,
}

/// Kills the container's processes and removes the cgroup runlet made for
/// it. Never signals a process outside the container: with a pid namespace
/// of its own, killing its init ends every process in it; without one,
/// the whole cgroup is killed only when runlet made that cgroup.
pub fn remove(t: Target) -> Result<()> {
    let id = t.id;
    let leaves = if t.config.systemd_cgroup {
        None
    } else {
        hierarchy_dirs(&t.config.cgroup_path)
    };
    // The cgroup tree walked to kill its processes, when it was: the same
    // tree is removed next (an owned cgroup's leaves are all runlet's own),
    // so it is not walked twice.
    let mut walked = None;
    match t.init {
        Some(init) if t.own_pidns => kill_pidns_init(id, init),
        _ if t.ownership.owns => match &leaves {
            Some(leaves) => {
                let mut all = Vec::new();
                for d in leaves.iter().filter(|d| d.exists()) {
                    depth_first(d, &mut all);
                }
                kill_until_empty(id, || Some(all.iter().flat_map(|d| pids_in(d)).collect()));
                walked = Some(all);
            }
            None => {
                if let Some(init) = t.init {
                    kill_pidns_init(id, init);
                }
            }
        },
        Some(init) => kill_pidns_init(id, init),
        None => {}
    }
    match leaves {
        // Only what runlet made: a shared or pre-existing cgroup stays.
        Some(leaves) => {
            let created = &t.ownership.created;
            match walked {
                // Walked from every leaf: removed only if runlet made each.
                Some(all) if leaves.iter().all(|l| created.contains(l)) => {
                    remove_tree(id, &all, &leaves, created)
                }
                _ => remove_dirs(id, &leaves, created),
            }
            // Placement parents go once the last container below them has.
            for d in &t.ownership.prune {
                if d.exists() && is_cgroupfs(d) {
                    let _ = std::fs::remove_dir(d);
                }
            }
            Ok(())
        }
        None if t.ownership.owns => remove_with_libcgroups(t.config, id),
        None => Ok(()),
    }
}

/// SIGKILLs `init` and waits until it is gone or a zombie. When it is the
/// init of a pid namespace the kernel kills every other process in that
/// namespace first.
pub(super) fn kill_pidns_init(id: &str, init: Pid) {
    use nix::sys::wait::{waitpid, WaitPidFlag};
    let _ = kill(init, Signal::SIGKILL);
    for _ in 0..400 {
        // Our own child (a foreground run's init) is reaped here.
        let _ = waitpid(init, Some(WaitPidFlag::WNOHANG));
        if !crate::container::process::is_live(init.as_raw()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    tracing::warn!(%id, pid = init.as_raw(), "container init survived SIGKILL");
}

/// Removes each container cgroup directory runlet made (sub-cgroups first)
/// and then the parents made for it. A cgroup that stays busy is left, with
/// a warning; a parent still used by another container stays too.
pub(super) fn remove_dirs(id: &str, leaves: &[PathBuf], created: &[PathBuf]) {
    let mut all = Vec::new();
    for d in leaves.iter().filter(|d| created.contains(d) && d.exists()) {
        depth_first(d, &mut all);
    }
    remove_tree(id, &all, leaves, created);
}

/// `remove_dirs` on a tree already walked: `all` holds the sub-cgroups of
/// the leaves runlet made, deepest first.
fn remove_tree(id: &str, all: &[PathBuf], leaves: &[PathBuf], created: &[PathBuf]) {
    for d in all.iter().filter(|d| is_cgroupfs(d)) {
        for attempt in 0..40 {
            match std::fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) if attempt == 39 => {
                    tracing::warn!(%id, "cgroup {} left in place: {e}", d.display());
                    crate::logging::warn(format_args!(
                        "container {id}: cgroup {} is busy and was left in place: {e}",
                        d.display()
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
    for d in created.iter().rev() {
        if !leaves.contains(d) && d.exists() && is_cgroupfs(d) {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// SIGKILLs the processes `pids` lists until it lists none (or cannot
/// tell), reaping those that are our own children (a foreground run's init).
pub(super) fn kill_until_empty(id: &str, pids: impl Fn() -> Option<Vec<i32>>) {
    use nix::sys::wait::{waitpid, WaitPidFlag};
    for _ in 0..200 {
        let left = match pids() {
            Some(p) if !p.is_empty() => p,
            _ => return,
        };
        for pid in left.into_iter().map(Pid::from_raw) {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    tracing::warn!(%id, "processes of the container survived SIGKILL");
}

pub(super) fn remove_with_libcgroups(config: CgroupConfig, id: &str) -> Result<()> {
    use libcgroups::common::CgroupManager;
    let manager = match libcgroups::common::create_cgroup_manager(config) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(%id, "cgroup manager: {e}");
            return Ok(());
        }
    };
    // A systemd scope holds the container's processes only.
    kill_until_empty(id, || {
        manager
            .get_all_pids()
            .ok()
            .map(|pids| pids.into_iter().map(|p| p.as_raw()).collect())
    });
    manager
        .remove()
        .map_err(|e| anyhow::anyhow!("container {id}: removing cgroup: {e}"))
}

/// `--cgroup-manager=disabled`, as crun has it: the container's processes
/// stay in the caller's cgroups and no cgroup is left for it.
/// libcontainer always places a new process in a cgroup of its own (and
/// applies limits there), so runlet lets it, then moves every process out
/// of that transient cgroup into the cgroup of the same hierarchy that
/// runlet itself (the caller's child) is in, and removes what was made.
/// Limits in the config are not applied, as with crun.
pub fn evict_to_caller(config: &CgroupConfig, made: &Ownership) -> Result<()> {
    let own = own_cgroups().map_err(|e| anyhow::anyhow!("/proc/self/cgroup: {e}"))?;
    for h in hierarchies(&config.cgroup_path).unwrap_or_default() {
        if !h.dir.exists() {
            continue;
        }
        let Some(target) = cgroup_in(&own, &h.controllers) else {
            continue;
        };
        let procs = h
            .mountpoint
            .join(target.strip_prefix("/").unwrap_or(&target))
            .join("cgroup.procs");
        let mut all = Vec::new();
        depth_first(&h.dir, &mut all);
        for d in &all {
            for pid in pids_in(d) {
                std::fs::write(&procs, pid.to_string())
                    .map_err(|e| anyhow::anyhow!("moving {pid} to {}: {e}", procs.display()))?;
            }
        }
    }
    remove_dirs(
        "transient",
        &hierarchy_dirs(&config.cgroup_path).unwrap_or_default(),
        &made.created,
    );
    for d in &made.prune {
        if d.exists() && is_cgroupfs(d) {
            let _ = std::fs::remove_dir(d);
        }
    }
    Ok(())
}
