//! What `/proc/<pid>/cmdline` and `/proc/<pid>/environ` of a container's
//! runlet processes show.
//!
//! The kernel reads both from the process's own memory, between addresses
//! it recorded at execve. libcontainer's container processes are clones of
//! the `runlet create` (or `exec`) that made them, so without this they
//! would show the caller's command line and environment — whatever the
//! shim, conmon or a user's shell had, secrets included — to the container:
//! a Wasm init is runlet for the container's whole life, and a native init
//! until `start`. runc's init is exec'd with an empty environment.
//!
//! Right before the clone, [`Shown::set`] points those addresses at a copy
//! of the container process's own `args` and `env` (prctl PR_SET_MM_MAP,
//! which needs no capability when the executable is left alone), so the
//! clones show exactly what a native container's process shows after its
//! execve. Dropping the guard points runlet's own view back; the clones
//! keep theirs. runlet's environment itself (`std::env`) is untouched.

use std::io;

const PR_SET_MM: libc::c_int = 35;
const PR_SET_MM_MAP: libc::c_ulong = 14;

/// `struct prctl_mm_map` of <linux/prctl.h>.
#[repr(C)]
struct MmMap {
    start_code: u64,
    end_code: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    brk: u64,
    start_stack: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
    auxv: u64,
    auxv_size: u32,
    exe_fd: u32,
}

/// Address ranges of the command line and environment.
#[derive(Clone, Copy)]
struct Ranges {
    arg: (u64, u64),
    env: (u64, u64),
}

/// While this lives, the process's cmdline and environ show the given
/// ones; processes cloned meanwhile keep showing them.
pub struct Shown {
    own: Ranges,
}

impl Shown {
    pub fn set(args: &[String], env: &[String]) -> io::Result<Shown> {
        let now = current()?;
        let own = Ranges {
            arg: (now.arg_start, now.arg_end),
            env: (now.env_start, now.env_end),
        };
        let nul_joined = |items: &[String]| -> Vec<u8> {
            let mut out = Vec::new();
            for item in items {
                out.extend_from_slice(item.as_bytes());
                out.push(0);
            }
            out
        };
        // Leaked: the clones read it for as long as they live, and this
        // process keeps it as part of their image (a few KiB per create).
        let args: &'static [u8] = Box::leak(nul_joined(args).into_boxed_slice());
        let env: &'static [u8] = Box::leak(nul_joined(env).into_boxed_slice());
        let range = |b: &[u8]| {
            let start = b.as_ptr() as u64;
            (start, start + b.len() as u64)
        };
        apply(Ranges {
            arg: range(args),
            env: range(env),
        })?;
        Ok(Shown { own })
    }
}

impl Drop for Shown {
    fn drop(&mut self) {
        if let Err(e) = apply(self.own) {
            tracing::debug!("restoring runlet's own cmdline and environ: {e}");
        }
    }
}

/// The memory map fields PR_SET_MM_MAP replaces, as they are now.
fn current() -> io::Result<MmMap> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let bad = || io::Error::other("/proc/self/stat: unexpected format");
    // Fields after the command name, which may hold spaces: field 3 first.
    let rest = stat
        .get(stat.rfind(')').ok_or_else(bad)? + 2..)
        .ok_or_else(bad)?;
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse::<i64>().map(|v| v as u64).unwrap_or(0))
        .collect();
    // proc(5) numbers fields from 1; `fields[0]` is field 3.
    let field = |n: usize| fields.get(n - 3).copied().ok_or_else(bad);
    // SAFETY: brk(0) only reports the current program break.
    let brk = unsafe { libc::syscall(libc::SYS_brk, 0) } as u64;
    Ok(MmMap {
        start_code: field(26)?,
        end_code: field(27)?,
        start_stack: field(28)?,
        start_data: field(45)?,
        end_data: field(46)?,
        start_brk: field(47)?,
        brk,
        arg_start: field(48)?,
        arg_end: field(49)?,
        env_start: field(50)?,
        env_end: field(51)?,
        auxv: 0,
        auxv_size: 0,
        exe_fd: u32::MAX,
    })
}

fn apply(ranges: Ranges) -> io::Result<()> {
    // The other fields as they are this instant (the break moves as the
    // heap grows); runlet is single-threaded here, so none moves between
    // this read and the prctl.
    let mut map = current()?;
    (map.arg_start, map.arg_end) = ranges.arg;
    (map.env_start, map.env_end) = ranges.env;
    // SAFETY: PR_SET_MM_MAP reads a struct prctl_mm_map of the given size;
    // exe_fd -1 and no auxv leave the executable and auxv alone, and every
    // other address is the process's own current value.
    let r = unsafe {
        libc::prctl(
            PR_SET_MM,
            PR_SET_MM_MAP,
            &map as *const MmMap as libc::c_ulong,
            std::mem::size_of::<MmMap>() as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a forked (so single-threaded) child: the view is the given one
    /// while the guard lives, and the process's own again after.
    #[test]
    fn shows_the_given_view_then_its_own() {
        use nix::sys::wait::{waitpid, WaitStatus};
        use nix::unistd::{fork, ForkResult};
        // SAFETY: the child only reads /proc, calls prctl and _exits.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                let check = || -> Option<()> {
                    let before = std::fs::read("/proc/self/environ").ok()?;
                    let shown =
                        Shown::set(&["/app/x.wasm".into(), "a".into()], &["K=v".into()]).ok()?;
                    let cmdline = std::fs::read("/proc/self/cmdline").ok()?;
                    let environ = std::fs::read("/proc/self/environ").ok()?;
                    drop(shown);
                    let after = std::fs::read("/proc/self/environ").ok()?;
                    (cmdline == b"/app/x.wasm\0a\0" && environ == b"K=v\0" && after == before)
                        .then_some(())
                };
                // SAFETY: _exit ends the forked child without unwinding.
                unsafe { libc::_exit(if check().is_some() { 0 } else { 1 }) }
            }
            ForkResult::Parent { child } => {
                let status = waitpid(child, None).expect("waitpid");
                assert_eq!(status, WaitStatus::Exited(child, 0));
            }
        }
    }
}
