//! `/dev` where libcontainer 0.7 and runc part ways.
//!
//! - **`/dev` bind-mounted from the host** (`podman --privileged -v
//!   /dev:/dev`): runc sees the bind and leaves /dev alone — no device
//!   nodes, no /dev/ptmx, no default symlinks. libcontainer builds its /dev
//!   on top of whatever is mounted there: it makes /dev/kcore and the fd
//!   symlinks *in the bound directory* (the host's /dev), failing with
//!   EEXIST on the first that exists, and would replace its /dev/ptmx.
//!   runlet gives libcontainer a tmpfs at /dev instead, clones the bind
//!   source (open_tree, in the host's mount namespace, before the container
//!   exists) and, once the container is built, attaches the clone over /dev
//!   and re-attaches on top of it the mounts the config puts below /dev
//!   after the bind (devpts, shm, mqueue) and the console — where runc's
//!   mounts would be. A missing mount point is created in the bound
//!   directory, as runc does.
//! - **Device nodes in a user namespace**: a user namespace may not mknod,
//!   so libcontainer (like runc) bind-mounts the host's node at the same
//!   path; a node the host does not have (or has with other numbers) fails
//!   or is the wrong device. runlet, as host root, makes such nodes itself
//!   on a private tmpfs (without `nodev`, which a user namespace could not
//!   lift from a bind) and hands them to libcontainer as bind mounts.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use libcontainer::oci_spec::runtime::{LinuxDevice, LinuxDeviceType, LinuxNamespaceType, Spec};
use nix::mount::MsFlags;

use crate::container::idmap::Staged;

/// The host's /dev (a clone of the bind source) to attach after create.
pub struct HostDev {
    tree: OwnedFd,
    propagation: Option<MsFlags>,
    /// Mount points below /dev to keep on top, outermost first.
    above: Vec<PathBuf>,
}

fn is_bind(m: &libcontainer::oci_spec::runtime::Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

/// When the config binds something at /dev: takes that bind out of what
/// libcontainer gets (a tmpfs instead, and no `linux.devices`, which runc
/// does not create then) and returns the clone to attach after create.
pub fn take_host_dev(spec: &mut Spec) -> Result<Option<HostDev>> {
    use libcontainer::oci_spec::runtime::MountBuilder;
    let Some(mut mounts) = spec.mounts().clone() else {
        return Ok(None);
    };
    let dev = Path::new("/dev");
    let Some(i) = mounts
        .iter()
        .rposition(|m| crate::cgroups::clean(m.destination()) == dev)
    else {
        return Ok(None);
    };
    if !is_bind(&mounts[i]) {
        return Ok(None);
    }
    let field = format!("mounts[{i}] /dev");
    let options = mounts[i].options().clone().unwrap_or_default();
    let source = mounts[i]
        .source()
        .clone()
        .ok_or_else(|| anyhow!("{field}: source: missing"))?;
    let recursive = options.iter().any(|o| o == "rbind");
    let tree = runlet_handler::rofs::clone_tree(&source, recursive)
        .map_err(|e| anyhow!("{field}: {}: {e}", source.display()))?;
    let mut attrs = 0;
    for o in &options {
        attrs |= match o.as_str() {
            "ro" => runlet_handler::rofs::MOUNT_ATTR_RDONLY,
            "nosuid" => runlet_handler::rofs::MOUNT_ATTR_NOSUID,
            "nodev" => runlet_handler::rofs::MOUNT_ATTR_NODEV,
            "noexec" => runlet_handler::rofs::MOUNT_ATTR_NOEXEC,
            _ => 0,
        };
    }
    if attrs != 0 {
        runlet_handler::rofs::set_attrs(&tree, attrs, None, recursive)
            .map_err(|e| anyhow!("{field}: {}: {e}", source.display()))?;
    }
    let mut above: Vec<PathBuf> = mounts[i + 1..]
        .iter()
        .map(|m| crate::cgroups::clean(m.destination()))
        .filter(|d| d.starts_with(dev) && d != dev)
        .collect();
    let terminal = spec
        .process()
        .as_ref()
        .is_some_and(|p| p.terminal() == Some(true));
    if terminal {
        above.push(PathBuf::from("/dev/console"));
    }
    mounts[i] = MountBuilder::default()
        .destination("/dev")
        .typ("tmpfs")
        .source("tmpfs")
        .options(
            ["nosuid", "strictatime", "mode=755", "size=65536k"]
                .map(String::from)
                .to_vec(),
        )
        .build()
        .map_err(|e| anyhow!("{field}: {e}"))?;
    spec.set_mounts(Some(mounts));
    if let Some(mut linux) = spec.linux().clone() {
        linux.set_devices(None);
        spec.set_linux(Some(linux));
    }
    Ok(Some(HostDev {
        tree,
        propagation: crate::config::compat::propagation_flags(&options),
        above,
    }))
}

impl HostDev {
    /// In the container's mount namespace (a forked child after setns):
    /// puts the host's /dev over the container's, with the mounts that
    /// belong above it. Returns what failed.
    pub fn attach(&self) -> std::result::Result<(), String> {
        use runlet_handler::rofs::{attach_tree, clone_tree};
        let mut keep = Vec::new();
        for p in &self.above {
            match clone_tree(p, true) {
                Ok(t) => keep.push((p, t)),
                // Not there (a mount libcontainer skipped): nothing to keep.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: {e}", p.display())),
            }
        }
        attach_tree(&self.tree, Path::new("/dev"))
            .map_err(|e| format!("attaching the bind source at /dev: {e}"))?;
        for (p, tree) in keep {
            if std::fs::symlink_metadata(p).is_err() {
                let is_dir = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&tree))
                    .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
                let made = if is_dir {
                    std::fs::create_dir_all(p)
                } else {
                    std::fs::File::create(p).map(|_| ())
                };
                made.map_err(|e| format!("creating {} in the bound /dev: {e}", p.display()))?;
            }
            attach_tree(&tree, p).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        if let Some(flags) = self.propagation {
            nix::mount::mount::<str, str, str, str>(None, "/dev", None, flags, None)
                .map_err(|e| format!("setting the propagation of /dev: {e}"))?;
        }
        Ok(())
    }
}

