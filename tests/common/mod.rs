//! Helpers for tests that drive the runlet binary the way callers do.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod callers;

pub const BUSYBOX: &str = "/bin/busybox";

/// Why this machine cannot run container tests, if it cannot.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (namespaces, cgroups, mounts); CI runs as root".into());
    }
    if !Path::new(BUSYBOX).exists() {
        return Some(format!(
            "{BUSYBOX} missing: run scripts/setup (package busybox-static)"
        ));
    }
    None
}

/// Skips the calling test, saying why, when containers cannot run here.
#[macro_export]
macro_rules! require_root {
    () => {
        if let Some(reason) = common::skip_reason() {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
}

/// The message of runlet's one-line error, as a caller reads it: `msg` of
/// a `time=… level=error msg="…"` line (unquoted), else the line.
pub fn error_message(stderr: &str) -> String {
    let line = stderr.trim_end();
    let Some(quoted) = line
        .split_once(" msg=\"")
        .map(|(_, m)| m.strip_suffix('"').unwrap_or(m))
    else {
        return line.to_string();
    };
    let mut out = String::with_capacity(quoted.len());
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn runlet_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_runlet"))
}

/// A scratch state root and bundle, removed (with any containers) on drop.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub bundle: PathBuf,
    prefix: String,
}

impl Env {
    pub fn new(name: &str) -> Env {
        let dir = tempfile::Builder::new()
            .prefix(&format!("runlet-test-{name}-"))
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        let root = dir.path().join("state");
        let bundle = dir.path().join("bundle");
        make_busybox_bundle(&bundle);
        Env {
            root,
            bundle,
            prefix: format!("{name}-{}", std::process::id()),
            dir,
        }
    }

    /// A container id unique to this test process.
    pub fn id(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.prefix)
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(runlet_bin());
        if systemd_driver() {
            c.arg("--systemd-cgroup");
        }
        c.arg("--root")
            .arg(&self.root)
            .env("RUNLET_WASM_CACHE", self.wasm_cache());
        c
    }

    /// This test's compiled Wasm code cache.
    pub fn wasm_cache(&self) -> PathBuf {
        self.dir.path().join("wasm-cache")
    }

    /// Runs runlet with stdout and stderr captured through files: a
    /// detached container inherits them, so pipes would stay open (and
    /// `output()` block) for as long as the container lives.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_bin(&runlet_bin(), args)
    }

    /// `run` with another runlet binary (a copy, in the security tests).
    pub fn run_bin(&self, bin: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin);
        if systemd_driver() {
            cmd.arg("--systemd-cgroup");
        }
        cmd.arg("--root")
            .arg(&self.root)
            .env("RUNLET_WASM_CACHE", self.wasm_cache())
            .args(args);
        output_of(&mut cmd)
    }

    /// Runs runlet with `input` on its standard input (pipes for all three).
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("wait")
    }

    /// Runs and asserts success, returning stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "runlet {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and asserts failure with exit status 1 and a single-line error
    /// containing `needle`; returns stderr.
    pub fn fails(&self, args: &[&str], needle: &str) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "runlet {args:?}: want exit 1, stderr: {err}"
        );
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "error is not one line: {err:?}"
        );
        assert!(err.contains("error"), "no 'error' in {err:?}");
        assert!(!err.contains("panicked"), "panic: {err}");
        let msg = error_message(&err);
        assert!(
            msg.contains(needle),
            "runlet {args:?}: error {msg:?} lacks {needle:?}"
        );
        msg
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state JSON")
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn pid(&self, id: &str) -> i32 {
        self.state(id)["pid"].as_i64().unwrap_or(0) as i32
    }

    /// Rewrites the bundle's config.json through `f`.
    pub fn config(&self, f: impl FnOnce(&mut Value)) {
        let path = self.bundle.join("config.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(&path).expect("read config"))
            .expect("parse config");
        f(&mut v);
        std::fs::write(&path, serde_json::to_vec_pretty(&v).expect("json")).expect("write config");
    }

    pub fn set_args(&self, args: &[&str]) {
        let args: Vec<Value> = args.iter().map(|a| Value::from(*a)).collect();
        self.config(|c| c["process"]["args"] = Value::from(args));
    }

    pub fn bundle_str(&self) -> &str {
        self.bundle.to_str().expect("utf-8 path")
    }

    /// Asserts that nothing of container `id` is left on the host.
    pub fn assert_gone(&self, id: &str) {
        assert!(
            !self.root.join(id).exists(),
            "state dir of {id} left behind"
        );
        for ctl in ["memory", "pids", "cpu", "freezer", "devices"] {
            let p = cgroup_dir_of(ctl, id);
            assert!(!p.exists(), "cgroup {} left behind", p.display());
        }
    }

    /// `exec -d` of `args` with a pid file; asserts the new process is in
    /// the container's (pids) cgroup, as seen from the host.
    pub fn assert_exec_joins_cgroup(&self, id: &str, args: &[&str]) {
        let pid_file = self.dir.path().join(format!("exec-{}.pid", args.len()));
        let mut all = vec![
            "exec",
            "-d",
            "--pid-file",
            pid_file.to_str().expect("utf8"),
            id,
        ];
        all.extend_from_slice(args);
        self.ok(&all);
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .expect("pid")
            .trim()
            .parse()
            .expect("num");
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
        // v1: the pids hierarchy's line; v2: the one `0::` line.
        assert!(
            cg.lines()
                .any(|l| (l.contains("pids:") || l.starts_with("0::"))
                    && l.ends_with(&format!("/{id}"))),
            "{cg}"
        );
    }

    pub fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let out = self.run(&["state", id]);
            let status = serde_json::from_slice::<Value>(&out.stdout)
                .ok()
                .and_then(|v| v["status"].as_str().map(String::from));
            if out.status.success() && status.as_deref() == Some(want) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("container {id} never reached {want}: {}", self.status(id));
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                if let Some(id) = e.file_name().to_str() {
                    let _ = self.run(&["delete", "--force", id]);
                }
            }
        }
    }
}

