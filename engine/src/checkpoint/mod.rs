//! Checkpoints: consistent snapshots of a running job, taken at a frontier, and restoring them.
//!
//! ## The consistency argument
//! A checkpoint is a **cut time** `T` of timely time (a watermark): it holds exactly the effect of
//! the records that sources sent at times below `T`.
//! 1. Every source instance notes, each time its capability moves, where its reader stands then
//!    (before it sends anything at the new capability). So for any `T` at or below its capability
//!    it knows its **position** at `T`: what it had still to read when its capability first
//!    reached `T`. Every record it sent before that is below `T`, every later one at or above.
//! 2. Worker 0 asks every worker to *fence* its sources (no capability may move past the least
//!    capability on the worker) and to say, per source, where its furthest-behind instance there
//!    stands. The cut `T` is one past the furthest-behind instance of each source, the latest of
//!    those over the sources. Every worker then fences its sources at `T`: the instances behind
//!    move up to `T`, those ahead stay where they are (they are past `T` already, and step 1 gives
//!    their positions at `T`).
//! 3. Stateful operators change their state only in time order as their input frontier passes
//!    (see [`state`](crate::state)) and hold a capability for every time whose input they buffer.
//!    An operator fed through an exchange by every instance of its sources has an input frontier
//!    no later than the furthest-behind instance of each: fenced, it stops exactly at `T`. When
//!    its *output* frontier reaches `T` it has folded in every record below `T` and none at or
//!    above: its state is the state as of `T`. An operator fed by a pipeline from one instance (a
//!    sink after a source) may run past `T`; it gives its state as of `T` itself (a file sink keeps
//!    the length its part had before each time it wrote, and seals what is below `T`). The worker
//!    watches all its stateful operators' outputs with one probe.
//! 4. When its probe has reached `T` and every source of its has reached `T` (or ended), a worker
//!    writes its **part**: every registered state's snapshot as of `T` and every source's position
//!    at `T`. When all parts are written, worker 0 writes the **manifest**, which marks the
//!    checkpoint complete, and lifts the fences. Meanwhile the sources keep reading; their records
//!    wait in the operators' per-time buffers (the cost of a checkpoint is that wait — tens of
//!    milliseconds: a source behind the cut moves to it at once, not at its next tick — not a
//!    stop). A source that ends meanwhile keeps its capability at the fence until the checkpoint
//!    is over, so that no operator runs to the end of input before its snapshot; one stopped
//!    (Ctrl-C, [`StopHandle::stop`](crate::StopHandle::stop)) rather than read to its end gives
//!    its true position at the cut, so the checkpoint restores what it had still to read. A
//!    checkpoint asked for after a worker was told to stop is not taken: a source there may have
//!    ended early and let the operators run past what it had left (take a savepoint and then
//!    stop instead — SIGUSR2 or [`StopHandle::savepoint`](crate::StopHandle::savepoint)).
//!
//! 5. Once the manifest is written, every worker tells its states that the checkpoint is
//!    complete ([`KeyedStore::checkpoint_complete`](crate::state::KeyedStore::checkpoint_complete)):
//!    side effects held back until then are released — the file sinks commit the parts they
//!    sealed at `T` (a two-phase commit: the snapshot is the prepare, the manifest the decision).
//!    The notice can be lost (a process dies after the manifest), so a restore releases what the
//!    checkpoint holds back as well.
//!
//! Restoring reads every part of a complete, valid checkpoint on every worker: each stateful
//! operator keeps the keys it owns among the new number of workers (so any worker count works),
//! and each source resumes from the positions of all former instances, redistributed; restored
//! sources start at `T`.
//!
//! One more condition keeps step 3 true for an operator fed only by sources that have ended: no
//! source may have passed a cut before it was chosen. The cut follows the sources behind; a
//! source ahead of them that sent records at or above a later cut and then ended would be
//! restored at its position there and send them again, to an operator that had already applied
//! them. So while a job checkpoints, every event-time source instance keeps its capability at or
//! below the least own watermark of the other event-time sources' active instances, published
//! cluster-wide on the watermark board (an instance not yet heard of holds, an idle or ended one
//! does not; a source held back goes on reading). Ingestion-time sources are not held.
//!
//! Instances of one source far apart in event time (file splits read side by side) do not slow
//! checkpoints: the cut follows the one behind. Two *different* sources far apart do: the cut
//! waits for the one behind to reach the other. A source whose watermark stands still (no
//! records, no idleness timeout) holds checkpoints back as it holds windows back; a checkpoint not
//! complete after `--checkpoint-timeout` is abandoned and the fences are lifted.
//!
//! ## Format (version 3)
//! `DIR/chk-NNNNNNNNN/part-WWWWW-of-PPPPP`, one per worker: magic `TDCP`, version (u32 LE), a
//! postcard-encoded [`StoredPart`], CRC-32 (LE) of everything before it. Each state's section is
//! either full — a keyed-state snapshot (own magic, version and checksum) — or, with incremental
//! checkpoints, a delta on the same worker's part of an earlier checkpoint, or the changes its
//! store wrote since one (see [`incremental`]). `DIR/chk-NNNNNNNNN/MANIFEST`, written last: text
//! lines `tidal-checkpoint 3`, `id`, `cut`, `created_ms`, `workers`, `part NAME BYTES CRC32` per part
//! (the CRC-32 the part ends with),
//! and `needs ID...` when deltas build on earlier checkpoints. Versions 1 (no deltas) and 2 (no
//! changes sections) are still read.
//!
//! `DIR` is a local directory or an S3 prefix (see [`storage`](crate::storage::Location)); on disk each
//! file is written to a temporary name, synced and renamed, on S3 each is one PUT.

