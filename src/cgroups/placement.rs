//! Where a container's cgroup goes: runc's default below the caller's
//! cgroup, what of it `create` makes (so `delete` removes just that), the
//! path an `exec` joins, and `--cgroup-manager=disabled`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use libcgroups::common::CgroupConfig;
use serde::{Deserialize, Serialize};

use super::paths::{clean, hierarchies, own_cgroup_in, own_cgroups, unified};
use super::systemd::systemd_scope_path;

/// What of a container's cgroup runlet made at `create`, recorded in its
/// state so that `delete` removes exactly that.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Ownership {
    /// The container's cgroup did not exist before `create` (always true
    /// for a systemd scope, which is the container's own).
    pub owns: bool,
    /// cgroupfs directories that did not exist before `create` (the
    /// container's own and any parents made for it), parents first.
    pub created: Vec<PathBuf>,
    /// Parents that exist only because the container sits below the
    /// caller's cgroup of another controller (v1: one path for every
    /// hierarchy, see [`resolve_path`]); removed on delete once empty, so
    /// the last container to go takes them along. Deepest first.
    #[serde(default)]
    pub prune: Vec<PathBuf>,
}

/// The container's cgroups path, as runc resolves it.
///
/// - systemd: as given, or `system.slice:runlet:<id>` when unset.
/// - cgroupfs, absolute: cleaned, below the cgroup root.
/// - cgroupfs, relative or unset (`<id>`): below the caller's cgroup. On
///   cgroup v2 that is the parent of the caller's cgroup (the caller's own
///   has processes, so it cannot have children with controllers), as runc.
///   On v1 runc uses the caller's cgroup of each controller; libcgroups
///   places a container at one path in every hierarchy, so runlet uses the
///   deepest of the caller's paths when the others are its ancestors (the
///   usual case: the container is then below the caller in every
///   controller), else the caller's memory cgroup.
pub fn resolve_path(given: Option<&Path>, id: &str, systemd: bool) -> Result<PathBuf> {
    if systemd {
        return Ok(match given {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from(format!("system.slice:runlet:{id}")),
        });
    }
    let inner = match given {
        Some(p) if !p.as_os_str().is_empty() => clean(p),
        _ => PathBuf::from(id),
    };
    if inner.is_absolute() {
        return Ok(inner);
    }
    if inner.as_os_str().is_empty() {
        bail!("linux.cgroupsPath: names no cgroup once cleaned");
    }
    let own = own_cgroups().map_err(|e| anyhow::anyhow!("/proc/self/cgroup: {e}"))?;
    Ok(caller_base(&own, unified()).join(inner))
}

/// The cgroup below which the caller's containers go, from the text of
/// /proc/self/cgroup.
pub(super) fn caller_base(proc_cgroup: &str, unified: bool) -> PathBuf {
    let mut v1: Vec<(String, PathBuf)> = Vec::new();
    let mut v2 = PathBuf::from("/");
    for line in proc_cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let path = clean(Path::new(path));
        if ctrls.is_empty() {
            v2 = path;
        } else if !ctrls.starts_with("name=") {
            v1.push((ctrls.to_string(), path));
        }
    }
    if unified || v1.is_empty() {
        return v2.parent().map(Path::to_path_buf).unwrap_or(v2);
    }
    let deepest = v1
        .iter()
        .map(|(_, p)| p.clone())
        .max_by_key(|p| p.components().count())
        .unwrap_or_else(|| PathBuf::from("/"));
    if v1.iter().all(|(_, p)| deepest.starts_with(p)) {
        return deepest;
    }
    v1.iter()
        .find(|(c, _)| c.split(',').any(|c| c == "memory"))
        .map(|(_, p)| p.clone())
        .unwrap_or(deepest)
}

