//! The container's cgroup filesystem (the config's `cgroup` mount at
//! /sys/fs/cgroup), made from the host side by the post-create helper
//! instead of by libcontainer's init.
//!
//! libcontainer 0.7 mounts it in the init, resolving every path through
//! pathrs' checked procfs: on cgroup v1 a tmpfs and one mount per
//! hierarchy, each about 75 system calls, some 850 of the 3,100 a native
//! `run` made (docs/benchmarks.md, "Profile"). None of it needs the init:
//! the helper in `post_create`, which joins the container's namespaces
//! anyway to finish its mounts, makes the same mounts with a few plain
//! calls each, before `start`, so the workload never sees the difference.
//!
//! The result is libcontainer's:
//! - v1: a tmpfs (nosuid, nodev, noexec, mode 755); each of the host's
//!   hierarchies under /sys/fs/cgroup under its own name, a new cgroup
//!   mount when the container has a cgroup namespace, else a bind of the
//!   container's own cgroup directory in it; and a link for each
//!   co-mounted controller (`cpu -> cpu,cpuacct`);
//! - v2: a cgroup2 mount; without a cgroup namespace, where that is
//!   refused, a bind of the container's cgroup directory;
//! - with `ro`, every one of them read-only (as runc and crun; libcontainer
//!   ignores `ro`, which `post_create` used to make up for).
//!
//! runlet takes the mount over only where nothing can tell: the usual
//! `/sys/fs/cgroup` below a sysfs mount at `/sys`, in a new mount namespace,
//! no later mount at or below it (made first, it would be covered), no hook
//! that runs before the helper (prestart, createRuntime, createContainer),
//! no mount label (libcontainer labels its mounts), and, without a cgroup
//! namespace, no user namespace (the host's cgroup directories are bound in
//! from the host's mount namespace). Any other config keeps libcontainer's
//! mount, as does `--cgroup-manager=disabled` (`build`). The mount's
//! propagation option (`rprivate`) is applied after.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::Path;

use libcontainer::oci_spec::runtime::{LinuxNamespaceType, Spec};
use nix::mount::MsFlags;
use nix::unistd::Pid;

use crate::config::ids::has_namespace;

const DEST: &str = "/sys/fs/cgroup";

/// The cgroup mount taken out of the spec handed to libcontainer.
#[derive(Debug, Clone, Copy)]
pub struct CgroupFs {
    readonly: bool,
    /// The mount's own flags (nosuid, nodev, noexec, relatime, ...).
    flags: MsFlags,
    /// The container has a cgroup namespace (its own or one it joins).
    namespaced: bool,
    /// The propagation its options ask for (`rprivate`).
    propagation: Option<MsFlags>,
}

/// Removes the config's cgroup mount from `spec` when runlet can make it
/// itself (see the module doc).
pub fn take(spec: &mut Spec) -> Option<CgroupFs> {
    let idx = eligible(spec)?;
    crate::cgroups::host_mounts()?;
    let mut mounts = spec.mounts().clone()?;
    let options = mounts[idx].options().clone().unwrap_or_default();
    // The per-mount flags as mountinfo would show them.
    let flags = super::post_create::mount_flags(&options.join(","));
    mounts.remove(idx);
    spec.set_mounts(Some(mounts));
    Some(CgroupFs {
        readonly: options.iter().any(|o| o == "ro"),
        flags,
        namespaced: has_namespace(spec, LinuxNamespaceType::Cgroup),
        propagation: crate::config::compat::propagation_flags(&options),
    })
}

/// The index of the cgroup mount in the config's mounts, when the config
/// lets runlet make it (see the module doc; the host's setup aside).
fn eligible(spec: &Spec) -> Option<usize> {
    let mounts = spec.mounts().as_ref()?;
    let idx = mounts
        .iter()
        .position(|m| m.typ().as_deref() == Some("cgroup"))?;
    let m = &mounts[idx];
    if m.destination() != Path::new(DEST) {
        return None;
    }
    let sysfs_first = mounts[..idx]
        .iter()
        .any(|m| m.typ().as_deref() == Some("sysfs") && m.destination() == Path::new("/sys"));
    let covered = mounts[idx + 1..]
        .iter()
        .any(|l| l.destination().starts_with(DEST));
    let hooks_before = spec.hooks().as_ref().is_some_and(|h| {
        [h.prestart(), h.create_runtime(), h.create_container()]
            .iter()
            .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()))
    });
    let namespaced = has_namespace(spec, LinuxNamespaceType::Cgroup);
    let new_mntns = crate::config::ids::new_namespace(spec, LinuxNamespaceType::Mount);
    let labelled = spec
        .linux()
        .as_ref()
        .is_some_and(|l| l.mount_label().is_some());
    let refused = !sysfs_first
        || labelled
        || covered
        || hooks_before
        || !new_mntns
        || (!namespaced && has_namespace(spec, LinuxNamespaceType::User));
    (!refused).then_some(idx)
}