mod format;
pub mod incremental;
mod read;

pub use format::{
    CHECKPOINT_VERSION, Manifest, Part, StoredPart, WrittenPart, decode_part, encode_part,
    part_crc, write_manifest, write_part,
};
pub use read::{Restored, latest_valid, list_checkpoints, prune, read_checkpoint, resolve_restore};

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::checkpoint::incremental::Section;
use crate::storage::Location;
use crate::time::Time;

/// Where and how often a job checkpoints, and what it restores from.
///
/// ```
/// use std::time::Duration;
/// let config = tidal_engine::CheckpointConfig::new("/tmp/job-checkpoints")
///     .interval(Duration::from_secs(1))
///     .keep(3);
/// assert_eq!(config.interval, Duration::from_secs(1));
/// ```
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// Directory of the checkpoints (one sub-directory each): a local path or an S3 prefix.
    pub dir: Location,
    /// Time between the end of one checkpoint and the start of the next.
    pub interval: Duration,
    /// How many complete checkpoints to keep (older ones are deleted).
    pub keep: usize,
    /// A checkpoint not complete after this long is abandoned.
    pub timeout: Duration,
    /// Failed checkpoints in a row that the job tolerates before it fails.
    pub tolerable_failures: usize,
    /// What to restore from at start, if anything.
    pub restore: Option<Restore>,
    /// Where savepoints go (taken on SIGUSR1, or on SIGUSR2 before the job stops).
    pub savepoint_dir: Option<Location>,
    /// Whether checkpoints are taken every `interval` (only savepoints otherwise).
    pub periodic: bool,
    /// Whether checkpoints write only what changed since the last complete one (see
    /// [`incremental`]); savepoints are always whole.
    pub incremental: bool,
}

/// What to restore a job from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restore {
    /// The newest complete, valid checkpoint in the checkpoint directory (none: start afresh).
    Latest,
    /// One checkpoint directory; an error if it is incomplete or invalid.
    Path(Location),
}

impl CheckpointConfig {
    /// Checkpoints in `dir` every 10 s, keeping 3.
    pub fn new(dir: impl Into<Location>) -> Self {
        CheckpointConfig {
            dir: dir.into(),
            interval: Duration::from_secs(10),
            keep: 3,
            timeout: Duration::from_secs(120),
            tolerable_failures: 3,
            restore: None,
            savepoint_dir: None,
            periodic: true,
            incremental: false,
        }
    }
    /// The folder of checkpoint or savepoint `id`.
    pub fn folder(&self, id: u64, savepoint: bool) -> Location {
        match (&self.savepoint_dir, savepoint) {
            (Some(dir), true) => savepoint_path(dir, id),
            _ => checkpoint_path(&self.dir, id),
        }
    }
    /// Takes savepoints into `dir` when asked (SIGUSR1; SIGUSR2: a savepoint, then a clean stop).
    pub fn savepoints(mut self, dir: impl Into<Location>) -> Self {
        self.savepoint_dir = Some(dir.into());
        self
    }
    /// Sets the interval between checkpoints.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
    /// Sets how many complete checkpoints are kept.
    pub fn keep(mut self, keep: usize) -> Self {
        self.keep = keep.max(1);
        self
    }
    /// Writes incremental checkpoints (or not).
    pub fn incremental(mut self, incremental: bool) -> Self {
        self.incremental = incremental;
        self
    }
    /// Restores from `restore` at start.
    pub fn restore(mut self, restore: Restore) -> Self {
        self.restore = Some(restore);
        self
    }
}

