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
//!    complete ([`KeyedStore::checkpoint_complete`](crate::KeyedStore::checkpoint_complete)):
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
//! Instances of one source far apart in event time (file splits read side by side) do not slow
//! checkpoints: the cut follows the one behind. Two *different* sources far apart do: the cut
//! waits for the one behind to reach the other. A source whose watermark stands still (no
//! records, no idleness timeout) holds checkpoints back as it holds windows back; a checkpoint not
//! complete after `--checkpoint-timeout` is abandoned and the fences are lifted.
//!
//! ## Format (version 2)
//! `DIR/chk-NNNNNNNNN/part-WWWWW-of-PPPPP`, one per worker: magic `TDCP`, version (u32 LE), a
//! postcard-encoded [`StoredPart`], CRC-32 (LE) of everything before it. Each state's section is
//! either full — a keyed-state snapshot (own magic, version and checksum) — or, with incremental
//! checkpoints, a delta on the same worker's part of an earlier checkpoint (see
//! [`incremental`]). `DIR/chk-NNNNNNNNN/MANIFEST`, written last: text lines
//! `tidal-checkpoint 2`, `id`, `cut`, `created_ms`, `workers`, `part NAME BYTES CRC32` per part
//! (the CRC-32 the part ends with),
//! and `needs ID...` when deltas build on earlier checkpoints. Version 1 (no deltas) is still read.
//!
//! `DIR` is a local directory or an S3 prefix (see [`storage`](crate::storage::Location)); on disk each
//! file is written to a temporary name, synced and renamed, on S3 each is one PUT.

pub mod incremental;

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::checkpoint::incremental::Section;
use crate::error::{Error, Result};
use crate::storage::{self, Location};
use crate::time::Time;

/// Version of the checkpoint format this Tidal writes (it reads versions 1 and 2).
pub const CHECKPOINT_VERSION: u32 = 2;
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

/// One worker's part of a checkpoint as it is stored: each state's section full or a delta.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredPart {
    /// Checkpoint id.
    pub checkpoint: u64,
    /// The cut time.
    pub cut: Time,
    /// Writing worker.
    pub worker: usize,
    /// Number of workers of the job that wrote it.
    pub peers: usize,
    /// Per source name: the position of this worker's instance (opaque to the engine).
    pub sources: Vec<(String, SourcePosition)>,
    /// Per stateful operator name: its section.
    pub states: Vec<(String, Section)>,
}

impl StoredPart {
    /// A part whose sections are all full.
    pub fn full(mut part: Part) -> StoredPart {
        let states = std::mem::take(&mut part.states)
            .into_iter()
            .map(|(n, b)| (n, Section::Full(b)))
            .collect();
        StoredPart::with_sections(part, states)
    }

    /// `part`'s facts and sources with `states` for its state sections.
    pub fn with_sections(
        part: Part,
        states: crate::checkpoint::incremental::Sections,
    ) -> StoredPart {
        StoredPart {
            checkpoint: part.checkpoint,
            cut: part.cut,
            worker: part.worker,
            peers: part.peers,
            sources: part.sources,
            states,
        }
    }
}

/// One worker's part of a checkpoint, every state whole (as restored).
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

/// What the coordinator learns of a written part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WrittenPart {
    /// File name in the checkpoint's folder.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// CRC-32 of the file.
    pub crc: u32,
    /// Earlier checkpoints its deltas build on.
    pub needs: Vec<u64>,
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

/// A complete checkpoint read back: its manifest's facts and every part.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The checkpoint's directory.
    pub path: Location,
    /// Checkpoint id.
    pub id: u64,
    /// The cut time: restored sources start at it.
    pub cut: Time,
    /// When it was completed (ms since the epoch).
    pub created_ms: i64,
    /// Bytes of its parts.
    pub bytes: u64,
    /// Earlier checkpoints its incremental parts build on.
    pub needs: Vec<u64>,
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
pub fn checkpoint_path(dir: &Location, id: u64) -> Location {
    dir.join(&format!("chk-{id:09}"))
}

