//! Sinks: stdout, part files, and records returned to the caller.

use std::fmt::Display;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tidal_engine::{Collected, DataStream, Error, Time, fail, timely};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;

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
    /// Each worker writes `part-WWWWW-of-NNNNN.txt` (its index and the number of workers), first as
    /// a hidden `.inprogress` file, renamed when the input ends; part files of an earlier run with
    /// another number of workers are removed then, so the union of the part files is the result.
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
    fn write_text(self, dir: impl AsRef<Path>)
    where
        T: Display;

    /// Writes every record as a CSV line (serde) into part files `part-WWWWW-of-NNNNN.csv` in `dir`
    /// (see [`write_text`](Sinks::write_text)). Structs get a header line in each part; tuples and
    /// plain values do not.
    ///
    /// ```
    /// use tidal_connectors::prelude::*;
    /// #[derive(serde::Serialize, serde::Deserialize, Clone)]
    /// struct Tip { driver: u32, tip: f32 }
    /// let dir = tempfile::tempdir().unwrap();
    /// let out = dir.path().to_path_buf();
    /// tidal_engine::Job::local(1).run(move |env| env.from_iter(vec![Tip { driver: 7, tip: 1.5 }]).write_csv(&out)).unwrap();
    /// let text = std::fs::read_to_string(dir.path().join("part-00000-of-00001.csv")).unwrap();
    /// assert_eq!(text, "driver,tip\n7,1.5\n");
    /// ```
    fn write_csv(self, dir: impl AsRef<Path>)
    where
        T: Serialize;

    /// Writes every record as a JSON line (serde) into part files `part-WWWWW-of-NNNNN.jsonl` in
    /// `dir` (see [`write_text`](Sinks::write_text)).
    ///
    /// ```
    /// use tidal_connectors::prelude::*;
    /// let dir = tempfile::tempdir().unwrap();
    /// let out = dir.path().to_path_buf();
    /// tidal_engine::Job::local(1).run(move |env| env.from_iter(vec![(1u8, "a".to_string())]).write_jsonl(&out)).unwrap();
    /// let text = std::fs::read_to_string(dir.path().join("part-00000-of-00001.jsonl")).unwrap();
    /// assert_eq!(text, "[1,\"a\"]\n");
    /// ```
    fn write_jsonl(self, dir: impl AsRef<Path>)
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
                    fail(Error::external(format!("writing to stdout: {e}")));
                }
            },
        );
    }

    fn write_text(self, dir: impl AsRef<Path>)
    where
        T: Display,
    {
        part_file_sink(self, dir.as_ref(), "txt", |buf, r: &T| {
            writeln!(buf, "{r}").map_err(|e| e.to_string())
        });
    }

    fn write_csv(self, dir: impl AsRef<Path>)
    where
        T: Serialize,
    {
        // One csv writer per part; it writes the header before the first struct record.
        let shared = SharedBuffer::default();
        let mut cw = csv::WriterBuilder::new().from_writer(shared.clone());
        part_file_sink(self, dir.as_ref(), "csv", move |buf, r: &T| {
            cw.serialize(r).map_err(|e| e.to_string())?;
            cw.flush().map_err(|e| e.to_string())?;
            buf.append(&mut shared.0.borrow_mut());
            Ok(())
        });
    }

    fn write_jsonl(self, dir: impl AsRef<Path>)
    where
        T: Serialize,
    {
        part_file_sink(self, dir.as_ref(), "jsonl", |buf, r: &T| {
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

/// A part file being written by one worker.
struct PartFile {
    dir: PathBuf,
    temp: PathBuf,
    done: PathBuf,
    writer: Option<BufWriter<File>>,
    ext: &'static str,
    index: usize,
    peers: usize,
}

impl PartFile {
    fn create(dir: &Path, ext: &'static str, index: usize, peers: usize) -> PartFile {
        let base = format!("part-{index:05}-of-{peers:05}.{ext}");
        let temp = dir.join(format!(".{base}.inprogress"));
        let done = dir.join(&base);
        let file = std::fs::create_dir_all(dir)
            .and_then(|_| File::create(&temp))
            .unwrap_or_else(|e| {
                fail(Error::external(format!(
                    "cannot create output file '{}': {e}",
                    temp.display()
                )))
            });
        PartFile {
            dir: dir.to_path_buf(),
            temp,
            done,
            writer: Some(BufWriter::with_capacity(1 << 16, file)),
            ext,
            index,
            peers,
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        if let Some(w) = self.writer.as_mut()
            && let Err(e) = w.write_all(bytes)
        {
            fail(Error::external(format!(
                "writing '{}': {e}",
                self.temp.display()
            )));
        }
    }

    /// Flushes, syncs and renames the part to its final name; worker 0 then removes parts of
    /// earlier runs with another number of workers.
    fn commit(&mut self) {
        let Some(mut w) = self.writer.take() else {
            return;
        };
        let synced = w
            .flush()
            .and_then(|_| w.get_ref().sync_all())
            .and_then(|_| std::fs::rename(&self.temp, &self.done));
        if let Err(e) = synced {
            fail(Error::external(format!(
                "finishing '{}': {e}",
                self.done.display()
            )));
        }
        if self.index == 0 {
            let ours = format!("-of-{:05}.{}", self.peers, self.ext);
            if let Ok(entries) = std::fs::read_dir(&self.dir) {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().to_string();
                    let stale = name.starts_with("part-")
                        && name.ends_with(&format!(".{}", self.ext))
                        && !name.ends_with(&ours);
                    if stale {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            }
        }
    }
}

/// Each worker encodes its records into a buffer and writes its own part file, committed when the
/// input ends (the frontier is empty).
fn part_file_sink<'s, T: 'static>(
    stream: DataStream<'s, T>,
    dir: &Path,
    ext: &'static str,
    mut encode: impl FnMut(&mut Vec<u8>, &T) -> Result<(), String> + 'static,
) {
    let name = stream.default_name(&format!("write_{ext}"));
    let ctx = stream.context().clone();
    let mut part = PartFile::create(dir, ext, ctx.index(), ctx.peers());
    let mut buffer = Vec::with_capacity(1 << 16);
    stream
        .into_inner()
        .sink(Pipeline, &name, move |(input, frontier)| {
            input.for_each(|_, data| {
                for (record, _) in data.drain(..) {
                    if let Err(e) = encode(&mut buffer, &record) {
                        fail(Error::input(format!(
                            "cannot encode a record for '{}': {e}",
                            part.temp.display()
                        )));
                    }
                    if buffer.len() >= 1 << 16 {
                        part.write(&buffer);
                        buffer.clear();
                    }
                }
            });
            if frontier.is_empty() {
                part.write(&buffer);
                buffer.clear();
                part.commit();
            }
        });
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
