//! The Wasm handler, driven as callers drive runlet: dispatch, WASI
//! modules and components, exit codes, traps, kill, exec, the compiled-code
//! cache, memory limits, and guests trying to leave the sandbox.

mod common;

use common::Env;
use serde_json::{json, Value};

fn run_out(env: &Env, id: &str) -> (Option<i32>, String, String) {
    let out = env.run(&["run", "--bundle", env.bundle_str(), id]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn annotate(env: &Env, pairs: &[(&str, &str)]) {
    env.config(|c| {
        let mut a = serde_json::Map::new();
        for (k, v) in pairs {
            a.insert(k.to_string(), Value::from(*v));
        }
        c["annotations"] = Value::Object(a);
    });
}

#[test]
fn p1_module_args_env_cwd_and_files() {
    require_root!();
    let env = Env::new_wasm("wasm-p1", &["/app/probe-p1.wasm", "info", "two words"]);
    env.config(|c| {
        c["process"]["env"] = json!(["PATH=/bin", "GREETING=hello-env"]);
    });
    let (code, out, err) = run_out(&env, &env.id("a"));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("argv=/app/probe-p1.wasm info two words"),
        "{out}"
    );
    assert!(out.contains("GREETING=hello-env"), "{out}");

    // The container's / is preopened as /: absolute paths work.
    std::fs::write(env.bundle.join("rootfs/etc/motd"), "from the rootfs\n").expect("write");
    env.set_args(&["/app/probe-p1.wasm", "read", "/etc/motd"]);
    let (code, out, _) = run_out(&env, &env.id("b"));
    assert_eq!((code, out.as_str()), (Some(0), "from the rootfs\n"));

    // Relative paths resolve against process.cwd.
    env.config(|c| c["process"]["cwd"] = "/etc".into());
    for probe in ["/app/probe-p1.wasm", "/app/probe-p2.wasm"] {
        env.set_args(&[probe, "read", "motd"]);
        let (code, out, err) = run_out(&env, &env.id("c"));
        assert_eq!(
            (code, out.as_str()),
            (Some(0), "from the rootfs\n"),
            "{probe}: {err}"
        );
    }
}

#[test]
fn p2_component_runs_and_reports_status() {
    require_root!();
    let env = Env::new_wasm("wasm-p2", &["/app/probe-p2.wasm", "info", "comp"]);
    env.config(|c| c["process"]["env"] = json!(["GREETING=from-p2"]));
    let (code, out, err) = run_out(&env, &env.id("a"));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("argv=/app/probe-p2.wasm info comp") && out.contains("GREETING=from-p2"),
        "{out}"
    );
    // WASI 0.2 `exit` carries ok/err: a failing component exits 1.
    env.set_args(&["/app/probe-p2.wasm", "exit", "9"]);
    assert_eq!(run_out(&env, &env.id("b")).0, Some(1));
}

#[test]
fn exit_codes_and_traps() {
    require_root!();
    let env = Env::new_wasm("wasm-exit", &["/app/probe-p1.wasm", "exit", "23"]);
    assert_eq!(run_out(&env, &env.id("p1")).0, Some(23));
    env.set_args(&["/app/exit42.wat"]);
    assert_eq!(run_out(&env, &env.id("wat")).0, Some(42));
    env.set_args(&["/app/hello.wat"]);
    let (code, out, _) = run_out(&env, &env.id("hello"));
    assert_eq!((code, out.as_str()), (Some(0), "hello from wat\n"));
    // A trap: non-zero, with the trap message on stderr.
    env.set_args(&["/app/trap.wat"]);
    let (code, _, err) = run_out(&env, &env.id("trap"));
    assert_eq!(code, Some(134));
    assert!(
        err.contains("wasm trap") && err.contains("unreachable"),
        "{err}"
    );
    env.set_args(&["/app/probe-p1.wasm", "panic"]);
    let (code, _, err) = run_out(&env, &env.id("panic"));
    assert_eq!(code, Some(134));
    assert!(err.contains("deliberate panic"), "{err}");
}

