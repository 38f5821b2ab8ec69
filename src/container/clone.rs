//! Cloning a container's processes (libcontainer's main process, its
//! intermediate and init or exec process) with nothing of runlet's that a
//! container must not see, and the error of one that failed, as one line.

use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use libcontainer::oci_spec::runtime::Spec;
use libcontainer::process::args::ContainerArgs;
use nix::unistd::Pid;

/// Has libcontainer clone the container's processes (its main process:
/// intermediate, then init or exec process). They are clones of this
/// runlet without an execve, so first the caller's command line and
/// environment go (`procview`); the host's procfs handle goes in the
/// container process itself (`fds::close_runtime_handles`). A Wasm process
/// is runlet for its whole life, so there a view that cannot be replaced
/// is an error.
pub(super) fn clone_processes(
    args: &ContainerArgs,
    root: &Path,
    id: &str,
    wasm: bool,
) -> Result<Pid> {
    let process = args.spec.process().as_ref();
    let shown = crate::container::procview::Shown::set(
        process
            .and_then(|p| p.args().as_deref())
            .unwrap_or_default(),
        process.and_then(|p| p.env().as_deref()).unwrap_or_default(),
    );
    let _shown = match shown {
        Ok(s) => Some(s),
        Err(e) if wasm => bail!(
            "cannot hide runlet's command line and environment from the Wasm container: prctl(PR_SET_MM_MAP): {e} (a kernel with CONFIG_CHECKPOINT_RESTORE is needed)"
        ),
        Err(e) => {
            tracing::debug!("prctl(PR_SET_MM_MAP): {e}; the init shows runlet's environment until start");
            None
        }
    };
    let errors =
        crate::logging::ChildErrors::capture(&crate::container::inflight::marker(root, id));
    libcontainer::process::container_main_process::container_main_process(args)
        .map_err(|e| process_failure(&e, errors.as_ref(), &args.spec))
}

/// What libcontainer's builder does in the runtime process before cloning:
/// the OOM score is inherited by the container, and the runtime becomes
/// non-dumpable so that processes in the namespaces it joins cannot ptrace
/// it or open its /proc entries.
pub(super) fn prepare_main_process(spec: &Spec) -> Result<()> {
    if let Some(adj) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        fs::OpenOptions::new()
            .write(true)
            .open("/proc/self/oom_score_adj")
            .and_then(|mut f| f.write_all(adj.to_string().as_bytes()))
            .map_err(|e| anyhow!("process.oomScoreAdj {adj}: {e}"))?;
    }
    if spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some()
    {
        // SAFETY: PR_SET_DUMPABLE takes an integer argument and touches no memory.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
            bail!(
                "prctl(PR_SET_DUMPABLE): {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// Connects to the caller's console socket (libcontainer sends the pty
/// master over it once the container's terminal exists).
pub(super) fn connect_console(
    dir: &Path,
    socket: Option<&Path>,
    name: &str,
) -> Result<Option<OwnedFd>> {
    socket
        .map(|path| {
            libcontainer::tty::setup_console_socket(dir, path, name)
                .map_err(|e| anyhow!("console socket {}: {e}", path.display()))
        })
        .transpose()
}

/// The error of a container process that failed to start: the first error
/// it logged (the cause; see `logging::ChildErrors`), else libcontainer's
/// own line. A failed chdir names the cwd, as runc does.
fn process_failure(
    err: &dyn std::error::Error,
    errors: Option<&crate::logging::ChildErrors>,
    spec: &Spec,
) -> anyhow::Error {
    let Some(cause) = errors.and_then(|e| e.first()) else {
        return anyhow!("{}", root_cause(err));
    };
    if cause.starts_with("failed to chdir") {
        let cwd = spec
            .process()
            .as_ref()
            .map(|p| p.cwd().display().to_string())
            .unwrap_or_default();
        let why = crate::logging::errno_desc(&cause).unwrap_or(cause.clone());
        return anyhow!("process.cwd: chdir to cwd {cwd:?} set in config.json failed: {why}");
    }
    if cause.contains("not found in PATH") {
        // runc's words, which podman matches to exit with 127.
        let arg0 = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().as_ref())
            .and_then(|a| a.first().cloned())
            .unwrap_or_default();
        return anyhow!("process.args[0]: exec: {arg0:?}: executable file not found in $PATH");
    }
    if let Some(field) = failed_mount(&cause, spec) {
        return anyhow!("{field}: the mount failed ({cause})");
    }
    anyhow!("container process: {cause}")
}

/// `mounts[i] <destination>` for libcontainer's "failed to mount ..."
/// lines, which print the mount (or just /dev, or the cgroup version) and
/// lose the errno.
fn failed_mount(cause: &str, spec: &Spec) -> Option<String> {
    let rest = cause.strip_prefix("failed to mount ")?;
    let mounts = spec.mounts().as_ref()?;
    let found = if let Some(at) = rest.find("destination: \"") {
        let dest = &rest[at + 14..];
        let dest = &dest[..dest.find('"')?];
        mounts
            .iter()
            .rposition(|m| crate::cgroups::clean(m.destination()) == Path::new(dest))
    } else if rest.starts_with("/dev:") {
        mounts
            .iter()
            .rposition(|m| crate::cgroups::clean(m.destination()) == Path::new("/dev"))
    } else if rest.starts_with("cgroup") {
        mounts
            .iter()
            .rposition(|m| matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")))
    } else {
        None
    }?;
    Some(format!(
        "mounts[{found}] {}",
        mounts[found].destination().display()
    ))
}

/// The innermost message of an error chain: libcontainer wraps the cause in
/// several layers that all say "failed to ...".
pub fn root_cause(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !s.is_empty() {
            msg = s;
        }
        cur = e.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_cause_is_innermost() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner detail"));
        assert_eq!(root_cause(&e), "inner detail");
    }
}