/// A checkpoint or savepoint that has just completed: its manifest is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedCheckpoint {
    /// Its number.
    pub id: u64,
    /// The cut it holds the state as of.
    pub cut: Time,
    /// Its directory.
    pub location: Location,
    /// Whether it is a savepoint.
    pub savepoint: bool,
    /// Bytes of all its parts.
    pub bytes: u64,
    /// From its start to its completion, in milliseconds.
    pub duration_ms: u64,
}

/// Called once for every checkpoint and savepoint that completes (see
/// [`Job::on_checkpoint`](crate::Job::on_checkpoint)).
pub type CheckpointListener = std::sync::Arc<dyn Fn(&CompletedCheckpoint) + Send + Sync>;

/// Where a source instance stood at a cut.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum SourcePosition {
    /// The instance had read everything.
    Done,
    /// What it had still to read, as its reader encoded it, and its own watermark then.
    At {
        /// The reader's encoding of its remaining work.
        position: Vec<u8>,
        /// The instance's watermark when it reached the cut.
        watermark: Time,
    },
}

/// The directory of checkpoint `id` under `dir`.
pub fn checkpoint_path(dir: &Location, id: u64) -> Location {
    dir.join(&format!("chk-{id:09}"))
}

/// The directory of savepoint `id` under `dir` (savepoints are never pruned).
pub fn savepoint_path(dir: &Location, id: u64) -> Location {
    dir.join(&format!("sp-{id:09}"))
}

#[cfg(test)]
mod tests {
    use super::format::part_name;
    use super::*;
    use crate::storage;
    use std::fs;
    use std::path::{Path, PathBuf};

    fn loc(dir: &Path) -> Location {
        Location::from(dir)
    }

    fn local(at: Location) -> PathBuf {
        at.as_local().unwrap().to_path_buf()
    }

    fn part(worker: usize, peers: usize) -> Part {
        Part {
            checkpoint: 7,
            cut: 1234,
            worker,
            peers,
            sources: vec![("src".into(), SourcePosition::Done)],
            states: vec![("op".into(), vec![1, 2, 3])],
        }
    }

    fn complete_checkpoint(dir: &Path) -> Location {
        let dir = &loc(dir);
        let parts: Vec<_> = (0..2)
            .map(|w| write_part(&checkpoint_path(dir, 7), &StoredPart::full(part(w, 2))).unwrap())
            .collect();
        write_manifest(
            &checkpoint_path(dir, 7),
            &Manifest {
                id: 7,
                cut: 1234,
                created_ms: 1,
                workers: 2,
                parts,
                needs: vec![],
            },
        )
        .unwrap();
        checkpoint_path(dir, 7)
    }

