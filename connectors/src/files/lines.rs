//! Reading the lines a split owns.

use std::io::{self, BufRead, BufReader, SeekFrom};

use tidal_engine::storage::Location;

use super::object::{self, ReadSeek};

/// The lines of one file that start inside `[start, end)`, with their line numbers.
///
/// Lines come out with their index in the split; [`SplitLines::line_number`] turns an index
/// into the line's number in the file. That number needs the line breaks before the split
/// counted (a read of the file up to it), so it is worked out only when asked — for a record
/// that fails to decode — and not at every split's start.
pub(crate) struct SplitLines {
    reader: BufReader<Box<dyn ReadSeek>>,
    path: Location,
    /// Offset of the split's first owned line.
    first: u64,
    /// Number in the file of the split's first owned line, once worked out.
    first_number: Option<u64>,
    /// Offset of the next line's first byte.
    pos: u64,
    end: u64,
    /// Index in the split of the next line (0-based).
    next_index: u64,
    /// Bytes of the reader's buffer that the line last lent out takes (consumed at the next call).
    lent: usize,
    /// A line that did not lie whole in the reader's buffer, copied.
    spill: Vec<u8>,
}

impl SplitLines {
    pub(crate) fn open(path: &Location, start: u64, end: u64) -> io::Result<SplitLines> {
        let mut file = object::open(path)?;
        let (pos, first_number) = if start == 0 {
            (0, Some(1))
        } else {
            // The first owned line starts after the first line break at or after `start - 1`.
            file.seek(SeekFrom::Start(start - 1))?;
            let mut reader = BufReader::with_capacity(1 << 16, &mut file);
            let mut skipped = Vec::new();
            let n = reader.read_until(b'\n', &mut skipped)? as u64;
            let pos = start - 1 + n;
            drop(reader);
            (pos, None)
        };
        file.seek(SeekFrom::Start(pos))?;
        Ok(SplitLines {
            reader: BufReader::with_capacity(1 << 16, file),
            path: path.clone(),
            first: pos,
            first_number,
            pos,
            end,
            next_index: 0,
            lent: 0,
            spill: Vec::new(),
        })
    }

    /// The next owned line (with its line break, if any) and its index in the split, lent where
    /// it lies in the read buffer when it lies there whole (most lines: no copy).
    pub(crate) fn next_line_ref(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        self.reader.consume(std::mem::take(&mut self.lent));
        if self.pos >= self.end {
            return Ok(None);
        }
        let buffered = self.reader.fill_buf()?;
        if buffered.is_empty() {
            return Ok(None);
        }
        let number = self.next_index;
        self.next_index += 1;
        match memchr::memchr(b'\n', buffered) {
            Some(at) => {
                self.lent = at + 1;
                self.pos += self.lent as u64;
                Ok(Some((number, &self.reader.buffer()[..at + 1])))
            }
            None => {
                // The line runs past the buffer (or is the last, without a line break).
                self.spill.clear();
                let n = self.reader.read_until(b'\n', &mut self.spill)?;
                self.pos += n as u64;
                Ok(Some((number, &self.spill)))
            }
        }
    }

    /// Appends the next owned line (with its line break, if any) to `buf`; returns its index in
    /// the split.
    pub(crate) fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<u64>> {
        Ok(self.next_line_ref()?.map(|(index, line)| {
            buf.extend_from_slice(line);
            index
        }))
    }

    /// Offset of the next line's first byte (past any line lent out), and the end of the range.
    pub(crate) fn remaining(&self) -> (u64, u64) {
        (self.pos, self.end)
    }

    pub(crate) fn path(&self) -> &Location {
        &self.path
    }

    /// The number in the file (1-based) of the line with this index in the split. The first
    /// call on a split that does not start the file reads the file up to the split.
    pub(crate) fn line_number(&mut self, index: u64) -> io::Result<u64> {
        let first = match self.first_number {
            Some(first) => first,
            None => {
                let mut file = object::open(&self.path)?;
                let first = 1 + count_newlines(&mut *file, self.first)?;
                self.first_number = Some(first);
                first
            }
        };
        Ok(first + index)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines lent from the read buffer and lines copied because they cross it (or outgrow it)
    /// come out the same as the file's lines, in every split, with their numbers and positions.
    #[test]
    fn lent_lines_are_the_files_lines_across_buffer_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.txt");
        // Lengths chosen so that lines straddle the 64 KiB buffer's end, one outgrows it, and
        // the last has no line break.
        let mut expected: Vec<Vec<u8>> = Vec::new();
        for i in 0..5_000u64 {
            let len = if i == 2_500 {
                100_000
            } else {
                (i * 7919 % 97) as usize
            };
            let mut line: Vec<u8> = (0..len)
                .map(|j| b'a' + ((i as usize + j) % 26) as u8)
                .collect();
            if i < 4_999 {
                line.push(b'\n');
            }
            expected.push(line);
        }
        let bytes: Vec<u8> = expected.concat();
        std::fs::write(&path, &bytes).unwrap();
        let location = Location::from(path.as_path());
        let total = bytes.len() as u64;
        for (start, end) in [(0, total), (0, total / 3), (total / 3, total)] {
            let mut lines = SplitLines::open(&location, start, end).unwrap();
            let mut got = Vec::new();
            let mut first_number = None;
            loop {
                let before = lines.remaining().0;
                let Some((index, line)) = lines.next_line_ref().unwrap() else {
                    break;
                };
                let line = line.to_vec();
                assert_eq!(lines.remaining().0, before + line.len() as u64);
                assert_eq!(index, got.len() as u64);
                if first_number.is_none() {
                    first_number = Some(lines.line_number(index).unwrap());
                }
                got.push(line);
            }
            // The lines starting in [start, end), numbered from the file's first line.
            let mut offset = 0u64;
            let mut owned = Vec::new();
            let mut first_owned = None;
            for (k, line) in expected.iter().enumerate() {
                if offset >= start && offset < end {
                    first_owned.get_or_insert(k as u64 + 1);
                    owned.push(line.clone());
                }
                offset += line.len() as u64;
            }
            assert_eq!(got.len(), owned.len(), "split {start}..{end}");
            assert!(got == owned, "split {start}..{end}: lines differ");
            assert_eq!(first_number, first_owned, "split {start}..{end}");
        }
    }
}
