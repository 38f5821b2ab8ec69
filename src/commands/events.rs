//! `events`: a container's resource usage in runc's JSON shape —
//! `--stats` once, or a stream every `--interval` that ends when the
//! container stops, with `{"type":"oom"}` when the OOM killer strikes in
//! the container's cgroup. The figures are libcgroups' (v1, v2 or
//! systemd), renamed to runc's `types.Stats` keys.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use libcgroups::common::CgroupManager;
use libcgroups::stats::{BlkioDeviceStat, MemoryData, Stats};
use libcontainer::container::ContainerStatus;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use serde_json::{json, Value};

use crate::cli::EventsArgs;
use crate::state;
use crate::Ctx;

pub fn run(ctx: &Ctx, args: &EventsArgs) -> Result<i32> {
    let id = &args.container_id;
    let interval = parse_interval(&args.interval)?;
    let l = state::load(&ctx.root, id)?;
    if l.container.status() == ContainerStatus::Stopped {
        bail!("container not running");
    }
    if l.extra.cgroups_disabled {
        bail!("container {id} has no cgroup (created with --cgroup-manager=disabled)");
    }
    let config = l
        .container
        .spec()
        .map_err(|e| anyhow!("container {id}: {e}"))?;
    let manager = libcgroups::common::create_cgroup_manager(crate::cgroups::cgroup_config(
        config.cgroup_path,
        l.container.systemd(),
        id,
    ))
    .map_err(|e| anyhow!("container {id}: cgroup: {e}"))?;
    let mut out = std::io::stdout().lock();
    let stats = || -> Result<Value> {
        let stats = manager
            .stats()
            .map_err(|e| anyhow!("container {id}: reading its cgroup: {e}"))?;
        Ok(json!({"type": "stats", "id": id, "data": runc_stats(&stats)}))
    };
    if args.stats {
        writeln!(out, "{}", stats()?)?;
        return Ok(0);
    }
    // OOM kills are seen in the memory controller's oom_kill counter,
    // counted from the stream's start as runc's. On v2 an inotify watch on
    // memory.events wakes the loop as the kernel bumps it: a systemd scope
    // is removed as soon as its last process dies, so the counter must be
    // read before that. v1's memory.oom_control is polled every tick.
    let memory = l
        .extra
        .cgroups_path
        .as_deref()
        .and_then(|p| crate::cgroups::memory_dir(p, l.container.systemd()));
    let oom_kills = || memory.as_deref().and_then(crate::cgroups::oom_kills);
    let watch = memory.as_deref().and_then(|dir| {
        let fd = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        fd.add_watch(&dir.join("memory.events"), AddWatchFlags::IN_MODIFY)
            .ok()?;
        Some(fd)
    });
    // A scope can be gone before its counter is read (the kernel signals
    // memory.events at most every 10 ms, systemd removes an empty scope at
    // once). The parent's counter also counts its children's kills (v2 is
    // hierarchical) and stays: if the container's own cgroup has gone and
    // the parent's count rose since the last reading of the container's,
    // that kill ended the container. (A sibling's kill in that same window
    // would be reported too.)
    let parent_kills = || {
        memory
            .as_deref()
            .and_then(Path::parent)
            .and_then(crate::cgroups::oom_kills)
    };
    let mut ooms = oom_kills().unwrap_or(0);
    let mut parent_ooms = parent_kills();
    let mut next_stats = Instant::now();
    let mut seen_oom = |events: &mut Vec<Value>| match oom_kills() {
        Some(n) => {
            if n > ooms {
                events.push(json!({"type": "oom", "id": id}));
            }
            ooms = ooms.max(n);
            parent_ooms = parent_kills();
        }
        None => {
            let now = parent_kills();
            if let (Some(before), Some(after)) = (parent_ooms, now) {
                if after > before {
                    events.push(json!({"type": "oom", "id": id}));
                }
            }
            parent_ooms = now.or(parent_ooms);
        }
    };
    let is_running = || {
        matches!(state::load(&ctx.root, id),
            Ok(l) if l.container.status() != ContainerStatus::Stopped)
    };
    loop {
        let mut events = Vec::new();
        // First thing after a wake-up: the scope may be about to go.
        seen_oom(&mut events);
        let mut running = is_running();
        if running && Instant::now() >= next_stats {
            match stats() {
                Ok(s) => events.push(s),
                // A systemd scope goes with the container's last process,
                // which may have died since the state was read.
                Err(_) if !is_running() => running = false,
                Err(e) => return Err(e),
            }
            next_stats += interval;
        }
        if !running {
            // An OOM kill that ended the container is reported before the end.
            seen_oom(&mut events);
        }
        for event in events {
            // A closed stdout (the caller stopped reading) ends the stream.
            if writeln!(out, "{event}").and_then(|()| out.flush()).is_err() {
                return Ok(0);
            }
        }
        if !running {
            return Ok(0);
        }
        let wait = next_stats
            .saturating_duration_since(Instant::now())
            .min(TICK);
        match &watch {
            Some(fd) => {
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
                if poll(&mut fds, PollTimeout::from(ms)).unwrap_or(0) > 0 {
                    // Drain; the counter is read at the top of the loop.
                    let _ = fd.read_events();
                }
            }
            None => std::thread::sleep(wait),
        }
    }
}

