//! runlet's container builders, on libcontainer's public process machinery.
//!
//! libcontainer's `InitContainerBuilder` and `TenantContainerBuilder` read
//! config.json from the bundle themselves and derive the cgroup path from it
//! (`:youki:<id>` when `cgroupsPath` is unset). runlet needs the spec it has
//! already loaded and checked to reach the container unchanged by a second
//! read: runc's default cgroup path, the sd_notify relay mount, socket
//! activation env, and for exec the container's own cgroup and seccomp
//! filter (libcontainer's tenant builder drops the filter). So these two
//! functions do the builders' work with the same public pieces
//! (`container_main_process`, `Container`, `YoukiConfig`, `NotifyListener`)
//! and leave the namespace, mount, cgroup and process setup to libcontainer.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{anyhow, bail, Context, Result};
use libcgroups::common::CgroupConfig;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::notify_socket::{NotifyListener, NotifySocket, NOTIFY_FILE};
use libcontainer::oci_spec::runtime::{
    LinuxBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, Process, Spec,
};
use libcontainer::process::args::{ContainerArgs, ContainerType};
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::Executor;
use nix::unistd::Pid;

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

pub fn cgroup_config(path: PathBuf, systemd: bool, id: &str) -> CgroupConfig {
    CgroupConfig {
        cgroup_path: path,
        systemd_cgroup: systemd,
        container_name: id.to_string(),
    }
}

/// Creates the container: state dir, cgroup, namespaces and an init process
/// that waits for `start`. On any failure everything made so far is undone.
pub fn create_init(mut req: InitRequest) -> Result<Container> {
    let dir = state::make_container_dir(&req.root, &req.id)?;

    // The cgroups path as runc resolves it: cleaned, and below the caller's
    // cgroup when unset or relative (src/cgroups.rs).
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
    let own_pidns = crate::spec::new_namespace(&req.spec, LinuxNamespaceType::Pid);

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

    // After the copy for `exec` is saved: what libcontainer gets differs.
    let late = crate::late::Late::split(&mut spec)?;
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
    let host_dev = crate::dev::take_host_dev(&mut spec)?;
    // Detached when this returns: the container's clones of them remain.
    let _nodes = crate::dev::stage_missing_nodes(&mut spec, dir)?;
    let _idmapped = crate::idmap::stage_idmapped_mounts(&mut spec, dir)?;
    let console_socket = connect_console(dir, req.console_socket.as_deref(), "console-socket")?;
    let notify_listener =
        NotifyListener::new(&dir.join(NOTIFY_FILE)).map_err(|e| anyhow!("notify socket: {e}"))?;
    let user_ns_config = crate::idmap::user_ns_config(&spec, dir)?;

    if req.notify_socket.is_some() {
        crate::notify::make_dir(dir)?;
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
        own_pidns: crate::spec::new_namespace(&spec, LinuxNamespaceType::Pid),
        cgroup: ownership,
        cgroups_disabled,
    };
    extra.save(dir)?;

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
        cgroup_config: cgroups,
        detached: true,
        executor: late.wrap(req.executor, req.preserve_fds),
        no_pivot: req.no_pivot,
        stdin: None,
        stdout: None,
        stderr: None,
        as_sibling: false,
        pid_file: None,
    };
    let pid = clone_processes(&args, &req.root, &req_id, req.handler_is_wasm)?;
    // From here on the init exists: a failure must take it down too.
    let finish = |extra: &mut RunletState| -> Result<()> {
        if extra.cgroups_disabled {
            crate::cgroups::evict_to_caller(&args.cgroup_config, &extra.cgroup)?;
            // Nothing of a cgroup is the container's any more.
            extra.cgroup = crate::cgroups::Ownership::default();
            extra.save(dir)?;
        } else {
            crate::cgroups::finish_apply(&args.cgroup_config, &configured)?;
            crate::cgroups::apply_oom_killer_setting(&args.cgroup_config, &args.spec)?;
        }
        crate::post_create::give_stdio_to_user(&args.spec, pid);
        crate::post_create::finish(&args.spec, pid, host_dev.as_ref())
    };
    if let Err(e) = finish(&mut extra) {
        crate::cgroups::remove(crate::cgroups::Target {
            id: &req_id,
            config: args.cgroup_config.clone(),
            init: Some(pid),
            own_pidns: extra.own_pidns,
            ownership: &extra.cgroup,
        })?;
        return Err(e);
    }

    extra.init_pid = Some(pid.as_raw());
    extra.init_start_time = state::process_start_time(pid.as_raw());
    extra.save(dir)?;
    container
        .set_status(ContainerStatus::Created)
        .set_creator(nix::unistd::geteuid().as_raw())
        .set_pid(pid.as_raw());
    state::save(&container)?;
    Ok(container)
}