/// A bundle whose rootfs is busybox-static, with config.json from
/// `runlet spec` adjusted for non-interactive use.
pub fn make_busybox_bundle(bundle: &Path) {
    let rootfs = bundle.join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
        std::fs::create_dir_all(rootfs.join(d)).expect("mkdir rootfs");
    }
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).expect("copy busybox");
    for applet in [
        "sh", "sleep", "echo", "cat", "ls", "id", "true", "false", "ps", "hostname", "env", "pwd",
        "stat", "test", "tty", "readlink",
    ] {
        let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
    let out = Command::new(runlet_bin())
        .arg("spec")
        .arg("--bundle")
        .arg(bundle)
        .output()
        .expect("runlet spec");
    assert!(
        out.status.success(),
        "runlet spec: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = bundle.join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("parse");
    v["process"]["terminal"] = Value::from(false);
    v["process"]["args"] = serde_json::json!(["sleep", "30"]);
    std::fs::write(&path, serde_json::to_vec_pretty(&v).expect("json")).expect("write");
}

/// Runs a command to completion with stdout and stderr captured through
/// files (see `Env::run`).
pub fn output_of(cmd: &mut Command) -> Output {
    let out = tempfile::tempfile().expect("stdout file");
    let err = tempfile::tempfile().expect("stderr file");
    let status = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(err.try_clone().expect("dup"))
        .status()
        .expect("spawn");
    Output {
        status,
        stdout: read_back(out),
        stderr: read_back(err),
    }
}

fn read_back(mut f: std::fs::File) -> Vec<u8> {
    use std::io::{Read, Seek};
    let mut buf = Vec::new();
    f.rewind().expect("rewind");
    f.read_to_end(&mut buf).expect("read back");
    buf
}

impl Env {
    /// `runlet run` of the bundle with a pty as stdin/stdout/stderr, as at
    /// an interactive shell; returns the child and the pty master.
    pub fn run_on_pty(&self, id: &str) -> (std::process::Child, std::os::fd::OwnedFd) {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let slave = std::fs::File::from(pty.slave);
        let child = self
            .cmd()
            .args(["run", "--bundle", self.bundle_str(), id])
            .stdin(slave.try_clone().expect("dup"))
            .stdout(slave.try_clone().expect("dup"))
            .stderr(slave)
            .spawn()
            .expect("spawn run");
        (child, pty.master)
    }
}

/// Reads from a pty master until `needle` shows up or 10 s pass.
pub fn read_until(master: &std::os::fd::OwnedFd, needle: &str) -> String {
    use std::io::Read;
    let mut file = std::fs::File::from(master.try_clone().expect("dup"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !seen.contains(needle) {
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&file),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(200u16)).unwrap_or(0) == 0 {
            continue;
        }
        match file.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    seen
}

/// Compiles a C fixture from tests/fixtures with `cc`; Err says why not
/// (no compiler: scripts/setup installs build-essential).
pub fn build_c(source: &str, out: &Path, flags: &[&str]) -> Result<(), String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(source);
    match Command::new("cc")
        .args(flags)
        .arg("-O2")
        .arg("-o")
        .arg(out)
        .arg(&src)
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => panic!("building {source}: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => Err(format!(
            "no C compiler to build {source} ({e}); scripts/setup installs build-essential"
        )),
    }
}

/// The committed Wasm test guests (see scripts/build-fixtures).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/wasm")
        .join(name)
}