/// The directory of savepoint `id` under `dir` (savepoints are never pruned).
pub fn savepoint_path(dir: &Location, id: u64) -> Location {
    dir.join(&format!("sp-{id:09}"))
}

fn part_name(worker: usize, peers: usize) -> String {
    format!("part-{worker:05}-of-{peers:05}")
}

/// Encodes a part (magic, version, body, checksum).
pub fn encode_part(part: &StoredPart) -> Result<Vec<u8>> {
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
pub fn decode_part(bytes: &[u8], origin: &str) -> Result<StoredPart> {
    let corrupt = |why: &str| Error::input(format!("checkpoint part {origin} is corrupt: {why}"));
    if bytes.len() < 12 || &bytes[..4] != PART_MAGIC {
        return Err(corrupt("not a Tidal checkpoint part"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(corrupt("checksum mismatch (truncated or modified)"));
    }
    let version = u32::from_le_bytes(body[4..8].try_into().expect("4 bytes"));
    match version {
        1 => postcard::from_bytes(&body[8..])
            .map(StoredPart::full)
            .map_err(|e| corrupt(&e.to_string())),
        CHECKPOINT_VERSION => postcard::from_bytes(&body[8..]).map_err(|e| corrupt(&e.to_string())),
        _ => Err(Error::input(format!(
            "checkpoint part {origin} has format version {version}; this Tidal reads versions 1 and {CHECKPOINT_VERSION}"
        ))),
    }
}

/// The checksum that identifies a part file: the CRC-32 it ends with (of everything before it).
/// (The CRC-32 of a whole part file is the same constant for every part, the CRC residue.)
pub fn part_crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(&bytes[..bytes.len().saturating_sub(4)])
}

/// Writes worker `part.worker`'s part into the checkpoint's `folder`; returns (name, bytes, crc).
pub fn write_part(folder: &Location, part: &StoredPart) -> Result<(String, u64, u32)> {
    let bytes = encode_part(part)?;
    let name = part_name(part.worker, part.peers);
    let path = folder.join(&name);
    storage::write(&path, &bytes)
        .map_err(|e| Error::external(format!("checkpoint part not written: {e}")))?;
    Ok((name, bytes.len() as u64, part_crc(&bytes)))
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
    /// Earlier checkpoints its incremental parts build on.
    pub needs: Vec<u64>,
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
        if !self.needs.is_empty() {
            let ids: Vec<String> = self.needs.iter().map(u64::to_string).collect();
            let _ = writeln!(text, "needs {}", ids.join(" "));
        }
        text
    }

    fn parse(text: &str, origin: &str) -> Result<Manifest> {
        let bad = |line: usize, why: &str| {
            Error::input(format!("checkpoint manifest {origin}, line {line}: {why}"))
        };
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, l))
                if l == format!("{MANIFEST_HEADER} {CHECKPOINT_VERSION}")
                    || l == format!("{MANIFEST_HEADER} 1") => {}
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
            needs: Vec::new(),
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
                Some("needs") => {
                    for w in &words[1..] {
                        manifest.needs.push(number(Some(w))? as u64);
                    }
                    continue;
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
pub fn write_manifest(folder: &Location, manifest: &Manifest) -> Result<()> {
    let path = folder.join("MANIFEST");
    storage::write(&path, manifest.render().as_bytes())
        .map_err(|e| Error::external(format!("checkpoint manifest not written: {e}")))
}

/// Reads and checks one checkpoint directory: manifest, every part present with its size and
/// checksum, and decodable.
///
/// A checkpoint that is not there whole is an error of kind [`Input`](crate::ErrorKind::Input);
/// one that cannot be read now (an S3 server unreachable) is [`External`](crate::ErrorKind::External).
pub fn read_checkpoint(path: &Location) -> Result<Restored> {
    let manifest_path = path.join("MANIFEST");
    // `missing`: what to say when the object is not there.
    let read = |at: &Location, missing: &str| {
        storage::read(at).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::input(format!("checkpoint {path} {missing} ({e})"))
            } else {
                Error::external(format!("checkpoint {path} cannot be read now: {e}"))
            }
        })
    };
    let text = read(
        &manifest_path,
        "is incomplete or missing: it has no MANIFEST",
    )?;
    let text = String::from_utf8_lossy(&text);
    let manifest = Manifest::parse(&text, &manifest_path.to_string())?;
    let mut parts = Vec::with_capacity(manifest.parts.len());
    for (name, len, crc) in &manifest.parts {
        let part_path = path.join(name);
        let bytes = read(&part_path, &format!("is missing part {name}"))?;
        // (Manifests of version 1 hold the CRC-32 of the whole file.)
        if bytes.len() as u64 != *len
            || (part_crc(&bytes) != *crc && crc32fast::hash(&bytes) != *crc)
        {
            return Err(Error::input(format!(
                "checkpoint part {part_path} is corrupt: {} bytes with CRC-32 {:08x}, the manifest says {len} bytes with {crc:08x}",
                bytes.len(),
                part_crc(&bytes)
            )));
        }
        parts.push(decode_part(&bytes, &part_path.to_string())?);
    }
    let parts = whole_parts(path, parts)?;
    Ok(Restored {
        path: path.clone(),
        id: manifest.id,
        cut: manifest.cut,
        created_ms: manifest.created_ms,
        bytes: manifest.parts.iter().map(|p| p.1).sum(),
        needs: manifest.needs,
        parts,
    })
}

