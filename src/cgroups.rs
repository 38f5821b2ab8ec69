//! Where a container's cgroup goes, and removing it on `delete` (and when
//! `create` fails).
//!
//! Three things here differ from libcgroups (youki's cgroup crate), each for
//! a reason:
//!
//! - **Paths are cleaned as runc cleans them.** libcgroups joins
//!   `linux.cgroupsPath` onto each controller's mount point as given, so
//!   `../../tmp/x` climbs out of /sys/fs/cgroup and makes plain directories
//!   on the host. runlet cleans the path lexically first (`..` stops at the
//!   cgroup root, as runc's `utils.CleanPath`), and checks that every
//!   directory it reads or removes is on a cgroup filesystem.
//! - **The default path is under the caller's cgroup**, as runc places it,
//!   so a limit set on whoever runs runlet also bounds its containers (see
//!   [`resolve_path`]).
//! - **Cleanup touches only the container.** libcgroups' removal kills every
//!   process in the cgroup. A container given a shared cgroup (a pod slice,
//!   `--cgroup-parent`, `/`) would take unrelated processes with it. runlet
//!   kills the container's pid namespace through its init when it has one,
//!   kills the whole cgroup only when it made that cgroup itself, removes
//!   only the directories it made, and leaves a busy cgroup with a warning.
//!
//! On cgroupfs runlet also reads mountinfo once instead of once per
//! controller (libcgroups' v1 manager): that was one of the largest costs
//! in `runlet run`. Under systemd it uses libcgroups, whose scope is the
//! container's own.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};
use libcgroups::common::{CgroupConfig, CgroupSetup};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// What of a container's cgroup runlet made at `create`, recorded in its
/// state so that `delete` removes exactly that.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Ownership {
    /// The container's cgroup did not exist before `create` (always true
    /// for a systemd scope, which is the container's own).
    pub owns: bool,
    /// cgroupfs directories that did not exist before `create` (the
    /// container's own and any parents made for it), parents first.
    pub created: Vec<PathBuf>,
    /// Parents that exist only because the container sits below the
    /// caller's cgroup of another controller (v1: one path for every
    /// hierarchy, see [`resolve_path`]); removed on delete once empty, so
    /// the last container to go takes them along. Deepest first.
    #[serde(default)]
    pub prune: Vec<PathBuf>,
}

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

/// Whether this host uses the unified (cgroup v2 only) hierarchy.
fn unified() -> bool {
    matches!(
        libcgroups::common::get_cgroup_setup(),
        Ok(CgroupSetup::Unified)
    )
}

/// The container's cgroups path, as runc resolves it.
///
/// - systemd: as given, or `system.slice:runlet:<id>` when unset.
/// - cgroupfs, absolute: cleaned, below the cgroup root.
/// - cgroupfs, relative or unset (`<id>`): below the caller's cgroup. On
///   cgroup v2 that is the parent of the caller's cgroup (the caller's own
///   has processes, so it cannot have children with controllers), as runc.
///   On v1 runc uses the caller's cgroup of each controller; libcgroups
///   places a container at one path in every hierarchy, so runlet uses the
///   deepest of the caller's paths when the others are its ancestors (the
///   usual case: the container is then below the caller in every
///   controller), else the caller's memory cgroup.
pub fn resolve_path(given: Option<&Path>, id: &str, systemd: bool) -> Result<PathBuf> {
    if systemd {
        return Ok(match given {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from(format!("system.slice:runlet:{id}")),
        });
    }
    let inner = match given {
        Some(p) if !p.as_os_str().is_empty() => clean(p),
        _ => PathBuf::from(id),
    };
    if inner.is_absolute() {
        return Ok(inner);
    }
    if inner.as_os_str().is_empty() {
        bail!("linux.cgroupsPath: names no cgroup once cleaned");
    }
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| anyhow::anyhow!("/proc/self/cgroup: {e}"))?;
    Ok(caller_base(&own, unified()).join(inner))
}

