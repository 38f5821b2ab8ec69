//! An OCI runtime conformance suite: generates bundles, drives a runtime
//! binary through create/start/state/kill/delete the way callers do, and
//! checks the result from inside the container (spec-helper) and from the
//! host.
//!
//!   RUNTIME=/usr/bin/crun spec-tests                 one runtime
//!   spec-tests --runtime runc=/usr/sbin/runc --runtime runlet=/path/runlet
//!   spec-tests --filter seccomp --list
//!   spec-tests --systemd-cgroup ...                  the systemd cgroup driver
//!
//! With runtimes named `runc` and `runlet`, the exit status is non-zero when
//! runlet fails a test that runc passes; with one runtime, when it fails any.

mod compat;
mod harness;
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;

use harness::{Outcome, Runtime};

fn usage() -> ! {
    eprintln!("usage: spec-tests [--runtime NAME=PATH]... [--filter TEXT] [--list] [--systemd-cgroup]   (or RUNTIME=/path spec-tests)");
    std::process::exit(2)
}

fn main() {
    let mut runtimes = Vec::new();
    let mut filter = None;
    let mut list = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runtime" => {
                let v = args.next().unwrap_or_else(|| usage());
                let (name, path) = v.split_once('=').unwrap_or_else(|| usage());
                runtimes.push(Runtime::new(name, PathBuf::from(path)));
            }
            "--filter" => filter = Some(args.next().unwrap_or_else(|| usage())),
            "--list" => list = true,
            "--systemd-cgroup" => harness::set_systemd(true),
            _ => usage(),
        }
    }
    if runtimes.is_empty() {
        let path = std::env::var("RUNTIME").unwrap_or_else(|_| usage());
        let name = PathBuf::from(&path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(path.clone());
        runtimes.push(Runtime::new(&name, PathBuf::from(path)));
    }
    let mut all = tests::all();
    all.extend(compat::all());
    let selected: Vec<_> = all
        .iter()
        .filter(|t| {
            filter
                .as_deref()
                .is_none_or(|f| t.name.contains(f) || t.section.contains(f))
        })
        .collect();
    if list {
        for t in &selected {
            println!("{:<12} {}", t.section, t.name);
        }
        return;
    }
    if nix::unistd::geteuid().as_raw() != 0 {
        eprintln!("spec-tests: needs root (namespaces, cgroups, mounts)");
        std::process::exit(2);
    }
    let helper = harness::helper_path();
    let mut results: BTreeMap<&str, Vec<Outcome>> = BTreeMap::new();
    for rt in &runtimes {
        eprintln!("== {} ({})", rt.name, rt.path.display());
        for t in &selected {
            let outcome = harness::run_test(rt, &helper, t);
            match &outcome {
                Outcome::Pass => eprintln!("  pass  {}", t.name),
                Outcome::Skip(why) => eprintln!("  skip  {} — {why}", t.name),
                Outcome::Fail(why) => eprintln!(
                    "  FAIL  {}\n        {}",
                    t.name,
                    why.replace('\n', "\n        ")
                ),
            }
            results.entry(t.name).or_default().push(outcome);
        }
    }

    // The table: test, then one column per runtime.
    let width = selected
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut header = format!("{:<width$}", "test");
    for rt in &runtimes {
        header.push_str(&format!("  {:<8}", rt.name));
    }
    println!("\n{header}");
    for t in &selected {
        let mut line = format!("{:<width$}", t.name);
        for o in &results[t.name] {
            line.push_str(&format!("  {:<8}", o.short()));
        }
        println!("{line}");
    }
    println!();
    for (i, rt) in runtimes.iter().enumerate() {
        let (mut p, mut f, mut s) = (0, 0, 0);
        for t in &selected {
            match results[t.name][i] {
                Outcome::Pass => p += 1,
                Outcome::Fail(_) => f += 1,
                Outcome::Skip(_) => s += 1,
            }
        }
        println!("{}: {p} passed, {f} failed, {s} skipped", rt.name);
    }

    // The policy.
    let idx = |n: &str| runtimes.iter().position(|r| r.name == n);
    let bad: Vec<&str> = match (idx("runc"), idx("runlet")) {
        (Some(rc), Some(rl)) => selected
            .iter()
            .filter(|t| {
                matches!(results[t.name][rc], Outcome::Pass)
                    && matches!(results[t.name][rl], Outcome::Fail(_))
            })
            .map(|t| t.name)
            .collect(),
        _ => selected
            .iter()
            .filter(|t| {
                results[t.name]
                    .iter()
                    .any(|o| matches!(o, Outcome::Fail(_)))
            })
            .map(|t| t.name)
            .collect(),
    };
    if !bad.is_empty() {
        if idx("runc").is_some() && idx("runlet").is_some() {
            eprintln!(
                "spec-tests: runlet fails what runc passes: {}",
                bad.join(", ")
            );
        }
        std::process::exit(1);
    }
}
