//! Container state on disk and as printed by `state` and `list`.
//!
//! libcontainer keeps `state.json` (OCI state plus its own fields) and
//! `youki_config.json` (hooks and cgroup path) in `<root>/<id>/`. runlet
//! adds `runlet.json` with what it needs later: the rootfs for `state`, the
//! init's start time (so a recycled pid is never taken for the container,
//! as runc checks too), the handler that runs the workload, the sd_notify
//! relay and the full spec used at create time for `exec`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

pub const RUNLET_STATE: &str = "runlet.json";
pub const SPEC_COPY: &str = "config.json";

/// runlet's own per-container record, next to libcontainer's state.json.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RunletState {
    pub rootfs: PathBuf,
    /// The cgroups path libcontainer was given (also in youki_config.json).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroups_path: Option<PathBuf>,
    /// The init's pid, also kept here so that a damaged state.json does
    /// not lose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_pid: Option<i32>,
    /// Start time of the init process in clock ticks since boot
    /// (field 22 of /proc/<pid>/stat).
    pub init_start_time: Option<u64>,
    /// "native", or the name of the Wasm handler.
    pub handler: String,
    /// The caller's NOTIFY_SOCKET, when sd_notify is relayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify_socket: Option<PathBuf>,
    /// The container has a pid namespace of its own (not joined by path).
    #[serde(default)]
    pub own_pidns: bool,
    /// What of the container's cgroup runlet made (removed by `delete`).
    #[serde(default)]
    pub cgroup: crate::cgroups::Ownership,
    /// Created with `--cgroup-manager=disabled`: in the caller's cgroups.
    #[serde(default)]
    pub cgroups_disabled: bool,
}

impl RunletState {
    pub fn load(dir: &Path) -> Option<Self> {
        let data = std::fs::read(dir.join(RUNLET_STATE)).ok()?;
        serde_json::from_slice(&data).ok()
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        write_atomic(&dir.join(RUNLET_STATE), &serde_json::to_vec(self)?)
    }
}

/// Saves libcontainer's state.json atomically (libcontainer's own
/// `Container::save` truncates and rewrites it in place, so a crash or a
/// concurrent reader can see it empty or half written).
pub fn save(container: &Container) -> Result<()> {
    let path = libcontainer::container::State::file_path(&container.root);
    write_atomic(&path, &serde_json::to_vec(&container.state)?)
        .map_err(|e| anyhow::anyhow!("saving state: {e:#}"))
}

/// Writes a state file by renaming a fully written temporary file over
/// it. State files are private (0600 from their creation on): the spec
/// holds `process.env`, often with secrets.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    write_atomic_mode(path, data, 0o600)
}

/// `write_atomic` for a file others may read: a `--pid-file`, which runc
/// also leaves world-readable.
pub fn write_public(path: &Path, data: &[u8]) -> Result<()> {
    write_atomic_mode(path, data, 0o644)
}

fn write_atomic_mode(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| f.write_all(data));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        bail!("write {}: {e}", tmp.display());
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("write {}: {e}", path.display())
    })
}

/// Rejects ids that could escape the state root or that runc rejects.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        bail!("invalid container id: it is empty");
    }
    if id == "." || id == ".." {
        bail!("invalid container id {id:?}: not a usable name");
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.')))
    {
        bail!("invalid container id {id:?}: character {c:?} is not allowed (use letters, digits, _ + - .)");
    }
    if id.len() > 1024 {
        bail!("invalid container id: longer than 1024 characters");
    }
    Ok(())
}

pub fn container_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// A container loaded from the state root, with its status made current.
pub struct Loaded {
    pub container: Container,
    pub extra: RunletState,
}

/// Loads a container, failing with runc's wording when it is not there.
pub fn load(root: &Path, id: &str) -> Result<Loaded> {
    validate_id(id)?;
    let dir = container_dir(root, id);
    if !dir.join("state.json").exists() {
        bail!("container {id} does not exist");
    }
    // Every write of state.json is atomic (see `save`): what cannot be read
    // is damaged, and no retry would help.
    let mut container = Container::load(dir.clone())
        .map_err(|e| anyhow::anyhow!("container {id}: state.json is damaged: {e}"))?;
    let extra = RunletState::load(&dir).unwrap_or_default();
    // A live pid whose start time differs belongs to another process now;
    // an init that has exited but is not reaped yet (a zombie) has stopped,
    // as runc reports it (libcontainer's kill(pid, 0) check says running).
    if container.status() != ContainerStatus::Stopped {
        if let (Some(pid), Some(expected)) = (container.pid(), extra.init_start_time) {
            let stat = crate::container::process::process_stat(pid.as_raw());
            let gone =
                stat.is_none_or(|(state, start)| start != expected || state == 'Z' || state == 'X');
            if gone {
                container.set_status(ContainerStatus::Stopped);
            }
        }
    }
    Ok(Loaded { container, extra })
}

