//! Custom window triggers and evictors (Flink's `Trigger` and `Evictor`).
//!
//! A [`WindowTrigger`] decides, per key and window, when the window emits its result and when
//! its contents are dropped: it sees every record added to the window and the timers it
//! registered (event time: the watermark passed them; processing time: the job's clock did), and
//! answers with a [`TriggerResult`]. It may keep state of its own per key and window (a count, a
//! flag), which checkpoints capture with the window. The built-in triggers are implemented on
//! it: [`EventTimeTrigger`] (the default of time windows), [`ProcessingTimeTrigger`],
//! [`CountTrigger`], [`ContinuousEventTimeTrigger`], [`PurgingTrigger`] and [`NeverTrigger`]
//! (the default of [`Windows::Global`](crate::Windows::Global)).
//!
//! An [`Evictor`] removes records from a window's contents before or after its function runs
//! (Flink's `CountEvictor`, `TimeEvictor`, `DeltaEvictor`): a window with an evictor keeps its
//! records rather than an accumulator.
//!
//! Windows are still dropped once the watermark passes their end plus the allowed lateness,
//! whatever the trigger says. Session windows merge as records join them: a trigger follows that
//! with [`WindowTrigger::on_merge`] (all the built-ins do); the merged windows' records are kept
//! (sessions with a custom trigger keep records, not an accumulator, since accumulators of two
//! sessions need not merge) and the window function folds them when it fires.

use std::rc::Rc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tidal_engine::Time;

use crate::window::Window;

/// What a trigger decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerResult {
    /// Nothing happens.
    Continue,
    /// The window emits its result and keeps its contents.
    Fire,
    /// The window's contents are dropped without a result.
    Purge,
    /// The window emits its result, then its contents are dropped.
    FireAndPurge,
}

impl TriggerResult {
    /// Whether the window emits.
    pub fn fires(self) -> bool {
        matches!(self, TriggerResult::Fire | TriggerResult::FireAndPurge)
    }
    /// Whether the window's contents are dropped.
    pub fn purges(self) -> bool {
        matches!(self, TriggerResult::Purge | TriggerResult::FireAndPurge)
    }
}

/// What a trigger can see and do for one key's window: the watermark and processing time, and
/// timers (each calls the trigger back once).
pub struct TriggerContext<'a> {
    pub(crate) watermark: Time,
    pub(crate) now: Time,
    pub(crate) event_timers: &'a mut Vec<Time>,
    pub(crate) processing_timers: &'a mut Vec<Time>,
    pub(crate) deleted_event: &'a mut Vec<Time>,
    pub(crate) deleted_processing: &'a mut Vec<Time>,
}

impl TriggerContext<'_> {
    /// The current watermark.
    pub fn current_watermark(&self) -> Time {
        self.watermark
    }
    /// The job's processing time (ms since the epoch).
    pub fn current_processing_time(&self) -> Time {
        self.now
    }
    /// Calls `on_event_time` for this window when the watermark passes `time`.
    pub fn register_event_time_timer(&mut self, time: Time) {
        self.event_timers.push(time);
    }
    /// Calls `on_processing_time` for this window when the job's clock passes `time`.
    pub fn register_processing_time_timer(&mut self, time: Time) {
        self.processing_timers.push(time);
    }
    /// Removes an event-time timer of this window.
    pub fn delete_event_time_timer(&mut self, time: Time) {
        self.deleted_event.push(time);
    }
    /// Removes a processing-time timer of this window.
    pub fn delete_processing_time_timer(&mut self, time: Time) {
        self.deleted_processing.push(time);
    }
}

