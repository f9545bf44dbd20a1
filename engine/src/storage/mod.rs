//! Where durable data lives: a local directory or an S3 bucket, behind one small interface.
//!
//! A [`Location`] is a local path or `s3://bucket/key`. The functions here read, write, list and
//! delete objects at locations, the same way for both:
//! - [`write()`] is atomic and durable: on disk a temporary file, fsync, rename; on S3 one PUT (an
//!   object is visible whole or not at all).
//! - [`list()`] gives the children of a location (one level, like `ls`), with sizes.
//! - A missing object is an error of kind [`std::io::ErrorKind::NotFound`]. Every error names
//!   the operation and the location, and for S3 the HTTP status and the server's error code (or
//!   the connection failure), so a log line says what failed where.
//!
//! ## S3 settings
//! Credentials come from the usual environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN` (or the `default` profile in `~/.aws/credentials`). The region comes from
//! `AWS_REGION` or `AWS_DEFAULT_REGION` (default `us-east-1`); an S3-compatible server (MinIO,
//! moto, Ceph) is named by `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`, and is addressed
//! path-style (`http://host:port/bucket/key`). The flags `--s3-endpoint` and `--s3-region`
//! override the environment ([`configure_s3`]). Every request gives up after 30 s.
//!
//! ```
//! use tidal_engine::storage::{self, Location};
//! let dir = tempfile::tempdir().unwrap();
//! let at = Location::from(dir.path()).join("chk-000000001").join("MANIFEST");
//! storage::write(&at, b"done").unwrap();
//! assert_eq!(storage::read(&at).unwrap(), b"done");
//! let listed = storage::list(&Location::from(dir.path())).unwrap();
//! assert_eq!(listed[0].name, "chk-000000001");
//! assert!(Location::parse("s3://bucket/jobs/wordcount").unwrap().is_s3());
//! ```

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

mod s3;

pub use self::s3::{
    S3Settings, configure_s3, upload_abort, upload_begin, upload_complete, upload_piece,
    uploads_under,
};
use self::s3::{bucket, s3_error};

/// A local path, or an object key (or key prefix) in an S3 bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Location {
    /// A path on this machine's file system.
    Local(PathBuf),
    /// `s3://bucket/key`; `key` has no leading or trailing `/` (empty: the bucket's root).
    S3 {
        /// The bucket.
        bucket: String,
        /// The key, or the key prefix of a "directory".
        key: String,
    },
}

impl Location {
    /// Parses `s3://bucket/key...` or a local path.
    ///
    /// ```
    /// use tidal_engine::storage::Location;
    /// assert_eq!(
    ///     Location::parse("s3://tidal/jobs/").unwrap(),
    ///     Location::S3 { bucket: "tidal".into(), key: "jobs".into() }
    /// );
    /// assert!(Location::parse("s3:///no-bucket").is_err());
    /// assert_eq!(Location::parse("chk").unwrap(), Location::Local("chk".into()));
    /// ```
    pub fn parse(text: &str) -> Result<Location> {
        match text.strip_prefix("s3://") {
            None => Ok(Location::Local(PathBuf::from(text))),
            Some(rest) => {
                let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(Error::config(format!(
                        "'{text}' names no bucket: write s3://BUCKET/PREFIX"
                    )));
                }
                Ok(Location::S3 {
                    bucket: bucket.to_string(),
                    key: key.trim_matches('/').to_string(),
                })
            }
        }
    }

    /// The location `name` inside this one.
    pub fn join(&self, name: &str) -> Location {
        match self {
            Location::Local(path) => Location::Local(path.join(name)),
            Location::S3 { bucket, key } => Location::S3 {
                bucket: bucket.clone(),
                key: if key.is_empty() {
                    name.to_string()
                } else {
                    format!("{key}/{name}")
                },
            },
        }
    }

    /// The last component of the location (a file or object name).
    pub fn file_name(&self) -> Option<String> {
        match self {
            Location::Local(path) => path.file_name().map(|n| n.to_string_lossy().into_owned()),
            Location::S3 { key, .. } => key
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .map(str::to_string),
        }
    }

    /// The location that holds this one (itself at a root).
    pub fn parent(&self) -> Location {
        match self {
            Location::Local(path) => Location::Local(
                path.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from(".")),
            ),
            Location::S3 { bucket, key } => Location::S3 {
                bucket: bucket.clone(),
                key: key
                    .rsplit_once('/')
                    .map(|(p, _)| p)
                    .unwrap_or("")
                    .to_string(),
            },
        }
    }

    /// Whether this is an S3 location.
    pub fn is_s3(&self) -> bool {
        matches!(self, Location::S3 { .. })
    }

    /// The local path, if this is one.
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            Location::Local(path) => Some(path),
            Location::S3 { .. } => None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

