//! The tests, section by section of config.json and the runtime spec's
//! lifecycle. Each gets a fresh bundle (busybox + spec-helper) whose
//! process runs `spec-helper report` unless the test changes it.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{
    cgroup_dir, expect_eq, host_is_cgroup_v1, skip, Ctx, Report, Test, TestResult,
};
use crate::t;

pub fn all() -> Vec<Test> {
    vec![
        t!("process", process_args),
        t!("process", process_env),
        t!("process", process_cwd),
        t!("process", process_user_uid_gid),
        t!("process", process_additional_gids),
        t!("process", process_umask),
        t!("process", process_capabilities),
        t!("process", process_rlimits),
        t!("process", process_no_new_privileges),
        t!("process", process_oom_score_adj),
        t!("process", process_terminal),
        t!("process", process_exit_code),
        t!("root", root_readonly),
        t!("root", root_writable),
        t!("root", root_absolute_path),
        t!("hostname", hostname),
        t!("hostname", domainname),
        t!("mounts", mount_bind),
        t!("mounts", mount_tmpfs_options),
        t!("mounts", mount_proc_sys_dev),
        t!("mounts", mount_mqueue_devpts),
        t!("mounts", mount_cgroup_ro),
        t!("mounts", mount_bind_propagation),
        t!("hooks", hooks_all_kinds_and_state),
        t!("hooks", hook_prestart_failure),
        t!("hooks", hook_create_runtime_failure),
        t!("hooks", hook_create_container_failure),
        t!("hooks", hook_start_container_failure),
        t!("hooks", hook_poststart_failure_is_warning),
        t!("hooks", hook_poststop_failure_is_warning),
        t!("namespaces", ns_pid),
        t!("namespaces", ns_net),
        t!("namespaces", ns_ipc_uts_mount),
        t!("namespaces", ns_cgroup),
        t!("namespaces", ns_user_mappings),
        t!("namespaces", ns_time),
        t!("namespaces", ns_join_by_path),
        t!("linux", devices),
        t!("linux", cgroups_path),
        t!("resources", resources_memory),
        t!("resources", resources_cpu),
        t!("resources", resources_pids),
        t!("resources", resources_blkio_weight),
        t!("resources", resources_hugepages),
        t!("linux", sysctl),
        t!("seccomp", seccomp_errno_rule),
        t!("seccomp", seccomp_arg_condition),
        t!("seccomp", seccomp_kill_action),
        t!("seccomp", seccomp_default_action),
        t!("linux", masked_paths),
        t!("linux", readonly_paths),
        t!("linux", rootfs_propagation),
        t!("linux", personality),
        t!("lifecycle", lifecycle_states),
        t!("lifecycle", lifecycle_state_of_missing),
        t!("lifecycle", lifecycle_ops_on_missing),
        t!("lifecycle", lifecycle_start_wrong_state),
        t!("lifecycle", lifecycle_kill_stopped),
        t!("lifecycle", lifecycle_delete_created),
        t!("lifecycle", lifecycle_delete_running),
        t!("lifecycle", lifecycle_duplicate_id),
        t!("lifecycle", lifecycle_kill_signals),
    ]
}

fn sleep_args(ctx: &Ctx) -> TestResult {
    ctx.args(&["/bin/spec-helper", "sleep", "30"])
}

fn wait_status(ctx: &Ctx, want: &str) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if ctx.status() == want {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("status never became {want}: {}", ctx.status()))
}

// ------------------------------------------------------------- process

fn process_args(ctx: &mut Ctx) -> TestResult {
    ctx.args(&["/bin/spec-helper", "report", "extra", "two words"])?;
    ctx.report()?
        .expect("argv", "/bin/spec-helper report extra two words")
}

fn process_env(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["process"]["env"] = json!(["PATH=/bin", "SPEC_VAR=hello world", "EMPTY="]))?;
    let r = ctx.report()?;
    r.expect("env.SPEC_VAR", "hello world")?;
    r.expect("env.EMPTY", "")?;
    r.expect("env.PATH", "/bin")
}

fn process_cwd(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["process"]["cwd"] = "/tmp".into())?;
    ctx.report()?.expect("cwd", "/tmp")
}

fn process_user_uid_gid(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1001}))?;
    let r = ctx.report()?;
    r.expect("uid", "1000")?;
    r.expect("gid", "1001")
}

fn process_additional_gids(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20]})
    })?;
    let r = ctx.report()?;
    let groups: Vec<&str> = r.get("groups").split(',').collect();
    if groups.contains(&"10") && groups.contains(&"20") {
        Ok(())
    } else {
        Err(format!(
            "groups: expected 10 and 20, saw {:?}",
            r.get("groups")
        ))
    }
}

fn process_umask(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["process"]["user"] = json!({"uid": 0, "gid": 0, "umask": 0o077}))?;
    ctx.report()?.expect("umask", "0077")
}

fn process_capabilities(ctx: &mut Ctx) -> TestResult {
    // CAP_CHOWN (0) and CAP_KILL (5): mask 0x21.
    let caps = json!(["CAP_CHOWN", "CAP_KILL"]);
    ctx.config(|c| {
        for set in [
            "bounding",
            "effective",
            "permitted",
            "inheritable",
            "ambient",
        ] {
            c["process"]["capabilities"][set] = caps.clone();
        }
    })?;
    let r = ctx.report()?;
    for f in ["CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"] {
        r.expect(f, "0000000000000021")?;
    }
    // Only the bounding set: the others empty.
    ctx.config(|c| {
        c["process"]["capabilities"] = json!({"bounding": ["CAP_KILL"]});
    })?;
    let r = ctx.report()?;
    r.expect("CapBnd", "0000000000000020")?;
    r.expect("CapEff", "0000000000000000")
}