/// Turns stored parts into whole ones: every delta section (of an incremental checkpoint) is
/// applied on its chain, read from the same worker's parts of earlier checkpoints next to `path`.
fn whole_parts(path: &Location, stored: Vec<StoredPart>) -> Result<Vec<Part>> {
    use std::collections::HashMap;
    let dir = path.parent();
    // Base parts read so far, by (checkpoint, worker).
    let mut bases: HashMap<(u64, usize), StoredPart> = HashMap::new();
    let mut whole = Vec::with_capacity(stored.len());
    for part in &stored {
        let name = part_name(part.worker, part.peers);
        let origin = format!("{path}/{name}");
        let mut states = Vec::with_capacity(part.states.len());
        for (state, section) in &part.states {
            // Walk back to the full section, loading base parts as needed.
            let mut keys: Vec<(u64, usize)> = Vec::new();
            let mut current = section;
            let mut here = part;
            while let Section::Delta { base, base_crc, .. } = current {
                let (base, base_crc) = (*base, *base_crc);
                if keys.len() > crate::checkpoint::incremental::MAX_LINKS {
                    return Err(Error::input(format!(
                        "{origin}: state '{state}' has too long a chain of deltas"
                    )));
                }
                let key = (base, here.worker);
                if let std::collections::hash_map::Entry::Vacant(slot) = bases.entry(key) {
                    let at = checkpoint_path(&dir, base).join(&name);
                    let bytes = storage::read(&at).map_err(|e| {
                        let message = format!(
                            "checkpoint {path} builds on checkpoint {base}, whose part {name} cannot be read ({e})"
                        );
                        if e.kind() == std::io::ErrorKind::NotFound {
                            Error::input(message)
                        } else {
                            Error::external(message)
                        }
                    })?;
                    if part_crc(&bytes) != base_crc {
                        return Err(Error::input(format!(
                            "checkpoint {path} builds on part {at}, which has changed since (CRC-32 {:08x}, expected {base_crc:08x})",
                            part_crc(&bytes)
                        )));
                    }
                    slot.insert(decode_part(&bytes, &at.to_string())?);
                }
                keys.push(key);
                here = &bases[&key];
                current = here
                    .states
                    .iter()
                    .find(|(n, _)| n == state)
                    .map(|(_, s)| s)
                    .ok_or_else(|| {
                        Error::input(format!(
                            "{origin}: state '{state}' builds on checkpoint {}, which lacks it",
                            key.0
                        ))
                    })?;
            }
            let mut chain: Vec<&Section> = vec![current];
            for key in keys.iter().rev().skip(1) {
                let base = &bases[key];
                chain.push(
                    &base
                        .states
                        .iter()
                        .find(|(n, _)| n == state)
                        .expect("found above")
                        .1,
                );
            }
            if !keys.is_empty() {
                chain.push(section);
            }
            states.push((
                state.clone(),
                crate::checkpoint::incremental::apply(state, &chain, &origin)?,
            ));
        }
        whole.push(Part {
            checkpoint: part.checkpoint,
            cut: part.cut,
            worker: part.worker,
            peers: part.peers,
            sources: part.sources.clone(),
            states,
        });
    }
    Ok(whole)
}