impl From<PathBuf> for Location {
    fn from(path: PathBuf) -> Self {
        Location::Local(path)
    }
}

impl From<&Path> for Location {
    fn from(path: &Path) -> Self {
        Location::Local(path.to_path_buf())
    }
}

/// `s3://bucket/key` or a local path, as [`Location::parse`]; an `s3://` location without a
/// bucket fails when it is used.
impl From<&str> for Location {
    fn from(text: &str) -> Self {
        Location::parse(text).unwrap_or_else(|_| Location::S3 {
            bucket: String::new(),
            key: text.trim_start_matches("s3://").to_string(),
        })
    }
}

/// As `From<&str>`.
impl From<String> for Location {
    fn from(text: String) -> Self {
        Location::from(text.as_str())
    }
}

/// For flags (`clap` parses a `Location` with it): as [`Location::parse`].
///
/// ```
/// let out: tidal_engine::storage::Location = "s3://b/out".parse().unwrap();
/// assert!(out.is_s3());
/// ```
impl std::str::FromStr for Location {
    type Err = Error;
    fn from_str(text: &str) -> Result<Location> {
        Location::parse(text)
    }
}

impl From<&PathBuf> for Location {
    fn from(path: &PathBuf) -> Self {
        Location::Local(path.clone())
    }
}

/// One child of a listed location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its name (the last path component).
    pub name: String,
    /// Its size in bytes (0 for a directory / common prefix).
    pub size: u64,
    /// Whether it holds further entries (a directory, or an S3 key prefix).
    pub is_dir: bool,
}

/// An I/O error on a local path, naming the operation and the path, of the same kind.
fn local_error(op: &str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{op} {}: {e}", path.display()))
}

/// Writes `bytes` at `at`, atomically and durably (creating parent directories on disk).
pub fn write(at: &Location, bytes: &[u8]) -> io::Result<()> {
    match at {
        Location::Local(path) => {
            write_local(path, bytes).map_err(|e| local_error("writing", path, e))
        }
        Location::S3 { bucket: b, key } => {
            bucket(b)?
                .put_object(key, bytes)
                .map_err(|e| s3_error("PUT", b, key, e))?;
            Ok(())
        }
    }
}

fn write_local(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)
}

/// Reads the whole object at `at`.
pub fn read(at: &Location) -> io::Result<Vec<u8>> {
    match at {
        Location::Local(path) => fs::read(path).map_err(|e| local_error("reading", path, e)),
        Location::S3 { bucket: b, key } => Ok(bucket(b)?
            .get_object(key)
            .map_err(|e| s3_error("GET", b, key, e))?
            .to_vec()),
    }
}

/// Reads `len` bytes of the object at `at` from byte `start` (fewer at its end).
pub fn read_range(at: &Location, start: u64, len: u64) -> io::Result<Vec<u8>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    match at {
        Location::Local(path) => {
            use std::io::{Read, Seek, SeekFrom};
            let mut bytes = Vec::with_capacity(len as usize);
            fs::File::open(path)
                .and_then(|mut file| {
                    file.seek(SeekFrom::Start(start))?;
                    file.take(len).read_to_end(&mut bytes)
                })
                .map_err(|e| local_error("reading", path, e))?;
            Ok(bytes)
        }
        Location::S3 { bucket: b, key } => Ok(bucket(b)?
            .get_object_range(key, start, Some(start + len - 1))
            .map_err(|e| s3_error("GET (range)", b, key, e))?
            .to_vec()),
    }
}

