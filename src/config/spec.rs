//! Loading and checking a bundle's config.json.
//!
//! runlet reads the spec once, checks it with errors that name the file and
//! the field, and hands the in-memory result to its own init builder
//! (src/container/build.rs). libcontainer's `InitContainerBuilder` would read the
//! file again and could only be given a path, which is why runlet does not
//! use it: the patched spec (default cgroup path, sd_notify relay,
//! socket-activation env) has to reach the container without rewriting the
//! user's bundle.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use libcontainer::oci_spec::runtime::{LinuxNamespaceType, Spec};

/// Reads and parses a spec file, naming the file in every error.
pub fn read_spec_file(path: &Path) -> Result<Spec> {
    let data = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow::anyhow!("{}: no such file", path.display()),
        _ => anyhow::anyhow!("{}: {e}", path.display()),
    })?;
    let mut raw: serde_json::Value = serde_json::from_slice(&data)
        .map_err(|e| anyhow::anyhow!("{}: invalid spec: {e}", path.display()))?;
    crate::config::compat::fix_json(&mut raw);
    // The error names the field as the JSON spells it
    // (`linux.resources.cpu.quota: invalid type: ...`).
    serde_path_to_error::deserialize::<_, Spec>(raw).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        if field == "." {
            anyhow::anyhow!("{}: invalid spec: {inner}", path.display())
        } else {
            anyhow::anyhow!("{}: {field}: {inner}", path.display())
        }
    })
}

/// Loads `<bundle>/config.json` (or `config` when given), validates it and
/// resolves `root.path` against the bundle.
pub fn load_bundle_spec(bundle: &Path, config: Option<&Path>) -> Result<(PathBuf, Spec)> {
    let meta = std::fs::metadata(bundle)
        .map_err(|e| anyhow::anyhow!("bundle {}: {}", bundle.display(), io_text(&e)))?;
    if !meta.is_dir() {
        bail!("bundle {}: not a directory", bundle.display());
    }
    let bundle =
        std::fs::canonicalize(bundle).with_context(|| format!("bundle {}", bundle.display()))?;
    let config_path = match config {
        Some(c) if c.is_absolute() => c.to_path_buf(),
        Some(c) => std::env::current_dir()?.join(c),
        None => bundle.join("config.json"),
    };
    let mut spec = read_spec_file(&config_path)?;
    // What runc accepts and libcontainer would not, rewritten
    // (src/config/compat.rs); best effort on the rootfs, checked below.
    if let Some(root) = spec.root().as_ref().map(|r| bundle.join(r.path())) {
        crate::config::compat::fix_spec(&mut spec, &root)?;
    }
    validate(&spec).map_err(|e| anyhow::anyhow!("{}: {e}", config_path.display()))?;

    let root = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .ok_or_else(|| anyhow::anyhow!("{}: root: missing", config_path.display()))?;
    let rootfs = if root.is_absolute() {
        root
    } else {
        bundle.join(root)
    };
    let rootfs_meta = std::fs::metadata(&rootfs).map_err(|e| {
        anyhow::anyhow!(
            "{}: root.path {}: {}",
            config_path.display(),
            rootfs.display(),
            io_text(&e)
        )
    })?;
    if !rootfs_meta.is_dir() {
        bail!(
            "{}: root.path {}: not a directory",
            config_path.display(),
            rootfs.display()
        );
    }
    spec.canonicalize_rootfs(&bundle)
        .map_err(|e| anyhow::anyhow!("{}: root.path: {e}", config_path.display()))?;
    check_proc_and_sysfs_mounts(&spec, &rootfs)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config_path.display()))?;
    Ok((bundle, spec))
}

