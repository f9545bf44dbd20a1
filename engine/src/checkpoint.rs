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
//!    sink after a source) may run past `T`; it gives its state as of `T` itself (a sink keeps the
//!    length its part had before each time it wrote). The worker watches all its stateful
//!    operators' outputs with one probe.
//! 4. When its probe has reached `T` and every source of its has reached `T` (or ended), a worker
//!    writes its **part**: every registered state's snapshot as of `T` and every source's position
//!    at `T`. When all parts are written, worker 0 writes the **manifest**, which marks the
//!    checkpoint complete, and lifts the fences. Meanwhile the sources keep reading; their records
//!    wait in the operators' per-time buffers (the cost of a checkpoint is that wait — tens of
//!    milliseconds: a source behind the cut moves to it at once, not at its next tick — not a
//!    stop). A source that ends meanwhile keeps its capability at the fence until the checkpoint
//!    is over, so that no operator runs to the end of input before its snapshot.
//!
//! Restoring reads every part of a complete, valid checkpoint on every worker: each stateful
//! operator keeps the keys it owns among the new number of workers (so any worker count works),
//! and each source resumes from the positions of all former instances, redistributed; restored
//! sources start at `T`.
//!
//! Instances of one source far apart in event time (file splits read side by side) do not slow
//! checkpoints: the cut follows the one behind. Two *different* sources far apart do: the cut
//! waits for the one behind to reach the other. A source whose watermark stands still (no
//! records, no idleness timeout) holds checkpoints back as it holds windows back; a checkpoint not
//! complete after `--checkpoint-timeout` is abandoned and the fences are lifted.
//!
//! ## Format (version 1)
//! `DIR/chk-NNNNNNNNN/part-WWWWW-of-PPPPP`, one per worker: magic `TDCP`, version (u32 LE), a
//! postcard-encoded [`Part`], CRC-32 (LE) of everything before it. Each state section is itself a
//! keyed-state snapshot (own magic, version and checksum). `DIR/chk-NNNNNNNNN/MANIFEST`, written
//! last (temp file, fsync, rename): text lines `tidal-checkpoint 1`, `id`, `cut`, `created_ms`,
//! `workers`, and `part NAME BYTES CRC32` per part.

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::time::Time;

/// Version of the checkpoint format this Tidal writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;
const PART_MAGIC: &[u8; 4] = b"TDCP";
const MANIFEST_HEADER: &str = "tidal-checkpoint";

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
    /// Directory of the checkpoints (one sub-directory each).
    pub dir: PathBuf,
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
    pub savepoint_dir: Option<PathBuf>,
    /// Whether checkpoints are taken every `interval` (only savepoints otherwise).
    pub periodic: bool,
}

/// What to restore a job from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restore {
    /// The newest complete, valid checkpoint in the checkpoint directory (none: start afresh).
    Latest,
    /// One checkpoint directory; an error if it is incomplete or invalid.
    Path(PathBuf),
}

impl CheckpointConfig {
    /// Checkpoints in `dir` every 10 s, keeping 3.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CheckpointConfig {
            dir: dir.into(),
            interval: Duration::from_secs(10),
            keep: 3,
            timeout: Duration::from_secs(120),
            tolerable_failures: 3,
            restore: None,
            savepoint_dir: None,
            periodic: true,
        }
    }
    /// The folder of checkpoint or savepoint `id`.
    pub fn folder(&self, id: u64, savepoint: bool) -> PathBuf {
        match (&self.savepoint_dir, savepoint) {
            (Some(dir), true) => savepoint_path(dir, id),
            _ => checkpoint_path(&self.dir, id),
        }
    }
    /// Takes savepoints into `dir` when asked (SIGUSR1; SIGUSR2: a savepoint, then a clean stop).
    pub fn savepoints(mut self, dir: impl Into<PathBuf>) -> Self {
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
    /// Restores from `restore` at start.
    pub fn restore(mut self, restore: Restore) -> Self {
        self.restore = Some(restore);
        self
    }
}

