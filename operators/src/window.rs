//! Event-time windows on keyed streams: tumbling and sliding, with offsets, allowed lateness and
//! late data to a side output.
//!
//! A window `[start, end)` of a key fires when the watermark passes its last timestamp `end - 1`,
//! that is when the operator's input frontier (watermark + 1) reaches `end`; its result carries the
//! timestamp `end - 1`. A record is late for a window that has already fired. Within the allowed
//! lateness the window is kept after firing, and each late record fires it again with the updated
//! result; after it, late records go to the side output given with
//! [`side_output_late_data`](WindowedStream::side_output_late_data), or are dropped and counted in the
//! job report.
//!
//! Input is folded into the window state in time order as the frontier passes (see
//! [`TimeBuffer`]), so the state always reflects exactly the input below the frontier; the state is
//! registered with the worker under the operator's name.
//!
//! Aggregations (`reduce`, `aggregate`, `aggregate_with`) over event-time tumbling and sliding
//! windows with the default trigger **combine before the exchange**, as rolling aggregates do: on
//! the worker that read them, the records of each watermark step are folded into one partial
//! accumulator per key and window, and only those cross to the key's worker, which merges them.
//! Late records within the allowed lateness are not combined (each fires its window again), and
//! records too late for all their windows reach the side output as they came. The combiner holds
//! nothing past its input frontier, so checkpoints need nothing from it. `process`, session
//! windows, count triggers and processing-time windows send every record.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use tidal_engine::{
    DataStream, FastMap, RegisteredState, Result, Time, TimeBuffer, key_hash, timely,
    write_snapshot,
};
use timely::communication::Pull;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::Message;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::channels::pact::LogPuller;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::generic::{InputHandleCore, OutputBuilder, OutputBuilderSession};
use timely::dataflow::operators::vec::Map;
use timely::progress::frontier::MutableAntichain;
use timely::scheduling::Activator;

use crate::keyed::{COMBINE_LIMIT, Key, KeyedStream, Value};

/// A window: the timestamps `start <= t < end`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Window {
    /// First timestamp in the window.
    pub start: Time,
    /// First timestamp after the window.
    pub end: Time,
}

impl Window {
    /// The last timestamp in the window, which is also the timestamp of its results.
    ///
    /// ```
    /// let w = tidal_operators::Window { start: 0, end: 10 };
    /// assert_eq!(w.max_timestamp(), 9);
    /// ```
    pub fn max_timestamp(&self) -> Time {
        self.end - 1
    }
}

/// Which windows a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Windows {
    /// Per key, records closer than `gap` ms to each other form one window (a session): each record
    /// opens `[ts, ts + gap)`, and windows of a key that overlap or touch merge.
    Session {
        /// Inactivity gap in ms.
        gap: Time,
    },
    /// Consecutive windows of `size` ms, aligned to `offset`.
    Tumbling {
        /// Window length in ms.
        size: Time,
        /// Shift of the window boundaries from the epoch, in ms.
        offset: Time,
    },
    /// Windows of `size` ms starting every `slide` ms, aligned to `offset`.
    Sliding {
        /// Window length in ms.
        size: Time,
        /// Distance between window starts in ms.
        slide: Time,
        /// Shift of the window boundaries from the epoch, in ms.
        offset: Time,
    },
}

fn millis(d: Duration) -> Time {
    d.as_millis() as Time
}

