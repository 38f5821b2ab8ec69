//! Valid configs and `exec` options that runc and crun accept, which a
//! runtime on libcontainer 0.7 used to refuse or mishandle (issue: OCI
//! compatibility). Same harness and reporting as tests/.

use serde_json::json;

use std::os::fd::AsRawFd;

use crate::harness::{accept_with_fd, expect_eq, skip, Ctx, Report, Test, TestResult};
use crate::t;
use crate::tests::mountinfo;

pub fn all() -> Vec<Test> {
    vec![
        t!("linux", rootfs_propagation_recursive_forms),
        t!("mounts", mount_without_source),
        t!("mounts", mount_tmpfs_keeps_mountpoint_mode),
        t!("process", process_no_new_privileges_false_with_seccomp),
        t!("process", process_home_without_passwd_entry),
        t!("process", process_scheduler_flags),
        t!("exec", exec_cap_and_additional_gids),
        t!("namespaces", ns_net_loopback_up),
        t!("hooks", hooks_go_on_after_a_failure_with_runtime_env),
        t!("process", process_cwd_created_when_missing),
        t!("linux", devices_path_with_trailing_slash),
        t!("hooks", hook_timeout_not_positive_is_refused),
        t!("process", process_inheritable_and_ambient_raised),
        t!("namespaces", ns_user_several_mapping_ranges),
        t!("mounts", mount_destination_through_dangling_symlink),
        t!("seccomp", seccomp_profile_does_not_bind_the_runtime),
        t!("seccomp", seccomp_listener_with_a_notify_rule),
        t!("seccomp", seccomp_listener_without_a_notify_rule),
        t!("linux", devices_outside_dev),
        t!("mounts", mount_idmapped),
        t!("mounts", mount_bind_source_the_userns_cannot_reach),
        t!("mounts", mount_dev_bound_from_the_host),
        t!("linux", devices_userns_node_missing_on_the_host),
    ]
}

/// A new user namespace with these uid and gid mappings; cgroup v1 mounts
/// go (a user namespace may not mount them).
fn with_userns(c: &mut serde_json::Value, maps: serde_json::Value) {
    if let Some(a) = c["linux"]["namespaces"].as_array_mut() {
        a.push(json!({"type": "user"}))
    }
    c["linux"]["uidMappings"] = maps.clone();
    c["linux"]["gidMappings"] = maps;
    if let Some(m) = c["mounts"].as_array_mut() {
        m.retain(|m| m["type"] != "cgroup");
    }
}

fn root_line(info: &str) -> Option<&str> {
    info.lines().find(|l| l.split(' ').nth(4) == Some("/"))
}

fn rootfs_propagation_recursive_forms(ctx: &mut Ctx) -> TestResult {
    for (value, want, refuse) in [
        ("rprivate", None, Some("shared:")),
        ("rslave", None, Some("shared:")),
        ("rshared", Some("shared:"), None),
        ("runbindable", Some("unbindable"), None),
    ] {
        ctx.config(|c| c["linux"]["rootfsPropagation"] = value.into())?;
        let info = mountinfo(ctx).map_err(|e| format!("rootfsPropagation {value}: {e}"))?;
        let line = root_line(&info).ok_or("no / in mountinfo")?;
        if let Some(w) = want {
            if !line.contains(w) {
                return Err(format!("rootfsPropagation {value}: / lacks {w}: {line}"));
            }
        }
        if let Some(r) = refuse {
            if line.contains(r) {
                return Err(format!("rootfsPropagation {value}: / has {r}: {line}"));
            }
        }
    }
    Ok(())
}

fn mount_without_source(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| {
        for m in c["mounts"].as_array_mut().into_iter().flatten() {
            if m["destination"] == "/proc" {
                if let Some(o) = m.as_object_mut() {
                    o.remove("source");
                }
            }
        }
        if let Some(a) = c["mounts"].as_array_mut() {
            a.push(json!({"destination": "/mnt", "type": "tmpfs"}));
        }
    })?;
    let info = mountinfo(ctx)?;
    for (dest, fstype) in [("/proc", "proc"), ("/mnt", "tmpfs")] {
        let found = info
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(dest) && l.contains(&format!(" - {fstype} ")));
        if !found {
            return Err(format!("{dest} ({fstype}) not mounted:\n{info}"));
        }
    }
    Ok(())
}