/// Decides when a key's window fires; see the [module documentation](self).
///
/// ```
/// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
/// use std::time::Duration;
/// use tidal_engine::{Time, WatermarkStrategy};
/// use tidal_operators::window::{TriggerContext, TriggerResult, WindowTrigger};
///
/// /// Fires as soon as a reading above 100 arrives, and again at the window's end.
/// #[derive(Clone)]
/// struct Alarm;
/// impl WindowTrigger<u32> for Alarm {
///     type State = ();
///     fn on_element(&self, reading: &u32, _: Time, w: &Window, _: &mut (), ctx: &mut TriggerContext<'_>) -> TriggerResult {
///         ctx.register_event_time_timer(w.max_timestamp());
///         if *reading > 100 { TriggerResult::Fire } else { TriggerResult::Continue }
///     }
///     fn on_event_time(&self, time: Time, w: &Window, _: &mut (), _: &mut TriggerContext<'_>) -> TriggerResult {
///         if time == w.max_timestamp() { TriggerResult::FireAndPurge } else { TriggerResult::Continue }
///     }
/// }
///
/// let out: Vec<(char, u32)> = tidal_engine::Job::local(1).run(|env| {
///     env.from_iter_with(vec![('a', 5u32, 1i64), ('a', 150, 2), ('a', 7, 3)],
///             WatermarkStrategy::monotonous().with_timestamps(|r: &(char, u32, i64)| r.2))
///         .map(|(k, v, _)| (k, v))
///         .keyed()
///         .window(Windows::tumbling(Duration::from_millis(10)))
///         .with_trigger(Alarm)
///         .reduce(|a, b| *a += b)
///         .collect()
/// }).unwrap();
/// // Fired early with 5 + 150, then at the end with all three.
/// assert_eq!(out, vec![('a', 155), ('a', 162)]);
/// ```
pub trait WindowTrigger<V>: Clone + 'static {
    /// What the trigger keeps per key and window (`()` for none): checkpointed with the window.
    type State: Default + Serialize + DeserializeOwned + Clone + 'static;
    /// A record with timestamp `ts` was added to `window`.
    fn on_element(
        &self,
        value: &V,
        ts: Time,
        window: &Window,
        state: &mut Self::State,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult;
    /// An event-time timer of `window` at `time` fired (the watermark passed it).
    fn on_event_time(
        &self,
        time: Time,
        window: &Window,
        state: &mut Self::State,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        let _ = (time, window, state, ctx);
        TriggerResult::Continue
    }
    /// A processing-time timer of `window` at `time` fired (the clock passed it).
    fn on_processing_time(
        &self,
        time: Time,
        window: &Window,
        state: &mut Self::State,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        let _ = (time, window, state, ctx);
        TriggerResult::Continue
    }
    /// Session windows merged into `window`, whose trigger states were `states`: the merged
    /// window's state, after registering the timers it needs (the merged windows' timers are
    /// gone). `None` (the default): this trigger cannot follow merging windows, and a session
    /// window that merges fails the job saying so.
    fn on_merge(
        &self,
        window: &Window,
        states: Vec<Self::State>,
        ctx: &mut TriggerContext<'_>,
    ) -> Option<Self::State> {
        let _ = (window, states, ctx);
        None
    }
}

/// Fires a window once, when the watermark passes its end (the default for time windows).
#[derive(Debug, Clone, Copy, Default)]
pub struct EventTimeTrigger;

impl<V> WindowTrigger<V> for EventTimeTrigger {
    type State = ();
    fn on_element(
        &self,
        _: &V,
        _: Time,
        window: &Window,
        _: &mut (),
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        if window.max_timestamp() <= ctx.current_watermark() {
            // Late within the allowed lateness: fire again now.
            return TriggerResult::Fire;
        }
        ctx.register_event_time_timer(window.max_timestamp());
        TriggerResult::Continue
    }
    fn on_event_time(
        &self,
        time: Time,
        window: &Window,
        _: &mut (),
        _: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        if time == window.max_timestamp() {
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        }
    }
    fn on_merge(&self, window: &Window, _: Vec<()>, ctx: &mut TriggerContext<'_>) -> Option<()> {
        if window.max_timestamp() > ctx.current_watermark() {
            ctx.register_event_time_timer(window.max_timestamp());
        }
        Some(())
    }
}

/// Fires a window once, when the job's clock passes its end.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessingTimeTrigger;

