//! The S3 side of storage: the client (endpoint, region, credentials, timeouts), its errors, and
//! multipart uploads (the file sinks upload large parts in pieces).

use std::io;
use std::sync::RwLock;
use std::time::Duration;

use super::{Location, exists};

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

pub(super) fn bucket(name: &str) -> io::Result<Box<s3::Bucket>> {
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
pub(super) fn s3_error(op: &str, bucket: &str, key: &str, e: s3::error::S3Error) -> io::Error {
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
