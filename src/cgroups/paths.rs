//! Where a cgroup's directories are: runc's lexical path cleaning, the
//! hierarchies of this host from one read of mountinfo, and the checks that
//! a directory is on a cgroup filesystem before it is read or removed.

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use libcgroups::common::CgroupSetup;

const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// runc's `CleanPath`: a lexical clean in which `..` cannot climb above the
/// start. A relative path stays relative.
pub fn clean(path: &Path) -> PathBuf {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::ParentDir => {
                parts.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    let mut out = if path.is_absolute() {
        PathBuf::from("/")
    } else {
        PathBuf::new()
    };
    out.extend(parts);
    out
}

/// What a process learns of the host's cgroups, read once per process:
/// whether the host is unified, the cgroup mounts from mountinfo and the
/// text of /proc/self/cgroup. `create` and `delete` consult them a dozen
/// times (placement, device rules, OOM setting, removal); reading them each
/// time cost about 150 system calls per `run`. Keyed by pid: a process
/// cloned into other namespaces reads its own.
struct Layout {
    pid: u32,
    unified: bool,
    /// libcgroups recognises the setup (v1, hybrid or unified).
    known: bool,
    mounts: Option<Vec<CgroupMount>>,
    own: Option<String>,
}

/// One cgroup filesystem mount of the hierarchy libcgroups uses.
#[derive(Debug, Clone)]
pub struct CgroupMount {
    /// The cgroup the mount shows as its root (mountinfo field 4).
    pub root: String,
    pub mountpoint: PathBuf,
    /// The controllers mounted there (empty for cgroup2).
    pub controllers: Vec<String>,
    /// Its superblock options but rw/ro (`cpu`, `cpuacct`; `xattr`,
    /// `name=systemd`), as /proc/<pid>/cgroup names a v1 hierarchy.
    pub options: Vec<String>,
}

impl CgroupMount {
    /// The directory of `cgroup` (an absolute cgroup path) below this
    /// mount; `None` when the mount, made from a sub-cgroup, does not hold it.
    fn dir_below(&self, cgroup: &Path) -> Option<PathBuf> {
        let inner = cgroup.strip_prefix(&self.root).ok()?;
        let dir = self.mountpoint.join(inner);
        dir.starts_with(&self.mountpoint).then_some(dir)
    }

    /// The directory below this mount of the cgroup that `proc_cgroup`
    /// (the text of a /proc/<pid>/cgroup, as this process sees it) gives
    /// for this mount's hierarchy.
    pub fn dir_of(&self, proc_cgroup: &str, unified: bool) -> Option<PathBuf> {
        // v1: the options name the hierarchy, named ones (`name=systemd`)
        // included; cgroup2: the `0::` line.
        let key: &[String] = if unified { &[] } else { &self.options };
        self.dir_below(&cgroup_in(proc_cgroup, key)?)
    }
}

static LAYOUT: Mutex<Option<Arc<Layout>>> = Mutex::new(None);

fn layout() -> Arc<Layout> {
    let pid = std::process::id();
    let mut slot = LAYOUT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = slot.as_ref().filter(|l| l.pid == pid) {
        return l.clone();
    }
    let setup = libcgroups::common::get_cgroup_setup();
    let unified = matches!(setup, Ok(CgroupSetup::Unified));
    let l = Arc::new(Layout {
        pid,
        unified,
        known: setup.is_ok(),
        mounts: std::fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .and_then(|text| cgroup_mounts(&text, unified)),
        own: std::fs::read_to_string("/proc/self/cgroup").ok(),
    });
    *slot = Some(l.clone());
    l
}

/// Whether this host uses the unified (cgroup v2 only) hierarchy.
pub(super) fn unified() -> bool {
    layout().unified
}

/// The host's cgroup mounts of the hierarchy libcgroups uses (v1
/// controllers on a v1 or hybrid host, cgroup2 on a unified one) and
/// whether it is unified; `None` when the setup is unknown.
pub fn host_mounts() -> Option<(bool, Vec<CgroupMount>)> {
    let l = layout();
    if !l.known {
        return None;
    }
    Some((l.unified, l.mounts.clone()?))
}

/// The text of /proc/self/cgroup (the caller's own cgroups).
pub(super) fn own_cgroups() -> std::io::Result<String> {
    layout()
        .own
        .clone()
        .ok_or_else(|| std::io::Error::other("unreadable"))
}

/// The directories of `cgroup_path` in every hierarchy libcgroups uses on
/// this host, from one read of mountinfo: the v1 controller mounts on a v1
/// or hybrid host, the cgroup2 mount on a unified one. Co-mounted
/// controllers yield one directory. Each lies below its mount point.
pub(super) fn hierarchy_dirs(cgroup_path: &Path) -> Option<Vec<PathBuf>> {
    Some(
        hierarchies(cgroup_path)?
            .into_iter()
            .map(|h| h.dir)
            .collect(),
    )
}

/// One hierarchy's view of a cgroup path.
pub(super) struct Hierarchy {
    /// Where the hierarchy is mounted.
    pub(super) mountpoint: PathBuf,
    /// The cgroup's directory in it.
    pub(super) dir: PathBuf,
    /// The controllers mounted there (`pids`, `cpu,cpuacct`, ...; empty
    /// for cgroup2).
    pub(super) controllers: Vec<String>,
}

pub(super) fn hierarchies(cgroup_path: &Path) -> Option<Vec<Hierarchy>> {
    let rel = clean(cgroup_path.strip_prefix("/").ok()?);
    let layout = layout();
    if !layout.known {
        return None;
    }
    let cgroup = Path::new("/").join(&rel);
    let mut out: Vec<Hierarchy> = Vec::new();
    for m in layout.mounts.as_ref()? {
        let Some(dir) = m.dir_below(&cgroup) else {
            continue;
        };
        if out.iter().any(|h| h.dir == dir) {
            continue;
        }
        out.push(Hierarchy {
            mountpoint: m.mountpoint.clone(),
            dir,
            controllers: m.controllers.clone(),
        });
    }
    Some(out)
}

/// The cgroup mounts of the hierarchy libcgroups uses, from the text of
/// mountinfo: cgroup2 on a unified host, the v1 controllers otherwise.
fn cgroup_mounts(mountinfo: &str, unified: bool) -> Option<Vec<CgroupMount>> {
    let want = if unified { "cgroup2 " } else { "cgroup " };
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        // fields: id parent major:minor root mountpoint options ... - fstype source superopts
        let (pre, post) = line.split_once(" - ")?;
        if !post.starts_with(want) {
            continue;
        }
        let fields: Vec<&str> = pre.split(' ').collect();
        let (root, mountpoint) = (fields.get(3)?, fields.get(4)?);
        let options: Vec<String> = post
            .split(' ')
            .nth(2)
            .unwrap_or_default()
            .split(',')
            .filter(|o| !matches!(*o, "rw" | "ro"))
            .map(str::to_string)
            .collect();
        // A v1 mount's options name its controllers; cgroup2's options
        // (nsdelegate, memory_recursiveprot) are no controllers.
        let controllers = if unified {
            Vec::new()
        } else {
            options
                .iter()
                .filter(|o| !o.contains('='))
                .cloned()
                .collect()
        };
        out.push(CgroupMount {
            root: unescape(root),
            mountpoint: PathBuf::from(unescape(mountpoint)),
            controllers,
            options,
        });
    }
    Some(out)
}

