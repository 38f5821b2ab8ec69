//! Inheritable and ambient capabilities, set the way runc sets them.
//!
//! libcontainer applies the capability sets one `capset` at a time, after
//! the bounding set: effective, then permitted, then inheritable. Once
//! permitted is cut to the config's set, and without CAP_SETPCAP, the
//! kernel only lets the inheritable set hold what permitted still holds,
//! so a valid config whose inheritable set has a capability that is in the
//! bounding set but not in permitted fails with EPERM ("failed syscall").
//! runc sets effective, permitted and inheritable in one `capset` while the
//! process is still privileged.
//!
//! When the config has inheritable or ambient capabilities, runlet hands
//! libcontainer the effective, permitted and bounding sets with
//! CAP_SETPCAP added and no inheritable or ambient ones, and a wrapping
//! executor finishes the job right before the workload starts: inheritable
//! set (allowed while CAP_SETPCAP is effective), ambient raised, CAP_SETPCAP
//! dropped from the bounding set unless the config has it, and the exact
//! effective and permitted sets last.

use anyhow::{anyhow, Result};
use caps::{CapSet, Capability, CapsHashSet};
use libcontainer::oci_spec::runtime::{Capabilities, Process};

/// The sets the workload must end up with.
#[derive(Clone, Debug)]
pub struct Wanted {
    effective: CapsHashSet,
    permitted: CapsHashSet,
    inheritable: CapsHashSet,
    ambient: Vec<Capability>,
    keep_setpcap_bounding: bool,
}

fn to_caps(set: &Option<Capabilities>) -> Result<CapsHashSet> {
    set.iter()
        .flatten()
        .map(|c| {
            let name = serde_json::to_value(c)?;
            name.as_str()
                .and_then(|n| n.parse::<Capability>().ok())
                .ok_or_else(|| anyhow!("process.capabilities: unknown capability {name}"))
        })
        .collect()
}

/// Takes the inheritable and ambient sets out of the process (adding
/// CAP_SETPCAP to what libcontainer applies) when they need the late path;
/// returns what the wrapping executor must set.
pub fn split(process: &mut Process) -> Result<Option<Wanted>> {
    use libcontainer::oci_spec::runtime::Capability as OciCap;
    let Some(mut sets) = process.capabilities().clone() else {
        return Ok(None);
    };
    let inheritable = to_caps(sets.inheritable())?;
    // Without inheritable capabilities libcontainer's order works, and no
    // ambient capability can be raised anyway.
    if inheritable.is_empty() {
        return Ok(None);
    }
    let ambient = to_caps(sets.ambient())?;
    let wanted = Wanted {
        effective: to_caps(sets.effective())?,
        permitted: to_caps(sets.permitted())?,
        inheritable,
        ambient: ambient.into_iter().collect(),
        keep_setpcap_bounding: sets
            .bounding()
            .as_ref()
            .is_some_and(|b| b.contains(&OciCap::Setpcap)),
    };
    let with_setpcap = |set: &Option<Capabilities>| {
        let mut s = set.clone().unwrap_or_default();
        s.insert(OciCap::Setpcap);
        Some(s)
    };
    let (b, e, p) = (
        with_setpcap(sets.bounding()),
        with_setpcap(sets.effective()),
        with_setpcap(sets.permitted()),
    );
    sets.set_bounding(b)
        .set_effective(e)
        .set_permitted(p)
        .set_inheritable(Some(Default::default()))
        .set_ambient(Some(Default::default()));
    process.set_capabilities(Some(sets));
    Ok(Some(wanted))
}

impl Wanted {
    /// Sets inheritable and ambient, then the exact effective and permitted
    /// sets, in the calling process (the container's init or exec process).
    pub fn apply(&self) -> Result<(), caps::errors::CapsError> {
        caps::set(None, CapSet::Inheritable, &self.inheritable)?;
        for cap in &self.ambient {
            // As libcontainer and runc: an ambient capability that cannot
            // be raised (not permitted) is left out, not an error.
            if let Err(e) = caps::raise(None, CapSet::Ambient, *cap) {
                tracing::warn!("ambient capability {cap}: {e}");
            }
        }
        if !self.keep_setpcap_bounding {
            caps::drop(None, CapSet::Bounding, Capability::CAP_SETPCAP)?;
        }
        caps::set(None, CapSet::Effective, &self.effective)?;
        caps::set(None, CapSet::Permitted, &self.permitted)
    }
}
