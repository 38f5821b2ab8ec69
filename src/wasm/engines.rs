//! The Wasm engines compiled into runlet, by name. The core sees only the
//! `runlet_handler::Handler` trait; this table is the one place that names
//! the engine crates.

use std::sync::Arc;

use anyhow::{anyhow, Result};
use runlet_handler::Handler;

/// The engine for `wasm`, `wasm-smart`, `compat` and detected modules.
pub const DEFAULT_ENGINE: &str = runlet_wasmtime::NAME;
/// Engine names accepted in `run.oci.handler`.
pub const KNOWN: &[&str] = &[runlet_wasmtime::NAME, runlet_wasmedge::NAME];

pub fn is_known(name: &str) -> bool {
    KNOWN.contains(&name)
}

/// An engine ready to use, or why it cannot run here.
pub fn get(name: &str) -> Result<Arc<dyn Handler>> {
    let handler: Arc<dyn Handler> = match name {
        runlet_wasmtime::NAME => Arc::new(runlet_wasmtime::Wasmtime::new()?),
        runlet_wasmedge::NAME => Arc::new(runlet_wasmedge::WasmEdge::new()),
        other => return Err(anyhow!("unknown Wasm handler {other:?}")),
    };
    handler
        .available()
        .map_err(|e| anyhow!("{name} handler is not available: {e}"))?;
    Ok(handler)
}

/// One line per engine for `--version`: its version, or why it is unusable.
pub fn describe() -> Vec<String> {
    KNOWN
        .iter()
        .map(|name| match get(name) {
            Ok(h) => format!("{name}: {}", h.version()),
            Err(e) => format!("{name}: unavailable ({})", e.root_cause()),
        })
        .collect()
}
