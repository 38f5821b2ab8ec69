//! Logging in the shape runc and crun use, because callers parse it:
//! with `--log-format=json` every line of the `--log` file is
//! `{"level":"error","msg":"...","time":"RFC3339"}` and podman shows `msg`
//! to its user when the runtime fails.
//!
//! Without `--log`, libcontainer's internal messages go to stderr only with
//! `--debug`; otherwise stderr carries just the final one-line error, which
//! is what people at a shell and callers matching error texts want. That
//! line has runc's shape: `time="…" level=error msg="…"` as logrus prints it
//! when stderr is not a terminal (JSON with `--log-format=json`), and
//! `runlet: error: …` at a terminal.
//!
//! libcontainer's container processes (intermediate, init) report a failure
//! to runlet as one generic line ("failed to prepare rootfs"); the cause is
//! only in the error event they log just before. While a container process
//! is being set up, those events are also written to a memfd the processes
//! share ([`ChildErrors`]), so that the cause reaches the final error
//! without `--debug`.
//!
//! The `--log` file is opened for each line, by the runlet process that
//! was started, never held open: the container's processes are clones of
//! that runlet, and an fd they inherited would let the container write to
//! a host file (see `fds`). Their lines travel through the same memfd and
//! runlet appends them to the log when the clone is done, as runc forwards
//! its init's log pipe.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::atomic::{AtomicI32, Ordering};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use crate::cli::{GlobalOpts, LogFormat};

enum Sink {
    /// Opened for each line (see the module doc).
    File(std::path::PathBuf),
    Stderr,
}

struct LineLayer {
    sink: Option<Sink>,
    format: LogFormat,
    max_level: Level,
}

/// The memfd of an active [`ChildErrors`] (-1: none) and the pid that made
/// it: only the processes cloned from that one write to it.
static CHILD_ERRORS_FD: AtomicI32 = AtomicI32::new(-1);
static CHILD_ERRORS_OWNER: AtomicI32 = AtomicI32::new(0);
/// The runlet process that was started (and so may write the log file).
static LOG_OWNER: AtomicI32 = AtomicI32::new(0);

/// Tags of the memfd's lines: an error event's message, or a whole log
/// line for the log file.
const ERROR_TAG: &str = "E ";
const LINE_TAG: &str = "L ";

fn is_log_owner() -> bool {
    LOG_OWNER.load(Ordering::SeqCst) == std::process::id() as i32
}

/// Appends one line to the log file.
fn append(path: &std::path::Path, line: &str) {
    if let Ok(mut f) = open_log(path) {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Error events of the container processes cloned while this lives.
pub struct ChildErrors(std::os::fd::OwnedFd);

impl ChildErrors {
    /// Starts capturing, in a memfd named `name` (`inflight::marker`);
    /// None when no memfd can be made (the final error then carries
    /// libcontainer's generic line only).
    pub fn capture(name: &str) -> Option<ChildErrors> {
        use std::os::fd::AsRawFd;
        let name = std::ffi::CString::new(name).ok()?;
        let fd = nix::sys::memfd::memfd_create(
            name.as_c_str(),
            nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
        )
        .ok()?;
        CHILD_ERRORS_OWNER.store(std::process::id() as i32, Ordering::SeqCst);
        CHILD_ERRORS_FD.store(fd.as_raw_fd(), Ordering::SeqCst);
        Some(ChildErrors(fd))
    }

    /// The first error a container process logged: the most specific.
    pub fn first(&self) -> Option<String> {
        self.text()
            .lines()
            .filter_map(|l| l.strip_prefix(ERROR_TAG))
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(|l| explain_errnos(&innermost(l)))
    }

    fn text(&self) -> String {
        let mut text = Vec::new();
        let mut buf = vec![0u8; 16384];
        while let Ok(n) = nix::sys::uio::pread(&self.0, &mut buf, text.len() as i64) {
            if n == 0 {
                break;
            }
            text.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&text).into_owned()
    }
}

impl Drop for ChildErrors {
    fn drop(&mut self) {
        CHILD_ERRORS_FD.store(-1, Ordering::SeqCst);
        // The container processes' log lines, into the log file.
        let Some(path) = ERROR_LOG.get().and_then(|l| l.file.as_ref()) else {
            return;
        };
        let lines: String = self
            .text()
            .lines()
            .filter_map(|l| l.strip_prefix(LINE_TAG))
            .map(|l| format!("{l}\n"))
            .collect();
        if !lines.is_empty() {
            append(path, &lines);
        }
    }
}

/// In a container process that outlives its set-up (a Wasm init or exec
/// process): nothing reads the memfd any more, so it is closed and the
/// process's log events are dropped.
pub fn leave_child_channel() {
    let fd = CHILD_ERRORS_FD.swap(-1, Ordering::SeqCst);
    if fd >= 0 && !is_log_owner() {
        // SAFETY: the memfd inherited from the runlet that cloned this
        // process; nothing writes to it once the static is cleared.
        unsafe { libc::close(fd) };
    }
}

/// `failed to X err=Mount(Other("why"))` → `failed to X: why`: the
/// innermost quoted text of a Debug-printed error field, when there is one.
fn innermost(line: &str) -> String {
    let Some((head, field)) = line.split_once(" err=") else {
        return line.to_string();
    };
    let (Some(start), Some(end)) = (field.find('"'), field.rfind('"')) else {
        return line.to_string();
    };
    if end <= start {
        return line.to_string();
    }
    let inner = field[start + 1..end].replace("\\\"", "\"");
    format!("{head}: {inner}")
}

/// `e=ENOTDIR` → `e=ENOTDIR (Not a directory)`: libcontainer logs nix
/// errnos by name.
fn explain_errnos(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 32);
    for (i, word) in line.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
        let name = word.rsplit('=').next().unwrap_or(word);
        let name = name.trim_end_matches([',', ')', ';']);
        if name.len() > 2
            && name.starts_with('E')
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            if let Some(e) = (1..134)
                .map(nix::errno::Errno::from_raw)
                .find(|e| format!("{e:?}") == name)
            {
                let _ = write!(out, " ({})", e.desc());
            }
        }
    }
    out
}

