//! Errors that leave the engine.
//!
//! Every error is classified by [`ErrorKind`], so that a caller (and later the supervisor) can tell
//! a mistake in the job's input or configuration, which a restart cannot fix, from a failure of the
//! outside world, which a retry may fix, and from a bug.

use std::fmt;

/// What kind of failure an [`Error`] is, and so whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A bad flag, hostfile or job definition: fix the command line or the program.
    Config,
    /// Bad input data (a record that does not decode, a missing input path).
    Input,
    /// An outside system failed: a peer process, the network, the file system.
    External,
    /// User code panicked inside an operator.
    UserCode,
    /// The job was cancelled (Ctrl-C twice, or a peer asked to stop).
    Cancelled,
    /// A broken invariant of Tidal itself: a bug to report, not something the job can fix.
    Internal,
}

impl ErrorKind {
    /// Whether restarting the job may succeed without changing anything.
    ///
    /// ```
    /// use tidal_engine::ErrorKind;
    /// assert!(ErrorKind::External.retryable());
    /// assert!(!ErrorKind::Config.retryable());
    /// ```
    pub fn retryable(self) -> bool {
        matches!(self, ErrorKind::External)
    }
}

/// An error from Tidal: a kind and a message written for the person running the job.
///
/// ```
/// use tidal_engine::{Error, ErrorKind};
/// let e = Error::config("-p 3 is out of range: 2 processes are named");
/// assert_eq!(e.kind(), ErrorKind::Config);
/// assert!(e.to_string().contains("-p 3"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }
    /// A configuration error (bad flag, hostfile, job definition).
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }
    /// An input error (bad record, missing input).
    pub fn input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Input, message)
    }
    /// A failure of something outside the job (network, file system, peer).
    pub fn external(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::External, message)
    }
    /// A broken invariant of Tidal itself (a bug).
    ///
    /// ```
    /// let e = tidal_engine::Error::internal("a window fired twice");
    /// assert_eq!(e.kind(), tidal_engine::ErrorKind::Internal);
    /// ```
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The same error with `context: ` put in front of its message.
    ///
    /// ```
    /// use tidal_engine::Error;
    /// let e = Error::input("no such file").context("reading 'a.txt'");
    /// assert_eq!(e.message(), "reading 'a.txt': no such file");
    /// ```
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Result with Tidal's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Stops the current worker with `error` by unwinding: the job fails, and `error` is what the
/// user is shown.
///
/// For a mistake in a job's definition found while its dataflow is being built, deep in code
/// that has nothing to return it to (taking a side output nobody writes). The runtime catches it
/// on the worker thread, stops the other workers, and returns it from
/// [`Job::run`](crate::Job::run); no panic message is printed for it. Running operators and
/// connectors do not unwind: they report failures with
/// [`WorkerContext::fail`](crate::WorkerContext::fail) (sinks, state) or
/// [`Poll::Failed`](crate::Poll::Failed) (sources) and return.
///
/// ```should_panic
/// tidal_engine::fail(tidal_engine::Error::input("line 3: bad field"));
/// ```
pub fn fail(error: Error) -> ! {
    std::panic::panic_any(JobFailure(error))
}

/// The payload carried by [`fail`]; the runtime recognises it when it catches a worker's unwind.
#[derive(Debug)]
pub struct JobFailure(pub Error);
