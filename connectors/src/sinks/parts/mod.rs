//! Part files: the exactly-once file sinks behind `write_text`, `write_csv` and `write_jsonl`, on
//! a local directory or an `s3://` prefix.
//!
//! # Stages of a part
//!
//! Every worker writes its records, in time order, into a part in progress. A part goes through
//! three stages:
//!
//! | stage | on disk | on S3 |
//! |---|---|---|
//! | in progress | hidden file `.NAME.inprogress` in the directory | a local temporary file |
//! | pending | hidden file `.NAME.pending` | an upload in pieces, not completed (invisible) |
//! | committed | `NAME` | the object `NAME` |
//!
//! with `NAME` = `part-RUN-WWWWW-SSSSSS.EXT`: the run's id (16 hex digits, new each time the job
//! starts, see [`WorkerContext::run_id`](tidal_engine::WorkerContext::run_id)), the worker and the
//! part's sequence number. Only committed parts are visible; readers of the directory (and Tidal's
//! own file sources) pass over names starting with `.`.
//!
//! Without checkpoints a worker writes one part, committed when its input ends.
//!
//! With checkpoints, the snapshot for a checkpoint seals the part in progress at the checkpoint's
//! cut: what was written below the cut becomes a pending part (made durable: synced, or uploaded
//! in pieces), what the sink wrote at or after the cut starts the next part. The snapshot holds
//! the pending parts and the *lineage*: for each (run, worker) whose parts belong to the output,
//! the last part that does. When the checkpoint completes, every worker commits its pending parts
//! (renames them; completes the uploads). When the input ends, a worker commits what is pending
//! and the rest of its output.
//!
//! A job restored from a checkpoint first commits the pending parts the checkpoint lists (the
//! notice of its completion may never have arrived), then removes from the directory every part
//! that is not in the lineage: parts of runs that failed after the cut, committed or not, whose
//! records the restored run writes again. So the committed parts of a directory are always the
//! output as of a complete checkpoint, plus parts of the run in progress; after a successful run
//! they are the whole output, each record once.
//!
//! A failure while a part is sealed on S3 (the server cannot be reached) fails that checkpoint;
//! the part stays in progress and the next checkpoint seals it. A commit that fails on S3 is
//! tried again after the next checkpoint. Errors of the local disk fail the job (the restart
//! strategy restarts it from the last checkpoint).
//!
//! One directory holds the parts of one sink: a sink removes other parts of its kind there.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

mod writer;

use serde::{Deserialize, Serialize};
use tidal_engine::state::TimeBuffer;
use tidal_engine::state::{EntryWriter, KeyedStore, Owner};
use tidal_engine::storage::{self, Location};
use tidal_engine::{DataStream, Error, Time, timely};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use writer::{Pending, Upload, Writer};

/// Size of the pieces of an upload to S3 (every piece but the last must be at least 5 MiB).
pub(super) const PIECE: u64 = 8 << 20;

/// The name of part `seq` of worker `worker` in run `run`.
pub(super) fn part_name(run: u64, worker: usize, seq: u64, ext: &str) -> String {
    format!("part-{run:016x}-{worker:05}-{seq:06}.{ext}")
}

/// What a file name in a sink's directory is to a sink writing `ext` parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Named {
    run: u64,
    worker: usize,
    seq: u64,
    /// Committed (visible), or hidden (pending or in progress).
    visible: bool,
}

/// Parses a name [`part_name`] makes, or its hidden `.NAME.pending` / `.NAME.inprogress` forms.
fn parse_name(name: &str, ext: &str) -> Option<Named> {
    let (visible, core) = match name.strip_prefix('.') {
        Some(hidden) => (
            false,
            hidden
                .strip_suffix(".pending")
                .or_else(|| hidden.strip_suffix(".inprogress"))?,
        ),
        None => (true, name),
    };
    let core = core
        .strip_prefix("part-")?
        .strip_suffix(&format!(".{ext}"))?;
    let mut fields = core.split('-');
    let (run, worker, seq) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() || run.len() != 16 {
        return None;
    }
    Some(Named {
        run: u64::from_str_radix(run, 16).ok()?,
        worker: worker.parse().ok()?,
        seq: seq.parse().ok()?,
        visible,
    })
}

/// A hidden sibling of a local part: `.NAME.STAGE`.
pub(super) fn hidden(visible: &Path, stage: &str) -> PathBuf {
    let name = visible
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    visible.with_file_name(format!(".{name}.{stage}"))
}

