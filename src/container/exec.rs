//! `exec`'s process: started inside the namespaces and cgroup of a running
//! container, with the container's seccomp filter (libcontainer's tenant
//! builder drops it).

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::rc::Rc;

use anyhow::{anyhow, bail, Context, Result};
use libcontainer::notify_socket::{NotifyListener, NotifySocket};
use libcontainer::oci_spec::runtime::{
    LinuxBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, Process,
};
use libcontainer::process::args::{ContainerArgs, ContainerType};
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::Executor;
use nix::unistd::Pid;

use super::clone::{clone_processes, connect_console, prepare_main_process};
use crate::cgroups::cgroup_config;
use crate::state;

/// An `exec` request, already resolved into the process to run.
pub struct TenantRequest {
    pub id: String,
    pub root: PathBuf,
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: i32,
    pub sub_cgroup: Option<String>,
    pub executor: Box<dyn Executor>,
    /// The pipe (read, write) whose write end closes when the process has
    /// started; created by the caller so a Wasm executor can close it.
    pub exec_notify: (OwnedFd, OwnedFd),
    /// The process is Wasm (runlet for its whole life).
    pub wasm: bool,
}

/// Starts a process inside the namespaces and cgroup of a running
/// container; returns its pid once it has been handed to the executor.
pub fn exec_tenant(req: TenantRequest, loaded: &state::Loaded) -> Result<Pid> {
    let container = &loaded.container;
    let dir = state::container_dir(&req.root, &req.id);
    let init_spec = state::load_spec_copy(&req.root, &req.id)?;
    let init_pid = container
        .pid()
        .ok_or_else(|| anyhow!("container {}: no init pid in state", req.id))?;
    let config = container
        .spec()
        .map_err(|e| anyhow!("container {}: {e}", req.id))?;

    let init_linux = init_spec
        .linux()
        .as_ref()
        .ok_or_else(|| anyhow!("linux: missing"))?;
    let mut namespaces = Vec::new();
    for ns in init_linux.namespaces().as_deref().unwrap_or_default() {
        let name = ns_proc_name(ns.typ());
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(ns.typ())
                .path(PathBuf::from(format!("/proc/{init_pid}/ns/{name}")))
                .build()?,
        );
    }
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(config.cgroup_path.clone());
    if let Some(seccomp) = init_linux.seccomp() {
        linux = linux.seccomp(seccomp.clone());
    }
    if let Some(p) = init_linux.personality() {
        linux = linux.personality(p.clone());
    }
    if let Some(m) = init_linux.uid_mappings() {
        linux = linux.uid_mappings(m.clone());
    }
    if let Some(m) = init_linux.gid_mappings() {
        linux = linux.gid_mappings(m.clone());
    }
    let mut spec = init_spec.clone();
    spec.set_linux(Some(linux.build()?))
        .set_process(Some(req.process))
        .set_hooks(None)
        .set_mounts(None);
    let late = crate::container::late::Late::split(&mut spec)?;

    let mut final_cgroup = crate::cgroups::exec_path(&config.cgroup_path, container.systemd());
    if let Some(sub) = req.sub_cgroup.as_deref().filter(|s| *s != "/") {
        let sub = sub.trim_start_matches('/');
        if sub.split('/').any(|c| c == "..") {
            bail!("--cgroup {sub:?}: not a sub-cgroup of the container");
        }
        final_cgroup = final_cgroup.join(sub);
    }

    let rand = nix::unistd::getpid().as_raw();
    if loaded.extra.cgroups_disabled {
        // A transient cgroup of its own, left right after (see create).
        final_cgroup =
            crate::cgroups::resolve_path(None, &format!("{}-exec-{rand}", req.id), false)?;
    }
    let exec_cgroup = crate::cgroups::plan(&cgroup_config(final_cgroup.clone(), false, &req.id));
    let notify_path = dir.join(format!("tenant-notify-{rand}.sock"));
    let console_socket = connect_console(
        &dir,
        req.console_socket.as_deref(),
        &format!("tenant-tty-{rand}"),
    )?;
    let notify_listener =
        NotifyListener::new(&notify_path).map_err(|e| anyhow!("notify socket: {e}"))?;
    let user_ns_config = crate::container::idmap::user_ns_config(&spec, &dir)?;
    let (read_end, write_end) = req.exec_notify;

    prepare_main_process(&spec)?;
    let rootfs = loaded.extra.rootfs.clone();
    let args = ContainerArgs {
        container_type: ContainerType::TenantContainer {
            exec_notify_fd: write_end.as_raw_fd(),
        },
        syscall: SyscallType::default(),
        spec: Rc::new(spec),
        rootfs,
        console_socket: console_socket.as_ref().map(|fd| fd.as_raw_fd()),
        notify_listener,
        preserve_fds: req.preserve_fds,
        // libcontainer needs the state to hand a seccomp listener its
        // metadata; the tenant spec has no hooks, so nothing else uses it.
        container: Some(container.clone()),
        user_ns_config,
        cgroup_config: cgroup_config(final_cgroup, false, &req.id),
        detached: true,
        executor: late.wrap(req.executor, req.preserve_fds),
        no_pivot: false,
        stdin: None,
        stdout: None,
        stderr: None,
        as_sibling: false,
        pid_file: None,
    };
    let result = clone_processes(&args, &req.root, &req.id, req.wasm).and_then(|pid| {
        NotifySocket::new(&notify_path)
            .notify_container_start()
            .map_err(|e| anyhow!("starting exec process: {e}"))?;
        Ok(pid)
    });
    let _ = fs::remove_file(&notify_path);
    let pid = result?;
    if loaded.extra.cgroups_disabled {
        crate::cgroups::evict_to_caller(&args.cgroup_config, &exec_cgroup)?;
    }
    drop(write_end);
    let failure = read_all(read_end)?;
    if !failure.is_empty() {
        bail!("exec failed: {}", String::from_utf8_lossy(&failure).trim());
    }
    Ok(pid)
}

fn read_all(fd: OwnedFd) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut file = fs::File::from(fd);
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).context("reading exec status")?;
    Ok(buf)
}

fn ns_proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}