/// The caller's own cgroup in the v1 hierarchy of `controllers`, from the
/// text of /proc/self/cgroup.
pub(super) fn own_cgroup_in(proc_cgroup: &str, controllers: &[String]) -> Option<PathBuf> {
    proc_cgroup.lines().find_map(|line| {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        let set: Vec<&str> = ctrls.split(',').collect();
        controllers
            .iter()
            .any(|c| set.contains(&c.as_str()))
            .then(|| clean(Path::new(path)))
    })
}

/// The cgroup of one hierarchy from the text of /proc/<pid>/cgroup: the v1
/// hierarchy of `controllers`, or the cgroup2 (`0::`) line when there are
/// none.
pub(super) fn cgroup_in(proc_cgroup: &str, controllers: &[String]) -> Option<PathBuf> {
    if controllers.is_empty() {
        proc_cgroup
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(|p| clean(Path::new(p)))
    } else {
        own_cgroup_in(proc_cgroup, controllers)
    }
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
pub(super) fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v as char);
                i += 4;
                continue;
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

/// Whether `dir` is on a cgroup filesystem (v1 or v2).
pub(super) fn is_cgroupfs(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir).is_ok_and(|st| {
        let t = st.filesystem_type().0;
        t == CGROUP_SUPER_MAGIC || t == CGROUP2_SUPER_MAGIC
    })
}

