//! The one hash function that decides where a key lives.
//!
//! Keys are routed to workers by [`key_hash`]: the same on every process, machine and run (it does
//! not use a random seed), so that key ranges agree across processes. State is never stored with its
//! worker assignment: restoring re-routes every key with the new worker count.

use std::hash::{Hash, Hasher};

/// Hashes a key for routing and partitioning. Stable across processes and runs.
///
/// ```
/// let a = tidal_engine::state::key_hash(&"tide");
/// assert_eq!(a, tidal_engine::state::key_hash(&"tide"));
/// assert_ne!(a, tidal_engine::state::key_hash(&"wave"));
/// ```
#[inline]
pub fn key_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    key.hash(&mut hasher);
    mix(hasher.finish())
}

/// The worker (of `peers`) that owns a key with hash `hash`: the same rule the exchange uses.
///
/// ```
/// let h = tidal_engine::state::key_hash(&42u64);
/// assert!(tidal_engine::state::worker_for(h, 3) < 3);
/// ```
#[inline]
pub fn worker_for(hash: u64, peers: usize) -> usize {
    (hash % peers as u64) as usize
}

/// A finaliser (from MurmurHash3) so that the low bits used for routing depend on every input bit.
#[inline]
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// A hash map with a fast hash, for state keyed by [`key_hash`]-routed keys.
pub type FastMap<K, V> = std::collections::HashMap<K, V, rustc_hash::FxBuildHasher>;