impl<V> WindowTrigger<V> for ProcessingTimeTrigger {
    type State = ();
    fn on_element(
        &self,
        _: &V,
        _: Time,
        window: &Window,
        _: &mut (),
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        ctx.register_processing_time_timer(window.max_timestamp());
        TriggerResult::Continue
    }
    fn on_processing_time(
        &self,
        _: Time,
        _: &Window,
        _: &mut (),
        _: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        TriggerResult::Fire
    }
    fn on_merge(&self, window: &Window, _: Vec<()>, ctx: &mut TriggerContext<'_>) -> Option<()> {
        ctx.register_processing_time_timer(window.max_timestamp());
        Some(())
    }
}

/// Fires a window every time it has received another `n` records.
#[derive(Debug, Clone, Copy)]
pub struct CountTrigger {
    n: u64,
}

impl CountTrigger {
    /// Fires every `n` records (at least 1).
    pub fn of(n: u64) -> Self {
        CountTrigger { n: n.max(1) }
    }
}

impl<V> WindowTrigger<V> for CountTrigger {
    type State = u64;
    fn on_element(
        &self,
        _: &V,
        _: Time,
        _: &Window,
        count: &mut u64,
        _: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        *count += 1;
        if *count >= self.n {
            *count = 0;
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        }
    }
    fn on_merge(&self, _: &Window, counts: Vec<u64>, _: &mut TriggerContext<'_>) -> Option<u64> {
        Some(counts.into_iter().sum())
    }
}

/// Fires a window every `interval` of event time while it is open, and at its end.
#[derive(Debug, Clone, Copy)]
pub struct ContinuousEventTimeTrigger {
    interval: Time,
}

impl ContinuousEventTimeTrigger {
    /// Fires every `interval` (at least 1 ms) of event time.
    pub fn of(interval: std::time::Duration) -> Self {
        ContinuousEventTimeTrigger {
            interval: (interval.as_millis() as Time).max(1),
        }
    }
}

impl<V> WindowTrigger<V> for ContinuousEventTimeTrigger {
    /// The next firing time registered, if any.
    type State = Option<Time>;
    fn on_element(
        &self,
        _: &V,
        ts: Time,
        window: &Window,
        next: &mut Option<Time>,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        if window.max_timestamp() <= ctx.current_watermark() {
            return TriggerResult::Fire;
        }
        ctx.register_event_time_timer(window.max_timestamp());
        if next.is_none() {
            let at =
                (ts - ts.rem_euclid(self.interval) + self.interval - 1).min(window.max_timestamp());
            ctx.register_event_time_timer(at);
            *next = Some(at);
        }
        TriggerResult::Continue
    }
    fn on_event_time(
        &self,
        time: Time,
        window: &Window,
        next: &mut Option<Time>,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        if time == window.max_timestamp() {
            return TriggerResult::Fire;
        }
        if *next == Some(time) {
            let at = (time + self.interval).min(window.max_timestamp());
            ctx.register_event_time_timer(at);
            *next = Some(at);
            return TriggerResult::Fire;
        }
        TriggerResult::Continue
    }
    fn on_merge(
        &self,
        window: &Window,
        nexts: Vec<Option<Time>>,
        ctx: &mut TriggerContext<'_>,
    ) -> Option<Option<Time>> {
        ctx.register_event_time_timer(window.max_timestamp());
        let next = nexts.into_iter().flatten().min();
        if let Some(at) = next {
            ctx.register_event_time_timer(at);
        }
        Some(next)
    }
}

/// Turns every firing of `inner` into a firing that also drops the window's contents.
#[derive(Debug, Clone, Copy)]
pub struct PurgingTrigger<T> {
    inner: T,
}

impl<T> PurgingTrigger<T> {
    /// `inner`, purging whenever it fires.
    pub fn of(inner: T) -> Self {
        PurgingTrigger { inner }
    }
}

fn purging(r: TriggerResult) -> TriggerResult {
    if r.fires() {
        TriggerResult::FireAndPurge
    } else {
        r
    }
}

