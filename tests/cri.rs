//! A Kubernetes node without kubelet: this test speaks CRI v1 to a
//! containerd of its own, as kubelet does, with runlet as the runtime
//! handler (the runc shim with `BinaryName` = runlet, from
//! contrib/containerd/config.toml). Pods hold a native pause container, a
//! native container and Wasm containers.
//!
//! The containerd runs in a private mount namespace with a /run of its own
//! (containerd 1.6 puts shim sockets under /run/containerd/s whatever its
//! config says), on a private root, state and socket; the pods' network is
//! a bridge of the test's own (Debian's CNI plugins in /usr/lib/cni). The
//! images are built here from local files and imported with
//! `ctr -n k8s.io images import`; nothing is pulled.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

use common::callers::{assert_ok, rand_suffix, text, Podman};
use common::{output_of, runlet_bin, Env};
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

/// The programs this test needs (scripts/setup installs them all).
fn missing_programs() -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    for p in ["containerd", "ctr", "podman", "unshare", "nsenter", "ip"] {
        if !path.split(':').any(|d| Path::new(d).join(p).exists()) {
            return Some(format!("{p} is not installed (scripts/setup installs it)"));
        }
    }
    for plugin in ["bridge", "host-local", "loopback"] {
        let p = Path::new("/usr/lib/cni").join(plugin);
        if !p.exists() {
            return Some(format!(
                "{} missing (Debian's containernetworking-plugins; scripts/setup installs it)",
                p.display()
            ));
        }
    }
    None
}

/// Without root the test cannot run (a skip, saying so). As root, which is
/// how CI runs it after scripts/setup, a missing program fails the test:
/// this path working is the point.
macro_rules! require_node {
    () => {
        require_root!();
        if let Some(reason) = missing_programs() {
            panic!("the CRI test cannot run: {reason}");
        }
    };
}

/// The handler names a RuntimeClass may give (contrib/kubernetes).
fn runtime_classes() -> Vec<(String, String)> {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/kubernetes/runtimeclass.yaml"
    ))
    .expect("contrib/kubernetes/runtimeclass.yaml");
    let mut out = Vec::new();
    let mut name = None;
    for line in yaml.lines() {
        let line = line.trim();
        if let Some(n) = line.strip_prefix("name:") {
            name = Some(n.trim().to_string());
        } else if let Some(h) = line.strip_prefix("handler:") {
            if let Some(n) = name.take() {
                out.push((n, h.trim().to_string()));
            }
        }
    }
    out
}

/// What contrib/kubernetes/wasm-deployment.yaml asks of a pod: its
/// RuntimeClass, its pod annotations and the port its module serves on.
struct Deployment {
    runtime_class: String,
    annotations: Vec<(String, String)>,
    port: u16,
}

fn wasm_deployment() -> Deployment {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/kubernetes/wasm-deployment.yaml"
    ))
    .expect("contrib/kubernetes/wasm-deployment.yaml");
    let field = |key: &str| {
        yaml.lines()
            .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("wasm-deployment.yaml has no {key}"))
    };
    // The pod template's annotations: the lines below `annotations:`
    // indented deeper than it.
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut annotations = Vec::new();
    let mut lines = yaml.lines().skip_while(|l| l.trim() != "annotations:");
    if let Some(head) = lines.next() {
        for l in lines.take_while(|l| indent(l) > indent(head)) {
            if let Some((k, v)) = l.trim().split_once(": ") {
                annotations.push((k.to_string(), v.trim_matches('"').to_string()));
            }
        }
    }
    Deployment {
        runtime_class: field("runtimeClassName:"),
        annotations,
        port: field("- containerPort:").parse().expect("containerPort"),
    }
}

/// containerd with the CRI plugin, and a CRI v1 client for it.
struct Node {
    dir: PathBuf,
    child: Child,
    sock: PathBuf,
    bridge: String,
    rt: tokio::runtime::Runtime,
    rs: RuntimeServiceClient<Channel>,
    is: ImageServiceClient<Channel>,
}

