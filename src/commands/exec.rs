//! `exec`: run another process inside a running container.

use anyhow::{anyhow, bail, Result};
use libcontainer::container::ContainerStatus;
use libcontainer::oci_spec::runtime::{Capabilities, Capability, Process};

use crate::cli::ExecArgs;
use crate::container::{self, TenantRequest};
use crate::foreground::{self, ConsoleSocket};
use crate::wasm::dispatch;
use crate::{state, Ctx};

pub fn run(ctx: &Ctx, args: &ExecArgs) -> Result<i32> {
    let id = &args.container_id;
    let loaded = state::load(&ctx.root, id)?;
    match loaded.container.status() {
        ContainerStatus::Running | ContainerStatus::Created => {}
        ContainerStatus::Paused if args.ignore_paused => {}
        ContainerStatus::Paused => bail!("cannot exec in a paused container"),
        ContainerStatus::Stopped => bail!("cannot exec in a stopped container"),
        ContainerStatus::Creating => bail!("cannot exec in a container that is being created"),
    }
    if args.preserve_fds < 0 {
        bail!("--preserve-fds {}: must not be negative", args.preserve_fds);
    }
    let init_spec = state::load_spec_copy(&ctx.root, id)?;
    let mut process = build_process(args, &init_spec)?;
    crate::config::process::normalize_capabilities(&mut process);
    let terminal = process.terminal().unwrap_or(false);
    crate::foreground::check_terminal(terminal, args.console_socket.is_some(), args.detach)?;

    let own_console = if terminal && args.console_socket.is_none() {
        Some(ConsoleSocket::bind(&ctx.root)?)
    } else {
        None
    };
    let console_socket = match &own_console {
        Some(c) => Some(c.path().to_path_buf()),
        None => args
            .console_socket
            .as_deref()
            .map(crate::cli::absolute)
            .transpose()?,
    };
    let pid_file = args
        .pid_file
        .as_deref()
        .map(crate::cli::absolute)
        .transpose()?;
    let init_pid = loaded
        .container
        .pid()
        .ok_or_else(|| anyhow!("container {id}: no init pid"))?;
    // The container's own view of its filesystem, mounts included.
    let root = std::path::PathBuf::from(format!("/proc/{init_pid}/root"));
    let workload = dispatch::decide_exec(
        &root,
        process.args().as_deref().unwrap_or_default(),
        process.env().as_deref().unwrap_or_default(),
        process.cwd(),
    );
    // Socket activation is for the container's init, never for exec.
    crate::container::fds::forget_listen_fds();
    let (notify_read, notify_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let executor = crate::wasm::executor_for(
        &workload,
        &process,
        loaded.container.state.annotations.as_ref(),
        &root,
        ctx,
        Some(std::os::fd::AsRawFd::as_raw_fd(&notify_write)),
        args.preserve_fds,
    )?;
    let pid = container::exec_tenant(
        TenantRequest {
            id: id.clone(),
            root: ctx.root.clone(),
            process,
            console_socket,
            preserve_fds: args.preserve_fds,
            sub_cgroup: args.cgroup.clone(),
            executor,
            exec_notify: (notify_read, notify_write),
            wasm: !matches!(workload, dispatch::Workload::Native),
        },
        &loaded,
    )?;
    if let Some(pid_file) = pid_file {
        state::write_public(&pid_file, pid.to_string().as_bytes())?;
    }
    if args.detach {
        return Ok(0);
    }
    let master = match &own_console {
        Some(c) => Some(c.receive_master()?),
        None => None,
    };
    let sfd = foreground::block_signals()?;
    foreground::wait(sfd, pid, master)
}

/// What a process.json leaves out is the container's: without
/// `capabilities` the process would otherwise get the caller's full set
/// (runc, too, falls back to the container's set, and its AppArmor profile
/// and SELinux label), without `user` run as root, without `rlimits` or
/// `noNewPrivileges` escape limits the container's process has (runc 1.1
/// gives root, the caller's limits and no no_new_privs there: runlet keeps
/// the container's, see docs/security.md).
fn inherit_omitted(raw: &mut serde_json::Value, container: Option<&Process>) {
    const KEYS: [&str; 6] = [
        "capabilities",
        "rlimits",
        "noNewPrivileges",
        "apparmorProfile",
        "selinuxLabel",
        "user",
    ];
    let Some(container) = container.and_then(|p| serde_json::to_value(p).ok()) else {
        return;
    };
    let Some(obj) = raw.as_object_mut() else {
        return;
    };
    for key in KEYS {
        if obj.get(key).is_none_or(|v| v.is_null()) {
            if let Some(v) = container.get(key).filter(|v| !v.is_null()) {
                obj.insert(key.to_string(), v.clone());
            }
        }
    }
}

/// `CAP_SYS_ADMIN`, `SYS_ADMIN` or `sys_admin`. oci-spec's `FromStr`
/// knows only the bare upper-case name; its JSON form takes the others.
fn parse_capability(name: &str) -> Result<Capability> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    serde_json::from_value(serde_json::Value::String(full))
        .map_err(|_| anyhow!("--cap {name:?}: unknown capability"))
}

