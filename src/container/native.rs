//! The native workload: libcontainer's executor (execvp). Its check before
//! the exec wants a PATH in `process.env` even when `args[0]` is a path;
//! runc and crun do not, and images may set no environment at all (a pause
//! image needs none). With no PATH and a path for `args[0]`, the check runs
//! on a copy of the spec that has one; the process's environment is left
//! as configured. A bare name without PATH still fails the check.

use libcontainer::oci_spec::runtime::Spec;
use libcontainer::workload::{
    Executor, ExecutorError, ExecutorSetEnvsError, ExecutorValidationError,
};

#[derive(Clone)]
struct NativeExecutor(Box<dyn Executor>);

pub fn executor() -> Box<dyn Executor> {
    Box::new(NativeExecutor(
        libcontainer::workload::default::get_executor(),
    ))
}

impl Executor for NativeExecutor {
    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        let Some(process) = spec.process() else {
            return self.0.validate(spec);
        };
        let env = process.env().clone().unwrap_or_default();
        let by_path = process
            .args()
            .as_ref()
            .and_then(|a| a.first())
            .is_some_and(|a0| a0.contains('/'));
        if !by_path || env.iter().any(|e| e.starts_with("PATH=")) {
            return self.0.validate(spec);
        }
        let mut process = process.clone();
        let mut with_path = env;
        with_path.push("PATH=/".into());
        process.set_env(Some(with_path));
        let mut spec = spec.clone();
        spec.set_process(Some(process));
        self.0.validate(&spec)
    }

    fn setup_envs(
        &self,
        envs: std::collections::HashMap<String, String>,
    ) -> Result<(), ExecutorSetEnvsError> {
        self.0.setup_envs(envs)
    }

    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        self.0.exec(spec)
    }
}