/// The cgroup below which the caller's containers go, from the text of
/// /proc/self/cgroup.
fn caller_base(proc_cgroup: &str, unified: bool) -> PathBuf {
    let mut v1: Vec<(String, PathBuf)> = Vec::new();
    let mut v2 = PathBuf::from("/");
    for line in proc_cgroup.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let path = clean(Path::new(path));
        if ctrls.is_empty() {
            v2 = path;
        } else if !ctrls.starts_with("name=") {
            v1.push((ctrls.to_string(), path));
        }
    }
    if unified || v1.is_empty() {
        return v2.parent().map(Path::to_path_buf).unwrap_or(v2);
    }
    let deepest = v1
        .iter()
        .map(|(_, p)| p.clone())
        .max_by_key(|p| p.components().count())
        .unwrap_or_else(|| PathBuf::from("/"));
    if v1.iter().all(|(_, p)| deepest.starts_with(p)) {
        return deepest;
    }
    v1.iter()
        .find(|(c, _)| c.split(',').any(|c| c == "memory"))
        .map(|(_, p)| p.clone())
        .unwrap_or(deepest)
}

/// The directories of `cgroup_path` in every hierarchy libcgroups uses on
/// this host, from one read of mountinfo: the v1 controller mounts on a v1
/// or hybrid host, the cgroup2 mount on a unified one. Co-mounted
/// controllers yield one directory. Each lies below its mount point.
fn hierarchy_dirs(cgroup_path: &Path) -> Option<Vec<PathBuf>> {
    Some(
        hierarchies(cgroup_path)?
            .into_iter()
            .map(|h| h.dir)
            .collect(),
    )
}

/// The directory holding the memory controller's files of the cgroup at
/// `cgroups_path` (as libcontainer was given it): the v1 memory hierarchy's
/// or the unified one's. A systemd `slice:prefix:name` path is expanded as
/// systemd places the scope (`a-b.slice` is `/a.slice/a-b.slice`).
pub fn memory_dir(cgroups_path: &Path, systemd: bool) -> Option<PathBuf> {
    controller_dir(cgroups_path, systemd, "memory")
}

/// As `memory_dir`, for any v1 controller (the unified directory on v2).
pub fn controller_dir(cgroups_path: &Path, systemd: bool, controller: &str) -> Option<PathBuf> {
    let path = if systemd {
        systemd_scope_path(&cgroups_path.to_string_lossy())?
    } else {
        cgroups_path.to_path_buf()
    };
    hierarchies(&path)?
        .into_iter()
        .find(|h| h.controllers.is_empty() || h.controllers.iter().any(|c| c == controller))
        .map(|h| h.dir)
}

/// The cgroups path (for cgroupfs) that an `exec`'d process joins: a
/// systemd container's scope as the path systemd gave it. runc's exec, too,
/// writes the process into the container's cgroup and never talks to
/// systemd; libcgroups' systemd manager would connect to D-Bus in the
/// intermediate process, and the exec'd process, forked from it, would
/// hold that root-authenticated connection to systemd until its execve (a
/// Wasm one for its whole life).
pub fn exec_path(cgroups_path: &Path, systemd: bool) -> PathBuf {
    if systemd {
        if let Some(p) = systemd_scope_path(&cgroups_path.to_string_lossy()) {
            return p;
        }
    }
    cgroups_path.to_path_buf()
}

/// `slice:prefix:name` as a path below the cgroup root.
fn systemd_scope_path(cgroups_path: &str) -> Option<PathBuf> {
    let mut parts = cgroups_path.splitn(3, ':');
    let (slice, prefix, name) = (parts.next()?, parts.next()?, parts.next()?);
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let stem = slice.strip_suffix(".slice")?;
    let mut path = PathBuf::from("/");
    if stem != "-" {
        let mut so_far = String::new();
        for part in stem.split('-') {
            if part.is_empty() {
                return None;
            }
            so_far.push_str(part);
            path.push(format!("{so_far}.slice"));
            so_far.push('-');
        }
    }
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    path.push(unit);
    Some(path)
}

/// How many processes the kernel's OOM killer has killed in the cgroup
/// whose memory files are in `dir`: `oom_kill` of memory.events (v2) or of
/// memory.oom_control (v1, kernel 4.13 and later).
pub fn oom_kills(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("memory.events"))
        .or_else(|_| std::fs::read_to_string(dir.join("memory.oom_control")))
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

/// One hierarchy's view of a cgroup path.
struct Hierarchy {
    /// Where the hierarchy is mounted.
    mountpoint: PathBuf,
    /// The cgroup's directory in it.
    dir: PathBuf,
    /// The controllers mounted there (`pids`, `cpu,cpuacct`, ...; empty
    /// for cgroup2).
    controllers: Vec<String>,
}

