//! The control plane: small messages every worker of a job sees, on any number of processes.
//!
//! Next to the job's dataflow every worker runs a second, tiny dataflow: an input of control
//! messages, broadcast to every worker, applied to the process's shared job state. Workers post
//! messages through their context; the worker loop sends them after each step, and closes the
//! input when the job's dataflow has finished on that worker. Within one process the shared state
//! is already visible to every worker, so messages from the same process are not applied twice.
//!
//! What travels here (one message per source instance per tick at most, never records):
//! - source instances' own watermarks and idle flags, so that an idle instance can follow the
//!   active ones in every process (see [`WatermarkStrategy::with_idleness`](crate::WatermarkStrategy::with_idleness));
//! - the checkpoint protocol (see [`checkpoint`](crate::checkpoint)), a few messages per checkpoint.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::time::Time;

/// A message on the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Control {
    /// A source instance's own watermark and idle flag (`None`: the instance has ended).
    Watermark {
        source: String,
        worker: usize,
        process: usize,
        seq: u64,
        value: Option<(Time, bool)>,
    },
    /// Worker 0 starts checkpoint `id`: fence your sources, say where.
    CheckpointPrepare { id: u64 },
    /// A worker has fenced its sources: per source, the least capability of its running
    /// instances on the worker (empty: no source running), and whether the worker was asked to
    /// stop (its sources may have ended without reading everything: no consistent cut).
    CheckpointFenced {
        id: u64,
        worker: usize,
        at: Vec<(String, Time)>,
        stopping: bool,
    },
    /// The cut of checkpoint `id` (a savepoint when `savepoint`).
    CheckpointCut { id: u64, cut: Time, savepoint: bool },
    /// A worker wrote its part, or could not.
    CheckpointWritten {
        id: u64,
        worker: usize,
        part: Result<crate::checkpoint::WrittenPart, String>,
    },
    /// Checkpoint `id` is over (`complete`, or abandoned): lift the fences.
    CheckpointEnd { id: u64, complete: bool },
    /// Stop the job cleanly (after a stop-with-savepoint).
    Stop,
    /// A worker's metrics (with metrics on), once a second.
    Metrics(crate::metrics::WorkerMetrics),
    /// A worker's sources' progress (unless `--progress never`), twice a second.
    Progress {
        worker: usize,
        seq: u64,
        sources: Vec<(String, super::progress::SourceProgress)>,
    },
}

/// Every source instance's latest own watermark and idle flag, by source name and worker index
/// (all processes), with the sequence number of the message that set it.
#[derive(Debug, Default)]
pub(crate) struct WatermarkBoard {
    sources: HashMap<String, BTreeMap<usize, Posted>>,
}

/// A sequence number and what the message with it said: own watermark and idle flag, or ended.
type Posted = (u64, Option<(Time, bool)>);

impl WatermarkBoard {
    /// Records `value` for `worker`'s instance of `source` unless a later message already did.
    pub(crate) fn set(
        &mut self,
        source: &str,
        worker: usize,
        seq: u64,
        value: Option<(Time, bool)>,
    ) {
        let instances = match self.sources.get_mut(source) {
            Some(i) => i,
            None => self.sources.entry(source.to_string()).or_default(),
        };
        match instances.get_mut(&worker) {
            Some(entry) if entry.0 >= seq => {}
            Some(entry) => *entry = (seq, value),
            None => {
                instances.insert(worker, (seq, value));
            }
        }
    }

    /// Whether every one of `workers` workers has posted under `key`.
    pub(crate) fn heard_from_all(&self, key: &str, workers: usize) -> bool {
        self.sources
            .get(key)
            .is_some_and(|posted| (0..workers).all(|w| posted.contains_key(&w)))
    }

    /// The least own watermark of the active instances of `sources` (`workers` instances each),
    /// or `Time::MIN` while an instance has not been heard of yet; `None` when every instance
    /// is idle or has ended.
    pub(crate) fn least_of<'a>(
        &self,
        sources: impl IntoIterator<Item = &'a String>,
        workers: usize,
    ) -> Option<Time> {
        let mut least: Option<Time> = None;
        for source in sources {
            let instances = self.sources.get(source);
            for worker in 0..workers {
                match instances.and_then(|i| i.get(&worker)) {
                    None => return Some(Time::MIN),
                    Some((_, Some((watermark, false)))) => {
                        least = Some(least.map_or(*watermark, |l| l.min(*watermark)));
                    }
                    Some(_) => {}
                }
            }
        }
        least
    }

    /// What `worker`'s idle instance of `source` may follow: the least watermark of the other
    /// active instances, or, when all of them are idle, the least of their own watermarks.
    pub(crate) fn follow(&self, source: &str, worker: usize) -> Option<Time> {
        let instances = self.sources.get(source)?;
        let others = || {
            instances
                .iter()
                .filter(move |(w, _)| **w != worker)
                .filter_map(|(_, (_, v))| *v)
        };
        others()
            .filter(|(_, idle)| !idle)
            .map(|(w, _)| w)
            .min()
            .or_else(|| others().map(|(w, _)| w).min())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_instances_follow_the_least_active_one_then_the_least_of_all() {
        let mut board = WatermarkBoard::default();
        board.set("s", 0, 1, Some((100, true)));
        board.set("s", 1, 1, Some((50, false)));
        board.set("s", 2, 1, Some((70, false)));
        assert_eq!(board.follow("s", 0), Some(50));
        board.set("s", 1, 2, Some((60, true)));
        board.set("s", 2, 2, Some((80, true)));
        assert_eq!(board.follow("s", 0), Some(60));
        // A stale message does not overwrite a newer one; an ended instance leaves.
        board.set("s", 1, 1, Some((10, false)));
        assert_eq!(board.follow("s", 0), Some(60));
        board.set("s", 1, 3, None);
        board.set("s", 2, 3, None);
        assert_eq!(board.follow("s", 0), None);
        assert_eq!(board.follow("other", 0), None);
    }

    #[test]
    fn aligned_sources_are_held_by_the_least_active_watermark_of_the_others() {
        let mut board = WatermarkBoard::default();
        let others = ["a".to_string(), "b".to_string()];
        board.set("a", 0, 1, Some((100, false)));
        board.set("a", 1, 1, Some((40, false)));
        // An instance not heard of yet holds everything.
        assert_eq!(board.least_of(&others, 2), Some(Time::MIN));
        board.set("b", 0, 1, Some((70, false)));
        board.set("b", 1, 1, Some((10, true)));
        // Idle instances do not hold; the least active one does.
        assert_eq!(board.least_of(&others, 2), Some(40));
        board.set("a", 1, 2, None);
        assert_eq!(board.least_of(&others, 2), Some(70));
        board.set("a", 0, 2, None);
        board.set("b", 0, 2, None);
        // All ended or idle: nothing holds.
        assert_eq!(board.least_of(&others, 2), None);
        assert_eq!(board.least_of(&[] as &[String], 2), None);
    }

    #[test]
    fn a_key_is_heard_from_all_once_every_worker_posted_it() {
        let mut board = WatermarkBoard::default();
        assert!(!board.heard_from_all("k", 2));
        board.set("k", 1, 1, Some((0, false)));
        assert!(!board.heard_from_all("k", 2));
        board.set("k", 0, 1, Some((0, false)));
        assert!(board.heard_from_all("k", 2));
    }
}
