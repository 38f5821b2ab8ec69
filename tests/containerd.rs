//! containerd's runc shim drives runlet through `ctr --runc-binary`: a
//! private containerd on its own socket, native and Wasm images.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::callers::{assert_ok, text, Podman};
use common::{output_of, runlet_bin, Env};

/// A containerd of our own: private socket, root and state dirs, with
/// contrib/containerd's runtime entry in its config.
struct Containerd {
    child: std::process::Child,
    sock: PathBuf,
}

impl Containerd {
    fn start(env: &Env) -> Containerd {
        let dir = env.dir.path().join("containerd");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let sock = dir.join("containerd.sock");
        let shipped = common::callers::shipped_containerd_config();
        let config = format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n[grpc]\n  address = \"{1}\"\n[ttrpc]\n  address = \"{1}.ttrpc\"\n{shipped}",
            dir.display(),
            sock.display()
        );
        std::fs::write(dir.join("config.toml"), config).expect("write config");
        let log = std::fs::File::create(dir.join("containerd.log")).expect("log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !sock.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            sock.exists(),
            "containerd did not come up; see {}",
            dir.join("containerd.log").display()
        );
        Containerd { child, sock }
    }

    fn ctr(&self, env: &Env, args: &[&str]) -> Output {
        let mut c = Command::new("ctr");
        c.arg("-a")
            .arg(&self.sock)
            .env("RUNLET_WASM_CACHE", env.wasm_cache())
            .args(args);
        output_of(&mut c)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

#[test]
fn containerd_runs_native_and_wasm_via_runc_binary() {
    require!("containerd", "ctr", "podman");
    let env = Env::new("containerd");
    // Images made with podman (private storage), saved as OCI archives.
    let p = Podman::new(&env);
    p.import_busybox(&env);
    p.import_wasm(&env);
    let d = Containerd::start(&env);
    for (image, file) in [
        ("localhost/rl-bb", "bb.tar"),
        ("localhost/rl-wasm", "wasm.tar"),
    ] {
        let archive = env.dir.path().join(file);
        assert_ok(
            &p.run(
                &env,
                &[
                    "save",
                    "--format",
                    "oci-archive",
                    "-o",
                    archive.to_str().expect("utf8"),
                    image,
                ],
            ),
            "save",
        );
        assert_ok(
            &d.ctr(
                &env,
                &[
                    "images",
                    "import",
                    "--base-name",
                    image,
                    archive.to_str().expect("utf8"),
                ],
            ),
            "import",
        );
    }
    let bin = runlet_bin();
    let bin = bin.to_str().expect("utf8");
    let out = d.ctr(
        &env,
        &[
            "run",
            "--runc-binary",
            bin,
            "--rm",
            "localhost/rl-bb:latest",
            "n1",
            "sh",
            "-c",
            "echo hello-from-containerd; exit 6",
        ],
    );
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(6), "hello-from-containerd\n".into()),
        "{}",
        text(&out.stderr)
    );
    let out = d.ctr(
        &env,
        &[
            "run",
            "--runc-binary",
            bin,
            "--rm",
            "localhost/rl-wasm:latest",
            "w1",
            "/probe.wasm",
            "info",
            "ctr",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("argv=/probe.wasm info ctr"));
    let out = d.ctr(
        &env,
        &[
            "run",
            "--runc-binary",
            bin,
            "--rm",
            "localhost/rl-wasm:latest",
            "w2",
            "/probe.wasm",
            "exit",
            "9",
        ],
    );
    assert_eq!(out.status.code(), Some(9));
}