/// One hierarchy to mount below /sys/fs/cgroup.
struct Hierarchy {
    /// Its name there: the host mount point's last component.
    name: String,
    /// Mount data for a new mount (`cpu,cpuacct`, `name=systemd`).
    data: String,
    /// Without a cgroup namespace: a detached clone of the container's
    /// directory in the host's hierarchy, to bind.
    tree: Option<OwnedFd>,
}

/// What the helper mounts, prepared on the host before it forks.
pub struct Prepared {
    taken: CgroupFs,
    unified: bool,
    hierarchies: Vec<Hierarchy>,
    /// v2 without a cgroup namespace: the container's directory, bound
    /// where a new cgroup2 mount is refused.
    unified_tree: Option<OwnedFd>,
    /// v1 without a cgroup namespace: the tmpfs, made before the clones
    /// so that mountinfo lists it before them, as libcontainer's.
    tmpfs: Option<OwnedFd>,
}

/// Reads the init's cgroups and clones the host directories to bind.
pub fn prepare(taken: &CgroupFs, pid: Pid) -> anyhow::Result<Prepared> {
    let (unified, mounts) = crate::cgroups::host_mounts()
        .ok_or_else(|| anyhow::anyhow!("mounts: cgroup: the host's cgroup setup is unknown"))?;
    let own = if taken.namespaced {
        String::new()
    } else {
        let path = format!("/proc/{pid}/cgroup");
        fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("mounts: {path}: {e}"))?
    };
    // The container's directory in a host hierarchy: the init's cgroup
    // there (as the host sees it).
    let dir_in = |m: &crate::cgroups::CgroupMount| m.dir_of(&own, unified);
    let clone = |dir: &Path| {
        runlet_handler::rofs::clone_tree(dir, true)
            .map_err(|e| anyhow::anyhow!("mounts: cgroup: cloning {}: {e}", dir.display()))
    };
    let mut out = Prepared {
        taken: *taken,
        unified,
        hierarchies: Vec::new(),
        unified_tree: None,
        tmpfs: None,
    };
    if unified {
        if !taken.namespaced {
            if let Some(dir) = mounts.first().and_then(dir_in) {
                out.unified_tree = Some(clone(&dir)?);
            }
        }
        return Ok(out);
    }
    if !taken.namespaced {
        use runlet_handler::rofs::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID};
        let attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
        out.tmpfs = Some(
            runlet_handler::rofs::new_tmpfs("755", attrs)
                .map_err(|e| anyhow::anyhow!("mounts: cgroup: a tmpfs for {DEST}: {e}"))?,
        );
    }
    for m in mounts.iter().filter(|m| m.mountpoint.starts_with(DEST)) {
        let Some(name) = m.mountpoint.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let data = if name == "systemd" {
            "name=systemd".to_string()
        } else {
            name.to_string()
        };
        let tree = if taken.namespaced {
            None
        } else {
            // As libcontainer: a hierarchy the init is not in is left out.
            match dir_in(m) {
                Some(dir) => Some(clone(&dir)?),
                None => continue,
            }
        };
        out.hierarchies.push(Hierarchy {
            name: name.to_string(),
            data,
            tree,
        });
    }
    Ok(out)
}

fn mount(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), String> {
    nix::mount::mount(Some(source), target, Some(fstype), flags, data).map_err(|e| {
        format!(
            "mounts: cgroup: mounting {fstype} on {}: {e}",
            target.display()
        )
    })
}

fn make_readonly(target: &Path, keep: MsFlags) -> Result<(), String> {
    super::post_create::remount_readonly(target, keep)
        .map_err(|e| format!("mounts: cgroup: making {} read-only: {e}", target.display()))
}

fn bind(tree: &OwnedFd, target: &Path) -> Result<(), String> {
    runlet_handler::rofs::attach_tree(tree, target)
        .map_err(|e| format!("mounts: cgroup: binding on {}: {e}", target.display()))
}

impl Prepared {
    /// Whether the container has a cgroup namespace: the helper joins it,
    /// so that its new cgroup mounts show the container's cgroup as root.
    pub fn fresh(&self) -> bool {
        self.taken.namespaced
    }
}

