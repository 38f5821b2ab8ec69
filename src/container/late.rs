//! What runlet sets itself right before the workload starts, in the
//! container's init (or exec) process, through an executor wrapped around
//! the workload's own (native execve or a Wasm engine): where libcontainer
//! does something too early or in an order the kernel refuses.
//!
//! - Capabilities: see `caps`.
//! - Seccomp, with `noNewPrivileges: true` and no SCMP_ACT_NOTIFY rule:
//!   libcontainer loads the filter and then still waits for `start`
//!   (accept4, read, sendmsg), runs startContainer hooks and stats PATH, all
//!   under the container's profile, so a profile that refuses one of those
//!   breaks the container. runc loads it as the last step before execve.
//!   runlet takes the filter out of what libcontainer gets and loads it
//!   here, after which only the workload's execve (or the engine) runs.
//!   With a notify rule libcontainer must load it (it passes the listener
//!   fd to the runtime); without no_new_privs the load needs privileges
//!   only libcontainer's early load has.
//! - File descriptors: at the first point runlet's code runs in the
//!   container process (`validate`, before the init reports ready), the
//!   runtime's connections to host services and pathrs's host procfs
//!   handle are closed (see `fds`).

use libcontainer::oci_spec::runtime::{LinuxSeccomp, Spec};
use libcontainer::workload::{
    Executor, ExecutorError, ExecutorSetEnvsError, ExecutorValidationError,
};

/// What to set before the workload starts.
#[derive(Clone, Default)]
pub struct Late {
    pub caps: Option<crate::container::caps::Wanted>,
    pub seccomp: Option<LinuxSeccomp>,
}

impl Late {
    /// Takes out of `spec` (what libcontainer will get) what runlet sets
    /// late. Call after the spec copy for `exec` is saved.
    pub fn split(spec: &mut Spec) -> anyhow::Result<Late> {
        let mut late = Late::default();
        if let Some(mut process) = spec.process().clone() {
            late.caps = crate::container::caps::split(&mut process)?;
            let nnp = process.no_new_privileges() == Some(true);
            spec.set_process(Some(process));
            if let Some(mut linux) = spec.linux().clone() {
                if let Some(seccomp) = linux.seccomp().clone() {
                    if nnp && !libcontainer::seccomp::is_notify(&seccomp) {
                        late.seccomp = Some(seccomp);
                        linux.set_seccomp(None);
                        spec.set_linux(Some(linux));
                    }
                }
            }
        }
        Ok(late)
    }

    /// The workload's executor, wrapped; `preserve_fds` are passed to the
    /// container above stdio.
    pub fn wrap(self, inner: Box<dyn Executor>, preserve_fds: i32) -> Box<dyn Executor> {
        Box::new(LateExecutor {
            inner,
            late: self,
            preserve_fds,
        })
    }
}

#[derive(Clone)]
struct LateExecutor {
    inner: Box<dyn Executor>,
    late: Late,
    preserve_fds: i32,
}

impl Executor for LateExecutor {
    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        crate::container::fds::close_runtime_handles(3 + self.preserve_fds);
        self.inner.validate(spec)
    }

    fn setup_envs(
        &self,
        envs: std::collections::HashMap<String, String>,
    ) -> Result<(), ExecutorSetEnvsError> {
        self.inner.setup_envs(envs)
    }

    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        if let Some(wanted) = &self.late.caps {
            wanted
                .apply()
                .map_err(|e| ExecutorError::Other(format!("process.capabilities: {e}")))?;
        }
        if let Some(seccomp) = &self.late.seccomp {
            libcontainer::seccomp::initialize_seccomp(seccomp)
                .map_err(|e| ExecutorError::Other(format!("linux.seccomp: {e}")))?;
        }
        self.inner.exec(spec)
    }
}
