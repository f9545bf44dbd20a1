//! # tidal-engine: the runtime underneath Tidal
//!
//! Tidal gives Flink's programming model — sources, transformations, keyed state, sinks, event time —
//! on timely-dataflow. This crate is the bottom layer; it knows nothing of particular operators or
//! connectors, which build on it (`tidal-operators`, `tidal-connectors`), and the `tidal` crate
//! re-exports all three as a prelude.
//!
//! ## Layers
//! Listed from the bottom up: each module uses only those above it in this list (no import
//! circles; `DESIGN.md` at the repository's root has the whole map).
//! - [`error`]: classified errors ([`ErrorKind`]); a running operator ends a job with
//!   [`WorkerContext::fail`], a source with [`Poll::Failed`].
//! - [`time`]: timely timestamps are watermarks ([`Time`], ms since the epoch); frontiers are the
//!   watermarks every operator sees; [`JobClock`] is processing time (manual in tests);
//!   [`time::watermark`]: [`WatermarkStrategy`], how sources assign timestamps and watermarks.
//! - [`change`]: the row kinds of a changelog ([`RowKind`](change::RowKind): `+I`, `-U`, `+U`,
//!   `-D`) and [`Change`](change::Change), shared by change-data sources and incremental collections.
//! - [`operator`]: an operator's identity ([`OperatorMeta`](operator::OperatorMeta): its name, by which its state is found).
//! - [`state`]: keyed state — [`KeyedStore`](state::KeyedStore), the one interface through which every stateful
//!   operator's state is snapshotted and restored, [`KeyedState`](state::KeyedState) (a hash map), the snapshot
//!   format, [`TimeBuffer`](state::TimeBuffer) (input held per time until the frontier passes), the key hash.
//! - [`storage`]: [`Location`](storage::Location) — a local path or `s3://bucket/prefix` — and
//!   atomic writes, reads, listing and deletion on either (checkpoints and savepoints use it).
//! - [`cluster`]: the hostfile, connecting processes with a deadline and a handshake, and the
//!   restart strategies the launcher supervises a job with.
//! - [`checkpoint`]: what a checkpoint is — the consistency argument, the format, restoring,
//!   incremental deltas.
//! - [`cli`]: the standard flags (`-w`, `-n`, `-p`, `-h`, checkpoints, `--tick`).
//! - [`runtime`]: [`Job`] starts the workers, builds the dataflow on each with an [`Env`], runs it
//!   to the end, stops every worker on the first failure, and stops cleanly on Ctrl-C / SIGTERM;
//!   the control plane and each worker's side of checkpointing live here.
//! - [`stream`]: [`DataStream`], the typed stream every operator extends.
//! - [`source`]: the one source driver ([`SourceReader`]): batching, ticks, positions, the end of
//!   input.
//!
//! ## How records flow
//! Records travel in batches (`Vec<T>`) at the time of their tick; progress tracking costs one update
//! per tick, not per record. Keyed operators combine records per key within a tick on the sending
//! worker before exchanging them (see `tidal-operators`), so the exchange carries one partial result
//! per key per tick instead of one message per record.
//!
//! ## How keyed state is held
//! See [`state`]: per-key values in a hash map owned by the worker that owns the key, changed only in
//! time order as the frontier passes, snapshotted as `(key, value)` entries without worker assignment,
//! restored on any number of workers by re-routing every key.
//!
//! ## Quick start
//! ```
//! use tidal_engine::{Job, Collected, SourceReader, Poll};
//! // A job of two worker threads; each builds the same dataflow and returns what it collected.
//! let sizes: Vec<usize> = Job::local(2).run(|env| {
//!     let c = Collected::new();
//!     c.extend([env.peers()]);
//!     c
//! }).unwrap();
//! assert_eq!(sizes, vec![2, 2]);
//! ```

pub mod change;
pub mod checkpoint;
pub mod cli;
pub mod cluster;
pub mod error;
pub mod log;
pub mod metrics;
pub mod operator;
pub mod runtime;
pub mod source;
pub mod state;
pub mod storage;
pub mod stream;
pub mod time;

pub use checkpoint::{CheckpointConfig, CompletedCheckpoint, Restore, Restored, SourcePosition};
pub use cli::{JobArgs, parse_args, parse_args_from, parse_duration};
pub use cluster::{ClusterSpec, Hostfile};
pub use error::{Error, ErrorKind, Result, fail};
pub use runtime::{
    Collected, Env, Job, JobReport, SourceHold, StopHandle, WorkerContext, WorkerOutput,
};
pub use source::{Poll, Progress, SourceReader, SplitId};
pub use stream::DataStream;
pub use time::watermark::{WatermarkGenerator, WatermarkStrategy};
pub use time::{JobClock, ManualClock, TickClock, Time, now_millis};

/// Writes one line of Tidal's log at level info (see [`log`]): to standard error in a single
/// write, so that the lines of a job's processes (which share the launcher's standard error)
/// never run into each other, as `eprintln!`'s piece-by-piece writes can. Every message of the
/// engine and the launcher goes through it or [`warn`].
///
/// ```
/// tidal_engine::say(format_args!("tidal: checkpoint {} complete", 7));
/// ```
pub fn say(line: std::fmt::Arguments<'_>) {
    log::line(log::Level::Info, line);
}

/// Writes a warning to Tidal's log: something went wrong without stopping the job (see
/// [`log`]).
///
/// ```
/// tidal_engine::warn(format_args!("tidal: checkpoint 4 failed: the disk is full"));
/// ```
pub fn warn(line: std::fmt::Arguments<'_>) {
    log::line(log::Level::Warn, line);
}

/// Timely itself, for operators written directly against it.
pub use timely;
