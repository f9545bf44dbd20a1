//! The bytes of a keyed-state snapshot: magic `TDKS`, format version, a header (the state's
//! name and its number of entries), the entries, and a CRC-32 of everything before it. Since
//! version 2 every entry is prefixed by its length and since version 3 by its key's length too,
//! so that entries (and their keys) can be told apart without knowing their types.

use std::io::Read;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Version of the snapshot encoding written by [`KeyedState::snapshot`](super::KeyedState::snapshot). Version 2 prefixes every
/// entry with its length (a varint), so that entries can be told apart without knowing their
/// types (what incremental checkpoints need); version 3 adds the length of the entry's key (a
/// second varint), so that the entries of a key can be found without knowing its type (what the
/// changes a store writes since an earlier checkpoint need, see [`KeyedStore::write_changes`](super::KeyedStore::write_changes)).
/// Versions 1 and 2 are still read.
pub const SNAPSHOT_VERSION: u32 = 3;
const SNAPSHOT_MAGIC: &[u8; 4] = b"TDKS";

#[derive(Serialize, Deserialize)]
struct Header {
    name: String,
    entries: u64,
}

/// Reads the entries of one snapshot part (see [`KeyedState::read_snapshot`](super::KeyedState::read_snapshot)).
pub(super) fn read_part<K: DeserializeOwned, V: DeserializeOwned, R: Read>(
    mut input: R,
    origin: &str,
) -> Result<Vec<(K, V)>> {
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .map_err(|e| Error::external(format!("reading snapshot {origin}: {e}")))?;
    let corrupt = |why: &str| Error::input(format!("snapshot {origin} is corrupt: {why}"));
    let (version, header, rest) = open_snapshot(&bytes, origin)?;
    let mut entries = Vec::with_capacity(header.entries as usize);
    if version == 1 {
        let mut rest = rest;
        for _ in 0..header.entries {
            let (entry, tail): ((K, V), &[u8]) =
                postcard::take_from_bytes(rest).map_err(|e| corrupt(&e.to_string()))?;
            entries.push(entry);
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(corrupt("trailing bytes after the last entry"));
        }
    } else {
        // The checksum held, so the bytes are as written: an entry that does not decode as
        // `(K, V)`, each filling exactly its bytes, was written with other types.
        let other_types = |why: &str| {
            Error::input(format!(
                "snapshot {origin} holds state of other types than this job keeps ({why}); its bytes are intact (the checksum holds), so it was written by another version of Tidal or of the job (a changed query, plan or operator). Restore it with the job and the Tidal that wrote it, or start without --restore"
            ))
        };
        fn whole<T: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, String> {
            let (value, tail) = postcard::take_from_bytes(bytes).map_err(|e| e.to_string())?;
            if tail.is_empty() {
                Ok(value)
            } else {
                Err(format!("an entry has bytes left over: {}", tail.len()))
            }
        }
        for entry in split_entries(rest, version, header.entries, origin)? {
            let decoded = match entry.key_len {
                Some(n) => whole::<K>(&entry.bytes[..n])
                    .and_then(|k| Ok((k, whole::<V>(&entry.bytes[n..])?))),
                None => whole::<(K, V)>(entry.bytes),
            };
            entries.push(decoded.map_err(|why| other_types(&why))?);
        }
    }
    Ok(entries)
}

/// Checks a snapshot's magic, checksum and version; gives the version, the header and the bytes
/// of the entries.
fn open_snapshot<'a>(bytes: &'a [u8], origin: &str) -> Result<(u32, Header, &'a [u8])> {
    let corrupt = |why: &str| Error::input(format!("snapshot {origin} is corrupt: {why}"));
    if bytes.len() < 12 || &bytes[..4] != SNAPSHOT_MAGIC {
        return Err(corrupt("not a Tidal keyed-state snapshot"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(corrupt("checksum mismatch (truncated or modified)"));
    }
    let version = u32::from_le_bytes(body[4..8].try_into().expect("4 bytes"));
    if !(1..=SNAPSHOT_VERSION).contains(&version) {
        return Err(Error::input(format!(
            "snapshot {origin} has format version {version}; this Tidal reads versions 1 to {SNAPSHOT_VERSION}"
        )));
    }
    let (header, rest): (Header, &[u8]) =
        postcard::take_from_bytes(&body[8..]).map_err(|e| corrupt(&e.to_string()))?;
    Ok((version, header, rest))
}

/// One encoded entry of a snapshot: the postcard encoding of `(key, value)`, and how many of its
/// first bytes encode the key (not known in snapshots of version 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawEntry<'a> {
    /// The encoding of `(key, value)`.
    pub bytes: &'a [u8],
    /// Length of the key's encoding at the start of `bytes`.
    pub key_len: Option<usize>,
}

impl<'a> RawEntry<'a> {
    /// The encoding of the entry's key, when known.
    ///
    /// ```
    /// use tidal_engine::state::{self, KeyedState};
    /// let mut s: KeyedState<String, u32> = KeyedState::new("lengths");
    /// s.insert("tide".into(), 4);
    /// let mut bytes = Vec::new();
    /// s.snapshot(&mut bytes).unwrap();
    /// let (_, entries) = state::snapshot_entries(&bytes, "example").unwrap();
    /// assert_eq!(entries[0].key(), Some(&postcard::to_allocvec("tide").unwrap()[..]));
    /// ```
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key_len.map(|n| &self.bytes[..n])
    }
}

