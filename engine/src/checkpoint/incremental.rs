//! Incremental checkpoints: each worker writes, per state, only what changed since its part of the
//! last complete checkpoint.
//!
//! A state's snapshot is a set of encoded `(key, value)` entries (snapshot format 2 tells them
//! apart without knowing their types). A worker remembers, for each state, a 128-bit hash
//! (XXH3) of every entry of its last complete checkpoint. At the next checkpoint it encodes the
//! state as usual and writes a **delta** against that one: the entries whose hash is new, and the
//! hashes of the entries that are gone. A changed value is one of each. The part names the
//! checkpoint the delta builds on and that part's CRC-32, so a base that was overwritten is
//! detected, never silently built on.
//!
//! What it costs and saves: the bytes written (and sent to S3) follow the number of entries that
//! changed, not the state size; encoding and hashing still read the whole state (memory speed),
//! and the worker keeps ~16 bytes plus a hash-map slot per entry. A chain of deltas is cut by a
//! full section when the deltas since the last full one would outweigh a full one, or after
//! [`MAX_LINKS`] links, so restoring reads at most about twice the state. The first checkpoint of
//! a run, savepoints, and checkpoints after a failed one's base are full.
//!
//! A store that knows what it changed since a checkpoint
//! ([`KeyedStore::write_changes`](crate::state::KeyedStore::write_changes), as the roots of
//! incremental collections do) writes a **changes** section instead: every entry now of each key
//! it changed since the base, and the changed keys left with none. Then not even the snapshot
//! reads the whole state: the cost of the checkpoint follows the changes. The worker keeps no hashes for such a state.
//! The chain rules are the same; the size that a chain's deltas are weighed against is that of
//! its full section.
//!
//! Restoring walks each delta back to its full section (reading the base checkpoints' parts of
//! the same worker), applies the deltas in order and hands operators the whole state, as if the
//! checkpoint were full. The manifest lists the checkpoints a checkpoint needs (`needs`); pruning
//! keeps them as long as a kept checkpoint needs them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

use crate::error::{Error, Result};
use crate::state::hash::FastMap;
use crate::state::{self, Changes, RawEntry};

/// The longest chain of deltas on one full section.
pub const MAX_LINKS: usize = 16;

/// A state's section in a stored checkpoint part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Section {
    /// Every entry as of the cut: a keyed-state snapshot.
    Full(Vec<u8>),
    /// What changed since the same worker's part of checkpoint `base`.
    Delta {
        /// The checkpoint this builds on.
        base: u64,
        /// CRC-32 of that worker's part file of `base` (it must be the same file).
        base_crc: u32,
        /// A keyed-state snapshot of the entries added (or changed).
        added: Vec<u8>,
        /// 16-byte hashes of the entries removed (or changed), one after another.
        removed: Vec<u8>,
    },
    /// What the state's store wrote as changed since the same worker's part of checkpoint
    /// `base`: restoring drops the base's entries of the changed keys and adds `entries`.
    Changes {
        /// The checkpoint this builds on.
        base: u64,
        /// CRC-32 of that worker's part file of `base`.
        base_crc: u32,
        /// The encodings of the changed keys left with no entries, each with its length (a
        /// varint) in front.
        keys: Vec<u8>,
        /// A keyed-state snapshot of every entry of the other changed keys.
        entries: Vec<u8>,
    },
}

impl Section {
    /// Bytes this section takes in its part.
    pub fn stored_bytes(&self) -> usize {
        match self {
            Section::Full(bytes) => bytes.len(),
            Section::Delta { added, removed, .. } => added.len() + removed.len(),
            Section::Changes { keys, entries, .. } => keys.len() + entries.len(),
        }
    }
    /// The checkpoint (and its part's CRC-32) a delta or changes section builds on.
    pub fn base(&self) -> Option<(u64, u32)> {
        match self {
            Section::Full(_) => None,
            Section::Delta { base, base_crc, .. } | Section::Changes { base, base_crc, .. } => {
                Some((*base, *base_crc))
            }
        }
    }
}

