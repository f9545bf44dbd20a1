//! The window operator: buffers input per time, folds it into the open windows of each key in
//! time order as the frontier passes, and fires each window when the frontier (or, for
//! processing-time windows, the clock) reaches its end.

use std::rc::Rc;

use std::collections::BTreeMap;

use crate::build::{FastMap, TimeBuffer};
use tidal_engine::{Time, timely};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilderSession;

use crate::build::{Activation, Initial, KeyedInput, Outputs, keyed_operator};
use crate::keyed::{Key, Value};
use crate::window::combine::take_or_clone;
use crate::window::state::{OpenWindow, SPARE_MAPS, WindowState};
use crate::window::{Trigger, Window};

#[allow(clippy::too_many_arguments)]
pub(crate) fn window_operator<'s, K: Key, V: Value, A: Value, O: 'static>(
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
) -> Outputs<'s, O, (K, V)> {
    let emit_at_end = trigger == Trigger::Time;
    let count_every = match trigger {
        Trigger::Count(n) => n.max(1),
        Trigger::Time => 0,
    };
    let state = WindowState::<K, A>::default();
    keyed_operator(ctx, input, name, state).build(move |setup| {
        let state = setup.state;
        let clock = setup.clock;
        let activator = setup.activator;
        let mut pending: TimeBuffer<Arrivals<K, V>> = TimeBuffer::new();
        // Windows with end <= `fired` have fired: the frontier reached their end.
        let mut fired: Time = Time::MIN;
        let mut assigned: Vec<Window> = Vec::new();
        move |act: Activation<'_, K, V, O, (K, V)>| {
            let Activation {
                input,
                frontier,
                output: mut main,
                side: mut late,
                initial,
                late_dropped,
                ..
            } = act;
            receive(input, &mut pending, keep_late);
            let mut state = state.borrow_mut();
            let WindowState {
                open,
                counts,
                spare,
            } = &mut *state;
            // Restored: the snapshot was taken with every window ending at or before the cut
            // fired; the others get capabilities to fire with, from the initial one.
            if let Some(Initial {
                restored_cut: Some(cut),
                output: first,
                ..
            }) = initial
            {
                fired = cut;
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
            // In time order: records sent at time t were sent when their source's watermark was
            // t - 1, so windows ending at or before t fire before they are folded (Flink's
            // in-band watermarks); then the records are folded, late ones set aside.
            let now = clock.now();
            for (cap, arrivals) in pending.ready(frontier) {
                if !processing_time {
                    fire_up_to(
                        *cap.time(),
                        open,
                        spare,
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
                    assigned.retain(|w| processing_time || w.end.saturating_add(lateness) > fired);
                    if assigned.is_empty() {
                        match (&arrivals.late_cap, keep_late) {
                            (Some(late_cap), true) => late.session(late_cap).give(((k, v), ts)),
                            _ => *late_dropped += 1,
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
                            keys: spare.pop().unwrap_or_default(),
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
                spare,
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
        }
    })
}

/// Fires the windows with end <= `limit` that have not fired yet, then forgets the windows past
/// their allowed lateness (their key maps, emptied, kept in `spare` for the next windows).
#[allow(clippy::too_many_arguments)]
fn fire_up_to<K, A, O>(
    limit: Time,
    open: &mut BTreeMap<Time, OpenWindow<K, A>>,
    spare: &mut Vec<FastMap<K, A>>,
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
        if let Some(mut gone) = open.remove(&end)
            && spare.len() < SPARE_MAPS
        {
            gone.keys.clear();
            spare.push(gone.keys);
        }
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