/// One worker's part of a checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Part {
    /// Checkpoint id.
    pub checkpoint: u64,
    /// The cut time.
    pub cut: Time,
    /// Writing worker and number of workers.
    pub worker: usize,
    /// Number of workers of the job that wrote it.
    pub peers: usize,
    /// Per source name: the position of this worker's instance (opaque to the engine).
    pub sources: Vec<(String, SourcePosition)>,
    /// Per stateful operator name: its keyed-state snapshot.
    pub states: Vec<(String, Vec<u8>)>,
}

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

/// A complete checkpoint read back: its manifest's facts and every part.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The checkpoint's directory.
    pub path: PathBuf,
    /// Checkpoint id.
    pub id: u64,
    /// The cut time: restored sources start at it.
    pub cut: Time,
    /// Every worker's part.
    pub parts: Vec<Part>,
}

impl Restored {
    /// Every part's snapshot of the state called `name`.
    pub fn state_sections<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.parts.iter().flat_map(move |p| {
            p.states
                .iter()
                .filter(move |(n, _)| n == name)
                .map(|(_, b)| b.as_slice())
        })
    }
    /// Every former instance's position of the source called `name`.
    pub fn source_positions<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a SourcePosition> + 'a {
        self.parts.iter().flat_map(move |p| {
            p.sources
                .iter()
                .filter(move |(n, _)| n == name)
                .map(|(_, s)| s)
        })
    }
    /// Names of every state in the checkpoint.
    pub fn state_names(&self) -> std::collections::BTreeSet<&str> {
        self.parts
            .iter()
            .flat_map(|p| p.states.iter().map(|(n, _)| n.as_str()))
            .collect()
    }
}

/// The directory of checkpoint `id` under `dir`.
pub fn checkpoint_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("chk-{id:09}"))
}

/// The directory of savepoint `id` under `dir` (savepoints are never pruned).
pub fn savepoint_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("sp-{id:09}"))
}

fn part_name(worker: usize, peers: usize) -> String {
    format!("part-{worker:05}-of-{peers:05}")
}

/// Encodes a part (magic, version, body, checksum).
pub fn encode_part(part: &Part) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(PART_MAGIC);
    bytes.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
    let mut bytes = postcard::to_extend(part, bytes)
        .map_err(|e| Error::external(format!("encoding checkpoint part: {e}")))?;
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    Ok(bytes)
}

/// Decodes a part; `origin` names it in errors.
pub fn decode_part(bytes: &[u8], origin: &str) -> Result<Part> {
    let corrupt = |why: &str| Error::input(format!("checkpoint part {origin} is corrupt: {why}"));
    if bytes.len() < 12 || &bytes[..4] != PART_MAGIC {
        return Err(corrupt("not a Tidal checkpoint part"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(corrupt("checksum mismatch (truncated or modified)"));
    }
    let version = u32::from_le_bytes(body[4..8].try_into().expect("4 bytes"));
    if version != CHECKPOINT_VERSION {
        return Err(Error::input(format!(
            "checkpoint part {origin} has format version {version}; this Tidal reads version {CHECKPOINT_VERSION}"
        )));
    }
    postcard::from_bytes(&body[8..]).map_err(|e| corrupt(&e.to_string()))
}

/// Writes `bytes` to `path` durably: a temporary file, fsync, rename.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)
}

/// Writes worker `part.worker`'s part into the checkpoint's `folder`; returns (name, bytes, crc).
pub fn write_part(folder: &Path, part: &Part) -> Result<(String, u64, u32)> {
    let bytes = encode_part(part)?;
    let name = part_name(part.worker, part.peers);
    let path = folder.join(&name);
    fs::create_dir_all(folder)
        .and_then(|_| write_durably(&path, &bytes))
        .map_err(|e| Error::external(format!("writing checkpoint part {}: {e}", path.display())))?;
    Ok((name, bytes.len() as u64, crc32fast::hash(&bytes)))
}

/// What a manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Checkpoint id.
    pub id: u64,
    /// Cut time.
    pub cut: Time,
    /// When it was completed (ms since the epoch).
    pub created_ms: i64,
    /// Number of workers that wrote it.
    pub workers: usize,
    /// Per part: file name, size in bytes, CRC-32 of the file.
    pub parts: Vec<(String, u64, u32)>,
}

