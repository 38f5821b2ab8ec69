//! The systemd driver: where systemd puts a scope, and on cgroup v2 what
//! libcgroups 0.7's systemd manager leaves out.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use libcgroups::common::{CgroupConfig, CgroupManager, ControllerOpt};
use libcontainer::oci_spec::runtime::LinuxResources;
use nix::unistd::{fork, ForkResult, Pid};

use super::v2::block_io_weight_file;

/// `slice:prefix:name` as a path below the cgroup root.
pub(super) fn systemd_scope_path(cgroups_path: &str) -> Option<PathBuf> {
    let mut parts = cgroups_path.splitn(3, ':');
    let (slice, prefix, name) = (parts.next()?, parts.next()?, parts.next()?);
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let stem = slice.strip_suffix(".slice")?;
    let mut path = PathBuf::from("/");
    if stem != "-" {
        let mut so_far = String::new();
        for part in stem.split('-') {
            if part.is_empty() {
                return None;
            }
            so_far.push_str(part);
            path.push(format!("{so_far}.slice"));
            so_far.push('-');
        }
    }
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    path.push(unit);
    Some(path)
}

/// With the systemd driver on cgroup v2, what libcgroups 0.7 leaves out.
/// Its systemd manager turns cpu, memory, pids, io bandwidth and `unified`
/// into unit properties, but drops hugetlb limits and the block IO weight,
/// sends AllowedCPUs/AllowedMemoryNodes in a D-Bus type systemd refuses
/// (an array of u64 for `ay`; runlet keeps cpus and mems from it, see
/// `prepare_resources`) and sets no device rules at all. runc, after
/// setting the unit's properties, writes every file through its cgroupfs
/// manager too. runlet sets the two cpuset properties with `systemctl
/// set-property --runtime` (libcgroups' D-Bus client is private) and writes
/// the rest into the scope, enabling the controllers above it where systemd
/// did not (hugetlb is not one systemd knows).
pub(super) fn systemd_v2_files(
    dir: &Path,
    spec: &libcontainer::oci_spec::runtime::Spec,
) -> Result<()> {
    // Every controller the kernel has, down to the scope, as runc's
    // cgroupfs pass leaves it: systemd enables only those it manages, and
    // libcgroups' stats read hugetlb's files too.
    if let Ok(all) = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers") {
        for controller in all.split_whitespace() {
            enable_controller(dir, controller);
        }
    }
    let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) else {
        return Ok(());
    };
    let mut files: Vec<(&str, String, String)> = Vec::new();
    // cpuset files systemd owns: written by it from the unit's properties
    // (a file written behind its back is reset when it realizes the unit).
    let mut properties = Vec::new();
    if let Some(cpu) = r.cpu() {
        if let Some(cpus) = cpu.cpus() {
            properties.push(format!("AllowedCPUs={cpus}"));
        }
        if let Some(mems) = cpu.mems() {
            properties.push(format!("AllowedMemoryNodes={mems}"));
        }
    }
    if !properties.is_empty() {
        let unit = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let out = std::process::Command::new("systemctl")
            .args(["set-property", "--runtime", &unit])
            .args(&properties)
            .output()
            .map_err(|e| {
                anyhow::anyhow!("linux.resources.cpu: systemctl set-property {unit}: {e}")
            })?;
        if !out.status.success() {
            bail!(
                "linux.resources.cpu: systemctl set-property {unit} {}: {}",
                properties.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        files.push((
            "hugetlb",
            format!("hugetlb.{}.max", h.page_size()),
            h.limit().to_string(),
        ));
    }
    if let Some(weight) = r
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|w| *w > 0)
    {
        files.push(block_io_weight_file(weight));
    }
    for (controller, file, value) in files {
        enable_controller(dir, controller);
        std::fs::write(dir.join(&file), &value).map_err(|e| {
            anyhow::anyhow!(
                "linux.resources: writing {value:?} to {}: {e}",
                dir.join(&file).display()
            )
        })?;
    }
    Ok(())
}

