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
    let new_userns = linux.namespaces().iter().flatten().any(|n| {
        n.typ() == libcontainer::oci_spec::runtime::LinuxNamespaceType::User && n.path().is_none()
    });
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
            eprintln!("runlet: error: {name}: {e:#}");
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
