//! `create`: set up a container from a bundle; its process waits for `start`.

use anyhow::{bail, Result};
use libcontainer::container::Container;

use crate::cli::{absolute, CreateArgs};
use crate::config::spec;
use crate::container::fds::{forget_listen_fds, listen_fds};
use crate::container::{self, notify, InitRequest};
use crate::foreground::{check_terminal, ConsoleSocket};
use crate::state;
use crate::wasm::dispatch;
use crate::Ctx;

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
        crate::config::process::normalize_capabilities(&mut process);
        spec.set_process(Some(process));
    }
    if !extra_env.is_empty() {
        if let Some(mut process) = spec.process().clone() {
            let env = process.env().clone().unwrap_or_default();
            process.set_env(Some(crate::config::process::merge_env(&env, &extra_env)));
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
            crate::container::force_remove(ctx, id);
            bail!("--pid-file: {e}");
        }
    }
    Ok(Created {
        container,
        console: own_console,
    })
}
