//! runlet tried the way callers and operators really use a runtime: killed
//! in the middle of `create`, with a damaged state file. Afterwards one
//! `delete -f` must leave nothing behind, and nothing may be hidden.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::Env;

/// What is left of container `id` after its delete: state dir, cgroups,
/// processes (an init or intermediate carrying the id on its command line:
/// they show the container's own, whose args name the id, see
/// `create_killed_at_any_moment_then_delete_force_leaves_nothing`), mounts
/// below the state root.
fn leftovers(env: &Env, id: &str) -> Vec<String> {
    let mut out = Vec::new();
    if env.root.join(id).exists() {
        out.push("state dir".to_string());
    }
    for ctl in ["memory", "pids", "cpu", "freezer", "devices"] {
        let p = common::cgroup_dir_of(ctl, id);
        if p.exists() {
            out.push(format!("cgroup {}", p.display()));
        }
    }
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.contains(&id.as_bytes()) && common::alive(pid) {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            out.push(format!("process {pid} ({})", comm.trim()));
        }
    }
    let root = env.root.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mounts.lines() {
        if let Some(mp) = line.split(' ').nth(4) {
            if mp.starts_with(&root) {
                out.push(format!("mount {mp}"));
            }
        }
    }
    out
}

/// SIGKILL `runlet create` at moments spread over its first 40 ms (a
/// fixed sequence, so a failure can be replayed); each time one `delete -f`
/// must remove everything. Runs to the end and reports every leftover.
#[test]
fn create_killed_at_any_moment_then_delete_force_leaves_nothing() {
    require_root!();
    let env = Env::new("crash");
    let mut failures = Vec::new();
    for i in 0..100u64 {
        let id = env.id(&format!("k{i}"));
        // runlet's container processes show the container's command line
        // (src/container/procview.rs): the id goes into it, so that a
        // leftover is seen whichever process it is.
        env.set_args(&["sleep", "3600", &id]);
        // 0, 0.4, ... 39.6 ms, in a scrambled order.
        let delay = Duration::from_micros((i * 37 % 100) * 400);
        let mut child = env
            .cmd()
            .args(["create", "--bundle", env.bundle_str(), &id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn create");
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let out = env.run(&["delete", "-f", &id]);
        if !out.status.success() {
            failures.push(format!(
                "{id} (killed at {delay:?}): delete -f failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let left = leftovers(&env, &id);
        if !left.is_empty() {
            failures.push(format!(
                "{id} (killed at {delay:?}): left {}",
                left.join(", ")
            ));
            // Clean up for the next round with a second delete.
            let _ = env.run(&["delete", "-f", &id]);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 100 rounds left something:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A state.json cut short (as a crash of a non-atomic writer leaves it):
/// `state` fails saying so, `list` still shows the container (with a
/// warning), plain `delete` refuses, and `delete -f` kills the init and
/// removes its cgroups from runlet's own records.
#[test]
fn damaged_state_json_is_never_hidden_and_delete_force_cleans_up() {
    require_root!();
    let env = Env::new("damaged");
    for (round, keep) in [(0, 0usize), (1, 40)] {
        let id = env.id(&format!("d{round}"));
        env.ok(&["run", "-d", "--bundle", env.bundle_str(), &id]);
        let pid = env.pid(&id);
        assert!(common::alive(pid));
        let file = env.root.join(&id).join("state.json");
        let data = std::fs::read(&file).expect("state.json");
        std::fs::write(&file, &data[..keep.min(data.len())]).expect("truncate");

        env.fails(&["state", &id], "state.json is damaged");
        let out = env.run(&["list"]);
        assert!(out.status.success(), "list failed");
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(&id) && l.contains("unknown")),
            "list hides {id}: {listed}"
        );
        let warning = String::from_utf8_lossy(&out.stderr);
        assert!(
            warning.contains("warning") && warning.contains(&id),
            "no warning: {warning}"
        );
        env.fails(&["delete", &id], "state.json is damaged");
        assert!(common::alive(pid), "a failed delete killed the init");

        env.ok(&["delete", "-f", &id]);
        assert!(common::dies(pid), "delete -f left the init {pid}");
        assert_eq!(leftovers(&env, &id), Vec::<String>::new());
    }
}
