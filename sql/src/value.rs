//! SQL types and values: what a row holds, how it compares, prints and is read from text.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A column's type.
///
/// ```
/// use tidal_sql::DataType;
/// assert_eq!(DataType::Decimal(10, 2).to_string(), "DECIMAL(10, 2)");
/// assert!(DataType::Int.is_numeric());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    /// `BOOLEAN`.
    Boolean,
    /// `INT` (32 bits).
    Int,
    /// `BIGINT` (64 bits).
    BigInt,
    /// `DOUBLE`.
    Double,
    /// `DECIMAL(precision, scale)`: exact, up to 38 digits.
    Decimal(u8, u8),
    /// `STRING` / `VARCHAR`.
    String,
    /// `DATE`.
    Date,
    /// `TIMESTAMP(3)`: a date and time of day to the millisecond, without a zone.
    Timestamp,
    /// `TIMESTAMP_LTZ(3)`: an instant, shown in UTC.
    TimestampLtz,
    /// `INTERVAL`: a length of time to the millisecond.
    Interval,
    /// The type of a bare `NULL` literal (any type).
    Null,
    /// `ARRAY<T>`: a list of values of one type ([`DataType::array`], [`DataType::element`]).
    Array(Nested),
    /// `ROW<name T, ...>`: named fields ([`DataType::row`], [`DataType::fields`]).
    Row(Nested),
}

/// What an `ARRAY` or `ROW` type holds: its element type, or its fields' names and types.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Composite {
    /// An array's element type.
    Array(DataType),
    /// A row's fields, in order.
    Row(Vec<(String, DataType)>),
}

/// A nested type, kept once per process in a table so that [`DataType`] stays a small `Copy`
/// value: equal types share one entry, so comparing and hashing the handle compares and hashes
/// the type. Written out (serde, `Debug`) as the type itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nested(u32);

/// The nested types seen by this process.
static NESTED: std::sync::Mutex<Vec<Arc<Composite>>> = std::sync::Mutex::new(Vec::new());

impl Nested {
    /// The handle of `c` (made on first sight).
    pub fn of(c: Composite) -> Nested {
        let mut all = NESTED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = all.iter().position(|x| **x == c) {
            return Nested(i as u32);
        }
        all.push(Arc::new(c));
        Nested((all.len() - 1) as u32)
    }
    /// The type the handle stands for.
    pub fn get(self) -> Arc<Composite> {
        self.with(Arc::clone)
    }
    /// `f` of the type the handle stands for, from this thread's copy of the table (entries
    /// never change once made: the shared table is locked only for types this thread has not
    /// seen yet, not for every value that asks).
    fn with<R>(self, f: impl FnOnce(&Arc<Composite>) -> R) -> R {
        thread_local! {
            static SEEN: std::cell::RefCell<Vec<Arc<Composite>>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SEEN.with(|seen| {
            let i = self.0 as usize;
            if seen.borrow().len() <= i {
                let all = NESTED.lock().unwrap_or_else(|p| p.into_inner());
                *seen.borrow_mut() = all.clone();
            }
            // Out of the cell before `f` runs: `f` may look up other types.
            let c = Arc::clone(&seen.borrow()[i]);
            f(&c)
        })
    }
}

impl fmt::Debug for Nested {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.get(), f)
    }
}

impl Serialize for Nested {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Nested {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Composite::deserialize(d).map(Nested::of)
    }
}

impl DataType {
    /// `ARRAY<element>`.
    ///
    /// ```
    /// use tidal_sql::DataType;
    /// let tags = DataType::array(DataType::String);
    /// assert_eq!(tags.to_string(), "ARRAY<STRING>");
    /// assert_eq!(tags.element(), Some(DataType::String));
    /// ```
    pub fn array(element: DataType) -> DataType {
        DataType::Array(Nested::of(Composite::Array(element)))
    }
    /// `ROW<name type, ...>`.
    ///
    /// ```
    /// use tidal_sql::DataType;
    /// let owner = DataType::row(vec![("name".into(), DataType::String), ("age".into(), DataType::Int)]);
    /// assert_eq!(owner.to_string(), "ROW<name STRING, age INT>");
    /// assert_eq!(owner.fields().unwrap()[1].1, DataType::Int);
    /// ```
    pub fn row(fields: Vec<(String, DataType)>) -> DataType {
        DataType::Row(Nested::of(Composite::Row(fields)))
    }
    /// An array type's element type.
    pub fn element(self) -> Option<DataType> {
        match self {
            DataType::Array(n) => n.with(|c| match &**c {
                Composite::Array(t) => Some(*t),
                Composite::Row(_) => None,
            }),
            _ => None,
        }
    }
    /// `f` of a row type's fields (none for other types), without copying them.
    pub fn with_fields<R>(self, f: impl FnOnce(&[(String, DataType)]) -> R) -> R {
        match self {
            DataType::Row(n) => n.with(|c| match &**c {
                Composite::Row(fields) => f(fields),
                Composite::Array(_) => f(&[]),
            }),
            _ => f(&[]),
        }
    }
    /// A row type's fields.
    pub fn fields(self) -> Option<Vec<(String, DataType)>> {
        match self {
            DataType::Row(n) => match &*n.get() {
                Composite::Row(f) => Some(f.clone()),
                Composite::Array(_) => None,
            },
            _ => None,
        }
    }
    /// Whether the type is an `ARRAY` or a `ROW`.
    pub fn is_nested(self) -> bool {
        matches!(self, DataType::Array(_) | DataType::Row(_))
    }
    /// Whether values of the type are numbers.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            DataType::Int | DataType::BigInt | DataType::Double | DataType::Decimal(..)
        )
    }
    /// Whether values of the type are points in time.
    pub fn is_time(self) -> bool {
        matches!(self, DataType::Timestamp | DataType::TimestampLtz)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Boolean => f.write_str("BOOLEAN"),
            DataType::Int => f.write_str("INT"),
            DataType::BigInt => f.write_str("BIGINT"),
            DataType::Double => f.write_str("DOUBLE"),
            DataType::Decimal(p, s) => write!(f, "DECIMAL({p}, {s})"),
            DataType::String => f.write_str("STRING"),
            DataType::Date => f.write_str("DATE"),
            DataType::Timestamp => f.write_str("TIMESTAMP(3)"),
            DataType::TimestampLtz => f.write_str("TIMESTAMP_LTZ(3)"),
            DataType::Interval => f.write_str("INTERVAL"),
            DataType::Null => f.write_str("NULL"),
            DataType::Array(_) => write!(f, "ARRAY<{}>", self.element().unwrap_or(DataType::Null)),
            DataType::Row(_) => {
                f.write_str("ROW<")?;
                for (i, (name, ty)) in self.fields().unwrap_or_default().iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{name} {ty}")?;
                }
                f.write_str(">")
            }
        }
    }
}

