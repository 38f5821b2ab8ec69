//! The one place that decides, per container, what runs its process inside
//! the container's init: libcontainer's native executor (execve of
//! `process.args[0]`) or a Wasm handler.
//!
//! The rules, in order:
//! 1. A sandbox (pause) container is always native: containerd marks it
//!    `io.kubernetes.cri.container-type=sandbox`, CRI-O
//!    `io.kubernetes.cri-o.ContainerType=sandbox`, and a pod-wide Wasm
//!    annotation reaches it too.
//! 2. Invoked as `runlet-wasm` (argv[0]), every other container is Wasm,
//!    as with crun-wasm.
//! 3. `run.oci.handler`: `wasm` → Wasm; `wasm-smart` → Wasm only with a
//!    `.wasm`/`.wat` entrypoint (pod-wide annotations also reach sidecars,
//!    which must stay native); an engine name (`wasmtime`, `wasmedge`) →
//!    Wasm on that engine. Any other value is an error. When present,
//!    `module.wasm.image/variant` is not consulted.
//! 4. `module.wasm.image/variant`: `compat` → Wasm; `compat-smart` → Wasm
//!    only with a `.wasm`/`.wat` entrypoint.
//! 5. No annotation: a `.wasm`/`.wat` entrypoint, or a file that starts
//!    with the Wasm magic bytes (found inside the rootfs without leaving
//!    it), is Wasm. CRI-O strips annotations unless allowed, so this keeps
//!    Wasm images working without any configuration.
//! 6. Otherwise native.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Result};
use libcontainer::oci_spec::runtime::Spec;

pub const HANDLER_ANNOTATION: &str = "run.oci.handler";
pub const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";
const SANDBOX_ANNOTATIONS: [&str; 2] = [
    "io.kubernetes.cri.container-type",
    "io.kubernetes.cri-o.ContainerType",
];
/// The program name that makes every container Wasm.
pub const WASM_PROGRAM_NAME: &str = "runlet-wasm";

/// What runs a container's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    /// execve of `process.args[0]`, as runc does.
    Native,
    /// A Wasm engine (by name) runs the module `process.args[0]` names.
    Wasm { engine: String },
}

impl Workload {
    /// The name recorded in the container's state.
    pub fn name(&self) -> &str {
        match self {
            Workload::Native => "native",
            Workload::Wasm { engine } => engine,
        }
    }

    fn wasm(engine: &str) -> Workload {
        Workload::Wasm {
            engine: engine.to_string(),
        }
    }
}

/// What the decision looks at.
pub struct Inputs<'a> {
    pub annotations: &'a HashMap<String, String>,
    pub args0: &'a str,
    /// Invoked as `runlet-wasm`.
    pub forced: bool,
    /// Whether the entrypoint file starts with the Wasm magic bytes;
    /// called only when the rules need it.
    pub file_is_wasm: &'a dyn Fn() -> bool,
}

fn has_wasm_suffix(args0: &str) -> bool {
    let lower = args0.to_ascii_lowercase();
    lower.ends_with(".wasm") || lower.ends_with(".wat")
}

