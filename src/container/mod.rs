//! The container's making, on libcontainer's process machinery.
//!
//! - `build`: `create`'s state dir, cgroup and init; `exec`: a process in a
//!   running container; `clone`: what both clone through libcontainer, and
//!   the one-line error of a process that failed;
//! - what runlet sets up around libcontainer: `post_create` (after the
//!   init exists), `late` and `caps` (right before the workload), `dev`
//!   (device nodes, a /dev from the host), `idmap` (user namespace ranges,
//!   idmapped and host-opened bind mounts), `notify` (the sd_notify relay),
//!   `cgroupfs` (the container's /sys/fs/cgroup, made by the helper);
//! - what keeps a container from runlet's own: `fds` (which fds reach it),
//!   `procview` (its environ and cmdline), `protect` (the runtime binary);
//! - `native` (the native workload), `hooks`, `remove` (delete and
//!   clean-up), `inflight` (processes of a `create` that died), `process`
//!   (is a recorded pid still the container's), `criu` (checkpoint and
//!   restore).

pub mod build;
pub mod caps;
pub mod cgroupfs;
mod clone;
pub mod criu;
pub mod dev;
pub mod exec;
pub mod fds;
pub mod hooks;
pub mod idmap;
pub mod inflight;
pub mod late;
pub mod native;
pub mod notify;
pub mod post_create;
pub mod process;
pub mod procview;
pub mod protect;
pub mod remove;

pub use build::{create_init, InitRequest};
pub use clone::root_cause;
pub use exec::{exec_tenant, TenantRequest};
pub use hooks::run_hooks_warning;
pub use remove::force_remove;