impl Windows {
    /// Tumbling windows of `size`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidal_operators::{Window, Windows};
    /// let w = Windows::tumbling(Duration::from_secs(10));
    /// assert_eq!(w.windows_of(12_345), vec![Window { start: 10_000, end: 20_000 }]);
    /// ```
    pub fn tumbling(size: Duration) -> Self {
        Windows::Tumbling {
            size: millis(size).max(1),
            offset: 0,
        }
    }
    /// Sliding windows of `size`, a new one every `slide`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidal_operators::{Window, Windows};
    /// let w = Windows::sliding(Duration::from_secs(10), Duration::from_secs(5));
    /// assert_eq!(w.windows_of(12_000), vec![Window { start: 10_000, end: 20_000 }, Window { start: 5_000, end: 15_000 }]);
    /// ```
    pub fn sliding(size: Duration, slide: Duration) -> Self {
        Windows::Sliding {
            size: millis(size).max(1),
            slide: millis(slide).max(1),
            offset: 0,
        }
    }
    /// Session windows with an inactivity `gap`.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use std::time::Duration;
    /// use tidal_engine::WatermarkStrategy;
    /// let mut out: Vec<(i64, i64, usize)> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter_with(vec![('u', 1i64), ('u', 4), ('u', 30), ('u', 8)], WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(50)).with_timestamps(|r: &(char, i64)| r.1))
    ///         .keyed()
    ///         .window(Windows::session(Duration::from_millis(10)))
    ///         .process(|_, w: &Window, clicks: &[i64]| (w.start, w.end, clicks.len()))
    ///         .collect()
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![(1, 18, 3), (30, 40, 1)]);
    /// ```
    pub fn session(gap: Duration) -> Self {
        Windows::Session {
            gap: millis(gap).max(1),
        }
    }
    /// Shifts the window boundaries by `offset` (e.g. to align daily windows to a time zone).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidal_operators::{Window, Windows};
    /// let w = Windows::tumbling(Duration::from_secs(10)).with_offset(Duration::from_secs(3));
    /// assert_eq!(w.windows_of(12_345), vec![Window { start: 3_000, end: 13_000 }]);
    /// ```
    pub fn with_offset(self, offset: Duration) -> Self {
        let o = millis(offset);
        match self {
            Windows::Tumbling { size, .. } => Windows::Tumbling {
                size,
                offset: o.rem_euclid(size),
            },
            Windows::Session { gap } => Windows::Session { gap },
            Windows::Sliding { size, slide, .. } => Windows::Sliding {
                size,
                slide,
                offset: o.rem_euclid(slide),
            },
        }
    }
    /// The windows a record with timestamp `ts` belongs to.
    pub fn windows_of(&self, ts: Time) -> Vec<Window> {
        let mut out = Vec::new();
        self.assign(ts, &mut out);
        out
    }
    fn assign(&self, ts: Time, out: &mut Vec<Window>) {
        match *self {
            Windows::Session { gap } => out.push(Window {
                start: ts,
                end: ts + gap,
            }),
            Windows::Tumbling { size, offset } => {
                let start = ts - (ts - offset).rem_euclid(size);
                out.push(Window {
                    start,
                    end: start + size,
                });
            }
            Windows::Sliding {
                size,
                slide,
                offset,
            } => {
                let mut start = ts - (ts - offset).rem_euclid(slide);
                while start > ts - size {
                    out.push(Window {
                        start,
                        end: start + size,
                    });
                    start -= slide;
                }
            }
        }
    }
}

/// A place for a side output, filled when the operator that writes to it is built (Flink's
/// `OutputTag`).
///
/// ```
/// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
/// use std::time::Duration;
/// use tidal_engine::WatermarkStrategy;
/// use tidal_operators::{OutputTag, Windows};
/// // A tick of zero advances the watermark after every record, so lateness is deterministic.
/// let (sums, late): (Vec<(u8, (u8, i64))>, Vec<(u8, (u8, i64))>) = tidal_engine::Job::local(1)
///     .with_tick(Duration::ZERO)
///     .run(|env| {
///         let tag = OutputTag::new();
///         // Timestamps 5, 20, then 3: the window [0, 10) has fired when 3 arrives.
///         let events = env.from_iter_with(vec![(0u8, 5i64), (0, 20), (0, 3)],
///             WatermarkStrategy::monotonous().with_timestamps(|e: &(u8, i64)| e.1));
///         let sums = events.map(|e| (e.0, e)).keyed()
///             .window(Windows::tumbling(Duration::from_millis(10)))
///             .side_output_late_data(&tag)
///             .reduce(|a, b| a.1 += b.1);
///         (sums.collect(), tag.stream().collect())
///     })
///     .unwrap();
/// assert_eq!(sums, vec![(0, (0, 5)), (0, (0, 20))]);
/// assert_eq!(late, vec![(0, (0, 3))]);
/// ```
pub struct OutputTag<'s, T> {
    slot: Rc<RefCell<Option<DataStream<'s, T>>>>,
}

impl<'s, T> Clone for OutputTag<'s, T> {
    fn clone(&self) -> Self {
        OutputTag {
            slot: Rc::clone(&self.slot),
        }
    }
}

impl<'s, T: 'static> Default for OutputTag<'s, T> {
    fn default() -> Self {
        OutputTag {
            slot: Rc::new(RefCell::new(None)),
        }
    }
}

impl<'s, T: 'static> OutputTag<'s, T> {
    /// An empty tag.
    pub fn new() -> Self {
        Self::default()
    }
    /// The side output, once the operator writing to it has been built.
    ///
    /// Fails the job with a clear error if no operator writes to this tag.
    pub fn stream(&self) -> DataStream<'s, T> {
        self.slot.borrow_mut().take().unwrap_or_else(|| {
            tidal_engine::fail(tidal_engine::Error::config(
                "OutputTag::stream: no operator writes to this tag (build the window before taking its side output), \
                 or the stream was taken already",
            ))
        })
    }
    pub(crate) fn fill(&self, stream: DataStream<'s, T>) {
        *self.slot.borrow_mut() = Some(stream);
    }
}

/// A keyed stream cut into windows; finish it with a window function.
pub struct WindowedStream<'s, K, V> {
    stream: KeyedStream<'s, K, V>,
    windows: Windows,
    lateness: Time,
    late: Option<OutputTag<'s, (K, V)>>,
    trigger: Trigger,
    processing_time: bool,
}

/// When a window emits its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// When time passes the window's end (the default): the watermark for event-time windows, the
    /// job's clock for processing-time windows.
    Time,
    /// Every time a key's window has received another `n` records (Flink's `CountTrigger`); the
    /// window then emits nothing when it ends, and is forgotten.
    Count(u64),
}