fn mount_tmpfs_keeps_mountpoint_mode(ctx: &mut Ctx) -> TestResult {
    let dir = ctx.bundle.join("rootfs/data");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o750))
        .map_err(|e| e.to_string())?;
    ctx.config(|c| {
        if let Some(a) = c["mounts"].as_array_mut() {
            a.push(json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs"}));
        }
    })?;
    ctx.args(&["/bin/spec-helper", "stat", "/data"])?;
    let r = Report::parse(&ctx.run_output().stdout);
    r.expect("type", "dir")?;
    r.expect("mode", "0750")
}

fn process_no_new_privileges_false_with_seccomp(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| {
        c["process"]["noNewPrivileges"] = false.into();
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95}]});
    })?;
    ctx.args(&["/bin/spec-helper", "umask-syscall", "022"])?;
    let r = ctx.run_output();
    expect_eq(
        "umask under the profile, noNewPrivileges false",
        "EOPNOTSUPP",
        r.stdout.trim(),
    )?;
    ctx.args(&["/bin/spec-helper", "report"])?;
    ctx.report()?.expect("NoNewPrivs", "0")
}

fn process_home_without_passwd_entry(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| {
        c["process"]["user"] = json!({"uid": 4242, "gid": 4242});
        c["process"]["env"] = json!(["PATH=/bin"]);
    })?;
    ctx.report()?.expect("env.HOME", "/")
}

fn process_scheduler_flags(ctx: &mut Ctx) -> TestResult {
    // The runtime spec's spelling of the flag.
    ctx.config(|c| {
        c["process"]["scheduler"] =
            json!({"policy": "SCHED_OTHER", "nice": 5, "flags": ["SCHED_FLAG_RESET_ON_FORK"]})
    })?;
    ctx.args(&["/bin/spec-helper", "report"])?;
    let r = ctx.run_output();
    expect_eq("exit status with a scheduler", Some(0), r.code)
        .map_err(|e| format!("{e}: {}", r.stderr.trim()))
}

fn exec_cap_and_additional_gids(ctx: &mut Ctx) -> TestResult {
    ctx.args(&["/bin/spec-helper", "sleep", "30"])?;
    ctx.config(|c| c["process"]["user"]["additionalGids"] = json!([10]))?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["run", "-d", "--bundle", &bundle, &ctx.id])?;
    let result = (|| {
        let out = ctx.ok(&[
            "exec",
            "--cap",
            "CAP_SYS_ADMIN",
            "--additional-gids",
            "777",
            &ctx.id,
            "/bin/spec-helper",
            "report",
        ])?;
        let r = Report::parse(&out);
        let eff = u64::from_str_radix(r.get("CapEff"), 16).map_err(|e| format!("CapEff: {e}"))?;
        if eff & (1 << 21) == 0 {
            return Err(format!(
                "exec --cap CAP_SYS_ADMIN: not effective (CapEff {eff:x})"
            ));
        }
        let groups: Vec<&str> = r.get("groups").split(',').collect();
        if !groups.contains(&"777") || !groups.contains(&"10") {
            return Err(format!(
                "exec --additional-gids 777: groups {groups:?} (want the container's 10 and 777)"
            ));
        }
        Ok(())
    })();
    let _ = ctx.runtime(&["delete", "--force", &ctx.id]);
    result
}

fn ns_net_loopback_up(ctx: &mut Ctx) -> TestResult {
    ctx.args(&["/bin/spec-helper", "read", "/sys/class/net/lo/operstate"])?;
    let state = ctx.run_output().stdout;
    // lo reports "unknown" when up (it has no carrier), "down" otherwise.
    expect_eq("lo in a new network namespace", "unknown", state.trim())
}

fn hooks_go_on_after_a_failure_with_runtime_env(ctx: &mut Ctx) -> TestResult {
    // Two poststart hooks without `env`: the first fails, the second must
    // still run, and finds `id` through the runtime's PATH.
    let out = ctx.dir.join("second-hook");
    let failing = json!({"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]});
    let second = json!({"path": "/bin/sh",
        "args": ["sh", "-c", format!("id -u > {}", out.display())]});
    ctx.config(|c| c["hooks"] = json!({"poststart": [failing, second]}))?;
    ctx.args(&["/bin/spec-helper", "report"])?;
    let r = ctx.run_output();
    expect_eq("exit status", Some(0), r.code).map_err(|e| format!("{e}: {}", r.stderr.trim()))?;
    let written = std::fs::read_to_string(&out)
        .map_err(|e| format!("the hook after the failing one did not run: {e}"))?;
    expect_eq("second hook ran `id -u`", "0", written.trim())
}

fn process_cwd_created_when_missing(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["process"]["cwd"] = "/work/deep/dir".into())?;
    let r = ctx.report()?;
    r.expect("cwd", "/work/deep/dir")?;
    ctx.args(&["/bin/spec-helper", "stat", "/work/deep"])?;
    let st = Report::parse(&ctx.run_output().stdout);
    st.expect("type", "dir")?;
    st.expect("mode", "0755")
}

fn devices_path_with_trailing_slash(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| {
        c["linux"]["devices"] = json!([{"path": "/dev/fuse/", "type": "c", "major": 10,
            "minor": 229, "fileMode": 438, "uid": 0, "gid": 0}]);
        c["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"}]);
    })?;
    ctx.args(&["/bin/spec-helper", "stat", "/dev/fuse"])?;
    let st = Report::parse(&ctx.run_output().stdout);
    st.expect("type", "char")?;
    st.expect("dev", "10:229")
}