/// One value of a row. `Null` is SQL's NULL, of any type.
///
/// Values of one column all have the column's type (or are `Null`). Doubles compare by their
/// total order (so they can be keys); decimals are an unscaled integer and a scale.
///
/// ```
/// use tidal_sql::Value;
/// assert_eq!(Value::decimal(12345, 2).to_string(), "123.45");
/// assert_eq!(Value::Timestamp(1_000).to_string(), "1970-01-01 00:00:01.000");
/// assert!(Value::Null < Value::Int(0));
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub enum Value {
    /// NULL.
    #[default]
    Null,
    /// A `BOOLEAN`.
    Bool(bool),
    /// An `INT`.
    Int(i32),
    /// A `BIGINT`.
    BigInt(i64),
    /// A `DOUBLE`.
    Double(f64),
    /// A `DECIMAL`: the unscaled value and the scale (`12345, 2` is 123.45); made with
    /// [`Value::decimal`].
    Decimal(Unscaled, u8),
    /// A `STRING`.
    Str(Arc<str>),
    /// A `DATE`: days since 1970-01-01.
    Date(i32),
    /// A `TIMESTAMP(3)`: milliseconds since 1970-01-01 00:00:00.
    Timestamp(i64),
    /// A `TIMESTAMP_LTZ(3)`: milliseconds since the epoch.
    TimestampLtz(i64),
    /// An `INTERVAL`, in milliseconds.
    Interval(i64),
    /// An `ARRAY`: its elements.
    Array(Arc<[Value]>),
    /// A `ROW`: its fields' values, in the order of the row type's fields.
    Row(Arc<[Value]>),
}

/// A decimal's unscaled value: an `i128` kept as two 64-bit halves, so that it asks for 8-byte
/// alignment rather than 16. With it a [`Value`] is 24 bytes, not 32, and rustc builds values in
/// registers and moves them whole instead of through the stack (32-byte, 16-aligned values were
/// written in parts and read back with 16-byte loads the parts could not feed: see the fifteenth
/// session in benches/README.md). Written out (serde) as the `i128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "i128", into = "i128")]
pub struct Unscaled {
    lo: u64,
    hi: i64,
}

impl Unscaled {
    /// The value.
    ///
    /// ```
    /// use tidal_sql::Unscaled;
    /// assert_eq!(Unscaled::from(-12345i128).get(), -12345);
    /// assert_eq!(Unscaled::from(i128::MIN).get(), i128::MIN);
    /// ```
    #[inline]
    pub fn get(self) -> i128 {
        (i128::from(self.hi) << 64) | i128::from(self.lo)
    }
}

impl From<i128> for Unscaled {
    #[inline]
    fn from(v: i128) -> Self {
        Unscaled {
            lo: v as u64,
            hi: (v >> 64) as i64,
        }
    }
}

impl From<Unscaled> for i128 {
    fn from(u: Unscaled) -> i128 {
        u.get()
    }
}

thread_local! {
    /// The empty string, shared by every empty string value of the thread.
    static EMPTY: Arc<str> = Arc::from("");
}

// A value is three words: kept so on purpose (see [`Unscaled`]).
const _: () = assert!(std::mem::size_of::<Value>() == 24);

