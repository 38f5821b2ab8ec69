//! Hooks that runlet runs itself (poststart, poststop).

use std::path::Path;

/// Runs poststart or poststop hooks as the runtime spec says: a failing
/// hook is a warning and the remaining hooks still run (libcontainer's
/// `run_hooks` stops at the first failure). A hook without `env` gets
/// runlet's environment, as runc's hooks inherit runc's (libcontainer
/// would clear it, leaving no PATH).
pub fn run_hooks_warning(
    hooks: Option<&Vec<libcontainer::oci_spec::runtime::Hook>>,
    state: &libcontainer::container::State,
    dir: Option<&Path>,
    kind: &str,
) {
    for hook in hooks.into_iter().flatten() {
        let mut hook = hook.clone();
        if hook.env().is_none() {
            hook.set_env(Some(
                std::env::vars().map(|(k, v)| format!("{k}={v}")).collect(),
            ));
        }
        if let Err(e) =
            libcontainer::hooks::run_hooks(Some(&vec![hook]), Some(state), dir, None, None)
        {
            let msg = super::clone::root_cause(&e);
            tracing::warn!(id = %state.id, "{kind} hook failed: {msg}");
            crate::logging::warn(format_args!("{kind} hook failed: {msg}"));
        }
    }
}
