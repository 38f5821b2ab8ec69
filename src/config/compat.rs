//! Valid configs that runc and crun accept but libcontainer 0.7 refuses or
//! mishandles, rewritten into what libcontainer does right before it sees
//! them. Each rewrite says what libcontainer does and what runc does.

use std::path::Path;

use anyhow::Result;
use libcontainer::oci_spec::runtime::Spec;
use nix::mount::MsFlags;
use serde_json::Value;

/// Rewrites on the raw JSON, for spellings oci-spec's types cannot parse.
///
/// `process.scheduler.flags`: the runtime spec spells the flags
/// `SCHED_FLAG_RESET_ON_FORK` and `SCHED_FLAG_DL_OVERRUN`; oci-spec 0.10
/// only parses `SCHED_RESET_ON_FORK` and `SCHED_FLAG_D_L_OVERRUN`.
pub fn fix_json(config: &mut Value) {
    if let Some(flags) = config
        .pointer_mut("/process/scheduler/flags")
        .and_then(Value::as_array_mut)
    {
        for f in flags.iter_mut() {
            let respelled = match f.as_str() {
                Some("SCHED_FLAG_RESET_ON_FORK") => "SCHED_RESET_ON_FORK",
                Some("SCHED_FLAG_DL_OVERRUN") => "SCHED_FLAG_D_L_OVERRUN",
                _ => continue,
            };
            *f = Value::from(respelled);
        }
    }
}

/// Rewrites on the parsed spec, before create.
pub fn fix_spec(spec: &mut Spec, rootfs: &Path) -> Result<()> {
    mounts_without_source(spec);
    rootfs_propagation(spec);
    no_new_privileges_false(spec);
    tmpfs_mode_of_mountpoint(spec, rootfs);
    home_without_passwd_entry(spec, rootfs);
    hook_environment(spec);
    device_paths(spec);
    devices_outside_dev(spec, rootfs)?;
    create_missing_cwd(spec, rootfs);
    mount_destinations_through_symlinks(spec, rootfs);
    seccomp_listener_without_notify_rule(spec)?;
    Ok(())
}

/// `linux.seccomp.listenerPath` with no SCMP_ACT_NOTIFY rule: crun loads
/// the filter with SECCOMP_FILTER_FLAG_NEW_LISTENER all the same and sends
/// the container's state and the listener fd to the path (an agent may
/// keep it for later profiles); libcontainer asks for a listener, and sends
/// it, only when a rule notifies. runlet adds a notify rule that can never
/// match — `arg0 & 1 == 2`, and `arg0 & 2 == 1` in the other reading of
/// value/valueTwo — on a syscall the profile does not name, so libseccomp
/// requests the listener and libcontainer hands it over as for any notify
/// profile.
fn seccomp_listener_without_notify_rule(spec: &mut Spec) -> Result<()> {
    use libcontainer::oci_spec::runtime::{
        LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompOperator, LinuxSyscallBuilder,
    };
    let Some(mut linux) = spec.linux().clone() else {
        return Ok(());
    };
    let Some(mut seccomp) = linux.seccomp().clone() else {
        return Ok(());
    };
    if seccomp.listener_path().is_none() || libcontainer::seccomp::is_notify(&seccomp) {
        return Ok(());
    }
    let mut syscalls = seccomp.syscalls().clone().unwrap_or_default();
    let named = |n: &str| syscalls.iter().any(|s| s.names().iter().any(|m| m == n));
    let Some(name) = ["getppid", "getpgrp", "sched_yield", "getpid"]
        .into_iter()
        .find(|n| !named(n))
    else {
        return Ok(());
    };
    let never = LinuxSeccompArgBuilder::default()
        .index(0usize)
        .value(1u64)
        .value_two(2u64)
        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
        .build()
        .map_err(|e| anyhow::anyhow!("linux.seccomp: {e}"))?;
    let rule = LinuxSyscallBuilder::default()
        .names(vec![name.to_string()])
        .action(LinuxSeccompAction::ScmpActNotify)
        .args(vec![never])
        .build()
        .map_err(|e| anyhow::anyhow!("linux.seccomp: {e}"))?;
    syscalls.push(rule);
    seccomp.set_syscalls(Some(syscalls));
    linux.set_seccomp(Some(seccomp));
    spec.set_linux(Some(linux));
    Ok(())
}

