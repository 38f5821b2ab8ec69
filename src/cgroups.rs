//! Removing a container's cgroup on `delete` (and when `create` fails).
//!
//! libcgroups' v1 manager finds each controller's directory by reading and
//! parsing /proc/self/mountinfo once per controller: a dozen reads before it
//! can remove anything. Profiling `runlet run` showed those reads (kernel
//! mountinfo generation plus the parsing) as one of the largest costs in
//! runlet's own code. On cgroupfs v1 — the host kind where this matters —
//! runlet reads mountinfo once, then kills what is left in each controller's
//! directory and removes it, deepest sub-cgroup first. Under systemd or on
//! cgroup v2 it uses libcgroups as before.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libcgroups::common::{CgroupConfig, CgroupSetup};

/// Every directory of `cgroup_path` under the v1 controller mounts, from
/// one read of mountinfo. Co-mounted controllers yield one directory.
fn v1_dirs(cgroup_path: &Path) -> Option<Vec<PathBuf>> {
    let rel = cgroup_path.strip_prefix("/").ok()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut dirs = BTreeSet::new();
    for line in mountinfo.lines() {
        // fields: id parent major:minor root mountpoint options ... - fstype source superopts
        let (pre, post) = line.split_once(" - ")?;
        if !post.starts_with("cgroup ") {
            continue;
        }
        let fields: Vec<&str> = pre.split(' ').collect();
        let (root, mountpoint) = (fields.get(3)?, fields.get(4)?);
        // A hierarchy mounted from a sub-cgroup only holds paths below it.
        let Ok(inner) = Path::new("/")
            .join(rel)
            .strip_prefix(root)
            .map(Path::to_path_buf)
        else {
            continue;
        };
        dirs.insert(Path::new(&unescape(mountpoint)).join(inner));
    }
    Some(dirs.into_iter().collect())
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v as char);
                i += 4;
                continue;
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

fn pids_in(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// All sub-cgroups of `dir`, deepest first, then `dir` itself.
fn depth_first(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                depth_first(&e.path(), out);
            }
        }
    }
    out.push(dir.to_path_buf());
}

/// Kills every process left in the container's cgroup and removes it.
pub fn remove(config: CgroupConfig, id: &str) -> anyhow::Result<()> {
    let fast = !config.systemd_cgroup
        && matches!(
            libcgroups::common::get_cgroup_setup(),
            Ok(CgroupSetup::Legacy | CgroupSetup::Hybrid)
        );
    let dirs = if fast {
        v1_dirs(&config.cgroup_path)
    } else {
        None
    };
    let Some(dirs) = dirs else {
        return remove_with_libcgroups(config, id);
    };
    let mut all = Vec::new();
    for d in dirs.iter().filter(|d| d.exists()) {
        depth_first(d, &mut all);
    }
    kill_until_empty(id, || Some(all.iter().flat_map(|d| pids_in(d)).collect()));
    for d in &all {
        for attempt in 0..20 {
            match std::fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) if attempt == 19 => {
                    anyhow::bail!("container {id}: removing cgroup {}: {e}", d.display())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
    Ok(())
}

/// SIGKILLs the processes `pids` lists until it lists none (or cannot
/// tell), reaping those that are our own children (a foreground run's init).
fn kill_until_empty(id: &str, pids: impl Fn() -> Option<Vec<i32>>) {
    use nix::sys::signal::{kill, Signal};
    use nix::sys::wait::{waitpid, WaitPidFlag};
    use nix::unistd::Pid;
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

fn remove_with_libcgroups(config: CgroupConfig, id: &str) -> anyhow::Result<()> {
    use libcgroups::common::CgroupManager;
    let manager = match libcgroups::common::create_cgroup_manager(config) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(%id, "cgroup manager: {e}");
            return Ok(());
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape(r"/tail\"), r"/tail\");
    }

    #[test]
    fn relative_paths_are_not_v1_paths() {
        assert!(v1_dirs(Path::new("system.slice:runlet:x")).is_none());
    }
}