/// Whether an object (or, on disk, a file or directory) exists at `at`.
pub fn exists(at: &Location) -> io::Result<bool> {
    match at {
        Location::Local(path) => Ok(path.exists()),
        Location::S3 { bucket: b, key } => match bucket(b)?.head_object(key) {
            Ok(_) => Ok(true),
            Err(e) => match s3_error("HEAD", b, key, e) {
                e if e.kind() == io::ErrorKind::NotFound => Ok(false),
                e => Err(e),
            },
        },
    }
}

/// The children of `at`, sorted by name; a location that does not exist has none.
pub fn list(at: &Location) -> io::Result<Vec<Listed>> {
    let mut found = Vec::new();
    match at {
        Location::Local(path) => {
            let entries = match fs::read_dir(path) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
                Err(e) => return Err(local_error("listing", path, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| local_error("listing", path, e))?;
                let meta = match entry.metadata() {
                    Ok(meta) => meta,
                    // Deleted since the directory was read (a prune running beside): gone.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(local_error("listing", &entry.path(), e)),
                };
                found.push(Listed {
                    name: entry.file_name().to_string_lossy().into_owned(),
                    size: if meta.is_dir() { 0 } else { meta.len() },
                    is_dir: meta.is_dir(),
                });
            }
        }
        Location::S3 { bucket: b, key } => {
            let prefix = if key.is_empty() {
                String::new()
            } else {
                format!("{key}/")
            };
            let pages = bucket(b)?
                .list(prefix.clone(), Some("/".to_string()))
                .map_err(|e| s3_error("LIST", b, &prefix, e))?;
            for page in pages {
                for object in page.contents {
                    if let Some(name) = object.key.strip_prefix(&prefix) {
                        found.push(Listed {
                            name: name.to_string(),
                            size: object.size,
                            is_dir: false,
                        });
                    }
                }
                for common in page.common_prefixes.into_iter().flatten() {
                    if let Some(name) = common.prefix.strip_prefix(&prefix) {
                        found.push(Listed {
                            name: name.trim_end_matches('/').to_string(),
                            size: 0,
                            is_dir: true,
                        });
                    }
                }
            }
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// Every object (file) at or under `at`, recursively, with its size, sorted; names starting with
/// `.` or `_` (hidden and temporary files, other tools' markers) are left out below `at`. A
/// location that does not exist has none.
pub fn list_files(at: &Location) -> io::Result<Vec<(Location, u64)>> {
    let mut found = Vec::new();
    let hidden = |name: &str| name.starts_with('.') || name.starts_with('_');
    match at {
        Location::Local(path) => {
            fn walk(dir: &Path, found: &mut Vec<(Location, u64)>) -> io::Result<()> {
                for entry in fs::read_dir(dir).map_err(|e| local_error("listing", dir, e))? {
                    let entry = entry.map_err(|e| local_error("listing", dir, e))?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') || name.starts_with('_') {
                        continue;
                    }
                    let path = entry.path();
                    let meta = match fs::metadata(&path) {
                        Ok(meta) => meta,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(local_error("listing", &path, e)),
                    };
                    if meta.is_dir() {
                        walk(&path, found)?;
                    } else {
                        found.push((Location::Local(path), meta.len()));
                    }
                }
                Ok(())
            }
            match fs::metadata(path) {
                Ok(meta) if meta.is_dir() => walk(path, &mut found)?,
                Ok(meta) => found.push((at.clone(), meta.len())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(local_error("listing", path, e)),
            }
        }
        Location::S3 { bucket: b, key } => {
            // The object itself, and everything under `key/`.
            let pages = bucket(b)?
                .list(key.clone(), None)
                .map_err(|e| s3_error("LIST", b, key, e))?;
            for object in pages.into_iter().flat_map(|p| p.contents) {
                let below = if key.is_empty() {
                    Some(object.key.as_str())
                } else {
                    object.key.strip_prefix(&format!("{key}/"))
                };
                let visible = match below {
                    Some(rest) => !rest.split('/').any(hidden),
                    None => object.key == *key,
                };
                if visible && !object.key.ends_with('/') {
                    found.push((
                        Location::S3 {
                            bucket: b.clone(),
                            key: object.key,
                        },
                        object.size,
                    ));
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The size in bytes of the object at `at`.
pub fn size(at: &Location) -> io::Result<u64> {
    match at {
        Location::Local(path) => Ok(fs::metadata(path)
            .map_err(|e| local_error("reading the size of", path, e))?
            .len()),
        Location::S3 { bucket: b, key } => {
            let (head, _) = bucket(b)?
                .head_object(key)
                .map_err(|e| s3_error("HEAD", b, key, e))?;
            Ok(head.content_length.unwrap_or(0).max(0) as u64)
        }
    }
}

/// Deletes the object at `at` (nothing if there is none).
pub fn remove(at: &Location) -> io::Result<()> {
    match at {
        Location::Local(path) => match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(local_error("deleting", path, e)),
            _ => Ok(()),
        },
        Location::S3 { bucket: b, key } => {
            bucket(b)?
                .delete_object(key)
                .map_err(|e| s3_error("DELETE", b, key, e))?;
            Ok(())
        }
    }
}

/// Deletes `at` and everything under it.
pub fn remove_all(at: &Location) -> io::Result<()> {
    match at {
        Location::Local(path) => match fs::remove_dir_all(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(local_error("deleting", path, e)),
            _ => Ok(()),
        },
        Location::S3 { bucket: b, key } => {
            let handle = bucket(b)?;
            let prefix = format!("{key}/");
            let pages = handle
                .list(prefix.clone(), None)
                .map_err(|e| s3_error("LIST", b, &prefix, e))?;
            for object in pages.into_iter().flat_map(|p| p.contents) {
                handle
                    .delete_object(&object.key)
                    .map_err(|e| s3_error("DELETE", b, &object.key, e))?;
            }
            Ok(())
        }
    }
}

// Uploads in pieces (S3 multipart uploads): the object stays invisible until `upload_complete`
// assembles it, atomically. Every piece but the last must be at least 5 MiB (S3's rule).

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_join_and_print() {
        let s3 = Location::parse("s3://b/a/b/").unwrap();
        assert_eq!(s3.join("c").to_string(), "s3://b/a/b/c");
        assert_eq!(s3.join("c").file_name().as_deref(), Some("c"));
        let root = Location::parse("s3://b").unwrap();
        assert_eq!(root.join("x").to_string(), "s3://b/x");
        let err = Location::parse("s3://").unwrap_err();
        assert!(err.to_string().contains("no bucket"), "{err}");
        let local = Location::parse("/tmp/x").unwrap();
        assert_eq!(local.join("y").as_local(), Some(Path::new("/tmp/x/y")));
    }

    #[test]
    fn local_objects_write_read_list_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let root = Location::from(dir.path());
        let at = root.join("a").join("b");
        write(&at, b"0123456789").unwrap();
        assert_eq!(read_range(&at, 2, 3).unwrap(), b"234");
        assert_eq!(read_range(&at, 8, 5).unwrap(), b"89");
        assert!(exists(&at).unwrap());
        let listed = list(&root.join("a")).unwrap();
        assert_eq!(
            listed,
            vec![Listed {
                name: "b".into(),
                size: 10,
                is_dir: false
            }]
        );
        assert_eq!(list(&root.join("none")).unwrap(), vec![]);
        let missing = read(&root.join("nope")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        remove_all(&root.join("a")).unwrap();
        assert!(!exists(&at).unwrap());
    }
}
