//! Sinks: stdout, part files, and records returned to the caller.

use std::fmt::Display;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use serde::Serialize;
use tidal_engine::{
    Collected, DataStream, Error, RegisteredState, Time, TimeBuffer, fail, key_hash, timely,
    worker_for, write_snapshot,
};
use timely::container::CapacityContainerBuilder;
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
    /// a hidden `.inprogress` file, renamed when the input ends; part files of an earlier run are
    /// removed when the job starts, so the union of the part files is the result.
    ///
    /// With checkpoints the part files are exactly-once: a checkpoint records each part's length at
    /// its cut; a job restored from it keeps the parts of earlier runs up to those lengths, removes
    /// what was written after the cut, and writes its own parts
    /// (`part-rKKKKKKKKK-WWWWW-of-NNNNN.txt`, K the checkpoint restored).
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

/// The part file one worker is writing: hidden while in progress, renamed when the input ends.
struct PartFile {
    temp: PathBuf,
    done: PathBuf,
    writer: Option<BufWriter<File>>,
    /// Bytes handed to the writer so far.
    written: u64,
    /// Per time written since the last checkpoint, the length before its records: the length
    /// at a cut is the length before the first time at or after it (records go out in time
    /// order), for a checkpoint whose cut this sink has passed.
    lengths: std::collections::VecDeque<(Time, u64)>,
    /// Whether the job checkpoints (the lengths are kept only then).
    checkpointing: bool,
}

/// The name of worker `index`'s part file among `peers`: `part-WWWWW-of-NNNNN.EXT` for a fresh
/// run, `part-rKKKKKKKKK-WWWWW-of-NNNNN.EXT` for a run restored from checkpoint K (so that the
/// parts of each run have their own names).
fn part_name(run: Option<u64>, index: usize, peers: usize, ext: &str) -> String {
    match run {
        None => format!("part-{index:05}-of-{peers:05}.{ext}"),
        Some(k) => format!("part-r{k:09}-{index:05}-of-{peers:05}.{ext}"),
    }
}

/// The hidden name of a part file while it is written.
fn in_progress_name(visible: &str) -> String {
    format!(".{visible}.inprogress")
}

impl PartFile {
    fn create(dir: &Path, visible: &str) -> PartFile {
        // Absolute paths: checkpoints name the parts, and a restored job may run elsewhere.
        let dir = std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::canonicalize(dir))
            .unwrap_or_else(|_| dir.to_path_buf());
        let temp = dir.join(in_progress_name(visible));
        let done = dir.join(visible);
        let file = std::fs::create_dir_all(&dir)
            .and_then(|_| File::create(&temp))
            .unwrap_or_else(|e| {
                fail(Error::external(format!(
                    "cannot create output file '{}': {e}",
                    temp.display()
                )))
            });
        PartFile {
            temp,
            done,
            writer: Some(BufWriter::with_capacity(1 << 16, file)),
            written: 0,
            lengths: std::collections::VecDeque::new(),
            checkpointing: false,
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        if let Some(w) = self.writer.as_mut() {
            if let Err(e) = w.write_all(bytes) {
                fail(Error::external(format!(
                    "writing '{}': {e}",
                    self.temp.display()
                )));
            }
            self.written += bytes.len() as u64;
        }
    }

    /// Hands what was written to the file.
    fn flush(&mut self) {
        if let Some(w) = self.writer.as_mut()
            && let Err(e) = w.flush()
        {
            fail(Error::external(format!(
                "writing '{}': {e}",
                self.temp.display()
            )));
        }
    }

    /// Writes the records of time `time`.
    fn write_at(&mut self, time: Time, bytes: &[u8]) {
        if !bytes.is_empty() {
            if self.checkpointing {
                self.lengths.push_back((time, self.written));
            }
            self.write(bytes);
        }
    }

    /// Flushes and syncs what was written, for the checkpoint with cut `cut`; returns the length
    /// of the records below the cut, and forgets what no later cut needs.
    fn sync(&mut self, cut: Time) -> std::io::Result<u64> {
        if let Some(w) = self.writer.as_mut() {
            w.flush()?;
            w.get_ref().sync_data()?;
        }
        let len = self
            .lengths
            .iter()
            .find(|(t, _)| *t >= cut)
            .map_or(self.written, |(_, len)| *len);
        while self.lengths.front().is_some_and(|(t, _)| *t < cut) {
            self.lengths.pop_front();
        }
        Ok(len)
    }

    /// Flushes, syncs and renames the part to its visible name.
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
    }
}

/// What a part-file sink keeps for checkpoints: the path and length of every part that belongs to
/// the output as of the cut — this worker's part in progress, and the parts of earlier
/// runs it committed when the job was restored. Entries are keyed by file name, so on restore
/// each part is truncated to its length and made visible by exactly one worker; and the parts of
/// failed runs after the cut, which hold records that will be written again, are removed.
struct SinkState {
    name: String,
    dir: PathBuf,
    ext: &'static str,
    part: Rc<RefCell<PartFile>>,
    /// Parts of earlier runs this worker made visible (paths), with their lengths.
    committed: BTreeMap<String, u64>,
    /// Whether `restore` ran (a restored job whose checkpoint holds this sink).
    restored: Rc<Cell<bool>>,
    /// The checkpoint this run was restored from (it names the run's parts).
    run: Option<u64>,
}

