//! runlet's embedded wasmtime handler: WASI preview 1 core modules and
//! WASI preview 2 command components (`wasi:cli/run`), told apart by their
//! header.
//!
//! Threads: wasmtime-wasi's synchronous bindings lazily start a
//! multi-threaded tokio runtime (a worker per CPU) that would count against
//! `pids.max` and break namespace operations. This handler uses the async
//! bindings on a current-thread runtime instead, with blocking filesystem
//! calls performed on that thread, so a guest runs on the container's init
//! thread alone.
//!
//! Loading: `load` compiles a module once and stores the native code in
//! runlet's cache; later loads map the cached file with `deserialize_file`,
//! so every container running the same module shares its code pages. Only
//! files this handler wrote into the root-owned cache are ever deserialized;
//! a precompiled file from an image is never loaded. The file is mapped
//! through a read-only mount of the cache (`runlet_handler::rofs`), so a
//! container cannot reopen the mapping for writing.

use std::hash::{Hash, Hasher};

use runlet_handler::cache::{Cache, Key, Mapping};
use runlet_handler::{HandlerError, Invocation, Kind, Loaded, Source};
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Config, Engine, Linker, Module, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub const NAME: &str = "wasmtime";
/// The wasmtime release this handler is pinned to (Cargo.toml; a test
/// keeps the two in step).
pub const WASMTIME_VERSION: &str = "48.0.8";
/// Exit status for a guest that trapped, as the wasmtime CLI uses (128 + SIGABRT).
pub const TRAP_EXIT: i32 = 134;

/// A module ready to instantiate.
#[derive(Clone)]
enum Compiled {
    Core(Module),
    Component(Component),
}

#[derive(Clone)]
pub struct Wasmtime {
    engine: Engine,
}

impl Wasmtime {
    pub fn new() -> Result<Self, HandlerError> {
        let config = Config::new();
        let engine =
            Engine::new(&config).map_err(|e| HandlerError::Other(format!("wasmtime: {e}")))?;
        Ok(Wasmtime { engine })
    }

    /// Hex digest of the engine's compatibility hash: version, target and
    /// settings that decide whether compiled code can be reused.
    fn compat(&self) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{:016x}", h.finish())
    }

    fn deserialize(&self, kind: Kind, entry: &Mapping) -> wasmtime::Result<Compiled> {
        // SAFETY: `entry` is an entry of runlet's root-owned cache, written
        // by `precompile_*` of an engine with the same compatibility hash
        // and verified against its checksum by `Cache::lookup`/`store`.
        unsafe {
            Ok(match (kind, entry) {
                (Kind::CoreModule, Mapping::ReadOnly { path, .. }) => {
                    Compiled::Core(Module::deserialize_file(&self.engine, path)?)
                }
                (Kind::CoreModule, Mapping::InMemory(b)) => {
                    Compiled::Core(Module::deserialize(&self.engine, b)?)
                }
                (Kind::Component, Mapping::ReadOnly { path, .. }) => {
                    Compiled::Component(Component::deserialize_file(&self.engine, path)?)
                }
                (Kind::Component, Mapping::InMemory(b)) => {
                    Compiled::Component(Component::deserialize(&self.engine, b)?)
                }
            })
        }
    }

    fn compile(&self, kind: Kind, wasm: &[u8]) -> wasmtime::Result<Vec<u8>> {
        match kind {
            Kind::CoreModule => self.engine.precompile_module(wasm),
            Kind::Component => self.engine.precompile_component(wasm),
        }
    }
}

/// Turns `.wat` text into binary Wasm; binary input passes through.
fn to_binary(bytes: Vec<u8>) -> Result<Vec<u8>, HandlerError> {
    if bytes.starts_with(&runlet_handler::WASM_MAGIC) {
        return Ok(bytes);
    }
    wat::parse_bytes(&bytes)
        .map(|b| b.into_owned())
        .map_err(|e| HandlerError::InvalidModule(format!("not Wasm, and not valid WAT text: {e}")))
}

struct CoreState {
    wasi: WasiP1Ctx,
    limits: StoreLimits,
}

