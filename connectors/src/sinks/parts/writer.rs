//! The writer of one worker's part files: the part in progress, the parts sealed at checkpoint
//! cuts and not yet committed, and committing them (see the parent module for the protocol).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use tidal_engine::storage::{self, Location};
use tidal_engine::{Error, Time, WorkerContext};

use super::{PIECE, hidden, part_name};

/// An upload in pieces on S3: its id and the pieces uploaded (number, ETag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Upload {
    pub(super) id: String,
    pub(super) pieces: Vec<(u32, String)>,
}

/// A part sealed and not yet committed.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub(super) at: Location,
    pub(super) upload: Option<Upload>,
}

impl Pending {
    /// Makes the part visible; a part committed already stays as it is.
    pub(super) fn commit(&self) -> std::io::Result<()> {
        match (&self.at, &self.upload) {
            (Location::Local(path), _) => {
                let pending = hidden(path, "pending");
                match std::fs::rename(&pending, path) {
                    Ok(()) => Ok(()),
                    Err(_) if !pending.exists() && path.exists() => Ok(()),
                    Err(e) if !pending.exists() => Err(std::io::Error::new(
                        e.kind(),
                        format!(
                            "pending output part '{}' is gone (its records would be lost)",
                            pending.display()
                        ),
                    )),
                    Err(e) => Err(std::io::Error::new(
                        e.kind(),
                        format!("committing output part '{}': {e}", path.display()),
                    )),
                }
            }
            (at, Some(upload)) => storage::upload_complete(at, &upload.id, &upload.pieces),
            (at, None) => Err(std::io::Error::other(format!(
                "pending output part {at} has no upload to complete"
            ))),
        }
    }
}

/// The part one worker writes, and those it sealed and has not committed yet.
pub(super) struct Writer {
    /// Where a failure is reported (it ends the job); none in unit tests.
    pub(super) ctx: Option<Rc<WorkerContext>>,
    /// Set once a write failed: the job is failing, and nothing more is written or committed.
    pub(super) broken: bool,
    pub(super) dir: Location,
    pub(super) ext: &'static str,
    pub(super) run: u64,
    pub(super) worker: usize,
    pub(super) checkpointing: bool,
    /// Sequence number of the part in progress.
    pub(super) seq: u64,
    /// The part in progress (on S3: a local temporary file), opened at its first record.
    pub(super) file: Option<BufWriter<File>>,
    /// Bytes in the part in progress (on S3 without checkpoints: since the last piece).
    pub(super) written: u64,
    /// With checkpoints: per time written since the last seal, the length of the part before
    /// its records. Records come in time order, so the length at a cut is the length before the
    /// first time at or after it.
    pub(super) lengths: VecDeque<(Time, u64)>,
    /// On S3 without checkpoints: the upload the part goes into, piece by piece.
    pub(super) streaming: Option<Upload>,
    /// Parts sealed and not committed.
    pub(super) pending: Vec<Pending>,
    /// The last part sealed.
    pub(super) sealed: Option<u64>,
}

impl Writer {
    /// Worker `worker`'s writer of run `run`'s parts in `dir`, nothing written yet.
    pub(super) fn new(
        dir: Location,
        ext: &'static str,
        run: u64,
        worker: usize,
        checkpointing: bool,
    ) -> Self {
        Writer {
            ctx: None,
            broken: false,
            dir,
            ext,
            run,
            worker,
            checkpointing,
            seq: 0,
            file: None,
            written: 0,
            lengths: VecDeque::new(),
            streaming: None,
            pending: Vec::new(),
            sealed: None,
        }
    }

    pub(super) fn at(&self, seq: u64) -> Location {
        self.dir
            .join(&part_name(self.run, self.worker, seq, self.ext))
    }

    /// Where the part in progress is written: on disk its hidden name, on S3 a temporary file.
    pub(super) fn open(&mut self) -> std::io::Result<&mut BufWriter<File>> {
        if self.file.is_none() {
            let file = match self.at(self.seq) {
                Location::Local(path) => {
                    if let Some(dir) = path.parent() {
                        std::fs::create_dir_all(dir)?;
                    }
                    // Read as well: a seal moves what follows the cut into the next part.
                    std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(hidden(&path, "inprogress"))?
                }
                Location::S3 { .. } => tempfile::tempfile()?,
            };
            self.file = Some(BufWriter::with_capacity(1 << 16, file));
        }
        Ok(self.file.as_mut().expect("opened"))
    }