/// A state's snapshot for one checkpoint as its worker took it: whole, or what its store changed
/// since checkpoint `base`.
pub(crate) enum Taken {
    Whole(Vec<u8>),
    Changes { base: u64, changes: Changes },
}

/// Each state's section of a part, by state name.
pub type Sections = Vec<(String, Section)>;

/// Per entry hash: how many entries have it.
type Hashes = FastMap<u128, u32>;

fn hashes_of(entries: &[RawEntry<'_>]) -> Hashes {
    let mut hashes = Hashes::with_capacity_and_hasher(entries.len(), Default::default());
    for entry in entries {
        *hashes.entry(xxh3_128(entry.bytes)).or_insert(0) += 1;
    }
    hashes
}

/// What a worker knows of one state's chain as of one checkpoint.
struct Chain {
    /// The checkpoints holding the chain's links, oldest (the full section) first.
    ids: Vec<u64>,
    /// CRC-32 of this worker's part of the newest link.
    crc: u32,
    /// Hashes of the newest link's entries (none when the state writes its own changes).
    hashes: Option<Hashes>,
    /// Bytes of the full section.
    full_bytes: u64,
    /// Bytes of the deltas since the full section.
    delta_bytes: u64,
    /// Whether the state's store writes its own changes.
    by_changes: bool,
}

/// One worker's memory of its last complete checkpoint, per state.
#[derive(Default)]
pub(crate) struct Tracker {
    committed: FastMap<String, Chain>,
    pending: Option<(u64, FastMap<String, Chain>)>,
}

impl Tracker {
    /// The checkpoint a snapshot of the state called `name` may build on: this worker's last
    /// complete one, while the chain on it is short and light enough.
    pub(crate) fn base_for(&self, name: &str) -> Option<u64> {
        let chain = self.committed.get(name)?;
        (chain.ids.len() < MAX_LINKS && chain.delta_bytes < chain.full_bytes)
            .then(|| *chain.ids.last().expect("a chain has a link"))
    }

    /// The sections of checkpoint `id`'s part from every state's snapshot (whole, or the changes
    /// its store wrote since the base [`base_for`](Self::base_for) gave), and the checkpoints
    /// the part needs.
    pub(crate) fn sections(
        &mut self,
        id: u64,
        states: Vec<(String, Taken)>,
    ) -> Result<(Sections, Vec<u64>)> {
        let mut sections = Vec::with_capacity(states.len());
        let mut needs = BTreeSet::new();
        let mut chains = FastMap::default();
        for (name, taken) in states {
            let base = self.committed.get(&name);
            let (section, chain) = match taken {
                Taken::Changes { base: on, changes } => {
                    let Some(base) = base.filter(|b| b.ids.last() == Some(&on)) else {
                        return Err(Error::internal(format!(
                            "state '{name}' wrote its changes since checkpoint {on}, which this worker's chain does not end with"
                        )));
                    };
                    let bytes = (changes.keys.len() + changes.entries.len()) as u64;
                    needs.extend(base.ids.iter().copied());
                    let chain = Chain {
                        ids: base.ids.iter().copied().chain([id]).collect(),
                        crc: 0,
                        hashes: None,
                        full_bytes: base.full_bytes,
                        delta_bytes: base.delta_bytes + bytes,
                        by_changes: true,
                    };
                    let section = Section::Changes {
                        base: on,
                        base_crc: base.crc,
                        keys: changes.keys,
                        entries: changes.entries,
                    };
                    (section, chain)
                }
                Taken::Whole(full) => {
                    let by_changes = base.is_some_and(|b| b.by_changes);
                    let mut chain = Chain {
                        ids: vec![id],
                        crc: 0,
                        hashes: None,
                        full_bytes: full.len() as u64,
                        delta_bytes: 0,
                        by_changes,
                    };
                    if by_changes {
                        // The store writes its own changes: no hashes to keep.
                        (Section::Full(full), chain)
                    } else {
                        let (_, entries) =
                            state::snapshot_entries(&full, &format!("of state '{name}'"))?;
                        let hashes = hashes_of(&entries);
                        let mut section = None;
                        if let Some(base) = base
                            && let Some(base_hashes) = &base.hashes
                            && base.ids.len() < MAX_LINKS
                        {
                            let (added, removed) = diff(&entries, &hashes, base_hashes);
                            let added = state::snapshot_from_entries(&name, added.into_iter());
                            let bytes = (added.len() + removed.len()) as u64;
                            if base.delta_bytes + bytes < full.len() as u64 {
                                needs.extend(base.ids.iter().copied());
                                chain.ids = base.ids.iter().copied().chain([id]).collect();
                                chain.full_bytes = base.full_bytes;
                                chain.delta_bytes = base.delta_bytes + bytes;
                                section = Some(Section::Delta {
                                    base: *base.ids.last().expect("a chain has a link"),
                                    base_crc: base.crc,
                                    added,
                                    removed,
                                });
                            }
                        }
                        chain.hashes = Some(hashes);
                        (section.unwrap_or(Section::Full(full)), chain)
                    }
                }
            };
            sections.push((name.clone(), section));
            chains.insert(name, chain);
        }
        self.pending = Some((id, chains));
        Ok((sections, needs.into_iter().collect()))
    }

    /// This worker's part of checkpoint `id` was written with CRC-32 `crc`.
    pub(crate) fn written(&mut self, id: u64, crc: u32) {
        if let Some((pending, chains)) = &mut self.pending
            && *pending == id
        {
            for chain in chains.values_mut() {
                chain.crc = crc;
            }
        }
    }

    /// Checkpoint `id` is over: the next deltas build on it if it is complete.
    pub(crate) fn ended(&mut self, id: u64, complete: bool) {
        if self.pending.as_ref().is_some_and(|(p, _)| *p == id) {
            let (_, chains) = self.pending.take().expect("pending");
            if complete {
                self.committed = chains;
            }
        }
    }
}

/// The entries of `entries` (hashed in `now`) not in `base`, and the hashes of `base`'s entries
/// not in `entries`, counting duplicates.
fn diff<'a>(entries: &[RawEntry<'a>], now: &Hashes, base: &Hashes) -> (Vec<RawEntry<'a>>, Vec<u8>) {
    let mut added = Vec::new();
    let mut extra: FastMap<u128, u32> = FastMap::default();
    for entry in entries {
        let hash = xxh3_128(entry.bytes);
        let had = base.get(&hash).copied().unwrap_or(0);
        let has = now[&hash];
        if has > had {
            // `has - had` copies are new; add this one while fewer have been added.
            let n = extra.entry(hash).or_insert(0);
            if *n < has - had {
                *n += 1;
                added.push(*entry);
            }
        }
    }
    let mut removed = Vec::new();
    for (hash, had) in base {
        let has = now.get(hash).copied().unwrap_or(0);
        for _ in has..*had {
            removed.extend_from_slice(&hash.to_le_bytes());
        }
    }
    (added, removed)
}

