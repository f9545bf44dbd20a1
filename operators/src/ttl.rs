//! Time to live for keyed state outside process functions (rolling aggregates): each key's value
//! expires a set time of processing time after it was last written; an expired value is never
//! used again and is removed, so the state holds the keys written lately, not every key ever seen.

use std::collections::BTreeMap;

use tidal_engine::state::{EntryWriter, KeyedState, KeyedStore, Owner};
use tidal_engine::{JobClock, Result, Time};

use crate::build::FastMap;
use crate::keyed::{Key, Value};

/// When each key was last written, and when keys may expire: the bookkeeping of every state
/// with a time to live (process functions' and rolling aggregates').
pub(crate) struct Expiry<K> {
    ttl: Time,
    written: FastMap<K, Time>,
    schedule: BTreeMap<Time, Vec<K>>,
}

impl<K: Key> Expiry<K> {
    pub(crate) fn new(ttl: Time) -> Self {
        Expiry {
            ttl,
            written: FastMap::default(),
            schedule: BTreeMap::new(),
        }
    }

    /// How long a value lives after its last write.
    pub(crate) fn ttl(&self) -> Time {
        self.ttl
    }

    /// Whether `key`'s value has expired at `now` (it was written `ttl` or more before).
    pub(crate) fn expired(&self, key: &K, now: Time) -> bool {
        self.written
            .get(key)
            .is_some_and(|w| now.saturating_sub(*w) >= self.ttl)
    }

    /// Notes that `key` was written at `now`.
    pub(crate) fn wrote(&mut self, key: &K, now: Time) {
        match self.written.get_mut(key) {
            Some(w) => *w = now,
            None => {
                self.written.insert(key.clone(), now);
            }
        }
        self.schedule
            .entry(now.saturating_add(self.ttl))
            .or_default()
            .push(key.clone());
    }

    /// Forgets `key` (its value is gone).
    pub(crate) fn forget(&mut self, key: &K) {
        self.written.remove(key);
    }

    /// When `key` was last written.
    pub(crate) fn written(&self, key: &K) -> Option<Time> {
        self.written.get(key).copied()
    }

    /// Every key's last write.
    pub(crate) fn writes(&self) -> impl Iterator<Item = (&K, &Time)> {
        self.written.iter()
    }

    /// Calls `remove` for each key whose time to live has passed at `now`, and forgets it.
    pub(crate) fn expire(&mut self, now: Time, mut remove: impl FnMut(&K)) {
        self.expire_written(now, |k, _| remove(k));
    }

    /// [`expire`](Self::expire), telling `remove` each key's last write too.
    pub(crate) fn expire_written(&mut self, now: Time, mut remove: impl FnMut(&K, Time)) {
        while let Some(entry) = self.schedule.first_entry() {
            if *entry.key() > now {
                break;
            }
            for key in entry.remove() {
                if self.expired(&key, now)
                    && let Some(written) = self.written.remove(&key)
                {
                    remove(&key, written);
                }
            }
        }
    }

    /// When the next value may expire.
    pub(crate) fn next_expiry(&self) -> Option<Time> {
        self.schedule.first_key_value().map(|(t, _)| *t)
    }
}

/// A rolling aggregate's state: the aggregate per key and, with a time to live, when each was
/// last written. A snapshot entry is `(aggregate, last write)`.
pub(crate) struct RollingState<K, A> {
    pub(crate) values: KeyedState<K, A>,
    pub(crate) ttl: Option<Expiry<K>>,
    /// For restored aggregates without a last write.
    clock: JobClock,
}

impl<K: Key, A> RollingState<K, A> {
    pub(crate) fn new(name: &str, ttl: Option<Time>, clock: JobClock) -> Self {
        RollingState {
            values: KeyedState::new(name),
            ttl: ttl.map(Expiry::new),
            clock,
        }
    }
}

impl<K: Key> Expiry<K> {
    /// Before `key`'s aggregate is written at `now`: drops it from `values` if it has expired
    /// (the key starts anew), then notes the write.
    pub(crate) fn write<V>(&mut self, key: &K, now: Time, values: &mut KeyedState<K, V>) {
        if self.expired(key, now) {
            values.remove(key);
        }
        self.wrote(key, now);
    }
}

impl<K: Key, A: Value> KeyedStore for RollingState<K, A> {
    type Key = K;
    type Entry = (A, Option<Time>);
    fn key_count(&self) -> usize {
        self.values.len()
    }
    fn write_entries(&self, _cut: Time, out: &mut EntryWriter<'_, K>) -> Result<()> {
        for (k, a) in self.values.iter() {
            let written = self.ttl.as_ref().and_then(|t| t.written(k));
            out.entry(k, &(a, written))?;
        }
        Ok(())
    }
    fn encoded_bytes(&self) -> Option<u64> {
        tidal_engine::state::measure_entries(|out| self.write_entries(Time::MAX, out))
    }
    fn restore(&mut self, entries: Vec<(K, (A, Option<Time>))>, _owner: Owner) -> Result<()> {
        for (k, (a, written)) in entries {
            if let Some(ttl) = self.ttl.as_mut() {
                // Written before the job had a time to live: as if written now.
                ttl.wrote(&k, written.unwrap_or_else(|| self.clock.now()));
            }
            self.values.insert(k, a);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_expire_a_time_to_live_after_their_last_write() {
        let mut values: KeyedState<u32, u64> = KeyedState::new("sum");
        let mut ttl = Expiry::new(100);
        // Written at 0 and 50: alive at 149, gone at 150.
        ttl.write(&1, 0, &mut values);
        values.insert(1, 10);
        ttl.write(&1, 50, &mut values);
        assert_eq!(values.get(&1), Some(&10), "written again before it expired");
        ttl.expire(149, |k| {
            values.remove(k);
        });
        assert_eq!(values.get(&1), Some(&10));
        assert_eq!(
            ttl.next_expiry(),
            Some(150),
            "due 100 ms after the last write"
        );
        ttl.expire(150, |k| {
            values.remove(k);
        });
        assert_eq!(values.get(&1), None, "100 ms after its last write");
        // A write after expiry (before the schedule ran) starts from nothing.
        values.insert(2, 5);
        ttl.write(&2, 200, &mut values);
        ttl.write(&2, 300, &mut values);
        assert_eq!(values.get(&2), None, "expired at the write at 300");
        assert!(ttl.written.len() <= 2);
    }
}