impl Value {
    /// A `DECIMAL` of the unscaled value `v` and the scale `scale` (`12345, 2` is 123.45).
    ///
    /// ```
    /// use tidal_sql::Value;
    /// assert_eq!(Value::decimal(12345, 2).to_string(), "123.45");
    /// ```
    #[inline]
    pub fn decimal(v: i128, scale: u8) -> Value {
        Value::Decimal(Unscaled::from(v), scale)
    }
    /// Whether it is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    /// Reads a value of type `ty` from text as files hold it (a CSV field, a JSON string):
    /// numbers, `true`/`false`, dates `yyyy-MM-dd`, timestamps `yyyy-MM-dd HH:mm:ss[.SSS]`.
    ///
    /// ```
    /// use tidal_sql::{DataType, Value};
    /// let t = Value::parse(DataType::Timestamp, "1970-01-02 00:00:01.5").unwrap();
    /// assert_eq!(t.as_millis(), Some(86_401_500));
    /// assert!(Value::parse(DataType::Int, "x").is_err());
    /// ```
    pub fn parse(ty: DataType, text: &str) -> Result<Value, String> {
        parse_text(ty, text)
    }
    /// A string value (the empty string shared, not allocated).
    pub fn str(s: &str) -> Value {
        if s.is_empty() {
            return Value::Str(EMPTY.with(Arc::clone));
        }
        Value::Str(Arc::from(s))
    }
    /// The value as a 64-bit integer, for the integer types.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v as i64),
            Value::BigInt(v) => Some(*v),
            _ => None,
        }
    }
    /// The value as the integer it is kept as, for integers, dates (days) and timestamps (ms):
    /// two values of one of these types compare, and are equal, as these integers do.
    pub(crate) fn as_ordered_int(&self) -> Option<i64> {
        match self {
            Value::BigInt(x) | Value::Timestamp(x) | Value::TimestampLtz(x) => Some(*x),
            Value::Int(x) | Value::Date(x) => Some(i64::from(*x)),
            _ => None,
        }
    }
    /// The value as a double, for the numeric types.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(v) => Some(*v as f64),
            Value::BigInt(v) => Some(*v as f64),
            Value::Double(v) => Some(*v),
            Value::Decimal(v, s) => Some(v.get() as f64 / 10f64.powi(*s as i32)),
            _ => None,
        }
    }
    /// The milliseconds of a timestamp (either kind).
    pub fn as_millis(&self) -> Option<i64> {
        match self {
            Value::Timestamp(t) | Value::TimestampLtz(t) => Some(*t),
            _ => None,
        }
    }
    fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::BigInt(_) | Value::Double(_) | Value::Decimal(..) => 2,
            Value::Str(_) => 3,
            Value::Date(_) => 4,
            Value::Timestamp(_) | Value::TimestampLtz(_) => 5,
            Value::Interval(_) => 6,
            Value::Array(_) => 7,
            Value::Row(_) => 8,
        }
    }
}

/// Compares two decimals (or integers as decimals of scale 0).
fn cmp_decimal(a: i128, sa: u8, b: i128, sb: u8) -> Ordering {
    let scale = sa.max(sb);
    match (rescale(a, sa, scale), rescale(b, sb, scale)) {
        (Some(x), Some(y)) => x.cmp(&y),
        // Too large to align: compare as doubles.
        _ => (a as f64 / 10f64.powi(sa as i32)).total_cmp(&(b as f64 / 10f64.powi(sb as i32))),
    }
}

/// `v` (of scale `from`) at scale `to` (≥ `from`); `None` on overflow.
pub(crate) fn rescale(v: i128, from: u8, to: u8) -> Option<i128> {
    10i128
        .checked_pow(u32::from(to.saturating_sub(from)))
        .and_then(|m| v.checked_mul(m))
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        use Value::*;
        match (self, other) {
            (BigInt(a), BigInt(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (Null, Null) => Ordering::Equal,
            (Bool(a), Bool(b)) => a.cmp(b),
            (Str(a), Str(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Timestamp(a) | TimestampLtz(a), Timestamp(b) | TimestampLtz(b)) => a.cmp(b),
            (Interval(a), Interval(b)) => a.cmp(b),
            (Array(a), Array(b)) | (Row(a), Row(b)) => a.iter().cmp(b.iter()),
            (Double(a), b) if b.rank() == 2 => a.total_cmp(&b.as_f64().unwrap_or(0.0)),
            (a, Double(b)) if a.rank() == 2 => a.as_f64().unwrap_or(0.0).total_cmp(b),
            (Decimal(a, sa), Decimal(b, sb)) => cmp_decimal(a.get(), *sa, b.get(), *sb),
            (Decimal(a, sa), b) if b.rank() == 2 => {
                cmp_decimal(a.get(), *sa, b.as_i64().unwrap_or(0) as i128, 0)
            }
            (a, Decimal(b, sb)) if a.rank() == 2 => {
                cmp_decimal(a.as_i64().unwrap_or(0) as i128, 0, b.get(), *sb)
            }
            (a, b) if a.rank() == 2 && b.rank() == 2 => a.as_i64().cmp(&b.as_i64()),
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Equal values hash alike: numbers of every type hash by their value.
        match self {
            Value::Null => 0u8.hash(state),
            Value::Bool(b) => b.hash(state),
            Value::Int(_) | Value::BigInt(_) => self.as_i64().hash(state),
            Value::Decimal(v, s) => {
                let v = v.get();
                if *s == 0 || v % 10i128.pow(u32::from(*s)) == 0 {
                    i64::try_from(v / 10i128.pow(u32::from(*s)))
                        .ok()
                        .hash(state)
                } else {
                    self.as_f64().map(f64::to_bits).hash(state)
                }
            }
            Value::Double(d) => {
                if d.fract() == 0.0 && d.abs() < 9.0e15 {
                    Some(*d as i64).hash(state)
                } else {
                    // As a decimal of the same value hashes (`Some` of the double's bits).
                    Some(d.to_bits()).hash(state)
                }
            }
            Value::Str(s) => s.hash(state),
            Value::Date(d) => d.hash(state),
            Value::Timestamp(t) | Value::TimestampLtz(t) => t.hash(state),
            Value::Interval(i) => i.hash(state),
            Value::Array(vs) | Value::Row(vs) => {
                vs.len().hash(state);
                for v in vs.iter() {
                    v.hash(state);
                }
            }
        }
    }
}

impl fmt::Display for Value {
    /// As Flink writes a value as a string (`CAST(v AS STRING)`): NULL is `NULL` in rows printed
    /// by the print sink; doubles in Java's shortest form; timestamps with their milliseconds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => f.write_str(if *b { "TRUE" } else { "FALSE" }),
            Value::Int(v) => write!(f, "{v}"),
            Value::BigInt(v) => write!(f, "{v}"),
            Value::Double(v) => write_double(f, *v),
            Value::Decimal(v, s) => write_decimal(f, v.get(), *s),
            Value::Str(s) => f.write_str(s),
            Value::Date(d) => {
                let (y, m, day) = civil_from_days(i64::from(*d));
                write!(f, "{y:04}-{m:02}-{day:02}")
            }
            Value::Timestamp(t) | Value::TimestampLtz(t) => write_timestamp(f, *t),
            Value::Interval(ms) => write_interval(f, *ms),
            Value::Array(vs) => write_list(f, "[", vs, "]", |f, v| write!(f, "{v}")),
            Value::Row(vs) => write_list(f, "(", vs, ")", |f, v| write!(f, "{v}")),
        }
    }
}

/// A value as Flink's print connector shows it: Java's `toString` of the value's external type —
/// `null`, `true`, timestamps as `LocalDateTime` (`2024-03-01T08:00`, `2024-03-01T08:00:10.500`),
/// `TIMESTAMP_LTZ` as `Instant` (`2024-03-01T08:00:00Z`), decimals as `BigDecimal` (`1E-8`),
/// intervals as `Duration` (`PT1H30M`).
///
/// ```
/// use tidal_sql::{Printed, Value};
/// assert_eq!(Printed(&Value::Timestamp(1_709_280_000_000)).to_string(), "2024-03-01T08:00");
/// assert_eq!(Printed(&Value::Null).to_string(), "null");
/// ```
pub struct Printed<'a>(pub &'a Value);

