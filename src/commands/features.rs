//! `features` and `--version`: what this build of runlet really supports.
//! Every list below is what libcontainer 0.7 implements (its mount option
//! parser, seccomp translation and namespace set); nothing is claimed that
//! a test or libcontainer's code does not back.

use anyhow::Result;
use serde_json::json;

use crate::wasm::{dispatch, engines as handlers};

pub const LIBCONTAINER_VERSION: &str = "0.7.0";

const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "idmap",
    "ridmap",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "slave",
    "strictatime",
    "suid",
    "sync",
    "unbindable",
];

const SECCOMP_ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

const SECCOMP_OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

const SECCOMP_ARCHS: &[&str] = &[
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
];

const SECCOMP_FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

fn oci_version() -> &'static str {
    libcontainer::oci_spec::runtime::VERSION
}

fn libseccomp_version() -> String {
    match libseccomp::ScmpVersion::current() {
        Ok(v) => format!("{}.{}.{}", v.major, v.minor, v.micro),
        Err(_) => "unknown".into(),
    }
}

/// Handlers compiled into this build: native plus every Wasm engine.
pub fn compiled_handlers() -> Vec<&'static str> {
    let mut v = vec!["native"];
    v.extend_from_slice(handlers::KNOWN);
    v
}

pub fn version_text() -> String {
    let mut text = format!(
        "runlet version {}\nspec: {}\nlibcontainer: {}\nlibseccomp: {}\nhandlers: {}\n",
        env!("CARGO_PKG_VERSION"),
        oci_version(),
        LIBCONTAINER_VERSION,
        libseccomp_version(),
        compiled_handlers().join(","),
    );
    for line in handlers::describe() {
        text.push_str(&format!("  {line}\n"));
    }
    text
}

pub fn features() -> serde_json::Value {
    let caps: Vec<String> = {
        let mut v: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        v.sort();
        v
    };
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": oci_version(),
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": { "v1": true, "v2": true, "systemd": true, "systemdUser": false, "rdma": false },
            "seccomp": {
                "enabled": true,
                "actions": SECCOMP_ACTIONS,
                "operators": SECCOMP_OPERATORS,
                "archs": SECCOMP_ARCHS,
                "knownFlags": SECCOMP_FLAGS,
                "supportedFlags": SECCOMP_FLAGS,
            },
            "apparmor": { "enabled": true },
            "selinux": { "enabled": false },
            "intelRdt": { "enabled": true },
            // runlet stages them itself (src/container/idmap.rs); libcontainer 0.7 cannot.
            "mountExtensions": { "idmap": { "enabled": true } },
        },
        "annotations": {
            "io.github.seccomp.libseccomp.version": libseccomp_version(),
            "org.runlet.version": env!("CARGO_PKG_VERSION"),
            "org.runlet.libcontainer.version": LIBCONTAINER_VERSION,
            "org.runlet.handlers": compiled_handlers().join(","),
            "org.runlet.wasm.default-handler": handlers::DEFAULT_ENGINE,
            // What the OCI schema has no field for (runc names its
            // checkpoint support the same way).
            "org.runlet.cgroup.managers": "cgroupfs,systemd,disabled",
            "org.runlet.cgroup.v2.devices": "ebpf",
            "org.runlet.checkpoint.enabled": "true",
            "org.runlet.checkpoint.criu": "criu swrk (CRIU 3.15 or later in $PATH), native containers only",
        },
        // Annotations that change how a container runs (the Wasm handler):
        // CRI-O passes them only when a runtime handler allows them.
        "potentiallyUnsafeConfigAnnotations": [dispatch::HANDLER_ANNOTATION, dispatch::VARIANT_ANNOTATION],
    })
}

pub fn run() -> Result<i32> {
    println!("{}", serde_json::to_string_pretty(&features())?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_shape() {
        let f = features();
        assert_eq!(f["ociVersionMin"], "1.0.0");
        assert!(f["linux"]["capabilities"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c == "CAP_SYS_ADMIN")));
        // Idmapped mounts are staged by runlet (src/container/idmap.rs) and tested
        // (spec-tests mount_idmapped).
        assert_eq!(f["linux"]["mountExtensions"]["idmap"]["enabled"], true);
        // Each backed by a test: cgroup v2 and systemd in scripts/vm-test,
        // eBPF device rules (security tests), CRIU (tests/checkpoint.rs).
        assert_eq!(f["linux"]["cgroup"]["v2"], true);
        assert_eq!(f["linux"]["cgroup"]["systemd"], true);
        assert_eq!(f["annotations"]["org.runlet.cgroup.v2.devices"], "ebpf");
        assert_eq!(f["annotations"]["org.runlet.checkpoint.enabled"], "true");
        let opts = f["mountOptions"].as_array().cloned().unwrap_or_default();
        assert!(opts.iter().any(|o| o == "idmap") && opts.iter().any(|o| o == "ridmap"));
    }

    #[test]
    fn version_lists_spec_and_handlers() {
        let v = version_text();
        assert!(v.starts_with("runlet version "));
        assert!(v.contains("\nspec: 1."));
        assert!(v.contains("handlers: native,wasmtime,wasmedge"));
        assert!(v.contains("wasmtime: wasmtime 48."));
    }
}
