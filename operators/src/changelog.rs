//! Changelogs: streams of `(key, value)` updates where a later value replaces an earlier one.

use crate::build::{KeyedState, TimeBuffer};
use tidal_engine::{DataStream, Time, timely};
use timely::dataflow::operators::Capability;

use crate::build::{Activation, keyed_operator};

use crate::keyed::{Key, Value};

/// Operators on changelogs (streams of `(key, value)` upserts, such as rolling aggregates).
pub trait Changelog<'s, K, V> {
    /// Keeps the latest value per key (the one with the latest time; within one time, the last to
    /// arrive) and emits every key's final value once, when the input ends (the final watermark) —
    /// for a bounded job, the final result; for an unbounded one, the result at the moment it stops.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// let mut out: Vec<(char, u64)> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter("abca".chars()).key_by(|c| *c).count().final_values().collect()
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![('a', 2), ('b', 1), ('c', 1)]);
    /// ```
    fn final_values(self) -> DataStream<'s, (K, V)>;
}

impl<'s, K: Key, V: Value> Changelog<'s, K, V> for DataStream<'s, (K, V)> {
    fn final_values(self) -> DataStream<'s, (K, V)> {
        let ctx = std::rc::Rc::clone(self.context());
        self.then("final_values", move |input, name| {
            let latest = KeyedState::<K, (V, Time)>::new(name);
            // The initial capability is held from the start, following the frontier, so that the
            // final values can be emitted even when no update arrives (all restored, say).
            let operator = keyed_operator(&ctx, input, name, latest).keep_initial_capabilities();
            let (out, _) = operator.build(|setup| {
                let latest = setup.state;
                // Each time's updates as the containers they came in (no copy into one growing
                // buffer).
                let mut pending: TimeBuffer<Chunks<K, V>> = TimeBuffer::new();
                let mut held: Option<Capability<Time>> = None;
                move |mut act: Activation<'_, K, V, (K, V), ()>| {
                    if let Some(initial) = act.initial.take() {
                        held = Some(initial.output);
                    }
                    act.input.for_each(|message, data| {
                        let Some((cap, buffer)) = pending.at(&message, 0) else {
                            return;
                        };
                        if held.as_ref().is_none_or(|h| h.time() > cap.time()) {
                            held = Some(cap.clone());
                        }
                        if !data.is_empty() {
                            buffer.push(std::mem::take(data));
                        }
                    });
                    // Fold updates into the latest values in time order: a later time wins, and
                    // within one time the later arrival.
                    let mut latest = latest.borrow_mut();
                    pending.for_each_ready(act.frontier, |_, updates| {
                        for ((k, v), ts) in updates.drain(..).flatten() {
                            // In place for a key already held: no key moved in, none dropped.
                            match latest.get_mut(&k) {
                                Some(slot) => *slot = (v, ts),
                                None => {
                                    latest.insert(k, (v, ts));
                                }
                            }
                        }
                    });
                    if act.frontier.is_empty() {
                        if let Some(cap) = held.take() {
                            act.output
                                .session(&cap)
                                .give_iterator(latest.drain().map(|(k, (v, ts))| ((k, v), ts)));
                        }
                    } else if let (Some(cap), Some(least)) =
                        (held.as_mut(), act.frontier.frontier().first())
                    {
                        // Follow the frontier so that the held capability does not hold back
                        // time downstream.
                        if cap.time() < least {
                            cap.downgrade(least);
                        }
                    }
                }
            });
            out
        })
    }
}

/// Updates of one time, as the containers they arrived in.
type Chunks<K, V> = Vec<Vec<((K, V), Time)>>;