impl fmt::Display for Printed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => f.write_str(if *b { "true" } else { "false" }),
            Value::Decimal(v, s) => write_big_decimal(f, v.get(), *s),
            Value::Timestamp(ms) => {
                let (date, h, m, s, milli) = split_millis(*ms);
                write!(f, "{date}T{h:02}:{m:02}")?;
                if s > 0 || milli > 0 {
                    write!(f, ":{s:02}")?;
                }
                if milli > 0 {
                    write!(f, ".{milli:03}")?;
                }
                Ok(())
            }
            Value::TimestampLtz(ms) => {
                let (date, h, m, s, milli) = split_millis(*ms);
                write!(f, "{date}T{h:02}:{m:02}:{s:02}")?;
                if milli > 0 {
                    write!(f, ".{milli:03}")?;
                }
                f.write_str("Z")
            }
            Value::Interval(ms) => write_duration(f, *ms),
            Value::Array(vs) => write_list(f, "[", vs, "]", |f, v| write!(f, "{}", Printed(v))),
            Value::Row(vs) => write_list(f, "+I[", vs, "]", |f, v| write!(f, "{}", Printed(v))),
            other => write!(f, "{other}"),
        }
    }
}

/// `open`, the values written by `each` and separated by `, `, `close`.
fn write_list(
    f: &mut fmt::Formatter<'_>,
    open: &str,
    values: &[Value],
    close: &str,
    each: impl Fn(&mut fmt::Formatter<'_>, &Value) -> fmt::Result,
) -> fmt::Result {
    f.write_str(open)?;
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        each(f, v)?;
    }
    f.write_str(close)
}

/// A value as Flink's `csv` and `json` formats write it: timestamps `2024-03-01 08:00:00.07`
/// (SQL form, the fraction without trailing zeros; `TIMESTAMP_LTZ` with a `Z`), booleans
/// `true`, decimals as `BigDecimal`; NULL as the empty text.
///
/// ```
/// use tidal_sql::{Value, file_text};
/// assert_eq!(file_text(&Value::Timestamp(1_709_280_000_070)), "2024-03-01 08:00:00.07");
/// assert_eq!(file_text(&Value::Bool(true)), "true");
/// ```
pub fn file_text(v: &Value) -> String {
    let mut out = Vec::new();
    write_file_text(v, &mut out);
    String::from_utf8(out).expect("values are written as UTF-8")
}

