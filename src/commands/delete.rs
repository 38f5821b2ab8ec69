//! `delete`: remove a container and everything it holds (the work is in
//! src/container/remove.rs, which `create`, `run` and `restore` also use
//! when a later step fails).

use anyhow::{bail, Result};
use libcontainer::container::ContainerStatus;

use crate::cli::DeleteArgs;
use crate::container::remove::{remove, remove_damaged};
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
            tracing::warn!("{e:#}; removing what runlet's own records name");
            remove_damaged(ctx, id)?;
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
