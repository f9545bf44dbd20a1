//! Into collections: DataStreams of rows, of changes, of updates and of upserts become
//! [`Collection`]s at a *root*.
//!
//! A root that must know the current rows — for a changelog (to refuse the deletion of a row
//! that is not there), for upserts (to retract the older value), or whenever the job checkpoints
//! — is a keyed operator: rows are exchanged by their hash, held until the watermark passes their
//! time, then applied to the root's [`KeyedStore`] and handed to differential. Its snapshot is
//! the rows as of the cut and the updates still waiting; a restore re-inserts the rows at the
//! instant before the cut (see the [module docs](super)). An insert-only root without
//! checkpoints hands records straight to differential, each at its event time.
//!
//! A change that would drive a row's count below zero (a `-D` or `-U` of a row never inserted,
//! or deleted twice) fails the job with the row, its time and the root's name: it means the
//! changelog is not the history of a table, and silently dropping it or going negative would make
//! every result downstream wrong. (Malformed lines — an unknown kind, a missing image, a field of
//! the wrong type — are caught earlier, by the source's decoder, and follow its bad-record
//! policy.)

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use differential_dataflow::AsCollection;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::vec::Map;

use super::{Change, Collection, Row};
use crate::build::{Activation, FastMap, keyed_operator};
use tidal_engine::{DataStream, Error, Time, WorkerContext};

mod store;
use store::{RootStore, UpsertStore};

/// DataStreams that become collections.
pub trait IntoCollection<'s, T: 'static> {
    /// Each record an insertion at its event time.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<(u32, i64)> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter(vec![7u32, 7, 8]).into_collection().count().final_table().collect()
    /// }).unwrap();
    /// let mut out = out; out.sort();
    /// assert_eq!(out, vec![(7, 2), (8, 1)]);
    /// ```
    fn into_collection(self) -> Collection<'s, T>
    where
        T: Row;
}

impl<'s, T: 'static> IntoCollection<'s, T> for DataStream<'s, T> {
    fn into_collection(self) -> Collection<'s, T>
    where
        T: Row,
    {
        let ctx = Rc::clone(self.context());
        if ctx.checkpointing() {
            let updates = self.then("collection", |s, _| {
                s.map(|(row, time)| ((row, 1isize), time))
            });
            return updates_root(updates, false);
        }
        let name = self.default_name("collection");
        let inner = self
            .into_inner()
            .unary(Pipeline, &name, |_, _| {
                move |input, output| {
                    input.for_each_stamp(|cap, data| {
                        let Some(&at) = cap.least() else { return };
                        let mut session = output.session(&cap);
                        for batch in data {
                            // A late record takes effect at the earliest time still open.
                            session.give_iterator(
                                batch.drain(..).map(|(row, t)| (row, t.max(at), 1isize)),
                            );
                        }
                    });
                }
            })
            .as_collection();
        Collection { inner, ctx }
    }
}

/// Changelog streams (`+I`, `-U`, `+U`, `-D` of rows, at their event times) that become the
/// collection of rows they describe.
pub trait ChangelogIntoCollection<'s, D: 'static> {
    /// The table the changes build: `+I`/`+U` insert their row, `-U`/`-D` delete theirs. A
    /// deletion of a row that is not there fails the job (see [`collection`](crate::collection)).
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// use tidal_engine::WatermarkStrategy;
    /// let out: Vec<char> = tidal_engine::Job::local(1).run(|env| {
    ///     env.from_iter_with(
    ///         vec![(1, Change::new(RowKind::Insert, 'a')), (2, Change::new(RowKind::Insert, 'b')),
    ///              (3, Change::new(RowKind::Delete, 'a'))],
    ///         WatermarkStrategy::monotonous().with_timestamps(|(t, _)| *t),
    ///     )
    ///     .map(|(_, change)| change)
    ///     .changelog_into_collection()
    ///     .final_table()
    ///     .collect()
    /// }).unwrap();
    /// assert_eq!(out, vec!['b']);
    /// ```
    fn changelog_into_collection(self) -> Collection<'s, D>;
}

impl<'s, D: Row> ChangelogIntoCollection<'s, D> for DataStream<'s, Change<D>> {
    fn changelog_into_collection(self) -> Collection<'s, D> {
        let updates = self.then("changelog", |s, _| {
            s.map(|(change, time)| ((change.row, change.kind.diff()), time))
        });
        updates_root(updates, true)
    }
}

