//! Keyed streams and rolling aggregates.
//!
//! A [`KeyedStream`] is a stream of `(key, value)` pairs partitioned by key. Its rolling aggregates
//! (`reduce`, `sum`, `min`, `max`, `count`, `min_by`, `max_by`, `aggregate`) produce a **changelog**:
//! at the end of every tick, the new aggregate of every key that changed in it, as `(key, aggregate)`,
//! timestamped with the latest timestamp of the key's records in that tick.
//! A sink can write that changelog, or keep only the latest value per key with
//! [`final_values`](crate::Changelog::final_values).
//!
//! All of them are built on [`rolling`], which works in two steps:
//! 1. **Combine before exchange** (on the worker that read the record): per tick, a hash map from key
//!    to partial aggregate. When the frontier passes the tick (or the map grows past a limit), the
//!    partials are sent to the workers owning their keys. The exchange carries one message per key per
//!    tick, not one per record.
//! 2. **Fold in time order** (on the owning worker): partials are buffered per tick and folded into
//!    the operator's keyed state (a [`KeyedState`](crate::build::KeyedState) of aggregates, with
//!    their last writes when the stream has a time to live) when the frontier passes the tick;
//!    then the changed keys' new aggregates are emitted at that tick. State thus always reflects
//!    exactly the input below the frontier — the property checkpoints rely on (see
//!    `tidal_engine::state`).

use std::hash::Hash;
use std::rc::Rc;

use crate::build::{FastMap, TimeBuffer};
use crate::ttl::RollingState;
use tidal_engine::{DataStream, Time, timely};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use crate::build::{Activation, keyed_operator};

/// Keys in keyed state: hashable, comparable, clonable and able to cross processes.
pub trait Key: timely::ExchangeData + Hash + Eq + Clone {}
impl<T: timely::ExchangeData + Hash + Eq + Clone> Key for T {}

/// Values and aggregates that can cross processes and be copied into the changelog.
pub trait Value: timely::ExchangeData + Clone {}
impl<T: timely::ExchangeData + Clone> Value for T {}

/// A stream of `(key, value)` pairs, partitioned by key for keyed operators.
pub struct KeyedStream<'s, K, V> {
    pub(crate) stream: DataStream<'s, (K, V)>,
    /// Time to live of per-key state in process functions (processing time since last write).
    pub(crate) state_ttl: Option<tidal_engine::Time>,
}

/// A combiner flushes its partials for a tick early once it holds this many keys: just under
/// the 57 344 (7/8 of 65 536) at which its hash table would double to 131 072 slots (5 MB of
/// `(word, count, time)` entries, beyond a core's L2 cache). Word count on 8 M words, one worker:
/// 4-7 % faster than a limit of 65 536, and less memory on two.
pub(crate) const COMBINE_LIMIT: usize = 57_000;