/// Splits `count` length-prefixed entries (versions 2 and 3).
fn split_entries<'a>(
    mut rest: &'a [u8],
    version: u32,
    count: u64,
    origin: &str,
) -> Result<Vec<RawEntry<'a>>> {
    let corrupt = |why: &str| Error::input(format!("snapshot {origin} is corrupt: {why}"));
    let mut entries = Vec::with_capacity(count.min(1 << 20) as usize);
    for _ in 0..count {
        let (len, tail): (u64, &[u8]) =
            postcard::take_from_bytes(rest).map_err(|e| corrupt(&e.to_string()))?;
        let (key_len, tail) = if version >= 3 {
            let (key_len, tail): (u64, &[u8]) =
                postcard::take_from_bytes(tail).map_err(|e| corrupt(&e.to_string()))?;
            if key_len > len {
                return Err(corrupt("an entry's key is longer than the entry"));
            }
            (Some(key_len as usize), tail)
        } else {
            (None, tail)
        };
        if tail.len() < len as usize {
            return Err(corrupt("an entry runs past the end"));
        }
        let (entry, tail) = tail.split_at(len as usize);
        entries.push(RawEntry {
            bytes: entry,
            key_len,
        });
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(corrupt("trailing bytes after the last entry"));
    }
    Ok(entries)
}

/// The state name and the encoded entries of a snapshot (version 2 or 3), without decoding them:
/// each entry is the postcard encoding of one `(key, value)`. What incremental checkpoints compare.
///
/// ```
/// use tidal_engine::state::{self, KeyedState};
/// let mut s: KeyedState<u32, u32> = KeyedState::new("sums");
/// s.insert(1, 10);
/// s.insert(2, 20);
/// let mut bytes = Vec::new();
/// s.snapshot(&mut bytes).unwrap();
/// let (name, entries) = state::snapshot_entries(&bytes, "example").unwrap();
/// assert_eq!((name.as_str(), entries.len()), ("sums", 2));
/// // The same entries, reassembled, read back as the same state.
/// let again = state::snapshot_from_entries(&name, entries.iter().copied());
/// let back: Vec<(u32, u32)> = state::read_sections("sums", &[&again[..]]).unwrap();
/// assert_eq!(back.len(), 2);
/// ```
pub fn snapshot_entries<'a>(bytes: &'a [u8], origin: &str) -> Result<(String, Vec<RawEntry<'a>>)> {
    let (version, header, rest) = open_snapshot(bytes, origin)?;
    if version == 1 {
        return Err(Error::input(format!(
            "snapshot {origin} has format version 1, whose entries cannot be told apart"
        )));
    }
    let entries = split_entries(rest, version, header.entries, origin)?;
    Ok((header.name, entries))
}

/// A snapshot of the state called `name` holding the encoded `entries` (as given by
/// [`snapshot_entries`]): of version 3 when every entry's key length is known, else of version 2.
pub fn snapshot_from_entries<'a>(
    name: &str,
    entries: impl Iterator<Item = RawEntry<'a>>,
) -> Vec<u8> {
    let entries: Vec<RawEntry<'a>> = entries.collect();
    let version = if entries.iter().all(|e| e.key_len.is_some()) {
        SNAPSHOT_VERSION
    } else {
        2
    };
    let mut rest = Vec::new();
    for entry in &entries {
        rest = postcard::to_extend(&(entry.bytes.len() as u64), rest).expect("a varint encodes");
        if version >= 3 {
            let key_len = entry.key_len.expect("checked above") as u64;
            rest = postcard::to_extend(&key_len, rest).expect("a varint encodes");
        }
        rest.extend_from_slice(entry.bytes);
    }
    let header = Header {
        name: name.to_string(),
        entries: entries.len() as u64,
    };
    let mut body = Vec::with_capacity(rest.len() + name.len() + 32);
    body.extend_from_slice(SNAPSHOT_MAGIC);
    body.extend_from_slice(&version.to_le_bytes());
    body = postcard::to_extend(&header, body).expect("a header encodes");
    body.extend_from_slice(&rest);
    let crc = crc32fast::hash(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

/// Reads every part's snapshot (`sections`) of the state called `name`, in the format of
/// [`snapshot_store`](super::snapshot_store), and returns all its entries, in part order.
pub fn read_sections<K, V>(name: &str, sections: &[&[u8]]) -> Result<Vec<(K, V)>>
where
    K: DeserializeOwned,
    V: DeserializeOwned,
{
    let mut all = Vec::new();
    for (i, section) in sections.iter().enumerate() {
        let origin = format!("section {i} of state '{name}'");
        all.extend(read_part::<K, V, _>(*section, &origin)?);
    }
    Ok(all)
}

/// Puts the magic, version, header and checksum around `count` encoded entries (`body`).
pub(super) fn finish_snapshot(name: &str, count: u64, body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len() + 32);
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    let header = Header {
        name: name.to_string(),
        entries: count,
    };
    out = postcard::to_extend(&header, out).map_err(|e| super::encode_error(name, e))?;
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}
