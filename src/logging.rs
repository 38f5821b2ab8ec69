//! Logging in the shape runc and crun use, because callers parse it:
//! with `--log-format=json` every line of the `--log` file is
//! `{"level":"error","msg":"...","time":"RFC3339"}` and podman shows `msg`
//! to its user when the runtime fails.
//!
//! Without `--log`, libcontainer's internal messages go to stderr only with
//! `--debug`; otherwise stderr carries just the final one-line error, which
//! is what people at a shell and callers matching error texts want.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use crate::cli::{GlobalOpts, LogFormat};

enum Sink {
    File(Mutex<File>),
    Stderr,
}

struct LineLayer {
    sink: Sink,
    format: LogFormat,
    max_level: Level,
}

/// Where the final error of a failed command goes besides stderr.
pub struct ErrorLog {
    file: Option<Mutex<File>>,
    format: LogFormat,
}

static ERROR_LOG: std::sync::OnceLock<ErrorLog> = std::sync::OnceLock::new();

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

fn parse_level(s: &str) -> Option<Level> {
    match s.to_ascii_lowercase().as_str() {
        "error" | "fatal" | "panic" => Some(Level::ERROR),
        "warn" | "warning" => Some(Level::WARN),
        "info" => Some(Level::INFO),
        "debug" => Some(Level::DEBUG),
        "trace" => Some(Level::TRACE),
        _ => None,
    }
}

/// Formats one log line (without the trailing newline).
pub fn format_line(format: LogFormat, level: &str, msg: &str) -> String {
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    match format {
        LogFormat::Json => {
            serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string()
        }
        LogFormat::Text => format!("time=\"{time}\" level={level} msg={msg:?}"),
    }
}

#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl MessageVisitor {
    fn into_line(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else {
            format!("{}{}", self.message, self.fields)
        }
    }
}

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

impl<S: Subscriber> Layer<S> for LineLayer {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        *metadata.level() <= self.max_level
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() > self.max_level {
            return;
        }
        let mut visitor = MessageVisitor::default();
        event.record(&mut visitor);
        let msg = visitor.into_line();
        let mut line = format_line(self.format, level_name(event.metadata().level()), &msg);
        line.push('\n');
        match &self.sink {
            Sink::File(f) => {
                if let Ok(mut f) = f.lock() {
                    let _ = f.write_all(line.as_bytes());
                }
            }
            Sink::Stderr => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }
}

fn open_log(path: &str) -> std::io::Result<File> {
    let path = path.strip_prefix("file:").unwrap_or(path);
    OpenOptions::new().create(true).append(true).open(path)
}

/// Installs the global logger described by the global options.
pub fn init(opts: &GlobalOpts) -> anyhow::Result<()> {
    let level = if opts.debug {
        Level::DEBUG
    } else if let Some(l) = &opts.log_level {
        parse_level(l).ok_or_else(|| anyhow::anyhow!("invalid --log-level {l:?}"))?
    } else {
        Level::WARN
    };

    let (sink, error_file) = match &opts.log {
        Some(path) if !path.is_empty() => {
            let file = open_log(path).map_err(|e| anyhow::anyhow!("open log file {path}: {e}"))?;
            let second = file
                .try_clone()
                .map_err(|e| anyhow::anyhow!("open log file {path}: {e}"))?;
            (Some(Sink::File(Mutex::new(file))), Some(Mutex::new(second)))
        }
        _ if opts.debug || opts.log_level.is_some() => (Some(Sink::Stderr), None),
        _ => (None, None),
    };

    let _ = ERROR_LOG.set(ErrorLog {
        file: error_file,
        format: opts.log_format,
    });

    if let Some(sink) = sink {
        let layer = LineLayer {
            sink,
            format: opts.log_format,
            max_level: level,
        };
        let _ = tracing_subscriber::registry().with(layer).try_init();
    }
    Ok(())
}

/// Records the command's final error in the log file, if there is one.
pub fn log_final_error(msg: &str) {
    if let Some(log) = ERROR_LOG.get() {
        if let Some(file) = &log.file {
            if let Ok(mut f) = file.lock() {
                let mut line = format_line(log.format, "error", msg);
                line.push('\n');
                let _ = f.write_all(line.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_has_level_msg_time() {
        let line = format_line(LogFormat::Json, "error", "container x does not exist");
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid json");
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "container x does not exist");
        assert!(chrono::DateTime::parse_from_rfc3339(v["time"].as_str().unwrap_or("")).is_ok());
        assert_eq!(v.as_object().map(|o| o.len()), Some(3));
    }

    #[test]
    fn levels_parse() {
        assert_eq!(parse_level("warning"), Some(Level::WARN));
        assert_eq!(parse_level("DEBUG"), Some(Level::DEBUG));
        assert_eq!(parse_level("nope"), None);
    }
}
