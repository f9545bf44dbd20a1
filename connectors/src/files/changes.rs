//! Change-data formats: Debezium's JSON envelope and CSV changelogs with Flink's row kinds.
//!
//! Each line is checked as it is decoded; a line that does not describe a change (an unknown
//! operation, an update or deletion without the row before it, an insertion without the row
//! after it, a field of the wrong type) is a bad record: it fails the job naming the file, line
//! and field, or goes to the dead-letter file, as the source's [`OnError`](crate::OnError) says.
//! Whether a deletion removes a row that is there is checked later, by the collection the changes
//! build (see `tidal_operators::collection`).

use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use tidal_engine::Time;
use tidal_engine::change::{Change, RowKind};
use tidal_engine::storage::Location;

use super::Format;
use super::decode::{CsvDecoder, Decoder, json_value, trim_line_break};

/// The changes of one Debezium event, at its time `ts_ms`: one (`c`, `r`: `+I`; `d`: `-D`) or
/// two (`u`: `-U` of the row before, `+U` of the row after). Iterate over it for the changes.
///
/// ```
/// use tidal_connectors::files::DebeziumEvent;
/// use tidal_engine::change::RowKind;
/// let line = br#"{"before":{"id":1},"after":{"id":2},"op":"u","ts_ms":7}"#;
/// let event: DebeziumEvent<serde_json::Value> = DebeziumEvent::parse(line).unwrap();
/// assert_eq!(event.ts_ms, 7);
/// let kinds: Vec<RowKind> = event.into_iter().map(|c| c.kind).collect();
/// assert_eq!(kinds, vec![RowKind::UpdateBefore, RowKind::UpdateAfter]);
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct DebeziumEvent<T> {
    /// The event's time (Debezium's `ts_ms`): the changes' event time.
    pub ts_ms: Time,
    first: Change<T>,
    second: Option<Change<T>>,
}

impl<T> IntoIterator for DebeziumEvent<T> {
    type Item = Change<T>;
    type IntoIter = std::iter::Chain<std::iter::Once<Change<T>>, std::option::IntoIter<Change<T>>>;
    fn into_iter(self) -> Self::IntoIter {
        std::iter::once(self.first).chain(self.second)
    }
}

#[derive(Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct Envelope<T> {
    #[serde(default = "none")]
    before: Option<T>,
    #[serde(default = "none")]
    after: Option<T>,
    #[serde(default)]
    op: Option<String>,
    #[serde(default)]
    ts_ms: Option<Time>,
    /// With schemas included, the envelope is the `payload` of `{"schema": ..., "payload": ...}`.
    #[serde(default = "none")]
    payload: Option<Box<Envelope<T>>>,
}

fn none<T>() -> Option<T> {
    None
}

impl<T: DeserializeOwned> DebeziumEvent<T> {
    /// Decodes one line; the error names the field at fault.
    pub fn parse(line: &[u8]) -> Result<Self, String> {
        Self::parse_timed(line, true)
    }

    /// Like [`parse`](Self::parse), for readers that take the changes' time from elsewhere (a
    /// column of the rows): `ts_ms` may be missing (`Time::MIN` then).
    ///
    /// ```
    /// use tidal_connectors::files::DebeziumEvent;
    /// let line = br#"{"before":null,"after":{"id":2},"op":"c"}"#;
    /// assert!(DebeziumEvent::<serde_json::Value>::parse(line).is_err());
    /// let event: DebeziumEvent<serde_json::Value> = DebeziumEvent::parse_untimed(line).unwrap();
    /// assert_eq!(event.ts_ms, i64::MIN);
    /// ```
    pub fn parse_untimed(line: &[u8]) -> Result<Self, String> {
        Self::parse_timed(line, false)
    }

    fn parse_timed(line: &[u8], timed: bool) -> Result<Self, String> {
        let envelope: Envelope<T> = json_value(line)?;
        let envelope = match envelope.payload {
            Some(payload) => *payload,
            None => envelope,
        };
        let Some(op) = envelope.op else {
            return Err("field 'op': missing (expected \"c\", \"r\", \"u\" or \"d\")".into());
        };
        let ts_ms = match envelope.ts_ms {
            Some(t) => t,
            None if !timed => Time::MIN,
            None => {
                return Err(
                    "field 'ts_ms': missing (the change's time in ms since the epoch)".into(),
                );
            }
        };
        let need = |row: Option<T>, field: &str, what: &str| {
            row.ok_or_else(|| {
                format!(
                    "field '{field}': a change with op '{op}' needs the row {what} it (null or missing here); for updates and deletions the source must log whole rows before the change"
                )
            })
        };
        let (first, second) = match op.as_str() {
            "c" | "r" => (
                Change::new(RowKind::Insert, need(envelope.after, "after", "after")?),
                None,
            ),
            "u" => {
                let before = need(envelope.before, "before", "before")?;
                let after = need(envelope.after, "after", "after")?;
                (
                    Change::new(RowKind::UpdateBefore, before),
                    Some(Change::new(RowKind::UpdateAfter, after)),
                )
            }
            "d" => (
                Change::new(RowKind::Delete, need(envelope.before, "before", "before")?),
                None,
            ),
            other => {
                return Err(format!(
                    "field 'op': unknown operation '{other}' (expected \"c\", \"r\", \"u\" or \"d\")"
                ));
            }
        };
        Ok(DebeziumEvent {
            ts_ms,
            first,
            second,
        })
    }
}