/// A mount destination that goes through a symlink in the rootfs — even a
/// dangling one (`/var/run` → `/run`, `/data` → `/srv/data` not made yet):
/// runc resolves it inside the rootfs (securejoin) and mounts on the
/// target, creating it; libcontainer follows only symlinks whose target
/// exists, and fails otherwise (ENOTDIR, EEXIST). runlet resolves the
/// destination as runc does, never leaving the rootfs, and gives
/// libcontainer the resolved path. Destinations below an earlier mount are
/// left alone: that mount, not the rootfs, decides what is there; so are
/// proc and sysfs mounts.
fn mount_destinations_through_symlinks(spec: &mut Spec, rootfs: &Path) {
    let Some(mut mounts) = spec.mounts().clone() else {
        return;
    };
    let mut changed = false;
    let mut earlier: Vec<std::path::PathBuf> = Vec::new();
    for m in mounts.iter_mut() {
        let dest = m.destination().clone();
        let covered = earlier.iter().any(|e| dest.starts_with(e) && e != &dest);
        // proc and sysfs stay where the config says (runc refuses them on
        // a symlink: CVE-2019-19921); libcontainer decides.
        let kernel_fs = matches!(m.typ().as_deref(), Some("proc") | Some("sysfs"));
        // A relative destination is an error `validate` reports.
        if !covered && !kernel_fs && dest.is_absolute() {
            if let Some(resolved) = resolve_in_root(rootfs, &dest) {
                if resolved != dest {
                    m.set_destination(resolved.clone());
                    changed = true;
                }
            }
        }
        earlier.push(m.destination().clone());
    }
    if changed {
        spec.set_mounts(Some(mounts));
    }
}

/// `path` resolved inside `root` as if `root` were `/`: symlinks are
/// followed (absolute ones from `root`, `..` stops at `root`), a missing
/// component ends the following and the rest is taken as it is. None after
/// too many links. Returns a clean absolute path inside the container.
pub fn resolve_in_root(root: &Path, path: &Path) -> Option<std::path::PathBuf> {
    use std::collections::VecDeque;
    use std::path::{Component, PathBuf};
    let parts = |p: &Path| -> Vec<std::ffi::OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .collect()
    };
    let mut rest: VecDeque<std::ffi::OsString> = parts(path).into();
    let mut current = PathBuf::from("/");
    let mut links = 0;
    let mut missing = false;
    while let Some(part) = rest.pop_front() {
        if part == ".." {
            current.pop();
            continue;
        }
        let candidate = current.join(&part);
        if missing {
            current = candidate;
            continue;
        }
        let on_host = root.join(candidate.strip_prefix("/").unwrap_or(&candidate));
        match std::fs::symlink_metadata(&on_host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return None;
                }
                let target = std::fs::read_link(&on_host).ok()?;
                if target.is_absolute() {
                    current = PathBuf::from("/");
                }
                for p in parts(&target).into_iter().rev() {
                    rest.push_front(p);
                }
            }
            Ok(_) => current = candidate,
            Err(_) => {
                missing = true;
                current = candidate;
            }
        }
    }
    Some(current)
}

