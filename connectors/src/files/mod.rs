//! File sources: which files, how they are split across workers, and how lines are decoded.
//!
//! Every worker computes the same plan: the input paths resolved to a sorted list of files, each cut
//! into byte ranges ("splits") of about `total size / (workers × k)`, with the least `k` that keeps
//! them at most 16 MiB (on more than one worker), and at least 1 MiB. Split `j` goes to worker
//! `j % workers`, so workers read neighbouring parts of a large file. A split owns the lines that
//! *start* inside its byte range, so every line is read exactly once whatever the cut. CSV records
//! must therefore not contain line breaks inside quoted fields.

mod changes;
pub(crate) mod decode;
mod fields;
mod lines;
mod object;

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::rc::Rc;
use tidal_engine::storage::{self, Location};

use serde::de::DeserializeOwned;
use tidal_engine::{Error, Poll, Progress, Result, SourceReader, SplitId, WorkerContext};

use crate::deadletter::{DeadLetters, OnError};
use crate::position;
use crate::throttle::Throttle;
pub use changes::{
    ChangelogCsv, ChangelogCsvDecoder, DebeziumDecoder, DebeziumEvent, DebeziumJson,
};
pub use decode::Decoder;
use decode::{CsvDecoder, JsonDecoder, TextDecoder};
use lines::SplitLines;

/// A file source: built into one reader per worker by [`Sources::read`](crate::Sources::read).
pub trait FileSource: 'static {
    /// The records read.
    type Item: 'static;
    /// The worker's reader.
    type Reader: SourceReader<Item = Self::Item>;
    /// A short name of the format, used in operator names.
    fn kind(&self) -> &'static str;
    /// Resolves the paths and builds this worker's reader; fails if a path is missing.
    fn reader(self, ctx: &Rc<WorkerContext>, name: &str) -> Result<Self::Reader>;
}

/// A file source: which files (a file, a directory or a glob, local or on S3; several with
/// [`paths`](Files::paths)), what to do with a line that does not decode, an optional rate, and
/// the line format `F` ([`Text`], [`Csv`], [`JsonLines`]). Usually named by its format's alias:
/// [`TextFiles`], [`CsvFiles`], [`JsonLinesFiles`].
#[derive(Debug, Clone)]
pub struct Files<F> {
    paths: Vec<String>,
    on_error: OnError,
    rate: Option<f64>,
    format: F,
}

/// How the lines of a file source are decoded into records.
pub trait Format: Clone + 'static {
    /// The records read.
    type Item: 'static;
    /// The decoder of one worker's reader.
    type Decoder: Decoder<Item = Self::Item>;
    /// A short name of the format, used in operator names.
    const KIND: &'static str;
    /// A decoder for one worker.
    fn decoder(&self) -> Self::Decoder;
}

/// Lines of text files, as `String`s without the line break.
///
/// ```
/// use tidal_connectors::prelude::*;
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("a.txt"), "one\ntwo\n").unwrap();
/// let path = dir.path().to_str().unwrap().to_string();
/// let mut lines: Vec<String> = tidal_engine::Job::local(2)
///     .run(move |env| env.read(TextFiles::new(&path)).collect())
///     .unwrap();
/// lines.sort();
/// assert_eq!(lines, vec!["one", "two"]);
/// ```
pub type TextFiles = Files<Text>;

/// CSV files decoded with serde into `T` (one record per line).
///
/// With headers (the default) fields are matched to `T`'s fields by the header names of each file;
/// without, by position.
///
/// ```
/// use tidal_connectors::prelude::*;
/// #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
/// struct Fare { ride: u64, tip: f32 }
/// let dir = tempfile::tempdir().unwrap();
/// let file = dir.path().join("fares.csv");
/// std::fs::write(&file, "ride,tip\n1,2.5\n2,0\n").unwrap();
/// let path = file.to_str().unwrap().to_string();
/// let fares: Vec<Fare> = tidal_engine::Job::local(1)
///     .run(move |env| env.read(CsvFiles::<Fare>::new(&path)).collect())
///     .unwrap();
/// assert_eq!(fares, vec![Fare { ride: 1, tip: 2.5 }, Fare { ride: 2, tip: 0.0 }]);
/// ```
pub type CsvFiles<T> = Files<Csv<T>>;

