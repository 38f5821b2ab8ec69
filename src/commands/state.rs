//! `state`: print a container's state as JSON.

use anyhow::Result;

use crate::state::{self, StateOutput};
use crate::Ctx;

pub fn run(ctx: &Ctx, id: &str) -> Result<i32> {
    let loaded = state::load(&ctx.root, id)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&StateOutput::from_loaded(&loaded))?
    );
    Ok(0)
}
