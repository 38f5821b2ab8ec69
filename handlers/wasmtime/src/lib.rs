//! runlet's embedded wasmtime handler: WASI preview 1 core modules, WASI
//! preview 2 command components (`wasi:cli/run`) and `wasi:http` proxy
//! components (`wasi:http/incoming-handler`), told apart by their header
//! and, for components, by their exports when they are loaded (at
//! `create`). A component that is neither fails there, naming what it
//! exports; a WASI 0.3 component is refused (wasmtime 48's p3 support is
//! experimental and not built).
//!
//! Sockets: components get `wasi:sockets` (TCP, UDP, name lookup) in the
//! container's own network namespace, which is their isolation as it is a
//! native process's.
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

use std::sync::Arc;

use http_body_util::BodyExt;
use runlet_handler::cache::{Cache, Key, Mapping};
use runlet_handler::{
    BoxError, HandlerError, HttpService, Invocation, Kind, Loaded, ResponseFuture, Source, World,
};
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Config, Engine, Linker, Module, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

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

/// Concurrent requests one wasi:http container can hold in its instance
/// pool; the server makes more wait for a free slot.
pub const HTTP_POOL_INSTANCES: u32 = 128;

/// The engine that serves a wasi:http proxy: wasmtime's pooling allocator.
/// A fresh instance per request would otherwise mmap and munmap its linear
/// memories, tables and fiber stack every time; in a multi-threaded server
/// that churn is mostly kernel time (TLB shootdowns, mmap lock). The pool
/// reserves address space once and reuses its slots. Same compilation
/// settings as the default engine, so the cached code loads in both.
fn pooling_engine() -> wasmtime::Result<Engine> {
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_component_instances(HTTP_POOL_INSTANCES)
        // A Rust wasip2 component has a few core instances, memories and
        // tables (the program, the WASI adapter, shims).
        .total_core_instances(HTTP_POOL_INSTANCES * 8)
        .total_memories(HTTP_POOL_INSTANCES * 2)
        .total_tables(HTTP_POOL_INSTANCES * 4)
        .total_stacks(HTTP_POOL_INSTANCES);
    let mut config = Config::new();
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
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

    /// The same cached code, loaded into a pooling engine for serving; None
    /// (serve from the default engine) if that engine cannot be made here.
    fn for_serving(&self, kind: Kind, entry: &Mapping) -> Option<Compiled> {
        let pooled = Wasmtime {
            engine: pooling_engine().ok()?,
        };
        pooled.deserialize(kind, entry).ok()
    }

    fn compile(&self, kind: Kind, wasm: &[u8]) -> wasmtime::Result<Vec<u8>> {
        match kind {
            Kind::CoreModule => self.engine.precompile_module(wasm),
            Kind::Component => self.engine.precompile_component(wasm),
        }
    }
}

/// Export and import names that mark a component's world.
const RUN_EXPORT: &str = "wasi:cli/run@0.2";
const HTTP_EXPORT: &str = "wasi:http/incoming-handler@0.2";

/// The message for a WASI 0.3 component.
fn p3_unsupported() -> HandlerError {
    HandlerError::InvalidModule(format!(
        "WASI 0.3 component: not supported by wasmtime {WASMTIME_VERSION} (runlet runs WASI 0.2 components; build for wasm32-wasip2 / WASI 0.2)"
    ))
}

fn is_wasi_03(name: &str) -> bool {
    name.starts_with("wasi:") && name.contains("@0.3")
}

/// The world of a component, from its export (and import) names.
fn component_world<'a>(
    exports: impl Iterator<Item = &'a str>,
    imports: impl Iterator<Item = &'a str>,
) -> Result<World, HandlerError> {
    let exports: Vec<&str> = exports.collect();
    if exports.iter().any(|e| e.starts_with(HTTP_EXPORT)) {
        return Ok(World::HttpProxy);
    }
    if exports.iter().any(|e| e.starts_with(RUN_EXPORT)) {
        return Ok(World::Command);
    }
    if exports.iter().copied().chain(imports).any(is_wasi_03) {
        return Err(p3_unsupported());
    }
    let list = if exports.is_empty() {
        "nothing".to_string()
    } else {
        exports.join(", ")
    };
    Err(HandlerError::InvalidModule(format!(
        "component exports neither wasi:cli/run (a command) nor wasi:http/incoming-handler (an HTTP proxy); it exports {list}"
    )))
}

