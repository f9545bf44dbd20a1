//! A fast way from the fields of a CSV line to a serde value, for the common case: the fields are
//! read where they lie in the line (no copy into a record), integers are parsed from the bytes.
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

/// A record: the fields of `line`, found one after another as they are asked for (an integer
/// field is parsed in the same pass that finds its end), matched to a struct by `headers` when
/// there are some, else by position.
pub(crate) struct Record<'a> {
    line: &'a [u8],
    delimiter: u8,
    headers: Option<&'a [String]>,
    /// Where the next field starts.
    pos: usize,
    /// Fields read so far.
    read: usize,
    /// Whether the last field has been read.
    ended: bool,
}

impl<'a> Record<'a> {
    pub(crate) fn new(line: &'a [u8], delimiter: u8, headers: Option<&'a [String]>) -> Self {
        Record {
            line,
            delimiter,
            headers,
            pos: 0,
            read: 0,
            ended: false,
        }
    }
    /// Whether the value made from the record used it all as the csv crate would: with headers,
    /// one field per header, no more and no fewer (by position, fields after those the value
    /// takes are ignored, as the csv crate does).
    pub(crate) fn complete(&self) -> bool {
        self.headers
            .is_none_or(|h| self.ended && self.read == h.len())
    }
    /// Deserializes the next field with `seed`; `None` when every field has been read.
    fn next<'de, S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>> {
        if self.ended {
            return Ok(None);
        }
        let rest = &self.line[self.pos..];
        let end = std::cell::Cell::new(None);
        let value = seed.deserialize(Field {
            rest,
            delimiter: self.delimiter,
            end: &end,
        })?;
        // A visitor that looked at no byte (a unit, say) still passes the field.
        let len = match end.get() {
            Some(len) => len,
            None => Field::len(rest, self.delimiter),
        };
        self.pos += len;
        self.read += 1;
        if self.pos < self.line.len() {
            self.pos += 1; // the delimiter
        } else {
            self.ended = true;
        }
        Ok(Some(value))
    }
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

/// The number eight ASCII digits make, or `None` when one of the bytes is not a digit. SWAR:
/// the digits are combined pairwise by three multiplications instead of eight dependent steps.
fn eight_digits(bytes: [u8; 8]) -> Option<u64> {
    let chunk = u64::from_le_bytes(bytes);
    // Every byte 0x30..=0x39: high nibble 3, and adding 6 does not carry out of the low nibble.
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    if chunk & HIGH != THREES || (chunk + 0x0606_0606_0606_0606) & HIGH != THREES {
        return None;
    }
    // The first digit is the lowest byte: fold neighbours, 2 then 4 then 8 digits.
    let v = chunk & 0x0F0F_0F0F_0F0F_0F0F;
    let v = (v.wrapping_mul(10 * 256 + 1) >> 8) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(100 * 65_536 + 1) >> 16) & 0x0000_FFFF_0000_FFFF;
    Some(v.wrapping_mul(10_000 * (1 << 32) + 1) >> 32)
}

/// One field: the line from where it starts (it ends at the next delimiter). Reading it sets
/// `end` to its length.
struct Field<'a, 'e> {
    rest: &'a [u8],
    delimiter: u8,
    end: &'e std::cell::Cell<Option<usize>>,
}

impl<'a> Field<'a, '_> {
    /// Length of the field at the start of `rest`.
    fn len(rest: &[u8], delimiter: u8) -> usize {
        memchr::memchr(delimiter, rest).unwrap_or(rest.len())
    }
    /// The field's bytes; a quote in them is left to the csv crate.
    fn bytes(&self) -> Result<&'a [u8]> {
        let len = Field::len(self.rest, self.delimiter);
        let field = &self.rest[..len];
        if memchr::memchr(b'"', field).is_some() {
            return Err(Unhandled);
        }
        self.end.set(Some(len));
        Ok(field)
    }
    fn is_empty(&self) -> bool {
        self.rest.first().is_none_or(|b| *b == self.delimiter)
    }
    fn text(&self) -> Result<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Unhandled)
    }
    /// Digits up to the delimiter (after an optional `+`), parsed as they are found; `skip`
    /// bytes (a sign) come first.
    fn digits(&self, skip: usize) -> Result<u64> {
        let rest = &self.rest[skip..];
        let start = usize::from(rest.first() == Some(&b'+'));
        let mut n: u64 = 0;
        let mut i = start;
        // Eight digits at a time while they cannot overflow (a timestamp in ms has 13).
        while i - start + 8 <= 19
            && let Some(chunk) = rest.get(i..i + 8)
            && let Some(eight) = eight_digits(chunk.try_into().expect("8 bytes"))
        {
            n = n * 100_000_000 + eight;
            i += 8;
        }
        while let Some(&b) = rest.get(i) {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                if b == self.delimiter {
                    break;
                }
                return Err(Unhandled);
            }
            // 19 digits cannot overflow a u64; past them, check.
            n = if i - start < 19 {
                n * 10 + d as u64
            } else {
                n.checked_mul(10)
                    .and_then(|n| n.checked_add(d as u64))
                    .ok_or(Unhandled)?
            };
            i += 1;
        }
        if i == start {
            return Err(Unhandled);
        }
        self.end.set(Some(skip + i));
        Ok(n)
    }
    fn unsigned(&self) -> Result<u64> {
        self.digits(0)
    }
    fn signed(&self) -> Result<i64> {
        if self.rest.first() == Some(&b'-') {
            if self.rest.get(1) == Some(&b'+') {
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
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            visitor.$visit(<$ty>::try_from(self.$parse()?).map_err(|_| Unhandled)?)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Field<'_, '_> {
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
        match self.bytes()? {
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
        visitor.visit_bytes(self.bytes()?)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_bytes(self.bytes()?)
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.is_empty() {
            self.end.set(Some(0));
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.is_empty() {
            self.end.set(Some(0));
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
        self.bytes()?;
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
        let mut record = Record::new(line.as_bytes(), b',', headers);
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
    fn eight_digits_at_once_are_the_number_they_spell() {
        for n in [0u64, 1, 12_345_678, 99_999_999, 10_000_000, 40_302_010] {
            let text = format!("{n:08}");
            let bytes: [u8; 8] = text.as_bytes().try_into().unwrap();
            assert_eq!(eight_digits(bytes), Some(n), "{text}");
        }
        for text in ["1234567a", "/2345678", ":2345678", "1234 678", "12345-78"] {
            let bytes: [u8; 8] = text.as_bytes().try_into().unwrap();
            assert_eq!(eight_digits(bytes), None, "{text}");
        }
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
        // Structs by position without headers, as the csv crate does.
        let line = "3,Start,,al,true";
        assert_eq!(fast::<Row>(line, None), slow::<Row>(line, None));
        assert!(fast::<Row>(line, None).is_some());
    }
}
