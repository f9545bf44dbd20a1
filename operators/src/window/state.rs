//! What a window operator keeps: the open windows of each key, as checkpoints see them.

use std::collections::BTreeMap;

use crate::build::FastMap;
use tidal_engine::{Result, Time};
use timely::dataflow::operators::Capability;

use crate::build::{EntryWriter, KeyedStore, Owner, timely};
use crate::keyed::{Key, Value};
use crate::window::Window;

/// Open windows of one operator on one worker: per window end, the accumulators per key.
pub(crate) struct WindowState<K, A> {
    pub(crate) open: BTreeMap<Time, OpenWindow<K, A>>,
    /// With a count trigger: records per (window end, key) so far.
    pub(crate) counts: FastMap<(Time, K), u64>,
    /// The key maps of windows forgotten, emptied, for windows opened next (at most
    /// [`SPARE_MAPS`]): a new window's map starts with the room the last ones grew to, instead
    /// of growing (and rehashing every key) again, and no memory is freed and asked back.
    /// Not part of a snapshot.
    pub(crate) spare: Vec<FastMap<K, A>>,
}

/// How many emptied key maps a window operator keeps for its next windows.
pub(crate) const SPARE_MAPS: usize = 2;

pub(crate) struct OpenWindow<K, A> {
    pub(crate) start: Time,
    /// Capability to emit this window's results, until it first fires.
    pub(crate) cap: Option<Capability<Time>>,
    pub(crate) keys: FastMap<K, A>,
}

impl<K: Key, A: Value> Default for WindowState<K, A> {
    fn default() -> Self {
        WindowState {
            open: BTreeMap::new(),
            counts: FastMap::default(),
            spare: Vec::new(),
        }
    }
}

impl<K: Key, A: Value> KeyedStore for WindowState<K, A> {
    type Key = K;
    /// A key's window: its bounds, its accumulator, and with a count trigger the records so far
    /// (0 without).
    type Entry = (Window, A, u64);
    fn key_count(&self) -> usize {
        self.open.values().map(|w| w.keys.len()).sum()
    }
    fn write_entries(&self, _cut: Time, out: &mut EntryWriter<'_, K>) -> Result<()> {
        for (&end, w) in &self.open {
            let window = Window {
                start: w.start,
                end,
            };
            for (k, a) in &w.keys {
                let count = self.counts.get(&(end, k.clone())).copied().unwrap_or(0);
                out.entry(k, &(window, a, count))?;
            }
        }
        Ok(())
    }
    fn encoded_bytes(&self) -> Option<u64> {
        tidal_engine::state::measure_entries(|out| self.write_entries(Time::MAX, out))
    }
    fn restore(&mut self, entries: Vec<(K, Self::Entry)>, _owner: Owner) -> Result<()> {
        for (k, (w, a, count)) in entries {
            if count > 0 {
                self.counts.insert((w.end, k.clone()), count);
            }
            self.open
                .entry(w.end)
                .or_insert_with(|| OpenWindow {
                    start: w.start,
                    cap: None,
                    keys: FastMap::default(),
                })
                .keys
                .insert(k, a);
        }
        Ok(())
    }
}
