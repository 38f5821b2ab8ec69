//! cgroup v2 specifics: runc's block IO weight (libcgroups' conversion
//! overflows) and `unified`, which needs v2.

use std::path::Path;

use anyhow::{bail, Result};

use super::paths::unified;

/// runc's v2 block IO weight: as is to io.bfq.weight when BFQ is there,
/// else `1 + (w - 10) * 9999 / 990` to io.weight.
pub(super) fn block_io_weight_file(weight: u16) -> (&'static str, String, String) {
    if Path::new("/sys/module/bfq").exists() {
        ("io", "io.bfq.weight".into(), weight.to_string())
    } else {
        let w = 1 + (u32::from(weight).saturating_sub(10)) * 9999 / 990;
        ("io", "io.weight".into(), format!("default {w}"))
    }
}

/// On cgroup v2 (cgroupfs), the block IO weight goes in as runc writes it:
/// libcgroups 0.7 converts it to io.weight in 16-bit arithmetic that
/// overflows for any weight above 16 (a panic in a debug build, a wrong
/// weight in a release one). runc writes the weight as is to io.bfq.weight
/// when BFQ is there, else `1 + (w - 10) * 9999 / 990` to io.weight; runlet
/// passes that through `unified` and takes the weight out of what
/// libcgroups sees. With the systemd driver, cpus, mems and the weight are
/// kept from libcgroups (see `systemd_v2_files`, which sets them): its
/// systemd manager mistypes the first two, and its cgroupfs manager, which
/// writes the limits into the scope (`Scope`), overflows on the weight.
pub fn prepare_resources(
    resources: &mut libcontainer::oci_spec::runtime::LinuxResources,
    systemd: bool,
) {
    if !unified() {
        return;
    }
    if systemd {
        if let Some(mut cpu) = resources.cpu().clone() {
            cpu.set_cpus(None);
            cpu.set_mems(None);
            resources.set_cpu(Some(cpu));
        }
        if let Some(mut blkio) = resources.block_io().clone() {
            blkio.set_weight(None);
            resources.set_block_io(Some(blkio));
        }
        return;
    }
    let Some(mut blkio) = resources.block_io().clone() else {
        return;
    };
    let Some(weight) = blkio.weight().filter(|w| *w > 0) else {
        return;
    };
    let mut unified_keys = resources.unified().clone().unwrap_or_default();
    let (_, file, value) = block_io_weight_file(weight);
    unified_keys.insert(file, value);
    blkio.set_weight(None);
    resources.set_block_io(Some(blkio));
    resources.set_unified(Some(unified_keys));
}

/// `linux.resources.unified` needs cgroup v2; runc refuses it elsewhere
/// rather than dropping the limits, and so does runlet.
pub fn check_unified(spec: &libcontainer::oci_spec::runtime::Spec) -> Result<()> {
    let keys = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.unified().as_ref())
        .filter(|u| !u.is_empty());
    if let Some(u) = keys {
        if !unified() {
            let mut keys: Vec<&String> = u.keys().collect();
            keys.sort();
            bail!(
                "linux.resources.unified: {} cannot be applied: this host does not use cgroup v2 (unified hierarchy)",
                keys.iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(())
}