fn process_rlimits(ctx: &mut Ctx) -> TestResult {
    // At or below the host's hard limits: this host lacks CAP_SYS_RESOURCE.
    ctx.config(|c| {
        c["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096}
        ])
    })?;
    let r = ctx.report()?;
    r.expect("rlimit.NOFILE", "512:1000")?;
    r.expect("rlimit.CORE", "0:4096")
}

fn process_no_new_privileges(ctx: &mut Ctx) -> TestResult {
    ctx.report()?.expect("NoNewPrivs", "1")?;
    ctx.config(|c| c["process"]["noNewPrivileges"] = false.into())?;
    ctx.report()?.expect("NoNewPrivs", "0")
}

fn process_oom_score_adj(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["process"]["oomScoreAdj"] = 123.into())?;
    ctx.report()?.expect("oom_score_adj", "123")
}

fn process_exit_code(ctx: &mut Ctx) -> TestResult {
    ctx.args(&["/bin/spec-helper", "exit", "42"])?;
    expect_eq("exit status of run", Some(42), ctx.run_output().code)
}

/// Plays the caller: receives the pty master on a console socket.
fn process_terminal(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["process"]["terminal"] = true.into())?;
    let sock = ctx.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).map_err(|e| e.to_string())?;
    let bundle = ctx.bundle_str();
    ctx.ok(&[
        "create",
        "--bundle",
        &bundle,
        "--console-socket",
        sock.to_str().unwrap_or_default(),
        &ctx.id,
    ])?;
    listener.set_nonblocking(false).map_err(|e| e.to_string())?;
    let (stream, _) = listener
        .accept()
        .map_err(|e| format!("no connection on the console socket: {e}"))?;
    let mut buf = [0u8; 64];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::empty(),
    )
    .map_err(|e| e.to_string())?;
    let mut master = None;
    for c in msg.cmsgs().map_err(|e| e.to_string())? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: received via SCM_RIGHTS; owned by nobody else.
            master = fds.first().map(|fd| unsafe { OwnedFd::from_raw_fd(*fd) });
        }
    }
    let master = master.ok_or("no fd received over the console socket")?;
    ctx.ok(&["start", &ctx.id])?;
    let mut file = std::fs::File::from(master);
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut b = [0u8; 4096];
    while !seen.contains("stdin_tty=") && Instant::now() < deadline {
        match std::io::Read::read(&mut file, &mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&b[..n])),
        }
    }
    let seen = seen.replace('\r', "");
    Report::parse(&seen).expect("stdin_tty", "1")
}

// ------------------------------------------------------------- root

fn root_readonly(ctx: &mut Ctx) -> TestResult {
    ctx.args(&["/bin/spec-helper", "write", "/newfile"])?;
    let r = ctx.run_output();
    expect_eq("write to / with root.readonly", "EROFS", r.stdout.trim())
}

fn root_writable(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["root"]["readonly"] = false.into())?;
    ctx.args(&["/bin/spec-helper", "write", "/newfile"])?;
    expect_eq(
        "write to / without root.readonly",
        "ok",
        ctx.run_output().stdout.trim(),
    )?;
    expect_eq(
        "file in the bundle",
        true,
        ctx.bundle.join("rootfs/newfile").exists(),
    )
}

fn root_absolute_path(ctx: &mut Ctx) -> TestResult {
    let abs = ctx.bundle.join("rootfs");
    ctx.config(|c| c["root"]["path"] = abs.to_string_lossy().into_owned().into())?;
    ctx.report()?.expect("hostname", "spec")
}

// ------------------------------------------------------------- hostname

fn hostname(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["hostname"] = "spec-host-name".into())?;
    ctx.report()?.expect("hostname", "spec-host-name")
}

fn domainname(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["domainname"] = "spec.example".into())?;
    ctx.report()?.expect("domainname", "spec.example")
}

// ------------------------------------------------------------- mounts

fn mountinfo(ctx: &Ctx) -> Result<String, String> {
    ctx.args(&["/bin/spec-helper", "mounts"])?;
    let r = ctx.run_output();
    if r.code != Some(0) {
        return Err(format!("run exited {:?}: {}", r.code, r.stderr.trim()));
    }
    Ok(r.stdout)
}

fn mount_line<'a>(info: &'a str, dest: &str) -> Option<&'a str> {
    info.lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some(dest))
}

fn add_mount(ctx: &Ctx, m: Value) -> TestResult {
    ctx.config(|c| {
        if let Some(a) = c["mounts"].as_array_mut() {
            a.push(m)
        }
    })
}

fn mount_bind(ctx: &mut Ctx) -> TestResult {
    let src = ctx.dir.join("host-data");
    std::fs::create_dir_all(&src).map_err(|e| e.to_string())?;
    std::fs::write(src.join("file"), "from the host").map_err(|e| e.to_string())?;
    add_mount(
        ctx,
        json!({"destination": "/mnt", "type": "bind", "source": src, "options": ["rbind", "ro"]}),
    )?;
    ctx.args(&["/bin/spec-helper", "read", "/mnt/file"])?;
    expect_eq(
        "read through the bind mount",
        "from the host",
        ctx.run_output().stdout.as_str(),
    )?;
    ctx.args(&["/bin/spec-helper", "write", "/mnt/file"])?;
    expect_eq(
        "write to a ro bind mount",
        "EROFS",
        ctx.run_output().stdout.trim(),
    )
}

