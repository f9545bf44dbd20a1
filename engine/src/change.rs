//! Changes to a table: the row kinds of a changelog, shared by the sources that read change
//! data (Debezium JSON, CSV changelogs) and the incremental collections that consume and emit it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a change does to its row, as Flink's changelogs name it.
///
/// ```
/// use tidal_engine::change::RowKind;
/// assert_eq!(RowKind::parse("-U"), Some(RowKind::UpdateBefore));
/// assert_eq!(RowKind::Insert.to_string(), "+I");
/// assert!(RowKind::UpdateAfter.is_addition());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RowKind {
    /// `+I`: a new row.
    Insert,
    /// `-U`: the old version of an updated row (it goes).
    UpdateBefore,
    /// `+U`: the new version of an updated row (it comes).
    UpdateAfter,
    /// `-D`: a row deleted.
    Delete,
}

impl RowKind {
    /// The short form: `+I`, `-U`, `+U` or `-D`.
    pub fn short(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }
    /// Reads the short form; `None` for anything else.
    pub fn parse(text: &str) -> Option<RowKind> {
        match text {
            "+I" => Some(RowKind::Insert),
            "-U" => Some(RowKind::UpdateBefore),
            "+U" => Some(RowKind::UpdateAfter),
            "-D" => Some(RowKind::Delete),
            _ => None,
        }
    }
    /// Whether the row comes (`+I`, `+U`) rather than goes (`-U`, `-D`).
    pub fn is_addition(self) -> bool {
        matches!(self, RowKind::Insert | RowKind::UpdateAfter)
    }
    /// The change in the row's count: +1 or -1.
    pub fn diff(self) -> isize {
        if self.is_addition() { 1 } else { -1 }
    }
}

impl fmt::Display for RowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}

/// One change of a changelog: a row and what happens to it. Its time is the record's event time.
///
/// Displayed as `KIND,ROW` (`+I,emea,3,1200` for a row that displays as `emea,3,1200`), the
/// line format of Tidal's CSV changelogs.
///
/// ```
/// use tidal_engine::change::{Change, RowKind};
/// let c = Change::new(RowKind::Delete, "emea,3");
/// assert_eq!(c.to_string(), "-D,emea,3");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Change<D> {
    /// What happens to the row.
    pub kind: RowKind,
    /// The row.
    pub row: D,
}

impl<D> Change<D> {
    /// A change of `kind` to `row`.
    pub fn new(kind: RowKind, row: D) -> Self {
        Change { kind, row }
    }
}

impl<D: fmt::Display> fmt::Display for Change<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.kind, self.row)
    }
}
