//! Reading checkpoints back: one checkpoint whole (deltas applied), the newest valid one, and
//! pruning old ones.

use super::format::{Manifest, Part, StoredPart, decode_part, part_crc, part_name};
use super::{CheckpointConfig, Restore, Section, SourcePosition, checkpoint_path};
use crate::error::{Error, Result};
use crate::storage::{self, Location};
use crate::time::Time;

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
            while let Some((base, base_crc)) = current.base() {
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
