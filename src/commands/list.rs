//! `list`: the containers under the state root.

use anyhow::Result;

use crate::cli::{ListArgs, OutputFormat};
use crate::state::{self, StateOutput};
use crate::Ctx;

pub fn run(ctx: &Ctx, args: &ListArgs) -> Result<i32> {
    let mut states = Vec::new();
    let entries = match std::fs::read_dir(&ctx.root) {
        Ok(e) => e.flatten().collect::<Vec<_>>(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => anyhow::bail!("{}: {e}", ctx.root.display()),
    };
    for entry in entries {
        let name = entry.file_name();
        let Some(id) = name.to_str() else { continue };
        if !entry.path().join("state.json").exists() {
            continue;
        }
        match state::load(&ctx.root, id) {
            Ok(l) => states.push(StateOutput::from_loaded(&l)),
            // Shown, not hidden: a container runlet cannot read still
            // holds a process and cgroups until `delete -f` removes them.
            Err(e) => {
                crate::logging::warn(format_args!("{e:#}"));
                states.push(StateOutput::unreadable(&entry.path(), id));
            }
        }
    }
    states.sort_by(|a, b| a.id.cmp(&b.id));

    if args.quiet {
        for s in &states {
            println!("{}", s.id);
        }
        return Ok(0);
    }
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string(&states)?),
        OutputFormat::Table => {
            let mut rows = vec![[
                "ID".to_string(),
                "PID".into(),
                "STATUS".into(),
                "BUNDLE".into(),
                "CREATED".into(),
                "OWNER".into(),
            ]];
            for s in &states {
                rows.push([
                    s.id.clone(),
                    s.pid.to_string(),
                    s.status.clone(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    s.owner.clone(),
                ]);
            }
            print!("{}", table(&rows));
        }
    }
    Ok(0)
}

/// Left-aligned columns separated by three spaces, like runc's tabwriter.
pub fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
