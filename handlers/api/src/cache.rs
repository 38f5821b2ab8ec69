//! The compiled-code cache shared by engines.
//!
//! An entry is native code, so the cache must be something only root can
//! write: the directory is created 0700 and refused when it is owned by
//! another user or writable by group or others. Entries are keyed by the
//! engine, the engine's compatibility hash (its version and settings) and
//! the SHA-256 of the module's bytes:
//! `<dir>/<engine>-<compat>/<sha256>.bin`. Each entry is written to a
//! temporary file and renamed into place, then a sidecar `<sha256>.sum`
//! records its length and xxh3 checksum. A lookup that finds no sidecar, a
//! different length or a different checksum treats the entry as corrupt,
//! removes it and reports a miss, so the module is compiled again.
//!
//! An entry is handed out as a [`Mapping`]: a path through a detached
//! read-only mount of the cache (see [`crate::rofs`]), so the compiled code
//! that a container's init maps can never be opened for writing through its
//! `/proc/<pid>/map_files/`. Where that mount cannot be made (no mount API),
//! the verified bytes are handed out instead, to be loaded into anonymous
//! memory.

use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The default location, overridden by `--wasm-cache` / RUNLET_WASM_CACHE.
pub const DEFAULT_DIR: &str = "/var/lib/runlet/wasm-cache";

pub struct Cache {
    dir: PathBuf,
}

/// Identifies one compiled artefact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// `<engine>-<compat>`
    pub namespace: String,
    /// SHA-256 of the module bytes, hex.
    pub module: String,
}

impl Key {
    pub fn new(engine: &str, compat: &str, module_bytes: &[u8]) -> Key {
        Key {
            namespace: format!("{engine}-{compat}"),
            module: sha256_hex(module_bytes),
        }
    }
}

/// A cache entry ready to be mapped.
pub enum Mapping {
    /// The entry below a detached read-only mount of the cache; the path
    /// stays valid while this value lives.
    ReadOnly { _tree: OwnedFd, path: PathBuf },
    /// The entry's bytes, when no read-only mount could be made.
    InMemory(Vec<u8>),
}

