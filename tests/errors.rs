//! Bad input: one-line error naming the problem, exit status 1, nothing
//! left behind (state dir, cgroup, mount, process).

mod common;

use common::Env;
use serde_json::json;

/// Runs `create` and checks the failure leaves no trace.
fn create_fails(env: &Env, bundle: &str, id: &str, needle: &str) {
    env.fails(&["create", "--bundle", bundle, id], needle);
    env.assert_gone(id);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(bundle),
        "a mount of {bundle} was left: {mounts}"
    );
}

#[test]
fn missing_bundle() {
    require_root!();
    let env = Env::new("err-bundle");
    create_fails(
        &env,
        "/nonexistent/bundle",
        &env.id("x"),
        "bundle /nonexistent/bundle: no such file or directory",
    );
}

#[test]
fn missing_and_unreadable_config() {
    require_root!();
    let env = Env::new("err-config");
    std::fs::remove_file(env.bundle.join("config.json")).expect("rm");
    create_fails(
        &env,
        env.bundle_str(),
        &env.id("x"),
        "config.json: no such file",
    );
    // A directory where the file should be cannot be read.
    std::fs::create_dir(env.bundle.join("config.json")).expect("mkdir");
    create_fails(
        &env,
        env.bundle_str(),
        &env.id("y"),
        "config.json: Is a directory",
    );
}

#[test]
fn invalid_json() {
    require_root!();
    let env = Env::new("err-json");
    std::fs::write(env.bundle.join("config.json"), "{\"ociVersion\": ").expect("write");
    create_fails(
        &env,
        env.bundle_str(),
        &env.id("x"),
        "config.json: invalid spec",
    );
}

#[test]
fn wrong_field_values_are_named() {
    require_root!();
    let env = Env::new("err-field");
    let original = std::fs::read(env.bundle.join("config.json")).expect("read");
    // (JSON pointer into config.json, new value, text the error must contain)
    let cases = [
        ("/process/cwd", json!("relative/dir"), "process.cwd"),
        ("/process/args", json!([]), "process.args"),
        ("/ociVersion", json!("2.0.0"), "ociVersion"),
        ("/root/path", json!("no-such-rootfs"), "root.path"),
        (
            "/linux/namespaces",
            json!([{"type": "pid"}, {"type": "pid"}]),
            "linux.namespaces",
        ),
        (
            "/linux/namespaces",
            json!([{"type": "bogus"}]),
            "unknown variant `bogus`",
        ),
        ("/process/env", json!(["NOEQUALS"]), "process.env"),
        (
            "/mounts",
            json!([{"destination": "rel", "type": "tmpfs", "source": "tmpfs"}]),
            "mounts",
        ),
        (
            "/mounts",
            json!([{"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}]),
            "idmapped mounts must be bind mounts",
        ),
    ];
    for (i, (pointer, value, needle)) in cases.into_iter().enumerate() {
        std::fs::write(env.bundle.join("config.json"), &original).expect("restore");
        env.config(|c| *c.pointer_mut(pointer).expect("pointer exists") = value);
        create_fails(&env, env.bundle_str(), &env.id(&format!("f{i}")), needle);
    }
}

#[test]
fn missing_executable_leaves_nothing() {
    require_root!();
    let env = Env::new("err-exe");
    env.set_args(&["/bin/not-there"]);
    create_fails(&env, env.bundle_str(), &env.id("x"), "not-there");
}

#[test]
fn bad_ids() {
    require_root!();
    let env = Env::new("err-id");
    for id in ["a/b", "..", "../escape", "."] {
        env.fails(
            &["create", "--bundle", env.bundle_str(), id],
            "invalid container id",
        );
    }
    assert!(
        !env.root.join("escape").exists()
            && !env
                .root
                .parent()
                .map(|p| p.join("escape").exists())
                .unwrap_or(false)
    );
    env.fails(&["state", "../x"], "invalid container id");
}

#[test]
fn duplicate_id_keeps_the_first() {
    require_root!();
    let env = Env::new("err-dup");
    let id = env.id("d");
    env.ok(&["create", "--bundle", env.bundle_str(), &id]);
    let pid = env.pid(&id);
    env.fails(
        &["create", "--bundle", env.bundle_str(), &id],
        &format!("container {id} already exists"),
    );
    assert_eq!(env.status(&id), "created");
    assert_eq!(
        env.pid(&id),
        pid,
        "the duplicate create disturbed the first container"
    );
    env.ok(&["delete", &id]);
    env.assert_gone(&id);
}

#[test]
fn start_in_wrong_state() {
    require_root!();
    let env = Env::new("err-start");
    let id = env.id("s");
    env.fails(&["start", &id], &format!("container {id} does not exist"));
    env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
    env.fails(&["start", &id], "cannot start an already running container");
    env.ok(&["kill", &id, "KILL"]);
    env.wait_status(&id, "stopped");
    env.fails(&["start", &id], "cannot start a container that has stopped");
    env.fails(&["kill", &id], "container not running");
    env.ok(&["delete", &id]);
    env.assert_gone(&id);
}

#[test]
fn console_socket_that_does_not_exist() {
    require_root!();
    let env = Env::new("err-console");
    env.config(|c| c["process"]["terminal"] = true.into());
    let id = env.id("c");
    env.fails(
        &[
            "create",
            "--bundle",
            env.bundle_str(),
            "--console-socket",
            "/nonexistent.sock",
            &id,
        ],
        "console socket",
    );
    env.assert_gone(&id);
    // terminal without a console socket in detached mode: runc's message.
    env.fails(
        &["create", "--bundle", env.bundle_str(), &id],
        "cannot allocate tty",
    );
    env.assert_gone(&id);
}

#[test]
fn printing_commands_end_quietly_on_a_closed_stdout() {
    // `runlet list | head -1` where head is gone before runlet writes: its
    // stdout is a pipe with no reader left.
    for args in [
        &["features"][..],
        &["list"],
        &["spec", "--bundle", "/nonexistent-dir"],
    ] {
        let (read, write) = nix::unistd::pipe().expect("pipe");
        drop(read);
        let out = std::process::Command::new(common::runlet_bin())
            .arg("--root")
            .arg("/var/tmp/runlet-test-epipe-root")
            .args(args)
            .stdout(std::process::Stdio::from(write))
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
    }
}
