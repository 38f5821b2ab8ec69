//! `linux.seccomp`: ERRNO with errnoRet, argument conditions, KILL, and
//! a default action with defaultErrnoRet.

use serde_json::{json, Value};

use crate::harness::{expect_eq, Ctx, Test, TestResult};
use crate::t;

pub fn all() -> Vec<Test> {
    vec![
        t!("seccomp", seccomp_errno_rule),
        t!("seccomp", seccomp_arg_condition),
        t!("seccomp", seccomp_kill_action),
        t!("seccomp", seccomp_default_action),
    ]
}

fn seccomp(ctx: &Ctx, profile: Value) -> TestResult {
    ctx.config(|c| c["linux"]["seccomp"] = profile)
}

fn seccomp_errno_rule(ctx: &mut Ctx) -> TestResult {
    seccomp(
        ctx,
        json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95}]}),
    )?;
    ctx.args(&["/bin/spec-helper", "umask-syscall", "022"])?;
    expect_eq(
        "umask under an ERRNO rule with errnoRet 95",
        "EOPNOTSUPP",
        ctx.run_output().stdout.trim(),
    )?;
    ctx.args(&["/bin/spec-helper", "report"])?;
    ctx.report()?.expect("Seccomp", "2")
}

fn seccomp_arg_condition(ctx: &mut Ctx) -> TestResult {
    seccomp(
        ctx,
        json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
            "args": [{"index": 0, "value": 511, "op": "SCMP_CMP_EQ"}]}]}),
    )?;
    ctx.args(&["/bin/spec-helper", "umask-syscall", "777"])?;
    expect_eq(
        "umask(0777), matched by the rule",
        "EPERM",
        ctx.run_output().stdout.trim(),
    )?;
    ctx.args(&["/bin/spec-helper", "umask-syscall", "022"])?;
    expect_eq(
        "umask(022), not matched",
        "ok",
        ctx.run_output().stdout.trim(),
    )
}

fn seccomp_kill_action(ctx: &mut Ctx) -> TestResult {
    seccomp(
        ctx,
        json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["umask"], "action": "SCMP_ACT_KILL"}]}),
    )?;
    ctx.args(&["/bin/spec-helper", "umask-syscall", "022"])?;
    let r = ctx.run_output();
    expect_eq(
        "exit status when a SCMP_ACT_KILL rule fires (128+SIGSYS)",
        Some(159),
        r.code,
    )
}

/// Syscalls a static helper and a runtime's last steps need (runtimes load
/// the filter before waiting for `start`); everything else gets the
/// default action.
const ALLOWED: &[&str] = &[
    "execve",
    "execveat",
    "brk",
    "mmap",
    "munmap",
    "mprotect",
    "mremap",
    "madvise",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "getrandom",
    "read",
    "write",
    "writev",
    "readv",
    "pread64",
    "close",
    "close_range",
    "openat",
    "open",
    "fstat",
    "newfstatat",
    "statx",
    "lseek",
    "exit",
    "exit_group",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sigaltstack",
    "getpid",
    "gettid",
    "getuid",
    "getgid",
    "geteuid",
    "getegid",
    "getppid",
    "uname",
    "futex",
    "sched_getaffinity",
    "sched_yield",
    "poll",
    "ppoll",
    "ioctl",
    "fcntl",
    "dup",
    "dup2",
    "dup3",
    "capget",
    "capset",
    "prctl",
    "setgroups",
    "setuid",
    "setgid",
    "setresuid",
    "setresgid",
    "getgroups",
    "access",
    "faccessat",
    "faccessat2",
    "readlink",
    "readlinkat",
    "getcwd",
    "chdir",
    "fchdir",
    "clock_gettime",
    "nanosleep",
    "clock_nanosleep",
    "sendmsg",
    "recvmsg",
    "socket",
    "connect",
    "write",
    "epoll_wait",
    "getdents64",
    "personality",
    "seccomp",
    "wait4",
    "kill",
    "tgkill",
    "pipe2",
    "memfd_create",
    "accept",
    "accept4",
    "bind",
    "listen",
    "getsockopt",
    "setsockopt",
    "sendto",
    "recvfrom",
    "shutdown",
    "getsockname",
    "socketpair",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "select",
    "pselect6",
    "clone",
    "clone3",
    "fork",
    "vfork",
    "stat",
    "lstat",
    "unlink",
    "unlinkat",
    "mkdirat",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchownat",
    "ftruncate",
    "fsync",
    "rename",
    "renameat",
    "renameat2",
    "getdents",
    "statfs",
    "fstatfs",
    "setsid",
    "getpgrp",
    "setpgid",
    "sysinfo",
    "restart_syscall",
    "membarrier",
    "sched_setaffinity",
    "getrlimit",
    "setrlimit",
    "umount2",
    "mount",
    "fsopen",
    "fsmount",
    "fsconfig",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "openat2",
    "pidfd_open",
    "pidfd_send_signal",
    "waitid",
    "eventfd2",
    "signalfd4",
    "timerfd_create",
    "timerfd_settime",
    "getpriority",
    "setpriority",
    "times",
];

fn seccomp_default_action(ctx: &mut Ctx) -> TestResult {
    seccomp(
        ctx,
        json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 95,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ALLOWED, "action": "SCMP_ACT_ALLOW"}]}),
    )?;
    ctx.args(&["/bin/spec-helper", "umask-syscall", "022"])?;
    let r = ctx.run_output();
    if r.code != Some(0) {
        return Err(format!("run exited {:?}: {}", r.code, r.stderr.trim()));
    }
    expect_eq(
        "umask, not allowed, under defaultAction ERRNO with defaultErrnoRet 95",
        "EOPNOTSUPP",
        r.stdout.trim(),
    )
}
