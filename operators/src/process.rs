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
//! Records are handled in time order as the frontier passes (see [`TimeBuffer`]); before the
//! records sent at time `t` (when their source's watermark was `t - 1`), every event-time timer
//! `<= t - 1` fires — Flink's order of watermarks and records. The per-key state, the pending
//! timers and the last write times (for the time to live) are registered with the worker under
//! the operator's name, so checkpoints capture them and a restore on any number of workers brings
//! back each key's state and timers.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tidal_engine::{
    DataStream, FastMap, KeyedState, RegisteredState, Time, TimeBuffer, key_hash, timely,
    write_snapshot,
};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use crate::keyed::{Key, KeyedStream, Value};
use crate::window::OutputTag;

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
}

/// What a process function can see and do for the current key.
pub struct ProcessContext<'a, K, S, O, D> {
    key: &'a K,
    state: &'a mut Option<S>,
    timestamp: Time,
    watermark: Time,
    processing_time: Time,
    out: &'a mut Vec<(O, Time)>,
    side: &'a mut Vec<(D, Time)>,
    timers: &'a mut Timers<K>,
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
    /// The timestamp of the record being handled, or of the timer that fired.
    pub fn timestamp(&self) -> Time {
        self.timestamp
    }
    /// The current watermark: every record with a timestamp at or below it has been handled.
    pub fn current_watermark(&self) -> Time {
        self.watermark
    }
    /// The job's processing time (ms since the epoch).
    pub fn current_processing_time(&self) -> Time {
        self.processing_time
    }
    /// Emits a record with the current timestamp.
    pub fn output(&mut self, record: O) {
        self.out.push((record, self.timestamp));
    }
    /// Emits a record to the side output, with the current timestamp.
    pub fn side_output(&mut self, record: D) {
        self.side.push((record, self.timestamp));
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

/// Per-key state with an optional time to live since the last write.
struct TtlState<K, S> {
    state: Rc<RefCell<KeyedState<K, S>>>,
    ttl: Option<Time>,
    /// When each key's state was last written (kept only with a time to live).
    written: Rc<RefCell<FastMap<K, Time>>>,
    expiry: BTreeMap<Time, Vec<K>>,
}

impl<K: Key, S> TtlState<K, S> {
    /// Takes a key's state out for an invocation; expired state is dropped, not returned.
    fn take(&mut self, key: &K, now: Time) -> Option<S> {
        let mut state = self.state.borrow_mut();
        let value = state.remove(key);
        let mut written = self.written.borrow_mut();
        match self.ttl {
            Some(ttl)
                if written
                    .get(key)
                    .is_some_and(|w| now.saturating_sub(*w) >= ttl) =>
            {
                written.remove(key);
                None
            }
            _ => value,
        }
    }
    /// Puts a key's state back after an invocation (a write, for the time to live).
    fn put(&mut self, key: K, value: Option<S>, now: Time) {
        match value {
            Some(v) => {
                if let Some(ttl) = self.ttl {
                    self.written.borrow_mut().insert(key.clone(), now);
                    self.expiry
                        .entry(now.saturating_add(ttl))
                        .or_default()
                        .push(key.clone());
                }
                self.state.borrow_mut().insert(key, v);
            }
            None => {
                self.written.borrow_mut().remove(&key);
            }
        }
    }
    /// Rebuilds the expiry schedule from the write times (after a restore).
    fn schedule_restored(&mut self) {
        let Some(ttl) = self.ttl else { return };
        for (key, w) in self.written.borrow().iter() {
            self.expiry
                .entry(w.saturating_add(ttl))
                .or_default()
                .push(key.clone());
        }
    }
    /// Removes state whose time to live has passed.
    fn expire(&mut self, now: Time) {
        let Some(ttl) = self.ttl else { return };
        while let Some(entry) = self.expiry.first_entry() {
            if *entry.key() > now {
                break;
            }
            let mut written = self.written.borrow_mut();
            for key in entry.remove() {
                if written
                    .get(&key)
                    .is_some_and(|w| now.saturating_sub(*w) >= ttl)
                {
                    written.remove(&key);
                    self.state.borrow_mut().remove(&key);
                }
            }
        }
    }
}

/// What a keyed process function keeps, as checkpoints see it: per key its state, its pending
/// event-time and processing-time timers and its last write time (for the time to live).
struct ProcessState<K, S> {
    name: String,
    values: Rc<RefCell<KeyedState<K, S>>>,
    timers: Rc<RefCell<Timers<K>>>,
    written: Rc<RefCell<FastMap<K, Time>>>,
}

/// One key's entry in a snapshot: state, event-time timers, processing-time timers, last write.
type ProcessEntry<S> = (Option<S>, Vec<Time>, Vec<Time>, Option<Time>);
/// The same, borrowing the state, as it is written.
type ProcessEntryRef<'a, S> = (Option<&'a S>, Vec<Time>, Vec<Time>, Option<Time>);