pub fn status_name(status: ContainerStatus) -> &'static str {
    match status {
        ContainerStatus::Creating => "creating",
        ContainerStatus::Created => "created",
        ContainerStatus::Running => "running",
        ContainerStatus::Stopped => "stopped",
        ContainerStatus::Paused => "paused",
    }
}

fn owner_name(uid: Option<u32>) -> String {
    match uid {
        Some(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| uid.to_string()),
        None => String::new(),
    }
}

/// The JSON printed by `state` and `list --format json`: the OCI state
/// plus rootfs, created and owner, as runc prints them.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateOutput {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    pub annotations: HashMap<String, String>,
    /// runlet's addition: present (true) once the kernel's OOM killer has
    /// killed a process in the container's cgroup (its memory controller's
    /// `oom_kill` count), as long as the cgroup exists (until `delete`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
}

impl StateOutput {
    /// A container whose state.json cannot be read: status `unknown`, with
    /// what runlet.json still tells.
    pub fn unreadable(dir: &Path, id: &str) -> Self {
        let extra = RunletState::load(dir).unwrap_or_default();
        let pid = match (extra.init_pid, extra.init_start_time) {
            (Some(pid), Some(start))
                if crate::container::process::process_start_time(pid) == Some(start) =>
            {
                pid
            }
            _ => 0,
        };
        StateOutput {
            oci_version: String::new(),
            id: id.to_string(),
            pid,
            status: "unknown".to_string(),
            bundle: PathBuf::new(),
            rootfs: extra.rootfs,
            created: String::new(),
            owner: String::new(),
            annotations: HashMap::new(),
            oom_killed: false,
        }
    }

    pub fn from_loaded(l: &Loaded) -> Self {
        let c = &l.container;
        let status = c.status();
        let pid = match status {
            ContainerStatus::Stopped => 0,
            _ => c.pid().map(|p| p.as_raw()).unwrap_or(0),
        };
        StateOutput {
            oci_version: c.state.oci_version.clone(),
            id: c.id().to_string(),
            pid,
            status: status_name(status).to_string(),
            bundle: c.bundle().clone(),
            rootfs: l.extra.rootfs.clone(),
            created: c
                .created()
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
                .unwrap_or_default(),
            owner: owner_name(c.state.creator),
            annotations: c.state.annotations.clone().unwrap_or_default(),
            oom_killed: l
                .extra
                .cgroups_path
                .as_deref()
                .filter(|_| !l.extra.cgroups_disabled)
                .and_then(|p| crate::cgroups::memory_dir(p, c.systemd()))
                .and_then(|d| crate::cgroups::oom_kills(&d))
                .is_some_and(|n| n > 0),
        }
    }
}

/// Mode of the state root and of each container's directory: nobody else
/// lists them, and the files in them are 0600; others may still pass
/// through (o+x), which a user namespace's root needs to reach the bind
/// sources runlet stages there (`idmap`).
const DIR_MODE: u32 = 0o711;

/// Makes the state root when it is missing (an existing one is left as
/// it is: `--root` may name any directory).
pub fn make_root(root: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(root)
        .map_err(|e| anyhow!("state root {}: {e}", root.display()))
}

/// Makes the state directory of a new container `id` (and the state root
/// when missing); fails if the container exists.
pub fn make_container_dir(root: &Path, id: &str) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    make_root(root)?;
    let dir = container_dir(root, id);
    match std::fs::DirBuilder::new().mode(DIR_MODE).create(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("container {id} already exists")
        }
        Err(e) => bail!("state dir {}: {e}", dir.display()),
    }
}

/// The spec as configured (for `exec` and `update`) and libcontainer's
/// youki_config.json, written into a new container's state directory.
pub fn save_spec_records(dir: &Path, spec: &Spec, id: &str) -> Result<()> {
    write_atomic(&dir.join(SPEC_COPY), &serde_json::to_vec(spec)?)?;
    let youki_config =
        libcontainer::config::YoukiConfig::from_spec(spec, id).map_err(|e| anyhow!("{e}"))?;
    write_atomic(
        &dir.join("youki_config.json"),
        &serde_json::to_vec(&youki_config)?,
    )
}

/// The spec saved at create time, for `exec`.
pub fn load_spec_copy(root: &Path, id: &str) -> Result<Spec> {
    crate::config::spec::read_spec_file(&container_dir(root, id).join(SPEC_COPY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("abc-1_2+3.x").is_ok());
        for bad in ["", ".", "..", "a/b", "../x", "a b", "x\n"] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }
}
