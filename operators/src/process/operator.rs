//! The keyed process operator: records handled in time order as the frontier passes, event-time
//! timers fired before the records of each watermark step, processing-time timers when the clock
//! passes them.

use std::rc::Rc;
use std::time::Duration;

use crate::build::TimeBuffer;
use tidal_engine::{DataStream, JobClock, Time};
use timely::dataflow::operators::Capability;

use crate::build::{Activation, Initial, keyed_operator, timely};
use crate::function::Opened;
use crate::keyed::{Key, KeyedStream, Value};
use crate::process::named::NamedStates;
use crate::process::state::{ProcessStore, TimerQueue, Timers, TtlState};
use crate::process::{KeyedProcessFunction, ProcessContext, ProcessLifecycle, TimeDomain};
use crate::window::OutputTag;

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
        function: F,
        tag: Option<OutputTag<'s, F::Side>>,
    ) -> DataStream<'s, F::Out> {
        self.process_with_broadcast::<F, (), _>(
            function,
            tag,
            None,
            |_: &mut F, _: &mut BroadcastCall<'_, F::Out, F::Side>, _| {},
        )
    }

    /// The keyed process operator, with a broadcast input whose records every worker hands to
    /// `on_broadcast` (at each time, after the event-time timers and before the keyed records),
    /// or without one (`broadcast` is `None`). `register` registers more state of the operator
    /// under its name (called once, after the process state).
    pub(crate) fn process_with_broadcast<F, B, H>(
        self,
        function: F,
        tag: Option<OutputTag<'s, F::Side>>,
        broadcast: Option<BroadcastSide<'s, B>>,
        mut on_broadcast: H,
    ) -> DataStream<'s, F::Out>
    where
        F: KeyedProcessFunction<K, V>,
        B: timely::ExchangeData + Clone,
        H: FnMut(&mut F, &mut BroadcastCall<'_, F::Out, F::Side>, B) + 'static,
    {
        let ttl = self.state_ttl;
        let stream = self.into_stream();
        let ctx = Rc::clone(stream.context());
        let mut side_stream = None;
        let (broadcast, register) = match broadcast {
            Some((b, register)) => (Some(b.into_inner()), Some(register)),
            None => (None, None),
        };
        let out = stream.then("process", |input, name| {
            let store = ProcessStore::<K, F::State>::new(ttl, ctx.clock());
            let operator = keyed_operator(&ctx, input, name, store);
            if let Some(register) = register {
                register(name);
            }
            let (main_stream, side) =
                operator
                    .with_optional_broadcast(broadcast)
                    .build(move |setup| {
                        let store = setup.state;
                        let failure = Rc::clone(&setup.context);
                        let operator = name.to_string();
                        let mut opened =
                            Opened::new(ProcessLifecycle::new(function), setup.context, name);
                        let clock = setup.clock;
                        let activator = setup.activator;
                        // Per time: the broadcast records, then the keyed ones.
                        let mut pending: TimeBuffer<Batch<K, V, B>> = TimeBuffer::new();
                        let mut side_caps: TimeBuffer<()> = TimeBuffer::new();
                        // Capabilities (main, side) held for pending timers.
                        let mut timer_caps: Option<(Capability<Time>, Capability<Time>)> = None;
                        let mut out_buf: Vec<(F::Out, Time)> = Vec::new();
                        let mut side_buf: Vec<(F::Side, Time)> = Vec::new();
                        // Errors of named states (a restored state of another type, say).
                        let mut errors: Vec<tidal_engine::Error> = Vec::new();
                        move |act: Activation<'_, K, V, F::Out, F::Side, B>| {
                            let Activation {
                                input,
                                broadcast,
                                frontier,
                                output: mut main,
                                mut side,
                                initial,
                                ..
                            } = act;
                            let mut store = store.borrow_mut();
                            let ProcessStore {
                                values: state,
                                timers,
                                named,
                                ..
                            } = &mut *store;
                            // Restored: timers below the cut fired before the snapshot; the others
                            // fire with capabilities taken from the initial ones.
                            if let Some(Initial {
                                restored_cut: Some(cut),
                                output: main_cap,
                                side: side_cap,
                            }) = initial
                                && (!timers.event.is_empty() || !timers.processing.is_empty())
                            {
                                timer_caps = Some((main_cap.delayed(&cut), side_cap.delayed(&cut)));
                            }
                            if !opened.open_once() {
                                // Its open failed, and so does the job: the input is dropped.
                                input.for_each(|_, data| data.clear());
                                if let Some(broadcast) = broadcast {
                                    broadcast.for_each(|_, data| data.clear());
                                }
                                return;
                            }
                            let function: &mut F = &mut opened.function.0;
                            input.for_each(|message, data| {
                                if let Some((_, (_, records))) = pending.at(&message, 0) {
                                    records.append(data);
                                }
                                let _ = side_caps.at(&message, 1);
                            });
                            if let Some(broadcast) = broadcast {
                                broadcast.for_each(|message, data| {
                                    if let Some((_, (records, _))) = pending.at(&message, 0) {
                                        records.append(data);
                                    }
                                    let _ = side_caps.at(&message, 1);
                                });
                            }
                            let now = clock.now();

                            let mut ready: Vec<_> = pending.ready(frontier).collect();
                            let side_ready: Vec<(Capability<Time>, ())> =
                                side_caps.ready(frontier).collect();
                            for ((cap, (broadcast, records)), (side_cap, _)) in
                                ready.drain(..).zip(side_ready)
                            {
                                let t = *cap.time();
                                // Timers first: the records of time t were sent at watermark t - 1.
                                if let Some((main_cap, side_cap_t)) = &timer_caps {
                                    fire_event_timers(
                                        function,
                                        t,
                                        &clock,
                                        state,
                                        timers,
                                        named,
                                        &mut errors,
                                        &mut out_buf,
                                        &mut side_buf,
                                    );
                                    main.session(main_cap).give_iterator(out_buf.drain(..));
                                    side.session(side_cap_t).give_iterator(side_buf.drain(..));
                                }
                                // Then the broadcast records of time t: every worker handles
                                // them in the same order, at the same point of the keyed input.
                                for (value, ts) in broadcast {
                                    let mut call = BroadcastCall {
                                        timestamp: ts,
                                        watermark: t - 1,
                                        clock: &clock,
                                        out: &mut out_buf,
                                        side: &mut side_buf,
                                        keyed: state,
                                    };
                                    on_broadcast(function, &mut call, value);
                                }
                                // The clock is read per record only for state with a time to
                                // live: a read per record cost a seventh of a keyed join's time.
                                for ((key, value), ts) in records {
                                    let now = if state.expires() { clock.now() } else { now };
                                    state.with(key, now, |key, slot| {
                                        let mut c = ProcessContext {
                                            key,
                                            state: slot,
                                            timestamp: ts,
                                            watermark: t - 1,
                                            clock: &clock,
                                            out: &mut out_buf,
                                            side: &mut side_buf,
                                            timers,
                                            named,
                                            errors: &mut errors,
                                        };
                                        function.process_element(value, &mut c);
                                    });
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
                                    function,
                                    reached,
                                    &clock,
                                    state,
                                    timers,
                                    named,
                                    &mut errors,
                                    &mut out_buf,
                                    &mut side_buf,
                                );
                                while let Some((ts, key)) =
                                    timers.processing.pop_before(now.saturating_add(1))
                                {
                                    state.with(key, now, |key, slot| {
                                        let mut c = ProcessContext {
                                            key,
                                            state: slot,
                                            timestamp: *main_cap.time(),
                                            watermark: reached.saturating_sub(1),
                                            clock: &clock,
                                            out: &mut out_buf,
                                            side: &mut side_buf,
                                            timers,
                                            named,
                                            errors: &mut errors,
                                        };
                                        function.on_timer(ts, TimeDomain::ProcessingTime, &mut c);
                                    });
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
                            // Expired state goes now (the clock read afresh: this activation
                            // may have taken a while), and the operator wakes when more expires
                            // even if no record comes.
                            let mut wake = timers.processing.first_time();
                            if state.expires() {
                                let now = clock.now();
                                state.expire(now);
                                if let Some(at) = state.next_expiry() {
                                    wake = Some(wake.map_or(at, |w| w.min(at)));
                                }
                            }
                            if named.next_expiry().is_some() {
                                named.expire(clock.now());
                                if let Some(at) = named.next_expiry() {
                                    wake = Some(wake.map_or(at, |w| w.min(at)));
                                }
                            }
                            if let Some(e) = errors.drain(..).next() {
                                failure.fail(e.context(format!("in operator '{operator}'")));
                            }
                            if let Some(ts) = wake {
                                let wait = (ts - clock.now()).clamp(1, 1000) as u64;
                                activator.activate_after(Duration::from_millis(wait));
                            }
                            // The input has ended and every timer has fired or been dropped.
                            if frontier.is_empty() {
                                opened.close_once();
                            }
                        }
                    });
            side_stream = Some(side);
            main_stream
        });
        if let (Some(tag), Some(side)) = (tag, side_stream) {
            let name = format!("{}/side", out.operator_name());
            tag.fill(out.derive(side, name));
        }
        out
    }
}

/// A broadcast input of the keyed process operator: the stream, and what registers its state
/// (given the operator's name).
pub(crate) type BroadcastSide<'s, B> = (DataStream<'s, B>, Box<dyn FnOnce(&str)>);