/// Streams of updates `(row, diff)` (at their event times) that become a collection.
pub trait UpdatesIntoCollection<'s, D: 'static> {
    /// The collection the updates build: `diff` copies of `row` come (positive) or go
    /// (negative). An update that would leave a row's count below zero fails the job.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// use tidal_engine::WatermarkStrategy;
    /// let out: Vec<(char, i64)> = tidal_engine::Job::local(1).run(|env| {
    ///     env.from_iter_with(vec![('a', 1, 3isize), ('a', 2, -1)],
    ///             WatermarkStrategy::monotonous().with_timestamps(|(_, t, _)| *t))
    ///         .map(|(row, _, diff)| (row, diff))
    ///         .updates_into_collection()
    ///         .count()
    ///         .final_table()
    ///         .collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![('a', 2)]);
    /// ```
    fn updates_into_collection(self) -> Collection<'s, D>;
}

impl<'s, D: Row> UpdatesIntoCollection<'s, D> for DataStream<'s, (D, isize)> {
    fn updates_into_collection(self) -> Collection<'s, D> {
        let updates = self.then("updates", |s, _| s.map(|x| x));
        updates_root(updates, true)
    }
}

/// Streams of upserts `(key, Some(value))` / tombstones `(key, None)` that become the table of
/// each key's latest value.
pub trait UpsertByKey<'s, K: 'static, V: 'static> {
    /// Each key's latest value: a newer value retracts the older, a tombstone (`None`) deletes
    /// the key. Upserts of one key at the same event time apply in the order they arrive.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// use tidal_engine::WatermarkStrategy;
    /// let out: Vec<(char, u32)> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter_with(
    ///         vec![(1, ('a', Some(1u32))), (2, ('b', Some(2))), (3, ('a', Some(3))), (4, ('b', None))],
    ///         WatermarkStrategy::monotonous().with_timestamps(|(t, _)| *t),
    ///     )
    ///     .map(|(_, upsert)| upsert)
    ///     .upsert_by_key()
    ///     .final_table()
    ///     .collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![('a', 3)]);
    /// ```
    fn upsert_by_key(self) -> Collection<'s, (K, V)>;

    /// [`upsert_by_key`](Self::upsert_by_key) where each key lives `ttl` of **event time** after
    /// its last upsert: a key not upserted again by then is deleted at that time (a retraction
    /// of its row, which every join, aggregate and arrangement downstream follows, so their
    /// state drops the key too). The deletion comes when the watermark passes it, before the
    /// upserts of the same time; an upsert — even of the same value — starts the key's time
    /// anew. Deterministic: the same input gives the same table at every time on any number of
    /// workers, after a restore as in one run (the last upsert time is checkpointed with each
    /// value; a snapshot taken without a time to live restores with the clock starting at the
    /// cut).
    ///
    /// At the end of a bounded input the watermark passes every time, so every key expires:
    /// the final table is empty, and the changelog shows each key's deletion at its time. The
    /// time to live bounds the state of unbounded jobs whose keys keep changing (sessions,
    /// devices, users that go quiet); it is not a filter on a finished table.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// use tidal_engine::WatermarkStrategy;
    /// let mut changes: Vec<((char, u32), i64, isize)> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter_with(
    ///         vec![(0, ('a', Some(1u32))), (50, ('b', Some(2))), (80, ('a', Some(3)))],
    ///         WatermarkStrategy::monotonous().with_timestamps(|(t, _)| *t),
    ///     )
    ///     .map(|(_, upsert)| upsert)
    ///     .upsert_by_key_with_ttl(Duration::from_millis(100))
    ///     .changes()
    ///     .collect()
    /// }).unwrap();
    /// changes.sort_by_key(|c| (c.1, c.2));
    /// assert_eq!(changes, vec![
    ///     (('a', 1), 0, 1),
    ///     (('b', 2), 50, 1),
    ///     (('a', 1), 80, -1), (('a', 3), 80, 1),
    ///     (('b', 2), 150, -1),  // 100 ms after its last upsert
    ///     (('a', 3), 180, -1),
    /// ]);
    /// ```
    fn upsert_by_key_with_ttl(self, ttl: std::time::Duration) -> Collection<'s, (K, V)>;
}

impl<'s, K: Row, V: Row> UpsertByKey<'s, K, V> for DataStream<'s, (K, Option<V>)> {
    fn upsert_by_key(self) -> Collection<'s, (K, V)> {
        upsert_root(self, None)
    }
    fn upsert_by_key_with_ttl(self, ttl: std::time::Duration) -> Collection<'s, (K, V)> {
        let ms = Time::try_from(ttl.as_millis()).unwrap_or(Time::MAX).max(1);
        upsert_root(self, Some(ms))
    }
}

