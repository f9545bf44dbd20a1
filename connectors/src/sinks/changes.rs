//! Changelog file sinks: a stream of [`Change`]s written as a CSV changelog (`+I,...` lines) or
//! as Debezium JSON, into exactly-once part files like every file sink (see [`parts`](super::parts)).

use serde::Serialize;
use tidal_engine::change::{Change, RowKind};
use tidal_engine::storage::Location;
use tidal_engine::timely::dataflow::operators::vec::Map;
use tidal_engine::{DataStream, Time};

use super::SharedBuffer;
use super::parts::part_file_sink;

/// Sinks for changelogs (streams of [`Change`]s, as collections emit them).
pub trait ChangelogSinks<'s, T: 'static> {
    /// Writes each change as a CSV line, its row kind first and the row's fields after it, with
    /// no header (`+U,emea,3,1200`), into part files `part-RUN-WWWWW-SSSSSS.csv` in `dir`. The
    /// format [`ChangelogCsvFiles`](crate::ChangelogCsvFiles) reads.
    ///
    /// ```
    /// use tidal_connectors::prelude::*;
    /// use tidal_engine::change::{Change, RowKind};
    /// let dir = tempfile::tempdir().unwrap();
    /// let out = dir.path().to_path_buf();
    /// tidal_engine::Job::local(1).run(move |env| {
    ///     env.from_iter(vec![Change::new(RowKind::UpdateAfter, ("emea", 3))]).write_changelog_csv(&out)
    /// }).unwrap();
    /// let part = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
    /// assert_eq!(std::fs::read_to_string(part).unwrap(), "+U,emea,3\n");
    /// ```
    fn write_changelog_csv(self, dir: impl Into<Location>)
    where
        T: Serialize;

    /// Writes each change as a Debezium JSON event, as Flink's `debezium-json` format does:
    /// `+I` and `+U` as `{"before":null,"after":ROW,"op":"c","ts_ms":TIME}`, `-U` and `-D` as
    /// `{"before":ROW,"after":null,"op":"d","ts_ms":TIME}`, `TIME` the change's time (its
    /// event time; for a SQL GROUP BY without windows, the watermark at which the change was
    /// made); into part files `part-RUN-WWWWW-SSSSSS.jsonl` in `dir`.
    /// [`DebeziumJsonFiles`](crate::DebeziumJsonFiles) reads them back.
    ///
    /// ```
    /// use tidal_connectors::prelude::*;
    /// use tidal_engine::change::{Change, RowKind};
    /// let dir = tempfile::tempdir().unwrap();
    /// let out = dir.path().to_path_buf();
    /// tidal_engine::Job::local(1).run(move |env| {
    ///     env.from_iter(vec![Change::new(RowKind::Delete, 7u32)]).write_debezium_json(&out)
    /// }).unwrap();
    /// let part = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
    /// let line = std::fs::read_to_string(part).unwrap();
    /// assert!(line.starts_with(r#"{"before":7,"after":null,"op":"d","ts_ms":"#), "{line}");
    /// ```
    fn write_debezium_json(self, dir: impl Into<Location>)
    where
        T: Serialize;
}

#[derive(Serialize)]
struct Event<T> {
    before: Option<T>,
    after: Option<T>,
    op: &'static str,
    ts_ms: Time,
}

impl<'s, T: 'static> ChangelogSinks<'s, T> for DataStream<'s, Change<T>> {
    fn write_changelog_csv(self, dir: impl Into<Location>)
    where
        T: Serialize,
    {
        let shared = SharedBuffer::default();
        let mut cw = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(shared.clone());
        part_file_sink(self, dir.into(), "csv", move |buf, change: &Change<T>| {
            buf.extend_from_slice(change.kind.short().as_bytes());
            buf.push(b',');
            cw.serialize(&change.row).map_err(|e| e.to_string())?;
            cw.flush().map_err(|e| e.to_string())?;
            buf.append(&mut shared.0.borrow_mut());
            Ok(())
        });
    }

    fn write_debezium_json(self, dir: impl Into<Location>)
    where
        T: Serialize,
    {
        let events = self.then("debezium", |s, _| {
            s.map(|(change, t)| {
                let event = match change.kind {
                    RowKind::Insert | RowKind::UpdateAfter => Event {
                        before: None,
                        after: Some(change.row),
                        op: "c",
                        ts_ms: t,
                    },
                    RowKind::UpdateBefore | RowKind::Delete => Event {
                        before: Some(change.row),
                        after: None,
                        op: "d",
                        ts_ms: t,
                    },
                };
                (event, t)
            })
        });
        part_file_sink(events, dir.into(), "jsonl", |buf, event: &Event<T>| {
            serde_json::to_writer(&mut *buf, event).map_err(|e| e.to_string())?;
            buf.push(b'\n');
            Ok(())
        });
    }
}