/// `linux.devices` paths are cleaned (`/dev/fuse/` → `/dev/fuse`): runc
/// does; libcontainer keeps the slash, so mknod fails with ENOENT and the
/// default devices are not deduplicated against it.
fn device_paths(spec: &mut Spec) {
    let Some(mut linux) = spec.linux().clone() else {
        return;
    };
    let Some(mut devices) = linux.devices().clone() else {
        return;
    };
    let mut changed = false;
    for d in devices.iter_mut() {
        let cleaned = crate::cgroups::clean(d.path());
        if &cleaned != d.path() {
            d.set_path(cleaned);
            changed = true;
        }
    }
    if changed {
        linux.set_devices(Some(devices));
        spec.set_linux(Some(linux));
    }
}

/// A missing `process.cwd`: libcontainer's init fails its chdir; runc and
/// crun create the directory (0755, owned by the container's root). Done
/// here in the rootfs (see [`make_dirs_in_root`]). Best effort: a failure
/// leaves libcontainer's error.
fn create_missing_cwd(spec: &Spec, rootfs: &Path) {
    let Some(process) = spec.process().as_ref() else {
        return;
    };
    let cwd = process.cwd();
    if crate::wasm::entrypoint::open_dir_in_root(rootfs, cwd).is_ok() {
        return;
    }
    let _ = make_dirs_in_root(rootfs, cwd, root_owner(spec));
}

/// Creates `path` and its missing parents inside `root` (0755, owned by
/// `owner`), each component below the previous one through a descriptor
/// resolved inside the root, so nothing outside it is ever touched.
/// Returns the directory, opened.
fn make_dirs_in_root(root: &Path, path: &Path, owner: (u32, u32)) -> Option<std::fs::File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let mut prefix = std::path::PathBuf::from("/");
    for part in path.components().skip(1) {
        let std::path::Component::Normal(name) = part else {
            return None;
        };
        let parent = crate::wasm::entrypoint::open_dir_in_root(root, &prefix).ok()?;
        prefix.push(name);
        if crate::wasm::entrypoint::open_dir_in_root(root, &prefix).is_ok() {
            continue;
        }
        let c_name = std::ffi::CString::new(name.as_bytes()).ok()?;
        // SAFETY: mkdirat/fchownat on a descriptor we own with a plain
        // NUL-terminated name (no slash: one path component).
        unsafe {
            if libc::mkdirat(parent.as_raw_fd(), c_name.as_ptr(), 0o755) != 0 {
                return None;
            }
            libc::fchownat(
                parent.as_raw_fd(),
                c_name.as_ptr(),
                owner.0,
                owner.1,
                libc::AT_SYMLINK_NOFOLLOW,
            );
        }
    }
    crate::wasm::entrypoint::open_dir_in_root(root, &prefix).ok()
}