/// JSON Lines files: one JSON value per line, decoded with serde into `T`. Blank lines are skipped.
///
/// ```
/// use tidal_connectors::prelude::*;
/// #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
/// struct Bid { auction: u64, price: u64 }
/// let dir = tempfile::tempdir().unwrap();
/// let file = dir.path().join("bids.jsonl");
/// std::fs::write(&file, "{\"auction\":1,\"price\":10}\n\n{\"auction\":2,\"price\":7}\n").unwrap();
/// let path = file.to_str().unwrap().to_string();
/// let bids: Vec<Bid> = tidal_engine::Job::local(1)
///     .run(move |env| env.read(JsonLinesFiles::<Bid>::new(&path)).collect())
///     .unwrap();
/// assert_eq!(bids.len(), 2);
/// ```
pub type JsonLinesFiles<T> = Files<JsonLines<T>>;

/// Debezium JSON change events (see [`DebeziumJson`]), rows decoded into `T`.
///
/// ```
/// use tidal_connectors::prelude::*;
/// use tidal_engine::WatermarkStrategy;
/// #[derive(serde::Deserialize, serde::Serialize, Debug, Clone, PartialEq)]
/// struct Customer { id: u32, region: String }
/// let dir = tempfile::tempdir().unwrap();
/// let file = dir.path().join("customers.jsonl");
/// std::fs::write(&file, concat!(
///     r#"{"before":null,"after":{"id":1,"region":"emea"},"op":"c","ts_ms":1}"#, "\n",
///     r#"{"before":{"id":1,"region":"emea"},"after":{"id":1,"region":"apac"},"op":"u","ts_ms":2}"#, "\n",
/// )).unwrap();
/// let path = file.to_str().unwrap().to_string();
/// let events: Vec<DebeziumEvent<Customer>> = tidal_engine::Job::local(1).run(move |env| {
///     env.read_with(DebeziumJsonFiles::<Customer>::new(&path),
///             WatermarkStrategy::monotonous().with_timestamps(|e: &DebeziumEvent<Customer>| e.ts_ms))
///         .collect()
/// }).unwrap();
/// let changes: Vec<String> = events
///     .into_iter()
///     .flatten()
///     .map(|c| format!("{} {}", c.kind, c.row.region))
///     .collect();
/// assert_eq!(changes, vec!["+I emea", "-U emea", "+U apac"]);
/// ```
pub type DebeziumJsonFiles<T> = Files<DebeziumJson<T>>;

/// CSV changelogs (see [`ChangelogCsv`]): `+I,1,emea` lines, rows decoded into `T` by position.
///
/// ```
/// use tidal_connectors::prelude::*;
/// let dir = tempfile::tempdir().unwrap();
/// let file = dir.path().join("log.csv");
/// std::fs::write(&file, "+I,1,emea\n-D,1,emea\n").unwrap();
/// let path = file.to_str().unwrap().to_string();
/// let changes: Vec<tidal_engine::change::Change<(u32, String)>> = tidal_engine::Job::local(1)
///     .run(move |env| env.read(ChangelogCsvFiles::<(u32, String)>::new(&path)).collect())
///     .unwrap();
/// assert_eq!(changes[1].kind, tidal_engine::change::RowKind::Delete);
/// ```
pub type ChangelogCsvFiles<T> = Files<ChangelogCsv<T>>;

/// The text format: each line a `String` (a line that is not UTF-8 does not decode).
#[derive(Debug, Clone, Copy, Default)]
pub struct Text;

