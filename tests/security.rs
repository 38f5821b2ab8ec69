//! CVE-2019-5736: a container process must not be able to overwrite the
//! runtime binary through /proc/<pid>/exe of a runlet process in its
//! namespaces (see docs/security.md).

mod common;

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
    // the runtime no longer executes the file (after start), then reopens
    // it for writing through /proc/self/fd.
    let attacker = std::process::Command::new(&bin)
        .args(["--root", root, "exec", &id, "sh", "-c"])
        .arg(
            "exec 3</proc/1/exe; echo opened; sleep 1.5; \
             if echo pwned > /proc/self/fd/3; then echo WROTE; else echo DENIED; fi; \
             if echo pwned >> /proc/self/fd/3; then echo APPENDED; else echo DENIED; fi",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn attacker");
    std::thread::sleep(Duration::from_millis(700));
    ok(&["start", &id]);
    let out = attacker.wait_with_output().expect("attacker");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("opened"),
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