impl<'s, K: 'static, V: 'static> KeyedStream<'s, K, V> {
    /// A keyed stream of `(key, value)` pairs.
    pub fn new(stream: DataStream<'s, (K, V)>) -> Self {
        KeyedStream {
            stream,
            state_ttl: None,
        }
    }
    /// Lets the per-key state of a following [`process`](KeyedStream::process) function or
    /// rolling aggregate (`reduce`, `sum`, `count`, ...) expire `ttl` after it was last written
    /// (in the job's processing time): expired state is never used again — a process function
    /// gets none, an aggregate starts anew with the key's next record — and is removed, also
    /// when no record comes (as Flink's state TTL with never-return-expired). Memory then
    /// follows the keys written lately rather than every key seen (`tidal-bench ttl-memory`).
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use std::time::Duration;
    /// use tidal_engine::{JobClock, ManualClock};
    /// use tidal_operators::{KeyedProcessFunction, ProcessContext};
    /// /// Counts records per key; the clock moves `step` per record, the state lives 2.5 s.
    /// struct Count(ManualClock, Duration);
    /// impl KeyedProcessFunction<u8, u8> for Count {
    ///     type State = u32;
    ///     type Out = u32;
    ///     type Side = ();
    ///     fn process_element(&mut self, _: u8, ctx: &mut ProcessContext<'_, u8, u32, u32, ()>) {
    ///         *ctx.state() += 1;
    ///         let n = *ctx.state();
    ///         ctx.output(n);
    ///         self.0.advance(self.1);
    ///     }
    /// }
    /// let run = |step: Duration| -> Vec<u32> {
    ///     let clock = ManualClock::new(0);
    ///     let c = clock.clone();
    ///     tidal_engine::Job::local(1).with_clock(JobClock::manual(&clock)).run(move |env| {
    ///         env.from_iter(vec![0u8; 4]).key_by(|k| *k)
    ///             .with_state_ttl(Duration::from_millis(2500))
    ///             .process(Count(c.clone(), step))
    ///             .collect()
    ///     }).unwrap()
    /// };
    /// // Written every second: the state lives on.
    /// assert_eq!(run(Duration::from_secs(1)), vec![1, 2, 3, 4]);
    /// // Written every three seconds: it has always expired.
    /// assert_eq!(run(Duration::from_secs(3)), vec![1, 1, 1, 1]);
    /// ```
    pub fn with_state_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.state_ttl = Some(ttl.as_millis() as tidal_engine::Time);
        self
    }
    /// The `(key, value)` pairs as a plain stream.
    pub fn into_stream(self) -> DataStream<'s, (K, V)> {
        self.stream
    }
}