/// Appends [`file_text`] of `v` to `out`, without making a string for the common types
/// (integers, strings, timestamps): what file sinks call per value.
///
/// ```
/// use tidal_sql::{Value, write_file_text};
/// let mut out = b"at ".to_vec();
/// write_file_text(&Value::Timestamp(1_709_280_000_000), &mut out);
/// assert_eq!(out, b"at 2024-03-01 08:00:00");
/// ```
pub fn write_file_text(v: &Value, out: &mut Vec<u8>) {
    use std::io::Write;
    match v {
        Value::Null => {}
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        Value::BigInt(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        Value::Str(s) => out.extend_from_slice(s.as_bytes()),
        Value::Decimal(d, scale) if !write_plain_decimal(d.get(), *scale, out) => {
            write!(out, "{}", Printed(v)).expect("writing to a Vec");
        }
        Value::Decimal(..) => {}
        Value::Interval(_) => write!(out, "{}", Printed(v)).expect("writing to a Vec"),
        Value::Timestamp(ms) | Value::TimestampLtz(ms) => {
            let days = ms.div_euclid(86_400_000);
            let in_day = ms.rem_euclid(86_400_000);
            let (y, m, d) = civil_from_days(days);
            if (0..=9999).contains(&y) {
                let y = y as u32;
                push_digits(out, y / 100, 2);
                push_digits(out, y % 100, 2);
            } else {
                write!(out, "{y:04}").expect("writing to a Vec");
            }
            out.push(b'-');
            push_digits(out, m, 2);
            out.push(b'-');
            push_digits(out, d, 2);
            out.push(b' ');
            let in_day = in_day as u32;
            push_digits(out, in_day / 3_600_000, 2);
            out.push(b':');
            push_digits(out, in_day / 60_000 % 60, 2);
            out.push(b':');
            push_digits(out, in_day / 1000 % 60, 2);
            let milli = in_day % 1000;
            if milli > 0 {
                // The fraction without its trailing zeros.
                out.push(b'.');
                let (digits, width) = match milli {
                    m if m % 100 == 0 => (m / 100, 1),
                    m if m % 10 == 0 => (m / 10, 2),
                    m => (m, 3),
                };
                push_digits(out, digits, width);
            }
            if matches!(v, Value::TimestampLtz(_)) {
                out.push(b'Z');
            }
        }
        // Flink's CSV format: elements (a row's fields) separated by `;`.
        Value::Array(vs) | Value::Row(vs) => {
            for (i, v) in vs.iter().enumerate() {
                if i > 0 {
                    out.push(b';');
                }
                write_file_text(v, out);
            }
        }
        other => write!(out, "{other}").expect("writing to a Vec"),
    }
}

/// Appends the decimal `v` / 10^`scale` in plain notation, as `BigDecimal.toString` writes it
/// unless its adjusted exponent is below -6; `false` (nothing written) in that case.
fn write_plain_decimal(v: i128, scale: u8, out: &mut Vec<u8>) -> bool {
    let mut buffer = itoa::Buffer::new();
    // Through u64 when it fits: 128-bit division by ten is far slower.
    let digits = match u64::try_from(v.unsigned_abs()) {
        Ok(small) => buffer.format(small),
        Err(_) => buffer.format(v.unsigned_abs()),
    }
    .as_bytes();
    let scale = usize::from(scale);
    if scale > 0 && (digits.len() as i64 - 1 - scale as i64) < -6 {
        return false;
    }
    if v < 0 {
        out.push(b'-');
    }
    if scale == 0 {
        out.extend_from_slice(digits);
    } else if digits.len() <= scale {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + scale - digits.len(), b'0');
        out.extend_from_slice(digits);
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int);
        out.push(b'.');
        out.extend_from_slice(frac);
    }
    true
}

/// Appends `n` as exactly `width` decimal digits (zeros first); `n` has at most that many.
#[inline]
fn push_digits(out: &mut Vec<u8>, n: u32, width: u32) {
    let digit = |x: u32| b'0' + (x % 10) as u8;
    match width {
        1 => out.push(digit(n)),
        2 => out.extend_from_slice(&[digit(n / 10), digit(n)]),
        3 => out.extend_from_slice(&[digit(n / 100), digit(n / 10), digit(n)]),
        _ => {
            for i in (0..width).rev() {
                out.push(digit(n / 10u32.pow(i)));
            }
        }
    }
}

/// The date text, hours, minutes, seconds and milliseconds of `ms` after the epoch.
fn split_millis(ms: i64) -> (String, i64, i64, i64, i64) {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    )
}

/// A decimal as Java's `BigDecimal.toString`: plain, unless its adjusted exponent is below -6
/// (`1E-8`, `1.23E-7`).
fn write_big_decimal(f: &mut fmt::Formatter<'_>, v: i128, scale: u8) -> fmt::Result {
    let digits = v.unsigned_abs().to_string();
    let adjusted = digits.len() as i64 - 1 - i64::from(scale);
    if scale == 0 || adjusted >= -6 {
        return write_decimal(f, v, scale);
    }
    if v < 0 {
        f.write_str("-")?;
    }
    let (first, rest) = digits.split_at(1);
    f.write_str(first)?;
    if !rest.is_empty() {
        write!(f, ".{rest}")?;
    }
    write!(f, "E{adjusted}")
}

/// An interval as Java's `Duration.toString`: `PT1H30M`, `PT0.5S`, `PT0S`.
fn write_duration(f: &mut fmt::Formatter<'_>, ms: i64) -> fmt::Result {
    if ms == 0 {
        return f.write_str("PT0S");
    }
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let (hours, minutes, seconds) = (secs / 3600, secs % 3600 / 60, secs % 60);
    f.write_str("PT")?;
    if hours != 0 {
        write!(f, "{hours}H")?;
    }
    if minutes != 0 {
        write!(f, "{minutes}M")?;
    }
    if seconds == 0 && milli == 0 {
        return Ok(());
    }
    if seconds < 0 && milli > 0 {
        if seconds == -1 {
            f.write_str("-0")?;
        } else {
            write!(f, "{}", seconds + 1)?;
        }
    } else {
        write!(f, "{seconds}")?;
    }
    if milli > 0 {
        let frac = if seconds < 0 { 1000 - milli } else { milli };
        let frac = format!("{frac:03}");
        write!(f, ".{}", frac.trim_end_matches('0'))?;
    }
    f.write_str("S")
}

