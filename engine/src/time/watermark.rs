//! Watermark strategies: how a source assigns event timestamps and advances its watermark.
//!
//! A source instance's watermark `W` promises that no more records with timestamp `<= W` will come
//! (Flink's meaning). The source holds its timely capability at `W + 1`, the earliest event time
//! still to come, so an operator's input frontier is `min(W) + 1` over every source instance
//! upstream — and a record whose timestamp is below the frontier is *late*.
//! The capability advances at most once per tick (`--tick`), so progress tracking costs one update
//! per tick however fast the watermark moves. When the source ends, the capability is dropped: the
//! final watermark at +infinity.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Identifies a split of a source (a file range, a partition) within the source.
pub type SplitId = u64;

use crate::time::Time;

/// Produces a source instance's watermark from the records it has seen.
pub trait WatermarkGenerator<T>: 'static {
    /// Called for every record with its assigned timestamp.
    fn on_event(&mut self, record: &T, timestamp: Time);
    /// The current watermark `W`: no record with timestamp `<= W` is expected any more.
    fn watermark(&self) -> Time;
}

/// Watermark = largest timestamp seen − 1 (for timestamps that never decrease).
#[derive(Debug, Clone)]
pub struct Monotonous {
    max: Time,
}

impl<T> WatermarkGenerator<T> for Monotonous {
    fn on_event(&mut self, _: &T, timestamp: Time) {
        self.max = self.max.max(timestamp);
    }
    fn watermark(&self) -> Time {
        self.max.saturating_sub(1)
    }
}

/// Watermark = largest timestamp seen − bound − 1 (records may be up to `bound` ms out of order).
#[derive(Debug, Clone)]
pub struct BoundedOutOfOrderness {
    max: Time,
    bound: Time,
}

impl<T> WatermarkGenerator<T> for BoundedOutOfOrderness {
    fn on_event(&mut self, _: &T, timestamp: Time) {
        self.max = self.max.max(timestamp);
    }
    fn watermark(&self) -> Time {
        self.max.saturating_sub(self.bound).saturating_sub(1)
    }
}

type Assigner<T> = Arc<dyn Fn(&T) -> Time + Send + Sync>;
type MakeGenerator<T> = Arc<dyn Fn() -> Box<dyn WatermarkGenerator<T>> + Send + Sync>;

/// How a source assigns timestamps and watermarks (Flink's `WatermarkStrategy`).
///
/// ```
/// use std::time::Duration;
/// use tidal_engine::WatermarkStrategy;
/// struct Ride { event_time: i64 }
/// let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(60))
///     .with_timestamps(|r: &Ride| r.event_time);
/// assert!(strategy.is_event_time());
/// ```
pub struct WatermarkStrategy<T> {
    assigner: Option<Assigner<T>>,
    generator: Option<MakeGenerator<T>>,
    idleness: Option<std::time::Duration>,
}

impl<T> Clone for WatermarkStrategy<T> {
    fn clone(&self) -> Self {
        WatermarkStrategy {
            assigner: self.assigner.clone(),
            generator: self.generator.clone(),
            idleness: self.idleness,
        }
    }
}