/// Debezium's JSON change events, one per line, rows decoded into `T` (unknown fields ignored;
/// the `{"schema", "payload"}` wrapping is recognised).
#[derive(Debug)]
pub struct DebeziumJson<T>(PhantomData<fn() -> T>);

impl<T> Clone for DebeziumJson<T> {
    fn clone(&self) -> Self {
        DebeziumJson(PhantomData)
    }
}

impl<T> Default for DebeziumJson<T> {
    fn default() -> Self {
        DebeziumJson(PhantomData)
    }
}

/// Decodes Debezium events.
pub struct DebeziumDecoder<T>(PhantomData<fn() -> T>);

impl<T: DeserializeOwned + 'static> Decoder for DebeziumDecoder<T> {
    type Item = DebeziumEvent<T>;
    fn open(&mut self, _: &Location, _: u64) -> std::io::Result<()> {
        Ok(())
    }
    fn decode(&mut self, line: &[u8]) -> Result<Option<DebeziumEvent<T>>, String> {
        let line = trim_line_break(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        DebeziumEvent::parse(line).map(Some)
    }
}

impl<T: DeserializeOwned + 'static> Format for DebeziumJson<T> {
    type Item = DebeziumEvent<T>;
    type Decoder = DebeziumDecoder<T>;
    const KIND: &'static str = "debezium-json";
    fn decoder(&self) -> DebeziumDecoder<T> {
        DebeziumDecoder(PhantomData)
    }
}

/// CSV changelogs: each line a row kind (`+I`, `-U`, `+U`, `-D`) and the row's fields, decoded
/// into `T` by position (`+U,emea,3,1200`). With [`has_headers`](super::Files::has_headers), the
/// first line of each file is skipped.
#[derive(Debug)]
pub struct ChangelogCsv<T> {
    pub(super) has_headers: bool,
    pub(super) delimiter: u8,
    record: PhantomData<fn() -> T>,
}

impl<T> Clone for ChangelogCsv<T> {
    fn clone(&self) -> Self {
        ChangelogCsv { ..*self }
    }
}

impl<T> Default for ChangelogCsv<T> {
    fn default() -> Self {
        ChangelogCsv {
            has_headers: false,
            delimiter: b',',
            record: PhantomData,
        }
    }
}

/// Decodes CSV changelog lines.
pub struct ChangelogCsvDecoder<T> {
    rows: CsvDecoder<T>,
    has_headers: bool,
    delimiter: u8,
    skip_next: bool,
}

impl<T: DeserializeOwned + 'static> Decoder for ChangelogCsvDecoder<T> {
    type Item = Change<T>;
    fn open(&mut self, path: &Location, start: u64) -> std::io::Result<()> {
        self.skip_next = self.has_headers && start == 0;
        self.rows.open(path, start)
    }
    fn decode(&mut self, line: &[u8]) -> Result<Option<Change<T>>, String> {
        if std::mem::take(&mut self.skip_next) {
            return Ok(None);
        }
        let trimmed = trim_line_break(line);
        if trimmed.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let (kind, rest) = match memchr::memchr(self.delimiter, trimmed) {
            Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
            None => (trimmed, &[][..]),
        };
        let kind = std::str::from_utf8(kind)
            .ok()
            .and_then(RowKind::parse)
            .ok_or_else(|| {
                format!(
                    "field 1 (the row kind): '{}' is not one of +I, -U, +U, -D",
                    String::from_utf8_lossy(kind)
                )
            })?;
        match self.rows.decode(rest)? {
            Some(row) => Ok(Some(Change::new(kind, row))),
            None => Err("the row after the row kind is empty".into()),
        }
    }
}

impl<T: DeserializeOwned + 'static> Format for ChangelogCsv<T> {
    type Item = Change<T>;
    type Decoder = ChangelogCsvDecoder<T>;
    const KIND: &'static str = "changelog-csv";
    fn decoder(&self) -> ChangelogCsvDecoder<T> {
        ChangelogCsvDecoder {
            rows: CsvDecoder::new(false, self.delimiter),
            has_headers: self.has_headers,
            delimiter: self.delimiter,
            skip_next: false,
        }
    }
}
