//! What a container's cgroup tells: where its memory files are, and how
//! many OOM kills it has seen.

use std::path::{Path, PathBuf};

use libcgroups::common::CgroupConfig;

use super::paths::{clean, hierarchies};
use super::systemd::systemd_scope_path;

/// The directory holding the memory controller's files of the cgroup at
/// `cgroups_path` (as libcontainer was given it): the v1 memory hierarchy's
/// or the unified one's. A systemd `slice:prefix:name` path is expanded as
/// systemd places the scope (`a-b.slice` is `/a.slice/a-b.slice`).
pub fn memory_dir(cgroups_path: &Path, systemd: bool) -> Option<PathBuf> {
    controller_dir(cgroups_path, systemd, "memory")
}

/// As `memory_dir`, for any v1 controller (the unified directory on v2).
pub fn controller_dir(cgroups_path: &Path, systemd: bool, controller: &str) -> Option<PathBuf> {
    let path = if systemd {
        systemd_scope_path(&cgroups_path.to_string_lossy())?
    } else {
        cgroups_path.to_path_buf()
    };
    hierarchies(&path)?
        .into_iter()
        .find(|h| h.controllers.is_empty() || h.controllers.iter().any(|c| c == controller))
        .map(|h| h.dir)
}

/// How many processes the kernel's OOM killer has killed in the cgroup
/// whose memory files are in `dir`: `oom_kill` of memory.events (v2) or of
/// memory.oom_control (v1, kernel 4.13 and later).
pub fn oom_kills(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("memory.events"))
        .or_else(|_| std::fs::read_to_string(dir.join("memory.oom_control")))
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

/// The container's directory in the unified hierarchy (its scope's, with
/// the systemd driver).
pub(super) fn unified_dir(config: &CgroupConfig) -> Option<PathBuf> {
    let path = if config.systemd_cgroup {
        systemd_scope_path(&config.cgroup_path.to_string_lossy())?
    } else {
        clean(&config.cgroup_path)
    };
    Some(Path::new("/sys/fs/cgroup").join(path.strip_prefix("/").unwrap_or(&path)))
}