/// `linux.devices` outside /dev (`/mnt/fuse`, `/opt/dev/null`): runc
/// creates them where the config says; libcontainer refuses any path not
/// under /dev. runlet takes them out of the list libcontainer gets and
/// makes the nodes in the rootfs itself (parents created inside the
/// rootfs, the node owned by the config's uid/gid as mapped, with its
/// fileMode). A path that already exists is left as it is.
fn devices_outside_dev(spec: &mut Spec, rootfs: &Path) -> Result<()> {
    use libcontainer::oci_spec::runtime::LinuxDeviceType;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let Some(mut linux) = spec.linux().clone() else {
        return Ok(());
    };
    let Some(devices) = linux.devices().clone() else {
        return Ok(());
    };
    let (outside, inside): (Vec<_>, Vec<_>) = devices
        .into_iter()
        .partition(|d| !d.path().starts_with("/dev"));
    if outside.is_empty() {
        return Ok(());
    }
    let map = |id: u32, maps: Option<&Vec<libcontainer::oci_spec::runtime::LinuxIdMapping>>| {
        crate::config::ids::host_id(id, maps).unwrap_or(id)
    };
    for d in &outside {
        let field = format!("linux.devices {}", d.path().display());
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            other => anyhow::bail!("{field}: type {other:?} cannot be created"),
        };
        let (Some(parent), Some(name)) = (d.path().parent(), d.path().file_name()) else {
            anyhow::bail!("{field}: not a device path");
        };
        let dir = make_dirs_in_root(rootfs, parent, root_owner(spec)).ok_or_else(|| {
            anyhow::anyhow!("{field}: cannot create {} in the rootfs", parent.display())
        })?;
        let c_name = std::ffi::CString::new(name.as_bytes())
            .map_err(|_| anyhow::anyhow!("{field}: contains NUL"))?;
        let mode = d.file_mode().unwrap_or(0o666) & 0o7777;
        let dev = libc::makedev(d.major() as u32, d.minor() as u32);
        // SAFETY: mknodat/fchownat/fchmodat on a directory descriptor we
        // own with a single-component name.
        let made = unsafe { libc::mknodat(dir.as_raw_fd(), c_name.as_ptr(), kind | mode, dev) };
        if made != 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                continue;
            }
            anyhow::bail!("{field}: {e}");
        }
        let linux_ref = spec.linux().as_ref();
        let uid = map(
            d.uid().unwrap_or(0),
            linux_ref.and_then(|l| l.uid_mappings().as_ref()),
        );
        let gid = map(
            d.gid().unwrap_or(0),
            linux_ref.and_then(|l| l.gid_mappings().as_ref()),
        );
        // SAFETY: as above.
        unsafe {
            libc::fchownat(
                dir.as_raw_fd(),
                c_name.as_ptr(),
                uid,
                gid,
                libc::AT_SYMLINK_NOFOLLOW,
            );
            libc::fchmodat(dir.as_raw_fd(), c_name.as_ptr(), mode, 0);
        }
    }
    linux.set_devices(Some(inside));
    spec.set_linux(Some(linux));
    Ok(())
}

/// The host uid and gid of the container's root (0 without a user
/// namespace).
fn root_owner(spec: &Spec) -> (u32, u32) {
    let first = |maps: Option<&Vec<libcontainer::oci_spec::runtime::LinuxIdMapping>>| {
        crate::config::ids::host_id(0, maps).unwrap_or(0)
    };
    let linux = spec.linux().as_ref();
    (
        first(linux.and_then(|l| l.uid_mappings().as_ref())),
        first(linux.and_then(|l| l.gid_mappings().as_ref())),
    )
}

/// A hook without `env`: libcontainer clears the environment (no PATH, so
/// `sh` in a hook fails); runc's hooks inherit runc's environment. The
/// hooks run during `create` get runlet's environment now; those in the
/// container (createContainer) the process's; poststart and poststop get
/// runlet's when they run (`container::run_hooks_warning`).
fn hook_environment(spec: &mut Spec) {
    let Some(mut hooks) = spec.hooks().clone() else {
        return;
    };
    let own: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    let process_env = spec
        .process()
        .as_ref()
        .and_then(|p| p.env().clone())
        .unwrap_or_default();
    let fill = |list: &Option<Vec<libcontainer::oci_spec::runtime::Hook>>, env: &[String]| {
        list.clone().map(|hs| {
            hs.into_iter()
                .map(|mut h| {
                    if h.env().is_none() {
                        h.set_env(Some(env.to_vec()));
                    }
                    h
                })
                .collect::<Vec<_>>()
        })
    };
    #[allow(deprecated)]
    let prestart = fill(hooks.prestart(), &own);
    let create_runtime = fill(hooks.create_runtime(), &own);
    let create_container = fill(hooks.create_container(), &process_env);
    #[allow(deprecated)]
    hooks.set_prestart(prestart);
    hooks.set_create_runtime(create_runtime);
    hooks.set_create_container(create_container);
    spec.set_hooks(Some(hooks));
}