fn hierarchies(cgroup_path: &Path) -> Option<Vec<Hierarchy>> {
    let rel = clean(cgroup_path.strip_prefix("/").ok()?);
    libcgroups::common::get_cgroup_setup().ok()?;
    let want = if unified() { "cgroup2 " } else { "cgroup " };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in mountinfo.lines() {
        // fields: id parent major:minor root mountpoint options ... - fstype source superopts
        let (pre, post) = line.split_once(" - ")?;
        if !post.starts_with(want) {
            continue;
        }
        let fields: Vec<&str> = pre.split(' ').collect();
        let (root, mountpoint) = (fields.get(3)?, fields.get(4)?);
        // A hierarchy mounted from a sub-cgroup only holds paths below it.
        let Ok(inner) = Path::new("/")
            .join(&rel)
            .strip_prefix(root)
            .map(Path::to_path_buf)
        else {
            continue;
        };
        let mountpoint = PathBuf::from(unescape(mountpoint));
        let dir = mountpoint.join(inner);
        if !dir.starts_with(&mountpoint) || out.iter().any(|h| h.dir == dir) {
            continue;
        }
        // A v1 mount's options name its controllers; cgroup2's options
        // (nsdelegate, memory_recursiveprot) are no controllers.
        let controllers = if post.starts_with("cgroup2 ") {
            Vec::new()
        } else {
            post.split(' ')
                .nth(2)
                .unwrap_or_default()
                .split(',')
                .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains('='))
                .map(str::to_string)
                .collect()
        };
        out.push(Hierarchy {
            mountpoint,
            dir,
            controllers,
        });
    }
    Some(out)
}

/// The caller's own cgroup in the v1 hierarchy of `controllers`, from the
/// text of /proc/self/cgroup.
fn own_cgroup_in(proc_cgroup: &str, controllers: &[String]) -> Option<PathBuf> {
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

/// What `create` is about to make: the directories of the container's
/// cgroup (and parents) that do not exist yet. Computed before libcontainer
/// creates them.
pub fn plan(config: &CgroupConfig) -> Ownership {
    if config.systemd_cgroup {
        return Ownership {
            owns: true,
            ..Ownership::default()
        };
    }
    let Some(hs) = hierarchies(&config.cgroup_path) else {
        return Ownership::default();
    };
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut created = Vec::new();
    let mut prune = Vec::new();
    let mut owns = true;
    for h in &hs {
        let leaf = &h.dir;
        if leaf.exists() {
            owns = false;
        } else {
            // The missing part of the chain, parents first.
            let mut missing = Vec::new();
            let mut d = leaf.as_path();
            while !d.exists() {
                missing.push(d.to_path_buf());
                match d.parent() {
                    Some(p) => d = p,
                    None => break,
                }
            }
            created.extend(missing.into_iter().rev());
        }
        // v1: parents below the mount that are not the caller's own cgroup
        // in this hierarchy (or above it) mirror another controller's path.
        if !unified() && !h.controllers.is_empty() {
            if let Some(own) = own_cgroup_in(&own, &h.controllers) {
                let own_dir = h.mountpoint.join(own.strip_prefix("/").unwrap_or(&own));
                let mut d = leaf.parent();
                while let Some(p) = d {
                    if !p.starts_with(&h.mountpoint) || p == h.mountpoint || own_dir.starts_with(p)
                    {
                        break;
                    }
                    prune.push(p.to_path_buf());
                    d = p.parent();
                }
            }
        }
    }
    Ownership {
        owns: owns && !hs.is_empty(),
        created,
        prune,
    }
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape(s: &str) -> String {
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
fn is_cgroupfs(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir).is_ok_and(|st| {
        let t = st.filesystem_type().0;
        t == CGROUP_SUPER_MAGIC || t == CGROUP2_SUPER_MAGIC
    })
}

/// The processes of one cgroup directory. Reads nothing that is not on a
/// cgroup filesystem: an ordinary file named cgroup.procs lists no pids.
fn pids_in(dir: &Path) -> Vec<i32> {
    if !is_cgroupfs(dir) {
        return Vec::new();
    }
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// All sub-cgroups of `dir`, deepest first, then `dir` itself.
fn depth_first(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                depth_first(&e.path(), out);
            }
        }
    }
    out.push(dir.to_path_buf());
}

/// A container whose processes and cgroup are to go.
pub struct Target<'a> {
    pub id: &'a str,
    pub config: CgroupConfig,
    /// The init, when it is known to be the container's (start time
    /// checked) and has not been reaped.
    pub init: Option<Pid>,
    /// The container has a pid namespace of its own.
    pub own_pidns: bool,
    pub ownership: &'a Ownership,
}

