//! What a source does with a record that does not decode.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use serde::Serialize;
use tidal_engine::Error;

/// The policy for records that fail to decode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OnError {
    /// Fail the job with an error naming the file, line and field (the default).
    #[default]
    Fail,
    /// Write the record and its error to part files in this directory and go on; the number set
    /// aside is reported when the job ends. Each worker writes `part-NNNNN.jsonl` with one JSON
    /// object per record: `{"source", "file", "line", "error", "record"}`.
    DeadLetter(PathBuf),
}

#[derive(Serialize)]
struct Entry<'a> {
    source: &'a str,
    file: &'a str,
    line: u64,
    error: &'a str,
    record: &'a str,
}

/// Applies an [`OnError`] policy for one worker's share of a source.
pub(crate) struct DeadLetters {
    policy: OnError,
    source: String,
    worker: usize,
    writer: Option<BufWriter<File>>,
    pub(crate) count: u64,
}

impl DeadLetters {
    pub(crate) fn new(policy: OnError, source: &str, worker: usize) -> Self {
        DeadLetters {
            policy,
            source: source.to_string(),
            worker,
            writer: None,
            count: 0,
        }
    }

    /// A record at `file:line` failed with `error`: an error that fails the job (the fail policy,
    /// or a dead-letter file that cannot be written), or the record set aside.
    pub(crate) fn reject(
        &mut self,
        file: &str,
        line: u64,
        error: &str,
        record: &[u8],
    ) -> Result<(), Error> {
        let dir = match &self.policy {
            OnError::Fail => {
                return Err(Error::input(format!(
                    "{file} line {line}: {error} (to set such records aside and go on, give the source a dead-letter directory: .on_error(OnError::DeadLetter(dir)), or 'dead-letter.path' on a SQL table)"
                )));
            }
            OnError::DeadLetter(dir) => dir.clone(),
        };
        if self.writer.is_none() {
            let path = dir.join(format!("part-{:05}.jsonl", self.worker));
            let file = std::fs::create_dir_all(&dir)
                .and_then(|_| File::create(&path))
                .map_err(|e| {
                    Error::external(format!(
                        "cannot create dead-letter file '{}': {e}",
                        path.display()
                    ))
                })?;
            self.writer = Some(BufWriter::new(file));
        }
        let record = String::from_utf8_lossy(record);
        let entry = Entry {
            source: &self.source,
            file,
            line,
            error,
            record: record.trim_end_matches(['\n', '\r']),
        };
        let writer = self.writer.as_mut().expect("opened above");
        let written = serde_json::to_writer(&mut *writer, &entry)
            .map_err(std::io::Error::from)
            .and_then(|_| writer.write_all(b"\n"));
        written.map_err(|e| {
            Error::external(format!(
                "writing dead-letter file in '{}': {e}",
                dir.display()
            ))
        })?;
        self.count += 1;
        Ok(())
    }

    /// Flushes the dead-letter file; returns where records went, if any were set aside.
    pub(crate) fn finish(&mut self) -> Result<Option<String>, Error> {
        if let Some(mut w) = self.writer.take() {
            w.flush()
                .and_then(|_| w.get_ref().sync_all())
                .map_err(|e| Error::external(format!("flushing dead-letter file: {e}")))?;
        }
        Ok(match (&self.policy, self.count) {
            (OnError::DeadLetter(dir), n) if n > 0 => Some(dir.display().to_string()),
            _ => None,
        })
    }
}