    #[test]
    fn a_written_checkpoint_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = complete_checkpoint(dir.path());
        let restored = read_checkpoint(&path).unwrap();
        assert_eq!(restored.cut, 1234);
        assert_eq!(restored.parts, vec![part(0, 2), part(1, 2)]);
        assert_eq!(restored.state_sections("op").count(), 2);
    }

    #[test]
    fn truncated_flipped_missing_and_unfinished_checkpoints_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = complete_checkpoint(dir.path());
        let part0 = local(path.join(&part_name(0, 2)));
        let good = fs::read(&part0).unwrap();

        fs::write(&part0, &good[..good.len() - 3]).unwrap();
        let e = read_checkpoint(&path).unwrap_err().to_string();
        assert!(
            e.contains("corrupt") && e.contains("part-00000-of-00002"),
            "{e}"
        );

        let mut flipped = good.clone();
        flipped[10] ^= 0x40;
        fs::write(&part0, &flipped).unwrap();
        assert!(
            read_checkpoint(&path)
                .unwrap_err()
                .to_string()
                .contains("corrupt")
        );

        fs::remove_file(&part0).unwrap();
        assert!(
            read_checkpoint(&path)
                .unwrap_err()
                .to_string()
                .contains("missing part")
        );

        fs::write(&part0, &good).unwrap();
        assert!(read_checkpoint(&path).is_ok());
        fs::remove_file(local(path.join("MANIFEST"))).unwrap();
        assert!(
            read_checkpoint(&path)
                .unwrap_err()
                .to_string()
                .contains("incomplete")
        );
    }

    #[test]
    fn latest_falls_back_to_the_newest_valid_checkpoint_and_prune_keeps_k() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = &loc(tmp.path());
        for id in 1..=4 {
            let mut p = part(0, 1);
            p.checkpoint = id;
            let written = write_part(&checkpoint_path(dir, id), &StoredPart::full(p)).unwrap();
            write_manifest(
                &checkpoint_path(dir, id),
                &Manifest {
                    id,
                    cut: id as i64,
                    created_ms: 0,
                    workers: 1,
                    parts: vec![written],
                    needs: vec![],
                },
            )
            .unwrap();
        }
        // Checkpoint 4 gets a flipped byte; 5 never got its manifest.
        let p4 = local(checkpoint_path(dir, 4).join(&part_name(0, 1)));
        let mut bytes = fs::read(&p4).unwrap();
        bytes[9] ^= 1;
        fs::write(&p4, bytes).unwrap();
        let mut p5 = part(0, 1);
        p5.checkpoint = 5;
        write_part(&checkpoint_path(dir, 5), &StoredPart::full(p5)).unwrap();
        assert_eq!(latest_valid(dir).unwrap().unwrap().id, 3);

        prune(dir, 2, 3).unwrap();
        let left: Vec<u64> = list_checkpoints(dir).unwrap().iter().map(|c| c.0).collect();
        assert_eq!(left, vec![5, 4, 3, 2]);
    }

    /// Writes checkpoint `id` of one worker holding `state` through `tracker`.
    fn write_incremental(
        dir: &Location,
        id: u64,
        tracker: &mut crate::checkpoint::incremental::Tracker,
        state: &crate::state::KeyedState<u64, u64>,
    ) {
        let mut bytes = Vec::new();
        state.snapshot(&mut bytes).unwrap();
        let (sections, needs) = tracker
            .sections(
                id,
                vec![(
                    "s".into(),
                    crate::checkpoint::incremental::Taken::Whole(bytes),
                )],
            )
            .unwrap();
        let stored = StoredPart {
            checkpoint: id,
            cut: id as i64,
            worker: 0,
            peers: 1,
            sources: vec![],
            states: sections,
        };
        let written = write_part(&checkpoint_path(dir, id), &stored).unwrap();
        tracker.written(id, written.2);
        let manifest = Manifest {
            id,
            cut: id as i64,
            created_ms: 0,
            workers: 1,
            parts: vec![written],
            needs,
        };
        write_manifest(&checkpoint_path(dir, id), &manifest).unwrap();
        tracker.ended(id, true);
    }

    #[test]
    fn incremental_checkpoints_restore_whole_and_keep_what_they_build_on() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = &loc(tmp.path());
        let mut tracker = crate::checkpoint::incremental::Tracker::default();
        let mut state: crate::state::KeyedState<u64, u64> = crate::state::KeyedState::new("s");
        for k in 0..5000 {
            state.insert(k, k);
        }
        for id in 1..=4u64 {
            state.insert(id, 100 + id);
            state.remove(&(1000 + id));
            write_incremental(dir, id, &mut tracker, &state);
        }
        let restored = read_checkpoint(&checkpoint_path(dir, 4)).unwrap();
        assert_eq!(restored.needs, vec![1, 2, 3]);
        let mut back: Vec<(u64, u64)> =
            crate::state::read_sections("s", &[&restored.parts[0].states[0].1[..]]).unwrap();
        back.sort();
        let mut expected: Vec<(u64, u64)> = state.iter().map(|(k, v)| (*k, *v)).collect();
        expected.sort();
        assert_eq!(back, expected);
        // The later checkpoints are small: deltas.
        assert!(restored.bytes * 10 < read_checkpoint(&checkpoint_path(dir, 1)).unwrap().bytes);

        // Keeping 1 keeps what checkpoint 4 builds on.
        prune(dir, 1, 4).unwrap();
        assert_eq!(list_checkpoints(dir).unwrap().len(), 4);

        // A base overwritten since (here: checkpoint 2 rewritten whole) is detected.
        let mut other = crate::checkpoint::incremental::Tracker::default();
        write_incremental(dir, 2, &mut other, &state);
        let e = read_checkpoint(&checkpoint_path(dir, 4))
            .unwrap_err()
            .to_string();
        assert!(e.contains("has changed since"), "{e}");
        // A missing base makes the checkpoint invalid, and latest falls back past it.
        storage::remove_all(&checkpoint_path(dir, 3)).unwrap();
        let e = read_checkpoint(&checkpoint_path(dir, 4))
            .unwrap_err()
            .to_string();
        assert!(e.contains("builds on checkpoint 3"), "{e}");
        assert_eq!(latest_valid(dir).unwrap().unwrap().id, 2);
    }
}
