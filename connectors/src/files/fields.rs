//! A fast way from the fields of a CSV line to a serde value, for the common case: the fields are
//! read where they lie in the line (no copy into a record). One pass over the line, eight bytes
//! at a time, finds every delimiter and any quote first, so that each field's bounds are known
//! before it is read and an integer is parsed eight digits at a time from its known length (the
//! work of one field then does not wait on the end of the one before). A line with a quote is
//! left to the csv crate (quoting changes where fields end).
//!
//! It gives the same value as the `csv` crate's deserializer whenever it succeeds; when it
//! cannot (a shape it does not handle, or a field that does not parse), the caller falls back to
//! the `csv` crate, which also words the error.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

/// Something this deserializer does not handle; the caller falls back.
#[derive(Debug)]
pub(crate) struct Unhandled;

impl fmt::Display for Unhandled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not handled by the fast path")
    }
}

impl std::error::Error for Unhandled {}

impl de::Error for Unhandled {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Unhandled
    }
}

type Result<T> = std::result::Result<T, Unhandled>;

/// A record: the fields of `line`, their bounds found by [`scan`], matched to a struct by
/// `headers` when there are some, else by position.
pub(crate) struct Record<'a> {
    line: &'a [u8],
    /// Bit `i % 64` of word `i / 64` is set where byte `i` of the line is a delimiter.
    delimiters: &'a [u64],
    headers: Option<&'a [String]>,
    /// Where the next field starts.
    pos: usize,
    /// Fields read so far.
    read: usize,
    /// Whether the last field has been read.
    ended: bool,
    /// The delimiters not yet passed in word `word` of `delimiters`.
    bits: u64,
    word: usize,
}

impl<'a> Record<'a> {
    /// The record of `line`, or `None` when the line has a quote. `masks` is scratch space
    /// kept by the caller from line to line.
    #[inline(always)]
    pub(crate) fn new(
        line: &'a [u8],
        delimiter: u8,
        headers: Option<&'a [String]>,
        masks: &'a mut Vec<u64>,
    ) -> Option<Self> {
        if !scan(line, delimiter, masks) {
            return None;
        }
        Some(Record {
            line,
            bits: masks.first().copied().unwrap_or(0),
            word: 0,
            delimiters: masks,
            headers,
            pos: 0,
            read: 0,
            ended: false,
        })
    }
    /// Whether the value made from the record used it all as the csv crate would: with headers,
    /// one field per header, no more and no fewer (by position, fields after those the value
    /// takes are ignored, as the csv crate does).
    pub(crate) fn complete(&self) -> bool {
        self.headers
            .is_none_or(|h| self.ended && self.read == h.len())
    }
    /// Where the next field ends: the next delimiter not yet passed, or the end of the line.
    /// Fields are read in order, so the delimiters are taken one by one, lowest bit first.
    #[inline(always)]
    fn next_delimiter(&mut self) -> usize {
        loop {
            if self.bits != 0 {
                let at = self.word * 64 + self.bits.trailing_zeros() as usize;
                self.bits &= self.bits - 1;
                return at;
            }
            self.word += 1;
            match self.delimiters.get(self.word) {
                Some(m) => self.bits = *m,
                None => return self.line.len(),
            }
        }
    }
    /// Deserializes the next field with `seed`; `None` when every field has been read.
    #[inline(always)]
    fn next<'de, S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>> {
        if self.ended {
            return Ok(None);
        }
        let end = self.next_delimiter();
        let value = seed.deserialize(Field {
            line: self.line,
            start: self.pos,
            end,
        })?;
        self.read += 1;
        if end < self.line.len() {
            self.pos = end + 1; // past the delimiter
        } else {
            self.pos = end;
            self.ended = true;
        }
        Ok(Some(value))
    }
}

/// Every byte of `x` equal to the byte repeated in `pattern`: its high bit set, all else clear.
/// Exact (no borrow from one byte reaches the next).
#[inline(always)]
fn equal_bytes(x: u64, pattern: u64) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    let x = x ^ pattern;
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