/// Turns `controller` on in every `cgroup.subtree_control` from the root
/// down to `dir`'s parent, where it is not on yet.
pub(super) fn enable_controller(dir: &Path, controller: &str) {
    let has = |d: &Path| {
        std::fs::read_to_string(d.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|x| x == controller))
    };
    if has(dir) {
        return;
    }
    let root = Path::new("/sys/fs/cgroup");
    let mut d = root.to_path_buf();
    for part in dir.strip_prefix(root).unwrap_or(Path::new("")).components() {
        let _ = std::fs::write(d.join("cgroup.subtree_control"), format!("+{controller}"));
        d.push(part);
    }
}

/// A container's systemd scope on cgroup v2, started by `create` itself.
///
/// libcontainer would have its intermediate process start the scope through
/// libcgroups' systemd manager, whose D-Bus connection to systemd (root's,
/// and not close-on-exec) the init, forked from the intermediate, would
/// hold until its workload's execve: its createContainer hooks would
/// inherit it, and a Wasm init would keep it. runc talks to systemd from its
/// own process too. So `create` starts the scope with a placeholder process
/// of its own (systemd will not start an empty scope), sets the unit's
/// properties, closes the connection, and gives libcontainer the scope's
/// directory for cgroupfs, which joins it by path and writes the limits
/// into its files as runc's cgroupfs pass does. The placeholder leaves
/// once the init is in the scope.
pub struct Scope {
    /// What libcontainer is given: the scope's directory, by cgroupfs.
    pub cgroupfs: CgroupConfig,
    placeholder: Pid,
}

impl Scope {
    /// None unless `config` is a systemd one on cgroup v2.
    pub fn start(
        config: &CgroupConfig,
        resources: Option<&LinuxResources>,
    ) -> Result<Option<Scope>> {
        if !config.systemd_cgroup || !super::paths::unified() {
            return Ok(None);
        }
        let path = systemd_scope_path(&config.cgroup_path.to_string_lossy()).ok_or_else(|| {
            anyhow!(
                "linux.cgroupsPath {:?}: not slice:prefix:name",
                config.cgroup_path
            )
        })?;
        // SAFETY: runlet is single-threaded here; the child only waits for
        // a signal and never returns into runlet's code.
        let placeholder = match unsafe { fork() }.map_err(|e| anyhow!("fork: {e}"))? {
            ForkResult::Child => loop {
                // SAFETY: pause only waits; the parent SIGKILLs this child.
                unsafe { libc::pause() };
            },
            ForkResult::Parent { child } => child,
        };
        let scope = Scope {
            cgroupfs: CgroupConfig {
                cgroup_path: path,
                systemd_cgroup: false,
                container_name: config.container_name.clone(),
            },
            placeholder,
        };
        let before = crate::container::fds::open_fds();
        let manager = libcgroups::common::create_cgroup_manager(config.clone())
            .map_err(|e| anyhow!("systemd: {e}"))?;
        manager
            .add_task(placeholder)
            .map_err(|e| anyhow!("systemd: starting the scope: {e}"))?;
        if let Some(resources) = resources {
            manager
                .apply(&ControllerOpt {
                    resources,
                    freezer_state: None,
                    oom_score_adj: None,
                    disable_oom_killer: false,
                })
                .map_err(|e| anyhow!("linux.resources: {e}"))?;
        }
        drop(manager);
        // libcgroups 0.7's D-Bus connection has no Drop (its socket stays
        // open, and not close-on-exec): close what the manager opened, before
        // anything is cloned.
        for fd in crate::container::fds::open_fds() {
            if !before.contains(&fd) {
                // SAFETY: an fd the dropped manager opened and leaked; nothing
                // in runlet holds or uses it.
                unsafe { libc::close(fd) };
            }
        }
        Ok(Some(scope))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.placeholder, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(self.placeholder, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_scopes_are_where_systemd_puts_them() {
        let p = |s: &str| systemd_scope_path(s).map(|p| p.to_string_lossy().into_owned());
        assert_eq!(
            p("system.slice:runlet:abc").as_deref(),
            Some("/system.slice/runlet-abc.scope")
        );
        assert_eq!(
            p("a-b.slice:x:y").as_deref(),
            Some("/a.slice/a-b.slice/x-y.scope")
        );
        assert_eq!(p("-.slice:x:y").as_deref(), Some("/x-y.scope"));
        assert_eq!(p(":x:y").as_deref(), Some("/system.slice/x-y.scope"));
        assert_eq!(p("a--b.slice:x:y"), None);
        assert_eq!(p("nope"), None);
    }
}
