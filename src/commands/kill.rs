//! `kill`: send a signal to a container's init (or, with -a, to all of it).
//!
//! Done here rather than with libcontainer's `Container::kill`, which marks
//! the container `stopped` in state.json after sending *any* signal: a
//! container sent SIGUSR1 (or a SIGTERM it handles) went on running while
//! its state said stopped, and a `delete` racing the kill could find the
//! state file rewritten under it. runlet only signals; the status is read
//! from the process itself whenever the state is loaded, as runc does.

use anyhow::{bail, Result};
use libcontainer::container::ContainerStatus;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::cli::KillArgs;
use crate::state;
use crate::Ctx;

/// Parses TERM, SIGTERM, sigterm or 15.
pub fn parse_signal(s: &str) -> Result<Signal> {
    let parsed = match s.parse::<i32>() {
        Ok(n) => Signal::try_from(n).ok(),
        Err(_) => {
            let upper = s.to_ascii_uppercase();
            let name = if upper.starts_with("SIG") {
                upper
            } else {
                format!("SIG{upper}")
            };
            name.parse::<Signal>().ok()
        }
    };
    parsed.ok_or_else(|| anyhow::anyhow!("invalid signal {s:?}"))
}

pub fn run(ctx: &Ctx, args: &KillArgs) -> Result<i32> {
    let signal = parse_signal(&args.signal)?;
    let l = state::load(&ctx.root, &args.container_id)?;
    let status = l.container.status();
    if status == ContainerStatus::Stopped && !args.all {
        bail!("container not running");
    }
    if args.all {
        for pid in container_processes(&l) {
            let _ = nix::sys::signal::kill(pid, signal);
        }
        return Ok(0);
    }
    let pid = l
        .container
        .pid()
        .ok_or_else(|| anyhow::anyhow!("container not running"))?;
    match nix::sys::signal::kill(pid, signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(0),
        Err(e) => bail!("container {}: sending {signal}: {e}", args.container_id),
    }
}

/// Every process of the container, for `kill --all`: the processes in its
/// cgroup that are in its pid namespace (all of the cgroup's when it has
/// none of its own, as runc).
fn container_processes(l: &state::Loaded) -> Vec<Pid> {
    use libcgroups::common::CgroupManager;
    if l.extra.cgroups_disabled {
        return pidns_members(l);
    }
    let Ok(config) = l.container.spec() else {
        return l.container.pid().into_iter().collect();
    };
    let cgroups =
        crate::cgroups::cgroup_config(config.cgroup_path, l.container.systemd(), l.container.id());
    let mut pids: Vec<Pid> = libcgroups::common::create_cgroup_manager(cgroups)
        .ok()
        .and_then(|m| m.get_all_pids().ok())
        .unwrap_or_default();
    let init = l.container.pid();
    if l.extra.own_pidns {
        let ns_of = |p: Pid| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
        if let Some(ns) = init.and_then(ns_of) {
            pids.retain(|p| ns_of(*p).as_ref() == Some(&ns));
        }
    }
    if let Some(init) =
        init.filter(|i| !pids.contains(i) && l.container.status() != ContainerStatus::Stopped)
    {
        pids.push(init);
    }
    pids
}

/// Without a cgroup (`--cgroup-manager=disabled`): the processes in the
/// container's pid namespace, from /proc, or its init alone when it has no
/// pid namespace of its own.
fn pidns_members(l: &state::Loaded) -> Vec<Pid> {
    let Some(init) = l.container.pid() else {
        return Vec::new();
    };
    if !l.extra.own_pidns {
        return vec![init];
    }
    let ns_of = |p: i32| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    let Some(ns) = ns_of(init.as_raw()) else {
        return vec![init];
    };
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|p| ns_of(*p).as_ref() == Some(&ns))
                .map(Pid::from_raw)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_spellings() {
        for s in ["TERM", "SIGTERM", "sigterm", "15"] {
            assert_eq!(parse_signal(s).map(|s| s as i32).ok(), Some(15), "{s}");
        }
        assert_eq!(parse_signal("KILL").map(|s| s as i32).ok(), Some(9));
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
