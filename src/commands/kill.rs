//! `kill`: send a signal to a container's init (or, with -a, to all of it).

use anyhow::{bail, Result};
use libcontainer::container::ContainerStatus;
use nix::sys::signal::Signal;

use crate::cli::KillArgs;
use crate::state;
use crate::Ctx;

/// Parses TERM, SIGTERM, sigterm or 15.
pub fn parse_signal(s: &str) -> Result<Signal> {
    let parsed = match s.parse::<i32>() {
        Ok(n) => Signal::try_from(n).ok(),
        Err(_) => {
            let upper = s.to_ascii_uppercase();
            let name = if upper.starts_with("SIG") {
                upper
            } else {
                format!("SIG{upper}")
            };
            name.parse::<Signal>().ok()
        }
    };
    parsed.ok_or_else(|| anyhow::anyhow!("invalid signal {s:?}"))
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
            assert_eq!(parse_signal(s).map(|s| s as i32).ok(), Some(15), "{s}");
        }
        assert_eq!(parse_signal("KILL").map(|s| s as i32).ok(), Some(9));
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