    /// The writer of worker `ctx`'s parts, reporting failures to it.
    pub(super) fn for_worker(ctx: &Rc<WorkerContext>, dir: Location, ext: &'static str) -> Self {
        let mut w = Writer::new(dir, ext, ctx.run_id(), ctx.index(), ctx.checkpointing());
        w.ctx = Some(Rc::clone(ctx));
        w
    }

    /// Ends the job with `error`; this writer does nothing more.
    pub(super) fn fail(&mut self, error: Error) {
        if let Some(ctx) = &self.ctx {
            ctx.fail(error);
        }
        self.broken = true;
    }

    /// Names the part in progress in errors.
    pub(super) fn describe(&self) -> String {
        match self.at(self.seq) {
            Location::Local(path) => hidden(&path, "inprogress").display().to_string(),
            s3 => format!("the part for {s3} (a temporary file)"),
        }
    }

    /// Writes the records of time `time`.
    pub(super) fn write_at(&mut self, time: Time, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.checkpointing {
            self.lengths.push_back((time, self.written));
        }
        if let Err(e) = self.open().and_then(|f| f.write_all(bytes)) {
            let e = Error::external(format!("writing {}: {e}", self.describe()));
            return self.fail(e);
        }
        self.written += bytes.len() as u64;
        if !self.checkpointing && self.dir.is_s3() && self.written >= PIECE {
            self.upload_streaming();
        }
    }

    /// Hands what was written to the file.
    pub(super) fn flush(&mut self) {
        if let Some(f) = self.file.as_mut()
            && let Err(e) = f.flush()
        {
            let e = Error::external(format!("writing {}: {e}", self.describe()));
            self.fail(e);
        }
    }

    /// The bytes `range` of the part in progress (flushed).
    pub(super) fn read(&mut self, from: u64, to: u64) -> std::io::Result<Vec<u8>> {
        let Some(f) = self.file.as_mut() else {
            return Ok(Vec::new());
        };
        f.flush()?;
        let mut bytes = vec![0; (to - from) as usize];
        f.get_ref().read_exact_at(&mut bytes, from)?;
        Ok(bytes)
    }

    /// On S3 without checkpoints: uploads what the temporary file holds as the next piece of
    /// the part, and empties the file.
    pub(super) fn upload_streaming(&mut self) {
        let at = self.at(self.seq);
        let uploaded = (|| {
            let bytes = self.read(0, self.written)?;
            if self.streaming.is_none() {
                let id = storage::upload_begin(&at)?;
                self.streaming = Some(Upload { id, pieces: vec![] });
            }
            let upload = self.streaming.as_mut().expect("begun");
            let number = upload.pieces.len() as u32 + 1;
            let etag = storage::upload_piece(&at, &upload.id, number, &bytes)?;
            upload.pieces.push((number, etag));
            let f = self.file.as_mut().expect("written");
            f.get_ref().set_len(0)?;
            use std::io::Seek;
            f.seek(std::io::SeekFrom::Start(0))?;
            Ok::<(), std::io::Error>(())
        })();
        if let Err(e) = uploaded {
            return self.fail(Error::external(format!("uploading output part {at}: {e}")));
        }
        self.written = 0;
    }

