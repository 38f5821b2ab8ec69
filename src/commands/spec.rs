//! `spec`: write a default config.json, as `runc spec` does.

use anyhow::{bail, Result};
use libcontainer::oci_spec::runtime::Spec;

use crate::cli::SpecArgs;

pub fn run(args: &SpecArgs, rootless: bool) -> Result<i32> {
    let path = args.bundle.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let spec = if rootless {
        Spec::rootless(
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    } else {
        Spec::default()
    };
    let data = serde_json::to_vec_pretty(&spec)?;
    std::fs::write(&path, data).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(0)
}
