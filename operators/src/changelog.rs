//! Changelogs: streams of `(key, value)` updates where a later value replaces an earlier one.

use tidal_engine::{DataStream, KeyedState, Time, key_hash, timely};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

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
        self.then("final_values", |input, name| {
            let state_name = name.to_string();
            input.unary_frontier::<CapacityContainerBuilder<Vec<(K, V)>>, _, _, _>(
                Exchange::new(|(k, _): &(K, V)| key_hash(k)),
                name,
                move |_, _| {
                    let mut latest: KeyedState<K, (Time, V)> = KeyedState::new(state_name);
                    let mut held: Option<Capability<Time>> = None;
                    move |(input, frontier), output| {
                        let port = output.output_index();
                        input.for_each(|cap, data| {
                            let Some(&time) = cap.least() else { return };
                            match &held {
                                Some(h) if h.time() <= &time => {}
                                _ => held = cap.retain_least(port),
                            }
                            for (k, v) in data.drain(..) {
                                match latest.get_mut(&k) {
                                    Some(slot) if slot.0 <= time => *slot = (time, v),
                                    Some(_) => {}
                                    None => {
                                        latest.insert(k, (time, v));
                                    }
                                }
                            }
                        });
                        if frontier.is_empty() {
                            if let Some(cap) = held.take() {
                                output
                                    .session(&cap)
                                    .give_iterator(latest.drain().map(|(k, (_, v))| (k, v)));
                            }
                        } else if let (Some(cap), Some(least)) =
                            (held.as_mut(), frontier.frontier().first())
                        {
                            // Follow the frontier so that the held capability does not hold back time downstream.
                            if cap.time() < least {
                                cap.downgrade(least);
                            }
                        }
                    }
                },
            )
        })
    }
}
