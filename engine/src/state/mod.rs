//! Keyed state, and how it is snapshotted.
//!
//! Every stateful operator keeps its state in one value of a type implementing [`KeyedStore`]
//! (the plain case is a [`KeyedState`]: a hash map from key to value), owned by the worker that
//! owns the key (keys are routed by [`key_hash`](key_hash())), and registers it once
//! with its worker. The discipline that makes the state snapshot-able at a frontier:
//!
//! 1. **State changes only in time order.** An operator buffers input by timestamp
//!    ([`buffer::TimeBuffer`]) and folds the buffered input for time `t` into its state only when
//!    its input frontier has passed `t`. So at any moment the state reflects exactly the input
//!    with times below the frontier, and a snapshot taken when the frontier reaches a checkpoint
//!    time `c` is the state "as of `c`". Input buffered at or after `c` is not part of it: the
//!    sources' positions at `c` bring it back on a restore.
//! 2. **State is stored without its worker assignment.** A snapshot is the `(key, entry)` pairs,
//!    with a format version and a CRC-32 checksum ([`snapshot_store`]). Restoring on `m` workers
//!    reads every part and hands each store the entries whose keys its worker owns among the `m`
//!    ([`restore_store`]), so a checkpoint restores on any number of workers.
//! 3. **One path for every operator.** The engine writes, reads, routes and counts entries the same
//!    way for all stores; a store says only how its structure maps to entries. The
//!    keyed-operator builder of `tidal-operators` registers every keyed operator's store; the
//!    incremental collections register their arrangements' snapshots the same way.
//!
//! Why current-value state is a hash map and not a differential arrangement: see `DESIGN.md` at
//! the repository's root ("Keyed state").

pub mod buffer;
mod format;
pub mod hash;

pub use buffer::{Clear, TimeBuffer};
pub use format::{
    RawEntry, SNAPSHOT_VERSION, read_sections, snapshot_entries, snapshot_from_entries,
};
pub use hash::{FastMap, key_hash, worker_for};

use std::hash::Hash;
use std::io::{Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::time::Time;

/// Per-key state of one operator on one worker.
///
/// ```
/// use tidal_engine::state::KeyedState;
/// let mut counts: KeyedState<String, u64> = KeyedState::new("word-count");
/// *counts.entry("tide".to_string()).or_insert(0) += 2;
/// assert_eq!(counts.get("tide"), Some(&2));
/// assert_eq!(counts.len(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct KeyedState<K, V> {
    name: String,
    map: FastMap<K, V>,
}

impl<K: Hash + Eq, V> KeyedState<K, V> {
    /// Empty state for the operator called `name` (the name identifies it in snapshots).
    pub fn new(name: impl Into<String>) -> Self {
        KeyedState {
            name: name.into(),
            map: FastMap::default(),
        }
    }
    /// The operator name this state belongs to.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The value for `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key)
    }
    /// The value for `key`, to change it.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get_mut(key)
    }
    /// The entry for `key`.
    pub fn entry(&mut self, key: K) -> std::collections::hash_map::Entry<'_, K, V> {
        self.map.entry(key)
    }
    /// Sets the value for `key`, returning the old one.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.map.insert(key, value)
    }
    /// Removes `key`, returning its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove(key)
    }
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Every `(key, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }
    /// Removes and returns every entry.
    pub fn drain(&mut self) -> impl Iterator<Item = (K, V)> + '_ {
        self.map.drain()
    }
}

impl<K, V> KeyedState<K, V>
where
    K: Hash + Eq + Serialize + DeserializeOwned + 'static,
    V: Serialize + DeserializeOwned + 'static,
{
    /// Writes every entry: magic, version, header, entries (postcard), CRC-32 of all before it.
    ///
    /// ```
    /// use tidal_engine::state::KeyedState;
    /// let mut s: KeyedState<u32, String> = KeyedState::new("names");
    /// s.insert(1, "one".into());
    /// let mut bytes = Vec::new();
    /// s.snapshot(&mut bytes).unwrap();
    /// let back: Vec<(u32, String)> = KeyedState::<u32, String>::read_snapshot(&bytes[..], "part-0").unwrap();
    /// assert_eq!(back, vec![(1, "one".to_string())]);
    /// ```
    pub fn snapshot<W: Write>(&self, mut out: W) -> Result<()> {
        let name = &self.name;
        let bytes = snapshot_store(name, self, 0)?;
        out.write_all(&bytes)
            .map_err(|e| Error::external(format!("writing snapshot of '{name}': {e}")))
    }

    /// Reads the entries of one snapshot part; `origin` names it in error messages.
    /// A wrong magic, an unknown version, a bad checksum or a truncated part is an error.
    pub fn read_snapshot<R: Read>(input: R, origin: &str) -> Result<Vec<(K, V)>> {
        format::read_part(input, origin)
    }
}

