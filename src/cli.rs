//! Command-line surface, shaped after runc and crun so that conmon, CRI-O,
//! podman and containerd can drive runlet without knowing it is not runc.
//!
//! clap accepts options before and after positional arguments, so both
//! `create --bundle B ID` and `create ID --bundle B` work. For `exec` the
//! command and its arguments are a trailing list: options are parsed up to
//! the first word after the container ID, everything from there on belongs
//! to the command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const DEFAULT_ROOT: &str = "/run/runlet";

#[derive(Parser, Debug)]
#[command(
    name = "runlet",
    about = "A runc-compatible OCI container runtime with an embedded WebAssembly handler",
    disable_version_flag = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalOpts {
    /// Root directory for container state
    #[arg(long, global = true, default_value = DEFAULT_ROOT, env = "RUNLET_ROOT")]
    pub root: PathBuf,

    /// Log file (`file:` prefix accepted, as crun does)
    #[arg(long, global = true)]
    pub log: Option<String>,

    /// Log format
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log level (crun's flag; --debug is the same as --log-level=debug)
    #[arg(long = "log-level", global = true)]
    pub log_level: Option<String>,

    /// Enable debug logging
    #[arg(long, global = true)]
    pub debug: bool,

    /// Use systemd to manage cgroups (same as --cgroup-manager=systemd)
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,

    /// Cgroup manager: cgroupfs or systemd
    #[arg(long = "cgroup-manager", global = true, value_enum)]
    pub cgroup_manager: Option<CgroupManagerKind>,

    /// true, false or auto: `spec` generates a rootless spec when true; other
    /// commands accept it for compatibility (rootless mode is detected)
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub rootless: Option<String>,

    /// Directory of the compiled Wasm code cache (root-owned, 0700)
    #[arg(long = "wasm-cache", global = true, env = "RUNLET_WASM_CACHE", default_value = runlet_handler::cache::DEFAULT_DIR)]
    pub wasm_cache: PathBuf,

    /// Largest Wasm module `create` reads and compiles, in bytes (K, M, G
    /// suffixes accepted); a larger entrypoint fails `create`
    #[arg(long = "wasm-max-module-size", global = true, env = "RUNLET_WASM_MAX_MODULE_SIZE", default_value = "64M", value_parser = parse_size)]
    pub wasm_max_module_size: u64,

    /// Print version information
    #[arg(short = 'v', long = "version")]
    pub version: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupManagerKind {
    Cgroupfs,
    Systemd,
    Disabled,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container from a bundle; it waits for `start`
    Create(CreateArgs),
    /// Start a created container
    Start(IdArg),
    /// Print the state of a container as JSON
    State(IdArg),
    /// Send a signal to the container's init process (default SIGTERM)
    Kill(KillArgs),
    /// Delete a container and the resources it holds
    Delete(DeleteArgs),
    /// Create and start a container
    Run(RunArgs),
    /// Run a new process inside a running container
    Exec(ExecArgs),
    /// List the processes running inside a container
    Ps(PsArgs),
    /// List containers
    List(ListArgs),
    /// Suspend all processes of a container
    Pause(IdArg),
    /// Resume all processes of a paused container
    Resume(IdArg),
    /// Update a container's resource limits (cgroups)
    Update(UpdateArgs),
    /// Show a container's resource usage (runc's JSON), once or as a stream
    Events(EventsArgs),
    /// Checkpoint a running container with CRIU
    Checkpoint(CheckpointArgs),
    /// Restore a container from a CRIU checkpoint
    Restore(RestoreArgs),
    /// Create a default config.json in the bundle
    Spec(SpecArgs),
    /// Print the features this runtime supports, as OCI features JSON
    Features,
    /// Show or clear the compiled Wasm code cache
    #[command(name = "wasm-cache")]
    WasmCache(WasmCacheArgs),
}

#[derive(Args, Debug)]
pub struct WasmCacheArgs {
    #[arg(value_enum, default_value_t = CacheAction::List)]
    pub action: CacheAction,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheAction {
    /// One line per entry: engine and settings, module SHA-256, size
    List,
    /// Remove every entry
    Clear,
}

/// `update`, with runc's flags. Sizes take runc's units (`64m`, `1g`).
#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// A JSON file with the resources to change (the runtime spec's
    /// `linux.resources`), or - for standard input
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    /// Block IO weight, 10 to 1000
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period (microseconds)
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota (microseconds per period; -1: no limit)
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    pub cpu_share: Option<u64>,
    /// Realtime CPU period (microseconds)
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// Realtime CPU runtime (microseconds per period)
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs to use (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory reservation (soft limit)
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit; -1 for unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of pids (-1 or 0: no limit)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Obsolete in runc; accepted and ignored
    #[arg(long = "kernel-memory", hide = true)]
    pub kernel_memory: Option<String>,
    /// Obsolete in runc; accepted and ignored
    #[arg(long = "kernel-memory-tcp", hide = true)]
    pub kernel_memory_tcp: Option<String>,
    /// Intel RDT L3 cache schema (not supported)
    #[arg(long = "l3-cache-schema")]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (not supported)
    #[arg(long = "mem-bw-schema")]
    pub mem_bw_schema: Option<String>,
    pub container_id: String,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Print the container's stats once and exit
    #[arg(long)]
    pub stats: bool,
    /// How often to print stats in the stream (a Go duration: 5s, 100ms)
    #[arg(long, default_value = "5s")]
    pub interval: String,
    pub container_id: String,
}

/// What `checkpoint` and `restore` share (runc's flags).
#[derive(Args, Debug)]
pub struct CriuArgs {
    /// Directory of the CRIU image files (default: ./checkpoint)
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Directory for CRIU's work files and logs (default: the image path)
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// Allow established TCP connections
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Allow external unix sockets
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow shell jobs
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Handle file locks
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// How CRIU handles cgroups: soft, full, strict or ignore
    #[arg(long = "manage-cgroups-mode", default_value = "soft")]
    pub manage_cgroups_mode: String,
    /// Create these namespaces empty instead of restoring them (runc's
    /// --empty-ns; only `network` is supported by CRIU)
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Deduplicate memory images (accepted, as runc; CRIU's auto-dedup)
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// Lazy page migration (not supported by runlet)
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
}

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Leave the container running after the checkpoint
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// Dump memory only, as a base for a later checkpoint (not supported)
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    /// Images of a previous pre-dump (not supported)
    #[arg(long = "parent-path")]
    pub parent_path: Option<PathBuf>,
    /// ADDRESS:PORT of a CRIU page server (not supported)
    #[arg(long = "page-server")]
    pub page_server: Option<String>,
    /// fd CRIU notifies once lazy pages are ready (not supported)
    #[arg(long = "status-fd")]
    pub status_fd: Option<i32>,
    pub container_id: String,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Path to the bundle directory
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Do not wait for the restored container to exit
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// File to write the restored init's pid to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Console socket (restoring a container with a terminal is not supported)
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Accepted for compatibility (runlet does not become a subreaper)
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// Accepted for compatibility (CRIU sets up the root itself)
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// LSM profile for the restored process (accepted; not applied)
    #[arg(long = "lsm-profile")]
    pub lsm_profile: Option<String>,
    /// LSM mount context (accepted; not applied)
    #[arg(long = "lsm-mount-context")]
    pub lsm_mount_context: Option<String>,
    pub container_id: String,
}

#[derive(Args, Debug)]
pub struct IdArg {
    pub container_id: String,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Path to the bundle directory
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Path to a config file other than <bundle>/config.json (crun's -f)
    #[arg(short = 'f', long)]
    pub config: Option<PathBuf>,
    /// Unix socket that receives the pty master of the container's terminal
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// File to write the container's init pid to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Pass this many extra file descriptors (from fd 3) to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    /// Use chroot-like mount moves instead of pivot_root
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Accepted for compatibility with crun
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    pub container_id: String,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Detach from the container's process
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep the container's state after it exits
    #[arg(long)]
    pub keep: bool,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Send the signal to every process in the container
    #[arg(short = 'a', long)]
    pub all: bool,
    pub container_id: String,
    /// Signal name (TERM, SIGTERM) or number
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Kill the container's processes first if it is running
    #[arg(short = 'f', long)]
    pub force: bool,
    pub container_id: String,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print only the container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    #[arg(short = 'f', long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    #[arg(short = 'f', long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    pub container_id: String,
    /// Options passed to ps(1) (default: -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_options: Vec<String>,
}

#[derive(Args, Debug)]
pub struct SpecArgs {
    /// Directory to write config.json into
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Unix socket that receives the pty master
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Allocate a terminal
    #[arg(short = 't', long)]
    pub tty: bool,
    /// A process.json describing the process to run
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Working directory inside the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Environment variables (KEY=VALUE), may repeat
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// UID[:GID] to run as
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional gids, may repeat
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability to the bounding, effective, permitted and ambient sets
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    /// Detach from the process
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// File to write the process's pid to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Pass this many extra file descriptors (from fd 3)
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    /// Set no_new_privileges for the process
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Accepted for compatibility; SELinux labels are not applied
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// AppArmor profile for the process
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Run in this sub-cgroup of the container
    #[arg(long)]
    pub cgroup: Option<String>,
    /// Allow exec in a paused container
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    pub container_id: String,
    /// The command and its arguments (unless --process is given)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// A size in bytes, with an optional K, M or G (binary) suffix.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, mult) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&t[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{s:?} is not a size in bytes (e.g. 67108864, 64M, 1G)"))
}

/// A path from the command line, made absolute against the working
/// directory (callers pass relative bundle, pid-file and socket paths).
pub fn absolute(p: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}
