//! `run`: create and start a container; in the foreground, wait for it,
//! forward signals, return its exit status and delete it (unless --keep).

use anyhow::Result;

use crate::cli::RunArgs;
use crate::foreground;
use crate::Ctx;

pub fn run(ctx: &Ctx, args: &RunArgs) -> Result<i32> {
    let id = &args.create.container_id;
    if args.detach {
        super::create::create(ctx, &args.create, true)?;
        if let Err(e) = super::start::start(ctx, id) {
            crate::container::force_remove(ctx, id);
            return Err(e);
        }
        return Ok(0);
    }

    let created = super::create::create(ctx, &args.create, false)?;
    let result = (|| {
        let master = match &created.console {
            Some(c) => Some(c.receive_master()?),
            None => None,
        };
        let sfd = foreground::block_signals()?;
        let loaded = super::start::start(ctx, id)?;
        let pid = loaded
            .container
            .pid()
            .or(created.container.pid())
            .ok_or_else(|| anyhow::anyhow!("container {id}: no init pid"))?;
        foreground::wait(sfd, pid, master)
    })();
    if !args.keep || result.is_err() {
        crate::container::force_remove(ctx, id);
    }
    result
}
