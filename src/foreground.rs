//! Foreground `run` and `exec`: wait for the container's process, forward
//! signals to it, return its exit status (128+N when killed by signal N),
//! and, when it has a terminal but the caller gave no console socket, relay
//! the terminal through the pty master as runc does.

use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGCONT,
    Signal::SIGWINCH,
];

/// A console socket of our own, for a foreground process with a terminal.
pub struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    pub fn bind(dir: &Path) -> Result<Self> {
        crate::state::make_root(dir)?;
        let path = dir.join(format!(".console-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        Ok(ConsoleSocket { listener, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Receives the pty master that the container sent during create.
    pub fn receive_master(&self) -> Result<OwnedFd> {
        let (stream, _) = self.listener.accept()?;
        let mut buf = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )?;
        for cmsg in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                if let Some(fd) = fds.first() {
                    // SAFETY: the fd was just received via SCM_RIGHTS and is ours.
                    return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
                }
            }
        }
        Err(anyhow!("console socket: no pty master received"))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Puts a terminal into raw mode until dropped.
struct RawMode {
    fd: RawFd,
    saved: termios::Termios,
}

impl RawMode {
    fn enter(fd: BorrowedFd<'_>) -> Option<Self> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, termios::SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode {
            fd: fd.as_raw_fd(),
            saved,
        })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the fd is stdin, which stays open for the life of the process.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(fd, termios::SetArg::TCSANOW, &self.saved);
    }
}

nix::ioctl_read_bad!(get_winsize, libc::TIOCGWINSZ, libc::winsize);
nix::ioctl_write_ptr_bad!(set_winsize, libc::TIOCSWINSZ, libc::winsize);

fn copy_winsize(from: RawFd, to: RawFd) {
    let mut ws: libc::winsize = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: both ioctls read/write a winsize struct we own.
    unsafe {
        if get_winsize(from, &mut ws).is_ok() {
            let _ = set_winsize(to, &ws);
        }
    }
}

fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Blocks the forwarded signals and SIGCHLD; call before the process can
/// exit unnoticed and after every child that must not inherit the mask
/// has been created.
pub fn block_signals() -> Result<SignalFd> {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(*s);
    }
    set.add(Signal::SIGCHLD);
    set.thread_block()?;
    Ok(SignalFd::with_flags(
        &set,
        SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
    )?)
}

/// Waits for `pid`, forwarding signals, relaying `master` if given.
pub fn wait(sfd: SignalFd, pid: Pid, master: Option<OwnedFd>) -> Result<i32> {
    let stdin = std::io::stdin();
    let _raw = match &master {
        Some(m) => {
            copy_winsize(stdin.as_raw_fd(), m.as_raw_fd());
            RawMode::enter(stdin.as_fd())
        }
        None => None,
    };
    let mut stdin_open = master.is_some();
    let mut master_open = master.is_some();
    let mut status: Option<i32> = reap(pid);
    let mut buf = vec![0u8; 16 * 1024];

    while status.is_none() || master_open {
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = &master {
            if master_open {
                fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            }
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        // Once the process is gone, drain the pty briefly, then stop.
        let timeout = if status.is_some() {
            PollTimeout::from(100u16)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(0) => break,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            while let Ok(Some(info)) = sfd.read_signal() {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGCHLD {
                    if let Some(code) = reap(pid) {
                        status = Some(code);
                    }
                } else if sig == libc::SIGWINCH {
                    if let Some(m) = &master {
                        copy_winsize(stdin.as_raw_fd(), m.as_raw_fd());
                    }
                } else if let Ok(s) = Signal::try_from(sig) {
                    let _ = nix::sys::signal::kill(pid, s);
                }
            }
        }
        if let Some(m) = &master {
            let mut i = 1;
            if master_open {
                if ready[i] {
                    match nix::unistd::read(m.as_raw_fd(), &mut buf) {
                        Ok(0) | Err(_) => master_open = false,
                        Ok(n) => {
                            let mut out = std::io::stdout();
                            let _ = out.write_all(&buf[..n]);
                            let _ = out.flush();
                        }
                    }
                }
                i += 1;
            }
            if stdin_open && ready.get(i).copied().unwrap_or(false) {
                match std::io::stdin().lock().read(&mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => {
                        let _ = nix::unistd::write(m, &buf[..n]);
                    }
                }
            }
        }
    }
    match status {
        Some(code) => Ok(code),
        None => {
            // The pty closed first: the process is exiting; wait for it.
            loop {
                match waitpid(pid, None) {
                    Ok(s) => {
                        if let Some(code) = exit_code(s) {
                            return Ok(code);
                        }
                    }
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(anyhow!("waiting for {pid}: {e}")),
                }
            }
        }
    }
}

/// Reaps exited children; returns the exit code if `pid` was among them.
fn reap(pid: Pid) -> Option<i32> {
    let mut result = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return result,
            Ok(s) => {
                if s.pid() == Some(pid) {
                    result = exit_code(s);
                }
            }
        }
    }
}

/// runc's rules for terminals, with runc's wording.
pub fn check_terminal(terminal: bool, console_socket: bool, detached: bool) -> Result<()> {
    if detached && terminal && !console_socket {
        bail!("cannot allocate tty if runc will detach without setting console socket");
    }
    if console_socket && !terminal {
        bail!("cannot use console socket if runc will not detach or allocate tty");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_rules() {
        assert!(check_terminal(true, false, true).is_err());
        assert!(check_terminal(false, true, true).is_err());
        assert!(check_terminal(true, true, true).is_ok());
        assert!(check_terminal(false, false, true).is_ok());
        assert!(check_terminal(true, false, false).is_ok());
    }
}
