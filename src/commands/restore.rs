//! `restore`: bring a container back from a CRIU checkpoint, as runc does.
//!
//! The cgroup is made and its limits set first, with CRIU's own process in
//! it, and CRIU is told to restore the tree there (`cg_root`). The rootfs
//! is bind-mounted for CRIU to restore into; bind mounts are mapped to
//! their sources again, and pipes on the old init's stdio are replaced by
//! this command's. The restored init is this process's child (CRIU's
//! `rst_sibling`): with `--detach` runlet leaves it running, else it waits
//! for it and deletes the container, as `run` does.

use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use libcgroups::common::CgroupManager;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::oci_spec::runtime::LinuxNamespaceType;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::Pid;
use rust_criu::rust_criu_protobuf::rpc::Criu_req_type;

use crate::cgroups::cgroup_config;
use crate::cli::{absolute, RestoreArgs};
use crate::config::spec;
use crate::container::criu::{self, base_opts, external_namespaces, image_path, is_bind};
use crate::state::{self, RunletState};
use crate::wasm::dispatch;
use crate::Ctx;

pub fn run(ctx: &Ctx, args: &RestoreArgs) -> Result<i32> {
    let id = &args.container_id;
    state::validate_id(id)?;
    for (given, flag) in [
        (args.criu.lazy_pages, "--lazy-pages"),
        (args.console_socket.is_some(), "--console-socket"),
        (args.lsm_profile.is_some(), "--lsm-profile"),
        (args.lsm_mount_context.is_some(), "--lsm-mount-context"),
    ] {
        if given {
            bail!("restore {flag}: not supported by runlet");
        }
    }
    let (bundle, mut spec) = spec::load_bundle_spec(&args.bundle, None)?;
    crate::cgroups::check_unified(&spec)?;
    crate::cgroups::deny_all_devices_first(&mut spec)?;
    let rootfs = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .ok_or_else(|| anyhow!("root: missing"))?;
    let workload = dispatch::decide(&spec, &rootfs)?;
    if workload.name() != "native" {
        bail!(
            "restore: the bundle's process is a Wasm module ({}): CRIU cannot restore a Wasm container",
            workload.name()
        );
    }
    if spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
    {
        bail!("restore: process.terminal: restoring a container with a terminal is not supported");
    }
    let image = image_path(&args.criu)?;
    if !image.join("inventory.img").exists() {
        bail!(
            "--image-path {}: no checkpoint there (inventory.img missing)",
            image.display()
        );
    }
    let pid_file = args.pid_file.as_deref().map(absolute).transpose()?;
    let dir = state::make_container_dir(&ctx.root, id)?;
    let cgroup_path = crate::cgroups::resolve_path(
        spec.linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().as_deref()),
        id,
        ctx.systemd,
    );
    let cgroup_path = match cgroup_path {
        Ok(p) => p,
        Err(e) => {
            let _ = std::fs::remove_dir(&dir);
            return Err(e);
        }
    };
    if let Some(mut linux) = spec.linux().clone() {
        linux.set_cgroups_path(Some(cgroup_path.clone()));
        spec.set_linux(Some(linux));
    }
    let cgroups = cgroup_config(cgroup_path.clone(), ctx.systemd, id);
    let ownership = crate::cgroups::plan(&cgroups);
    let criu_root = dir.join("criu-root");
    let paths = Paths {
        id,
        bundle: &bundle,
        image: &image,
        rootfs: &rootfs,
        criu_root: &criu_root,
    };
    let restored = restore(args, &paths, &spec, &cgroups);
    // CRIU's view of the rootfs is no longer needed either way.
    let _ = umount2(&criu_root, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(&criu_root);
    let pid = match restored {
        Ok(pid) => pid,
        Err(e) => {
            let _ = crate::cgroups::remove(crate::cgroups::Target {
                id,
                config: cgroups,
                init: None,
                own_pidns: false,
                ownership: &ownership,
            });
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };

    // The container's records, as `create` and `start` leave them.
    let record = || -> Result<()> {
        state::save_spec_records(&dir, &spec, id)?;
        RunletState {
            rootfs: rootfs.clone(),
            cgroups_path: Some(cgroup_path.clone()),
            init_pid: Some(pid),
            init_start_time: crate::container::process::process_start_time(pid),
            handler: "native".into(),
            notify_socket: None,
            own_pidns: crate::config::ids::new_namespace(&spec, LinuxNamespaceType::Pid),
            cgroup: ownership.clone(),
            cgroups_disabled: false,
        }
        .save(&dir)?;
        let mut container = Container::new(id, ContainerStatus::Running, Some(pid), &bundle, &dir)
            .map_err(|e| anyhow!("{e}"))?;
        container
            .set_systemd(ctx.systemd)
            .set_annotations(spec.annotations().clone())
            .set_creator(nix::unistd::geteuid().as_raw());
        state::save(&container)?;
        if let Some(p) = &pid_file {
            state::write_public(p, pid.to_string().as_bytes())
                .map_err(|e| anyhow!("--pid-file: {e}"))?;
        }
        Ok(())
    };
    if let Err(e) = record() {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        crate::container::force_remove(ctx, id);
        return Err(e);
    }
    if args.detach {
        return Ok(0);
    }
    // In the foreground: the restored init is this process's child (the
    // signal mask is set only now: CRIU must not inherit it).
    let sfd = crate::foreground::block_signals()?;
    let code = crate::foreground::wait(sfd, Pid::from_raw(pid), None);
    crate::container::force_remove(ctx, id);
    code
}

struct Paths<'a> {
    id: &'a str,
    bundle: &'a Path,
    image: &'a Path,
    rootfs: &'a Path,
    criu_root: &'a Path,
}