/// Kills the container's processes and removes the cgroup runlet made for
/// it. Never signals a process outside the container: with a pid namespace
/// of its own, killing its init ends every process in it; without one,
/// the whole cgroup is killed only when runlet made that cgroup.
pub fn remove(t: Target) -> Result<()> {
    let id = t.id;
    let leaves = if t.config.systemd_cgroup {
        None
    } else {
        hierarchy_dirs(&t.config.cgroup_path)
    };
    match t.init {
        Some(init) if t.own_pidns => kill_pidns_init(id, init),
        _ if t.ownership.owns => match &leaves {
            Some(leaves) => {
                let mut all = Vec::new();
                for d in leaves.iter().filter(|d| d.exists()) {
                    depth_first(d, &mut all);
                }
                kill_until_empty(id, || Some(all.iter().flat_map(|d| pids_in(d)).collect()));
            }
            None => {
                if let Some(init) = t.init {
                    kill_pidns_init(id, init);
                }
            }
        },
        Some(init) => kill_pidns_init(id, init),
        None => {}
    }
    match leaves {
        // Only what runlet made: a shared or pre-existing cgroup stays.
        Some(leaves) => {
            remove_dirs(id, &leaves, &t.ownership.created);
            // Placement parents go once the last container below them has.
            for d in &t.ownership.prune {
                if d.exists() && is_cgroupfs(d) {
                    let _ = std::fs::remove_dir(d);
                }
            }
            Ok(())
        }
        None if t.ownership.owns => remove_with_libcgroups(t.config, id),
        None => Ok(()),
    }
}

