//! The one source driver: how every source emits records, advances time and ends.
//!
//! A connector supplies a [`SourceReader`] per worker; [`Env::source`] turns it into a stream. The
//! driver holds the source's capability at the current tick of processing time (or, for event-time
//! sources, their watermark), hands out batches for a few milliseconds per activation so that the
//! operators downstream run in between, and drops the capability when the reader is exhausted or
//! the job is asked to stop — which is the final watermark for everything downstream. The driver
//! itself is `SourceDriver` (in `source/driver.rs`), one activation made of named steps.

mod driver;

use std::rc::Rc;
use std::time::Duration;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source;

use crate::error::Error;
use crate::runtime::Env;
use crate::stream::DataStream;
use crate::time::Time;
use crate::time::watermark::WatermarkStrategy;

/// How far a bounded source instance has read its input, in units of its own (bytes of its
/// files, records of a generator): `done` of `total`.
///
/// ```
/// let p = tidal_engine::Progress { done: 25, total: 100 };
/// assert_eq!(p.fraction(), 0.25);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// Read so far.
    pub done: u64,
    /// All there is to read.
    pub total: u64,
}

impl Progress {
    /// `done / total` (1 when there is nothing to read).
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.done as f64 / self.total as f64
        }
    }
}

/// What a [`SourceReader`] says after a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// More records are available now.
    Ready,
    /// Nothing right now; try again after the given delay (an unbounded or rate-limited source).
    Pending(Duration),
    /// The source is exhausted.
    Done,
    /// The reader met an error it must not hide (an unreadable file, a record that does not
    /// decode under the fail policy): the records of this read are still handed on, then the job
    /// fails with the error.
    Failed(Error),
}

/// Reads one worker's share of a source.
///
/// ```
/// use tidal_engine::{Poll, SourceReader};
/// struct Count { next: u64, end: u64 }
/// impl SourceReader for Count {
///     type Item = u64;
///     fn read(&mut self, out: &mut Vec<u64>, max: usize) -> Poll {
///         let stop = self.end.min(self.next + max as u64);
///         out.extend(self.next..stop);
///         self.next = stop;
///         if self.next == self.end { Poll::Done } else { Poll::Ready }
///     }
/// }
/// let out: Vec<u64> = tidal_engine::Job::local(1).run(|env| {
///     let collected = tidal_engine::Collected::new();
///     let sink = collected.clone();
///     let stream = env.source("count", Count { next: 0, end: 5 });
///     use timely::dataflow::operators::Inspect;
///     stream.into_inner().inspect(move |(x, _timestamp)| sink.extend([*x]));
///     collected
/// }).unwrap();
/// assert_eq!(out, vec![0, 1, 2, 3, 4]);
/// ```
pub trait SourceReader: 'static {
    /// The records produced.
    type Item: 'static;
    /// Appends up to about `max` records to `out`.
    ///
    /// A reader that meets an error it must not hide returns [`Poll::Failed`].
    fn read(&mut self, out: &mut Vec<Self::Item>, max: usize) -> Poll;
    /// Like [`read`](SourceReader::read), but appends each record with its timestamp
    /// `stamp(&record)` to `out`. The driver calls this one; the default reads into `scratch` and
    /// moves the records from there. A reader that makes records one at a time (a generator) can
    /// push them stamped where they belong, sparing a copy of every record.
    fn read_stamped<F: FnMut(&Self::Item) -> Time>(
        &mut self,
        scratch: &mut Vec<Self::Item>,
        out: &mut Vec<(Self::Item, Time)>,
        max: usize,
        mut stamp: F,
    ) -> Poll
    where
        Self: Sized,
    {
        let poll = self.read(scratch, max);
        out.reserve(scratch.len());
        out.extend(scratch.drain(..).map(|r| {
            let ts = stamp(&r);
            (r, ts)
        }));
        poll
    }
    /// Called once when the source ends (exhausted or stopped), e.g. to flush a dead-letter file.
    /// An error fails the job.
    fn finish(&mut self) -> crate::Result<()> {
        Ok(())
    }
    /// For checkpoints: what this instance has still to read, encoded by the reader (`None`: the
    /// reader cannot be checkpointed, and checkpoints of a job that uses it fail, saying so).
    /// Called between reads; every record read so far has been handed on.
    ///
    /// On restore, [`restore`](SourceReader::restore) receives every former instance's position
    /// — for any number of former instances — and takes its share of the remaining work.
    fn position(&self) -> Option<Vec<u8>> {
        None
    }
    /// For checkpoints: called once, before the first read, when the job restores a checkpoint
    /// that holds this source. `positions` are what [`position`](SourceReader::position) returned
    /// on every former instance that had not finished (any number of them; empty when all had);
    /// this is instance `index` of `peers`, and takes its share of that remaining work.
    fn restore(&mut self, positions: &[&[u8]], index: usize, peers: usize) -> crate::Result<()> {
        let _ = (positions, index, peers);
        Err(crate::Error::config(
            "its reader cannot be restored from a checkpoint (SourceReader::restore)",
        ))
    }
    /// For a bounded reader: how much of its input it has read (for the terminal's progress
    /// line). `None` (the default): unknown or unbounded.
    fn progress(&self) -> Option<Progress> {
        None
    }
    /// Called when a checkpoint that holds this instance's `position` (what
    /// [`position`](SourceReader::position) returned at its cut) is complete on every worker —
    /// at the instance's next activation, between reads — e.g. to tell an external system how far
    /// the job has durably read (Kafka's committed group offsets). Only the latest completed
    /// checkpoint is passed when several completed between two activations. The job's
    /// correctness must not depend on it: a restore uses the position in the checkpoint. An error
    /// fails the job; a reader whose acknowledgement may fail without harm logs it instead.
    fn checkpoint_complete(&mut self, id: u64, position: &[u8]) -> crate::Result<()> {
        let _ = (id, position);
        Ok(())
    }
    /// For readers of several splits (file ranges, partitions) that want a watermark generator per
    /// split, as Flink's per-split watermarks: the split every record of the last
    /// [`read`](SourceReader::read) came from. A reader that says so returns records of one split
    /// per read. The instance's watermark is then the least of its active splits' watermarks (a
    /// split idle for the strategy's idleness timeout does not count), so a split that lags
    /// behind another does not find its records late. `None` (the default): one generator for
    /// the whole instance.
    fn last_split(&self) -> Option<SplitId> {
        None
    }
    /// Appends the splits assigned to this reader since the last call (called after every read,
    /// before its records are handed on). A started split holds the watermark back from the start,
    /// before its first record, as Flink's per-split watermarks do: a reader that reads its splits
    /// one after another reports each when it opens it; one that reads them together (partitions)
    /// reports them all at once.
    fn started_splits(&mut self, _started: &mut Vec<SplitId>) {}
    /// Appends the splits that ended since the last call: they no longer hold the watermark back.
    fn finished_splits(&mut self, _finished: &mut Vec<SplitId>) {}
}

