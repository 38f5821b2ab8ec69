//! `start`: let a created container's process run.

use anyhow::{anyhow, bail, Result};
use libcontainer::container::ContainerStatus;
use libcontainer::notify_socket::{NotifySocket, NOTIFY_FILE};

use crate::container::notify::Relay;
use crate::state::{self, Loaded};
use crate::Ctx;

pub fn run(ctx: &Ctx, id: &str) -> Result<i32> {
    start(ctx, id)?;
    Ok(0)
}

pub fn start(ctx: &Ctx, id: &str) -> Result<Loaded> {
    let mut l = state::load(&ctx.root, id)?;
    match l.container.status() {
        ContainerStatus::Created => {}
        ContainerStatus::Running => bail!("cannot start an already running container"),
        ContainerStatus::Stopped => bail!("cannot start a container that has stopped"),
        s => bail!(
            "cannot start a container in the {} state",
            state::status_name(s)
        ),
    }
    let dir = state::container_dir(&ctx.root, id);
    let relay = match &l.extra.notify_socket {
        Some(host) => Some(Relay::bind(&dir, host.clone())?),
        None => None,
    };
    NotifySocket::new(dir.join(NOTIFY_FILE))
        .notify_container_start()
        .map_err(|e| anyhow!("container {id}: starting the process: {e}"))?;
    l.container.set_status(ContainerStatus::Running);
    state::save(&l.container)?;

    let config = l
        .container
        .spec()
        .map_err(|e| anyhow!("container {id}: {e}"))?;
    if let Some(hooks) = config.hooks.as_ref() {
        // The runtime spec: a failing poststart hook is a warning and the
        // lifecycle continues as if it had succeeded (runc 1.1 agrees).
        crate::container::run_hooks_warning(
            hooks.poststart().as_ref(),
            &l.container.state,
            Some(&dir),
            "poststart",
        );
    }
    if let (Some(relay), Some(pid)) = (relay, l.container.pid()) {
        relay.forward_until_ready(pid)?;
    }
    Ok(l)
}
