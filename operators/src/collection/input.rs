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
use crate::build::{
    Activation, ChangeWriter, EntryWriter, FastMap, KeyedStore, Owner, keyed_operator,
};
use tidal_engine::{DataStream, Error, Result, Time, WorkerContext};

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
}

impl<'s, K: Row, V: Row> UpsertByKey<'s, K, V> for DataStream<'s, (K, Option<V>)> {
    fn upsert_by_key(self) -> Collection<'s, (K, V)> {
        let ctx = Rc::clone(self.context());
        let out = self.then("upsert", move |input, name| {
            let store = UpsertStore::<K, V> {
                current: FastMap::default(),
                pending: BTreeMap::new(),
                recent: Vec::new(),
                record: ctx.checkpointing(),
                snapshot_cut: Cell::new(Time::MIN),
                complete: None,
            };
            let (out, _) = keyed_operator(&ctx, input, name, store).build(|setup| {
                let store = setup.state;
                let ctx = setup.context;
                let mut staged = Staged::default();
                move |mut act: UpsertActivation<'_, K, V>| {
                    staged.take_input(&mut act);
                    let mut store = store.borrow_mut();
                    let store = &mut *store;
                    staged.restore(&mut act, || {
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
                    while let Some((&t, _)) = store.pending.first_key_value() {
                        if stopped || act.frontier.less_equal(&t) {
                            break;
                        }
                        let (t, upserts) = store.pending.pop_first().expect("a first entry");
                        for (k, v, at) in upserts {
                            let Some(old) = store.apply(&k, &v, t, at) else {
                                continue;
                            };
                            if let Some(old) = old {
                                out.push((((k.clone(), old), -1), t));
                            }
                            if let Some(v) = v {
                                out.push((((k, v), 1), t));
                            }
                        }
                    }
                    staged.emit(&mut act, out, store.pending.keys().next().copied());
                    if stopped && act.frontier.is_empty() {
                        staged.release();
                    }
                }
            });
            out
        });
        differential_of(out)
    }
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
                staged.restore(&mut act, || {
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
    /// On a restored root's first activation: sends the restored rows (`rows()`) at the instant
    /// before the cut, and holds a capability there for the updates restored as waiting.
    fn restore<K, V, O, D, I>(
        &mut self,
        act: &mut Activation<'_, K, V, O, D>,
        rows: impl FnOnce() -> I,
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
            .give_iterator(rows().map(|row| (row, cut - 1)));
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

/// A root's state: the rows as of its input frontier, and the updates (from records that arrived
/// below it) waiting for the frontier to pass their time, each with the time it arrived at.
///
/// A root fed only by sources that run ahead of a checkpoint's cut (a small table read to its
/// end while a large one is still at the cut) has applied records that arrived at or after the
/// cut, which its sources will read again after a restore. So with checkpoints on, the root
/// remembers the updates it applied since the last complete checkpoint, with their arrival
/// times, and its snapshot takes back those that arrived at or after the cut: the rows it writes
/// are exactly those of the records that arrived below it.
///
/// The same memory makes incremental checkpoints cheap: the rows changed since the last complete
/// checkpoint are those of `recent` and `pending`, so a checkpoint that builds on it writes only
/// those rows' entries ([`KeyedStore::write_changes`]) — the batch of changes the collection took
/// in between the two cuts — reading nothing else of the state.
struct RootStore<D> {
    counts: FastMap<D, isize>,
    /// Updates waiting for their time: time, row, diff, arrival time (in arrival order).
    pending: Vec<(Time, D, isize, Time)>,
    /// Updates applied since the last complete checkpoint: row, diff, time, arrival time.
    recent: Vec<(D, isize, Time, Time)>,
    /// Whether to keep `recent` (the job checkpoints).
    record: bool,
    /// The cut of the latest snapshot (what `checkpoint_complete` may forget below).
    snapshot_cut: Cell<Time>,
    /// The last checkpoint known complete and its cut: `recent` holds what changed since.
    complete: Option<(u64, Time)>,
}

impl<D: Row> RootStore<D> {
    /// Removes and returns the waiting updates whose time the frontier has passed, in time order
    /// (arrival order within a time).
    fn take_ready(
        &mut self,
        frontier: &timely::progress::frontier::MutableAntichain<Time>,
    ) -> Vec<(Time, D, isize, Time)> {
        if self.pending.iter().all(|(t, ..)| frontier.less_equal(t)) {
            return Vec::new();
        }
        let (mut ready, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(t, ..)| !frontier.less_equal(t));
        self.pending = keep;
        ready.sort_by_key(|(t, ..)| *t);
        ready
    }
    /// Applies an update whose time the frontier has passed; gives the row's count after it.
    fn apply(&mut self, t: Time, row: &D, diff: isize, at: Time) -> isize {
        if self.record {
            self.recent.push((row.clone(), diff, t, at));
        }
        match self.counts.get_mut(row) {
            Some(count) => {
                *count += diff;
                let now = *count;
                if now == 0 {
                    self.counts.remove(row);
                }
                now
            }
            None => {
                self.counts.insert(row.clone(), diff);
                diff
            }
        }
    }
    /// The earliest time an update waits for.
    fn earliest_pending(&self) -> Option<Time> {
        self.pending.iter().map(|(t, ..)| *t).min()
    }
}

impl<D: Row> KeyedStore for RootStore<D> {
    type Key = D;
    /// `(None, count)`: a row and its count; `(Some(t), diff)`: an update waiting for time `t`.
    type Entry = (Option<Time>, isize);
    fn key_count(&self) -> usize {
        self.counts.len()
    }
    fn write_entries(&self, cut: Time, out: &mut EntryWriter<'_, D>) -> Result<()> {
        self.snapshot_cut.set(cut);
        // Take back what arrived at or after the cut (its sources read it again after a
        // restore), and what arrived below it for a time at or after it (it waits again).
        let mut after: FastMap<&D, isize> = FastMap::default();
        for (row, diff, t, at) in &self.recent {
            if *at >= cut || *t >= cut {
                *after.entry(row).or_insert(0) += diff;
            }
            if *at < cut && *t >= cut {
                out.entry(row, &(Some(*t), *diff))?;
            }
        }
        for (row, count) in &self.counts {
            let count = count - after.remove(row).unwrap_or(0);
            if count != 0 {
                out.entry(row, &(None::<Time>, count))?;
            }
        }
        for (row, diff) in after {
            if diff != 0 {
                out.entry(row, &(None::<Time>, -diff))?;
            }
        }
        for (t, row, diff, at) in &self.pending {
            if *at < cut {
                out.entry(row, &(Some(*t), *diff))?;
            }
        }
        Ok(())
    }
    fn write_changes(&self, cut: Time, base: u64, out: &mut ChangeWriter<'_, D>) -> Result<bool> {
        let Some(from) = changed_since(self.record, self.complete, base, cut) else {
            return Ok(false);
        };
        self.snapshot_cut.set(cut);
        // The rows whose entries may differ from the base's: those of updates that arrived, or
        // are for a time, in [from, cut). For each, what `write_entries` writes: its count as
        // of the cut and the updates waiting for their time.
        let mut changed: FastMap<&D, isize> = FastMap::default();
        for (row, _, t, at) in &self.recent {
            if moved(from, cut, *t, *at) {
                changed.insert(row, 0);
            }
        }
        for (t, row, _, at) in &self.pending {
            if moved(from, cut, *t, *at) {
                changed.insert(row, 0);
            }
        }
        for (row, diff, t, at) in &self.recent {
            if let Some(after) = changed.get_mut(row) {
                if *at >= cut || *t >= cut {
                    *after += diff;
                }
                if *at < cut && *t >= cut {
                    out.entry(row, &(Some(*t), *diff))?;
                }
            }
        }
        for (t, row, diff, at) in &self.pending {
            if *at < cut && changed.contains_key(row) {
                out.entry(row, &(Some(*t), *diff))?;
            }
        }
        for (row, after) in changed {
            let count = self.counts.get(row).copied().unwrap_or(0) - after;
            if count != 0 {
                out.entry(row, &(None::<Time>, count))?;
            } else {
                out.changed(row)?;
            }
        }
        Ok(true)
    }
    fn restore(&mut self, entries: Vec<(D, Self::Entry)>, _owner: Owner) -> Result<()> {
        for (row, (time, diff)) in entries {
            match time {
                None => *self.counts.entry(row).or_insert(0) += diff,
                Some(t) => self.pending.push((t, row, diff, Time::MIN)),
            }
        }
        self.counts.retain(|_, c| *c != 0);
        Ok(())
    }
    fn checkpoint_complete(&mut self, id: u64) -> Result<()> {
        let cut = self.snapshot_cut.get();
        self.recent.retain(|(_, _, t, at)| *at >= cut || *t >= cut);
        self.complete = Some((id, cut));
        Ok(())
    }
}

/// An upsert root's state: each key's current value, and the upserts waiting for their time
/// (with their arrival times). Like [`RootStore`], it remembers what it changed since the last
/// complete checkpoint (each key's value before), so that its snapshot is as of the cut.
struct UpsertStore<K, V> {
    current: FastMap<K, V>,
    pending: BTreeMap<Time, Vec<(K, Option<V>, Time)>>,
    /// Changes applied since the last complete checkpoint: key, value before, value after,
    /// time, arrival time.
    recent: Vec<Applied<K, V>>,
    record: bool,
    snapshot_cut: Cell<Time>,
    /// The last checkpoint known complete and its cut: `recent` holds what changed since.
    complete: Option<(u64, Time)>,
}

impl<K: Row, V: Row> UpsertStore<K, V> {
    /// The upserts of the keys `keep` accepts that a snapshot at `cut` holds as waiting (those
    /// that arrived below it for a later time, applied already or not): the last of each key
    /// and time only, which is all that decides the key's value at that time — so that a
    /// restore need not keep the order of entries.
    fn waiting_at(&self, cut: Time, keep: impl Fn(&K) -> bool) -> Vec<(&K, Time, &Option<V>)> {
        let mut last: FastMap<(&K, Time), &Option<V>> = FastMap::default();
        let applied = self
            .recent
            .iter()
            .filter(|(_, _, _, t, at)| *at < cut && *t >= cut)
            .map(|(k, _, new, t, _)| (k, *t, new));
        let waiting = self.pending.iter().flat_map(|(t, upserts)| {
            upserts
                .iter()
                .filter(|(_, _, at)| *at < cut)
                .map(move |(k, v, _)| (k, *t, v))
        });
        // In the order they were (or will be) applied: a later one replaces an earlier one.
        for (k, t, v) in applied.chain(waiting) {
            if keep(k) {
                last.insert((k, t), v);
            }
        }
        last.into_iter().map(|((k, t), v)| (k, t, v)).collect()
    }

    /// Applies an upsert whose time the frontier has passed: the key's value before it, or
    /// `None` when it changed nothing.
    fn apply(&mut self, k: &K, v: &Option<V>, t: Time, at: Time) -> Option<Option<V>> {
        let old = match v {
            Some(v) => self.current.insert(k.clone(), v.clone()),
            None => self.current.remove(k),
        };
        // Recorded even when it changed nothing: a checkpoint may hold it as waiting, and the
        // next one's changes must say it waits no more.
        if self.record {
            self.recent.push((k.clone(), old.clone(), v.clone(), t, at));
        }
        (old != *v).then_some(old)
    }
}

impl<K: Row, V: Row> KeyedStore for UpsertStore<K, V> {
    type Key = K;
    /// `(None, Some(v))`: the key's current value; `(Some(t), v)`: an upsert waiting for `t`.
    type Entry = (Option<Time>, Option<V>);
    fn key_count(&self) -> usize {
        self.current.len()
    }
    fn write_entries(&self, cut: Time, out: &mut EntryWriter<'_, K>) -> Result<()> {
        self.snapshot_cut.set(cut);
        // Each key changed by an upsert that arrived at or after the cut (read again after a
        // restore) or that is for a time at or after it goes back to its value before the first
        // such upsert; those that arrived below the cut wait again, at their times.
        let mut before: FastMap<&K, &Option<V>> = FastMap::default();
        for (k, old, _, t, at) in self.recent.iter().rev() {
            if *at >= cut || *t >= cut {
                before.insert(k, old);
            }
        }
        for (k, t, v) in self.waiting_at(cut, |_| true) {
            out.entry(k, &(Some(t), v))?;
        }
        for (k, v) in &self.current {
            match before.remove(k) {
                None => out.entry(k, &(None::<Time>, Some(v)))?,
                Some(Some(old)) => out.entry(k, &(None::<Time>, Some(old)))?,
                Some(None) => {}
            }
        }
        for (k, old) in before {
            if let Some(old) = old {
                out.entry(k, &(None::<Time>, Some(old)))?;
            }
        }
        Ok(())
    }
    fn write_changes(&self, cut: Time, base: u64, out: &mut ChangeWriter<'_, K>) -> Result<bool> {
        let Some(from) = changed_since(self.record, self.complete, base, cut) else {
            return Ok(false);
        };
        self.snapshot_cut.set(cut);
        // The keys whose entries may differ from the base's: those of upserts that arrived, or
        // are for a time, in [from, cut); each as `write_entries` writes it. `Some(old)`: the
        // key's value before the first upsert taken back at this cut.
        let mut changed: FastMap<&K, Option<&Option<V>>> = FastMap::default();
        for (k, _, _, t, at) in &self.recent {
            if moved(from, cut, *t, *at) {
                changed.insert(k, None);
            }
        }
        for (t, upserts) in &self.pending {
            for (k, _, at) in upserts {
                if moved(from, cut, *t, *at) {
                    changed.insert(k, None);
                }
            }
        }
        for (k, old, _, t, at) in self.recent.iter().rev() {
            if let Some(before) = changed.get_mut(k)
                && (*at >= cut || *t >= cut)
            {
                *before = Some(old);
            }
        }
        for (k, t, v) in self.waiting_at(cut, |k| changed.contains_key(k)) {
            out.entry(k, &(Some(t), v))?;
        }
        for (k, before) in changed {
            let value = match before {
                Some(old) => old.as_ref(),
                None => self.current.get(k),
            };
            match value {
                Some(v) => out.entry(k, &(None::<Time>, Some(v)))?,
                None => out.changed(k)?,
            }
        }
        Ok(true)
    }
    fn restore(&mut self, entries: Vec<(K, Self::Entry)>, _owner: Owner) -> Result<()> {
        for (k, (time, v)) in entries {
            match (time, v) {
                (None, Some(v)) => {
                    self.current.insert(k, v);
                }
                (None, None) => {}
                (Some(t), v) => self.pending.entry(t).or_default().push((k, v, Time::MIN)),
            }
        }
        Ok(())
    }
    fn checkpoint_complete(&mut self, id: u64) -> Result<()> {
        let cut = self.snapshot_cut.get();
        self.recent
            .retain(|(_, _, _, t, at)| *at >= cut || *t >= cut);
        self.complete = Some((id, cut));
        Ok(())
    }
}

/// The cut of checkpoint `base` when a root can write its changes since it for a checkpoint at
/// `cut`: it records what it applies (`record`), `base` is the last checkpoint it was told is
/// complete (`complete`: id and cut), and the cuts are in order.
fn changed_since(
    record: bool,
    complete: Option<(u64, Time)>,
    base: u64,
    cut: Time,
) -> Option<Time> {
    let (id, from) = complete?;
    (record && id == base && from <= cut).then_some(from)
}

/// Whether an update for time `t` that arrived at `at` plays a different part in a snapshot at
/// `cut` than in one at `from`: a snapshot applies an update that arrived and is for a time
/// below its cut, holds one that arrived below it for a later time as waiting, and leaves out
/// one that arrived at or after it. So only updates with a time or an arrival in [from, cut)
/// change their part, and only the rows (keys) they touch have other entries.
fn moved(from: Time, cut: Time, t: Time, at: Time) -> bool {
    (from..cut).contains(&t) || (from..cut).contains(&at)
}

/// An upsert applied: key, value before, value after, time, arrival time.
type Applied<K, V> = (K, Option<V>, Option<V>, Time, Time);

#[cfg(test)]
mod tests {
    use super::*;
    use tidal_engine::checkpoint::incremental::{Section, apply};
    use tidal_engine::state::{self, snapshot_changes, snapshot_store};
    use timely::progress::frontier::MutableAntichain;

    /// A small deterministic generator (xorshift), so that failures repeat.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn sorted<E: Ord>(mut entries: Vec<E>) -> Vec<E> {
        entries.sort();
        entries
    }

    /// Takes checkpoint `id` of `store` at `cut` as an incremental checkpoint would — its changes
    /// since `complete` (the last checkpoint it was told is complete) when `chain` has a base,
    /// else whole — checks that the chain with it rebuilds exactly the whole snapshot, and, when
    /// the checkpoint `completes`, adds it to the chain and tells the store. Gives 1 when it
    /// wrote changes.
    fn checkpoint_and_check<S, E>(
        store: &mut S,
        chain: &mut Vec<Section>,
        (complete, id, cut): (Option<u64>, u64, Time),
        completes: bool,
        what: &str,
    ) -> usize
    where
        S: KeyedStore<Key = u64>,
        E: Ord + serde::de::DeserializeOwned,
    {
        let whole = snapshot_store("s", &*store, cut).unwrap();
        let section = match complete.filter(|_| !chain.is_empty()) {
            Some(base) => {
                let changes = snapshot_changes("s", &*store, cut, base)
                    .unwrap()
                    .expect("the store knows what changed since its last complete checkpoint");
                Section::Changes {
                    base,
                    base_crc: 0,
                    keys: changes.keys,
                    entries: changes.entries,
                }
            }
            None => Section::Full(whole.clone()),
        };
        let wrote_changes = usize::from(matches!(section, Section::Changes { .. }));
        let mut links: Vec<&Section> = chain.iter().collect();
        links.push(&section);
        let rebuilt = apply("s", &links, "test").unwrap();
        let read = |bytes: &[u8]| -> Vec<(u64, E)> {
            sorted(state::read_sections("s", &[bytes]).unwrap())
        };
        assert!(
            read(&rebuilt) == read(&whole),
            "{what}: the chain does not rebuild the snapshot"
        );
        if completes {
            if matches!(section, Section::Full(_)) {
                chain.clear();
            }
            chain.push(section);
            store.checkpoint_complete(id).unwrap();
        }
        wrote_changes
    }

    /// The root's discipline, driven by hand: updates arrive (at the frontier, for times at or
    /// after it), the frontier moves, ready updates are applied; checkpoints are taken at cuts
    /// at or a little below the frontier (a root fed by a source that ran ahead), and some
    /// fail. At every checkpoint the chain of changes sections, applied on the last full one,
    /// gives exactly the whole snapshot.
    #[test]
    fn changes_since_the_last_complete_checkpoint_rebuild_the_whole_snapshot() {
        drive::<_, (Option<Time>, isize)>(
            0x9E37_79B9_7F4A_7C15,
            || RootStore::<u64> {
                counts: FastMap::default(),
                pending: Vec::new(),
                recent: Vec::new(),
                record: true,
                snapshot_cut: Cell::new(Time::MIN),
                complete: None,
            },
            |store, rng, frontier| {
                let row = rng.below(40);
                let diff = if rng.below(3) == 0 { -1 } else { 1 };
                let t = frontier + rng.below(4) as Time;
                store.pending.push((t, row, diff, frontier));
            },
            |store, frontier| {
                for (t, row, diff, at) in store.take_ready(&MutableAntichain::from_elem(frontier)) {
                    store.apply(t, &row, diff, at);
                }
            },
            |store| store.complete.map(|(id, _)| id),
        );
    }

    /// The same for an upsert root: keys set, changed and deleted, checkpoints at or below the
    /// frontier, some failing.
    #[test]
    fn upsert_changes_since_the_last_complete_checkpoint_rebuild_the_whole_snapshot() {
        drive::<_, (Option<Time>, Option<u64>)>(
            0x2545_F491_4F6C_DD1D,
            || UpsertStore::<u64, u64> {
                current: FastMap::default(),
                pending: BTreeMap::new(),
                recent: Vec::new(),
                record: true,
                snapshot_cut: Cell::new(Time::MIN),
                complete: None,
            },
            |store, rng, frontier| {
                let k = rng.below(40);
                let v = (rng.below(4) != 0).then(|| rng.below(3));
                let t = frontier + rng.below(4) as Time;
                store.pending.entry(t).or_default().push((k, v, frontier));
            },
            |store, frontier| {
                while let Some((&t, _)) = store.pending.first_key_value() {
                    if t >= frontier {
                        break;
                    }
                    let (t, upserts) = store.pending.pop_first().expect("a first entry");
                    for (k, v, at) in upserts {
                        store.apply(&k, &v, t, at);
                    }
                }
            },
            |store| store.complete.map(|(id, _)| id),
        );
    }

    /// Drives a root store through 20 seeds of 40 checkpoints: up to 30 updates arrive at the
    /// frontier (`arrive`), the frontier moves by 1 to 3 and ready updates are applied
    /// (`release`), and a checkpoint is taken at a cut up to 2 below the frontier (a root fed by a
    /// source that ran ahead), never below the last; one in five fails. Every checkpoint is
    /// checked with [`checkpoint_and_check`]; most must have been written as changes.
    fn drive<S, E>(
        salt: u64,
        new: impl Fn() -> S,
        mut arrive: impl FnMut(&mut S, &mut Rng, Time),
        mut release: impl FnMut(&mut S, Time),
        complete: impl Fn(&S) -> Option<u64>,
    ) where
        S: KeyedStore<Key = u64>,
        E: Ord + serde::de::DeserializeOwned,
    {
        for seed in 1..=20u64 {
            let mut rng = Rng(seed.wrapping_mul(salt));
            let mut store = new();
            let mut chain: Vec<Section> = Vec::new();
            let (mut frontier, mut last_cut): (Time, Time) = (0, 0);
            let mut changes_written = 0;
            for id in 1..=40u64 {
                for _ in 0..rng.below(30) {
                    arrive(&mut store, &mut rng, frontier);
                }
                frontier += 1 + rng.below(3) as Time;
                release(&mut store, frontier);
                let cut = (frontier - rng.below(3) as Time).max(last_cut);
                last_cut = cut;
                let base = complete(&store);
                changes_written += checkpoint_and_check::<_, E>(
                    &mut store,
                    &mut chain,
                    (base, id, cut),
                    rng.below(5) != 0,
                    &format!("seed {seed}, checkpoint {id}"),
                );
            }
            assert!(
                changes_written > 20,
                "seed {seed}: {changes_written} changes sections"
            );
        }
    }
}