impl<'s, K: Key, V: Value> KeyedStream<'s, K, V> {
    /// Cuts the keyed stream into event-time windows.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use std::time::Duration;
    /// use tidal_engine::WatermarkStrategy;
    /// use tidal_operators::Windows;
    /// // (sensor, reading, timestamp ms): the sum per sensor per 10 ms window.
    /// let mut out: Vec<(u8, (u32, i64))> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter_with(vec![(1u8, 5u32, 1i64), (1, 7, 8), (1, 1, 12), (2, 4, 3)],
    ///         WatermarkStrategy::monotonous().with_timestamps(|r: &(u8, u32, i64)| r.2))
    ///         .map(|(sensor, reading, ts)| (sensor, (reading, ts)))
    ///         .keyed()
    ///         .window(Windows::tumbling(Duration::from_millis(10)))
    ///         .reduce(|acc, r| acc.0 += r.0)
    ///         .collect()
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![(1, (1, 12)), (1, (12, 1)), (2, (4, 3))]);
    /// ```
    pub fn window(self, windows: Windows) -> WindowedStream<'s, K, V> {
        WindowedStream {
            stream: self,
            windows,
            lateness: 0,
            late: None,
            trigger: Trigger::Time,
            processing_time: false,
        }
    }
}

impl<'s, K: Key, V: Value> WindowedStream<'s, K, V> {
    /// Replaces the default trigger (see [`Trigger`]).
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use std::time::Duration;
    /// use tidal_engine::WatermarkStrategy;
    /// use tidal_operators::window::Trigger;
    /// // A running count every 2 records within each 100 ms window.
    /// let out: Vec<(u8, u64)> = tidal_engine::Job::local(1).run(|env| {
    ///     env.from_iter_with(vec![(0u8, 1i64), (0, 2), (0, 3), (0, 4), (0, 5)], WatermarkStrategy::monotonous().with_timestamps(|r: &(u8, i64)| r.1))
    ///         .keyed()
    ///         .window(Windows::tumbling(Duration::from_millis(100)))
    ///         .trigger(Trigger::Count(2))
    ///         .aggregate(|_| 1u64, |n, _| *n += 1, |n, m| *n += m)
    ///         .collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![(0, 2), (0, 4)]);
    /// ```
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.trigger = trigger;
        self
    }
    /// Assigns records to windows by the job's processing-time clock when they are handled, and
    /// fires windows when the clock passes their end (Flink's processing-time windows); at the end
    /// of the input every open window fires.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use std::time::Duration;
    /// let total: Vec<u64> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter(0..1000u32)
    ///         .key_by(|_| ())
    ///         .window(Windows::tumbling(Duration::from_secs(3600)))
    ///         .in_processing_time()
    ///         .aggregate(|_| 1u64, |n, _| *n += 1, |n, m| *n += m)
    ///         .map(|(_, n)| n)
    ///         .collect()
    /// }).unwrap();
    /// // Every record lands in the window of the hour it was handled in (one, or two at an hour's turn).
    /// assert_eq!(total.iter().sum::<u64>(), 1000);
    /// ```
    pub fn in_processing_time(mut self) -> Self {
        self.processing_time = true;
        self
    }
    /// Keeps each window for `lateness` after it fired; late records within it fire it again.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = millis(lateness);
        self
    }
    /// Sends records that arrive too late for all their windows to `tag` instead of dropping them.
    pub fn side_output_late_data(mut self, tag: &OutputTag<'s, (K, V)>) -> Self {
        self.late = Some(tag.clone());
        self
    }
    /// Reduces each window's values with `f` (incrementally); emits `(key, result)` per window.
    pub fn reduce(self, f: impl Fn(&mut V, V) + Clone + 'static) -> DataStream<'s, (K, V)> {
        let g = f.clone();
        self.aggregate_with(
            |v| v,
            f,
            g,
            |k: &K, _: &Window, v: &V| (k.clone(), v.clone()),
        )
    }
    /// Aggregates each window with an accumulator (`create`, `add`, `merge`); emits `(key, acc)`.
    pub fn aggregate<A: Value>(
        self,
        create: impl Fn(V) -> A + Clone + 'static,
        add: impl Fn(&mut A, V) + Clone + 'static,
        merge: impl Fn(&mut A, A) + Clone + 'static,
    ) -> DataStream<'s, (K, A)> {
        self.aggregate_with(create, add, merge, |k: &K, _: &Window, a: &A| {
            (k.clone(), a.clone())
        })
    }
    /// Hands all of a window's values, with its key and bounds, to `f` when it fires.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use std::time::Duration;
    /// use tidal_engine::WatermarkStrategy;
    /// use tidal_operators::{Window, Windows};
    /// let out: Vec<String> = tidal_engine::Job::local(1).run(|env| {
    ///     env.from_iter_with(vec![('a', 1i64), ('a', 4), ('a', 11)], WatermarkStrategy::monotonous().with_timestamps(|r: &(char, i64)| r.1))
    ///         .keyed()
    ///         .window(Windows::tumbling(Duration::from_millis(10)))
    ///         .process(|key: &char, w: &Window, values: &[i64]| format!("{key} [{}, {}): {values:?}", w.start, w.end))
    ///         .collect()
    /// }).unwrap();
    /// assert_eq!(out, vec!["a [0, 10): [1, 4]", "a [10, 20): [11]"]);
    /// ```
    pub fn process<O: 'static>(
        self,
        f: impl Fn(&K, &Window, &[V]) -> O + 'static,
    ) -> DataStream<'s, O> {
        // No combiner: a window's accumulator holds all its values, so combining them before
        // the exchange would only copy them once more.
        self.build(
            |v| vec![v],
            |acc: &mut Vec<V>, v| acc.push(v),
            |acc: &mut Vec<V>, mut more| acc.append(&mut more),
            move |k, w, values: &Vec<V>| f(k, w, values),
            false,
        )
    }
    /// Incremental aggregation and a final function with the window's key and bounds: `finish`
    /// turns the accumulator into the result each time the window fires.
    ///
    /// With event-time tumbling or sliding windows and the time trigger, records are folded into
    /// partial accumulators per key and window on the worker that reads them, once per watermark
    /// step, and only the partials cross to the key's worker, where `merge` folds them in: the
    /// local-global aggregation that keeps a window over few keys (or over the whole stream,
    /// [`window_all`](WindowAll::window_all)) from sending every record to one worker. `merge`
    /// must therefore agree with `add`: merging the accumulators of two parts of a window's
    /// records gives the accumulator of all of them. Records too late for all their windows are
    /// not combined; they reach the late-data side output as they came.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use std::time::Duration;
    /// use tidal_engine::WatermarkStrategy;
    /// use tidal_operators::{Window, Windows};
    /// // The mean reading per 10 ms window, as "end: mean", over all sensors.
    /// let mut out: Vec<String> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter_with(vec![(2.0f64, 1i64), (4.0, 3), (9.0, 12)],
    ///         WatermarkStrategy::monotonous().with_timestamps(|r: &(f64, i64)| r.1))
    ///         .map(|(reading, _)| reading)
    ///         .window_all(Windows::tumbling(Duration::from_millis(10)))
    ///         .aggregate_with(
    ///             |r| (r, 1u32),
    ///             |acc, r| { acc.0 += r; acc.1 += 1 },
    ///             |acc, other| { acc.0 += other.0; acc.1 += other.1 },
    ///             |_: &(), w: &Window, (sum, n): &(f64, u32)| format!("{}: {}", w.end, sum / *n as f64),
    ///         )
    ///         .collect()
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, vec!["10: 3".to_string(), "20: 9".to_string()]);
    /// ```
    pub fn aggregate_with<A: Value, O: 'static>(
        self,
        create: impl Fn(V) -> A + Clone + 'static,
        add: impl Fn(&mut A, V) + Clone + 'static,
        merge: impl Fn(&mut A, A) + Clone + 'static,
        finish: impl Fn(&K, &Window, &A) -> O + 'static,
    ) -> DataStream<'s, O> {
        self.build(create, add, merge, finish, true)
    }

    /// The window operator, with a combiner before the exchange when `combine` is set and the
    /// windows allow one (see [`aggregate_with`](Self::aggregate_with)).
    fn build<A: Value, O: 'static>(
        self,
        create: impl Fn(V) -> A + Clone + 'static,
        add: impl Fn(&mut A, V) + Clone + 'static,
        merge: impl Fn(&mut A, A) + Clone + 'static,
        finish: impl Fn(&K, &Window, &A) -> O + 'static,
        combine: bool,
    ) -> DataStream<'s, O> {
        let WindowedStream {
            stream,
            windows,
            lateness,
            late,
            trigger,
            processing_time,
        } = self;
        let stream = stream.into_stream();
        let ctx = Rc::clone(stream.context());
        let mut late_stream = None;
        let out = stream.then("window", |input, name| {
            let (main, late_out) = if let Windows::Session { gap } = windows {
                crate::session::session_operator(
                    input,
                    name,
                    &ctx,
                    gap,
                    lateness,
                    late.is_some(),
                    create,
                    add,
                    merge,
                    finish,
                )
            } else if combine && trigger == Trigger::Time && !processing_time {
                // Combined before the exchange: the window operator receives partial
                // accumulators, each for one window, and the records too late to combine.
                let combined =
                    combine_windows(input, name, windows, lateness, create.clone(), add.clone());
                let (main, late_out) = window_operator(
                    combined,
                    name,
                    &ctx,
                    move |part: &Part<V, A>, ts, out: &mut Vec<Window>| match part {
                        Part::Partial(w, _) | Part::Single(w, _) => out.push(*w),
                        Part::Record(_) => windows.assign(ts, out),
                    },
                    (trigger, processing_time),
                    lateness,
                    late.is_some(),
                    move |part| match part {
                        Part::Record(v) | Part::Single(_, v) => create(v),
                        Part::Partial(_, a) => a,
                    },
                    move |acc: &mut A, part| match part {
                        Part::Record(v) | Part::Single(_, v) => add(acc, v),
                        Part::Partial(_, a) => merge(acc, a),
                    },
                    finish,
                );
                let late_out = late_out.flat_map(|((k, part), ts)| match part {
                    Part::Record(v) => Some(((k, v), ts)),
                    // Never late: made only for windows the record is in time for.
                    Part::Single(..) | Part::Partial(..) => None,
                });
                (main, late_out)
            } else {
                window_operator(
                    input,
                    name,
                    &ctx,
                    move |_: &V, ts, out: &mut Vec<Window>| windows.assign(ts, out),
                    (trigger, processing_time),
                    lateness,
                    late.is_some(),
                    create,
                    add,
                    finish,
                )
            };
            late_stream = Some(late_out);
            main
        });
        if let (Some(tag), Some(late_out)) = (late, late_stream) {
            let name = format!("{}/late", out.operator_name());
            tag.fill(out.derive(late_out, name));
        }
        out
    }
}