impl Manifest {
    fn render(&self) -> String {
        let mut text = format!(
            "{MANIFEST_HEADER} {CHECKPOINT_VERSION}\nid {}\ncut {}\ncreated_ms {}\nworkers {}\n",
            self.id, self.cut, self.created_ms, self.workers
        );
        for (name, len, crc) in &self.parts {
            let _ = writeln!(text, "part {name} {len} {crc:08x}");
        }
        text
    }

    fn parse(text: &str, origin: &str) -> Result<Manifest> {
        let bad = |line: usize, why: &str| {
            Error::input(format!("checkpoint manifest {origin}, line {line}: {why}"))
        };
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, l)) if l == format!("{MANIFEST_HEADER} {CHECKPOINT_VERSION}") => {}
            Some((_, l)) if l.starts_with(MANIFEST_HEADER) => {
                return Err(bad(
                    1,
                    &format!("format '{l}'; this Tidal reads version {CHECKPOINT_VERSION}"),
                ));
            }
            _ => return Err(bad(1, "not a Tidal checkpoint manifest")),
        }
        let mut manifest = Manifest {
            id: 0,
            cut: 0,
            created_ms: 0,
            workers: 0,
            parts: Vec::new(),
        };
        let mut seen = 0;
        for (i, line) in lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            let number = |w: Option<&&str>| -> Result<i64> {
                w.and_then(|w| w.parse().ok())
                    .ok_or_else(|| bad(i + 1, "expected a number"))
            };
            match words.first().copied() {
                Some("id") => manifest.id = number(words.get(1))? as u64,
                Some("cut") => manifest.cut = number(words.get(1))?,
                Some("created_ms") => manifest.created_ms = number(words.get(1))?,
                Some("workers") => manifest.workers = number(words.get(1))? as usize,
                Some("part") if words.len() == 4 => {
                    let len = number(words.get(2))? as u64;
                    let crc = u32::from_str_radix(words[3], 16)
                        .map_err(|_| bad(i + 1, "expected a hexadecimal CRC-32"))?;
                    manifest.parts.push((words[1].to_string(), len, crc));
                }
                None => continue,
                Some(other) => return Err(bad(i + 1, &format!("unknown entry '{other}'"))),
            }
            seen += 1;
        }
        if seen < 4 || manifest.workers == 0 || manifest.parts.len() != manifest.workers {
            return Err(bad(
                0,
                "incomplete: it must name id, cut, created_ms, workers and one part per worker",
            ));
        }
        Ok(manifest)
    }
}

/// Writes the manifest into the `folder` of a checkpoint whose parts are all written: the
/// checkpoint is complete.
pub fn write_manifest(folder: &Path, manifest: &Manifest) -> Result<()> {
    let path = folder.join("MANIFEST");
    write_durably(&path, manifest.render().as_bytes())
        .map_err(|e| Error::external(format!("writing {}: {e}", path.display())))
}

/// Reads and checks one checkpoint directory: manifest, every part present with its size and
/// checksum, and decodable.
pub fn read_checkpoint(path: &Path) -> Result<Restored> {
    let manifest_path = path.join("MANIFEST");
    let text = fs::read_to_string(&manifest_path).map_err(|e| {
        Error::input(format!(
            "checkpoint {} is incomplete or missing: cannot read its MANIFEST ({e})",
            path.display()
        ))
    })?;
    let manifest = Manifest::parse(&text, &manifest_path.display().to_string())?;
    let mut parts = Vec::with_capacity(manifest.parts.len());
    for (name, len, crc) in &manifest.parts {
        let part_path = path.join(name);
        let bytes = fs::read(&part_path).map_err(|e| {
            Error::input(format!(
                "checkpoint {} is missing part {name} ({e})",
                path.display()
            ))
        })?;
        if bytes.len() as u64 != *len || crc32fast::hash(&bytes) != *crc {
            return Err(Error::input(format!(
                "checkpoint part {} is corrupt: {} bytes with CRC-32 {:08x}, the manifest says {len} bytes with {crc:08x}",
                part_path.display(),
                bytes.len(),
                crc32fast::hash(&bytes)
            )));
        }
        parts.push(decode_part(&bytes, &part_path.display().to_string())?);
    }
    Ok(Restored {
        path: path.to_path_buf(),
        id: manifest.id,
        cut: manifest.cut,
        parts,
    })
}

