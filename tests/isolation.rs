//! What a container process can reach through runlet (docs/security.md,
//! "What reaches a container process"): the runtime's file descriptors,
//! the caller's environment and command line, the caller's capabilities
//! through `exec -p`, and other users' view of the state files.
//!
//! Every check is a refusal proved without harm: fds are inspected from the
//! host, a file is opened for writing only to see that the open fails (and
//! closed at once), and the unprivileged reader only reads.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::Env;

/// Set only in runlet's own environment (name, value), never in a
/// container's config.
const SECRET: (&str, &str) = ("RUNLET_CALLER_SECRET", "do-not-leak-7f3a");

/// A capable attacker: root in the container with CAP_SYS_PTRACE, which
/// `/proc/<pid>/fd`, `environ` and `pidfd_getfd` of runlet's processes need.
fn give_ptrace(env: &Env) {
    env.config(|c| {
        let caps = serde_json::json!(["CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE", "CAP_KILL"]);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = caps.clone();
        }
    });
}

/// runlet with the secret in its environment, as a caller (a shim,
/// conmon, a shell) would run it.
fn run_with_secret(env: &Env, args: &[&str]) -> String {
    let (k, v) = SECRET;
    let out = common::output_of(env.cmd().env(k, v).args(args));
    assert!(
        out.status.success(),
        "runlet {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The fds of `pid` that are neither stdio nor the container's own nor a
/// documented one (docs/security.md), each as `N -> target (why)`.
///
/// - no filesystem: sockets, pipes, anonymous inodes (libcontainer's start
///   socket and socket pairs, an engine's epoll and eventfd);
/// - `/memfd:runlet-create-…`: the error channel to `runlet create`, until
///   the workload starts;
/// - an object that the same path inside the container (`/proc/PID/root`)
///   names: the container's own files;
/// - a file that cannot be opened for writing (EROFS): a compiled module
///   from the code cache, on its read-only mount.
///
/// Anything on procfs is refused, whatever its pid namespace.
fn foreign_fds(pid: i32) -> Vec<String> {
    let mut bad = Vec::new();
    let dir = format!("/proc/{pid}/fd");
    for entry in std::fs::read_dir(&dir).expect("fd dir").flatten() {
        let n: i32 = entry.file_name().to_string_lossy().parse().expect("fd");
        if n <= 2 {
            continue;
        }
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue; // closed meanwhile
        };
        let t = target.to_string_lossy().into_owned();
        if ["socket:", "pipe:", "anon_inode:"]
            .iter()
            .any(|p| t.starts_with(p))
            || t.starts_with("/memfd:runlet-create-")
        {
            continue;
        }
        let fd_path = entry.path();
        if is_procfs(&fd_path) {
            bad.push(format!("{n} -> {t} (a procfs handle)"));
            continue;
        }
        let Ok(meta) = std::fs::metadata(&fd_path) else {
            continue;
        };
        let inside = format!("/proc/{pid}/root{}", t.trim_end_matches(" (deleted)"));
        let own = std::fs::metadata(&inside)
            .is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino());
        if own {
            continue;
        }
        // Opened for writing and closed at once: nothing is written.
        match std::fs::OpenOptions::new().write(true).open(&fd_path) {
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => continue,
            Err(e) => bad.push(format!("{n} -> {t} (not the container's: {e})")),
            Ok(_) => bad.push(format!("{n} -> {t} (a host file, WRITABLE)")),
        }
    }
    bad
}

fn is_procfs(path: &Path) -> bool {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: statfs fills the struct it is given.
    unsafe {
        let mut fs: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut fs) == 0 && fs.f_type == libc::PROC_SUPER_MAGIC
    }
}

fn assert_holds_nothing_foreign(pid: i32, what: &str) {
    let bad = foreign_fds(pid);
    assert!(bad.is_empty(), "{what} (pid {pid}) holds: {bad:#?}");
}

/// Waits for the exec'd process whose command line is `args` (with the
/// view runlet gives it, the container's own) to show up on the host: the
/// one in the container (libcontainer's intermediate, which shows the same
/// view, stays in the host's pid namespace and exits).
fn exec_pid(args: &str) -> i32 {
    common::poll(std::time::Duration::from_secs(60), || {
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.starts_with("youki:[2:INIT]")
                && cmdline == format!("{}\0", args.replace(' ', "\0")).into_bytes())
            .then_some(pid)
        })
    })
    .expect("the exec'd process never appeared")
}