/// Open windows of one operator on one worker: per window end, the accumulators per key.
struct WindowState<K, A> {
    name: String,
    open: BTreeMap<Time, OpenWindow<K, A>>,
    /// With a count trigger: records per (window end, key) so far.
    counts: FastMap<(Time, K), u64>,
}

struct OpenWindow<K, A> {
    start: Time,
    /// Capability to emit this window's results, until it first fires.
    cap: Option<Capability<Time>>,
    keys: FastMap<K, A>,
}

impl<K, A> RegisteredState for WindowState<K, A>
where
    K: Key,
    A: Value,
{
    fn name(&self) -> &str {
        &self.name
    }
    fn keys(&self) -> usize {
        self.open.values().map(|w| w.keys.len()).sum()
    }
    fn restore(&mut self, sections: &[&[u8]], index: usize, peers: usize) -> Result<usize> {
        let entries: Vec<(K, (Window, A, u64))> =
            tidal_engine::state::read_owned(&self.name, sections, index, peers)?;
        let kept = entries.len();
        for (k, (w, a, count)) in entries {
            if count > 0 {
                self.counts.insert((w.end, k.clone()), count);
            }
            self.open
                .entry(w.end)
                .or_insert_with(|| OpenWindow {
                    start: w.start,
                    cap: None,
                    keys: FastMap::default(),
                })
                .keys
                .insert(k, a);
        }
        Ok(kept)
    }
    fn snapshot_into(&self, _cut: Time, out: &mut Vec<u8>) -> Result<()> {
        // Entries are (key, (window, accumulator, count)), routed by key on restore; the count is
        // the records so far with a count trigger (0 without).
        let entries: Vec<(&K, (Window, &A, u64))> = self
            .open
            .iter()
            .flat_map(|(&end, w)| {
                w.keys.iter().map(move |(k, a)| {
                    let count = self.counts.get(&(end, k.clone())).copied().unwrap_or(0);
                    (
                        k,
                        (
                            Window {
                                start: w.start,
                                end,
                            },
                            a,
                            count,
                        ),
                    )
                })
            })
            .collect();
        let len = entries.len();
        write_snapshot(&self.name, len, entries.iter().map(|(k, v)| (*k, v)), out)
    }
}