/// The high bits of the eight bytes of `x` gathered into the low eight bits (byte 0's first).
#[inline(always)]
fn gather_high_bits(x: u64) -> u64 {
    // Each (x >> 7) byte is 0 or 1; the multiplier moves byte i's bit to bit 56 + i, and no two
    // partial products share a bit, so nothing carries.
    ((x >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// Finds the delimiters of `line` into `masks` (see [`Record::delimiters`]); `false` when the
/// line holds a quote.
#[inline(always)]
fn scan(line: &[u8], delimiter: u8, masks: &mut Vec<u64>) -> bool {
    const QUOTES: u64 = 0x2222_2222_2222_2222;
    let pattern = u64::from_le_bytes([delimiter; 8]);
    masks.clear();
    let (mut mask, mut quotes) = (0u64, 0u64);
    let mut chunks = line.chunks_exact(8);
    for (k, chunk) in chunks.by_ref().enumerate() {
        let x = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        quotes |= equal_bytes(x, QUOTES);
        mask |= gather_high_bits(equal_bytes(x, pattern)) << (8 * (k % 8));
        if k % 8 == 7 {
            masks.push(mask);
            mask = 0;
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let shift = 8 * (line.len() / 8 % 8);
        if line.len() >= 8 {
            // The line's last eight bytes, moved down so that the `rest` bytes come first; the
            // bytes above them are not the line's and are masked off.
            let x = word(line, line.len() - 8) >> (8 * (8 - rest.len()));
            let valid = (1u64 << (8 * rest.len())) - 1;
            quotes |= equal_bytes(x, QUOTES) & valid;
            mask |= (gather_high_bits(equal_bytes(x, pattern) & valid)) << shift;
        } else {
            for (i, b) in rest.iter().enumerate() {
                quotes |= u64::from(*b == b'"');
                mask |= u64::from(*b == delimiter) << (shift + i);
            }
        }
    }
    if !line.len().is_multiple_of(64) {
        masks.push(mask);
    }
    quotes == 0
}

/// The eight bytes of `line` from `at`, the first the lowest.
#[inline(always)]
fn word(line: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(line[at..at + 8].try_into().expect("8 bytes"))
}

/// Powers of ten up to 10^8.
const POW10: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// The number up to eight decimal digits make, given as the top bytes of `x` (the first digit
/// lowest), `count` of them; `None` when one of them is not a digit. SWAR: a few word operations
/// instead of a step per digit.
#[inline(always)]
fn top_digits(x: u64, count: usize) -> Option<u64> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    // Bytes below the digits become '0', so that subtracting '0' borrows nowhere; a digit then
    // holds its value in its byte, and any other byte ends up above 9 (adding 0x76 sets its high
    // bit) or wrapped below zero (high bit set).
    let keep = u64::MAX.checked_shl(8 * (8 - count) as u32).unwrap_or(0);
    let v = ((x & keep) | (ZEROS & !keep)).wrapping_sub(ZEROS);
    if (v | v.wrapping_add(0x7676_7676_7676_7676)) & 0x8080_8080_8080_8080 != 0 {
        return None;
    }
    // Fold neighbours: pairs, fours, eights.
    let v = (v.wrapping_mul(10 * 256 + 1) >> 8) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(100 * 65_536 + 1) >> 16) & 0x0000_FFFF_0000_FFFF;
    Some(v.wrapping_mul(10_000 * (1 << 32) + 1) >> 32)
}

/// The number the digits `line[start..end]` make, every byte a digit; up to 19 digits (which
/// always fit) eight at a time, more one at a time with overflow checks.
#[inline(always)]
fn parse_digits(line: &[u8], start: usize, end: usize) -> Result<u64> {
    let len = end - start;
    if len == 0 {
        return Err(Unhandled);
    }
    if len > 19 || line.len() < 8 {
        return line[start..end].iter().try_fold(0u64, |n, b| {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                return Err(Unhandled);
            }
            n.checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(d)))
                .ok_or(Unhandled)
        });
    }
    let (mut n, mut i) = (0u64, start);
    while end - i >= 8 {
        n = n * POW10[8] + top_digits(word(line, i), 8).ok_or(Unhandled)?;
        i += 8;
    }
    let left = end - i;
    if left > 0 {
        // Eight bytes ending with the field's last, read from the line where they lie.
        let x = if end >= 8 {
            word(line, end - 8)
        } else {
            word(line, 0) << (8 * (8 - end))
        };
        n = n * POW10[left] + top_digits(x, left).ok_or(Unhandled)?;
    }
    Ok(n)
}

