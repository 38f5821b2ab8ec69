//! Several uid/gid mapping ranges for a new user namespace, as root.
//!
//! libcontainer writes a single range to `/proc/<pid>/uid_map` itself but
//! hands two or more to `newuidmap`/`newgidmap` from PATH — shadow's setuid
//! helpers, which check /etc/subuid and refuse ranges root has not been
//! given there (and whose failure libcontainer does not even notice). runc
//! writes every range itself when it runs as root. runlet does the same:
//! libcontainer is pointed at `<state dir>/newuidmap` and `newgidmap`,
//! symlinks to runlet's own (read-only) image, and runlet started under
//! those names writes all the ranges in one write(2), as the kernel needs.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use libcontainer::oci_spec::runtime::Spec;
use libcontainer::user_ns::UserNamespaceConfig;

const UID_HELPER: &str = "newuidmap";
const GID_HELPER: &str = "newgidmap";

/// libcontainer's user namespace setup for `spec`, with runlet's own
/// mapping helper when there are several ranges and runlet is root.
pub fn user_ns_config(spec: &Spec, dir: &Path) -> Result<Option<UserNamespaceConfig>> {
    let Some(linux) = spec.linux().as_ref() else {
        return UserNamespaceConfig::new(spec).map_err(|e| anyhow!("{e}"));
    };
    let ranges = |m: &Option<Vec<_>>| m.as_ref().map_or(0, Vec::len);
    let multi = ranges(linux.uid_mappings()) > 1 || ranges(linux.gid_mappings()) > 1;
    let new_userns = crate::config::ids::new_namespace(
        spec,
        libcontainer::oci_spec::runtime::LinuxNamespaceType::User,
    );
    if !multi || !new_userns || !nix::unistd::geteuid().is_root() {
        return UserNamespaceConfig::new(spec).map_err(|e| anyhow!("{e}"));
    }
    let mut config = UserNamespaceConfig::try_from(linux).map_err(|e| anyhow!("{e}"))?;
    config.newuidmap = Some(helper(dir, UID_HELPER)?);
    config.newgidmap = Some(helper(dir, GID_HELPER)?);
    Ok(Some(config))
}

/// `<dir>/<name>`: a symlink to this process's own image.
fn helper(dir: &Path, name: &str) -> Result<PathBuf> {
    let link = dir.join(name);
    let _ = std::fs::remove_file(&link);
    let target = format!("/proc/{}/exe", std::process::id());
    std::os::unix::fs::symlink(&target, &link)
        .map_err(|e| anyhow!("user namespace helper {}: {e}", link.display()))?;
    Ok(link)
}

/// When runlet runs as its own mapping helper: `newuidmap PID C H S...`.
/// Returns the exit status, or None when argv[0] is not a helper name.
pub fn run_as_helper() -> Option<i32> {
    let args: Vec<String> = std::env::args().collect();
    let name = Path::new(args.first()?).file_name()?.to_str()?;
    let file = match name {
        UID_HELPER => "uid_map",
        GID_HELPER => "gid_map",
        _ => return None,
    };
    Some(match write_map(file, &args[1..]) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!(
                "{}",
                crate::logging::stderr_line("error", &format!("{name}: {e:#}"))
            );
            1
        }
    })
}

fn write_map(file: &str, args: &[String]) -> Result<()> {
    let (pid, triples) = args
        .split_first()
        .ok_or_else(|| anyhow!("usage: PID CONTAINER-ID HOST-ID SIZE..."))?;
    let pid: u32 = pid.parse().map_err(|_| anyhow!("pid {pid:?}"))?;
    if triples.is_empty() || triples.len() % 3 != 0 {
        bail!("mappings must come in CONTAINER-ID HOST-ID SIZE triples");
    }
    let mut text = String::new();
    for t in triples.chunks(3) {
        for n in t {
            n.parse::<u32>()
                .map_err(|_| anyhow!("mapping {n:?}: not a number"))?;
        }
        text.push_str(&format!("{} {} {}\n", t[0], t[1], t[2]));
    }
    let path = format!("/proc/{pid}/{file}");
    std::fs::write(&path, text).map_err(|e| anyhow!("{path}: {e}"))
}

/// Idmapped bind mounts (`idmap`/`ridmap` options, or `uidMappings` /
/// `gidMappings` on a mount), which libcontainer 0.7 refuses, and bind
/// sources the container's user namespace could not reach. Before
/// create, runlet makes each one itself: a detached clone of the source
/// (`open_tree`), idmapped with `mount_setattr(MOUNT_ATTR_IDMAP)` through a
/// user namespace holding the mount's mappings (or the container's), and
/// attached at a staging path in the container's state dir. The config then
/// names that path as a plain bind source: libcontainer's own clone of it
/// keeps the idmapping. The staging mounts are detached once the container
/// exists (its clones live on). `dev` stages its device nodes the same way.
pub struct Staged(Vec<PathBuf>);

/// The staging paths' prefix in the state dir (`bind-<mount index>`).
pub const STAGE_PREFIX: &str = "bind-";

impl Staged {
    /// Nothing staged yet.
    pub fn none() -> Staged {
        Staged(Vec::new())
    }

    /// Detach (and remove) `path` with the rest.
    pub fn push(&mut self, path: PathBuf) {
        self.0.push(path);
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(p).or_else(|_| std::fs::remove_file(p));
        }
    }
}