/// The dispatch rules (see the module documentation).
pub fn decide_from(i: &Inputs<'_>) -> Result<Workload> {
    let default = crate::wasm::engines::DEFAULT_ENGINE;
    let sandbox = SANDBOX_ANNOTATIONS
        .iter()
        .any(|k| i.annotations.get(*k).is_some_and(|v| v == "sandbox"));
    if sandbox {
        return Ok(Workload::Native);
    }
    if i.forced {
        return Ok(Workload::wasm(default));
    }
    let suffix = has_wasm_suffix(i.args0);
    if let Some(handler) = i.annotations.get(HANDLER_ANNOTATION) {
        return match handler.as_str() {
            "wasm" => Ok(Workload::wasm(default)),
            "wasm-smart" if suffix => Ok(Workload::wasm(default)),
            "wasm-smart" => Ok(Workload::Native),
            name if crate::wasm::engines::is_known(name) => Ok(Workload::wasm(name)),
            other => bail!(
                "annotation {HANDLER_ANNOTATION}={other:?}: unknown handler (use wasm, wasm-smart or one of: {})",
                crate::wasm::engines::KNOWN.join(", ")
            ),
        };
    }
    match i.annotations.get(VARIANT_ANNOTATION).map(String::as_str) {
        Some("compat") => return Ok(Workload::wasm(default)),
        Some("compat-smart") if suffix => return Ok(Workload::wasm(default)),
        Some("compat-smart") => return Ok(Workload::Native),
        _ => {}
    }
    if suffix || (i.file_is_wasm)() {
        return Ok(Workload::wasm(default));
    }
    Ok(Workload::Native)
}

/// Whether this process was invoked under the Wasm program name.
pub fn invoked_as_wasm() -> bool {
    std::env::args_os()
        .next()
        .and_then(|a| Path::new(&a).file_name().map(|n| n == WASM_PROGRAM_NAME))
        .unwrap_or(false)
}

/// Decides for a container about to be created from `spec`, whose root
/// filesystem is `rootfs` on the host.
pub fn decide(spec: &Spec, rootfs: &Path) -> Result<Workload> {
    let empty = HashMap::new();
    let annotations = spec.annotations().as_ref().unwrap_or(&empty);
    let process = spec.process().as_ref();
    let args0 = process
        .and_then(|p| p.args().as_ref())
        .and_then(|a| a.first())
        .map(String::as_str)
        .unwrap_or_default();
    let env = process.and_then(|p| p.env().clone()).unwrap_or_default();
    let cwd = process
        .map(|p| p.cwd().clone())
        .unwrap_or_else(|| "/".into());
    let file_is_wasm = || {
        crate::wasm::entrypoint::find_entrypoint(rootfs, args0, &env, &cwd)
            .is_some_and(|(_, mut f)| crate::wasm::entrypoint::has_wasm_magic(&mut f))
    };
    decide_from(&Inputs {
        annotations,
        args0,
        forced: invoked_as_wasm(),
        file_is_wasm: &file_is_wasm,
    })
}

