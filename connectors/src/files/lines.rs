//! Reading the lines a split owns.

use std::io::{self, BufRead, BufReader, SeekFrom};

use tidal_engine::storage::{self, Location, ReadSeek};

/// The lines of one file that start inside `[start, end)`, with their line numbers.
pub(crate) struct SplitLines {
    reader: BufReader<Box<dyn ReadSeek>>,
    path: Location,
    /// Offset of the next line's first byte.
    pos: u64,
    end: u64,
    /// Number of the next line (1-based).
    next_number: u64,
}

impl SplitLines {
    pub(crate) fn open(path: &Location, start: u64, end: u64) -> io::Result<SplitLines> {
        let mut file = storage::open(path)?;
        let (pos, next_number) = if start == 0 {
            (0, 1)
        } else {
            // The first owned line starts after the first line break at or after `start - 1`.
            file.seek(SeekFrom::Start(start - 1))?;
            let mut reader = BufReader::with_capacity(1 << 16, &mut file);
            let mut skipped = Vec::new();
            let n = reader.read_until(b'\n', &mut skipped)? as u64;
            let pos = start - 1 + n;
            drop(reader);
            (pos, 1 + count_newlines(&mut *file, pos)?)
        };
        file.seek(SeekFrom::Start(pos))?;
        Ok(SplitLines {
            reader: BufReader::with_capacity(1 << 16, file),
            path: path.clone(),
            pos,
            end,
            next_number,
        })
    }

    /// Appends the next owned line (with its line break, if any) to `buf`; returns its number.
    pub(crate) fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<u64>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let n = self.reader.read_until(b'\n', buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.pos += n as u64;
        let number = self.next_number;
        self.next_number += 1;
        Ok(Some(number))
    }

    /// Offset of the next line's first byte, and the end of the range.
    pub(crate) fn remaining(&self) -> (u64, u64) {
        (self.pos, self.end)
    }

    pub(crate) fn path(&self) -> &Location {
        &self.path
    }
}

/// Line breaks in the first `upto` bytes of `file` (on S3: a read of those bytes).
fn count_newlines(file: &mut dyn ReadSeek, upto: u64) -> io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut remaining = upto;
    let mut buf = vec![0u8; 1 << 16];
    let mut count = 0;
    while remaining > 0 {
        let want = remaining.min(buf.len() as u64) as usize;
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        count += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        remaining -= n as u64;
    }
    Ok(count)
}