/// Applies a chain of sections, the full one first, and gives the state's full snapshot.
/// `origin` names the checkpoint part in errors. (What a restore does with each state of an
/// incremental checkpoint.)
///
/// ```
/// use tidal_engine::checkpoint::incremental::{Section, apply};
/// use tidal_engine::state::{self, KeyedState};
/// let mut s: KeyedState<u32, u32> = KeyedState::new("s");
/// s.insert(1, 10);
/// s.insert(2, 20);
/// let full = state::snapshot_store("s", &s, 0).unwrap();
/// // Key 1 changed to 11, key 2 is gone: the changes a store would write.
/// let mut changed: KeyedState<u32, u32> = KeyedState::new("s");
/// changed.insert(1, 11);
/// let mut keys = Vec::new();
/// for key in [1u32, 2] {
///     let key = postcard::to_allocvec(&key).unwrap();
///     keys.push(key.len() as u8);
///     keys.extend_from_slice(&key);
/// }
/// let entries = state::snapshot_store("s", &changed, 0).unwrap();
/// let changes = Section::Changes { base: 1, base_crc: 0, keys, entries };
/// let whole = apply("s", &[&Section::Full(full), &changes], "example").unwrap();
/// let back: Vec<(u32, u32)> = state::read_sections("s", &[&whole[..]]).unwrap();
/// assert_eq!(back, vec![(1, 11)]);
/// ```
pub fn apply(name: &str, chain: &[&Section], origin: &str) -> Result<Vec<u8>> {
    let corrupt =
        |why: String| Error::input(format!("checkpoint part {origin}: state '{name}' {why}"));
    let Some((Section::Full(full), deltas)) = chain.split_first() else {
        return Err(corrupt("has no full section under its deltas".into()));
    };
    if deltas.is_empty() {
        return Ok(full.clone());
    }
    fn add<'a>(entries: &mut FastMap<u128, (u32, RawEntry<'a>)>, new: Vec<RawEntry<'a>>) {
        for entry in new {
            entries.entry(xxh3_128(entry.bytes)).or_insert((0, entry)).0 += 1;
        }
    }
    let mut entries: FastMap<u128, (u32, RawEntry<'_>)> = FastMap::default();
    let (_, first) = state::snapshot_entries(full, origin)?;
    add(&mut entries, first);
    for delta in deltas {
        match delta {
            Section::Full(_) => return Err(corrupt("has a full section inside a chain".into())),
            Section::Delta { added, removed, .. } => {
                for hash in removed.chunks(16) {
                    let hash = u128::from_le_bytes(
                        hash.try_into()
                            .map_err(|_| corrupt("has a truncated removed hash".into()))?,
                    );
                    match entries.get_mut(&hash) {
                        Some((n, _)) if *n > 1 => *n -= 1,
                        Some(_) => {
                            entries.remove(&hash);
                        }
                        None => {
                            return Err(corrupt("removes an entry its base does not hold".into()));
                        }
                    }
                }
                add(&mut entries, state::snapshot_entries(added, origin)?.1);
            }
            Section::Changes {
                keys, entries: now, ..
            } => {
                let changes = Changes {
                    keys: keys.clone(),
                    entries: Vec::new(),
                };
                let (_, now) = state::snapshot_entries(now, origin)?;
                // The changed keys: those listed (left with no entries) and those of the entries.
                let mut keys: std::collections::HashSet<&[u8]> =
                    changes.key_list(origin)?.into_iter().collect();
                for entry in &now {
                    keys.insert(entry.key().ok_or_else(|| {
                        corrupt("has changes whose entries' keys cannot be told".into())
                    })?);
                }
                let mut unkeyed = false;
                entries.retain(|_, (_, entry)| match entry.key() {
                    Some(key) => !keys.contains(key),
                    None => {
                        unkeyed = true;
                        true
                    }
                });
                if unkeyed {
                    return Err(corrupt(
                        "has changes on entries whose keys cannot be told (snapshot version 2)"
                            .into(),
                    ));
                }
                add(&mut entries, now);
            }
        }
    }
    Ok(state::snapshot_from_entries(
        name,
        entries
            .values()
            .flat_map(|(n, entry)| std::iter::repeat_n(*entry, *n as usize)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::KeyedState;

    fn snapshot(state: &KeyedState<u64, u64>) -> Vec<u8> {
        let mut bytes = Vec::new();
        state.snapshot(&mut bytes).unwrap();
        bytes
    }

    fn read(bytes: &[u8]) -> Vec<(u64, u64)> {
        let mut all: Vec<(u64, u64)> = state::read_sections("s", &[bytes]).unwrap();
        all.sort();
        all
    }

    #[test]
    fn deltas_hold_what_changed_and_rebuild_the_state() {
        let mut tracker = Tracker::default();
        let mut s: KeyedState<u64, u64> = KeyedState::new("s");
        for k in 0..10_000 {
            s.insert(k, k);
        }
        let mut stored: Vec<Section> = Vec::new();
        for id in 1..=5u64 {
            // Change 1 % of the keys, remove one, add one.
            for k in 0..100 {
                s.insert(k * 97 % 10_000, id * 1000 + k);
            }
            s.remove(&(id * 13));
            s.insert(100_000 + id, id);
            let (sections, needs) = tracker
                .sections(id, vec![("s".into(), Taken::Whole(snapshot(&s)))])
                .unwrap();
            let section = sections.into_iter().next().unwrap().1;
            if id == 1 {
                assert!(matches!(section, Section::Full(_)));
                assert!(needs.is_empty());
            } else {
                let Section::Delta { base, .. } = &section else {
                    panic!("checkpoint {id} is not a delta");
                };
                assert_eq!(*base, id - 1);
                assert_eq!(needs, (1..id).collect::<Vec<_>>());
                assert!(
                    section.stored_bytes() * 20 < snapshot(&s).len(),
                    "delta too big"
                );
            }
            tracker.written(id, id as u32);
            tracker.ended(id, true);
            stored.push(section);
            let chain: Vec<&Section> = stored.iter().collect();
            assert_eq!(
                read(&apply("s", &chain, "test").unwrap()),
                read(&snapshot(&s))
            );
        }
    }

    #[test]
    fn a_failed_checkpoint_is_not_built_on_and_big_changes_write_full() {
        let mut tracker = Tracker::default();
        let mut s: KeyedState<u64, u64> = KeyedState::new("s");
        for k in 0..1000 {
            s.insert(k, k);
        }
        tracker
            .sections(1, vec![("s".into(), Taken::Whole(snapshot(&s)))])
            .unwrap();
        tracker.written(1, 11);
        tracker.ended(1, true);
        s.insert(1, 2);
        tracker
            .sections(2, vec![("s".into(), Taken::Whole(snapshot(&s)))])
            .unwrap();
        tracker.ended(2, false);
        let (sections, _) = tracker
            .sections(3, vec![("s".into(), Taken::Whole(snapshot(&s)))])
            .unwrap();
        let Section::Delta { base, base_crc, .. } = &sections[0].1 else {
            panic!("not a delta");
        };
        assert_eq!((*base, *base_crc), (1, 11));
        tracker.ended(3, true);
        // Every value changes: a full section is smaller than the delta.
        for k in 0..1000 {
            s.insert(k, k + 1);
        }
        let (sections, needs) = tracker
            .sections(4, vec![("s".into(), Taken::Whole(snapshot(&s)))])
            .unwrap();
        assert!(matches!(sections[0].1, Section::Full(_)));
        assert!(needs.is_empty());
    }

    /// A store that knows which keys it changed since the last complete checkpoint.
    #[derive(Default)]
    struct Tracked {
        values: FastMap<u64, Vec<u64>>,
        changed: std::collections::BTreeSet<u64>,
        complete: Option<u64>,
    }

    impl state::KeyedStore for Tracked {
        type Key = u64;
        /// One entry per value of a key (a key has several entries).
        type Entry = u64;
        fn key_count(&self) -> usize {
            self.values.len()
        }
        fn write_entries(
            &self,
            _cut: crate::Time,
            out: &mut state::EntryWriter<'_, u64>,
        ) -> Result<()> {
            for (k, vs) in &self.values {
                for v in vs {
                    out.entry(k, v)?;
                }
            }
            Ok(())
        }
        fn write_changes(
            &self,
            _cut: crate::Time,
            base: u64,
            out: &mut state::ChangeWriter<'_, u64>,
        ) -> Result<bool> {
            if self.complete != Some(base) {
                return Ok(false);
            }
            for k in &self.changed {
                out.changed(k)?;
                for v in self.values.get(k).into_iter().flatten() {
                    out.entry(k, v)?;
                }
            }
            Ok(true)
        }
        fn restore(&mut self, entries: Vec<(u64, u64)>, _owner: state::Owner) -> Result<()> {
            for (k, v) in entries {
                self.values.entry(k).or_default().push(v);
            }
            Ok(())
        }
        fn checkpoint_complete(&mut self, id: u64) -> Result<()> {
            self.complete = Some(id);
            self.changed.clear();
            Ok(())
        }
    }

    fn sorted(store: &Tracked) -> Vec<(u64, Vec<u64>)> {
        let mut all: Vec<(u64, Vec<u64>)> = store
            .values
            .iter()
            .map(|(k, vs)| {
                let mut vs = vs.clone();
                vs.sort();
                (*k, vs)
            })
            .collect();
        all.sort();
        all
    }

    #[test]
    fn a_store_that_writes_its_changes_is_restored_whole_from_the_chain() {
        use state::KeyedStore;
        let mut tracker = Tracker::default();
        let mut s = Tracked::default();
        for k in 0..5_000u64 {
            s.values.insert(k, vec![k, k + 1]);
        }
        let mut stored: Vec<Section> = Vec::new();
        for id in 1..=6u64 {
            // Change some keys' values, empty one key, add one, and leave one with no values.
            for k in 0..50u64 {
                let key = (k * 101 + id) % 5_000;
                s.values.insert(key, vec![id, key, id * 7]);
                s.changed.insert(key);
            }
            s.values.remove(&(id * 11));
            s.changed.insert(id * 11);
            s.values.insert(10_000 + id, vec![id]);
            s.changed.insert(10_000 + id);
            let taken = match tracker.base_for("s") {
                Some(on) => match state::snapshot_changes("s", &s, 0, on).unwrap() {
                    Some(changes) => Taken::Changes { base: on, changes },
                    None => Taken::Whole(state::snapshot_store("s", &s, 0).unwrap()),
                },
                None => Taken::Whole(state::snapshot_store("s", &s, 0).unwrap()),
            };
            let (sections, needs) = tracker.sections(id, vec![("s".into(), taken)]).unwrap();
            let section = sections.into_iter().next().unwrap().1;
            if id == 1 {
                assert!(matches!(section, Section::Full(_)));
            } else {
                assert!(
                    matches!(section, Section::Changes { .. }),
                    "checkpoint {id}"
                );
                assert_eq!(needs, (1..id).collect::<Vec<_>>());
                let whole = state::snapshot_store("s", &s, 0).unwrap();
                assert!(section.stored_bytes() * 20 < whole.len(), "changes too big");
            }
            tracker.written(id, id as u32);
            tracker.ended(id, true);
            s.checkpoint_complete(id).unwrap();
            stored.push(section);
            let chain: Vec<&Section> = stored.iter().collect();
            let whole = apply("s", &chain, "test").unwrap();
            let mut back = Tracked::default();
            state::restore_store(
                &mut back,
                "s",
                &[&whole[..]],
                state::Owner { index: 0, peers: 1 },
            )
            .unwrap();
            assert_eq!(sorted(&back), sorted(&s), "restored from checkpoint {id}");
        }
        // A store that cannot tell (its last complete checkpoint is not the base) is written
        // whole, and not hashed.
        s.complete = None;
        let on = tracker.base_for("s").unwrap();
        assert!(state::snapshot_changes("s", &s, 0, on).unwrap().is_none());
        let whole = Taken::Whole(state::snapshot_store("s", &s, 0).unwrap());
        let (sections, needs) = tracker.sections(7, vec![("s".into(), whole)]).unwrap();
        assert!(matches!(sections[0].1, Section::Full(_)));
        assert!(needs.is_empty());
    }
}
