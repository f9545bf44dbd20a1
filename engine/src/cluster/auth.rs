//! Who may join a job: with a cluster secret, processes prove to each other that they know it
//! before timely gets the socket — by a challenge and response, never the secret on the wire.
//!
//! The connecting process sends a fresh random nonce with its hello; the accepting one answers
//! with its own nonce and HMAC-SHA256(secret, "tidal accept" ‖ connector's index ‖ both
//! nonces); the connecting one checks it and answers with HMAC-SHA256(secret,
//! "tidal connect" ‖ index ‖ both nonces), which the accepting one checks. Each side learns
//! that the other knows the secret; a recorded exchange does not help anyone later (fresh
//! nonces each time), and the MACs are compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

/// Length of a nonce and of a MAC.
pub(crate) const LEN: usize = 32;

/// A job's shared secret.
#[derive(Clone)]
pub struct ClusterSecret(Vec<u8>);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(…)")
    }
}

impl ClusterSecret {
    /// A secret from its text (surrounding whitespace ignored; it must not be empty).
    ///
    /// ```
    /// use tidal_engine::cluster::ClusterSecret;
    /// assert!(ClusterSecret::new("  s3cret\n").is_ok());
    /// assert!(ClusterSecret::new(" \n").is_err());
    /// ```
    pub fn new(text: &str) -> Result<ClusterSecret> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::config(
                "the cluster secret is empty: put at least one character in it",
            ));
        }
        Ok(ClusterSecret(text.as_bytes().to_vec()))
    }

    /// Reads the secret from `path` (an error naming the file when it cannot).
    pub fn read(path: &std::path::Path) -> Result<ClusterSecret> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!(
                "cannot read the cluster secret file '{}': {e}",
                path.display()
            ))
        })?;
        ClusterSecret::new(&text)
            .map_err(|e| Error::config(format!("cluster secret file '{}': {e}", path.display())))
    }

    /// A token derived from the secret (hex), for other uses than the cluster handshake (the
    /// launcher's REST actions): knowing it does not reveal the secret.
    ///
    /// ```
    /// use tidal_engine::cluster::ClusterSecret;
    /// let s = ClusterSecret::new("s3cret").unwrap();
    /// assert_eq!(s.token("rest").len(), 64);
    /// assert_ne!(s.token("rest"), s.token("other"));
    /// ```
    pub fn token(&self, purpose: &str) -> String {
        self.mac(b"tidal token", &[purpose.as_bytes()])
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub(crate) fn mac(&self, label: &[u8], parts: &[&[u8]]) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out.copy_from_slice(&self.hmac(label, parts).finalize().into_bytes());
        out
    }

    /// Whether `tag` is the MAC of `label` and `parts` (in constant time).
    pub(crate) fn verify(&self, label: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
        self.hmac(label, parts).verify_slice(tag).is_ok()
    }

    fn hmac(&self, label: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(label);
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac
    }
}

/// A fresh random nonce from the operating system.
pub(crate) fn nonce() -> Result<[u8; LEN]> {
    let mut n = [0u8; LEN];
    getrandom::fill(&mut n)
        .map_err(|e| Error::external(format!("no randomness for the cluster handshake: {e}")))?;
    Ok(n)
}
