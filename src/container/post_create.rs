//! What runlet sets up once the container's init has built its root and
//! waits for `start`: settings libcontainer 0.7 does not apply.
//!
//! - **Loopback up.** A new network namespace starts with `lo` down;
//!   runc and crun bring it up, libcontainer does not, so a service
//!   listening on 127.0.0.1 was unreachable even from an `exec` in the same
//!   container.
//! - **Propagation.** libcontainer mounts with open_tree/fsmount +
//!   mount_setattr and never sets a mount's propagation, so `rshared` /
//!   `rslave` on a bind mount (Kubernetes' Bidirectional and
//!   HostToContainer volumes) were lost.
//! - **A read-only /sys/fs/cgroup.** libcontainer ignores `ro` on the
//!   `cgroup` mount: on v1 it mounts a tmpfs and binds each controller's
//!   directory writable, with a cgroup namespace it mounts each hierarchy
//!   writable. Container root could then raise its own memory and pids
//!   limits and make sub-cgroups. runc and crun honour `ro`. Where runlet
//!   makes the cgroup mount itself (`cgroupfs`, the usual config) it mounts
//!   it read-only here; where libcontainer made it, runlet remounts every
//!   mount at or below its destination read-only, keeping its other flags
//!   (which a user namespace locks).
//!
//! - **The host's /dev**, when the config binds it at /dev: see `dev`.
//!
//! - **The cgroup mount**, when runlet makes it: see `cgroupfs`.
//!
//! A forked child joins the init's user (if any), network (when the
//! container has a new one), cgroup (for a new cgroup mount) and mount
//! namespaces (setns makes the container's root its own) and makes the
//! changes; the init itself is not involved.

use std::fs;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use libcontainer::oci_spec::runtime::{LinuxNamespaceType, Spec};
use nix::mount::MsFlags;
use nix::unistd::Pid;

/// One change to make inside the container's mount namespace.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    /// Set the propagation of the mount at this path.
    Propagation(PathBuf, MsFlags),
    /// Remount read-only, keeping these per-mount flags.
    ReadOnly(PathBuf, MsFlags),
}

/// The per-mount flags of a mountinfo options field ("rw,nosuid,...").
pub(super) fn mount_flags(options: &str) -> MsFlags {
    let mut flags = MsFlags::empty();
    for o in options.split(',') {
        flags |= match o {
            "nosuid" => MsFlags::MS_NOSUID,
            "nodev" => MsFlags::MS_NODEV,
            "noexec" => MsFlags::MS_NOEXEC,
            "noatime" => MsFlags::MS_NOATIME,
            "nodiratime" => MsFlags::MS_NODIRATIME,
            "relatime" => MsFlags::MS_RELATIME,
            _ => MsFlags::empty(),
        };
    }
    flags
}

/// Makes the mount at `dest` read-only, with the per-mount flags `keep`.
pub(super) fn remount_readonly(dest: &std::path::Path, keep: MsFlags) -> nix::Result<()> {
    nix::mount::mount::<str, std::path::Path, str, str>(
        None,
        dest,
        None,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | keep,
        None,
    )
}

/// Read-only remounts for every mount at or below `dest` (mount points as
/// the container sees them), from the init's mountinfo; outermost first.
fn readonly_below(mountinfo: &str, dest: &std::path::Path) -> Vec<Change> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(mp), Some(opts)) = (fields.get(4), fields.get(5)) else {
            continue;
        };
        let mp = PathBuf::from(mp.replace("\\040", " "));
        if mp.starts_with(dest) && !opts.split(',').any(|o| o == "ro") {
            out.push(Change::ReadOnly(mp, mount_flags(opts)));
        }
    }
    out
}

/// The changes the spec asks for that libcontainer left out.
fn changes(spec: &Spec, pid: Pid) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    let mut mountinfo = None;
    for m in spec.mounts().iter().flatten() {
        let options = m.options().as_deref().unwrap_or_default();
        if let Some(flags) = crate::config::compat::propagation_flags(options) {
            out.push(Change::Propagation(m.destination().clone(), flags));
        }
        let is_cgroup =
            m.typ().as_deref() == Some("cgroup") || m.typ().as_deref() == Some("cgroup2");
        if is_cgroup && options.iter().any(|o| o == "ro") {
            if mountinfo.is_none() {
                let path = format!("/proc/{pid}/mountinfo");
                mountinfo =
                    Some(fs::read_to_string(&path).map_err(|e| anyhow!("mounts: {path}: {e}"))?);
            }
            let info = mountinfo.as_deref().unwrap_or_default();
            out.extend(readonly_below(info, m.destination()));
        }
    }
    // Last, as runc: the root's propagation, recursively (libcontainer sets
    // it on `/` alone after pivot_root).
    if let Some(flags) = crate::config::compat::recursive_root_propagation(spec) {
        out.push(Change::Propagation(PathBuf::from("/"), flags));
    }
    Ok(out)
}