fn mount_tmpfs_options(ctx: &mut Ctx) -> TestResult {
    add_mount(
        ctx,
        json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
        "options": ["ro", "nosuid", "nodev", "noexec", "size=1m"]}),
    )?;
    let info = mountinfo(ctx)?;
    let line = mount_line(&info, "/mnt").ok_or_else(|| format!("no /mnt in mountinfo:\n{info}"))?;
    let opts = line.split(' ').nth(5).unwrap_or_default();
    for want in ["ro", "nosuid", "nodev", "noexec"] {
        if !opts.split(',').any(|o| o == want) {
            return Err(format!("/mnt options: expected {want}, saw {opts:?}"));
        }
    }
    if !line.contains(" - tmpfs ") {
        return Err(format!("/mnt is not tmpfs: {line}"));
    }
    Ok(())
}

fn mount_proc_sys_dev(ctx: &mut Ctx) -> TestResult {
    let info = mountinfo(ctx)?;
    for (dest, fstype) in [
        ("/proc", "proc"),
        ("/sys", "sysfs"),
        ("/dev", "tmpfs"),
        ("/dev/shm", "tmpfs"),
    ] {
        let line = mount_line(&info, dest).ok_or_else(|| format!("{dest} not mounted:\n{info}"))?;
        if !line.contains(&format!(" - {fstype} ")) {
            return Err(format!("{dest}: expected {fstype}: {line}"));
        }
    }
    // The default devices exist.
    for dev in [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
    ] {
        ctx.args(&["/bin/spec-helper", "stat", dev])?;
        let r = Report::parse(&ctx.run_output().stdout);
        r.expect("type", "char")
            .map_err(|e| format!("{dev}: {e}"))?;
    }
    Ok(())
}

fn mount_mqueue_devpts(ctx: &mut Ctx) -> TestResult {
    let info = mountinfo(ctx)?;
    for (dest, fstype) in [("/dev/mqueue", "mqueue"), ("/dev/pts", "devpts")] {
        let line = mount_line(&info, dest).ok_or_else(|| format!("{dest} not mounted"))?;
        if !line.contains(&format!(" - {fstype} ")) {
            return Err(format!("{dest}: expected {fstype}: {line}"));
        }
    }
    Ok(())
}

fn mount_cgroup_ro(ctx: &mut Ctx) -> TestResult {
    let info = mountinfo(ctx)?;
    let cg: Vec<&str> = info
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|d| d.starts_with("/sys/fs/cgroup"))
        })
        .collect();
    if cg.is_empty() {
        return Err(format!("no cgroup mounts:\n{info}"));
    }
    ctx.args(&[
        "/bin/spec-helper",
        "write",
        "/sys/fs/cgroup/pids/spec-escape",
    ])?;
    let w = ctx.run_output().stdout;
    if w.trim() == "ok" {
        return Err("created a cgroup through the read-only cgroup mount".into());
    }
    Ok(())
}

fn mount_bind_propagation(ctx: &mut Ctx) -> TestResult {
    let src = ctx.dir.join("prop");
    std::fs::create_dir_all(&src).map_err(|e| e.to_string())?;
    add_mount(
        ctx,
        json!({"destination": "/mnt", "type": "bind", "source": src, "options": ["rbind", "rshared"]}),
    )?;
    let info = mountinfo(ctx)?;
    let line = mount_line(&info, "/mnt").ok_or("no /mnt")?;
    if !line.contains("shared:") {
        return Err(format!("/mnt with rshared is not shared: {line}"));
    }
    Ok(())
}

// ------------------------------------------------------------- hooks

fn hook(script: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", script]})
}