/// Waits until the Wasm process `pid` runs its guest: it drops its error
/// channel to runlet right before (and closes everything else then).
fn wait_for_guest(pid: i32) {
    common::poll(std::time::Duration::from_secs(60), || {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
        let held = fds.flatten().any(|f| {
            std::fs::read_link(f.path())
                .is_ok_and(|t| t.to_string_lossy().starts_with("/memfd:runlet-create-"))
        });
        (!held).then_some(())
    })
    .expect("the Wasm process never started its guest");
}

/// The `--log` file runlet is given in `create_as_caller`, as podman and
/// conmon always give one.
fn log_file(env: &Env) -> String {
    env.dir.path().join("runlet.log").display().to_string()
}

/// `create` as a caller runs it (secret in the environment, a log file);
/// returns the init, checked before `start`.
fn create_as_caller(env: &Env, id: &str, what: &str) -> i32 {
    run_with_secret(
        env,
        &[
            "--log",
            &log_file(env),
            "create",
            "--bundle",
            env.bundle_str(),
            id,
        ],
    );
    let init = env.pid(id);
    assert_holds_nothing_foreign(init, what);
    init
}

#[test]
fn container_processes_hold_no_runtime_fd() {
    require_root!();

    // Native: the init between create and start (runlet), then the
    // workload, and the hooks that run in the container.
    let env = Env::new("fds-native");
    give_ptrace(&env);
    env.set_args(&["sleep", "30"]);
    let rootfs = env.bundle.join("rootfs");
    let hook = |file: &str| {
        serde_json::json!([{ "path": "/bin/sh",
            "args": ["sh", "-c", format!("ls -l /proc/self/fd > {file}")] }])
    };
    env.config(|c| {
        c["root"]["readonly"] = false.into();
        // Before pivot_root the host path; after it, the container's.
        c["hooks"]["createContainer"] =
            hook(&rootfs.join("tmp/create-container").display().to_string());
        c["hooks"]["startContainer"] = hook("/tmp/start-container");
    });
    let id = env.id("n");
    let init = create_as_caller(&env, &id, "native init before start");
    env.ok(&["start", &id]);
    common::poll(std::time::Duration::from_secs(60), || {
        let exe = std::fs::read_link(format!("/proc/{init}/exe")).ok()?;
        exe.ends_with("busybox").then_some(())
    })
    .expect("the init never exec'd the workload");
    assert_holds_nothing_foreign(init, "native workload");
    for hook in ["create-container", "start-container"] {
        let listing = std::fs::read_to_string(rootfs.join("tmp").join(hook)).expect("hook ran");
        // Only stdio and ls's own listing of /proc/<pid>/fd.
        let extra: Vec<&str> = listing
            .lines()
            .filter(|l| l.contains(" -> "))
            .filter(|l| {
                let (n, t) = l.rsplit_once(" -> ").unwrap_or_default();
                let n = n.rsplit(' ').next().unwrap_or_default();
                let stdio = matches!(n, "0" | "1" | "2");
                let own_listing = t.starts_with("/proc/") && t.ends_with("/fd");
                !stdio && !own_listing
            })
            .collect();
        assert!(extra.is_empty(), "{hook} hook holds: {extra:#?}");
    }
    env.ok(&["delete", "-f", &id]);

    // Wasm: the init is runlet for the container's whole life, and so is
    // a Wasm process `exec`'d into it.
    let env = Env::new_wasm("fds-wasm", &["/app/probe-p1.wasm", "sleep", "30"]);
    give_ptrace(&env);
    let id = env.id("w");
    let init = create_as_caller(&env, &id, "wasm init before start");
    env.ok(&["start", &id]);
    wait_for_guest(init);
    assert_holds_nothing_foreign(init, "wasm init, guest running");
    let mut exec = env
        .cmd()
        .env(SECRET.0, SECRET.1)
        .args([
            "--log",
            &log_file(&env),
            "exec",
            &id,
            "/app/probe-p1.wasm",
            "sleep",
            "20",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn exec");
    let pid = exec_pid("/app/probe-p1.wasm sleep 20");
    wait_for_guest(pid);
    assert_holds_nothing_foreign(pid, "wasm exec process");
    env.ok(&["delete", "-f", &id]);
    let _ = exec.wait();
}

/// `/proc/<pid>/environ` and `cmdline` of `pid`, read from inside the
/// container by a native process `exec`'d into it (a sidecar's view).
fn sidecar_view(env: &Env, id: &str) -> (String, String) {
    let out = env.ok(&[
        "exec",
        id,
        "sh",
        "-c",
        "tr '\\0' '\\n' < /proc/1/environ; echo ---; tr '\\0' ' ' < /proc/1/cmdline",
    ]);
    let (environ, cmdline) = out.split_once("---\n").expect("both parts");
    (environ.to_string(), cmdline.trim().to_string())
}

/// Asserts that `seen` is the container's configured `process.env`, plus
/// the HOME that runtimes add when it sets none.
fn assert_configured_env(env: &Env, seen: &[&str], what: &str) {
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.bundle.join("config.json")).expect("config"))
            .expect("json");
    let configured: Vec<&str> = c["process"]["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for kv in &configured {
        assert!(seen.contains(kv), "{what}: {kv} missing from {seen:?}");
    }
    for kv in seen {
        assert!(
            configured.contains(kv) || kv.starts_with("HOME="),
            "{what}: {kv} is not the container's (configured: {configured:?})"
        );
    }
}