#[test]
fn dispatch_in_real_containers() {
    require_root!();
    let env = Env::new_wasm("wasm-dispatch", &["/app/hello.wat"]);
    // Magic bytes alone, no suffix, no annotation.
    std::fs::copy(
        common::fixture("probe-p1.wasm"),
        env.bundle.join("rootfs/app/probe"),
    )
    .expect("copy");
    env.set_args(&["/app/probe", "hello"]);
    assert_eq!(run_out(&env, &env.id("magic")).1, "hello from wasm\n");
    // Found through PATH inside the rootfs.
    env.config(|c| c["process"]["env"] = json!(["PATH=/app"]));
    env.set_args(&["probe", "hello"]);
    assert_eq!(run_out(&env, &env.id("path")).1, "hello from wasm\n");

    // wasm-smart leaves a native sidecar native.
    env.set_args(&["sh", "-c", "echo native-sidecar"]);
    env.config(|c| c["process"]["env"] = json!(["PATH=/bin"]));
    annotate(&env, &[("run.oci.handler", "wasm-smart")]);
    assert_eq!(run_out(&env, &env.id("smart")).1, "native-sidecar\n");
    annotate(&env, &[("module.wasm.image/variant", "compat-smart")]);
    assert_eq!(run_out(&env, &env.id("compat-smart")).1, "native-sidecar\n");

    // A sandbox (pause) container is native even with a Wasm annotation.
    for key in [
        "io.kubernetes.cri.container-type",
        "io.kubernetes.cri-o.ContainerType",
    ] {
        annotate(&env, &[("run.oci.handler", "wasm"), (key, "sandbox")]);
        assert_eq!(
            run_out(&env, &env.id("pause")).1,
            "native-sidecar\n",
            "{key}"
        );
    }

    // compat / an engine name force Wasm even without suffix or magic:
    // a WAT text file named without .wat.
    std::fs::copy(
        common::fixture("hello.wat"),
        env.bundle.join("rootfs/app/textmodule"),
    )
    .expect("copy");
    env.set_args(&["/app/textmodule"]);
    for (k, v) in [
        ("module.wasm.image/variant", "compat"),
        ("run.oci.handler", "wasmtime"),
        ("run.oci.handler", "wasm"),
    ] {
        annotate(&env, &[(k, v)]);
        let (code, out, err) = run_out(&env, &env.id("forced"));
        assert_eq!(
            (code, out.as_str()),
            (Some(0), "hello from wat\n"),
            "{k}={v}: {err}"
        );
    }
}

#[test]
fn unavailable_or_unknown_engine_fails_create_cleanly() {
    require_root!();
    let env = Env::new_wasm("wasm-engine", &["/app/hello.wat"]);
    annotate(&env, &[("run.oci.handler", "wasmedge")]);
    let id = env.id("edge");
    if std::path::Path::new("/usr/lib/libwasmedge.so.0").exists()
        || std::env::var_os("RUNLET_WASMEDGE_LIB").is_some()
    {
        eprintln!("SKIPPED part: libwasmedge is installed here, so it is available");
    } else {
        env.fails(
            &["create", "--bundle", env.bundle_str(), &id],
            "wasmedge handler is not available",
        );
        env.assert_gone(&id);
    }
    annotate(&env, &[("run.oci.handler", "bogus")]);
    env.fails(
        &["create", "--bundle", env.bundle_str(), &id],
        "run.oci.handler=\"bogus\": unknown handler",
    );
    env.assert_gone(&id);
    // Not Wasm at all, but declared so: a clear error at create.
    std::fs::write(env.bundle.join("rootfs/app/garbage.wasm"), b"not a module").expect("write");
    env.set_args(&["/app/garbage.wasm"]);
    annotate(&env, &[]);
    env.fails(
        &["create", "--bundle", env.bundle_str(), &id],
        "process.args[0] /app/garbage.wasm",
    );
    env.assert_gone(&id);
    // A precompiled file from an image is refused, never loaded.
    env.set_args(&["/app/evil.cwasm"]);
    annotate(&env, &[("run.oci.handler", "wasm")]);
    env.fails(
        &["create", "--bundle", env.bundle_str(), &id],
        "precompiled modules from an image are never loaded",
    );
    env.assert_gone(&id);
}