fn hooks_all_kinds_and_state(ctx: &mut Ctx) -> TestResult {
    let out = ctx.dir.join("hooks");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let o = out.display();
    ctx.config(|c| {
        c["root"]["readonly"] = false.into();
        c["hooks"] = json!({
            "prestart": [hook(&format!("cat > {o}/prestart.json"))],
            "createRuntime": [hook(&format!("cat > {o}/createRuntime.json"))],
            // Runs in the container namespace before pivot_root: host paths still resolve.
            "createContainer": [hook(&format!("cat > {o}/createContainer.json"))],
            // Runs in the container after pivot_root: a path inside the rootfs.
            "startContainer": [hook("cat > /tmp/startContainer.json")],
            "poststart": [hook(&format!("cat > {o}/poststart.json"))],
            "poststop": [hook(&format!("cat > {o}/poststop.json"))]
        });
    })?;
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    let pid = ctx.state()?["pid"].as_i64().unwrap_or(0);
    ctx.ok(&["start", &ctx.id])?;
    std::thread::sleep(Duration::from_millis(200));
    ctx.ok(&["kill", &ctx.id, "KILL"])?;
    wait_status(ctx, "stopped")?;
    ctx.ok(&["delete", &ctx.id])?;
    let canonical = ctx.bundle.canonicalize().map_err(|e| e.to_string())?;
    for (kind, file, status) in [
        ("prestart", out.join("prestart.json"), None),
        (
            "createRuntime",
            out.join("createRuntime.json"),
            Some("creating"),
        ),
        ("createContainer", out.join("createContainer.json"), None),
        (
            "startContainer",
            ctx.bundle.join("rootfs/tmp/startContainer.json"),
            None,
        ),
        ("poststart", out.join("poststart.json"), Some("running")),
        ("poststop", out.join("poststop.json"), Some("stopped")),
    ] {
        let text =
            std::fs::read_to_string(&file).map_err(|_| format!("{kind} hook did not run"))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{kind}: state on stdin is not JSON ({e}): {text}"))?;
        expect_eq(
            &format!("{kind} state.id"),
            ctx.id.as_str(),
            v["id"].as_str().unwrap_or(""),
        )?;
        expect_eq(
            &format!("{kind} state.bundle"),
            canonical.to_str().unwrap_or(""),
            v["bundle"].as_str().unwrap_or(""),
        )?;
        if v["ociVersion"].as_str().is_none() {
            return Err(format!("{kind}: state lacks ociVersion: {text}"));
        }
        if let Some(s) = status {
            expect_eq(
                &format!("{kind} state.status"),
                s,
                v["status"].as_str().unwrap_or(""),
            )?;
        }
        // Hooks in the runtime namespace see the init's host pid.
        if matches!(kind, "prestart" | "createRuntime" | "poststart") {
            expect_eq(
                &format!("{kind} state.pid"),
                pid,
                v["pid"].as_i64().unwrap_or(0),
            )?;
        }
    }
    Ok(())
}

fn failing_hook(ctx: &mut Ctx, kind: &str) -> TestResult {
    ctx.config(|c| c["hooks"] = json!({kind: [hook("exit 3")]}))?;
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    let r = ctx.runtime(&["create", "--bundle", &bundle, &ctx.id]);
    if r.code == Some(0) {
        return Err(format!("create succeeded although a {kind} hook failed"));
    }
    // Nothing of the container is left.
    if ctx.runtime(&["state", &ctx.id]).code == Some(0) {
        return Err(format!(
            "container still exists after a failing {kind} hook"
        ));
    }
    Ok(())
}

fn hook_prestart_failure(ctx: &mut Ctx) -> TestResult {
    failing_hook(ctx, "prestart")
}

fn hook_create_runtime_failure(ctx: &mut Ctx) -> TestResult {
    failing_hook(ctx, "createRuntime")
}

fn hook_create_container_failure(ctx: &mut Ctx) -> TestResult {
    failing_hook(ctx, "createContainer")
}

/// A failing startContainer hook stops the container (the spec: generate
/// an error and stop it). The hook runs in the init after `start` may have
/// returned, so what is checked is that the process never keeps running.
fn hook_start_container_failure(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["hooks"] = json!({"startContainer": [hook("exit 3")]}))?;
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    let _ = ctx.runtime(&["start", &ctx.id]);
    wait_status(ctx, "stopped")
        .map_err(|_| "container kept running after a failing startContainer hook".to_string())
}

/// A failing poststart hook is only a warning: start succeeds and the
/// container keeps running.
fn hook_poststart_failure_is_warning(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["hooks"] = json!({"poststart": [hook("exit 3")]}))?;
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    ctx.ok(&["start", &ctx.id])?;
    expect_eq(
        "status after a failing poststart hook",
        "running".to_string(),
        ctx.status(),
    )
}

fn hook_poststop_failure_is_warning(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["hooks"] = json!({"poststop": [hook("exit 3")]}))?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    ctx.ok(&["delete", "--force", &ctx.id])?;
    if ctx.runtime(&["state", &ctx.id]).code == Some(0) {
        return Err("container left after delete with a failing poststop hook".into());
    }
    Ok(())
}

// ------------------------------------------------------------- namespaces

fn host_ns(ns: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{ns}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn ns_pid(ctx: &mut Ctx) -> TestResult {
    let r = ctx.report()?;
    r.expect("pid", "1")?;
    if r.get("ns.pid") == host_ns("pid") {
        return Err("pid namespace is the host's".into());
    }
    Ok(())
}

fn ns_net(ctx: &mut Ctx) -> TestResult {
    ctx.args(&["/bin/spec-helper", "read", "/proc/net/dev"])?;
    let out = ctx.run_output().stdout;
    let ifaces: Vec<&str> = out
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(str::trim))
        .collect();
    expect_eq("interfaces in a new network namespace", vec!["lo"], ifaces)
}

fn ns_ipc_uts_mount(ctx: &mut Ctx) -> TestResult {
    let r = ctx.report()?;
    for ns in ["ipc", "uts", "mnt"] {
        if r.get(&format!("ns.{ns}")) == host_ns(ns) {
            return Err(format!("{ns} namespace is the host's"));
        }
    }
    Ok(())
}

fn ns_cgroup(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| {
        if let Some(a) = c["linux"]["namespaces"].as_array_mut() {
            a.push(json!({"type": "cgroup"}))
        }
    })?;
    let r = ctx.report()?;
    if r.get("ns.cgroup") == host_ns("cgroup") {
        return Err("cgroup namespace is the host's".into());
    }
    // Inside its own cgroup namespace the container sees itself at the root.
    for line in r.get("cgroup").split(';').filter(|l| !l.is_empty()) {
        if !line.ends_with(":/") {
            return Err(format!("cgroup path not at the namespace root: {line}"));
        }
    }
    Ok(())
}

