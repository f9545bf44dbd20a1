//! The combiner before a window operator's exchange (local-global aggregation), and what it
//! sends.

use crate::build::{FastMap, TimeBuffer};
use tidal_engine::{Time, timely};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::Operator;

use crate::keyed::{COMBINE_LIMIT, Key, Value};
use crate::window::{Window, Windows};

/// What reaches a window operator that has a combiner before it.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) enum Part<V, A> {
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
pub(crate) fn combine_windows<'s, K: Key, V: Value, A: Value>(
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
pub(crate) type Combined<'s, K, V, A> =
    timely::dataflow::StreamVec<'s, Time, ((K, Part<V, A>), Time)>;

/// A combiner's partial as the window operator receives it, at its window's last timestamp.
fn partial<K, V, A>(((k, w), a): ((K, Window), A)) -> ((K, Part<V, A>), Time) {
    ((k, Part::Partial(w, a)), w.max_timestamp())
}

/// A copy of what `slot` holds, or, for its last use (`last`), the value itself: a record in
/// several windows is copied for each but the last.
pub(crate) fn take_or_clone<T: Clone>(slot: &mut Option<T>, last: bool) -> T {
    let value = if last { slot.take() } else { slot.clone() };
    value.expect("taken at its last use only")
}
