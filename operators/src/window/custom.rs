//! Windows with a custom trigger or an evictor, and global windows: a keyed process function
//! that keeps, per key, its open windows (contents and trigger state) and which windows asked for
//! a timer when. The process operator gives it what every keyed operator has — time order,
//! timers, checkpoints and restores on any worker count.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::rc::Rc;

use tidal_engine::{Time, WorkerContext};

use crate::function::RuntimeContext;

use crate::keyed::{Key, Value};
use crate::process::{KeyedProcessFunction, ProcessContext, TimeDomain};
use crate::window::trigger::{Evictor, TriggerContext, TriggerResult, WindowTrigger};
use crate::window::{Window, Windows};

/// A window's contents: the accumulator, or (with an evictor) the records themselves.
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "A: Serialize, V: Serialize",
    deserialize = "A: DeserializeOwned, V: DeserializeOwned"
))]
pub(crate) struct Contents<A, V> {
    acc: Option<A>,
    records: Vec<(V, Time)>,
}

/// Per key: the open windows (contents and trigger state), and the windows waiting for each
/// event-time and processing-time timer.
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "A: Serialize, V: Serialize, S: Serialize",
    deserialize = "A: DeserializeOwned, V: DeserializeOwned, S: DeserializeOwned"
))]
pub(crate) struct KeyWindows<A, V, S> {
    windows: BTreeMap<Window, (Contents<A, V>, S)>,
    event: BTreeMap<Time, BTreeSet<Window>>,
    processing: BTreeMap<Time, BTreeSet<Window>>,
}

impl<A, V, S> Default for KeyWindows<A, V, S> {
    fn default() -> Self {
        KeyWindows {
            windows: BTreeMap::new(),
            event: BTreeMap::new(),
            processing: BTreeMap::new(),
        }
    }
}

/// The window function of a windowed stream with a custom trigger or an evictor.
pub(crate) struct TriggerWindows<K, V, A, O, T, Cr, Ad, Fi> {
    pub(crate) types: std::marker::PhantomData<fn(&K, A) -> O>,
    /// Where dropped late records are reported (set when the function opens).
    pub(crate) report: Option<(Rc<WorkerContext>, String)>,
    pub(crate) windows: Windows,
    pub(crate) processing_time: bool,
    pub(crate) trigger: T,
    pub(crate) evictor: Option<Evictor<V>>,
    pub(crate) lateness: Time,
    pub(crate) keep_late: bool,
    pub(crate) create: Cr,
    pub(crate) add: Ad,
    pub(crate) finish: Fi,
}

/// The window `ts` falls in for global windows: all time.
const GLOBAL: Window = Window {
    start: Time::MIN,
    end: Time::MAX,
};

impl<K, V, A, O, T, Cr, Ad, Fi> TriggerWindows<K, V, A, O, T, Cr, Ad, Fi> {
    /// Whether `w` is past its end plus the allowed lateness at watermark `watermark`.
    fn expired(&self, w: &Window, watermark: Time) -> bool {
        w.end != Time::MAX && w.max_timestamp().saturating_add(self.lateness) <= watermark
    }
}

type Ctx<'a, K, A, V, S, O> = ProcessContext<'a, K, KeyWindows<A, V, S>, O, (K, V)>;

