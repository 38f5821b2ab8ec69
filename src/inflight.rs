//! The processes of a container whose `create` (or `run`, `exec`) died
//! before it recorded them.
//!
//! libcontainer's intermediate process and the init it forks are clones of
//! the runlet that created them: they keep its command line until the
//! init's execve, and libcontainer names them `youki:[1:INTER]` /
//! `youki:[2:INIT]`. When that runlet is killed half way (SIGKILL, OOM,
//! a caller's timeout) they live on: the intermediate joins the cgroups and
//! forks the init, which then waits for `start` forever, with no pid in the
//! state dir. runlet finds them by name and by the state root and
//! container id on their command line — exactly what a later `delete` is
//! about — so it can kill them whether or not they reached a cgroup yet.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use crate::cli::{Cli, Command};

/// The state root and container id a runlet command line works on, when
/// it is a command that spawns container processes.
fn target_of(pid: i32, args: &[String]) -> Option<(PathBuf, String)> {
    let cli = Cli::try_parse_from(args).ok()?;
    let id = match cli.command? {
        Command::Create(a) => a.container_id,
        Command::Run(a) => a.create.container_id,
        Command::Exec(a) => a.container_id,
        _ => return None,
    };
    // --root as that process saw it: its own flag or environment.
    let explicit = args
        .iter()
        .any(|a| a == "--root" || a.starts_with("--root="));
    let root = if explicit {
        cli.global.root
    } else {
        environ_root(pid).unwrap_or_else(|| PathBuf::from(crate::cli::DEFAULT_ROOT))
    };
    let root = if root.is_relative() {
        std::fs::read_link(format!("/proc/{pid}/cwd"))
            .ok()?
            .join(root)
    } else {
        root
    };
    Some((root, id))
}

/// RUNLET_ROOT from a process's initial environment.
fn environ_root(pid: i32) -> Option<PathBuf> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"RUNLET_ROOT="))
        .map(|v| PathBuf::from(String::from_utf8_lossy(v).into_owned()))
}

/// Live processes left by a runlet that worked on container `id` under
/// `root`.
pub fn find(root: &Path, id: &str) -> Vec<i32> {
    let want_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
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
        if !comm.starts_with("youki:[") || !crate::state::is_live(pid) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !args.iter().any(|a| a == id) {
            continue;
        }
        if let Some((r, i)) = target_of(pid, &args) {
            let r = r.canonicalize().unwrap_or(r);
            if i == id && r == want_root {
                out.push(pid);
            }
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