/// Input of one time: records with their timestamps, as the containers they came in (kept, not
/// copied into one growing buffer), and a capability for the late output.
pub(crate) struct Arrivals<K, V> {
    pub(crate) records: Vec<Vec<((K, V), Time)>>,
    pub(crate) late_cap: Option<Capability<Time>>,
}

impl<K, V> Default for Arrivals<K, V> {
    fn default() -> Self {
        Arrivals {
            records: Vec::new(),
            late_cap: None,
        }
    }
}

/// The input of a window operator: records exchanged by key.
pub(crate) type KeyedInput<K, V> = InputHandleCore<
    Time,
    Vec<((K, V), Time)>,
    LogPuller<Box<dyn Pull<Message<Time, Vec<((K, V), Time)>>>>>,
>;
/// A window operator's main output.
pub(crate) type MainOutput<O> = OutputBuilder<Time, CapacityContainerBuilder<Vec<(O, Time)>>>;
/// A window operator's output for late records.
pub(crate) type LateOutput<K, V> =
    OutputBuilder<Time, CapacityContainerBuilder<Vec<((K, V), Time)>>>;

/// Builds an operator of the shape every window operator has: input exchanged by key, a main
/// output and a late-record output. `logic` gets the input, the outputs and an activator for the
/// operator, and returns what runs on each activation.
pub(crate) fn keyed_window_operator<'s, K: Key, V: Value, O: 'static, L>(
    input: timely::dataflow::StreamVec<'s, Time, ((K, V), Time)>,
    name: &str,
    keep_initial: Option<InitialCaps>,
    logic: impl FnOnce(KeyedInput<K, V>, MainOutput<O>, LateOutput<K, V>, Activator) -> L,
) -> Streams<'s, O, K, V>
where
    L: FnMut(&[MutableAntichain<Time>]) + 'static,
{
    let scope = input.scope();
    let mut builder = OperatorBuilder::new(name.to_string(), scope);
    let activator = scope.activator_for(builder.operator_info().address);
    let input = builder.new_input(
        input,
        Exchange::new(|((k, _), _): &((K, V), Time)| key_hash(k)),
    );
    let (main_out, main_stream) = builder.new_output::<Vec<(O, Time)>>();
    let (late_out, late_stream) = builder.new_output::<Vec<((K, V), Time)>>();
    let logic = logic(
        input,
        OutputBuilder::from(main_out),
        OutputBuilder::from(late_out),
        activator,
    );
    builder.build(move |caps| {
        // Kept only by an operator that restores state and must emit it later.
        if let Some(slot) = keep_initial {
            *slot.borrow_mut() = caps;
        }
        logic
    });
    (main_stream, late_stream)
}