fn hook_timeout_not_positive_is_refused(ctx: &mut Ctx) -> TestResult {
    // runtime-spec: "timeout ... MUST be greater than zero". A runtime that
    // waited on it would hang `create`.
    ctx.config(|c| c["hooks"] = json!({"poststart": [{"path": "/bin/true", "timeout": 0}]}))?;
    let bundle = ctx.bundle_str();
    let r = ctx.runtime(&["create", "--bundle", &bundle, &ctx.id]);
    let _ = ctx.runtime(&["delete", "--force", &ctx.id]);
    if r.code == Some(0) {
        return Err("create accepted a hook timeout of 0".into());
    }
    Ok(())
}

fn process_inheritable_and_ambient_raised(ctx: &mut Ctx) -> TestResult {
    // An inheritable capability outside the permitted set, no CAP_SETPCAP
    // anywhere: the kernel allows it only while the runtime still holds
    // CAP_SETPCAP, so the sets must be set together, early (as runc does).
    let caps = json!(["CAP_NET_RAW", "CAP_KILL"]);
    ctx.config(|c| {
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_NET_RAW", "CAP_KILL", "CAP_SYS_ADMIN"],
            "effective": caps, "permitted": caps,
            "inheritable": ["CAP_NET_RAW", "CAP_SYS_ADMIN"], "ambient": ["CAP_NET_RAW"]});
    })?;
    let r = ctx.report()?;
    // CAP_NET_RAW is bit 13, CAP_KILL bit 5, CAP_SYS_ADMIN bit 21.
    r.expect("CapInh", "0000000000202000")?;
    r.expect("CapAmb", "0000000000002000")?;
    r.expect("CapPrm", "0000000000002020")
}

fn ns_user_several_mapping_ranges(ctx: &mut Ctx) -> TestResult {
    // Two ranges each, as root: runc writes them itself (no newuidmap).
    ctx.config(|c| {
        with_userns(
            c,
            json!([{"containerID": 0, "hostID": 100000, "size": 1000},
                   {"containerID": 1000, "hostID": 300000, "size": 64536}]),
        )
    })?;
    let r = ctx.report()?;
    r.expect("uid_map", "0 100000 1000 1000 300000 64536")?;
    r.expect("gid_map", "0 100000 1000 1000 300000 64536")?;
    r.expect("uid", "0")
}