/// Decides for a process `exec`ed into a running container, from the file
/// alone: a Wasm module runs on the handler, anything else natively, even
/// in a container whose own process is Wasm.
pub fn decide_exec(root: &Path, args: &[String], env: &[String], cwd: &Path) -> Workload {
    let args0 = args.first().map(String::as_str).unwrap_or_default();
    let found = crate::wasm::entrypoint::find_entrypoint(root, args0, env, cwd);
    let wasm = match found {
        Some((_, mut f)) => {
            crate::wasm::entrypoint::has_wasm_magic(&mut f) || has_wasm_suffix(args0)
        }
        None => has_wasm_suffix(args0),
    };
    if wasm {
        Workload::wasm(crate::wasm::engines::DEFAULT_ENGINE)
    } else {
        Workload::Native
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        annotations: &'static [(&'static str, &'static str)],
        args0: &'static str,
        forced: bool,
        magic: bool,
        want: Result<&'static str, &'static str>,
    }

    const fn case(
        annotations: &'static [(&'static str, &'static str)],
        args0: &'static str,
        forced: bool,
        magic: bool,
        want: Result<&'static str, &'static str>,
    ) -> Case {
        Case {
            annotations,
            args0,
            forced,
            magic,
            want,
        }
    }

    const H: &str = HANDLER_ANNOTATION;
    const V: &str = VARIANT_ANNOTATION;
    const CRI: &str = "io.kubernetes.cri.container-type";
    const CRIO: &str = "io.kubernetes.cri-o.ContainerType";

    /// The dispatch table: annotations, entrypoint, runlet-wasm, magic
    /// bytes → expected workload (or an error text).
    const TABLE: &[Case] = &[
        // No annotation: suffix or magic bytes.
        case(&[], "/bin/sh", false, false, Ok("native")),
        case(&[], "/app/hello.wasm", false, false, Ok("wasmtime")),
        case(&[], "/app/hello.wat", false, false, Ok("wasmtime")),
        case(&[], "/app/HELLO.WASM", false, false, Ok("wasmtime")),
        case(&[], "/app/hello", false, true, Ok("wasmtime")),
        // run.oci.handler
        case(&[(H, "wasm")], "/bin/sh", false, false, Ok("wasmtime")),
        case(
            &[(H, "wasm-smart")],
            "/app/x.wasm",
            false,
            false,
            Ok("wasmtime"),
        ),
        case(
            &[(H, "wasm-smart")],
            "/usr/bin/envoy",
            false,
            true,
            Ok("native"),
        ),
        case(&[(H, "wasmtime")], "/app/x", false, false, Ok("wasmtime")),
        case(
            &[(H, "wasmedge")],
            "/app/x.wasm",
            false,
            false,
            Ok("wasmedge"),
        ),
        case(
            &[(H, "bogus")],
            "/app/x.wasm",
            false,
            false,
            Err("unknown handler"),
        ),
        // run.oci.handler wins over the variant annotation.
        case(
            &[(H, "wasm-smart"), (V, "compat")],
            "/bin/sh",
            false,
            false,
            Ok("native"),
        ),
        // module.wasm.image/variant
        case(&[(V, "compat")], "/bin/sh", false, false, Ok("wasmtime")),
        case(
            &[(V, "compat-smart")],
            "/app/x.wat",
            false,
            false,
            Ok("wasmtime"),
        ),
        case(
            &[(V, "compat-smart")],
            "/bin/istio-proxy",
            false,
            true,
            Ok("native"),
        ),
        case(
            &[(V, "something-else")],
            "/bin/sh",
            false,
            false,
            Ok("native"),
        ),
        // Sandbox containers are never Wasm, whatever else says so.
        case(
            &[(CRI, "sandbox"), (H, "wasm")],
            "/pause",
            false,
            false,
            Ok("native"),
        ),
        case(
            &[(CRIO, "sandbox"), (V, "compat")],
            "/pause",
            false,
            true,
            Ok("native"),
        ),
        case(&[(CRI, "sandbox")], "/pause.wasm", true, true, Ok("native")),
        case(
            &[(CRI, "container"), (H, "wasm")],
            "/app",
            false,
            false,
            Ok("wasmtime"),
        ),
        // runlet-wasm forces Wasm for every non-sandbox container.
        case(&[], "/bin/sh", true, false, Ok("wasmtime")),
        case(&[(H, "wasm-smart")], "/bin/sh", true, false, Ok("wasmtime")),
    ];

    #[test]
    fn dispatch_table() {
        for (n, c) in TABLE.iter().enumerate() {
            let annotations: HashMap<String, String> = c
                .annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let magic = c.magic;
            let got = decide_from(&Inputs {
                annotations: &annotations,
                args0: c.args0,
                forced: c.forced,
                file_is_wasm: &move || magic,
            });
            match (&c.want, got) {
                (Ok(want), Ok(w)) => {
                    assert_eq!(w.name(), *want, "case {n}: {:?} {}", c.annotations, c.args0)
                }
                (Err(text), Err(e)) => assert!(e.to_string().contains(text), "case {n}: {e}"),
                (want, got) => panic!("case {n}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn magic_is_only_read_when_needed() {
        let annotations: HashMap<String, String> = [(H.to_string(), "wasm".to_string())].into();
        let got = decide_from(&Inputs {
            annotations: &annotations,
            args0: "/x",
            forced: false,
            file_is_wasm: &|| panic!("file read although an annotation decided"),
        });
        assert_eq!(got.ok(), Some(Workload::wasm("wasmtime")));
    }
}
