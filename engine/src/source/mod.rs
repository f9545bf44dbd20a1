//! The one source driver: how every source emits records, advances time and ends.
//!
//! A connector supplies a [`SourceReader`] per worker; [`Env::source`] turns it into a stream. The
//! driver holds the source's capability at the current tick of processing time (or, for event-time
//! sources, their watermark), hands out batches for a few milliseconds per activation so that the
//! operators downstream run in between, and drops the capability when the reader is exhausted or
//! the job is asked to stop — which is the final watermark for everything downstream.

use std::rc::Rc;
use std::time::{Duration, Instant};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source;

use crate::checkpoint::SourcePosition;
use crate::runtime::Env;
use crate::runtime::checkpointing::PositionResult;
use crate::stream::DataStream;
use crate::time::watermark::{SourceClock, WatermarkStrategy};
use crate::time::{TickClock, Time, now_millis};

/// What a [`SourceReader`] says after a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// More records are available now.
    Ready,
    /// Nothing right now; try again after the given delay (an unbounded or rate-limited source).
    Pending(Duration),
    /// The source is exhausted.
    Done,
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
    /// A reader that meets an error it must not hide calls [`fail`](crate::fail).
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
    fn finish(&mut self) {}
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

/// Records handed downstream per read.
const BATCH: usize = 1024;
/// How long one activation of a source may run before downstream operators get a turn.
const SLICE: Duration = Duration::from_millis(2);
/// An event-time source moves its watermark at least once per tick, and also after this many
/// records: a source reading as fast as it can would otherwise leave a whole tick's records
/// (hundreds of thousands) waiting in the buffers of the operators downstream, out of cache.
const ADVANCE_RECORDS: usize = 32 * 1024;

