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

use std::fs;
use std::io::{self, Write};
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

    /// The entry's path if it exists and is intact; a damaged entry is
    /// removed and reported as a miss.
    pub fn lookup(&self, key: &Key) -> Option<PathBuf> {
        let path = self.entry_path(key);
        let sum = fs::read_to_string(self.sum_path(key)).ok();
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(_) => return None,
        };
        let intact = sum
            .as_deref()
            .and_then(parse_sum)
            .is_some_and(|(len, hash)| len == data.len() as u64 && hash == checksum(&data));
        if intact {
            Some(path)
        } else {
            self.remove(key);
            None
        }
    }

    /// Stores compiled code atomically and returns its path.
    pub fn store(&self, key: &Key, data: &[u8]) -> io::Result<PathBuf> {
        let ns = self.dir.join(&key.namespace);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&ns)?;
        let path = self.entry_path(key);
        write_atomic(&path, data)?;
        let sum = format!("len {}\nxxh3 {:016x}\n", data.len(), checksum(data));
        write_atomic(&self.sum_path(key), sum.as_bytes())?;
        Ok(path)
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
        let p = c.store(&key, b"compiled").expect("store");
        assert_eq!(c.lookup(&key), Some(p));
        assert_eq!(c.list().expect("list").len(), 1);
    }

    #[test]
    fn truncated_and_corrupt_entries_are_misses_and_removed() {
        let (_t, c) = cache();
        let key = Key::new("wasmtime", "abc", b"m");
        let p = c.store(&key, b"0123456789").expect("store");
        fs::write(&p, b"01234").expect("truncate");
        assert!(c.lookup(&key).is_none());
        assert!(!p.exists(), "truncated entry not removed");

        let p = c.store(&key, b"0123456789").expect("store");
        fs::write(&p, b"0123456780").expect("flip");
        assert!(c.lookup(&key).is_none());

        c.store(&key, b"0123456789").expect("store");
        fs::remove_file(c.sum_path(&key)).expect("rm sum");
        assert!(c.lookup(&key).is_none(), "entry without checksum trusted");
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
