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
use std::sync::RwLock;
use std::time::Duration;

use crate::error::{Error, Result};

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

/// S3 settings that override the environment (from `--s3-endpoint` / `--s3-region`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// The endpoint of an S3-compatible server, e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    /// The region.
    pub region: Option<String>,
    /// Access key id and secret key (for a program that has them from elsewhere; the flags do not
    /// take secrets, which `ps` would show).
    pub credentials: Option<(String, String)>,
}

static S3_SETTINGS: RwLock<Option<S3Settings>> = RwLock::new(None);

/// Sets the S3 endpoint, region and credentials for this process, over the environment's.
pub fn configure_s3(settings: S3Settings) {
    *S3_SETTINGS.write().unwrap_or_else(|e| e.into_inner()) = Some(settings);
}

const S3_TIMEOUT: Duration = Duration::from_secs(30);

fn bucket(name: &str) -> io::Result<Box<s3::Bucket>> {
    if name.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an s3:// location names no bucket: write s3://BUCKET/PREFIX",
        ));
    }
    let settings = S3_SETTINGS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default();
    let env = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
    };
    let region_name = settings
        .region
        .or_else(|| env(&["AWS_REGION", "AWS_DEFAULT_REGION"]))
        .unwrap_or_else(|| "us-east-1".to_string());
    let endpoint = settings
        .endpoint
        .or_else(|| env(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]));
    let other = |what: String| io::Error::other(what);
    let region = match &endpoint {
        Some(endpoint) => s3::Region::Custom {
            region: region_name,
            endpoint: endpoint.trim_end_matches('/').to_string(),
        },
        None => region_name
            .parse()
            .map_err(|e| other(format!("S3 region '{region_name}': {e}")))?,
    };
    let credentials = match &settings.credentials {
        Some((key, secret)) => {
            s3::creds::Credentials::new(Some(key), Some(secret), None, None, None)
        }
        None => s3::creds::Credentials::default(),
    }
    .map_err(|e| {
        other(format!(
            "no S3 credentials ({e}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ))
    })?;
    let mut bucket = s3::Bucket::new(name, region, credentials)
        .map_err(|e| other(format!("S3 bucket '{name}': {e}")))?;
    if endpoint.is_some() {
        bucket = bucket.with_path_style();
    }
    bucket
        .with_request_timeout(S3_TIMEOUT)
        .map_err(|e| other(format!("S3 bucket '{name}': {e}")))
}

/// Turns an S3 failure into an I/O error naming the operation and the object.
fn s3_error(op: &str, bucket: &str, key: &str, e: s3::error::S3Error) -> io::Error {
    let at = format!("s3://{bucket}/{key}");
    match e {
        s3::error::S3Error::HttpFailWithBody(status, body) => {
            let tag = |t: &str| {
                let open = format!("<{t}>");
                let start = body.find(&open)? + open.len();
                let end = body[start..].find(&format!("</{t}>"))? + start;
                Some(body[start..end].to_string())
            };
            let code = tag("Code").unwrap_or_default();
            let message = tag("Message").unwrap_or_default();
            let kind = if status == 404 {
                io::ErrorKind::NotFound
            } else {
                io::ErrorKind::Other
            };
            let detail = if code.is_empty() {
                // Not an S3 error document: show what the server said.
                let body: String = body.chars().take(300).collect();
                format!("unexpected answer: {body}")
            } else {
                format!("{code}: {message}")
            };
            io::Error::new(kind, format!("S3 {op} {at}: HTTP {status} {detail}"))
        }
        other => io::Error::other(format!("S3 {op} {at}: {other}")),
    }
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

/// Anything that reads and seeks: a local file, or an S3 object read in ranges.
pub trait ReadSeek: io::Read + io::Seek {}
impl<T: io::Read + io::Seek> ReadSeek for T {}

/// Opens the object at `at` to read; an S3 object is fetched in ranges of 8 MiB as it is read.
pub fn open(at: &Location) -> io::Result<Box<dyn ReadSeek>> {
    match at {
        Location::Local(path) => Ok(Box::new(
            fs::File::open(path).map_err(|e| local_error("opening", path, e))?,
        )),
        Location::S3 { bucket: b, key } => {
            let (head, _) = bucket(b)?
                .head_object(key)
                .map_err(|e| s3_error("HEAD", b, key, e))?;
            Ok(Box::new(ObjectReader {
                at: at.clone(),
                size: head.content_length.unwrap_or(0).max(0) as u64,
                pos: 0,
                chunk: Vec::new(),
                chunk_start: 0,
            }))
        }
    }
}

const RANGE: u64 = 8 << 20;

/// An S3 object read through ranged GETs.
struct ObjectReader {
    at: Location,
    size: u64,
    pos: u64,
    chunk: Vec<u8>,
    chunk_start: u64,
}

impl io::Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let in_chunk =
            self.pos >= self.chunk_start && self.pos < self.chunk_start + self.chunk.len() as u64;
        if !in_chunk {
            let len = RANGE.min(self.size - self.pos);
            self.chunk = read_range(&self.at, self.pos, len)?;
            self.chunk_start = self.pos;
            if self.chunk.is_empty() {
                return Ok(0);
            }
        }
        let offset = (self.pos - self.chunk_start) as usize;
        let n = buf.len().min(self.chunk.len() - offset);
        buf[..n].copy_from_slice(&self.chunk[offset..offset + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl io::Seek for ObjectReader {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let target = match to {
            io::SeekFrom::Start(n) => n as i128,
            io::SeekFrom::End(n) => self.size as i128 + n as i128,
            io::SeekFrom::Current(n) => self.pos as i128 + n as i128,
        };
        if target < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of an object",
            ));
        }
        self.pos = target as u64;
        Ok(self.pos)
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

/// The bucket and key of an `s3://` location; an error naming `op` for a local one.
fn s3_only(op: &str, at: &Location) -> io::Result<(Box<s3::Bucket>, String, String)> {
    match at {
        Location::S3 { bucket: b, key } => Ok((bucket(b)?, b.clone(), key.clone())),
        Location::Local(path) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{op} is for s3:// locations, not '{}'", path.display()),
        )),
    }
}

