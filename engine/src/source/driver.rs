//! The source driver: one per source instance, activated by timely whenever the source may run.
//!
//! Each activation goes through the same steps:
//! 1. [`check_stop`](SourceDriver::check_stop): the job asked to stop — the reader is finished.
//! 2. [`wind_down`](SourceDriver::wind_down): an ended source drops its capability (the final
//!    watermark), or holds it at the fence of a checkpoint under way.
//! 3. [`restore_once`](SourceDriver::restore_once): a restored source takes its share of the
//!    positions in the checkpoint and starts at its cut.
//! 4. Backpressure: while an operator of the process holds its sources back
//!    ([`WorkerContext::hold_back_sources`]), read nothing and look again in a millisecond.
//! 5. [`run_slice`](SourceDriver::run_slice): for a slice of a few milliseconds, move the
//!    capability to the watermark ([`advance`](SourceDriver::advance)) when a tick has passed or a
//!    checkpoint waits, and read batches ([`read_batch`](SourceDriver::read_batch)) under it.
//!
//! Failures (a reader's [`Poll::Failed`], a restore that cannot be done) end the job through
//! [`WorkerContext::fail`]; the source then ends as if exhausted.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::{OutputBuilderSession, Session};
use timely::scheduling::Activator;

use super::{Poll, SourceReader, SplitId};
use crate::checkpoint::SourcePosition;
use crate::error::Error;
use crate::runtime::WorkerContext;
use crate::runtime::checkpointing::{PositionResult, SourceSlot};
use crate::time::watermark::{SourceClock, WatermarkStrategy};
use crate::time::{TickClock, Time, now_millis};

/// Records handed downstream per read.
const BATCH: usize = 1024;
/// How long one activation of a source may run before downstream operators get a turn.
const SLICE: Duration = Duration::from_millis(2);
/// How many batches one activation may read at most: a source reading as fast as it can would
/// otherwise hand on 2 ms of records (100 000 words of word count: 4 MB) before the operators
/// after it run, and on several workers those records and what they become wait in memory
/// (word count on 2 workers: peak RSS 75-100 MB with the time limit alone, 51-63 MB with this;
/// time the same or less).
const SLICE_BATCHES: usize = 2;
/// How often a source held back by backpressure looks whether it may read again.
const HELD_BACK_POLL: Duration = Duration::from_millis(1);
/// An event-time source moves its watermark at least once per tick, and also after this many
/// records: a source reading as fast as it can would otherwise leave a whole tick's records
/// (hundreds of thousands) waiting in the buffers of the operators downstream, out of cache.
const ADVANCE_RECORDS: usize = 32 * 1024;

/// The output a source writes to.
type Output<'a, T> = OutputBuilderSession<'a, Time, CapacityContainerBuilder<Vec<(T, Time)>>>;
/// A session on it under the source's capability.
type Batches<'a, 'b, T> =
    Session<'a, 'b, Time, CapacityContainerBuilder<Vec<(T, Time)>>, Capability<Time>>;

/// What one activation's reading ended with.
enum SliceEnd {
    /// The slice is used up, or the reader asked to wait: come back later.
    Later,
    /// The reader is exhausted.
    Exhausted,
    /// The reader failed: the job fails with this error.
    Failed(Error),
}

/// Drives one instance of a source (see the module docs).
pub(crate) struct SourceDriver<R: SourceReader> {
    name: String,
    reader: R,
    clock: SourceClock<R::Item>,
    idleness: Option<Duration>,
    ctx: Rc<WorkerContext>,
    slot: Rc<RefCell<SourceSlot>>,
    /// Held until the source ends: the earliest time it may still send at.
    capability: Option<Capability<Time>>,
    activator: Activator,
    ticks: TickClock,
    tick_ms: Time,
    /// A tick of zero: time moves after every record (deterministic, for tests).
    per_record: bool,
    checkpointing: bool,
    /// Records of one read before they are stamped.
    buffer: Vec<R::Item>,
    /// The records of one read with their timestamps, handed on as one container (moved, not
    /// copied again record by record into the output's own buffer).
    tagged: Vec<(R::Item, Time)>,
    last_advance: Time,
    since_advance: usize,
    changed: Vec<SplitId>,
    restoring: bool,
    finished: bool,
    /// Whether the reader ended because it had read everything (not stopped).
    exhausted: bool,
    started_logging: bool,
    /// With checkpoints, an event-time source's key on the watermark board: its capability never
    /// passes the least watermark of the other event-time sources (see [`advance`](Self::advance)).
    aligned: Option<String>,
    /// Records read so far (for the progress line).
    records: u64,
}