/// Keyed state as checkpoints see it: `(key, entry)` pairs written as of a cut and loaded again
/// on any number of workers, each entry going to the worker that owns its key.
///
/// Every stateful operator keeps its state in one value of a type that implements this trait
/// and registers it once with [`WorkerContext::register_state`](crate::WorkerContext::register_state)
/// (the keyed-operator builder of `tidal-operators` does that for every keyed operator). The
/// engine does the rest the same way for all of them: the snapshot format (version, checksum,
/// length-prefixed entries), routing restored entries by key, the number of keys in reports, and
/// the notice that a checkpoint is complete. A store says only how its structure maps to entries.
///
/// ```
/// use tidal_engine::state::{EntryWriter, KeyedStore, Owner};
/// use tidal_engine::{Result, Time};
/// use std::collections::BTreeMap;
///
/// /// Per key, the readings of each minute (a structure that is not a plain map of keys).
/// #[derive(Default)]
/// struct Minutes(BTreeMap<(u32, Time), f64>);
///
/// impl KeyedStore for Minutes {
///     type Key = u32;
///     type Entry = (Time, f64);
///     fn key_count(&self) -> usize {
///         self.0.len()
///     }
///     fn write_entries(&self, _cut: Time, out: &mut EntryWriter<'_, u32>) -> Result<()> {
///         for ((sensor, minute), sum) in &self.0 {
///             out.entry(sensor, &(*minute, *sum))?;
///         }
///         Ok(())
///     }
///     fn restore(&mut self, entries: Vec<(u32, (Time, f64))>, _owner: Owner) -> Result<()> {
///         for (sensor, (minute, sum)) in entries {
///             self.0.insert((sensor, minute), sum);
///         }
///         Ok(())
///     }
/// }
///
/// let mut m = Minutes::default();
/// m.0.insert((7, 60_000), 2.5);
/// let bytes = tidal_engine::state::snapshot_store("minutes", &m, 0).unwrap();
/// let mut back = Minutes::default();
/// tidal_engine::state::restore_store(&mut back, "minutes", &[&bytes[..]], Owner { index: 0, peers: 1 }).unwrap();
/// assert_eq!(back.0.get(&(7, 60_000)), Some(&2.5));
/// ```
pub trait KeyedStore: 'static {
    /// The key that decides which worker owns an entry.
    type Key: Hash + Eq + Serialize + DeserializeOwned;
    /// What a snapshot holds per entry. A store may write it in any form that encodes the same
    /// (a tuple of references for a tuple of values, say), so that snapshots copy nothing.
    type Entry: DeserializeOwned;
    /// Whether a restore hands the store only the entries whose keys this worker owns (`true`,
    /// the default) or every entry of every part (for state that is about the job's output as a
    /// whole rather than about keys, such as a file sink's list of committed parts).
    const ROUTED: bool = true;
    /// Number of keys held, for reports.
    fn key_count(&self) -> usize;
    /// Writes the state as of checkpoint cut `cut`, one [`EntryWriter::entry`] per entry.
    ///
    /// It is called when the operator's output frontier has reached the cut. An operator
    /// downstream of an exchange from every instance of its sources is then exactly at the cut
    /// (its state is the state as of the cut). One fed by a pipeline from a single source
    /// instance (a sink) may be past it, and must give its state as of the cut itself.
    fn write_entries(&self, cut: Time, out: &mut EntryWriter<'_, Self::Key>) -> Result<()>;
    /// Writes, as of cut `cut`, only what changed since the snapshot this store wrote for
    /// checkpoint `base`: every entry of each key whose entries are not the same as then, and
    /// each such key that has no entries left ([`ChangeWriter::changed`]). Restoring puts these
    /// in place of the base's entries of the same keys. Returns `false` when the store cannot tell
    /// what changed since `base` (it is not the last checkpoint the store was told is complete,
    /// say); the engine then takes a whole snapshot with [`write_entries`](Self::write_entries).
    ///
    /// An incremental checkpoint calls this instead of `write_entries` when the state's part of
    /// checkpoint `base` is there to build on. Without it (the default) the engine compares the
    /// whole snapshot with the base's entry by entry: the bytes written follow the changes, but
    /// the snapshot still reads the whole state. A store that knows which keys it changed since
    /// a checkpoint makes the whole cost of an incremental checkpoint follow the changes.
    fn write_changes(
        &self,
        cut: Time,
        base: u64,
        out: &mut ChangeWriter<'_, Self::Key>,
    ) -> Result<bool> {
        let _ = (cut, base, out);
        Ok(false)
    }
    /// Loads restored entries: those this worker owns, or all of them when not
    /// [`ROUTED`](Self::ROUTED). Called once per restore, with every part's entries together.
    fn restore(&mut self, entries: Vec<(Self::Key, Self::Entry)>, owner: Owner) -> Result<()>;
    /// Called on every worker once checkpoint (or savepoint) `id` is complete — every part and
    /// its manifest are written — in the order checkpoints complete. State that holds side effects
    /// back until then (the file sinks' pending part files) releases them here; a notice may be
    /// lost (the process dies first), so what a checkpoint holds back must also be released when
    /// it is restored. An error fails the job. Does nothing unless overridden.
    fn checkpoint_complete(&mut self, id: u64) -> Result<()> {
        let _ = id;
        Ok(())
    }
    /// The bytes the state's entries take encoded, as a whole snapshot of it now would write
    /// them: the state size in the job's metrics (`tidal_state_bytes`). `None` (the default):
    /// not reported.
    ///
    /// A store whose [`write_entries`](Self::write_entries) changes nothing can measure with it:
    /// `measure_entries(|out| self.write_entries(Time::MAX, out))`. The engine asks only while
    /// metrics are on, and seldom enough that measuring takes about 1 % of a worker's time.
    fn encoded_bytes(&self) -> Option<u64> {
        None
    }
}