/// The top-level import and export names of a component binary, read
/// without compiling it.
fn component_names(wasm: &[u8]) -> Vec<String> {
    use wasmparser::{Parser, Payload};
    let mut names = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload {
            Ok(Payload::ComponentImportSection(reader)) => names.extend(
                reader
                    .into_iter()
                    .flatten()
                    .map(|i| i.name.name.to_string()),
            ),
            Ok(Payload::ComponentExportSection(reader)) => names.extend(
                reader
                    .into_iter()
                    .flatten()
                    .map(|e| e.name.name.to_string()),
            ),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    names
}

/// A compile error, or the clearer reason when the component is WASI 0.3
/// (whose async types wasmtime 48 does not compile without its
/// experimental component-model-async support).
fn compile_error(kind: Kind, wasm: &[u8], e: wasmtime::Error) -> HandlerError {
    if kind == Kind::Component && component_names(wasm).iter().any(|n| is_wasi_03(n)) {
        return p3_unsupported();
    }
    HandlerError::InvalidModule(format!("{e:#}"))
}

/// Turns `.wat` text into binary Wasm; binary input passes through. Names
/// what a file is when it is plainly not Wasm.
fn to_binary(bytes: Vec<u8>) -> Result<Vec<u8>, HandlerError> {
    if bytes.starts_with(&runlet_handler::WASM_MAGIC) {
        return Ok(bytes);
    }
    if bytes.starts_with(b"\x7fELF") {
        return Err(HandlerError::InvalidModule(
            "an ELF executable, not Wasm: run it as a native container (drop the Wasm annotation)"
                .into(),
        ));
    }
    if bytes.starts_with(b"#!") {
        return Err(HandlerError::InvalidModule(
            "a script (#!), not Wasm: run it as a native container (drop the Wasm annotation)"
                .into(),
        ));
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

/// The store of one HTTP request.
struct HttpState {
    ctx: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for HttpState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HttpState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

fn wasi_builder(inv: &Invocation) -> Result<WasiCtxBuilder, HandlerError> {
    let mut b = WasiCtxBuilder::new();
    // Before preopens: they capture this setting.
    b.allow_blocking_current_thread(true);
    // Sockets (p2 components): any address, in the container's network
    // namespace, as a native process has.
    b.inherit_network();
    b.allow_tcp(true);
    b.allow_udp(true);
    b.allow_ip_name_lookup(true);
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
    /// What a loaded module is for: core modules are commands; a component
    /// by its exports.
    fn world(&self, compiled: &Compiled) -> Result<World, HandlerError> {
        match compiled {
            Compiled::Core(_) => Ok(World::Command),
            Compiled::Component(c) => {
                let ty = c.component_type();
                let exports: Vec<&str> = ty.exports(&self.engine).map(|(n, _)| n).collect();
                let imports: Vec<&str> = ty.imports(&self.engine).map(|(n, _)| n).collect();
                component_world(exports.into_iter(), imports.into_iter())
            }
        }
    }

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
        // A proxy is served from the pooling engine: the cached code is
        // loaded into it again (a second mmap of the same file).
        let loaded = |compiled: Compiled, hit: bool, entry: Option<&Mapping>| {
            let world = self.world(&compiled)?;
            let compiled = match (world, entry) {
                (World::HttpProxy, Some(entry)) => {
                    self.for_serving(kind, entry).unwrap_or(compiled)
                }
                _ => compiled,
            };
            Ok(Loaded::new(compiled, hit, world))
        };
        let Some(cache) = cache else {
            let compiled = match kind {
                Kind::CoreModule => Module::new(&self.engine, &wasm).map(Compiled::Core),
                Kind::Component => Component::new(&self.engine, &wasm).map(Compiled::Component),
            }
            .map_err(|e| compile_error(kind, &wasm, e))?;
            return loaded(compiled, false, None);
        };
        let key = Key::new(NAME, &self.compat(), &wasm);
        if let Some(entry) = cache.lookup(&key) {
            match self.deserialize(kind, &entry) {
                Ok(c) => return loaded(c, true, Some(&entry)),
                // Damaged in a way the checksum could not see: rebuild.
                Err(_) => cache.remove(&key),
            }
        }
        let code = self
            .compile(kind, &wasm)
            .map_err(|e| compile_error(kind, &wasm, e))?;
        let entry = cache.store(&key, &code).map_err(|e| {
            HandlerError::Other(format!("wasm cache {}: {e}", cache.dir().display()))
        })?;
        let compiled = self
            .deserialize(kind, &entry)
            .map_err(|e| HandlerError::Other(format!("loading compiled code: {e:#}")))?;
        loaded(compiled, false, Some(&entry))
    }

    fn run(&self, module: &Loaded, inv: &Invocation) -> Result<i32, HandlerError> {
        let compiled = module
            .get::<Compiled>()
            .ok_or_else(|| HandlerError::Other("module was loaded by another engine".into()))?;
        // I/O for wasi:sockets, time for clocks; on this thread only.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| HandlerError::Other(format!("tokio runtime: {e}")))?;
        rt.block_on(async {
            match compiled {
                Compiled::Core(m) => self.run_core(m, inv).await,
                Compiled::Component(c) => self.run_component(c, inv).await,
            }
        })
    }

    fn http_service(
        &self,
        module: &Loaded,
        inv: &Invocation,
    ) -> Result<Arc<dyn HttpService>, HandlerError> {
        let Some(Compiled::Component(component)) = module.get::<Compiled>() else {
            return Err(HandlerError::InvalidModule(
                "not a wasi:http proxy component".into(),
            ));
        };
        let mut linker = wasmtime::component::Linker::<HttpState>::new(component.engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker))
            .map_err(|e| HandlerError::Other(e.to_string()))?;
        let pre = linker
            .instantiate_pre(component)
            .and_then(ProxyPre::new)
            .map_err(|e| HandlerError::InvalidModule(format!("wasi:http proxy: {e:#}")))?;
        Ok(Arc::new(HttpProxy {
            pre,
            invocation: inv.clone(),
            slots: Arc::new(tokio::sync::Semaphore::new(HTTP_POOL_INSTANCES as usize)),
        }))
    }
}

/// A wasi:http proxy component, pre-instantiated once; every request gets
/// a fresh store and instance (as `wasmtime serve` does).
struct HttpProxy {
    pre: ProxyPre<HttpState>,
    invocation: Invocation,
    /// One permit per live instance: requests beyond the pool wait here.
    slots: Arc<tokio::sync::Semaphore>,
}

impl HttpProxy {
    fn store(&self) -> Result<Store<HttpState>, HandlerError> {
        let state = HttpState {
            ctx: wasi_builder(&self.invocation)?.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: limits(&self.invocation),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        Ok(store)
    }
}

impl HttpService for HttpProxy {
    fn handle(&self, request: hyper::Request<hyper::body::Incoming>) -> ResponseFuture {
        let other = |e: wasmtime::Error| HandlerError::Other(format!("{e:#}"));
        let prepared = self.store().and_then(|mut store| {
            let req = store
                .data_mut()
                .http()
                .new_incoming_request(Scheme::Http, request)
                .map_err(other)?;
            let (tx, rx) = tokio::sync::oneshot::channel();
            let out = store
                .data_mut()
                .http()
                .new_response_outparam(tx)
                .map_err(other)?;
            Ok((store, req, out, rx))
        });
        let pre = self.pre.clone();
        let slots = self.slots.clone();
        Box::pin(async move {
            let (mut store, req, out, rx) = prepared?;
            let slot = slots
                .acquire_owned()
                .await
                .map_err(|e| HandlerError::Other(e.to_string()))?;
            // The guest may go on writing the body after it has set the
            // response, so it runs in a task of its own, which holds the
            // instance's slot until it ends.
            let task = tokio::task::spawn(async move {
                let _slot = slot;
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            });
            match rx.await {
                Ok(Ok(response)) => Ok(response.map(|body| {
                    body.map_err(|e| -> BoxError { e.to_string().into() })
                        .boxed_unsync()
                })),
                Ok(Err(code)) => Err(HandlerError::Other(format!(
                    "the guest answered with an error: {code:?}"
                ))),
                Err(_) => {
                    let why = match task.await {
                        Ok(Ok(())) => "it returned without setting a response".to_string(),
                        Ok(Err(e)) => match e.downcast_ref::<I32Exit>() {
                            Some(exit) => format!("it exited with status {}", exit.0),
                            None => format!("it trapped: {e:#}"),
                        },
                        Err(e) => format!("its task failed: {e}"),
                    };
                    Err(HandlerError::Trap(format!("no response: {why}")))
                }
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
    fn worlds_from_export_names() {
        let w = |e: &[&str], i: &[&str]| component_world(e.iter().copied(), i.iter().copied());
        assert_eq!(
            w(&["wasi:http/incoming-handler@0.2.6"], &[]).ok(),
            Some(World::HttpProxy)
        );
        assert_eq!(w(&["wasi:cli/run@0.2.0"], &[]).ok(), Some(World::Command));
        let err = w(&["my:app/api"], &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("neither wasi:cli/run") && err.contains("my:app/api"),
            "{err}"
        );
        let err = w(&[], &["wasi:cli/environment@0.3.0-rc-2025-09-16"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("WASI 0.3 component"), "{err}");
    }

    #[test]
    fn native_binaries_are_named() {
        let e = to_binary(b"\x7fELF\x02\x01\x01\0rest".to_vec())
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("an ELF executable, not Wasm")));
        let e = to_binary(b"#!/bin/sh\necho".to_vec())
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("a script")));
    }

    #[test]
    fn wat_text_becomes_binary() {
        let b = to_binary(b"(module)".to_vec()).expect("wat");
        assert_eq!(runlet_handler::kind_of(&b), Some(Kind::CoreModule));
        assert!(to_binary(b"not wasm".to_vec()).is_err());
    }
}