impl<'s, K: Key, V: Value> KeyedStream<'s, K, V> {
    /// Rolling reduce: `f(&mut acc, value)` folds each value into its key's aggregate.
    /// `f` must be associative (values are pre-combined on the sending worker).
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// let mut out: Vec<(u8, String)> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter(vec![(1u8, "a".to_string()), (1, "a".into()), (2, "b".into())])
    ///         .keyed()
    ///         .reduce(|acc: &mut String, v: String| acc.push_str(&v))
    ///         .final_values()
    ///         .collect()
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![(1, "aa".to_string()), (2, "b".to_string())]);
    /// ```
    pub fn reduce(self, f: impl Fn(&mut V, V) + Clone + 'static) -> DataStream<'s, (K, V)> {
        let g = f.clone();
        rolling_with_ttl(self.stream, self.state_ttl, "reduce", |v| v, f, g)
    }

    /// Rolling sum of the values per key.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// let out: Vec<(char, f64)> = tidal_engine::Job::local(1).run(|env| {
    ///     env.from_iter(vec![('x', 1.5), ('x', 2.0)]).keyed().sum().final_values().collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![('x', 3.5)]);
    /// ```
    pub fn sum(self) -> DataStream<'s, (K, V)>
    where
        V: std::ops::AddAssign,
    {
        rolling_with_ttl(
            self.stream,
            self.state_ttl,
            "sum",
            |v| v,
            |a: &mut V, v| *a += v,
            |a: &mut V, b| *a += b,
        )
    }

    /// Rolling minimum of the values per key.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// let out: Vec<(u8, i32)> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter(vec![(0u8, 5), (0, -3), (0, 9)]).keyed().min().final_values().collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![(0, -3)]);
    /// ```
    pub fn min(self) -> DataStream<'s, (K, V)>
    where
        V: PartialOrd,
    {
        let keep_min = |a: &mut V, v: V| {
            if v < *a {
                *a = v
            }
        };
        rolling_with_ttl(
            self.stream,
            self.state_ttl,
            "min",
            |v| v,
            keep_min,
            keep_min,
        )
    }

    /// Rolling maximum of the values per key.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// let out: Vec<(u8, i32)> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter(vec![(0u8, 5), (0, -3), (0, 9)]).keyed().max().final_values().collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![(0, 9)]);
    /// ```
    pub fn max(self) -> DataStream<'s, (K, V)>
    where
        V: PartialOrd,
    {
        let keep_max = |a: &mut V, v: V| {
            if v > *a {
                *a = v
            }
        };
        rolling_with_ttl(
            self.stream,
            self.state_ttl,
            "max",
            |v| v,
            keep_max,
            keep_max,
        )
    }

    /// Rolling count of records per key.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// let out: Vec<(char, u64)> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter("aab".chars()).key_by(|c| *c).count().final_values().collect()
    /// }).unwrap();
    /// let mut out = out; out.sort();
    /// assert_eq!(out, vec![('a', 2), ('b', 1)]);
    /// ```
    pub fn count(self) -> DataStream<'s, (K, u64)> {
        rolling_with_ttl(
            self.stream,
            self.state_ttl,
            "count",
            |_| 1u64,
            |a: &mut u64, _| *a += 1,
            |a: &mut u64, b| *a += b,
        )
    }

    /// Rolling record with the smallest `by(&record)` per key (the earlier one on ties, as far as
    /// arrival order is defined: records from different workers arrive in no fixed order).
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// let out: Vec<(u8, (char, u32))> = tidal_engine::Job::local(1).run(|env| {
    ///     env.from_iter(vec![(0u8, ('l', 9)), (0, ('e', 1))]).keyed().min_by(|r| r.1).final_values().collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![(0, ('e', 1))]);
    /// ```
    pub fn min_by<O: PartialOrd>(
        self,
        by: impl Fn(&V) -> O + Clone + 'static,
    ) -> DataStream<'s, (K, V)> {
        let keep = keep_if(by, std::cmp::Ordering::Less);
        rolling_with_ttl(
            self.stream,
            self.state_ttl,
            "min_by",
            |v| v,
            keep.clone(),
            keep,
        )
    }

    /// Rolling record with the largest `by(&record)` per key (the earlier one on ties).
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// let out: Vec<(u8, (char, u32))> = tidal_engine::Job::local(1).run(|env| {
    ///     env.from_iter(vec![(0u8, ('s', 1)), (0, ('b', 9))]).keyed().max_by(|r| r.1).final_values().collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![(0, ('b', 9))]);
    /// ```
    pub fn max_by<O: PartialOrd>(
        self,
        by: impl Fn(&V) -> O + Clone + 'static,
    ) -> DataStream<'s, (K, V)> {
        let keep = keep_if(by, std::cmp::Ordering::Greater);
        rolling_with_ttl(
            self.stream,
            self.state_ttl,
            "max_by",
            |v| v,
            keep.clone(),
            keep,
        )
    }

    /// Rolling aggregate with an accumulator: `create(first value)`, `add(&mut acc, value)`,
    /// `merge(&mut acc, other acc)` (associative). The changelog carries the accumulators.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// // Average per key: (sum, count) accumulators.
    /// let out: Vec<(u8, (f64, u64))> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter(vec![(0u8, 1.0), (0, 3.0)])
    ///         .keyed()
    ///         .aggregate(|v| (v, 1u64), |a, v| { a.0 += v; a.1 += 1 }, |a, b| { a.0 += b.0; a.1 += b.1 })
    ///         .final_values()
    ///         .collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![(0, (4.0, 2))]);
    /// ```
    pub fn aggregate<A: Value>(
        self,
        create: impl Fn(V) -> A + Clone + 'static,
        add: impl Fn(&mut A, V) + Clone + 'static,
        merge: impl Fn(&mut A, A) + Clone + 'static,
    ) -> DataStream<'s, (K, A)> {
        rolling_with_ttl(self.stream, self.state_ttl, "aggregate", create, add, merge)
    }

    /// [`aggregate`](Self::aggregate) whose changelog leaves out the keys whose aggregate did
    /// not change: `merge(&mut acc, other)` says whether merging changed what `acc` stands for
    /// (a maximum that a smaller value left as it was: `false`). A key's first aggregate is
    /// always emitted. For aggregates that rarely change (maxima, minima, distinct counts),
    /// downstream operators see a fraction of the records.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use tidal_engine::WatermarkStrategy;
    /// // A running maximum per key, emitted only when it rises.
    /// let mut out: Vec<(u8, u32)> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter_with(
    ///         vec![(1, 5u32), (2, 3), (3, 8), (4, 8), (5, 1)],
    ///         WatermarkStrategy::monotonous().with_timestamps(|(t, _)| *t),
    ///     )
    ///     .map(|(_, v)| (0u8, v))
    ///     .keyed()
    ///     .aggregate_changes(|v| v, |a, v| *a = (*a).max(v), |a, b| {
    ///         let changed = b > *a;
    ///         *a = (*a).max(b);
    ///         changed
    ///     })
    ///     .collect()
    /// }).unwrap();
    /// out.sort();
    /// // Each maximum at most once (records of one tick are combined first: 5 may not show).
    /// assert_eq!(out.last(), Some(&(0, 8)));
    /// assert!(out.windows(2).all(|w| w[0] != w[1]));
    /// assert!(out.iter().all(|(_, m)| *m == 5 || *m == 8));
    /// ```
    pub fn aggregate_changes<A: Value>(
        self,
        create: impl Fn(V) -> A + Clone + 'static,
        add: impl Fn(&mut A, V) + Clone + 'static,
        merge: impl Fn(&mut A, A) -> bool + Clone + 'static,
    ) -> DataStream<'s, (K, A)> {
        let m = merge.clone();
        rolling_inner(
            self.stream,
            self.state_ttl,
            "aggregate",
            create,
            add,
            move |a: &mut A, b: A| {
                m(a, b);
            },
            merge,
        )
    }
}