fn ns_user_mappings(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| {
        if let Some(a) = c["linux"]["namespaces"].as_array_mut() {
            a.push(json!({"type": "user"}))
        }
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        // A user namespace may not mount cgroup v1 hierarchies.
        if let Some(m) = c["mounts"].as_array_mut() {
            m.retain(|m| m["type"] != "cgroup");
        }
    })?;
    let r = ctx.report()?;
    r.expect("uid_map", "0 100000 65536")?;
    r.expect("gid_map", "0 100000 65536")?;
    r.expect("uid", "0")
}

fn ns_time(ctx: &mut Ctx) -> TestResult {
    if !Path::new("/proc/self/ns/time").exists() {
        return skip("the kernel has no time namespaces");
    }
    ctx.config(|c| {
        if let Some(a) = c["linux"]["namespaces"].as_array_mut() {
            a.push(json!({"type": "time"}))
        }
    })?;
    let r = ctx.report()?;
    if r.get("ns.time").is_empty() || r.get("ns.time") == host_ns("time") {
        return Err(format!(
            "time namespace is the host's: {}",
            r.get("ns.time")
        ));
    }
    Ok(())
}

fn ns_join_by_path(ctx: &mut Ctx) -> TestResult {
    // A network namespace kept alive by a bind mount, as `ip netns` does.
    let file = ctx.dir.join("netns");
    std::fs::write(&file, "").map_err(|e| e.to_string())?;
    let made = std::process::Command::new("unshare")
        .arg(format!("--net={}", file.display()))
        .arg("true")
        .status()
        .map_err(|e| format!("unshare: {e}"))?;
    if !made.success() {
        return skip("cannot create a persistent network namespace with unshare(1)");
    }
    let inode = std::fs::metadata(&file)
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap_or(0);
    ctx.config(|c| {
        if let Some(a) = c["linux"]["namespaces"].as_array_mut() {
            for ns in a.iter_mut() {
                if ns["type"] == "network" {
                    ns["path"] = Value::from(file.to_string_lossy().into_owned());
                }
            }
        }
    })?;
    let result = ctx
        .report()
        .and_then(|r| r.expect("ns.net", &format!("net:[{inode}]")));
    let _ = std::process::Command::new("umount").arg(&file).status();
    result
}

// ------------------------------------------------------------- linux

fn devices(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| {
        c["linux"]["devices"] = json!([{"path": "/dev/specnull", "type": "c", "major": 1, "minor": 3, "fileMode": 438, "uid": 0, "gid": 0}]);
        if let Some(d) = c["linux"]["resources"]["devices"].as_array_mut() {
            d.push(json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}));
        }
    })?;
    ctx.args(&["/bin/spec-helper", "stat", "/dev/specnull"])?;
    let r = Report::parse(&ctx.run_output().stdout);
    r.expect("type", "char")?;
    r.expect("dev", "1:3")?;
    r.expect("mode", "0666")?;
    ctx.args(&["/bin/spec-helper", "write", "/dev/specnull"])?;
    expect_eq(
        "write to the allowed device",
        "ok",
        ctx.run_output().stdout.trim(),
    )
}

/// Creates the container with a known cgroups path; returns the path.
fn create_in_cgroup(ctx: &Ctx, resources: Value) -> Result<String, String> {
    let path = format!("/{}-cg", ctx.id);
    ctx.config(|c| {
        c["linux"]["cgroupsPath"] = Value::from(path.clone());
        if let Some(obj) = resources.as_object() {
            for (k, v) in obj {
                c["linux"]["resources"][k] = v.clone();
            }
        }
    })?;
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    Ok(path)
}

fn read_cg(controller: &str, path: &str, file: &str) -> Result<String, String> {
    let p = cgroup_dir(controller, path).join(file);
    std::fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{}: {e}", p.display()))
}

fn cgroups_path(ctx: &mut Ctx) -> TestResult {
    if !host_is_cgroup_v1() {
        return skip("checks v1 controller directories; this host is not cgroup v1");
    }
    let path = create_in_cgroup(ctx, json!({}))?;
    let pid = ctx.state()?["pid"].as_i64().unwrap_or(0).to_string();
    for ctl in ["pids", "memory", "cpu", "devices", "freezer"] {
        let procs = read_cg(ctl, &path, "cgroup.procs")?;
        if !procs.lines().any(|l| l == pid) {
            return Err(format!("init {pid} not in {ctl} cgroup {path}: {procs:?}"));
        }
    }
    ctx.ok(&["delete", "--force", &ctx.id])?;
    if cgroup_dir("pids", &path).exists() {
        return Err(format!("cgroup {path} left after delete"));
    }
    Ok(())
}

fn resources_memory(ctx: &mut Ctx) -> TestResult {
    if !host_is_cgroup_v1() {
        return skip("this host is not cgroup v1");
    }
    let path = create_in_cgroup(
        ctx,
        json!({"memory": {"limit": 67108864, "reservation": 33554432}}),
    )?;
    expect_eq(
        "memory.limit_in_bytes",
        "67108864".to_string(),
        read_cg("memory", &path, "memory.limit_in_bytes")?,
    )?;
    expect_eq(
        "memory.soft_limit_in_bytes",
        "33554432".to_string(),
        read_cg("memory", &path, "memory.soft_limit_in_bytes")?,
    )
}