macro_rules! unhandled {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
            Err(Unhandled)
        })*
    };
}

impl<'de, 'a> de::Deserializer<'de> for &mut Record<'a> {
    type Error = Unhandled;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        if self.headers.is_some() {
            visitor.visit_map(self)
        } else {
            visitor.visit_seq(self)
        }
    }
    #[inline(always)]
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value> {
        visitor.visit_seq(self)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_seq(self)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }
    unhandled! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string
        deserialize_bytes deserialize_byte_buf deserialize_option deserialize_unit deserialize_seq
        deserialize_map deserialize_identifier deserialize_ignored_any
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, _: V) -> Result<V::Value> {
        Err(Unhandled)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value> {
        Err(Unhandled)
    }
}

impl<'de, 'a> de::SeqAccess<'de> for Record<'a> {
    type Error = Unhandled;
    #[inline(always)]
    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>> {
        self.next(seed)
    }
}

impl<'de, 'a> de::MapAccess<'de> for Record<'a> {
    type Error = Unhandled;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        let headers = self.headers.unwrap_or(&[]);
        match headers.get(self.read) {
            None => Ok(None),
            Some(name) => seed
                .deserialize(name.as_str().into_deserializer())
                .map(Some),
        }
    }
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value> {
        self.next(seed)?.ok_or(Unhandled)
    }
}

/// One field: `line[start..end]` (no quote in it: [`scan`] saw to that).
struct Field<'a> {
    line: &'a [u8],
    start: usize,
    end: usize,
}

impl<'a> Field<'a> {
    /// The field's bytes.
    #[inline(always)]
    fn bytes(&self) -> &'a [u8] {
        &self.line[self.start..self.end]
    }
    fn is_empty(&self) -> bool {
        self.start == self.end
    }
    fn text(&self) -> Result<&'a str> {
        std::str::from_utf8(self.bytes()).map_err(|_| Unhandled)
    }
    /// The field's digits as a number, after `skip` bytes (a sign) and an optional `+`.
    #[inline(always)]
    fn digits(&self, skip: usize) -> Result<u64> {
        let mut start = self.start + skip;
        if start < self.end && self.line[start] == b'+' {
            start += 1;
        }
        parse_digits(self.line, start.min(self.end), self.end)
    }
    #[inline(always)]
    fn unsigned(&self) -> Result<u64> {
        self.digits(0)
    }
    #[inline(always)]
    fn signed(&self) -> Result<i64> {
        let field = self.bytes();
        if field.first() == Some(&b'-') {
            if field.get(1) == Some(&b'+') {
                return Err(Unhandled);
            }
            let magnitude = self.digits(1)?;
            0i64.checked_sub_unsigned(magnitude).ok_or(Unhandled)
        } else {
            i64::try_from(self.digits(0)?).map_err(|_| Unhandled)
        }
    }
}