/// The input of one time: broadcast records, then keyed records.
type Batch<K, V, B> = (Vec<(B, Time)>, Vec<((K, V), Time)>);

/// What the keyed process operator hands its broadcast handler with each broadcast record.
pub(crate) struct BroadcastCall<'a, O, D> {
    pub(crate) timestamp: Time,
    pub(crate) watermark: Time,
    pub(crate) clock: &'a JobClock,
    pub(crate) out: &'a mut Vec<(O, Time)>,
    pub(crate) side: &'a mut Vec<(D, Time)>,
    /// The keyed states of this worker (a `TtlState<K, S>` of the function's key and state).
    pub(crate) keyed: &'a mut dyn std::any::Any,
}

/// Calls `on_timer` for every event-time timer below `limit` (the frontier: watermark + 1), in
/// timestamp order, including timers registered meanwhile.
#[allow(clippy::too_many_arguments)]
fn fire_event_timers<K: Key, V, F: KeyedProcessFunction<K, V>>(
    function: &mut F,
    limit: Time,
    clock: &JobClock,
    state: &mut TtlState<K, F::State>,
    timers: &mut Timers<K>,
    named: &mut NamedStates<K>,
    errors: &mut Vec<tidal_engine::Error>,
    out_buf: &mut Vec<(F::Out, Time)>,
    side_buf: &mut Vec<(F::Side, Time)>,
) {
    while let Some((ts, key)) = timers.event.pop_before(limit) {
        let now = if state.expires() { clock.now() } else { 0 };
        state.with(key, now, |key, slot| {
            let mut c = ProcessContext {
                key,
                state: slot,
                timestamp: ts,
                watermark: limit.saturating_sub(1),
                clock,
                out: out_buf,
                side: side_buf,
                timers,
                named,
                errors,
            };
            function.on_timer(ts, TimeDomain::EventTime, &mut c);
        });
    }
}