/// An entry of a sink's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Entry {
    /// The parts of run `run`'s worker `worker` up to part `upto` belong to the output.
    Lineage { run: u64, worker: usize, upto: u64 },
    /// A part sealed below the cut, not yet known to be committed: the location it is committed
    /// to, and on S3 its upload.
    Pending { at: String, upload: Option<Upload> },
}

/// What a part-file sink keeps in checkpoints: the lineage and the pending parts (see the
/// module's documentation).
struct SinkState {
    writer: Rc<RefCell<Writer>>,
    /// Lineage of earlier runs this worker carries (restored, by hash of their key).
    lineage: BTreeMap<String, Entry>,
    /// Whether `restore` ran (a restored job whose checkpoint holds this sink).
    restored: Rc<Cell<bool>>,
}

/// The key of a lineage entry.
fn lineage_key(run: u64, worker: usize) -> String {
    format!("lineage/{run:016x}/{worker:05}")
}

impl KeyedStore for SinkState {
    type Key = String;
    type Entry = Entry;
    /// Every worker sees every entry: worker 0 settles the parts the checkpoint left pending, and
    /// each keeps the lineage entries it owns.
    const ROUTED: bool = false;
    fn key_count(&self) -> usize {
        let w = self.writer.borrow();
        self.lineage.len() + w.pending.len() + usize::from(w.sealed.is_some())
    }
    fn write_entries(
        &self,
        cut: Time,
        out: &mut EntryWriter<'_, String>,
    ) -> tidal_engine::Result<()> {
        let mut w = self.writer.borrow_mut();
        w.seal(cut)?;
        for (k, e) in &self.lineage {
            out.entry(k, e)?;
        }
        if let Some(upto) = w.sealed {
            let entry = Entry::Lineage {
                run: w.run,
                worker: w.worker,
                upto,
            };
            out.entry(&lineage_key(w.run, w.worker), &entry)?;
        }
        for p in &w.pending {
            let at = p.at.to_string();
            let entry = Entry::Pending {
                at: at.clone(),
                upload: p.upload.clone(),
            };
            out.entry(&at, &entry)?;
        }
        Ok(())
    }
    fn restore(&mut self, all: Vec<(String, Entry)>, owner: Owner) -> tidal_engine::Result<()> {
        self.restored.set(true);
        let (dir, ext, run) = {
            let w = self.writer.borrow();
            (w.dir.clone(), w.ext, w.run)
        };
        let mut lineage = BTreeMap::new();
        for (_, entry) in &all {
            if let Entry::Lineage { run, worker, upto } = entry {
                let e = lineage.entry((*run, *worker)).or_insert(*upto);
                *e = (*e).max(*upto);
            }
        }
        if owner.index == 0 {
            // Worker 0 commits what the checkpoint left pending, then removes what is not in
            // its lineage, before any record of this run is written.
            for (_, entry) in &all {
                if let Entry::Pending { at, upload } = entry {
                    let part = Pending {
                        at: Location::parse(at)?,
                        upload: upload.clone(),
                    };
                    part.commit().map_err(|e| {
                        Error::external(format!(
                            "committing output part {at}, pending in the checkpoint: {e}"
                        ))
                    })?;
                }
            }
            remove_other_parts(&dir, ext, Some(&lineage), run)?;
        }
        for (key, entry) in all {
            if matches!(entry, Entry::Lineage { .. }) && owner.owns(&key) {
                self.lineage.insert(key, entry);
            }
        }
        Ok(())
    }
    fn checkpoint_complete(&mut self, _id: u64) -> tidal_engine::Result<()> {
        // Checkpoints are taken one at a time: every part sealed so far is below the cut of the
        // checkpoint that completed (or of an earlier one that failed, which this one covers).
        self.writer.borrow_mut().commit_pending()
    }
}