/// The first line of an errno's description, when `line` names one.
pub fn errno_desc(line: &str) -> Option<String> {
    let start = line.find(" (")? + 2;
    let end = line[start..].find(')')? + start;
    Some(line[start..end].to_string())
}

/// One line for stderr in runc's shape (see the module doc).
pub fn stderr_line(level: &str, msg: &str) -> String {
    use std::io::IsTerminal;
    let format = ERROR_LOG.get().map_or(LogFormat::Text, |l| l.format);
    if format == LogFormat::Text && std::io::stderr().is_terminal() {
        format!("runlet: {level}: {msg}")
    } else {
        format_line(format, level, msg)
    }
}

/// A warning on stderr, in the same shape.
pub fn warn(msg: impl std::fmt::Display) {
    eprintln!("{}", stderr_line("warning", &msg.to_string()));
}

/// Where the final error of a failed command goes besides stderr (and the
/// container processes' forwarded lines).
pub struct ErrorLog {
    file: Option<std::path::PathBuf>,
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
        *metadata.level() <= self.max_level || *metadata.level() == Level::ERROR
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        let to_sink = self.sink.is_some() && level <= self.max_level;
        let fd = CHILD_ERRORS_FD.load(Ordering::SeqCst);
        let in_clone =
            fd >= 0 && CHILD_ERRORS_OWNER.load(Ordering::SeqCst) != std::process::id() as i32;
        let to_parent = level == Level::ERROR && in_clone;
        if !to_sink && !to_parent {
            return;
        }
        let mut visitor = MessageVisitor::default();
        event.record(&mut visitor);
        let msg = visitor.into_line();
        let to_memfd = |text: String| {
            // SAFETY: fd is the memfd a live ChildErrors owns in the process
            // this one was cloned from; the clone holds its own copy.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let _ = nix::unistd::write(fd, text.as_bytes());
        };
        if to_parent {
            to_memfd(format!("{ERROR_TAG}{}\n", msg.replace('\n', " ")));
        }
        if !to_sink {
            return;
        }
        let mut line = format_line(self.format, level_name(&level), &msg);
        line.push('\n');
        match &self.sink {
            Some(Sink::File(path)) if is_log_owner() => append(path, &line),
            // A clone: through the parent (never into a file by path,
            // which would resolve inside the container).
            Some(Sink::File(_)) if in_clone => to_memfd(format!("{LINE_TAG}{line}")),
            Some(Sink::File(_)) => {}
            Some(Sink::Stderr) => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
            None => {}
        }
    }
}

fn open_log(path: &std::path::Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
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

    LOG_OWNER.store(std::process::id() as i32, Ordering::SeqCst);
    let (sink, error_file) = match &opts.log {
        Some(given) if !given.is_empty() => {
            let path = std::path::Path::new(given.strip_prefix("file:").unwrap_or(given));
            let path = std::path::absolute(path)
                .map_err(|e| anyhow::anyhow!("open log file {given}: {e}"))?;
            // Made (and checked) now; each line opens it again.
            open_log(&path).map_err(|e| anyhow::anyhow!("open log file {given}: {e}"))?;
            (Some(Sink::File(path.clone())), Some(path))
        }
        _ if opts.debug || opts.log_level.is_some() => (Some(Sink::Stderr), None),
        _ => (None, None),
    };

    let _ = ERROR_LOG.set(ErrorLog {
        file: error_file,
        format: opts.log_format,
    });

    // Installed even without a sink: error events of container processes
    // are captured while a ChildErrors lives (see the module doc).
    let layer = LineLayer {
        sink,
        format: opts.log_format,
        max_level: level,
    };
    let _ = tracing_subscriber::registry().with(layer).try_init();
    Ok(())
}

/// Records the command's final error in the log file, if there is one.
pub fn log_final_error(msg: &str) {
    if let Some(log) = ERROR_LOG.get() {
        if let Some(path) = &log.file {
            let mut line = format_line(log.format, "error", msg);
            line.push('\n');
            append(path, &line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_error_lines_read_plainly() {
        assert_eq!(
            innermost(
                r#"failed to prepare rootfs err=Mount(Other("proc must be mounted on ordinary directory"))"#
            ),
            "failed to prepare rootfs: proc must be mounted on ordinary directory"
        );
        assert_eq!(
            innermost("failed to chdir e=ENOTDIR"),
            "failed to chdir e=ENOTDIR"
        );
        let line = explain_errnos("failed to chdir e=ENOTDIR");
        assert_eq!(line, "failed to chdir e=ENOTDIR (Not a directory)");
        assert_eq!(errno_desc(&line).as_deref(), Some("Not a directory"));
    }

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
