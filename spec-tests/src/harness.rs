//! Bundles, runtime invocation and report parsing for the tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

static SYSTEMD: AtomicBool = AtomicBool::new(false);

/// `--systemd-cgroup`: every runtime runs with the systemd cgroup driver and
/// the tests' cgroups are systemd scopes.
pub fn set_systemd(on: bool) {
    SYSTEMD.store(on, Ordering::Relaxed);
}

pub fn systemd() -> bool {
    SYSTEMD.load(Ordering::Relaxed)
}

/// A cgroup for the test named `name`: its `linux.cgroupsPath`, and its
/// path under the cgroup root. With cgroupfs that is `/name` for both; with
/// the systemd driver the `slice:prefix:name` form, which is the scope
/// `/system.slice/spectest-name.scope`.
pub fn cgroups_path(name: &str) -> (String, String) {
    if systemd() {
        (
            format!("system.slice:spectest:{name}"),
            format!("/system.slice/spectest-{name}.scope"),
        )
    } else {
        (format!("/{name}"), format!("/{name}"))
    }
}

/// As `cgroups_path`, two levels down: under `/spectest-nest/<name>-mid`
/// with cgroupfs, in the slice `spectest-nested.slice` (which systemd
/// places in `spectest.slice`) with the systemd driver.
pub fn nested_cgroups_path(name: &str) -> (String, String) {
    if systemd() {
        (
            format!("spectest-nested.slice:spectest:{name}"),
            format!("/spectest.slice/spectest-nested.slice/spectest-{name}.scope"),
        )
    } else {
        let p = format!("/spectest-nest/{name}-mid/{name}");
        (p.clone(), p)
    }
}

pub struct Runtime {
    pub name: String,
    pub path: PathBuf,
}

impl Runtime {
    pub fn new(name: &str, path: PathBuf) -> Runtime {
        Runtime {
            name: name.to_string(),
            path,
        }
    }
}

pub enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

impl Outcome {
    pub fn short(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail(_) => "FAIL",
            Outcome::Skip(_) => "skip",
        }
    }
}

/// A test's result before it becomes an Outcome: `Err` fails it, `skip`
/// skips it with the reason.
pub type TestResult = Result<(), String>;

/// A test entry: its section, its function's name, the function.
#[macro_export]
macro_rules! t {
    ($section:literal, $name:ident) => {
        $crate::harness::Test {
            section: $section,
            name: stringify!($name),
            run: $name,
        }
    };
}

pub struct Test {
    pub section: &'static str,
    pub name: &'static str,
    pub run: fn(&mut Ctx) -> TestResult,
}

/// Marks a result as a skip: the host cannot support what the test needs.
/// Accepts one connection on `listener` (waiting up to `wait`) and reads
/// one message from it with the descriptor passed alongside (SCM_RIGHTS),
/// as a console socket or seccomp agent does.
pub fn accept_with_fd(
    listener: &std::os::unix::net::UnixListener,
    wait: Duration,
) -> Result<(Vec<u8>, std::os::fd::OwnedFd), String> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + wait;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(format!("nothing connected within {wait:?}"))
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    };
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::empty(),
    )
    .map_err(|e| e.to_string())?;
    let mut fd = None;
    for c in msg.cmsgs().map_err(|e| e.to_string())? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: received via SCM_RIGHTS; owned by nobody else.
            fd = fds.first().map(|fd| unsafe { OwnedFd::from_raw_fd(*fd) });
        }
    }
    let len = msg.bytes;
    let fd = fd.ok_or("no descriptor came with the message")?;
    buf.truncate(len);
    Ok((buf, fd))
}

pub fn skip(reason: impl Into<String>) -> TestResult {
    Err(format!("SKIP:{}", reason.into()))
}

/// Everything a test needs: the runtime, a scratch dir and a bundle.
pub struct Ctx<'a> {
    pub rt: &'a Runtime,
    pub dir: PathBuf,
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub id: String,
    pub helper: PathBuf,
}