/// Whether host id `host` is mapped into the container's user namespace.
fn is_mapped(
    host: u32,
    mappings: Option<&Vec<libcontainer::oci_spec::runtime::LinuxIdMapping>>,
) -> bool {
    match mappings {
        None => true,
        Some(maps) => maps
            .iter()
            .any(|m| host.checked_sub(m.host_id()).is_some_and(|o| o < m.size())),
    }
}

/// The init's stdio (pipes or files the caller passed) belongs to the
/// caller; runc hands it to `process.user` (its uid) so the process can
/// reopen `/proc/self/fd/N` (e.g. `/dev/stdout`). libcontainer does not.
/// As runc, which does this inside the container: /dev/null is left alone,
/// and with a user namespace only files whose owner is mapped into it are
/// changed (the kernel refuses the rest there); errors are ignored.
pub fn give_stdio_to_user(spec: &Spec, pid: Pid) {
    use std::os::unix::fs::MetadataExt;
    let Some(process) = spec.process().as_ref() else {
        return;
    };
    let uid = process.user().uid();
    let linux = spec.linux().as_ref();
    let uid_maps = linux
        .and_then(|l| l.uid_mappings().as_ref())
        .filter(|m| !m.is_empty());
    let gid_maps = linux
        .and_then(|l| l.gid_mappings().as_ref())
        .filter(|m| !m.is_empty());
    let Some(huid) = crate::config::ids::host_id(uid, uid_maps) else {
        return;
    };
    let null = fs::metadata("/dev/null").map(|m| m.rdev()).ok();
    for fd in 0..3 {
        let path = format!("/proc/{pid}/fd/{fd}");
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if meta.uid() == huid || Some(meta.rdev()) == null {
            continue;
        }
        if !is_mapped(meta.uid(), uid_maps) || !is_mapped(meta.gid(), gid_maps) {
            continue;
        }
        let _ = nix::unistd::chown(path.as_str(), Some(nix::unistd::Uid::from_raw(huid)), None);
    }
}

/// Sets IFF_UP on `lo` in the calling process's network namespace.
fn loopback_up() -> bool {
    // SAFETY: socket(2) with constant arguments; the fd is closed below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return false;
    }
    // SAFETY: ifreq is plain data; the name is copied in bounds and the
    // ioctls read and write only this struct.
    let ok = unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) == 0 && {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) == 0
        }
    };
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(sock) };
    ok
}

/// Applies what libcontainer left out (see the module doc), and attaches
/// the host's /dev when the config binds it (see `dev`).
pub fn finish(
    spec: &Spec,
    pid: Pid,
    host_dev: Option<&crate::container::dev::HostDev>,
    cgroup_mount: Option<&crate::container::cgroupfs::CgroupFs>,
) -> Result<()> {
    let wanted = changes(spec, pid)?;
    let new_netns = crate::config::ids::new_namespace(spec, LinuxNamespaceType::Network);
    if wanted.is_empty() && !new_netns && host_dev.is_none() && cgroup_mount.is_none() {
        return Ok(());
    }
    let cgroup_mount = cgroup_mount
        .map(|c| crate::container::cgroupfs::prepare(c, pid))
        .transpose()?;
    let has_userns = crate::config::ids::has_namespace(spec, LinuxNamespaceType::User);
    let open = |name: &str| {
        fs::File::open(format!("/proc/{pid}/ns/{name}"))
            .map_err(|e| anyhow!("mounts: /proc/{pid}/ns/{name}: {e}"))
    };
    let userns = if has_userns {
        Some(open("user")?)
    } else {
        None
    };
    let mntns = open("mnt")?;
    let netns = if new_netns { Some(open("net")?) } else { None };
    let cgroupns = match &cgroup_mount {
        Some(c) if c.fresh() => Some(open("cgroup")?),
        _ => None,
    };
    let ns = Namespaces {
        user: userns.as_ref(),
        net: netns.as_ref(),
        cgroup: cgroupns.as_ref(),
        mnt: &mntns,
    };
    // The child says what failed, if anything, on this pipe.
    let (report_r, report_w) = nix::unistd::pipe().map_err(|e| anyhow!("pipe: {e}"))?;
    // SAFETY: runlet is single-threaded here; the child only makes system
    // calls (setns, mount), writes to the pipe and exits without returning
    // into Rust code that could depend on the parent's state.
    match unsafe { nix::unistd::fork() }.map_err(|e| anyhow!("fork: {e}"))? {
        nix::unistd::ForkResult::Child => {
            drop(report_r);
            let result = in_container(&ns, host_dev, cgroup_mount.as_ref(), &wanted);
            let code = match result {
                Ok(()) => 0,
                Err(msg) => {
                    let _ = nix::unistd::write(&report_w, msg.as_bytes());
                    1
                }
            };
            // SAFETY: _exit ends the forked child without running destructors.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(report_w);
            let mut msg = String::new();
            let _ = std::io::Read::read_to_string(&mut fs::File::from(report_r), &mut msg);
            match nix::sys::wait::waitpid(child, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
                Ok(nix::sys::wait::WaitStatus::Exited(_, _)) if !msg.is_empty() => bail!("{msg}"),
                other => bail!("mounts: the mount helper ended with {other:?}"),
            }
        }
    }
}

