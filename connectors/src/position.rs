//! Source positions for checkpoints: how each connector says what it has still to read, and how
//! a restored source shares that out among any number of new instances.
//!
//! Positions are postcard-encoded lists of independent pieces of remaining work (a byte range of
//! a file, a residue class of a sequence). On restore every new instance sees the pieces of every
//! former instance in the same order and takes piece `k` when `k % peers == index`, so each piece
//! is read exactly once, whatever the old and new numbers of instances.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tidal_engine::{Error, Result};

/// Encodes a list of pieces.
pub(crate) fn encode<P: Serialize>(pieces: &[P]) -> Option<Vec<u8>> {
    postcard::to_allocvec(pieces).ok()
}

/// This instance's share (instance `index` of `peers`) of the pieces in every former instance's
/// position. A position that does not decode is an error naming it.
pub(crate) fn share<P: DeserializeOwned>(
    positions: &[&[u8]],
    index: usize,
    peers: usize,
) -> Result<Vec<P>> {
    let mut all = Vec::new();
    for (i, position) in positions.iter().enumerate() {
        let pieces: Vec<P> = postcard::from_bytes(position).map_err(|e| {
            Error::input(format!(
                "position {i} does not decode ({e}): the checkpoint was written by a different source under this name"
            ))
        })?;
        all.extend(pieces);
    }
    Ok(all
        .into_iter()
        .enumerate()
        .filter(|(k, _)| k % peers == index)
        .map(|(_, p)| p)
        .collect())
}

/// The sequence numbers `next, next + step, …` below `end`: one piece of a sequence source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Residues {
    pub(crate) next: u64,
    pub(crate) step: u64,
}

/// Several residue classes read in increasing order of their numbers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sequence {
    classes: Vec<Residues>,
}

impl Sequence {
    pub(crate) fn new(classes: Vec<Residues>) -> Self {
        Sequence { classes }
    }
    /// The next number (smallest among the classes), if any is below `end`.
    pub(crate) fn peek(&self, end: Option<u64>) -> Option<u64> {
        self.classes
            .iter()
            .map(|c| c.next)
            .filter(|n| end.is_none_or(|e| *n < e))
            .min()
    }
    /// Moves past number `n` (returned by [`peek`](Sequence::peek)).
    pub(crate) fn advance(&mut self, n: u64) {
        if let Some(c) = self.classes.iter_mut().find(|c| c.next == n) {
            c.next += c.step;
        }
    }
    /// Whether `n` is one of this sequence's numbers still to come.
    pub(crate) fn owns(&self, n: u64) -> bool {
        self.classes
            .iter()
            .any(|c| n >= c.next && (n - c.next).is_multiple_of(c.step))
    }
    pub(crate) fn classes(&self) -> &[Residues] {
        &self.classes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_read_their_classes_in_order() {
        let mut s = Sequence::new(vec![
            Residues { next: 4, step: 3 },
            Residues { next: 2, step: 3 },
        ]);
        let mut out = Vec::new();
        while let Some(n) = s.peek(Some(12)) {
            out.push(n);
            s.advance(n);
        }
        assert_eq!(out, vec![2, 4, 5, 7, 8, 10, 11]);
        assert!(s.owns(13) && s.owns(14) && !s.owns(12));
    }
}