#[test]
fn runlet_wasm_program_name_forces_wasm() {
    require_root!();
    let env = Env::new_wasm("wasm-argv0", &["/app/textmodule"]);
    std::fs::copy(
        common::fixture("hello.wat"),
        env.bundle.join("rootfs/app/textmodule"),
    )
    .expect("copy");
    let link = env.dir.path().join("runlet-wasm");
    std::os::unix::fs::symlink(common::runlet_bin(), &link).expect("symlink");
    let out = env.run_bin(
        &link,
        &["run", "--bundle", env.bundle_str(), &env.id("forced")],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from wat\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ... but never for a sandbox container.
    env.set_args(&["sh", "-c", "echo pause-native"]);
    annotate(&env, &[("io.kubernetes.cri.container-type", "sandbox")]);
    let out = env.run_bin(
        &link,
        &["run", "--bundle", env.bundle_str(), &env.id("pause")],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "pause-native\n");
}

#[test]
fn kill_and_state_of_a_wasm_container() {
    require_root!();
    let env = Env::new_wasm("wasm-kill", &["/app/probe-p1.wasm", "sleep", "30"]);
    let id = env.id("k");
    env.ok(&["create", "--bundle", env.bundle_str(), &id]);
    assert_eq!(env.status(&id), "created");
    env.ok(&["start", &id]);
    assert_eq!(env.status(&id), "running");
    // A guest cannot handle SIGTERM, and a pid namespace's init ignores
    // signals without a handler: runlet ends it as the signal ends a native
    // process (tests/wasm_services.rs checks the status, 143).
    env.ok(&["kill", &id, "TERM"]);
    env.wait_status(&id, "stopped");
    env.ok(&["delete", &id]);
    env.assert_gone(&id);
    // SIGKILL always works.
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    env.ok(&["kill", &id, "KILL"]);
    env.wait_status(&id, "stopped");
    env.ok(&["delete", &id]);
    env.assert_gone(&id);
}

#[test]
fn exec_into_a_wasm_container() {
    require_root!();
    let env = Env::new_wasm("wasm-exec", &["/app/probe-p1.wasm", "sleep", "30"]);
    env.config(|c| c["process"]["env"] = json!(["PATH=/bin:/app", "GREETING=container-env"]));
    let id = env.id("x");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    let init = env.pid(&id);
    // A module: output, env from the container, exit code.
    let out = env.run(&["exec", &id, "/app/probe-p2.wasm", "info", "exec"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("argv=/app/probe-p2.wasm info exec")
            && text.contains("GREETING=container-env"),
        "{text}"
    );
    assert_eq!(
        env.run(&["exec", &id, "/app/exit42.wat"]).status.code(),
        Some(42)
    );
    // A native binary from the rootfs, in the container's namespaces.
    let out = env.ok(&["exec", &id, "sh", "-c", "readlink /proc/self/ns/mnt"]);
    let init_ns = std::fs::read_link(format!("/proc/{init}/ns/mnt")).expect("ns");
    assert_eq!(out.trim(), init_ns.to_str().expect("utf8"));
    // The exec'd module runs in the container's cgroup.
    env.assert_exec_joins_cgroup(&id, &["/app/probe-p1.wasm", "sleep", "5"]);
    env.ok(&["delete", "-f", &id]);
    env.assert_gone(&id);
}

fn cache_hit(env: &Env, id: &str) -> bool {
    let log = env.dir.path().join(format!("{id}.log"));
    let out = env.run(&[
        "--debug",
        "--log",
        log.to_str().expect("utf8"),
        "run",
        "--bundle",
        env.bundle_str(),
        id,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from wasm\n");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("wasm module loaded"), "{text}");
    text.contains("cache_hit=true")
}

#[test]
fn compiled_code_cache_hit_miss_corruption() {
    require_root!();
    let env = Env::new_wasm("wasm-cache", &["/app/probe-p1.wasm", "hello"]);
    assert!(
        !cache_hit(&env, &env.id("first")),
        "a cold cache reported a hit"
    );
    assert!(
        cache_hit(&env, &env.id("second")),
        "second run compiled again"
    );
    let listing = env.ok(&["wasm-cache", "list"]);
    assert_eq!(listing.lines().count(), 1, "{listing}");
    let entry = std::fs::read_dir(env.wasm_cache())
        .expect("cache dir")
        .flatten()
        .flat_map(|ns| std::fs::read_dir(ns.path()).expect("ns").flatten())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "bin"))
        .expect("an entry");
    // Truncated: detected, rebuilt, and the run still succeeds.
    let full = std::fs::read(&entry).expect("read");
    std::fs::write(&entry, &full[..full.len() / 2]).expect("truncate");
    assert!(!cache_hit(&env, &env.id("truncated")));
    assert_eq!(
        std::fs::read(&entry).expect("rebuilt"),
        full,
        "entry not rebuilt"
    );
    // Corrupted in place (same length): detected by the checksum.
    let mut bad = full.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&entry, &bad).expect("corrupt");
    assert!(!cache_hit(&env, &env.id("corrupt")));
    assert!(cache_hit(&env, &env.id("healed")));
    // The cache is root-only.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(env.wasm_cache())
            .expect("meta")
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "cache dir mode {mode:o}");
    env.ok(&["wasm-cache", "clear"]);
    assert_eq!(env.ok(&["wasm-cache", "list"]).lines().count(), 0);
    assert!(!cache_hit(&env, &env.id("after-clear")));
}