/// SIGKILLs `init` and waits until it is gone or a zombie. When it is the
/// init of a pid namespace the kernel kills every other process in that
/// namespace first.
fn kill_pidns_init(id: &str, init: Pid) {
    use nix::sys::wait::{waitpid, WaitPidFlag};
    let _ = kill(init, Signal::SIGKILL);
    for _ in 0..400 {
        // Our own child (a foreground run's init) is reaped here.
        let _ = waitpid(init, Some(WaitPidFlag::WNOHANG));
        if !crate::state::is_live(init.as_raw()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    tracing::warn!(%id, pid = init.as_raw(), "container init survived SIGKILL");
}

/// Removes each container cgroup directory runlet made (sub-cgroups first)
/// and then the parents made for it. A cgroup that stays busy is left, with
/// a warning; a parent still used by another container stays too.
fn remove_dirs(id: &str, leaves: &[PathBuf], created: &[PathBuf]) {
    let mut all = Vec::new();
    for d in leaves.iter().filter(|d| created.contains(d) && d.exists()) {
        depth_first(d, &mut all);
    }
    for d in all.iter().filter(|d| is_cgroupfs(d)) {
        for attempt in 0..40 {
            match std::fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) if attempt == 39 => {
                    tracing::warn!(%id, "cgroup {} left in place: {e}", d.display());
                    crate::logging::warn(format_args!(
                        "container {id}: cgroup {} is busy and was left in place: {e}",
                        d.display()
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
    for d in created.iter().rev() {
        if !leaves.contains(d) && d.exists() && is_cgroupfs(d) {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// SIGKILLs the processes `pids` lists until it lists none (or cannot
/// tell), reaping those that are our own children (a foreground run's init).
fn kill_until_empty(id: &str, pids: impl Fn() -> Option<Vec<i32>>) {
    use nix::sys::wait::{waitpid, WaitPidFlag};
    for _ in 0..200 {
        let left = match pids() {
            Some(p) if !p.is_empty() => p,
            _ => return,
        };
        for pid in left.into_iter().map(Pid::from_raw) {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    tracing::warn!(%id, "processes of the container survived SIGKILL");
}

fn remove_with_libcgroups(config: CgroupConfig, id: &str) -> Result<()> {
    use libcgroups::common::CgroupManager;
    let manager = match libcgroups::common::create_cgroup_manager(config) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(%id, "cgroup manager: {e}");
            return Ok(());
        }
    };
    // A systemd scope holds the container's processes only.
    kill_until_empty(id, || {
        manager
            .get_all_pids()
            .ok()
            .map(|pids| pids.into_iter().map(|p| p.as_raw()).collect())
    });
    manager
        .remove()
        .map_err(|e| anyhow::anyhow!("container {id}: removing cgroup: {e}"))
}

/// cgroup v2 has no device files: libcgroups attaches an eBPF program made
/// from the config's rules followed by its defaults, which allow
/// /dev/console (5:1) and tun (10:200) as well; the later allow wins over a
/// config's deny. runlet replaces that program with one made the same way
/// from the config's rules and runc's defaults alone (the same device list
/// as on v1, see above).
fn v2_device_program(dir: &Path, spec: &libcontainer::oci_spec::runtime::Spec) -> Result<()> {
    use libcgroups::v2::devices::{bpf::prog, emulator::Emulator, program::Program};
    use libcontainer::oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType};
    use std::os::fd::AsRawFd;
    let rule = |typ, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(typ)
            .access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build()
    };
    let c = LinuxDeviceType::C;
    let mut rules = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().clone())
        .unwrap_or_default();
    // runc's defaults: mknod of anything; null, zero, full, tty, urandom,
    // random, the pts devices and ptmx.
    let defaults = [
        rule(c, None, None, "m"),
        rule(LinuxDeviceType::B, None, None, "m"),
        rule(c, Some(1), Some(3), "rwm"),
        rule(c, Some(1), Some(5), "rwm"),
        rule(c, Some(1), Some(7), "rwm"),
        rule(c, Some(5), Some(0), "rwm"),
        rule(c, Some(1), Some(9), "rwm"),
        rule(c, Some(1), Some(8), "rwm"),
        rule(c, Some(136), None, "rwm"),
        rule(c, Some(5), Some(2), "rwm"),
    ];
    for d in defaults {
        rules.push(d.map_err(|e| anyhow::anyhow!("device rule: {e}"))?);
    }
    let mut emulator = Emulator::with_default_allow(false);
    emulator.add_rules(&rules);
    let program = Program::from_rules(&emulator.rules, emulator.default_allow)
        .map_err(|e| anyhow::anyhow!("linux.resources.devices: {e}"))?;
    let fail =
        |e: &dyn std::fmt::Display| anyhow::anyhow!("device rules for {}: {e}", dir.display());
    prog::bump_memlock_rlimit().map_err(|e| fail(&e))?;
    let prog_fd = prog::load("Apache", program.bytecodes()).map_err(|e| fail(&e))?;
    // SAFETY: prog_fd was just returned by BPF_PROG_LOAD and is ours.
    let prog_fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(prog_fd) };
    let cgroup = std::fs::File::open(dir).map_err(|e| fail(&e))?;
    let old = prog::query(cgroup.as_raw_fd()).map_err(|e| fail(&e))?;
    prog::attach(prog_fd.as_raw_fd(), cgroup.as_raw_fd()).map_err(|e| fail(&e))?;
    for p in old {
        prog::detach2(p.fd, cgroup.as_raw_fd()).map_err(|e| fail(&e))?;
        // SAFETY: query returned an fd for each program, owned by us.
        drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(p.fd) });
    }
    Ok(())
}

/// The container's directory in the unified hierarchy (its scope's, with
/// the systemd driver).
fn unified_dir(config: &CgroupConfig) -> Option<PathBuf> {
    let path = if config.systemd_cgroup {
        systemd_scope_path(&config.cgroup_path.to_string_lossy())?
    } else {
        clean(&config.cgroup_path)
    };
    Some(Path::new("/sys/fs/cgroup").join(path.strip_prefix("/").unwrap_or(&path)))
}

/// With the systemd driver on cgroup v2, what libcgroups 0.7 leaves out.
/// Its systemd manager turns cpu, memory, pids, io bandwidth and `unified`
/// into unit properties, but drops hugetlb limits and the block IO weight,
/// sends AllowedCPUs/AllowedMemoryNodes in a D-Bus type systemd refuses
/// (an array of u64 for `ay`; runlet keeps cpus and mems from it, see
/// `prepare_resources`) and sets no device rules at all. runc, after
/// setting the unit's properties, writes every file through its cgroupfs
/// manager too. runlet sets the two cpuset properties with `systemctl
/// set-property --runtime` (libcgroups' D-Bus client is private) and writes
/// the rest into the scope, enabling the controllers above it where systemd
/// did not (hugetlb is not one systemd knows).
fn systemd_v2_files(dir: &Path, spec: &libcontainer::oci_spec::runtime::Spec) -> Result<()> {
    // Every controller the kernel has, down to the scope, as runc's
    // cgroupfs pass leaves it: systemd enables only those it manages, and
    // libcgroups' stats read hugetlb's files too.
    if let Ok(all) = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers") {
        for controller in all.split_whitespace() {
            enable_controller(dir, controller);
        }
    }
    let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) else {
        return Ok(());
    };
    let mut files: Vec<(&str, String, String)> = Vec::new();
    // cpuset files systemd owns: written by it from the unit's properties
    // (a file written behind its back is reset when it realizes the unit).
    let mut properties = Vec::new();
    if let Some(cpu) = r.cpu() {
        if let Some(cpus) = cpu.cpus() {
            properties.push(format!("AllowedCPUs={cpus}"));
        }
        if let Some(mems) = cpu.mems() {
            properties.push(format!("AllowedMemoryNodes={mems}"));
        }
    }
    if !properties.is_empty() {
        let unit = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let out = std::process::Command::new("systemctl")
            .args(["set-property", "--runtime", &unit])
            .args(&properties)
            .output()
            .map_err(|e| {
                anyhow::anyhow!("linux.resources.cpu: systemctl set-property {unit}: {e}")
            })?;
        if !out.status.success() {
            bail!(
                "linux.resources.cpu: systemctl set-property {unit} {}: {}",
                properties.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        files.push((
            "hugetlb",
            format!("hugetlb.{}.max", h.page_size()),
            h.limit().to_string(),
        ));
    }
    if let Some(weight) = r
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|w| *w > 0)
    {
        files.push(block_io_weight_file(weight));
    }
    for (controller, file, value) in files {
        enable_controller(dir, controller);
        std::fs::write(dir.join(&file), &value).map_err(|e| {
            anyhow::anyhow!(
                "linux.resources: writing {value:?} to {}: {e}",
                dir.join(&file).display()
            )
        })?;
    }
    Ok(())
}

/// Turns `controller` on in every `cgroup.subtree_control` from the root
/// down to `dir`'s parent, where it is not on yet.
fn enable_controller(dir: &Path, controller: &str) {
    let has = |d: &Path| {
        std::fs::read_to_string(d.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|x| x == controller))
    };
    if has(dir) {
        return;
    }
    let root = Path::new("/sys/fs/cgroup");
    let mut d = root.to_path_buf();
    for part in dir.strip_prefix(root).unwrap_or(Path::new("")).components() {
        let _ = std::fs::write(d.join("cgroup.subtree_control"), format!("+{controller}"));
        d.push(part);
    }
}

/// runc's v2 block IO weight: as is to io.bfq.weight when BFQ is there,
/// else `1 + (w - 10) * 9999 / 990` to io.weight.
fn block_io_weight_file(weight: u16) -> (&'static str, String, String) {
    if Path::new("/sys/module/bfq").exists() {
        ("io", "io.bfq.weight".into(), weight.to_string())
    } else {
        let w = 1 + (u32::from(weight).saturating_sub(10)) * 9999 / 990;
        ("io", "io.weight".into(), format!("default {w}"))
    }
}

/// On cgroup v2 (cgroupfs), the block IO weight goes in as runc writes it:
/// libcgroups 0.7 converts it to io.weight in 16-bit arithmetic that
/// overflows for any weight above 16 (a panic in a debug build, a wrong
/// weight in a release one). runc writes the weight as is to io.bfq.weight
/// when BFQ is there, else `1 + (w - 10) * 9999 / 990` to io.weight; runlet
/// passes that through `unified` and takes the weight out of what
/// libcgroups sees. With the systemd driver, cpus and mems are kept from
/// libcgroups (see `systemd_v2_files`, which writes them and the weight).
pub fn prepare_resources(
    resources: &mut libcontainer::oci_spec::runtime::LinuxResources,
    systemd: bool,
) {
    if !unified() {
        return;
    }
    if systemd {
        if let Some(mut cpu) = resources.cpu().clone() {
            cpu.set_cpus(None);
            cpu.set_mems(None);
            resources.set_cpu(Some(cpu));
        }
        return;
    }
    let Some(mut blkio) = resources.block_io().clone() else {
        return;
    };
    let Some(weight) = blkio.weight().filter(|w| *w > 0) else {
        return;
    };
    let mut unified_keys = resources.unified().clone().unwrap_or_default();
    let (_, file, value) = block_io_weight_file(weight);
    unified_keys.insert(file, value);
    blkio.set_weight(None);
    resources.set_block_io(Some(blkio));
    resources.set_unified(Some(unified_keys));
}

/// Device rules runlet adds in front of the config's: deny everything
/// first, as runc does. libcgroups' v1 controller writes only the config's
/// rules and its defaults into `devices.allow`, so a new cgroup keeps the
/// parent's `a *:* rwm` and every device stays open (eBPF on v2 starts from
/// deny already; the rule is harmless there).
pub fn deny_all_devices_first(spec: &mut libcontainer::oci_spec::runtime::Spec) -> Result<()> {
    use libcontainer::oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxResourcesBuilder};
    let Some(mut linux) = spec.linux().clone() else {
        return Ok(());
    };
    let mut resources = match linux.resources().clone() {
        Some(r) => r,
        None => LinuxResourcesBuilder::default().build()?,
    };
    let mut rules = vec![LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()?];
    rules.extend(resources.devices().clone().unwrap_or_default());
    resources.set_devices(Some(rules));
    linux.set_resources(Some(resources));
    spec.set_linux(Some(linux));
    Ok(())
}

