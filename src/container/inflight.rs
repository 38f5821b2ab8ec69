//! The processes of a container whose `create` (or `run`, `exec`) died
//! before it recorded them.
//!
//! libcontainer's intermediate process and the init it forks are clones of
//! the runlet that created them, and libcontainer names them
//! `youki:[1:INTER]` / `youki:[2:INIT]`. When that runlet is killed half way
//! (SIGKILL, OOM, a caller's timeout) they live on: the intermediate joins
//! the cgroups and forks the init, which then waits for `start` forever,
//! with no pid in the state dir. Until the container is recorded they hold
//! the memfd through which they report errors to runlet
//! (`logging::ChildErrors`), and its name is [`marker`] of the state root
//! and container id — exactly what a later `delete` is about — so runlet
//! finds them whether or not they reached a cgroup yet. (Their command line
//! and environment show the container's own, see `procview`.)

use std::path::Path;
use std::time::Duration;

/// The name of the error memfd of the container processes that a runlet
/// working on container `id` under `root` clones.
pub fn marker(root: &Path, id: &str) -> String {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    // FNV-1a: stable across builds, so any runlet finds another's.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = root
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .chain(b"\0")
        .chain(id.as_bytes());
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("runlet-create-{hash:016x}")
}

/// Live processes left by a runlet that worked on container `id` under
/// `root`.
pub fn find(root: &Path, id: &str) -> Vec<i32> {
    let want = format!("/memfd:{} (deleted)", marker(root, id));
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if !comm.starts_with("youki:[") || !crate::container::process::is_live(pid) {
            continue;
        }
        let holds_marker = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == want.as_str()));
        if holds_marker {
            out.push(pid);
        }
    }
    out
}

/// SIGKILLs them until none is left (a killed intermediate may have forked
/// the init a moment before). Returns how many were killed.
pub fn kill_all(root: &Path, id: &str) -> usize {
    let mut killed = 0;
    for _ in 0..400 {
        let found = find(root, id);
        if found.is_empty() {
            break;
        }
        for pid in found {
            if nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .is_ok()
            {
                killed += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if killed > 0 {
        tracing::info!(%id, killed, "killed processes of an unfinished create");
    }
    killed
}