/// An entry as listed by `runlet wasm-cache list`.
#[derive(Debug, Clone)]
pub struct Entry {
    pub namespace: String,
    pub module: String,
    pub size: u64,
    pub path: PathBuf,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn checksum(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

impl Cache {
    /// Opens (creating if needed) a cache directory that only its owner,
    /// who must be the current user, can write.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Cache> {
        let dir = dir.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let meta = fs::metadata(&dir)?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if meta.uid() != euid {
            return Err(io::Error::other(format!(
                "{}: owned by uid {}, not by the current user {euid}",
                dir.display(),
                meta.uid()
            )));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(io::Error::other(format!(
                "{}: writable by group or others (mode {:o})",
                dir.display(),
                meta.mode() & 0o777
            )));
        }
        Ok(Cache { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn entry_path(&self, key: &Key) -> PathBuf {
        self.dir
            .join(&key.namespace)
            .join(format!("{}.bin", key.module))
    }

    fn sum_path(&self, key: &Key) -> PathBuf {
        self.dir
            .join(&key.namespace)
            .join(format!("{}.sum", key.module))
    }

    /// A read-only view of `path` (a file of this cache), or None when the
    /// mount API is not available.
    fn readonly_view(&self, path: &Path) -> Option<(OwnedFd, PathBuf)> {
        let rel = path.strip_prefix(&self.dir).ok()?;
        match crate::rofs::readonly_tree(&self.dir) {
            Ok(tree) => {
                let p = crate::rofs::path_below(&tree, rel);
                Some((tree, p))
            }
            Err(_) => None,
        }
    }

    /// The entry if it exists and is intact, read through the read-only
    /// view that will be mapped; a damaged entry is removed and reported
    /// as a miss.
    pub fn lookup(&self, key: &Key) -> Option<Mapping> {
        let path = self.entry_path(key);
        let view = self.readonly_view(&path);
        let sum = fs::read_to_string(self.sum_path(key)).ok();
        let file = fs::File::open(view.as_ref().map_or(&path, |(_, p)| p)).ok()?;
        let expected = sum.as_deref().and_then(parse_sum);
        match view {
            Some((tree, path)) => {
                // Checked in place (mapped, not copied): the warm start reads
                // this file on every create.
                let intact = expected.is_some_and(|(len, hash)| {
                    with_mapped(&file, |data| {
                        len == data.len() as u64 && hash == checksum(data)
                    })
                    .unwrap_or(false)
                });
                if !intact {
                    self.remove(key);
                    return None;
                }
                Some(Mapping::ReadOnly { _tree: tree, path })
            }
            None => {
                let mut data = Vec::new();
                io::Read::read_to_end(&mut &file, &mut data).ok()?;
                let intact = expected
                    .is_some_and(|(len, hash)| len == data.len() as u64 && hash == checksum(&data));
                if !intact {
                    self.remove(key);
                    return None;
                }
                Some(Mapping::InMemory(data))
            }
        }
    }

    /// Stores compiled code atomically and returns it ready to map.
    pub fn store(&self, key: &Key, data: &[u8]) -> io::Result<Mapping> {
        let ns = self.dir.join(&key.namespace);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&ns)?;
        let path = self.entry_path(key);
        write_atomic(&path, data)?;
        let sum = format!("len {}\nxxh3 {:016x}\n", data.len(), checksum(data));
        write_atomic(&self.sum_path(key), sum.as_bytes())?;
        Ok(match self.readonly_view(&path) {
            Some((tree, path)) => Mapping::ReadOnly { _tree: tree, path },
            None => Mapping::InMemory(data.to_vec()),
        })
    }

    pub fn remove(&self, key: &Key) {
        let _ = fs::remove_file(self.entry_path(key));
        let _ = fs::remove_file(self.sum_path(key));
    }

    pub fn list(&self) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for ns in fs::read_dir(&self.dir)? {
            let ns = ns?;
            if !ns.file_type()?.is_dir() {
                continue;
            }
            for e in fs::read_dir(ns.path())? {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(module) = name.strip_suffix(".bin") {
                    out.push(Entry {
                        namespace: ns.file_name().to_string_lossy().into_owned(),
                        module: module.to_string(),
                        size: e.metadata()?.len(),
                        path: e.path(),
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.namespace, &a.module).cmp(&(&b.namespace, &b.module)));
        Ok(out)
    }

    /// Removes every entry; returns how many.
    pub fn clear(&self) -> io::Result<usize> {
        let n = self.list()?.len();
        for ns in fs::read_dir(&self.dir)? {
            let ns = ns?;
            if ns.file_type()?.is_dir() {
                fs::remove_dir_all(ns.path())?;
            }
        }
        Ok(n)
    }
}

/// Calls `f` with the whole file mapped read-only.
fn with_mapped<T>(file: &fs::File, f: impl FnOnce(&[u8]) -> T) -> io::Result<T> {
    use std::os::fd::AsRawFd;
    let len = usize::try_from(file.metadata()?.len()).map_err(io::Error::other)?;
    if len == 0 {
        return Ok(f(&[]));
    }
    // SAFETY: a fresh private read-only mapping of an open file; it is
    // only read through the slice below and unmapped before returning.
    // The cache is root-owned: nobody truncates an entry under us except
    // runlet's own atomic renames, which replace the inode.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ptr maps len readable bytes until the munmap below.
    let out = f(unsafe { std::slice::from_raw_parts(ptr as *const u8, len) });
    // SAFETY: unmapping exactly the mapping made above.
    unsafe { libc::munmap(ptr, len) };
    Ok(out)
}

fn parse_sum(s: &str) -> Option<(u64, u64)> {
    let mut len = None;
    let mut hash = None;
    for line in s.lines() {
        match line.split_once(' ') {
            Some(("len", v)) => len = v.parse().ok(),
            Some(("xxh3", v)) => hash = u64::from_str_radix(v, 16).ok(),
            _ => {}
        }
    }
    Some((len?, hash?))
}

fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> (tempfile::TempDir, Cache) {
        let t = tempfile::tempdir().expect("tempdir");
        let c = Cache::open(t.path().join("c")).expect("open");
        (t, c)
    }

    #[test]
    fn miss_store_hit() {
        let (_t, c) = cache();
        let key = Key::new("wasmtime", "abc", b"module bytes");
        assert!(c.lookup(&key).is_none());
        c.store(&key, b"compiled").expect("store");
        let hit = c.lookup(&key).expect("hit");
        assert_eq!(mapped_bytes(&hit), b"compiled");
        assert_eq!(c.list().expect("list").len(), 1);
    }

    #[test]
    fn truncated_and_corrupt_entries_are_misses_and_removed() {
        let (_t, c) = cache();
        let key = Key::new("wasmtime", "abc", b"m");
        c.store(&key, b"0123456789").expect("store");
        let p = c.entry_path(&key);
        fs::write(&p, b"01234").expect("truncate");
        assert!(c.lookup(&key).is_none());
        assert!(!p.exists(), "truncated entry not removed");

        c.store(&key, b"0123456789").expect("store");
        fs::write(&p, b"0123456780").expect("flip");
        assert!(c.lookup(&key).is_none());

        c.store(&key, b"0123456789").expect("store");
        fs::remove_file(c.sum_path(&key)).expect("rm sum");
        assert!(c.lookup(&key).is_none(), "entry without checksum trusted");
    }

    fn mapped_bytes(m: &Mapping) -> Vec<u8> {
        match m {
            Mapping::ReadOnly { path, .. } => fs::read(path).expect("read view"),
            Mapping::InMemory(b) => b.clone(),
        }
    }

    #[test]
    fn entries_are_handed_out_read_only() {
        let (_t, c) = cache();
        let key = Key::new("wasmtime", "abc", b"m");
        let stored = c.store(&key, b"code").expect("store");
        for m in [stored, c.lookup(&key).expect("hit")] {
            // Without the mount API (not root) the bytes come in memory.
            if let Mapping::ReadOnly { path, .. } = &m {
                let err = fs::OpenOptions::new()
                    .append(true)
                    .open(path)
                    .expect_err("cache entry writable through its view");
                assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
            }
            assert_eq!(mapped_bytes(&m), b"code");
        }
    }

    #[test]
    fn keys_differ_by_engine_settings_and_bytes() {
        let a = Key::new("wasmtime", "x", b"m");
        assert_ne!(a, Key::new("wasmtime", "y", b"m"));
        assert_ne!(a, Key::new("wasmtime", "x", b"n"));
    }

    #[test]
    fn refuses_group_writable_dir() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().expect("tempdir");
        let d = t.path().join("c");
        fs::create_dir(&d).expect("mkdir");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = Cache::open(&d).err().expect("must refuse");
        assert!(err.to_string().contains("writable by group or others"));
    }

    #[test]
    fn clear_removes_everything() {
        let (_t, c) = cache();
        c.store(&Key::new("e", "1", b"a"), b"x").expect("store");
        c.store(&Key::new("e", "2", b"b"), b"y").expect("store");
        assert_eq!(c.clear().expect("clear"), 2);
        assert!(c.list().expect("list").is_empty());
    }
}