impl RegisteredState for SinkState {
    fn name(&self) -> &str {
        &self.name
    }
    fn keys(&self) -> usize {
        self.committed.len() + 1
    }
    fn snapshot_into(&self, cut: Time, out: &mut Vec<u8>) -> tidal_engine::Result<()> {
        let mut part = self.part.borrow_mut();
        let len = part.sync(cut).map_err(|e| {
            Error::external(format!(
                "syncing '{}' for a checkpoint: {e}",
                part.temp.display()
            ))
        })?;
        let current = part.done.to_string_lossy().into_owned();
        let entries: Vec<(String, u64)> = self
            .committed
            .iter()
            .map(|(n, l)| (n.clone(), *l))
            .chain(std::iter::once((current, len)))
            .collect();
        write_snapshot(
            &self.name,
            entries.len(),
            entries.iter().map(|(n, l)| (n, l)),
            out,
        )
    }
    fn restore(
        &mut self,
        sections: &[&[u8]],
        index: usize,
        peers: usize,
    ) -> tidal_engine::Result<usize> {
        // Every part of every worker: worker 0 needs them all to tell which files to remove.
        let all: BTreeMap<String, u64> =
            tidal_engine::state::read_sections::<String, u64>(&self.name, sections)?
                .into_iter()
                .collect();
        self.restored.set(true);
        if index == 0 {
            let current = run_parts(self.run, peers, self.ext);
            remove_other_parts(&self.dir, self.ext, &all, &current);
        }
        for (visible, len) in all {
            if worker_for(key_hash(&visible), peers) != index {
                continue;
            }
            commit_restored_part(Path::new(&visible), len)?;
            self.committed.insert(visible, len);
        }
        Ok(self.committed.len())
    }
}

/// Removes the part files (of this sink's kind) in `dir` whose paths are not in `keep`: an
/// earlier output, or the parts of runs after the cut — visible ones, and hidden in-progress ones
/// left by runs that failed, except those of the run now starting (`current`: its parts' names).
fn remove_other_parts(
    dir: &Path,
    ext: &str,
    keep: &BTreeMap<String, u64>,
    current: &std::collections::BTreeSet<String>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let suffix = format!(".{ext}");
    // Compared as canonical paths: the restored job may spell the directory another way.
    let keep: std::collections::BTreeSet<PathBuf> =
        keep.keys().map(|k| canonical(Path::new(k))).collect();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let visible = match name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".inprogress"))
        {
            Some(hidden) => hidden.to_string(),
            None => name.clone(),
        };
        if !visible.starts_with("part-") || !visible.ends_with(&suffix) {
            continue;
        }
        let kept = keep.contains(&canonical(&dir.join(&visible)));
        if !kept && !current.contains(&visible) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// `path` with its directory made canonical (the file itself may not exist).
fn canonical(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
        .map(|d| d.join(name))
        .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

/// The names of the parts a run writes: `peers` workers, restored from checkpoint `run`.
fn run_parts(run: Option<u64>, peers: usize, ext: &str) -> std::collections::BTreeSet<String> {
    (0..peers).map(|w| part_name(run, w, peers, ext)).collect()
}

/// Makes a part of an earlier run visible with the length it had at the cut (its records after
/// the cut will be written again by the restored run). A part that is gone is an error unless it
/// was empty at the cut: its records would be lost.
fn commit_restored_part(done: &Path, len: u64) -> tidal_engine::Result<()> {
    let name = done
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = done.with_file_name(in_progress_name(&name));
    let path = if temp.exists() {
        temp.clone()
    } else if done.exists() || len > 0 {
        done.to_path_buf()
    } else {
        return Ok(());
    };
    let truncated = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| {
            let size = f.metadata()?.len();
            if size < len {
                return Err(std::io::Error::other(format!(
                    "it has {size} bytes, the checkpoint says {len}"
                )));
            }
            if size > len {
                eprintln!(
                    "tidal: output part {} cut from {size} to {len} bytes (what followed the checkpoint is written again)",
                    path.display()
                );
            }
            f.set_len(len)?;
            f.sync_all()
        })
        .and_then(|_| {
            if path == temp {
                std::fs::rename(&temp, done)
            } else {
                Ok(())
            }
        });
    truncated.map_err(|e| {
        Error::external(format!(
            "cannot restore output part '{}' written before the checkpoint: {e}",
            path.display()
        ))
    })
}