/// A double as Java prints it: `1.0`, `0.5`, `1.0E10` for large or small magnitudes.
fn write_double(f: &mut fmt::Formatter<'_>, v: f64) -> fmt::Result {
    if v.is_nan() {
        return f.write_str("NaN");
    }
    if v.is_infinite() {
        return f.write_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    }
    let a = v.abs();
    if a == 0.0 || (1e-3..1e7).contains(&a) {
        let s = format!("{v}");
        if s.contains('.') {
            f.write_str(&s)
        } else {
            write!(f, "{s}.0")
        }
    } else {
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').expect("exponent form");
        if mantissa.contains('.') {
            write!(f, "{mantissa}E{exp}")
        } else {
            write!(f, "{mantissa}.0E{exp}")
        }
    }
}

fn write_decimal(f: &mut fmt::Formatter<'_>, v: i128, scale: u8) -> fmt::Result {
    if scale == 0 {
        return write!(f, "{v}");
    }
    let sign = if v < 0 { "-" } else { "" };
    let digits = v.unsigned_abs().to_string();
    let scale = scale as usize;
    let digits = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits
    };
    let (int, frac) = digits.split_at(digits.len() - scale);
    write!(f, "{sign}{int}.{frac}")
}

fn write_timestamp(f: &mut fmt::Formatter<'_>, ms: i64) -> fmt::Result {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    write!(f, "{y:04}-{m:02}-{d:02} {h:02}:{min:02}:{s:02}.{milli:03}")
}

fn write_interval(f: &mut fmt::Formatter<'_>, ms: i64) -> fmt::Result {
    // As Flink's INTERVAL DAY TO SECOND: +D HH:MM:SS.mmm
    let sign = if ms < 0 { '-' } else { '+' };
    let a = ms.unsigned_abs();
    let (d, h, m, s, milli) = (
        a / 86_400_000,
        a / 3_600_000 % 24,
        a / 60_000 % 60,
        a / 1000 % 60,
        a % 1000,
    );
    write!(f, "{sign}{d} {h:02}:{m:02}:{s:02}.{milli:03}")
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month, day) `days` after 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses `YYYY-MM-DD`.
pub(crate) fn parse_date(s: &str) -> Option<i64> {
    let mut parts = s.trim().splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| days_from_civil(y, m, d))
}

/// Parses `YYYY-MM-DD HH:MM[:SS[.fff]]` (or with `T` between date and time, or a date alone)
/// into milliseconds since 1970-01-01 00:00; a trailing `Z` is allowed.
pub(crate) fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = match s.find([' ', 'T']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, "00:00:00"),
    };
    let days = parse_date(date)?;
    let mut parts = time.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let (sec, frac) = match parts.next() {
        None => (0, 0),
        Some(rest) => match rest.split_once('.') {
            None => (rest.parse().ok()?, 0),
            Some((sec, frac)) => {
                if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let ms: String = frac.chars().chain("000".chars()).take(3).collect();
                (sec.parse().ok()?, ms.parse::<i64>().ok()?)
            }
        },
    };
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some(days * 86_400_000 + h * 3_600_000 + m * 60_000 + sec * 1000 + frac)
}

/// Parses a decimal literal (`-12.50`) into an unscaled value at `scale`; `None` if it is not a
/// number or has more fractional digits than `scale`... rounded half up when it has more.
pub(crate) fn parse_decimal(s: &str, scale: u8) -> Option<i128> {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut v: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut round_up = false;
    for (i, c) in frac.bytes().enumerate() {
        let digit = i128::from(c - b'0');
        if i < scale as usize {
            v = v.checked_mul(10)?.checked_add(digit)?;
        } else {
            round_up = i == scale as usize && digit >= 5;
            break;
        }
    }
    for _ in frac.len()..scale as usize {
        v = v.checked_mul(10)?;
    }
    if round_up {
        v += 1;
    }
    Some(if neg { -v } else { v })
}

