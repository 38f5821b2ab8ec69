//! `checkpoint`: dump a running container's processes with CRIU (runc's
//! flags). Without `--leave-running` CRIU kills them after the dump and the
//! container is deleted, as runc does; `restore` brings it back.
//!
//! Wasm containers are refused: the guest's state lives in the engine
//! inside runlet's init, and a restored copy of that process would need the
//! engine's code mappings and the compiled-code cache exactly as they were.

use anyhow::{anyhow, bail, Result};
use libcontainer::container::ContainerStatus;
use rust_criu::rust_criu_protobuf::rpc::Criu_req_type;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

use crate::cli::CheckpointArgs;
use crate::container::criu::{self, base_opts, external_namespaces, image_path, is_bind};
use crate::{state, Ctx};

pub fn run(ctx: &Ctx, args: &CheckpointArgs) -> Result<i32> {
    let id = &args.container_id;
    for (given, flag) in [
        (args.pre_dump, "--pre-dump"),
        (args.parent_path.is_some(), "--parent-path"),
        (args.page_server.is_some(), "--page-server"),
        (args.status_fd.is_some(), "--status-fd"),
        (args.criu.lazy_pages, "--lazy-pages"),
    ] {
        if given {
            bail!("checkpoint {flag}: not supported by runlet (iterative and lazy migration)");
        }
    }
    let l = state::load(&ctx.root, id)?;
    if l.extra.handler != "native" {
        bail!(
            "checkpoint: container {id} runs a Wasm module ({}): CRIU cannot checkpoint a Wasm container, whose state is inside runlet's engine",
            l.extra.handler
        );
    }
    match l.container.status() {
        ContainerStatus::Running | ContainerStatus::Paused => {}
        s => bail!(
            "cannot checkpoint container {id}: it is {}, not running",
            state::status_name(s)
        ),
    }
    let pid = l
        .container
        .pid()
        .ok_or_else(|| anyhow!("container {id}: no init pid"))?
        .as_raw();
    let spec = state::load_spec_copy(&ctx.root, id)?;
    let image = image_path(&args.criu)?;
    // Opens (and makes) the image and work directories.
    let (mut opts, dirs) = base_opts(&args.criu, &image)?;

    // The init's stdio, for restore to hand pipes back (runc's file).
    let descriptors: Vec<String> = (0..3)
        .map(|n| {
            std::fs::read_link(format!("/proc/{pid}/fd/{n}"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "/dev/null".into())
        })
        .collect();
    state::write_atomic(
        &image.join(criu::DESCRIPTORS),
        &serde_json::to_vec(&descriptors)?,
    )?;

    opts.set_log_file("dump.log".into());
    opts.set_pid(pid);
    opts.set_leave_running(args.leave_running);
    opts.set_orphan_pts_master(true);
    opts.set_root(l.extra.rootfs.to_string_lossy().into_owned());
    // CRIU freezes the tree through the container's cgroup.
    if let Some(dir) = l
        .extra
        .cgroups_path
        .as_deref()
        .and_then(|p| crate::cgroups::controller_dir(p, l.container.systemd(), "freezer"))
    {
        opts.set_freeze_cgroup(dir.to_string_lossy().into_owned());
    }
    // Bind mounts come from outside: CRIU records them by destination and
    // restore maps them to their sources again.
    for m in spec.mounts().iter().flatten() {
        if is_bind(m) {
            let dest = m.destination().to_string_lossy().into_owned();
            opts.ext_mnt.push(criu::ext_mount(&dest, &dest));
        }
    }
    // Namespaces the container joined by path are the caller's: recorded
    // as external (runc's keys), and passed back in at restore.
    for (typ, key) in external_namespaces(&spec) {
        let inode = std::fs::metadata(&typ.1)
            .map_err(|e| anyhow!("linux.namespaces {}: {e}", typ.1.display()))?
            .ino();
        opts.external.push(format!("{}[{inode}]:{key}", typ.0));
    }

    let pass: Vec<_> = dirs.iter().map(|d| d.as_raw_fd()).collect();
    let log = criu::log_path(&image, args.criu.work_path.as_deref(), "dump.log");
    criu::call(
        Criu_req_type::DUMP,
        opts,
        &pass,
        &log,
        |_, _| Ok(()),
        |_| Ok(()),
    )?;
    if !args.leave_running {
        // CRIU has killed the processes; the container goes, as with runc.
        crate::container::force_remove(ctx, id);
    }
    Ok(0)
}
