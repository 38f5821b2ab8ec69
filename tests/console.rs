//! Terminals: the caller's --console-socket receives the pty master over
//! SCM_RIGHTS (what conmon does), for create and for exec.

mod common;

use std::io::{IoSliceMut, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;

use common::{read_until, Env};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// Accepts one connection and returns the fd it carries, as conmon does.
fn receive_fd(listener: &UnixListener) -> OwnedFd {
    let (stream, _) = listener.accept().expect("accept");
    let mut buf = [0u8; 1024];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("recvmsg");
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the fd arrived via SCM_RIGHTS and nothing else owns it.
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd received on the console socket");
}

#[test]
fn console_socket_gets_a_real_pty() {
    require_root!();
    let env = Env::new("console");
    env.config(|c| c["process"]["terminal"] = true.into());
    env.set_args(&[
        "sh",
        "-c",
        "tty; test -t 0 && echo stdin-is-tty; read line; echo got:$line",
    ]);
    let sock = env.dir.path().join("console.sock");
    let listener = UnixListener::bind(&sock).expect("bind");
    let id = env.id("t");
    env.ok(&[
        "create",
        "--bundle",
        env.bundle_str(),
        "--console-socket",
        sock.to_str().expect("utf8"),
        &id,
    ]);
    let master = receive_fd(&listener);
    assert!(
        nix::unistd::isatty(master.as_raw_fd()).unwrap_or(false),
        "received fd is not a terminal"
    );
    env.ok(&["start", &id]);
    let seen = read_until(&master, "stdin-is-tty");
    assert!(seen.contains("/dev/pts/"), "tty output: {seen:?}");
    assert!(seen.contains("stdin-is-tty"), "{seen:?}");
    std::fs::File::from(master.try_clone().expect("dup"))
        .write_all(b"hello\n")
        .expect("type");
    let seen = read_until(&master, "got:hello");
    assert!(seen.contains("got:hello"), "{seen:?}");
    env.wait_status(&id, "stopped");
    env.ok(&["delete", &id]);
    env.assert_gone(&id);
}

#[test]
fn exec_with_console_socket() {
    require_root!();
    let env = Env::new("console-exec");
    let id = env.id("e");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    let sock = env.dir.path().join("exec-console.sock");
    let listener = UnixListener::bind(&sock).expect("bind");
    env.ok(&[
        "exec",
        "--tty",
        "--detach",
        "--console-socket",
        sock.to_str().expect("utf8"),
        &id,
        "sh",
        "-c",
        "tty; echo exec-tty-done",
    ]);
    let master = receive_fd(&listener);
    let seen = read_until(&master, "exec-tty-done");
    assert!(
        seen.contains("/dev/pts/") && seen.contains("exec-tty-done"),
        "{seen:?}"
    );
    env.ok(&["delete", "-f", &id]);
}

#[test]
fn foreground_run_relays_a_terminal() {
    require_root!();
    let env = Env::new("console-run");
    env.config(|c| c["process"]["terminal"] = true.into());
    env.set_args(&["sh", "-c", "tty; read line; echo typed:$line; exit 3"]);
    let (mut child, master) = env.run_on_pty(&env.id("t"));
    let seen = read_until(&master, "/dev/pts/");
    assert!(seen.contains("/dev/pts/"), "{seen:?}");
    std::fs::File::from(master.try_clone().expect("dup"))
        .write_all(b"abc\r")
        .expect("type");
    let seen = read_until(&master, "typed:abc");
    assert!(seen.contains("typed:abc"), "{seen:?}");
    assert_eq!(child.wait().expect("wait").code(), Some(3));
}