/// `linux.rootfsPropagation`: libcontainer knows only `shared`, `slave`,
/// `private` and `unbindable` (and applies each with MS_REC before the
/// rootfs is bound); runc also takes the recursive spellings. They mean
/// the same there. After pivot_root libcontainer sets `shared` and
/// `unbindable` on `/` without MS_REC: `post_create` sets the recursive
/// forms again on the whole tree (see [`recursive_root_propagation`]).
fn rootfs_propagation(spec: &mut Spec) {
    let Some(mut linux) = spec.linux().clone() else {
        return;
    };
    let plain = match linux.rootfs_propagation().as_deref() {
        Some("rprivate") => "private",
        Some("rslave") => "slave",
        Some("rshared") => "shared",
        Some("runbindable") => "unbindable",
        _ => return,
    };
    linux.set_rootfs_propagation(Some(plain.to_string()));
    spec.set_linux(Some(linux));
}

/// Whether `/` must be set recursively after pivot_root (the config asked
/// for `rshared` or `runbindable`, or their plain forms, which runc applies
/// recursively before the bind too).
pub fn recursive_root_propagation(spec: &Spec) -> Option<nix::mount::MsFlags> {
    use nix::mount::MsFlags;
    match spec.linux().as_ref()?.rootfs_propagation().as_deref()? {
        "shared" => Some(MsFlags::MS_SHARED | MsFlags::MS_REC),
        "unbindable" => Some(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC),
        _ => None,
    }
}

/// The propagation options of a mount (`rshared`, `slave`, ...) as flags.
pub fn propagation_flags(options: &[String]) -> Option<MsFlags> {
    let mut flags = None;
    for o in options {
        let f = match o.as_str() {
            "shared" => MsFlags::MS_SHARED,
            "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
            "slave" => MsFlags::MS_SLAVE,
            "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
            "private" => MsFlags::MS_PRIVATE,
            "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            "unbindable" => MsFlags::MS_UNBINDABLE,
            "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
            _ => continue,
        };
        flags = Some(f);
    }
    flags
}

/// A mount without `source` (proc, sysfs, tmpfs, mqueue, cgroup): the spec
/// makes it optional; libcontainer refuses it ("no source in mount spec").
/// For such filesystems the source only names the mount in mountinfo, so
/// runlet uses the type, as `mount -t proc proc /proc` does.
fn mounts_without_source(spec: &mut Spec) {
    let Some(mut mounts) = spec.mounts().clone() else {
        return;
    };
    let mut changed = false;
    for m in mounts.iter_mut() {
        if m.source().is_none() {
            if let Some(typ) = m.typ().clone().filter(|t| t != "bind" && t != "none") {
                m.set_source(Some(typ.into()));
                changed = true;
            }
        }
    }
    if changed {
        spec.set_mounts(Some(mounts));
    }
}

/// `"noNewPrivileges": false`: libcontainer then loads the seccomp filter
/// after dropping capabilities and without no_new_privs, which the kernel
/// refuses ("failed to load seccomp context"). runc loads it while still
/// privileged; libcontainer does that when the field is absent, which
/// means the same (no_new_privs stays off).
fn no_new_privileges_false(spec: &mut Spec) {
    if let Some(mut process) = spec.process().clone() {
        fix_process(&mut process);
        spec.set_process(Some(process));
    }
}

/// The rewrites that apply to an `exec` process as well.
pub fn fix_process(process: &mut libcontainer::oci_spec::runtime::Process) {
    if process.no_new_privileges() == Some(false) {
        process.set_no_new_privileges(None);
    }
}

/// A tmpfs mount without `mode=` gets the kernel's 1777; runc gives it the
/// mode of the directory it is mounted on, when that exists.
fn tmpfs_mode_of_mountpoint(spec: &mut Spec, rootfs: &Path) {
    let Some(mut mounts) = spec.mounts().clone() else {
        return;
    };
    let mut changed = false;
    for m in mounts.iter_mut() {
        if m.typ().as_deref() != Some("tmpfs") {
            continue;
        }
        let mut options = m.options().clone().unwrap_or_default();
        if options.iter().any(|o| o.starts_with("mode=")) {
            continue;
        }
        let Ok(dir) = crate::wasm::entrypoint::open_dir_in_root(rootfs, m.destination()) else {
            continue;
        };
        let Ok(meta) = dir.metadata() else { continue };
        use std::os::unix::fs::PermissionsExt;
        options.push(format!("mode={:o}", meta.permissions().mode() & 0o7777));
        m.set_options(Some(options));
        changed = true;
    }
    if changed {
        spec.set_mounts(Some(mounts));
    }
}

