//! The roots' keyed state: [`RootStore`] (rows and their counts, for changelogs and updates) and
//! [`UpsertStore`] (each key's current value), each with the updates still waiting for their
//! time, and what they changed since the last complete checkpoint — so that a snapshot is as of
//! its cut and an incremental checkpoint writes only the rows changed since its base.

use std::cell::Cell;
use std::collections::BTreeMap;

use super::super::Row;
use crate::build::{ChangeWriter, EntryWriter, FastMap, KeyedStore, Owner};
use crate::ttl::Expiry;
use tidal_engine::{Result, Time};

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
pub(super) struct RootStore<D> {
    pub(super) counts: FastMap<D, isize>,
    /// Updates waiting for their time: time, row, diff, arrival time (in arrival order).
    pub(super) pending: Vec<(Time, D, isize, Time)>,
    /// Updates applied since the last complete checkpoint: row, diff, time, arrival time.
    pub(super) recent: Vec<(D, isize, Time, Time)>,
    /// Whether to keep `recent` (the job checkpoints).
    pub(super) record: bool,
    /// The cut of the latest snapshot (what `checkpoint_complete` may forget below).
    pub(super) snapshot_cut: Cell<Time>,
    /// The last checkpoint known complete and its cut: `recent` holds what changed since.
    pub(super) complete: Option<(u64, Time)>,
}