/// The CSV format, decoding into `T`: whether files have a header line, and the delimiter.
#[derive(Debug)]
pub struct Csv<T> {
    has_headers: bool,
    delimiter: u8,
    record: PhantomData<fn() -> T>,
}

/// The JSON Lines format, decoding into `T`.
#[derive(Debug)]
pub struct JsonLines<T>(PhantomData<fn() -> T>);

// Not derived: a derive would ask `T: Clone` of the records, which these never hold.
impl<T> Clone for Csv<T> {
    fn clone(&self) -> Self {
        Csv { ..*self }
    }
}

impl<T> Clone for JsonLines<T> {
    fn clone(&self) -> Self {
        JsonLines(PhantomData)
    }
}

impl<T> Default for Csv<T> {
    fn default() -> Self {
        Csv {
            has_headers: true,
            delimiter: b',',
            record: PhantomData,
        }
    }
}

impl<T> Default for JsonLines<T> {
    fn default() -> Self {
        JsonLines(PhantomData)
    }
}

impl Format for Text {
    type Item = String;
    type Decoder = TextDecoder;
    const KIND: &'static str = "text";
    fn decoder(&self) -> TextDecoder {
        TextDecoder
    }
}

impl<T: DeserializeOwned + 'static> Format for Csv<T> {
    type Item = T;
    type Decoder = CsvDecoder<T>;
    const KIND: &'static str = "csv";
    fn decoder(&self) -> CsvDecoder<T> {
        CsvDecoder::new(self.has_headers, self.delimiter)
    }
}

impl<T: DeserializeOwned + 'static> Format for JsonLines<T> {
    type Item = T;
    type Decoder = JsonDecoder<T>;
    const KIND: &'static str = "jsonl";
    fn decoder(&self) -> JsonDecoder<T> {
        JsonDecoder::new()
    }
}

impl<F: Default> Files<F> {
    /// Reads a file, a directory or a glob.
    pub fn new(path: impl AsRef<str>) -> Self {
        Self::paths([path])
    }
    /// Reads several files, directories or globs.
    pub fn paths<I: IntoIterator<Item = S>, S: AsRef<str>>(paths: I) -> Self {
        Files {
            paths: paths.into_iter().map(|p| p.as_ref().to_string()).collect(),
            on_error: OnError::Fail,
            rate: None,
            format: F::default(),
        }
    }
}

impl<F> Files<F> {
    /// Reads several files, directories or globs in the format `format`: a format of the
    /// user's (a [`Format`] whose decoder turns lines into records), or a built-in one configured
    /// beforehand.
    ///
    /// ```
    /// use tidal_connectors::prelude::*;
    /// use tidal_connectors::files::{Decoder, Format, Files};
    /// use tidal_engine::storage::Location;
    /// /// Lines as their lengths.
    /// #[derive(Clone)]
    /// struct Lengths;
    /// struct LengthDecoder;
    /// impl Decoder for LengthDecoder {
    ///     type Item = usize;
    ///     fn open(&mut self, _: &Location, _: u64) -> std::io::Result<()> { Ok(()) }
    ///     fn decode(&mut self, line: &[u8]) -> Result<Option<usize>, String> {
    ///         Ok(Some(line.strip_suffix(b"\n").unwrap_or(line).len()))
    ///     }
    /// }
    /// impl Format for Lengths {
    ///     type Item = usize;
    ///     type Decoder = LengthDecoder;
    ///     const KIND: &'static str = "lengths";
    ///     fn decoder(&self) -> LengthDecoder { LengthDecoder }
    /// }
    /// let dir = tempfile::tempdir().unwrap();
    /// std::fs::write(dir.path().join("a.txt"), "one\nthree\n").unwrap();
    /// let path = dir.path().to_str().unwrap().to_string();
    /// let mut lengths: Vec<usize> = tidal_engine::Job::local(1)
    ///     .run(move |env| env.read(Files::with_format([&path], Lengths)).collect())
    ///     .unwrap();
    /// lengths.sort();
    /// assert_eq!(lengths, vec![3, 5]);
    /// ```
    pub fn with_format<I: IntoIterator<Item = S>, S: AsRef<str>>(paths: I, format: F) -> Self {
        Files {
            paths: paths.into_iter().map(|p| p.as_ref().to_string()).collect(),
            on_error: OnError::Fail,
            rate: None,
            format,
        }
    }
    /// Reads at most `per_second` records per second over the whole job (for demos and tests
    /// that must run for a chosen time).
    pub fn rate(mut self, per_second: f64) -> Self {
        self.rate = Some(per_second);
        self
    }
    /// What to do with a line that does not decode (default: fail the job).
    pub fn on_error(mut self, policy: OnError) -> Self {
        self.on_error = policy;
        self
    }
}