fn resources_cpu(ctx: &mut Ctx) -> TestResult {
    if !host_is_cgroup_v1() {
        return skip("this host is not cgroup v1");
    }
    let path = create_in_cgroup(
        ctx,
        json!({"cpu": {"shares": 512, "quota": 50000, "period": 100000}}),
    )?;
    expect_eq(
        "cpu.shares",
        "512".to_string(),
        read_cg("cpu", &path, "cpu.shares")?,
    )?;
    expect_eq(
        "cpu.cfs_quota_us",
        "50000".to_string(),
        read_cg("cpu", &path, "cpu.cfs_quota_us")?,
    )?;
    expect_eq(
        "cpu.cfs_period_us",
        "100000".to_string(),
        read_cg("cpu", &path, "cpu.cfs_period_us")?,
    )
}

fn resources_pids(ctx: &mut Ctx) -> TestResult {
    if !host_is_cgroup_v1() {
        return skip("this host is not cgroup v1");
    }
    let path = create_in_cgroup(ctx, json!({"pids": {"limit": 42}}))?;
    expect_eq(
        "pids.max",
        "42".to_string(),
        read_cg("pids", &path, "pids.max")?,
    )
}

fn resources_blkio_weight(ctx: &mut Ctx) -> TestResult {
    if !cgroup_dir("blkio", "/").join("blkio.weight").exists() {
        return skip(
            "blkio.weight is absent on this host (no BFQ/CFQ weights in the v1 blkio controller)",
        );
    }
    let path = create_in_cgroup(ctx, json!({"blockIO": {"weight": 300}}))?;
    expect_eq(
        "blkio.weight",
        "300".to_string(),
        read_cg("blkio", &path, "blkio.weight")?,
    )
}

fn resources_hugepages(ctx: &mut Ctx) -> TestResult {
    if !Path::new("/sys/fs/cgroup/hugetlb").exists() {
        return skip(
            "no v1 hugetlb hierarchy on this host (hugetlb is only in the hybrid cgroup2 mount)",
        );
    }
    let path = create_in_cgroup(
        ctx,
        json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}),
    )?;
    expect_eq(
        "hugetlb limit",
        "4194304".to_string(),
        read_cg("hugetlb", &path, "hugetlb.2MB.limit_in_bytes")?,
    )
}

fn sysctl(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| {
        c["linux"]["sysctl"] = json!({"kernel.shm_rmid_forced": "1", "net.ipv4.ip_forward": "1"})
    })?;
    ctx.args(&[
        "/bin/spec-helper",
        "read",
        "/proc/sys/kernel/shm_rmid_forced",
    ])?;
    expect_eq(
        "kernel.shm_rmid_forced",
        "1",
        ctx.run_output().stdout.trim(),
    )?;
    ctx.args(&["/bin/spec-helper", "read", "/proc/sys/net/ipv4/ip_forward"])?;
    expect_eq("net.ipv4.ip_forward", "1", ctx.run_output().stdout.trim())
}

fn seccomp(ctx: &Ctx, profile: Value) -> TestResult {
    ctx.config(|c| c["linux"]["seccomp"] = profile)
}

fn seccomp_errno_rule(ctx: &mut Ctx) -> TestResult {
    seccomp(
        ctx,
        json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95}]}),
    )?;
    ctx.args(&["/bin/spec-helper", "umask-syscall", "022"])?;
    expect_eq(
        "umask under an ERRNO rule with errnoRet 95",
        "EOPNOTSUPP",
        ctx.run_output().stdout.trim(),
    )?;
    ctx.args(&["/bin/spec-helper", "report"])?;
    ctx.report()?.expect("Seccomp", "2")
}

fn seccomp_arg_condition(ctx: &mut Ctx) -> TestResult {
    seccomp(
        ctx,
        json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
            "args": [{"index": 0, "value": 511, "op": "SCMP_CMP_EQ"}]}]}),
    )?;
    ctx.args(&["/bin/spec-helper", "umask-syscall", "777"])?;
    expect_eq(
        "umask(0777), matched by the rule",
        "EPERM",
        ctx.run_output().stdout.trim(),
    )?;
    ctx.args(&["/bin/spec-helper", "umask-syscall", "022"])?;
    expect_eq(
        "umask(022), not matched",
        "ok",
        ctx.run_output().stdout.trim(),
    )
}

fn seccomp_kill_action(ctx: &mut Ctx) -> TestResult {
    seccomp(
        ctx,
        json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["umask"], "action": "SCMP_ACT_KILL"}]}),
    )?;
    ctx.args(&["/bin/spec-helper", "umask-syscall", "022"])?;
    let r = ctx.run_output();
    expect_eq(
        "exit status when a SCMP_ACT_KILL rule fires (128+SIGSYS)",
        Some(159),
        r.code,
    )
}