/// Where device nodes are made in the state dir: a tmpfs, detached from
/// the host once the container exists (its binds of the nodes remain).
pub const NODES_DIR: &str = "devnodes";

/// The file type bits of a device's `type`.
fn kind(d: &LinuxDevice) -> Option<libc::mode_t> {
    match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => Some(libc::S_IFCHR),
        LinuxDeviceType::B => Some(libc::S_IFBLK),
        LinuxDeviceType::P => Some(libc::S_IFIFO),
        _ => None,
    }
}

/// Whether the host has this very node at the device's path.
fn host_has(d: &LinuxDevice) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(meta) = std::fs::symlink_metadata(d.path()) else {
        return false;
    };
    let ft = meta.file_type();
    let rdev = libc::makedev(d.major() as u32, d.minor() as u32);
    match kind(d) {
        Some(libc::S_IFCHR) => ft.is_char_device() && meta.rdev() == rdev,
        Some(libc::S_IFBLK) => ft.is_block_device() && meta.rdev() == rdev,
        Some(libc::S_IFIFO) => ft.is_fifo(),
        _ => true,
    }
}

/// With a new user namespace: every `linux.devices` node the host lacks is
/// made under `<dir>/devnodes` and given to libcontainer as a bind mount
/// instead of a device (see the module doc).
pub fn stage_missing_nodes(spec: &mut Spec, dir: &Path) -> Result<Staged> {
    use libcontainer::oci_spec::runtime::MountBuilder;
    use std::os::unix::ffi::OsStrExt;
    let mut staged = Staged::none();
    if !crate::config::ids::new_namespace(spec, LinuxNamespaceType::User) {
        return Ok(staged);
    }
    let Some(mut linux) = spec.linux().clone() else {
        return Ok(staged);
    };
    let Some(devices) = linux.devices().clone() else {
        return Ok(staged);
    };
    let (present, missing): (Vec<_>, Vec<_>) = devices.into_iter().partition(host_has);
    if missing.is_empty() {
        return Ok(staged);
    }
    let stage = dir.join(NODES_DIR);
    std::fs::create_dir_all(&stage).map_err(|e| anyhow!("{}: {e}", stage.display()))?;
    nix::mount::mount(
        Some("tmpfs"),
        &stage,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=755,size=64k"),
    )
    .map_err(|e| anyhow!("{}: mounting a tmpfs: {e}", stage.display()))?;
    staged.push(stage.clone());
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for (i, d) in missing.iter().enumerate() {
        let field = format!("linux.devices {}", d.path().display());
        let Some(kind) = kind(d) else {
            bail!("{field}: type {:?} cannot be created", d.typ());
        };
        let node = stage.join(i.to_string());
        let c_node = std::ffi::CString::new(node.as_os_str().as_bytes())
            .map_err(|_| anyhow!("{field}: contains NUL"))?;
        let mode = d.file_mode().unwrap_or(0o666) & 0o7777;
        let rdev = libc::makedev(d.major() as u32, d.minor() as u32);
        // SAFETY: mknod on a NUL-terminated path below our own tmpfs.
        if unsafe { libc::mknod(c_node.as_ptr(), kind | mode, rdev) } != 0 {
            bail!("{field}: {}", std::io::Error::last_os_error());
        }
        let uid = crate::config::ids::host_id(d.uid().unwrap_or(0), linux.uid_mappings().as_ref());
        let gid = crate::config::ids::host_id(d.gid().unwrap_or(0), linux.gid_mappings().as_ref());
        nix::unistd::chown(
            &node,
            uid.map(nix::unistd::Uid::from_raw),
            gid.map(nix::unistd::Gid::from_raw),
        )
        .map_err(|e| anyhow!("{field}: {e}"))?;
        std::fs::set_permissions(&node, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .map_err(|e| anyhow!("{field}: {e}"))?;
        mounts.push(
            MountBuilder::default()
                .destination(d.path().clone())
                .typ("bind")
                .source(node)
                .options(vec!["bind".to_string()])
                .build()
                .map_err(|e| anyhow!("{field}: {e}"))?,
        );
    }
    linux.set_devices(Some(present));
    spec.set_linux(Some(linux));
    spec.set_mounts(Some(mounts));
    Ok(staged)
}