impl<T: 'static> WatermarkStrategy<T> {
    /// Ingestion time: each record's timestamp is the wall clock when the source read it, and the
    /// watermark follows the clock in ticks. The default of every source.
    pub fn ingestion_time() -> Self {
        WatermarkStrategy {
            assigner: None,
            generator: None,
            idleness: None,
        }
    }
    /// Timestamps never decrease: watermark = largest timestamp − 1.
    pub fn monotonous() -> Self {
        Self::custom(|| Monotonous { max: Time::MIN })
    }
    /// Timestamps at most `bound` out of order: watermark = largest timestamp − bound − 1.
    pub fn bounded_out_of_orderness(bound: std::time::Duration) -> Self {
        let bound = bound.as_millis() as Time;
        Self::custom(move || BoundedOutOfOrderness {
            max: Time::MIN,
            bound,
        })
    }
    /// A watermark generator of the user's, made once per source instance.
    pub fn custom<G: WatermarkGenerator<T>>(make: impl Fn() -> G + Send + Sync + 'static) -> Self {
        WatermarkStrategy {
            assigner: None,
            idleness: None,
            generator: Some(Arc::new(move || {
                Box::new(make()) as Box<dyn WatermarkGenerator<T>>
            })),
        }
    }
    /// Takes each record's event timestamp (ms since the epoch) from the record.
    pub fn with_timestamps(
        mut self,
        assigner: impl Fn(&T) -> Time + Send + Sync + 'static,
    ) -> Self {
        self.assigner = Some(Arc::new(assigner));
        self
    }
    /// Marks a source instance idle when it has read no record for `timeout`: it then stops
    /// holding back the watermark and follows the other instances of the same source — the least
    /// watermark of the active ones, or, when all are idle, the least of theirs — so an idle
    /// instance never holds back progress made elsewhere (an instance whose records come back
    /// later may find them late). For a reader with splits
    /// ([`SourceReader::last_split`](crate::SourceReader::last_split)) the same holds per split: an
    /// idle split stops holding back its instance's watermark.
    pub fn with_idleness(mut self, timeout: std::time::Duration) -> Self {
        self.idleness = Some(timeout);
        self
    }
    /// The idleness timeout, if any.
    pub fn idleness(&self) -> Option<std::time::Duration> {
        self.idleness
    }
    /// Whether records get event timestamps (rather than ingestion time).
    pub fn is_event_time(&self) -> bool {
        self.generator.is_some()
    }
    pub(crate) fn instance(&self) -> SourceClock<T> {
        let Some(make) = &self.generator else {
            return SourceClock::Ingestion;
        };
        let assign = match &self.assigner {
            Some(assign) => Arc::clone(assign),
            None => Arc::new(|_: &T| crate::time::now_millis()),
        };
        SourceClock::Event {
            assign,
            splits: SplitWatermarks {
                whole: make(),
                whole_seen: Instant::now(),
                make: Arc::clone(make),
                per_split: BTreeMap::new(),
            },
        }
    }
}

/// A source instance's timestamp assigner and watermark generators.
pub(crate) enum SourceClock<T> {
    Ingestion,
    Event {
        assign: Assigner<T>,
        splits: SplitWatermarks<T>,
    },
}

/// A source instance's watermark generators: one for records of no particular split, and one per
/// split the reader reports (see [`SourceReader::last_split`](crate::SourceReader::last_split)).
pub(crate) struct SplitWatermarks<T> {
    make: MakeGenerator<T>,
    whole: Box<dyn WatermarkGenerator<T>>,
    whole_seen: Instant,
    /// Per active split: its generator and when it last had a record.
    per_split: BTreeMap<SplitId, (Box<dyn WatermarkGenerator<T>>, Instant)>,
}

impl<T: 'static> SplitWatermarks<T> {
    /// The generator for the records of one read, from `split` (or of no split), seen at `now`.
    pub(crate) fn generator_for(
        &mut self,
        split: Option<SplitId>,
        now: Instant,
    ) -> &mut dyn WatermarkGenerator<T> {
        match split {
            None => {
                self.whole_seen = now;
                &mut *self.whole
            }
            Some(id) => {
                let make = &self.make;
                let (generator, seen) = self.per_split.entry(id).or_insert_with(|| (make(), now));
                *seen = now;
                &mut **generator
            }
        }
    }
    /// A split assigned to the reader: it holds the watermark back from now on.
    pub(crate) fn start_split(&mut self, id: SplitId, now: Instant) {
        let make = &self.make;
        self.per_split.entry(id).or_insert_with(|| (make(), now));
    }
    /// A split that ended: it no longer holds the watermark back.
    pub(crate) fn finish_split(&mut self, id: SplitId) {
        self.per_split.remove(&id);
    }
    /// The instance's watermark and whether it is idle (no record for `idleness`): with splits,
    /// the least watermark of the splits that are not idle — or of all of them when every one is.
    pub(crate) fn watermark(&self, idleness: Option<Duration>) -> (Time, bool) {
        let idle = |seen: &Instant| idleness.is_some_and(|limit| seen.elapsed() >= limit);
        if self.per_split.is_empty() {
            return (self.whole.watermark(), idle(&self.whole_seen));
        }
        let active = self
            .per_split
            .values()
            .filter(|(_, seen)| !idle(seen))
            .map(|(g, _)| g.watermark())
            .min();
        match active {
            Some(w) => (w, false),
            None => (
                self.per_split
                    .values()
                    .map(|(g, _)| g.watermark())
                    .min()
                    .unwrap_or(Time::MIN),
                true,
            ),
        }
    }
}