/// The checkpoint directories under `dir`, newest (highest id) first; an error when `dir`
/// cannot be listed (an S3 server unreachable), none when it does not exist.
pub fn list_checkpoints(dir: &Location) -> Result<Vec<(u64, Location)>> {
    let listed = storage::list(dir)
        .map_err(|e| Error::external(format!("listing checkpoints in {dir}: {e}")))?;
    let mut found: Vec<(u64, Location)> = listed
        .into_iter()
        .filter(|e| e.is_dir)
        .filter_map(|e| {
            let id = e.name.strip_prefix("chk-")?.parse().ok()?;
            Some((id, dir.join(&e.name)))
        })
        .collect();
    found.sort_by_key(|c| std::cmp::Reverse(c.0));
    Ok(found)
}

/// The newest complete and valid checkpoint under `dir`, telling on stderr why newer ones were
/// passed over; `None` when there is none. A checkpoint that cannot be read now (storage
/// unreachable) is an error, not a reason to pass over it: starting afresh would lose state.
pub fn latest_valid(dir: &Location) -> Result<Option<Restored>> {
    for (id, path) in list_checkpoints(dir)? {
        match read_checkpoint(&path) {
            Ok(restored) => return Ok(Some(restored)),
            Err(e) if e.kind() == crate::ErrorKind::External => return Err(e),
            Err(e) => crate::say(format_args!("tidal: passing over checkpoint {id}: {e}")),
        }
    }
    Ok(None)
}

/// Resolves what a job restores from.
pub fn resolve_restore(config: &CheckpointConfig) -> Result<Option<Restored>> {
    match &config.restore {
        None => Ok(None),
        Some(Restore::Latest) => latest_valid(&config.dir),
        Some(Restore::Path(path)) => read_checkpoint(path).map(Some),
    }
}

/// Deletes complete checkpoints beyond the newest `keep` (but not those a kept checkpoint builds
/// on), and incomplete ones older than the newest complete one. What cannot be deleted now is
/// left for a later prune.
pub fn prune(dir: &Location, keep: usize, newest_complete: u64) -> Result<()> {
    let listed = list_checkpoints(dir)?;
    let mut kept = std::collections::BTreeSet::new();
    let mut complete = 0;
    for (id, path) in &listed {
        if *id > newest_complete || complete >= keep {
            continue;
        }
        let manifest_path = path.join("MANIFEST");
        let text = match storage::read(&manifest_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::external(format!("pruning {path}: {e}"))),
        };
        if let Ok(manifest) = Manifest::parse(&String::from_utf8_lossy(&text), "") {
            complete += 1;
            kept.insert(*id);
            kept.extend(manifest.needs);
        }
    }
    for (id, path) in listed {
        if id > newest_complete || kept.contains(&id) {
            continue;
        }
        storage::remove_all(&path).map_err(|e| Error::external(format!("deleting {path}: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
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
        state: &crate::KeyedState<u64, u64>,
    ) {
        let mut bytes = Vec::new();
        state.snapshot(&mut bytes).unwrap();
        let (sections, needs) = tracker.sections(id, vec![("s".into(), bytes)]).unwrap();
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
        let mut state: crate::KeyedState<u64, u64> = crate::KeyedState::new("s");
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