/// The capabilities an operator is built with (one per output), for an operator that restores
/// state from a checkpoint: it derives the capabilities of restored windows from them.
pub(crate) type InitialCaps = Rc<RefCell<Vec<Capability<Time>>>>;

/// Buffers received records per time; with a late output, also keeps a capability on it.
pub(crate) fn receive<K, V>(
    input: &mut KeyedInput<K, V>,
    pending: &mut TimeBuffer<Arrivals<K, V>>,
    keep_late: bool,
) {
    input.for_each(|message, data| {
        let Some((_, arrivals)) = pending.at(&message, 0) else {
            return;
        };
        if keep_late && arrivals.late_cap.is_none() {
            arrivals.late_cap = message.retain_least(1);
        }
        if !data.is_empty() {
            arrivals.records.push(std::mem::take(data));
        }
    });
}

pub(crate) type Streams<'s, O, K, V> = (
    timely::dataflow::StreamVec<'s, Time, (O, Time)>,
    timely::dataflow::StreamVec<'s, Time, ((K, V), Time)>,
);

/// What reaches a window operator that has a combiner before it.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
enum Part<V, A> {
    /// A record too late for all its windows, as it came (for the late-data output).
    Record(V),
    /// A record for one window that has fired, within the allowed lateness: not combined, so
    /// that it fires the window again by itself.
    Single(Window, V),
    /// The accumulator of some records of one window that has not fired, from one worker and one
    /// watermark step.
    Partial(Window, A),
}

/// The combiner before a window operator's exchange: folds the records of each watermark step
/// into partial accumulators per key and window, and sends them on when the frontier passes the
/// step (or early, once it holds [`COMBINE_LIMIT`] of them, as rolling aggregates do), each with its window's last
/// timestamp. It keeps nothing past its frontier, so it has no state to checkpoint.
///
/// The window operator folds step `t` after firing every window ending at or before `t`, so the
/// combiner can tell at step `t` what the window operator will do with each record: a window
/// with `end > t` has not fired (the record joins a partial); one with `end <= t < end +
/// lateness` has fired and fires again for each late record (the record goes alone); and one
/// with `end + lateness <= t` is gone (a record with no other window goes on as it came, to the
/// late-data output).
fn combine_windows<'s, K: Key, V: Value, A: Value>(
    input: timely::dataflow::StreamVec<'s, Time, ((K, V), Time)>,
    name: &str,
    windows: Windows,
    lateness: Time,
    create: impl Fn(V) -> A + 'static,
    add: impl Fn(&mut A, V) + 'static,
) -> Combined<'s, K, V, A> {
    use std::collections::hash_map::Entry;
    type Out<K, V, A> = CapacityContainerBuilder<Vec<((K, Part<V, A>), Time)>>;
    input.unary_frontier::<Out<K, V, A>, _, _, _>(
        Pipeline,
        &format!("{name}/combine"),
        move |_, _| {
            let mut pending: TimeBuffer<FastMap<(K, Window), A>> = TimeBuffer::new();
            let mut assigned: Vec<Window> = Vec::new();
            move |(input, frontier), output| {
                let port = output.output_index();
                input.for_each(|message, data| {
                    let Some((cap, partials)) = pending.at(&message, port) else {
                        return;
                    };
                    let step = *cap.time();
                    let mut late = output.session(cap);
                    for ((k, v), ts) in data.drain(..) {
                        assigned.clear();
                        windows.assign(ts, &mut assigned);
                        assigned.retain(|w| w.end.saturating_add(lateness) > step);
                        if assigned.is_empty() {
                            late.give(((k, Part::Record(v)), ts));
                            continue;
                        }
                        // Windows that have fired take the record alone.
                        let (mut k, mut v) = (Some(k), Some(v));
                        let windows_of_record = assigned.len();
                        for (i, w) in assigned.iter().enumerate() {
                            let last = i + 1 == windows_of_record;
                            let (k, v) = (take_or_clone(&mut k, last), take_or_clone(&mut v, last));
                            if w.end <= step {
                                // Fired: the record goes alone, to fire it again.
                                late.give(((k, Part::Single(*w, v)), ts));
                                continue;
                            }
                            match partials.entry((k, *w)) {
                                Entry::Occupied(mut e) => add(e.get_mut(), v),
                                Entry::Vacant(e) => {
                                    e.insert(create(v));
                                }
                            }
                        }
                    }
                    drop(late);
                    if partials.len() >= COMBINE_LIMIT {
                        output
                            .session(cap)
                            .give_iterator(partials.drain().map(partial));
                    }
                });
                pending.for_each_ready(frontier, |cap, partials| {
                    output
                        .session(cap)
                        .give_iterator(partials.drain().map(partial));
                });
            }
        },
    )
}