/// Has libcontainer clone the container's processes (its main process:
/// intermediate, then init or exec process). They are clones of this
/// runlet without an execve, so first everything of runlet's that they
/// must not hold goes: the host's procfs handle (`fds`) and the caller's
/// command line and environment (`procview`). A Wasm process is runlet for
/// its whole life, so there a view that cannot be replaced is an error.
fn clone_processes(args: &ContainerArgs, root: &Path, id: &str, wasm: bool) -> Result<Pid> {
    let process = args.spec.process().as_ref();
    let shown = crate::procview::Shown::set(
        process
            .and_then(|p| p.args().as_deref())
            .unwrap_or_default(),
        process.and_then(|p| p.env().as_deref()).unwrap_or_default(),
    );
    let _shown = match shown {
        Ok(s) => Some(s),
        Err(e) if wasm => bail!(
            "cannot hide runlet's command line and environment from the Wasm container: prctl(PR_SET_MM_MAP): {e} (a kernel with CONFIG_CHECKPOINT_RESTORE is needed)"
        ),
        Err(e) => {
            tracing::debug!("prctl(PR_SET_MM_MAP): {e}; the init shows runlet's environment until start");
            None
        }
    };
    crate::fds::close_procfs_cache();
    let errors = crate::logging::ChildErrors::capture(&crate::inflight::marker(root, id));
    libcontainer::process::container_main_process::container_main_process(args)
        .map_err(|e| process_failure(&e, errors.as_ref(), &args.spec))
}

/// Absent capability sets mean empty ones (runc's reading of the spec);
/// libcontainer would leave an absent set as the process had it.
pub fn normalize_capabilities(process: &mut Process) {
    if let Some(mut caps) = process.capabilities().clone() {
        let empty = || Some(Default::default());
        if caps.bounding().is_none() {
            caps.set_bounding(empty());
        }
        if caps.effective().is_none() {
            caps.set_effective(empty());
        }
        if caps.permitted().is_none() {
            caps.set_permitted(empty());
        }
        if caps.inheritable().is_none() {
            caps.set_inheritable(empty());
        }
        if caps.ambient().is_none() {
            caps.set_ambient(empty());
        }
        process.set_capabilities(Some(caps));
    }
}