/// Each worker encodes its records in time order as the frontier passes and writes its own part
/// file, made visible when the input ends. With checkpoints the sink is exactly-once: a checkpoint
/// records every part's length at the cut, and a restored run truncates the parts to it (see
/// [`SinkState`]).
fn part_file_sink<'s, T: 'static>(
    stream: DataStream<'s, T>,
    dir: &Path,
    ext: &'static str,
    mut encode: impl FnMut(&mut Vec<u8>, &T) -> Result<(), String> + 'static,
) {
    let ctx = stream.context().clone();
    let dir = dir.to_path_buf();
    let _ = stream.then(&format!("write_{ext}"), move |input, name| {
        let run = ctx.restored_checkpoint();
        let visible = part_name(run, ctx.index(), ctx.peers(), ext);
        let mut file = PartFile::create(&dir, &visible);
        file.checkpointing = ctx.checkpointing();
        let part = Rc::new(RefCell::new(file));
        let restored = Rc::new(Cell::new(false));
        ctx.register_state(Rc::new(RefCell::new(SinkState {
            name: name.to_string(),
            dir: dir.clone(),
            ext,
            part: Rc::clone(&part),
            committed: BTreeMap::new(),
            restored: Rc::clone(&restored),
            run,
        })));
        let (index, peers) = (ctx.index(), ctx.peers());
        let mut started = false;
        input.unary_frontier::<CapacityContainerBuilder<Vec<((), Time)>>, _, _, _>(
            Pipeline,
            name,
            move |_, _| {
                let mut pending: TimeBuffer<Vec<u8>> = TimeBuffer::new();
                let mut failed = None;
                move |(input, frontier), _output| {
                    if !started {
                        started = true;
                        // A fresh run (or one whose checkpoint has no state of this sink) starts
                        // the output anew: worker 0 removes earlier parts.
                        if index == 0 && !restored.get() {
                            let current = run_parts(run, peers, ext);
                            remove_other_parts(&dir, ext, &BTreeMap::new(), &current);
                        }
                    }
                    input.for_each(|message, data| {
                        let Some((_, bytes)) = pending.at(&message, 0) else {
                            return;
                        };
                        for (record, _) in data.drain(..) {
                            if let Err(e) = encode(bytes, &record) {
                                failed.get_or_insert(e);
                            }
                        }
                    });
                    if let Some(e) = failed.take() {
                        fail(Error::input(format!(
                            "cannot encode a record for '{}': {e}",
                            part.borrow().temp.display()
                        )));
                    }
                    let mut part = part.borrow_mut();
                    let before = part.written;
                    pending
                        .for_each_ready(frontier, |cap, bytes| part.write_at(*cap.time(), bytes));
                    if frontier.is_empty() {
                        part.commit();
                    } else if part.written != before {
                        // Results reach the file as the frontier passes (not only when the
                        // buffer fills), so that the output can be followed while the job runs.
                        part.flush();
                    }
                }
            },
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restored_parts_are_cut_to_their_checkpointed_length_and_made_visible() {
        let dir = tempfile::tempdir().unwrap();
        // A part still in progress when its run died, with records after the cut.
        let visible = dir.path().join("part-00000-of-00002.txt");
        let hidden = dir.path().join(in_progress_name("part-00000-of-00002.txt"));
        std::fs::write(&hidden, "before\nafter the cut\n").unwrap();
        commit_restored_part(&visible, 7).unwrap();
        assert_eq!(std::fs::read_to_string(&visible).unwrap(), "before\n");
        assert!(!hidden.exists());
        // Already visible (its run ended on that worker): cut as well; again: unchanged.
        std::fs::write(&visible, "before\nmore\n").unwrap();
        commit_restored_part(&visible, 7).unwrap();
        commit_restored_part(&visible, 7).unwrap();
        assert_eq!(std::fs::read_to_string(&visible).unwrap(), "before\n");
        // Gone although it held records at the cut: an error naming it; empty at the cut: fine.
        let gone = dir.path().join("part-00001-of-00002.txt");
        let err = commit_restored_part(&gone, 5).unwrap_err().to_string();
        assert!(err.contains("part-00001-of-00002.txt"), "{err}");
        commit_restored_part(&gone, 0).unwrap();
    }

    #[test]
    fn other_visible_parts_are_removed_and_listed_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let keep = dir.path().join("part-00000-of-00001.txt");
        let stale = dir.path().join("part-r000000003-00000-of-00002.txt");
        let other_kind = dir.path().join("part-00000-of-00001.csv");
        for f in [&keep, &stale, &other_kind] {
            std::fs::write(f, "x\n").unwrap();
        }
        // Listed with the directory spelled another way (as a restored job may give it).
        let other_spelling = dir.path().join(".").join("part-00000-of-00001.txt");
        let listed = BTreeMap::from([(other_spelling.to_string_lossy().into_owned(), 2)]);
        let failed_run = dir
            .path()
            .join(".part-r000000002-00001-of-00002.txt.inprogress");
        let this_run = dir
            .path()
            .join(".part-r000000004-00001-of-00002.txt.inprogress");
        std::fs::write(&failed_run, "x\n").unwrap();
        std::fs::write(&this_run, "").unwrap();
        remove_other_parts(dir.path(), "txt", &listed, &run_parts(Some(4), 2, "txt"));
        assert!(keep.exists() && !stale.exists() && other_kind.exists());
        assert!(!failed_run.exists() && this_run.exists());
    }
}
