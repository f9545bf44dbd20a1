//! # tidal-connectors: sources and sinks
//!
//! Sources are methods on [`Env`](tidal_engine::Env) (trait [`Sources`]); sinks are methods on
//! [`DataStream`](tidal_engine::DataStream) (trait [`Sinks`]).
//!
//! | source | records | split across workers |
//! |---|---|---|
//! | [`Sources::from_iter`] | the iterator's items | item `j` goes to worker `j % peers` |
//! | [`Sources::generate`] / [`Generator`] | `f(sequence number)`, optionally rate-limited, bounded or not | number `j` on worker `j % peers` |
//! | [`TextFiles`] | lines as `String` | byte ranges of every file, aligned to lines |
//! | [`CsvFiles`] | serde records | same |
//! | [`JsonLinesFiles`] | serde records, one JSON value per line | same |
//! | [`kafka::KafkaSource`] (with [`kafka::KafkaSources::kafka`]) | decoded values, or whole messages | partition `k` of the topics on worker `k % peers` |
//!
//! File sources take a file, a directory (read recursively, skipping names that start with `.` or
//! `_`) or a glob, on this machine or on S3: `s3://bucket/key` (an object, or every object under
//! the prefix `key/`) or `s3://bucket/logs/*.csv` (keys matching the pattern). S3 objects are read
//! in ranged GETs of 8 MiB and split by byte range like files (a split that starts mid-object
//! reads the bytes before it once, to number its lines). A missing path fails the job naming it;
//! so does an S3 read that fails mid-run (the restart strategy then restarts the job from its
//! last checkpoint). A line that does not decode fails the job
//! naming the file, line and field — or, with [`OnError::DeadLetter`], goes to a dead-letter file
//! with its error and the job goes on; the count set aside is reported when the job ends.
//!
//! | sink | where |
//! |---|---|
//! | [`Sinks::print`] | stdout of process 0 (records gathered on worker 0), one `Display` line each |
//! | [`Sinks::write_text`], [`Sinks::write_csv`], [`Sinks::write_jsonl`] | part files in a directory or under an `s3://` prefix, exactly-once with checkpoints (see [`sinks::parts`]) |
//! | [`Sinks::collect`] | a `Vec` returned by `Job::run` on process 0 |

pub mod collection;
pub mod deadletter;
pub mod files;
pub mod generator;
pub mod kafka;
pub mod nexmark;
mod position;
pub mod sinks;
mod throttle;

pub use collection::Sources;
pub use deadletter::OnError;
pub use files::{
    ChangelogCsvFiles, CsvFiles, DebeziumEvent, DebeziumJsonFiles, JsonLinesFiles, TextFiles,
};
pub use generator::Generator;
pub use sinks::{ChangelogSinks, Sinks};

/// Everything needed to read and write: `use tidal_connectors::prelude::*;`.
pub mod prelude {
    pub use crate::kafka::{KafkaSink, KafkaSinks, KafkaSource, KafkaSources};
    pub use crate::nexmark;
    pub use crate::{
        ChangelogCsvFiles, ChangelogSinks, CsvFiles, DebeziumEvent, DebeziumJsonFiles, Generator,
        JsonLinesFiles, OnError, Sinks, Sources, TextFiles,
    };
}