/// Reads a value of type `ty` from its text in a file (CSV field or JSON string): an error says
/// what was expected.
pub(crate) fn parse_text(ty: DataType, text: &str) -> Result<Value, String> {
    let t = text.trim();
    let bad = || format!("'{text}' is not a {ty}");
    Ok(match ty {
        DataType::Boolean => match t.to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad()),
        },
        DataType::Int => Value::Int(t.parse().map_err(|_| bad())?),
        DataType::BigInt => Value::BigInt(t.parse().map_err(|_| bad())?),
        DataType::Double => Value::Double(t.parse().map_err(|_| bad())?),
        DataType::Decimal(_, s) => Value::decimal(parse_decimal(t, s).ok_or_else(bad)?, s),
        DataType::String => Value::str(text),
        DataType::Date => Value::Date(
            parse_date(t)
                .and_then(|d| i32::try_from(d).ok())
                .ok_or_else(bad)?,
        ),
        DataType::Timestamp => Value::Timestamp(parse_timestamp(t).ok_or_else(bad)?),
        DataType::TimestampLtz => Value::TimestampLtz(parse_timestamp(t).ok_or_else(bad)?),
        DataType::Interval => Value::Interval(t.parse().map_err(|_| bad())?),
        DataType::Null => Value::Null,
        // As Flink's CSV format has them: elements (or a row's fields) separated by `;`.
        DataType::Array(_) | DataType::Row(_) => {
            let types: Vec<DataType> = ty.with_fields(|f| f.iter().map(|(_, t)| *t).collect());
            if t.is_empty() && types.is_empty() {
                return Ok(Value::Array(Arc::from(Vec::new())));
            }
            let parts: Vec<&str> = t.split(';').collect();
            if !types.is_empty() && parts.len() != types.len() {
                return Err(format!(
                    "'{text}' is not a {ty}: {} field(s) separated by ';' expected",
                    types.len()
                ));
            }
            let element = ty.element().unwrap_or(DataType::String);
            let mut values = Vec::with_capacity(parts.len());
            for (i, part) in parts.iter().enumerate() {
                let t = types.get(i).copied().unwrap_or(element);
                if t.is_nested() {
                    return Err(format!("{ty} nests {t}: CSV holds one level; use JSON"));
                }
                values.push(if part.is_empty() && t != DataType::String {
                    Value::Null
                } else {
                    parse_text(t, part)?
                });
            }
            if types.is_empty() {
                Value::Array(Arc::from(values))
            } else {
                Value::Row(Arc::from(values))
            }
        }
    })
}

/// A row: one value per column.
///
/// ```
/// use tidal_sql::{Row, Value};
/// let r = Row(vec![Value::Int(1), Value::str("a"), Value::Null]);
/// assert_eq!(r.to_string(), "1, a, null");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Row(pub Vec<Value>);

