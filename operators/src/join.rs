//! Joins of two keyed streams on event time: the interval join and the window join.
//!
//! - [`ConnectedStreams::interval_join`]: every pair `(a, b)` of the same key with
//!   `a.ts + lower <= b.ts <= a.ts + upper`; the pair's timestamp is the larger of the two. Each side
//!   keeps its records until no record of the other side can match them any more (the watermark
//!   passes `a.ts + upper`, or `b.ts - lower`). Late records (at or below the watermark) are dropped
//!   and counted, as in Flink.
//! - [`ConnectedStreams::window_join`]: every pair of the same key in the same window (tumbling,
//!   sliding or session), emitted when the window fires with the window's last timestamp.

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use crate::build::{KeyedState, TimeBuffer};
use tidal_engine::{DataStream, Time};

use crate::build::{Activation, keyed_operator};
use crate::connect::{ConnectedStreams, Either};
use crate::keyed::{Key, Value};
use crate::transform::{KeyedPairs, Transform};
use crate::window::{Window, Windows};

/// Buffered records of both sides of one key, with their timestamps, in time order: the oldest
/// are dropped from the front.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(bound(serialize = "A: serde::Serialize, B: serde::Serialize"))]
#[serde(bound(deserialize = "A: serde::de::DeserializeOwned, B: serde::de::DeserializeOwned"))]
struct Buffered<A, B> {
    lefts: VecDeque<(Time, A)>,
    rights: VecDeque<(Time, B)>,
    /// When the key's next cleanup is scheduled (`Time::MAX`: none). Not part of snapshots:
    /// restoring schedules anew.
    #[serde(skip, default = "no_cleanup")]
    due: Time,
}

fn no_cleanup() -> Time {
    Time::MAX
}

impl<A, B> Default for Buffered<A, B> {
    fn default() -> Self {
        Buffered {
            lefts: VecDeque::new(),
            rights: VecDeque::new(),
            due: Time::MAX,
        }
    }
}