/// Builds an upsert root; `ttl`: event time (ms, at least 1) a key lives after its last upsert.
fn upsert_root<'s, K: Row, V: Row>(
    upserts: DataStream<'s, (K, Option<V>)>,
    ttl: Option<Time>,
) -> Collection<'s, (K, V)> {
    let ctx = Rc::clone(upserts.context());
    let out = upserts.then("upsert", move |input, name| {
        let store = UpsertStore::<K, V>::new(ctx.checkpointing(), ttl);
        let (out, _) = keyed_operator(&ctx, input, name, store).build(|setup| {
            let store = setup.state;
            let ctx = setup.context;
            let mut staged = Staged::default();
            move |mut act: UpsertActivation<'_, K, V>| {
                staged.take_input(&mut act);
                let mut store = store.borrow_mut();
                let store = &mut *store;
                staged.restore(&mut act, |cut| {
                    store.settle_restored(cut);
                    store
                        .current
                        .iter()
                        .map(|(k, v)| ((k.clone(), v.clone()), 1))
                });
                staged.stage_into(act.frontier, |t, (k, v), at| {
                    store.pending.entry(t).or_default().push((k, v, at))
                });
                let mut out = Vec::new();
                let stopped = stopped_early(&act, &ctx);
                if !stopped {
                    let frontier = act.frontier;
                    store.release(
                        |t| !frontier.less_equal(&t),
                        |t, k, v, diff| out.push((((k, v), diff), t)),
                    );
                }
                staged.emit(&mut act, out, store.earliest());
                if stopped && act.frontier.is_empty() {
                    staged.release();
                }
            }
        });
        out
    });
    differential_of(out)
}

/// An activation of an upsert root: upserts in, updates of `(key, value)` rows out.
type UpsertActivation<'a, K, V> = Activation<'a, K, Option<V>, ((K, V), isize), ()>;

/// Builds a keyed root from updates `((row, diff), time)`; `validate`: refuse a count below zero.
fn updates_root<'s, D: Row>(
    updates: DataStream<'s, (D, isize)>,
    validate: bool,
) -> Collection<'s, D> {
    let ctx = Rc::clone(updates.context());
    let origin = updates
        .named_origin()
        .map(|o| format!(" (the collection read from '{o}')"))
        .unwrap_or_default();
    let out = updates.then("root", move |input, name| {
        let store = RootStore::<D> {
            counts: FastMap::default(),
            pending: Vec::new(),
            recent: Vec::new(),
            record: ctx.checkpointing(),
            snapshot_cut: Cell::new(Time::MIN),
            complete: None,
        };
        let root = format!("{name}{origin}");
        let fail_ctx = Rc::clone(&ctx);
        let (out, _) = keyed_operator(&ctx, input, name, store).build(|setup| {
            let store = setup.state;
            let mut staged = Staged::default();
            let mut failed = false;
            move |mut act: Activation<'_, D, isize, (D, isize), ()>| {
                staged.take_input(&mut act);
                if failed {
                    return;
                }
                let mut store = store.borrow_mut();
                let store = &mut *store;
                staged.restore(&mut act, |_| {
                    store.counts.iter().map(|(row, count)| (row.clone(), *count))
                });
                staged.stage_into(act.frontier, |t, (row, diff), at| {
                    store.pending.push((t, row, diff, at))
                });
                let mut out = Vec::new();
                let stopped = stopped_early(&act, &fail_ctx);
                let ready = if stopped { Vec::new() } else { store.take_ready(act.frontier) };
                // The changes of one time are simultaneous: a row may go below zero within a time
                // (a deletion read before its insertion), but not at its end.
                let mut below_zero: Vec<(Time, D)> = Vec::new();
                let mut i = 0;
                while i < ready.len() {
                    let t = ready[i].0;
                    while i < ready.len() && ready[i].0 == t {
                        let (_, row, diff, at) = &ready[i];
                        if store.apply(t, row, *diff, *at) < 0 && validate {
                            below_zero.push((t, row.clone()));
                        }
                        i += 1;
                    }
                    for (t, row) in below_zero.drain(..) {
                        if let Some(&count) = store.counts.get(&row)
                            && count < 0
                        {
                            fail_ctx.fail(Error::input(format!(
                                "{root}: the changes at time {t} leave row {row:?} with count {count}: the changelog is not the history of a table (a deletion or update-before of a row never inserted, or deleted twice); fix the input, or start reading it where the table's history starts"
                            )));
                            failed = true;
                            return;
                        }
                    }
                }
                out.extend(ready.into_iter().map(|(t, row, diff, _)| ((row, diff), t)));
                staged.emit(&mut act, out, store.earliest_pending());
                if stopped && act.frontier.is_empty() {
                    staged.release();
                }
            }
        });
        out
    });
    differential_of(out)
}