/// What runlet does to the container's cgroup after libcgroups applied the
/// config (at create and at `update`). On v2: its own device program (see
/// `v2_device_program`), and with systemd the files libcgroups leaves out
/// (`systemd_v2_files`). On v1: the defaults libcgroups allows after the
/// config's rules that runc does not, /dev/console (5:1) and tun/tap
/// (10:200), are denied again unless the config allows them itself.
pub fn finish_apply(
    config: &CgroupConfig,
    spec: &libcontainer::oci_spec::runtime::Spec,
) -> Result<()> {
    use libcontainer::oci_spec::runtime::LinuxDeviceType;
    if unified() {
        let dir = unified_dir(config)
            .ok_or_else(|| anyhow::anyhow!("linux.cgroupsPath: no cgroup directory"))?;
        v2_device_program(&dir, spec)?;
        if config.systemd_cgroup {
            systemd_v2_files(&dir, spec)?;
        }
        return Ok(());
    }
    if config.systemd_cgroup {
        return Ok(());
    }
    let allowed_by_config = |major: i64, minor: i64| {
        spec.linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.devices().as_ref())
            .is_some_and(|rules| {
                rules.iter().any(|r| {
                    r.allow()
                        && matches!(r.typ(), Some(LinuxDeviceType::C) | Some(LinuxDeviceType::A))
                        && r.major().is_none_or(|m| m == major)
                        && r.minor().is_none_or(|m| m == minor)
                })
            })
    };
    let Some(dirs) = hierarchy_dirs(&config.cgroup_path) else {
        return Ok(());
    };
    for dir in dirs.iter().filter(|d| d.join("devices.deny").exists()) {
        for (major, minor) in [(5, 1), (10, 200)] {
            if !allowed_by_config(major, minor) {
                std::fs::write(dir.join("devices.deny"), format!("c {major}:{minor} rwm"))
                    .map_err(|e| anyhow::anyhow!("{}/devices.deny: {e}", dir.display()))?;
            }
        }
    }
    Ok(())
}

