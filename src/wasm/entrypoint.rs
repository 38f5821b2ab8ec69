//! Finding a container's entrypoint from the host, confined to its root.
//!
//! Dispatch looks at the file `process.args[0]` names (its first bytes) and
//! the Wasm handler reads it to compile it at `create`. Both happen before
//! the container's mounts exist, from the host, so every lookup goes through
//! `openat2(RESOLVE_IN_ROOT)`: absolute symlinks and `..` resolve against
//! the container's root and can never reach a host file.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Opens `path` with `flags` as if `root` were `/`.
fn open_resolved_in_root(root: &Path, path: &Path, flags: i32) -> io::Result<File> {
    let root_dir = File::open(root)?;
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let c_path = CString::new(rel.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC | libc::O_NOCTTY) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: openat2 reads `how` (a correctly laid out struct open_how that
    // outlives the call) and a NUL-terminated path; the result is a new fd.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root_dir.as_raw_fd(),
            c_path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd as i32) })
}

/// Opens the regular file `path` (read-only, non-blocking) as if `root`
/// were `/`.
pub fn open_in_root(root: &Path, path: &Path) -> io::Result<File> {
    let file = open_resolved_in_root(root, path, libc::O_RDONLY | libc::O_NONBLOCK)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// Opens the directory `path` as if `root` were `/`.
pub fn open_dir_in_root(root: &Path, path: &Path) -> io::Result<File> {
    open_resolved_in_root(root, path, libc::O_RDONLY | libc::O_DIRECTORY)
}

/// The entrypoint `args0` names inside `root`: the path as the container
/// sees it and the opened file. Names without a slash are looked up in the
/// process's PATH, relative ones against its cwd.
pub fn find_entrypoint(
    root: &Path,
    args0: &str,
    env: &[String],
    cwd: &Path,
) -> Option<(PathBuf, File)> {
    if args0.contains('/') {
        let path = if Path::new(args0).is_absolute() {
            PathBuf::from(args0)
        } else {
            cwd.join(args0)
        };
        return open_in_root(root, &path).ok().map(|f| (path, f));
    }
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(args0))
        .find_map(|p| open_in_root(root, &p).ok().map(|f| (p, f)))
}

/// Whether a file starts with the Wasm magic bytes.
pub fn has_wasm_magic(file: &mut File) -> bool {
    let mut head = [0u8; 4];
    file.read_exact(&mut head).is_ok() && head == runlet_handler::WASM_MAGIC
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_and_dotdot_stay_inside_the_root() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("bin")).expect("mkdir");
        std::fs::write(t.path().join("outside"), b"host secret").expect("write");
        std::fs::write(root.join("bin/app.wasm"), b"\0asm\x01\0\0\0").expect("write");
        std::os::unix::fs::symlink("/../outside", root.join("bin/abs-link")).expect("link");
        std::os::unix::fs::symlink("../../outside", root.join("bin/rel-link")).expect("link");

        assert!(open_in_root(&root, Path::new("/bin/app.wasm")).is_ok());
        for escape in [
            "/bin/abs-link",
            "/bin/rel-link",
            "/../outside",
            "../outside",
        ] {
            assert!(
                open_in_root(&root, Path::new(escape)).is_err(),
                "{escape} escaped the root"
            );
        }
        let mut f = open_in_root(&root, Path::new("/bin/app.wasm")).expect("open");
        assert!(has_wasm_magic(&mut f));
    }

    #[test]
    fn path_search_inside_the_root() {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(t.path().join("opt/bin")).expect("mkdir");
        std::fs::write(t.path().join("opt/bin/tool"), b"x").expect("write");
        let env = vec!["PATH=/usr/bin:/opt/bin".to_string()];
        let (p, _) = find_entrypoint(t.path(), "tool", &env, Path::new("/")).expect("found");
        assert_eq!(p, PathBuf::from("/opt/bin/tool"));
        assert!(find_entrypoint(t.path(), "missing", &env, Path::new("/")).is_none());
        let (p, _) =
            find_entrypoint(t.path(), "bin/tool", &env, Path::new("/opt")).expect("relative");
        assert_eq!(p, PathBuf::from("/opt/bin/tool"));
    }

    #[test]
    fn directories_are_not_entrypoints() {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(t.path().join("dir.wasm")).expect("mkdir");
        assert!(open_in_root(t.path(), Path::new("/dir.wasm")).is_err());
    }
}
