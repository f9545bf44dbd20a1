//! Sinks: stdout, part files, and records returned to the caller.

mod changes;
pub mod parts;

use std::fmt::Display;
use std::io::Write;

use serde::Serialize;
use tidal_engine::storage::Location;
use tidal_engine::{Collected, DataStream, Error, Time, timely};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

pub use changes::ChangelogSinks;
use parts::part_file_sink;

/// Sinks on a [`DataStream`].
pub trait Sinks<'s, T> {
    /// Prints every record on its own line (`Display`) to the stdout of process 0; records are
    /// gathered on worker 0 first, so lines of different workers never interleave.
    ///
    /// ```
    /// use tidal_connectors::prelude::*;
    /// tidal_engine::Job::local(2).run(|env| env.from_iter(["hello".to_string()]).print()).unwrap();
    /// ```
    fn print(self)
    where
        T: Display + timely::ExchangeData;

    /// Writes every record as a line of text (`Display`) into part files in `dir`.
    ///
    /// `dir` is a local directory or an `s3://bucket/prefix`. Each worker writes part files
    /// `part-RUN-WWWWW-SSSSSS.txt` (the run's id, the worker, a sequence number), hidden (`.NAME`)
    /// until they are committed: without checkpoints when the input ends, with checkpoints when the
    /// checkpoint whose cut ends the part completes. Parts of earlier runs are removed when the
    /// job starts, so the union of the visible part files is the result. With checkpoints the
    /// output is exactly-once across failures and restores: a restored job commits what its
    /// checkpoint left pending and removes parts written after its cut (see
    /// [`parts`] for the stages of a part and the argument). One directory
    /// holds the output of one sink.
    ///
    /// ```
    /// use tidal_connectors::prelude::*;
    /// let dir = tempfile::tempdir().unwrap();
    /// let out = dir.path().to_path_buf();
    /// tidal_engine::Job::local(2).run(move |env| env.from_iter(0..4).write_text(&out)).unwrap();
    /// let mut lines: Vec<String> = std::fs::read_dir(dir.path()).unwrap()
    ///     .flat_map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap().lines().map(String::from).collect::<Vec<_>>())
    ///     .collect();
    /// lines.sort();
    /// assert_eq!(lines, vec!["0", "1", "2", "3"]);
    /// ```
    fn write_text(self, dir: impl Into<Location>)
    where
        T: Display;

    /// Writes every record as a line of text that `encode` appends to the part's buffer (the
    /// sink ends the line) into part files `part-RUN-WWWWW-SSSSSS.txt` in `dir` (see
    /// [`write_text`](Sinks::write_text)): for lines that depend on more than the record (a
    /// table's column types, say), or are written without making a string per record. An error
    /// from `encode` fails the job with its message.
    ///
    /// ```
    /// use tidal_connectors::prelude::*;
    /// let dir = tempfile::tempdir().unwrap();
    /// let out = dir.path().to_path_buf();
    /// tidal_engine::Job::local(1)
    ///     .run(move |env| {
    ///         env.from_iter(vec![(1u8, 2u8)]).write_lines(&out, |buf, (a, b)| {
    ///             buf.extend_from_slice(format!("{a}+{b}").as_bytes());
    ///             Ok(())
    ///         })
    ///     })
    ///     .unwrap();
    /// let part = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
    /// assert_eq!(std::fs::read_to_string(part).unwrap(), "1+2\n");
    /// ```
    fn write_lines(
        self,
        dir: impl Into<Location>,
        encode: impl FnMut(&mut Vec<u8>, &T) -> Result<(), String> + 'static,
    );

    /// Writes every record as a CSV line (serde) into part files `part-RUN-WWWWW-SSSSSS.csv` in
    /// `dir` (see [`write_text`](Sinks::write_text)). Structs get a header line in each part;
    /// tuples and plain values do not.
    ///
    /// ```
    /// use tidal_connectors::prelude::*;
    /// #[derive(serde::Serialize, serde::Deserialize, Clone)]
    /// struct Tip { driver: u32, tip: f32 }
    /// let dir = tempfile::tempdir().unwrap();
    /// let out = dir.path().to_path_buf();
    /// tidal_engine::Job::local(1).run(move |env| env.from_iter(vec![Tip { driver: 7, tip: 1.5 }]).write_csv(&out)).unwrap();
    /// let part = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
    /// assert!(part.file_name().unwrap().to_str().unwrap().ends_with("-00000-000000.csv"));
    /// assert_eq!(std::fs::read_to_string(part).unwrap(), "driver,tip\n7,1.5\n");
    /// ```
    fn write_csv(self, dir: impl Into<Location>)
    where
        T: Serialize;

    /// Writes every record as a JSON line (serde) into part files `part-RUN-WWWWW-SSSSSS.jsonl`
    /// in `dir` (see [`write_text`](Sinks::write_text)).
    ///
    /// ```
    /// use tidal_connectors::prelude::*;
    /// let dir = tempfile::tempdir().unwrap();
    /// let out = dir.path().to_path_buf();
    /// tidal_engine::Job::local(1).run(move |env| env.from_iter(vec![(1u8, "a".to_string())]).write_jsonl(&out)).unwrap();
    /// let part = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
    /// assert_eq!(std::fs::read_to_string(part).unwrap(), "[1,\"a\"]\n");
    /// ```
    fn write_jsonl(self, dir: impl Into<Location>)
    where
        T: Serialize;

    /// Hands every record back to the caller: [`Job::run`](tidal_engine::Job::run) returns them as
    /// a `Vec` on process 0 (records are gathered on worker 0; other processes get an empty `Vec`).
    ///
    /// ```
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<u8> = tidal_engine::Job::local(2).run(|env| env.from_iter([1u8]).collect()).unwrap();
    /// assert_eq!(out, vec![1]);
    /// ```
    fn collect(self) -> Collected<T>
    where
        T: timely::ExchangeData;
}