#[test]
fn memory_limit_bounds_linear_memory() {
    require_root!();
    let env = Env::new_wasm("wasm-mem", &["/app/grow.wat"]);
    env.config(|c| c["linux"]["resources"] = json!({"memory": {"limit": 64 * 1024 * 1024}}));
    // memory.grow fails cleanly at the limit: the guest reports 64 MiB.
    assert_eq!(run_out(&env, &env.id("grow")).0, Some(64));
    env.set_args(&["/app/probe-p1.wasm", "alloc", "100"]);
    let (code, out, _) = run_out(&env, &env.id("alloc"));
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("allocation failed after"), "{out}");
    env.set_args(&["/app/probe-p1.wasm", "alloc", "16"]);
    assert_eq!(run_out(&env, &env.id("fits")).0, Some(0));
}

#[test]
fn guest_cannot_escape() {
    require_root!();
    let env = Env::new_wasm("wasm-escape", &["/app/probe-p1.wasm", "escape"]);
    let rootfs = env.bundle.join("rootfs");
    std::os::unix::fs::symlink("/etc", rootfs.join("escape-link")).expect("link");
    std::os::unix::fs::symlink("../../../../../../etc/hostname", rootfs.join("abs-link"))
        .expect("link");
    let bin_before = std::fs::read(common::runlet_bin()).expect("read runlet");
    for probe in ["/app/probe-p1.wasm", "/app/probe-p2.wasm"] {
        env.set_args(&[probe, "escape"]);
        let (code, out, err) = run_out(&env, &env.id("esc"));
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(out.lines().count(), 5, "{out}");
        for line in out.lines() {
            assert!(line.contains(": denied"), "{probe}: {line}");
        }
    }
    assert_eq!(
        std::fs::read(common::runlet_bin()).expect("read runlet"),
        bin_before
    );

    // root.readonly: the preopen is read-only too.
    env.config(|c| c["root"]["readonly"] = true.into());
    env.set_args(&["/app/probe-p1.wasm", "write", "/app/new-file", "x"]);
    let (_, out, _) = run_out(&env, &env.id("ro"));
    assert!(out.contains("write failed"), "{out}");
    assert!(!rootfs.join("app/new-file").exists());
    env.config(|c| c["root"]["readonly"] = false.into());
    let (_, out, _) = run_out(&env, &env.id("rw"));
    assert_eq!(out, "wrote\n");
}

#[test]
fn wasm_stdio_and_terminal() {
    require_root!();
    let env = Env::new_wasm("wasm-stdio", &["/app/probe-p1.wasm", "stdin"]);
    let out = env.run_with_stdin(
        &["run", "--bundle", env.bundle_str(), &env.id("in")],
        "piped-input",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "stdin:piped-input");
}