pub fn helper_path() -> PathBuf {
    if let Ok(p) = std::env::var("SPEC_HELPER") {
        return PathBuf::from(p);
    }
    // Next to this executable (scripts/spec-tests builds both).
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("spec-helper")))
        .unwrap_or_else(|| PathBuf::from("spec-helper"))
}

pub fn run_test(rt: &Runtime, helper: &Path, t: &Test) -> Outcome {
    let dir = match tempdir(&format!("spec-{}-{}", rt.name, t.name)) {
        Ok(d) => d,
        Err(e) => return Outcome::Fail(format!("scratch dir: {e}")),
    };
    let mut ctx = Ctx {
        rt,
        root: dir.join("state"),
        bundle: dir.join("bundle"),
        id: format!("st-{}-{}", t.name.replace('_', "-"), std::process::id()),
        helper: helper.to_path_buf(),
        dir: dir.clone(),
    };
    let result = ctx.make_bundle().and_then(|_| (t.run)(&mut ctx));
    ctx.cleanup();
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(()) => Outcome::Pass,
        Err(e) if e.starts_with("SKIP:") => Outcome::Skip(e[5..].to_string()),
        Err(e) => Outcome::Fail(e),
    }
}

fn tempdir(prefix: &str) -> std::io::Result<PathBuf> {
    let d = PathBuf::from(format!("/var/tmp/{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// The process output of one runtime invocation.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// The helper's `key=value` lines.
pub struct Report(pub HashMap<String, String>, pub String);

impl Report {
    pub fn parse(text: &str) -> Report {
        let map = text
            .lines()
            .filter_map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        Report(map, text.to_string())
    }

    pub fn get(&self, k: &str) -> &str {
        self.0.get(k).map(String::as_str).unwrap_or("")
    }

    /// Fails unless `key` equals `want`, showing what the helper saw.
    pub fn expect(&self, key: &str, want: &str) -> TestResult {
        if self.get(key) == want {
            Ok(())
        } else {
            Err(format!(
                "{key}: expected {want:?}, saw {:?}\nhelper saw:\n{}",
                self.get(key),
                self.1.trim()
            ))
        }
    }
}

/// The base config: runc's defaults, non-interactive, running the helper.
fn base_spec() -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/spec-helper", "report"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "spec",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

impl Ctx<'_> {
    fn make_bundle(&mut self) -> TestResult {
        let rootfs = self.bundle.join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root", "mnt"] {
            std::fs::create_dir_all(rootfs.join(d)).map_err(|e| format!("rootfs: {e}"))?;
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
            .map_err(|e| format!("busybox: {e}"))?;
        for a in [
            "sh", "cat", "echo", "sleep", "ls", "true", "mount", "grep", "touch", "mkdir",
        ] {
            let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a));
        }
        std::fs::copy(&self.helper, rootfs.join("bin/spec-helper"))
            .map_err(|e| format!("spec-helper {}: {e}", self.helper.display()))?;
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n",
        )
        .map_err(|e| e.to_string())?;
        self.write_config(&base_spec())
    }

    fn write_config(&self, v: &Value) -> TestResult {
        std::fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(v).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())
    }

    /// Edits config.json.
    pub fn config(&self, f: impl FnOnce(&mut Value)) -> TestResult {
        let mut v: Value = serde_json::from_slice(
            &std::fs::read(self.bundle.join("config.json")).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        f(&mut v);
        self.write_config(&v)
    }

    pub fn args(&self, args: &[&str]) -> TestResult {
        let a: Vec<Value> = args.iter().map(|s| Value::from(*s)).collect();
        self.config(|c| c["process"]["args"] = Value::from(a))
    }

    /// The runtime with the global options (--root, and the cgroup driver)
    /// and these arguments.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.rt.path);
        if systemd() {
            cmd.arg("--systemd-cgroup");
        }
        cmd.arg("--root").arg(&self.root).args(args);
        cmd
    }

    /// Runs the runtime with these arguments (after --root), with a timeout.
    pub fn runtime(&self, args: &[&str]) -> Run {
        self.runtime_env(args, &[])
    }

    pub fn runtime_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let out = self.dir.join("out");
        let err = self.dir.join("err");
        let (Ok(o), Ok(e)) = (std::fs::File::create(&out), std::fs::File::create(&err)) else {
            return Run {
                code: None,
                stdout: String::new(),
                stderr: "cannot create output files".into(),
            };
        };
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null())
            .stdout(o)
            .stderr(e)
            .current_dir(&self.dir);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let code = match cmd.spawn() {
            Ok(mut child) => {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    match child.try_wait() {
                        Ok(Some(s)) => break s.code(),
                        Ok(None) if Instant::now() > deadline => {
                            let _ = child.kill();
                            let _ = child.wait();
                            break None;
                        }
                        Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                        Err(_) => break None,
                    }
                }
            }
            Err(e) => {
                return Run {
                    code: None,
                    stdout: String::new(),
                    stderr: format!("spawn {}: {e}", self.rt.path.display()),
                }
            }
        };
        Run {
            code,
            stdout: std::fs::read_to_string(&out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        }
    }

    /// Starts the runtime with these arguments (after --root) and returns
    /// at once, stdout piped: for commands that stream (`events`).
    pub fn spawn_runtime(&self, args: &[&str]) -> Result<std::process::Child, String> {
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .current_dir(&self.dir)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.rt.path.display()))
    }

    /// `run` the bundle in the foreground and parse the helper's report.
    pub fn report(&self) -> Result<Report, String> {
        let r = self.runtime(&[
            "run",
            "--bundle",
            self.bundle.to_str().unwrap_or_default(),
            &self.id,
        ]);
        if r.code != Some(0) {
            return Err(format!(
                "run exited {:?}: {}{}",
                r.code,
                r.stderr.trim(),
                r.stdout.trim()
            ));
        }
        Ok(Report::parse(&r.stdout))
    }

    /// `run` and return the raw output.
    pub fn run_output(&self) -> Run {
        self.runtime(&[
            "run",
            "--bundle",
            self.bundle.to_str().unwrap_or_default(),
            &self.id,
        ])
    }

    /// Runs and asserts success, for lifecycle steps.
    pub fn ok(&self, args: &[&str]) -> Result<String, String> {
        let r = self.runtime(args);
        if r.code == Some(0) {
            Ok(r.stdout)
        } else {
            Err(format!(
                "{} {} exited {:?}: {}",
                self.rt.name,
                args.join(" "),
                r.code,
                r.stderr.trim()
            ))
        }
    }

    pub fn state(&self) -> Result<Value, String> {
        let out = self.ok(&["state", &self.id])?;
        serde_json::from_str(&out).map_err(|e| format!("state output is not JSON ({e}): {out}"))
    }

    pub fn status(&self) -> String {
        self.state()
            .ok()
            .and_then(|v| v["status"].as_str().map(String::from))
            .unwrap_or_default()
    }

    pub fn bundle_str(&self) -> String {
        self.bundle.to_string_lossy().into_owned()
    }

    fn cleanup(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.runtime(&["kill", &id, "KILL"]);
                let _ = self.runtime(&["delete", "--force", &id]);
            }
        }
    }
}

/// Fails with both values unless equal.
pub fn expect_eq<T: PartialEq + std::fmt::Debug>(what: &str, want: T, saw: T) -> TestResult {
    if want == saw {
        Ok(())
    } else {
        Err(format!("{what}: expected {want:?}, saw {saw:?}"))
    }
}

/// The directory of cgroup `path`: in `controller`'s v1 hierarchy, or the
/// unified one on a cgroup v2 host.
pub fn cgroup_dir(controller: &str, path: &str) -> PathBuf {
    let base = Path::new("/sys/fs/cgroup");
    let base = if host_is_cgroup_v2() {
        base.to_path_buf()
    } else {
        base.join(controller)
    };
    base.join(path.trim_start_matches('/'))
}

pub fn host_is_cgroup_v1() -> bool {
    Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
}

/// A pure cgroup v2 host (scripts/vm-test boots one).
pub fn host_is_cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}
