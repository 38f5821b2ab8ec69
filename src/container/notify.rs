//! sd_notify relay (`NOTIFY_SOCKET`), as runc does it.
//!
//! When the caller (systemd, or podman with `--sdnotify=container`) sets
//! NOTIFY_SOCKET, `create` bind-mounts the directory `<state>/notify` into
//! the container at /run/notify and points the container's NOTIFY_SOCKET at
//! /run/notify/notify.sock. `start` binds that socket (a directory mount, so
//! the socket can be re-created without remounting), starts the process and
//! forwards what it sends until `READY=1`, telling the caller the init pid
//! with `MAINPID=`.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Result};
use libcontainer::oci_spec::runtime::{MountBuilder, Spec};
use nix::unistd::Pid;

const CONTAINER_DIR: &str = "/run/notify";
const SOCKET_NAME: &str = "notify.sock";

/// Adds the relay's mount and env to the spec when NOTIFY_SOCKET is set.
/// Returns the caller's socket, to be recorded in the container's state.
pub fn prepare_spec(spec: &mut Spec, state_dir: &Path) -> Result<Option<PathBuf>> {
    let Some(host) = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let mount = MountBuilder::default()
        .destination(CONTAINER_DIR)
        .source(state_dir.join("notify"))
        .typ("bind")
        .options(vec![
            "bind".into(),
            "nosuid".into(),
            "noexec".into(),
            "nodev".into(),
        ])
        .build()?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(mount);
    spec.set_mounts(Some(mounts));
    if let Some(mut process) = spec.process().clone() {
        let env = process.env().clone().unwrap_or_default();
        let var = format!("NOTIFY_SOCKET={CONTAINER_DIR}/{SOCKET_NAME}");
        process.set_env(Some(crate::config::process::merge_env(&env, &[var])));
        spec.set_process(Some(process));
    }
    Ok(Some(PathBuf::from(host)))
}

/// The directory that `prepare_spec` mounts; it must exist before the
/// container's mounts are made.
pub fn make_dir(state_dir: &Path) -> Result<()> {
    let dir = state_dir.join("notify");
    std::fs::create_dir_all(&dir).map_err(|e| anyhow!("{}: {e}", dir.display()))
}

pub struct Relay {
    socket: UnixDatagram,
    host: PathBuf,
}

impl Relay {
    /// Binds the container-side socket; call before starting the process.
    pub fn bind(state_dir: &Path, host: PathBuf) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let path = state_dir.join("notify").join(SOCKET_NAME);
        let _ = std::fs::remove_file(&path);
        let (_dir, short) = short_path(&path)?;
        let socket = UnixDatagram::bind(&short).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        // Any user in the container may notify.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        Ok(Relay { socket, host })
    }

    fn send_host(&self, msg: &[u8]) -> Result<()> {
        let (_dir, addr) = host_addr(&self.host)?;
        let out = UnixDatagram::unbound()?;
        out.send_to_addr(msg, &addr)
            .map_err(|e| anyhow!("NOTIFY_SOCKET {}: {e}", self.host.display()))?;
        Ok(())
    }

    /// Forwards notifications until the container says READY=1 or its init
    /// exits.
    pub fn forward_until_ready(&self, pid: Pid) -> Result<()> {
        let mut buf = vec![0u8; 4096];
        loop {
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let msg = &buf[..n];
                    let ready = msg.split(|b| *b == b'\n').any(|l| l == b"READY=1");
                    if ready {
                        self.send_host(format!("MAINPID={pid}\n").as_bytes())?;
                    }
                    self.send_host(msg)?;
                    if ready {
                        return Ok(());
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    // A zombie counts as gone: a foreground `run` has not
                    // reaped its init yet, and kill(pid, 0) would go on
                    // succeeding on it forever.
                    if !crate::container::process::is_live(pid.as_raw()) {
                        return Ok(());
                    }
                }
                Err(e) => return Err(anyhow!("notify relay: {e}")),
            }
        }
    }
}

fn host_addr(host: &Path) -> Result<(Option<std::fs::File>, SocketAddr)> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let bytes = host.as_os_str().as_bytes();
    match bytes.strip_prefix(b"@") {
        Some(name) => Ok((None, SocketAddr::from_abstract_name(name)?)),
        None => {
            let (dir, short) = short_path(host)?;
            Ok((dir, SocketAddr::from_pathname(short)?))
        }
    }
}

/// A socket path that fits in `sun_path` (108 bytes): a long one is
/// reached through its directory, opened O_PATH, as
/// `/proc/self/fd/N/<name>` (the descriptor must stay open while it is
/// used).
fn short_path(path: &Path) -> Result<(Option<std::fs::File>, PathBuf)> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    if path.as_os_str().as_bytes().len() < 100 {
        return Ok((None, path.to_path_buf()));
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok((None, path.to_path_buf()));
    };
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(parent)
        .map_err(|e| anyhow!("{}: {e}", parent.display()))?;
    let short = Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name);
    Ok((Some(dir), short))
}