macro_rules! integers {
    ($($method:ident $visit:ident $ty:ty, $parse:ident;)*) => {
        $(#[inline(always)]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            visitor.$visit(<$ty>::try_from(self.$parse()?).map_err(|_| Unhandled)?)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Field<'_> {
    type Error = Unhandled;

    integers! {
        deserialize_u8 visit_u8 u8, unsigned;
        deserialize_u16 visit_u16 u16, unsigned;
        deserialize_u32 visit_u32 u32, unsigned;
        deserialize_u64 visit_u64 u64, unsigned;
        deserialize_i8 visit_i8 i8, signed;
        deserialize_i16 visit_i16 i16, signed;
        deserialize_i32 visit_i32 i32, signed;
        deserialize_i64 visit_i64 i64, signed;
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.bytes() {
            b"true" => visitor.visit_bool(true),
            b"false" => visitor.visit_bool(false),
            _ => Err(Unhandled),
        }
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_f32(self.text()?.parse().map_err(|_| Unhandled)?)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_f64(self.text()?.parse().map_err(|_| Unhandled)?)
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let mut chars = self.text()?.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(Unhandled),
        }
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_str(self.text()?)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_str(self.text()?)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_bytes(self.bytes())
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_bytes(self.bytes())
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.is_empty() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.is_empty() {
            visitor.visit_unit()
        } else {
            Err(Unhandled)
        }
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_enum(self.text()?.into_deserializer())
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_str(self.text()?)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }
    // Inferred types, nested sequences and maps in a field: left to the csv crate.
    unhandled! { deserialize_any deserialize_seq deserialize_map }
    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, _: V) -> Result<V::Value> {
        Err(Unhandled)
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value> {
        Err(Unhandled)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        _: V,
    ) -> Result<V::Value> {
        Err(Unhandled)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value> {
        Err(Unhandled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// Decodes `line` (fields separated by commas) the fast way.
    fn fast<T: de::DeserializeOwned>(line: &str, headers: Option<&[String]>) -> Option<T> {
        let mut masks = Vec::new();
        let mut record = Record::new(line.as_bytes(), b',', headers, &mut masks)?;
        T::deserialize(&mut record)
            .ok()
            .filter(|_| record.complete())
    }

    /// What the csv crate makes of the same line.
    fn slow<T: de::DeserializeOwned>(line: &str, headers: Option<&[String]>) -> Option<T> {
        let record = csv::ByteRecord::from(line.split(',').collect::<Vec<_>>());
        let headers = headers.map(|h| csv::ByteRecord::from(h.to_vec()));
        record.deserialize(headers.as_ref()).ok()
    }

    #[derive(Deserialize, Debug, PartialEq)]
    enum Kind {
        Start,
        End,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Row {
        id: u32,
        kind: Kind,
        tip: Option<f32>,
        name: String,
        ok: bool,
    }

    #[test]
    fn digits_are_read_eight_at_a_time() {
        // The digits sit in the top bytes of the word, the first digit lowest.
        let top = |text: &str| {
            let mut bytes = [b'x'; 8];
            bytes[8 - text.len()..].copy_from_slice(text.as_bytes());
            top_digits(u64::from_le_bytes(bytes), text.len())
        };
        for (text, want) in [
            ("12345678", Some(12_345_678)),
            ("00000000", Some(0)),
            ("99999999", Some(99_999_999)),
            ("1234", Some(1234)),
            ("7", Some(7)),
            ("", Some(0)),
            ("12a4", None),
            ("-123", None),
            ("123/", None),
            ("123:", None),
        ] {
            assert_eq!(top(text), want, "{text:?}");
        }
        // Every byte that is not a digit is refused, wherever it is.
        for stop in (0u8..=255).filter(|b| !b.is_ascii_digit()) {
            for at in 0..8 {
                let mut bytes = *b"98765432";
                bytes[at] = stop;
                assert_eq!(
                    top_digits(u64::from_le_bytes(bytes), 8),
                    None,
                    "byte {stop} at {at}"
                );
            }
        }
    }

    #[test]
    fn delimiters_are_found_in_lines_of_every_length() {
        // A delimiter at every position of lines up to 200 bytes long, with and without a quote.
        let mut masks = Vec::new();
        for len in 0..200 {
            for at in (0..len).step_by(7) {
                let mut line = vec![b'a'; len];
                line[at] = b';';
                if len > 2 {
                    line[len - 1] = b';';
                }
                let want: Vec<usize> = (0..len).filter(|i| line[*i] == b';').collect();
                assert!(scan(&line, b';', &mut masks), "{len} {at}");
                let found: Vec<usize> = (0..len)
                    .filter(|i| masks[i / 64] >> (i % 64) & 1 == 1)
                    .collect();
                assert_eq!(found, want, "{len} {at}");
                // The bytes past the line's end, zero in the word read, are no NUL delimiter.
                assert!(scan(&line, b'\0', &mut masks), "{len} {at}");
                assert!(masks.iter().all(|m| *m == 0), "{len} {at}");
                line[len / 2] = b'"';
                assert!(!scan(&line, b';', &mut masks), "{len} {at}");
            }
        }
    }

    #[test]
    fn numbers_of_every_length_parse_as_str_parse_does() {
        // Every length and value around the fast path's edges parses as str::parse does.
        for line in [
            "1700000000123,5,-1700000000123",
            "12345678,123456789,-99999999",
            "9999999999999999999,1,1",
            "18446744073709551615,0,9223372036854775807",
        ] {
            type Row = (u64, u64, i64);
            let want: Option<Row> = {
                let f: Vec<&str> = line.split(',').collect();
                Some((
                    f[0].parse().unwrap(),
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                ))
            };
            assert_eq!(fast::<Row>(line, None), want, "{line}");
        }
        assert_eq!(fast::<(u64,)>("18446744073709551616", None), None);
        assert_eq!(fast::<(u64,)>("123456789012345678901", None), None);
        // A field of every length, first or last, in lines short and long; a non-digit among its
        // bytes leaves the line to the general path.
        let digits = "98765432109876543210";
        for len in 1..=20 {
            let number = &digits[..len];
            let value = number.parse::<u64>().ok();
            for other in ["7", "12345678", "123456789012"] {
                let n: u64 = other.parse().unwrap();
                let line = |number: &str, first: bool| match first {
                    true => format!("{number},{other}"),
                    false => format!("{other},{number}"),
                };
                for first in [true, false] {
                    let want = value.map(|v| if first { (v, n) } else { (n, v) });
                    let good = line(number, first);
                    assert_eq!(fast::<(u64, u64)>(&good, None), want, "{good}");
                    // A byte that is not a digit anywhere in the number.
                    for at in 0..len {
                        let bad = line(&format!("{}x{}", &number[..at], &number[at + 1..]), first);
                        assert_eq!(fast::<(u64, u64)>(&bad, None), None, "{bad}");
                    }
                }
            }
        }
    }

    #[test]
    fn values_agree_with_the_csv_crate_and_what_it_cannot_do_falls_back() {
        type Bid = (u64, u64, i64);
        for line in [
            "1,2,3",
            "7,+8,-9",
            "18446744073709551615,0,-9223372036854775808",
        ] {
            assert_eq!(fast::<Bid>(line, None), slow::<Bid>(line, None), "{line}");
            assert!(fast::<Bid>(line, None).is_some(), "{line}");
        }
        // Not numbers, or out of range: no value (the caller asks the csv crate, which says why).
        for line in [
            "1,x,3",
            "1,2,",
            "-1,2,3",
            "1,2,9223372036854775808",
            "1,2,--3",
        ] {
            assert_eq!(fast::<Bid>(line, None), None, "{line}");
        }
        let headers: Vec<String> = ["name", "ok", "id", "kind", "tip"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for line in ["ann,true,3,Start,1.5", "bo,false,4,End,"] {
            let f = fast::<Row>(line, Some(&headers));
            assert!(f.is_some(), "{line}");
            assert_eq!(f, slow::<Row>(line, Some(&headers)), "{line}");
        }
        assert_eq!(fast::<Row>("ann,yes,3,Start,1", Some(&headers)), None);
        assert_eq!(fast::<Row>("ann,true,3,Middle,1", Some(&headers)), None);
        // Fields past those a tuple takes: as the csv crate does with them.
        assert_eq!(
            fast::<(u64, u64)>("1,2,3", None),
            slow::<(u64, u64)>("1,2,3", None)
        );
        // Structs by position without headers, as the csv crate does.
        let line = "3,Start,,al,true";
        assert_eq!(fast::<Row>(line, None), slow::<Row>(line, None));
        assert!(fast::<Row>(line, None).is_some());
    }
}