impl<'s, T: 'static> Sinks<'s, T> for DataStream<'s, T> {
    fn print(self)
    where
        T: Display + timely::ExchangeData,
    {
        let name = self.default_name("print");
        let ctx = std::rc::Rc::clone(self.context());
        self.into_inner().sink(
            Exchange::new(|_: &(T, Time)| 0),
            &name,
            move |(input, _)| {
                let stdout = std::io::stdout();
                let mut out = stdout.lock();
                let mut result = Ok(());
                input.for_each(|_, data| {
                    for (record, _) in data.drain(..) {
                        if result.is_ok() {
                            result = writeln!(out, "{record}");
                        }
                    }
                });
                if let Err(e) = result.and_then(|_| out.flush())
                    && e.kind() != std::io::ErrorKind::BrokenPipe
                {
                    ctx.fail(Error::external(format!("writing to stdout: {e}")));
                }
            },
        );
    }

    fn write_text(self, dir: impl Into<Location>)
    where
        T: Display,
    {
        part_file_sink(self, dir.into(), "txt", |buf, r: &T| {
            writeln!(buf, "{r}").map_err(|e| e.to_string())
        });
    }

    fn write_lines(
        self,
        dir: impl Into<Location>,
        mut encode: impl FnMut(&mut Vec<u8>, &T) -> Result<(), String> + 'static,
    ) {
        part_file_sink(self, dir.into(), "txt", move |buf, r: &T| {
            encode(buf, r)?;
            buf.push(b'\n');
            Ok(())
        });
    }

    fn write_csv(self, dir: impl Into<Location>)
    where
        T: Serialize,
    {
        // One csv writer per part; it writes the header before the first struct record.
        let shared = SharedBuffer::default();
        let mut cw = csv::WriterBuilder::new().from_writer(shared.clone());
        part_file_sink(self, dir.into(), "csv", move |buf, r: &T| {
            cw.serialize(r).map_err(|e| e.to_string())?;
            cw.flush().map_err(|e| e.to_string())?;
            buf.append(&mut shared.0.borrow_mut());
            Ok(())
        });
    }

    fn write_jsonl(self, dir: impl Into<Location>)
    where
        T: Serialize,
    {
        part_file_sink(self, dir.into(), "jsonl", |buf, r: &T| {
            serde_json::to_writer(&mut *buf, r).map_err(|e| e.to_string())?;
            buf.push(b'\n');
            Ok(())
        });
    }

    fn collect(self) -> Collected<T>
    where
        T: timely::ExchangeData,
    {
        let name = self.default_name("collect");
        let collected = Collected::new();
        let sink = collected.clone();
        self.into_inner().sink(
            Exchange::new(|_: &(T, Time)| 0),
            &name,
            move |(input, _)| {
                input.for_each(|_, data| sink.extend(data.drain(..).map(|(record, _)| record)));
            },
        );
        collected
    }
}

/// A byte buffer shared between a csv writer and the part file it feeds.
#[derive(Clone, Default)]
struct SharedBuffer(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