impl<R: SourceReader> SourceDriver<R> {
    pub(crate) fn new(
        name: String,
        reader: R,
        strategy: &WatermarkStrategy<R::Item>,
        ctx: Rc<WorkerContext>,
        slot: Rc<RefCell<SourceSlot>>,
        capability: Capability<Time>,
        activator: Activator,
    ) -> Self {
        let clock = strategy.instance();
        let aligned = (ctx.checkpointing() && matches!(clock, SourceClock::Event { .. }))
            .then(|| ctx.register_aligned_source());
        SourceDriver {
            name,
            reader,
            clock,
            aligned,
            idleness: strategy.idleness(),
            slot,
            capability: Some(capability),
            activator,
            ticks: TickClock::new(ctx.tick()),
            tick_ms: ctx.tick().as_millis() as Time,
            per_record: ctx.tick().is_zero(),
            checkpointing: ctx.checkpointing(),
            buffer: Vec::with_capacity(BATCH),
            tagged: Vec::new(),
            last_advance: Time::MIN,
            since_advance: 0,
            changed: Vec::new(),
            restoring: ctx.checkpoints.restored.is_some(),
            finished: false,
            exhausted: false,
            started_logging: false,
            records: 0,
            ctx,
        }
    }

    /// One activation.
    pub(crate) fn activate(&mut self, output: &mut Output<'_, R::Item>) {
        if self.capability.is_none() {
            return;
        }
        self.check_stop();
        let completed = self.slot.borrow_mut().completed.take();
        if let Some((id, position)) = completed
            && !self.finished
            && let Err(e) = self.reader.checkpoint_complete(id, &position)
        {
            self.fail(e.context(format!(
                "source '{}' after checkpoint {id} completed",
                self.name
            )));
            return;
        }
        if self.finished {
            self.wind_down();
            return;
        }
        if self.restoring {
            self.restoring = false;
            if let Err(e) = self.restore_once() {
                self.fail(e);
                return;
            }
        }
        if self.checkpointing && !self.started_logging {
            // Where the source starts, for checkpoints whose cut comes before it moves.
            self.started_logging = true;
            let at = self.cap_time();
            let position = self.position_at(at);
            self.slot.borrow_mut().moved(at, position);
        }
        if self.ctx.sources_held_back() {
            // An operator of this process has more waiting than it can work on: read nothing
            // until it lets go (backpressure; see `WorkerContext::hold_back_sources`).
            self.activator.activate_after(HELD_BACK_POLL);
            return;
        }
        let end = self.run_slice(output);
        if self.ctx.progress_on() {
            let done = matches!(end, SliceEnd::Exhausted);
            self.ctx
                .note_progress(&self.name, self.records, self.reader.progress(), done);
        }
        match end {
            SliceEnd::Later => {}
            SliceEnd::Exhausted => self.end(true),
            SliceEnd::Failed(e) => self.fail(e),
        }
    }

    /// The time of the capability held (called only while one is).
    fn cap_time(&self) -> Time {
        *self.capability.as_ref().expect("held").time()
    }

    /// Step 1: a stop the job asked for finishes the reader.
    fn check_stop(&mut self) {
        if !self.finished && self.ctx.stop_requested() {
            self.end(false);
        }
    }

    /// Ends the source: the reader is finished (`exhausted`: it had read everything), and the
    /// next activation winds down.
    fn end(&mut self, exhausted: bool) {
        if let Err(e) = self.reader.finish() {
            self.ctx
                .fail(e.context(format!("finishing source '{}'", self.name)));
        }
        self.finished = true;
        self.exhausted = exhausted;
        self.activator.activate();
    }

    /// Fails the job with `error` and ends the source.
    fn fail(&mut self, error: Error) {
        self.ctx.fail(error);
        self.end(false);
    }