/// The bytes the entries `write` writes take in a snapshot, counted without keeping them (for
/// [`KeyedStore::encoded_bytes`]); `None` if one does not encode.
///
/// ```
/// use tidal_engine::state::{measure_entries, EntryWriter};
/// let rows = [(1u32, "a".to_string()), (2, "bc".to_string())];
/// let bytes = measure_entries(|out: &mut EntryWriter<'_, u32>| {
///     for (k, v) in &rows {
///         out.entry(k, v)?;
///     }
///     Ok(())
/// });
/// // Per entry: the entry's and the key's lengths (a byte each), the key (a byte) and the
/// // string (its length, then its bytes).
/// assert_eq!(bytes, Some((2 + 1 + 2) + (2 + 1 + 3)));
/// ```
pub fn measure_entries<K: Serialize>(
    write: impl FnOnce(&mut EntryWriter<'_, K>) -> Result<()>,
) -> Option<u64> {
    let mut writer = EntryWriter {
        name: "measure",
        body: Vec::new(),
        count: 0,
        measure: true,
        measured: 0,
        key: std::marker::PhantomData,
    };
    write(&mut writer).ok()?;
    Some(writer.measured)
}

/// Which worker a restore runs on: worker `index` of `peers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// This worker's index.
    pub index: usize,
    /// Number of workers of the job.
    pub peers: usize,
}

impl Owner {
    /// Whether this worker owns `key`.
    ///
    /// ```
    /// use tidal_engine::state::Owner;
    /// let alone = Owner { index: 0, peers: 1 };
    /// assert!(alone.owns(&"any key"));
    /// ```
    pub fn owns<K: Hash + ?Sized>(&self, key: &K) -> bool {
        worker_for(key_hash(key), self.peers) == self.index
    }
}

/// Where a [`KeyedStore`] writes its entries during a snapshot.
pub struct EntryWriter<'a, K> {
    name: &'a str,
    body: Vec<u8>,
    count: u64,
    /// Whether entries are only counted ([`measure_entries`]): each is encoded, its bytes added
    /// to `measured`, and dropped.
    measure: bool,
    measured: u64,
    key: std::marker::PhantomData<fn(&K)>,
}