    /// Uploads `bytes` of the part in progress as a new upload in pieces to `at`, not completed.
    pub(super) fn upload_pending(&mut self, at: &Location, len: u64) -> std::io::Result<Upload> {
        let id = storage::upload_begin(at)?;
        let mut upload = Upload { id, pieces: vec![] };
        let mut from = 0;
        let result = (|| {
            while from < len {
                let to = (from + PIECE).min(len);
                let bytes = self.read(from, to)?;
                let number = upload.pieces.len() as u32 + 1;
                let etag = storage::upload_piece(at, &upload.id, number, &bytes)?;
                upload.pieces.push((number, etag));
                from = to;
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(upload),
            Err(e) => {
                let _ = storage::upload_abort(at, &upload.id);
                Err(e)
            }
        }
    }

    /// Seals the part in progress at cut `cut`: what it holds below the cut becomes a pending
    /// part, durable; what it holds at or after the cut starts the next part.
    pub(super) fn seal(&mut self, cut: Time) -> tidal_engine::Result<()> {
        if self.broken {
            return Err(Error::external("the output part failed earlier"));
        }
        let len = self
            .lengths
            .iter()
            .find(|(t, _)| *t >= cut)
            .map_or(self.written, |(_, len)| *len);
        if len == 0 {
            return Ok(());
        }
        let at = self.at(self.seq);
        let tail = match self.read(len, self.written) {
            Ok(tail) => tail,
            Err(e) => {
                let e = Error::external(format!("reading {}: {e}", self.describe()));
                self.fail(e.clone());
                return Err(e);
            }
        };
        let upload = match &at {
            Location::Local(path) => {
                let file = self.file.take().expect("written").into_inner();
                let sealed = file.map_err(|e| e.into_error()).and_then(|file| {
                    file.set_len(len)?;
                    file.sync_data()?;
                    std::fs::rename(hidden(path, "inprogress"), hidden(path, "pending"))?;
                    if let Some(dir) = path.parent() {
                        File::open(dir)?.sync_all()?;
                    }
                    Ok(())
                });
                if let Err(e) = sealed {
                    // The part in progress is in an unknown state: the job cannot go on.
                    let e = Error::external(format!(
                        "sealing output part '{}' for a checkpoint: {e}",
                        hidden(path, "pending").display()
                    ));
                    self.fail(e.clone());
                    return Err(e);
                }
                None
            }
            Location::S3 { .. } => {
                let upload = self.upload_pending(&at, len).map_err(|e| {
                    Error::external(format!("uploading output part {at} for a checkpoint: {e}"))
                })?;
                self.file = None;
                Some(upload)
            }
        };
        self.pending.push(Pending { at, upload });
        self.sealed = Some(self.seq);
        self.seq += 1;
        self.written = 0;
        while self.lengths.front().is_some_and(|(t, _)| *t < cut) {
            self.lengths.pop_front();
        }
        for (_, l) in self.lengths.iter_mut() {
            *l -= len;
        }
        if !tail.is_empty() {
            if let Err(e) = self.open().and_then(|f| f.write_all(&tail)) {
                let e = Error::external(format!("writing {}: {e}", self.describe()));
                self.fail(e.clone());
                return Err(e);
            }
            self.written = tail.len() as u64;
        }
        Ok(())
    }

    /// Commits the pending parts (after a checkpoint completed). On S3 a part that cannot be
    /// committed now stays pending, to be tried again.
    pub(super) fn commit_pending(&mut self) -> tidal_engine::Result<()> {
        if self.broken {
            return Ok(());
        }
        let mut left = Vec::new();
        for part in std::mem::take(&mut self.pending) {
            if let Err(e) = part.commit() {
                if !part.at.is_s3() {
                    return Err(Error::external(e.to_string()));
                }
                tidal_engine::say(format_args!(
                    "tidal: committing output part {} failed (tried again after the next checkpoint): {e}",
                    part.at
                ));
                left.push(part);
            }
        }
        self.pending = left;
        Ok(())
    }

    /// Commits everything (the input has ended): the pending parts and the part in progress.
    pub(super) fn finish(&mut self) {
        if let Err(e) = self.commit_pending() {
            return self.fail(e);
        }
        if let Some(part) = self.pending.first() {
            let e = Error::external(format!(
                "output part {} could not be committed at the end of the input",
                part.at
            ));
            return self.fail(e);
        }
        if self.file.is_none() && self.streaming.is_none() {
            return;
        }
        let at = self.at(self.seq);
        let done = match &at {
            Location::Local(path) => {
                let file = self.file.take().expect("written").into_inner();
                file.map_err(|e| e.into_error()).and_then(|file| {
                    file.sync_all()?;
                    std::fs::rename(hidden(path, "inprogress"), path)
                })
            }
            Location::S3 { .. } => (|| {
                if let Some(mut upload) = self.streaming.take() {
                    if self.written > 0 {
                        let bytes = self.read(0, self.written)?;
                        let number = upload.pieces.len() as u32 + 1;
                        let etag = storage::upload_piece(&at, &upload.id, number, &bytes)?;
                        upload.pieces.push((number, etag));
                    }
                    storage::upload_complete(&at, &upload.id, &upload.pieces)
                } else if self.written <= PIECE {
                    let bytes = self.read(0, self.written)?;
                    storage::write(&at, &bytes)
                } else {
                    let upload = self.upload_pending(&at, self.written)?;
                    storage::upload_complete(&at, &upload.id, &upload.pieces)
                }
            })(),
        };
        if let Err(e) = done {
            return self.fail(Error::external(format!("finishing output part {at}: {e}")));
        }
        self.file = None;
        self.written = 0;
    }
}