/// What `create` is about to make: the directories of the container's
/// cgroup (and parents) that do not exist yet. Computed before libcontainer
/// creates them.
pub fn plan(config: &CgroupConfig) -> Ownership {
    if config.systemd_cgroup {
        return Ownership {
            owns: true,
            ..Ownership::default()
        };
    }
    let Some(hs) = hierarchies(&config.cgroup_path) else {
        return Ownership::default();
    };
    let own = own_cgroups().unwrap_or_default();
    let mut created = Vec::new();
    let mut prune = Vec::new();
    let mut owns = true;
    for h in &hs {
        let leaf = &h.dir;
        if leaf.exists() {
            owns = false;
        } else {
            // The missing part of the chain, parents first.
            let mut missing = vec![leaf.clone()];
            let mut d = leaf.parent();
            while let Some(p) = d.filter(|p| !p.exists()) {
                missing.push(p.to_path_buf());
                d = p.parent();
            }
            created.extend(missing.into_iter().rev());
        }
        // v1: parents below the mount that are not the caller's own cgroup
        // in this hierarchy (or above it) mirror another controller's path.
        if !unified() && !h.controllers.is_empty() {
            if let Some(own) = own_cgroup_in(&own, &h.controllers) {
                let own_dir = h.mountpoint.join(own.strip_prefix("/").unwrap_or(&own));
                let mut d = leaf.parent();
                while let Some(p) = d {
                    if !p.starts_with(&h.mountpoint) || p == h.mountpoint || own_dir.starts_with(p)
                    {
                        break;
                    }
                    prune.push(p.to_path_buf());
                    d = p.parent();
                }
            }
        }
    }
    Ownership {
        owns: owns && !hs.is_empty(),
        created,
        prune,
    }
}

/// The cgroups path (for cgroupfs) that an `exec`'d process joins: a
/// systemd container's scope as the path systemd gave it. runc's exec, too,
/// writes the process into the container's cgroup and never talks to
/// systemd; libcgroups' systemd manager would connect to D-Bus in the
/// intermediate process, and the exec'd process, forked from it, would
/// hold that root-authenticated connection to systemd until its execve (a
/// Wasm one for its whole life).
pub fn exec_path(cgroups_path: &Path, systemd: bool) -> PathBuf {
    if systemd {
        if let Some(p) = systemd_scope_path(&cgroups_path.to_string_lossy()) {
            return p;
        }
    }
    cgroups_path.to_path_buf()
}

/// libcgroups' configuration for the container's cgroup.
pub fn cgroup_config(path: PathBuf, systemd: bool, id: &str) -> CgroupConfig {
    CgroupConfig {
        cgroup_path: path,
        systemd_cgroup: systemd,
        container_name: id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_base_follows_runc() {
        // v2: the parent of the caller's cgroup.
        assert_eq!(
            caller_base("0::/user.slice/session-1.scope\n", true),
            PathBuf::from("/user.slice")
        );
        // v1 with paths on one chain: the deepest.
        let v1 = "9:name=systemd:/\n8:pids:/\n4:memory:/machine/abc\n1:cpu,cpuacct:/\n0::/\n";
        assert_eq!(caller_base(v1, false), PathBuf::from("/machine/abc"));
        // v1 with diverging paths: the memory cgroup.
        let v1 = "8:pids:/a/x\n4:memory:/b/y\n";
        assert_eq!(caller_base(v1, false), PathBuf::from("/b/y"));
        // All at the root.
        assert_eq!(
            caller_base("4:memory:/\n8:pids:/\n", false),
            PathBuf::from("/")
        );
    }

    #[test]
    fn resolve_cleans_and_defaults() {
        assert_eq!(
            resolve_path(Some(Path::new("/../../tmp/x")), "c", false).expect("path"),
            PathBuf::from("/tmp/x")
        );
        assert_eq!(
            resolve_path(None, "c", true).expect("path"),
            PathBuf::from("system.slice:runlet:c")
        );
        let default = resolve_path(None, "c", false).expect("path");
        assert!(
            default.is_absolute() && default.ends_with("c"),
            "{default:?}"
        );
        let relative = resolve_path(Some(Path::new("../../x/y")), "c", false).expect("path");
        assert!(
            relative.ends_with("x/y") && relative.is_absolute(),
            "{relative:?}"
        );
        assert!(resolve_path(Some(Path::new("..")), "c", false).is_err());
    }
}