/// Whether the job is being stopped (Ctrl-C, SIGTERM, stop with a savepoint) rather than reading
/// its input to the end. Sources then end between records, some instances (other splits) ahead
/// of others, and the frontier moves past times whose input was not all read: the updates still
/// waiting are incomplete. They stay in the state (a savepoint holds them, a restore goes on
/// from there) instead of being released; the collection stays as of the last time its input was
/// complete. (A stop asked for after the input was read to its end, but before the last times
/// were released, keeps those times back too.)
fn stopped_early<K, V, O, D>(_act: &Activation<'_, K, V, O, D>, ctx: &WorkerContext) -> bool {
    ctx.stop_requested()
}

/// The differential collection of a root's output `((row, diff), time)`.
fn differential_of<'s, D: Row>(out: DataStream<'s, (D, isize)>) -> Collection<'s, D> {
    let ctx = Rc::clone(out.context());
    let inner = out
        .into_inner()
        .map(|((row, diff), t)| (row, t, diff))
        .as_collection();
    Collection { inner, ctx }
}

/// A root's records between their arrival and the watermark passing the time they came at
/// (operator-local: they are not yet part of the state), and the one capability the root holds:
/// at or below every time it still holds anything for.
struct Staged<U> {
    by_arrival: BTreeMap<Time, Vec<(U, Time)>>,
    cap: Option<Capability<Time>>,
}

impl<U> Default for Staged<U> {
    fn default() -> Self {
        Staged {
            by_arrival: BTreeMap::new(),
            cap: None,
        }
    }
}

impl<U: 'static> Staged<U> {
    /// Takes in what arrived, holding a capability at or below each arrival time.
    fn take_input<K, V, O, D>(&mut self, act: &mut Activation<'_, K, V, O, D>)
    where
        (K, V): Into<U>,
    {
        act.input.for_each(|message, data| {
            let Some(&at) = message.least() else { return };
            let below = self.cap.as_ref().is_none_or(|c| *c.time() > at);
            if below && let Some(cap) = message.retain_least(0) {
                self.cap = Some(cap);
            }
            let batch = self.by_arrival.entry(at).or_default();
            batch.extend(data.drain(..).map(|(kv, t)| (kv.into(), t.max(at))));
        });
    }
    /// Lets go of the capability: the job is stopping and the input has ended, so nothing more
    /// will be sent (what is still held stays in the state, unsent).
    fn release(&mut self) {
        self.cap = None;
        self.by_arrival.clear();
    }
    /// On a restored root's first activation: sends the restored rows (`rows(cut)`) at the instant
    /// before the cut, and holds a capability there for the updates restored as waiting.
    fn restore<K, V, O, D, I>(
        &mut self,
        act: &mut Activation<'_, K, V, O, D>,
        rows: impl FnOnce(Time) -> I,
    ) where
        I: Iterator<Item = O>,
    {
        let Some(initial) = act.initial.take() else {
            return;
        };
        let Some(cut) = initial.restored_cut else {
            return;
        };
        let mut cap = initial.output;
        cap.downgrade(&(cut - 1));
        act.output
            .session(&cap)
            .give_iterator(rows(cut).map(|row| (row, cut - 1)));
        if self.cap.as_ref().is_none_or(|c| c.time() > cap.time()) {
            self.cap = Some(cap);
        }
    }
    /// Moves the records whose arrival time the frontier has passed into the state, by the time
    /// each takes effect at.
    fn stage_into(
        &mut self,
        frontier: &timely::progress::frontier::MutableAntichain<Time>,
        mut into_state: impl FnMut(Time, U, Time),
    ) {
        while let Some((&at, _)) = self.by_arrival.first_key_value() {
            if frontier.less_equal(&at) {
                break;
            }
            let (at, batch) = self.by_arrival.pop_first().expect("a first entry");
            for (u, t) in batch {
                into_state(t, u, at);
            }
        }
    }
    /// Sends `out` (every record's time at or above the held capability) and moves the
    /// capability down to the earliest time still held (`pending`: the state's earliest).
    fn emit<K, V, O, D>(
        &mut self,
        act: &mut Activation<'_, K, V, O, D>,
        out: Vec<(O, Time)>,
        pending: Option<Time>,
    ) {
        let Some(cap) = self.cap.as_mut() else {
            debug_assert!(out.is_empty());
            return;
        };
        if !out.is_empty() {
            let mut out = out;
            act.output.session(&*cap).give_container(&mut out);
        }
        let staged = self.by_arrival.keys().next().copied();
        match [pending, staged].into_iter().flatten().min() {
            Some(t) => cap.downgrade(&t.max(*cap.time())),
            None => self.cap = None,
        }
    }
}
