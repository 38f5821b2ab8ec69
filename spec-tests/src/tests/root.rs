//! `root` (read-only or writable, absolute path), `hostname` and
//! `domainname`.

use crate::harness::{expect_eq, Ctx, Test, TestResult};
use crate::t;

pub fn all() -> Vec<Test> {
    vec![
        t!("root", root_readonly),
        t!("root", root_writable),
        t!("root", root_absolute_path),
        t!("hostname", hostname),
        t!("hostname", domainname),
    ]
}

fn root_readonly(ctx: &mut Ctx) -> TestResult {
    ctx.args(&["/bin/spec-helper", "write", "/newfile"])?;
    let r = ctx.run_output();
    expect_eq("write to / with root.readonly", "EROFS", r.stdout.trim())
}

fn root_writable(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["root"]["readonly"] = false.into())?;
    ctx.args(&["/bin/spec-helper", "write", "/newfile"])?;
    expect_eq(
        "write to / without root.readonly",
        "ok",
        ctx.run_output().stdout.trim(),
    )?;
    expect_eq(
        "file in the bundle",
        true,
        ctx.bundle.join("rootfs/newfile").exists(),
    )
}

fn root_absolute_path(ctx: &mut Ctx) -> TestResult {
    let abs = ctx.bundle.join("rootfs");
    ctx.config(|c| c["root"]["path"] = abs.to_string_lossy().into_owned().into())?;
    ctx.report()?.expect("hostname", "spec")
}

fn hostname(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["hostname"] = "spec-host-name".into())?;
    ctx.report()?.expect("hostname", "spec-host-name")
}

fn domainname(ctx: &mut Ctx) -> TestResult {
    ctx.config(|c| c["domainname"] = "spec.example".into())?;
    ctx.report()?.expect("domainname", "spec.example")
}