/// Starts an upload in pieces of the object at `at` (S3 only); returns the upload's id.
pub fn upload_begin(at: &Location) -> io::Result<String> {
    let (handle, b, key) = s3_only("an upload in pieces", at)?;
    Ok(handle
        .initiate_multipart_upload(&key, "application/octet-stream")
        .map_err(|e| s3_error("CreateMultipartUpload", &b, &key, e))?
        .upload_id)
}

/// Uploads piece `number` (from 1) of upload `upload`; returns its ETag, which
/// [`upload_complete`] needs.
pub fn upload_piece(at: &Location, upload: &str, number: u32, bytes: &[u8]) -> io::Result<String> {
    let (handle, b, key) = s3_only("an upload in pieces", at)?;
    Ok(handle
        .put_multipart_chunk(bytes, &key, number, upload, "application/octet-stream")
        .map_err(|e| s3_error("UploadPart", &b, &key, e))?
        .etag)
}

/// Assembles upload `upload` from its pieces (number, ETag) into the object at `at`, which then
/// appears whole. Completing an upload that was already completed succeeds when the object is
/// there (so that a commit can be repeated after a failure).
pub fn upload_complete(at: &Location, upload: &str, pieces: &[(u32, String)]) -> io::Result<()> {
    let (handle, b, key) = s3_only("an upload in pieces", at)?;
    let parts = pieces
        .iter()
        .map(|(n, etag)| s3::serde_types::Part {
            part_number: *n,
            etag: etag.clone(),
        })
        .collect();
    match handle.complete_multipart_upload(&key, upload, parts) {
        Ok(_) => Ok(()),
        // A success whose answer is not the document AWS sends (moto, some S3-compatible
        // servers, name the root element differently): the object tells.
        Err(s3::error::S3Error::HttpFailWithBody(200..=299, body))
            if !body.contains("<Error>") && exists(at)? =>
        {
            Ok(())
        }
        Err(e) => {
            let e = s3_error("CompleteMultipartUpload", &b, &key, e);
            if e.to_string().contains("NoSuchUpload") && exists(at)? {
                return Ok(());
            }
            Err(e)
        }
    }
}

/// Abandons upload `upload` and its pieces (nothing if it is gone already).
pub fn upload_abort(at: &Location, upload: &str) -> io::Result<()> {
    let (handle, b, key) = s3_only("an upload in pieces", at)?;
    match handle.abort_upload(&key, upload) {
        Ok(()) => Ok(()),
        Err(e) => {
            let e = s3_error("AbortMultipartUpload", &b, &key, e);
            if e.to_string().contains("NoSuchUpload") {
                return Ok(());
            }
            Err(e)
        }
    }
}

/// The uploads in pieces not yet completed of objects directly under `at`: (object, upload id).
pub fn uploads_under(at: &Location) -> io::Result<Vec<(Location, String)>> {
    let (handle, b, key) = s3_only("listing uploads", at)?;
    let prefix = if key.is_empty() {
        String::new()
    } else {
        format!("{key}/")
    };
    let pages = handle
        .list_multiparts_uploads(Some(&prefix), Some("/"))
        .map_err(|e| s3_error("ListMultipartUploads", &b, &prefix, e))?;
    Ok(pages
        .into_iter()
        .flat_map(|p| p.uploads)
        .map(|u| {
            (
                Location::S3 {
                    bucket: b.clone(),
                    key: u.key,
                },
                u.id,
            )
        })
        .collect())
}

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
