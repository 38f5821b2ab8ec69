//! Real callers drive runlet: podman with conmon, containerd's runc shim
//! through `ctr`, and conmon invoked exactly as CRI-O invokes it. Each test
//! uses private state (podman storage, a containerd instance on its own
//! socket) and the configuration snippets shipped in contrib/.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{output_of, runlet_bin, Env};

/// Why a caller cannot run here, if it cannot.
fn missing(program: &str) -> Option<String> {
    if let Some(reason) = common::skip_reason() {
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

macro_rules! require {
    ($($prog:literal),+) => {
        $(if let Some(reason) = missing($prog) {
            eprintln!("SKIPPED: {reason}");
            return;
        })+
    };
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_ok(out: &Output, what: &str) -> String {
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
fn image_dir(env: &Env, name: &str, wasm_only: bool) -> PathBuf {
    let dir = env.dir.path().join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    if wasm_only {
        // A Wasm image: the module and nothing else.
        std::fs::copy(common::fixture("probe-p1.wasm"), dir.join("probe.wasm")).expect("copy");
        std::fs::copy(common::fixture("exit42.wat"), dir.join("exit42.wat")).expect("copy");
        std::fs::copy(common::fixture("http-probe.wasm"), dir.join("http.wasm")).expect("copy");
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
        std::fs::copy(common::fixture("http-probe.wasm"), dir.join("http.wasm")).expect("copy");
    }
    dir
}

struct Podman {
    base: PathBuf,
    /// podman refuses a --runroot longer than 50 characters.
    runroot: PathBuf,
    conf: PathBuf,
}

impl Podman {
    /// Private storage and a containers.conf made from contrib/podman with
    /// the runtime paths pointing at the runlet under test.
    fn new(env: &Env) -> Podman {
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
    fn podman(&self) -> Command {
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

    fn cmd(&self, env: &Env) -> Command {
        let mut c = self.podman();
        c.env("RUNLET_WASM_CACHE", env.wasm_cache());
        c
    }

    /// `podman logs NAME` once it contains `needle` (up to 5 s).
    fn logs_containing(&self, env: &Env, name: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let logs = text(&self.run(env, &["logs", name]).stdout);
            if logs.contains(needle) || Instant::now() > deadline {
                return logs;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The exit code podman recorded for container NAME.
    fn exit_code(&self, env: &Env, name: &str) -> String {
        let out = self.run(env, &["inspect", name, "--format", "{{.State.ExitCode}}"]);
        assert_ok(&out, "podman inspect").trim().to_string()
    }

    fn run(&self, env: &Env, args: &[&str]) -> Output {
        let mut c = self.cmd(env);
        c.args(args);
        output_of(&mut c)
    }

    /// The busybox image, localhost/rl-bb.
    fn import_busybox(&self, env: &Env) {
        self.import(
            env,
            &image_dir(env, "img", false),
            "localhost/rl-bb",
            "CMD [\"/bin/sh\"]",
        );
    }

    /// A Wasm image holding only the module, localhost/rl-wasm.
    fn import_wasm(&self, env: &Env) {
        let dir = image_dir(env, "wimg", true);
        self.import(
            env,
            &dir,
            "localhost/rl-wasm",
            "ENTRYPOINT [\"/probe.wasm\"]",
        );
    }

    fn import(&self, env: &Env, dir: &Path, name: &str, change: &str) {
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

const ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

fn prun(p: &Podman, env: &Env, args: &[&str]) -> Output {
    let mut all = vec!["run"];
    all.extend_from_slice(&ULIMITS);
    all.extend_from_slice(args);
    p.run(env, &all)
}

#[test]
fn podman_native_lifecycle() {
    require!("podman", "conmon");
    let env = Env::new("podman-native");
    let p = Podman::new(&env);
    p.import_busybox(&env);

    // Attached: output and the process's exit code.
    let out = prun(
        &p,
        &env,
        &["--rm", "localhost/rl-bb", "echo", "hello-from-podman"],
    );
    assert_eq!(assert_ok(&out, "podman run"), "hello-from-podman\n");
    assert_eq!(
        prun(&p, &env, &["--rm", "localhost/rl-bb", "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );

    // Detached, exec, logs.
    let out = prun(
        &p,
        &env,
        &[
            "-d",
            "--name",
            "d1",
            "localhost/rl-bb",
            "sh",
            "-c",
            "echo started; sleep 100",
        ],
    );
    assert_ok(&out, "podman run -d");
    let out = p.run(&env, &["exec", "d1", "sh", "-c", "echo in-exec; exit 3"]);
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(3), "in-exec\n".into())
    );
    assert_eq!(p.logs_containing(&env, "d1", "started"), "started\n");

    // stop: sh as PID 1 ignores SIGTERM, so podman sends SIGKILL after the timeout.
    let t = Instant::now();
    assert_ok(&p.run(&env, &["stop", "-t", "2", "d1"]), "podman stop");
    assert!(
        t.elapsed() >= Duration::from_secs(2),
        "stop did not wait for the timeout"
    );
    assert_eq!(p.exit_code(&env, "d1"), "137");
    assert_ok(&p.run(&env, &["rm", "d1"]), "podman rm");

    // A process that handles SIGTERM stops at once with its own status.
    let trap = "trap 'exit 0' TERM; while true; do sleep 0.1; done";
    assert_ok(
        &prun(
            &p,
            &env,
            &["-d", "--name", "d2", "localhost/rl-bb", "sh", "-c", trap],
        ),
        "run -d",
    );
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    assert_ok(&p.run(&env, &["stop", "-t", "10", "d2"]), "podman stop");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "SIGTERM was not delivered"
    );
    assert_eq!(p.exit_code(&env, "d2"), "0");
    assert_ok(&p.run(&env, &["rm", "d2"]), "podman rm");

    // podman passes --log-format=json to runtimes in runtime_supports_json
    // and shows the runtime's message: a missing executable.
    let out = prun(&p, &env, &["--rm", "localhost/rl-bb", "/no/such/binary"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("/no/such/binary"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn podman_terminal_through_conmon() {
    require!("podman", "conmon", "script");
    let env = Env::new("podman-tty");
    let p = Podman::new(&env);
    p.import_busybox(&env);
    let podman = p.cmd(&env);
    let mut line = format!("{:?}", podman.get_program());
    for a in podman.get_args() {
        line.push(' ');
        line.push_str(&format!("'{}'", a.to_string_lossy()));
    }
    line.push_str(&format!(
        " run -it --rm {} localhost/rl-bb sh",
        ULIMITS.join(" ")
    ));
    // script(1) gives podman a real terminal; we type into it.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("(sleep 2; printf 'tty; echo typed-$((6*7))\\nexit 5\\n') | script -qec \"{}\" /dev/null", line.replace('"', "\\\"")))
        .env("CONTAINERS_CONF", &p.conf)
        .env("RUNLET_WASM_CACHE", env.wasm_cache());
    let out = output_of(&mut cmd);
    let seen = text(&out.stdout).replace('\r', "");
    assert!(
        seen.contains("/dev/pts/"),
        "no terminal in the container: {seen}"
    );
    assert!(seen.contains("typed-42"), "{seen}");
    assert_eq!(out.status.code(), Some(5), "{seen} {}", text(&out.stderr));
}

#[test]
fn podman_memory_and_pids_limits() {
    require!("podman", "conmon");
    let env = Env::new("podman-limits");
    let p = Podman::new(&env);
    p.import_busybox(&env);
    let out = prun(
        &p,
        &env,
        &[
            "--rm",
            "--memory",
            "32m",
            "localhost/rl-bb",
            "cat",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        ],
    );
    assert_eq!(assert_ok(&out, "memory limit").trim(), "33554432");
    // Enforced: holding 100 MiB under a 32 MiB limit gets the OOM killer.
    let out = prun(
        &p,
        &env,
        &[
            "--rm",
            "--memory",
            "32m",
            "localhost/rl-bb",
            "sh",
            "-c",
            "head -c 100m /dev/zero | tail",
        ],
    );
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));

    let out = prun(
        &p,
        &env,
        &[
            "--rm",
            "--pids-limit",
            "10",
            "localhost/rl-bb",
            "cat",
            "/sys/fs/cgroup/pids/pids.max",
        ],
    );
    assert_eq!(assert_ok(&out, "pids limit").trim(), "10");
    let out = prun(
        &p,
        &env,
        &[
            "--rm",
            "--pids-limit",
            "10",
            "localhost/rl-bb",
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do sleep 2 & done; wait",
        ],
    );
    assert!(
        text(&out.stderr).contains("can't fork"),
        "15 processes under pids.max=10: {}",
        text(&out.stderr)
    );
}

#[test]
fn podman_wasm_image() {
    require!("podman", "conmon");
    let env = Env::new("podman-wasm");
    let p = Podman::new(&env);
    p.import_wasm(&env);
    let out = prun(&p, &env, &["--rm", "localhost/rl-wasm", "info", "podman"]);
    assert!(assert_ok(&out, "wasm run").contains("argv=/probe.wasm info podman"));
    assert_eq!(
        prun(&p, &env, &["--rm", "localhost/rl-wasm", "exit", "12"])
            .status
            .code(),
        Some(12)
    );

    assert_ok(
        &prun(
            &p,
            &env,
            &["-d", "--name", "w1", "localhost/rl-wasm", "sleep", "100"],
        ),
        "run -d",
    );
    let out = p.run(&env, &["exec", "w1", "/probe.wasm", "hello"]);
    assert_eq!(assert_ok(&out, "exec module"), "hello from wasm\n");
    assert_eq!(
        p.run(&env, &["exec", "w1", "/exit42.wat"]).status.code(),
        Some(42)
    );
    assert_ok(
        &prun(
            &p,
            &env,
            &["-d", "--name", "w2", "localhost/rl-wasm", "info", "logged"],
        ),
        "run -d",
    );
    assert!(p
        .logs_containing(&env, "w2", "logged")
        .contains("argv=/probe.wasm info logged"));
    // A guest cannot handle SIGTERM; runlet ends it as the signal ends a
    // native process (143), at once rather than after the timeout.
    assert_ok(&p.run(&env, &["stop", "-t", "30", "w1"]), "stop");
    assert_eq!(p.exit_code(&env, "w1"), "143");
    assert_ok(&p.run(&env, &["rm", "-f", "w1", "w2"]), "rm");
}

#[test]
fn podman_without_cgroups() {
    require!("podman", "conmon");
    // `--cgroups=disabled`: podman passes --cgroup-manager=disabled to the
    // runtimes contrib/podman lists in runtime_supports_nocgroups.
    let env = Env::new("podman-nocg");
    let p = Podman::new(&env);
    p.import_busybox(&env);
    let out = prun(
        &p,
        &env,
        &[
            "--rm",
            "--cgroups=disabled",
            "localhost/rl-bb",
            "echo",
            "no cgroup",
        ],
    );
    assert_eq!(assert_ok(&out, "run --cgroups=disabled"), "no cgroup\n");
}

#[test]
fn podman_pod_with_a_wasm_service_and_a_native_sidecar() {
    require!("podman", "conmon");
    let env = Env::new("podman-pod");
    let p = Podman::new(&env);
    p.import_busybox(&env);
    // The pause (infra) container is native; the pod shares one network
    // namespace (loopback only: --network none needs no CNI).
    assert_ok(
        &p.run(
            &env,
            &[
                "pod",
                "create",
                "--name",
                "pod1",
                "--network",
                "none",
                "--infra-image",
                "localhost/rl-bb",
                "--infra-command",
                "/pause",
            ],
        ),
        "pod create",
    );
    // The Wasm service: detected by its magic bytes, no annotation.
    assert_ok(
        &p.run(
            &env,
            &[
                "run",
                "-d",
                "--pod",
                "pod1",
                "--name",
                "web",
                "localhost/rl-bb",
                "/http.wasm",
            ],
        ),
        "run wasm service",
    );
    // A native sidecar in the same pod reaches it on the pod's loopback.
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        let out = p.run(
            &env,
            &[
                "run",
                "--rm",
                "--pod",
                "pod1",
                "localhost/rl-bb",
                "busybox",
                "wget",
                "-qO-",
                "http://127.0.0.1:8080/",
            ],
        );
        if out.status.success() || Instant::now() > deadline {
            break assert_ok(&out, "sidecar wget");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(body, "hello from wasi:http\n");
    // podman stop: SIGTERM ends the server at once (exit 0), well before
    // the 30 s timeout would send SIGKILL.
    assert_ok(&p.run(&env, &["stop", "-t", "30", "web"]), "stop");
    assert_eq!(p.exit_code(&env, "web"), "0");
    assert_ok(
        &p.run(&env, &["pod", "rm", "-f", "-t", "0", "pod1"]),
        "pod rm",
    );
}

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
        let shipped = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/contrib/containerd/config.toml"
        ))
        .expect("contrib/containerd/config.toml")
        .replace(
            "/usr/local/bin/runlet",
            runlet_bin().to_str().expect("utf8"),
        )
        .replace("version = 2\n", "");
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
        let deadline = Instant::now() + Duration::from_secs(20);
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

/// conmon with the arguments CRI-O gives it; the sync pipe (fd 3) carries
/// back `{"pid": N}` after create, or `{"exit_code": N}` after an exec.
fn conmon(env: &Env, args: &[String]) -> String {
    let sync = env.dir.path().join(format!(
        "sync-{}",
        args.len() + std::process::id() as usize + rand_suffix()
    ));
    let mut quoted = String::new();
    for a in args {
        quoted.push_str(&format!(" '{a}'"));
    }
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!(
            "_OCI_SYNCPIPE=3 exec conmon{quoted} 3>'{}'",
            sync.display()
        ))
        .env("RUNLET_WASM_CACHE", env.wasm_cache());
    assert_ok(&output_of(&mut c), "conmon");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = std::fs::read_to_string(&sync).unwrap_or_default();
        if s.contains('}') {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "conmon never reported through the sync pipe"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn rand_suffix() -> usize {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

/// conmon's arguments for creating container `id`, as CRI-O passes them
/// (with `-t` for a terminal), and the directory holding its files.
fn conmon_create_args(env: &Env, id: &str, terminal: bool) -> (PathBuf, Vec<String>) {
    let dir = env.dir.path().join(format!("crio-{id}"));
    for d in ["exits", "persist", "sockets", "exec-exits"] {
        std::fs::create_dir_all(dir.join(d)).expect("mkdir");
    }
    let p = |name: &str| dir.join(name).to_str().expect("utf8").to_string();
    let mut args: Vec<String> = vec![
        "-b".into(),
        env.bundle_str().into(),
        "-c".into(),
        id.into(),
        "--exit-dir".into(),
        p("exits"),
        "-l".into(),
        p("ctr.log"),
        "--log-level".into(),
        "info".into(),
        "-n".into(),
        format!("k8s_{id}_pod_default_0"),
        "-P".into(),
        p("conmon.pid"),
        "-p".into(),
        p("pidfile"),
        "--persist-dir".into(),
        p("persist"),
        "-r".into(),
        runlet_bin().to_str().expect("utf8").into(),
        "--runtime-arg".into(),
        format!("--root={}", env.root.display()),
        "--socket-dir-path".into(),
        p("sockets"),
        "-u".into(),
        id.into(),
        "--log-size-max".into(),
        "-1".into(),
    ];
    if terminal {
        args.push("-t".into());
    }
    (dir, args)
}

/// The CRI-O flow for one container: conmon create, then start, state,
/// exec through conmon, kill, delete --force, all with CRI-O's --root.
fn crio_flow(
    env: &Env,
    id: &str,
    terminal: bool,
    expect_output: &str,
    exec_args: &[&str],
    exec_code: i32,
) {
    // runtime_root from the shipped drop-in, relocated under the test dir.
    let dropin = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/crio/10-runlet.conf"
    ))
    .expect("drop-in");
    assert!(dropin.contains("runtime_root = \"/run/runlet\""));
    let root = env.root.clone();
    let bin = runlet_bin().to_str().expect("utf8").to_string();
    let (dir, args) = conmon_create_args(env, id, terminal);
    let p = |name: &str| dir.join(name).to_str().expect("utf8").to_string();
    let sync = conmon(env, &args);
    let pid: i64 = serde_json::from_str::<serde_json::Value>(&sync).expect("sync json")["pid"]
        .as_i64()
        .expect("pid");
    assert!(pid > 0, "{sync}");
    assert_eq!(env.state(id)["status"], "created");
    assert_eq!(
        std::fs::read_to_string(dir.join("pidfile"))
            .expect("pid file")
            .trim(),
        pid.to_string()
    );

    env.ok(&["start", id]);
    assert_eq!(env.status(id), "running");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(dir.join("ctr.log"))
        .unwrap_or_default()
        .contains(expect_output)
    {
        assert!(
            Instant::now() < deadline,
            "no output in the CRI log: {:?}",
            std::fs::read_to_string(dir.join("ctr.log"))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(dir.join("ctr.log")).expect("log");
    // The CRI log format: RFC3339 time, stream, tag, text.
    let line = log
        .lines()
        .find(|l| l.contains(expect_output))
        .expect("line");
    assert!(
        line.contains(if terminal { " stdout " } else { " stdout F " }),
        "{line}"
    );

    // ExecSync goes through conmon: exec --process F --detach.
    let process = dir.join("process.json");
    std::fs::write(
        &process,
        serde_json::to_vec(&serde_json::json!({
            "terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": "/",
            "args": exec_args, "env": ["PATH=/bin:/app"]
        }))
        .expect("json"),
    )
    .expect("write process.json");
    let exec_sync = conmon(
        env,
        &[
            "-c".into(),
            id.into(),
            "-u".into(),
            format!("{id}-exec"),
            "-n".into(),
            format!("k8s_{id}_pod_default_0"),
            "-r".into(),
            bin.clone(),
            "--runtime-arg".into(),
            format!("--root={}", root.display()),
            "-p".into(),
            p("exec.pid"),
            "-l".into(),
            p("exec.log"),
            "--exit-dir".into(),
            p("exec-exits"),
            "--socket-dir-path".into(),
            p("sockets"),
            "-e".into(),
            "--exec-process-spec".into(),
            process.to_str().expect("utf8").into(),
        ],
    );
    let code =
        serde_json::from_str::<serde_json::Value>(&exec_sync).expect("json")["exit_code"].as_i64();
    assert_eq!(code, Some(exec_code as i64), "{exec_sync}");

    // StopContainer: TERM (ignored by a PID 1 without handlers), then KILL.
    env.ok(&["kill", id, "TERM"]);
    env.ok(&["kill", id, "SIGKILL"]);
    let exit_file = dir.join("exits").join(id);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !exit_file.exists() {
        assert!(Instant::now() < deadline, "conmon wrote no exit file");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        std::fs::read_to_string(&exit_file).expect("exit").trim(),
        "137"
    );
    env.fails(&["kill", id, "KILL"], "container not running");
    env.ok(&["delete", "--force", id]);
    env.fails(&["state", id], "does not exist");
    env.assert_gone(id);
}

#[test]
fn crio_conmon_native() {
    require!("conmon");
    let env = Env::new("crio-native");
    env.set_args(&["sh", "-c", "echo hello-crio; sleep 100"]);
    crio_flow(
        &env,
        &env.id("n"),
        false,
        "hello-crio",
        &["sh", "-c", "echo from-exec; exit 4"],
        4,
    );
    // With a terminal: conmon passes --console-socket and reads the pty.
    env.config(|c| c["process"]["terminal"] = true.into());
    crio_flow(
        &env,
        &env.id("t"),
        true,
        "hello-crio",
        &["sh", "-c", "exit 0"],
        0,
    );
}

#[test]
fn crio_conmon_wasm() {
    require!("conmon");
    let env = Env::new_wasm("crio-wasm", &["/app/probe-p1.wasm", "info", "crio"]);
    // CRI-O's pod annotation; the pause container would carry the sandbox marker.
    env.config(|c| c["annotations"] = serde_json::json!({"run.oci.handler": "wasm-smart", "io.kubernetes.cri-o.ContainerType": "container"}));
    // Under wasm-smart a native process (the shell) stays native; a module
    // exec'd into it runs on the Wasm handler.
    env.set_args(&["sh", "-c", "echo native-sidecar; sleep 100"]);
    crio_flow(
        &env,
        &env.id("side"),
        false,
        "native-sidecar",
        &["/app/exit42.wat"],
        42,
    );
    // A container whose own process is the module.
    env.set_args(&["/app/probe-p1.wasm", "info", "crio-wasm"]);
    env.config(|c| c["annotations"] = serde_json::json!({"run.oci.handler": "wasm"}));
    let id = env.id("w");
    let (dir, args) = conmon_create_args(&env, &id, false);
    let sync = conmon(&env, &args);
    assert!(sync.contains("\"pid\""), "{sync}");
    env.ok(&["start", &id]);
    let exit_file = dir.join("exits").join(&id);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !exit_file.exists() {
        assert!(Instant::now() < deadline, "the module never exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        std::fs::read_to_string(&exit_file).expect("exit").trim(),
        "0"
    );
    let log = std::fs::read_to_string(dir.join("ctr.log")).expect("log");
    assert!(
        log.contains("stdout F argv=/app/probe-p1.wasm info crio-wasm"),
        "{log}"
    );
    env.ok(&["delete", "--force", &id]);
    env.assert_gone(&id);
}

#[test]
fn shipped_configs_say_what_callers_need() {
    let dropin = include_str!("../contrib/crio/10-runlet.conf");
    for needle in [
        "default_runtime = \"runlet\"",
        "runtime_type = \"oci\"",
        "\"run.oci.\"",
        "\"module.wasm.image/variant\"",
        "platform_runtime_paths",
        "\"wasi/wasm32\" = \"/usr/local/bin/runlet-wasm\"",
    ] {
        assert!(dropin.contains(needle), "CRI-O drop-in lacks {needle}");
    }
    let podman = include_str!("../contrib/podman/containers.conf");
    for needle in [
        "runtime_supports_json",
        "\"runlet\"",
        "[engine.platform_to_oci_runtime]",
        "\"wasi/wasm\" = \"runlet-wasm\"",
    ] {
        assert!(podman.contains(needle), "containers.conf lacks {needle}");
    }
    let k8s = include_str!("../contrib/kubernetes/runtimeclass.yaml");
    assert!(k8s.contains("kind: RuntimeClass") && k8s.contains("handler: runlet"));
    let deploy = include_str!("../contrib/kubernetes/wasm-deployment.yaml");
    assert!(deploy.contains("runtimeClassName: runlet-wasm"));
}
