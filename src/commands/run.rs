//! `run`: create and start a container; in the foreground, wait for it,
//! forward signals, return its exit status and delete it (unless --keep).

use anyhow::Result;

use crate::cli::RunArgs;
use crate::foreground::{self, ConsoleSocket};
use crate::Ctx;

pub fn run(ctx: &Ctx, args: &RunArgs) -> Result<i32> {
    let id = &args.create.container_id;
    if args.detach {
        super::create::create(ctx, &args.create, args.create.console_socket.clone(), true)?;
        if let Err(e) = super::start::start(ctx, id) {
            super::delete::force_remove(ctx, id);
            return Err(e);
        }
        return Ok(0);
    }

    // A terminal with no console socket from the caller: relay it ourselves.
    let own_console = if args.create.console_socket.is_none() && wants_terminal(args)? {
        Some(ConsoleSocket::bind(&ctx.root)?)
    } else {
        None
    };
    let console_path = match &own_console {
        Some(c) => Some(c.path().to_path_buf()),
        None => args.create.console_socket.clone(),
    };
    let (container, _) = super::create::create(ctx, &args.create, console_path, false)?;
    let result = (|| {
        let master = match &own_console {
            Some(c) => Some(c.receive_master()?),
            None => None,
        };
        let sfd = foreground::block_signals()?;
        let loaded = super::start::start(ctx, id)?;
        let pid = loaded
            .container
            .pid()
            .or(container.pid())
            .ok_or_else(|| anyhow::anyhow!("container {id}: no init pid"))?;
        foreground::wait(sfd, pid, master)
    })();
    if !args.keep || result.is_err() {
        super::delete::force_remove(ctx, id);
    }
    result
}

fn wants_terminal(args: &RunArgs) -> Result<bool> {
    let (_, spec) =
        crate::spec::load_bundle_spec(&args.create.bundle, args.create.config.as_deref())?;
    Ok(spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false))
}