/// Removes from `dir` every part of this kind (`ext`) that is neither in the restored `lineage`
/// (`None`: a fresh run) and committed, nor of the run `current`: parts of earlier outputs, of
/// runs that failed after the restored cut, pending and in-progress parts of failed runs, and on
/// S3 their uploads left incomplete.
fn remove_other_parts(
    dir: &Location,
    ext: &str,
    lineage: Option<&BTreeMap<(u64, usize), u64>>,
    current: u64,
) -> tidal_engine::Result<()> {
    let keep = |n: &Named| {
        n.run == current
            || (n.visible
                && lineage
                    .and_then(|l| l.get(&(n.run, n.worker)))
                    .is_some_and(|up| n.seq <= *up))
    };
    let cleaning = |e: std::io::Error| {
        Error::external(format!(
            "cleaning up output directory {dir} before writing: {e}"
        ))
    };
    for listed in storage::list(dir).map_err(cleaning)? {
        if listed.is_dir {
            continue;
        }
        let Some(named) = parse_name(&listed.name, ext) else {
            continue;
        };
        if !keep(&named) {
            if named.visible && lineage.is_some() {
                tidal_engine::say(format_args!(
                    "tidal: removing output part {} (written after the restored checkpoint's cut; its records are written again)",
                    dir.join(&listed.name)
                ));
            }
            storage::remove(&dir.join(&listed.name)).map_err(cleaning)?;
        }
    }
    if dir.is_s3() {
        for (at, upload) in storage::uploads_under(dir).map_err(cleaning)? {
            let named = at
                .file_name()
                .and_then(|n| parse_name(&n, ext))
                .map(|n| Named {
                    visible: false,
                    ..n
                });
            if named.is_some_and(|n| !keep(&n)) {
                storage::upload_abort(&at, &upload).map_err(cleaning)?;
            }
        }
    }
    Ok(())
}