/// CRIU's restore; returns the restored init's pid.
fn restore(
    args: &RestoreArgs,
    p: &Paths,
    spec: &libcontainer::oci_spec::runtime::Spec,
    cgroups: &libcgroups::common::CgroupConfig,
) -> Result<i32> {
    std::fs::create_dir(p.criu_root).map_err(|e| anyhow!("{}: {e}", p.criu_root.display()))?;
    mount(
        Some(p.rootfs),
        p.criu_root,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| anyhow!("root.path {}: bind for CRIU: {e}", p.rootfs.display()))?;

    let (mut opts, dirs) = base_opts(&args.criu, p.image)?;
    opts.set_log_file("restore.log".into());
    opts.set_root(p.criu_root.to_string_lossy().into_owned());
    opts.set_rst_sibling(true);
    opts.set_notify_scripts(true);
    opts.set_evasive_devices(true);
    for ns in &args.criu.empty_ns {
        match ns.as_str() {
            "network" => opts.set_empty_ns(libc::CLONE_NEWNET as u32),
            other => bail!("--empty-ns {other:?}: CRIU can only leave the network namespace empty"),
        }
    }
    let mut pass: Vec<_> = dirs.iter().map(|d| d.as_raw_fd()).collect();

    // Bind mounts: destination (as dumped) to source, made to exist.
    for m in spec.mounts().iter().flatten() {
        if !is_bind(m) {
            continue;
        }
        let Some(source) = m.source() else { continue };
        let dest = m.destination().to_string_lossy().into_owned();
        let target = p
            .rootfs
            .join(m.destination().strip_prefix("/").unwrap_or(m.destination()));
        if !target.exists() {
            if source.is_dir() {
                let _ = std::fs::create_dir_all(&target);
            } else {
                if let Some(parent) = target.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                let _ = std::fs::File::create(&target);
            }
        }
        opts.ext_mnt
            .push(criu::ext_mount(&dest, &source.to_string_lossy()));
    }
    // Namespaces joined by path: handed in under the keys of the dump.
    let mut ns_files = Vec::new();
    for ((_, path), key) in external_namespaces(spec) {
        let f = std::fs::File::open(&path)
            .map_err(|e| anyhow!("linux.namespaces {}: {e}", path.display()))?;
        opts.inherit_fd.push(criu::inherit_fd(key, f.as_raw_fd()));
        pass.push(f.as_raw_fd());
        ns_files.push(f);
    }
    // The old init's pipes become this command's stdio.
    let descriptors: Vec<String> = std::fs::read(p.image.join(criu::DESCRIPTORS))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default();
    for (fd, what) in descriptors.iter().enumerate().take(3) {
        if what.starts_with("pipe:") {
            opts.inherit_fd.push(criu::inherit_fd(what, fd as i32));
            pass.push(fd as i32);
        }
    }

    let manager = libcgroups::common::create_cgroup_manager(cgroups.clone())
        .map_err(|e| anyhow!("cgroup: {e}"))?;
    let mut resources = spec.linux().as_ref().and_then(|l| l.resources().clone());
    if let Some(r) = resources.as_mut() {
        crate::cgroups::prepare_resources(r, cgroups.systemd_cgroup);
    }
    let log = criu::log_path(p.image, args.criu.work_path.as_deref(), "restore.log");
    let mut restored_pid = None;
    criu::call(
        Criu_req_type::RESTORE,
        opts,
        &pass,
        &log,
        |criu_pid, opts| {
            // CRIU's process goes into the container's cgroup, limits set,
            // and the restored tree is placed at that cgroup (runc's way).
            manager
                .add_task(Pid::from_raw(criu_pid))
                .map_err(|e| anyhow!("cgroup: {e}"))?;
            opts.cg_root = criu::cgroup_roots(criu_pid)?;
            if let Some(r) = &resources {
                manager
                    .apply(&libcgroups::common::ControllerOpt {
                        resources: r,
                        disable_oom_killer: false,
                        oom_score_adj: None,
                        freezer_state: None,
                    })
                    .map_err(|e| anyhow!("linux.resources: {e}"))?;
            }
            crate::cgroups::finish_apply(cgroups, spec)?;
            Ok(())
        },
        |notify| match notify.script() {
            "setup-namespaces" => restore_hooks(p, spec, notify.pid()),
            "post-restore" => {
                restored_pid = Some(notify.pid());
                Ok(())
            }
            _ => Ok(()),
        },
    )
    .map(|_| ())?;
    drop(ns_files);
    restored_pid.ok_or_else(|| anyhow!("criu restored nothing (no post-restore notification)"))
}

/// The prestart and createRuntime hooks, run when CRIU has made the
/// restored init's namespaces and before its processes run on, as runc
/// runs them on restore: the state carries the restored init's pid, and a
/// failing hook fails the restore. The spec was loaded as `create` loads
/// it, so a hook without `env` already has runlet's (compat.rs).
fn restore_hooks(p: &Paths, spec: &libcontainer::oci_spec::runtime::Spec, pid: i32) -> Result<()> {
    let Some(hooks) = spec.hooks() else {
        return Ok(());
    };
    let mut state = libcontainer::container::State::new(
        p.id,
        ContainerStatus::Creating,
        Some(pid),
        p.bundle.to_path_buf(),
    );
    state.annotations = spec.annotations().clone();
    #[allow(deprecated)]
    let prestart = hooks.prestart();
    for (kind, list) in [
        ("prestart", prestart),
        ("createRuntime", hooks.create_runtime()),
    ] {
        libcontainer::hooks::run_hooks(list.as_ref(), Some(&state), None, None, None)
            .map_err(|e| anyhow!("hooks.{kind}: {}", crate::container::root_cause(&e)))?;
    }
    Ok(())
}
