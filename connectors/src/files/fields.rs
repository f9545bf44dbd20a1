//! A fast way from the fields of a CSV line to a serde value, for the common case: the fields are
//! read where they lie in the line (no copy into a record), one after another as the value asks
//! for them, and an integer is parsed in the same pass that finds its end, eight bytes at a time.
//! A quote in a field that is read leaves the line to the csv crate (quoting changes where fields
//! end); fields after those a value takes by position are not looked at, as the csv crate ignores
//! them too.
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

/// The number the leading ASCII digits of `bytes` make (as many as there are, up to eight), and
/// how many there are. SWAR: the digits are found and combined with a few word operations instead
/// of a step per digit.
fn leading_digits(bytes: [u8; 8]) -> (u64, usize) {
    // The first character is the lowest byte. Subtracting '0' from every byte leaves a digit's
    // value in its byte; a byte that is not a digit ends up above 9 — or, below '0', borrows and
    // has its high bit set — and adding 0x76 sets the high bit of any byte above 9. A borrow or
    // carry only reaches later characters, after the first one that is not a digit.
    let v = u64::from_le_bytes(bytes).wrapping_sub(0x3030_3030_3030_3030);
    let not_digit = (v | v.wrapping_add(0x7676_7676_7676_7676)) & 0x8080_8080_8080_8080;
    let count = (not_digit.trailing_zeros() / 8) as usize;
    if count == 0 {
        return (0, 0);
    }
    // Keep the `count` digits, moved up so that zeros lead them; fold neighbours, 2, 4, 8.
    let v = (v & 0x0F0F_0F0F_0F0F_0F0F) << (8 * (8 - count));
    let v = (v.wrapping_mul(10 * 256 + 1) >> 8) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(100 * 65_536 + 1) >> 16) & 0x0000_FFFF_0000_FFFF;
    (v.wrapping_mul(10_000 * (1 << 32) + 1) >> 32, count)
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
        let digits = &rest[start..];
        let mut n: u64 = 0;
        let mut i = 0;
        // Eight bytes at a time while there are eight; the last few of the line one by one.
        while let Some(eight) = digits.get(i..i + 8) {
            let (value, count) = leading_digits(eight.try_into().expect("8 bytes"));
            n = n
                .checked_mul(POW10[count])
                .and_then(|n| n.checked_add(value))
                .ok_or(Unhandled)?;
            i += count;
            if count < 8 {
                break;
            }
        }
        let left = digits.len() - i;
        if (1..8).contains(&left) && digits.len() >= 8 {
            // The last few bytes of the line: the line's last eight moved down past those read
            // already, zeros (not digits) above them — one more word step instead of a step
            // (a multiply and a branch) per digit.
            let last = u64::from_le_bytes(digits[digits.len() - 8..].try_into().expect("8 bytes"));
            let (value, count) = leading_digits((last >> (8 * (8 - left))).to_le_bytes());
            n = n
                .checked_mul(POW10[count])
                .and_then(|n| n.checked_add(value))
                .ok_or(Unhandled)?;
            i += count;
        } else if left < 8 {
            while let Some(&b) = digits.get(i) {
                let d = b.wrapping_sub(b'0');
                if d > 9 {
                    break;
                }
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(d as u64))
                    .ok_or(Unhandled)?;
                i += 1;
            }
        }
        if i == 0 || digits.get(i).is_some_and(|b| *b != self.delimiter) {
            return Err(Unhandled);
        }
        self.end.set(Some(skip + start + i));
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
    fn leading_digits_are_found_and_read_at_once() {
        for (text, want) in [
            ("12345678", (12_345_678, 8)),
            ("00000000", (0, 8)),
            ("99999999", (99_999_999, 8)),
            ("1234,678", (1234, 4)),
            ("7,000000", (7, 1)),
            (",1234567", (0, 0)),
            ("123/4567", (123, 3)),
            ("123:4567", (123, 3)),
            ("1234567a", (1_234_567, 7)),
            ("-1234567", (0, 0)),
            ("0000001\0", (1, 7)),
        ] {
            let bytes: [u8; 8] = text.as_bytes().try_into().unwrap();
            assert_eq!(leading_digits(bytes), want, "{text}");
        }
        // Every byte that is not a digit stops the digits, wherever it is.
        for stop in (0u8..=255).filter(|b| !b.is_ascii_digit()) {
            for at in 0..8 {
                let mut bytes = *b"98765432";
                bytes[at] = stop;
                let want: u64 = std::str::from_utf8(&bytes[..at])
                    .unwrap()
                    .parse()
                    .unwrap_or(0);
                assert_eq!(leading_digits(bytes), (want, at), "byte {stop} at {at}");
            }
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
        // A last field of every length, its last digits read from the line's last eight bytes;
        // a non-digit among them leaves the line to the general path.
        let digits = "98765432109876543210";
        for len in 1..=20 {
            for first in ["7", "12345678"] {
                let number = &digits[..len];
                let line = format!("{first},{number}");
                let want = number
                    .parse::<u64>()
                    .ok()
                    .map(|n| (first.parse().unwrap(), n));
                assert_eq!(fast::<(u64, u64)>(&line, None), want, "{line}");
                assert_eq!(
                    fast::<(u64, u64)>(&format!("{line}x"), None),
                    None,
                    "{line}x"
                );
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
