//! `spec`: write a default config.json, as `runc spec` does.
//!
//! oci-spec's `Spec::default()` is youki's template: hostname "youki", an
//! inheritable capability set (CVE-2022-29162: inheritable capabilities
//! survive an execve of a file with matching file capabilities) and no
//! device rules. runlet writes runc's safe defaults instead.

use anyhow::{bail, Result};
use libcontainer::oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxResourcesBuilder, Spec};

use crate::cli::SpecArgs;

pub fn run(args: &SpecArgs, rootless: bool) -> Result<i32> {
    let path = args.bundle.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let spec = default_spec(rootless)?;
    let data = serde_json::to_vec_pretty(&spec)?;
    std::fs::write(&path, data).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(0)
}

/// runc's template: terminal on, `sh`, hostname `runlet`, bounding,
/// effective and permitted capabilities only (no inheritable or ambient
/// set), and a deny-all device rule (rootful).
pub fn default_spec(rootless: bool) -> Result<Spec> {
    let mut spec = if rootless {
        Spec::rootless(
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    } else {
        Spec::default()
    };
    spec.set_hostname(Some("runlet".into()));
    if let Some(mut process) = spec.process().clone() {
        process.set_terminal(Some(true));
        if let Some(mut caps) = process.capabilities().clone() {
            caps.set_inheritable(None);
            caps.set_ambient(None);
            process.set_capabilities(Some(caps));
        }
        spec.set_process(Some(process));
    }
    if !rootless {
        if let Some(mut linux) = spec.linux().clone() {
            let deny_all = LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .access("rwm")
                .build()?;
            let mut resources = linux
                .resources()
                .clone()
                .unwrap_or(LinuxResourcesBuilder::default().build()?);
            resources.set_devices(Some(vec![deny_all]));
            linux.set_resources(Some(resources));
            spec.set_linux(Some(linux));
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_safe_defaults() {
        let spec = default_spec(false).expect("spec");
        let v = serde_json::to_value(&spec).expect("json");
        assert_eq!(v["hostname"], "runlet");
        assert_eq!(v["process"]["terminal"], true);
        let caps = &v["process"]["capabilities"];
        assert!(caps.get("inheritable").is_none(), "{caps}");
        assert!(caps.get("ambient").is_none(), "{caps}");
        assert!(caps["bounding"].as_array().is_some_and(|a| !a.is_empty()));
        assert_eq!(
            v["linux"]["resources"]["devices"],
            serde_json::json!([{"allow": false, "access": "rwm"}])
        );
        let rootless = serde_json::to_value(default_spec(true).expect("spec")).expect("json");
        assert_eq!(rootless["hostname"], "runlet");
        assert!(rootless["process"]["capabilities"]
            .get("inheritable")
            .is_none());
    }
}