/// Each worker encodes its records in time order as the frontier passes and writes them into
/// part files in `dir` (see the module's documentation for how they become visible).
pub(super) fn part_file_sink<'s, T: 'static>(
    stream: DataStream<'s, T>,
    dir: Location,
    ext: &'static str,
    mut encode: impl FnMut(&mut Vec<u8>, &T) -> Result<(), String> + 'static,
) {
    let ctx = stream.context().clone();
    // Absolute paths: checkpoints name pending parts, and a restored job may run elsewhere.
    let dir = match dir {
        Location::Local(path) => {
            match std::fs::create_dir_all(&path).and_then(|_| std::fs::canonicalize(&path)) {
                Ok(absolute) => Location::Local(absolute),
                Err(e) => {
                    // The job fails with this before it runs.
                    ctx.fail(Error::external(format!(
                        "cannot create output directory '{}': {e}",
                        path.display()
                    )));
                    Location::Local(path)
                }
            }
        }
        s3 => s3,
    };
    let _ = stream.then(&format!("write_{ext}"), move |input, name| {
        let run = ctx.run_id();
        let writer = Rc::new(RefCell::new(Writer::for_worker(&ctx, dir.clone(), ext)));
        let restored = Rc::new(Cell::new(false));
        let state = SinkState {
            writer: Rc::clone(&writer),
            lineage: BTreeMap::new(),
            restored: Rc::clone(&restored),
        };
        ctx.register_state(name, Rc::new(RefCell::new(state)));
        let index = ctx.index();
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
                        // the output anew: worker 0 removes the parts of earlier runs.
                        if index == 0
                            && !restored.get()
                            && let Err(e) = remove_other_parts(&dir, ext, None, run)
                        {
                            writer.borrow_mut().fail(e);
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
                    let mut w = writer.borrow_mut();
                    if let Some(e) = failed.take() {
                        let e = Error::input(format!(
                            "cannot encode a record for {}: {e}",
                            w.describe()
                        ));
                        w.fail(e);
                    }
                    if w.broken {
                        // The job is failing: nothing more is written.
                        pending.for_each_ready(frontier, |_, bytes| bytes.clear());
                        return;
                    }
                    let before = w.written;
                    pending.for_each_ready(frontier, |cap, bytes| {
                        if !w.broken {
                            w.write_at(*cap.time(), bytes);
                        }
                    });
                    if frontier.is_empty() {
                        w.finish();
                    } else if w.written != before {
                        // Results reach the file as the frontier passes (not only when the
                        // buffer fills), so that a part's records are on disk before its seal.
                        w.flush();
                    }
                }
            },
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(dir: &Path, checkpointing: bool) -> Writer {
        Writer::new(Location::from(dir), "txt", 0xabc, 1, checkpointing)
    }

    fn visible(dir: &Path) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(e.path()).unwrap())
            })
            .filter(|(n, _)| !n.starts_with('.'))
            .collect();
        found.sort();
        found
    }

    #[test]
    fn names_round_trip_and_others_are_not_parts() {
        let name = part_name(0xfeed, 3, 12, "csv");
        assert_eq!(name, "part-000000000000feed-00003-000012.csv");
        let parsed = parse_name(&name, "csv").unwrap();
        assert_eq!(
            (parsed.run, parsed.worker, parsed.seq, parsed.visible),
            (0xfeed, 3, 12, true)
        );
        let pending = parse_name(&format!(".{name}.pending"), "csv").unwrap();
        assert!(!pending.visible && pending.seq == 12);
        assert!(parse_name(&format!(".{name}.inprogress"), "csv").is_some());
        for other in [
            name.as_str(),
            "part-00000-of-00001.csv",
            "notes.csv",
            ".x.pending",
        ] {
            assert!(parse_name(other, "txt").is_none(), "{other}");
        }
    }

    #[test]
    fn a_seal_splits_at_the_cut_and_a_completed_checkpoint_commits() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), true);
        w.write_at(1, b"a1\n");
        w.write_at(4, b"a4\n");
        // The sink went past the cut (5) before the snapshot: time 5 starts the next part.
        w.write_at(5, b"a5\n");
        w.seal(5).unwrap();
        assert!(visible(dir.path()).is_empty(), "sealed is not yet visible");
        w.commit_pending().unwrap();
        let first = part_name(0xabc, 1, 0, "txt");
        assert_eq!(
            visible(dir.path()),
            vec![(first.clone(), "a1\na4\n".into())]
        );
        // Nothing below the next cut but what was carried over; then the end of the input.
        w.write_at(9, b"a9\n");
        w.seal(7).unwrap();
        w.commit_pending().unwrap();
        w.finish();
        let second = part_name(0xabc, 1, 1, "txt");
        let third = part_name(0xabc, 1, 2, "txt");
        assert_eq!(
            visible(dir.path()),
            vec![
                (first, "a1\na4\n".into()),
                (second, "a5\n".into()),
                (third, "a9\n".into())
            ]
        );
        let hidden_left = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .count();
        assert_eq!(hidden_left, 0);
    }

    #[test]
    fn a_seal_with_nothing_below_the_cut_makes_no_part() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), true);
        w.seal(3).unwrap();
        w.write_at(3, b"x\n");
        w.seal(3).unwrap();
        assert!(w.pending.is_empty() && w.sealed.is_none());
        w.finish();
        assert_eq!(
            visible(dir.path()),
            vec![(part_name(0xabc, 1, 0, "txt"), "x\n".into())]
        );
    }

    #[test]
    fn restore_commits_pending_parts_and_removes_what_is_not_in_the_lineage() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::from(dir.path());
        let put = |name: &str| std::fs::write(dir.path().join(name), "x\n").unwrap();
        // Run 1 worker 0: parts 0..=1 in the checkpoint's lineage, part 2 committed after it.
        put(&part_name(1, 0, 0, "txt"));
        put(&part_name(1, 0, 1, "txt"));
        put(&part_name(1, 0, 2, "txt"));
        // Pending in the checkpoint (committed by the restore), and pending after it.
        put(&format!(".{}.pending", part_name(1, 1, 0, "txt")));
        put(&format!(".{}.pending", part_name(1, 1, 1, "txt")));
        // A run that failed without a checkpoint; a run now starting; someone else's file.
        put(&part_name(2, 0, 0, "txt"));
        put(&format!(".{}.inprogress", part_name(2, 0, 1, "txt")));
        put(&format!(".{}.inprogress", part_name(3, 0, 0, "txt")));
        put("notes.txt");
        let pending = Pending {
            at: loc.join(&part_name(1, 1, 0, "txt")),
            upload: None,
        };
        pending.commit().unwrap();
        pending.commit().unwrap();
        let lineage = BTreeMap::from([((1, 0), 1), ((1, 1), 0)]);
        remove_other_parts(&loc, "txt", Some(&lineage), 3).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut expected = vec![
            part_name(1, 0, 0, "txt"),
            part_name(1, 0, 1, "txt"),
            part_name(1, 1, 0, "txt"),
            format!(".{}.inprogress", part_name(3, 0, 0, "txt")),
            "notes.txt".to_string(),
        ];
        expected.sort();
        assert_eq!(left, expected);
        // A pending part that is gone, and was never committed: an error naming it.
        let gone = Pending {
            at: loc.join(&part_name(1, 1, 5, "txt")),
            upload: None,
        };
        let err = gone.commit().unwrap_err().to_string();
        assert!(err.contains("000005") && err.contains("gone"), "{err}");
    }
}