/// The process to run: process.json as given, or the container's own
/// process with the command line's changes, as runc builds it.
fn build_process(
    args: &ExecArgs,
    init_spec: &libcontainer::oci_spec::runtime::Spec,
) -> Result<Process> {
    if let Some(path) = &args.process {
        let data = std::fs::read(path).map_err(|e| anyhow!("--process {}: {e}", path.display()))?;
        let mut raw: serde_json::Value = serde_json::from_slice(&data)
            .map_err(|e| anyhow!("--process {}: invalid process: {e}", path.display()))?;
        inherit_omitted(&mut raw, init_spec.process().as_ref());
        let mut wrapped = serde_json::json!({ "process": raw });
        crate::config::compat::fix_json(&mut wrapped);
        let mut process: Process = serde_json::from_value(wrapped["process"].take())
            .map_err(|e| anyhow!("--process {}: invalid process: {e}", path.display()))?;
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            bail!("--process {}: args must not be empty", path.display());
        }
        if !process.cwd().is_absolute() {
            bail!(
                "--process {}: cwd {:?} must be an absolute path",
                path.display(),
                process.cwd()
            );
        }
        crate::config::compat::fix_process(&mut process);
        return Ok(process);
    }
    if args.command.is_empty() {
        bail!("exec: no command given (and no --process)");
    }
    let mut p = init_spec.process().clone().unwrap_or_default();
    p.set_args(Some(args.command.clone()));
    let env = p.env().clone().unwrap_or_default();
    p.set_env(Some(crate::config::process::merge_env(&env, &args.env)));
    if let Some(cwd) = &args.cwd {
        if !cwd.is_absolute() {
            bail!("--cwd {cwd:?}: must be an absolute path");
        }
        p.set_cwd(cwd.clone());
    }
    p.set_terminal(Some(args.tty));
    if args.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    crate::config::compat::fix_process(&mut p);
    if let Some(profile) = &args.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(user) = &args.user {
        let mut u = p.user().clone();
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user.as_str(), None),
        };
        u.set_uid(
            uid.parse()
                .map_err(|_| anyhow!("--user {user:?}: uid must be a number"))?,
        );
        if let Some(g) = gid {
            u.set_gid(
                g.parse()
                    .map_err(|_| anyhow!("--user {user:?}: gid must be a number"))?,
            );
        }
        p.set_user(u);
    }
    if !args.additional_gids.is_empty() {
        // Added to the container's own, as runc does.
        let mut u = p.user().clone();
        let mut gids = u.additional_gids().clone().unwrap_or_default();
        gids.extend(args.additional_gids.iter().copied());
        u.set_additional_gids(Some(gids));
        p.set_user(u);
    }
    if !args.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &args.cap {
            let cap = parse_capability(name)?;
            // As runc (1.2 and later): the bounding, effective and permitted
            // sets; inheritable and ambient are left as the container has
            // them (CVE-2022-29162).
            let add = |set: &Option<Capabilities>| {
                let mut set = set.clone().unwrap_or_default();
                set.insert(cap);
                Some(set)
            };
            let (b, e, pm) = (
                add(caps.bounding()),
                add(caps.effective()),
                add(caps.permitted()),
            );
            caps.set_bounding(b).set_effective(e).set_permitted(pm);
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each key a process.json may leave out is taken from the container's
    /// process; a key it gives is kept.
    #[test]
    fn omitted_keys_come_from_the_container() {
        let container: Process = serde_json::from_value(serde_json::json!({
            "args": ["sleep", "1"],
            "cwd": "/",
            "user": { "uid": 1000, "gid": 1000 },
            "capabilities": { "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"] },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 512, "soft": 256 }],
            "noNewPrivileges": true,
            "apparmorProfile": "container-profile",
            "selinuxLabel": "system_u:system_r:container_t:s0"
        }))
        .expect("container process");
        let mut raw = serde_json::json!({ "args": ["id"], "cwd": "/" });
        inherit_omitted(&mut raw, Some(&container));
        let merged: Process = serde_json::from_value(raw).expect("merged process");
        assert_eq!(merged.user().uid(), 1000);
        assert_eq!(merged.capabilities(), container.capabilities());
        assert_eq!(merged.rlimits(), container.rlimits());
        assert_eq!(merged.no_new_privileges(), Some(true));
        assert_eq!(
            merged.apparmor_profile().as_deref(),
            Some("container-profile")
        );
        assert_eq!(
            merged.selinux_label().as_deref(),
            Some("system_u:system_r:container_t:s0")
        );
        assert_eq!(merged.args().as_deref(), Some(&["id".to_string()][..]));

        let mut raw = serde_json::json!({
            "args": ["id"], "cwd": "/", "user": { "uid": 0, "gid": 0 }, "noNewPrivileges": false
        });
        inherit_omitted(&mut raw, Some(&container));
        let merged: Process = serde_json::from_value(raw).expect("merged process");
        assert_eq!(merged.user().uid(), 0);
        assert_eq!(merged.no_new_privileges(), Some(false));
    }
}