/// `--cgroup-manager=disabled`, as crun has it: the container's processes
/// stay in the caller's cgroups and no cgroup is left for it.
/// libcontainer always places a new process in a cgroup of its own (and
/// applies limits there), so runlet lets it, then moves every process out
/// of that transient cgroup into the cgroup of the same hierarchy that
/// runlet itself (the caller's child) is in, and removes what was made.
/// Limits in the config are not applied, as with crun.
pub fn evict_to_caller(config: &CgroupConfig, made: &Ownership) -> Result<()> {
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| anyhow::anyhow!("/proc/self/cgroup: {e}"))?;
    for h in hierarchies(&config.cgroup_path).unwrap_or_default() {
        if !h.dir.exists() {
            continue;
        }
        let target = if h.controllers.is_empty() {
            // cgroup2: the `0::` line.
            own.lines()
                .find_map(|l| l.strip_prefix("0::"))
                .map(|p| clean(Path::new(p)))
        } else {
            own_cgroup_in(&own, &h.controllers)
        };
        let Some(target) = target else { continue };
        let procs = h
            .mountpoint
            .join(target.strip_prefix("/").unwrap_or(&target))
            .join("cgroup.procs");
        let mut all = Vec::new();
        depth_first(&h.dir, &mut all);
        for d in &all {
            for pid in pids_in(d) {
                std::fs::write(&procs, pid.to_string())
                    .map_err(|e| anyhow::anyhow!("moving {pid} to {}: {e}", procs.display()))?;
            }
        }
    }
    remove_dirs(
        "transient",
        &hierarchy_dirs(&config.cgroup_path).unwrap_or_default(),
        &made.created,
    );
    for d in &made.prune {
        if d.exists() && is_cgroupfs(d) {
            let _ = std::fs::remove_dir(d);
        }
    }
    Ok(())
}

