//! What a keyed process function keeps: per key its state (with an optional time to live) and its
//! pending timers, as checkpoints see them.

use std::collections::BTreeMap;

use crate::build::FastMap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tidal_engine::{Result, Time};

use crate::build::{EntryWriter, KeyedStore, Owner};
use crate::keyed::Key;
use crate::process::named::{NamedEntry, NamedStates};
use crate::ttl::Expiry;
use tidal_engine::JobClock;

/// The state of one process operator on one worker: per-key values and pending timers, kept
/// apart so that a function can hold a key's value and the timers at once.
pub(crate) struct ProcessStore<K, S> {
    pub(crate) values: TtlState<K, S>,
    pub(crate) timers: Timers<K>,
    /// The function's named states (value, list, map, ...).
    pub(crate) named: NamedStates<K>,
    /// For leaving expired named states out of snapshots.
    pub(crate) clock: JobClock,
}

impl<K: Key, S> ProcessStore<K, S> {
    /// Empty state; values expire `ttl` after their last write, if given.
    pub(crate) fn new(ttl: Option<Time>, clock: JobClock) -> Self {
        ProcessStore {
            named: NamedStates::new(),
            clock,
            values: TtlState {
                values: FastMap::default(),
                expiry: ttl.map(Expiry::new),
            },
            timers: Timers {
                event: TimerQueue::new(),
                processing: TimerQueue::new(),
            },
        }
    }
}

/// One key's entry in a snapshot: state, event-time timers, processing-time timers, last write,
/// named states.
type ProcessEntry<S> = (Option<S>, Vec<Time>, Vec<Time>, Option<Time>, NamedEntry);
/// The same, borrowing the state, as it is written.
type ProcessEntryRef<'a, S> = (
    Option<&'a S>,
    Vec<Time>,
    Vec<Time>,
    Option<Time>,
    NamedEntry,
);

impl<K: Key, S: Serialize + DeserializeOwned + 'static> KeyedStore for ProcessStore<K, S> {
    type Key = K;
    type Entry = ProcessEntry<S>;
    fn key_count(&self) -> usize {
        let only_named = self
            .named
            .keys()
            .filter(|k| !self.values.contains_key(k))
            .count();
        self.values.values.len() + only_named
    }
    fn write_entries(&self, _cut: Time, out: &mut EntryWriter<'_, K>) -> Result<()> {
        let mut entries: FastMap<&K, ProcessEntryRef<'_, S>> = FastMap::default();
        for (k, v) in self.values.values.iter() {
            entries.entry(k).or_default().0 = v.as_ref();
        }
        for (ts, keys) in &self.timers.event.by_time {
            for k in keys.keys() {
                entries.entry(k).or_default().1.push(*ts);
            }
        }
        for (ts, keys) in &self.timers.processing.by_time {
            for k in keys.keys() {
                entries.entry(k).or_default().2.push(*ts);
            }
        }
        for (k, w) in self.values.expiry.iter().flat_map(|e| e.writes()) {
            entries.entry(k).or_default().3 = Some(*w);
        }
        let now = self.clock.now();
        for k in self.named.keys() {
            entries.entry(k).or_default().4 = self.named.entry(k, now)?;
        }
        for (k, e) in &entries {
            out.entry(k, e)?;
        }
        Ok(())
    }
    fn encoded_bytes(&self) -> Option<u64> {
        tidal_engine::state::measure_entries(|out| self.write_entries(Time::MAX, out))
    }
    fn restore(&mut self, entries: Vec<(K, ProcessEntry<S>)>, _owner: Owner) -> Result<()> {
        for (k, (state, event, processing, wrote, named)) in entries {
            self.named.restore(k.clone(), named);
            for ts in event {
                self.timers.event.insert(ts, k.clone());
            }
            for ts in processing {
                self.timers.processing.insert(ts, k.clone());
            }
            if let (Some(w), Some(expiry)) = (wrote, self.values.expiry.as_mut()) {
                expiry.wrote(&k, w);
            }
            if state.is_some() {
                self.values.values.insert(k, state);
            }
        }
        Ok(())
    }
}

/// Per-key state with an optional time to live since the last write.
pub(crate) struct TtlState<K, S> {
    /// Per key its state; never `None` between invocations (a slot emptied is removed).
    values: FastMap<K, Option<S>>,
    /// With a time to live: when each key was last written.
    expiry: Option<Expiry<K>>,
}

