//! Reading the lines a split owns.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The lines of one file that start inside `[start, end)`, with their line numbers.
pub(crate) struct SplitLines {
    reader: BufReader<File>,
    path: PathBuf,
    /// Offset of the next line's first byte.
    pos: u64,
    end: u64,
    /// Number of the next line (1-based).
    next_number: u64,
}

impl SplitLines {
    pub(crate) fn open(path: &Path, start: u64, end: u64) -> io::Result<SplitLines> {
        let mut file = File::open(path)?;
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
            (pos, 1 + count_newlines(&mut file, pos)?)
        };
        file.seek(SeekFrom::Start(pos))?;
        Ok(SplitLines {
            reader: BufReader::with_capacity(1 << 16, file),
            path: path.to_path_buf(),
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

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn display(&self) -> std::path::Display<'_> {
        self.path.display()
    }
}

/// Line breaks in the first `upto` bytes of `file`.
fn count_newlines(file: &mut File, upto: u64) -> io::Result<u64> {
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
