//! Keyed process functions: per-key state and timers (Flink's `KeyedProcessFunction`).
//!
//! A [`KeyedProcessFunction`] sees each record of a keyed stream with its key, its timestamp, the
//! current watermark and processing time, and a per-key state of its own type `State` (any
//! serde-serialisable `Default` type: a struct of `Option`s, `Vec`s and maps plays the part of
//! Flink's value, list and map states). It can emit records, emit to a side output, and register
//! event-time timers (fired when the watermark passes them, in timestamp order) and processing-time
//! timers (fired when the job's clock passes them).
//!
//! Processing-time timers that are not due when the input ends are dropped, so a bounded job ends.
//!
//! Records are handled in time order as the frontier passes (see [`TimeBuffer`](tidal_engine::state::TimeBuffer)); before the
//! records sent at time `t` (when their source's watermark was `t - 1`), every event-time timer
//! `<= t - 1` fires — Flink's order of watermarks and records. The per-key state, the pending
//! timers and the last write times (for the time to live) are registered with the worker under
//! the operator's name, so checkpoints capture them and a restore on any number of workers brings
//! back each key's state and timers.

pub mod named;
pub(crate) mod operator;
mod state;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tidal_engine::{DataStream, JobClock, Time, timely};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use crate::function::RuntimeContext;
use crate::keyed::Key;
use crate::window::OutputTag;
use state::Timers;

/// The keyed states of a process operator on one worker (for `apply_to_keyed_state`).
pub(crate) type TtlStateOf<K, S> = state::TtlState<K, S>;

/// Which clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeDomain {
    /// The watermark.
    EventTime,
    /// The job's processing-time clock.
    ProcessingTime,
}

/// A per-key function with state and timers; see the module documentation.
///
/// ```
/// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
/// use tidal_engine::{Time, WatermarkStrategy};
/// use tidal_operators::{KeyedProcessFunction, ProcessContext, TimeDomain};
///
/// /// Emits a key's count 10 ms (event time) after its first record.
/// struct CountThenReport;
/// impl KeyedProcessFunction<char, i64> for CountThenReport {
///     type State = u32;
///     type Out = (char, u32);
///     type Side = ();
///     fn process_element(&mut self, ts: i64, ctx: &mut ProcessContext<'_, char, u32, (char, u32), ()>) {
///         if *ctx.state() == 0 {
///             ctx.register_event_time_timer(ts + 10);
///         }
///         *ctx.state() += 1;
///     }
///     fn on_timer(&mut self, _at: Time, _domain: TimeDomain, ctx: &mut ProcessContext<'_, char, u32, (char, u32), ()>) {
///         let n = *ctx.state();
///         ctx.output((*ctx.key(), n));
///         ctx.clear_state();
///     }
/// }
///
/// // A tick of zero: the watermark advances after every record.
/// let out: Vec<(char, u32)> = tidal_engine::Job::local(1).with_tick(std::time::Duration::ZERO).run(|env| {
///     env.from_iter_with(vec![('a', 1i64), ('a', 5), ('a', 30), ('a', 40)],
///             WatermarkStrategy::monotonous().with_timestamps(|r: &(char, i64)| r.1))
///         .keyed()
///         .process(CountThenReport)
///         .collect()
/// }).unwrap();
/// // The timer at 11 fires when the watermark passes it (29, after the record at 30): the count
/// // is 3. The record at 40 starts a new count, reported at the end of the input.
/// assert_eq!(out, vec![('a', 3), ('a', 1)]);
/// ```
pub trait KeyedProcessFunction<K, V>: 'static {
    /// The per-key state (created with `Default` when first used).
    type State: Default + Serialize + DeserializeOwned + 'static;
    /// Records emitted.
    type Out: 'static;
    /// Records emitted to the side output (`()` when none).
    type Side: 'static;
    /// Handles one record.
    fn process_element(
        &mut self,
        value: V,
        ctx: &mut ProcessContext<'_, K, Self::State, Self::Out, Self::Side>,
    );
    /// Handles a timer of the context's key that fired at `timestamp`.
    fn on_timer(
        &mut self,
        timestamp: Time,
        domain: TimeDomain,
        ctx: &mut ProcessContext<'_, K, Self::State, Self::Out, Self::Side>,
    ) {
        let _ = (timestamp, domain, ctx);
    }
    /// Sets the function up on one worker, before its first record or timer (after a restore has
    /// loaded the state); an error fails the job. See [`function`](crate::function).
    fn open(&mut self, ctx: &RuntimeContext<'_>) -> tidal_engine::Result<()> {
        let _ = ctx;
        Ok(())
    }
    /// Tears the function down on one worker, after the last record and timer.
    fn close(&mut self) -> tidal_engine::Result<()> {
        Ok(())
    }
}