impl<K: Key, S> TtlState<K, S> {
    /// Whether `key`'s state has expired at `now`.
    fn expired(&self, key: &K, now: Time) -> bool {
        self.expiry.as_ref().is_some_and(|e| e.expired(key, now))
    }
    /// Calls `f` with every key's state that has not expired at `now` (with a time to live);
    /// state `f` clears is removed.
    pub(crate) fn for_each_mut(&mut self, now: Time, mut f: impl FnMut(&K, &mut Option<S>)) {
        let expiry = self.expiry.as_ref();
        let mut cleared = Vec::new();
        for (k, slot) in self.values.iter_mut() {
            if expiry.is_some_and(|e| e.expired(k, now)) {
                continue;
            }
            f(k, slot);
            if slot.is_none() {
                cleared.push(k.clone());
            }
        }
        for k in cleared {
            self.values.remove(&k);
            if let Some(e) = self.expiry.as_mut() {
                e.forget(&k);
            }
        }
    }
    /// Whether `key` has state.
    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.values.contains_key(key)
    }
    /// Whether state expires (has a time to live).
    pub(crate) fn expires(&self) -> bool {
        self.expiry.is_some()
    }
    /// Runs an invocation `f` on a key's state where it lies (`None` when the key has none, or
    /// its time to live has passed): state the invocation leaves is a write (for the time to
    /// live), state it clears is removed. A key with state costs one lookup (taking the state out
    /// and putting it back cost a removal and an insertion).
    pub(crate) fn with<R>(
        &mut self,
        key: K,
        now: Time,
        f: impl FnOnce(&K, &mut Option<S>) -> R,
    ) -> R {
        let expired = self.expired(&key, now);
        let (result, kept) = match self.values.get_mut(&key) {
            Some(slot) => {
                if expired {
                    *slot = None;
                }
                let result = f(&key, slot);
                let kept = slot.is_some();
                if !kept {
                    self.values.remove(&key);
                }
                (result, kept)
            }
            None => {
                let mut slot = None;
                let result = f(&key, &mut slot);
                let kept = slot.is_some();
                if kept {
                    self.values.insert(key.clone(), slot);
                }
                (result, kept)
            }
        };
        if let Some(e) = self.expiry.as_mut() {
            if kept {
                e.wrote(&key, now);
            } else {
                e.forget(&key);
            }
        }
        result
    }
    /// When the next state may expire (with a time to live, while any is held).
    pub(crate) fn next_expiry(&self) -> Option<Time> {
        self.expiry.as_ref().and_then(|e| e.next_expiry())
    }
    /// Removes state whose time to live has passed.
    pub(crate) fn expire(&mut self, now: Time) {
        let values = &mut self.values;
        if let Some(e) = self.expiry.as_mut() {
            e.expire(now, |k| {
                values.remove(k);
            });
        }
    }
}

/// Pending timers of one operator on one worker.
pub(crate) struct Timers<K> {
    pub(crate) event: TimerQueue<K>,
    pub(crate) processing: TimerQueue<K>,
}

/// Timers in timestamp order; at most one per (timestamp, key).
pub(crate) struct TimerQueue<K> {
    by_time: BTreeMap<Time, FastMap<K, ()>>,
}

impl<K: Key> TimerQueue<K> {
    pub(crate) fn new() -> Self {
        TimerQueue {
            by_time: BTreeMap::new(),
        }
    }
    pub(crate) fn insert(&mut self, ts: Time, key: K) {
        self.by_time.entry(ts).or_default().insert(key, ());
    }
    pub(crate) fn remove(&mut self, ts: Time, key: &K) {
        if let Some(keys) = self.by_time.get_mut(&ts) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_time.remove(&ts);
            }
        }
    }
    pub(crate) fn first_time(&self) -> Option<Time> {
        self.by_time.first_key_value().map(|(t, _)| *t)
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.by_time.is_empty()
    }
    /// Removes the earliest timer, if its time is below `limit`.
    pub(crate) fn pop_before(&mut self, limit: Time) -> Option<(Time, K)> {
        let mut entry = self.by_time.first_entry()?;
        let ts = *entry.key();
        if ts >= limit {
            return None;
        }
        let key = entry
            .get()
            .keys()
            .next()
            .cloned()
            .expect("no empty timer sets are kept");
        entry.get_mut().remove(&key);
        if entry.get().is_empty() {
            entry.remove();
        }
        Some((ts, key))
    }
}