impl Env {
    /// A bundle with busybox and the Wasm fixtures under /app, running `args`.
    pub fn new_wasm(name: &str, args: &[&str]) -> Env {
        let env = Env::new(name);
        let app = env.bundle.join("rootfs/app");
        std::fs::create_dir_all(&app).expect("mkdir app");
        for f in std::fs::read_dir(fixture("")).expect("fixtures").flatten() {
            std::fs::copy(f.path(), app.join(f.file_name())).expect("copy fixture");
        }
        env.set_args(args);
        env
    }
}

/// Whether a pid is alive (and not a zombie).
/// Polls `f` every 20 ms until it returns Some, for up to `limit`: the
/// tests wait for the event itself, the limit is only a safety net.
#[allow(dead_code)]
pub fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` is gone (or a zombie) within 30 s: a killed process takes
/// a moment to exit, longer on a loaded or emulated machine.
#[allow(dead_code)]
pub fn dies(pid: i32) -> bool {
    poll(Duration::from_secs(30), || (!alive(pid)).then_some(())).is_some()
}

pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Where runlet puts a container without `cgroupsPath` (runc's rule, see
/// src/cgroups/placement.rs): below the caller's cgroup. On v1 that is the deepest
/// of this process's controller paths when the others lie above it.
pub fn default_cgroup_parent() -> PathBuf {
    let own = std::fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup");
    if cgroup_v2() {
        // One line, `0::/path`.
        let path = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap_or("/");
        return PathBuf::from(path);
    }
    let paths: Vec<PathBuf> = own
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            (!ctrls.is_empty() && !ctrls.starts_with("name=")).then(|| PathBuf::from(path))
        })
        .collect();
    let deepest = paths
        .iter()
        .max_by_key(|p| p.components().count())
        .cloned()
        .unwrap_or_else(|| PathBuf::from("/"));
    assert!(
        paths.iter().all(|p| deepest.starts_with(p)),
        "this test's cgroups diverge: {own}"
    );
    deepest
}

/// A pure cgroup v2 host (scripts/vm-test boots one); else hybrid v1.
pub fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// `RUNLET_TEST_CGROUP_MANAGER=systemd` (scripts/vm-guest sets it under
/// systemd): every runlet command gets `--systemd-cgroup`.
pub fn systemd_driver() -> bool {
    std::env::var("RUNLET_TEST_CGROUP_MANAGER").is_ok_and(|m| m == "systemd")
}

/// The cgroup directory of a container `id` placed by default: in
/// controller `ctl`'s v1 hierarchy, or the unified one on a v2 host; with
/// the systemd driver, its scope `system.slice/runlet-<id>.scope`.
pub fn cgroup_dir_of(ctl: &str, id: &str) -> PathBuf {
    let base = Path::new("/sys/fs/cgroup");
    let base = if cgroup_v2() {
        base.to_path_buf()
    } else {
        base.join(ctl)
    };
    if systemd_driver() {
        return base.join(format!("system.slice/runlet-{id}.scope"));
    }
    base.join(
        default_cgroup_parent()
            .strip_prefix("/")
            .unwrap_or(Path::new("")),
    )
    .join(id)
}

/// A directory bind-mounted read-only onto itself; unmounted on drop.
pub struct ReadOnlyBind(PathBuf);

impl ReadOnlyBind {
    pub fn new(dir: &Path) -> ReadOnlyBind {
        let run = |args: &[&str], source: bool| {
            let mut cmd = Command::new("mount");
            cmd.args(args);
            if source {
                cmd.arg(dir);
            }
            let out = cmd.arg(dir).output().expect("mount");
            assert!(
                out.status.success(),
                "mount {args:?} {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&["--bind"], true);
        let guard = ReadOnlyBind(dir.to_path_buf());
        run(&["-o", "remount,bind,ro"], false);
        guard
    }
}

impl Drop for ReadOnlyBind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One HTTP/1.1 GET over a fresh connection: (status, body).
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line: {head:?}")))?;
    // Chunked bodies: join the chunks.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || tail.len() < n {
                break;
            }
            out.push_str(&tail[..n]);
            rest = tail[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_string()
    };
    Ok((status, body))
}

/// Polls until something answers HTTP at `addr` (a generous deadline: a
/// debug build compiles the module first on a loaded machine).
pub fn wait_for_http(addr: &str) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match http_get(addr, "/") {
            Ok(r) => return r,
            Err(e) if Instant::now() > deadline => panic!("nothing answers at {addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A tiny HTTP server on 127.0.0.1 for guests' outgoing requests: answers
/// every request with `body` and reports each request path on a channel.
pub struct TestServer {
    pub addr: String,
    pub paths: std::sync::mpsc::Receiver<String>,
}

impl TestServer {
    pub fn start(body: &'static str) -> TestServer {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                if tx.send(path).is_err() {
                    return;
                }
            }
        });
        TestServer { addr, paths: rx }
    }
}