impl<K, V, A, O, T, Cr, Ad, Fi> TriggerWindows<K, V, A, O, T, Cr, Ad, Fi>
where
    K: Key,
    V: Value,
    A: Value + Serialize + DeserializeOwned,
    O: 'static,
    T: WindowTrigger<V>,
    Cr: Fn(V) -> A + 'static,
    Ad: Fn(&mut A, V) + 'static,
    Fi: Fn(&K, &Window, &A) -> O + 'static,
{
    /// Calls the trigger through `call` for window `w` and acts on its answer: timers it asked
    /// for, a firing, a purge.
    fn run_trigger(
        &self,
        w: Window,
        ctx: &mut Ctx<'_, K, A, V, T::State, O>,
        call: impl FnOnce(&T, &mut T::State, &mut TriggerContext<'_>) -> TriggerResult,
    ) {
        let (watermark, now) = (ctx.current_watermark(), ctx.current_processing_time());
        let key = ctx.key().clone();
        let (mut event, mut processing, mut no_event, mut no_processing) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let result = {
            let Some((_, trigger_state)) = ctx.state().windows.get_mut(&w) else {
                return;
            };
            let mut tctx = TriggerContext {
                watermark,
                now,
                event_timers: &mut event,
                processing_timers: &mut processing,
                deleted_event: &mut no_event,
                deleted_processing: &mut no_processing,
            };
            call(&self.trigger, trigger_state, &mut tctx)
        };
        for t in event {
            ctx.state().event.entry(t).or_default().insert(w);
            ctx.register_event_time_timer(t);
        }
        for t in processing {
            ctx.state().processing.entry(t).or_default().insert(w);
            ctx.register_processing_time_timer(t);
        }
        for t in no_event {
            if forget(&mut ctx.state().event, t, &w) {
                ctx.delete_event_time_timer(t);
            }
        }
        for t in no_processing {
            if forget(&mut ctx.state().processing, t, &w) {
                ctx.delete_processing_time_timer(t);
            }
        }
        if result.fires()
            && let Some(out) = self.result(&key, &w, ctx)
        {
            ctx.output_at(out, w.max_timestamp());
        }
        if result.purges()
            && let Some((contents, _)) = ctx.state().windows.get_mut(&w)
        {
            contents.acc = None;
            contents.records.clear();
        }
    }

    /// The window's result now (`None` when it is empty), evicting as the evictor says.
    fn result(&self, key: &K, w: &Window, ctx: &mut Ctx<'_, K, A, V, T::State, O>) -> Option<O> {
        let (contents, _) = ctx.state().windows.get_mut(w)?;
        if !self.keeps_records() {
            return contents.acc.as_ref().map(|acc| (self.finish)(key, w, acc));
        }
        let evictor = self.evictor.as_ref();
        if let Some(e) = evictor.filter(|e| !e.is_after()) {
            e.evict(&mut contents.records, w);
        }
        let mut values = contents.records.iter().map(|(v, _)| v.clone());
        let mut acc = (self.create)(values.next()?);
        for v in values {
            (self.add)(&mut acc, v);
        }
        let out = (self.finish)(key, w, &acc);
        if let Some(e) = evictor.filter(|e| e.is_after()) {
            e.evict(&mut contents.records, w);
        }
        Some(out)
    }

    /// Whether windows keep their records rather than an accumulator: with an evictor, and for
    /// sessions (whose accumulators would have to merge).
    fn keeps_records(&self) -> bool {
        self.evictor.is_some() || matches!(self.windows, Windows::Session { .. })
    }

    /// The session window a record at `ts` joins: `[ts, ts + gap)` merged with every window of
    /// the key it overlaps or touches. Merged windows' records move to the new one, their timers
    /// go, and the trigger gives the merged state ([`WindowTrigger::on_merge`]).
    fn merge_session(
        &self,
        ts: Time,
        gap: Time,
        ctx: &mut Ctx<'_, K, A, V, T::State, O>,
    ) -> Window {
        let mut w = Window {
            start: ts,
            end: ts.saturating_add(gap),
        };
        let touching: Vec<Window> = ctx
            .state()
            .windows
            .keys()
            .filter(|o| o.start <= w.end && w.start <= o.end)
            .copied()
            .collect();
        for o in &touching {
            w.start = w.start.min(o.start);
            w.end = w.end.max(o.end);
        }
        if touching.is_empty() || touching == [w] {
            return w;
        }
        let mut records = Vec::new();
        let mut states = Vec::new();
        for o in &touching {
            if let Some((contents, state)) = ctx.state().windows.remove(o) {
                records.extend(contents.records);
                states.push(state);
            }
            self.drop_window(o, ctx);
        }
        ctx.state()
            .windows
            .insert(w, (Contents { acc: None, records }, T::State::default()));
        if w.end != Time::MAX {
            let at = if self.processing_time {
                w.max_timestamp()
            } else {
                w.max_timestamp().saturating_add(self.lateness)
            };
            let timers = if self.processing_time {
                &mut ctx.state().processing
            } else {
                &mut ctx.state().event
            };
            timers.entry(at).or_default().insert(w);
            if self.processing_time {
                ctx.register_processing_time_timer(at);
            } else {
                ctx.register_event_time_timer(at);
            }
        }
        let report = self.report.clone();
        self.run_trigger(w, ctx, |trigger, state, tctx| {
            match trigger.on_merge(&w, states, tctx) {
                Some(merged) => *state = merged,
                None => {
                    if let Some((worker, operator)) = report {
                        worker.fail(tidal_engine::Error::config(format!(
                            "operator '{operator}': the window trigger {} cannot merge session \
                             windows (it does not implement WindowTrigger::on_merge)",
                            std::any::type_name::<T>()
                        )));
                    }
                }
            }
            TriggerResult::Continue
        });
        w
    }

    /// Drops window `w` and its timers.
    fn drop_window(&self, w: &Window, ctx: &mut Ctx<'_, K, A, V, T::State, O>) {
        let state = ctx.state();
        state.windows.remove(w);
        for t in forget_everywhere(&mut state.event, w) {
            ctx.delete_event_time_timer(t);
        }
        for t in forget_everywhere(&mut ctx.state().processing, w) {
            ctx.delete_processing_time_timer(t);
        }
    }
}

/// Removes `w` from the windows waiting for any timer; the timers none is left waiting for.
fn forget_everywhere(timers: &mut BTreeMap<Time, BTreeSet<Window>>, w: &Window) -> Vec<Time> {
    let waiting: Vec<Time> = timers
        .iter()
        .filter(|(_, ws)| ws.contains(w))
        .map(|(t, _)| *t)
        .collect();
    waiting
        .into_iter()
        .filter(|t| forget(timers, *t, w))
        .collect()
}

/// Removes `w` from the windows waiting for timer `t`; whether none is left waiting for it.
fn forget(timers: &mut BTreeMap<Time, BTreeSet<Window>>, t: Time, w: &Window) -> bool {
    let Some(windows) = timers.get_mut(&t) else {
        return false;
    };
    windows.remove(w);
    if windows.is_empty() {
        timers.remove(&t);
        true
    } else {
        false
    }
}

impl<K, V, A, O, T, Cr, Ad, Fi> KeyedProcessFunction<K, V>
    for TriggerWindows<K, V, A, O, T, Cr, Ad, Fi>
where
    K: Key,
    V: Value,
    A: Value + Serialize + DeserializeOwned,
    O: 'static,
    T: WindowTrigger<V>,
    Cr: Fn(V) -> A + 'static,
    Ad: Fn(&mut A, V) + 'static,
    Fi: Fn(&K, &Window, &A) -> O + 'static,
{
    type State = KeyWindows<A, V, T::State>;
    type Out = O;
    type Side = (K, V);

    fn open(&mut self, ctx: &RuntimeContext<'_>) -> tidal_engine::Result<()> {
        self.report = Some((Rc::clone(ctx.worker()), ctx.operator_name().to_string()));
        Ok(())
    }

    fn process_element(&mut self, value: V, ctx: &mut Ctx<'_, K, A, V, T::State, O>) {
        let watermark = ctx.current_watermark();
        let ts = if self.processing_time {
            ctx.current_processing_time()
        } else {
            ctx.timestamp()
        };
        let mut assigned = Vec::new();
        match self.windows {
            Windows::Global => assigned.push(GLOBAL),
            Windows::Session { gap } => {
                let w = self.merge_session(ts, gap, ctx);
                assigned.push(w);
            }
            windows => windows.assign(ts, &mut assigned),
        }
        if !self.processing_time {
            assigned.retain(|w| !self.expired(w, watermark));
        }
        if assigned.is_empty() {
            if self.keep_late {
                let key = ctx.key().clone();
                ctx.side_output((key, value));
            } else if let Some((worker, operator)) = &self.report {
                worker.report_late_dropped(operator, 1);
            }
            if ctx.state().windows.is_empty() {
                ctx.clear_state();
            }
            return;
        }
        let n = assigned.len();
        let mut value = Some(value);
        for (i, w) in assigned.into_iter().enumerate() {
            let v = if i + 1 == n {
                value.take().expect("taken once")
            } else {
                value.clone().expect("not taken yet")
            };
            let is_new = !ctx.state().windows.contains_key(&w);
            let (contents, _) = ctx.state().windows.entry(w).or_insert_with(|| {
                (
                    Contents {
                        acc: None,
                        records: Vec::new(),
                    },
                    T::State::default(),
                )
            });
            let trigger_value = v.clone();
            if self.keeps_records() {
                contents.records.push((v, ts));
            } else {
                match contents.acc.as_mut() {
                    Some(acc) => (self.add)(acc, v),
                    None => contents.acc = Some((self.create)(v)),
                }
            }
            // A cleanup timer: when the window is past its allowed lateness (event time), or
            // when the clock passes its end (processing time).
            if is_new && w.end != Time::MAX {
                if self.processing_time {
                    let at = w.max_timestamp();
                    ctx.state().processing.entry(at).or_default().insert(w);
                    ctx.register_processing_time_timer(at);
                } else {
                    let at = w.max_timestamp().saturating_add(self.lateness);
                    ctx.state().event.entry(at).or_default().insert(w);
                    ctx.register_event_time_timer(at);
                }
            }
            self.run_trigger(w, ctx, |trigger, state, tctx| {
                trigger.on_element(&trigger_value, ts, &w, state, tctx)
            });
        }
    }

    fn on_timer(&mut self, at: Time, domain: TimeDomain, ctx: &mut Ctx<'_, K, A, V, T::State, O>) {
        let waiting = match domain {
            TimeDomain::EventTime => ctx.state().event.remove(&at),
            TimeDomain::ProcessingTime => ctx.state().processing.remove(&at),
        };
        for w in waiting.into_iter().flatten() {
            self.run_trigger(w, ctx, |trigger, state, tctx| match domain {
                TimeDomain::EventTime => trigger.on_event_time(at, &w, state, tctx),
                TimeDomain::ProcessingTime => trigger.on_processing_time(at, &w, state, tctx),
            });
            let cleanup = match domain {
                TimeDomain::EventTime => self.expired(&w, at),
                // Processing-time windows end when the clock passes them.
                TimeDomain::ProcessingTime => {
                    self.processing_time && w.end != Time::MAX && w.max_timestamp() <= at
                }
            };
            if cleanup {
                self.drop_window(&w, ctx);
            }
        }
        if ctx.state().windows.is_empty() {
            ctx.clear_state();
        }
    }
}