/// Syscalls a static helper and a runtime's last steps need (runtimes load
/// the filter before waiting for `start`); everything else gets the
/// default action.
const ALLOWED: &[&str] = &[
    "execve",
    "execveat",
    "brk",
    "mmap",
    "munmap",
    "mprotect",
    "mremap",
    "madvise",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "getrandom",
    "read",
    "write",
    "writev",
    "readv",
    "pread64",
    "close",
    "close_range",
    "openat",
    "open",
    "fstat",
    "newfstatat",
    "statx",
    "lseek",
    "exit",
    "exit_group",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sigaltstack",
    "getpid",
    "gettid",
    "getuid",
    "getgid",
    "geteuid",
    "getegid",
    "getppid",
    "uname",
    "futex",
    "sched_getaffinity",
    "sched_yield",
    "poll",
    "ppoll",
    "ioctl",
    "fcntl",
    "dup",
    "dup2",
    "dup3",
    "capget",
    "capset",
    "prctl",
    "setgroups",
    "setuid",
    "setgid",
    "setresuid",
    "setresgid",
    "getgroups",
    "access",
    "faccessat",
    "faccessat2",
    "readlink",
    "readlinkat",
    "getcwd",
    "chdir",
    "fchdir",
    "clock_gettime",
    "nanosleep",
    "clock_nanosleep",
    "sendmsg",
    "recvmsg",
    "socket",
    "connect",
    "write",
    "epoll_wait",
    "getdents64",
    "personality",
    "seccomp",
    "wait4",
    "kill",
    "tgkill",
    "pipe2",
    "memfd_create",
    "accept",
    "accept4",
    "bind",
    "listen",
    "getsockopt",
    "setsockopt",
    "sendto",
    "recvfrom",
    "shutdown",
    "getsockname",
    "socketpair",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "select",
    "pselect6",
    "clone",
    "clone3",
    "fork",
    "vfork",
    "stat",
    "lstat",
    "unlink",
    "unlinkat",
    "mkdirat",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchownat",
    "ftruncate",
    "fsync",
    "rename",
    "renameat",
    "renameat2",
    "getdents",
    "statfs",
    "fstatfs",
    "setsid",
    "getpgrp",
    "setpgid",
    "sysinfo",
    "restart_syscall",
    "membarrier",
    "sched_setaffinity",
    "getrlimit",
    "setrlimit",
    "umount2",
    "mount",
    "fsopen",
    "fsmount",
    "fsconfig",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "openat2",
    "pidfd_open",
    "pidfd_send_signal",
    "waitid",
    "eventfd2",
    "signalfd4",
    "timerfd_create",
    "timerfd_settime",
    "getpriority",
    "setpriority",
    "times",
];

fn seccomp_default_action(ctx: &mut Ctx) -> TestResult {
    seccomp(
        ctx,
        json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 95,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ALLOWED, "action": "SCMP_ACT_ALLOW"}]}),
    )?;
    ctx.args(&["/bin/spec-helper", "umask-syscall", "022"])?;
    let r = ctx.run_output();
    if r.code != Some(0) {
        return Err(format!("run exited {:?}: {}", r.code, r.stderr.trim()));
    }
    expect_eq(
        "umask, not allowed, under defaultAction ERRNO with defaultErrnoRet 95",
        "EOPNOTSUPP",
        r.stdout.trim(),
    )
}

fn masked_paths(ctx: &mut Ctx) -> TestResult {
    // Files in maskedPaths that exist on this kernel (kcore and sched_debug
    // do not everywhere): /proc/timer_list and /proc/keys.
    ctx.args(&["/bin/spec-helper", "stat", "/proc/timer_list"])?;
    let r = Report::parse(&ctx.run_output().stdout);
    r.expect("type", "char")?;
    r.expect("dev", "1:3")?;
    ctx.args(&["/bin/spec-helper", "read", "/proc/keys"])?;
    expect_eq("masked /proc/keys", "", ctx.run_output().stdout.as_str())?;
    let info = mountinfo(ctx)?;
    let line = mount_line(&info, "/sys/firmware")
        .ok_or("masked directory /sys/firmware not mounted over")?;
    if !line.contains(" - tmpfs ")
        || !line
            .split(' ')
            .nth(5)
            .unwrap_or("")
            .split(',')
            .any(|o| o == "ro")
    {
        return Err(format!("masked directory is not a read-only tmpfs: {line}"));
    }
    Ok(())
}

fn readonly_paths(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["root"]["readonly"] = false.into())?;
    ctx.args(&[
        "/bin/spec-helper",
        "write",
        "/proc/sys/kernel/shm_rmid_forced",
    ])?;
    expect_eq(
        "write under readonly /proc/sys",
        "EROFS",
        ctx.run_output().stdout.trim(),
    )?;
    let info = mountinfo(ctx)?;
    for path in ["/proc/fs", "/proc/irq", "/proc/bus"] {
        if !Path::new(path).exists() {
            continue;
        }
        let line = mount_line(&info, path)
            .ok_or_else(|| format!("{path} is not a read-only mount:\n{info}"))?;
        if !line
            .split(' ')
            .nth(5)
            .unwrap_or("")
            .split(',')
            .any(|o| o == "ro")
        {
            return Err(format!("{path} is not mounted read-only: {line}"));
        }
    }
    Ok(())
}

fn rootfs_propagation(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["linux"]["rootfsPropagation"] = "shared".into())?;
    let info = mountinfo(ctx)?;
    let line = mount_line(&info, "/").ok_or("no / in mountinfo")?;
    if !line.contains("shared:") {
        return Err(format!("rootfsPropagation shared: / is not shared: {line}"));
    }
    ctx.config(|c| c["linux"]["rootfsPropagation"] = "private".into())?;
    let info = mountinfo(ctx)?;
    let line = mount_line(&info, "/").ok_or("no / in mountinfo")?;
    if line.contains("shared:") || line.contains("master:") {
        return Err(format!("rootfsPropagation private: / propagates: {line}"));
    }
    Ok(())
}