impl<'s> Env<'s> {
    /// Turns this worker's reader into a stream with ingestion-time timestamps (see [`SourceReader`]).
    pub fn source<R: SourceReader>(&mut self, name: &str, reader: R) -> DataStream<'s, R::Item> {
        self.source_with(name, reader, WatermarkStrategy::ingestion_time())
    }

    /// Turns this worker's reader into a stream whose timestamps and watermarks follow `strategy`.
    pub fn source_with<R: SourceReader>(
        &mut self,
        name: &str,
        mut reader: R,
        strategy: WatermarkStrategy<R::Item>,
    ) -> DataStream<'s, R::Item> {
        let ctx = Rc::clone(self.context());
        let scope = self.scope();
        let ticks = TickClock::new(ctx.tick());
        let tick_ms = ctx.tick().as_millis() as Time;
        let per_record = ctx.tick().is_zero();
        let driver_ctx = Rc::clone(&ctx);
        let mut clock = strategy.instance();
        let idleness = strategy.idleness();
        let source_name = name.to_string();
        let slot = ctx.checkpoints.register_source(name);
        let slot_of_stream = Rc::clone(&slot);
        let stream = source::<_, CapacityContainerBuilder<Vec<(R::Item, Time)>>, _, _>(
            scope,
            name,
            move |capability, info| {
                let activator = scope.activator_for(info.address);
                let mut capability = Some(capability);
                let mut buffer: Vec<R::Item> = Vec::with_capacity(BATCH);
                // The records of one read with their timestamps, handed on as one container
                // (moved, not copied again record by record into the output's own buffer).
                let mut tagged: Vec<(R::Item, Time)> = Vec::new();
                let mut last_advance = Time::MIN;
                let mut since_advance: usize = 0;
                let mut changed: Vec<SplitId> = Vec::new();
                let mut restoring = driver_ctx.checkpoints.restored.clone();
                let mut finished = false;
                // Whether the reader ended because it had read everything (not stopped).
                let mut exhausted = false;
                let checkpointing = driver_ctx.checkpointing();
                let mut started_logging = false;
                let position_of = {
                    let source_name = source_name.clone();
                    move |reader: &R, clock: &SourceClock<R::Item>, cap: Time| -> PositionResult {
                        let watermark = match clock {
                            SourceClock::Ingestion => cap.saturating_sub(1),
                            SourceClock::Event { splits, .. } => splits.watermark(None).0,
                        };
                        reader
                            .position()
                            .map(|position| SourcePosition::At {
                                position,
                                watermark,
                            })
                            .ok_or_else(|| {
                                format!(
                                    "source '{source_name}' cannot be checkpointed: its reader does not report positions (SourceReader::position)"
                                )
                            })
                    }
                };
                move |output| {
                    let Some(cap) = capability.as_mut() else {
                        return;
                    };
                    if !finished && driver_ctx.stop_requested() {
                        reader.finish();
                        finished = true;
                    }
                    if finished {
                        // Ended. While a checkpoint is being taken, keep the capability at the
                        // fence: dropping it would let every operator run to the end of input
                        // (final results, window flushes) before it has snapshotted the cut.
                        let checkpoints = &driver_ctx.checkpoints;
                        if checkpoints.fence() == Time::MAX {
                            capability = None;
                            slot.borrow_mut().cap = None;
                            if idleness.is_some() {
                                driver_ctx.publish_watermark(&source_name, None);
                            }
                        } else {
                            // Nothing more will be sent: let the frontier reach the fence.
                            let fence = checkpoints.fence();
                            if *cap.time() < fence {
                                cap.downgrade(&fence);
                                // A stopped reader still has its remaining work: a checkpoint
                                // finished after the stop must say so, or a restore of it
                                // would skip that work.
                                let position = if exhausted {
                                    Ok(SourcePosition::Done)
                                } else {
                                    position_of(&reader, &clock, fence)
                                };
                                slot.borrow_mut().moved(fence, position);
                            }
                            activator.activate_after(Duration::from_millis(1));
                        }
                        return;
                    }
                    // A restored source goes on from its positions in the checkpoint, at its cut.
                    if let Some(restored) = restoring.take() {
                        let name = slot.borrow().name();
                        let positions: Vec<&SourcePosition> =
                            restored.source_positions(&name).collect();
                        if !positions.is_empty() {
                            let pieces: Vec<&[u8]> = positions
                                .iter()
                                .filter_map(|p| match p {
                                    SourcePosition::At { position, .. } => Some(&position[..]),
                                    SourcePosition::Done => None,
                                })
                                .collect();
                            if let Err(e) =
                                reader.restore(&pieces, driver_ctx.index(), driver_ctx.peers())
                            {
                                crate::fail(e.context(format!(
                                    "restoring source '{name}' from checkpoint {}",
                                    restored.path
                                )));
                            }
                        }
                        if *cap.time() < restored.cut {
                            cap.downgrade(&restored.cut);
                        }
                    }
                    // Where the source starts, for checkpoints whose cut comes before it moves.
                    if checkpointing && !started_logging {
                        started_logging = true;
                        let position = position_of(&reader, &clock, *cap.time());
                        slot.borrow_mut().moved(*cap.time(), position);
                    }
                    let started = Instant::now();
                    let mut done = false;
                    'slice: loop {
                        // Advance the capability to the watermark + 1, once per tick or per
                        // ADVANCE_RECORDS records (after every record when the tick is zero:
                        // deterministic, for tests).
                        let now = now_millis();
                        let next = match &clock {
                            // A pending cut above the capability: move to it now (the tick clock
                            // would get there only at the next tick).
                            SourceClock::Ingestion => {
                                Some(match driver_ctx.checkpoints.cut_above(*cap.time()) {
                                    Some(cut) => ticks.current().max(cut),
                                    None => ticks.current(),
                                })
                            }
                            SourceClock::Event { splits, .. }
                                if per_record
                                    || now >= last_advance.saturating_add(tick_ms)
                                    || since_advance >= ADVANCE_RECORDS
                                    || driver_ctx.checkpoints.cut_above(*cap.time()).is_some() =>
                            {
                                last_advance = now;
                                since_advance = 0;
                                let (own, idle) = splits.watermark(idleness);
                                if idleness.is_none() {
                                    Some(own.saturating_add(1))
                                } else {
                                    // Idle: follow the other instances of this source.
                                    let others = driver_ctx
                                        .publish_watermark(&source_name, Some((own, idle)));
                                    let follow = if idle { others } else { None };
                                    Some(follow.map_or(own, |o| o.max(own)).saturating_add(1))
                                }
                            }
                            SourceClock::Event { .. } => None,
                        };
                        // Never past a checkpoint's fence; note the position at every move.
                        let next = next.map(|n| n.min(driver_ctx.checkpoints.fence()));
                        if let Some(next) = next
                            && *cap.time() < next
                        {
                            cap.downgrade(&next);
                            if checkpointing {
                                let position = position_of(&reader, &clock, next);
                                slot.borrow_mut().moved(next, position);
                            } else {
                                slot.borrow_mut().cap = Some(next);
                            }
                        }
                        // Read and emit under this capability until the slice ends or it is due to
                        // advance (one session, so batches stay large).
                        let mut session = output.session(&*cap);
                        loop {
                            let now = now_millis();
                            let max = if per_record { 1 } else { BATCH };
                            let poll = match &mut clock {
                                SourceClock::Ingestion => {
                                    let at = now.max(*cap.time());
                                    let poll =
                                        reader.read_stamped(&mut buffer, &mut tagged, max, |_| at);
                                    if !tagged.is_empty() {
                                        session.give_container(&mut tagged);
                                        tagged.clear();
                                    }
                                    poll
                                }
                                SourceClock::Event { assign, splits } => {
                                    let poll =
                                        reader.read_stamped(&mut buffer, &mut tagged, max, |r| {
                                            assign(r)
                                        });
                                    let split = reader.last_split();
                                    let seen = Instant::now();
                                    reader.started_splits(&mut changed);
                                    for id in changed.drain(..) {
                                        splits.start_split(id, seen);
                                    }
                                    since_advance += tagged.len();
                                    if !tagged.is_empty() {
                                        // One read is of one split: one generator lookup.
                                        let generator = splits.generator_for(split, seen);
                                        for (r, ts) in &tagged {
                                            generator.on_event(r, *ts);
                                        }
                                        session.give_container(&mut tagged);
                                        tagged.clear();
                                    }
                                    reader.finished_splits(&mut changed);
                                    for id in changed.drain(..) {
                                        splits.finish_split(id);
                                    }
                                    poll
                                }
                            };
                            match poll {
                                Poll::Ready => {
                                    if started.elapsed() >= SLICE {
                                        activator.activate();
                                        break 'slice;
                                    }
                                }
                                Poll::Pending(delay) => {
                                    activator.activate_after(delay);
                                    break 'slice;
                                }
                                Poll::Done => {
                                    done = true;
                                    break 'slice;
                                }
                            }
                            // Due to move: a tick has passed, or a checkpoint waits for this source.
                            let hurry = driver_ctx.checkpoints.cut_above(*cap.time()).is_some();
                            let due = hurry
                                || match &clock {
                                    SourceClock::Ingestion => ticks.current() > *cap.time(),
                                    SourceClock::Event { .. } => {
                                        per_record
                                            || now >= last_advance.saturating_add(tick_ms)
                                            || since_advance >= ADVANCE_RECORDS
                                    }
                                };
                            if due {
                                break;
                            }
                        }
                    }
                    if done {
                        reader.finish();
                        finished = true;
                        exhausted = true;
                        activator.activate();
                    }
                }
            },
        );
        let stream = DataStream::from_timely(stream, ctx, name);
        slot_of_stream.borrow_mut().operator = Some(Rc::clone(stream.meta()));
        stream
    }
}