/// The syscalls podman's (and Docker's) default seccomp profile refuses to
/// an unprivileged container; the engine must not need any of them.
const PODMAN_DEFAULT_DENIED: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "swapon",
    "swapoff",
    "sysfs",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
];

#[test]
fn engine_runs_under_a_default_seccomp_profile() {
    require_root!();
    let env = Env::new_wasm("wasm-seccomp", &["/app/probe-p1.wasm", "info"]);
    env.config(|c| {
        c["process"]["noNewPrivileges"] = true.into();
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": PODMAN_DEFAULT_DENIED, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
        // The capabilities podman grants by default.
        let caps = json!(["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
            "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT"]);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = caps.clone();
        }
        c["process"]["capabilities"]["inheritable"] = json!([]);
        c["process"]["capabilities"]["ambient"] = json!([]);
    });
    for (probe, id) in [
        ("/app/probe-p1.wasm", "p1"),
        ("/app/probe-p2.wasm", "p2"),
        ("/app/hello.wat", "wat"),
    ] {
        env.set_args(&[probe, "info"]);
        let (code, out, err) = run_out(&env, &env.id(id));
        assert_eq!(code, Some(0), "{probe} under the profile: {err}");
        assert!(!out.is_empty());
    }
    // The filter is really in force: processes run in seccomp filter mode.
    env.set_args(&["sh", "-c", "cat /proc/self/status | grep Seccomp"]);
    let (_, out, _) = run_out(&env, &env.id("native"));
    assert!(out.contains("Seccomp:\t2"), "{out}");
}

#[test]
fn wasm_container_with_a_terminal() {
    require_root!();
    let env = Env::new_wasm("wasm-tty", &["/app/probe-p1.wasm", "info", "tty"]);
    env.config(|c| c["process"]["terminal"] = true.into());
    let (mut child, master) = env.run_on_pty(&env.id("t"));
    let seen = common::read_until(&master, "cwd=");
    assert!(
        seen.contains("argv=/app/probe-p1.wasm info tty"),
        "{seen:?}"
    );
    assert_eq!(child.wait().expect("wait").code(), Some(0));
}

#[test]
fn wasmedge_handler_through_its_c_api() {
    require_root!();
    let env = Env::new_wasm("wasm-edge", &["/app/probe-p1.wasm", "info"]);
    let libdir = env.dir.path().join("wasmedge");
    std::fs::create_dir(&libdir).expect("mkdir");
    let lib = libdir.join("libwasmedge.so.0");
    let flags = [
        "-shared",
        "-fPIC",
        "-nostdlib",
        "-ffreestanding",
        "-fno-builtin",
        "-fno-stack-protector",
        "-fno-tree-loop-distribute-patterns",
    ];
    if let Err(reason) = common::build_c("wasmedge-standin.c", &lib, &flags) {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    annotate(&env, &[("run.oci.handler", "wasmedge")]);
    env.config(|c| c["process"]["env"] = json!(["PATH=/bin", "STANDIN_EXIT=7"]));
    let run = |id: &str| {
        let mut cmd = env.cmd();
        cmd.env("RUNLET_WASMEDGE_LIB", &lib).args([
            "run",
            "--bundle",
            env.bundle_str(),
            &env.id(id),
        ]);
        common::output_of(&mut cmd)
    };

    // On a writable mount the library could be rewritten from inside the
    // container through /proc/1/map_files: refused, naming the file.
    let out = run("edge-rw");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("refusing to run a Wasm container") && err.contains("libwasmedge.so.0"),
        "{err}"
    );
    env.assert_gone(&env.id("edge-rw"));

    // On a read-only mount it runs.
    let _ro = common::ReadOnlyBind::new(&libdir);
    let out = run("edge");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("standin: wasi=1 args=/app/probe-p1.wasm,info preopens=/:/"),
        "{text}"
    );
    assert!(
        text.contains("standin: run /app/probe-p1.wasm _start"),
        "{text}"
    );
    let mut version = std::process::Command::new(common::runlet_bin());
    version.env("RUNLET_WASMEDGE_LIB", &lib).arg("--version");
    let v = common::output_of(&mut version);
    assert!(String::from_utf8_lossy(&v.stdout).contains("wasmedge: wasmedge 0.0.0-standin"));
}
