//! Protection of the runtime binary against CVE-2019-5736.
//!
//! A process inside a container can reach runlet's own executable through
//! `/proc/<pid>/exe` of any runlet process that lives in the container's
//! namespaces (the init before `start`, the process of an `exec` before it
//! calls execve, and, for Wasm containers, the init for its whole life). If
//! it can open that file for writing it replaces the runtime on the host.
//!
//! youki copies the whole binary into a sealed memfd on every invocation.
//! That costs a full read and write of a 20+ MB file per call. Instead,
//! `create`, `run` and `exec` re-execute themselves once from a *detached,
//! read-only bind mount* of the same file:
//!
//! 1. `open_tree(/proc/self/exe, OPEN_TREE_CLONE)` makes a bind mount of the
//!    binary that is attached to no mount namespace at all;
//! 2. `mount_setattr(MOUNT_ATTR_RDONLY)` makes that mount read-only;
//! 3. `execveat(fd, "", AT_EMPTY_PATH)` runs the binary through it.
//!
//! Afterwards `/proc/self/exe` of this process and of every process it
//! clones resolves through a read-only mount: opening it for writing fails
//! with EROFS, and the mount cannot be remounted read-write because it
//! belongs to no namespace the container can act in. Nothing is copied; the
//! page cache of the binary is shared as usual. The cost is one execve.
//!
//! When the binary already lives on a read-only mount nothing is done. When
//! the mount API is not permitted (no CAP_SYS_ADMIN, old kernel) runlet
//! falls back to a sealed memfd copy, the only case where it copies.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// Set in the environment of the re-executed process so that a kernel that
/// silently ignores the read-only flag cannot make runlet loop.
const SEALED_ENV: &str = "_RUNLET_SEALED";

use runlet_handler::rofs::on_readonly_mount;

/// Ensures the running image is one a container cannot write to, re-executing
/// the current process if needed. Returns only when the image is protected
/// (or when protection is impossible, which is reported as an error).
pub fn ensure_protected_exe() -> anyhow::Result<()> {
    let exe = File::open("/proc/self/exe")?;
    if on_readonly_mount(exe.as_raw_fd())? {
        std::env::remove_var(SEALED_ENV);
        return Ok(());
    }
    if std::env::var_os(SEALED_ENV).is_some() {
        // We were re-executed already and the image is still writable:
        // a memfd (sealed) image also lands here, and it is safe.
        std::env::remove_var(SEALED_ENV);
        if is_sealed_memfd(exe.as_raw_fd()) {
            return Ok(());
        }
        anyhow::bail!(
            "cannot protect the runtime binary: /proc/self/exe is still writable after re-exec"
        );
    }
    drop(exe);

    let image = match readonly_clone_of_exe() {
        Ok(fd) => fd,
        Err(err) => {
            tracing::debug!(
                ?err,
                "read-only bind of the runtime binary failed; using a sealed copy"
            );
            sealed_memfd_copy()?
        }
    };
    reexec(image)
}

fn readonly_clone_of_exe() -> io::Result<OwnedFd> {
    runlet_handler::rofs::readonly_tree(std::path::Path::new("/proc/self/exe"))
}

fn is_sealed_memfd(fd: RawFd) -> bool {
    // SAFETY: F_GET_SEALS only reads the seals of a valid descriptor.
    let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
    seals >= 0 && seals & libc::F_SEAL_WRITE != 0
}

/// The fallback when the mount API is unavailable: a sealed in-memory copy.
fn sealed_memfd_copy() -> anyhow::Result<OwnedFd> {
    // SAFETY: memfd_create takes a NUL-terminated name and flags.
    let fd = unsafe {
        libc::memfd_create(
            c"runlet".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error().into());
    }
    // SAFETY: fd was just created and is owned by nobody else.
    let mut memfd = unsafe { File::from_raw_fd(fd) };
    let mut src = File::open("/proc/self/exe")?;
    io::copy(&mut src, &mut memfd)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: adding seals to our own memfd.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(io::Error::last_os_error().into());
    }
    Ok(memfd.into())
}

fn reexec(image: OwnedFd) -> anyhow::Result<()> {
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()?;
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != SEALED_ENV)
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv)
        })
        .collect::<Result<_, _>>()?;
    env.push(CString::new(format!("{SEALED_ENV}=1"))?);

    let argv: Vec<&CStr> = args.iter().map(|a| a.as_c_str()).collect();
    let envp: Vec<&CStr> = env.iter().map(|a| a.as_c_str()).collect();
    let err = nix::unistd::execveat(
        Some(image.as_raw_fd()),
        c"",
        &argv,
        &envp,
        nix::fcntl::AtFlags::AT_EMPTY_PATH,
    )
    .unwrap_err();
    anyhow::bail!("re-executing the runtime from its protected image: {err}")
}