impl<V, T: WindowTrigger<V>> WindowTrigger<V> for PurgingTrigger<T> {
    type State = T::State;
    fn on_element(
        &self,
        value: &V,
        ts: Time,
        window: &Window,
        state: &mut T::State,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        purging(self.inner.on_element(value, ts, window, state, ctx))
    }
    fn on_event_time(
        &self,
        time: Time,
        window: &Window,
        state: &mut T::State,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        purging(self.inner.on_event_time(time, window, state, ctx))
    }
    fn on_processing_time(
        &self,
        time: Time,
        window: &Window,
        state: &mut T::State,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        purging(self.inner.on_processing_time(time, window, state, ctx))
    }
    fn on_merge(
        &self,
        window: &Window,
        states: Vec<T::State>,
        ctx: &mut TriggerContext<'_>,
    ) -> Option<T::State> {
        self.inner.on_merge(window, states, ctx)
    }
}

/// Never fires (the default of global windows, which need a trigger of their own).
#[derive(Debug, Clone, Copy, Default)]
pub struct NeverTrigger;

impl<V> WindowTrigger<V> for NeverTrigger {
    type State = ();
    fn on_element(
        &self,
        _: &V,
        _: Time,
        _: &Window,
        _: &mut (),
        _: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        TriggerResult::Continue
    }
    fn on_merge(&self, _: &Window, _: Vec<()>, _: &mut TriggerContext<'_>) -> Option<()> {
        Some(())
    }
}

/// Removes records from a window's contents before or after its function runs.
///
/// ```
/// use tidal_operators::window::Evictor;
/// use tidal_operators::Window;
/// let w = Window { start: 0, end: 100 };
/// let mut records = vec![(1u32, 10i64), (2, 20), (3, 95)];
/// Evictor::<u32>::count(2).evict(&mut records, &w);
/// assert_eq!(records, vec![(2, 20), (3, 95)]);
/// Evictor::<u32>::time(std::time::Duration::from_millis(50)).evict(&mut records, &w);
/// assert_eq!(records, vec![(3, 95)]);
/// ```
pub struct Evictor<V> {
    rule: EvictionRule<V>,
    after: bool,
}

enum EvictionRule<V> {
    Count(usize),
    Time(Time),
    Delta(f64, DeltaFn<V>),
}

/// How far apart two records are, for [`Evictor::delta`].
type DeltaFn<V> = Rc<dyn Fn(&V, &V) -> f64>;

impl<V> Clone for Evictor<V> {
    fn clone(&self) -> Self {
        Evictor {
            rule: match &self.rule {
                EvictionRule::Count(n) => EvictionRule::Count(*n),
                EvictionRule::Time(t) => EvictionRule::Time(*t),
                EvictionRule::Delta(x, f) => EvictionRule::Delta(*x, Rc::clone(f)),
            },
            after: self.after,
        }
    }
}