impl<K: Key, S: Serialize + DeserializeOwned + 'static> RegisteredState for ProcessState<K, S> {
    fn name(&self) -> &str {
        &self.name
    }
    fn keys(&self) -> usize {
        self.values.borrow().len()
    }
    fn snapshot_into(&self, _cut: Time, out: &mut Vec<u8>) -> tidal_engine::Result<()> {
        let values = self.values.borrow();
        let timers = self.timers.borrow();
        let written = self.written.borrow();
        let mut entries: FastMap<&K, ProcessEntryRef<'_, S>> = FastMap::default();
        for (k, v) in values.iter() {
            entries.entry(k).or_default().0 = Some(v);
        }
        for (ts, keys) in &timers.event.by_time {
            for k in keys.keys() {
                entries.entry(k).or_default().1.push(*ts);
            }
        }
        for (ts, keys) in &timers.processing.by_time {
            for k in keys.keys() {
                entries.entry(k).or_default().2.push(*ts);
            }
        }
        for (k, w) in written.iter() {
            entries.entry(k).or_default().3 = Some(*w);
        }
        write_snapshot(
            &self.name,
            entries.len(),
            entries.iter().map(|(k, e)| (*k, e)),
            out,
        )
    }
    fn restore(
        &mut self,
        sections: &[&[u8]],
        index: usize,
        peers: usize,
    ) -> tidal_engine::Result<usize> {
        let entries: Vec<(K, ProcessEntry<S>)> =
            tidal_engine::state::read_owned(&self.name, sections, index, peers)?;
        let kept = entries.len();
        let mut values = self.values.borrow_mut();
        let mut timers = self.timers.borrow_mut();
        let mut written = self.written.borrow_mut();
        for (k, (state, event, processing, wrote)) in entries {
            for ts in event {
                timers.event.insert(ts, k.clone());
            }
            for ts in processing {
                timers.processing.insert(ts, k.clone());
            }
            if let Some(w) = wrote {
                written.insert(k.clone(), w);
            }
            if let Some(state) = state {
                values.insert(k, state);
            }
        }
        Ok(kept)
    }
}

/// Pending timers of one operator on one worker.
struct Timers<K> {
    event: TimerQueue<K>,
    processing: TimerQueue<K>,
}

/// Timers in timestamp order; at most one per (timestamp, key).
struct TimerQueue<K> {
    by_time: BTreeMap<Time, FastMap<K, ()>>,
}

impl<K: Key> TimerQueue<K> {
    fn new() -> Self {
        TimerQueue {
            by_time: BTreeMap::new(),
        }
    }
    fn insert(&mut self, ts: Time, key: K) {
        self.by_time.entry(ts).or_default().insert(key, ());
    }
    fn remove(&mut self, ts: Time, key: &K) {
        if let Some(keys) = self.by_time.get_mut(&ts) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_time.remove(&ts);
            }
        }
    }
    fn first_time(&self) -> Option<Time> {
        self.by_time.first_key_value().map(|(t, _)| *t)
    }
    fn is_empty(&self) -> bool {
        self.by_time.is_empty()
    }
    /// Removes the earliest timer, if its time is below `limit`.
    fn pop_before(&mut self, limit: Time) -> Option<(Time, K)> {
        let mut entry = self.by_time.first_entry()?;
        let ts = *entry.key();
        if ts >= limit {
            return None;
        }
        let key = entry
            .get()
            .keys()
            .next()
            .cloned()
            .expect("no empty timer sets are kept");
        entry.get_mut().remove(&key);
        if entry.get().is_empty() {
            entry.remove();
        }
        Some((ts, key))
    }
}