/// Stages every idmapped mount of `spec` (see [`Staged`]).
pub fn stage_idmapped_mounts(spec: &mut Spec, dir: &Path) -> Result<Staged> {
    use std::os::fd::AsRawFd;
    let mut staged = Staged::none();
    let Some(mut mounts) = spec.mounts().clone() else {
        return Ok(staged);
    };
    let linux = spec.linux().clone().unwrap_or_default();
    let new_userns = crate::config::ids::new_namespace(
        spec,
        libcontainer::oci_spec::runtime::LinuxNamespaceType::User,
    );
    let mut changed = false;
    for (i, m) in mounts.iter_mut().enumerate() {
        let options = m.options().clone().unwrap_or_default();
        let idmap_opt = options.iter().any(|o| o == "idmap" || o == "ridmap");
        let idmapped = idmap_opt || m.uid_mappings().is_some() || m.gid_mappings().is_some();
        let field = format!("mounts[{i}] {}", m.destination().display());
        let is_bind = m.typ().as_deref() == Some("bind")
            || options.iter().any(|o| o == "bind" || o == "rbind");
        // A bind source the container's root could not reach (a parent
        // only host root may enter): libcontainer opens it inside the user
        // namespace and fails; runc opens it as host root. Staged too.
        let unreachable = new_userns
            && is_bind
            && !idmapped
            && m.source()
                .as_deref()
                .is_some_and(|s| !searchable_by_others(s));
        if !idmapped && !unreachable {
            continue;
        }
        if !is_bind {
            bail!("{field}: idmapped mounts must be bind mounts");
        }
        let source = m
            .source()
            .clone()
            .ok_or_else(|| anyhow!("{field}: source: missing"))?;
        let recursive = options.iter().any(|o| o == "ridmap" || o == "rbind");
        let userns = if idmapped {
            let uids = m
                .uid_mappings()
                .clone()
                .or_else(|| linux.uid_mappings().clone());
            let gids = m
                .gid_mappings()
                .clone()
                .or_else(|| linux.gid_mappings().clone());
            let (Some(uids), Some(gids)) = (
                uids.filter(|u| !u.is_empty()),
                gids.filter(|g| !g.is_empty()),
            ) else {
                bail!("{field}: an idmapped mount needs uid and gid mappings (on the mount or in linux)");
            };
            Some(userns_with(&uids, &gids).map_err(|e| anyhow!("{field}: {e:#}"))?)
        } else {
            None
        };
        let tree = runlet_handler::rofs::clone_tree(&source, recursive)
            .map_err(|e| anyhow!("{field}: open_tree {}: {e}", source.display()))?;
        if let Some(userns) = &userns {
            runlet_handler::rofs::set_attrs(
                &tree,
                runlet_handler::rofs::MOUNT_ATTR_IDMAP,
                Some(userns.as_raw_fd()),
                recursive,
            )
            .map_err(|e| anyhow!("{field}: idmapping {}: {e}", source.display()))?;
        }
        let stage = dir.join(format!("{STAGE_PREFIX}{i}"));
        if std::fs::metadata(&source).is_ok_and(|m| m.is_dir()) {
            std::fs::create_dir_all(&stage)?;
        } else {
            std::fs::write(&stage, b"")?;
        }
        if let Err(e) = runlet_handler::rofs::attach_tree(&tree, &stage) {
            let _ = std::fs::remove_dir(&stage).or_else(|_| std::fs::remove_file(&stage));
            bail!("{field}: attaching the idmapped mount: {e}");
        }
        staged.push(stage.clone());
        m.set_source(Some(stage));
        m.set_options(Some(
            options
                .into_iter()
                .filter(|o| o != "idmap" && o != "ridmap")
                .collect(),
        ));
        m.set_uid_mappings(None);
        m.set_gid_mappings(None);
        changed = true;
    }
    if changed {
        spec.set_mounts(Some(mounts));
    }
    Ok(staged)
}

/// Whether every directory above `path` lets others search it (o+x).
fn searchable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.ancestors()
        .skip(1)
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// A user namespace with these mappings: a child unshares one and waits
/// while root writes its maps; its namespace outlives it through the fd.
fn userns_with(
    uids: &[libcontainer::oci_spec::runtime::LinuxIdMapping],
    gids: &[libcontainer::oci_spec::runtime::LinuxIdMapping],
) -> Result<std::fs::File> {
    use nix::unistd::{fork, ForkResult};
    let (ready_r, ready_w) = nix::unistd::pipe()?;
    let (done_r, done_w) = nix::unistd::pipe()?;
    // SAFETY: runlet is single-threaded here; the child only makes system
    // calls and _exits.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop(ready_r);
            drop(done_w);
            let ok = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).is_ok();
            let _ = nix::unistd::write(&ready_w, if ok { b"1" } else { b"0" });
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&done_r), &mut b);
            // SAFETY: _exit ends the child without running destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            drop(done_r);
            let mut b = [0u8; 1];
            let n = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&ready_r), &mut b);
            let result = (|| {
                if n != Ok(1) || b[0] != b'1' {
                    bail!("creating a user namespace for the mapping failed");
                }
                let lines = |maps: &[libcontainer::oci_spec::runtime::LinuxIdMapping]| {
                    maps.iter()
                        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
                        .collect::<String>()
                };
                std::fs::write(format!("/proc/{child}/uid_map"), lines(uids))
                    .map_err(|e| anyhow!("uid mappings: {e}"))?;
                std::fs::write(format!("/proc/{child}/gid_map"), lines(gids))
                    .map_err(|e| anyhow!("gid mappings: {e}"))?;
                std::fs::File::open(format!("/proc/{child}/ns/user"))
                    .map_err(|e| anyhow!("user namespace: {e}"))
            })();
            drop(done_w);
            let _ = nix::sys::wait::waitpid(child, None);
            result
        }
    }
}
