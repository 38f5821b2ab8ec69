//! Read-only views of host files that runlet maps into its own memory.
//!
//! A runlet process that lives inside a container's namespaces (a Wasm
//! container's init for its whole life, any init before `start`, an `exec`
//! before its execve) exposes every file it maps through
//! `/proc/<pid>/map_files/`. A container process with CAP_SYS_PTRACE and
//! CAP_CHECKPOINT_RESTORE can open those entries, and the open goes through
//! the mount the file was mapped from: if that mount is writable, so is the
//! host file. runlet therefore maps host files only through a *detached,
//! read-only bind mount*: `open_tree(OPEN_TREE_CLONE)` clones the mount of a
//! path without attaching it anywhere, `mount_setattr` makes the clone
//! read-only, and files are then opened below the returned descriptor.
//! Nothing in a container can remount it: it belongs to no mount namespace.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x0000_0008;
/// `mount_setattr`: idmap the mount through a user namespace.
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A detached clone of the mount at `path` (`open_tree(OPEN_TREE_CLONE)`,
/// with everything below it when `recursive`), close-on-exec.
pub fn clone_tree(path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let rec = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: open_tree takes a dirfd, a NUL-terminated path that outlives
    // the call, and flags; the returned descriptor (if any) is ours.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c_path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | rec,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by open_tree and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A new, detached tmpfs (`fsopen` + `fsmount`) with mode `mode` and the
/// mount attributes `attrs` (`MOUNT_ATTR_*`), close-on-exec, to attach
/// with [`attach_tree`]. Made before clones that go below it, it precedes
/// them in mountinfo (which lists a namespace's mounts by creation) as a
/// tmpfs mounted first by path would.
pub fn new_tmpfs(mode: &str, attrs: u64) -> io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    let value = CString::new(mode)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mode contains NUL"))?;
    let check = |rc: libc::c_long| {
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    };
    // SAFETY: fsopen takes a NUL-terminated fs name and flags; the returned
    // descriptor (if any) is ours.
    let fsfd =
        check(unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: fsfd was just returned by fsopen and is owned by nobody else.
    let fsfd = unsafe { OwnedFd::from_raw_fd(fsfd as RawFd) };
    for (key, value) in [(c"source", c"tmpfs"), (c"mode", value.as_c_str())] {
        // SAFETY: fsconfig on our fs context with a NUL-terminated key and
        // value that outlive the call.
        check(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fsfd.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        })?;
    }
    // SAFETY: CMD_CREATE on our fs context takes no key or value.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fsfd.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    })?;
    // SAFETY: fsmount of our created fs context; the returned mount
    // descriptor (if any) is ours.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fsfd.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attrs as libc::c_uint,
        )
    })?;
    // SAFETY: fd was just returned by fsmount and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Attaches a tree from [`clone_tree`] at `target` in the caller's mount
/// namespace (`move_mount`).
pub fn attach_tree(tree: &OwnedFd, target: &Path) -> io::Result<()> {
    let c_target = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: move_mount of a detached tree we own onto a NUL-terminated
    // path that outlives the call; the empty path names `tree` itself.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c_target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `mount_setattr` on a tree from [`clone_tree`]: sets `attrs`, idmapped
/// through `userns` when given.
pub fn set_attrs(
    tree: &OwnedFd,
    attrs: u64,
    userns: Option<RawFd>,
    recursive: bool,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: attrs,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.map_or(0, |fd| fd as u64),
    };
    let rec = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: attr is a correctly laid out struct mount_attr that outlives
    // the call; the empty path with AT_EMPTY_PATH names `tree` itself.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | rec,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A detached read-only bind mount of `path` (a file or a directory). The
/// descriptor is close-on-exec; the mount disappears with its last user.
pub fn readonly_tree(path: &Path) -> io::Result<OwnedFd> {
    let tree = clone_tree(path, false)?;
    set_attrs(
        &tree,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        None,
        false,
    )?;
    Ok(tree)
}

/// A path that reaches `rel` below a tree from [`readonly_tree`] for as
/// long as the descriptor is open: files opened through it (by any API that
/// takes a path) are on the read-only mount.
pub fn path_below(tree: &OwnedFd, rel: &Path) -> PathBuf {
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    Path::new(&format!("/proc/self/fd/{}", tree.as_raw_fd())).join(rel)
}

/// Whether a descriptor's file is on a read-only mount.
pub fn on_readonly_mount(fd: RawFd) -> io::Result<bool> {
    // SAFETY: statvfs is plain data; fstatvfs fills it or fails.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: fd is a valid descriptor owned by the caller for this call.
    if unsafe { libc::fstatvfs(fd, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_flag & libc::ST_RDONLY != 0)
}

/// The files mapped into this process that sit on a writable mount: what a
/// container could open for writing through `/proc/<pid>/map_files/` if
/// this process were visible in it. Anonymous, special (`[vdso]`, ...),
/// memfd and deleted mappings are not host files and are skipped.
pub fn writable_mapped_files() -> io::Result<Vec<PathBuf>> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for line in maps.lines() {
        // address perms offset dev inode path
        let mut f = line.splitn(6, ' ');
        let (Some(addr), Some(inode)) = (f.next(), f.nth(3)) else {
            continue;
        };
        let path = f.next().unwrap_or("").trim_start();
        if inode == "0" || !path.starts_with('/') || path.ends_with(" (deleted)") {
            continue;
        }
        if !seen.insert(path.to_string()) {
            continue;
        }
        // The mapping itself, not the path (which may name another mount).
        let entry = format!("/proc/self/map_files/{addr}");
        let writable = match std::fs::File::open(&entry) {
            Ok(file) => !on_readonly_mount(file.as_raw_fd())?,
            // Not openable: judge by the path as the host sees it.
            Err(_) => match std::fs::File::open(path) {
                Ok(file) => !on_readonly_mount(file.as_raw_fd())?,
                Err(_) => false,
            },
        };
        if writable {
            out.push(PathBuf::from(path));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_below_joins_under_the_descriptor() {
        let fd = std::fs::File::open("/").expect("open /");
        let owned: OwnedFd = fd.into();
        let p = path_below(&owned, Path::new("/a/b"));
        assert_eq!(
            p,
            PathBuf::from(format!("/proc/self/fd/{}/a/b", owned.as_raw_fd()))
        );
    }
}