/// The checkpoint directories under `dir`, newest (highest id) first.
pub fn list_checkpoints(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut found: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let id = name.strip_prefix("chk-")?.parse().ok()?;
            Some((id, e.path()))
        })
        .collect();
    found.sort_by_key(|c| std::cmp::Reverse(c.0));
    found
}

/// The newest complete and valid checkpoint under `dir`, telling on stderr why newer ones were
/// passed over; `None` when there is none.
pub fn latest_valid(dir: &Path) -> Option<Restored> {
    for (id, path) in list_checkpoints(dir) {
        match read_checkpoint(&path) {
            Ok(restored) => return Some(restored),
            Err(e) => eprintln!("tidal: passing over checkpoint {id}: {e}"),
        }
    }
    None
}

/// Resolves what a job restores from.
pub fn resolve_restore(config: &CheckpointConfig) -> Result<Option<Restored>> {
    match &config.restore {
        None => Ok(None),
        Some(Restore::Latest) => Ok(latest_valid(&config.dir)),
        Some(Restore::Path(path)) => read_checkpoint(path).map(Some),
    }
}

/// Deletes complete checkpoints beyond the newest `keep`, and incomplete ones older than the
/// newest complete one.
pub fn prune(dir: &Path, keep: usize, newest_complete: u64) {
    let mut kept = 0;
    for (id, path) in list_checkpoints(dir) {
        if id > newest_complete {
            continue;
        }
        let complete = path.join("MANIFEST").exists();
        if complete && kept < keep {
            kept += 1;
            continue;
        }
        let _ = fs::remove_dir_all(&path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn complete_checkpoint(dir: &Path) -> PathBuf {
        let parts: Vec<_> = (0..2)
            .map(|w| write_part(&checkpoint_path(dir, 7), &part(w, 2)).unwrap())
            .collect();
        write_manifest(
            &checkpoint_path(dir, 7),
            &Manifest {
                id: 7,
                cut: 1234,
                created_ms: 1,
                workers: 2,
                parts,
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
        let part0 = path.join(part_name(0, 2));
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
        fs::remove_file(path.join("MANIFEST")).unwrap();
        assert!(
            read_checkpoint(&path)
                .unwrap_err()
                .to_string()
                .contains("incomplete")
        );
    }

    #[test]
    fn latest_falls_back_to_the_newest_valid_checkpoint_and_prune_keeps_k() {
        let dir = tempfile::tempdir().unwrap();
        for id in 1..=4 {
            let mut p = part(0, 1);
            p.checkpoint = id;
            let written = write_part(&checkpoint_path(dir.path(), id), &p).unwrap();
            write_manifest(
                &checkpoint_path(dir.path(), id),
                &Manifest {
                    id,
                    cut: id as i64,
                    created_ms: 0,
                    workers: 1,
                    parts: vec![written],
                },
            )
            .unwrap();
        }
        // Checkpoint 4 gets a flipped byte; 5 never got its manifest.
        let p4 = checkpoint_path(dir.path(), 4).join(part_name(0, 1));
        let mut bytes = fs::read(&p4).unwrap();
        bytes[9] ^= 1;
        fs::write(&p4, bytes).unwrap();
        let mut p5 = part(0, 1);
        p5.checkpoint = 5;
        write_part(&checkpoint_path(dir.path(), 5), &p5).unwrap();
        assert_eq!(latest_valid(dir.path()).unwrap().id, 3);

        prune(dir.path(), 2, 3);
        let left: Vec<u64> = list_checkpoints(dir.path()).iter().map(|c| c.0).collect();
        assert_eq!(left, vec![5, 4, 3, 2]);
    }
}