    /// Step 2: an ended source drops its capability — unless a checkpoint is under way: dropping
    /// it would let every operator run to the end of input (final results, window flushes) before
    /// it has snapshotted the cut, so it stays at the fence until the checkpoint is over.
    fn wind_down(&mut self) {
        let fence = self.ctx.checkpoints.fence();
        if fence == Time::MAX
            && !self.exhausted
            && !self.ctx.failed()
            && !self.ctx.stop_seen_everywhere()
        {
            // Stopped before its end: keep the capability until every worker knows of the stop
            // (see `WorkerContext::stop_seen_everywhere`).
            self.activator.activate_after(Duration::from_millis(1));
            return;
        }
        if fence == Time::MAX || self.ctx.failed() {
            self.capability = None;
            self.slot.borrow_mut().cap = None;
            if self.idleness.is_some() {
                self.ctx.publish_watermark(&self.name, None);
            }
            if let Some(key) = &self.aligned {
                self.ctx.publish_watermark(key, None);
            }
            return;
        }
        // Nothing more will be sent: let the frontier reach the fence.
        if self.cap_time() < fence {
            self.capability.as_mut().expect("held").downgrade(&fence);
            // A stopped reader still has its remaining work: a checkpoint finished after the
            // stop must say so, or a restore of it would skip that work.
            let position = if self.exhausted {
                Ok(SourcePosition::Done)
            } else {
                self.position_at(fence)
            };
            self.slot.borrow_mut().moved(fence, position);
        }
        self.activator.activate_after(Duration::from_millis(1));
    }

    /// Step 3: a restored source goes on from its positions in the checkpoint, at its cut.
    fn restore_once(&mut self) -> Result<(), Error> {
        let Some(restored) = self.ctx.checkpoints.restored.clone() else {
            return Ok(());
        };
        // Found under the source's final name (as renamed with `.name(...)`), its identity in
        // checkpoints.
        let name = self.slot.borrow().name();
        let positions: Vec<&SourcePosition> = restored.source_positions(&name).collect();
        if !positions.is_empty() {
            let pieces: Vec<&[u8]> = positions
                .iter()
                .filter_map(|p| match p {
                    SourcePosition::At { position, .. } => Some(&position[..]),
                    SourcePosition::Done => None,
                })
                .collect();
            self.reader
                .restore(&pieces, self.ctx.index(), self.ctx.peers())
                .map_err(|e| {
                    e.context(format!(
                        "restoring source '{name}' from checkpoint {}",
                        restored.path
                    ))
                })?;
        }
        let cap = self.capability.as_mut().expect("held");
        if *cap.time() < restored.cut {
            cap.downgrade(&restored.cut);
        }
        Ok(())
    }

    /// Where the reader stands, for a checkpoint whose cut is `cap`.
    fn position_at(&self, cap: Time) -> PositionResult {
        let watermark = match &self.clock {
            SourceClock::Ingestion => cap.saturating_sub(1),
            SourceClock::Event { splits, .. } => splits.watermark(None).0,
        };
        self.reader
            .position()
            .map(|position| SourcePosition::At {
                position,
                watermark,
            })
            .ok_or_else(|| {
                format!(
                    "source '{}' cannot be checkpointed: its reader does not report positions (SourceReader::position)",
                    self.name
                )
            })
    }

    /// Step 4: reads for one slice, moving the capability whenever it is due.
    fn run_slice(&mut self, output: &mut Output<'_, R::Item>) -> SliceEnd {
        let started = Instant::now();
        loop {
            self.advance();
            // Read and emit under this capability until the slice ends or it is due to advance
            // (one session, so batches stay large).
            let cap = self.capability.take().expect("held");
            let mut session = output.session(&cap);
            let mut batches = 0;
            let end = loop {
                let poll = self.read_batch(&mut session, *cap.time());
                batches += 1;
                match poll {
                    Poll::Ready if batches >= SLICE_BATCHES || started.elapsed() >= SLICE => {
                        self.activator.activate();
                        break Some(SliceEnd::Later);
                    }
                    Poll::Ready => {}
                    Poll::Pending(delay) => {
                        self.activator.activate_after(delay);
                        break Some(SliceEnd::Later);
                    }
                    Poll::Done => break Some(SliceEnd::Exhausted),
                    Poll::Failed(e) => break Some(SliceEnd::Failed(e)),
                }
                if self.due(*cap.time()) {
                    break None;
                }
            };
            drop(session);
            self.capability = Some(cap);
            if let Some(end) = end {
                return end;
            }
        }
    }