impl<K: Serialize> EntryWriter<'_, K> {
    /// Writes one entry: the key and what the store keeps for it (which must encode as the
    /// store's [`Entry`](KeyedStore::Entry) type).
    pub fn entry<E: Serialize + ?Sized>(&mut self, key: &K, entry: &E) -> Result<()> {
        self.entry_with_key(key, entry)?;
        if self.measure {
            self.measured += self.body.len() as u64;
            self.body.clear();
        }
        Ok(())
    }

    /// Writes one entry and gives the range of `body` its key's encoding takes.
    fn entry_with_key<E: Serialize + ?Sized>(
        &mut self,
        key: &K,
        entry: &E,
    ) -> Result<std::ops::Range<usize>> {
        // (The key's range is for callers that need its encoding.)
        let start = self.body.len();
        // The encoding of `(key, entry)` is the key's followed by the entry's.
        self.body = postcard::to_extend(key, std::mem::take(&mut self.body))
            .map_err(|e| encode_error(self.name, e))?;
        let key_len = self.body.len() - start;
        self.body = postcard::to_extend(entry, std::mem::take(&mut self.body))
            .map_err(|e| encode_error(self.name, e))?;
        // Put the entry's length and its key's (varints) in front of it.
        let mut varints = [0u8; 20];
        let used = {
            let first = postcard::to_slice(&((self.body.len() - start) as u64), &mut varints)
                .expect("10 bytes hold a varint")
                .len();
            let (_, tail) = varints.split_at_mut(first);
            first
                + postcard::to_slice(&(key_len as u64), tail)
                    .expect("10 bytes hold a varint")
                    .len()
        };
        self.body
            .splice(start..start, varints[..used].iter().copied());
        self.count += 1;
        let key_start = start + used;
        Ok(key_start..key_start + key_len)
    }
}

/// Where a [`KeyedStore`] writes what changed since an earlier checkpoint
/// ([`KeyedStore::write_changes`]).
pub struct ChangeWriter<'a, K> {
    entries: EntryWriter<'a, K>,
    /// The encodings of the changed keys left with no entries, each once.
    keys: FastMap<Vec<u8>, ()>,
}

impl<K: Serialize> ChangeWriter<'_, K> {
    /// Writes one entry of a changed key (the key counts as changed: a restore drops the base's
    /// entries of it and keeps only those written here).
    pub fn entry<E: Serialize + ?Sized>(&mut self, key: &K, entry: &E) -> Result<()> {
        self.entries.entry_with_key(key, entry).map(|_| ())
    }
    /// Marks `key` as changed and left with no entries: a restore drops the base's entries of it.
    pub fn changed(&mut self, key: &K) -> Result<()> {
        let encoded = postcard::to_allocvec(key).map_err(|e| encode_error(self.entries.name, e))?;
        self.keys.insert(encoded, ());
        Ok(())
    }
}

/// What a store wrote since an earlier checkpoint: the changed keys' entries now, and the changed
/// keys that have none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The encodings of the changed keys left with no entries, each with its length (a varint)
    /// in front. (The keys of `entries` are changed too; listing them again would double what
    /// a store whose key is its whole row writes.)
    pub keys: Vec<u8>,
    /// A snapshot (the format of [`snapshot_store`]) of the changed keys' entries.
    pub entries: Vec<u8>,
}

impl Changes {
    /// The changed keys' encodings; `origin` names the changes in errors.
    ///
    /// ```
    /// use tidal_engine::state::{self, Changes};
    /// let mut keys = Vec::new();
    /// for key in [&b"ab"[..], &b"c"[..]] {
    ///     keys.push(key.len() as u8);
    ///     keys.extend_from_slice(key);
    /// }
    /// let changes = Changes { keys, entries: Vec::new() };
    /// assert_eq!(changes.key_list("example").unwrap(), vec![&b"ab"[..], &b"c"[..]]);
    /// ```
    pub fn key_list(&self, origin: &str) -> Result<Vec<&[u8]>> {
        let corrupt = |why: &str| Error::input(format!("changes {origin} are corrupt: {why}"));
        let mut rest = &self.keys[..];
        let mut keys = Vec::new();
        while !rest.is_empty() {
            let (len, tail): (u64, &[u8]) =
                postcard::take_from_bytes(rest).map_err(|e| corrupt(&e.to_string()))?;
            if tail.len() < len as usize {
                return Err(corrupt("a key runs past the end"));
            }
            let (key, tail) = tail.split_at(len as usize);
            keys.push(key);
            rest = tail;
        }
        Ok(keys)
    }
}

