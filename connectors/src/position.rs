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
    /// Takes the next numbers in order, up to `max` of them, as long as they are consecutive in one
    /// class: `(first, step, count)`, or `None` when no number is left below `end`. With one class
    /// (a sequence not restored onto another number of instances) that is all `max` numbers.
    pub(crate) fn take_run(&mut self, end: Option<u64>, max: usize) -> Option<(u64, u64, usize)> {
        let n = self.peek(end)?;
        let single = self.classes.len() == 1;
        let class = self
            .classes
            .iter_mut()
            .find(|c| c.next == n)
            .expect("peek returned a class's next number");
        let step = class.step;
        let mut count = if single { max.max(1) } else { 1 };
        if let Some(end) = end {
            // Numbers n, n + step, ... below end.
            count = count.min((end - n).div_ceil(step) as usize);
        }
        class.next = n + step * count as u64;
        Some((n, step, count))
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

    #[test]
    fn runs_follow_the_same_order() {
        for classes in [
            vec![Residues { next: 1, step: 3 }],
            vec![Residues { next: 4, step: 3 }, Residues { next: 2, step: 3 }],
        ] {
            for max in [1, 2, 5, 100] {
                let mut by_number = Sequence::new(classes.clone());
                let mut expected = Vec::new();
                while let Some(n) = by_number.peek(Some(40)) {
                    expected.push(n);
                    by_number.advance(n);
                }
                let mut by_run = Sequence::new(classes.clone());
                let mut out = Vec::new();
                while let Some((first, step, count)) = by_run.take_run(Some(40), max) {
                    assert!(count >= 1 && count <= max);
                    out.extend((0..count as u64).map(|i| first + i * step));
                }
                assert_eq!(out, expected, "{classes:?}, runs of up to {max}");
                assert!(by_run.peek(None).is_some_and(|n| n >= 40));
            }
        }
    }
}