impl<T> Files<Csv<T>> {
    /// Whether the first line of every file is a header (default: yes).
    pub fn has_headers(mut self, yes: bool) -> Self {
        self.format.has_headers = yes;
        self
    }
    /// The field delimiter (default `,`).
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.format.delimiter = delimiter;
        self
    }
}

impl<T> Files<ChangelogCsv<T>> {
    /// Whether the first line of every file is a header, skipped (default: no).
    pub fn has_headers(mut self, yes: bool) -> Self {
        self.format.has_headers = yes;
        self
    }
    /// The field delimiter (default `,`).
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.format.delimiter = delimiter;
        self
    }
}

impl<F: Format> FileSource for Files<F> {
    type Item = F::Item;
    type Reader = FileReader<F::Decoder>;
    fn kind(&self) -> &'static str {
        F::KIND
    }
    fn reader(self, ctx: &Rc<WorkerContext>, name: &str) -> Result<Self::Reader> {
        let decoder = self.format.decoder();
        FileReader::new(&self.paths, decoder, (self.on_error, self.rate), ctx, name)
    }
}

/// One worker's share of a file source.
pub struct FileReader<D: Decoder> {
    splits: VecDeque<(SplitId, Split)>,
    current: Option<(SplitId, SplitLines)>,
    /// Splits opened since the driver last asked.
    opened: Vec<SplitId>,
    /// Splits read to their end since the driver last asked.
    ended: Vec<SplitId>,
    throttle: Option<Throttle>,
    decoder: D,
    dead: DeadLetters,
    ctx: Rc<WorkerContext>,
    name: String,
    /// Bytes of all its ranges when it started (or was restored), for its progress.
    total: u64,
}

impl<D: Decoder> FileReader<D> {
    /// Bytes still to read: the current range's rest and every queued range.
    fn remaining(&self) -> u64 {
        let current = self.current.as_ref().map_or(0, |(_, lines)| {
            let (at, end) = lines.remaining();
            end.saturating_sub(at)
        });
        current
            + self
                .splits
                .iter()
                .map(|(_, s)| s.end - s.start)
                .sum::<u64>()
    }
    fn new(
        paths: &[String],
        decoder: D,
        (on_error, rate): (OnError, Option<f64>),
        ctx: &Rc<WorkerContext>,
        name: &str,
    ) -> Result<Self> {
        let files = resolve_all(paths)?;
        let splits = plan_splits(&files, ctx.peers())?
            .into_iter()
            .enumerate()
            .filter(|(j, _)| j % ctx.peers() == ctx.index())
            .map(|(j, s)| (j as SplitId, s))
            .collect();
        Ok(FileReader {
            splits,
            current: None,
            opened: Vec::new(),
            ended: Vec::new(),
            throttle: rate.map(|r| Throttle::new(r, ctx.peers())),
            decoder,
            dead: DeadLetters::new(on_error, name, ctx.index()),
            ctx: Rc::clone(ctx),
            name: name.to_string(),
            total: 0,
        })
        .map(|mut reader| {
            reader.total = reader.remaining();
            reader
        })
    }
}

