//! Which file descriptors reach a container process.
//!
//! libcontainer clones the container's processes (intermediate, init, an
//! `exec`'d process) from the runlet that runs `create` or `exec`, without
//! an execve in between: every fd that runlet holds at that moment is held
//! by them too, CLOEXEC or not, until the workload's own execve. A Wasm
//! init never calls execve, so it would hold them for the container's
//! whole life. runc's init is exec'd with only its pipes; runlet gets to
//! the same place in four steps:
//!
//! 1. [`close_callers`]: at the start of `create`, `run` and `exec`, before
//!    runlet opens anything, every fd the caller left open above stdio and
//!    the preserved fds (`--preserve-fds`, socket activation) is closed.
//! 2. [`close_runtime_handles`]: at the first point runlet's code runs in the
//!    container process (`late`'s `validate`, before the init reports
//!    ready and long before any workload), the procfs handle that pathrs
//!    (through libcontainer and libcgroups) opens once and keeps in a
//!    static is closed, and pathrs made to stop caching one there. It is a
//!    `subset=pid` procfs of the *host's* pid namespace, opened by the
//!    runtime on the host: from a container with CAP_SYS_PTRACE,
//!    `/proc/<init>/fd/N/<host pid>/root` would be the host's `/`.
//!    Up to that point the clones keep using it, as the runtime process
//!    does for its whole life: an uncached pathrs builds, checks and
//!    unmounts a new procfs for every /proc access (some 40 syscalls each,
//!    about 50 times per native `run`). Before `validate` nothing of the
//!    container can reach the handle: the clones are non-dumpable, so their
//!    `/proc/<pid>/fd` opens only for a holder of CAP_SYS_PTRACE in the
//!    host's user namespace, and the only processes in the container's pid
//!    namespace by then are the createContainer hooks, which are exec'd
//!    (the handle is close-on-exec), or, in a shared pid namespace, other
//!    containers, which with that capability could ptrace the runtime's
//!    clone itself in the same window.
//! 3. The log file is never held open across the clone (`logging`).
//! 4. In the container process, before the workload runs: a socket
//!    connected to a named socket on the host (libcgroups' D-Bus connection
//!    to systemd, made in the intermediate process the init is forked from)
//!    is closed (also [`close_runtime_handles`]), and a Wasm init closes
//!    everything but stdio, the preserved fds and what its engine holds
//!    ([`keep_only`]) before the guest starts.
//!
//! What a container process still holds is listed in docs/security.md and
//! checked from the host by tests/security.rs.

use std::os::fd::RawFd;

/// The fds open in this process, lowest first.
pub fn open_fds() -> Vec<RawFd> {
    let mut fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    // The directory's own fd was listed too and is closed by now.
    fds.retain(|fd| fd_is_open(*fd));
    fds.sort_unstable();
    fds
}

fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the flags of a descriptor number.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Closes the fds in `from..=to` (close_range, or one by one before 5.9).
fn close_span(from: RawFd, to: RawFd) {
    if from > to {
        return;
    }
    // SAFETY: close_range takes two descriptor numbers and flags; closing
    // fds nothing in this process uses any more is its purpose.
    let r = unsafe { libc::syscall(libc::SYS_close_range, from as u32, to as u32, 0u32) };
    if r == 0 {
        return;
    }
    for fd in open_fds().into_iter().filter(|fd| (from..=to).contains(fd)) {
        // SAFETY: as above, one descriptor at a time.
        unsafe { libc::close(fd) };
    }
}

/// Closes every fd from `first` up that the caller passed: nothing of
/// runlet's own is open yet when this runs.
pub fn close_callers(first: RawFd) {
    close_span(first.max(3), RawFd::MAX);
}

/// Closes every fd from `first` up except those in `keep`.
pub fn keep_only(first: RawFd, keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|fd| *fd >= first).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from = first.max(3);
    for fd in keep {
        close_span(from, fd - 1);
        from = fd + 1;
    }
    close_span(from, RawFd::MAX);
}

/// In the container process, at the first runlet code there (`late`'s
/// `validate`), in one pass over the open fds: closes pathrs's cached
/// procfs handle and makes pathrs stop caching one in this process (step 2
/// above), and closes the sockets from `first` up that are connected to a
/// named socket, a host service such as systemd's D-Bus (step 4). The
/// container's own sockets do not exist yet; the ones libcontainer still
/// needs are unnamed pairs or its bound start socket.
pub fn close_runtime_handles(first: RawFd) {
    // The cache exists after this (if it did not yet), so that closing it
    // below is what pathrs notices.
    drop(pathrs::procfs::ProcfsHandle::new());
    for fd in open_fds().into_iter().filter(|fd| *fd > 2) {
        if is_procfs_root(fd) {
            // SAFETY: the handle belongs to pathrs's never-dropped static
            // cache; pathrs checks it before each use and, finding it
            // closed, stops using it (its documented reaction to runc
            // closing all fds).
            unsafe { libc::close(fd) };
        } else if fd >= first && peer_is_named(fd) {
            // SAFETY: a connection of the runtime's own that nothing in
            // the container process uses.
            unsafe { libc::close(fd) };
        }
    }
    // Have pathrs notice now, while the number is free: it then marks its
    // cache unusable for good, and would otherwise take whatever procfs
    // handle is opened next at that number for the cached one. The handle
    // this opens is not cached and is closed on drop. (runlet keeps no
    // procfs root handle of its own.)
    drop(pathrs::procfs::ProcfsHandle::new());
}

fn is_procfs_root(fd: RawFd) -> bool {
    const PROC_ROOT_INO: u64 = 1;
    // SAFETY: fstatfs and fstat fill the structs they are given.
    unsafe {
        let mut fs: libc::statfs = std::mem::zeroed();
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstatfs(fd, &mut fs) == 0
            && libc::fstat(fd, &mut st) == 0
            && fs.f_type == libc::PROC_SUPER_MAGIC
            && st.st_ino == PROC_ROOT_INO
            && st.st_mode & libc::S_IFMT == libc::S_IFDIR
    }
}

fn peer_is_named(fd: RawFd) -> bool {
    // SAFETY: getpeername fills at most `len` bytes of the address.
    unsafe {
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        if libc::getpeername(fd, &mut addr as *mut _ as *mut libc::sockaddr, &mut len) != 0 {
            return false;
        }
        let header = std::mem::size_of::<libc::sa_family_t>() as libc::socklen_t;
        addr.sun_family as i32 == libc::AF_UNIX && len > header
    }
}

/// libcontainer's init reads LISTEN_FDS from the runtime's environment
/// again (without checking LISTEN_PID) and would pass the fds a second
/// time; runlet has taken them into account already.
pub fn forget_listen_fds() {
    for var in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
}

/// Number of fds passed by systemd socket activation, when meant for us.
pub fn listen_fds() -> i32 {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    if !pid_ok {
        return 0;
    }
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn only_connections_to_named_sockets_count_as_host_connections() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        assert!(!peer_is_named(a.as_raw_fd()));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("service.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let client = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        assert!(peer_is_named(client.as_raw_fd()));
        let file = std::fs::File::open("/dev/null").expect("open");
        assert!(!peer_is_named(file.as_raw_fd()));
    }
}
