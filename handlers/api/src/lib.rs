//! The small interface between runlet's core and a Wasm engine.
//!
//! Like crun's table of handler functions, an engine is a handful of calls:
//! is it usable here, load a module ahead of `start`, run it. The core never
//! sees an engine's types: a loaded module travels as an opaque [`Loaded`].
//! Engines share the compiled-code cache helpers in [`cache`].
//!
//! A module is one of two [`World`]s, decided when it is loaded (at
//! `create`): a command, run once as the container's process, or a
//! `wasi:http` proxy, for which the engine hands the core an
//! [`HttpService`] that answers each request with a fresh instance. The
//! core owns the listening socket, the connections and the signals
//! (src/wasm/http.rs); the engine owns only what a request needs.

use std::any::Any;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

pub mod cache;
pub mod rofs;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The engine cannot run on this machine (library missing, ...).
    #[error("{0}")]
    Unavailable(String),
    /// The module is not valid Wasm, or not a kind this engine runs.
    #[error("{0}")]
    InvalidModule(String),
    /// The guest trapped; the message says where.
    #[error("wasm trap: {0}")]
    Trap(String),
    #[error("{0}")]
    Other(String),
}

/// What a module is for, from what it exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// A command: a core module's `_start`, a component's `wasi:cli/run`.
    Command,
    /// A component exporting `wasi:http/incoming-handler`: served over HTTP.
    HttpProxy,
}

/// A module compiled (or loaded from the cache) and ready to instantiate.
#[derive(Clone)]
pub struct Loaded {
    inner: Arc<dyn Any + Send + Sync>,
    /// Whether it came from the compiled-code cache.
    pub cache_hit: bool,
    pub world: World,
}

impl Loaded {
    pub fn new<T: Any + Send + Sync>(value: T, cache_hit: bool, world: World) -> Self {
        Loaded {
            inner: Arc::new(value),
            cache_hit,
            world,
        }
    }

    pub fn get<T: Any>(&self) -> Option<&T> {
        self.inner.downcast_ref::<T>()
    }
}

/// Where a module's bytes come from.
pub enum Source {
    /// Wasm (binary or `.wat` text) read by the core, already checked to be
    /// inside the container's root filesystem.
    Bytes(Vec<u8>),
}

/// What a guest gets from the container's process.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// process.args; args[0] names the module as the guest sees it.
    pub args: Vec<String>,
    /// The module file, as a path inside the container.
    pub module_path: PathBuf,
    /// process.env, as KEY=VALUE.
    pub env: Vec<String>,
    /// process.cwd (inside the container).
    pub cwd: PathBuf,
    /// Preopen the container's `/` read-only (root.readonly).
    pub readonly_root: bool,
    /// linux.resources.memory.limit: bounds each linear memory.
    pub memory_limit: Option<u64>,
}

/// The body of a response an [`HttpService`] produces.
pub type HttpBody = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, BoxError>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The future of one response.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<HttpBody>, HandlerError>> + Send>>;

/// Answers HTTP requests for a `wasi:http` proxy module, one fresh instance
/// per request. Called on the core's tokio runtime.
pub trait HttpService: Send + Sync {
    fn handle(&self, request: http::Request<hyper::body::Incoming>) -> ResponseFuture;
}

/// One Wasm engine.
pub trait Handler: Send + Sync {
    /// The name used in `run.oci.handler` and shown by `features`.
    fn name(&self) -> &'static str;

    /// Engine and version, for `--version`.
    fn version(&self) -> String;

    /// Whether the engine can run here.
    fn available(&self) -> Result<(), HandlerError>;

    /// Compiles a module, or loads it from `cache` when an entry for the
    /// same bytes and engine exists. Called at `create`.
    fn load(&self, source: Source, cache: Option<&cache::Cache>) -> Result<Loaded, HandlerError>;

    /// Instantiates and runs a loaded command module in the calling process
    /// (the container's init or exec process) and returns its exit status.
    fn run(&self, module: &Loaded, invocation: &Invocation) -> Result<i32, HandlerError>;

    /// For a [`World::HttpProxy`] module: a service that handles each
    /// request with a new instance. Engines without `wasi:http` keep the
    /// default.
    fn http_service(
        &self,
        _module: &Loaded,
        _invocation: &Invocation,
    ) -> Result<Arc<dyn HttpService>, HandlerError> {
        Err(HandlerError::InvalidModule(format!(
            "the {} handler does not serve wasi:http",
            self.name()
        )))
    }
}

/// The 8-byte header of a core module (version 1).
pub const CORE_MODULE_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
/// The 8-byte header of a component (layer 1, version 0x0d).
pub const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
/// The magic bytes every binary Wasm file starts with.
pub const WASM_MAGIC: [u8; 4] = [0x00, 0x61, 0x73, 0x6d];

/// What kind of Wasm a binary is, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    CoreModule,
    Component,
}

pub fn kind_of(bytes: &[u8]) -> Option<Kind> {
    match bytes.get(..8) {
        Some(h) if h == CORE_MODULE_HEADER => Some(Kind::CoreModule),
        Some(h) if h == COMPONENT_HEADER => Some(Kind::Component),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_header() {
        assert_eq!(kind_of(&CORE_MODULE_HEADER), Some(Kind::CoreModule));
        assert_eq!(kind_of(&COMPONENT_HEADER), Some(Kind::Component));
        assert_eq!(kind_of(b"\x7fELF\x02\x01\x01\x00"), None);
        assert_eq!(kind_of(&WASM_MAGIC), None);
    }

    #[test]
    fn loaded_downcasts() {
        let l = Loaded::new(42u32, true, World::Command);
        assert_eq!(l.get::<u32>(), Some(&42));
        assert!(l.get::<String>().is_none());
        assert!(l.clone().cache_hit);
    }
}