struct ComponentState {
    ctx: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

fn wasi_builder(inv: &Invocation) -> Result<WasiCtxBuilder, HandlerError> {
    let mut b = WasiCtxBuilder::new();
    // Before preopens: they capture this setting.
    b.allow_blocking_current_thread(true);
    b.inherit_stdio();
    b.args(&inv.args);
    let env: Vec<(String, String)> = inv
        .env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .collect();
    b.envs(&env);
    let cwd = inv.cwd.to_string_lossy().into_owned();
    b.initial_cwd(&cwd);
    let perms = if inv.readonly_root {
        FsPerms::ReadOnly
    } else {
        FsPerms::ReadWrite
    };
    b.preopened_dir("/", "/", perms)
        .map_err(|e| HandlerError::Other(format!("preopen /: {e}")))?;
    if cwd != "/" {
        // WASI preview 1 has no working directory: guests built with
        // wasi-libc resolve relative paths through a "." preopen.
        b.preopened_dir(&cwd, ".", perms)
            .map_err(|e| HandlerError::Other(format!("preopen {cwd}: {e}")))?;
    }
    Ok(b)
}

fn limits(inv: &Invocation) -> StoreLimits {
    let mut b = StoreLimitsBuilder::new().trap_on_grow_failure(false);
    if let Some(limit) = inv.memory_limit {
        b = b.memory_size(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    b.build()
}

/// The exit status of a finished guest call.
fn status_of(result: wasmtime::Result<()>) -> Result<i32, HandlerError> {
    match result {
        Ok(()) => Ok(0),
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => Ok(exit.0),
            None => Err(HandlerError::Trap(format!("{e:?}"))),
        },
    }
}

impl Wasmtime {
    async fn run_core(&self, module: &Module, inv: &Invocation) -> Result<i32, HandlerError> {
        let mut linker: Linker<CoreState> = Linker::new(&self.engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s| &mut s.wasi)
            .map_err(|e| HandlerError::Other(e.to_string()))?;
        let state = CoreState {
            wasi: wasi_builder(inv)?.build_p1(),
            limits: limits(inv),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let instance = linker
            .instantiate_async(&mut store, module)
            .await
            .map_err(|e| HandlerError::InvalidModule(format!("instantiate: {e:#}")))?;
        let start = instance
            .get_typed_func::<(), ()>(&mut store, "_start")
            .map_err(|e| {
                HandlerError::InvalidModule(format!("no WASI command entry point _start: {e}"))
            })?;
        status_of(start.call_async(&mut store, ()).await)
    }

    async fn run_component(
        &self,
        component: &Component,
        inv: &Invocation,
    ) -> Result<i32, HandlerError> {
        let mut linker = wasmtime::component::Linker::<ComponentState>::new(&self.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| HandlerError::Other(e.to_string()))?;
        let state = ComponentState {
            ctx: wasi_builder(inv)?.build(),
            table: ResourceTable::new(),
            limits: limits(inv),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let command =
            wasmtime_wasi::p2::bindings::Command::instantiate_async(&mut store, component, &linker)
                .await
                .map_err(|e| {
                    HandlerError::InvalidModule(format!(
                        "not a wasi:cli/run command component: {e:#}"
                    ))
                })?;
        match command.wasi_cli_run().call_run(&mut store).await {
            Ok(Ok(())) => Ok(0),
            Ok(Err(())) => Ok(1),
            Err(e) => status_of(Err(e)),
        }
    }
}

impl runlet_handler::Handler for Wasmtime {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> String {
        format!("wasmtime {WASMTIME_VERSION}")
    }

    fn available(&self) -> Result<(), HandlerError> {
        Ok(())
    }

    fn load(&self, source: Source, cache: Option<&Cache>) -> Result<Loaded, HandlerError> {
        let Source::Bytes(bytes) = source;
        let wasm = to_binary(bytes)?;
        let kind = runlet_handler::kind_of(&wasm).ok_or_else(|| {
            HandlerError::InvalidModule(
                "unknown Wasm version: neither a core module nor a component".into(),
            )
        })?;
        let Some(cache) = cache else {
            let compiled = match kind {
                Kind::CoreModule => Module::new(&self.engine, &wasm).map(Compiled::Core),
                Kind::Component => Component::new(&self.engine, &wasm).map(Compiled::Component),
            }
            .map_err(|e| HandlerError::InvalidModule(format!("{e:#}")))?;
            return Ok(Loaded::new(compiled, false));
        };
        let key = Key::new(NAME, &self.compat(), &wasm);
        if let Some(entry) = cache.lookup(&key) {
            match self.deserialize(kind, &entry) {
                Ok(c) => return Ok(Loaded::new(c, true)),
                // Damaged in a way the checksum could not see: rebuild.
                Err(_) => cache.remove(&key),
            }
        }
        let code = self
            .compile(kind, &wasm)
            .map_err(|e| HandlerError::InvalidModule(format!("{e:#}")))?;
        let entry = cache.store(&key, &code).map_err(|e| {
            HandlerError::Other(format!("wasm cache {}: {e}", cache.dir().display()))
        })?;
        let compiled = self
            .deserialize(kind, &entry)
            .map_err(|e| HandlerError::Other(format!("loading compiled code: {e:#}")))?;
        Ok(Loaded::new(compiled, false))
    }

    fn run(&self, module: &Loaded, inv: &Invocation) -> Result<i32, HandlerError> {
        let compiled = module
            .get::<Compiled>()
            .ok_or_else(|| HandlerError::Other("module was loaded by another engine".into()))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| HandlerError::Other(format!("tokio runtime: {e}")))?;
        rt.block_on(async {
            match compiled {
                Compiled::Core(m) => self.run_core(m, inv).await,
                Compiled::Component(c) => self.run_component(c, inv).await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_constant_matches_the_pin() {
        let manifest = include_str!("../Cargo.toml");
        assert!(
            manifest.contains(&format!("wasmtime = {{ version = \"={WASMTIME_VERSION}\"")),
            "WASMTIME_VERSION differs from the wasmtime pin in Cargo.toml"
        );
    }

    #[test]
    fn wat_text_becomes_binary() {
        let b = to_binary(b"(module)".to_vec()).expect("wat");
        assert_eq!(runlet_handler::kind_of(&b), Some(Kind::CoreModule));
        assert!(to_binary(b"not wasm".to_vec()).is_err());
    }
}
