//! CRIU for `checkpoint` and `restore`, over criu's RPC (`criu swrk`).
//!
//! runlet speaks the RPC itself, with rust-criu's protobuf types, instead
//! of using libcontainer 0.7's `Container::checkpoint`: that one ends a
//! checkpoint by deleting the container through libcontainer's own delete,
//! which skips what runlet's delete cleans (the cgroup levels runlet made,
//! staged mounts, runlet's state), and libcontainer has no restore at all.
//! rust-criu's own client takes notification callbacks as plain function
//! pointers (no way to hand the restored pid back) and cannot set
//! `cg_root`, which is how runc restores into the container's own cgroup.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Result};
use libcontainer::oci_spec::runtime::{LinuxNamespaceType, Spec};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use protobuf::Message;
use rust_criu::rust_criu_protobuf::rpc::{
    Cgroup_root, Criu_cg_mode, Criu_notify, Criu_opts, Criu_req, Criu_req_type, Criu_resp,
    Ext_mount_map, Inherit_fd,
};

use crate::cli::CriuArgs;

/// The stdio of the checkpointed init, kept in the image directory (as
/// runc's descriptors.json) so that a restore can hand pipes back.
pub const DESCRIPTORS: &str = "descriptors.json";

/// The `--manage-cgroups-mode` words runc takes.
pub fn cgroups_mode(word: &str) -> Result<Criu_cg_mode> {
    Ok(match word {
        "soft" => Criu_cg_mode::SOFT,
        "full" => Criu_cg_mode::FULL,
        "strict" => Criu_cg_mode::STRICT,
        "ignore" => Criu_cg_mode::IGNORE,
        _ => bail!("--manage-cgroups-mode {word:?}: must be soft, full, strict or ignore"),
    })
}

/// A directory for criu (created 0700 if missing), opened for its fd.
pub fn open_dir(path: &Path, what: &str) -> Result<OwnedFd> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => bail!("{what} {}: {e}", path.display()),
    }
    let f = std::fs::File::open(path).map_err(|e| anyhow!("{what} {}: {e}", path.display()))?;
    Ok(OwnedFd::from(f))
}

pub fn ext_mount(key: &str, val: &str) -> Ext_mount_map {
    let mut m = Ext_mount_map::new();
    m.set_key(key.to_string());
    m.set_val(val.to_string());
    m
}

pub fn inherit_fd(key: &str, fd: RawFd) -> Inherit_fd {
    let mut i = Inherit_fd::new();
    i.set_key(key.to_string());
    i.set_fd(fd);
    i
}

/// `cg_root` entries that put the restored tree in the cgroups of `pid`
/// (criu's own process, placed in the container's cgroup first).
pub fn cgroup_roots(pid: i32) -> Result<Vec<Cgroup_root>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|e| anyhow!("/proc/{pid}/cgroup: {e}"))?;
    let mut roots = Vec::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        for ctrl in ctrls.split(',') {
            let mut r = Cgroup_root::new();
            r.set_ctrl(ctrl.to_string());
            r.set_path(path.to_string());
            roots.push(r);
        }
    }
    Ok(roots)
}

/// The first error criu logged (the cause; later ones follow from it),
/// for the one-line error.
fn first_log_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .find(|l| l.contains("Error (") || l.contains("Error:"))
        .map(|l| l.trim().to_string())
}

/// One RPC exchange with a fresh `criu swrk`: `opts` as a request of
/// `kind`, notifications answered by `on_notify` (an error aborts criu's
/// work), `started` called with criu's pid and the options before the
/// request goes out.
/// `pass` are descriptors criu must inherit (the image and work
/// directories, inherited stdio); `log` names criu's log for errors.
pub fn call(
    kind: Criu_req_type,
    opts: Criu_opts,
    pass: &[RawFd],
    log: &Path,
    started: impl FnOnce(i32, &mut Criu_opts) -> Result<()>,
    mut on_notify: impl FnMut(&Criu_notify) -> Result<()>,
) -> Result<Criu_resp> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| anyhow!("criu: socketpair: {e}"))?;
    let mut keep: Vec<RawFd> = pass.to_vec();
    keep.push(theirs.as_raw_fd());
    let mut cmd = Command::new("criu");
    cmd.arg("swrk")
        .arg(theirs.as_raw_fd().to_string())
        .stdin(Stdio::null());
    // SAFETY: between fork and exec only fcntl runs, which is
    // async-signal-safe; it clears close-on-exec on descriptors this
    // process owns for as long as the call lasts.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &keep {
                if libc::fcntl(*fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow!("criu: not found in $PATH (install criu, 3.15 or later)")
        } else {
            anyhow!("criu: {e}")
        }
    })?;
    drop(theirs);
    let result = exchange(
        kind,
        opts,
        &ours,
        child.id() as i32,
        started,
        &mut on_notify,
    );
    if result.is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
    result.map_err(|e| match first_log_error(log) {
        Some(line) => anyhow!("{e:#} (see {}: {line})", log.display()),
        None => anyhow!("{e:#} (see {})", log.display()),
    })
}