impl<D: Decoder> SourceReader for FileReader<D> {
    type Item = D::Item;
    fn read(&mut self, out: &mut Vec<D::Item>, max: usize) -> Poll {
        let before = out.len();
        let allowed = self.throttle_allowed(max);
        let poll = self.read_lines(out, allowed);
        if let Some(t) = self.throttle.as_mut() {
            t.made(out.len() - before);
        }
        match poll {
            Err(wait) => Poll::Pending(wait),
            Ok(poll) => poll,
        }
    }
    fn last_split(&self) -> Option<SplitId> {
        // A read that ended a split returned its records before opening the next one.
        match (&self.current, self.ended.last()) {
            (Some((id, _)), _) => Some(*id),
            (None, last) => last.copied(),
        }
    }
    fn position(&self) -> Option<Vec<u8>> {
        let current = self.current.as_ref().map(|(_, lines)| {
            let (start, end) = lines.remaining();
            FileRange {
                path: lines.path().to_string(),
                start,
                end,
            }
        });
        let queued = self.splits.iter().map(|(_, s)| FileRange {
            path: s.path.to_string(),
            start: s.start,
            end: s.end,
        });
        let ranges: Vec<FileRange> = current.into_iter().chain(queued).collect();
        position::encode(&ranges)
    }
    fn restore(&mut self, positions: &[&[u8]], index: usize, peers: usize) -> Result<()> {
        // The ranges every former instance had still to read, shared out anew.
        let ranges: Vec<FileRange> = position::share(positions, index, peers)?;
        self.current = None;
        self.splits = ranges
            .into_iter()
            .enumerate()
            .map(|(j, r)| {
                let split = Split {
                    path: Location::from(r.path.as_str()),
                    start: r.start,
                    end: r.end,
                };
                (j as SplitId, split)
            })
            .collect();
        self.total = self.remaining();
        Ok(())
    }
    fn progress(&self) -> Option<Progress> {
        Some(Progress {
            done: self.total.saturating_sub(self.remaining()),
            total: self.total,
        })
    }
    fn started_splits(&mut self, started: &mut Vec<SplitId>) {
        started.append(&mut self.opened);
    }
    fn finished_splits(&mut self, finished: &mut Vec<SplitId>) {
        finished.append(&mut self.ended);
    }
    fn finish(&mut self) -> Result<()> {
        if let Some(destination) = self.dead.finish()? {
            self.ctx
                .report_skipped(&self.name, self.dead.count, &destination);
        }
        Ok(())
    }
}

impl<D: Decoder> FileReader<D> {
    /// How many records the throttle allows now, or how long to wait.
    fn throttle_allowed(&mut self, max: usize) -> std::result::Result<usize, std::time::Duration> {
        match self.throttle.as_mut() {
            Some(t) => t.allowed(max),
            None => Ok(max),
        }
    }

    fn read_lines(
        &mut self,
        out: &mut Vec<D::Item>,
        allowed: std::result::Result<usize, std::time::Duration>,
    ) -> std::result::Result<Poll, std::time::Duration> {
        let max = allowed?;
        let mut produced = 0;
        while produced < max {
            if self.current.is_none() {
                let Some((id, split)) = self.splits.pop_front() else {
                    return Ok(Poll::Done);
                };
                let opened = SplitLines::open(&split.path, split.start, split.end)
                    .and_then(|lines| self.decoder.open(&split.path, split.start).map(|_| lines));
                match opened {
                    Ok(lines) => {
                        self.opened.push(id);
                        self.current = Some((id, lines));
                    }
                    Err(e) => {
                        let e = Error::input(format!("cannot read '{}': {e}", split.path));
                        return Ok(Poll::Failed(e));
                    }
                }
            }
            let (id, lines) = self.current.as_mut().expect("opened above");
            match lines.next_line_ref() {
                Ok(Some((index, line))) => match self.decoder.decode(line) {
                    Ok(Some(item)) => {
                        out.push(item);
                        produced += 1;
                    }
                    Ok(None) => {}
                    Err(error) => {
                        let line = line.to_vec();
                        let file = lines.path().to_string();
                        let number = match lines.line_number(index) {
                            Ok(number) => number,
                            Err(e) => {
                                let e = Error::input(format!("cannot read '{file}': {e}"));
                                return Ok(Poll::Failed(e));
                            }
                        };
                        if let Err(e) = self.dead.reject(&file, number, &error, &line) {
                            return Ok(Poll::Failed(e));
                        }
                    }
                },
                Ok(None) => {
                    // One split per read, so that each split has its own watermark generator.
                    self.ended.push(*id);
                    self.current = None;
                    if produced > 0 {
                        return Ok(Poll::Ready);
                    }
                }
                Err(e) => {
                    let e = Error::input(format!("cannot read '{}': {e}", lines.path()));
                    return Ok(Poll::Failed(e));
                }
            }
        }
        Ok(Poll::Ready)
    }
}

