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

/// A record: `line` cut at `ends` (the end of each field; a field starts one past the previous
/// end), matched to a struct by `headers` when there are some, else by position.
pub(crate) struct Record<'a> {
    pub line: &'a [u8],
    pub ends: &'a [usize],
    pub headers: Option<&'a [String]>,
    pub next: usize,
}

impl<'a> Record<'a> {
    fn field(&self, i: usize) -> &'a [u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] + 1 };
        &self.line[start..self.ends[i]]
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
        if self.next >= self.ends.len() {
            return Ok(None);
        }
        let field = self.field(self.next);
        self.next += 1;
        seed.deserialize(Field(field)).map(Some)
    }
}

impl<'de, 'a> de::MapAccess<'de> for Record<'a> {
    type Error = Unhandled;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        let headers = self.headers.unwrap_or(&[]);
        match headers.get(self.next) {
            None => Ok(None),
            Some(name) => seed
                .deserialize(name.as_str().into_deserializer())
                .map(Some),
        }
    }
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value> {
        let field = self.field(self.next);
        self.next += 1;
        seed.deserialize(Field(field))
    }
}

/// One field's bytes.
struct Field<'a>(&'a [u8]);

impl Field<'_> {
    fn text(&self) -> Result<&str> {
        std::str::from_utf8(self.0).map_err(|_| Unhandled)
    }
    fn unsigned(&self) -> Result<u64> {
        let digits = self.0.strip_prefix(b"+").unwrap_or(self.0);
        if digits.is_empty() {
            return Err(Unhandled);
        }
        let mut n: u64 = 0;
        if digits.len() <= 19 {
            // 19 digits cannot overflow a u64.
            for &b in digits {
                let d = b.wrapping_sub(b'0');
                if d > 9 {
                    return Err(Unhandled);
                }
                n = n * 10 + d as u64;
            }
            return Ok(n);
        }
        for &b in digits {
            if !b.is_ascii_digit() {
                return Err(Unhandled);
            }
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add((b - b'0') as u64))
                .ok_or(Unhandled)?;
        }
        Ok(n)
    }
    fn signed(&self) -> Result<i64> {
        match self.0.strip_prefix(b"-") {
            Some(rest) => {
                let magnitude = Field(rest).unsigned()?;
                if rest.first() == Some(&b'+') {
                    return Err(Unhandled);
                }
                0i64.checked_sub_unsigned(magnitude).ok_or(Unhandled)
            }
            None => i64::try_from(self.unsigned()?).map_err(|_| Unhandled),
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
        match self.0 {
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
        visitor.visit_bytes(self.0)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_bytes(self.0)
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.0.is_empty() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.0.is_empty() {
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

    /// Splits `line` at commas and decodes it the fast way.
    fn fast<T: de::DeserializeOwned>(line: &str, headers: Option<&[String]>) -> Option<T> {
        let ends: Vec<usize> = line
            .bytes()
            .enumerate()
            .filter(|(_, b)| *b == b',')
            .map(|(i, _)| i)
            .chain(std::iter::once(line.len()))
            .collect();
        let mut record = Record {
            line: line.as_bytes(),
            ends: &ends,
            headers,
            next: 0,
        };
        T::deserialize(&mut record).ok()
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