#[test]
fn container_sees_only_its_own_environment_and_command_line() {
    require_root!();
    let secret_value = SECRET.1;

    // A Wasm guest reading its own environ, and a sidecar reading pid 1's.
    let env = Env::new_wasm(
        "environ",
        &["/app/probe-p1.wasm", "read", "/proc/self/environ"],
    );
    give_ptrace(&env);
    let id = env.id("w");
    let own = run_with_secret(&env, &["run", "--bundle", env.bundle_str(), &id]);
    assert!(!own.contains(secret_value), "guest saw: {own}");
    let own: Vec<&str> = own.split('\0').filter(|s| !s.is_empty()).collect();
    assert_configured_env(&env, &own, "the guest's /proc/self/environ");
    env.ok(&["delete", "-f", &id]);

    env.set_args(&["/app/probe-p1.wasm", "sleep", "30"]);
    run_with_secret(&env, &["run", "-d", "--bundle", env.bundle_str(), &id]);
    let (environ, cmdline) = sidecar_view(&env, &id);
    assert!(!environ.contains(secret_value), "sidecar saw: {environ}");
    let seen: Vec<&str> = environ.lines().collect();
    assert_configured_env(&env, &seen, "/proc/1/environ of the Wasm init");
    assert_eq!(cmdline, "/app/probe-p1.wasm sleep 30", "/proc/1/cmdline");
    env.ok(&["delete", "-f", &id]);

    // A native init before start is runlet too.
    let env = Env::new("environ-native");
    give_ptrace(&env);
    env.set_args(&["sleep", "30"]);
    let id = env.id("n");
    run_with_secret(&env, &["create", "--bundle", env.bundle_str(), &id]);
    let (environ, cmdline) = sidecar_view(&env, &id);
    assert!(!environ.contains(secret_value), "sidecar saw: {environ}");
    let seen: Vec<&str> = environ.lines().collect();
    assert_configured_env(&env, &seen, "/proc/1/environ of the native init");
    assert_eq!(cmdline, "sleep 30");
    env.ok(&["delete", "-f", &id]);
}

/// `exec -p` of a process.json without `key`, in a container whose
/// process sets it: the exec'd process reports `probe`.
fn exec_without(env: &Env, id: &str, probe: &str) -> String {
    let process = serde_json::json!({
        "args": ["sh", "-c", probe],
        "cwd": "/",
        "env": ["PATH=/bin"],
    });
    let path = env.dir.path().join("process.json");
    std::fs::write(&path, process.to_string()).expect("write process.json");
    env.ok(&["exec", "-p", path.to_str().expect("utf8"), id])
}

fn status_field(out: &str, field: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {field} in {out}"))
}