/// The init's namespaces the helper joins.
struct Namespaces<'a> {
    user: Option<&'a fs::File>,
    net: Option<&'a fs::File>,
    cgroup: Option<&'a fs::File>,
    mnt: &'a fs::File,
}

/// The forked child's part of [`finish`]: joins the container's namespaces
/// and makes the changes, stopping at the first failure.
fn in_container(
    ns: &Namespaces,
    host_dev: Option<&crate::container::dev::HostDev>,
    cgroup_mount: Option<&crate::container::cgroupfs::Prepared>,
    wanted: &[Change],
) -> std::result::Result<(), String> {
    use nix::sched::{setns, CloneFlags};
    let join = |f: &fs::File, flag, what: &str| {
        setns(f, flag).map_err(|e| format!("joining the container's {what} namespace: {e}"))
    };
    if let Some(u) = ns.user {
        join(u, CloneFlags::CLONE_NEWUSER, "user")?;
    }
    if let Some(n) = ns.net {
        join(n, CloneFlags::CLONE_NEWNET, "network")?;
    }
    if let Some(c) = ns.cgroup {
        join(c, CloneFlags::CLONE_NEWCGROUP, "cgroup")?;
    }
    join(ns.mnt, CloneFlags::CLONE_NEWNS, "mount")?;
    if ns.net.is_some() && !loopback_up() {
        return Err("network namespace: bringing the loopback interface up failed".into());
    }
    if let Some(dev) = host_dev {
        dev.attach().map_err(|e| format!("mounts: /dev: {e}"))?;
    }
    if let Some(c) = cgroup_mount {
        crate::container::cgroupfs::mount_all(c)?;
    }
    for change in wanted {
        let result = match change {
            Change::Propagation(dest, flags) => {
                nix::mount::mount::<str, PathBuf, str, str>(None, dest, None, *flags, None)
            }
            Change::ReadOnly(dest, keep) => remount_readonly(dest, *keep),
        };
        if let Err(e) = result {
            let what = match change {
                Change::Propagation(p, _) => format!("setting the propagation of {}", p.display()),
                Change::ReadOnly(p, _) => format!("making {} read-only", p.display()),
            };
            return Err(format!("mounts: {what}: {e}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_mounts_below_the_destination() {
        let info = "\
1 0 0:1 / / rw,relatime - overlay o rw
2 1 0:2 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
3 2 0:3 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw
4 3 0:4 /c1 /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,memory
5 3 0:5 /c1 /sys/fs/cgroup/pids ro,nosuid - cgroup cgroup rw,pids
6 1 0:6 / /sys/fs/cgroupx rw - tmpfs tmpfs rw";
        let got = readonly_below(info, std::path::Path::new("/sys/fs/cgroup"));
        let keep =
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RELATIME;
        assert_eq!(
            got,
            vec![
                Change::ReadOnly("/sys/fs/cgroup".into(), keep),
                Change::ReadOnly("/sys/fs/cgroup/memory".into(), keep),
            ]
        );
    }
}
