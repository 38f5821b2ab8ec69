//! `create`'s container: state dir, cgroup, namespaces and an init that
//! waits for `start`, on libcontainer's public process machinery.
//!
//! libcontainer's `InitContainerBuilder` and `TenantContainerBuilder` read
//! config.json from the bundle themselves and derive the cgroup path from it
//! (`:youki:<id>` when `cgroupsPath` is unset). runlet needs the spec it has
//! already loaded and checked to reach the container unchanged by a second
//! read: runc's default cgroup path, the sd_notify relay mount, socket
//! activation env, and for exec the container's own cgroup and seccomp
//! filter (libcontainer's tenant builder drops the filter). So `create`
//! (here) and `exec` (exec.rs) do the builders' work with the same public
//! pieces (`container_main_process`, `Container`, `YoukiConfig`,
//! `NotifyListener`) and leave the namespace, mount, cgroup and process
//! setup to libcontainer.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{anyhow, Result};
use libcgroups::common::CgroupConfig;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::notify_socket::{NotifyListener, NOTIFY_FILE};
use libcontainer::oci_spec::runtime::{LinuxNamespaceType, Spec};
use libcontainer::process::args::{ContainerArgs, ContainerType};
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::Executor;

use super::clone::{clone_processes, connect_console, prepare_main_process};
use super::remove::remove_everything;
use crate::cgroups::cgroup_config;
use crate::state::{self, RunletState};

/// Everything `create` decides before libcontainer takes over.
pub struct InitRequest {
    pub id: String,
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub spec: Spec,
    pub systemd: bool,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: i32,
    pub no_pivot: bool,
    pub executor: Box<dyn Executor>,
    pub handler: String,
    /// The workload is Wasm: the init stays runlet for its whole life.
    pub handler_is_wasm: bool,
    pub notify_socket: Option<PathBuf>,
    /// `--cgroup-manager=disabled`.
    pub cgroups_disabled: bool,
}

/// Creates the container: state dir, cgroup, namespaces and an init process
/// that waits for `start`. On any failure everything made so far is undone.
pub fn create_init(mut req: InitRequest) -> Result<Container> {
    let dir = state::make_container_dir(&req.root, &req.id)?;

    // The cgroups path as runc resolves it: cleaned, and below the caller's
    // cgroup when unset or relative (src/cgroups/placement.rs).
    if let Some(linux) = req.spec.linux().as_ref() {
        let path =
            crate::cgroups::resolve_path(linux.cgroups_path().as_deref(), &req.id, req.systemd);
        let path = match path {
            Ok(p) => p,
            Err(e) => {
                let _ = fs::remove_dir(&dir);
                return Err(e);
            }
        };
        let mut linux = linux.clone();
        linux.set_cgroups_path(Some(path));
        req.spec.set_linux(Some(linux));
    }
    let cgroup_path = req
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .unwrap_or_default();
    let cgroups = cgroup_config(cgroup_path, req.systemd, &req.id);
    let ownership = crate::cgroups::plan(&cgroups);
    let own_pidns = crate::config::ids::new_namespace(&req.spec, LinuxNamespaceType::Pid);

    let id = req.id.clone();
    match build_init(req, &dir, cgroups.clone(), ownership.clone()) {
        Ok(done) => Ok(done),
        Err(err) => {
            remove_everything(
                &dir,
                crate::cgroups::Target {
                    id: &id,
                    config: cgroups,
                    init: None,
                    own_pidns,
                    ownership: &ownership,
                },
            );
            Err(err)
        }
    }
}