/// The builder under every rolling aggregate (see the module docs): combine per key and tick on
/// the sending worker, exchange partials by key, fold them into keyed state in time order, and emit
/// the changed keys' aggregates once per tick.
pub fn rolling<'s, K: Key, V: 'static, A: Value>(
    stream: DataStream<'s, (K, V)>,
    kind: &str,
    create: impl Fn(V) -> A + Clone + 'static,
    add: impl Fn(&mut A, V) + Clone + 'static,
    merge: impl Fn(&mut A, A) + Clone + 'static,
) -> DataStream<'s, (K, A)> {
    rolling_with_ttl(stream, None, kind, create, add, merge)
}

/// [`rolling`], with each key's aggregate expiring `ttl` ms of processing time after it was last
/// written (when given): the key's next record starts a new aggregate.
fn rolling_with_ttl<'s, K: Key, V: 'static, A: Value>(
    stream: DataStream<'s, (K, V)>,
    ttl: Option<Time>,
    kind: &str,
    create: impl Fn(V) -> A + Clone + 'static,
    add: impl Fn(&mut A, V) + Clone + 'static,
    merge: impl Fn(&mut A, A) + Clone + 'static,
) -> DataStream<'s, (K, A)> {
    let m = merge.clone();
    rolling_inner(
        stream,
        ttl,
        kind,
        create,
        add,
        merge,
        move |a: &mut A, b: A| {
            m(a, b);
            true
        },
    )
}