fn exchange(
    kind: Criu_req_type,
    mut opts: Criu_opts,
    sock: &OwnedFd,
    pid: i32,
    started: impl FnOnce(i32, &mut Criu_opts) -> Result<()>,
    on_notify: &mut impl FnMut(&Criu_notify) -> Result<()>,
) -> Result<Criu_resp> {
    started(pid, &mut opts)?;
    // SAFETY: a second handle on the socket for std's Write; ManuallyDrop
    // keeps it from closing the descriptor `sock` still owns.
    let mut out =
        std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(sock.as_raw_fd()) });
    let mut req = Criu_req::new();
    req.set_type(kind);
    req.opts = protobuf::MessageField::some(opts);
    out.write_all(&req.write_to_bytes()?)
        .map_err(|e| anyhow!("criu: sending the request: {e}"))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = nix::sys::socket::recv(
            sock.as_raw_fd(),
            &mut buf,
            nix::sys::socket::MsgFlags::empty(),
        )
        .map_err(|e| anyhow!("criu: reading its answer: {e}"))?;
        if n == 0 {
            bail!("criu ended without an answer");
        }
        let resp = Criu_resp::parse_from_bytes(&buf[..n])?;
        if !resp.success() {
            bail!(
                "criu failed: type {:?} errno {}",
                resp.type_(),
                resp.cr_errno()
            );
        }
        if resp.type_() == Criu_req_type::NOTIFY {
            let verdict = on_notify(&resp.notify);
            let mut ack = Criu_req::new();
            ack.set_type(Criu_req_type::NOTIFY);
            ack.set_notify_success(verdict.is_ok());
            out.write_all(&ack.write_to_bytes()?)
                .map_err(|e| anyhow!("criu: answering a notification: {e}"))?;
            if verdict.is_err() {
                // criu undoes its work (kills what it restored) and then
                // answers; wait a while for that before it is killed.
                let mut fds = [nix::poll::PollFd::new(
                    sock.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(30_000u16));
            }
            verdict?;
            continue;
        }
        if resp.type_() != kind {
            bail!("criu: unexpected answer {:?}", resp.type_());
        }
        return Ok(resp);
    }
}

/// Where criu writes its log: the work directory when given, else the
/// image directory.
pub fn log_path(image: &Path, work: Option<&Path>, name: &str) -> PathBuf {
    work.unwrap_or(image).join(name)
}

/// `--image-path`, or ./checkpoint as runc; absolute.
pub fn image_path(a: &CriuArgs) -> Result<PathBuf> {
    Ok(crate::cli::absolute(
        a.image_path.as_deref().unwrap_or(Path::new("checkpoint")),
    )?)
}

/// The options dump and restore share, with the image directory and the
/// work directory (when given) opened for CRIU: their descriptors are
/// returned, to keep open and pass on.
pub fn base_opts(a: &CriuArgs, image: &Path) -> Result<(Criu_opts, Vec<OwnedFd>)> {
    let mut opts = Criu_opts::new();
    let image_fd = open_dir(image, "--image-path")?;
    opts.set_images_dir_fd(image_fd.as_raw_fd());
    let mut dirs = vec![image_fd];
    if let Some(w) = &a.work_path {
        let work_fd = open_dir(w, "--work-path")?;
        opts.set_work_dir_fd(work_fd.as_raw_fd());
        dirs.push(work_fd);
    }
    opts.set_log_level(4);
    opts.set_tcp_established(a.tcp_established);
    opts.set_ext_unix_sk(a.ext_unix_sk);
    opts.set_shell_job(a.shell_job);
    opts.set_file_locks(a.file_locks);
    opts.set_auto_dedup(a.auto_dedup);
    opts.set_manage_cgroups(true);
    opts.set_manage_cgroups_mode(cgroups_mode(&a.manage_cgroups_mode)?);
    Ok((opts, dirs))
}

pub fn is_bind(m: &libcontainer::oci_spec::runtime::Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

/// ((CRIU's name, path), key) of the namespaces joined by path that CRIU
/// can take as external: network and pid, as runc.
pub fn external_namespaces(spec: &Spec) -> Vec<((&'static str, PathBuf), &'static str)> {
    let mut out = Vec::new();
    for ns in spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        let Some(path) = ns.path() else { continue };
        match ns.typ() {
            LinuxNamespaceType::Network => out.push((("net", path.clone()), "extRootNetNS")),
            LinuxNamespaceType::Pid => out.push((("pid", path.clone()), "extRootPidNS")),
            _ => {}
        }
    }
    out
}
