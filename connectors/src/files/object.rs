//! Reading an input object from its start or from any offset: a local file, or an S3 object
//! fetched in ranges as it is read.

use std::io;

use tidal_engine::storage::{self, Location};

/// Anything that reads and seeks: a local file, or an S3 object read in ranges.
pub trait ReadSeek: io::Read + io::Seek {}
impl<T: io::Read + io::Seek> ReadSeek for T {}

/// Opens the object at `at` to read; an S3 object is fetched in ranges of 8 MiB as it is read.
pub fn open(at: &Location) -> io::Result<Box<dyn ReadSeek>> {
    match at {
        Location::Local(path) => Ok(Box::new(std::fs::File::open(path).map_err(|e| {
            io::Error::new(e.kind(), format!("opening {}: {e}", path.display()))
        })?)),
        Location::S3 { .. } => Ok(Box::new(ObjectReader {
            at: at.clone(),
            size: storage::size(at)?,
            pos: 0,
            chunk: Vec::new(),
            chunk_start: 0,
        })),
    }
}

const RANGE: u64 = 8 << 20;

/// An S3 object read through ranged GETs.
struct ObjectReader {
    at: Location,
    size: u64,
    pos: u64,
    chunk: Vec<u8>,
    chunk_start: u64,
}

impl io::Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let in_chunk =
            self.pos >= self.chunk_start && self.pos < self.chunk_start + self.chunk.len() as u64;
        if !in_chunk {
            let len = RANGE.min(self.size - self.pos);
            self.chunk = storage::read_range(&self.at, self.pos, len)?;
            self.chunk_start = self.pos;
            if self.chunk.is_empty() {
                return Ok(0);
            }
        }
        let offset = (self.pos - self.chunk_start) as usize;
        let n = buf.len().min(self.chunk.len() - offset);
        buf[..n].copy_from_slice(&self.chunk[offset..offset + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl io::Seek for ObjectReader {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let target = match to {
            io::SeekFrom::Start(n) => n as i128,
            io::SeekFrom::End(n) => self.size as i128 + n as i128,
            io::SeekFrom::Current(n) => self.pos as i128 + n as i128,
        };
        if target < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of an object",
            ));
        }
        self.pos = target as u64;
        Ok(self.pos)
    }
}