/// [`rolling_with_ttl`], folding a tick's partial of a key into its state with `into_state`,
/// which says whether the aggregate changed (the key's new aggregate is emitted only then).
#[allow(clippy::too_many_arguments)]
fn rolling_inner<'s, K: Key, V: 'static, A: Value>(
    stream: DataStream<'s, (K, V)>,
    ttl: Option<Time>,
    kind: &str,
    create: impl Fn(V) -> A + Clone + 'static,
    add: impl Fn(&mut A, V) + Clone + 'static,
    merge: impl Fn(&mut A, A) + Clone + 'static,
    into_state: impl Fn(&mut A, A) -> bool + 'static,
) -> DataStream<'s, (K, A)> {
    let ctx = Rc::clone(stream.context());
    stream.then(kind, move |input, name| {
        // Step 1: combine per key within a tick, before the exchange.
        let combined = input
            .unary_frontier::<CapacityContainerBuilder<Vec<((K, A), Time)>>, _, _, _>(
                Pipeline,
                &format!("{name}/combine"),
                move |_, _| {
                    let mut pending: TimeBuffer<FastMap<K, (A, Time)>> = TimeBuffer::new();
                    move |(input, frontier), output| {
                        let port = output.output_index();
                        input.for_each(|message, data| {
                            let Some((cap, partials)) = pending.at(&message, port) else {
                                return;
                            };
                            fold_into(partials, data.drain(..), &create, &add);
                            if partials.len() >= COMBINE_LIMIT {
                                output.session(cap).give_iterator(
                                    partials.drain().map(|(k, (a, ts))| ((k, a), ts)),
                                );
                            }
                        });
                        pending.for_each_ready(frontier, |cap, partials| {
                            output
                                .session(cap)
                                .give_iterator(partials.drain().map(|(k, (a, ts))| ((k, a), ts)));
                        });
                    }
                },
            );

        // Step 2: on the key's owner, fold partials into state in time order and emit the changes.
        let state = RollingState::<K, A>::new(name, ttl, ctx.clock());
        let (changes, _) = keyed_operator(&ctx, combined, name, state).build(move |setup| {
            let state = setup.state;
            let (clock, activator) = (setup.clock, setup.activator);
            let mut pending: TimeBuffer<FastMap<K, (A, Time)>> = TimeBuffer::new();
            move |mut act: Activation<'_, K, A, (K, A), ()>| {
                act.input.for_each(|message, data| {
                    let Some((_, partials)) = pending.at(&message, 0) else {
                        return;
                    };
                    fold_into(partials, data.drain(..), |a| a, &merge);
                });
                let mut state = state.borrow_mut();
                let RollingState { values, ttl, .. } = &mut *state;
                pending.for_each_ready(act.frontier, |cap, partials| {
                    let mut session = act.output.session(cap);
                    for (k, (a, ts)) in partials.drain() {
                        // With a time to live, an expired aggregate is not merged into.
                        if let Some(ttl) = ttl.as_mut() {
                            ttl.write(&k, clock.now(), values);
                        }
                        match values.get_mut(&k) {
                            Some(acc) => {
                                if into_state(acc, a) {
                                    session.give(((k, acc.clone()), ts));
                                }
                            }
                            None => {
                                session.give(((k.clone(), a.clone()), ts));
                                values.insert(k, a);
                            }
                        }
                    }
                });
                if let Some(ttl) = ttl.as_mut() {
                    ttl.expire(clock.now(), |k| {
                        values.remove(k);
                    });
                    if let Some(at) = ttl.next_expiry() {
                        let wait = (at - clock.now()).clamp(1, 1000) as u64;
                        activator.activate_after(std::time::Duration::from_millis(wait));
                    }
                }
            }
        });
        changes
    })
}

/// Replaces the accumulator with a new value when `by` orders it `wanted` (strictly) against it.
fn keep_if<V, O: PartialOrd>(
    by: impl Fn(&V) -> O + Clone + 'static,
    wanted: std::cmp::Ordering,
) -> impl Fn(&mut V, V) + Clone + 'static {
    move |acc: &mut V, v: V| {
        if by(&v).partial_cmp(&by(acc)) == Some(wanted) {
            *acc = v
        }
    }
}

/// Folds timestamped `(key, item)` pairs into per-key accumulators (`add` to an existing one,
/// `create` a new one), keeping the latest timestamp of each key's records.
fn fold_into<K: Key, X, A>(
    map: &mut FastMap<K, (A, Time)>,
    items: impl Iterator<Item = ((K, X), Time)>,
    create: impl Fn(X) -> A,
    add: impl Fn(&mut A, X),
) {
    use std::collections::hash_map::Entry;
    for ((k, x), ts) in items {
        // One hash per record: the entry API finds or makes the slot in one probe.
        match map.entry(k) {
            Entry::Occupied(mut e) => {
                let (acc, latest) = e.get_mut();
                add(acc, x);
                *latest = (*latest).max(ts);
            }
            Entry::Vacant(e) => {
                e.insert((create(x), ts));
            }
        }
    }
}