/// What a file reader has still to read, in a checkpoint: the lines starting in `[start, end)`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct FileRange {
    path: String,
    start: u64,
    end: u64,
}

/// A byte range of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Split {
    pub(crate) path: Location,
    pub(crate) start: u64,
    pub(crate) end: u64,
}

const MIN_SPLIT: u64 = 1 << 20;
/// Splits are at most this large, so that workers reading a file sorted by event time read
/// neighbouring parts of it: with one half each, the second half's records would wait in the
/// window operators until the first half had been read (a run of W2 on 30 M bids held 385 MB).
const MAX_SPLIT: u64 = 16 << 20;

/// Cuts every file (with its size) into splits of about total / (workers × k) bytes, with the
/// least k that keeps them under [`MAX_SPLIT`] (so that every worker gets as many; k = 1 for one
/// worker), and at least [`MIN_SPLIT`].
pub(crate) fn plan_splits(files: &[(Location, u64)], workers: usize) -> Result<Vec<Split>> {
    let total: u64 = files.iter().map(|f| f.1).sum();
    let workers = workers.max(1) as u64;
    // One worker has no other to keep pace with: one split per file.
    let rounds = if workers == 1 {
        1
    } else {
        total.div_ceil(workers.saturating_mul(MAX_SPLIT)).max(1)
    };
    let target = total
        .div_ceil(workers.saturating_mul(rounds))
        .max(MIN_SPLIT);
    let mut splits = Vec::new();
    for (f, size) in files {
        let size = *size;
        if size == 0 {
            continue;
        }
        let pieces = size.div_ceil(target);
        let piece = size.div_ceil(pieces);
        let mut start = 0;
        while start < size {
            let end = (start + piece).min(size);
            splits.push(Split {
                path: f.clone(),
                start,
                end,
            });
            start = end;
        }
    }
    Ok(splits)
}