fn personality(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["linux"]["personality"] = json!({"domain": "LINUX32"}))?;
    let r = ctx.report()?;
    r.expect("machine", "i686")?;
    r.expect("personality", "0x8")
}

// ------------------------------------------------------------- lifecycle

fn lifecycle_states(ctx: &mut Ctx) -> TestResult {
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    let st = ctx.state()?;
    expect_eq(
        "status after create",
        "created",
        st["status"].as_str().unwrap_or(""),
    )?;
    expect_eq("id", ctx.id.as_str(), st["id"].as_str().unwrap_or(""))?;
    let canonical = ctx.bundle.canonicalize().map_err(|e| e.to_string())?;
    expect_eq(
        "bundle",
        canonical.to_str().unwrap_or(""),
        st["bundle"].as_str().unwrap_or(""),
    )?;
    if st["pid"].as_i64().unwrap_or(0) <= 0 || st["ociVersion"].as_str().is_none() {
        return Err(format!("state lacks pid or ociVersion: {st}"));
    }
    ctx.ok(&["start", &ctx.id])?;
    expect_eq("status after start", "running".to_string(), ctx.status())?;
    ctx.ok(&["kill", &ctx.id, "KILL"])?;
    wait_status(ctx, "stopped")?;
    ctx.ok(&["delete", &ctx.id])?;
    if ctx.runtime(&["state", &ctx.id]).code == Some(0) {
        return Err("state succeeds after delete".into());
    }
    Ok(())
}

fn lifecycle_state_of_missing(ctx: &mut Ctx) -> TestResult {
    let r = ctx.runtime(&["state", "no-such-container"]);
    expect_eq(
        "state of a missing container fails",
        true,
        r.code.is_some_and(|c| c != 0),
    )
}

/// Every operation on a container that does not exist fails (delete
/// --force aside, which callers use to clean up idempotently).
fn lifecycle_ops_on_missing(ctx: &mut Ctx) -> TestResult {
    for op in [
        vec!["start", "ghost"],
        vec!["kill", "ghost", "KILL"],
        vec!["delete", "ghost"],
        vec!["state", "ghost"],
    ] {
        if ctx.runtime(&op).code == Some(0) {
            return Err(format!(
                "`{}` on a missing container succeeded",
                op.join(" ")
            ));
        }
    }
    Ok(())
}

fn lifecycle_start_wrong_state(ctx: &mut Ctx) -> TestResult {
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    ctx.ok(&["start", &ctx.id])?;
    expect_eq(
        "start of a running container fails",
        true,
        ctx.runtime(&["start", &ctx.id]).code != Some(0),
    )?;
    ctx.ok(&["kill", &ctx.id, "KILL"])?;
    wait_status(ctx, "stopped")?;
    expect_eq(
        "start of a stopped container fails",
        true,
        ctx.runtime(&["start", &ctx.id]).code != Some(0),
    )
}

fn lifecycle_kill_stopped(ctx: &mut Ctx) -> TestResult {
    ctx.args(&["/bin/spec-helper", "exit", "0"])?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    ctx.ok(&["start", &ctx.id])?;
    wait_status(ctx, "stopped")?;
    expect_eq(
        "kill of a stopped container fails",
        true,
        ctx.runtime(&["kill", &ctx.id, "TERM"]).code != Some(0),
    )
}

fn lifecycle_delete_created(ctx: &mut Ctx) -> TestResult {
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    let pid = ctx.state()?["pid"].as_i64().unwrap_or(0);
    ctx.ok(&["delete", &ctx.id])?;
    std::thread::sleep(Duration::from_millis(100));
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false);
    expect_eq("init of a deleted created container is gone", false, alive)
}

fn lifecycle_delete_running(ctx: &mut Ctx) -> TestResult {
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["run", "--detach", "--bundle", &bundle, &ctx.id])?;
    expect_eq(
        "delete of a running container without --force fails",
        true,
        ctx.runtime(&["delete", &ctx.id]).code != Some(0),
    )?;
    expect_eq("still running", "running".to_string(), ctx.status())?;
    ctx.ok(&["delete", "--force", &ctx.id])?;
    expect_eq(
        "gone after delete --force",
        true,
        ctx.runtime(&["state", &ctx.id]).code != Some(0),
    )
}

fn lifecycle_duplicate_id(ctx: &mut Ctx) -> TestResult {
    sleep_args(ctx)?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    let pid = ctx.state()?["pid"].clone();
    expect_eq(
        "second create with the same id fails",
        true,
        ctx.runtime(&["create", "--bundle", &bundle, &ctx.id]).code != Some(0),
    )?;
    expect_eq(
        "the first container is untouched",
        pid,
        ctx.state()?["pid"].clone(),
    )
}

fn lifecycle_kill_signals(ctx: &mut Ctx) -> TestResult {
    ctx.args(&[
        "/bin/sh",
        "-c",
        "trap 'exit 7' USR1; while true; do sleep 0.05; done",
    ])?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["run", "--detach", "--bundle", &bundle, &ctx.id])?;
    for sig in ["SIGCONT", "CONT", "18"] {
        ctx.ok(&["kill", &ctx.id, sig])?;
    }
    ctx.ok(&["kill", &ctx.id, "USR1"])?;
    wait_status(ctx, "stopped")
}
