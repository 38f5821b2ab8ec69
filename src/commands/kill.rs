//! `kill`: send a signal to a container's init (or, with -a, to all of it).

use anyhow::{bail, Result};
use libcontainer::container::ContainerStatus;
use libcontainer::signal::Signal;

use crate::cli::KillArgs;
use crate::state;
use crate::Ctx;

/// Parses TERM, SIGTERM, sigterm or 15.
pub fn parse_signal(s: &str) -> Result<Signal> {
    match Signal::try_from(s) {
        Ok(sig) => Ok(sig),
        Err(_) => bail!("invalid signal {s:?}"),
    }
}

pub fn run(ctx: &Ctx, args: &KillArgs) -> Result<i32> {
    let signal = parse_signal(&args.signal)?;
    let mut l = state::load(&ctx.root, &args.container_id)?;
    if l.container.status() == ContainerStatus::Stopped && !args.all {
        bail!("container not running");
    }
    if let Err(e) = l.container.kill(signal, args.all) {
        bail!("{}", crate::container::root_cause(&e));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_spellings() {
        for s in ["TERM", "SIGTERM", "sigterm", "15"] {
            assert_eq!(
                parse_signal(s).map(|s| s.into_raw() as i32).ok(),
                Some(15),
                "{s}"
            );
        }
        assert_eq!(
            parse_signal("KILL").map(|s| s.into_raw() as i32).ok(),
            Some(9)
        );
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