impl<'s, K: Key, V: Value> KeyedStream<'s, K, V> {
    /// Applies a keyed process function (see [`KeyedProcessFunction`]).
    pub fn process<F: KeyedProcessFunction<K, V>>(self, function: F) -> DataStream<'s, F::Out> {
        self.process_core(function, None)
    }
    /// Applies a keyed process function whose side output goes to `tag`.
    pub fn process_with_side_output<F: KeyedProcessFunction<K, V>>(
        self,
        function: F,
        tag: &OutputTag<'s, F::Side>,
    ) -> DataStream<'s, F::Out> {
        self.process_core(function, Some(tag.clone()))
    }

    fn process_core<F: KeyedProcessFunction<K, V>>(
        self,
        mut function: F,
        tag: Option<OutputTag<'s, F::Side>>,
    ) -> DataStream<'s, F::Out> {
        let ttl = self.state_ttl;
        let stream = self.into_stream();
        let ctx = Rc::clone(stream.context());
        let mut side_stream = None;
        let out = stream.then("process", |input, name| {
            let mut builder = OperatorBuilder::new(name.to_string(), input.scope());
            let info = builder.operator_info();
            let activator = input.scope().activator_for(info.address);
            let mut input = builder.new_input(
                input,
                Exchange::new(|((k, _), _): &((K, V), Time)| key_hash(k)),
            );
            let (main_out, main_stream) = builder.new_output::<Vec<(F::Out, Time)>>();
            let (side_out, side) = builder.new_output::<Vec<(F::Side, Time)>>();
            side_stream = Some(side);
            let mut main_out =
                OutputBuilder::<_, CapacityContainerBuilder<Vec<(F::Out, Time)>>>::from(main_out);
            let mut side_out =
                OutputBuilder::<_, CapacityContainerBuilder<Vec<(F::Side, Time)>>>::from(side_out);
            let state = Rc::new(RefCell::new(KeyedState::<K, F::State>::new(name)));
            let shared_timers = Rc::new(RefCell::new(Timers {
                event: TimerQueue::new(),
                processing: TimerQueue::new(),
            }));
            let written = Rc::new(RefCell::new(FastMap::default()));
            ctx.register_state(Rc::new(RefCell::new(ProcessState {
                name: name.to_string(),
                values: Rc::clone(&state),
                timers: Rc::clone(&shared_timers),
                written: Rc::clone(&written),
            })));
            let mut state = TtlState {
                state,
                ttl,
                written,
                expiry: BTreeMap::new(),
            };
            let clock = ctx.clock();
            let restored_cut = ctx.restored_cut();

            builder.build(move |initial| {
                // Kept only when restoring: restored timers need capabilities to fire with.
                let mut restoring = restored_cut.map(|cut| (cut, initial));
                let mut pending: TimeBuffer<Vec<((K, V), Time)>> = TimeBuffer::new();
                let mut side_caps: TimeBuffer<()> = TimeBuffer::new();
                // Capabilities (main, side) held for pending timers.
                let mut timer_caps: Option<(Capability<Time>, Capability<Time>)> = None;
                let mut fired_up_to: Time = Time::MIN;
                let mut out_buf: Vec<(F::Out, Time)> = Vec::new();
                let mut side_buf: Vec<(F::Side, Time)> = Vec::new();
                move |frontiers| {
                    let frontier = &frontiers[0];
                    let mut main = main_out.activate();
                    let mut side = side_out.activate();
                    let mut timers = shared_timers.borrow_mut();
                    let timers = &mut *timers;
                    // Restored: timers below the cut fired before the snapshot; the others
                    // fire with capabilities taken from the initial ones.
                    if let Some((cut, initial)) = restoring.take() {
                        fired_up_to = cut;
                        state.schedule_restored();
                        if (!timers.event.is_empty() || !timers.processing.is_empty())
                            && let [main_cap, side_cap] = &initial[..]
                        {
                            timer_caps = Some((main_cap.delayed(&cut), side_cap.delayed(&cut)));
                        }
                    }
                    input.for_each(|message, data| {
                        if let Some((_, records)) = pending.at(&message, 0) {
                            records.append(data);
                        }
                        let _ = side_caps.at(&message, 1);
                    });
                    let now = clock.now();

                    let mut ready: Vec<_> = pending.ready(frontier).collect();
                    let side_ready: Vec<(Capability<Time>, ())> =
                        side_caps.ready(frontier).collect();
                    for ((cap, records), (side_cap, _)) in ready.drain(..).zip(side_ready) {
                        let t = *cap.time();
                        // Timers first: the records of time t were sent at watermark t - 1.
                        if let Some((main_cap, side_cap_t)) = &timer_caps {
                            fire_event_timers(
                                &mut function,
                                t,
                                now,
                                &mut state,
                                timers,
                                &mut out_buf,
                                &mut side_buf,
                            );
                            fired_up_to = fired_up_to.max(t);
                            main.session(main_cap).give_iterator(out_buf.drain(..));
                            side.session(side_cap_t).give_iterator(side_buf.drain(..));
                        }
                        for ((key, value), ts) in records {
                            let now = clock.now();
                            let mut slot = state.take(&key, now);
                            let mut c = ProcessContext {
                                key: &key,
                                state: &mut slot,
                                timestamp: ts,
                                watermark: t - 1,
                                processing_time: now,
                                out: &mut out_buf,
                                side: &mut side_buf,
                                timers,
                            };
                            function.process_element(value, &mut c);
                            state.put(key, slot, now);
                        }
                        main.session(&cap).give_iterator(out_buf.drain(..));
                        side.session(&side_cap).give_iterator(side_buf.drain(..));
                        // Hold capabilities for the timers now pending.
                        if (!timers.event.is_empty() || !timers.processing.is_empty())
                            && timer_caps.as_ref().is_none_or(|(c, _)| *c.time() > t)
                        {
                            timer_caps = Some((cap.clone(), side_cap.clone()));
                        }
                    }
                    // Timers the frontier has passed, then processing-time timers that are due.
                    let reached = frontier.frontier().first().copied().unwrap_or(Time::MAX);
                    if let Some((main_cap, side_cap)) = &timer_caps {
                        fire_event_timers(
                            &mut function,
                            reached,
                            now,
                            &mut state,
                            timers,
                            &mut out_buf,
                            &mut side_buf,
                        );
                        fired_up_to = fired_up_to.max(reached);
                        while let Some((ts, key)) =
                            timers.processing.pop_before(now.saturating_add(1))
                        {
                            let mut slot = state.take(&key, now);
                            let mut c = ProcessContext {
                                key: &key,
                                state: &mut slot,
                                timestamp: *main_cap.time(),
                                watermark: reached.saturating_sub(1),
                                processing_time: now,
                                out: &mut out_buf,
                                side: &mut side_buf,
                                timers,
                            };
                            function.on_timer(ts, TimeDomain::ProcessingTime, &mut c);
                            state.put(key, slot, now);
                        }
                        main.session(main_cap).give_iterator(out_buf.drain(..));
                        side.session(side_cap).give_iterator(side_buf.drain(..));
                    }
                    // At the end of the input, processing-time timers that are not due are dropped
                    // (as in Flink), so that a bounded job ends.
                    if frontier.is_empty() {
                        timers.processing = TimerQueue::new();
                    }
                    // Keep the timer capabilities at the earliest time still needed.
                    if timers.event.is_empty() && timers.processing.is_empty() {
                        timer_caps = None;
                    } else if let Some((main_cap, side_cap)) = timer_caps.as_mut() {
                        let mut needed = reached;
                        if let Some(ts) = timers.event.first_time() {
                            needed = needed.min(ts);
                        }
                        if *main_cap.time() < needed {
                            main_cap.downgrade(&needed);
                            side_cap.downgrade(&needed);
                        }
                    }
                    state.expire(now);
                    if let Some(ts) = timers.processing.first_time() {
                        let wait = (ts - now).clamp(1, 1000) as u64;
                        activator.activate_after(Duration::from_millis(wait));
                    }
                }
            });
            main_stream
        });
        if let (Some(tag), Some(side)) = (tag, side_stream) {
            let name = format!("{}/side", out.operator_name());
            tag.fill(out.derive(side, name));
        }
        out
    }
}

/// Calls `on_timer` for every event-time timer below `limit` (the frontier: watermark + 1), in
/// timestamp order, including timers registered meanwhile.
fn fire_event_timers<K: Key, V, F: KeyedProcessFunction<K, V>>(
    function: &mut F,
    limit: Time,
    now: Time,
    state: &mut TtlState<K, F::State>,
    timers: &mut Timers<K>,
    out_buf: &mut Vec<(F::Out, Time)>,
    side_buf: &mut Vec<(F::Side, Time)>,
) {
    while let Some((ts, key)) = timers.event.pop_before(limit) {
        let mut slot = state.take(&key, now);
        let mut c = ProcessContext {
            key: &key,
            state: &mut slot,
            timestamp: ts,
            watermark: limit.saturating_sub(1),
            processing_time: now,
            out: out_buf,
            side: side_buf,
            timers,
        };
        function.on_timer(ts, TimeDomain::EventTime, &mut c);
        state.put(key, slot, now);
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