/// What `store` changed since its snapshot for checkpoint `base`, as of `cut` (see
/// [`KeyedStore::write_changes`]), under the state name `name`; `None` when it cannot tell.
pub fn snapshot_changes<S: KeyedStore>(
    name: &str,
    store: &S,
    cut: Time,
    base: u64,
) -> Result<Option<Changes>> {
    let mut writer = ChangeWriter {
        entries: EntryWriter {
            name,
            body: Vec::new(),
            count: 0,
            measure: false,
            measured: 0,
            key: std::marker::PhantomData,
        },
        keys: FastMap::default(),
    };
    if !store.write_changes(cut, base, &mut writer)? {
        return Ok(None);
    }
    let mut keys = Vec::new();
    for key in writer.keys.keys() {
        keys = postcard::to_extend(&(key.len() as u64), keys).expect("a varint encodes");
        keys.extend_from_slice(key);
    }
    Ok(Some(Changes {
        keys,
        entries: finish_into(name, writer.entries)?,
    }))
}

fn encode_error(name: &str, e: postcard::Error) -> Error {
    Error::new(
        crate::ErrorKind::UserCode,
        format!("encoding state of '{name}': {e}"),
    )
}

/// A snapshot of `store` as of `cut`, under the state name `name` (the format of
/// [`KeyedState::snapshot`]).
pub fn snapshot_store<S: KeyedStore>(name: &str, store: &S, cut: Time) -> Result<Vec<u8>> {
    let mut writer = EntryWriter {
        name,
        body: Vec::new(),
        count: 0,
        measure: false,
        measured: 0,
        key: std::marker::PhantomData,
    };
    store.write_entries(cut, &mut writer)?;
    finish_into(name, writer)
}

/// The snapshot of the entries `writer` holds.
fn finish_into<K>(name: &str, writer: EntryWriter<'_, K>) -> Result<Vec<u8>> {
    format::finish_snapshot(name, writer.count, &writer.body)
}

/// Loads every part's snapshot (`sections`) of the state called `name` into `store`: the
/// entries `owner` owns, or all of them for a store that is not [`ROUTED`](KeyedStore::ROUTED).
pub fn restore_store<S: KeyedStore>(
    store: &mut S,
    name: &str,
    sections: &[&[u8]],
    owner: Owner,
) -> Result<usize> {
    let mut entries: Vec<(S::Key, S::Entry)> = read_sections(name, sections)?;
    if S::ROUTED {
        entries.retain(|(k, _)| owner.owns(k));
    }
    let kept = entries.len();
    store.restore(entries, owner)?;
    Ok(kept)
}

/// The registry's view of one registered store, whatever its type.
pub(crate) trait StateHandle {
    fn key_count(&self) -> usize;
    fn encoded_bytes(&self) -> Option<u64>;
    fn snapshot(&self, name: &str, cut: Time) -> Result<Vec<u8>>;
    fn changes(&self, name: &str, cut: Time, base: u64) -> Result<Option<Changes>>;
    fn restore(&self, name: &str, sections: &[&[u8]], owner: Owner) -> Result<usize>;
    fn checkpoint_complete(&self, id: u64) -> Result<()>;
}

impl<S: KeyedStore> StateHandle for std::rc::Rc<std::cell::RefCell<S>> {
    fn key_count(&self) -> usize {
        self.borrow().key_count()
    }
    fn encoded_bytes(&self) -> Option<u64> {
        self.borrow().encoded_bytes()
    }
    fn snapshot(&self, name: &str, cut: Time) -> Result<Vec<u8>> {
        snapshot_store(name, &*self.borrow(), cut)
    }
    fn changes(&self, name: &str, cut: Time, base: u64) -> Result<Option<Changes>> {
        snapshot_changes(name, &*self.borrow(), cut, base)
    }
    fn restore(&self, name: &str, sections: &[&[u8]], owner: Owner) -> Result<usize> {
        restore_store(&mut *self.borrow_mut(), name, sections, owner)
    }
    fn checkpoint_complete(&self, id: u64) -> Result<()> {
        self.borrow_mut().checkpoint_complete(id)
    }
}