impl Node {
    fn start(env: &Env) -> Node {
        let dir = env.dir.path().join("node");
        std::fs::create_dir_all(dir.join("cni")).expect("mkdir");
        let sock = dir.join("containerd.sock");
        let suffix = rand_suffix() % 100_000;
        let bridge = format!("rlcri{suffix}");
        // The shipped config, with the test binary for /usr/local/bin/runlet
        // and nothing else changed; then what makes this containerd private
        // (root, state, sockets, opt and CNI directories, a stream server
        // on a free port), the locally built pause image, and the one
        // setting these machines need (restrict_oom_score_adj).
        let shipped = common::callers::shipped_containerd_config();
        let d = dir.display();
        let s = sock.display();
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{s}"
[ttrpc]
  address = "{s}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
{shipped}
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/rl-pause:latest"
  # root here lacks CAP_SYS_RESOURCE: the sandbox's oomScoreAdj -998
  # cannot be set by any runtime.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # This containerd has no runc entry, containerd's usual default.
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runlet"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
"#
        );
        std::fs::write(dir.join("config.toml"), config).expect("write config");
        let cni = format!(
            r#"{{"cniVersion": "0.4.0", "name": "runlet-cri-test", "plugins": [
  {{"type": "bridge", "bridge": "{bridge}", "isGateway": false, "ipMasq": false,
    "ipam": {{"type": "host-local", "dataDir": "{d}/ipam",
              "ranges": [[{{"subnet": "10.199.{}.0/24"}}]]}}}}
]}}"#,
            suffix % 250
        );
        std::fs::write(dir.join("cni/10-runlet-test.conflist"), cni).expect("write cni");

        let log = std::fs::File::create(dir.join("containerd.log")).expect("log");
        // A /run of its own: shim sockets, runlet's state, the pods' netns.
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg("mount -t tmpfs -o mode=755 tmpfs /run && exec containerd --config \"$0\"")
            .arg(dir.join("config.toml"))
            .env("RUNLET_WASM_CACHE", env.wasm_cache())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        let mut last = None;
        let channel = common::poll(Duration::from_secs(60), || {
            let path = sock.clone();
            rt.block_on(async {
                Endpoint::try_from("http://[::]:50051")
                    .expect("endpoint")
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                                tokio::net::UnixStream::connect(path).await?,
                            ))
                        }
                    }))
                    .await
            })
            .map_err(|e| last = Some(e))
            .ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "containerd did not come up ({last:?}): {}",
                tail(&dir.join("containerd.log"))
            )
        });
        let node = Node {
            dir,
            child,
            sock,
            bridge,
            rt,
            rs: RuntimeServiceClient::new(channel.clone()),
            is: ImageServiceClient::new(channel),
        };
        // The CRI plugin answers once it has initialised.
        let mut last = None;
        let up = common::poll(Duration::from_secs(60), || {
            let mut rs = node.rs.clone();
            node.rt
                .block_on(async move { rs.version(cri::VersionRequest::default()).await })
                .map_err(|e| last = Some(e))
                .ok()
        });
        if up.is_none() {
            panic!("CRI Version: {last:?}: {}", node.log_tail());
        }
        node
    }

    fn log_tail(&self) -> String {
        tail(&self.dir.join("containerd.log"))
    }

    fn ctr(&self, args: &[&str]) -> Output {
        let mut c = Command::new("ctr");
        c.arg("-a")
            .arg(&self.sock)
            .args(["-n", "k8s.io"])
            .args(args);
        output_of(&mut c)
    }

    /// A command in containerd's mount namespace (where runlet's state,
    /// the shims and the pods' network namespaces are).
    fn inside(&self, program: &str, args: &[&str]) -> Output {
        let mut c = Command::new("nsenter");
        c.arg(format!("--mount=/proc/{}/ns/mnt", self.child.id()))
            .arg("--")
            .arg(program)
            .args(args);
        output_of(&mut c)
    }

    /// The containers runlet holds for containerd's k8s.io namespace.
    fn runlet_list(&self) -> Vec<(String, String)> {
        let out = self.inside(
            runlet_bin().to_str().expect("utf8"),
            &[
                "--root",
                "/run/containerd/runlet/k8s.io",
                "list",
                "--format",
                "json",
            ],
        );
        let list: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        list.as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["id"].as_str().unwrap_or_default().to_string(),
                    c["status"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// The OCI spec containerd gave runlet for container `id`.
    fn oci_spec(&self, id: &str) -> serde_json::Value {
        let out = self.inside(
            "cat",
            &[&format!(
                "{}/state/io.containerd.runtime.v2.task/k8s.io/{id}/config.json",
                self.dir.display()
            )],
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("config.json of {id}: {e}: {}", text(&out.stderr)))
    }

    fn call<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> T {
        match self.rt.block_on(f) {
            Ok(r) => r.into_inner(),
            Err(e) => panic!("CRI {what}: {e}\ncontainerd log: {}", self.log_tail()),
        }
    }

    fn try_call<T>(
        &self,
        f: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, tonic::Status> {
        self.rt.block_on(f).map(tonic::Response::into_inner)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Whatever a failed test left: pods first (their shims go with
        // them), then containerd, then the bridge.
        let mut rs = self.rs.clone();
        if let Ok(pods) = self.try_call(async move {
            rs.list_pod_sandbox(cri::ListPodSandboxRequest::default())
                .await
        }) {
            for p in pods.items {
                let mut rs = self.rs.clone();
                let id = p.id.clone();
                let _ = self.try_call(async move {
                    rs.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: id })
                        .await
                });
                let mut rs = self.rs.clone();
                let _ = self.try_call(async move {
                    rs.remove_pod_sandbox(cri::RemovePodSandboxRequest {
                        pod_sandbox_id: p.id,
                    })
                    .await
                });
            }
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Images made with podman from local files, saved as OCI archives and
/// imported into containerd's k8s.io namespace: the pause image, a busybox
/// image (with the Wasm HTTP component beside it) and a Wasm-only image.
fn import_images(env: &Env, node: &Node) {
    let p = Podman::new(env);
    p.import_busybox(env);
    p.import_wasm(env);
    p.import(
        env,
        &common::callers::image_dir(env, "pimg", false),
        "localhost/rl-pause",
        "CMD [\"/pause\"]",
    );
    for image in ["localhost/rl-bb", "localhost/rl-wasm", "localhost/rl-pause"] {
        let archive = env
            .dir
            .path()
            .join(format!("{}.tar", image.trim_start_matches("localhost/")));
        let archive = archive.to_str().expect("utf8");
        assert_ok(
            &p.run(
                env,
                &["save", "--format", "oci-archive", "-o", archive, image],
            ),
            "podman save",
        );
        assert_ok(
            &node.ctr(&["images", "import", "--base-name", image, archive]),
            "ctr images import",
        );
        // What kubelet asks before it creates a container from an image.
        let mut is = node.is.clone();
        let req = cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: format!("{image}:latest"),
                ..Default::default()
            }),
            verbose: false,
        };
        let status = node.call("ImageStatus", async move { is.image_status(req).await });
        assert!(status.image.is_some(), "the CRI does not see {image}");
    }
}

fn pod_config(
    name: &str,
    cgroup_parent: &str,
    annotations: &[(&str, &str)],
) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}-{}", std::process::id()),
            namespace: "runlet-test".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: String::new(),
        annotations: annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.into(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(kubelet_namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// kubelet's default (no shareProcessNamespace): the pod's network and
/// IPC, a pid namespace of the container's own.
fn kubelet_namespaces() -> cri::NamespaceOption {
    cri::NamespaceOption {
        network: cri::NamespaceMode::Pod as i32,
        pid: cri::NamespaceMode::Container as i32,
        ipc: cri::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn container_config(
    name: &str,
    image: &str,
    command: &[&str],
    env: &[(&str, &str)],
) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        envs: env
            .iter()
            .map(|(k, v)| cri::KeyValue {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
        // Relative to the pod's log directory, as kubelet gives it.
        log_path: format!("{name}.log"),
        linux: Some(cri::LinuxContainerConfig {
            security_context: Some(cri::LinuxContainerSecurityContext {
                namespace_options: Some(kubelet_namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A pod's worth of CRI calls.
struct Pod<'a> {
    node: &'a Node,
    id: String,
    config: cri::PodSandboxConfig,
    logs: PathBuf,
}

impl<'a> Pod<'a> {
    fn run(node: &'a Node, config: cri::PodSandboxConfig, handler: &str) -> Pod<'a> {
        let name = config
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let logs = node.dir.join("logs").join(&name);
        std::fs::create_dir_all(&logs).expect("mkdir logs");
        let mut config = config;
        config.log_directory = logs.to_string_lossy().into_owned();
        let mut rs = node.rs.clone();
        let req = cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        };
        let id = node
            .call(
                "RunPodSandbox",
                async move { rs.run_pod_sandbox(req).await },
            )
            .pod_sandbox_id;
        Pod {
            node,
            id,
            config,
            logs,
        }
    }

    /// Waits until runlet lists the pod's pause container as running (right
    /// after RunPodSandbox its process may not have exec'd yet).
    fn wait_pause_running(&self) {
        wait_for("the pause container to run", || {
            self.node
                .runlet_list()
                .into_iter()
                .find(|(id, status)| id == &self.id && status == "running")
        });
    }

    fn create(&self, config: cri::ContainerConfig) -> String {
        let mut rs = self.node.rs.clone();
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: self.id.clone(),
            config: Some(config),
            sandbox_config: Some(self.config.clone()),
        };
        let id = self
            .node
            .call(
                "CreateContainer",
                async move { rs.create_container(req).await },
            )
            .container_id;
        let mut rs = self.node.rs.clone();
        let cid = id.clone();
        self.node.call("StartContainer", async move {
            rs.start_container(cri::StartContainerRequest { container_id: cid })
                .await
        });
        id
    }

    fn exec_sync(&self, id: &str, cmd: &[&str]) -> cri::ExecSyncResponse {
        let mut rs = self.node.rs.clone();
        let req = cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 60,
        };
        self.node
            .call("ExecSync", async move { rs.exec_sync(req).await })
    }

    /// CRI Exec (streaming), stdout and stderr only.
    fn exec(&self, id: &str, cmd: &[&str]) -> Streamed {
        let mut rs = self.node.rs.clone();
        let req = cri::ExecRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            tty: false,
            stdin: false,
            stdout: true,
            stderr: true,
        };
        let url = self
            .node
            .call("Exec", async move { rs.exec(req).await })
            .url;
        stream_exec(&url)
    }

    fn status(&self, id: &str) -> cri::ContainerStatus {
        let mut rs = self.node.rs.clone();
        let req = cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        self.node
            .call(
                "ContainerStatus",
                async move { rs.container_status(req).await },
            )
            .status
            .expect("a status")
    }

    fn stop(&self, id: &str, timeout: i64) {
        let mut rs = self.node.rs.clone();
        let req = cri::StopContainerRequest {
            container_id: id.into(),
            timeout,
        };
        self.node
            .call("StopContainer", async move { rs.stop_container(req).await });
    }

    fn remove(&self, id: &str) {
        let mut rs = self.node.rs.clone();
        let req = cri::RemoveContainerRequest {
            container_id: id.into(),
        };
        self.node.call(
            "RemoveContainer",
            async move { rs.remove_container(req).await },
        );
    }

    fn stop_and_remove(self) {
        let mut rs = self.node.rs.clone();
        let id = self.id.clone();
        self.node.call("StopPodSandbox", async move {
            rs.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: id })
                .await
        });
        let mut rs = self.node.rs.clone();
        let id = self.id.clone();
        self.node.call("RemovePodSandbox", async move {
            rs.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id })
                .await
        });
    }
}

/// What a streaming Exec printed, and its exit code.
struct Streamed {
    stdout: String,
    stderr: String,
    exit_code: i32,
}

/// The streaming side of CRI Exec, as kubectl exec reaches it through the
/// API server: a WebSocket on the URL containerd returned, with the
/// `v4.channel.k8s.io` protocol (each binary message starts with its
/// channel: 1 stdout, 2 stderr, 3 the final status as JSON).
fn stream_exec(url: &str) -> Streamed {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut sock = std::net::TcpStream::connect(host).expect("connect to the stream server");
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(
        sock,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: cnVubGV0LWNyaS10ZXN0IQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
    )
    .expect("request");
    // The response head, up to the blank line.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        sock.read_exact(&mut byte).expect("response head");
        head.push(byte[0]);
    }
    let head = text(&head);
    assert!(
        head.starts_with("HTTP/1.1 101"),
        "no WebSocket upgrade: {head}"
    );
    let mut out = Streamed {
        stdout: String::new(),
        stderr: String::new(),
        exit_code: -1,
    };
    loop {
        let mut h = [0u8; 2];
        if sock.read_exact(&mut h).is_err() {
            break;
        }
        let opcode = h[0] & 0x0f;
        let mut len = u64::from(h[1] & 0x7f);
        if len == 126 {
            let mut b = [0u8; 2];
            sock.read_exact(&mut b).expect("length");
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            sock.read_exact(&mut b).expect("length");
            len = u64::from_be_bytes(b);
        }
        let mut payload = vec![0u8; len as usize];
        sock.read_exact(&mut payload).expect("payload");
        match opcode {
            // Close.
            8 => break,
            // Binary (or text): the channel byte, then the data.
            1 | 2 if !payload.is_empty() => {
                let data = text(&payload[1..]);
                match payload[0] {
                    1 => out.stdout.push_str(&data),
                    2 => out.stderr.push_str(&data),
                    3 if !data.is_empty() => {
                        let status: serde_json::Value =
                            serde_json::from_str(&data).expect("status JSON");
                        out.exit_code = if status["status"] == "Success" {
                            0
                        } else {
                            status["details"]["causes"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .find(|c| c["reason"] == "ExitCode")
                                .and_then(|c| c["message"].as_str())
                                .and_then(|m| m.parse().ok())
                                .unwrap_or(-2)
                        };
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    out
}

/// A container of the Wasm probe image in `pod`, checked to run as Wasm
/// (ExecSync of the module answers from runlet's engine); its id.
fn probe_module(pod: &Pod) -> String {
    let module = pod.create(container_config(
        "module",
        "localhost/rl-wasm:latest",
        &["/probe.wasm", "sleep", "60"],
        &[],
    ));
    let r = pod.exec_sync(&module, &["/probe.wasm", "hello"]);
    assert_eq!(text(&r.stdout), "hello from wasm\n", "{}", text(&r.stderr));
    module
}

/// Polls `f` until it returns Some, for up to 60 s (a safety net: each
/// wait ends on the event).
fn wait_for<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    common::poll(Duration::from_secs(60), f)
        .unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// The cgroup v1 `controller` directory (or the unified one on v2) of
/// `path` below the root.
fn cgroup_dir(controller: &str, path: &str) -> PathBuf {
    let base = Path::new("/sys/fs/cgroup");
    let base = if common::cgroup_v2() {
        base.to_path_buf()
    } else {
        base.join(controller)
    };
    base.join(path.trim_start_matches('/'))
}

#[test]
fn cri_pod_with_native_and_wasm_containers() {
    require_node!();
    let classes = runtime_classes();
    assert!(
        classes.iter().any(|(n, _)| n == "runlet")
            && classes.iter().any(|(n, _)| n == "runlet-wasm"),
        "contrib/kubernetes/runtimeclass.yaml: {classes:?}"
    );
    let handler = |class: &str| -> String {
        classes
            .iter()
            .find(|(n, _)| n == class)
            .map(|(_, h)| h.clone())
            .unwrap_or_default()
    };
    let env = Env::new("cri");
    let node = Node::start(&env);
    import_images(&env, &node);

    // The pods' cgroups go below a parent of the test's own, as kubelet's
    // go below kubepods.
    let parent = format!("/runlet-cri-{}", std::process::id());
    // The pod as contrib/kubernetes/wasm-deployment.yaml makes it: its
    // RuntimeClass's handler, its annotations (wasm-smart: the module runs
    // as Wasm, the native shell stays native), the module on its port.
    let deployment = wasm_deployment();
    let annotations: Vec<(&str, &str)> = deployment
        .annotations
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert!(
        annotations.contains(&("run.oci.handler", "wasm-smart")),
        "{annotations:?}"
    );
    let pod = Pod::run(
        &node,
        pod_config("web", &parent, &annotations),
        &handler(&deployment.runtime_class),
    );

    // The pause container is runlet's, native, and running.
    pod.wait_pause_running();
    let pause = node.oci_spec(&pod.id);
    assert_eq!(
        pause["annotations"]["io.kubernetes.cri.container-type"],
        "sandbox"
    );

    // A Wasm HTTP service and a native shell in the same pod.
    // Served on runlet's default address, 0.0.0.0:8080: the Deployment's
    // containerPort.
    let wasm = pod.create(container_config(
        "http",
        "localhost/rl-wasm:latest",
        &["/http.wasm"],
        &[],
    ));
    let shell = pod.create(container_config(
        "shell",
        "localhost/rl-bb:latest",
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 0.1; done",
        ],
        &[],
    ));
    assert_eq!(
        pod.status(&wasm).state,
        cri::ContainerState::ContainerRunning as i32
    );
    assert_eq!(
        pod.status(&shell).state,
        cri::ContainerState::ContainerRunning as i32
    );

    // The native container reaches the Wasm service over the pod's
    // loopback: one network namespace for the pod.
    let url = format!("http://127.0.0.1:{}/", deployment.port);
    let get = ["/bin/busybox", "wget", "-qO-", url.as_str()];
    let mut last = None;
    let answer = common::poll(Duration::from_secs(60), || {
        let r = pod.exec_sync(&shell, &get);
        if r.exit_code == 0 {
            return Some(text(&r.stdout));
        }
        last = Some(r);
        None
    })
    .unwrap_or_else(|| {
        let r = last.unwrap_or_default();
        panic!(
            "the Wasm service never answered (wget: {} {}); its log: {}; status: {:?}",
            r.exit_code,
            text(&r.stderr),
            std::fs::read_to_string(pod.logs.join("http.log")).unwrap_or_default(),
            pod.status(&wasm)
        )
    });
    assert_eq!(answer, "hello from wasi:http\n");

    // ExecSync: output and exit codes, native and Wasm.
    let r = pod.exec_sync(&shell, &["echo", "hi"]);
    assert_eq!((r.exit_code, text(&r.stdout)), (0, "hi\n".to_string()));
    let r = pod.exec_sync(&shell, &["sh", "-c", "echo oops >&2; exit 3"]);
    assert_eq!((r.exit_code, text(&r.stderr)), (3, "oops\n".to_string()));
    let r = pod.exec_sync(&wasm, &["/probe.wasm", "info", "cri"]);
    assert_eq!(r.exit_code, 0, "{}", text(&r.stderr));
    assert!(
        text(&r.stdout).contains("argv=/probe.wasm info cri"),
        "{}",
        text(&r.stdout)
    );
    let r = pod.exec_sync(&wasm, &["/probe.wasm", "exit", "4"]);
    assert_eq!(r.exit_code, 4);
    // Exec, streamed as kubectl exec is.
    let r = pod.exec(&shell, &["sh", "-c", "echo streamed; echo err >&2; exit 5"]);
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str(), r.exit_code),
        ("streamed\n", "err\n", 5)
    );
    let r = pod.exec(&wasm, &["/probe.wasm", "hello"]);
    assert_eq!(
        (r.stdout.as_str(), r.exit_code),
        ("hello from wasm\n", 0),
        "{}",
        r.stderr
    );

    // UpdateContainerResources goes through `runlet update`.
    let mut rs = node.rs.clone();
    let req = cri::UpdateContainerResourcesRequest {
        container_id: shell.clone(),
        linux: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            cpu_period: 100_000,
            cpu_quota: 50_000,
            ..Default::default()
        }),
        ..Default::default()
    };
    node.call("UpdateContainerResources", async move {
        rs.update_container_resources(req).await
    });
    let shell_spec = node.oci_spec(&shell);
    let cg = shell_spec["linux"]["cgroupsPath"]
        .as_str()
        .expect("cgroupsPath")
        .to_string();
    assert!(cg.starts_with(&parent), "{cg} is not below {parent}");
    let limit = if common::cgroup_v2() {
        std::fs::read_to_string(cgroup_dir("", &cg).join("memory.max"))
    } else {
        std::fs::read_to_string(cgroup_dir("memory", &cg).join("memory.limit_in_bytes"))
    }
    .expect("memory limit");
    assert_eq!(limit.trim(), (64u64 << 20).to_string());

    // ContainerStats: containerd reads the cgroup runlet made.
    let mut rs = node.rs.clone();
    let req = cri::ContainerStatsRequest {
        container_id: shell.clone(),
    };
    let stats = node
        .call(
            "ContainerStats",
            async move { rs.container_stats(req).await },
        )
        .stats
        .expect("stats");
    let memory = stats
        .memory
        .and_then(|m| m.working_set_bytes)
        .map(|v| v.value)
        .unwrap_or(0);
    assert!(memory > 0, "no memory use reported for the shell");
    assert!(stats.cpu.and_then(|c| c.usage_core_nano_seconds).is_some());

    // StopContainer: SIGTERM first; the shell's trap ends it with 0.
    pod.stop(&shell, 30);
    let st = pod.status(&shell);
    assert_eq!(
        (st.state, st.exit_code),
        (cri::ContainerState::ContainerExited as i32, 0),
        "{st:?}"
    );
    // One that ignores SIGTERM is killed when the grace period ends.
    let stubborn = pod.create(container_config(
        "stubborn",
        "localhost/rl-bb:latest",
        &["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"],
        &[],
    ));
    pod.stop(&stubborn, 1);
    let st = pod.status(&stubborn);
    assert_eq!(
        (st.state, st.exit_code),
        (cri::ContainerState::ContainerExited as i32, 137),
        "{st:?}"
    );
    for id in [&wasm, &shell, &stubborn] {
        if pod.status(id).state != cri::ContainerState::ContainerExited as i32 {
            pod.stop(id, 10);
        }
        pod.remove(id);
    }
    let pod_id = pod.id.clone();
    pod.stop_and_remove();

    // Nothing is left: no runlet container, no cgroup below the parent,
    // no network namespace, no mount of the pod.
    let left = node.runlet_list();
    assert!(left.is_empty(), "runlet still holds {left:?}");
    for ctl in ["memory", "pids", "cpu", "freezer"] {
        let dir = cgroup_dir(ctl, &parent);
        let children: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name())
                    .collect()
            })
            .unwrap_or_default();
        assert!(children.is_empty(), "{}: {children:?} left", dir.display());
        let _ = std::fs::remove_dir(&dir);
    }
    let netns = node.inside("ls", &["/run/netns"]);
    assert_eq!(text(&netns.stdout).trim(), "", "network namespaces left");
    let mounts = node.inside("cat", &["/proc/self/mountinfo"]);
    assert!(
        !text(&mounts.stdout).contains(&pod_id),
        "mounts of the pod left:\n{}",
        text(&mounts.stdout)
    );
}

