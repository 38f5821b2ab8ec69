//! The WasmEdge handler. `libwasmedge.so.0` is loaded with dlopen when a
//! container needs it, so runlet builds and runs without WasmEdge and only
//! containers that ask for it fail — with a message saying why — when the
//! library is absent. No WasmEdge crate is used: they need the library (and
//! libclang) at build time or download one.
//!
//! The library is found by the dynamic loader's usual search, or at the
//! path in RUNLET_WASMEDGE_LIB. Calls, in order: ConfigureCreate,
//! ConfigureAddHostRegistration(WASI), VMCreate,
//! VMGetImportModuleContext(WASI), ModuleInstanceInitWASI(args, envs,
//! preopens), VMRunWasmFromFile(path, "_start"),
//! ModuleInstanceWASIGetExitCode. `WasmEdge_Result` and `WasmEdge_String`
//! are passed by value, as the C API declares them.

use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::Arc;

use runlet_handler::cache::Cache;
use runlet_handler::{HandlerError, Invocation, Loaded, Source, World};

pub const NAME: &str = "wasmedge";
pub const LIBRARY: &str = "libwasmedge.so.0";
const HOST_REGISTRATION_WASI: u32 = 0;

#[repr(C)]
#[derive(Clone, Copy)]
struct WasmEdgeResult {
    code: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct WasmEdgeString {
    length: u32,
    buf: *const c_char,
}

type Ctx = *mut c_void;

/// Function pointers resolved from the library.
struct Api {
    _lib: libloading::Library,
    version_get: unsafe extern "C" fn() -> *const c_char,
    configure_create: unsafe extern "C" fn() -> Ctx,
    configure_add_host_registration: unsafe extern "C" fn(Ctx, u32),
    configure_delete: unsafe extern "C" fn(Ctx),
    vm_create: unsafe extern "C" fn(Ctx, Ctx) -> Ctx,
    vm_delete: unsafe extern "C" fn(Ctx),
    vm_get_import_module_context: unsafe extern "C" fn(Ctx, u32) -> Ctx,
    module_instance_init_wasi: unsafe extern "C" fn(
        Ctx,
        *const *const c_char,
        u32,
        *const *const c_char,
        u32,
        *const *const c_char,
        u32,
    ),
    module_instance_wasi_get_exit_code: unsafe extern "C" fn(Ctx) -> u32,
    vm_run_wasm_from_file: unsafe extern "C" fn(
        Ctx,
        *const c_char,
        WasmEdgeString,
        *const c_void,
        u32,
        *mut c_void,
        u32,
    ) -> WasmEdgeResult,
    string_create_by_cstring: unsafe extern "C" fn(*const c_char) -> WasmEdgeString,
    string_delete: unsafe extern "C" fn(WasmEdgeString),
    result_ok: unsafe extern "C" fn(WasmEdgeResult) -> bool,
    result_get_message: unsafe extern "C" fn(WasmEdgeResult) -> *const c_char,
}

fn library_path() -> String {
    std::env::var("RUNLET_WASMEDGE_LIB").unwrap_or_else(|_| LIBRARY.to_string())
}

macro_rules! sym {
    ($lib:expr, $name:literal) => {
        // SAFETY: the symbol is declared with the signature of the WasmEdge
        // C API (include/api/wasmedge/wasmedge.h) for this field.
        *unsafe { $lib.get(concat!($name, "\0").as_bytes()) }
            .map_err(|e| HandlerError::Unavailable(format!("{}: {e}", $name)))?
    };
}

impl Api {
    fn load() -> Result<Api, HandlerError> {
        let path = library_path();
        // SAFETY: loading a shared library runs its initialisers; the
        // library is WasmEdge's (or the file RUNLET_WASMEDGE_LIB names).
        let lib = unsafe { libloading::Library::new(&path) }
            .map_err(|e| HandlerError::Unavailable(e.to_string()))?;
        Ok(Api {
            version_get: sym!(lib, "WasmEdge_VersionGet"),
            configure_create: sym!(lib, "WasmEdge_ConfigureCreate"),
            configure_add_host_registration: sym!(lib, "WasmEdge_ConfigureAddHostRegistration"),
            configure_delete: sym!(lib, "WasmEdge_ConfigureDelete"),
            vm_create: sym!(lib, "WasmEdge_VMCreate"),
            vm_delete: sym!(lib, "WasmEdge_VMDelete"),
            vm_get_import_module_context: sym!(lib, "WasmEdge_VMGetImportModuleContext"),
            module_instance_init_wasi: sym!(lib, "WasmEdge_ModuleInstanceInitWASI"),
            module_instance_wasi_get_exit_code: sym!(lib, "WasmEdge_ModuleInstanceWASIGetExitCode"),
            vm_run_wasm_from_file: sym!(lib, "WasmEdge_VMRunWasmFromFile"),
            string_create_by_cstring: sym!(lib, "WasmEdge_StringCreateByCString"),
            string_delete: sym!(lib, "WasmEdge_StringDelete"),
            result_ok: sym!(lib, "WasmEdge_ResultOK"),
            result_get_message: sym!(lib, "WasmEdge_ResultGetMessage"),
            _lib: lib,
        })
    }
}

fn cstrings(items: &[String]) -> Result<Vec<CString>, HandlerError> {
    items
        .iter()
        .map(|s| {
            CString::new(s.as_str()).map_err(|_| HandlerError::Other(format!("{s:?} contains NUL")))
        })
        .collect()
}

#[derive(Clone, Default)]
pub struct WasmEdge;

impl WasmEdge {
    pub fn new() -> Self {
        WasmEdge
    }
}

impl runlet_handler::Handler for WasmEdge {
    fn name(&self) -> &'static str {
        NAME
    }