/// `linux.resources.memory.disableOOMKiller`: libcontainer hard-codes it
/// off (it writes `memory.oom_control` 0); runc applies it on cgroup v1,
/// the only hierarchy that has the switch. Written right after create.
pub fn apply_oom_killer_setting(
    config: &CgroupConfig,
    spec: &libcontainer::oci_spec::runtime::Spec,
) -> Result<()> {
    let disable = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.disable_oom_killer())
        .unwrap_or(false);
    if !disable || config.systemd_cgroup || unified() {
        return Ok(());
    }
    for dir in hierarchy_dirs(&config.cgroup_path).unwrap_or_default() {
        let file = dir.join("memory.oom_control");
        if file.exists() {
            std::fs::write(&file, "1").map_err(|e| {
                anyhow::anyhow!(
                    "linux.resources.memory.disableOOMKiller: {}: {e}",
                    file.display()
                )
            })?;
        }
    }
    Ok(())
}

/// `linux.resources.unified` needs cgroup v2; runc refuses it elsewhere
/// rather than dropping the limits, and so does runlet.
pub fn check_unified(spec: &libcontainer::oci_spec::runtime::Spec) -> Result<()> {
    let keys = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.unified().as_ref())
        .filter(|u| !u.is_empty());
    if let Some(u) = keys {
        if !unified() {
            let mut keys: Vec<&String> = u.keys().collect();
            keys.sort();
            bail!(
                "linux.resources.unified: {} cannot be applied: this host does not use cgroup v2 (unified hierarchy)",
                keys.iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_scopes_are_where_systemd_puts_them() {
        let p = |s: &str| systemd_scope_path(s).map(|p| p.to_string_lossy().into_owned());
        assert_eq!(
            p("system.slice:runlet:abc").as_deref(),
            Some("/system.slice/runlet-abc.scope")
        );
        assert_eq!(
            p("a-b.slice:x:y").as_deref(),
            Some("/a.slice/a-b.slice/x-y.scope")
        );
        assert_eq!(p("-.slice:x:y").as_deref(), Some("/x-y.scope"));
        assert_eq!(p(":x:y").as_deref(), Some("/system.slice/x-y.scope"));
        assert_eq!(p("a--b.slice:x:y"), None);
        assert_eq!(p("nope"), None);
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

    #[test]
    fn caller_base_follows_runc() {
        // v2: the parent of the caller's cgroup.
        assert_eq!(
            caller_base("0::/user.slice/session-1.scope\n", true),
            PathBuf::from("/user.slice")
        );
        // v1 with paths on one chain: the deepest.
        let v1 = "9:name=systemd:/\n8:pids:/\n4:memory:/machine/abc\n1:cpu,cpuacct:/\n0::/\n";
        assert_eq!(caller_base(v1, false), PathBuf::from("/machine/abc"));
        // v1 with diverging paths: the memory cgroup.
        let v1 = "8:pids:/a/x\n4:memory:/b/y\n";
        assert_eq!(caller_base(v1, false), PathBuf::from("/b/y"));
        // All at the root.
        assert_eq!(
            caller_base("4:memory:/\n8:pids:/\n", false),
            PathBuf::from("/")
        );
    }

    #[test]
    fn resolve_cleans_and_defaults() {
        assert_eq!(
            resolve_path(Some(Path::new("/../../tmp/x")), "c", false).expect("path"),
            PathBuf::from("/tmp/x")
        );
        assert_eq!(
            resolve_path(None, "c", true).expect("path"),
            PathBuf::from("system.slice:runlet:c")
        );
        let default = resolve_path(None, "c", false).expect("path");
        assert!(
            default.is_absolute() && default.ends_with("c"),
            "{default:?}"
        );
        let relative = resolve_path(Some(Path::new("../../x/y")), "c", false).expect("path");
        assert!(
            relative.ends_with("x/y") && relative.is_absolute(),
            "{relative:?}"
        );
        assert!(resolve_path(Some(Path::new("..")), "c", false).is_err());
    }
}
