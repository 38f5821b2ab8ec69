//! Removing a container and everything it holds: its processes (also the
//! unrecorded ones of a `create` that died), the cgroup runlet made, what
//! `create` staged and the state dir. Used by `delete` and when a later
//! step of `create`, `run` or `restore` fails.
//!
//! Done here rather than with libcontainer's `Container::delete`, which
//! leaves the state dir behind when a poststop hook fails (the spec says a
//! failing poststop hook is only a warning) and cannot remove a stopped
//! container's cgroup while orphaned processes still live in it.

use std::fs;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use libcontainer::container::ContainerStatus;

use crate::cgroups::cgroup_config;
use crate::state;
use crate::Ctx;

/// Kills the container's processes, removes the cgroup runlet made for it
/// and the state dir. Used when create fails and by delete.
pub fn remove_everything(dir: &Path, target: crate::cgroups::Target) {
    let id = target.id.to_string();
    if let Err(e) = crate::cgroups::remove(target) {
        tracing::warn!("{e:#}");
    }
    unmount_staged(dir);
    if let Err(e) = fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(%id, "removing {}: {e}", dir.display());
        }
    }
}

/// Detaches what `create` stages on the host below the state dir (idmapped
/// and unreachable bind sources, device nodes; see `idmap` and `dev`) in
/// case the create that made them died before it could.
pub fn unmount_staged(dir: &Path) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(crate::container::idmap::STAGE_PREFIX)
            || name == crate::container::dev::NODES_DIR
        {
            let _ = nix::mount::umount2(&entry.path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

pub fn remove(ctx: &Ctx, l: &state::Loaded) -> Result<i32> {
    let id = l.container.id();
    let dir = state::container_dir(&ctx.root, id);
    if l.extra.init_start_time.is_none() {
        // `create` never finished: its processes may live unrecorded.
        crate::container::inflight::kill_all(&ctx.root, id);
    }
    let config = l.container.spec().ok();
    if let Some(config) = &config {
        let cgroups = cgroup_config(config.cgroup_path.clone(), l.container.systemd(), id);
        // A paused container must be thawed for SIGKILL to take effect.
        if l.container.status() == ContainerStatus::Paused {
            use libcgroups::common::CgroupManager;
            if let Ok(manager) = libcgroups::common::create_cgroup_manager(cgroups.clone()) {
                let _ = manager.freeze(libcgroups::common::FreezerState::Thawed);
            }
        }
        crate::cgroups::remove(crate::cgroups::Target {
            id,
            config: cgroups,
            init: live_init(l),
            own_pidns: l.extra.own_pidns,
            ownership: &l.extra.cgroup,
        })?;
    } else if let Some(pid) = live_init(l) {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
    let _ = libcontainer::process::intel_rdt::cleanup_intel_rdt(
        l.container.intel_rdt_dir().map(|p| p.as_path()),
        l.container.intel_rdt_monitoring_dir().map(|p| p.as_path()),
        l.container.clean_up_intel_rdt_subdirectory(),
        id,
    );
    if let Some(hooks) = config.as_ref().and_then(|c| c.hooks.as_ref()) {
        let mut st = l.container.state.clone();
        st.status = ContainerStatus::Stopped;
        super::hooks::run_hooks_warning(hooks.poststop().as_ref(), &st, None, "poststop");
    }
    unmount_staged(&dir);
    std::fs::remove_dir_all(&dir).map_err(|e| anyhow!("{}: {e}", dir.display()))?;
    Ok(0)
}

/// `delete -f` of a container whose state.json cannot be read (damaged by
/// hand or by an older runlet, which did not write it atomically). runlet's
/// own runlet.json names the init, the cgroups path and the cgroups runlet
/// made: the init and any unrecorded process of an unfinished create are
/// killed and the cgroups removed. Without runlet.json (written, atomically,
/// right before the container's first process is cloned) nothing but the
/// state dir was made. When the cgroups path is unknown the delete fails
/// and leaves the state dir.
pub fn remove_damaged(ctx: &Ctx, id: &str) -> Result<()> {
    let dir = state::container_dir(&ctx.root, id);
    crate::container::inflight::kill_all(&ctx.root, id);
    if let Some(extra) = state::RunletState::load(&dir) {
        let init = match (extra.init_pid, extra.init_start_time) {
            (Some(pid), Some(start))
                if crate::container::process::process_start_time(pid) == Some(start) =>
            {
                Some(nix::unistd::Pid::from_raw(pid))
            }
            _ => None,
        };
        let path = match extra.cgroups_path.clone() {
            Some(p) => p,
            None => match libcontainer::config::YoukiConfig::load(&dir) {
                Ok(c) => c.cgroup_path,
                Err(e) => {
                    if let Some(pid) = init {
                        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                    }
                    bail!(
                        "container {id}: state.json and youki_config.json are unreadable ({e}); \
                         its cgroups are unknown, so {} is left for inspection",
                        dir.display()
                    );
                }
            },
        };
        crate::cgroups::remove(crate::cgroups::Target {
            id,
            config: cgroup_config(path, ctx.systemd, id),
            init,
            own_pidns: extra.own_pidns,
            ownership: &extra.cgroup,
        })?;
    }
    unmount_staged(&dir);
    std::fs::remove_dir_all(&dir).map_err(|e| anyhow!("{}: {e}", dir.display()))
}

/// The container's init, if it still runs (or is an unreaped zombie) and is
/// the process recorded at create (same start time).
fn live_init(l: &state::Loaded) -> Option<nix::unistd::Pid> {
    let pid = l.container.pid()?;
    let recorded = l.extra.init_start_time?;
    (crate::container::process::process_start_time(pid.as_raw()) == Some(recorded)).then_some(pid)
}

/// Removes a container whatever its state; used when a later step of
/// create/run fails.
pub fn force_remove(ctx: &Ctx, id: &str) {
    match state::load(&ctx.root, id) {
        Ok(l) => {
            if let Err(e) = remove(ctx, &l) {
                tracing::warn!(%id, "cleanup: {e:#}");
            }
        }
        Err(_) => {
            if let Err(e) = remove_damaged(ctx, id) {
                tracing::warn!(%id, "cleanup: {e:#}");
            }
        }
    }
}