/// How often the stream looks for the container's end (and for OOM kills
/// when nothing wakes it).
const TICK: Duration = Duration::from_millis(100);

/// libcgroups' figures under runc's `types.Stats` names.
fn runc_stats(s: &Stats) -> Value {
    let mem = |m: &MemoryData| json!({"usage": m.usage, "max": m.max_usage, "failcnt": m.fail_count, "limit": m.limit});
    let blk = |v: &[BlkioDeviceStat]| -> Value {
        v.iter()
            .map(|d| {
                json!({"major": d.major, "minor": d.minor,
                       "op": d.op_type.clone().unwrap_or_default(), "value": d.value})
            })
            .collect()
    };
    let hugetlb: serde_json::Map<String, Value> = s
        .hugetlb
        .iter()
        .map(|(size, h)| {
            (
                size.clone(),
                json!({"usage": h.usage, "max": h.max_usage, "failcnt": h.fail_count}),
            )
        })
        .collect();
    let u = &s.cpu.usage;
    let t = &s.cpu.throttling;
    json!({
        "cpu": {
            "usage": {"total": u.usage_total, "percpu": u.per_core_usage_total,
                      "percpu_kernel": u.per_core_usage_kernel, "percpu_user": u.per_core_usage_user,
                      "kernel": u.usage_kernel, "user": u.usage_user},
            "throttling": {"periods": t.periods, "throttledPeriods": t.throttled_periods,
                           "throttledTime": t.throttled_time},
        },
        "memory": {
            "cache": s.memory.cache,
            "usage": mem(&s.memory.memory),
            "swap": mem(&s.memory.memswap),
            "kernel": mem(&s.memory.kernel),
            "kernelTCP": mem(&s.memory.kernel_tcp),
            "raw": s.memory.stats,
        },
        "pids": {"current": s.pids.current, "limit": s.pids.limit},
        "blkio": {
            "ioServiceBytesRecursive": blk(&s.blkio.service_bytes),
            "ioServicedRecursive": blk(&s.blkio.serviced),
            "ioQueueRecursive": blk(&s.blkio.queued),
            "ioServiceTimeRecursive": blk(&s.blkio.service_time),
            "ioWaitTimeRecursive": blk(&s.blkio.wait_time),
            "ioMergedRecursive": blk(&s.blkio.merged),
            "ioTimeRecursive": blk(&s.blkio.time),
            "sectorsRecursive": blk(&s.blkio.sectors),
        },
        "hugetlb": hugetlb,
    })
}

/// A Go duration as runc takes it: `5s`, `100ms`, `1m`, `1.5s`.
fn parse_interval(s: &str) -> Result<Duration> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow!("--interval {s:?}: not a duration (e.g. 5s, 100ms)"))?;
    let secs = match unit {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("--interval {s:?}: unknown unit {unit:?}"),
    };
    if secs <= 0.0 || !secs.is_finite() {
        bail!("--interval {s:?}: must be positive");
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_as_go_writes_them() {
        assert_eq!(parse_interval("5s").ok(), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_interval("100ms").ok(),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            parse_interval("1.5s").ok(),
            Some(Duration::from_millis(1500))
        );
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("fast").is_err());
    }
}