/// Resolves files, directories and globs — local, or `s3://bucket/key` objects, prefixes and
/// patterns — into a sorted, de-duplicated list of files with their sizes.
pub(crate) fn resolve_all(paths: &[String]) -> Result<Vec<(Location, u64)>> {
    if paths.is_empty() {
        return Err(Error::config("a file source was given no input path"));
    }
    let mut files = Vec::new();
    for p in paths {
        resolve(p, &mut files)?;
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn resolve(pattern: &str, files: &mut Vec<(Location, u64)>) -> Result<()> {
    let list = |at: &Location| {
        storage::list_files(at).map_err(|e| Error::input(format!("cannot list '{at}': {e}")))
    };
    let globbed = pattern.contains(['*', '?', '[']);
    if !globbed {
        let found = list(&Location::parse(pattern)?)?;
        if found.is_empty() {
            return Err(Error::input(format!(
                "input path '{pattern}' does not exist (or holds no file)"
            )));
        }
        files.extend(found);
        return Ok(());
    }
    let matcher = glob::Pattern::new(pattern)
        .map_err(|e| Error::config(format!("input pattern '{pattern}': {e}")))?;
    let before = files.len();
    if pattern.starts_with("s3://") {
        // List below the pattern's literal prefix, keep the keys that match it (or lie in a
        // "directory" that does).
        let literal = &pattern[..pattern.find(['*', '?', '[']).expect("globbed")];
        let prefix = literal.rsplit_once('/').map_or(literal, |(p, _)| p);
        for (at, size) in list(&Location::parse(prefix)?)? {
            let text = at.to_string();
            let matches = matcher.matches(&text)
                || text
                    .match_indices('/')
                    .any(|(i, _)| matcher.matches(&text[..i]));
            if matches {
                files.push((at, size));
            }
        }
    } else {
        let entries = glob::glob(pattern)
            .map_err(|e| Error::config(format!("input pattern '{pattern}': {e}")))?;
        for entry in entries {
            let p = entry.map_err(|e| Error::input(format!("input pattern '{pattern}': {e}")))?;
            files.extend(list(&Location::from(p))?);
        }
    }
    if files.len() == before {
        return Err(Error::input(format!(
            "input pattern '{pattern}' matches no file"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Large inputs are cut into splits of at most 16 MiB, as many for every worker, covering
    /// every byte once; one worker reads each file as one split.
    #[test]
    fn split_plans_are_bounded_and_even() {
        let files = vec![
            (Location::from(std::path::Path::new("a")), 100 << 20),
            (Location::from(std::path::Path::new("b")), 3 << 20),
        ];
        for workers in [1usize, 2, 3, 8] {
            let splits = plan_splits(&files, workers).unwrap();
            let bytes: u64 = splits.iter().map(|s| s.end - s.start).sum();
            assert_eq!(bytes, 103 << 20, "{workers} workers");
            if workers == 1 {
                assert_eq!(splits.len(), 2);
                continue;
            }
            assert!(
                splits.iter().all(|s| s.end - s.start <= MAX_SPLIT),
                "{workers}"
            );
            let per_worker = |w: usize| (w..splits.len()).step_by(workers).count();
            let (most, least) = (per_worker(0), per_worker(workers - 1));
            assert!(
                most - least <= 1,
                "{workers} workers: {most} and {least} splits"
            );
        }
    }

    /// Every line is owned by exactly one split, whatever the split size.
    #[test]
    fn splits_cover_every_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.txt");
        let mut f = std::fs::File::create(&path).unwrap();
        let mut expected = Vec::new();
        for i in 0..5000 {
            let line = "x".repeat(i % 37) + &i.to_string();
            writeln!(f, "{line}").unwrap();
            expected.push((i as u64 + 1, line));
        }
        write!(f, "last-without-newline").unwrap();
        expected.push((5001, "last-without-newline".into()));
        drop(f);
        let size = std::fs::metadata(&path).unwrap().len();
        for piece in [1u64, 7, 100, 4096, size] {
            let mut got = Vec::new();
            let mut start = 0;
            while start < size {
                let end = (start + piece).min(size);
                let mut lines = SplitLines::open(&Location::from(&path), start, end).unwrap();
                let mut buf = Vec::new();
                while let Some(index) = lines.next_line(&mut buf).unwrap() {
                    let n = lines.line_number(index).unwrap();
                    let text = String::from_utf8(buf.clone()).unwrap();
                    got.push((n, text.trim_end_matches('\n').to_string()));
                    buf.clear();
                }
                start = end;
            }
            assert_eq!(got, expected, "piece size {piece}");
        }
    }

    #[test]
    fn missing_paths_are_named() {
        let err = resolve_all(&["/no/such/file.txt".into()]).unwrap_err();
        assert!(err.to_string().contains("/no/such/file.txt"), "{err}");
        let err = resolve_all(&["/no/such/*.txt".into()]).unwrap_err();
        assert!(err.to_string().contains("matches no file"), "{err}");
    }
}
