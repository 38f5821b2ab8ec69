//! `delete`: remove a container and everything it holds.
//!
//! Done here rather than with libcontainer's `Container::delete`, which
//! leaves the state dir behind when a poststop hook fails (the spec says a
//! failing poststop hook is only a warning) and cannot remove a stopped
//! container's cgroup while orphaned processes still live in it.

use anyhow::{anyhow, bail, Result};
use libcontainer::container::ContainerStatus;

use crate::cli::DeleteArgs;
use crate::container::{self, cgroup_config};
use crate::state;
use crate::Ctx;

pub fn run(ctx: &Ctx, args: &DeleteArgs) -> Result<i32> {
    let id = &args.container_id;
    state::validate_id(id)?;
    let dir = state::container_dir(&ctx.root, id);
    if !dir.exists() {
        if args.force {
            return Ok(0);
        }
        bail!("container {id} does not exist");
    }
    let l = match state::load(&ctx.root, id) {
        Ok(l) => l,
        Err(e) if args.force => {
            // A half-written state dir: nothing to signal, just remove it.
            tracing::warn!("{e:#}; removing {}", dir.display());
            std::fs::remove_dir_all(&dir).map_err(|e| anyhow!("{}: {e}", dir.display()))?;
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    let status = l.container.status();
    match status {
        ContainerStatus::Stopped | ContainerStatus::Created => {}
        _ if args.force => {}
        s => bail!(
            "cannot delete container {id} that is not stopped: {}",
            state::status_name(s)
        ),
    }
    remove(ctx, &l)
}

fn remove(ctx: &Ctx, l: &state::Loaded) -> Result<i32> {
    let id = l.container.id();
    let dir = state::container_dir(&ctx.root, id);
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
        container::run_hooks_warning(hooks.poststop().as_ref(), &st, None, "poststop");
    }
    std::fs::remove_dir_all(&dir).map_err(|e| anyhow!("{}: {e}", dir.display()))?;
    Ok(0)
}

/// The container's init, if it still runs (or is an unreaped zombie) and is
/// the process recorded at create (same start time).
fn live_init(l: &state::Loaded) -> Option<nix::unistd::Pid> {
    let pid = l.container.pid()?;
    let recorded = l.extra.init_start_time?;
    (state::process_start_time(pid.as_raw()) == Some(recorded)).then_some(pid)
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
            // Unreadable state: still remove the cgroup recorded at create.
            let dir = state::container_dir(&ctx.root, id);
            let extra = state::RunletState::load(&dir).unwrap_or_default();
            match libcontainer::config::YoukiConfig::load(&dir) {
                Ok(config) => container::remove_everything(
                    &dir,
                    crate::cgroups::Target {
                        id,
                        config: cgroup_config(config.cgroup_path, ctx.systemd, id),
                        init: None,
                        own_pidns: extra.own_pidns,
                        ownership: &extra.cgroup,
                    },
                ),
                Err(_) => {
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
    }
}