/// In the helper, in the container's namespaces (root at the container's
/// root): makes the mounts, then sets the propagation the config asks for.
pub fn mount_all(p: &Prepared) -> Result<(), String> {
    if p.unified {
        mount_unified(p)?;
    } else {
        mount_v1(p)?;
    }
    if let Some(flags) = p.taken.propagation {
        nix::mount::mount::<str, str, str, str>(None, DEST, None, flags, None)
            .map_err(|e| format!("mounts: cgroup: setting the propagation of {DEST}: {e}"))?;
    }
    Ok(())
}

fn readonly_flag(p: &Prepared) -> MsFlags {
    if p.taken.readonly {
        MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    }
}

/// v2: a new cgroup2 mount, or where that is refused (no cgroup
/// namespace) a bind of the container's cgroup directory.
fn mount_unified(p: &Prepared) -> Result<(), String> {
    let dest = Path::new(DEST);
    let fresh = mount(
        "cgroup",
        dest,
        "cgroup2",
        p.taken.flags | readonly_flag(p),
        None,
    );
    match (fresh, &p.unified_tree) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(tree)) => {
            bind(tree, dest)?;
            if p.taken.readonly {
                make_readonly(dest, p.taken.flags)?;
            }
            Ok(())
        }
        (Err(e), None) => Err(e),
    }
}

/// v1: a tmpfs holding one mount per hierarchy and the co-mount links.
fn mount_v1(p: &Prepared) -> Result<(), String> {
    let dest = Path::new(DEST);
    let base = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    match &p.tmpfs {
        Some(tmpfs) => bind(tmpfs, dest)?,
        None => mount("tmpfs", dest, "tmpfs", base, Some("mode=755"))?,
    }
    for h in &p.hierarchies {
        let target = dest.join(&h.name);
        fs::create_dir(&target)
            .map_err(|e| format!("mounts: cgroup: making {}: {e}", target.display()))?;
        match &h.tree {
            None => mount(
                "cgroup",
                &target,
                "cgroup",
                base | readonly_flag(p),
                Some(&h.data),
            )?,
            Some(tree) => {
                bind(tree, &target)?;
                if p.taken.readonly {
                    make_readonly(&target, base)?;
                }
            }
        }
        if h.name.contains(',') {
            for part in h.name.split(',') {
                let link = dest.join(part);
                std::os::unix::fs::symlink(&h.name, &link)
                    .map_err(|e| format!("mounts: cgroup: linking {}: {e}", link.display()))?;
            }
        }
    }
    if p.taken.readonly {
        make_readonly(dest, base)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(edit: impl FnOnce(&mut serde_json::Value)) -> Spec {
        let mut c = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                 "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
            ],
            "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}, {"type": "cgroup"}]}
        });
        edit(&mut c);
        serde_json::from_value(c).expect("spec")
    }

    #[test]
    fn the_usual_config_is_taken_over() {
        assert_eq!(eligible(&spec(|_| {})), Some(2));
        // Without a cgroup namespace too (the host's directories are bound).
        let no_cgroupns =
            spec(|c| c["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}]));
        assert_eq!(eligible(&no_cgroupns), Some(2));
    }

    #[test]
    fn configs_where_the_difference_shows_keep_libcontainers_mount() {
        let cases: Vec<(&str, Spec)> = vec![
            (
                "a later mount below it",
                spec(|c| {
                    c["mounts"]
                        .as_array_mut()
                        .expect("mounts")
                        .push(serde_json::json!(
                    {"destination": "/sys/fs/cgroup/systemd", "type": "bind", "source": "/tmp"}))
                }),
            ),
            (
                "no sysfs before it",
                spec(|c| {
                    c["mounts"].as_array_mut().expect("mounts").remove(1);
                }),
            ),
            (
                "a hook before the helper",
                spec(|c| {
                    c["hooks"] = serde_json::json!({"createRuntime": [{"path": "/bin/true"}]})
                }),
            ),
            (
                "the host's mount namespace",
                spec(|c| {
                    c["linux"]["namespaces"] =
                        serde_json::json!([{"type": "pid"}, {"type": "cgroup"}])
                }),
            ),
            (
                "a user namespace without a cgroup one",
                spec(|c| {
                    c["linux"]["namespaces"] =
                        serde_json::json!([{"type": "mount"}, {"type": "user"}])
                }),
            ),
            (
                "a mount label",
                spec(|c| {
                    c["linux"]["mountLabel"] =
                        serde_json::json!("system_u:object_r:container_file_t:s0")
                }),
            ),
            (
                "another destination",
                spec(|c| c["mounts"][2]["destination"] = serde_json::json!("/cg")),
            ),
        ];
        for (what, s) in cases {
            assert_eq!(eligible(&s), None, "{what}");
        }
    }
}
