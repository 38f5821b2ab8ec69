//! runlet: a runc-compatible OCI runtime built on youki's libcontainer,
//! with an embedded WebAssembly handler (see src/wasm/).

mod cgroups;
mod cli;
mod commands;
mod config;
mod container;
mod foreground;
mod logging;
mod state;
mod wasm;

use clap::{CommandFactory, Parser};

use cli::{CgroupManagerKind, Cli, Command};

/// What every command needs from the global options.
pub struct Ctx {
    pub root: std::path::PathBuf,
    pub systemd: bool,
    /// `--cgroup-manager=disabled`: the container stays in the caller's
    /// cgroups (src/cgroups/removal.rs, `evict_to_caller`).
    pub cgroups_disabled: bool,
    /// `--rootless` given as true (or bare).
    pub rootless: bool,
    /// The compiled Wasm code cache.
    pub wasm_cache: std::path::PathBuf,
    /// The largest Wasm module `create` reads and compiles.
    pub wasm_max_module_size: u64,
}

impl Ctx {
    fn from_global(g: &cli::GlobalOpts) -> anyhow::Result<Self> {
        let systemd = match g.cgroup_manager {
            Some(CgroupManagerKind::Systemd) => true,
            Some(CgroupManagerKind::Cgroupfs) => false,
            Some(CgroupManagerKind::Disabled) => false,
            None => g.systemd_cgroup,
        };
        let root = if g.root.is_absolute() {
            g.root.clone()
        } else {
            std::env::current_dir()?.join(&g.root)
        };
        let rootless = g
            .rootless
            .as_deref()
            .is_some_and(|v| v == "true" || v == "1");
        Ok(Ctx {
            root,
            systemd,
            cgroups_disabled: g.cgroup_manager == Some(CgroupManagerKind::Disabled),
            rootless,
            wasm_cache: g.wasm_cache.clone(),
            wasm_max_module_size: g.wasm_max_module_size,
        })
    }
}

fn main() {
    // Started as its own uid/gid mapping helper (src/container/idmap.rs).
    if let Some(code) = container::idmap::run_as_helper() {
        std::process::exit(code);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
    if cli.global.version {
        print!("{}", commands::features::version_text());
        return;
    }
    let Some(command) = cli.command else {
        let _ = Cli::command().print_help();
        std::process::exit(1);
    };
    let code = match run(&cli.global, command) {
        Ok(code) => code,
        Err(err) => {
            // One line: the chain of contexts joined, innermost last.
            let msg = format!("{err:#}").replace('\n', " ");
            logging::log_final_error(&msg);
            eprintln!("{}", logging::stderr_line("error", &msg));
            1
        }
    };
    std::process::exit(code);
}

/// A command line clap refuses: `--help` and `--version` print as usual;
/// anything else is one error line in runc's shape (clap's own report
/// spans several lines) and exit status 1, as runc's usage errors.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
        || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    {
        e.exit()
    }
    let text = e.render().to_string();
    let mut usage = None;
    let mut parts = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(u) = line.strip_prefix("Usage: ") {
            usage = Some(u.to_string());
        } else if !line.starts_with("For more information") && !line.starts_with("tip:") {
            parts.push(line.trim_start_matches("error: ").to_string());
        }
    }
    let mut msg = parts.join(" ");
    if let Some(u) = usage {
        msg.push_str(&format!(" (usage: {u})"));
    }
    eprintln!("{}", logging::stderr_line("error", &msg));
    std::process::exit(1)
}

fn run(global: &cli::GlobalOpts, command: Command) -> anyhow::Result<i32> {
    // Before runlet opens anything: the caller's fds reach no container
    // process but the ones it passes on purpose (src/container/fds.rs).
    let passed = match &command {
        Command::Create(a) => Some(a.preserve_fds + container::fds::listen_fds()),
        Command::Run(a) => Some(a.create.preserve_fds + container::fds::listen_fds()),
        Command::Exec(a) => Some(a.preserve_fds),
        _ => None,
    };
    if let Some(n) = passed {
        container::fds::close_callers(3 + n.max(0));
    }
    logging::init(global)?;
    // Commands that only print (`runlet list | head -1`): a closed stdout
    // ends them quietly, as it ends any Unix tool, instead of the panic
    // Rust's ignored SIGPIPE turns the EPIPE into. None of them writes to a
    // socket or starts a process.
    if matches!(
        command,
        Command::Features
            | Command::List(_)
            | Command::Ps(_)
            | Command::State(_)
            | Command::Spec(_)
    ) {
        // SAFETY: restoring the default disposition of one signal.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    // Commands that start processes inside a container first make sure
    // those processes cannot write to this binary (CVE-2019-5736).
    if matches!(
        command,
        Command::Create(_) | Command::Run(_) | Command::Exec(_)
    ) {
        container::protect::ensure_protected_exe()?;
    }
    let ctx = Ctx::from_global(global)?;
    commands::dispatch(&ctx, command)
}
