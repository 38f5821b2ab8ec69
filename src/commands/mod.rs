//! One file per command, each a small function from parsed arguments to an
//! exit status.

pub mod checkpoint;
pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod restore;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod update;
pub mod wasm_cache;

use crate::cli::Command;
use crate::Ctx;

pub fn dispatch(ctx: &Ctx, command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Create(a) => create::run(ctx, &a),
        Command::Start(a) => start::run(ctx, &a.container_id),
        Command::State(a) => state::run(ctx, &a.container_id),
        Command::Kill(a) => kill::run(ctx, &a),
        Command::Delete(a) => delete::run(ctx, &a),
        Command::Run(a) => run::run(ctx, &a),
        Command::Exec(a) => exec::run(ctx, &a),
        Command::Ps(a) => ps::run(ctx, &a),
        Command::List(a) => list::run(ctx, &a),
        Command::Pause(a) => pause::pause(ctx, &a.container_id),
        Command::Resume(a) => pause::resume(ctx, &a.container_id),
        Command::Update(a) => update::run(ctx, &a),
        Command::Events(a) => events::run(ctx, &a),
        Command::Checkpoint(a) => checkpoint::run(ctx, &a),
        Command::Restore(a) => restore::run(ctx, &a),
        Command::Spec(a) => spec::run(&a, ctx.rootless),
        Command::Features => features::run(),
        Command::WasmCache(a) => wasm_cache::run(ctx, &a),
    }
}
