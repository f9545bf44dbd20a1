//! What a job returns: what its workers collected, and its report.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// What a job reports at its end, summed over this process's workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobReport {
    /// Per source name: records that failed to decode and were set aside, and where they went.
    pub skipped: BTreeMap<String, (u64, String)>,
    /// Per stateful operator: keys held in its state when the job ended, summed over workers.
    pub state_keys: BTreeMap<String, usize>,
    /// Per event-time operator: late records dropped (no side output was asked for).
    pub late_dropped: BTreeMap<String, u64>,
}

impl JobReport {
    /// Records set aside by all sources.
    pub fn total_skipped(&self) -> u64 {
        self.skipped.values().map(|(n, _)| n).sum()
    }
}

/// What one worker's build closure returns, and how this process's workers' results combine.
pub trait WorkerOutput: Send + 'static {
    /// The combined result returned by [`Job::run`](crate::Job::run).
    type Merged;
    /// Combines the results of this process's workers.
    fn merge(parts: Vec<Self>) -> Self::Merged
    where
        Self: Sized;
}

impl WorkerOutput for () {
    type Merged = ();
    fn merge(_: Vec<Self>) {}
}

impl<A: WorkerOutput, B: WorkerOutput> WorkerOutput for (A, B) {
    type Merged = (A::Merged, B::Merged);
    fn merge(parts: Vec<Self>) -> Self::Merged {
        let (a, b): (Vec<A>, Vec<B>) = parts.into_iter().unzip();
        (A::merge(a), B::merge(b))
    }
}

/// Records handed back to the caller of [`Job::run`](crate::Job::run) (see the `collect` sink).
///
/// ```
/// let c = tidal_engine::Collected::new();
/// c.extend([1, 2]);
/// assert_eq!(<tidal_engine::Collected<i32> as tidal_engine::WorkerOutput>::merge(vec![c]), vec![1, 2]);
/// ```
#[derive(Debug)]
pub struct Collected<T> {
    items: Arc<Mutex<Vec<T>>>,
}

impl<T> Clone for Collected<T> {
    fn clone(&self) -> Self {
        Collected {
            items: Arc::clone(&self.items),
        }
    }
}

impl<T> Default for Collected<T> {
    fn default() -> Self {
        Collected {
            items: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl<T> Collected<T> {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds records.
    pub fn extend(&self, items: impl IntoIterator<Item = T>) {
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(items);
    }
    /// Takes the records out.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.items.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl<T: Send + 'static> WorkerOutput for Collected<T> {
    type Merged = Vec<T>;
    fn merge(parts: Vec<Self>) -> Vec<T> {
        parts.iter().flat_map(|c| c.take()).collect()
    }
}
