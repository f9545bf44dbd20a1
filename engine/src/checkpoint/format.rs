//! The stored form of a checkpoint: each worker's part (magic, version, postcard, CRC-32) and
//! the manifest written last.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{Section, SourcePosition};
use crate::error::{Error, Result};
use crate::storage::{self, Location};
use crate::time::Time;

/// Version of the checkpoint format this Tidal writes (it reads versions 1 to 3). Version 3 adds
/// the changes section ([`Section::Changes`]); a part of version 2 decodes the same way.
pub const CHECKPOINT_VERSION: u32 = 3;
const PART_MAGIC: &[u8; 4] = b"TDCP";
const MANIFEST_HEADER: &str = "tidal-checkpoint";

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
    /// Microseconds the worker took to snapshot its states and write the part.
    pub took_us: u64,
}

pub(super) fn part_name(worker: usize, peers: usize) -> String {
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
        2..=CHECKPOINT_VERSION => {
            postcard::from_bytes(&body[8..]).map_err(|e| corrupt(&e.to_string()))
        }
        _ => Err(Error::input(format!(
            "checkpoint part {origin} has format version {version}; this Tidal reads versions 1 to {CHECKPOINT_VERSION}"
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

    pub(super) fn parse(text: &str, origin: &str) -> Result<Manifest> {
        let bad = |line: usize, why: &str| {
            Error::input(format!("checkpoint manifest {origin}, line {line}: {why}"))
        };
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, l))
                if (1..=CHECKPOINT_VERSION).any(|v| l == format!("{MANIFEST_HEADER} {v}")) => {}
            Some((_, l)) if l.starts_with(MANIFEST_HEADER) => {
                return Err(bad(
                    1,
                    &format!("format '{l}'; this Tidal reads versions 1 to {CHECKPOINT_VERSION}"),
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