/// A process function seen through its lifecycle methods.
pub(crate) struct ProcessLifecycle<F, K, V>(pub(crate) F, std::marker::PhantomData<fn(K, V)>);

impl<F, K, V> ProcessLifecycle<F, K, V> {
    pub(crate) fn new(function: F) -> Self {
        ProcessLifecycle(function, std::marker::PhantomData)
    }
}

impl<F: KeyedProcessFunction<K, V>, K, V> crate::function::Lifecycle for ProcessLifecycle<F, K, V> {
    fn open(&mut self, ctx: &RuntimeContext<'_>) -> tidal_engine::Result<()> {
        self.0.open(ctx)
    }
    fn close(&mut self) -> tidal_engine::Result<()> {
        self.0.close()
    }
}

/// What a process function can see and do for the current key.
pub struct ProcessContext<'a, K, S, O, D> {
    key: &'a K,
    state: &'a mut Option<S>,
    timestamp: Time,
    watermark: Time,
    /// Read when asked: most functions never ask, and a clock read per record is not free.
    clock: &'a JobClock,
    out: &'a mut Vec<(O, Time)>,
    side: &'a mut Vec<(D, Time)>,
    timers: &'a mut Timers<K>,
    named: &'a mut named::NamedStates<K>,
    errors: &'a mut Vec<tidal_engine::Error>,
}

impl<K: Key, S: Default, O, D> ProcessContext<'_, K, S, O, D> {
    /// The current key.
    pub fn key(&self) -> &K {
        self.key
    }
    /// The key's state, created with `Default` if it has none.
    pub fn state(&mut self) -> &mut S {
        self.state.get_or_insert_with(S::default)
    }
    /// The key's state, if it has any.
    pub fn state_if_any(&self) -> Option<&S> {
        self.state.as_ref()
    }
    /// Removes the key's state.
    pub fn clear_state(&mut self) {
        *self.state = None;
    }
    /// The key's named states (value, list, map, reducing, aggregating), each found by its
    /// descriptor and with a time to live of its own (see [`named`]).
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use tidal_operators::process::named::{self, StateDescriptor, Value, List};
    /// use tidal_operators::{KeyedProcessFunction, ProcessContext};
    ///
    /// /// Emits each key's number of records and the last three values, from named states.
    /// struct Recent {
    ///     count: StateDescriptor<Value<u32>>,
    ///     last: StateDescriptor<List<i32>>,
    /// }
    /// impl KeyedProcessFunction<char, i32> for Recent {
    ///     type State = ();
    ///     type Out = (char, u32, Vec<i32>);
    ///     type Side = ();
    ///     fn process_element(&mut self, v: i32, ctx: &mut ProcessContext<'_, char, (), Self::Out, ()>) {
    ///         let mut states = ctx.named();
    ///         let n = states.value(&self.count).unwrap_or(0) + 1;
    ///         states.set_value(&self.count, n);
    ///         states.add_to_list(&self.last, v);
    ///         let last: Vec<i32> = states.list(&self.last).into_iter().rev().take(3).collect();
    ///         let k = *ctx.key();
    ///         ctx.output((k, n, last));
    ///     }
    /// }
    /// let out = tidal_engine::Job::local(1).run(|env| {
    ///     env.from_iter(vec![('a', 1), ('a', 2), ('a', 3), ('a', 4)]).keyed()
    ///         .process(Recent { count: named::value_state("count"), last: named::list_state("last") })
    ///         .collect()
    /// }).unwrap();
    /// assert_eq!(out.last(), Some(&('a', 4, vec![4, 3, 2])));
    /// ```
    pub fn named(&mut self) -> named::NamedAccess<'_, K> {
        named::NamedAccess {
            states: self.named,
            key: self.key,
            now: self.clock.now(),
            errors: self.errors,
        }
    }
    /// The timestamp of the record being handled, or of the timer that fired.
    pub fn timestamp(&self) -> Time {
        self.timestamp
    }
    /// The current watermark: every record with a timestamp at or below it has been handled.
    pub fn current_watermark(&self) -> Time {
        self.watermark
    }
    /// The job's processing time (ms since the epoch), read from its clock now.
    pub fn current_processing_time(&self) -> Time {
        self.clock.now()
    }
    /// Emits a record with the current timestamp.
    pub fn output(&mut self, record: O) {
        self.out.push((record, self.timestamp));
    }
    /// Emits a record to the side output, with the current timestamp.
    pub fn side_output(&mut self, record: D) {
        self.side.push((record, self.timestamp));
    }
    /// Emits a record with timestamp `ts` (a window's result, at the window's last timestamp).
    pub(crate) fn output_at(&mut self, record: O, ts: Time) {
        self.out.push((record, ts));
    }
    /// Calls `on_timer` for this key when the watermark reaches `timestamp`.
    pub fn register_event_time_timer(&mut self, timestamp: Time) {
        self.timers.event.insert(timestamp, self.key.clone());
    }
    /// Removes an event-time timer of this key.
    pub fn delete_event_time_timer(&mut self, timestamp: Time) {
        self.timers.event.remove(timestamp, self.key);
    }
    /// Calls `on_timer` for this key when processing time reaches `timestamp`.
    pub fn register_processing_time_timer(&mut self, timestamp: Time) {
        self.timers.processing.insert(timestamp, self.key.clone());
    }
    /// Removes a processing-time timer of this key.
    pub fn delete_processing_time_timer(&mut self, timestamp: Time) {
        self.timers.processing.remove(timestamp, self.key);
    }
}

