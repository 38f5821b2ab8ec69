//! Device rules: deny-all first as runc, runlet's own eBPF program on v2,
//! and on v1 the two defaults libcgroups allows that runc does not.

use std::path::Path;

use anyhow::Result;
use libcgroups::common::CgroupConfig;

use super::paths::hierarchy_dirs;

/// Device rules runlet adds in front of the config's: deny everything
/// first, as runc does. libcgroups' v1 controller writes only the config's
/// rules and its defaults into `devices.allow`, so a new cgroup keeps the
/// parent's `a *:* rwm` and every device stays open (eBPF on v2 starts from
/// deny already; the rule is harmless there).
pub fn deny_all_devices_first(spec: &mut libcontainer::oci_spec::runtime::Spec) -> Result<()> {
    use libcontainer::oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxResourcesBuilder};
    let Some(mut linux) = spec.linux().clone() else {
        return Ok(());
    };
    let mut resources = match linux.resources().clone() {
        Some(r) => r,
        None => LinuxResourcesBuilder::default().build()?,
    };
    let mut rules = vec![LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()?];
    rules.extend(resources.devices().clone().unwrap_or_default());
    resources.set_devices(Some(rules));
    linux.set_resources(Some(resources));
    spec.set_linux(Some(linux));
    Ok(())
}

/// cgroup v2 has no device files: libcgroups attaches an eBPF program made
/// from the config's rules followed by its defaults, which allow
/// /dev/console (5:1) and tun (10:200) as well; the later allow wins over a
/// config's deny. runlet replaces that program with one made the same way
/// from the config's rules and runc's defaults alone (the same device list
/// as on v1, see above).
pub(super) fn v2_device_program(
    dir: &Path,
    spec: &libcontainer::oci_spec::runtime::Spec,
) -> Result<()> {
    use libcgroups::v2::devices::{bpf::prog, emulator::Emulator, program::Program};
    use libcontainer::oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType};
    use std::os::fd::AsRawFd;
    let rule = |typ, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(typ)
            .access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build()
    };
    let c = LinuxDeviceType::C;
    let mut rules = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().clone())
        .unwrap_or_default();
    // runc's defaults: mknod of anything; null, zero, full, tty, urandom,
    // random, the pts devices and ptmx.
    let defaults = [
        rule(c, None, None, "m"),
        rule(LinuxDeviceType::B, None, None, "m"),
        rule(c, Some(1), Some(3), "rwm"),
        rule(c, Some(1), Some(5), "rwm"),
        rule(c, Some(1), Some(7), "rwm"),
        rule(c, Some(5), Some(0), "rwm"),
        rule(c, Some(1), Some(9), "rwm"),
        rule(c, Some(1), Some(8), "rwm"),
        rule(c, Some(136), None, "rwm"),
        rule(c, Some(5), Some(2), "rwm"),
    ];
    for d in defaults {
        rules.push(d.map_err(|e| anyhow::anyhow!("device rule: {e}"))?);
    }
    let mut emulator = Emulator::with_default_allow(false);
    emulator.add_rules(&rules);
    let program = Program::from_rules(&emulator.rules, emulator.default_allow)
        .map_err(|e| anyhow::anyhow!("linux.resources.devices: {e}"))?;
    let fail =
        |e: &dyn std::fmt::Display| anyhow::anyhow!("device rules for {}: {e}", dir.display());
    prog::bump_memlock_rlimit().map_err(|e| fail(&e))?;
    let prog_fd = prog::load("Apache", program.bytecodes()).map_err(|e| fail(&e))?;
    // SAFETY: prog_fd was just returned by BPF_PROG_LOAD and is ours.
    let prog_fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(prog_fd) };
    let cgroup = std::fs::File::open(dir).map_err(|e| fail(&e))?;
    let old = prog::query(cgroup.as_raw_fd()).map_err(|e| fail(&e))?;
    prog::attach(prog_fd.as_raw_fd(), cgroup.as_raw_fd()).map_err(|e| fail(&e))?;
    for p in old {
        prog::detach2(p.fd, cgroup.as_raw_fd()).map_err(|e| fail(&e))?;
        // SAFETY: query returned an fd for each program, owned by us.
        drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(p.fd) });
    }
    Ok(())
}

/// v1: libcgroups allows /dev/console (5:1) and tun/tap (10:200) after the
/// config's rules; runc does not, so runlet denies them again unless the
/// config allows them itself.
pub(super) fn v1_device_denies(
    config: &CgroupConfig,
    spec: &libcontainer::oci_spec::runtime::Spec,
) -> Result<()> {
    use libcontainer::oci_spec::runtime::LinuxDeviceType;
    let allowed_by_config = |major: i64, minor: i64| {
        spec.linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.devices().as_ref())
            .is_some_and(|rules| {
                rules.iter().any(|r| {
                    r.allow()
                        && matches!(r.typ(), Some(LinuxDeviceType::C) | Some(LinuxDeviceType::A))
                        && r.major().is_none_or(|m| m == major)
                        && r.minor().is_none_or(|m| m == minor)
                })
            })
    };
    let Some(dirs) = hierarchy_dirs(&config.cgroup_path) else {
        return Ok(());
    };
    for dir in dirs.iter().filter(|d| d.join("devices.deny").exists()) {
        for (major, minor) in [(5, 1), (10, 200)] {
            if !allowed_by_config(major, minor) {
                std::fs::write(dir.join("devices.deny"), format!("c {major}:{minor} rwm"))
                    .map_err(|e| anyhow::anyhow!("{}/devices.deny: {e}", dir.display()))?;
            }
        }
    }
    Ok(())
}
