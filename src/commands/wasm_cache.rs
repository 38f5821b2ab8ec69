//! `wasm-cache`: show or clear the compiled Wasm code cache.

use anyhow::{anyhow, Result};
use runlet_handler::cache::Cache;

use crate::cli::{CacheAction, WasmCacheArgs};
use crate::Ctx;

pub fn run(ctx: &Ctx, args: &WasmCacheArgs) -> Result<i32> {
    let cache = Cache::open(&ctx.wasm_cache)
        .map_err(|e| anyhow!("wasm cache {}: {e}", ctx.wasm_cache.display()))?;
    match args.action {
        CacheAction::List => {
            let entries = cache.list()?;
            let total: u64 = entries.iter().map(|e| e.size).sum();
            for e in &entries {
                println!("{}\t{}\t{}", e.namespace, e.module, e.size);
            }
            eprintln!(
                "{} entries, {} bytes in {}",
                entries.len(),
                total,
                cache.dir().display()
            );
        }
        CacheAction::Clear => {
            let n = cache.clear()?;
            eprintln!("removed {n} entries from {}", cache.dir().display());
        }
    }
    Ok(0)
}
