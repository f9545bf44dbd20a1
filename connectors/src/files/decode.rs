//! Turning one line into one record.

use std::marker::PhantomData;
use tidal_engine::storage::Location;

use serde::de::DeserializeOwned;

use super::lines::SplitLines;

/// Decodes lines into records. `Ok(None)` skips the line (e.g. a blank line or a header).
pub trait Decoder: 'static {
    /// The record type.
    type Item: 'static;
    /// Called before reading a split of `path` starting at byte `start`.
    fn open(&mut self, path: &Location, start: u64) -> std::io::Result<()>;
    /// Decodes one line (with its line break); an error message names the field when it can.
    fn decode(&mut self, line: &[u8]) -> Result<Option<Self::Item>, String>;
}

#[inline]
pub(super) fn trim_line_break(line: &[u8]) -> &[u8] {
    match line {
        [rest @ .., b'\r', b'\n'] | [rest @ .., b'\n' | b'\r'] => rest,
        _ => line,
    }
}

/// Lines as `String`s.
pub struct TextDecoder;

impl Decoder for TextDecoder {
    type Item = String;
    fn open(&mut self, _: &Location, _: u64) -> std::io::Result<()> {
        Ok(())
    }
    fn decode(&mut self, line: &[u8]) -> Result<Option<String>, String> {
        match std::str::from_utf8(trim_line_break(line)) {
            Ok(s) => Ok(Some(s.to_string())),
            Err(e) => Err(format!(
                "not valid UTF-8 (byte {} of the line)",
                e.valid_up_to() + 1
            )),
        }
    }
}

/// JSON values, one per line.
pub struct JsonDecoder<T>(PhantomData<fn() -> T>);

impl<T> JsonDecoder<T> {
    pub(crate) fn new() -> Self {
        JsonDecoder(PhantomData)
    }
}

impl<T: DeserializeOwned + 'static> Decoder for JsonDecoder<T> {
    type Item = T;
    fn open(&mut self, _: &Location, _: u64) -> std::io::Result<()> {
        Ok(())
    }
    fn decode(&mut self, line: &[u8]) -> Result<Option<T>, String> {
        let line = trim_line_break(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        json_value(line).map(Some)
    }
}

/// Decodes one JSON value (the whole of `line`); the error names the field at fault.
///
/// Lines are decoded without tracking where the decoder stands (tracking allocates a string
/// for every key it passes); only a line that fails is decoded again, tracked, to name the field.
pub(crate) fn json_value<T: DeserializeOwned>(line: &[u8]) -> Result<T, String> {
    if let Ok(value) = serde_json::from_slice(line) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(line);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            format!("{inner}")
        } else {
            format!("field '{path}': {inner}")
        }
    })?;
    de.end().map_err(|e| format!("{e}"))?;
    Ok(value)
}

/// CSV records, one per line, matched to `T` by header names or by position.
pub struct CsvDecoder<T> {
    has_headers: bool,
    delimiter: u8,
    headers: Option<csv::ByteRecord>,
    skip_next: bool,
    core: csv_core::Reader,
    output: Vec<u8>,
    ends: Vec<usize>,
    record: csv::ByteRecord,
    /// The header names, when they are UTF-8 (the fast path needs them so).
    names: Option<Vec<String>>,
    /// Where the delimiters of the line being decoded are (see `fields::Record`).
    masks: Vec<u64>,
    _marker: PhantomData<fn() -> T>,
}

impl<T> CsvDecoder<T> {
    pub(crate) fn new(has_headers: bool, delimiter: u8) -> Self {
        CsvDecoder {
            has_headers,
            delimiter,
            headers: None,
            skip_next: false,
            core: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
            output: vec![0; 1024],
            ends: vec![0; 64],
            record: csv::ByteRecord::new(),
            names: None,
            masks: Vec::new(),
            _marker: PhantomData,
        }
    }

    /// Splits one line into `self.record`'s fields.
    fn parse(&mut self, line: &[u8]) {
        use csv_core::ReadRecordResult::*;
        // Without quotes a field is what lies between delimiters: no need for the full parser.
        if memchr::memchr(b'"', line).is_none() {
            self.record.clear();
            for field in line.split(|b| *b == self.delimiter) {
                self.record.push_field(field);
            }
            return;
        }
        self.core.reset();
        let (mut input, mut out, mut end) = (0, 0, 0);
        loop {
            let (result, nin, nout, nend) = self.core.read_record(
                &line[input..],
                &mut self.output[out..],
                &mut self.ends[end..],
            );
            input += nin;
            out += nout;
            end += nend;
            match result {
                InputEmpty => {
                    if input >= line.len() {
                        // Signal the end of input so that the last field is closed.
                        let (result, _, nout, nend) = self.core.read_record(
                            &[],
                            &mut self.output[out..],
                            &mut self.ends[end..],
                        );
                        out += nout;
                        end += nend;
                        match result {
                            OutputFull => {
                                let len = self.output.len();
                                self.output.resize(len * 2, 0);
                                continue;
                            }
                            OutputEndsFull => {
                                let len = self.ends.len();
                                self.ends.resize(len * 2, 0);
                                continue;
                            }
                            _ => break,
                        }
                    }
                }
                OutputFull => {
                    let len = self.output.len();
                    self.output.resize(len * 2, 0);
                }
                OutputEndsFull => {
                    let len = self.ends.len();
                    self.ends.resize(len * 2, 0);
                }
                Record | End => break,
            }
        }
        self.record.clear();
        let mut start = 0;
        for &e in &self.ends[..end] {
            self.record.push_field(&self.output[start..e]);
            start = e;
        }
    }
}

