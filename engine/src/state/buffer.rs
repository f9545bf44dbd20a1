//! The building blocks of every stateful operator: input buffered per time and released in time
//! order as the frontier passes ([`TimeBuffer`]), and keyed state registered with the worker
//! ([`WorkerContext::register_state`](crate::WorkerContext::register_state)) so that it can be
//! listed, measured and snapshotted by name.
//!
//! An operator written on these keeps the invariant the state module describes: its state reflects
//! exactly the input with times below its input frontier.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use timely::dataflow::operators::{Capability, InputCapability};
use timely::progress::frontier::MutableAntichain;

use crate::time::Time;

/// Input buffered per timestamp, each buffer holding a capability for its time.
///
/// ```
/// use tidal_engine::state::TimeBuffer;
/// let buffer: TimeBuffer<Vec<u64>> = TimeBuffer::new();
/// assert!(buffer.is_empty());
/// ```
pub struct TimeBuffer<B> {
    pending: BTreeMap<Time, (Capability<Time>, B)>,
    spare: Option<B>,
}

impl<B: Default> Default for TimeBuffer<B> {
    fn default() -> Self {
        TimeBuffer {
            pending: BTreeMap::new(),
            spare: None,
        }
    }
}

impl<B: Default> TimeBuffer<B> {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The buffer for the time of a received message (created empty, with a capability for that
    /// time on output `port`), or `None` for a message that carries no time.
    pub fn at(
        &mut self,
        message: &InputCapability<Time>,
        port: usize,
    ) -> Option<(&Capability<Time>, &mut B)> {
        let time = *message.least()?;
        let (cap, buffer) = match self.pending.entry(time) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert((
                message.retain_least(port)?,
                self.spare.take().unwrap_or_default(),
            )),
        };
        Some((&*cap, buffer))
    }

    /// Removes and returns the buffers whose time the frontier has passed, earliest first.
    pub fn ready<'a>(
        &'a mut self,
        frontier: &'a MutableAntichain<Time>,
    ) -> impl Iterator<Item = (Capability<Time>, B)> + 'a {
        std::iter::from_fn(move || {
            let (&time, _) = self.pending.first_key_value()?;
            if frontier.less_equal(&time) {
                return None;
            }
            self.pending.pop_first().map(|(_, entry)| entry)
        })
    }

    /// Calls `logic` on each buffer whose time the frontier has passed, earliest first, then keeps
    /// the last one (cleared, with its capacity) for the next time.
    pub fn for_each_ready(
        &mut self,
        frontier: &MutableAntichain<Time>,
        mut logic: impl FnMut(&Capability<Time>, &mut B),
    ) where
        B: Clear,
    {
        let mut last = None;
        for (cap, mut buffer) in self.ready(frontier) {
            logic(&cap, &mut buffer);
            last = Some(buffer);
        }
        if let Some(mut buffer) = last {
            buffer.clear();
            self.spare = Some(buffer);
        }
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The buffered times and buffers, earliest first.
    pub fn iter(&self) -> impl Iterator<Item = (Time, &B)> {
        self.pending.iter().map(|(t, (_, b))| (*t, b))
    }
}

/// Buffers that can be emptied while keeping their capacity.
pub trait Clear {
    /// Removes every element.
    fn clear(&mut self);
}

impl<T> Clear for Vec<T> {
    fn clear(&mut self) {
        Vec::clear(self)
    }
}

impl<K, V, S> Clear for std::collections::HashMap<K, V, S> {
    fn clear(&mut self) {
        std::collections::HashMap::clear(self)
    }
}
