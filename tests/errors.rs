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

/// Every leaf of `v` as (dotted path as the errors spell it, value).
fn leaves(v: &serde_json::Value, path: &str, out: &mut Vec<(String, serde_json::Value)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                leaves(x, &p, out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                leaves(x, &format!("{path}[{i}]"), out);
            }
        }
        _ => out.push((path.to_string(), v.clone())),
    }
}

/// Sets the value at a dotted path from [`leaves`].
fn set_at(v: &mut serde_json::Value, path: &str, new: serde_json::Value) {
    let mut cur = v;
    for part in path.split('.') {
        let (key, idx) = match part.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        cur = &mut cur[key];
        if let Some(i) = idx {
            cur = &mut cur[i];
        }
    }
    *cur = new;
}

/// Mutated configs (each leaf of the default config given a value of the
/// wrong type, a negative number, a word no enum has): every rejection
/// names the field it is about. Accepted mutations are deleted again.
#[test]
fn mutated_configs_name_the_field() {
    require_root!();
    let env = Env::new("err-mutate");
    let path = env.bundle.join("config.json");
    let base: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("parse");
    let mut all = Vec::new();
    leaves(&base, "", &mut all);
    let mut mutations = Vec::new();
    for (p, v) in &all {
        match v {
            serde_json::Value::Number(_) => {
                mutations.push((p.clone(), json!("x")));
                mutations.push((p.clone(), json!(-1)));
                mutations.push((p.clone(), json!(1e30)));
            }
            serde_json::Value::String(_) => {
                mutations.push((p.clone(), json!(7)));
                mutations.push((p.clone(), json!("BOGUS_VALUE")));
                mutations.push((p.clone(), json!("")));
            }
            serde_json::Value::Bool(_) => mutations.push((p.clone(), json!("yes"))),
            _ => mutations.push((p.clone(), json!({"x": 1}))),
        }
    }
    let (mut rejected, mut unnamed) = (0, Vec::new());
    for (i, (field, value)) in mutations.iter().enumerate() {
        let mut config = base.clone();
        set_at(&mut config, field, value.clone());
        std::fs::write(&path, serde_json::to_vec(&config).expect("json")).expect("write");
        let id = env.id(&format!("m{i}"));
        let out = env.run(&["create", "--bundle", env.bundle_str(), &id]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            let _ = env.run(&["delete", "-f", &id]);
            continue;
        }
        rejected += 1;
        assert!(!err.contains("panicked"), "{field} = {value}: panic: {err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{field} = {value}: {err}"
        );
        // The field, its list, or the list entry it belongs to (a mount
        // whose option the kernel refuses is named by its entry: the kernel
        // does not say which option it is).
        let list = field.rsplit_once('[').map_or(field.as_str(), |(p, _)| p);
        let entry = field.find(']').map_or(field.as_str(), |i| &field[..=i]);
        if ![field.as_str(), list, entry]
            .iter()
            .any(|f| err.contains(f))
        {
            unnamed.push(format!("{field} = {value}: {}", err.trim()));
        }
        env.assert_gone(&id);
    }
    eprintln!(
        "{} mutations, {rejected} rejected, {} without the field",
        mutations.len(),
        unnamed.len()
    );
    assert!(
        unnamed.is_empty(),
        "{} of {rejected} rejections do not name the field:\n{}",
        unnamed.len(),
        unnamed.join("\n")
    );
}

/// When the container's init fails, the cause reaches stderr without
/// --debug or --log, naming the field.
#[test]
fn init_failures_say_why() {
    require_root!();
    let env = Env::new("err-init");
    let id = env.id("cwd");
    // CVE-2024-21626's shape: a cwd through one of the runtime's own fds.
    env.config(|c| c["process"]["cwd"] = json!("/proc/self/fd/4"));
    let err = create_fails_msg(&env, &id);
    assert!(
        err.contains("process.cwd") && err.contains("chdir to cwd \"/proc/self/fd/4\""),
        "{err}"
    );

    // proc on a symlink.
    let env = Env::new("err-init");
    std::os::unix::fs::symlink("/tmp", env.bundle.join("rootfs/procx")).expect("symlink");
    env.config(|c| {
        c["mounts"]
            .as_array_mut()
            .expect("mounts")
            .push(json!({"destination": "/procx", "type": "proc", "source": "proc"}))
    });
    let err = create_fails_msg(&env, &env.id("proc"));
    assert!(
        err.contains("mounts[") && err.contains("must be mounted on ordinary directory"),
        "{err}"
    );

    // A capability this host's root does not have (in its bounding set).
    let Some(missing) = caps::all()
        .into_iter()
        .find(|c| !caps::has_cap(None, caps::CapSet::Bounding, *c).unwrap_or(true))
    else {
        eprintln!("SKIPPED (capability part): root here has every capability");
        return;
    };
    let cap = missing.to_string();
    let env = Env::new("err-init");
    env.config(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .expect("caps")
                .push(json!(cap));
        }
    });
    let err = create_fails_msg(&env, &env.id("cap"));
    assert!(
        err.to_lowercase().contains("operation not permitted"),
        "{cap}: {err}"
    );
}

/// `create` fails in one line with the word error; nothing is left.
fn create_fails_msg(env: &Env, id: &str) -> String {
    let out = env.run(&["create", "--bundle", env.bundle_str(), id]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("error"), "{err}");
    env.assert_gone(id);
    common::error_message(&err)
}

/// A command line runlet cannot parse is one error line too (clap's own
/// report spans several), with exit status 1 as runc's usage errors.
#[test]
fn usage_errors_are_one_line() {
    let env = Env::new("err-usage");
    env.fails(&["kill"], "<CONTAINER_ID>");
    env.fails(&["create", "--bogus", "x"], "'--bogus'");
    env.fails(&["nosuchcommand"], "'nosuchcommand'");
    let out = env.run(&["--help"]);
    assert!(out.status.success(), "--help failed");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
}