impl<T: DeserializeOwned + 'static> Decoder for CsvDecoder<T> {
    type Item = T;
    fn open(&mut self, path: &Location, start: u64) -> std::io::Result<()> {
        self.skip_next = self.has_headers && start == 0;
        if self.has_headers {
            let mut lines = SplitLines::open(path, 0, 1)?;
            let mut first = Vec::new();
            lines.next_line(&mut first)?;
            self.parse(trim_line_break(&first));
            let mut headers = self.record.clone();
            // A byte-order mark would otherwise become part of the first header name.
            if let Some(first_field) = headers.get(0)
                && let Some(rest) = first_field.strip_prefix(b"\xEF\xBB\xBF")
            {
                let mut fixed = csv::ByteRecord::new();
                fixed.push_field(rest);
                for f in headers.iter().skip(1) {
                    fixed.push_field(f);
                }
                headers = fixed;
            }
            self.names = headers
                .iter()
                .map(|h| String::from_utf8(h.to_vec()).ok())
                .collect();
            self.headers = Some(headers);
        }
        Ok(())
    }

    fn decode(&mut self, line: &[u8]) -> Result<Option<T>, String> {
        if std::mem::take(&mut self.skip_next) {
            return Ok(None);
        }
        let line = trim_line_break(line);
        if line.is_empty() {
            return Ok(None);
        }
        // Fast path: a line without quotes, decoded where it lies (see `fields`); anything it
        // does not handle, and every error, goes the csv crate's way below.
        if self.headers.is_none() || self.names.is_some() {
            // One pass finds every delimiter eight bytes at a time, then each field is read from
            // its known bounds; a quote in the line, or a field count that does not match the
            // header, leaves the line to the csv crate.
            if let Some(mut record) = super::fields::Record::new(
                line,
                self.delimiter,
                self.names.as_deref(),
                &mut self.masks,
            ) && let Ok(value) = T::deserialize(&mut record)
                && record.complete()
            {
                return Ok(Some(value));
            }
        }
        self.parse(line);
        if let Some(h) = &self.headers
            && h.len() != self.record.len()
        {
            return Err(format!(
                "has {} fields but the header has {}",
                self.record.len(),
                h.len()
            ));
        }
        self.record
            .deserialize::<T>(self.headers.as_ref())
            .map(Some)
            .map_err(|e| match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => {
                    let field = err.field().map(|i| i as usize);
                    let name = match (field, &self.headers) {
                        (Some(i), Some(h)) => h
                            .get(i)
                            .map(|n| format!("field '{}'", String::from_utf8_lossy(n))),
                        (Some(i), None) => Some(format!("field {}", i + 1)),
                        _ => None,
                    };
                    let value = field
                        .and_then(|i| self.record.get(i))
                        .map(|v| format!(" (value '{}')", String::from_utf8_lossy(v)))
                        .unwrap_or_default();
                    match name {
                        Some(name) => format!("{name}: {}{value}", err.kind()),
                        None => format!("{}", err.kind()),
                    }
                }
                other => format!("{other:?}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_break_is_trimmed_and_nothing_else() {
        for (line, trimmed) in [
            (&b"a\r\n"[..], &b"a"[..]),
            (b"a\n", b"a"),
            (b"a\r", b"a"),
            (b"a\r\r\n", b"a\r"),
            (b"a\n\n", b"a\n"),
            (b"\n\r", b"\n"),
            (b"\r\n", b""),
            (b"", b""),
            (b"a", b"a"),
        ] {
            assert_eq!(trim_line_break(line), trimmed, "{line:?}");
        }
    }

    #[test]
    fn quoted_lines_take_the_full_parser_and_plain_ones_the_fast_path_with_the_same_values() {
        let mut d = CsvDecoder::<(u64, String, i64)>::new(false, b',');
        assert_eq!(
            d.decode(b"1,\"a,b\",-3\n").unwrap(),
            Some((1, "a,b".to_string(), -3))
        );
        assert_eq!(
            d.decode(b"1,a,-3\r\n").unwrap(),
            Some((1, "a".to_string(), -3))
        );
        assert_eq!(
            d.decode(b"2,\"say \"\"hi\"\"\",4").unwrap(),
            Some((2, "say \"hi\"".to_string(), 4))
        );
        // An error still names the field and the value (worded by the csv crate).
        let err = d.decode(b"1,a,x").unwrap_err();
        assert!(err.contains("field 3") && err.contains("'x'"), "{err}");
        let mut semi = CsvDecoder::<(u64, u64)>::new(false, b';');
        assert_eq!(semi.decode(b"5;6").unwrap(), Some((5, 6)));
    }
}
