//! `pause` and `resume`: freeze and thaw all processes of a container.

use anyhow::{anyhow, bail, Result};
use libcgroups::common::FreezerState;
use libcontainer::container::ContainerStatus;

use crate::state;
use crate::Ctx;

pub fn pause(ctx: &Ctx, id: &str) -> Result<i32> {
    let mut l = state::load(&ctx.root, id)?;
    match l.container.status() {
        ContainerStatus::Running | ContainerStatus::Created => {}
        ContainerStatus::Paused => bail!("container {id} is already paused"),
        _ => bail!("container not running"),
    }
    if l.extra.cgroups_disabled {
        bail!("cannot pause container {id}: it has no cgroup (created with --cgroup-manager=disabled)");
    }
    freeze(&l, FreezerState::Frozen).map_err(|e| anyhow!("pause {id}: {e}"))?;
    l.container.set_status(ContainerStatus::Paused);
    state::save(&l.container)?;
    Ok(0)
}

pub fn resume(ctx: &Ctx, id: &str) -> Result<i32> {
    let mut l = state::load(&ctx.root, id)?;
    if l.container.status() != ContainerStatus::Paused {
        bail!("container not paused");
    }
    freeze(&l, FreezerState::Thawed).map_err(|e| anyhow!("resume {id}: {e}"))?;
    l.container.set_status(ContainerStatus::Running);
    state::save(&l.container)?;
    Ok(0)
}

/// Freezes or thaws the container's cgroup, as libcontainer's `pause` and
/// `resume` do; runlet saves the status itself, atomically (`state::save`).
fn freeze(l: &state::Loaded, to: FreezerState) -> Result<()> {
    use libcgroups::common::CgroupManager;
    let config = l.container.spec().map_err(|e| anyhow!("{e}"))?;
    let manager = libcgroups::common::create_cgroup_manager(crate::cgroups::cgroup_config(
        config.cgroup_path,
        l.container.systemd(),
        l.container.id(),
    ))
    .map_err(|e| anyhow!("{e}"))?;
    manager.freeze(to).map_err(|e| anyhow!("{e}"))
}
