//! The one place that decides, per container, what runs the workload inside
//! the container's init process: libcontainer's native executor (execve of
//! `process.args[0]`) or a Wasm handler. Every other module asks here.
//!
//! Only the native executor exists so far; the Wasm rules (annotations,
//! `.wasm`/`.wat` entrypoints, magic bytes, never for sandbox containers,
//! the `runlet-wasm` program name) plug in as further `Workload` variants.

use libcontainer::oci_spec::runtime::Spec;
use libcontainer::workload::Executor;

/// What runs a container's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    /// execve of `process.args[0]`, as runc does.
    Native,
}

impl Workload {
    /// The name recorded in the container's state and shown by `state`.
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Native => "native",
        }
    }
}

/// Handlers compiled into this binary, for `--version` and `features`.
pub fn compiled_handlers() -> &'static [&'static str] {
    &["native"]
}

/// Decides how a container's process runs.
pub fn decide(_spec: &Spec) -> anyhow::Result<Workload> {
    Ok(Workload::Native)
}

/// The libcontainer executor for a workload.
pub fn executor(workload: &Workload) -> Box<dyn Executor> {
    match workload {
        Workload::Native => libcontainer::workload::default::get_executor(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_spec_is_native() {
        assert_eq!(decide(&Spec::default()).ok(), Some(Workload::Native));
    }
}