    fn version(&self) -> String {
        match Api::load() {
            // SAFETY: WasmEdge_VersionGet returns a static NUL-terminated string.
            Ok(api) => format!(
                "wasmedge {}",
                unsafe { CStr::from_ptr((api.version_get)()) }.to_string_lossy()
            ),
            Err(e) => format!("wasmedge (not loaded: {e})"),
        }
    }

    fn available(&self) -> Result<(), HandlerError> {
        Api::load().map(|_| ())
    }

    /// Loads the library here, on the host at `create`: the container's
    /// root filesystem need not contain it, and the init inherits the
    /// mapping. WasmEdge compiles the module itself when it runs the file,
    /// so nothing is cached; the bytes are only checked to be binary Wasm.
    fn load(&self, source: Source, _cache: Option<&Cache>) -> Result<Loaded, HandlerError> {
        let Source::Bytes(bytes) = source;
        if !bytes.starts_with(&runlet_handler::WASM_MAGIC) {
            return Err(HandlerError::InvalidModule(
                "the wasmedge handler runs binary Wasm only".into(),
            ));
        }
        Ok(Loaded::new(Arc::new(Api::load()?), false, World::Command))
    }

    fn run(&self, module: &Loaded, inv: &Invocation) -> Result<i32, HandlerError> {
        let api = module
            .get::<Arc<Api>>()
            .ok_or_else(|| HandlerError::Other("module was loaded by another engine".into()))?;
        let path = CString::new(inv.module_path.to_string_lossy().as_bytes())
            .map_err(|_| HandlerError::Other("module path contains NUL".into()))?;
        let args = cstrings(&inv.args)?;
        let envs = cstrings(&inv.env)?;
        let preopens = cstrings(&[if inv.readonly_root {
            "/:/:readonly"
        } else {
            "/:/"
        }
        .to_string()])?;
        let ptrs = |v: &[CString]| v.iter().map(|c| c.as_ptr()).collect::<Vec<_>>();
        let (argv, envv, prev) = (ptrs(&args), ptrs(&envs), ptrs(&preopens));
        // SAFETY: every pointer passed below points into CStrings and
        // vectors that outlive the calls; contexts are created and deleted
        // in the order the C API requires, and the VM is deleted before the
        // configuration it was created with.
        unsafe {
            let conf = (api.configure_create)();
            (api.configure_add_host_registration)(conf, HOST_REGISTRATION_WASI);
            let vm = (api.vm_create)(conf, std::ptr::null_mut());
            if vm.is_null() {
                (api.configure_delete)(conf);
                return Err(HandlerError::Other("WasmEdge_VMCreate failed".into()));
            }
            let wasi = (api.vm_get_import_module_context)(vm, HOST_REGISTRATION_WASI);
            (api.module_instance_init_wasi)(
                wasi,
                argv.as_ptr(),
                argv.len() as u32,
                envv.as_ptr(),
                envv.len() as u32,
                prev.as_ptr(),
                prev.len() as u32,
            );
            let start = (api.string_create_by_cstring)(c"_start".as_ptr());
            let res = (api.vm_run_wasm_from_file)(
                vm,
                path.as_ptr(),
                start,
                std::ptr::null(),
                0,
                std::ptr::null_mut(),
                0,
            );
            (api.string_delete)(start);
            let outcome = if (api.result_ok)(res) {
                Ok((api.module_instance_wasi_get_exit_code)(wasi) as i32)
            } else {
                let msg = CStr::from_ptr((api.result_get_message)(res))
                    .to_string_lossy()
                    .into_owned();
                // proc_exit terminates the run; its code is the WASI exit code.
                let code = (api.module_instance_wasi_get_exit_code)(wasi) as i32;
                if msg.contains("terminated") {
                    Ok(code)
                } else {
                    Err(HandlerError::Trap(msg))
                }
            };
            (api.vm_delete)(vm);
            (api.configure_delete)(conf);
            outcome
        }
    }
}