/// What libcontainer's builder does in the runtime process before cloning:
/// the OOM score is inherited by the container, and the runtime becomes
/// non-dumpable so that processes in the namespaces it joins cannot ptrace
/// it or open its /proc entries.
fn prepare_main_process(spec: &Spec) -> Result<()> {
    if let Some(adj) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        fs::OpenOptions::new()
            .write(true)
            .open("/proc/self/oom_score_adj")
            .and_then(|mut f| f.write_all(adj.to_string().as_bytes()))
            .map_err(|e| anyhow!("process.oomScoreAdj {adj}: {e}"))?;
    }
    if spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some()
    {
        // SAFETY: PR_SET_DUMPABLE takes an integer argument and touches no memory.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
            bail!(
                "prctl(PR_SET_DUMPABLE): {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// Connects to the caller's console socket (libcontainer sends the pty
/// master over it once the container's terminal exists).
fn connect_console(dir: &Path, socket: Option<&Path>, name: &str) -> Result<Option<OwnedFd>> {
    socket
        .map(|path| {
            libcontainer::tty::setup_console_socket(dir, path, name)
                .map_err(|e| anyhow!("console socket {}: {e}", path.display()))
        })
        .transpose()
}

/// Runs poststart or poststop hooks as the runtime spec says: a failing
/// hook is a warning and the remaining hooks still run (libcontainer's
/// `run_hooks` stops at the first failure). A hook without `env` gets
/// runlet's environment, as runc's hooks inherit runc's (libcontainer
/// would clear it, leaving no PATH).
pub fn run_hooks_warning(
    hooks: Option<&Vec<libcontainer::oci_spec::runtime::Hook>>,
    state: &libcontainer::container::State,
    dir: Option<&Path>,
    kind: &str,
) {
    for hook in hooks.into_iter().flatten() {
        let mut hook = hook.clone();
        if hook.env().is_none() {
            hook.set_env(Some(
                std::env::vars().map(|(k, v)| format!("{k}={v}")).collect(),
            ));
        }
        if let Err(e) =
            libcontainer::hooks::run_hooks(Some(&vec![hook]), Some(state), dir, None, None)
        {
            let msg = root_cause(&e);
            tracing::warn!(id = %state.id, "{kind} hook failed: {msg}");
            crate::logging::warn(format_args!("{kind} hook failed: {msg}"));
        }
    }
}

/// The error of a container process that failed to start: the first error
/// it logged (the cause; see `logging::ChildErrors`), else libcontainer's
/// own line. A failed chdir names the cwd, as runc does.
fn process_failure(
    err: &dyn std::error::Error,
    errors: Option<&crate::logging::ChildErrors>,
    spec: &Spec,
) -> anyhow::Error {
    let Some(cause) = errors.and_then(|e| e.first()) else {
        return anyhow!("{}", root_cause(err));
    };
    if cause.starts_with("failed to chdir") {
        let cwd = spec
            .process()
            .as_ref()
            .map(|p| p.cwd().display().to_string())
            .unwrap_or_default();
        let why = crate::logging::errno_desc(&cause).unwrap_or(cause.clone());
        return anyhow!("process.cwd: chdir to cwd {cwd:?} set in config.json failed: {why}");
    }
    if cause.contains("not found in PATH") {
        // runc's words, which podman matches to exit with 127.
        let arg0 = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().as_ref())
            .and_then(|a| a.first().cloned())
            .unwrap_or_default();
        return anyhow!("process.args[0]: exec: {arg0:?}: executable file not found in $PATH");
    }
    if let Some(field) = failed_mount(&cause, spec) {
        return anyhow!("{field}: the mount failed ({cause})");
    }
    anyhow!("container process: {cause}")
}

/// `mounts[i] <destination>` for libcontainer's "failed to mount ..."
/// lines, which print the mount (or just /dev, or the cgroup version) and
/// lose the errno.
fn failed_mount(cause: &str, spec: &Spec) -> Option<String> {
    let rest = cause.strip_prefix("failed to mount ")?;
    let mounts = spec.mounts().as_ref()?;
    let found = if let Some(at) = rest.find("destination: \"") {
        let dest = &rest[at + 14..];
        let dest = &dest[..dest.find('"')?];
        mounts
            .iter()
            .rposition(|m| crate::cgroups::clean(m.destination()) == Path::new(dest))
    } else if rest.starts_with("/dev:") {
        mounts
            .iter()
            .rposition(|m| crate::cgroups::clean(m.destination()) == Path::new("/dev"))
    } else if rest.starts_with("cgroup") {
        mounts
            .iter()
            .rposition(|m| matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")))
    } else {
        None
    }?;
    Some(format!(
        "mounts[{found}] {}",
        mounts[found].destination().display()
    ))
}

/// The innermost message of an error chain: libcontainer wraps the cause in
/// several layers that all say "failed to ...".
pub fn root_cause(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !s.is_empty() {
            msg = s;
        }
        cur = e.source();
    }
    msg
}

/// Kills the container's processes, removes the cgroup runlet made for it
/// and the state dir. Used when create fails and by delete.
pub fn remove_everything(dir: &Path, target: crate::cgroups::Target) {
    let id = target.id.to_string();
    if let Err(e) = crate::cgroups::remove(target) {
        tracing::warn!("{e:#}");
    }
    unmount_staged(dir);
    if let Err(e) = fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(%id, "removing {}: {e}", dir.display());
        }
    }
}

/// Detaches what `create` stages on the host below the state dir (idmapped
/// and unreachable bind sources, device nodes; see `idmap` and `dev`) in
/// case the create that made them died before it could.
pub fn unmount_staged(dir: &Path) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(crate::idmap::STAGE_PREFIX) || name == crate::dev::NODES_DIR {
            let _ = nix::mount::umount2(&entry.path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

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
    let late = crate::late::Late::split(&mut spec)?;

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
    let user_ns_config = crate::idmap::user_ns_config(&spec, &dir)?;
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

/// Env entries as a map, later entries winning, for merging `exec -e`.
pub fn merge_env(base: &[String], overrides: &[String]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut map: HashMap<String, String> = HashMap::new();
    for kv in base.iter().chain(overrides) {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        if !map.contains_key(k) {
            order.push(k.to_string());
        }
        map.insert(k.to_string(), v.to_string());
    }
    order
        .into_iter()
        .map(|k| {
            let v = map.get(&k).cloned().unwrap_or_default();
            format!("{k}={v}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_merge_overrides_in_place() {
        let base = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let out = merge_env(&base, &["A=2".to_string(), "B=3".to_string()]);
        assert_eq!(out, vec!["PATH=/bin", "A=2", "B=3"]);
    }

    #[test]
    fn root_cause_is_innermost() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner detail"));
        assert_eq!(root_cause(&e), "inner detail");
    }
}