fn build_init(
    req: InitRequest,
    dir: &Path,
    cgroups: CgroupConfig,
    ownership: crate::cgroups::Ownership,
) -> Result<Container> {
    let mut spec = req.spec;
    let rootfs = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .ok_or_else(|| anyhow!("root: missing"))?;

    let req_id = req.id.clone();
    let mut container = Container::new(&req.id, ContainerStatus::Creating, None, &req.bundle, dir)
        .map_err(|e| anyhow!("{e}"))?;
    container
        .set_systemd(req.systemd)
        .set_annotations(spec.annotations().clone());
    state::save(&container)?;

    state::save_spec_records(dir, &spec, &req.id)?;
    // The cgroup mount, when runlet makes it (see `cgroupfs`), is left out
    // of what libcontainer gets, but not out of the saved config. Not with
    // cgroups disabled: the init leaves its cgroup (and a cgroup namespace
    // rooted there) before the helper runs, so only the init can mount it.
    let cgroupfs = if req.cgroups_disabled {
        None
    } else {
        crate::container::cgroupfs::take(&mut spec)
    };

    // After the copy for `exec` is saved: what libcontainer gets differs.
    let late = crate::container::late::Late::split(&mut spec)?;
    // The resources as configured, for what runlet applies itself after
    // libcontainer (`cgroups::finish_apply`).
    let configured = spec.clone();
    if let Some(mut linux) = spec.linux().clone() {
        if let Some(mut resources) = linux.resources().clone() {
            crate::cgroups::prepare_resources(&mut resources, req.systemd);
            linux.set_resources(Some(resources));
            spec.set_linux(Some(linux));
        }
    }
    let host_dev = crate::container::dev::take_host_dev(&mut spec)?;
    // Detached when this returns: the container's clones of them remain.
    let _nodes = crate::container::dev::stage_missing_nodes(&mut spec, dir)?;
    let _idmapped = crate::container::idmap::stage_idmapped_mounts(&mut spec, dir)?;
    let console_socket = connect_console(dir, req.console_socket.as_deref(), "console-socket")?;
    let notify_listener =
        NotifyListener::new(&dir.join(NOTIFY_FILE)).map_err(|e| anyhow!("notify socket: {e}"))?;
    let user_ns_config = crate::container::idmap::user_ns_config(&spec, dir)?;

    if req.notify_socket.is_some() {
        crate::container::notify::make_dir(dir)?;
    }
    prepare_main_process(&spec)?;

    let cgroups_disabled = req.cgroups_disabled;
    let mut extra = RunletState {
        rootfs: rootfs.clone(),
        cgroups_path: Some(cgroups.cgroup_path.clone()),
        init_pid: None,
        init_start_time: None,
        handler: req.handler,
        notify_socket: req.notify_socket,
        own_pidns: crate::config::ids::new_namespace(&spec, LinuxNamespaceType::Pid),
        cgroup: ownership,
        cgroups_disabled,
    };
    extra.save(dir)?;

    // With systemd on cgroup v2 the scope is started from here (see
    // `cgroups::Scope`): libcontainer then joins it by path, and no D-Bus
    // connection is made in the processes it clones.
    let resources = spec.linux().as_ref().and_then(|l| l.resources().clone());
    let scope = crate::cgroups::Scope::start(&cgroups, resources.as_ref())?;
    let args = ContainerArgs {
        container_type: ContainerType::InitContainer,
        syscall: SyscallType::default(),
        spec: Rc::new(spec),
        rootfs,
        console_socket: console_socket.as_ref().map(|fd| fd.as_raw_fd()),
        notify_listener,
        preserve_fds: req.preserve_fds,
        container: Some(container.clone()),
        user_ns_config,
        cgroup_config: scope
            .as_ref()
            .map_or_else(|| cgroups.clone(), |s| s.cgroupfs.clone()),
        detached: true,
        executor: late.wrap(req.executor, req.preserve_fds),
        no_pivot: req.no_pivot,
        stdin: None,
        stdout: None,
        stderr: None,
        as_sibling: false,
        pid_file: None,
    };
    let pid = clone_processes(&args, &req.root, &req_id, req.handler_is_wasm);
    // The init has joined the scope (or failed): its placeholder may go.
    drop(scope);
    let pid = pid?;
    // From here on the init exists: a failure must take it down too.
    let finish = |extra: &mut RunletState| -> Result<()> {
        if extra.cgroups_disabled {
            crate::cgroups::evict_to_caller(&cgroups, &extra.cgroup)?;
            // Nothing of a cgroup is the container's any more.
            extra.cgroup = crate::cgroups::Ownership::default();
            extra.save(dir)?;
        } else {
            crate::cgroups::finish_apply(&cgroups, &configured)?;
            crate::cgroups::apply_oom_killer_setting(&cgroups, &args.spec)?;
        }
        crate::container::post_create::give_stdio_to_user(&args.spec, pid);
        crate::container::post_create::finish(&args.spec, pid, host_dev.as_ref(), cgroupfs.as_ref())
    };
    if let Err(e) = finish(&mut extra) {
        crate::cgroups::remove(crate::cgroups::Target {
            id: &req_id,
            config: cgroups.clone(),
            init: Some(pid),
            own_pidns: extra.own_pidns,
            ownership: &extra.cgroup,
        })?;
        return Err(e);
    }

    extra.init_pid = Some(pid.as_raw());
    extra.init_start_time = crate::container::process::process_start_time(pid.as_raw());
    extra.save(dir)?;
    container
        .set_status(ContainerStatus::Created)
        .set_creator(nix::unistd::geteuid().as_raw())
        .set_pid(pid.as_raw());
    state::save(&container)?;
    Ok(container)
}