/// What a combiner sends to its window operator.
type Combined<'s, K, V, A> = timely::dataflow::StreamVec<'s, Time, ((K, Part<V, A>), Time)>;

/// A combiner's partial as the window operator receives it, at its window's last timestamp.
fn partial<K, V, A>(((k, w), a): ((K, Window), A)) -> ((K, Part<V, A>), Time) {
    ((k, Part::Partial(w, a)), w.max_timestamp())
}

/// A copy of what `slot` holds, or, for its last use (`last`), the value itself: a record in
/// several windows is copied for each but the last.
fn take_or_clone<T: Clone>(slot: &mut Option<T>, last: bool) -> T {
    let value = if last { slot.take() } else { slot.clone() };
    value.expect("taken at its last use only")
}

#[allow(clippy::too_many_arguments)]
fn window_operator<'s, K: Key, V: Value, A: Value, O: 'static>(
    input: timely::dataflow::StreamVec<'s, Time, ((K, V), Time)>,
    name: &str,
    ctx: &Rc<tidal_engine::WorkerContext>,
    assign: impl Fn(&V, Time, &mut Vec<Window>) + 'static,
    (trigger, processing_time): (Trigger, bool),
    lateness: Time,
    keep_late: bool,
    create: impl Fn(V) -> A + 'static,
    add: impl Fn(&mut A, V) + 'static,
    finish: impl Fn(&K, &Window, &A) -> O + 'static,
) -> Streams<'s, O, K, V> {
    let state = Rc::new(RefCell::new(WindowState::<K, A> {
        name: name.to_string(),
        open: BTreeMap::new(),
        counts: FastMap::default(),
    }));
    ctx.register_state(state.clone());
    let ctx = Rc::clone(ctx);
    let name = name.to_string();

    let clock = ctx.clock();
    let emit_at_end = trigger == Trigger::Time;
    let count_every = match trigger {
        Trigger::Count(n) => n.max(1),
        Trigger::Time => 0,
    };
    let restored_cut = ctx.restored_cut();
    let initial: Option<InitialCaps> = restored_cut.map(|_| Rc::new(RefCell::new(Vec::new())));
    keyed_window_operator(
        input,
        &name.clone(),
        initial.clone(),
        move |mut input, mut main_out, mut late_out, activator| {
            let mut pending: TimeBuffer<Arrivals<K, V>> = TimeBuffer::new();
            // Windows with end <= `fired` have fired: the frontier reached their end.
            let mut fired: Time = Time::MIN;
            let mut assigned: Vec<Window> = Vec::new();
            let mut dropped: u64 = 0;
            let mut restoring = restored_cut.zip(initial);
            move |frontiers| {
                let frontier = &frontiers[0];
                let mut main = main_out.activate();
                let mut late = late_out.activate();
                receive(&mut input, &mut pending, keep_late);
                let mut state = state.borrow_mut();
                let WindowState { open, counts, .. } = &mut *state;
                // Restored: the snapshot was taken with every window ending at or before the cut
                // fired; the others get capabilities to fire with, from the initial one.
                if let Some((cut, initial)) = restoring.take() {
                    fired = cut;
                    let caps = std::mem::take(&mut *initial.borrow_mut());
                    if let Some(first) = caps.first() {
                        for (&end, window) in open.range_mut(cut.saturating_add(1)..) {
                            let w = Window {
                                start: window.start,
                                end,
                            };
                            let at = if processing_time {
                                cut
                            } else {
                                cut.max(w.max_timestamp())
                            };
                            window.cap = Some(first.delayed(&at));
                        }
                    }
                }
                // In time order: records sent at time t were sent when their source's watermark was
                // t - 1, so windows ending at or before t fire before they are folded (Flink's
                // in-band watermarks); then the records are folded, late ones set aside.
                let now = clock.now();
                for (cap, arrivals) in pending.ready(frontier) {
                    if !processing_time {
                        fire_up_to(
                            *cap.time(),
                            open,
                            &mut fired,
                            lateness,
                            &finish,
                            &mut main,
                            emit_at_end,
                        );
                    }
                    for ((k, v), ts) in arrivals.records.into_iter().flatten() {
                        assigned.clear();
                        assign(&v, if processing_time { now } else { ts }, &mut assigned);
                        // Drop the windows the record is too late for.
                        assigned
                            .retain(|w| processing_time || w.end.saturating_add(lateness) > fired);
                        if assigned.is_empty() {
                            match (&arrivals.late_cap, keep_late) {
                                (Some(late_cap), true) => late.session(late_cap).give(((k, v), ts)),
                                _ => dropped += 1,
                            }
                            continue;
                        }
                        let mut v = Some(v);
                        let windows_of_record = assigned.len();
                        for (i, w) in assigned.iter().enumerate() {
                            let value = take_or_clone(&mut v, i + 1 == windows_of_record);
                            let window = open.entry(w.end).or_insert_with(|| OpenWindow {
                                start: w.start,
                                cap: None,
                                keys: FastMap::default(),
                            });
                            // The window emits at its last timestamp (or, for a record that
                            // arrives later within the lateness, at the record's time): hold a
                            // capability for that, made anew only when it must be earlier than the
                            // one held (each new capability is progress-tracking work).
                            let at = if processing_time {
                                *cap.time()
                            } else {
                                (*cap.time()).max(w.max_timestamp())
                            };
                            if w.end > fired && window.cap.as_ref().is_none_or(|c| *c.time() > at) {
                                window.cap = Some(cap.delayed(&at));
                            }
                            match window.keys.get_mut(&k) {
                                Some(acc) => add(acc, value),
                                None => {
                                    window.keys.insert(k.clone(), create(value));
                                }
                            }
                            if count_every > 0 {
                                let n = counts.entry((w.end, k.clone())).or_insert(0);
                                *n += 1;
                                if (*n).is_multiple_of(count_every) {
                                    // Fire now, with the records so far.
                                    let acc = window.keys.get(&k).expect("just added");
                                    main.session(&cap)
                                        .give((finish(&k, w, acc), w.max_timestamp()));
                                }
                                continue;
                            }
                            if w.end <= fired {
                                // A late record within the allowed lateness fires its window
                                // again, with the record in it.
                                let acc = window.keys.get(&k).expect("just added");
                                main.session(&cap)
                                    .give((finish(&k, w, acc), w.max_timestamp()));
                            }
                        }
                    }
                }
                // Fire the windows the frontier (or, for processing-time windows, the clock) has reached.
                let mut reached = frontier.frontier().first().copied().unwrap_or(Time::MAX);
                if processing_time && !frontier.is_empty() {
                    reached = now.saturating_add(1);
                }
                let before = open.len();
                fire_up_to(
                    reached,
                    open,
                    &mut fired,
                    lateness,
                    &finish,
                    &mut main,
                    emit_at_end,
                );
                if count_every > 0 && open.len() != before {
                    counts.retain(|(end, _), _| open.contains_key(end));
                }
                if processing_time && let Some((&end, _)) = open.first_key_value() {
                    let wait = (end - now).clamp(1, 1000) as u64;
                    activator.activate_after(std::time::Duration::from_millis(wait));
                }
                if dropped > 0 {
                    ctx.report_late_dropped(&name, dropped);
                    dropped = 0;
                }
            }
        },
    )
}

