//! Runs inside the container under test and reports what it sees, one
//! `key=value` per line. Linked statically (scripts/spec-tests builds it)
//! so it runs in a bare busybox rootfs. Only std and libc.
//!
//!   spec-helper report              ids, caps, rlimits, env, cwd, names, namespaces...
//!   spec-helper mounts              /proc/self/mountinfo
//!   spec-helper stat PATH           type, mode, major:minor
//!   spec-helper write PATH          "ok" or the errno name
//!   spec-helper read PATH           the file's bytes
//!   spec-helper umask-syscall MODE  raw umask(2): "ok" or errno (seccomp tests)
//!   spec-helper sleep SECS
//!   spec-helper exit N

use std::ffi::CString;
use std::io::Write;

fn errno_name(e: i32) -> String {
    match e {
        libc::EPERM => "EPERM".into(),
        libc::ENOENT => "ENOENT".into(),
        libc::EACCES => "EACCES".into(),
        libc::EROFS => "EROFS".into(),
        libc::EOPNOTSUPP => "EOPNOTSUPP".into(),
        libc::ENOSYS => "ENOSYS".into(),
        libc::EINVAL => "EINVAL".into(),
        n => format!("errno{n}"),
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn status_field(name: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

fn report(out: &mut impl Write) {
    // SAFETY: these libc calls take no pointers or only valid ones below.
    let (uid, gid, euid) = unsafe { (libc::getuid(), libc::getgid(), libc::geteuid()) };
    let _ = writeln!(out, "uid={uid}\ngid={gid}\neuid={euid}");
    let mut groups = vec![0 as libc::gid_t; 256];
    // SAFETY: the buffer holds 256 entries, as passed.
    let n = unsafe { libc::getgroups(256, groups.as_mut_ptr()) };
    groups.truncate(n.max(0) as usize);
    let g: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let _ = writeln!(out, "groups={}", g.join(","));
    // SAFETY: umask has no preconditions; the value is restored at once.
    let mask = unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    };
    let _ = writeln!(out, "umask={mask:04o}");
    for f in [
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
    ] {
        let _ = writeln!(out, "{f}={}", status_field(f));
    }
    for (name, res) in [
        ("NOFILE", libc::RLIMIT_NOFILE),
        ("CORE", libc::RLIMIT_CORE),
        ("NPROC", libc::RLIMIT_NPROC),
        ("STACK", libc::RLIMIT_STACK),
    ] {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: r is a valid rlimit to fill.
        unsafe { libc::getrlimit(res, &mut r) };
        let _ = writeln!(out, "rlimit.{name}={}:{}", r.rlim_cur, r.rlim_max);
    }
    let _ = writeln!(
        out,
        "oom_score_adj={}",
        std::fs::read_to_string("/proc/self/oom_score_adj")
            .unwrap_or_default()
            .trim()
    );
    let _ = writeln!(
        out,
        "cwd={}",
        std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "argv={}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    for (k, v) in std::env::vars() {
        let _ = writeln!(out, "env.{k}={v}");
    }
    // SAFETY: utsname is plain data filled by uname.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is valid for writing.
    unsafe { libc::uname(&mut u) };
    let field = |b: &[libc::c_char]| {
        // SAFETY: uname NUL-terminates every field.
        unsafe { std::ffi::CStr::from_ptr(b.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    let _ = writeln!(
        out,
        "hostname={}\ndomainname={}\nmachine={}",
        field(&u.nodename),
        field(&u.domainname),
        field(&u.machine)
    );
    for ns in ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts", "time"] {
        let link = std::fs::read_link(format!("/proc/self/ns/{ns}"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let _ = writeln!(out, "ns.{ns}={link}");
    }
    // SAFETY: getpid has no preconditions; personality(0xffffffff) only queries.
    let (pid, persona) = unsafe { (libc::getpid(), libc::personality(0xffff_ffff)) };
    let _ = writeln!(out, "pid={pid}\npersonality={persona:#x}");
    let _ = writeln!(
        out,
        "uid_map={}",
        std::fs::read_to_string("/proc/self/uid_map")
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(
        out,
        "gid_map={}",
        std::fs::read_to_string("/proc/self/gid_map")
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(
        out,
        "cgroup={}",
        std::fs::read_to_string("/proc/self/cgroup")
            .unwrap_or_default()
            .lines()
            .collect::<Vec<_>>()
            .join(";")
    );
    // SAFETY: isatty only inspects the descriptor.
    let tty = unsafe { libc::isatty(0) };
    let _ = writeln!(out, "stdin_tty={tty}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut out = std::io::stdout().lock();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(1).as_str() {
        "report" => report(&mut out),
        "mounts" => {
            let _ = out.write_all(
                std::fs::read_to_string("/proc/self/mountinfo")
                    .unwrap_or_default()
                    .as_bytes(),
            );
        }
        "stat" => {
            let c = CString::new(arg(2)).unwrap_or_default();
            // SAFETY: st is plain data; c is NUL-terminated.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            if unsafe { libc::lstat(c.as_ptr(), &mut st) } != 0 {
                let _ = writeln!(out, "error={}", errno_name(last_errno()));
            } else {
                let kind = match st.st_mode & libc::S_IFMT {
                    libc::S_IFCHR => "char",
                    libc::S_IFBLK => "block",
                    libc::S_IFDIR => "dir",
                    libc::S_IFREG => "file",
                    libc::S_IFLNK => "link",
                    _ => "other",
                };
                let (maj, min) = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
                let _ = writeln!(
                    out,
                    "type={kind}\nmode={:04o}\ndev={maj}:{min}\nuid={}\ngid={}\nsize={}",
                    st.st_mode & 0o7777,
                    st.st_uid,
                    st.st_gid,
                    st.st_size
                );
            }
        }
        "write" => match std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(arg(2))
        {
            Ok(mut f) => {
                let r = f.write_all(b"x");
                let _ = writeln!(
                    out,
                    "{}",
                    if r.is_ok() {
                        "ok".into()
                    } else {
                        errno_name(r.err().and_then(|e| e.raw_os_error()).unwrap_or(0))
                    }
                );
            }
            Err(e) => {
                let _ = writeln!(out, "{}", errno_name(e.raw_os_error().unwrap_or(0)));
            }
        },
        "read" => match std::fs::read(arg(2)) {
            Ok(b) => {
                let _ = out.write_all(&b);
            }
            Err(e) => {
                let _ = writeln!(out, "error={}", errno_name(e.raw_os_error().unwrap_or(0)));
            }
        },
        "umask-syscall" => {
            let mode = i64::from_str_radix(&arg(2), 8).unwrap_or(0o022);
            // SAFETY: umask takes an integer; the raw syscall bypasses libc caching.
            let r = unsafe { libc::syscall(libc::SYS_umask, mode) };
            let _ = writeln!(
                out,
                "{}",
                if r < 0 {
                    errno_name(last_errno())
                } else {
                    "ok".into()
                }
            );
        }
        "sleep" => std::thread::sleep(std::time::Duration::from_secs(arg(2).parse().unwrap_or(1))),
        "exit" => std::process::exit(arg(2).parse().unwrap_or(0)),
        // Touches N MiB, page by page, then sleeps: under a lower memory
        // limit the kernel's OOM killer ends it.
        "alloc" => {
            let mib: usize = arg(2).parse().unwrap_or(1);
            let mut held: Vec<Vec<u8>> = Vec::new();
            for _ in 0..mib {
                held.push(vec![1u8; 1 << 20]);
            }
            let _ = writeln!(out, "allocated {} MiB", held.len());
            std::thread::sleep(std::time::Duration::from_secs(30));
        }
        other => {
            let _ = writeln!(out, "unknown command {other:?}");
            std::process::exit(64);
        }
    }
}
