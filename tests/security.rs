//! CVE-2019-5736: a container process must not be able to overwrite the
//! runtime binary through /proc/<pid>/exe of a runlet process in its
//! namespaces (see docs/security.md).

mod common;

use std::io::{BufRead, Read, Write};
use std::process::Stdio;
use std::time::Duration;

use common::Env;

fn sha(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).expect("read binary")
}

/// A copy of runlet (so a successful attack could not break other tests).
fn runlet_copy(env: &Env) -> std::path::PathBuf {
    let copy = env.dir.path().join("runlet-copy");
    std::fs::copy(common::runlet_bin(), &copy).expect("copy runlet");
    copy
}

#[test]
fn container_cannot_write_runtime_binary() {
    require_root!();
    let env = Env::new("cve");
    let bin = runlet_copy(&env);
    let before = sha(&bin);
    // Full capabilities: the attacker is root in the container with CAP_SYS_PTRACE.
    env.config(|c| {
        let caps = serde_json::json!([
            "CAP_SYS_PTRACE",
            "CAP_SYS_ADMIN",
            "CAP_DAC_OVERRIDE",
            "CAP_CHOWN",
            "CAP_FOWNER",
            "CAP_KILL",
            "CAP_SETUID",
            "CAP_SETGID"
        ]);
        for set in [
            "bounding",
            "effective",
            "permitted",
            "inheritable",
            "ambient",
        ] {
            c["process"]["capabilities"][set] = caps.clone();
        }
    });
    env.set_args(&["sleep", "10"]);
    let id = env.id("c");
    let root = env.root.to_str().expect("utf8");
    let ok = |args: &[&str]| {
        let out = env.run_bin(&bin, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(&["create", "--bundle", env.bundle_str(), &id]);
    let init = env.pid(&id);

    // While the container is created its init is runlet itself.
    let direct = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{init}/exe"));
    assert!(
        direct.is_err(),
        "host-side open of the init's exe for writing succeeded"
    );

    // The attack: an exec'd process keeps /proc/1/exe open, waits until
    // the runtime no longer executes the file (after start: the test says
    // "go" on its stdin), then reopens it for writing through /proc/self/fd.
    let mut attacker = std::process::Command::new(&bin)
        .args(["--root", root, "exec", &id, "sh", "-c"])
        .arg(
            "exec 3</proc/1/exe; echo opened; read go; \
             if echo pwned > /proc/self/fd/3; then echo WROTE; else echo DENIED; fi; \
             if echo pwned >> /proc/self/fd/3; then echo APPENDED; else echo DENIED; fi",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn attacker");
    // Start only once the attacker holds the file (however slow the machine).
    let mut first = String::new();
    let mut attacker_out =
        std::io::BufReader::new(attacker.stdout.take().expect("attacker stdout"));
    attacker_out.read_line(&mut first).expect("attacker output");
    ok(&["start", &id]);
    let mut go = attacker.stdin.take().expect("attacker stdin");
    go.write_all(b"go\n").expect("tell the attacker to go");
    drop(go);
    let mut rest = String::new();
    attacker_out
        .read_to_string(&mut rest)
        .expect("attacker output");
    let out = attacker.wait_with_output().expect("attacker");
    let stdout = format!("{first}{rest}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        first.contains("opened"),
        "attack did not run: {stdout} {stderr}"
    );
    assert!(
        !stdout.contains("WROTE") && !stdout.contains("APPENDED"),
        "binary was writable: {stdout}"
    );
    assert!(
        stderr.contains("Read-only file system"),
        "expected EROFS, got: {stderr}"
    );
    ok(&["delete", "--force", &id]);
    assert_eq!(sha(&bin), before, "runtime binary changed");
}

#[test]
fn exec_process_image_is_read_only() {
    require_root!();
    // `runlet exec` clones the process that joins the container from
    // itself, so its own image must be the read-only one too.
    let env = Env::new("cve-exec");
    let id = env.id("e");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    let mut child = env
        .cmd()
        .args(["exec", &id, "sleep", "2"])
        .spawn()
        .expect("spawn exec");
    std::thread::sleep(Duration::from_millis(500));
    let exe = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{}/exe", child.id()));
    let err = exe.expect_err("runlet exec's image opened for writing");
    assert!(
        matches!(err.raw_os_error(), Some(libc::EROFS) | Some(libc::ETXTBSY)),
        "unexpected error {err}"
    );
    let image = std::fs::File::open(format!("/proc/{}/exe", child.id())).expect("open exe");
    // SAFETY: statvfs is plain data filled by the kernel.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: the fd is valid for the duration of the call.
    assert_eq!(
        unsafe { libc::fstatvfs(std::os::fd::AsRawFd::as_raw_fd(&image), &mut st) },
        0
    );
    assert!(
        st.f_flag & libc::ST_RDONLY != 0,
        "runlet exec runs from a writable mount"
    );
    let _ = child.wait();
    env.ok(&["delete", "-f", &id]);
}

/// These capabilities in the bounding, effective and permitted sets; none
/// inheritable or ambient.
fn give_caps(env: &Env, caps: &[&str]) {
    env.config(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = serde_json::json!(caps);
        }
        for set in ["inheritable", "ambient"] {
            c["process"]["capabilities"][set] = serde_json::json!([]);
        }
    });
}

/// Runs `script` with the container's sh through `exec`; the script's last
/// word must be reached (it ends with `echo done`).
fn sh_in(env: &Env, id: &str, script: &str) -> String {
    let out = env.ok(&["exec", id, "sh", "-c", &format!("{script}; echo done")]);
    assert!(out.contains("done"), "{out}");
    out
}

/// Opens every `/proc/1/map_files` entry of the container, read-only and
/// then read-write, from a shell `exec`'d into it, and returns the lines:
/// `readable X` for a read-only open that worked, `WRITABLE X` for a
/// read-write one. The read-write open is closed at once: nothing is ever
/// written (`<>` neither truncates nor writes).
fn map_files_report(env: &Env, id: &str) -> String {
    sh_in(
        env,
        id,
        "for f in /proc/1/map_files/*; do \
           (exec 3<\"$f\") 2>/dev/null && echo \"readable $f\"; \
           (exec 3<>\"$f\") 2>/dev/null && echo \"WRITABLE $f\"; \
         done",
    )
}

fn assert_no_writable_mapping(report: &str, what: &str) {
    let readable = report.lines().filter(|l| l.starts_with("readable")).count();
    assert!(
        readable > 0,
        "{what}: no map_files entry could be opened at all, the test proves nothing: {report}"
    );
    assert!(
        !report.contains("WRITABLE"),
        "{what}: a file mapped into runlet opened read-write from the container: {report}"
    );
}

#[test]
fn no_host_file_writable_through_map_files() {
    require_root!();
    // The attacker: root in the container with CAP_SYS_PTRACE and
    // CAP_CHECKPOINT_RESTORE (what /proc/<pid>/map_files needs), no
    // CAP_SYS_ADMIN.
    let caps = [
        "CAP_SYS_PTRACE",
        "CAP_CHECKPOINT_RESTORE",
        "CAP_DAC_OVERRIDE",
        "CAP_KILL",
    ];

    // A Wasm container: its PID 1 is runlet (with the compiled module from
    // the cache mapped) for its whole life.
    let env = Env::new_wasm("mapfiles", &["/app/probe-p1.wasm", "sleep", "30"]);
    give_caps(&env, &caps);
    let id = env.id("w");
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    let report = map_files_report(&env, &id);
    assert_no_writable_mapping(&report, "wasm init");
    env.ok(&["delete", "-f", &id]);
    // Warm start: the module now comes from the cache file.
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    let report = map_files_report(&env, &id);
    assert_no_writable_mapping(&report, "wasm init, cached module");
    assert!(
        report.lines().filter(|l| l.starts_with("readable")).count() >= 2,
        "expected the runtime image and the cache file mapped: {report}"
    );
    env.ok(&["delete", "-f", &id]);

    // A native container between create and start: PID 1 is runlet.
    let env = Env::new("mapfiles-native");
    give_caps(&env, &caps);
    let id = env.id("n");
    env.ok(&["create", "--bundle", env.bundle_str(), &id]);
    let report = map_files_report(&env, &id);
    assert_no_writable_mapping(&report, "native init before start");
    env.ok(&["delete", "-f", &id]);
}

#[test]
fn cgroupfs_is_read_only_in_the_container() {
    require_root!();
    for cgroupns in [false, true] {
        // runlet spec's default capabilities and its `ro` cgroup mount.
        let env = Env::new("cgroup-ro");
        env.config(|c| {
            let ns = c["linux"]["namespaces"].as_array_mut().expect("namespaces");
            ns.retain(|n| n["type"] != "cgroup");
            if cgroupns {
                ns.push(serde_json::json!({"type": "cgroup"}));
            }
            // A limit the container must see in its own cgroup below.
            c["linux"]["resources"]["pids"] = serde_json::json!({"limit": 77});
        });
        let id = env.id("c");
        env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
        // Opened for appending (no truncation) and closed at once.
        let out = sh_in(
            &env,
            &id,
            // v1 files, then the v2 ones (scripts/vm-test).
            "for f in /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max \
                      /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/unified/cgroup.subtree_control \
                      /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max \
                      /sys/fs/cgroup/cgroup.subtree_control /sys/fs/cgroup/cgroup.procs; do \
               [ -e \"$f\" ] || continue; echo \"exists $f\"; \
               (exec 3>>\"$f\") 2>/dev/null && echo \"OPENED $f\"; \
             done; \
             busybox mkdir /sys/fs/cgroup/pids/sub 2>/dev/null && echo MKDIR; \
             busybox mkdir /sys/fs/cgroup/sub 2>/dev/null && echo MKDIR; \
             echo limit $(busybox cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null)",
        );
        assert!(out.contains("exists "), "no cgroup files visible: {out}");
        // Its /sys/fs/cgroup shows the container's own cgroup, not the
        // host's; on v2 without a cgroup namespace a new cgroup2 mount shows
        // the whole hierarchy (as runc's and crun's), so there is nothing to
        // compare.
        if cgroupns || !common::cgroup_v2() {
            assert!(
                out.contains("limit 77"),
                "cgroupns={cgroupns}: not the container's cgroup: {out}"
            );
        }
        assert!(
            !out.contains("OPENED") && !out.contains("MKDIR"),
            "cgroupns={cgroupns}: cgroupfs writable: {out}"
        );
        env.ok(&["delete", "-f", &id]);
        env.assert_gone(&id);
    }
}

#[test]
fn devices_are_denied_unless_allowed() {
    require_root!();
    for resources in [serde_json::json!({"devices": []}), serde_json::Value::Null] {
        let env = Env::new("devices");
        give_caps(&env, &["CAP_MKNOD", "CAP_DAC_OVERRIDE"]);
        env.config(|c| match &resources {
            serde_json::Value::Null => {
                c["linux"]
                    .as_object_mut()
                    .expect("linux")
                    .remove("resources");
            }
            r => c["linux"]["resources"] = r.clone(),
        });
        let id = env.id("d");
        env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
        // mknod of /dev/kmsg (1:11) may work (runc allows `m` for every
        // device); opening it must not. Never written: opened and closed.
        let out = sh_in(
            &env,
            &id,
            "busybox mknod /dev/kmsg-test c 1 11 && echo MADE; \
             (exec 3>>/dev/kmsg-test) 2>/dev/null && echo OPENED; \
             busybox mknod /dev/console-test c 5 1; busybox mknod /dev/tun-test c 10 200; \
             for d in console-test tun-test; do \
               (exec 3>>/dev/$d) 2>/dev/null && echo OPENED-$d; done; \
             (exec 3>>/dev/null) && echo NULL-OK",
        );
        assert!(out.contains("NULL-OK"), "{out}");
        // Nor /dev/console (5:1) or tun (10:200), which libcgroups allows
        // by default and runc does not (v1: devices.deny; v2: runlet's own
        // eBPF program).
        assert!(
            !out.contains("OPENED"),
            "{resources}: a denied device opened inside the container: {out}"
        );
        let list =
            std::fs::read_to_string(common::cgroup_dir_of("devices", &id).join("devices.list"))
                .unwrap_or_default();
        if !list.is_empty() {
            assert!(!list.contains("a *:* rwm"), "{resources}: {list}");
            for unwanted in ["c 10:200 rwm", "c 5:1 rwm"] {
                assert!(
                    !list.contains(unwanted),
                    "{resources}: {unwanted} allowed: {list}"
                );
            }
            assert!(list.contains("c 1:3 rwm"), "{list}");
        }
        env.ok(&["delete", "-f", &id]);
    }
}

/// A scratch cgroup of this test (v1: in the pids hierarchy), with one
/// process of its own in it.
struct SharedCgroup {
    path: String,
    dir: std::path::PathBuf,
    bystander: std::process::Child,
}

impl SharedCgroup {
    fn new(name: &str) -> SharedCgroup {
        let path = format!("/runlet-test-{name}-{}", std::process::id());
        let base = if common::cgroup_v2() {
            "/sys/fs/cgroup"
        } else {
            "/sys/fs/cgroup/pids"
        };
        let dir = std::path::Path::new(base).join(path.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).expect("scratch cgroup");
        let bystander = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("bystander");
        std::fs::write(dir.join("cgroup.procs"), bystander.id().to_string()).expect("join");
        SharedCgroup {
            path,
            dir,
            bystander,
        }
    }

    fn bystander_alive(&self) -> bool {
        common::alive(self.bystander.id() as i32)
    }
}

impl Drop for SharedCgroup {
    fn drop(&mut self) {
        let _ = self.bystander.kill();
        let _ = self.bystander.wait();
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn delete_kills_only_the_containers_own_processes() {
    require_root!();
    if !std::path::Path::new("/sys/fs/cgroup/pids/cgroup.procs").exists() && !common::cgroup_v2() {
        eprintln!("SKIPPED: needs the cgroup v1 pids hierarchy or a pure v2 host");
        return;
    }
    let shared = SharedCgroup::new("shared");
    for own_pidns in [true, false] {
        let env = Env::new("shared-cg");
        env.config(|c| {
            c["linux"]["cgroupsPath"] = serde_json::json!(shared.path);
            if !own_pidns {
                c["linux"]["namespaces"]
                    .as_array_mut()
                    .expect("namespaces")
                    .retain(|n| n["type"] != "pid");
            }
        });
        let id = env.id("s");
        env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
        let init = env.pid(&id);
        let procs = std::fs::read_to_string(shared.dir.join("cgroup.procs")).expect("procs");
        assert!(
            procs.lines().any(|l| l == init.to_string()),
            "container not in the shared cgroup: {procs}"
        );
        env.ok(&["delete", "-f", &id]);
        assert!(
            common::dies(init),
            "pidns={own_pidns}: init survived delete"
        );
        assert!(
            shared.bystander_alive(),
            "pidns={own_pidns}: delete killed a process that is not the container's"
        );
        assert!(
            shared.dir.exists(),
            "delete removed a cgroup it did not make"
        );
        assert!(!env.root.join(&id).exists());
    }
}

#[test]
fn cgroups_path_cannot_leave_the_cgroup_mounts() {
    require_root!();
    let env = Env::new("cg-escape");
    // A plain directory with a file named cgroup.procs listing a live
    // process of this test: cleanup must neither kill it nor remove it.
    let target = env.dir.path().join("escape");
    std::fs::create_dir_all(&target).expect("mkdir");
    let mut bystander = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("bystander");
    std::fs::write(target.join("cgroup.procs"), bystander.id().to_string()).expect("write");
    let climb = format!("/../../../../..{}", target.display());
    let relative = format!("../../../../..{}", target.display());
    for path in [&climb, &relative] {
        env.config(|c| c["linux"]["cgroupsPath"] = serde_json::json!(path));
        let id = env.id("e");
        env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
        let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", env.pid(&id))).expect("cgroup");
        assert!(
            cg.lines()
                .any(|l| l.contains(":pids:") || l.starts_with("0::")),
            "{cg}"
        );
        assert!(
            cg.contains(target.to_str().expect("utf8")),
            "cleaned path not used below the cgroup root: {cg}"
        );
        env.ok(&["delete", "-f", &id]);
        assert!(
            common::alive(bystander.id() as i32),
            "{path}: cleanup killed a host process"
        );
        let left: Vec<_> = std::fs::read_dir(&target)
            .expect("read")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("cgroup.procs")],
            "{path}"
        );
    }
    let _ = bystander.kill();
    let _ = bystander.wait();
}

#[test]
fn oversized_wasm_module_fails_create() {
    require_root!();
    let env = Env::new_wasm("wasm-big", &["/app/big.wasm"]);
    // A 1 GiB sparse file that starts like a core module.
    let path = env.bundle.join("rootfs/app/big.wasm");
    let f = std::fs::File::create(&path).expect("create");
    std::io::Write::write_all(&mut &f, b"\0asm\x01\0\0\0").expect("header");
    f.set_len(1 << 30).expect("sparse");
    let id = env.id("big");
    let err = env.fails(
        &["create", "--bundle", env.bundle_str(), &id],
        "Wasm module limit",
    );
    assert!(
        err.contains("process.args[0]") && err.contains("1073741824"),
        "{err}"
    );
    env.assert_gone(&id);
    // The limit is the operator's to raise or lower.
    let out = env
        .cmd()
        .args([
            "--wasm-max-module-size",
            "1K",
            "create",
            "--bundle",
            env.bundle_str(),
            &id,
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1024-byte Wasm module limit"));
    env.assert_gone(&id);
}

/// `linux.resources.unified` is applied on a v2 host (scripts/vm-test) and
/// refused on v1, as runc does, instead of being dropped without a word.
#[test]
fn unified_limits_apply_on_v2_and_are_refused_on_v1() {
    require_root!();
    let env = Env::new("unified-v1");
    env.config(|c| {
        c["linux"]["resources"]["unified"] = serde_json::json!({"memory.high": "10485760"})
    });
    let id = env.id("u");
    if common::cgroup_v2() {
        env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
        let high =
            std::fs::read_to_string(common::cgroup_dir_of("memory", &id).join("memory.high"))
                .expect("memory.high");
        assert_eq!(high.trim(), "10485760");
        env.ok(&["delete", "-f", &id]);
        env.assert_gone(&id);
        return;
    }
    env.fails(
        &["create", "--bundle", env.bundle_str(), &id],
        "linux.resources.unified: memory.high cannot be applied",
    );
    env.assert_gone(&id);
}
