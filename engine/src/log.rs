//! Tidal's log: every line a job writes about itself (checkpoints, restores, restarts,
//! refusals, failures) is a `tracing` event, so that it can be filtered by level and target with
//! `RUST_LOG` (as `env_logger` and `tracing`'s own filters read it: `RUST_LOG=warn`,
//! `RUST_LOG=tidal=debug`) and written as JSON lines with `TIDAL_LOG_FORMAT=json` (a timestamp,
//! the level, the target and the message per line) for log collectors.
//!
//! Programs made with `tidal::main_with` and the `tidal` launcher call [`init`]; a program that
//! installs its own `tracing` subscriber gets Tidal's events there. Without any subscriber the
//! lines go to standard error as they are.
//!
//! Levels: `info` for what a job reports as it goes (the default shows it), `warn` for what
//! went wrong without stopping the job (a failed checkpoint, a refused connection, an
//! unreachable broker being retried), `error` for what ends it.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;

/// Whether [`init`] installed Tidal's subscriber.
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// Installs the subscriber that writes Tidal's log to standard error: the level and targets from
/// `RUST_LOG` (default `info`), plain lines (the message only, as the job always wrote them), or
/// JSON lines with `TIDAL_LOG_FORMAT=json`. Does nothing when called again or when the program
/// already has a global subscriber.
///
/// ```
/// tidal_engine::log::init();
/// tidal_engine::say(format_args!("tidal: a line of the log"));
/// ```
pub fn init() {
    INSTALLED.get_or_init(|| {
        use tracing_subscriber::EnvFilter;
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let json = std::env::var("TIDAL_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(Stderr)
            .with_ansi(false);
        let installed = if json {
            builder.json().with_current_span(false).try_init()
        } else {
            builder
                .without_time()
                .with_level(false)
                .with_target(false)
                .try_init()
        };
        installed.is_ok()
    });
}

/// Whether Tidal's subscriber is installed (otherwise lines are written as they are).
fn installed() -> bool {
    INSTALLED.get().copied().unwrap_or(false)
}

/// The level of a line of Tidal's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// What went wrong and ends the job.
    Error,
    /// What went wrong without stopping the job.
    Warn,
    /// What the job reports as it goes.
    Info,
    /// Details.
    Debug,
}

/// Writes one line of Tidal's log at `level` (see the [module docs](self)).
///
/// ```
/// use tidal_engine::log::{line, Level};
/// line(Level::Warn, format_args!("tidal: checkpoint 4 failed: the disk is full"));
/// ```
pub fn line(level: Level, text: std::fmt::Arguments<'_>) {
    if installed() {
        clear_progress();
        match level {
            Level::Error => tracing::error!(target: "tidal", "{text}"),
            Level::Warn => tracing::warn!(target: "tidal", "{text}"),
            Level::Info => tracing::info!(target: "tidal", "{text}"),
            Level::Debug => tracing::debug!(target: "tidal", "{text}"),
        }
        return;
    }
    if level == Level::Debug {
        return;
    }
    use std::io::Write;
    let mut out = text.to_string();
    out.push('\n');
    clear_progress();
    // Nothing sensible is left to do when standard error cannot be written.
    let _ = std::io::stderr().lock().write_all(out.as_bytes());
}

/// Clears the progress line, if one is shown, before a line of the log (its next redraw puts
/// it back below).
fn clear_progress() {
    if crate::runtime::progress::SHOWN.load(Ordering::SeqCst) {
        use std::io::Write;
        let _ = std::io::stderr().lock().write_all(b"\r\x1b[K");
    }
}

/// Standard error, for the subscriber.
struct Stderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = std::io::Stderr;
    fn make_writer(&'a self) -> Self::Writer {
        std::io::stderr()
    }
}
