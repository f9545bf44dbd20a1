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
//! [`TimeBuffer`](tidal_engine::state::TimeBuffer)), so the state always reflects exactly the input below the frontier; the state is
//! registered with the worker under the operator's name.
//!
//! Aggregations (`reduce`, `aggregate`, `aggregate_with`) over event-time tumbling and sliding
//! windows with the default trigger **combine before the exchange**, as rolling aggregates do: on
//! the worker that read them, the records of each watermark step are folded into one partial
//! accumulator per key and window, and only those cross to the key's worker, which merges them.
//! Late records within the allowed lateness are not combined (each fires its window again), and
//! records too late for all their windows reach the side output as they came. The combiner holds
//! nothing past its input frontier, so checkpoints need nothing from it. `process`, session
//! windows, count triggers and processing-time windows send every record. So does a job of one
//! worker: nothing crosses to another worker there, so folding twice (once per step, once into
//! the window) would only add a hash lookup per record; the window operator folds each record
//! itself, into the same state, so a savepoint restores on any worker count either way.
//!
//! Custom triggers ([`WindowTrigger`], with the built-ins implemented on it), evictors
//! ([`Evictor`]) and global windows ([`Windows::Global`]) run as a keyed process function that
//! keeps each key's windows with their contents and trigger state (see [`trigger`]); the two
//! built-in triggers of the [`Trigger`] enum on time windows keep the operator above, which
//! fires all keys of a window at once.

mod all;
mod assign;
mod combine;
mod custom;
mod function;
mod operator;
mod session;
mod state;
mod tag;
pub mod trigger;
mod triggered;

pub use all::WindowAll;
pub use assign::{Window, Windows};
pub use function::ProcessWindowFunction;
pub use tag::OutputTag;
pub use trigger::{
    ContinuousEventTimeTrigger, CountTrigger, EventTimeTrigger, Evictor, NeverTrigger,
    ProcessingTimeTrigger, PurgingTrigger, TimeTrigger, TriggerContext, TriggerResult,
    WindowTrigger,
};
pub use triggered::TriggeredWindows;

use std::rc::Rc;
use std::time::Duration;

use tidal_engine::{DataStream, Time, timely};
use timely::dataflow::operators::vec::Map;

use crate::keyed::{Key, KeyedStream, Value};
use assign::millis;
use combine::{Part, combine_windows};
use operator::window_operator;

/// A keyed stream cut into windows; finish it with a window function.
pub struct WindowedStream<'s, K, V> {
    stream: KeyedStream<'s, K, V>,
    windows: Windows,
    lateness: Time,
    late: Option<OutputTag<'s, (K, V)>>,
    trigger: Trigger,
    processing_time: bool,
    /// Whether [`aggregate_with`](WindowedStream::aggregate_with) may fold records before the
    /// exchange (see [`without_combiner`](WindowedStream::without_combiner)).
    combine: bool,
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
            combine: true,
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
    /// Decides when windows fire with a custom trigger (see [`trigger`]).
    pub fn with_trigger<T: WindowTrigger<V>>(self, trigger: T) -> TriggeredWindows<'s, K, V, T> {
        TriggeredWindows {
            stream: self.stream,
            windows: self.windows,
            lateness: self.lateness,
            late: self.late,
            processing_time: self.processing_time,
            trigger,
            evictor: None,
        }
    }
    /// Removes records from each window before (or after) its function runs; the windows fire
    /// when time passes their end (see [`Evictor`]).
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use std::time::Duration;
    /// use tidal_engine::WatermarkStrategy;
    /// use tidal_operators::window::Evictor;
    /// // The sum of the last two readings of each 10 ms window.
    /// let out: Vec<(char, u32)> = tidal_engine::Job::local(1).run(|env| {
    ///     env.from_iter_with(vec![('a', 1u32, 1i64), ('a', 2, 2), ('a', 3, 3)],
    ///             WatermarkStrategy::monotonous().with_timestamps(|r: &(char, u32, i64)| r.2))
    ///         .map(|(k, v, _)| (k, v))
    ///         .keyed()
    ///         .window(Windows::tumbling(Duration::from_millis(10)))
    ///         .evictor(Evictor::count(2))
    ///         .reduce(|a, b| *a += b)
    ///         .collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![('a', 5)]);
    /// ```
    pub fn evictor(self, evictor: Evictor<V>) -> TriggeredWindows<'s, K, V, TimeTrigger> {
        let processing_time = self.processing_time;
        self.with_trigger(TimeTrigger::new(processing_time))
            .evictor(evictor)
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
    /// Sends every record to its key's worker as it comes, with no combiner before the exchange:
    /// for [`aggregate_with`](Self::aggregate_with) functions whose accumulator grows with the
    /// distinct records it holds (a window join's groups, say) rather than summing them, where
    /// folding before the exchange would only copy them once more. The results are the same.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use std::time::Duration;
    /// use tidal_engine::WatermarkStrategy;
    /// // The distinct readings per sensor and 10 ms window.
    /// let mut out: Vec<(u8, Vec<u32>)> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter_with(vec![(1u8, 5u32, 1i64), (1, 7, 8), (1, 5, 9), (2, 4, 3)],
    ///         WatermarkStrategy::monotonous().with_timestamps(|r: &(u8, u32, i64)| r.2))
    ///         .map(|(sensor, reading, _)| (sensor, reading))
    ///         .keyed()
    ///         .window(Windows::tumbling(Duration::from_millis(10)))
    ///         .without_combiner()
    ///         .aggregate_with(
    ///             |r| vec![r],
    ///             |seen: &mut Vec<u32>, r| if !seen.contains(&r) { seen.push(r) },
    ///             |seen, more| for r in more { if !seen.contains(&r) { seen.push(r) } },
    ///             |sensor: &u8, _: &Window, seen: &Vec<u32>| (*sensor, seen.clone()),
    ///         )
    ///         .collect()
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![(1, vec![5, 7]), (2, vec![4])]);
    /// ```
    pub fn without_combiner(mut self) -> Self {
        self.combine = false;
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
    /// [`process`](Self::process) with a window function that has a lifecycle: opened once per
    /// worker before its first window, closed after the operator's last result (see
    /// [`ProcessWindowFunction`], whose example uses it).
    pub fn process_with<F: ProcessWindowFunction<K, V>>(
        self,
        function: F,
    ) -> DataStream<'s, F::Out> {
        let ctx = Rc::clone(self.stream.stream.context());
        function::with_window_lifecycle(&ctx, function, |call| {
            self.process(move |k, w, values| call(k, w, values))
        })
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
        if self.windows == Windows::Global {
            // Global windows end only when a trigger says so: a count, or never.
            let count = match self.trigger {
                Trigger::Count(n) => Some(CountTrigger::of(n)),
                Trigger::Time => None,
            };
            return self
                .with_trigger(trigger::GlobalDefault(count))
                .aggregate_with(create, add, finish);
        }
        let WindowedStream {
            stream,
            windows,
            lateness,
            late,
            trigger,
            processing_time,
            combine: combining,
        } = self;
        let combine = combine && combining;
        let stream = stream.into_stream();
        let ctx = Rc::clone(stream.context());
        let mut late_stream = None;
        let out = stream.then("window", |input, name| {
            let (main, late_out) = if let Windows::Session { gap } = windows {
                session::session_operator(
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
            } else if combine && trigger == Trigger::Time && !processing_time && ctx.peers() > 1 {
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