/// HOME: libcontainer sets it from the user's passwd entry and leaves it
/// unset for a uid without one; runc sets `/` then. Decided here from the
/// rootfs's /etc/passwd (read confined to the rootfs).
fn home_without_passwd_entry(spec: &mut Spec, rootfs: &Path) {
    let Some(mut process) = spec.process().clone() else {
        return;
    };
    let mut env = process.env().clone().unwrap_or_default();
    if env.iter().any(|e| e.starts_with("HOME=")) {
        return;
    }
    let uid = process.user().uid();
    let passwd = crate::wasm::entrypoint::open_in_root(rootfs, Path::new("/etc/passwd"))
        .ok()
        .and_then(|mut f| {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut f, &mut s)
                .ok()
                .map(|_| s)
        })
        .unwrap_or_default();
    let known = passwd
        .lines()
        .any(|l| l.split(':').nth(2).and_then(|u| u.parse::<u32>().ok()) == Some(uid));
    if !known {
        env.push("HOME=/".to_string());
        process.set_env(Some(env));
        spec.set_process(Some(process));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propagation_options() {
        let o =
            |v: &[&str]| propagation_flags(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            o(&["rbind", "rslave"]),
            Some(MsFlags::MS_SLAVE | MsFlags::MS_REC)
        );
        assert_eq!(o(&["ro"]), None);
    }

    #[test]
    fn destinations_resolve_inside_the_root() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path();
        std::fs::create_dir_all(root.join("run")).expect("mkdir");
        std::fs::create_dir_all(root.join("var")).expect("mkdir");
        std::os::unix::fs::symlink("/run", root.join("var/run")).expect("link");
        std::os::unix::fs::symlink("../../../../srv/data", root.join("data")).expect("link");
        std::os::unix::fs::symlink("/loop", root.join("loop")).expect("link");
        let r = |p: &str| resolve_in_root(root, Path::new(p));
        assert_eq!(r("/var/run/x"), Some("/run/x".into()));
        assert_eq!(r("/data"), Some("/srv/data".into()));
        assert_eq!(r("/plain/dir"), Some("/plain/dir".into()));
        assert_eq!(r("/loop"), None);
    }

    #[test]
    fn scheduler_flags_in_the_runtime_spec_spelling() {
        let mut v = serde_json::json!({"process": {"scheduler": {"policy": "SCHED_OTHER",
            "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_RECLAIM"]}}});
        fix_json(&mut v);
        assert_eq!(
            v["process"]["scheduler"]["flags"],
            serde_json::json!([
                "SCHED_RESET_ON_FORK",
                "SCHED_FLAG_D_L_OVERRUN",
                "SCHED_FLAG_RECLAIM"
            ])
        );
    }

    #[test]
    fn recursive_propagation_and_sourceless_mounts() {
        let mut spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": [{"destination": "/proc", "type": "proc"},
                       {"destination": "/b", "type": "bind", "options": ["rbind"]}],
            "linux": {"rootfsPropagation": "rshared"}
        }))
        .expect("spec");
        mounts_without_source(&mut spec);
        rootfs_propagation(&mut spec);
        let v = serde_json::to_value(&spec).expect("json");
        assert_eq!(v["mounts"][0]["source"], "proc");
        assert!(v["mounts"][1].get("source").is_none());
        assert_eq!(v["linux"]["rootfsPropagation"], "shared");
        assert!(recursive_root_propagation(&spec).is_some());
    }
}
