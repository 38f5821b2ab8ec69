//! `create`: set up a container from a bundle; its process waits for `start`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use libcontainer::container::Container;

use crate::cli::CreateArgs;
use crate::container::{self, InitRequest};
use crate::foreground::ConsoleSocket;
use crate::state;
use crate::wasm::dispatch;
use crate::{notify, spec, Ctx};

pub fn run(ctx: &Ctx, args: &CreateArgs) -> Result<i32> {
    create(ctx, args, true)?;
    Ok(0)
}

/// A created container, and the console socket runlet bound itself when a
/// foreground `run` relays the container's terminal.
pub struct Created {
    pub container: Container,
    pub console: Option<ConsoleSocket>,
}

/// Creates the container. `detached` is false only for a foreground `run`:
/// then a terminal without `--console-socket` is relayed by runlet.
pub fn create(ctx: &Ctx, args: &CreateArgs, detached: bool) -> Result<Created> {
    let id = &args.container_id;
    state::validate_id(id)?;
    if args.preserve_fds < 0 {
        bail!("--preserve-fds {}: must not be negative", args.preserve_fds);
    }
    let (bundle, mut spec) = spec::load_bundle_spec(&args.bundle, args.config.as_deref())?;
    crate::cgroups::check_unified(&spec)?;
    crate::cgroups::deny_all_devices_first(&mut spec)?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    check_terminal(terminal, args.console_socket.is_some(), detached)?;
    let own_console = if terminal && !detached && args.console_socket.is_none() {
        Some(ConsoleSocket::bind(&ctx.root)?)
    } else {
        None
    };
    let console_socket = match &own_console {
        Some(c) => Some(c.path().to_path_buf()),
        None => args.console_socket.clone(),
    };

    let rootfs = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_default();
    let workload = dispatch::decide(&spec, &rootfs)?;
    let executor = match spec.process() {
        Some(process) => crate::wasm::executor_for(
            &workload,
            process,
            spec.annotations().as_ref(),
            &rootfs,
            ctx,
            None,
            args.preserve_fds + listen_fds(),
        )?,
        None => bail!("process: missing"),
    };
    let dir = state::container_dir(&ctx.root, id);

    // Socket activation: fds 3.. from systemd pass through, as runc does.
    let listen_fds = listen_fds();
    forget_listen_fds();
    let mut extra_env = Vec::new();
    if listen_fds > 0 {
        extra_env.push(format!("LISTEN_FDS={listen_fds}"));
        extra_env.push("LISTEN_PID=1".to_string());
    }
    let notify_socket = notify::prepare_spec(&mut spec, &dir)?;
    if let Some(mut process) = spec.process().clone() {
        container::normalize_capabilities(&mut process);
        spec.set_process(Some(process));
    }
    if !extra_env.is_empty() {
        if let Some(mut process) = spec.process().clone() {
            let env = process.env().clone().unwrap_or_default();
            process.set_env(Some(container::merge_env(&env, &extra_env)));
            spec.set_process(Some(process));
        }
    }

    let pid_file = args.pid_file.as_deref().map(absolute).transpose()?;
    let console_socket = console_socket.as_deref().map(absolute).transpose()?;
    let container = container::create_init(InitRequest {
        id: id.clone(),
        root: ctx.root.clone(),
        bundle,
        spec,
        systemd: ctx.systemd,
        console_socket,
        preserve_fds: args.preserve_fds + listen_fds,
        no_pivot: args.no_pivot,
        executor,
        handler: workload.name().to_string(),
        handler_is_wasm: !matches!(workload, dispatch::Workload::Native),
        notify_socket,
        cgroups_disabled: ctx.cgroups_disabled,
    })?;

    if let Some(pid_file) = pid_file {
        let pid = container.pid().map(|p| p.as_raw()).unwrap_or(0);
        if let Err(e) = state::write_public(&pid_file, pid.to_string().as_bytes()) {
            super::delete::force_remove(ctx, id);
            bail!("--pid-file: {e}");
        }
    }
    Ok(Created {
        container,
        console: own_console,
    })
}

/// runc's rules for terminals, with runc's wording.
pub fn check_terminal(terminal: bool, console_socket: bool, detached: bool) -> Result<()> {
    if detached && terminal && !console_socket {
        bail!("cannot allocate tty if runc will detach without setting console socket");
    }
    if console_socket && !terminal {
        bail!("cannot use console socket if runc will not detach or allocate tty");
    }
    Ok(())
}

pub fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

/// libcontainer's init reads LISTEN_FDS from the runtime's environment
/// again (without checking LISTEN_PID) and would pass the fds a second
/// time; runlet has taken them into account already.
pub fn forget_listen_fds() {
    for var in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
}

/// Number of fds passed by systemd socket activation, when meant for us.
pub fn listen_fds() -> i32 {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    if !pid_ok {
        return 0;
    }
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_rules() {
        assert!(check_terminal(true, false, true).is_err());
        assert!(check_terminal(false, true, true).is_err());
        assert!(check_terminal(true, true, true).is_ok());
        assert!(check_terminal(false, false, true).is_ok());
        assert!(check_terminal(true, false, false).is_ok());
    }
}