    /// Whether the capability at `cap` is due to move: a tick has passed, or a checkpoint waits
    /// for this source.
    fn due(&self, cap: Time) -> bool {
        if self.ctx.checkpoints.cut_above(cap).is_some() {
            return true;
        }
        match &self.clock {
            SourceClock::Ingestion => self.ticks.current() > cap,
            SourceClock::Event { .. } => {
                self.per_record
                    || now_millis() >= self.last_advance.saturating_add(self.tick_ms)
                    || self.since_advance >= ADVANCE_RECORDS
            }
        }
    }

    /// Moves the capability to the watermark + 1 (event time: once per tick or per
    /// [`ADVANCE_RECORDS`] records; ingestion time: to the current tick), never past a
    /// checkpoint's fence, noting the reader's position at every move.
    fn advance(&mut self) {
        let cap_time = self.cap_time();
        let cut_above = self.ctx.checkpoints.cut_above(cap_time);
        let now = now_millis();
        let next = match &self.clock {
            // A pending cut above the capability: move to it now (the tick clock would get there
            // only at the next tick).
            SourceClock::Ingestion => Some(match cut_above {
                Some(cut) => self.ticks.current().max(cut),
                None => self.ticks.current(),
            }),
            SourceClock::Event { splits, .. }
                if self.per_record
                    || now >= self.last_advance.saturating_add(self.tick_ms)
                    || self.since_advance >= ADVANCE_RECORDS
                    || cut_above.is_some() =>
            {
                self.last_advance = now;
                self.since_advance = 0;
                let (own, idle) = splits.watermark(self.idleness);
                let next = if self.idleness.is_none() {
                    own.saturating_add(1)
                } else {
                    // Idle: follow the other instances of this source.
                    let others = self.ctx.publish_watermark(&self.name, Some((own, idle)));
                    let follow = if idle { others } else { None };
                    follow.map_or(own, |o| o.max(own)).saturating_add(1)
                };
                Some(match &self.aligned {
                    Some(key) => {
                        // In step with the other event-time sources: a checkpoint's cut follows
                        // the sources behind, and a source ahead of it could otherwise have sent
                        // records at or above the cut and then ended, leaving operators fed by it
                        // alone past the cut (they would apply those records again after a
                        // restore, when the source reads them again).
                        self.ctx.publish_watermark(key, Some((own, idle)));
                        match self.ctx.least_aligned_watermark(key) {
                            Some(least) => next.min(least.saturating_add(1)),
                            None => next,
                        }
                    }
                    None => next,
                })
            }
            SourceClock::Event { .. } => None,
        };
        let next = next.map(|n| n.min(self.ctx.checkpoints.fence()));
        if let Some(next) = next
            && cap_time < next
        {
            self.capability.as_mut().expect("held").downgrade(&next);
            if self.checkpointing {
                let position = self.position_at(next);
                self.slot.borrow_mut().moved(next, position);
            } else {
                self.slot.borrow_mut().cap = Some(next);
            }
        }
    }

    /// Reads one batch and hands it on, stamped: with the ingestion time, or by the strategy's
    /// timestamp assigner (feeding each record to its split's watermark generator).
    fn read_batch(&mut self, session: &mut Batches<'_, '_, R::Item>, cap: Time) -> Poll {
        let max = if self.per_record { 1 } else { BATCH };
        match &mut self.clock {
            SourceClock::Ingestion => {
                let at = now_millis().max(cap);
                let poll =
                    self.reader
                        .read_stamped(&mut self.buffer, &mut self.tagged, max, |_| at);
                self.records += self.tagged.len() as u64;
                if !self.tagged.is_empty() {
                    session.give_container(&mut self.tagged);
                    self.tagged.clear();
                }
                poll
            }
            SourceClock::Event { assign, splits } => {
                let poll = self
                    .reader
                    .read_stamped(&mut self.buffer, &mut self.tagged, max, |r| assign(r));
                let split = self.reader.last_split();
                let seen = Instant::now();
                self.reader.started_splits(&mut self.changed);
                for id in self.changed.drain(..) {
                    splits.start_split(id, seen);
                }
                self.since_advance += self.tagged.len();
                self.records += self.tagged.len() as u64;
                if !self.tagged.is_empty() {
                    // One read is of one split: one generator lookup.
                    let generator = splits.generator_for(split, seen);
                    for (r, ts) in &self.tagged {
                        generator.on_event(r, *ts);
                    }
                    session.give_container(&mut self.tagged);
                    self.tagged.clear();
                }
                self.reader.finished_splits(&mut self.changed);
                for id in self.changed.drain(..) {
                    splits.finish_split(id);
                }
                poll
            }
        }
    }
}