/// Fires the windows with end <= `limit` that have not fired yet, then forgets the windows past
/// their allowed lateness.
fn fire_up_to<K, A, O>(
    limit: Time,
    open: &mut BTreeMap<Time, OpenWindow<K, A>>,
    fired: &mut Time,
    lateness: Time,
    finish: &impl Fn(&K, &Window, &A) -> O,
    main: &mut OutputBuilderSession<'_, Time, CapacityContainerBuilder<Vec<(O, Time)>>>,
    emit: bool,
) where
    O: 'static,
{
    if limit <= *fired {
        return;
    }
    for (&end, w) in open.range_mut(..=limit) {
        if end <= *fired {
            continue;
        }
        if let Some(cap) = w.cap.take() {
            if !emit {
                continue;
            }
            let window = Window {
                start: w.start,
                end,
            };
            let mut session = main.session(&cap);
            for (k, acc) in w.keys.iter() {
                session.give((finish(k, &window, acc), window.max_timestamp()));
            }
        }
    }
    *fired = limit;
    while let Some((&end, _)) = open.first_key_value() {
        if end.saturating_add(lateness) > *fired {
            break;
        }
        open.remove(&end);
    }
}

/// Windows over a whole (non-keyed) stream.
pub trait WindowAll<'s, T> {
    /// Cuts the whole stream into event-time windows (Flink's `windowAll`): all records of a window
    /// meet on one worker.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use std::time::Duration;
    /// use tidal_engine::WatermarkStrategy;
    /// let out: Vec<((), i64)> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter_with(vec![1i64, 5, 12], WatermarkStrategy::monotonous().with_timestamps(|t| *t))
    ///         .window_all(Windows::tumbling(Duration::from_millis(10)))
    ///         .reduce(|a, b| *a = (*a).max(b))
    ///         .collect()
    /// }).unwrap();
    /// let mut maxima: Vec<i64> = out.into_iter().map(|(_, m)| m).collect();
    /// maxima.sort();
    /// assert_eq!(maxima, vec![5, 12]);
    /// ```
    fn window_all(self, windows: Windows) -> WindowedStream<'s, (), T>;
}

impl<'s, T: Value> WindowAll<'s, T> for DataStream<'s, T> {
    fn window_all(self, windows: Windows) -> WindowedStream<'s, (), T> {
        use crate::transform::Transform;
        self.key_by(|_| ()).window(windows)
    }
}