pub use crate::time::watermark::SplitId;

impl<'s> Env<'s> {
    /// Turns this worker's reader into a stream with ingestion-time timestamps (see [`SourceReader`]).
    pub fn source<R: SourceReader>(&mut self, name: &str, reader: R) -> DataStream<'s, R::Item> {
        self.source_with(name, reader, WatermarkStrategy::ingestion_time())
    }

    /// Turns this worker's reader into a stream whose timestamps and watermarks follow `strategy`.
    pub fn source_with<R: SourceReader>(
        &mut self,
        name: &str,
        reader: R,
        strategy: WatermarkStrategy<R::Item>,
    ) -> DataStream<'s, R::Item> {
        let ctx = Rc::clone(self.context());
        let scope = self.scope();
        let slot = ctx.checkpoints.register_source(name);
        let slot_of_stream = Rc::clone(&slot);
        let driver_ctx = Rc::clone(&ctx);
        let source_name = name.to_string();
        let first_id = scope.worker().peek_identifier();
        let stream = source::<_, CapacityContainerBuilder<Vec<(R::Item, Time)>>, _, _>(
            scope,
            name,
            move |capability, info| {
                let activator = scope.activator_for(info.address);
                let mut driver = driver::SourceDriver::new(
                    source_name,
                    reader,
                    &strategy,
                    driver_ctx,
                    slot,
                    capability,
                    activator,
                );
                move |output| driver.activate(output)
            },
        );
        // With metrics on, a probe follows the source's output: its watermark.
        let (stream, probe) = if ctx.metrics_on() {
            let probe = timely::dataflow::ProbeHandle::new();
            use timely::dataflow::operators::Probe;
            (stream.probe_with(&probe), Some(probe))
        } else {
            (stream, None)
        };
        let ids = (first_id, scope.worker().peek_identifier());
        let stream = DataStream::from_timely(stream, Rc::clone(&ctx), name);
        ctx.watch_operator(stream.meta(), "source", ids, probe);
        slot_of_stream.borrow_mut().operator = Some(Rc::clone(stream.meta()));
        stream
    }
}