/// The processes of one cgroup directory. Reads nothing that is not on a
/// cgroup filesystem: an ordinary file named cgroup.procs lists no pids.
pub(super) fn pids_in(dir: &Path) -> Vec<i32> {
    if !is_cgroupfs(dir) {
        return Vec::new();
    }
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// All sub-cgroups of `dir`, deepest first, then `dir` itself.
pub(super) fn depth_first(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                depth_first(&e.path(), out);
            }
        }
    }
    out.push(dir.to_path_buf());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_processes_directory_below_a_mount() {
        let mount = |root: &str, at: &str, options: &[&str]| CgroupMount {
            root: root.into(),
            mountpoint: at.into(),
            controllers: Vec::new(),
            options: options.iter().map(|o| o.to_string()).collect(),
        };
        let text = "9:name=systemd:/user.slice\n4:cpu,cpuacct:/c/x\n0::/c/y\n";
        let cpu = mount("/", "/sys/fs/cgroup/cpu,cpuacct", &["cpu", "cpuacct"]);
        assert_eq!(
            cpu.dir_of(text, false),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/c/x"))
        );
        let systemd = mount("/", "/sys/fs/cgroup/systemd", &["xattr", "name=systemd"]);
        assert_eq!(
            systemd.dir_of(text, false),
            Some(PathBuf::from("/sys/fs/cgroup/systemd/user.slice"))
        );
        // A mount made from a sub-cgroup holds only what is below it.
        let v2 = mount("/c", "/sys/fs/cgroup", &["nsdelegate"]);
        assert_eq!(
            v2.dir_of(text, true),
            Some(PathBuf::from("/sys/fs/cgroup/y"))
        );
        let elsewhere = mount("/d", "/sys/fs/cgroup", &[]);
        assert_eq!(elsewhere.dir_of(text, true), None);
        assert_eq!(mount("/", "/m", &["pids"]).dir_of(text, false), None);
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape(r"/tail\"), r"/tail\");
    }

    #[test]
    fn relative_paths_are_not_hierarchy_paths() {
        assert!(hierarchy_dirs(Path::new("system.slice:runlet:x")).is_none());
    }

    #[test]
    fn own_cgroup_per_hierarchy() {
        let text = "8:pids:/\n4:memory:/machine/abc\n1:cpu,cpuacct:/x\n";
        let c = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(own_cgroup_in(text, &c(&["pids"])), Some(PathBuf::from("/")));
        assert_eq!(
            own_cgroup_in(text, &c(&["memory"])),
            Some(PathBuf::from("/machine/abc"))
        );
        assert_eq!(
            own_cgroup_in(text, &c(&["cpuacct"])),
            Some(PathBuf::from("/x"))
        );
        assert_eq!(own_cgroup_in(text, &c(&["devices"])), None);
    }

    #[test]
    fn clean_never_climbs_above_the_root() {
        for (given, want) in [
            ("../../tmp/x", "tmp/x"),
            ("/../../tmp/x", "/tmp/x"),
            ("/a/../../b/./c/", "/b/c"),
            ("a/b/../c", "a/c"),
            ("..", ""),
            ("/", "/"),
        ] {
            assert_eq!(clean(Path::new(given)), PathBuf::from(want), "{given}");
        }
    }
}
