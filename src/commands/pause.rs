//! `pause` and `resume`: freeze and thaw all processes of a container.

use anyhow::{bail, Result};
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
    if let Err(e) = l.container.pause() {
        bail!("pause {id}: {}", crate::container::root_cause(&e));
    }
    Ok(0)
}

pub fn resume(ctx: &Ctx, id: &str) -> Result<i32> {
    let mut l = state::load(&ctx.root, id)?;
    if l.container.status() != ContainerStatus::Paused {
        bail!("container not paused");
    }
    if let Err(e) = l.container.resume() {
        bail!("resume {id}: {}", crate::container::root_cause(&e));
    }
    Ok(0)
}
