//! Where a container's cgroup goes, and removing it on `delete` (and when
//! `create` fails).
//!
//! Three things here differ from libcgroups (youki's cgroup crate), each for
//! a reason:
//!
//! - **Paths are cleaned as runc cleans them.** libcgroups joins
//!   `linux.cgroupsPath` onto each controller's mount point as given, so
//!   `../../tmp/x` climbs out of /sys/fs/cgroup and makes plain directories
//!   on the host. runlet cleans the path lexically first (`..` stops at the
//!   cgroup root, as runc's `utils.CleanPath`), and checks that every
//!   directory it reads or removes is on a cgroup filesystem.
//! - **The default path is under the caller's cgroup**, as runc places it,
//!   so a limit set on whoever runs runlet also bounds its containers (see
//!   [`resolve_path`]).
//! - **Cleanup touches only the container.** libcgroups' removal kills every
//!   process in the cgroup. A container given a shared cgroup (a pod slice,
//!   `--cgroup-parent`, `/`) would take unrelated processes with it. runlet
//!   kills the container's pid namespace through its init when it has one,
//!   kills the whole cgroup only when it made that cgroup itself, removes
//!   only the directories it made, and leaves a busy cgroup with a warning.
//!
//! On cgroupfs runlet also reads mountinfo once instead of once per
//! controller (libcgroups' v1 manager): that was one of the largest costs
//! in `runlet run`. Under systemd it uses libcgroups, whose scope is the
//! container's own.
//!
//! The files: `placement` (where the cgroup goes, what create makes),
//! `paths` (hierarchies and path cleaning), `v1`, `v2` and `systemd` (what
//! each setup needs beyond libcgroups), `devices` (device rules), `stats`
//! (memory files, OOM kills), `removal` (delete).

mod devices;
mod paths;
mod placement;
mod removal;
mod stats;
mod systemd;
mod v1;
mod v2;

use anyhow::Result;
use libcgroups::common::CgroupConfig;

pub use devices::deny_all_devices_first;
pub use paths::{clean, host_mounts, CgroupMount};
pub use placement::{cgroup_config, exec_path, plan, resolve_path, Ownership};
pub use removal::{evict_to_caller, remove, Target};
pub use stats::{controller_dir, memory_dir, oom_kills};
pub use systemd::Scope;
pub use v1::apply_oom_killer_setting;
pub use v2::{check_unified, prepare_resources};

/// What runlet does to the container's cgroup after libcgroups applied the
/// config (at create and at `update`). On v2: its own device program (see
/// `v2_device_program`), and with systemd the files libcgroups leaves out
/// (`systemd_v2_files`). On v1: the defaults libcgroups allows after the
/// config's rules that runc does not, /dev/console (5:1) and tun/tap
/// (10:200), are denied again unless the config allows them itself.
pub fn finish_apply(
    config: &CgroupConfig,
    spec: &libcontainer::oci_spec::runtime::Spec,
) -> Result<()> {
    if paths::unified() {
        let dir = stats::unified_dir(config)
            .ok_or_else(|| anyhow::anyhow!("linux.cgroupsPath: no cgroup directory"))?;
        devices::v2_device_program(&dir, spec)?;
        if config.systemd_cgroup {
            systemd::systemd_v2_files(&dir, spec)?;
        }
        return Ok(());
    }
    if config.systemd_cgroup {
        return Ok(());
    }
    devices::v1_device_denies(config, spec)
}
