//! `ps`: the processes of a container, from its cgroup.

use anyhow::{anyhow, bail, Result};
use libcgroups::common::CgroupManager;
use libcontainer::container::ContainerStatus;

use crate::cgroups::cgroup_config;
use crate::cli::{OutputFormat, PsArgs};
use crate::state;
use crate::Ctx;

pub fn run(ctx: &Ctx, args: &PsArgs) -> Result<i32> {
    let id = &args.container_id;
    let l = state::load(&ctx.root, id)?;
    if l.container.status() == ContainerStatus::Stopped {
        bail!("container not running");
    }
    let config = l
        .container
        .spec()
        .map_err(|e| anyhow!("container {id}: {e}"))?;
    let manager = libcgroups::common::create_cgroup_manager(cgroup_config(
        config.cgroup_path,
        l.container.systemd(),
        id,
    ))
    .map_err(|e| anyhow!("container {id}: cgroup: {e}"))?;
    let mut pids: Vec<i32> = manager
        .get_all_pids()
        .map_err(|e| anyhow!("container {id}: listing pids: {e}"))?
        .into_iter()
        .map(|p| p.as_raw())
        .collect();
    pids.sort_unstable();

    if args.format == OutputFormat::Json {
        if !args.ps_options.is_empty() {
            bail!("ps options cannot be used with --format json");
        }
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(0);
    }
    let options = if args.ps_options.is_empty() {
        vec!["-ef".to_string()]
    } else {
        args.ps_options.clone()
    };
    let out = std::process::Command::new("ps")
        .args(&options)
        .output()
        .map_err(|e| anyhow!("running ps: {e}"))?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            options.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .ok_or_else(|| anyhow!("ps output has no PID column"))?;
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.binary_search(&p).is_ok()) {
            println!("{line}");
        }
    }
    Ok(0)
}