impl<D: Row> RootStore<D> {
    /// Removes and returns the waiting updates whose time the frontier has passed, in time order
    /// (arrival order within a time).
    pub(super) fn take_ready(
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
    pub(super) fn apply(&mut self, t: Time, row: &D, diff: isize, at: Time) -> isize {
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
    pub(super) fn earliest_pending(&self) -> Option<Time> {
        self.pending.iter().map(|(t, ..)| *t).min()
    }
}

impl<D: Row> RootStore<D> {
    /// Writes the entries of a snapshot as of `cut` (what `write_entries` writes, without noting
    /// the cut).
    fn entries_as_of(&self, cut: Time, out: &mut EntryWriter<'_, D>) -> Result<()> {
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
        self.entries_as_of(cut, out)
    }
    fn encoded_bytes(&self) -> Option<u64> {
        tidal_engine::state::measure_entries(|out| self.entries_as_of(Time::MAX, out))
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
///
/// With a time to live (`expiry`), each key's value is deleted `ttl` of event time after its last
/// upsert: the deletion is an update at that time, applied when the frontier passes it, before
/// the upserts of the same time. A snapshot writes each key's last upsert time with its value, so
/// that a restore expires it when the first run would have.
pub(super) struct UpsertStore<K, V> {
    pub(super) current: FastMap<K, V>,
    pub(super) pending: BTreeMap<Time, Vec<(K, Option<V>, Time)>>,
    /// Changes applied since the last complete checkpoint (when `record`).
    pub(super) recent: Vec<Applied<K, V>>,
    pub(super) record: bool,
    pub(super) snapshot_cut: Cell<Time>,
    /// The last checkpoint known complete and its cut: `recent` holds what changed since.
    pub(super) complete: Option<(u64, Time)>,
    /// With a time to live: each key's last upsert (event time) and when keys expire.
    pub(super) expiry: Option<Expiry<K>>,
    /// Keys restored without a last upsert time (from a snapshot taken without a time to live):
    /// their time to live starts at the restore ([`UpsertStore::settle_restored`]).
    pub(super) unstamped: Vec<K>,
}

impl<K: Row, V: Row> UpsertStore<K, V> {
    /// An empty store; `record`: remember changes for checkpoints; `ttl`: event time a key lives
    /// after its last upsert.
    pub(super) fn new(record: bool, ttl: Option<Time>) -> Self {
        UpsertStore {
            current: FastMap::default(),
            pending: BTreeMap::new(),
            recent: Vec::new(),
            record,
            snapshot_cut: Cell::new(Time::MIN),
            complete: None,
            expiry: ttl.map(Expiry::new),
            unstamped: Vec::new(),
        }
    }

    /// The upserts of the keys `keep` accepts that a snapshot at `cut` holds as waiting (those
    /// that arrived below it for a later time, applied already or not): the last of each key
    /// and time only, which is all that decides the key's value at that time — so that a
    /// restore need not keep the order of entries. (Expiries are never waiting: they follow
    /// from the last upsert time written with each value; they arrive at their own time.)
    pub(super) fn waiting_at(
        &self,
        cut: Time,
        keep: impl Fn(&K) -> bool,
    ) -> Vec<(&K, Time, &Option<V>)> {
        let mut last: FastMap<(&K, Time), &Option<V>> = FastMap::default();
        let applied = self
            .recent
            .iter()
            .filter(|a| a.at < cut && a.t >= cut)
            .map(|a| (&a.key, a.t, &a.new));
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
    pub(super) fn apply(&mut self, k: &K, v: &Option<V>, t: Time, at: Time) -> Option<Option<V>> {
        let old = match v {
            Some(v) => self.current.insert(k.clone(), v.clone()),
            None => self.current.remove(k),
        };
        let written_before = match self.expiry.as_mut() {
            Some(expiry) => {
                let before = expiry.written(k);
                match v {
                    Some(_) => expiry.wrote(k, t),
                    None => expiry.forget(k),
                }
                before
            }
            None => None,
        };
        // Recorded even when it changed nothing: a checkpoint may hold it as waiting, and the
        // next one's changes must say it waits no more.
        if self.record {
            self.recent.push(Applied {
                key: k.clone(),
                old: old.clone(),
                new: v.clone(),
                t,
                at,
                written_before,
            });
        }
        (old != *v).then_some(old)
    }

    /// Applies, in time order, the expiries and the waiting upserts of every time `ready`
    /// accepts (the frontier has passed it), expiries of a time before its upserts, and hands
    /// each change of a row to `emit` as `(time, key, value, diff)`.
    pub(super) fn release(
        &mut self,
        ready: impl Fn(Time) -> bool,
        mut emit: impl FnMut(Time, K, V, isize),
    ) {
        loop {
            let upserts = self.pending.first_key_value().map(|(t, _)| *t);
            let expiries = self.next_expiry();
            let Some(t) = [upserts, expiries].into_iter().flatten().min() else {
                return;
            };
            if !ready(t) {
                return;
            }
            if expiries == Some(t) {
                self.expire(t, &mut emit);
            }
            if upserts == Some(t) {
                let (t, upserts) = self.pending.pop_first().expect("a first entry");
                for (k, v, at) in upserts {
                    let Some(old) = self.apply(&k, &v, t, at) else {
                        continue;
                    };
                    if let Some(old) = old {
                        emit(t, k.clone(), old, -1);
                    }
                    if let Some(v) = v {
                        emit(t, k, v, 1);
                    }
                }
            }
        }
    }

    /// Deletes the keys whose time to live ends at or before `t`, each at the time it ends.
    fn expire(&mut self, t: Time, emit: &mut impl FnMut(Time, K, V, isize)) {
        let Some(expiry) = self.expiry.as_mut() else {
            return;
        };
        let ttl = expiry.ttl();
        let (current, recent, record) = (&mut self.current, &mut self.recent, self.record);
        expiry.expire_written(t, |k, written| {
            let Some(old) = current.remove(k) else {
                return;
            };
            let at = written.saturating_add(ttl);
            if record {
                // Its arrival is its own time: taken back by a snapshot whose cut is at or
                // below it, never held as waiting.
                recent.push(Applied {
                    key: k.clone(),
                    old: Some(old.clone()),
                    new: None,
                    t: at,
                    at,
                    written_before: Some(written),
                });
            }
            emit(at, k.clone(), old, -1);
        });
    }

    /// When the next key may expire.
    pub(super) fn next_expiry(&self) -> Option<Time> {
        self.expiry.as_ref().and_then(Expiry::next_expiry)
    }

    /// The earliest time the store holds anything for: an upsert waiting, or an expiry.
    pub(super) fn earliest(&self) -> Option<Time> {
        let upserts = self.pending.keys().next().copied();
        [upserts, self.next_expiry()].into_iter().flatten().min()
    }

    /// After a restore at `cut`: keys restored without a last upsert time live from the instant
    /// before the cut, and keys whose time to live ended before it (kept past their end by a
    /// job stopped early) are dropped — the restored table is as of the instant before the cut.
    pub(super) fn settle_restored(&mut self, cut: Time) {
        let Some(expiry) = self.expiry.as_mut() else {
            self.unstamped.clear();
            return;
        };
        for k in self.unstamped.drain(..) {
            expiry.wrote(&k, cut - 1);
        }
        let current = &mut self.current;
        expiry.expire(cut - 1, |k| {
            current.remove(k);
        });
    }

    /// A key's entry in a snapshot: its value and, with a time to live, its last upsert time.
    fn value_entry<'v>(&self, value: &'v V, written: Option<Time>) -> UpsertEntry<&'v V> {
        match written.filter(|_| self.expiry.is_some()) {
            Some(w) => UpsertEntry::Written(value, w),
            None => UpsertEntry::Current(Some(value)),
        }
    }
}

/// An upsert root's snapshot entry. The first two variants encode (postcard) exactly as the
/// `(Option<Time>, Option<V>)` pair that snapshots held before keys could expire — `(None, v)`
/// and `(Some(t), v)` — so those still restore.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub(super) enum UpsertEntry<V> {
    /// The key's current value (`None`: none).
    Current(Option<V>),
    /// An upsert waiting for its time.
    Waiting(Time, Option<V>),
    /// The key's current value and its last upsert time (with a time to live).
    Written(V, Time),
}

impl<K: Row, V: Row> UpsertStore<K, V> {
    /// Writes the entries of a snapshot as of `cut` (what `write_entries` writes, without noting
    /// the cut).
    fn entries_as_of(&self, cut: Time, out: &mut EntryWriter<'_, K>) -> Result<()> {
        // Each key changed by an upsert (or expiry) that arrived at or after the cut (read
        // again after a restore) or that is for a time at or after it goes back to its value
        // (and last upsert time) before the first such change; upserts that arrived below the
        // cut wait again, at their times.
        let mut before: FastMap<&K, (&Option<V>, Option<Time>)> = FastMap::default();
        for a in self.recent.iter().rev() {
            if a.at >= cut || a.t >= cut {
                before.insert(&a.key, (&a.old, a.written_before));
            }
        }
        for (k, t, v) in self.waiting_at(cut, |_| true) {
            out.entry(k, &UpsertEntry::Waiting(t, v.as_ref()))?;
        }
        let written = |k: &K| self.expiry.as_ref().and_then(|e| e.written(k));
        for (k, v) in &self.current {
            match before.remove(k) {
                None => out.entry(k, &self.value_entry(v, written(k)))?,
                Some((Some(old), w)) => out.entry(k, &self.value_entry(old, w))?,
                Some((None, _)) => {}
            }
        }
        for (k, (old, w)) in before {
            if let Some(old) = old {
                out.entry(k, &self.value_entry(old, w))?;
            }
        }
        Ok(())
    }
}

impl<K: Row, V: Row> KeyedStore for UpsertStore<K, V> {
    type Key = K;
    type Entry = UpsertEntry<V>;
    fn key_count(&self) -> usize {
        self.current.len()
    }
    fn write_entries(&self, cut: Time, out: &mut EntryWriter<'_, K>) -> Result<()> {
        self.snapshot_cut.set(cut);
        self.entries_as_of(cut, out)
    }
    fn encoded_bytes(&self) -> Option<u64> {
        tidal_engine::state::measure_entries(|out| self.entries_as_of(Time::MAX, out))
    }
    fn write_changes(&self, cut: Time, base: u64, out: &mut ChangeWriter<'_, K>) -> Result<bool> {
        let Some(from) = changed_since(self.record, self.complete, base, cut) else {
            return Ok(false);
        };
        self.snapshot_cut.set(cut);
        // The keys whose entries may differ from the base's: those of upserts (and expiries)
        // that arrived, or are for a time, in [from, cut); each as `write_entries` writes it.
        // `Some(..)`: the key's value and last upsert time before the first change taken back at
        // this cut.
        type Before<'a, V> = Option<(&'a Option<V>, Option<Time>)>;
        let mut changed: FastMap<&K, Before<'_, V>> = FastMap::default();
        for a in &self.recent {
            if moved(from, cut, a.t, a.at) {
                changed.insert(&a.key, None);
            }
        }
        for (t, upserts) in &self.pending {
            for (k, _, at) in upserts {
                if moved(from, cut, *t, *at) {
                    changed.insert(k, None);
                }
            }
        }
        for a in self.recent.iter().rev() {
            if let Some(before) = changed.get_mut(&a.key)
                && (a.at >= cut || a.t >= cut)
            {
                *before = Some((&a.old, a.written_before));
            }
        }
        for (k, t, v) in self.waiting_at(cut, |k| changed.contains_key(k)) {
            out.entry(k, &UpsertEntry::Waiting(t, v.as_ref()))?;
        }
        for (k, before) in changed {
            let (value, written) = match before {
                Some((old, w)) => (old.as_ref(), w),
                None => (
                    self.current.get(k),
                    self.expiry.as_ref().and_then(|e| e.written(k)),
                ),
            };
            match value {
                Some(v) => out.entry(k, &self.value_entry(v, written))?,
                None => out.changed(k)?,
            }
        }
        Ok(true)
    }
    fn restore(&mut self, entries: Vec<(K, Self::Entry)>, _owner: Owner) -> Result<()> {
        for (k, entry) in entries {
            match entry {
                UpsertEntry::Current(Some(v)) => {
                    if self.expiry.is_some() {
                        self.unstamped.push(k.clone());
                    }
                    self.current.insert(k, v);
                }
                UpsertEntry::Current(None) => {}
                UpsertEntry::Written(v, w) => {
                    if let Some(expiry) = self.expiry.as_mut() {
                        expiry.wrote(&k, w);
                    }
                    self.current.insert(k, v);
                }
                UpsertEntry::Waiting(t, v) => {
                    self.pending.entry(t).or_default().push((k, v, Time::MIN))
                }
            }
        }
        Ok(())
    }
    fn checkpoint_complete(&mut self, id: u64) -> Result<()> {
        let cut = self.snapshot_cut.get();
        self.recent.retain(|a| a.at >= cut || a.t >= cut);
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

/// A change an upsert root applied: an upsert, or an expiry (no value after; it arrives at its
/// own time).
pub(super) struct Applied<K, V> {
    key: K,
    /// The value before.
    old: Option<V>,
    /// The value after.
    new: Option<V>,
    /// Its time.
    t: Time,
    /// Its arrival time.
    at: Time,
    /// The key's last upsert time before (with a time to live).
    written_before: Option<Time>,
}

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
    /// frontier, some failing — without and with a time to live (keys expiring between and
    /// across cuts).
    #[test]
    fn upsert_changes_since_the_last_complete_checkpoint_rebuild_the_whole_snapshot() {
        for ttl in [None, Some(3), Some(6)] {
            drive::<_, UpsertEntry<u64>>(
                0x2545_F491_4F6C_DD1D ^ ttl.unwrap_or(0) as u64,
                || UpsertStore::<u64, u64>::new(true, ttl),
                |store, rng, frontier| {
                    let k = rng.below(40);
                    let v = (rng.below(4) != 0).then(|| rng.below(3));
                    let t = frontier + rng.below(4) as Time;
                    store.pending.entry(t).or_default().push((k, v, frontier));
                },
                |store, frontier| store.release(|t| t < frontier, |_, _, _, _| {}),
                |store| store.complete.map(|(id, _)| id),
            );
        }
    }

    /// A snapshot taken with a time to live and restored holds each key's last upsert time:
    /// the restored store expires the keys when the first would have, and drops those whose
    /// time ended before the cut. One taken without restores with the clock starting at the cut.
    #[test]
    fn restored_upserts_expire_when_the_first_run_would_have() {
        let mut first = UpsertStore::<u64, u64>::new(true, Some(10));
        for (t, k) in [(1, 1u64), (4, 2), (6, 1)] {
            first
                .pending
                .entry(t)
                .or_default()
                .push((k, Some(k * 100), t));
        }
        let mut changes = Vec::new();
        first.release(|t| t < 8, |t, k, _, diff| changes.push((t, k, diff)));
        // Key 1's second upsert (the same value) changes no row but starts its time anew.
        assert_eq!(changes, vec![(1, 1, 1), (4, 2, 1)]);
        let bytes = snapshot_store("s", &first, 8).unwrap();
        let entries: Vec<(u64, UpsertEntry<u64>)> =
            sorted(state::read_sections("s", &[&bytes[..]]).unwrap());
        assert_eq!(
            entries,
            vec![
                (1, UpsertEntry::Written(100, 6)),
                (2, UpsertEntry::Written(200, 4))
            ]
        );
        let mut restored = UpsertStore::<u64, u64>::new(true, Some(10));
        restored
            .restore(entries.clone(), Owner { index: 0, peers: 1 })
            .unwrap();
        restored.settle_restored(8);
        let mut out = Vec::new();
        restored.release(|t| t < 100, |t, k, v, diff| out.push((t, k, v, diff)));
        assert_eq!(out, vec![(14, 2, 200, -1), (16, 1, 100, -1)]);
        // Restored at a later cut (a job stopped with key 2's expiry due): dropped on restore.
        let mut late = UpsertStore::<u64, u64>::new(true, Some(10));
        late.restore(entries, Owner { index: 0, peers: 1 }).unwrap();
        late.settle_restored(15);
        assert_eq!(late.current.keys().collect::<Vec<_>>(), vec![&1]);
        // Entries of a store without a time to live: (None, Some(v)) as it wrote them.
        let old: Vec<u8> = postcard::to_allocvec(&(None::<Time>, Some(7u64))).unwrap();
        let read: UpsertEntry<u64> = postcard::from_bytes(&old).unwrap();
        assert_eq!(read, UpsertEntry::Current(Some(7)));
        let waiting: Vec<u8> = postcard::to_allocvec(&(Some(-3 as Time), None::<u64>)).unwrap();
        let read: UpsertEntry<u64> = postcard::from_bytes(&waiting).unwrap();
        assert_eq!(read, UpsertEntry::Waiting(-3, None));
        let mut stamped = UpsertStore::<u64, u64>::new(true, Some(10));
        stamped
            .restore(
                vec![(5, UpsertEntry::Current(Some(7)))],
                Owner { index: 0, peers: 1 },
            )
            .unwrap();
        stamped.settle_restored(20);
        let mut out = Vec::new();
        stamped.release(|t| t < 100, |t, k, _, diff| out.push((t, k, diff)));
        assert_eq!(
            out,
            vec![(29, 5, -1)],
            "lives from the instant before the cut"
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