impl<V> Evictor<V> {
    /// Keeps the last `n` records (by arrival) — Flink's `CountEvictor`.
    pub fn count(n: usize) -> Self {
        Evictor {
            rule: EvictionRule::Count(n),
            after: false,
        }
    }
    /// Keeps the records within `span` of the latest record's timestamp — Flink's `TimeEvictor`.
    pub fn time(span: std::time::Duration) -> Self {
        Evictor {
            rule: EvictionRule::Time(span.as_millis() as Time),
            after: false,
        }
    }
    /// Removes the records whose `delta` to the last record is `threshold` or more — Flink's
    /// `DeltaEvictor`.
    ///
    /// ```
    /// use tidal_operators::window::Evictor;
    /// let w = tidal_operators::Window { start: 0, end: 10 };
    /// let mut prices = vec![(10.0f64, 1i64), (19.0, 2), (20.0, 3)];
    /// Evictor::delta(5.0, |a: &f64, b: &f64| (a - b).abs()).evict(&mut prices, &w);
    /// assert_eq!(prices, vec![(19.0, 2), (20.0, 3)]);
    /// ```
    pub fn delta(threshold: f64, delta: impl Fn(&V, &V) -> f64 + 'static) -> Self {
        Evictor {
            rule: EvictionRule::Delta(threshold, Rc::new(delta)),
            after: false,
        }
    }
    /// Evicts after the window function runs instead of before (the records removed then count
    /// for this firing, not for later ones).
    pub fn after_function(mut self) -> Self {
        self.after = true;
        self
    }
    /// Whether it evicts after the window function.
    pub fn is_after(&self) -> bool {
        self.after
    }
    /// Removes from `records` (with their timestamps, in arrival order) what this evictor
    /// removes from a firing of `window`.
    pub fn evict(&self, records: &mut Vec<(V, Time)>, window: &Window) {
        let _ = window;
        match &self.rule {
            EvictionRule::Count(n) => {
                let extra = records.len().saturating_sub(*n);
                records.drain(..extra);
            }
            EvictionRule::Time(span) => {
                if let Some(latest) = records.iter().map(|(_, t)| *t).max() {
                    records.retain(|(_, t)| *t > latest - span);
                }
            }
            EvictionRule::Delta(threshold, delta) => {
                if let Some((last, _)) = records.last() {
                    let keep: Vec<bool> = records
                        .iter()
                        .map(|(v, _)| delta(v, last) < *threshold)
                        .collect();
                    let mut keep = keep.into_iter();
                    records.retain(|_| keep.next().unwrap_or(true));
                }
            }
        }
    }
}

/// Fires when time passes the window's end: the watermark for event-time windows, the job's
/// clock for processing-time windows (the trigger of windows given an evictor but no trigger).
#[derive(Debug, Clone, Copy)]
pub struct TimeTrigger {
    processing_time: bool,
}

impl TimeTrigger {
    pub(crate) fn new(processing_time: bool) -> Self {
        TimeTrigger { processing_time }
    }
}

impl<V> WindowTrigger<V> for TimeTrigger {
    type State = ();
    fn on_element(
        &self,
        value: &V,
        ts: Time,
        window: &Window,
        state: &mut (),
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        if self.processing_time {
            ProcessingTimeTrigger.on_element(value, ts, window, state, ctx)
        } else {
            EventTimeTrigger.on_element(value, ts, window, state, ctx)
        }
    }
    fn on_event_time(
        &self,
        time: Time,
        window: &Window,
        state: &mut (),
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        if self.processing_time {
            TriggerResult::Continue
        } else {
            <EventTimeTrigger as WindowTrigger<V>>::on_event_time(
                &EventTimeTrigger,
                time,
                window,
                state,
                ctx,
            )
        }
    }
    fn on_processing_time(
        &self,
        time: Time,
        window: &Window,
        state: &mut (),
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        if self.processing_time {
            <ProcessingTimeTrigger as WindowTrigger<V>>::on_processing_time(
                &ProcessingTimeTrigger,
                time,
                window,
                state,
                ctx,
            )
        } else {
            TriggerResult::Continue
        }
    }
    fn on_merge(
        &self,
        window: &Window,
        states: Vec<()>,
        ctx: &mut TriggerContext<'_>,
    ) -> Option<()> {
        if self.processing_time {
            <ProcessingTimeTrigger as WindowTrigger<V>>::on_merge(
                &ProcessingTimeTrigger,
                window,
                states,
                ctx,
            )
        } else {
            <EventTimeTrigger as WindowTrigger<V>>::on_merge(&EventTimeTrigger, window, states, ctx)
        }
    }
}

/// The trigger of global windows given only the [`Trigger`](crate::Trigger) enum: a count, or
/// none.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GlobalDefault(pub(crate) Option<CountTrigger>);

impl<V> WindowTrigger<V> for GlobalDefault {
    type State = u64;
    fn on_element(
        &self,
        value: &V,
        ts: Time,
        window: &Window,
        count: &mut u64,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        match &self.0 {
            Some(counter) => counter.on_element(value, ts, window, count, ctx),
            None => TriggerResult::Continue,
        }
    }
    fn on_merge(&self, _: &Window, counts: Vec<u64>, _: &mut TriggerContext<'_>) -> Option<u64> {
        Some(counts.into_iter().sum())
    }
}