impl<K, V> KeyedStore for KeyedState<K, V>
where
    K: Hash + Eq + Serialize + DeserializeOwned + 'static,
    V: Serialize + DeserializeOwned + 'static,
{
    type Key = K;
    type Entry = V;
    fn key_count(&self) -> usize {
        self.map.len()
    }
    fn write_entries(&self, _cut: Time, out: &mut EntryWriter<'_, K>) -> Result<()> {
        for (k, v) in self.map.iter() {
            out.entry(k, v)?;
        }
        Ok(())
    }
    fn encoded_bytes(&self) -> Option<u64> {
        measure_entries(|out| self.write_entries(Time::MAX, out))
    }
    fn restore(&mut self, entries: Vec<(K, V)>, _owner: Owner) -> Result<()> {
        self.map.extend(entries);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(peers: usize, keys: u64) -> Vec<Vec<u8>> {
        (0..peers)
            .map(|i| {
                let mut s: KeyedState<u64, u64> = KeyedState::new("sum");
                for k in 0..keys {
                    if worker_for(key_hash(&k), peers) == i {
                        s.insert(k, k * 10);
                    }
                }
                let mut bytes = Vec::new();
                s.snapshot(&mut bytes).unwrap();
                bytes
            })
            .collect()
    }

    #[test]
    fn restore_on_other_worker_counts_keeps_every_key_once() {
        let written = parts(2, 1000);
        for peers in [1, 2, 3, 5] {
            let mut total = 0;
            let mut seen = std::collections::BTreeMap::new();
            for index in 0..peers {
                let mut s: KeyedState<u64, u64> = KeyedState::new("sum");
                let sections: Vec<&[u8]> = written.iter().map(|p| &p[..]).collect();
                total += restore_store(&mut s, "sum", &sections, Owner { index, peers }).unwrap();
                for (k, v) in s.iter() {
                    assert!(seen.insert(*k, *v).is_none(), "key {k} restored twice");
                }
            }
            assert_eq!(total, 1000);
            assert!(seen.iter().all(|(k, v)| *v == k * 10));
        }
    }

    #[test]
    fn measured_bytes_are_the_entries_of_a_whole_snapshot() {
        let mut s: KeyedState<String, u64> = KeyedState::new("lengths");
        for i in 0..1000u64 {
            s.insert(format!("key-{}", i * 7919), i * i);
        }
        let full = snapshot_store("lengths", &s, 0).unwrap();
        let (_, entries) = snapshot_entries(&full, "test").unwrap();
        let varint = |n: usize| postcard::to_allocvec(&(n as u64)).unwrap().len();
        let in_snapshot: usize = entries
            .iter()
            .map(|e| e.bytes.len() + varint(e.bytes.len()) + varint(e.key_len.unwrap()))
            .sum();
        assert_eq!(entries.len(), 1000);
        assert_eq!(s.encoded_bytes(), Some(in_snapshot as u64));
    }

    #[test]
    fn corrupt_snapshots_are_rejected() {
        let mut part = parts(1, 10).remove(0);
        let flipped = {
            let mut p = part.clone();
            p[20] ^= 0x40;
            p
        };
        let err = KeyedState::<u64, u64>::read_snapshot(&flipped[..], "p").unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        part.truncate(part.len() - 3);
        assert!(KeyedState::<u64, u64>::read_snapshot(&part[..], "p").is_err());
    }

    /// A snapshot whose entries are of other types than the state reading it (a job changed
    /// since it was written) is an error saying so, not entries decoded wrongly: here each
    /// value is a `(u64, u8)` read as a `u64`, whose leading bytes would decode.
    #[test]
    fn snapshots_of_other_types_are_rejected_as_such() {
        let mut s: KeyedState<u64, (u64, u8)> = KeyedState::new("widened");
        for k in 0..10u64 {
            s.insert(k, (k * 1000, 1));
        }
        let mut bytes = Vec::new();
        s.snapshot(&mut bytes).unwrap();
        let back = KeyedState::<u64, (u64, u8)>::read_snapshot(&bytes[..], "p").unwrap();
        assert_eq!(back.len(), 10);
        let err = KeyedState::<u64, u64>::read_snapshot(&bytes[..], "p").unwrap_err();
        assert!(err.to_string().contains("other types"), "{err}");
        let err = KeyedState::<(u64, u8), u64>::read_snapshot(&bytes[..], "p").unwrap_err();
        assert!(err.to_string().contains("other types"), "{err}");
    }
}