/// What a stateless process function can do with a record: emit to the main or the side output.
pub struct Outputs<'a, O, D> {
    timestamp: Time,
    out: &'a mut Vec<(O, Time)>,
    side: &'a mut Vec<(D, Time)>,
}

impl<O, D> Outputs<'_, O, D> {
    /// The timestamp of the record being handled.
    pub fn timestamp(&self) -> Time {
        self.timestamp
    }
    /// Emits a record with the current timestamp.
    pub fn output(&mut self, record: O) {
        self.out.push((record, self.timestamp));
    }
    /// Emits a record to the side output, with the current timestamp.
    pub fn side_output(&mut self, record: D) {
        self.side.push((record, self.timestamp));
    }
}

/// Stateless process functions on plain streams (Flink's `ProcessFunction` without keyed state).
pub trait Process<'s, T> {
    /// Calls `f` on every record; it emits any number of records to the main and the side output,
    /// and the side output goes to `tag`.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use tidal_operators::{OutputTag, Process};
    /// let (evens, odds): (Vec<u32>, Vec<u32>) = tidal_engine::Job::local(2).run(|env| {
    ///     let odd = OutputTag::new();
    ///     let even = env.from_iter(0..6u32).process_with_side_output(|x, out| {
    ///         if x % 2 == 0 { out.output(x) } else { out.side_output(x) }
    ///     }, &odd);
    ///     (even.collect(), odd.stream().collect())
    /// }).unwrap();
    /// let (mut evens, mut odds) = (evens, odds);
    /// evens.sort();
    /// odds.sort();
    /// assert_eq!((evens, odds), (vec![0, 2, 4], vec![1, 3, 5]));
    /// ```
    fn process_with_side_output<O: 'static, D: 'static>(
        self,
        f: impl FnMut(T, &mut Outputs<'_, O, D>) + 'static,
        tag: &OutputTag<'s, D>,
    ) -> DataStream<'s, O>;
}

impl<'s, T: 'static> Process<'s, T> for DataStream<'s, T> {
    fn process_with_side_output<O: 'static, D: 'static>(
        self,
        mut f: impl FnMut(T, &mut Outputs<'_, O, D>) + 'static,
        tag: &OutputTag<'s, D>,
    ) -> DataStream<'s, O> {
        let mut side_stream = None;
        let out = self.then("process", |input, name| {
            let mut builder = OperatorBuilder::new(name.to_string(), input.scope());
            let mut input = builder.new_input(input, timely::dataflow::channels::pact::Pipeline);
            let (main_out, main_stream) = builder.new_output::<Vec<(O, Time)>>();
            let (side_out, side) = builder.new_output::<Vec<(D, Time)>>();
            side_stream = Some(side);
            let mut main_out =
                OutputBuilder::<_, CapacityContainerBuilder<Vec<(O, Time)>>>::from(main_out);
            let mut side_out =
                OutputBuilder::<_, CapacityContainerBuilder<Vec<(D, Time)>>>::from(side_out);
            builder.build(move |_| {
                let mut out_buf = Vec::new();
                let mut side_buf = Vec::new();
                move |_frontiers| {
                    let mut main = main_out.activate();
                    let mut side = side_out.activate();
                    input.for_each(|message, data| {
                        for (value, ts) in data.drain(..) {
                            let mut o = Outputs {
                                timestamp: ts,
                                out: &mut out_buf,
                                side: &mut side_buf,
                            };
                            f(value, &mut o);
                        }
                        if let Some(cap) = message.retain_least(0) {
                            main.session(&cap).give_iterator(out_buf.drain(..));
                        }
                        if let Some(cap) = message.retain_least(1) {
                            side.session(&cap).give_iterator(side_buf.drain(..));
                        }
                    });
                }
            });
            main_stream
        });
        if let Some(side) = side_stream {
            let name = format!("{}/side", out.operator_name());
            tag.fill(out.derive(side, name));
        }
        out
    }
}
