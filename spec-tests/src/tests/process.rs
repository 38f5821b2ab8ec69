//! The `process` object: args, env, cwd, user, umask, capabilities,
//! rlimits, noNewPrivileges, oomScoreAdj, exit status, terminal.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{accept_with_fd, expect_eq, Ctx, Report, Test, TestResult};
use crate::t;

pub fn all() -> Vec<Test> {
    vec![
        t!("process", process_args),
        t!("process", process_env),
        t!("process", process_cwd),
        t!("process", process_user_uid_gid),
        t!("process", process_additional_gids),
        t!("process", process_umask),
        t!("process", process_capabilities),
        t!("process", process_rlimits),
        t!("process", process_no_new_privileges),
        t!("process", process_oom_score_adj),
        t!("process", process_terminal),
        t!("process", process_exit_code),
    ]
}

fn process_args(ctx: &mut Ctx) -> TestResult {
    ctx.args(&["/bin/spec-helper", "report", "extra", "two words"])?;
    ctx.report()?
        .expect("argv", "/bin/spec-helper report extra two words")
}

fn process_env(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["process"]["env"] = json!(["PATH=/bin", "SPEC_VAR=hello world", "EMPTY="]))?;
    let r = ctx.report()?;
    r.expect("env.SPEC_VAR", "hello world")?;
    r.expect("env.EMPTY", "")?;
    r.expect("env.PATH", "/bin")
}

fn process_cwd(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["process"]["cwd"] = "/tmp".into())?;
    ctx.report()?.expect("cwd", "/tmp")
}

fn process_user_uid_gid(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1001}))?;
    let r = ctx.report()?;
    r.expect("uid", "1000")?;
    r.expect("gid", "1001")
}

fn process_additional_gids(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20]})
    })?;
    let r = ctx.report()?;
    let groups: Vec<&str> = r.get("groups").split(',').collect();
    if groups.contains(&"10") && groups.contains(&"20") {
        Ok(())
    } else {
        Err(format!(
            "groups: expected 10 and 20, saw {:?}",
            r.get("groups")
        ))
    }
}

fn process_umask(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["process"]["user"] = json!({"uid": 0, "gid": 0, "umask": 0o077}))?;
    ctx.report()?.expect("umask", "0077")
}

fn process_capabilities(ctx: &mut Ctx) -> TestResult {
    // CAP_CHOWN (0) and CAP_KILL (5): mask 0x21.
    let caps = json!(["CAP_CHOWN", "CAP_KILL"]);
    ctx.config(|c| {
        for set in [
            "bounding",
            "effective",
            "permitted",
            "inheritable",
            "ambient",
        ] {
            c["process"]["capabilities"][set] = caps.clone();
        }
    })?;
    let r = ctx.report()?;
    for f in ["CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"] {
        r.expect(f, "0000000000000021")?;
    }
    // Only the bounding set: the others empty.
    ctx.config(|c| {
        c["process"]["capabilities"] = json!({"bounding": ["CAP_KILL"]});
    })?;
    let r = ctx.report()?;
    r.expect("CapBnd", "0000000000000020")?;
    r.expect("CapEff", "0000000000000000")
}

fn process_rlimits(ctx: &mut Ctx) -> TestResult {
    // At or below the host's hard limits: this host lacks CAP_SYS_RESOURCE.
    ctx.config(|c| {
        c["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096}
        ])
    })?;
    let r = ctx.report()?;
    r.expect("rlimit.NOFILE", "512:1000")?;
    r.expect("rlimit.CORE", "0:4096")
}

fn process_no_new_privileges(ctx: &mut Ctx) -> TestResult {
    ctx.report()?.expect("NoNewPrivs", "1")?;
    ctx.config(|c| c["process"]["noNewPrivileges"] = false.into())?;
    ctx.report()?.expect("NoNewPrivs", "0")
}

fn process_oom_score_adj(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["process"]["oomScoreAdj"] = 123.into())?;
    ctx.report()?.expect("oom_score_adj", "123")
}

fn process_exit_code(ctx: &mut Ctx) -> TestResult {
    ctx.args(&["/bin/spec-helper", "exit", "42"])?;
    expect_eq("exit status of run", Some(42), ctx.run_output().code)
}

/// Plays the caller: receives the pty master on a console socket.
fn process_terminal(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["process"]["terminal"] = true.into())?;
    let sock = ctx.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).map_err(|e| e.to_string())?;
    let bundle = ctx.bundle_str();
    ctx.ok(&[
        "create",
        "--bundle",
        &bundle,
        "--console-socket",
        sock.to_str().unwrap_or_default(),
        &ctx.id,
    ])?;
    let (_, master) = accept_with_fd(&listener, Duration::from_secs(60))
        .map_err(|e| format!("console socket: {e}"))?;
    ctx.ok(&["start", &ctx.id])?;
    let mut file = std::fs::File::from(master);
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut b = [0u8; 4096];
    while !seen.contains("stdin_tty=") && Instant::now() < deadline {
        match std::io::Read::read(&mut file, &mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&b[..n])),
        }
    }
    let seen = seen.replace('\r', "");
    Report::parse(&seen).expect("stdin_tty", "1")
}