impl<A, B> Buffered<A, B> {
    /// When the first of the front records may be dropped, given the join's bounds: a left
    /// record once the watermark passes `ts + upper`, a right one once it passes `ts - lower`.
    fn next_expiry(&self, lower: Time, upper: Time) -> Option<Time> {
        let l = self.lefts.front().map(|(t, _)| expiry_left(*t, upper));
        let r = self.rights.front().map(|(t, _)| expiry_right(*t, lower));
        match (l, r) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Adds a record to a side's buffer, kept in time order (records mostly come in order: the place
/// is found from the back), so that the oldest are at the front to be dropped first.
fn insert_in_time_order<V>(side: &mut VecDeque<(Time, V)>, record: (Time, V)) {
    let at = side.len() - side.iter().rev().take_while(|(t, _)| *t > record.0).count();
    side.insert(at, record);
}

/// The first time at which a left record at `t` can match no future right record (never, with
/// the upper end open).
fn expiry_left(t: Time, upper: Time) -> Time {
    if upper == Time::MAX {
        return Time::MAX;
    }
    t.saturating_add(upper).saturating_add(1)
}

/// The first time at which a right record at `t` can match no future left record (never, with
/// the lower end open).
fn expiry_right(t: Time, lower: Time) -> Time {
    if lower == Time::MIN {
        return Time::MAX;
    }
    t.saturating_sub(lower).saturating_add(1)
}

/// Whether a left record at `a` and a right one at `b` are within `lower ..= upper` of each
/// other; an open end (`Time::MIN`, `Time::MAX`) limits nothing, records at the extreme times
/// too (a row whose event time is NULL is at `Time::MIN`).
fn within(a: Time, b: Time, lower: Time, upper: Time) -> bool {
    (lower == Time::MIN || a.saturating_add(lower) <= b)
        && (upper == Time::MAX || b <= a.saturating_add(upper))
}

/// Records of both inputs, as they travel: key, value, timestamp.
type Tagged<K, A, B> = ((K, Either<A, B>), Time);

impl<'s, K: Key, A: Value, B: Value> ConnectedStreams<'s, K, A, B> {
    /// Joins records of the two inputs with the same key whose timestamps satisfy
    /// `a.ts + lower <= b.ts <= a.ts + upper` (bounds inclusive, in ms; `lower` may be negative),
    /// emitting `f(key, a, b)` with the later of the two timestamps. `Time::MIN` or `Time::MAX`
    /// leaves that end open: the records it would have limited are kept as long as the job runs
    /// (with `upper = Time::MAX`, every left record), the others are still dropped as the
    /// watermark passes them. With both ends open nothing is ever dropped, late records neither:
    /// a join of every pair of a key, as a regular join of append-only inputs.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use tidal_engine::WatermarkStrategy;
    /// let mut out: Vec<(i64, i64)> = tidal_engine::Job::local(2).run(|env| {
    ///     let ts = |r: &(u8, i64)| r.1;
    ///     let clicks = env.from_iter_with(vec![(1u8, 100i64), (1, 200)], WatermarkStrategy::monotonous().with_timestamps(ts)).keyed();
    ///     let buys = env.from_iter_with(vec![(1u8, 150i64), (1, 500)], WatermarkStrategy::monotonous().with_timestamps(ts)).keyed();
    ///     // Buys within 0..=60 ms after a click.
    ///     clicks.connect(buys).interval_join(0, 60, |_, click, buy| (*click, *buy)).collect()
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![(100, 150)]);
    /// ```
    pub fn interval_join<O: 'static>(
        self,
        lower: Time,
        upper: Time,
        f: impl Fn(&K, &A, &B) -> O + 'static,
    ) -> DataStream<'s, O> {
        self.interval_join_filter_map(lower, upper, move |k, a, b| Some(f(k, a, b)))
    }

    /// [`interval_join`](Self::interval_join) emitting `f(key, a, b)` only for the pairs it
    /// returns `Some` for: a condition on both records tested as the pair is met, with
    /// nothing made for the pairs it rejects.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use tidal_engine::WatermarkStrategy;
    /// let mut out: Vec<(i64, i64)> = tidal_engine::Job::local(2).run(|env| {
    ///     let ts = |r: &(u8, i64)| r.1;
    ///     let clicks = env.from_iter_with(vec![(1u8, 100i64), (1, 200)], WatermarkStrategy::monotonous().with_timestamps(ts)).keyed();
    ///     let buys = env.from_iter_with(vec![(1u8, 150i64), (1, 230)], WatermarkStrategy::monotonous().with_timestamps(ts)).keyed();
    ///     // Buys within 0..=60 ms after a click, 10, 30 or 50 ms after it.
    ///     clicks
    ///         .connect(buys)
    ///         .interval_join_filter_map(0, 60, |_, c, b| ((b - c) % 20 == 10).then_some((*c, *b)))
    ///         .collect()
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![(100, 150), (200, 230)]);
    /// ```
    pub fn interval_join_filter_map<O: 'static>(
        self,
        lower: Time,
        upper: Time,
        f: impl Fn(&K, &A, &B) -> Option<O> + 'static,
    ) -> DataStream<'s, O> {
        let merged = self.into_either();
        let ctx = Rc::clone(merged.context());
        merged.then("interval_join", move |input, name| {
            // Buffered records of both sides, per key.
            let state = KeyedState::<K, Buffered<A, B>>::new(name);
            let (stream, _) = keyed_operator(&ctx, input, name, state).build(move |setup| {
                let state = setup.state;
                // Each time's records as the containers they came in (appending them to one
                // growing buffer copied each record, and again as the buffer grew).
                let mut pending: TimeBuffer<Vec<Vec<Tagged<K, A, B>>>> = TimeBuffer::new();
                // Keys by the time of their next cleanup: one entry per key with buffered
                // records (at most its front records' first expiry; records behind an older
                // front wait for it), so that a key's records are dropped from the front, each
                // once, as the watermark passes them.
                let mut cleanup: BTreeMap<Time, Vec<K>> = BTreeMap::new();
                let mut passed: Time = Time::MIN; // the watermark + 1 the join has acted on
                move |act: Activation<'_, K, Either<A, B>, O, ()>| {
                    let Activation {
                        input,
                        frontier,
                        output: mut out,
                        initial,
                        late_dropped,
                        ..
                    } = act;
                    input.for_each(|message, data| {
                        if let Some((_, containers)) = pending.at(&message, 0)
                            && !data.is_empty()
                        {
                            containers.push(std::mem::take(data));
                        }
                    });
                    let mut sides = state.borrow_mut();
                    // Restored: the join had acted on the watermark up to the cut; schedule the
                    // restored records' cleanup.
                    if let Some(cut) = initial.and_then(|i| i.restored_cut) {
                        passed = cut;
                        let due: Vec<(K, Time)> = sides
                            .iter()
                            .filter_map(|(k, b)| Some((k.clone(), b.next_expiry(lower, upper)?)))
                            .collect();
                        for (k, at) in due {
                            if let Some(buffered) = sides.get_mut(&k) {
                                buffered.due = at;
                            }
                            if at < Time::MAX {
                                cleanup.entry(at).or_default().push(k);
                            }
                        }
                    }
                    let reached = frontier.frontier().first().copied().unwrap_or(Time::MAX);
                    for (cap, containers) in pending.ready(frontier) {
                        passed = passed.max(*cap.time());
                        let mut session = out.session(&cap);
                        for ((k, value), ts) in containers.into_iter().flatten() {
                            // Late: its partners may be gone (unless nothing is ever dropped).
                            if ts < passed && (lower != Time::MIN || upper != Time::MAX) {
                                *late_dropped += 1;
                                continue;
                            }
                            let buffered = sides.entry(k.clone()).or_default();
                            let at = match value {
                                Either::First(a) => {
                                    for (bt, b) in buffered.rights.iter() {
                                        if within(ts, *bt, lower, upper)
                                            && let Some(o) = f(&k, &a, b)
                                        {
                                            session.give((o, ts.max(*bt)));
                                        }
                                    }
                                    insert_in_time_order(&mut buffered.lefts, (ts, a));
                                    expiry_left(ts, upper)
                                }
                                Either::Second(b) => {
                                    for (at, a) in buffered.lefts.iter() {
                                        if within(*at, ts, lower, upper)
                                            && let Some(o) = f(&k, a, &b)
                                        {
                                            session.give((o, ts.max(*at)));
                                        }
                                    }
                                    insert_in_time_order(&mut buffered.rights, (ts, b));
                                    expiry_right(ts, lower)
                                }
                            };
                            if at < buffered.due {
                                buffered.due = at;
                                cleanup.entry(at).or_default().push(k);
                            }
                        }
                    }
                    // Drop records that no future record can match: a future record has ts >= passed.
                    passed = passed.max(reached);
                    while let Some(entry) = cleanup.first_entry() {
                        if *entry.key() > passed {
                            break;
                        }
                        let (at, keys) = entry.remove_entry();
                        for k in keys {
                            let Some(buffered) = sides.get_mut(&k) else {
                                continue;
                            };
                            if buffered.due != at {
                                continue; // rescheduled earlier since: that entry acts
                            }
                            while buffered
                                .lefts
                                .front()
                                .is_some_and(|(t, _)| expiry_left(*t, upper) <= passed)
                            {
                                buffered.lefts.pop_front();
                            }
                            while buffered
                                .rights
                                .front()
                                .is_some_and(|(t, _)| expiry_right(*t, lower) <= passed)
                            {
                                buffered.rights.pop_front();
                            }
                            match buffered.next_expiry(lower, upper) {
                                None => {
                                    sides.remove(&k);
                                }
                                Some(next) => {
                                    // Records without bound (a join bounded on one side
                                    // only) are kept: nothing to schedule for them.
                                    buffered.due = next;
                                    if next < Time::MAX {
                                        cleanup.entry(next).or_default().push(k);
                                    }
                                }
                            }
                        }
                    }
                }
            });
            stream
        })
    }

    /// Joins records of the two inputs with the same key in the same window: `f(key, a, b)` for
    /// every such pair, emitted when the window fires.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use std::time::Duration;
    /// use tidal_engine::WatermarkStrategy;
    /// let mut out: Vec<(i64, i64)> = tidal_engine::Job::local(1).run(|env| {
    ///     let ts = |r: &(u8, i64)| r.1;
    ///     let a = env.from_iter_with(vec![(1u8, 1i64), (1, 12)], WatermarkStrategy::monotonous().with_timestamps(ts)).keyed();
    ///     let b = env.from_iter_with(vec![(1u8, 5i64), (1, 7), (1, 25)], WatermarkStrategy::monotonous().with_timestamps(ts)).keyed();
    ///     a.connect(b).window_join(Windows::tumbling(Duration::from_millis(10)), |_, x, y| (*x, *y)).collect()
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![(1, 5), (1, 7)]);
    /// ```
    pub fn window_join<O: 'static>(
        self,
        windows: Windows,
        f: impl Fn(&K, &A, &B) -> O + 'static,
    ) -> DataStream<'s, O> {
        type Sides<A, B> = (Vec<A>, Vec<B>);
        self.into_either()
            .keyed()
            .window(windows)
            .aggregate_with(
                |v: Either<A, B>| {
                    let mut sides: Sides<A, B> = (Vec::new(), Vec::new());
                    match v {
                        Either::First(a) => sides.0.push(a),
                        Either::Second(b) => sides.1.push(b),
                    }
                    sides
                },
                |sides: &mut Sides<A, B>, v| match v {
                    Either::First(a) => sides.0.push(a),
                    Either::Second(b) => sides.1.push(b),
                },
                |sides: &mut Sides<A, B>, mut more: Sides<A, B>| {
                    sides.0.append(&mut more.0);
                    sides.1.append(&mut more.1);
                },
                move |k: &K, _: &Window, sides: &Sides<A, B>| {
                    let mut pairs = Vec::with_capacity(sides.0.len() * sides.1.len());
                    for a in &sides.0 {
                        for b in &sides.1 {
                            pairs.push(f(k, a, b));
                        }
                    }
                    pairs
                },
            )
            .flat_map(|pairs| pairs)
    }
}
