//! What the caller tests (podman, containerd, CRI-O's conmon) share: a
//! skip when the caller is not installed, output checks, image roots.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::{output_of, runlet_bin, Env};

/// A number unique within this test process.
pub fn rand_suffix() -> usize {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

/// Why a caller cannot run here, if it cannot.
pub fn missing(program: &str) -> Option<String> {
    if let Some(reason) = super::skip_reason() {
        return Some(reason);
    }
    match Command::new(program).arg("--version").output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "{program} --version failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!(
            "{program} cannot start ({e}); scripts/setup installs it"
        )),
    }
}

#[macro_export]
macro_rules! require {
    ($($prog:literal),+) => {
        $(if let Some(reason) = $crate::common::callers::missing($prog) {
            eprintln!("SKIPPED: {reason}");
            return;
        })+
    };
}

/// contrib/containerd/config.toml with the test binary for
/// /usr/local/bin/runlet, without its `version` line (the tests' configs
/// put their own top-level keys first).
pub fn shipped_containerd_config() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/containerd/config.toml"
    ))
    .expect("contrib/containerd/config.toml")
    .replace(
        "/usr/local/bin/runlet",
        super::runlet_bin().to_str().expect("utf8"),
    )
    .replace("version = 2\n", "")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn assert_ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {}{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A minimal image root: busybox-static, and optionally the Wasm fixtures.
pub fn image_dir(env: &Env, name: &str, wasm_only: bool) -> PathBuf {
    let dir = env.dir.path().join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    if wasm_only {
        // A Wasm image: the module and nothing else.
        std::fs::copy(super::fixture("probe-p1.wasm"), dir.join("probe.wasm")).expect("copy");
        std::fs::copy(super::fixture("exit42.wat"), dir.join("exit42.wat")).expect("copy");
        std::fs::copy(super::fixture("http-probe.wasm"), dir.join("http.wasm")).expect("copy");
    } else {
        let rootfs = env.bundle.join("rootfs");
        let status = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", rootfs.display()))
            .arg(&dir)
            .status();
        assert!(status.is_ok_and(|s| s.success()), "copy rootfs");
        // A pod's infra command, and a Wasm service for pods.
        std::fs::write(dir.join("pause"), "#!/bin/sh\nexec sleep 2147483647\n").expect("pause");
        std::fs::set_permissions(
            dir.join("pause"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        std::fs::copy(super::fixture("http-probe.wasm"), dir.join("http.wasm")).expect("copy");
    }
    dir
}

pub struct Podman {
    base: PathBuf,
    /// podman refuses a --runroot longer than 50 characters.
    runroot: PathBuf,
    pub conf: PathBuf,
}

impl Podman {
    /// Private storage and a containers.conf made from contrib/podman with
    /// the runtime paths pointing at the runlet under test.
    pub fn new(env: &Env) -> Podman {
        let base = env.dir.path().join("podman");
        std::fs::create_dir_all(&base).expect("mkdir");
        let bin = runlet_bin();
        let shipped = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/contrib/podman/containers.conf"
        ))
        .expect("contrib/podman/containers.conf");
        let conf = base.join("containers.conf");
        // This machine lacks CAP_SYS_RESOURCE: podman's default RLIMIT_NOFILE
        // (1048576) fails in every runtime, infra containers included.
        let limits =
            "\n[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n";
        std::fs::write(
            &conf,
            shipped.replace(
                "/usr/local/bin/runlet",
                bin.parent()
                    .expect("dir")
                    .join("runlet")
                    .to_str()
                    .expect("utf8"),
            ) + limits,
        )
        .expect("write conf");
        let runroot = PathBuf::from(format!("/tmp/rlp-{}-{}", std::process::id(), rand_suffix()));
        Podman {
            base,
            runroot,
            conf,
        }
    }

    /// podman with this instance's storage, configuration and runtime.
    pub fn podman(&self) -> Command {
        let mut c = Command::new("podman");
        // conmon writes files (e.g. `oom` after an OOM kill) into its
        // working directory: keep them in this test's scratch dir.
        c.current_dir(&self.base)
            .env("CONTAINERS_CONF", &self.conf)
            .arg("--root")
            .arg(self.base.join("storage"))
            .arg("--runroot")
            .arg(&self.runroot)
            .arg("--tmpdir")
            .arg(self.base.join("tmp"))
            .args([
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--runtime",
                "runlet",
            ]);
        c
    }

    pub fn cmd(&self, env: &Env) -> Command {
        let mut c = self.podman();
        c.env("RUNLET_WASM_CACHE", env.wasm_cache());
        c
    }

    /// `podman logs NAME` once it contains `needle` (up to 5 s).
    pub fn logs_containing(&self, env: &Env, name: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let logs = text(&self.run(env, &["logs", name]).stdout);
            if logs.contains(needle) || Instant::now() > deadline {
                return logs;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The exit code podman recorded for container NAME.
    pub fn exit_code(&self, env: &Env, name: &str) -> String {
        let out = self.run(env, &["inspect", name, "--format", "{{.State.ExitCode}}"]);
        assert_ok(&out, "podman inspect").trim().to_string()
    }

    pub fn run(&self, env: &Env, args: &[&str]) -> Output {
        let mut c = self.cmd(env);
        c.args(args);
        output_of(&mut c)
    }

    /// The busybox image, localhost/rl-bb.
    pub fn import_busybox(&self, env: &Env) {
        self.import(
            env,
            &image_dir(env, "img", false),
            "localhost/rl-bb",
            "CMD [\"/bin/sh\"]",
        );
    }

    /// A Wasm image holding only the module, localhost/rl-wasm.
    pub fn import_wasm(&self, env: &Env) {
        let dir = image_dir(env, "wimg", true);
        self.import(
            env,
            &dir,
            "localhost/rl-wasm",
            "ENTRYPOINT [\"/probe.wasm\"]",
        );
    }

    pub fn import(&self, env: &Env, dir: &Path, name: &str, change: &str) {
        let script = format!(
            "tar -C {} -c . | \"$0\" \"$@\" import --change '{change}' - {name}",
            dir.display()
        );
        let c = self.cmd(env);
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(script)
            .arg(c.get_program())
            .args(c.get_args());
        for (k, v) in c.get_envs() {
            if let Some(v) = v {
                sh.env(k, v);
            }
        }
        assert_ok(&output_of(&mut sh), "podman import");
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Containers first, then the overlay mounts of the private storage.
        let _ = self.podman().args(["system", "reset", "--force"]).output();
        let _ = std::fs::remove_dir_all(&self.runroot);
    }
}

pub const ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

pub fn prun(p: &Podman, env: &Env, args: &[&str]) -> Output {
    let mut all = vec!["run"];
    all.extend_from_slice(&ULIMITS);
    all.extend_from_slice(args);
    p.run(env, &all)
}