/// Pod annotations containerd passes through (`pod_annotations` in
/// contrib/containerd/config.toml) reach the OCI spec; with the `-smart`
/// forms (crun's `run.oci.handler=wasm-smart`, the variant
/// `compat-smart`) a native sidecar stays native, a Wasm entrypoint runs as
/// Wasm, and the pause container is never Wasm, not even when the pod
/// forces Wasm.
#[test]
fn cri_pod_annotations_pick_the_wasm_handler() {
    require_node!();
    let env = Env::new("cri-annot");
    let node = Node::start(&env);
    import_images(&env, &node);
    let pod = Pod::run(
        &node,
        pod_config(
            "annot",
            "",
            &[
                ("module.wasm.image/variant", "compat-smart"),
                ("run.oci.handler", "wasm-smart"),
            ],
        ),
        "runlet",
    );
    pod.wait_pause_running();
    let sidecar = pod.create(container_config(
        "sidecar",
        "localhost/rl-bb:latest",
        &["sh", "-c", "while true; do sleep 0.1; done"],
        &[],
    ));
    let module = probe_module(&pod);
    for id in [&pod.id, &sidecar, &module] {
        let spec = node.oci_spec(id);
        for (k, v) in [
            ("module.wasm.image/variant", "compat-smart"),
            ("run.oci.handler", "wasm-smart"),
        ] {
            assert_eq!(spec["annotations"][k], v, "{id}: {}", spec["annotations"]);
        }
    }
    // The sidecar is a native shell: ExecSync runs busybox in it.
    let r = pod.exec_sync(&sidecar, &["sh", "-c", "echo native"]);
    assert_eq!((r.exit_code, text(&r.stdout)), (0, "native\n".to_string()));
    for id in [&sidecar, &module] {
        pod.stop(id, 2);
        pod.remove(id);
    }
    pod.stop_and_remove();

    // `run.oci.handler: wasm` forces Wasm on every container of the pod,
    // but its pause container (a shell script here) still runs natively.
    let forced = Pod::run(
        &node,
        pod_config("forced", "", &[("run.oci.handler", "wasm")]),
        "runlet",
    );
    forced.wait_pause_running();
    let module = probe_module(&forced);
    forced.stop(&module, 2);
    forced.remove(&module);
    forced.stop_and_remove();
    assert!(node.runlet_list().is_empty());
}