fn mount_destination_through_dangling_symlink(ctx: &mut Ctx) -> TestResult {
    // /data -> /srv/data, which does not exist yet: the mount lands on the
    // target inside the rootfs, created there.
    let link = ctx.bundle.join("rootfs/data");
    std::os::unix::fs::symlink("/srv/data", &link).map_err(|e| e.to_string())?;
    ctx.config(|c| {
        if let Some(a) = c["mounts"].as_array_mut() {
            a.push(json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs"}));
        }
    })?;
    let info = mountinfo(ctx)?;
    let mounted = info
        .lines()
        .any(|l| l.split(' ').nth(4) == Some("/srv/data") && l.contains(" - tmpfs "));
    if !mounted {
        return Err(format!("no tmpfs on /srv/data:\n{info}"));
    }
    if ctx.bundle.join("rootfs/srv/data").is_dir() {
        Ok(())
    } else {
        Err("the symlink's target was not created inside the rootfs".into())
    }
}

fn seccomp_profile_does_not_bind_the_runtime(ctx: &mut Ctx) -> TestResult {
    // The workload never accepts connections; the runtime's init does while
    // it waits for `start`. With noNewPrivileges the filter belongs to the
    // workload alone: runc loads it right before execve.
    ctx.config(|c| {
        c["process"]["noNewPrivileges"] = true.into();
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["accept", "accept4", "getcwd"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": 1}]});
    })?;
    ctx.args(&["/bin/spec-helper", "umask-syscall", "022"])?;
    let r = ctx.run_output();
    expect_eq("exit status", Some(0), r.code).map_err(|e| format!("{e}: {}", r.stderr.trim()))
}

/// Plays a seccomp agent: `create` must send the container's process
/// state (runtime-spec `containerProcessState`) and the listener fd to
/// `listenerPath`.
fn seccomp_listener(ctx: &mut Ctx, rules: serde_json::Value) -> TestResult {
    let sock = ctx.dir.join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).map_err(|e| e.to_string())?;
    ctx.config(|c| {
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock, "listenerMetadata": "spec-tests", "syscalls": rules});
    })?;
    let bundle = ctx.bundle_str();
    ctx.ok(&["create", "--bundle", &bundle, &ctx.id])?;
    // libcontainer connects and sends before `create` returns: the wait is
    // only for a slow accept queue, not for the runtime.
    let (msg, fd) = accept_with_fd(&listener, std::time::Duration::from_secs(10))
        .map_err(|e| format!("seccomp agent: {e}"))?;
    let state: serde_json::Value = serde_json::from_slice(&msg).map_err(|e| {
        format!(
            "the message is not JSON ({e}): {}",
            String::from_utf8_lossy(&msg)
        )
    })?;
    expect_eq("fds", &json!(["seccompFd"]), &state["fds"])?;
    expect_eq("metadata", &json!("spec-tests"), &state["metadata"])?;
    expect_eq("state.id", &json!(ctx.id), &state["state"]["id"])?;
    if state["pid"].as_u64().unwrap_or(0) == 0 {
        return Err(format!("no pid in {state}"));
    }
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|e| e.to_string())?;
    expect_eq(
        "the fd sent",
        "anon_inode:seccomp notify",
        link.to_string_lossy().as_ref(),
    )
}

fn seccomp_listener_with_a_notify_rule(ctx: &mut Ctx) -> TestResult {
    seccomp_listener(
        ctx,
        json!([{"names": ["mknodat"], "action": "SCMP_ACT_NOTIFY"},
               {"names": ["swapon"], "action": "SCMP_ACT_ERRNO"}]),
    )
}

/// crun sends the listener even when no rule notifies (an agent may hold
/// it for later); runc sends nothing then.
fn seccomp_listener_without_a_notify_rule(ctx: &mut Ctx) -> TestResult {
    seccomp_listener(
        ctx,
        json!([{"names": ["swapon"], "action": "SCMP_ACT_ERRNO"}]),
    )
}

fn devices_outside_dev(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| {
        c["linux"]["devices"] = json!([{"path": "/opt/dev/null2", "type": "c", "major": 1,
            "minor": 3, "fileMode": 438, "uid": 0, "gid": 0}]);
        c["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]);
    })?;
    ctx.args(&["/bin/spec-helper", "stat", "/opt/dev/null2"])?;
    let st = Report::parse(&ctx.run_output().stdout);
    st.expect("type", "char")?;
    st.expect("dev", "1:3")?;
    st.expect("mode", "0666")
}

fn mount_idmapped(ctx: &mut Ctx) -> TestResult {
    // A host directory owned by root, bind-mounted into a container whose
    // root is host uid 100000: without idmap its files show as the overflow
    // id (65534); idmapped with the container's mappings they are root's.
    let src = ctx.dir.join("idmap-src");
    std::fs::create_dir_all(&src).map_err(|e| e.to_string())?;
    if let Some(reason) = no_idmap_here(&src) {
        return skip(reason);
    }
    std::fs::write(src.join("file"), "x").map_err(|e| e.to_string())?;
    ctx.config(|c| {
        with_userns(
            c,
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
        );
        if let Some(m) = c["mounts"].as_array_mut() {
            m.push(json!({"destination": "/mnt", "type": "bind", "source": src,
                "options": ["rbind", "idmap"]}));
        }
    })?;
    ctx.args(&["/bin/spec-helper", "stat", "/mnt/file"])?;
    let r = ctx.run_output();
    let st = Report::parse(&r.stdout);
    st.expect("uid", "0")
        .and_then(|()| st.expect("gid", "0"))
        .map_err(|e| format!("{e} (stderr: {})", r.stderr.trim()))
}

/// Why `dir`'s filesystem cannot be idmapped here, if it cannot: tmpfs
/// supports idmapped mounts from Linux 6.3 (scripts/vm-test's Debian 12
/// kernel is 6.1, and its writable filesystems are all tmpfs).
fn no_idmap_here(dir: &std::path::Path) -> Option<String> {
    let fs = nix::sys::statfs::statfs(dir).ok()?;
    if fs.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC {
        return None;
    }
    let release = nix::sys::utsname::uname().ok()?;
    let release = release.release().to_string_lossy().into_owned();
    let mut parts = release
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (parts.next()?, parts.next()?);
    (version < (6, 3))
        .then(|| format!("tmpfs cannot be idmapped before Linux 6.3 (this is {release})"))
}