#[test]
fn exec_process_json_omissions_take_the_containers_values() {
    require_root!();
    let env = Env::new("exec-omit");
    env.set_args(&["sleep", "30"]);
    env.config(|c| {
        let caps = serde_json::json!(["CAP_KILL", "CAP_CHOWN"]);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = caps.clone();
        }
        c["process"]["rlimits"] = serde_json::json!([
            { "type": "RLIMIT_NOFILE", "hard": 512, "soft": 256 }
        ]);
        c["process"]["noNewPrivileges"] = true.into();
    });
    let id = env.id("c");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    let init = env.pid(&id);
    let init_status = std::fs::read_to_string(format!("/proc/{init}/status")).expect("status");

    // capabilities: the container's (CAP_KILL|CAP_CHOWN), never the
    // caller's full set.
    let out = exec_without(&env, &id, "cat /proc/self/status");
    assert_eq!(status_field(&out, "CapEff"), "0000000000000021", "{out}");
    assert_eq!(
        status_field(&out, "CapBnd"),
        status_field(&init_status, "CapBnd")
    );
    // noNewPrivileges: the container's.
    assert_eq!(status_field(&out, "NoNewPrivs"), "1", "{out}");
    // rlimits: the container's.
    let out = exec_without(&env, &id, "ulimit -n; ulimit -H -n");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["256", "512"]);
    env.ok(&["delete", "-f", &id]);

    // user: the container's (1000:1000), not root.
    env.config(|c| c["process"]["user"] = serde_json::json!({ "uid": 1000, "gid": 1000 }));
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    let out = exec_without(&env, &id, "id -u; id -g");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["1000", "1000"]);
    env.ok(&["delete", "-f", &id]);
    // The AppArmor profile and SELinux label cannot take effect on this
    // host (neither is enabled); their merge is checked by the unit test
    // in src/commands/exec.rs.
}

/// An id with no entry in /etc/passwd or /etc/group and no files: the
/// test's throwaway user, made without touching the system's user files.
fn unused_id() -> u32 {
    let taken = |file: &str, id: u32| {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .any(|l| l.split(':').nth(2) == Some(&id.to_string()))
    };
    (61000..62000)
        .find(|id| !taken("/etc/passwd", *id) && !taken("/etc/group", *id))
        .expect("a free id")
}

#[test]
fn state_files_are_private() {
    require_root!();
    let env = Env::new("state-perms");
    env.set_args(&["sleep", "30"]);
    env.config(|c| {
        c["process"]["env"]
            .as_array_mut()
            .expect("env")
            .push("DB_PASSWORD=s3cret-in-config".into());
    });
    // The scratch dir is 0700; let others through to the state root, as
    // they pass through /run to /run/runlet.
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o711))
        .expect("chmod scratch dir");
    let id = env.id("c");
    env.ok(&["create", "--bundle", env.bundle_str(), &id]);

    let mode = |p: &Path| {
        std::fs::symlink_metadata(p)
            .expect("stat")
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode(&env.root), 0o711, "state root");
    let dir = env.root.join(&id);
    assert_eq!(mode(&dir), 0o711, "container state dir");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("state dir").flatten() {
        let meta = entry.metadata().expect("stat");
        if meta.file_type().is_file() {
            files += 1;
            assert_eq!(mode(&entry.path()), 0o600, "{}", entry.path().display());
        }
    }
    assert!(
        files >= 4,
        "state.json, runlet.json, config.json, youki_config.json"
    );

    // An unprivileged user reads nothing: no listing, no state file.
    let uid = unused_id().to_string();
    let root = env.root.display().to_string();
    let script = format!(
        "ls {root} && echo LISTED; \
         for f in {root}/{id}/*; do cat \"$f\" 2>/dev/null && echo \"READ $f\"; done; \
         cat {root}/{id}/config.json 2>&1; echo end"
    );
    let out = common::output_of(
        std::process::Command::new("setpriv")
            .args([
                "--reuid",
                &uid,
                "--regid",
                &uid,
                "--clear-groups",
                "sh",
                "-c",
            ])
            .arg(&script),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("end"), "the reader did not run: {text}");
    assert!(
        text.contains("Permission denied"),
        "expected refusals: {text}"
    );
    assert!(!text.contains("LISTED"), "state root listed: {text}");
    assert!(!text.contains("READ "), "a state file was read: {text}");
    assert!(
        !text.contains("s3cret-in-config"),
        "the secret leaked: {text}"
    );
    env.ok(&["delete", "-f", &id]);
}