/// A row as Flink's print connector shows it: its values as [`Printed`], between commas.
impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", Printed(v))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timestamps in files as the SQL form with the fraction's trailing zeros dropped, for
    /// instants before 1970, in every part of the day, and in years past 9999.
    #[test]
    fn file_timestamps_are_written_in_sql_form() {
        for ms in [
            0,
            1,
            10,
            100,
            999,
            1_709_280_000_070,
            1_709_280_000_500,
            -1,
            -86_400_000,
            86_399_999,
            253_402_300_799_999,
            253_402_300_800_000,
            -62_135_596_800_000,
        ] {
            let (date, h, m, s, milli) = split_millis(ms);
            let mut want = format!("{date} {h:02}:{m:02}:{s:02}");
            if milli > 0 {
                want.push_str(format!(".{milli:03}").trim_end_matches('0'));
            }
            assert_eq!(file_text(&Value::Timestamp(ms)), want, "{ms}");
            assert_eq!(
                file_text(&Value::TimestampLtz(ms)),
                format!("{want}Z"),
                "{ms}"
            );
        }
        assert_eq!(file_text(&Value::BigInt(-42)), "-42");
        // Decimals as Printed writes them, plain or (tiny ones) in E notation.
        for (v, scale) in [
            (0, 0),
            (0, 3),
            (5, 3),
            (-5, 3),
            (123_456, 3),
            (-123_456, 0),
            (1, 7),
            (1, 8),
            (-123, 10),
            (i128::MAX, 38),
            (i128::MIN + 1, 2),
        ] {
            let d = Value::decimal(v, scale);
            assert_eq!(file_text(&d), Printed(&d).to_string(), "{v} {scale}");
        }
        assert_eq!(file_text(&Value::decimal(-5, 3)), "-0.005");
        assert_eq!(file_text(&Value::decimal(1, 8)), "1E-8");
        assert_eq!(file_text(&Value::Int(i32::MIN)), i32::MIN.to_string());
    }

    #[test]
    fn printed_and_file_text_follow_flink() {
        let t = 1_709_280_000_000; // 2024-03-01 08:00:00
        let p = |v: Value| Printed(&v).to_string();
        assert_eq!(p(Value::Timestamp(t)), "2024-03-01T08:00");
        assert_eq!(p(Value::Timestamp(t + 10_000)), "2024-03-01T08:00:10");
        assert_eq!(p(Value::Timestamp(t + 10_500)), "2024-03-01T08:00:10.500");
        assert_eq!(p(Value::TimestampLtz(t)), "2024-03-01T08:00:00Z");
        assert_eq!(p(Value::TimestampLtz(t + 70)), "2024-03-01T08:00:00.070Z");
        assert_eq!(p(Value::Bool(false)), "false");
        assert_eq!(p(Value::decimal(1, 8)), "1E-8");
        assert_eq!(p(Value::decimal(-123, 10)), "-1.23E-8");
        assert_eq!(p(Value::decimal(5, 6)), "0.000005");
        assert_eq!(p(Value::decimal(6812, 2)), "68.12");
        assert_eq!(p(Value::Interval(90 * 60_000)), "PT1H30M");
        assert_eq!(p(Value::Interval(-1500)), "PT-1.5S");
        assert_eq!(p(Value::Interval(0)), "PT0S");
        assert_eq!(p(Value::Double(6.812e9)), "6.812E9");
        assert_eq!(file_text(&Value::Timestamp(t)), "2024-03-01 08:00:00");
        assert_eq!(
            file_text(&Value::Timestamp(t + 500)),
            "2024-03-01 08:00:00.5"
        );
        assert_eq!(
            file_text(&Value::TimestampLtz(t + 70)),
            "2024-03-01 08:00:00.07Z"
        );
        assert_eq!(
            file_text(&Value::Timestamp(t + 3_723_123)),
            "2024-03-01 09:02:03.123"
        );
        assert_eq!(file_text(&Value::Timestamp(5)), "1970-01-01 00:00:00.005");
        assert_eq!(file_text(&Value::Null), "");
        // CAST(... AS STRING) keeps SQL's own form.
        assert_eq!(Value::Timestamp(t).to_string(), "2024-03-01 08:00:00.000");
        assert_eq!(Value::Bool(true).to_string(), "TRUE");
    }

    #[test]
    fn dates_round_trip_and_match_known_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for d in [-800_000i64, -1, 0, 59, 60, 11_016, 19_000, 2_000_000] {
            let (y, m, day) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, day), d);
        }
        assert_eq!(
            parse_timestamp("2015-07-15 00:00:01.5"),
            Some(days_from_civil(2015, 7, 15) * 86_400_000 + 1500)
        );
        assert_eq!(
            Value::Timestamp(parse_timestamp("2024-02-29T23:59:59.999").unwrap()).to_string(),
            "2024-02-29 23:59:59.999"
        );
        assert_eq!(parse_timestamp("2024-13-01 00:00:00"), None);
        assert_eq!(parse_timestamp("2024-01-01 24:00:00"), None);
    }

    #[test]
    fn numbers_compare_and_hash_across_types() {
        use std::collections::hash_map::DefaultHasher;
        let h = |v: &Value| {
            let mut s = DefaultHasher::new();
            v.hash(&mut s);
            s.finish()
        };
        let same = [
            Value::Int(3),
            Value::BigInt(3),
            Value::Double(3.0),
            Value::decimal(300, 2),
        ];
        for a in &same {
            for b in &same {
                assert_eq!(a, b);
                assert_eq!(h(a), h(b), "{a:?} {b:?}");
            }
        }
        assert!(Value::decimal(301, 2) > Value::Int(3));
        assert!(Value::Double(-0.5) < Value::Int(0));
    }

    #[test]
    fn arrays_and_rows_print_compare_and_read_as_flink_has_them() {
        let owner = DataType::row(vec![
            ("name".into(), DataType::String),
            ("born".into(), DataType::Timestamp),
        ]);
        let v = Value::Row(vec![Value::str("ann"), Value::Timestamp(1_709_280_000_000)].into());
        assert_eq!(Printed(&v).to_string(), "+I[ann, 2024-03-01T08:00]");
        let tags = Value::Array(vec![Value::str("a"), Value::Null].into());
        assert_eq!(Printed(&tags).to_string(), "[a, null]");
        assert_eq!(tags.to_string(), "[a, NULL]");
        assert_eq!(file_text(&tags), "a;");
        assert_eq!(Value::parse(owner, "ann;2024-03-01 08:00:00").unwrap(), v);
        let ints = DataType::array(DataType::Int);
        assert_eq!(
            Value::parse(ints, "1;2").unwrap(),
            Value::Array(vec![Value::Int(1), Value::Int(2)].into())
        );
        assert!(
            Value::parse(owner, "ann")
                .unwrap_err()
                .contains("2 field(s)")
        );
        // Element by element, a shorter prefix first; equal arrays hash alike.
        let a = |xs: &[i64]| Value::Array(xs.iter().map(|x| Value::BigInt(*x)).collect());
        assert!(a(&[1, 2]) < a(&[1, 3]) && a(&[1]) < a(&[1, 0]));
        let hash = |v: &Value| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            v.hash(&mut h);
            h.finish()
        };
        assert_eq!(Value::Double(1.5), Value::decimal(15, 1));
        assert_eq!(hash(&Value::Double(1.5)), hash(&Value::decimal(15, 1)));
        let ints = Value::Array(vec![Value::Int(1), Value::Int(2)].into());
        assert_eq!(ints, a(&[1, 2]));
        assert_eq!(hash(&ints), hash(&a(&[1, 2])));
        // One table entry per type, however often it is named.
        assert_eq!(DataType::array(owner), DataType::array(owner));
        assert_ne!(
            DataType::array(DataType::Int),
            DataType::array(DataType::BigInt)
        );
        let back: DataType =
            serde_json::from_str(&serde_json::to_string(&DataType::array(owner)).unwrap()).unwrap();
        assert_eq!(back, DataType::array(owner));
    }

    #[test]
    fn values_print_as_flink_casts_them_to_strings() {
        assert_eq!(Value::Double(1.0).to_string(), "1.0");
        assert_eq!(Value::Double(0.125).to_string(), "0.125");
        assert_eq!(Value::Double(1.0e10).to_string(), "1.0E10");
        assert_eq!(Value::decimal(-5, 3).to_string(), "-0.005");
        assert_eq!(Value::decimal(90800, 3).to_string(), "90.800");
        assert_eq!(Value::Interval(2_000).to_string(), "+0 00:00:02.000");
        assert_eq!(parse_decimal("1.2345", 3), Some(1235));
        assert_eq!(parse_decimal("-7", 2), Some(-700));
        assert_eq!(parse_decimal("x", 2), None);
    }
}
