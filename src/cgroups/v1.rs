//! What runlet sets on cgroup v1 that libcontainer does not.

use anyhow::Result;
use libcgroups::common::CgroupConfig;

use super::paths::{hierarchy_dirs, unified};

/// `linux.resources.memory.disableOOMKiller`: libcontainer hard-codes it
/// off (it writes `memory.oom_control` 0); runc applies it on cgroup v1,
/// the only hierarchy that has the switch. Written right after create.
pub fn apply_oom_killer_setting(
    config: &CgroupConfig,
    spec: &libcontainer::oci_spec::runtime::Spec,
) -> Result<()> {
    let disable = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.disable_oom_killer())
        .unwrap_or(false);
    if !disable || config.systemd_cgroup || unified() {
        return Ok(());
    }
    for dir in hierarchy_dirs(&config.cgroup_path).unwrap_or_default() {
        let file = dir.join("memory.oom_control");
        if file.exists() {
            std::fs::write(&file, "1").map_err(|e| {
                anyhow::anyhow!(
                    "linux.resources.memory.disableOOMKiller: {}: {e}",
                    file.display()
                )
            })?;
        }
    }
    Ok(())
}