/// proc and sysfs must be mounted on a plain directory, never through a
/// symlink (runc's rule, against mounting procfs over something the
/// container chose); libcontainer refuses too, but from inside the init,
/// where the mount it failed on is lost. Checked here, naming the mount.
fn check_proc_and_sysfs_mounts(spec: &Spec, rootfs: &Path) -> Result<()> {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let Some(fs) = m.typ().as_deref().filter(|t| *t == "proc" || *t == "sysfs") else {
            continue;
        };
        let dest = crate::cgroups::clean(m.destination());
        let rel = dest.strip_prefix("/").unwrap_or(&dest);
        if rel.as_os_str().is_empty() {
            continue;
        }
        if let Ok(meta) = std::fs::symlink_metadata(rootfs.join(rel)) {
            if !meta.is_dir() {
                bail!(
                    "mounts[{i}] {}: filesystem {fs} must be mounted on ordinary directory",
                    dest.display()
                );
            }
        }
    }
    Ok(())
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Checks the fields runlet and libcontainer rely on. Each error names the
/// field, in the JSON spelling of config.json.
pub fn validate(spec: &Spec) -> Result<()> {
    if !spec.version().starts_with("1.") {
        bail!("ociVersion {:?}: only 1.x is supported", spec.version());
    }
    if spec
        .root()
        .as_ref()
        .is_some_and(|r| r.path().as_os_str().is_empty())
    {
        bail!("root.path: empty (the runtime spec requires the rootfs path)");
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("process: missing"))?;
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => bail!("process.args: must name the program to run"),
    }
    if !process.cwd().is_absolute() {
        bail!("process.cwd {:?}: must be an absolute path", process.cwd());
    }
    if let Some(env) = process.env() {
        if let Some(bad) = env.iter().find(|e| !e.contains('=')) {
            bail!("process.env: entry {bad:?} is not KEY=VALUE");
        }
    }
    if let Some(rlimits) = process.rlimits() {
        if let Some(r) = rlimits.iter().find(|r| r.soft() > r.hard()) {
            bail!(
                "process.rlimits: {:?} soft limit {} exceeds hard limit {}",
                r.typ(),
                r.soft(),
                r.hard()
            );
        }
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("linux: missing"))?;
    if let Some(namespaces) = linux.namespaces() {
        let mut seen = std::collections::HashSet::new();
        for ns in namespaces {
            if !seen.insert(ns.typ()) {
                bail!("linux.namespaces: {:?} is listed twice", ns.typ());
            }
            if let Some(path) = ns.path() {
                if !path.is_absolute() {
                    bail!(
                        "linux.namespaces: path {path:?} of {:?} must be absolute",
                        ns.typ()
                    );
                }
                if !path.exists() {
                    bail!(
                        "linux.namespaces: path {path:?} of {:?} does not exist",
                        ns.typ()
                    );
                }
            }
        }
        let has_uts = namespaces
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Uts);
        if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has_uts {
            bail!("hostname: set, but linux.namespaces has no uts namespace");
        }
    }
    if let Some(mounts) = spec.mounts() {
        for m in mounts {
            if !m.destination().is_absolute() {
                bail!(
                    "mounts: destination {:?} must be an absolute path",
                    m.destination()
                );
            }
        }
    }
    if let Some(hooks) = spec.hooks() {
        #[allow(deprecated)]
        let kinds = [
            ("prestart", hooks.prestart()),
            ("createRuntime", hooks.create_runtime()),
            ("createContainer", hooks.create_container()),
            ("startContainer", hooks.start_container()),
            ("poststart", hooks.poststart()),
            ("poststop", hooks.poststop()),
        ];
        for (kind, list) in kinds {
            for (i, h) in list.iter().flatten().enumerate() {
                if let Some(t) = h.timeout().filter(|t| *t <= 0) {
                    bail!("hooks.{kind}[{i}].timeout: {t} must be a positive number of seconds");
                }
            }
        }
    }
    libcontainer::validator::Validator::validate_spec(spec).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(mounts) = spec.mounts() {
        libcontainer::utils::validate_mount_options(mounts)
            .map_err(|e| anyhow::anyhow!("mounts: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Spec {
        Spec::default()
    }

    #[test]
    fn default_spec_is_valid() {
        validate(&base()).expect("runc's default spec validates");
    }

    #[test]
    fn empty_args_rejected_naming_field() {
        let mut s = base();
        let mut p = s.process().clone().unwrap_or_default();
        p.set_args(Some(vec![]));
        s.set_process(Some(p));
        let e = validate(&s).unwrap_err().to_string();
        assert!(e.contains("process.args"), "{e}");
    }

    #[test]
    fn relative_cwd_rejected() {
        let mut s = base();
        let mut p = s.process().clone().unwrap_or_default();
        p.set_cwd("relative".into());
        s.set_process(Some(p));
        let e = validate(&s).unwrap_err().to_string();
        assert!(e.contains("process.cwd"), "{e}");
    }

    #[test]
    fn hook_timeout_must_be_positive() {
        let mut s = base();
        let hook: libcontainer::oci_spec::runtime::Hook =
            serde_json::from_value(serde_json::json!({"path": "/bin/true", "timeout": 0}))
                .expect("hook");
        let mut hooks = libcontainer::oci_spec::runtime::Hooks::default();
        hooks.set_poststart(Some(vec![hook]));
        s.set_hooks(Some(hooks));
        let e = validate(&s).unwrap_err().to_string();
        assert!(e.contains("hooks.poststart[0].timeout"), "{e}");
    }

    #[test]
    fn bad_version_rejected() {
        let mut s = base();
        s.set_version("2.0.0".into());
        assert!(validate(&s).unwrap_err().to_string().contains("ociVersion"));
    }
}