fn mount_bind_source_the_userns_cannot_reach(ctx: &mut Ctx) -> TestResult {
    // The source sits below a directory only host root may enter (0700):
    // the container's root (host uid 100000) could not open it, the
    // runtime (host root) can, as runc does.
    let private = ctx.dir.join("private");
    let src = private.join("data");
    std::fs::create_dir_all(&src).map_err(|e| e.to_string())?;
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(src.join("file"), "reached").map_err(|e| e.to_string())?;
    std::fs::set_permissions(
        src.join("file"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .map_err(|e| e.to_string())?;
    ctx.config(|c| {
        with_userns(
            c,
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
        );
        if let Some(m) = c["mounts"].as_array_mut() {
            m.push(json!({"destination": "/mnt", "type": "bind", "source": src,
                "options": ["rbind", "ro"]}));
        }
    })?;
    ctx.args(&["/bin/spec-helper", "read", "/mnt/file"])?;
    let r = ctx.run_output();
    expect_eq("read through the bind mount", "reached", r.stdout.as_str())
        .map_err(|e| format!("{e} (stderr: {})", r.stderr.trim()))
}

fn mount_dev_bound_from_the_host(ctx: &mut Ctx) -> TestResult {
    // Stands in for the host's /dev (podman --privileged -v /dev:/dev): it
    // has the fd symlinks a runtime would otherwise make. runc leaves a
    // bound /dev alone; nothing may be created in it but the mount points
    // the config asks for.
    let src = ctx.dir.join("hostdev");
    std::fs::create_dir_all(src.join("pts")).map_err(|e| e.to_string())?;
    std::fs::write(src.join("marker"), "host").map_err(|e| e.to_string())?;
    nix::sys::stat::mknod(
        &src.join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .map_err(|e| format!("mknod null: {e}"))?;
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(to, src.join(link)).map_err(|e| e.to_string())?;
    }
    ctx.config(|c| {
        for m in c["mounts"].as_array_mut().into_iter().flatten() {
            if m["destination"] == "/dev" {
                *m = json!({"destination": "/dev", "type": "bind", "source": src,
                    "options": ["rbind", "nosuid"]});
            }
        }
    })?;
    let info = mountinfo(ctx)?;
    let fstype_at = |dest: &str| {
        info.lines()
            .rfind(|l| l.split(' ').nth(4) == Some(dest))
            .and_then(|l| l.split(" - ").nth(1))
            .and_then(|t| t.split(' ').next())
            .map(str::to_string)
    };
    expect_eq(
        "/dev/pts",
        Some("devpts".to_string()),
        fstype_at("/dev/pts"),
    )?;
    expect_eq("/dev/shm", Some("tmpfs".to_string()), fstype_at("/dev/shm"))?;
    ctx.args(&["/bin/spec-helper", "read", "/dev/marker"])?;
    expect_eq("/dev/marker", "host", ctx.run_output().stdout.as_str())?;
    let mut made: Vec<String> = std::fs::read_dir(&src)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            ![
                "pts", "marker", "null", "fd", "stdin", "stdout", "stderr", "shm", "mqueue",
            ]
            .contains(&n.as_str())
        })
        .collect();
    made.sort();
    expect_eq("created in the bound /dev", Vec::<String>::new(), made)
}

fn devices_userns_node_missing_on_the_host(ctx: &mut Ctx) -> TestResult {
    // The host has no /dev/spec-null: in a user namespace the node cannot
    // be bind-mounted from the host, so the runtime must make it.
    ctx.config(|c| {
        with_userns(
            c,
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
        );
        c["linux"]["devices"] = json!([{"path": "/dev/spec-null", "type": "c", "major": 1,
            "minor": 3, "fileMode": 438, "uid": 0, "gid": 0}]);
        c["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]);
    })?;
    ctx.args(&["/bin/spec-helper", "stat", "/dev/spec-null"])?;
    let r = ctx.run_output();
    let st = Report::parse(&r.stdout);
    st.expect("type", "char")
        .and_then(|()| st.expect("dev", "1:3"))
        .and_then(|()| st.expect("mode", "0666"))
        .and_then(|()| st.expect("uid", "0"))
        .map_err(|e| format!("{e} (stderr: {})", r.stderr.trim()))?;
    ctx.args(&["/bin/spec-helper", "write", "/dev/spec-null"])?;
    expect_eq("writing to the node", "ok", ctx.run_output().stdout.trim())
}
