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
//! Restoring walks each delta back to its full section (reading the base checkpoints' parts of
//! the same worker), applies the deltas in order and hands operators the whole state, as if the
//! checkpoint were full. The manifest lists the checkpoints a checkpoint needs (`needs`); pruning
//! keeps them as long as a kept checkpoint needs them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

use crate::error::{Error, Result};
use crate::state;
use crate::state::hash::FastMap;

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
}

impl Section {
    /// Bytes this section takes in its part.
    pub fn stored_bytes(&self) -> usize {
        match self {
            Section::Full(bytes) => bytes.len(),
            Section::Delta { added, removed, .. } => added.len() + removed.len(),
        }
    }
}

/// Each state's section of a part, by state name.
pub type Sections = Vec<(String, Section)>;

/// Per entry hash: how many entries have it.
type Hashes = FastMap<u128, u32>;

fn hashes_of(entries: &[&[u8]]) -> Hashes {
    let mut hashes = Hashes::with_capacity_and_hasher(entries.len(), Default::default());
    for entry in entries {
        *hashes.entry(xxh3_128(entry)).or_insert(0) += 1;
    }
    hashes
}

/// What a worker knows of one state's chain as of one checkpoint.
struct Chain {
    /// The checkpoints holding the chain's links, oldest (the full section) first.
    ids: Vec<u64>,
    /// CRC-32 of this worker's part of the newest link.
    crc: u32,
    hashes: Hashes,
    /// Bytes of the deltas since the full section.
    delta_bytes: u64,
}

/// One worker's memory of its last complete checkpoint, per state.
#[derive(Default)]
pub(crate) struct Tracker {
    committed: FastMap<String, Chain>,
    pending: Option<(u64, FastMap<String, Chain>)>,
}

impl Tracker {
    /// The sections of checkpoint `id`'s part from every state's full snapshot, and the
    /// checkpoints the part needs.
    pub(crate) fn sections(
        &mut self,
        id: u64,
        states: Vec<(String, Vec<u8>)>,
    ) -> Result<(Sections, Vec<u64>)> {
        let mut sections = Vec::with_capacity(states.len());
        let mut needs = BTreeSet::new();
        let mut chains = FastMap::default();
        for (name, full) in states {
            let (_, entries) = state::snapshot_entries(&full, &format!("of state '{name}'"))?;
            let hashes = hashes_of(&entries);
            let mut section = None;
            let mut chain = Chain {
                ids: vec![id],
                crc: 0,
                hashes: Hashes::default(),
                delta_bytes: 0,
            };
            if let Some(base) = self.committed.get(&name)
                && base.ids.len() < MAX_LINKS
            {
                let (added, removed) = diff(&entries, &hashes, &base.hashes);
                let added = state::snapshot_from_entries(&name, added.into_iter());
                let bytes = (added.len() + removed.len()) as u64;
                if base.delta_bytes + bytes < full.len() as u64 {
                    needs.extend(base.ids.iter().copied());
                    chain.ids = base.ids.iter().copied().chain([id]).collect();
                    chain.delta_bytes = base.delta_bytes + bytes;
                    section = Some(Section::Delta {
                        base: *base.ids.last().expect("a chain has a link"),
                        base_crc: base.crc,
                        added,
                        removed,
                    });
                }
            }
            chain.hashes = hashes;
            sections.push((name.clone(), section.unwrap_or(Section::Full(full))));
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
fn diff<'a>(entries: &[&'a [u8]], now: &Hashes, base: &Hashes) -> (Vec<&'a [u8]>, Vec<u8>) {
    let mut added = Vec::new();
    let mut extra: FastMap<u128, u32> = FastMap::default();
    for entry in entries {
        let hash = xxh3_128(entry);
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
/// `origin` names the checkpoint part in errors.
pub(crate) fn apply(name: &str, chain: &[&Section], origin: &str) -> Result<Vec<u8>> {
    let corrupt =
        |why: String| Error::input(format!("checkpoint part {origin}: state '{name}' {why}"));
    let Some((Section::Full(full), deltas)) = chain.split_first() else {
        return Err(corrupt("has no full section under its deltas".into()));
    };
    if deltas.is_empty() {
        return Ok(full.clone());
    }
    let mut entries: FastMap<u128, (u32, &[u8])> = FastMap::default();
    let (_, first) = state::snapshot_entries(full, origin)?;
    for entry in first {
        entries.entry(xxh3_128(entry)).or_insert((0, entry)).0 += 1;
    }
    for delta in deltas {
        let Section::Delta { added, removed, .. } = delta else {
            return Err(corrupt("has a full section inside a chain".into()));
        };
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
                None => return Err(corrupt("removes an entry its base does not hold".into())),
            }
        }
        let (_, new) = state::snapshot_entries(added, origin)?;
        for entry in new {
            entries.entry(xxh3_128(entry)).or_insert((0, entry)).0 += 1;
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
                .sections(id, vec![("s".into(), snapshot(&s))])
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
            .sections(1, vec![("s".into(), snapshot(&s))])
            .unwrap();
        tracker.written(1, 11);
        tracker.ended(1, true);
        s.insert(1, 2);
        tracker
            .sections(2, vec![("s".into(), snapshot(&s))])
            .unwrap();
        tracker.ended(2, false);
        let (sections, _) = tracker
            .sections(3, vec![("s".into(), snapshot(&s))])
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
            .sections(4, vec![("s".into(), snapshot(&s))])
            .unwrap();
        assert!(matches!(sections[0].1, Section::Full(_)));
        assert!(needs.is_empty());
    }
}
