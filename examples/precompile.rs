//! The plain-wasmtime baseline for scripts/bench: how long
//! `Engine::precompile_module` takes for a module in a minimal embedding
//! (same wasmtime version and default Config as runlet's handler), so the
//! benchmark can show runlet's own overhead on top of the compiler.
//!
//!   precompile compile FILE [REPEATS]   print one compile time (ms) per line
//!   precompile engine                   print Engine::new times (ms)
//!   precompile wat2wasm IN.wat OUT.wasm

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("compile") if args.len() >= 3 => {
            let bytes = std::fs::read(&args[2])?;
            let repeats: usize = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(5);
            let engine = wasmtime::Engine::new(&wasmtime::Config::new())?;
            for _ in 0..repeats {
                let t = Instant::now();
                let code = engine.precompile_module(&bytes)?;
                println!("{:.3}", t.elapsed().as_secs_f64() * 1000.0);
                std::hint::black_box(code);
            }
        }
        Some("engine") => {
            // Engine creation, which every Wasm create/exec pays once.
            for _ in 0..5 {
                let t = Instant::now();
                let engine = wasmtime::Engine::new(&wasmtime::Config::new())?;
                println!("{:.3}", t.elapsed().as_secs_f64() * 1000.0);
                std::hint::black_box(engine);
            }
        }
        Some("wat2wasm") if args.len() >= 4 => {
            std::fs::write(&args[3], wat::parse_file(&args[2])?)?;
        }
        _ => {
            return Err(
                "usage: precompile compile FILE [REPEATS] | engine | wat2wasm IN OUT".into(),
            )
        }
    }
    Ok(())
}
