//! Running a plan: each node built as Tidal DataStream operators on the worker's [`Env`].
//!
//! Rows that do not fit a table's schema follow the file source's bad-record policy (the job
//! fails naming the file, line and column). An expression that fails on a row (a division by
//! zero, a CAST that cannot be made) fails the job with the expression and the reason: a result
//! is never silently dropped.

use std::io::Write as _;
use std::rc::Rc;
use std::time::Duration;

use tidal_connectors::files::{Decoder, Files, Format};
use tidal_connectors::kafka::{
    KafkaFormat, KafkaSink, KafkaSinks, KafkaSource, KafkaSources, Message as KafkaMessage,
    StartFrom,
};
use tidal_connectors::prelude::*;
use tidal_engine::change::{Change, RowKind};
use tidal_engine::storage::Location;
use tidal_engine::{DataStream, Env, Error, Time, WatermarkStrategy, WorkerContext};
use tidal_operators::collection::Sums;
use tidal_operators::prelude::*;

mod window_join;

use crate::expr::{Scalar, Typed};
use crate::intagg::{IntAccs, IntAggs, IntArgs};
use crate::intcond::IntCondition;
use crate::plan::{
    Agg, Connector, Datagen, FileFormat, GenField, JoinKind, KafkaMeta, KafkaStartup, KafkaTable,
    KafkaUpsert, NexmarkKind, Plan, Sink, Table, WindowSpec,
};
use crate::value::{DataType, Row, Value, parse_text};
use std::collections::HashMap;
use tidal_connectors::nexmark::{Event, NexmarkConfig};

/// Reads a table's files into rows: physical columns from each line, then the computed ones.
#[derive(Clone)]
pub struct RowFormat {
    table: std::sync::Arc<Table>,
}

/// The decoder of [`RowFormat`] for one worker.
#[derive(Clone)]
pub struct RowDecoder {
    table: std::sync::Arc<Table>,
    format: FileFormat,
    header: bool,
    /// CSV: the text read as NULL.
    null_literal: Option<String>,
    /// The next line is a file's header (skipped).
    at_header: bool,
}

impl Format for RowFormat {
    type Item = Row;
    type Decoder = RowDecoder;
    const KIND: &'static str = "sql";
    fn decoder(&self) -> RowDecoder {
        let (format, header, null_literal) = match &self.table.connector {
            Connector::Filesystem {
                format,
                header,
                null_literal,
                ..
            } => (*format, *header, null_literal.clone()),
            Connector::Kafka(k) => (k.format, false, None),
            _ => (FileFormat::Csv, false, None),
        };
        RowDecoder {
            table: std::sync::Arc::clone(&self.table),
            format,
            header,
            null_literal,
            at_header: false,
        }
    }
}

/// Splits one CSV line into fields (double quotes around a field, `""` inside one).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("a quoted field is not closed".to_string()),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => return Err(format!("'{c}' after a quoted field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

fn json_field(ty: DataType, v: &serde_json::Value) -> Result<Value, String> {
    use serde_json::Value as J;
    match v {
        J::Null => Ok(Value::Null),
        J::Array(items) if matches!(ty, DataType::Array(_)) => {
            let element = ty.element().unwrap_or(DataType::Null);
            let values = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    json_field(element, item).map_err(|m| format!("element {}: {m}", i + 1))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::Array(values.into()))
        }
        J::Object(object) if matches!(ty, DataType::Row(_)) => {
            // By name, as Flink's JSON format reads nested rows; a missing field is NULL.
            let values = ty.with_fields(|fields| {
                fields
                    .iter()
                    .map(|(name, t)| match object.get(name) {
                        None => Ok(Value::Null),
                        Some(v) => json_field(*t, v).map_err(|m| format!("field '{name}': {m}")),
                    })
                    .collect::<Result<Vec<_>, String>>()
            })?;
            Ok(Value::Row(values.into()))
        }
        J::String(s) => parse_text(ty, s),
        J::Bool(b) if ty == DataType::Boolean => Ok(Value::Bool(*b)),
        J::Number(n) if ty.is_numeric() => parse_text(ty, &n.to_string()),
        other => Err(format!("{other} is not a {ty}")),
    }
}

impl RowDecoder {
    fn physical(&self, line: &str) -> Result<Vec<Value>, String> {
        let t = &self.table;
        let mut row = vec![Value::Null; t.fields.len()];
        match self.format {
            FileFormat::Csv => {
                let fields = csv_fields(line)?;
                if fields.len() != t.physical.len() {
                    return Err(format!(
                        "{} field(s), table '{}' has {} column(s) ({})",
                        fields.len(),
                        t.name,
                        t.physical.len(),
                        t.physical
                            .iter()
                            .map(|&c| t.fields[c].name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                for (k, (&c, text)) in t.physical.iter().zip(&fields).enumerate() {
                    let f = &t.fields[c];
                    // As Flink's CSV format: only the null literal is NULL, and an empty field is
                    // an empty STRING, an empty ARRAY, or an error.
                    row[c] = if self.null_literal.as_deref() == Some(text.as_str()) {
                        Value::Null
                    } else if text.is_empty()
                        && f.ty != DataType::String
                        && !matches!(f.ty, DataType::Array(_))
                    {
                        return Err(format!(
                            "column '{}' (field {}): an empty field is not a {} (for NULLs as empty fields give the table 'csv.null-literal' = '')",
                            f.name,
                            k + 1,
                            f.ty
                        ));
                    } else {
                        parse_text(f.ty, text)
                            .map_err(|m| format!("column '{}' (field {}): {m}", f.name, k + 1))?
                    };
                }
            }
            FileFormat::DebeziumJson => unreachable!("read by ChangeRowFormat"),
            FileFormat::Json => {
                let object: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
                return json_row(t, &object);
            }
        }
        Ok(row)
    }
}

/// The physical columns of `t` from a JSON object (by name; a missing one NULL), the rest NULL.
fn json_row(
    t: &Table,
    object: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<Value>, String> {
    let mut row = vec![Value::Null; t.fields.len()];
    for &c in &t.physical {
        let f = &t.fields[c];
        if let Some(v) = object.get(&f.name) {
            row[c] = json_field(f.ty, v).map_err(|m| format!("column '{}': {m}", f.name))?;
        }
    }
    Ok(row)
}

/// `row` (its physical columns read) with its computed columns; an error when a computed
/// column fails or the event-time column is NULL.
fn complete_row(t: &Table, mut row: Vec<Value>) -> Result<Row, String> {
    for (c, expr) in &t.computed {
        row[*c] = expr.scalar.eval(&row).map_err(|m| {
            format!(
                "computed column '{}' ({}): {m}",
                t.fields[*c].name, expr.text
            )
        })?;
    }
    if let Some((c, _)) = t.watermark
        && row[c].is_null()
    {
        return Err(format!(
            "the event-time column '{}' is NULL",
            t.fields[c].name
        ));
    }
    Ok(Row(row))
}

/// The changes of a `'format' = 'debezium-json'` file table: per line (a Debezium event), its
/// time and its one or two changes (`c`/`r`: `+I`; `u`: `-U` of the row before, `+U` of the row
/// after; `d`: `-D`), the rows read by column name as JSON tables read them. The time is the
/// event-time column's value when the table declares a WATERMARK (in the row after, or before
/// for a deletion; `ts_ms` may then be missing), Debezium's `ts_ms` otherwise.
#[derive(Clone)]
pub struct ChangeRowFormat {
    table: std::sync::Arc<Table>,
}

/// The decoder of [`ChangeRowFormat`] for one worker.
#[derive(Clone)]
pub struct ChangeRowDecoder {
    table: std::sync::Arc<Table>,
}

/// One Debezium event of a table: its time and its changes.
type TableChanges = (Time, Vec<Change<Row>>);

impl Format for ChangeRowFormat {
    type Item = TableChanges;
    type Decoder = ChangeRowDecoder;
    const KIND: &'static str = "sql debezium-json";
    fn decoder(&self) -> ChangeRowDecoder {
        ChangeRowDecoder {
            table: std::sync::Arc::clone(&self.table),
        }
    }
}

impl Decoder for ChangeRowDecoder {
    type Item = TableChanges;
    fn open(&mut self, _path: &Location, _start: u64) -> std::io::Result<()> {
        Ok(())
    }
    fn decode(&mut self, line: &[u8]) -> Result<Option<TableChanges>, String> {
        use tidal_connectors::files::DebeziumEvent;
        type Object = serde_json::Map<String, serde_json::Value>;
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let t = &self.table;
        let event = match t.watermark {
            Some(_) => DebeziumEvent::<Object>::parse_untimed(line)?,
            None => DebeziumEvent::<Object>::parse(line)?,
        };
        let mut time = event.ts_ms;
        let mut changes = Vec::with_capacity(2);
        for change in event {
            let side = match change.kind {
                RowKind::Insert | RowKind::UpdateAfter => "after",
                RowKind::UpdateBefore | RowKind::Delete => "before",
            };
            let row = json_row(t, &change.row)
                .and_then(|row| complete_row(t, row))
                .map_err(|m| format!("field '{side}': {m}"))?;
            if let Some((c, _)) = t.watermark {
                // The row after an update, or the row a deletion removes.
                time = row.0[c].as_millis().unwrap_or(Time::MIN);
            }
            changes.push(Change::new(change.kind, row));
        }
        Ok(Some((time, changes)))
    }
}

impl Decoder for RowDecoder {
    type Item = Row;
    fn open(&mut self, _path: &Location, start: u64) -> std::io::Result<()> {
        self.at_header = self.header && start == 0;
        Ok(())
    }
    fn decode(&mut self, line: &[u8]) -> Result<Option<Row>, String> {
        self.decode_with(line, |_| {})
    }
}

impl RowDecoder {
    /// Decodes a line into a row, `fill` setting the columns the line does not hold (metadata)
    /// before the computed ones are computed.
    fn decode_with(
        &mut self,
        line: &[u8],
        fill: impl FnOnce(&mut Vec<Value>),
    ) -> Result<Option<Row>, String> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if std::mem::take(&mut self.at_header) {
            return Ok(None);
        }
        let line = std::str::from_utf8(line)
            .map_err(|e| format!("not valid UTF-8 (byte {} of the line)", e.valid_up_to() + 1))?;
        if line.trim().is_empty() {
            return Ok(None);
        }
        let mut row = self.physical(line)?;
        fill(&mut row);
        complete_row(&self.table, row).map(Some)
    }
}

fn spec_rows(table: &Table) -> Option<u64> {
    match &table.connector {
        Connector::Datagen(d) => d.rows,
        _ => None,
    }
}

fn spec_rate(table: &Table) -> Option<f64> {
    match &table.connector {
        Connector::Datagen(d) => d.rows_per_second,
        _ => None,
    }
}

/// A 64-bit mix of `row` and `column` (SplitMix64's finalizer): the same numbers for the same
/// row whatever the worker or run.
fn mix(row: u64, column: u64) -> u64 {
    let mut z = row
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(column.wrapping_mul(0xD1B5_4A32_D192_ED03))
        .wrapping_add(0x2545_F491_4F6C_DD1D);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The physical columns of the row of Nexmark table `kind` that `e` makes (`None`: an event
/// of another table). `needed` as for [`nexmark_row`].
///
/// Made with `vec!`, whose values are built where they go in the new allocation: built one by
/// one on the stack and pushed, each was copied with wide loads of stores just made, a stall
/// per column.
fn nexmark_vec(
    kind: NexmarkKind,
    e: &Event,
    strings: &mut Interned,
    needed: Option<&[bool]>,
) -> Option<Vec<Value>> {
    let (b, t) = (|v: u64| Value::BigInt(v as i64), Value::Timestamp);
    let read = |c: usize| needed.is_none_or(|n| n.get(c) == Some(&true));
    let s = |c: usize, v: &str| if read(c) { Value::str(v) } else { Value::Null };
    let empty = |c: usize| s(c, "");
    Some(match (kind, e) {
        (NexmarkKind::Bid, Event::Bid(x)) => vec![
            b(x.auction),
            b(x.bidder),
            b(x.price),
            if read(3) {
                strings.get(&x.channel)
            } else {
                Value::Null
            },
            empty(4),
            t(x.date_time),
            empty(6),
        ],
        (NexmarkKind::Auction, Event::Auction(x)) => vec![
            b(x.id),
            s(1, &x.item_name),
            empty(2),
            b(x.initial_bid),
            b(x.reserve),
            t(x.date_time),
            t(x.expires),
            b(x.seller),
            b(x.category),
            empty(9),
        ],
        (NexmarkKind::Person, Event::Person(x)) => vec![
            b(x.id),
            s(1, &x.name),
            s(2, &x.email_address),
            s(3, &x.credit_card),
            s(4, &x.city),
            s(5, &x.state),
            t(x.date_time),
            empty(7),
        ],
        _ => return None,
    })
}

/// The row of Nexmark table `kind` an event makes (`None`: an event of another table), with
/// the table's computed columns.
///
/// A string column that nothing reads (`needed`, when given, is false for it) is left NULL: no
/// string is made or shared for it.
fn nexmark_row(
    table: &Table,
    kind: NexmarkKind,
    e: &Event,
    strings: &mut Interned,
    needed: Option<&[bool]>,
) -> Option<Result<Row, String>> {
    let values = nexmark_vec(kind, e, strings, needed)?;
    if table.computed.is_empty() {
        // The physical columns are the whole row, in order.
        return Some(Ok(Row(values)));
    }
    let mut row = vec![Value::Null; table.fields.len()];
    for (&c, v) in table.physical.iter().zip(values) {
        row[c] = v;
    }
    for (c, expr) in &table.computed {
        match expr.scalar.eval(&row) {
            Ok(v) => row[*c] = v,
            Err(m) => {
                return Some(Err(format!(
                    "computed column '{}' ({}): {m}",
                    table.fields[*c].name, expr.text
                )));
            }
        }
    }
    Some(Ok(Row(row)))
}

/// String values of a column with few distinct values (a bid's channel), shared rather than
/// allocated per row; at most [`Interned::MOST`] kept.
#[derive(Default)]
struct Interned(Vec<(String, std::sync::Arc<str>)>);

impl Interned {
    const MOST: usize = 32;

    fn get(&mut self, s: &str) -> Value {
        if let Some((_, v)) = self.0.iter().find(|(k, _)| k == s) {
            return Value::Str(std::sync::Arc::clone(v));
        }
        let v: std::sync::Arc<str> = std::sync::Arc::from(s);
        if self.0.len() < Self::MOST {
            self.0.push((s.to_string(), std::sync::Arc::clone(&v)));
        }
        Value::Str(v)
    }
}

/// Row `i` of a datagen table: its physical columns, then the computed ones.
fn generate(table: &Table, spec: &Datagen, i: u64) -> Result<Row, String> {
    let mut row = vec![Value::Null; table.fields.len()];
    for (k, (&c, field)) in table.physical.iter().zip(&spec.fields).enumerate() {
        let ty = table.fields[c].ty;
        row[c] = match field {
            GenField::Sequence { start } => {
                let v = start + i as i64;
                if ty == DataType::Int {
                    Value::Int(v as i32)
                } else {
                    Value::BigInt(v)
                }
            }
            GenField::Random {
                min,
                max,
                length,
                max_past,
            } => {
                let r = mix(i, k as u64);
                let unit = (r >> 11) as f64 / (1u64 << 53) as f64;
                let span = |lo: f64, hi: f64| lo + (hi - lo) * unit;
                match ty {
                    DataType::Boolean => Value::Bool(r & 1 == 1),
                    DataType::Int | DataType::BigInt => {
                        let (lowest, highest) = if ty == DataType::Int {
                            (i128::from(i32::MIN), i128::from(i32::MAX))
                        } else {
                            (i128::from(i64::MIN), i128::from(i64::MAX))
                        };
                        let lo = (min.ceil() as i128).clamp(lowest, highest);
                        let hi = (max.floor() as i128).clamp(lo, highest);
                        let v = lo + (r as i128).rem_euclid(hi - lo + 1);
                        if ty == DataType::Int {
                            Value::Int(v as i32)
                        } else {
                            Value::BigInt(v as i64)
                        }
                    }
                    DataType::Double => Value::Double(span(*min, *max)),
                    DataType::Decimal(_, s) => {
                        let v = span(*min, *max);
                        Value::decimal((v * 10f64.powi(i32::from(s))).round() as i128, s)
                    }
                    DataType::String => {
                        let mut x = r;
                        let text: String = (0..*length)
                            .map(|n| {
                                if n % 12 == 11 {
                                    x = mix(x, n as u64);
                                }
                                let letter = (b'a' + (x % 26) as u8) as char;
                                x /= 26;
                                letter
                            })
                            .collect();
                        Value::str(&text)
                    }
                    DataType::Date | DataType::Timestamp | DataType::TimestampLtz => {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as i64);
                        let past = if *max_past > 0 {
                            (r % (*max_past as u64 + 1)) as i64
                        } else {
                            0
                        };
                        match ty {
                            DataType::Date => Value::Date(((now - past) / 86_400_000) as i32),
                            DataType::Timestamp => Value::Timestamp(now - past),
                            _ => Value::TimestampLtz(now - past),
                        }
                    }
                    DataType::Interval => Value::Interval(span(*min, *max) as i64),
                    // Refused when planned.
                    DataType::Null | DataType::Array(_) | DataType::Row(_) => Value::Null,
                }
            }
        };
    }
    for (c, expr) in &table.computed {
        row[*c] = expr.scalar.eval(&row).map_err(|m| {
            format!(
                "computed column '{}' ({}): {m}",
                table.fields[*c].name, expr.text
            )
        })?;
    }
    Ok(Row(row))
}

/// Fails the job because `what` failed on a row.
pub(crate) fn fail(ctx: &Rc<WorkerContext>, what: &str, message: &str) {
    ctx.fail(Error::input(format!("SQL: {what}: {message}")));
}

fn eval_all(exprs: &[Typed], row: &[Value]) -> Result<Vec<Value>, (String, String)> {
    // Sized at once, columns copied without the evaluator (most keys are columns).
    let mut out = Vec::with_capacity(exprs.len());
    for e in exprs {
        out.push(match &e.scalar {
            Scalar::Col(c) => row[*c].clone(),
            s => s.eval(row).map_err(|m| (e.text.clone(), m))?,
        });
    }
    Ok(out)
}

/// A plan built on a worker: an append-only stream of rows, or an updating result — a
/// collection of `(key, row)` whose rows come and go (the key: the group's values, or the row).
#[derive(Clone)]
pub(crate) enum Built<'s> {
    /// Rows that are only ever added.
    Append(DataStream<'s, Row>),
    /// Rows that change, keyed.
    Updating(Collection<'s, (Row, Row)>),
}

impl<'s> Built<'s> {
    /// The rows of an append-only plan (the planner puts no updating input where this is called).
    fn append(self) -> DataStream<'s, Row> {
        match self {
            Built::Append(s) => s,
            Built::Updating(_) => unreachable!("the planner refuses updating inputs here"),
        }
    }
    /// The rows as a collection, without their keys.
    fn rows(self) -> Collection<'s, Row> {
        match self {
            Built::Append(s) => s.into_collection(),
            Built::Updating(c) => c.map(|(_, r)| r),
        }
    }
    /// The rows as a collection, keyed by the whole row when they have no key of their own.
    fn updating(self) -> Collection<'s, (Row, Row)> {
        match self {
            Built::Append(s) => s.map(|r| (r.clone(), r)).into_collection(),
            Built::Updating(c) => c,
        }
    }
}

/// What building plans on a worker shares: the worker's environment, and the Nexmark events
/// of generators that several scans read (the `person`, `auction` and `bid` tables of one
/// configuration are views of one event stream, as in the Nexmark benchmark's own DDL: it is
/// generated once and its batches read by every scan, not once per scan).
pub(crate) struct Cx<'s, 'e> {
    env: &'e mut Env<'s>,
    /// Generators read by more than one scan, and once built, their events as batches every
    /// scan reads.
    shared: Vec<Shared<'s>>,
    /// Stateful subplans built so far, by their text: a subplan written twice (Nexmark q5's
    /// two identical window aggregations) is built once and its result read by both (Flink's
    /// sub-plan reuse).
    built: Vec<(String, Built<'s>)>,
    /// Window aggregates, by their text, that read the rows of an extreme filter instead of
    /// their input (see [`ExtremeFilter::feeds`](crate::extreme::ExtremeFilter::feeds)), and
    /// those rows.
    fed: Vec<(String, DataStream<'s, Row>)>,
    /// Window aggregates, by their text, that will read an extreme filter's rows (its side is
    /// being built): their input is not built.
    feeding: Vec<String>,
    /// The job's plans (every sink's).
    plans: Vec<Plan>,
}

/// What makes two Nexmark scans read the same events: the generator's configuration and the
/// table's watermark delay.
type NexmarkKey = (Option<u64>, u64, Option<u64>, Option<i64>);

/// A generator read by several scans: its key, and once built, its events' batches.
type Shared<'s> = (NexmarkKey, Option<EventBatches<'s>>);

/// The Nexmark events a scan reads: a generator of its own (its events read where they lie),
/// or the batches of a generator several scans read.
enum Events<'s> {
    Own(DataStream<'s, Event>),
    Shared(EventBatches<'s>),
}

/// A generator's events as the batches it made, each batch one record (at its capability's
/// time) that every scan of the generator reads in place: no event is moved or copied for a
/// scan, however many read it (a batch handed to two readers was copied, strings and all, and
/// splitting events by kind moved each one: 12 % of Nexmark q7 in memmove).
type EventBatches<'s> = DataStream<'s, Rc<EventBatch>>;

/// A batch of a generator's events, and where its auctions and persons lie in it.
struct EventBatch {
    events: Vec<(Event, Time)>,
    /// The positions of the auctions, then of the persons: a scan of one of these tables
    /// (together 8 % of the events) reads only its own, not every event of the batch.
    rare: [Vec<u32>; 2],
}

impl EventBatch {
    fn new(events: Vec<(Event, Time)>) -> EventBatch {
        let mut rare = [Vec::new(), Vec::new()];
        for (i, (e, _)) in events.iter().enumerate() {
            match e {
                Event::Auction(_) => rare[0].push(i as u32),
                Event::Person(_) => rare[1].push(i as u32),
                Event::Bid(_) => {}
            }
        }
        EventBatch { events, rare }
    }

    /// The events a scan of table `kind` reads: those of the kind, or for bids (most events)
    /// every event, each of which the scan tests.
    fn of(&self, kind: NexmarkKind) -> impl Iterator<Item = &(Event, Time)> {
        let (all, rare) = match kind {
            NexmarkKind::Bid => (&self.events[..], &[][..]),
            NexmarkKind::Auction => (&[][..], &self.rare[0][..]),
            NexmarkKind::Person => (&[][..], &self.rare[1][..]),
        };
        all.iter()
            .chain(rare.iter().map(|&i| &self.events[i as usize]))
    }
}

/// `events` as shared batches (see [`EventBatches`]).
fn share_batches<'s>(events: DataStream<'s, Event>) -> EventBatches<'s> {
    use tidal_engine::timely::container::CapacityContainerBuilder;
    use tidal_engine::timely::dataflow::channels::pact::Pipeline;
    use tidal_engine::timely::dataflow::operators::generic::operator::Operator;
    type Batch = Rc<EventBatch>;
    let ctx = Rc::clone(events.context());
    let name = "nexmark events, shared";
    let out = events
        .into_inner()
        .unary::<CapacityContainerBuilder<Vec<(Batch, Time)>>, _, _, _>(Pipeline, name, |_, _| {
            move |input, output| {
                input.for_each(|time, data| {
                    if !data.is_empty() {
                        let at = time.least().copied().unwrap_or(Time::MIN);
                        let batch = EventBatch::new(std::mem::take(data));
                        output.session(&time).give((Rc::new(batch), at));
                    }
                });
            }
        });
    DataStream::from_timely(out, ctx, name)
}

/// What `f` makes of each event a scan of table `kind` reads (`None`: nothing), at the event's
/// time.
fn read_events<'s, T: 'static>(
    events: Events<'s>,
    kind: NexmarkKind,
    name: &str,
    mut f: impl FnMut(&Event) -> Option<T> + 'static,
) -> DataStream<'s, T> {
    match events {
        Events::Own(events) => events.flat_map_ref(f).name(name),
        shared => read_events_at(shared, kind, name, move |e, _, _| f(e)),
    }
}

/// What `f` makes of each event a scan of table `kind` reads (`None`: nothing), given also the
/// event's time and the time it is sent at (its batch's), at the event's time.
fn read_events_at<'s, T: 'static>(
    events: Events<'s>,
    kind: NexmarkKind,
    name: &str,
    mut f: impl FnMut(&Event, Time, Time) -> Option<T> + 'static,
) -> DataStream<'s, T> {
    use tidal_engine::timely::container::CapacityContainerBuilder;
    use tidal_engine::timely::dataflow::channels::pact::Pipeline;
    use tidal_engine::timely::dataflow::operators::generic::operator::Operator;
    // A generator of its own is read the same way: its batches handed on whole, not copied.
    let out = match events {
        Events::Own(events) => share_batches(events),
        Events::Shared(batches) => batches,
    };
    let ctx = Rc::clone(out.context());
    let out = out
        .into_inner()
        .unary::<CapacityContainerBuilder<Vec<(T, Time)>>, _, _, _>(Pipeline, name, |_, _| {
            move |input, output| {
                input.for_each(|time, data| {
                    let at = time.least().copied().unwrap_or(Time::MIN);
                    let mut session = output.session(&time);
                    for (batch, _) in data.drain(..) {
                        for (e, ts) in batch.of(kind) {
                            if let Some(x) = f(e, *ts, at) {
                                session.give((x, *ts));
                            }
                        }
                    }
                });
            }
        });
    DataStream::from_timely(out, ctx, name)
}

fn nexmark_key(table: &Table, spec: &crate::plan::NexmarkTable) -> NexmarkKey {
    (
        spec.events,
        spec.events_per_second,
        spec.rate.map(f64::to_bits),
        table.watermark.map(|(_, delay)| delay),
    )
}

impl<'s, 'e> Cx<'s, 'e> {
    /// Building `plans` (all of one job) on this worker.
    pub(crate) fn new(env: &'e mut Env<'s>, plans: &[&Plan]) -> Self {
        fn scans(plan: &Plan, out: &mut Vec<NexmarkKey>) {
            if let Plan::Scan { table } = plan
                && let Connector::Nexmark(spec) = &table.connector
            {
                out.push(nexmark_key(table, spec));
            }
            for i in plan.inputs() {
                scans(i, out);
            }
        }
        let mut keys = Vec::new();
        for p in plans {
            scans(p, &mut keys);
        }
        let mut shared: Vec<Shared<'s>> = Vec::new();
        for k in &keys {
            if keys.iter().filter(|x| *x == k).count() > 1 && !shared.iter().any(|(s, _)| s == k) {
                shared.push((*k, None));
            }
        }
        Cx {
            env,
            shared,
            built: Vec::new(),
            fed: Vec::new(),
            feeding: Vec::new(),
            plans: plans.iter().map(|p| (*p).clone()).collect(),
        }
    }
}

impl Cx<'_, '_> {
    /// How many scans of the job's plans read the Nexmark generator `key`.
    fn nexmark_scans(&self, key: NexmarkKey) -> usize {
        fn count(plan: &Plan, key: NexmarkKey, n: &mut usize) {
            if let Plan::Scan { table } = plan
                && let Connector::Nexmark(spec) = &table.connector
                && nexmark_key(table, spec) == key
            {
                *n += 1;
            }
            for i in plan.inputs() {
                count(i, key, n);
            }
        }
        let mut n = 0;
        for p in &self.plans {
            count(p, key, &mut n);
        }
        n
    }

    /// How many times the job builds a node of text `text` (as [`without_positions`] writes
    /// it): its occurrences in the job's plans, apart from those under a window aggregate
    /// that reads an extreme filter's rows instead of its input.
    fn uses(&self, text: &str) -> usize {
        fn count(plan: &Plan, text: &str, skip: &[&String], n: &mut usize) {
            let mine = without_positions(&format!("{plan:?}"));
            if mine == text {
                *n += 1;
                return;
            }
            if skip.contains(&&mine) {
                return;
            }
            for i in plan.inputs() {
                count(i, text, skip, n);
            }
        }
        let skip: Vec<&String> = self
            .feeding
            .iter()
            .chain(self.fed.iter().map(|(t, _)| t))
            .collect();
        let mut n = 0;
        for p in &self.plans {
            count(p, text, &skip, &mut n);
        }
        n
    }
}

impl<'s> std::ops::Deref for Cx<'s, '_> {
    type Target = Env<'s>;
    fn deref(&self) -> &Env<'s> {
        self.env
    }
}

impl<'s> std::ops::DerefMut for Cx<'s, '_> {
    fn deref_mut(&mut self) -> &mut Env<'s> {
        self.env
    }
}

/// The events a Nexmark scan of `table` reads: its own generator's, or the kind's share of a
/// generator several scans read.
fn nexmark_events<'s>(
    env: &mut Cx<'s, '_>,
    table: &Table,
    spec: &crate::plan::NexmarkTable,
) -> Events<'s> {
    let key = nexmark_key(table, spec);
    let Some(at) = env.shared.iter().position(|(k, _)| *k == key) else {
        return Events::Own(nexmark_generator(env, table, spec));
    };
    if env.shared[at].1.is_none() {
        let events = nexmark_generator(env, table, spec);
        env.shared[at].1 = Some(share_batches(events));
    }
    Events::Shared(env.shared[at].1.clone().expect("built"))
}

/// The events of the Nexmark generator a scan of `table` reads (this worker's share), at their
/// times, with the table's watermark.
fn nexmark_generator<'s>(
    env: &mut Env<'s>,
    table: &Table,
    spec: &crate::plan::NexmarkTable,
) -> DataStream<'s, Event> {
    let config = NexmarkConfig {
        events_per_second: spec.events_per_second,
        ..NexmarkConfig::default()
    };
    let mut generator = config.generator(spec.events);
    if let Some(r) = spec.rate {
        generator = generator.rate(r);
    }
    match table.watermark {
        Some((_, delay)) => env.generate_with(
            generator,
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(delay as u64))
                .with_timestamps(|e: &Event| e.date_time()),
        ),
        None => env.generate(generator),
    }
}

/// A Kafka table's message values decoded as file lines are (`RowDecoder`: rows of `'csv'` or
/// `'json'` values; `ChangeRowDecoder`: the changes of `'debezium-json'` ones); tombstones are
/// skipped.
#[derive(Clone)]
pub struct KafkaValues<D>(D);

impl<D: Decoder + Clone> KafkaFormat for KafkaValues<D> {
    type Item = D::Item;
    const KIND: &'static str = "sql";
    fn decode(&mut self, m: &KafkaMessage<'_>) -> Result<Option<D::Item>, String> {
        match m.payload {
            None => Ok(None),
            Some(value) => self.0.decode(value),
        }
    }
}

/// The rows of a `'kafka'` table with metadata columns: each message's value decoded, and the
/// metadata columns set from the message (its topic, partition, offset, timestamp).
#[derive(Clone)]
pub struct KafkaRows(RowDecoder);

impl KafkaFormat for KafkaRows {
    type Item = Row;
    const KIND: &'static str = "sql";
    fn decode(&mut self, m: &KafkaMessage<'_>) -> Result<Option<Row>, String> {
        let Some(value) = m.payload else {
            return Ok(None);
        };
        let table = std::sync::Arc::clone(&self.0.table);
        self.0.decode_with(value, |row| {
            for &(c, meta, _) in &table.metadata {
                let v = match meta {
                    KafkaMeta::Topic => Value::str(m.topic),
                    KafkaMeta::Partition => Value::Int(m.partition),
                    KafkaMeta::Offset => Value::BigInt(m.offset),
                    KafkaMeta::Timestamp => m.timestamp.map_or(Value::Null, Value::TimestampLtz),
                };
                // Declared as another type the metadata's values cast to (checked when planned).
                row[c] = crate::expr::cast(v, table.fields[c].ty).unwrap_or(Value::Null);
            }
        })
    }
}

/// The rows of an `'upsert-kafka'` table's messages: per message its time, its key (the
/// PRIMARY KEY's values, from the message's key) and the key's latest row (from the value;
/// `None` for a tombstone: the key deleted). The time is the message's Kafka timestamp, made
/// never to go back within a partition (a message without one, or older than the one before,
/// takes the time before): a key's messages, all in one partition, then apply in the order
/// Kafka holds them — the later message wins, as Flink reads the topic — whatever the rows'
/// own event-time column says.
#[derive(Clone)]
pub struct KafkaUpserts {
    table: std::sync::Arc<Table>,
    upsert: KafkaUpsert,
    key: RowDecoder,
    value: RowDecoder,
    /// Per partition, the time of the message before.
    clock: HashMap<i32, Time>,
}

/// One message of an upsert table: its time, key and row (`None`: deleted).
type Upserted = (Time, Row, Option<Row>);

/// The table of `columns` of `table` (physical, in that order), its messages in `format`.
fn sub_table(table: &Table, columns: &[usize], format: FileFormat) -> Table {
    let connector = match &table.connector {
        Connector::Kafka(k) => Connector::Kafka(KafkaTable {
            format,
            ..k.clone()
        }),
        other => other.clone(),
    };
    Table {
        name: table.name.clone(),
        fields: columns.iter().map(|c| table.fields[*c].clone()).collect(),
        physical: (0..columns.len()).collect(),
        computed: Vec::new(),
        metadata: Vec::new(),
        watermark: None,
        connector,
        pos: table.pos,
    }
}

impl KafkaUpserts {
    fn new(table: &std::sync::Arc<Table>, k: &KafkaTable, upsert: &KafkaUpsert) -> Self {
        let decoder = |t: Table| {
            RowFormat {
                table: std::sync::Arc::new(t),
            }
            .decoder()
        };
        let value = if upsert.except_key {
            let rest: Vec<usize> = table
                .physical
                .iter()
                .copied()
                .filter(|c| !upsert.key.contains(c))
                .collect();
            decoder(sub_table(table, &rest, k.format))
        } else {
            RowFormat {
                table: std::sync::Arc::clone(table),
            }
            .decoder()
        };
        KafkaUpserts {
            table: std::sync::Arc::clone(table),
            upsert: upsert.clone(),
            key: decoder(sub_table(table, &upsert.key, upsert.key_format)),
            value,
            clock: HashMap::new(),
        }
    }
}

impl KafkaFormat for KafkaUpserts {
    type Item = Upserted;
    const KIND: &'static str = "sql upsert";
    fn decode(&mut self, m: &KafkaMessage<'_>) -> Result<Option<Upserted>, String> {
        let Some(key) = m.key else {
            return Err(
                "a message without a key: an upsert table's messages are keyed by its PRIMARY KEY"
                    .to_string(),
            );
        };
        let key = Decoder::decode(&mut self.key, key)
            .map_err(|e| format!("key: {e}"))?
            .ok_or("key: empty")?;
        let last = self.clock.entry(m.partition).or_insert(Time::MIN);
        let at = m.timestamp.map_or(*last, |t| t.max(*last));
        *last = at;
        let Some(value) = m.payload else {
            return Ok(Some((at, key, None)));
        };
        let Some(row) = Decoder::decode(&mut self.value, value)? else {
            return Ok(None);
        };
        let t = &self.table;
        let row = if self.upsert.except_key {
            // The key's columns from the key, the others from the value, in the table's order.
            let mut full = vec![Value::Null; t.fields.len()];
            for (v, c) in key.0.iter().zip(&self.upsert.key) {
                full[*c] = v.clone();
            }
            let rest = t.physical.iter().filter(|c| !self.upsert.key.contains(c));
            for (v, c) in row.0.into_iter().zip(rest) {
                full[*c] = v;
            }
            complete_row(t, full)?
        } else {
            row
        };
        Ok(Some((at, key, Some(row))))
    }
}

/// The source of a Kafka table, with its options.
/// A Kafka table's rows, with the table's watermark when it declares one.
fn kafka_rows<'s, F: KafkaFormat<Item = Row>>(
    env: &mut Cx<'s, '_>,
    source: KafkaSource<F>,
    strategy: Option<WatermarkStrategy<Row>>,
) -> DataStream<'s, Row> {
    match strategy {
        Some(s) => env.kafka_with(source, s),
        None => env.kafka(source),
    }
}

fn kafka_source<F: KafkaFormat>(k: &KafkaTable, format: F) -> KafkaSource<F> {
    let mut source = KafkaSource::new(k.brokers.as_str(), &[k.topic.as_str()])
        .format(format)
        .start_from(match k.startup {
            KafkaStartup::Earliest => StartFrom::Earliest,
            KafkaStartup::Latest => StartFrom::Latest,
            KafkaStartup::Group => StartFrom::Committed,
            KafkaStartup::Timestamp(ms) => StartFrom::Timestamp(ms),
        });
    if k.bounded {
        source = source.bounded();
    }
    if let Some(group) = &k.group {
        source = source.group_id(group.as_str());
    }
    for (key, value) in &k.properties {
        source = source.property(key.as_str(), value.as_str());
    }
    if let Some(dir) = &k.dead_letter {
        source = source.on_error(OnError::DeadLetter(dir.into()));
    }
    source
}

/// A Kafka table's sink with the table's librdkafka properties (`'properties.*'`: security
/// settings among them), as its source has them.
fn with_properties<T: 'static>(mut sink: KafkaSink<T>, k: &KafkaTable) -> KafkaSink<T> {
    for (key, value) in &k.properties {
        sink = sink.property(key.as_str(), value.as_str());
    }
    sink
}

/// A file table's rows that cannot be read: failing the job, or into its dead-letter directory.
fn bad_rows(table: &Table) -> OnError {
    match &table.connector {
        Connector::Filesystem {
            dead_letter: Some(dir),
            ..
        } => OnError::DeadLetter(dir.into()),
        _ => OnError::Fail,
    }
}

/// Builds an append-only plan's rows on this worker.
pub(crate) fn build<'s>(env: &mut Cx<'s, '_>, plan: &Plan) -> DataStream<'s, Row> {
    build_any(env, plan).append()
}

/// Builds `plan` on this worker.
pub(crate) fn build_any<'s>(env: &mut Cx<'s, '_>, plan: &Plan) -> Built<'s> {
    build_reading(env, plan, None, None)
}

/// Builds `plan` on this worker; `needed`, when given, marks the columns of its rows that the
/// plan above reads (through projections and filters down to a scan), so that a scan can leave
/// the others NULL where that saves work. `filter`: a condition of the filter right above a
/// Nexmark scan, tested by the scan itself (see the `Plan::Filter` arm).
fn build_reading<'s>(
    env: &mut Cx<'s, '_>,
    plan: &Plan,
    needed: Option<Vec<bool>>,
    filter: Option<&Typed>,
) -> Built<'s> {
    // Stateful nodes that build the same whatever is read above them: built once per text.
    if matches!(
        plan,
        Plan::WindowAggregate { .. }
            | Plan::GroupAggregate { .. }
            | Plan::Rank { .. }
            | Plan::Over { .. }
    ) {
        let text = without_positions(&format!("{plan:?}"));
        if let Some((_, built)) = env.built.iter().find(|(t, _)| *t == text) {
            return built.clone();
        }
        let built = build_node(env, plan, needed, filter);
        env.built.push((text, built.clone()));
        return built;
    }
    build_node(env, plan, needed, filter)
}

/// A plan's text without the script positions of its expressions (`pos: Pos { .. }`): the same
/// subquery written twice is the same plan.
pub(crate) fn without_positions(text: &str) -> String {
    const START: &str = "pos: Pos { line: ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(START) {
        // Only `pos: Pos { line: N, column: M }` (a string literal holding the same text is
        // kept: it is then followed by something else).
        let after = &rest[at + START.len()..];
        let len = after
            .find(" }")
            .filter(|end| {
                after[..*end]
                    .split(", column: ")
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                    && after[..*end].contains(", column: ")
            })
            .map(|end| START.len() + end + 2);
        match len {
            Some(len) => {
                out.push_str(&rest[..at]);
                rest = &rest[at + len..];
            }
            None => {
                out.push_str(&rest[..at + START.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Builds one node of `plan` (see [`build_reading`]).
fn build_node<'s>(
    env: &mut Cx<'s, '_>,
    plan: &Plan,
    needed: Option<Vec<bool>>,
    filter: Option<&Typed>,
) -> Built<'s> {
    match plan {
        Plan::Scan { table } => {
            let strategy = |c: usize, delay: i64| {
                WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(delay as u64))
                    .with_timestamps(move |r: &Row| r.0[c].as_millis().unwrap_or(Time::MIN))
            };
            if let Connector::Kafka(k) = &table.connector
                && let Some(upsert) = &k.upsert
            {
                // Each key's latest row.
                let delay = table.watermark.map_or(0, |(_, d)| d);
                let s = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(
                    delay as u64,
                ))
                .with_timestamps(|(t, _, _): &Upserted| *t);
                let upserts = KafkaUpserts::new(table, k, upsert);
                let rows = env
                    .kafka_with(kafka_source(k, upserts), s)
                    .map(|(_, key, row): Upserted| (key, row))
                    .name(format!("table {}", table.name))
                    .upsert_by_key();
                return Built::Updating(rows);
            }
            if table.is_changelog() {
                // A change log: an updating table, each row its own key.
                let format = ChangeRowFormat {
                    table: std::sync::Arc::clone(table),
                };
                let delay = table.watermark.map_or(0, |(_, d)| d);
                let s = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(
                    delay as u64,
                ))
                .with_timestamps(|(t, _): &TableChanges| *t);
                let changes = match &table.connector {
                    Connector::Kafka(k) => {
                        env.kafka_with(kafka_source(k, KafkaValues(format.decoder())), s)
                    }
                    Connector::Filesystem { path, .. } => env.read_with(
                        Files::with_format([path], format).on_error(bad_rows(table)),
                        s,
                    ),
                    _ => unreachable!("change logs are files or Kafka topics"),
                };
                let rows = changes
                    .flat_map(|(_, changes): TableChanges| changes)
                    .name(format!("table {}", table.name))
                    .changelog_into_collection();
                return Built::Updating(rows.map(|r: Row| (r.clone(), r)));
            }
            let stream = match &table.connector {
                Connector::Kafka(k) => {
                    let decoder = RowFormat {
                        table: std::sync::Arc::clone(table),
                    }
                    .decoder();
                    // With metadata columns, rows are made from whole messages; else from values.
                    let strategy = table.watermark.map(|(c, delay)| strategy(c, delay));
                    if table.metadata.is_empty() {
                        kafka_rows(env, kafka_source(k, KafkaValues(decoder)), strategy)
                    } else {
                        kafka_rows(env, kafka_source(k, KafkaRows(decoder)), strategy)
                    }
                }
                Connector::Filesystem { path, .. } => {
                    let files = Files::with_format(
                        [path],
                        RowFormat {
                            table: std::sync::Arc::clone(table),
                        },
                    )
                    .on_error(bad_rows(table));
                    match table.watermark {
                        Some((c, delay)) => env.read_with(files, strategy(c, delay)),
                        None => env.read(files),
                    }
                }
                Connector::Datagen(spec) => {
                    let t = std::sync::Arc::clone(table);
                    let spec = spec.clone();
                    // A row whose computed columns fail carries the reason, and fails the job
                    // just after the source.
                    let mut generator = Generator::new(move |i| generate(&t, &spec, i));
                    if let Some(n) = spec_rows(table) {
                        generator = generator.count(n);
                    }
                    if let Some(r) = spec_rate(table) {
                        generator = generator.rate(r);
                    }
                    let generated = match table.watermark {
                        Some((c, delay)) => {
                            let s = WatermarkStrategy::bounded_out_of_orderness(
                                Duration::from_millis(delay as u64),
                            )
                            .with_timestamps(
                                move |r: &Result<Row, String>| {
                                    r.as_ref()
                                        .ok()
                                        .and_then(|r| r.0[c].as_millis())
                                        .unwrap_or(Time::MIN)
                                },
                            );
                            env.generate_with(generator, s)
                        }
                        None => env.generate(generator),
                    };
                    let ctx = Rc::clone(generated.context());
                    let name = table.name.clone();
                    generated.flat_map(move |r: Result<Row, String>| match r {
                        Ok(row) => Some(row),
                        Err(m) => {
                            fail(&ctx, &format!("table {name}"), &m);
                            None
                        }
                    })
                }
                Connector::Nexmark(spec) => {
                    let events = nexmark_events(env, table, spec);
                    let ctx = Rc::clone(env.context());
                    let (t, kind) = (std::sync::Arc::clone(table), spec.kind);
                    let mut strings = Interned::default();
                    // Computed columns may read any physical column: nothing is left out then.
                    let needed = needed.filter(|_| table.computed.is_empty());
                    let filter = filter.map(|c| ScanCondition::new(c, kind, &t, &ctx));
                    let mut scratch = vec![Value::Null; t.fields.len()];
                    // Events are read where they lie (an event is large: moving each one in
                    // cost more than testing it); a row that passes the condition is made whole.
                    let name = format!("table {}", table.name);
                    read_events(events, kind, &name, move |e: &Event| {
                        if let Some(filter) = &filter {
                            if !filter.holds(kind, e, &mut scratch, &mut strings)? {
                                return None;
                            }
                            return nexmark_vec(kind, e, &mut strings, needed.as_deref()).map(Row);
                        }
                        let row = nexmark_row(&t, kind, e, &mut strings, needed.as_deref())?;
                        match row {
                            Ok(row) => Some(row),
                            Err(m) => {
                                fail(&ctx, &format!("table {}", t.name), &m);
                                None
                            }
                        }
                    })
                }
                _ => unreachable!("the planner scans file and generated tables only"),
            };
            Built::Append(stream.name(format!("table {}", table.name)))
        }
        Plan::Filter { input, cond } => {
            let needed = needed.map(|mut n| {
                mark_read(&cond.scalar, &mut n);
                n
            });
            if let Plan::Scan { table } = input.as_ref()
                && matches!(table.connector, Connector::Nexmark(_))
                && table.computed.is_empty()
            {
                // Tested in the scan, on rows made in place (most rows fail a selective
                // condition: none of them is allocated or handed on).
                return build_reading(env, input, needed, Some(cond));
            }
            let built = build_reading(env, input, needed, None);
            let types: Vec<DataType> = input.fields().iter().map(|f| f.ty).collect();
            let compiled = IntCondition::compile(&cond.scalar, &types);
            let (cond, text) = (cond.scalar.clone(), cond.text.clone());
            let name = format!("filter {}", plan_text(plan));
            let test = move |row: &[Value], ctx: &Rc<WorkerContext>| {
                compiled
                    .as_ref()
                    .and_then(|c| c.test_row(row))
                    .unwrap_or_else(|| holds(&cond, row, ctx, &text))
            };
            match built {
                Built::Append(stream) => {
                    let ctx = Rc::clone(stream.context());
                    Built::Append(stream.filter(move |r| test(&r.0, &ctx)).name(name))
                }
                Built::Updating(c) => {
                    let ctx = Rc::clone(c.context());
                    Built::Updating(c.filter(move |(_, r)| test(&r.0, &ctx)))
                }
            }
        }
        Plan::Unnest {
            input,
            array,
            columns,
            outer,
            ordinality,
        } => {
            let width = input.fields().len();
            let needed = needed.map(|mut n| {
                n.truncate(width);
                mark_read(&array.scalar, &mut n);
                n
            });
            let width = columns.len() - usize::from(*ordinality);
            let unnest = Unnest {
                array: array.clone(),
                spread: width > 1 || array.ty.element().is_some_and(|t| t.fields().is_some()),
                width,
                outer: *outer,
                ordinality: *ordinality,
            };
            let name = format!("unnest {}", array.text);
            match build_reading(env, input, needed, None) {
                Built::Append(stream) => {
                    let ctx = Rc::clone(stream.context());
                    Built::Append(
                        stream
                            .flat_map(move |r: Row| unnest.apply(r, &ctx))
                            .name(name),
                    )
                }
                Built::Updating(c) => {
                    let ctx = Rc::clone(c.context());
                    Built::Updating(c.flat_map(move |(k, r): (Row, Row)| {
                        unnest
                            .apply(r, &ctx)
                            .into_iter()
                            .map(move |out| (k.clone(), out))
                    }))
                }
            }
        }
        Plan::Project { input, exprs } => {
            if let Some(one) = composed(input, exprs) {
                return build_reading(env, &one, needed, filter);
            }
            if let Some(built) = projected_windows(env, input, exprs) {
                return built;
            }
            let mut projector = Projector::new(exprs.iter().map(|(_, e)| e.clone()).collect());
            let name = format!("project {}", plan_text(plan));
            let mut read = Vec::new();
            for e in &projector.exprs {
                mark_read(&e.scalar, &mut read);
            }
            if reads_nexmark(input).is_some() {
                // Made in the scan, from the event, with no row between.
                return Built::Append(projected_scan(env, input, projector.exprs).name(name));
            }
            let (built, layout) = build_laid_out(env, input, read);
            if let Some(at) = layout {
                projector =
                    Projector::new(projector.exprs.iter().map(|e| relaid(e, &at)).collect());
            }
            match built {
                Built::Append(stream) => {
                    let ctx = Rc::clone(stream.context());
                    Built::Append(
                        stream
                            .flat_map(move |r: Row| projector.apply(r, &ctx))
                            .name(name),
                    )
                }
                Built::Updating(c) => {
                    let ctx = Rc::clone(c.context());
                    Built::Updating(c.flat_map(move |(k, r): (Row, Row)| {
                        projector.apply(r, &ctx).map(|out| (k, out))
                    }))
                }
            }
        }
        Plan::WindowAssign {
            input,
            spec: WindowSpec::Session { gap },
            partition,
        } => Built::Append(session_rows(env, input, *gap, partition)),
        Plan::WindowAssign { input, spec, .. } => {
            let rowtime = input.rowtime().expect("windows are on event time");
            let spec = *spec;
            Built::Append(
                build(env, input)
                    .flat_map(move |r: Row| {
                        let t = r.0[rowtime].as_millis().unwrap_or(0);
                        windows_of(spec, t)
                            .into_iter()
                            .map(|(start, end)| {
                                let mut v = r.0.clone();
                                v.extend([
                                    Value::Timestamp(start),
                                    Value::Timestamp(end),
                                    Value::Timestamp(end - 1),
                                ]);
                                Row(v)
                            })
                            .collect::<Vec<_>>()
                    })
                    .name(format!("windows {spec}")),
            )
        }
        Plan::WindowAggregate {
            input,
            spec,
            keys,
            aggs,
        } => {
            // The rows of an extreme filter, when it keeps all this aggregate needs.
            let text = without_positions(&format!("{plan:?}"));
            let fed = env
                .fed
                .iter()
                .find(|(t, _)| *t == text)
                .map(|(_, s)| s.clone());
            Built::Append(window_aggregate(
                env,
                input,
                fed,
                *spec,
                keys,
                aggs,
                Selected::default(),
            ))
        }
        Plan::GroupAggregate { input, keys, aggs } => {
            let mut read = Vec::new();
            for (_, k) in keys {
                mark_read(&k.scalar, &mut read);
            }
            for a in aggs {
                for s in a.arg.iter().chain(&a.filter) {
                    mark_read(s, &mut read);
                }
            }
            let (built, layout) = build_laid_out(env, input, read);
            let Some(at) = layout else {
                return Built::Updating(group_aggregate(built, keys, aggs));
            };
            let keys: Vec<(String, Typed)> = keys
                .iter()
                .map(|(n, k)| (n.clone(), relaid(k, &at)))
                .collect();
            let mut aggs = aggs.clone();
            for a in &mut aggs {
                for s in a.arg.iter_mut().chain(&mut a.filter) {
                    crate::plan::map_columns(s, &mut |c| at[c]);
                }
            }
            Built::Updating(group_aggregate(built, &keys, &aggs))
        }
        Plan::Over {
            input,
            partition,
            frame,
            aggs,
        } => {
            let stream = build(env, input);
            let ctx = Rc::clone(stream.context());
            let f = OverFn {
                frame: *frame,
                aggs: Aggregates::new(aggs, &ctx),
            };
            Built::Append(
                stream
                    .flat_map(key_of(partition, &ctx, "PARTITION BY"))
                    .keyed()
                    .process(f)
                    .name(format!("over {frame}")),
            )
        }
        Plan::Rank {
            input,
            partition,
            order,
            limit,
            ..
        } => {
            let rows = build_any(env, input).rows();
            let limit = limit.expect("the planner bounds every ranking");
            Built::Updating(rank(rows, partition, order, limit).map(|r| (r.clone(), r)))
        }
        Plan::Join { .. } if plan.interval_join_bounds().is_some() => {
            Built::Append(interval_join(env, plan, needed, false).0)
        }
        Plan::Join {
            left,
            right,
            kind,
            left_keys,
            right_keys,
            residual,
        } => {
            let (lw, rw) = (left.fields().len(), right.fields().len());
            let sides = join_reads(needed, left_keys, right_keys, residual, (lw, rw));
            let (ln, rn) = sides.unzip();
            let l = only_read(build_reading(env, left, ln.clone(), None).rows(), ln);
            let r = only_read(build_reading(env, right, rn.clone(), None).rows(), rn);
            let joined = join(l, r, *kind, left_keys, right_keys, (lw, rw));
            let joined = match residual_holds(residual, joined.context()) {
                None => joined,
                Some(holds) => joined.filter(holds),
            };
            Built::Updating(joined.map(|r| (r.clone(), r)))
        }
        Plan::Union { inputs } => {
            let built: Vec<Built<'s>> = inputs.iter().map(|i| build_any(env, i)).collect();
            if built.iter().all(|b| matches!(b, Built::Append(_))) {
                let mut streams = built.into_iter().map(Built::append);
                let first = streams.next().expect("a union has inputs");
                Built::Append(streams.fold(first, |a, b| a.union(b)))
            } else {
                let mut all = built.into_iter().map(Built::updating);
                let first = all.next().expect("a union has inputs");
                Built::Updating(all.fold(first, |a, b| a.concat(b)))
            }
        }
    }
}

/// An append-only inner join on the DataStream interval join (`plan` is a [`Plan::Join`] with
/// [`interval_join_bounds`](Plan::interval_join_bounds)); `needed` as for [`build_reading`].
///
/// With `compact` and `needed`, each side's rows wait in the join holding only the columns read
/// above or by its residual condition (the key is taken from the row before), a pair is tested
/// by the residual on those columns of the left row, then of the right, and a joined row holds
/// only the columns read above, in order: the second value returned says where each column of
/// the join's rows is in it (`usize::MAX`: not there), for the node above to read it there.
/// Nexmark q4's auction and bid then wait as 4 and 2 values (were 10 and 7), and a joined row
/// is 3 values where it was 17.
fn interval_join<'s>(
    env: &mut Cx<'s, '_>,
    plan: &Plan,
    needed: Option<Vec<bool>>,
    compact: bool,
) -> (DataStream<'s, Row>, Option<Vec<usize>>) {
    if let Some(w) = plan.window_join() {
        return window_join::window_join(env, plan, w, needed, compact);
    }
    let Plan::Join {
        left,
        right,
        left_keys,
        right_keys,
        residual,
        ..
    } = plan
    else {
        unreachable!("an interval join is a join")
    };
    let (lower, upper) = match plan.interval_join_bounds().expect("an interval join") {
        // One end open: both sides kept, every pair of a key tested by the residual
        // (which holds the bound) — a regular join's rows, late rows included, as Flink
        // runs it; only append-only, on the keyed hash state.
        (l, u) if l == i64::MIN || u == i64::MAX => (i64::MIN, i64::MAX),
        bounds => bounds,
    };
    let (lw, rw) = (left.fields().len(), right.fields().len());
    // The columns of the join's rows read above (all of them without `needed`).
    let above: Vec<usize> = match &needed {
        Some(n) => marked(n, lw + rw).collect(),
        None => (0..lw + rw).collect(),
    };
    // The columns each side's rows keep while they wait, when compacted: those read above
    // and by the residual (a key is taken before).
    let waiting = join_reads(needed.clone(), &[], &[], residual, (lw, rw));
    let (ln, rn) = join_reads(needed, left_keys, right_keys, residual, (lw, rw)).unzip();
    let kept = |read: &Option<Vec<bool>>, width: usize| -> Option<Rc<[usize]>> {
        Some(marked(read.as_ref()?, width).collect())
    };
    let (wl, wr) = waiting.unzip();
    let taken = match (kept(&wl, lw), kept(&wr, rw)) {
        (Some(l), Some(r)) if compact => Some((l, r)),
        _ => None,
    };
    // Where each column is in a pair's kept columns (the left row's, then the right row's),
    // and so which of them a joined row is made of: those read above (the residual may read
    // more), in order.
    let in_pair = taken
        .as_ref()
        .map(|(l, r)| positions(l.iter().copied().chain(r.iter().map(|c| lw + c)), lw + rw));
    let out: Option<Rc<[usize]>> = in_pair
        .as_ref()
        .map(|at| above.iter().map(|&c| at[c]).collect::<Rc<[usize]>>())
        .filter(|out| {
            let width = taken.as_ref().map_or(0, |(l, r)| l.len() + r.len());
            !(out.len() == width && out.iter().enumerate().all(|(i, &c)| i == c))
        });
    let layout = in_pair
        .as_ref()
        .map(|_| positions(above.iter().copied(), lw + rw));
    let (lt, rt) = taken.clone().unzip();
    let nulling = layout.is_none();
    // A side joined only with a window's MAX or MIN of its own rows: the rows that
    // cannot be it go no further (see `extreme`).
    let extreme = crate::extreme::extreme_filter(plan, lower, upper);
    let side = |env: &mut Cx<'s, '_>,
                input: &Plan,
                read: Option<Vec<bool>>,
                filter: Option<crate::extreme::ExtremeFilter>| {
        // Over a Nexmark scan the filter runs inside it, on the columns it reads: the
        // rows it drops (most of them) are never made.
        if let Some(f) = &filter
            && let Some((table, spec, cond)) = reads_nexmark(input)
        {
            return nexmark_extreme_rows(env, table, spec, cond, read, f.clone());
        }
        let rows = build_reading(env, input, read.clone(), None).append();
        let rows = match filter {
            Some(f) => f.apply(rows),
            None => rows,
        };
        // The columns nobody reads are left NULL before the row waits in the join (or, when
        // compacted, not kept at all).
        match read {
            Some(read) if nulling && read.contains(&false) => rows.map(move |mut r: Row| {
                null_unread(&mut r, &read);
                r
            }),
            _ => rows,
        }
    };
    let on_left = extreme.as_ref().is_some_and(|f| f.left);
    // A window aggregate that reads only the filtered side's kept rows finds them
    // built: that side is built first, also making the columns the aggregate reads.
    let feeds = extreme.as_ref().and_then(|f| f.feeds().cloned());
    let filtered = |env: &mut Cx<'s, '_>,
                    input: &Plan,
                    read: Option<Vec<bool>>,
                    filter: Option<crate::extreme::ExtremeFilter>| {
        let (Some(feeds), Some(_)) = (&feeds, &filter) else {
            return side(env, input, read, filter);
        };
        // An aggregate built already (read elsewhere in the plan first) reads its
        // own input: nothing would read the kept rows.
        if env.built.iter().any(|(t, _)| *t == feeds.aggregate) {
            return side(env, input, read, filter);
        }
        let read = read.map(|mut read| {
            for &c in &feeds.columns {
                if read.len() <= c {
                    read.resize(c + 1, false);
                }
                read[c] = true;
            }
            read
        });
        env.feeding.push(feeds.aggregate.clone());
        let rows = side(env, input, read, filter);
        env.feeding.retain(|t| *t != feeds.aggregate);
        let fed = feeds.clone();
        let fed = rows.clone().map(move |r: Row| fed.input_row(r));
        env.fed.push((feeds.aggregate.clone(), fed));
        rows
    };
    let (lf, rf) = if on_left {
        (extreme, None)
    } else {
        (None, extreme)
    };
    let residual = match (residual, &in_pair) {
        (Some(res), Some(at)) => Some(relaid(res, at)),
        (res, _) => res.clone(),
    };
    // The residual's types on a pair's columns, to compile it when it compares integers.
    let types: Vec<DataType> = match &taken {
        Some((l, r)) => {
            let (lf, rf) = (left.fields(), right.fields());
            l.iter()
                .map(|&c| lf[c].ty)
                .chain(r.iter().map(|&c| rf[c].ty))
                .collect()
        }
        None => left
            .fields()
            .iter()
            .chain(&right.fields())
            .map(|f| f.ty)
            .collect(),
    };
    // Both sides' kept columns integers, at most four (as q4's auctions and bids).
    let int_sides = taken.as_ref().is_some_and(|(l, r)| {
        l.len() <= IntKey::MOST
            && r.len() <= IntKey::MOST
            && types.iter().all(|&t| IntKey::class(t).is_some())
    });
    let pair = PairRow {
        int_residual: residual
            .as_ref()
            .and_then(|r| crate::intcond::IntCondition::compile(&r.scalar, &types)),
        residual,
        out,
        ctx: Rc::clone(env.context()),
        scratch: Default::default(),
        left_width: taken.as_ref().map_or(0, |(l, _)| l.len()),
        types,
    };
    // Such sides joined on a key of at most two integers wait inline (see `IntSide`), each
    // read straight from a Nexmark scan's events when it is one.
    if int_sides
        && lf.is_none()
        && rf.is_none()
        && let (Some(a), Some(b)) = (IntKey::of(left_keys), IntKey::of(right_keys))
        && a.compares_with(&b)
        && a.narrow()
    {
        let (lt, rt) = taken.expect("compacted");
        let l = IntSide::of(env, left, a, lt, ln);
        let r = IntSide::of(env, right, b, rt, rn);
        let joined = match (l, r) {
            (IntSide::Two(l), IntSide::Two(r)) => interval_join_rows(l, r, lower, upper, pair),
            (IntSide::Two(l), IntSide::Four(r)) => interval_join_rows(l, r, lower, upper, pair),
            (IntSide::Four(l), IntSide::Two(r)) => interval_join_rows(l, r, lower, upper, pair),
            (IntSide::Four(l), IntSide::Four(r)) => interval_join_rows(l, r, lower, upper, pair),
        };
        return (joined, layout);
    }
    let (l, r) = if rf.is_some() && feeds.is_some() {
        let r = filtered(env, right, rn, rf);
        (filtered(env, left, ln, lf), r)
    } else {
        let l = filtered(env, left, ln, lf);
        (l, filtered(env, right, rn, rf))
    };
    let ctx = Rc::clone(l.context());
    // A NULL key matches nothing in an inner join.
    let joined = match (IntKey::of(left_keys), IntKey::of(right_keys)) {
        (Some(a), Some(b)) if a.compares_with(&b) => {
            if a.narrow() {
                let (l, r) = (join_keyed::<2>(l, a, lt), join_keyed::<2>(r, b, rt));
                interval_join_rows(l, r, lower, upper, pair)
            } else {
                let (l, r) = (join_keyed::<4>(l, a, lt), join_keyed::<4>(r, b, rt));
                interval_join_rows(l, r, lower, upper, pair)
            }
        }
        _ => {
            let keyed = |rows: DataStream<'s, Row>, keys: &[Typed], take: Option<Rc<[usize]>>| {
                let mut key = key_of(keys, &ctx, "ON");
                rows.flat_map(move |r: Row| {
                    let (k, r) = key(r).filter(|(k, _)| !k.0.iter().any(Value::is_null))?;
                    Some((k, taking(r, take.as_deref())))
                })
                .keyed()
            };
            let (l, r) = (keyed(l, left_keys, lt), keyed(r, right_keys, rt));
            interval_join_rows(l, r, lower, upper, pair)
        }
    };
    (joined, layout)
}

/// `input` built for a node above that reads its columns `read` (see [`build_reading`]); an
/// interval join makes its rows of only those columns, and the layout returned says where each
/// column is in them (see [`interval_join`]: the node reads them through [`relaid`]).
fn build_laid_out<'s>(
    env: &mut Cx<'s, '_>,
    input: &Plan,
    read: Vec<bool>,
) -> (Built<'s>, Option<Vec<usize>>) {
    if matches!(input, Plan::Join { .. }) && input.interval_join_bounds().is_some() {
        let (joined, layout) = interval_join(env, input, Some(read), true);
        return (Built::Append(joined), layout);
    }
    (build_reading(env, input, Some(read), None), None)
}

/// The columns `read` marks, of the first `width`.
fn marked(read: &[bool], width: usize) -> impl Iterator<Item = usize> + '_ {
    (0..width).filter(|&c| read.get(c) == Some(&true))
}

/// Where each of `width` columns is among `columns` (taken in this order; `usize::MAX`: not
/// among them).
fn positions(columns: impl Iterator<Item = usize>, width: usize) -> Vec<usize> {
    let mut at = vec![usize::MAX; width];
    for (i, c) in columns.enumerate() {
        at[c] = i;
    }
    at
}

/// `e` reading column `at[c]` where it read column `c`.
fn relaid(e: &Typed, at: &[usize]) -> Typed {
    let mut e = e.clone();
    crate::plan::map_columns(&mut e.scalar, &mut |c| at[c]);
    e
}

/// A join's residual condition as a test of the joined rows (`None`: it has none).
fn residual_holds(
    residual: &Option<Typed>,
    ctx: &Rc<WorkerContext>,
) -> Option<impl FnMut(&Row) -> bool + 'static> {
    let cond = residual.as_ref()?;
    let (cond, text, ctx) = (cond.scalar.clone(), cond.text.clone(), Rc::clone(ctx));
    Some(move |r: &Row| holds(&cond, &r.0, &ctx, &text))
}

/// Whether `cond` holds on `row` (an error fails the job: the row is not passed).
fn holds(cond: &crate::expr::Scalar, row: &[Value], ctx: &Rc<WorkerContext>, text: &str) -> bool {
    match cond.holds(row) {
        Ok(b) => b,
        Err(m) => {
            fail(ctx, &format!("WHERE {text}"), &m);
            false
        }
    }
}

/// The columns each side of a join must keep, given those read above it (`needed`; `None`:
/// all): those, its keys and its residual condition. The others can be left NULL before the
/// sides wait in the join's state, so that it holds no text nobody reads.
fn join_reads(
    needed: Option<Vec<bool>>,
    left_keys: &[Typed],
    right_keys: &[Typed],
    residual: &Option<Typed>,
    (lw, rw): (usize, usize),
) -> Option<(Vec<bool>, Vec<bool>)> {
    let n = needed?;
    let read = |c: usize| n.get(c) == Some(&true);
    let mut l: Vec<bool> = (0..lw).map(read).collect();
    let mut r: Vec<bool> = (lw..lw + rw).map(read).collect();
    for k in left_keys {
        mark_read(&k.scalar, &mut l);
    }
    for k in right_keys {
        mark_read(&k.scalar, &mut r);
    }
    if let Some(res) = residual {
        crate::plan::visit_columns(&res.scalar, &mut |c| {
            if c < lw {
                l[c] = true;
            } else if c - lw < rw {
                r[c - lw] = true;
            }
        });
    }
    Some((l, r))
}

/// Sets the columns of `row` that `read` does not mark to NULL.
fn null_unread(row: &mut Row, read: &[bool]) {
    for (i, v) in row.0.iter_mut().enumerate() {
        if read.get(i) != Some(&true) {
            *v = Value::Null;
        }
    }
}

/// `rows` with the columns `read` does not mark set to NULL (all of them kept without `read`).
fn only_read<'s>(rows: Collection<'s, Row>, read: Option<Vec<bool>>) -> Collection<'s, Row> {
    match read {
        Some(read) if read.contains(&false) => rows.map(move |mut r: Row| {
            null_unread(&mut r, &read);
            r
        }),
        _ => rows,
    }
}

/// Marks in `read` the columns `s` reads (growing it as needed).
fn mark_read(s: &Scalar, read: &mut Vec<bool>) {
    crate::plan::visit_columns(s, &mut |c| {
        if read.len() <= c {
            read.resize(c + 1, false);
        }
        read[c] = true;
    });
}

/// `UNNEST`'s way from a row to its rows: one per element of the array, the element (or, for
/// a ROW element, its fields) after the row's columns.
struct Unnest {
    array: Typed,
    /// Whether an element is a ROW whose fields become columns.
    spread: bool,
    /// The number of columns an element gives.
    width: usize,
    /// Whether a row without elements is kept once, with NULLs.
    outer: bool,
    /// Whether each element's position (from 1) follows its columns.
    ordinality: bool,
}

impl Unnest {
    fn apply(&self, row: Row, ctx: &Rc<WorkerContext>) -> Vec<Row> {
        let items = match self.array.scalar.eval(&row.0) {
            Ok(Value::Array(items)) => items,
            Ok(_) => std::sync::Arc::from(Vec::new()),
            Err(m) => {
                fail(ctx, &format!("UNNEST({})", self.array.text), &m);
                return Vec::new();
            }
        };
        let with = |element: &Value, position: Option<usize>| {
            let mut out = Vec::with_capacity(row.0.len() + self.width + 1);
            out.extend(row.0.iter().cloned());
            match element {
                Value::Row(fields) if self.spread => out.extend(fields.iter().cloned()),
                _ if self.spread => out.extend((0..self.width).map(|_| Value::Null)),
                v => out.push(v.clone()),
            }
            if self.ordinality {
                out.push(position.map_or(Value::Null, |p| {
                    Value::Int(i32::try_from(p + 1).unwrap_or(i32::MAX))
                }));
            }
            Row(out)
        };
        if items.is_empty() {
            return if self.outer {
                vec![with(&Value::Null, None)]
            } else {
                Vec::new()
            };
        }
        items
            .iter()
            .enumerate()
            .map(|(i, e)| with(e, Some(i)))
            .collect()
    }
}

/// The input columns a projection names, when it names nothing but columns.
fn only_columns(exprs: &[(String, Typed)]) -> Option<Vec<usize>> {
    exprs
        .iter()
        .map(|(_, e)| match e.scalar {
            Scalar::Col(c) => Some(c),
            _ => None,
        })
        .collect()
}

/// A projection of columns only (`exprs`) over another projection (`input`), as one: each
/// column replaced by the expression below that makes it, so the rows pass one operator, not
/// two (a sink's projection of a query's columns, most often). `None` when `input` is not a
/// projection, or when an expression below that is not a column would be computed twice, or
/// not at all (nothing above reads it: its errors must still fail the job).
fn composed(input: &Plan, exprs: &[(String, Typed)]) -> Option<Plan> {
    let Plan::Project {
        input: below,
        exprs: inner,
    } = input
    else {
        return None;
    };
    let columns = only_columns(exprs).filter(|cs| cs.iter().all(|&c| c < inner.len()))?;
    // Each computed column below is computed once, as before: not twice (read twice above),
    // and not never (read by nothing above: an expression that fails on a row must still fail
    // the job).
    let computed_once = inner.iter().enumerate().all(|(c, (_, e))| {
        matches!(e.scalar, Scalar::Col(_)) || columns.iter().filter(|x| **x == c).count() == 1
    });
    if !computed_once {
        return None;
    }
    Some(Plan::Project {
        input: below.clone(),
        exprs: exprs
            .iter()
            .zip(&columns)
            .map(|((name, above), &c)| {
                // The column's type as the projection above declared it.
                let e = Typed {
                    ty: above.ty,
                    ..inner[c].1.clone()
                };
                (name.clone(), e)
            })
            .collect(),
    })
}

/// A projection of distinct columns (`exprs`) right over a window aggregate (`input`) that the
/// job builds nowhere else, made as the aggregate's results are (see [`Selected`]).
fn projected_windows<'s>(
    env: &mut Cx<'s, '_>,
    input: &Plan,
    exprs: &[(String, Typed)],
) -> Option<Built<'s>> {
    let Plan::WindowAggregate {
        input: below,
        spec,
        keys,
        aggs,
    } = input
    else {
        return None;
    };
    let columns = only_columns(exprs)?;
    let select = Selected::of(columns)?;
    let text = without_positions(&format!("{input:?}"));
    if env.built.iter().any(|(t, _)| *t == text) || env.uses(&text) != 1 {
        return None;
    }
    let fed = env
        .fed
        .iter()
        .find(|(t, _)| *t == text)
        .map(|(_, s)| s.clone());
    Some(Built::Append(window_aggregate(
        env, below, fed, *spec, keys, aggs, select,
    )))
}

/// A projection's way from an input row to its output row: an output column that is an input
/// column read by nothing else in the projection is moved out of the input row (no copy, no
/// reference count touched); the others are evaluated. The output row is made in the input
/// row's buffer (no allocation per row), and a projection of the input's first columns in
/// order (the sink's own projection, often) only cuts the row short.
struct Projector {
    exprs: Vec<Typed>,
    /// For each output column, the input column moved into it.
    moved: Vec<Option<usize>>,
    /// Whether output column `i` is input column `i`, for every `i`.
    prefix: bool,
    /// The output values while they are made (the input row is read until the last one).
    scratch: std::cell::RefCell<Vec<Value>>,
}

impl Projector {
    fn new(exprs: Vec<Typed>) -> Projector {
        let mut reads: HashMap<usize, usize> = HashMap::new();
        for e in &exprs {
            crate::plan::visit_columns(&e.scalar, &mut |c| *reads.entry(c).or_default() += 1);
        }
        let moved: Vec<Option<usize>> = exprs
            .iter()
            .map(|e| match e.scalar {
                Scalar::Col(c) if reads[&c] == 1 => Some(c),
                _ => None,
            })
            .collect();
        let prefix = moved.iter().enumerate().all(|(i, m)| *m == Some(i));
        Projector {
            exprs,
            moved,
            prefix,
            scratch: Default::default(),
        }
    }

    /// The output row of `row` (an error fails the job: no row).
    fn apply(&self, row: Row, ctx: &Rc<WorkerContext>) -> Option<Row> {
        self.project(row)
            .map_err(|(what, m)| fail(ctx, what, &m))
            .ok()
    }

    /// The output row of `row`, or the expression that failed and why.
    fn project(&self, mut row: Row) -> Result<Row, (&str, String)> {
        if self.prefix && row.0.len() >= self.exprs.len() {
            row.0.truncate(self.exprs.len());
            return Ok(row);
        }
        let mut out = self.scratch.borrow_mut();
        out.clear();
        for (e, moved) in self.exprs.iter().zip(&self.moved) {
            // A column moved is read by no other expression: it can leave the row at once (a
            // value taken from the row and pushed, rather than a NULL pushed and overwritten
            // later, which costs a stalled store per column on x86).
            let v = match moved {
                Some(c) => std::mem::take(&mut row.0[*c]),
                None => e.scalar.eval(&row.0).map_err(|m| (e.text.as_str(), m))?,
            };
            out.push(v);
        }
        row.0.clear();
        row.0.append(&mut out);
        Ok(row)
    }
}

/// Per group of an append-only input, its keys and aggregates, as Flink keeps them: one
/// accumulator per group (a rolling aggregate: combined per tick before the exchange, folded into
/// keyed state), each group's new result an upsert that retracts its previous one.
fn rolling_group_aggregate<'s>(
    rows: DataStream<'s, Row>,
    keys: &[(String, Typed)],
    aggs: &[Agg],
) -> Collection<'s, (Row, Row)> {
    let ctx = Rc::clone(rows.context());
    let key_exprs: Vec<Typed> = keys.iter().map(|(_, k)| k.clone()).collect();
    let f = Aggregates::new(aggs, &ctx);
    let ints = IntAggs::of(aggs).filter(|i| i.fit(2)).map(|i| i.on(&ctx));
    match IntKey::of(&key_exprs) {
        // Keys of integer-like columns: kept inline in the keyed state (as in window
        // aggregations), made a row again for each result; with at most two aggregates of
        // integers, their accumulators too.
        Some(int_key) if int_key.narrow() => match ints {
            Some(ints) => rolling_int_aggs::<2>(rows, int_key, ints),
            None => rolling_int_keyed::<2>(rows, int_key, f),
        },
        Some(int_key) => rolling_int_keyed::<4>(rows, int_key, f),
        None => {
            let keyed = rows.flat_map(key_of(&key_exprs, &ctx, "GROUP BY")).keyed();
            rolling_aggregates(keyed, f, Row::clone)
        }
    }
}

/// [`rolling_group_aggregate`] keyed by `int_key`'s values, inline in `N` integers.
fn rolling_int_keyed<'s, const N: usize>(
    rows: DataStream<'s, Row>,
    int_key: IntKey,
    f: Aggregates,
) -> Collection<'s, (Row, Row)>
where
    IntKeyValue<N>: tidal_operators::keyed::Key,
{
    let mut key = int_key.keyer::<N>(rows.context(), "GROUP BY");
    let keyed = rows.flat_map(move |r: Row| Some((key(&r.0)?, r))).keyed();
    rolling_aggregates(keyed, f, move |key: &IntKeyValue<N>| int_key.row(key))
}

/// [`rolling_group_aggregate`] keyed by `int_key`'s values, inline in `N` integers, of at most
/// two aggregates with integer accumulators ([`IntAccs`]: a group of Nexmark q4's MAX per
/// auction keeps 56 bytes, where the general accumulators took 128).
fn rolling_int_aggs<'s, const N: usize>(
    rows: DataStream<'s, Row>,
    int_key: IntKey,
    ints: IntAggs,
) -> Collection<'s, (Row, Row)>
where
    IntKeyValue<N>: tidal_operators::keyed::Key,
{
    let mut key = int_key.keyer::<N>(rows.context(), "GROUP BY");
    let (i1, i2, i3, i4) = (ints.clone(), ints.clone(), ints.clone(), ints.clone());
    rows.flat_map(move |r: Row| Some((key(&r.0)?, ints.args::<2>(&r.0))))
        .keyed()
        // As in `rolling_aggregates`: a group whose results a tick left as they were is not
        // upserted again.
        .aggregate_changes(
            move |args| i1.create(args),
            move |accs, args| i2.add(accs, args),
            move |accs, other| i3.merge_changed(accs, other),
        )
        .name("group aggregate")
        .map(move |(key, accs): (IntKeyValue<N>, IntAccs<2>)| {
            let k = int_key.row(&key);
            let mut v = Vec::with_capacity(k.0.len() + 2);
            v.extend(k.0.iter().cloned());
            i4.results(&accs, &mut v);
            (k, Some(Row(v)))
        })
        .then("group aggregate, in its own order", at_message_time)
        .upsert_by_key()
}

/// One side of an interval join keyed by `k`'s values, inline in `N` integers (a row with a
/// NULL key matches nothing and is dropped).
fn join_keyed<'s, const N: usize>(
    rows: DataStream<'s, Row>,
    k: IntKey,
    take: Option<Rc<[usize]>>,
) -> KeyedStream<'s, IntKeyValue<N>, Row>
where
    IntKeyValue<N>: tidal_operators::keyed::Key,
{
    let mut key = k.keyer::<N>(rows.context(), "ON");
    rows.flat_map(move |r: Row| {
        let k = key(&r.0).filter(|k| k.nulls == 0)?;
        Some((k, taking(r, take.as_deref())))
    })
    .keyed()
}

/// One side of an interval join whose key is at most two integers and whose rows wait as
/// their kept columns (integers, dates and timestamps, at most four) inline, in two integers or
/// four: a bid of Nexmark q4 (its price and time) waits as 32 bytes with its time, where a
/// row of two values took a vector and 64 bytes on the heap.
enum IntSide<'s> {
    Two(KeyedStream<'s, IntKeyValue<2>, IntKeyValue<2>>),
    Four(KeyedStream<'s, IntKeyValue<2>, IntKeyValue<4>>),
}

impl<'s> IntSide<'s> {
    /// The side `input`, keyed by `key`, its rows as their columns `take` (`read`: the columns
    /// its rows are built with, when not read from events).
    fn of(
        env: &mut Cx<'s, '_>,
        input: &Plan,
        key: IntKey,
        take: Rc<[usize]>,
        read: Option<Vec<bool>>,
    ) -> IntSide<'s> {
        if take.len() <= 2 {
            IntSide::Two(int_side(env, input, key, take, read))
        } else {
            IntSide::Four(int_side(env, input, key, take, read))
        }
    }
}

/// An [`IntSide`] of `M` integers: read from a Nexmark scan's events when `input` is one
/// whose key and kept columns are its events' fields, else from its rows (a row with a NULL
/// key matches nothing and is dropped).
fn int_side<'s, const M: usize>(
    env: &mut Cx<'s, '_>,
    input: &Plan,
    key: IntKey,
    take: Rc<[usize]>,
    read: Option<Vec<bool>>,
) -> KeyedStream<'s, IntKeyValue<2>, IntKeyValue<M>>
where
    IntKeyValue<M>: tidal_operators::keyed::Value,
{
    if let Some((table, spec, cond)) = reads_nexmark(input) {
        let kind = spec.kind;
        let field = |c: usize| nexmark_ordered_column(kind, c);
        let fields = |cols: &mut dyn Iterator<Item = Option<usize>>| -> Option<Vec<EventInt>> {
            cols.map(|c| c.and_then(field)).collect()
        };
        let key_cols = &mut key.exprs.iter().map(|e| match e.scalar {
            Scalar::Col(c) => Some(c),
            _ => None,
        });
        if let (Some(k), Some(kept)) =
            (fields(key_cols), fields(&mut take.iter().map(|&c| Some(c))))
        {
            let ctx = Rc::clone(env.context());
            let cond = cond.map(|c| ScanCondition::new(c, kind, table, &ctx));
            let mut reader = ScanRow::new(kind, cond, Vec::new(), table);
            let events = nexmark_events(env, table, spec);
            let name = format!("table {}, keyed", table.name);
            return read_events(events, kind, &name, move |e: &Event| {
                reader.read(e)?;
                Some((inline::<2>(&k, e), inline::<M>(&kept, e)))
            })
            .keyed();
        }
    }
    let rows = build_reading(env, input, read, None).append();
    let mut key = key.keyer::<2>(rows.context(), "ON");
    rows.flat_map(move |r: Row| {
        let k = key(&r.0).filter(|k| k.nulls == 0)?;
        let mut kept = IntKeyValue {
            v: [0; M],
            nulls: 0,
        };
        for (i, &c) in take.iter().enumerate() {
            match r.0[c].as_ordered_int() {
                Some(x) => kept.v[i] = x,
                // The planner gave the column an integer-like type: only NULL is not one.
                None => kept.nulls |= 1 << i,
            }
        }
        Some((k, kept))
    })
    .keyed()
}

/// `row`, or only its columns `take` when given, in that order (moved out, not copied).
fn taking(mut row: Row, take: Option<&[usize]>) -> Row {
    match take {
        None => row,
        Some(cols) => Row(cols
            .iter()
            .map(|&c| std::mem::take(&mut row.0[c]))
            .collect()),
    }
}

/// Per key, the aggregates of its rows so far, upserted into a collection of `(key row,
/// result row)` (the result: the key's values, then the aggregates).
fn rolling_aggregates<'s, K: tidal_operators::keyed::Key>(
    keyed: KeyedStream<'s, K, Row>,
    f: Aggregates,
    key_row: impl Fn(&K) -> Row + 'static,
) -> Collection<'s, (Row, Row)> {
    let (f1, f2, f3, f4) = (f.clone(), f.clone(), f.clone(), f);
    keyed
        // A key whose aggregates a tick left as they were (most rows under a MAX) is not
        // upserted again: its row would retract and re-insert itself.
        .aggregate_changes(
            move |r: Row| f1.create(r),
            move |accs, r| f2.add(accs, &r),
            move |accs, other| f3.merge_changed(accs, other),
        )
        .name("group aggregate")
        .map(move |(key, accs): (K, crate::plan::Accs)| {
            let key = key_row(&key);
            let mut v = Vec::with_capacity(key.0.len() + accs.len());
            v.extend(key.0.iter().cloned());
            f4.results(&accs, &mut v);
            (key, Some(Row(v)))
        })
        .then("group aggregate, in its own order", at_message_time)
        .upsert_by_key()
}

/// `stream`'s records, each at the time of the message it came in (not before 0, the epoch)
/// rather than its own event time. A rolling aggregate emits a group's results in the order it
/// folds its input (message time), each stamped with the latest event time of what it folded
/// that tick; when input comes out of event-time order, a later result of a group can carry an
/// earlier event time than the result before it, and an upsert table, which applies a key's
/// values in event-time order, would end with the stale one. At message time a group's results
/// are in the order they were made (as Flink's group aggregate emits its changelog in
/// processing order; a GROUP BY without windows has no event time in Flink either). Message
/// times before the first watermark are `Time::MIN`: results made then are stamped 0 instead,
/// so that a sink writing the change's time (Debezium's `ts_ms`, a Kafka timestamp) writes no
/// such value; any time that never decreases keeps the order (a key's results at the same time
/// apply in the order they come).
fn at_message_time<'s, T: 'static>(
    stream: tidal_engine::timely::dataflow::StreamVec<'s, Time, (T, Time)>,
    name: &str,
) -> tidal_engine::timely::dataflow::StreamVec<'s, Time, (T, Time)> {
    use tidal_engine::timely::container::CapacityContainerBuilder;
    use tidal_engine::timely::dataflow::channels::pact::Pipeline;
    use tidal_engine::timely::dataflow::operators::generic::operator::Operator;
    stream.unary::<CapacityContainerBuilder<Vec<(T, Time)>>, _, _, _>(Pipeline, name, |_, _| {
        move |input, output| {
            input.for_each(|time, data| {
                let at = time.least().copied().unwrap_or(Time::MIN).max(0);
                output
                    .session(&time)
                    .give_iterator(data.drain(..).map(|(x, _)| (x, at)));
            });
        }
    })
}

/// Per group, its keys and aggregates over the group's rows as they are now: each change of a
/// group's rows replaces its result row.
fn group_aggregate<'s>(
    input: Built<'s>,
    keys: &[(String, Typed)],
    aggs: &[Agg],
) -> Collection<'s, (Row, Row)> {
    let rows = match input {
        Built::Append(s) => return rolling_group_aggregate(s, keys, aggs),
        updating => updating.rows(),
    };
    let ctx = Rc::clone(rows.context());
    let key_exprs: Vec<Typed> = keys.iter().map(|(_, k)| k.clone()).collect();
    // The arrangement keeps, per group, only the columns the aggregates read: rows equal in
    // those are one value with a count (a COUNT(*) group is a single empty row), and the
    // aggregates take each value with its count at once.
    let (slim, aggs) = slim_aggregates(aggs);
    let f = Aggregates::new(&aggs, &ctx);
    let mut key = key_of(&key_exprs, &ctx, "GROUP BY");
    let slim_rows = rows.flat_map(move |r: Row| {
        key(r).map(|(k, r)| (k, Row(slim.iter().map(|c| r.0[*c].clone()).collect())))
    });
    if aggs.iter().all(Agg::invertible) {
        // Counts and exact sums ride in differential's differences: a change costs the same
        // whatever the group's size (the reduce below folds the whole group again).
        let g = f.clone();
        return slim_rows.sums_by_key(move |row: &Row| f.sums(row)).map(
            move |(key, sums): (Row, Sums)| {
                let mut v = key.0.clone();
                g.results_of_sums(&sums, &mut v);
                (key, Row(v))
            },
        );
    }
    slim_rows.reduce(
        move |key: &Row, rows: &[(&Row, isize)], out: &mut Vec<(Row, isize)>| {
            let mut accs = f.start();
            for (row, count) in rows {
                f.add_times(&mut accs, row, *count as i64);
            }
            let mut v = key.0.clone();
            f.results(&accs, &mut v);
            out.push((Row(v), 1));
        },
    )
}

/// The input columns `aggs` read (arguments and filters), in order, and the aggregates reading
/// them from a row of only those columns.
fn slim_aggregates(aggs: &[Agg]) -> (Vec<usize>, Vec<Agg>) {
    let mut read = Vec::new();
    for a in aggs {
        for s in a.arg.iter().chain(&a.filter) {
            crate::plan::visit_columns(s, &mut |c| read.push(c));
        }
    }
    read.sort_unstable();
    read.dedup();
    let mut aggs = aggs.to_vec();
    for a in &mut aggs {
        for s in a.arg.iter_mut().chain(&mut a.filter) {
            crate::plan::map_columns(s, &mut |c| {
                read.binary_search(&c).expect("a column read is kept")
            });
        }
    }
    (read, aggs)
}

/// Each row keyed by `keys` (`Err`: the row, whose key holds a NULL and so matches nothing).
fn keyed<'s>(rows: Collection<'s, Row>, keys: &[Typed]) -> Collection<'s, Result<(Row, Row), Row>> {
    let ctx = Rc::clone(rows.context());
    let keys = keys.to_vec();
    rows.flat_map(move |r: Row| match eval_all(&keys, &r.0) {
        Ok(k) if k.iter().any(Value::is_null) => Some(Err(r)),
        Ok(k) => Some(Ok((Row(k), r))),
        Err((what, m)) => {
            fail(&ctx, &format!("ON {what}"), &m);
            None
        }
    })
}

fn matching<'s>(c: &Collection<'s, Result<(Row, Row), Row>>) -> Collection<'s, (Row, Row)> {
    c.clone().flat_map(|x: Result<(Row, Row), Row>| x.ok())
}

fn unmatchable<'s>(c: &Collection<'s, Result<(Row, Row), Row>>) -> Collection<'s, Row> {
    c.clone().flat_map(|x: Result<(Row, Row), Row>| x.err())
}

fn concat_rows(a: &Row, b: Option<&Row>, b_width: usize) -> Row {
    let mut v = a.0.clone();
    match b {
        Some(b) => v.extend(b.0.iter().cloned()),
        None => v.extend(std::iter::repeat_n(Value::Null, b_width)),
    }
    Row(v)
}

/// A regular equi-join of two collections of rows: `left columns..., right columns...`.
fn join<'s>(
    left: Collection<'s, Row>,
    right: Collection<'s, Row>,
    kind: JoinKind,
    left_keys: &[Typed],
    right_keys: &[Typed],
    (lw, rw): (usize, usize),
) -> Collection<'s, Row> {
    let l = keyed(left, left_keys);
    let r = keyed(right, right_keys);
    let (lm, rm) = (matching(&l), matching(&r));
    let inner = lm
        .clone()
        .join(rm.clone())
        .map(|(_, (a, b))| concat_rows(&a, Some(&b), 0));
    let left_alone = |lm: Collection<'s, (Row, Row)>, rm: &Collection<'s, (Row, Row)>| {
        let keys = rm.clone().map(|(k, _)| k).distinct();
        lm.antijoin(keys)
            .map(move |(_, a)| concat_rows(&a, None, rw))
    };
    let right_alone = |rm: Collection<'s, (Row, Row)>, lm: &Collection<'s, (Row, Row)>| {
        let keys = lm.clone().map(|(k, _)| k).distinct();
        rm.antijoin(keys).map(move |(_, b)| {
            let mut v = vec![Value::Null; lw];
            v.extend(b.0);
            Row(v)
        })
    };
    let null_left = || unmatchable(&l).map(move |a| concat_rows(&a, None, rw));
    let null_right = || {
        unmatchable(&r).map(move |b| {
            let mut v = vec![Value::Null; lw];
            v.extend(b.0);
            Row(v)
        })
    };
    match kind {
        JoinKind::Inner => inner,
        JoinKind::Left => inner.concat(left_alone(lm, &rm)).concat(null_left()),
        JoinKind::Right => inner.concat(right_alone(rm, &lm)).concat(null_right()),
        JoinKind::Full => inner
            .concat(left_alone(lm.clone(), &rm))
            .concat(right_alone(rm, &lm))
            .concat(null_left())
            .concat(null_right()),
    }
}

/// Per partition, its first `limit` rows in `order` (ties broken by the whole row, so the
/// result is the same on every run), each with its row number after its columns.
fn rank<'s>(
    rows: Collection<'s, Row>,
    partition: &[Typed],
    order: &[(Typed, bool)],
    limit: u64,
) -> Collection<'s, Row> {
    let ctx = Rc::clone(rows.context());
    let order = order.to_vec();
    rows.flat_map(key_of(partition, &ctx, "PARTITION BY"))
        .reduce(
            move |_key: &Row, rows: &[(&Row, isize)], out: &mut Vec<(Row, isize)>| {
                let mut sorted: Vec<(Vec<Value>, &Row, isize)> = Vec::with_capacity(rows.len());
                for (row, count) in rows {
                    let mut by = Vec::with_capacity(order.len());
                    for (e, _) in &order {
                        match e.scalar.eval(&row.0) {
                            Ok(v) => by.push(v),
                            Err(m) => {
                                fail(&ctx, &format!("ORDER BY {}", e.text), &m);
                                by.push(Value::Null);
                            }
                        }
                    }
                    sorted.push((by, row, *count));
                }
                sorted.sort_by(|a, b| {
                    for (i, (_, desc)) in order.iter().enumerate() {
                        let o = a.0[i].cmp(&b.0[i]);
                        let o = if *desc { o.reverse() } else { o };
                        if o.is_ne() {
                            return o;
                        }
                    }
                    a.1.cmp(b.1)
                });
                let mut n = 0u64;
                'rows: for (_, row, count) in sorted {
                    for _ in 0..count {
                        if n == limit {
                            break 'rows;
                        }
                        n += 1;
                        let mut v = row.0.clone();
                        v.push(Value::BigInt(n as i64));
                        out.push((Row(v), 1));
                    }
                }
            },
        )
        .map(|(_, r)| r)
}

fn plan_text(plan: &Plan) -> String {
    match plan {
        Plan::Filter { cond, .. } => cond.text.clone(),
        Plan::Project { exprs, .. } => exprs
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    }
}

/// The windows (start, end) that time `t` falls in.
fn windows_of(spec: WindowSpec, t: i64) -> Vec<(i64, i64)> {
    match spec {
        WindowSpec::Tumble { size } => {
            let start = t - t.rem_euclid(size);
            vec![(start, start + size)]
        }
        WindowSpec::Hop { slide, size } => {
            let last = t - t.rem_euclid(slide);
            let mut out = Vec::new();
            let mut start = last;
            while start > t - size {
                out.push((start, start + size));
                start -= slide;
            }
            out.reverse();
            out
        }
        WindowSpec::Cumulate { step, size } => {
            let start = t - t.rem_euclid(size);
            let mut end = t - t.rem_euclid(step) + step;
            let mut out = Vec::new();
            while end <= start + size {
                out.push((start, end));
                end += step;
            }
            out
        }
        WindowSpec::Session { .. } | WindowSpec::Attached { .. } => {
            unreachable!("not a window table function")
        }
    }
}

/// An `OVER` aggregation on one worker: per partition, the rows of each event time wait for the
/// watermark to pass it (a timer), then leave in time order, each with the aggregates over its
/// frame. Rows of the same time are kept in arrival order; under `RANGE` they are peers and all
/// get the aggregates over all of them.
struct OverFn {
    frame: crate::plan::OverFrame,
    aggs: Aggregates,
}

/// A partition's state in an `OVER` aggregation.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct OverState {
    /// Rows waiting for the watermark, by time.
    pending: std::collections::BTreeMap<Time, Vec<Row>>,
    /// Bounded frames: the rows the next row's frame may still cover, oldest first.
    kept: std::collections::VecDeque<(Time, Row)>,
    /// Unbounded frames: the accumulators of every row so far.
    accs: Option<crate::plan::Accs>,
}

impl KeyedProcessFunction<Row, Row> for OverFn {
    type State = OverState;
    type Out = Row;
    type Side = ();
    fn process_element(&mut self, row: Row, ctx: &mut ProcessContext<'_, Row, OverState, Row, ()>) {
        let t = ctx.timestamp();
        let state = ctx.state();
        let first = !state.pending.contains_key(&t);
        state.pending.entry(t).or_default().push(row);
        if first {
            ctx.register_event_time_timer(t);
        }
    }
    fn on_timer(
        &mut self,
        t: Time,
        _domain: TimeDomain,
        ctx: &mut ProcessContext<'_, Row, OverState, Row, ()>,
    ) {
        use crate::plan::OverFrame;
        let state = ctx.state();
        let rows = state.pending.remove(&t).unwrap_or_default();
        let mut out = Vec::with_capacity(rows.len());
        let with = |aggs: &Aggregates, mut row: Row, accs: &[crate::plan::Acc]| {
            aggs.results(accs, &mut row.0);
            row
        };
        match self.frame {
            OverFrame::Unbounded(range) => {
                let mut accs = state.accs.take().unwrap_or_else(|| self.aggs.start());
                if range {
                    for r in &rows {
                        self.aggs.add(&mut accs, r);
                    }
                    out.extend(rows.into_iter().map(|r| with(&self.aggs, r, &accs)));
                } else {
                    for r in rows {
                        self.aggs.add(&mut accs, &r);
                        out.push(with(&self.aggs, r, &accs));
                    }
                }
                state.accs = Some(accs);
            }
            OverFrame::Rows(n) => {
                for r in rows {
                    state.kept.push_back((t, r.clone()));
                    while state.kept.len() as u64 > n + 1 {
                        state.kept.pop_front();
                    }
                    let mut accs = self.aggs.start();
                    for (_, k) in &state.kept {
                        self.aggs.add(&mut accs, k);
                    }
                    out.push(with(&self.aggs, r, &accs));
                }
            }
            OverFrame::Range(ms) => {
                state.kept.extend(rows.iter().map(|r| (t, r.clone())));
                while state.kept.front().is_some_and(|(at, _)| *at < t - ms) {
                    state.kept.pop_front();
                }
                let mut accs = self.aggs.start();
                for (_, k) in &state.kept {
                    self.aggs.add(&mut accs, k);
                }
                out.extend(rows.into_iter().map(|r| with(&self.aggs, r, &accs)));
            }
        }
        let done = state.pending.is_empty()
            && matches!(self.frame, OverFrame::Rows(_) | OverFrame::Range(_))
            && state.kept.is_empty();
        for r in out {
            ctx.output(r);
        }
        if done {
            ctx.clear_state();
        }
    }
}

/// A plan's aggregates on one worker, with the context that fails the job when one fails on a
/// row: the functions the window operator, the rolling aggregate and the reduce all take.
#[derive(Clone)]
struct Aggregates {
    aggs: Rc<Vec<Agg>>,
    ctx: Rc<WorkerContext>,
}

impl Aggregates {
    fn new(aggs: &[Agg], ctx: &Rc<WorkerContext>) -> Self {
        Aggregates {
            aggs: Rc::new(aggs.to_vec()),
            ctx: Rc::clone(ctx),
        }
    }
    /// Fresh accumulators with nothing added.
    fn start(&self) -> crate::plan::Accs {
        self.aggs.iter().map(Agg::start).collect()
    }
    /// Fresh accumulators with `row` added.
    fn create(&self, row: Row) -> crate::plan::Accs {
        let mut accs: crate::plan::Accs = self.aggs.iter().map(Agg::start).collect();
        self.add(&mut accs, &row);
        accs
    }
    fn add(&self, accs: &mut [crate::plan::Acc], row: &Row) {
        for (a, acc) in self.aggs.iter().zip(accs.iter_mut()) {
            if let Err(m) = a.add(acc, &row.0) {
                fail(&self.ctx, &a.text, &m);
            }
        }
    }
    /// What `row` adds to [`invertible`](Agg::invertible) aggregates: the number of rows, then
    /// each aggregate's count and sum (an error fails the job and adds nothing).
    fn sums(&self, row: &Row) -> Sums {
        let mut sums = Vec::with_capacity(1 + 2 * self.aggs.len());
        sums.push(1);
        for a in self.aggs.iter() {
            let (n, sum) = a.contribution(&row.0).unwrap_or_else(|m| {
                fail(&self.ctx, &a.text, &m);
                (0, 0)
            });
            sums.extend([n, sum]);
        }
        Sums(sums)
    }
    /// The aggregates' values from their sums (see [`sums`](Self::sums)), pushed onto `out`.
    fn results_of_sums(&self, sums: &Sums, out: &mut Vec<Value>) {
        let at = |i: usize| sums.0.get(i).copied().unwrap_or(0);
        for (i, a) in self.aggs.iter().enumerate() {
            out.push(
                a.result_of_sums(at(1 + 2 * i), at(2 + 2 * i))
                    .unwrap_or_else(|m| {
                        fail(&self.ctx, &a.text, &m);
                        Value::Null
                    }),
            );
        }
    }
    /// Adds `row` `times` times (see [`Agg::add_times`]).
    fn add_times(&self, accs: &mut [crate::plan::Acc], row: &Row, times: i64) {
        for (a, acc) in self.aggs.iter().zip(accs.iter_mut()) {
            if let Err(m) = a.add_times(acc, &row.0, times) {
                fail(&self.ctx, &a.text, &m);
            }
        }
    }
    fn merge(&self, accs: &mut [crate::plan::Acc], other: crate::plan::Accs) {
        for ((a, acc), o) in self.aggs.iter().zip(accs.iter_mut()).zip(other) {
            if let Err(m) = a.merge(acc, o) {
                fail(&self.ctx, &a.text, &m);
            }
        }
    }
    /// [`merge`](Self::merge), saying whether any aggregate's value may have changed (see
    /// [`Agg::merge_changed`]; an error fails the job and counts as a change).
    fn merge_changed(&self, accs: &mut [crate::plan::Acc], other: crate::plan::Accs) -> bool {
        let mut changed = false;
        for ((a, acc), o) in self.aggs.iter().zip(accs.iter_mut()).zip(other) {
            changed |= a.merge_changed(acc, o).unwrap_or_else(|m| {
                fail(&self.ctx, &a.text, &m);
                true
            });
        }
        changed
    }
    /// The aggregates' values, pushed onto `out`.
    fn results(&self, accs: &[crate::plan::Acc], out: &mut Vec<Value>) {
        for (a, acc) in self.aggs.iter().zip(accs) {
            out.push(a.result(acc).unwrap_or_else(|m| {
                fail(&self.ctx, &a.text, &m);
                Value::Null
            }));
        }
    }
}

/// Each row paired with the values of `keys` on it (an error fails the job, naming `clause`).
fn key_of(
    keys: &[Typed],
    ctx: &Rc<WorkerContext>,
    clause: &'static str,
) -> impl FnMut(Row) -> Option<(Row, Row)> + 'static {
    let (keys, ctx) = (keys.to_vec(), Rc::clone(ctx));
    move |r: Row| match eval_all(&keys, &r.0) {
        Ok(k) => Some((Row(k), r)),
        Err((what, m)) => {
            fail(&ctx, &format!("{clause} {what}"), &m);
            None
        }
    }
}

/// A `SESSION` window table function's rows: per value of the `partition` columns, the rows of
/// each session (rows no more than `gap` apart) wait until the session closes, then leave with
/// its `window_start`, `window_end` and `window_time` after their columns. The rows wait as the
/// session window's accumulator, in keyed state (checkpointed as any window).
fn session_rows<'s>(
    env: &mut Cx<'s, '_>,
    input: &Plan,
    gap: i64,
    partition: &[usize],
) -> DataStream<'s, Row> {
    let partition = partition.to_vec();
    build(env, input)
        .map(move |r: Row| (Row(partition.iter().map(|c| r.0[*c].clone()).collect()), r))
        .keyed()
        .window(Windows::session(Duration::from_millis(gap as u64)))
        .aggregate_with(
            |r: Row| vec![r],
            |rows: &mut Vec<Row>, r| rows.push(r),
            |rows: &mut Vec<Row>, other| rows.extend(other),
            |_: &Row, w: &Window, rows: &Vec<Row>| {
                rows.iter()
                    .map(|r| {
                        let mut v = r.0.clone();
                        v.extend([
                            Value::Timestamp(w.start),
                            Value::Timestamp(w.end),
                            Value::Timestamp(w.end - 1),
                        ]);
                        Row(v)
                    })
                    .collect::<Vec<Row>>()
            },
        )
        .name(format!("session windows (gap {gap} ms)"))
        .flat_map(|rows| rows)
}

fn window_aggregate<'s>(
    env: &mut Cx<'s, '_>,
    input: &Plan,
    fed: Option<DataStream<'s, Row>>,
    spec: WindowSpec,
    keys: &[(String, Typed)],
    aggs: &[Agg],
    select: Selected,
) -> DataStream<'s, Row> {
    // The window operator holds (and for overlapping windows copies) only the columns the
    // aggregates read: the rest of each row is dropped once the key is taken from it.
    let (slim_cols, slim) = slim_aggregates(aggs);
    let mut key_exprs: Vec<Typed> = keys.iter().map(|(_, k)| k.clone()).collect();
    if let WindowSpec::Attached { start, end } = spec {
        // The window's columns lead the key; each row sits at its window's `window_time`
        // (end - 1), so a window of one millisecond there closes when the window does.
        let fields = input.fields();
        let col = |c: usize| Typed {
            scalar: Scalar::Col(c),
            ty: fields[c].ty,
            text: fields[c].name.clone(),
            pos: Default::default(),
        };
        key_exprs.splice(0..0, [col(start), col(end)]);
    }
    let mut read = Vec::new();
    for k in &key_exprs {
        mark_read(&k.scalar, &mut read);
    }
    for c in &slim_cols {
        if read.len() <= *c {
            read.resize(c + 1, false);
        }
        read[*c] = true;
    }
    let ctx = Rc::clone(env.context());
    let windows = windows(spec);
    let attached = matches!(spec, WindowSpec::Attached { .. });
    let f = Aggregates::new(&slim, &ctx);
    let name = format!("window aggregate {spec}");
    // The columns the aggregates read, taken out of the row once its key is known.
    let slim_row = move |r: &mut Row| -> Row {
        Row(slim_cols
            .iter()
            .map(|c| std::mem::replace(&mut r.0[*c], Value::Null))
            .collect())
    };
    // Integer aggregates (COUNT, and SUM, AVG, MIN, MAX of integers): a row's contribution is
    // taken from it when it is keyed, and each key's window keeps plain integers.
    if let Some(ints) = IntAggs::of(aggs) {
        let ints = ints.on(&ctx);
        // The window aggregate of a key inline in `$n` integers, `$m` accumulators per window.
        macro_rules! inline_key {
            ($k:expr, $n:literal, $m:literal) => {{
                let keyed = int_key_rows::<$n, $m>(env, input, fed, read, &$k, &ints);
                let head = int_head::<$n>($k, attached);
                int_windows(keyed, ints, windows, name, head, select)
            }};
        }
        return match IntKey::of(&key_exprs) {
            Some(k) if k.exprs.len() == 1 && ints.fit(1) => {
                if fed.is_none()
                    && let Some(counted) =
                        count_windows(env, input, &k, &ints, windows, &name, attached, &select)
                {
                    return counted;
                }
                inline_key!(k, 1, 1)
            }
            Some(k) if k.exprs.len() == 1 => inline_key!(k, 1, 4),
            Some(k) if k.narrow() && ints.fit(1) => inline_key!(k, 2, 1),
            Some(k) if k.narrow() => inline_key!(k, 2, 4),
            Some(k) if ints.fit(1) => inline_key!(k, 4, 1),
            Some(k) => inline_key!(k, 4, 4),
            None => {
                let (exprs, ctx) = (key_exprs, Rc::clone(&ctx));
                let key = move |r: &[Value]| match eval_all(&exprs, r) {
                    Ok(k) => Some(Row(k)),
                    Err((what, m)) => {
                        fail(&ctx, &format!("GROUP BY {what}"), &m);
                        None
                    }
                };
                let keyed = int_keyed_rows::<_, 4>(env, input, fed, read, key, &ints);
                int_windows(keyed, ints, windows, name, row_head(attached), select)
            }
        };
    }
    let stream = match fed {
        Some(rows) => rows,
        None => build_reading(env, input, Some(read), None).append(),
    };
    match IntKey::of(&key_exprs) {
        // Keys of up to four integer-like columns: kept inline, hashed and compared as integers.
        Some(k) if k.narrow() => {
            return int_keyed_windows::<2>(stream, k, slim_row, windows, f, name, attached, select);
        }
        Some(k) => {
            return int_keyed_windows::<4>(stream, k, slim_row, windows, f, name, attached, select);
        }
        None => {}
    }
    let mut key = key_of(&key_exprs, &ctx, "GROUP BY");
    let keyed = stream
        .flat_map(move |r: Row| {
            let (k, mut r) = key(r)?;
            Some((k, slim_row(&mut r)))
        })
        .keyed();
    aggregate_windows(keyed, windows, f, name, row_head(attached), select)
}

/// The columns a window aggregate's result rows keep: all of them, or the columns a projection
/// right above it selects, in its order (each once): the projection is then made as each
/// result is, with no row made whole and handed to another operator to be cut.
#[derive(Clone, Default)]
struct Selected {
    columns: Option<Rc<[usize]>>,
    /// The whole result while it is made (reused).
    whole: Rc<std::cell::RefCell<Vec<Value>>>,
}

impl Selected {
    /// Output columns `columns` of the whole row (`None` when a column is named twice).
    fn of(columns: Vec<usize>) -> Option<Selected> {
        let mut seen = columns.clone();
        seen.sort_unstable();
        seen.dedup();
        (seen.len() == columns.len()).then(|| Selected {
            columns: Some(columns.into()),
            whole: Default::default(),
        })
    }

    /// The result row `fill` makes (a whole row holds about `capacity` values), with the
    /// selected columns.
    #[inline]
    fn row(&self, capacity: usize, fill: impl FnOnce(&mut Vec<Value>)) -> Row {
        let Some(columns) = &self.columns else {
            let mut v = Vec::with_capacity(capacity);
            fill(&mut v);
            return Row(v);
        };
        let mut whole = self.whole.borrow_mut();
        whole.clear();
        fill(&mut whole);
        Row(columns
            .iter()
            .map(|&c| std::mem::take(&mut whole[c]))
            .collect())
    }
}

/// A window aggregate's columns before its aggregates, from a key of values: for a window
/// table function's windows (`attached`) `window_start`, `window_end` (the key's first two
/// columns), `window_time`, then the key's other columns; otherwise the three window columns,
/// then the key.
fn row_head(attached: bool) -> impl Fn(&Row, &Window, &mut Vec<Value>) + 'static {
    move |key: &Row, w, v| {
        if attached {
            v.extend(key.0[..2].iter().cloned());
            v.push(Value::Timestamp(w.start));
            v.extend(key.0[2..].iter().cloned());
        } else {
            v.extend([
                Value::Timestamp(w.start),
                Value::Timestamp(w.end),
                Value::Timestamp(w.end - 1),
            ]);
            v.extend(key.0.iter().cloned());
        }
    }
}

/// [`row_head`] for a key kept inline as `int_key`'s values.
fn int_head<const N: usize>(
    int_key: IntKey,
    attached: bool,
) -> impl Fn(&IntKeyValue<N>, &Window, &mut Vec<Value>) + 'static {
    move |key, w, v| {
        if attached {
            int_key.values(key, v);
            v.insert(2, Value::Timestamp(w.start));
        } else {
            v.extend([
                Value::Timestamp(w.start),
                Value::Timestamp(w.end),
                Value::Timestamp(w.end - 1),
            ]);
            int_key.values(key, v);
        }
    }
}

/// The rows of `input` (reading the columns `read` marks), or the rows `fed` in its stead,
/// keyed by `key`'s values, each with its contributions to `M` integer aggregates (see
/// [`int_keyed_rows`]).
///
/// Over a Nexmark scan (or a WHERE on one) whose key columns and aggregated columns are all
/// integer fields of the events (never NULL), with no aggregate `FILTER`: the key and the
/// contributions are read from each event's fields in the scan (see [`EventFields`]), and no
/// row is made.
fn int_key_rows<'s, const N: usize, const M: usize>(
    env: &mut Cx<'s, '_>,
    input: &Plan,
    fed: Option<DataStream<'s, Row>>,
    read: Vec<bool>,
    key: &IntKey,
    ints: &IntAggs,
) -> DataStream<'s, (IntKeyValue<N>, IntArgs<M>)> {
    if fed.is_none()
        && let Some(fields) = EventFields::of(env, input, key, ints)
    {
        let ints = ints.clone();
        let EventFields {
            events,
            kind,
            mut reader,
            key,
            args,
            name,
        } = fields;
        return read_events(events, kind, &name, move |e: &Event| {
            reader.read(e)?;
            let mut k = IntKeyValue {
                v: [0; N],
                nulls: 0,
            };
            for (x, f) in k.v.iter_mut().zip(&key) {
                *x = f(e);
            }
            let mut v = [0; M];
            for (x, f) in v.iter_mut().zip(&args) {
                if let Some(f) = f {
                    *x = f(e);
                }
            }
            Some((k, ints.counted(v)))
        });
    }
    let key = key.keyer::<N>(env.context(), "GROUP BY");
    int_keyed_rows::<_, M>(env, input, fed, read, key, ints)
}

/// A Nexmark scan (or a WHERE on one) whose rows' key columns and aggregated columns are
/// integer fields of its events: the fields, read from each event the scan passes.
struct EventFields<'s> {
    events: Events<'s>,
    kind: NexmarkKind,
    /// Tests an event's kind and the WHERE (making no column otherwise).
    reader: ScanRow,
    /// The key columns' fields.
    key: Vec<EventInt>,
    /// Per aggregate the field it takes (`None`: none, as `COUNT` takes none).
    args: Vec<Option<EventInt>>,
    name: String,
}

impl<'s> EventFields<'s> {
    /// `input`'s events and fields, if it is such a scan, every key column is an integer field
    /// and the aggregates are as [`IntAggs::plain_columns`] asks (a field is never NULL).
    fn of(
        env: &mut Cx<'s, '_>,
        input: &Plan,
        key: &IntKey,
        ints: &IntAggs,
    ) -> Option<EventFields<'s>> {
        let (table, spec, cond) = reads_nexmark(input)?;
        let kind = spec.kind;
        let field = |e: &Typed| match e.scalar {
            Scalar::Col(c) => nexmark_int_column(kind, c),
            _ => None,
        };
        let key: Vec<EventInt> = key.exprs.iter().map(field).collect::<Option<_>>()?;
        let args = ints
            .plain_columns(|c| nexmark_int_column(kind, c).is_some())?
            .into_iter()
            .map(|c| c.and_then(|c| nexmark_int_column(kind, c)))
            .collect();
        let ctx = Rc::clone(env.context());
        let cond = cond.map(|c| ScanCondition::new(c, kind, table, &ctx));
        Some(EventFields {
            reader: ScanRow::new(kind, cond, Vec::new(), table),
            events: nexmark_events(env, table, spec),
            kind,
            key,
            args,
            name: format!("table {}, keyed", table.name),
        })
    }
}

/// A window aggregation whose aggregates are all counts (`COUNT(*)`, or of a column never
/// NULL), keyed by one integer field of a Nexmark scan's events (see [`EventFields`]): each
/// key's window keeps one count, beside its key a 16-byte state entry (the general integer
/// accumulators, [`IntAccs`], keep a count and a value per aggregate, and a key that may be
/// NULL takes a word more). `None` when the aggregation is not such.
#[allow(clippy::too_many_arguments)]
fn count_windows<'s>(
    env: &mut Cx<'s, '_>,
    input: &Plan,
    key: &IntKey,
    ints: &IntAggs,
    windows: Windows,
    name: &str,
    attached: bool,
    select: &Selected,
) -> Option<DataStream<'s, Row>> {
    if key.exprs.len() != 1 || !ints.counts_only() {
        return None;
    }
    let EventFields {
        events,
        kind,
        mut reader,
        key: fields,
        name: scan,
        ..
    } = EventFields::of(env, input, key, ints)?;
    let field = fields[0];
    let keyed = read_events(events, kind, &scan, move |e: &Event| {
        reader.read(e)?;
        Some((field(e), ()))
    });
    let head = int_head::<1>(key.clone(), attached);
    let (ints, select) = (ints.clone(), select.clone());
    Some(
        keyed
            .keyed()
            .window(windows)
            .aggregate_with(
                |()| 1u64,
                |n, ()| *n += 1,
                |n, m| *n += m,
                move |k: &i64, w: &Window, n: &u64| {
                    select.row(3 + 1 + IntAggs::MOST, |v| {
                        head(&IntKeyValue { v: [*k], nulls: 0 }, w, v);
                        ints.count_results(*n as i64, v);
                    })
                },
            )
            .name(name.to_string()),
    )
}

/// The rows of `input` (reading the columns `read` marks), or the rows `fed` in its stead,
/// keyed by `key` (`None`: it failed, and the job with it), each with its contributions to `M`
/// integer aggregates.
fn int_keyed_rows<'s, K: 'static, const M: usize>(
    env: &mut Cx<'s, '_>,
    input: &Plan,
    fed: Option<DataStream<'s, Row>>,
    read: Vec<bool>,
    mut key: impl FnMut(&[Value]) -> Option<K> + 'static,
    ints: &IntAggs,
) -> DataStream<'s, (K, IntArgs<M>)> {
    let ints = ints.clone();
    let mut then = move |r: &mut [Value]| {
        let k = key(r)?;
        Some((k, ints.args::<M>(r)))
    };
    match fed {
        Some(rows) => rows.flat_map(move |mut r: Row| then(&mut r.0)),
        None => rows_into(env, input, read, then),
    }
}

/// What `then` makes of each row of `input` (which needs only the columns `read` marks; `then`
/// may take the values it keeps out of the row).
///
/// Over a Nexmark table (or a WHERE on one: see [`reads_nexmark`]) `then` is called in the
/// scan, on a row of the columns read made where the event lies and reused: no row is
/// allocated or handed from the scan to another operator. Otherwise on each row of the built
/// input.
fn rows_into<'s, T: 'static>(
    env: &mut Cx<'s, '_>,
    input: &Plan,
    read: Vec<bool>,
    mut then: impl FnMut(&mut [Value]) -> Option<T> + 'static,
) -> DataStream<'s, T> {
    let Some((table, spec, cond)) = reads_nexmark(input) else {
        return build_reading(env, input, Some(read), None)
            .append()
            .flat_map(move |mut r: Row| then(&mut r.0));
    };
    // The condition's columns are made first (see ScanCondition), then the others read.
    let cond = cond.map(|c| ScanCondition::new(c, spec.kind, table, env.context()));
    let tested = cond.as_ref().map_or(&[][..], |c| &c.columns[..]);
    let columns: Vec<usize> = (0..read.len())
        .filter(|&c| read[c] && !tested.contains(&c))
        .collect();
    let mut reader = ScanRow::new(spec.kind, cond, columns, table);
    let events = nexmark_events(env, table, spec);
    let name = format!("table {}", table.name);
    read_events(events, spec.kind, &name, move |e: &Event| {
        then(reader.read(e)?)
    })
}

/// The rows of projection `exprs` of a Nexmark scan (or a WHERE on one: see
/// [`reads_nexmark`]), made in the scan: an output column that is a column of the table is
/// made from the event straight into the output row ([`ColumnLoad`]); only the columns the
/// other expressions (and the condition) read are made into the scan's reused row.
fn projected_scan<'s>(
    env: &mut Cx<'s, '_>,
    input: &Plan,
    exprs: Vec<Typed>,
) -> DataStream<'s, Row> {
    let (table, spec, cond) = reads_nexmark(input).expect("a projection of a Nexmark scan");
    let kind = spec.kind;
    let ctx = Rc::clone(env.context());
    let columns: Vec<Result<ColumnLoad, Typed>> = exprs
        .into_iter()
        .map(|e| match e.scalar {
            Scalar::Col(c) => ColumnLoad::of(kind, c).ok_or(e),
            _ => Err(e),
        })
        .collect();
    let mut read = Vec::new();
    for e in columns.iter().filter_map(|c| c.as_ref().err()) {
        mark_read(&e.scalar, &mut read);
    }
    let cond = cond.map(|c| ScanCondition::new(c, kind, table, &ctx));
    let tested = cond.as_ref().map_or(&[][..], |c| &c.columns[..]);
    let made: Vec<usize> = (0..read.len())
        .filter(|&c| read[c] && !tested.contains(&c))
        .collect();
    let mut reader = ScanRow::new(kind, cond, made, table);
    let events = nexmark_events(env, table, spec);
    let name = format!("table {}", table.name);
    read_events(events, kind, &name, move |e: &Event| {
        reader.read(e)?;
        let mut out = vec![Value::Null; columns.len()];
        for (slot, column) in out.iter_mut().zip(&columns) {
            match column {
                Ok(load) => load.set(e, &mut reader.strings, slot),
                Err(expr) => match expr.scalar.eval(&reader.scratch) {
                    Ok(v) => *slot = v,
                    Err(m) => {
                        fail(&ctx, &expr.text, &m);
                        return None;
                    }
                },
            }
        }
        Some(Row(out))
    })
}

/// How a Nexmark scan makes one column of its table from an event (as [`nexmark_vec`] makes
/// it), chosen once per column rather than matched per value.
#[derive(Clone, Copy)]
enum ColumnLoad {
    /// A BIGINT field.
    Int(EventInt),
    /// A timestamp field.
    Time(EventInt),
    /// A string field.
    Text(fn(&Event) -> &str),
    /// A bid's channel (few distinct values: shared).
    Channel,
    /// A column the generator leaves empty (a bid's url, the `extra` columns).
    Empty,
}

impl ColumnLoad {
    /// How to make column `c` of Nexmark table `kind`, if it has one: the one place the
    /// columns of the Nexmark tables are mapped to the events' fields.
    fn of(kind: NexmarkKind, c: usize) -> Option<ColumnLoad> {
        macro_rules! field {
            ($load:ident, $variant:ident, $field:ident) => {
                ColumnLoad::$load(|e: &Event| match e {
                    Event::$variant(x) => x.$field as i64,
                    _ => 0,
                })
            };
        }
        macro_rules! text {
            ($variant:ident, $field:ident) => {
                ColumnLoad::Text(|e: &Event| match e {
                    Event::$variant(x) => &x.$field,
                    _ => "",
                })
            };
        }
        use NexmarkKind::{Auction, Bid, Person};
        Some(match (kind, c) {
            (Bid, 0) => field!(Int, Bid, auction),
            (Bid, 1) => field!(Int, Bid, bidder),
            (Bid, 2) => field!(Int, Bid, price),
            (Bid, 3) => ColumnLoad::Channel,
            (Bid, 5) => field!(Time, Bid, date_time),
            (Auction, 0) => field!(Int, Auction, id),
            (Auction, 1) => text!(Auction, item_name),
            (Auction, 3) => field!(Int, Auction, initial_bid),
            (Auction, 4) => field!(Int, Auction, reserve),
            (Auction, 5) => field!(Time, Auction, date_time),
            (Auction, 6) => field!(Time, Auction, expires),
            (Auction, 7) => field!(Int, Auction, seller),
            (Auction, 8) => field!(Int, Auction, category),
            (Person, 0) => field!(Int, Person, id),
            (Person, 1) => text!(Person, name),
            (Person, 2) => text!(Person, email_address),
            (Person, 3) => text!(Person, credit_card),
            (Person, 4) => text!(Person, city),
            (Person, 5) => text!(Person, state),
            (Person, 6) => field!(Time, Person, date_time),
            (Bid, 4 | 6) | (Auction, 2 | 9) | (Person, 7) => ColumnLoad::Empty,
            _ => return None,
        })
    }

    /// Sets `slot` (NULL) to the column of `e`.
    ///
    /// Each kind writes its value in a function of its own, field by field where it goes:
    /// written in one place, the value of whichever kind was first made on the stack and then
    /// copied whole, and that wide load of narrow stores just made stalls (it took most of the
    /// scan's time per column).
    #[inline]
    fn set(self, e: &Event, strings: &mut Interned, slot: &mut Value) {
        match self {
            ColumnLoad::Int(f) => set_bigint(slot, f(e)),
            ColumnLoad::Time(f) => set_timestamp(slot, f(e)),
            ColumnLoad::Text(f) => set_value(slot, Value::str(f(e))),
            ColumnLoad::Channel => {
                if let Event::Bid(x) = e {
                    set_value(slot, strings.get(&x.channel))
                }
            }
            ColumnLoad::Empty => set_value(slot, Value::str("")),
        }
    }
}

#[inline(never)]
fn set_bigint(slot: &mut Value, v: i64) {
    *slot = Value::BigInt(v);
}

#[inline(never)]
fn set_timestamp(slot: &mut Value, v: i64) {
    *slot = Value::Timestamp(v);
}

#[inline(never)]
fn set_value(slot: &mut Value, v: Value) {
    *slot = v;
}

/// Columns of a Nexmark table and how each is made (a column the table does not have is made
/// empty, as the generator leaves its `extra` columns).
struct Loads(Vec<(usize, ColumnLoad)>);

impl Loads {
    fn of(kind: NexmarkKind, columns: &[usize]) -> Loads {
        Loads(
            columns
                .iter()
                .map(|&c| (c, ColumnLoad::of(kind, c).unwrap_or(ColumnLoad::Empty)))
                .collect(),
        )
    }

    /// Makes the columns of `e` (an event of the table) into `row`.
    #[inline]
    fn set(&self, e: &Event, strings: &mut Interned, row: &mut [Value]) {
        for (c, load) in &self.0 {
            load.set(e, strings, &mut row[*c]);
        }
    }
}

/// A Nexmark scan's reused row: for each event of its table that passes the scan's condition,
/// the columns `columns` made from it (the condition's are made as it is tested).
struct ScanRow {
    kind: NexmarkKind,
    cond: Option<ScanCondition>,
    columns: Loads,
    strings: Interned,
    scratch: Vec<Value>,
}

impl ScanRow {
    fn new(
        kind: NexmarkKind,
        cond: Option<ScanCondition>,
        columns: Vec<usize>,
        table: &Table,
    ) -> ScanRow {
        ScanRow {
            kind,
            cond,
            columns: Loads::of(kind, &columns),
            strings: Interned::default(),
            scratch: vec![Value::Null; table.fields.len()],
        }
    }

    /// The row of `e` (`None`: an event of another table, or one the condition does not pass).
    fn read(&mut self, e: &Event) -> Option<&mut [Value]> {
        if !is_of_kind(self.kind, e) {
            return None;
        }
        if let Some(cond) = &self.cond
            && !cond.holds(self.kind, e, &mut self.scratch, &mut self.strings)?
        {
            return None;
        }
        self.columns.set(e, &mut self.strings, &mut self.scratch);
        Some(&mut self.scratch)
    }
}

/// The rows of a Nexmark scan (or a WHERE on one) that can meet their windows' extreme (see
/// [`ExtremeFilter`](crate::extreme::ExtremeFilter)), tested inside the scan: the condition and
/// the filter read only their columns, made into a reused row, and only a row that passes both
/// is made whole (its columns that `read`, when given, does not name left NULL).
fn nexmark_extreme_rows<'s>(
    env: &mut Cx<'s, '_>,
    table: &std::sync::Arc<Table>,
    spec: &crate::plan::NexmarkTable,
    cond: Option<&Typed>,
    read: Option<Vec<bool>>,
    f: crate::extreme::ExtremeFilter,
) -> DataStream<'s, Row> {
    let kind = spec.kind;
    let cond = cond.map(|c| ScanCondition::new(c, kind, table, env.context()));
    let events = nexmark_events(env, table, spec);
    let name = format!("table {}, rows that can be a window's extreme", table.name);
    let mut last = Time::MIN;
    // The row a kept event makes.
    let row = move |e: &Event, strings: &mut Interned| {
        let mut row = Row(nexmark_vec(kind, e, strings, read.as_deref())?);
        if let Some(read) = &read {
            null_unread(&mut row, read);
        }
        Some(row)
    };
    // A value that is an integer column, without groups: tested on the event's field.
    if let Some(value) = f.int_column().and_then(|c| nexmark_int_column(kind, c)) {
        let mut reader = ScanRow::new(kind, cond, Vec::new(), table);
        let mut running = f.running();
        return read_events_at(events, kind, &name, move |e: &Event, ts, t| {
            reader.read(e)?;
            let keep = f.keep_int(value(e), ts, t, &mut running);
            if t > last {
                last = t;
                f.forget(&mut running);
            }
            keep.then(|| row(e, &mut reader.strings))?
        });
    }
    let mut reader = ScanRow::new(kind, cond, f.columns(), table);
    let mut running = f.rows_running();
    read_events_at(events, kind, &name, move |e: &Event, ts, t| {
        let keep = f.keep_row(reader.read(e)?, ts, t, &mut running);
        if t > last {
            last = t;
            f.forget_rows(&mut running);
        }
        keep.then(|| row(e, &mut reader.strings))?
    })
}

/// A WHERE on a Nexmark scan, tested in the scan on a row of NULLs holding only the columns it
/// reads (most rows fail a selective condition, and none of their other columns is made).
///
/// A condition on integer columns only is compiled ([`IntCondition`]) and tested on the
/// event's fields, read without making values; the row's columns are made for the events that
/// pass.
struct ScanCondition {
    cond: Scalar,
    text: String,
    columns: Vec<usize>,
    /// How the columns are made.
    loads: Loads,
    ctx: Rc<WorkerContext>,
    compiled: Option<(IntCondition, Vec<EventInt>)>,
}

impl ScanCondition {
    fn new(c: &Typed, kind: NexmarkKind, table: &Table, ctx: &Rc<WorkerContext>) -> ScanCondition {
        let mut read = Vec::new();
        mark_read(&c.scalar, &mut read);
        let types: Vec<DataType> = table.fields.iter().map(|f| f.ty).collect();
        let compiled = IntCondition::compile(&c.scalar, &types).and_then(|ic| {
            let load = ic
                .columns()
                .iter()
                .map(|&c| nexmark_int_column(kind, c))
                .collect::<Option<Vec<_>>>()?;
            Some((ic, load))
        });
        let columns: Vec<usize> = (0..read.len()).filter(|&i| read[i]).collect();
        ScanCondition {
            cond: c.scalar.clone(),
            text: c.text.clone(),
            loads: Loads::of(kind, &columns),
            columns,
            ctx: Rc::clone(ctx),
            compiled,
        }
    }

    /// Whether the condition holds for the row of table `kind` that `e` makes (`None`: an event
    /// of another table), its columns made into `scratch` when it holds.
    fn holds(
        &self,
        kind: NexmarkKind,
        e: &Event,
        scratch: &mut [Value],
        strings: &mut Interned,
    ) -> Option<bool> {
        if !is_of_kind(kind, e) {
            return None;
        }
        if let Some((compiled, load)) = &self.compiled {
            let mut slots = [0i64; crate::intcond::MOST_COLUMNS];
            for (s, f) in slots.iter_mut().zip(load) {
                *s = f(e);
            }
            match compiled.test(&slots[..load.len()]) {
                Some(false) => return Some(false),
                Some(true) => {
                    self.loads.set(e, strings, scratch);
                    return Some(true);
                }
                // An arithmetic error: reported the general way.
                None => {}
            }
        }
        self.loads.set(e, strings, scratch);
        Some(holds(&self.cond, scratch, &self.ctx, &self.text))
    }
}

/// Reads an integer field of a Nexmark event.
type EventInt = fn(&Event) -> i64;

/// Whether `e` is an event of Nexmark table `kind`.
fn is_of_kind(kind: NexmarkKind, e: &Event) -> bool {
    matches!(
        (kind, e),
        (NexmarkKind::Bid, Event::Bid(_))
            | (NexmarkKind::Auction, Event::Auction(_))
            | (NexmarkKind::Person, Event::Person(_))
    )
}

/// How to read BIGINT column `c` of Nexmark table `kind` from one of its events (as
/// [`nexmark_vec`] makes it), if it is one.
fn nexmark_int_column(kind: NexmarkKind, c: usize) -> Option<EventInt> {
    match ColumnLoad::of(kind, c)? {
        ColumnLoad::Int(f) => Some(f),
        _ => None,
    }
}

/// `fields` of an event, inline (never NULL).
#[inline]
fn inline<const M: usize>(fields: &[EventInt], e: &Event) -> IntKeyValue<M> {
    let mut v = IntKeyValue {
        v: [0; M],
        nulls: 0,
    };
    for (x, f) in v.v.iter_mut().zip(fields) {
        *x = f(e);
    }
    v
}

/// How to read column `c` of Nexmark table `kind` as an integer from one of its events: a
/// BIGINT column (as [`nexmark_int_column`]) or a timestamp (its milliseconds).
fn nexmark_ordered_column(kind: NexmarkKind, c: usize) -> Option<EventInt> {
    match ColumnLoad::of(kind, c)? {
        ColumnLoad::Int(f) | ColumnLoad::Time(f) => Some(f),
        _ => None,
    }
}

/// The Nexmark table `plan` scans, and the condition on it, if `plan` is a scan of a Nexmark
/// table without computed columns, or a WHERE on one.
fn reads_nexmark(
    plan: &Plan,
) -> Option<(
    &std::sync::Arc<Table>,
    &crate::plan::NexmarkTable,
    Option<&Typed>,
)> {
    let (scan, cond) = match plan {
        Plan::Filter { input, cond } => (input.as_ref(), Some(cond)),
        other => (other, None),
    };
    match scan {
        Plan::Scan { table } if table.computed.is_empty() => match &table.connector {
            Connector::Nexmark(spec) => Some((table, spec, cond)),
            _ => None,
        },
        _ => None,
    }
}

/// [`window_aggregate`] of aggregates with integer accumulators (see [`IntAggs`]) over rows
/// keyed with their contributions.
fn int_windows<'s, K: tidal_operators::keyed::Key, const M: usize>(
    keyed: DataStream<'s, (K, IntArgs<M>)>,
    ints: IntAggs,
    windows: Windows,
    name: String,
    head: impl Fn(&K, &Window, &mut Vec<Value>) + 'static,
    select: Selected,
) -> DataStream<'s, Row>
where
    IntArgs<M>: tidal_operators::keyed::Value,
    IntAccs<M>: tidal_operators::keyed::Value,
{
    let (f1, f2, f3, f4) = (ints.clone(), ints.clone(), ints.clone(), ints);
    keyed
        .keyed()
        .window(windows)
        .aggregate_with(
            move |args| f1.create(args),
            move |accs, args| f2.add(accs, args),
            move |accs, other| f3.merge(accs, other),
            move |key: &K, w: &Window, accs: &IntAccs<M>| {
                select.row(3 + 2 + M, |v| {
                    head(key, w, v);
                    f4.results(accs, v);
                })
            },
        )
        .name(name)
}

/// [`window_aggregate`] keyed by `int_key`'s values, inline in `N` integers: `slim_row`
/// takes the columns the aggregates read out of a row.
#[allow(clippy::too_many_arguments)]
fn int_keyed_windows<'s, const N: usize>(
    stream: DataStream<'s, Row>,
    int_key: IntKey,
    slim_row: impl Fn(&mut Row) -> Row + 'static,
    windows: Windows,
    f: Aggregates,
    name: String,
    attached: bool,
    select: Selected,
) -> DataStream<'s, Row>
where
    IntKeyValue<N>: tidal_operators::keyed::Key,
{
    let mut key = int_key.keyer::<N>(stream.context(), "GROUP BY");
    let keyed = stream
        .flat_map(move |mut r: Row| {
            let k = key(&r.0)?;
            Some((k, slim_row(&mut r)))
        })
        .keyed();
    aggregate_windows(
        keyed,
        windows,
        f,
        name,
        int_head::<N>(int_key, attached),
        select,
    )
}

/// The interval join of two sides' keyed rows: each pair's row is the left row's columns, then
/// the right row's.
fn interval_join_rows<'s, K: tidal_operators::keyed::Key, A: Waiting, B: Waiting>(
    left: KeyedStream<'s, K, A>,
    right: KeyedStream<'s, K, B>,
    lower: Time,
    upper: Time,
    pair: PairRow,
) -> DataStream<'s, Row> {
    left.connect(right)
        .interval_join_filter_map(lower, upper, move |_: &K, a: &A, b: &B| pair.row(a, b))
        .name(format!("interval join [{lower}, {upper}] ms"))
}

/// A row as it waits in an interval join: a [`Row`], or a row of only integer-like columns
/// kept inline as an [`IntKeyValue`] (its columns' types are the join's to know).
trait Waiting: tidal_operators::keyed::Value {
    /// Column `c` as an integer (its days or milliseconds for a date or timestamp), if it is one
    /// (not NULL).
    fn int(&self, c: usize) -> Option<i64>;
    /// Column `c` as a value of type `ty`.
    fn value(&self, c: usize, ty: DataType) -> Value;
    /// How many columns it has, given how many the side keeps.
    fn width(&self, kept: usize) -> usize;
}

impl Waiting for Row {
    #[inline]
    fn int(&self, c: usize) -> Option<i64> {
        self.0[c].as_ordered_int()
    }
    #[inline]
    fn value(&self, c: usize, _: DataType) -> Value {
        self.0[c].clone()
    }
    #[inline]
    fn width(&self, _: usize) -> usize {
        self.0.len()
    }
}

impl<const N: usize> Waiting for IntKeyValue<N>
where
    IntKeyValue<N>: tidal_operators::keyed::Value,
{
    #[inline]
    fn int(&self, c: usize) -> Option<i64> {
        (self.nulls & (1 << c) == 0).then(|| self.v[c])
    }
    #[inline]
    fn value(&self, c: usize, ty: DataType) -> Value {
        match self.int(c) {
            None => Value::Null,
            Some(x) => int_value(x, ty),
        }
    }
    #[inline]
    fn width(&self, kept: usize) -> usize {
        kept
    }
}

/// An integer of a column of integer-like type `ty` as its value.
#[inline]
fn int_value(x: i64, ty: DataType) -> Value {
    match ty {
        DataType::Int => Value::Int(x as i32),
        DataType::Date => Value::Date(x as i32),
        DataType::Timestamp => Value::Timestamp(x),
        DataType::TimestampLtz => Value::TimestampLtz(x),
        _ => Value::BigInt(x),
    }
}

/// How an interval join makes the row of a pair: the left row's columns, then the right
/// row's, passed only if the join's residual condition holds on them, and of those only the
/// columns `out` when given (those read above, when the residual reads others).
struct PairRow {
    residual: Option<Typed>,
    /// The residual compiled, when it compares only integers, dates and timestamps: tested on
    /// the two rows as they are.
    int_residual: Option<crate::intcond::IntCondition>,
    out: Option<Rc<[usize]>>,
    ctx: Rc<WorkerContext>,
    /// The pair's columns while the residual is tested (no allocation for a pair it fails).
    scratch: std::cell::RefCell<Vec<Value>>,
    /// How many columns the left side keeps (when compacted; rows know their own width).
    left_width: usize,
    /// The types of a pair's columns (the left row's, then the right row's).
    types: Vec<DataType>,
}

impl PairRow {
    fn row<A: Waiting, B: Waiting>(&self, a: &A, b: &B) -> Option<Row> {
        let n = a.width(self.left_width);
        let width = n + b.width(self.types.len().saturating_sub(n));
        let at = |c: usize| {
            let ty = self.types.get(c).copied().unwrap_or(DataType::BigInt);
            if c < n {
                a.value(c, ty)
            } else {
                b.value(c - n, ty)
            }
        };
        let passed = self
            .int_residual
            .as_ref()
            .and_then(|c| c.test_with(|i| if i < n { a.int(i) } else { b.int(i - n) }));
        if passed == Some(false) {
            return None;
        }
        let Some(res) = self.residual.as_ref().filter(|_| passed.is_none()) else {
            return Some(match &self.out {
                None => Row((0..width).map(at).collect()),
                Some(out) => Row(out.iter().map(|&c| at(c)).collect()),
            });
        };
        let mut v = self.scratch.borrow_mut();
        v.clear();
        v.extend((0..width).map(at));
        if !holds(&res.scalar, &v, &self.ctx, &res.text) {
            return None;
        }
        Some(match &self.out {
            None => Row(v.drain(..).collect()),
            Some(out) => Row(out.iter().map(|&c| std::mem::take(&mut v[c])).collect()),
        })
    }
}

/// Keyed rows aggregated per window: each window's row is what `head` writes (its window and
/// key columns), then the aggregates.
fn aggregate_windows<'s, K: tidal_operators::keyed::Key>(
    keyed: KeyedStream<'s, K, Row>,
    windows: Windows,
    f: Aggregates,
    name: String,
    head: impl Fn(&K, &Window, &mut Vec<Value>) + 'static,
    select: Selected,
) -> DataStream<'s, Row> {
    let (f1, f2, f3, f4) = (f.clone(), f.clone(), f.clone(), f);
    keyed
        .window(windows)
        .aggregate_with(
            move |r: Row| f1.create(r),
            move |accs, r| f2.add(accs, &r),
            move |accs, other| f3.merge(accs, other),
            move |key: &K, w: &Window, accs: &crate::plan::Accs| {
                select.row(3 + 2 + accs.len(), |v| {
                    head(key, w, v);
                    f4.results(accs, v);
                })
            },
        )
        .name(name)
}

/// How a key of at most four integer-like columns (BIGINT, INT, DATE, TIMESTAMP, TIMESTAMP_LTZ)
/// is kept inline as [`IntKeyValue`]: the columns' expressions and types.
#[derive(Clone)]
struct IntKey {
    exprs: Vec<Typed>,
}

/// The values of an [`IntKey`]: up to four integers and which of them are NULL. Equal exactly
/// when the key's values are (each column has one type, or, for a join's two sides, types that
/// compare alike: see [`IntKey::compares_with`]).
///
/// `N` is how many integers are kept: 2 for keys of one or two columns (24 bytes, the most
/// common), 4 for three or four; a narrower key makes a smaller state entry, and more of a
/// window's or join's keys fit in the caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(bound(
    serialize = "[i64; N]: serde::Serialize",
    deserialize = "[i64; N]: serde::Deserialize<'de>"
))]
struct IntKeyValue<const N: usize> {
    v: [i64; N],
    nulls: u8,
}

/// Each integer hashed as one word (an array is hashed as a length and a byte string, which
/// the state's hasher compresses in a loop: a window folds each row into several windows, each
/// a hash of its key), and the NULL mask only when a value is NULL.
impl<const N: usize> std::hash::Hash for IntKeyValue<N> {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for x in self.v {
            state.write_i64(x);
        }
        if self.nulls != 0 {
            state.write_u8(self.nulls);
        }
    }
}

impl IntKey {
    const MOST: usize = 4;

    /// The inline form of a key of these expressions, if it has one.
    fn of(exprs: &[Typed]) -> Option<IntKey> {
        (exprs.len() <= Self::MOST && exprs.iter().all(|e| Self::class(e.ty).is_some())).then(
            || IntKey {
                exprs: exprs.to_vec(),
            },
        )
    }
    /// Which values of a type compare equal to which of another's: integers with integers,
    /// dates with dates, timestamps with timestamps (`None`: not kept inline).
    fn class(t: DataType) -> Option<u8> {
        match t {
            DataType::BigInt | DataType::Int => Some(0),
            DataType::Date => Some(1),
            DataType::Timestamp | DataType::TimestampLtz => Some(2),
            _ => None,
        }
    }
    /// Whether keys of `self` and of `other` are equal exactly when their values are (the two
    /// sides of a join).
    fn compares_with(&self, other: &IntKey) -> bool {
        self.exprs.len() == other.exprs.len()
            && self
                .exprs
                .iter()
                .zip(&other.exprs)
                .all(|(a, b)| Self::class(a.ty) == Self::class(b.ty))
    }
    /// Whether the key has at most two columns (kept in an `IntKeyValue<2>`).
    fn narrow(&self) -> bool {
        self.exprs.len() <= 2
    }
    /// The key of `row` (an error names the expression), in `N` integers (at least as many
    /// as the key has columns).
    fn key<const N: usize>(&self, row: &[Value]) -> Result<IntKeyValue<N>, (String, String)> {
        let mut key = IntKeyValue {
            v: [0; N],
            nulls: 0,
        };
        for (i, e) in self.exprs.iter().enumerate() {
            let computed;
            let value = match &e.scalar {
                Scalar::Col(c) => &row[*c],
                s => {
                    computed = s.eval(row).map_err(|m| (e.text.clone(), m))?;
                    &computed
                }
            };
            match (value, value.as_ordered_int()) {
                (_, Some(x)) => key.v[i] = x,
                (Value::Null, _) => key.nulls |= 1 << i,
                (other, None) => {
                    return Err((
                        e.text.clone(),
                        format!("{other} is not of the key's type {}", e.ty),
                    ));
                }
            }
        }
        Ok(key)
    }
    /// Each row's key, as [`key`](Self::key) makes it; an error fails the job, naming
    /// `clause` and the expression, and the row has no key (`None`).
    fn keyer<const N: usize>(
        &self,
        ctx: &Rc<WorkerContext>,
        clause: &'static str,
    ) -> impl FnMut(&[Value]) -> Option<IntKeyValue<N>> + 'static + use<N> {
        let (this, ctx) = (self.clone(), Rc::clone(ctx));
        move |r: &[Value]| match this.key::<N>(r) {
            Ok(k) => Some(k),
            Err((what, m)) => {
                fail(&ctx, &format!("{clause} {what}"), &m);
                None
            }
        }
    }
    /// The key's values as a row.
    fn row<const N: usize>(&self, key: &IntKeyValue<N>) -> Row {
        let mut k = Vec::with_capacity(self.exprs.len());
        self.values(key, &mut k);
        Row(k)
    }
    /// The key's values, as the columns' types, appended to `out`.
    fn values<const N: usize>(&self, key: &IntKeyValue<N>, out: &mut Vec<Value>) {
        for (i, e) in self.exprs.iter().enumerate() {
            let x = key.v[i];
            out.push(if key.nulls & (1 << i) != 0 {
                Value::Null
            } else {
                int_value(x, e.ty)
            });
        }
    }
}

/// The DataStream windows a window table function's aggregate runs on.
pub(crate) fn windows(spec: WindowSpec) -> Windows {
    match spec {
        WindowSpec::Tumble { size } => Windows::tumbling(Duration::from_millis(size as u64)),
        WindowSpec::Hop { slide, size } => Windows::sliding(
            Duration::from_millis(size as u64),
            Duration::from_millis(slide as u64),
        ),
        WindowSpec::Cumulate { step, size } => Windows::cumulating(
            Duration::from_millis(step as u64),
            Duration::from_millis(size as u64),
        ),
        WindowSpec::Session { gap } => Windows::session(Duration::from_millis(gap as u64)),
        WindowSpec::Attached { .. } => Windows::tumbling(Duration::from_millis(1)),
    }
}

/// A value as a CSV field: quoted when it holds a comma, quote or line break; NULL empty.
/// Appends `v` as Flink's CSV format writes it: text-like values (strings, timestamps, dates,
/// intervals) between double quotes when they hold a character below `-` (space, comma, quote,
/// control characters: Jackson's rule), numbers and booleans as they are.
fn csv_field(v: &Value, out: &mut Vec<u8>) {
    if let Value::Timestamp(_) | Value::TimestampLtz(_) = v {
        // Its text always has a space (between date and time) and never a quote.
        out.push(b'"');
        crate::value::write_file_text(v, out);
        out.push(b'"');
        return;
    }
    let start = out.len();
    crate::value::write_file_text(v, out);
    let numeric = matches!(
        v,
        Value::Null
            | Value::Bool(_)
            | Value::Int(_)
            | Value::BigInt(_)
            | Value::Double(_)
            | Value::Decimal(..)
    );
    if numeric || !out[start..].iter().any(|b| *b < b'-') {
        return;
    }
    // Quoted, with each quote doubled, in place: the buffer grows by the quotes added, and the
    // text moves back from its end (no allocation per field).
    let quotes = out[start..].iter().filter(|b| **b == b'"').count();
    let (end, grown) = (out.len(), out.len() + quotes + 2);
    out.resize(grown, b'"');
    let mut to = grown - 1; // the closing quote stays where `resize` put it
    for from in (start..end).rev() {
        let b = out[from];
        to -= 1;
        out[to] = b;
        if b == b'"' {
            to -= 1;
            out[to] = b'"';
        }
    }
    out[start] = b'"';
}

fn json_value(v: &Value, ty: DataType) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Array(items) => {
            let element = ty.element().unwrap_or(DataType::Null);
            J::Array(items.iter().map(|i| json_value(i, element)).collect())
        }
        Value::Row(values) => ty.with_fields(|fields| {
            J::Object(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let (name, t) = fields
                            .get(i)
                            .cloned()
                            .unwrap_or_else(|| (format!("EXPR${i}"), DataType::Null));
                        (name, json_value(v, t))
                    })
                    .collect(),
            )
        }),
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::BigInt(i) => J::from(*i),
        Value::Double(d) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        Value::Decimal(..) => v
            .to_string()
            .parse::<serde_json::Number>()
            .map_or_else(|_| J::String(v.to_string()), J::Number),
        other => J::String(crate::value::file_text(other)),
    }
}

/// Appends the line of an append-only file or Kafka table `table` for `row`: CSV fields in column order,
/// or a JSON object of the columns.
fn write_line(table: &Table, row: &Row, out: &mut Vec<u8>) {
    match &table.connector {
        _ if table.format() == Some(FileFormat::Json) => {
            serde_json::to_writer(&mut *out, &json_object(table, row))
                .expect("a JSON value writes into a Vec")
        }
        connector => {
            let null = match connector {
                Connector::Filesystem {
                    null_literal: Some(null),
                    ..
                } => null.as_bytes(),
                _ => b"",
            };
            for (i, v) in row.0.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if v.is_null() {
                    out.extend_from_slice(null);
                } else {
                    csv_field(v, out);
                }
            }
        }
    }
}

/// A row as a JSON object of the table's columns.
fn json_object(table: &Table, row: &Row) -> serde_json::Value {
    serde_json::Value::Object(
        table
            .fields
            .iter()
            .zip(&row.0)
            .map(|(f, v)| (f.name.clone(), json_value(v, f.ty)))
            .collect(),
    )
}

/// `plan`'s changes on this worker: `+I` for each row of an append-only plan; the changelog of
/// an updating one.
pub(crate) fn changelog<'s>(env: &mut Cx<'s, '_>, plan: &Plan) -> DataStream<'s, Change<Row>> {
    match build_any(env, plan) {
        Built::Append(rows) => rows.map(|r| Change::new(RowKind::Insert, r)),
        Built::Updating(c) => c
            .changelog_by_key()
            .map(|ch| Change::new(ch.kind, ch.row.1)),
    }
}

/// Builds a sink on this worker. Into an append-only file table (csv, json): the rows (an
/// updating result never reaches one — the planner refuses it — and a join of append-only
/// inputs only inserts). Into print, blackhole and debezium-json tables: the changes (`+I` for
/// an append-only plan's rows; Flink's `-U`/`+U` pairs per key for an updating one).
pub(crate) fn build_sink(env: &mut Cx<'_, '_>, sink: &Sink) {
    let table = sink.table.clone();
    let name = table
        .as_ref()
        .map_or("print".to_string(), |t| format!("sink {}", t.name));
    let built = build_any(env, &sink.plan);
    if let Some(Connector::Filesystem { path, format, .. }) = table.as_ref().map(|t| &t.connector)
        && *format != FileFormat::DebeziumJson
    {
        let path = path.clone();
        let rows = match built {
            Built::Append(rows) => rows,
            Built::Updating(c) => {
                let ctx = Rc::clone(c.context());
                let what = name.clone();
                c.changelog_by_key()
                    .flat_map(move |ch: Change<(Row, Row)>| match ch.kind {
                        RowKind::Insert => Some(ch.row.1),
                        kind => {
                            fail(
                                &ctx,
                                &what,
                                &format!("{kind}[{}] reached an append-only table", ch.row.1),
                            );
                            None
                        }
                    })
            }
        };
        let t = table.expect("a file table");
        rows.write_lines(Location::from(path.as_str()), move |out, r| {
            write_line(&t, r, out);
            Ok(())
        });
        return;
    }
    if let Some(Connector::Kafka(k)) = table.as_ref().map(|t| &t.connector) {
        let t = std::sync::Arc::clone(table.as_ref().expect("a Kafka table"));
        if let Some(upsert) = &k.upsert {
            // Each row under its PRIMARY KEY: inserted and updated rows as values, deleted ones
            // as tombstones; the row before an update is not sent (the next value replaces it).
            // An updating result's changes are paired per PRIMARY KEY first, so that a row
            // replaced by another of the same key is one update (-U, +U) in that order, on the
            // key's worker — never a tombstone after the new value.
            let pk = upsert.key.clone();
            let changes: DataStream<'_, Change<Row>> = match built {
                Built::Append(rows) => rows.map(|r| Change::new(RowKind::Insert, r)),
                Built::Updating(c) => c
                    .map(move |(_, r): (Row, Row)| {
                        (Row(pk.iter().map(|c| r.0[*c].clone()).collect()), r)
                    })
                    .changelog_by_key()
                    .map(|ch| Change::new(ch.kind, ch.row.1)),
            };
            let upserts = changes.flat_map(|ch: Change<Row>| match ch.kind {
                RowKind::UpdateBefore => None,
                RowKind::Delete => Some((ch.row, true)),
                RowKind::Insert | RowKind::UpdateAfter => Some((ch.row, false)),
            });
            let key_table = sub_table(&t, &upsert.key, upsert.key_format);
            let key_columns = upsert.key.clone();
            let rest: Vec<usize> = t
                .physical
                .iter()
                .copied()
                .filter(|c| !upsert.key.contains(c))
                .collect();
            let value_table = upsert
                .except_key
                .then(|| (sub_table(&t, &rest, k.format), rest));
            let sink = KafkaSink::with_encoder(
                k.brokers.as_str(),
                k.topic.as_str(),
                move |(r, _): &(Row, bool), out: &mut Vec<u8>| {
                    match &value_table {
                        None => write_line(&t, r, out),
                        Some((vt, rest)) => {
                            let values = Row(rest.iter().map(|c| r.0[*c].clone()).collect());
                            write_line(vt, &values, out);
                        }
                    }
                    Ok(())
                },
            )
            .key(move |(r, _): &(Row, bool)| {
                let mut out = Vec::new();
                let key = Row(key_columns.iter().map(|c| r.0[*c].clone()).collect());
                write_line(&key_table, &key, &mut out);
                out
            })
            .tombstone_if(|(_, deleted): &(Row, bool)| *deleted);
            upserts.name(name).write_kafka(with_properties(sink, k));
            return;
        }
        if k.format == FileFormat::DebeziumJson {
            // Each change a Debezium event, at its event time (as the files' writer writes).
            let changes: DataStream<'_, Change<Row>> = match built {
                Built::Append(rows) => rows.map(|r| Change::new(RowKind::Insert, r)),
                Built::Updating(c) => c
                    .changelog_by_key()
                    .map(|ch| Change::new(ch.kind, ch.row.1)),
            };
            let timed = changes.then("debezium", |s, _| {
                use tidal_engine::timely::dataflow::operators::vec::Map;
                s.map(|(ch, t)| ((ch, t), t))
            });
            let sink = KafkaSink::with_encoder(
                k.brokers.as_str(),
                k.topic.as_str(),
                move |(ch, at): &(Change<Row>, Time), out: &mut Vec<u8>| {
                    let row = json_object(&t, &ch.row);
                    let (before, after, op) = match ch.kind {
                        RowKind::Insert | RowKind::UpdateAfter => {
                            (serde_json::Value::Null, row, "c")
                        }
                        RowKind::UpdateBefore | RowKind::Delete => {
                            (row, serde_json::Value::Null, "d")
                        }
                    };
                    let event = serde_json::json!({
                        "before": before, "after": after, "op": op, "ts_ms": at
                    });
                    serde_json::to_writer(out, &event).map_err(|e| e.to_string())
                },
            );
            timed.name(name).write_kafka(with_properties(sink, k));
        } else {
            let rows = match built {
                Built::Append(rows) => rows,
                Built::Updating(_) => unreachable!("the planner refuses updating results here"),
            };
            if t.metadata.is_empty() {
                let sink = KafkaSink::with_encoder(
                    k.brokers.as_str(),
                    k.topic.as_str(),
                    move |r: &Row, out: &mut Vec<u8>| {
                        write_line(&t, r, out);
                        Ok(())
                    },
                );
                rows.name(name).write_kafka(with_properties(sink, k));
                return;
            }
            // Rows hold the written columns (all but the VIRTUAL metadata ones): the physical
            // ones make the value, a 'timestamp' column the message's timestamp.
            let written: Vec<usize> = (0..t.fields.len())
                .filter(|c| !t.metadata.iter().any(|(m, _, v)| m == c && *v))
                .collect();
            let at = |c: usize| written.iter().position(|w| *w == c);
            let values: Vec<usize> = t.physical.iter().filter_map(|c| at(*c)).collect();
            let stamp = t
                .metadata
                .iter()
                .find(|(_, m, v)| *m == KafkaMeta::Timestamp && !v)
                .and_then(|(c, _, _)| at(*c));
            let value_table = sub_table(&t, &t.physical, k.format);
            let sink = KafkaSink::with_encoder(
                k.brokers.as_str(),
                k.topic.as_str(),
                move |r: &Row, out: &mut Vec<u8>| {
                    let row = Row(values.iter().map(|c| r.0[*c].clone()).collect());
                    write_line(&value_table, &row, out);
                    Ok(())
                },
            )
            .timestamp(move |r: &Row| stamp.and_then(|c| r.0[c].as_millis()));
            rows.name(name).write_kafka(with_properties(sink, k));
        }
        return;
    }
    let changes: DataStream<'_, Change<Row>> = match built {
        Built::Append(rows) => rows.map(|r| Change::new(RowKind::Insert, r)),
        Built::Updating(c) => c
            .changelog_by_key()
            .map(|ch| Change::new(ch.kind, ch.row.1)),
    };
    match table.as_ref().map(|t| t.connector.clone()) {
        Some(Connector::Blackhole) => {
            changes.inspect(|_| ()).name("blackhole");
        }
        Some(Connector::Filesystem { path, .. }) => {
            let t = table.expect("a table");
            changes
                .map(move |ch| Change::new(ch.kind, json_object(&t, &ch.row)))
                .name(name)
                .write_debezium_json(Location::from(path.as_str()));
        }
        _ => {
            let prefix = match table.as_ref().map(|t| &t.connector) {
                Some(Connector::Print {
                    identifier: Some(id),
                }) => format!("{id}> "),
                _ => String::new(),
            };
            changes
                .map(move |ch| format!("{prefix}{}[{}]", ch.kind, ch.row))
                .name(name)
                .print();
        }
    }
}

/// Writes `text` to stdout at once (plans printed before a job starts).
pub(crate) fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subquery_written_twice_is_one_plan() {
        let plan = |sql: &str| {
            let statements = crate::parse::parse_script(sql).unwrap();
            let (_, program) = crate::plan::plan_script(&statements).unwrap();
            program.sinks[0].plan.clone()
        };
        let table = "CREATE TABLE t (a BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH ('connector' = 'filesystem', 'path' = '/x', 'format' = 'csv');\n";
        let counts = "SELECT a, COUNT(*) AS n, window_end AS e FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY a, window_start, window_end";
        let p = plan(&format!(
            "{table}SELECT x.a FROM ({counts}) x JOIN ({counts}) y ON x.a = y.a AND x.e = y.e;"
        ));
        let Plan::Join { left, right, .. } = &p.inputs()[0] else {
            panic!("a join under the projection")
        };
        let text = |p: &Plan| without_positions(&format!("{:?}", p.inputs()[0]));
        assert_ne!(
            format!("{left:?}"),
            format!("{right:?}"),
            "written at two places"
        );
        assert_eq!(text(left), text(right));
        assert!(!text(left).contains("pos: Pos"));
        // Literals that read like a position stay as they are.
        assert_eq!(
            without_positions("Str(\"pos: Pos { line: x }\"), pos: Pos { line: 3, column: 14 }, y"),
            "Str(\"pos: Pos { line: x }\"), , y"
        );
        // Another window is another plan.
        let other = counts.replace("'1' SECOND", "'2' SECOND");
        let p = plan(&format!(
            "{table}SELECT x.a FROM ({counts}) x JOIN ({other}) y ON x.a = y.a AND x.e = y.e;"
        ));
        let Plan::Join { left, right, .. } = &p.inputs()[0] else {
            panic!("a join under the projection")
        };
        assert_ne!(text(left), text(right));
    }

    #[test]
    fn projections_move_columns_read_once_and_evaluate_the_rest() {
        use crate::expr::ArithOp;
        let typed = |scalar: Scalar| Typed {
            scalar,
            ty: DataType::BigInt,
            text: String::new(),
            pos: Default::default(),
        };
        let col = |c| Box::new(Scalar::Col(c));
        // c1; c0 + c2; c2; c3; c3: c1 moves, c0 and c2 are read elsewhere, c3 twice.
        let p = Projector::new(vec![
            typed(Scalar::Col(1)),
            typed(Scalar::Arith(
                ArithOp::Add,
                col(0),
                col(2),
                DataType::BigInt,
            )),
            typed(Scalar::Col(2)),
            typed(Scalar::Col(3)),
            typed(Scalar::Col(3)),
        ]);
        assert_eq!(p.moved, vec![Some(1), None, None, None, None]);
        let row = Row(vec![
            Value::BigInt(1),
            Value::str("b"),
            Value::BigInt(3),
            Value::str("d"),
        ]);
        let out = p.project(row).unwrap();
        assert_eq!(
            out.0,
            vec![
                Value::str("b"),
                Value::BigInt(4),
                Value::BigInt(3),
                Value::str("d"),
                Value::str("d")
            ]
        );
        // Made again in the same scratch space, for a second row: nothing of the first stays.
        let again = p
            .project(Row(vec![
                Value::BigInt(10),
                Value::str("y"),
                Value::BigInt(30),
                Value::Null,
            ]))
            .unwrap();
        assert_eq!(
            again.0,
            vec![
                Value::str("y"),
                Value::BigInt(40),
                Value::BigInt(30),
                Value::Null,
                Value::Null
            ]
        );
        // The first columns in order: the row cut short, the rest dropped.
        let prefix = Projector::new(vec![typed(Scalar::Col(0)), typed(Scalar::Col(1))]);
        assert!(prefix.prefix && !p.prefix);
        let out = prefix
            .project(Row(vec![Value::BigInt(1), Value::str("b"), Value::Null]))
            .unwrap();
        assert_eq!(out.0, vec![Value::BigInt(1), Value::str("b")]);
        // Columns in another order are moved, not cut.
        let swapped = Projector::new(vec![typed(Scalar::Col(1)), typed(Scalar::Col(0))]);
        assert!(!swapped.prefix);
        let out = swapped
            .project(Row(vec![Value::BigInt(1), Value::str("b")]))
            .unwrap();
        assert_eq!(out.0, vec![Value::str("b"), Value::BigInt(1)]);
    }

    #[test]
    fn csv_fields_follow_quotes() {
        assert_eq!(
            csv_fields("a,\"b,c\",,\"d\"\"e\"").unwrap(),
            ["a", "b,c", "", "d\"e"]
        );
        assert!(csv_fields("\"open").is_err());
        let mut out = Vec::new();
        csv_field(&Value::str("x,\"y\""), &mut out);
        assert_eq!(out, b"\"x,\"\"y\"\"\"");
        // A timestamp always has a space: quoted.
        let mut out = b"1,".to_vec();
        csv_field(&Value::Timestamp(1_500), &mut out);
        csv_field(&Value::TimestampLtz(-1), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1,\"1970-01-01 00:00:01.5\"\"1969-12-31 23:59:59.999Z\""
        );
        // After other fields, with quotes first and last, and with none.
        for (text, quoted) in [
            ("\"a b\"", "\"\"\"a b\"\"\""),
            ("\"", "\"\"\"\""),
            ("a b", "\"a b\""),
            ("ab", "ab"),
        ] {
            let mut out = b"1,".to_vec();
            csv_field(&Value::str(text), &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("1,{quoted}"),
                "{text}"
            );
        }
    }

    #[test]
    fn column_loads_make_the_columns_a_nexmark_row_has() {
        let config = NexmarkConfig::default();
        let events: Vec<Event> = (0..200).map(|n| config.event(n)).collect();
        for (kind, width) in [
            (NexmarkKind::Bid, 7),
            (NexmarkKind::Auction, 10),
            (NexmarkKind::Person, 8),
        ] {
            let e = events.iter().find(|e| is_of_kind(kind, e)).unwrap();
            let mut strings = Interned::default();
            let whole = nexmark_vec(kind, e, &mut strings, None).unwrap();
            assert_eq!(whole.len(), width);
            for (c, value) in whole.iter().enumerate() {
                let load = ColumnLoad::of(kind, c).unwrap();
                let mut slot = Value::Null;
                load.set(e, &mut strings, &mut slot);
                assert_eq!(&slot, value, "{kind:?} column {c}");
            }
            assert!(ColumnLoad::of(kind, width).is_none());
        }
    }

    #[test]
    fn selected_columns_are_moved_out_of_the_whole_result_in_their_order() {
        let fill = |v: &mut Vec<Value>| {
            v.extend([Value::BigInt(1), Value::str("two"), Value::Timestamp(3)]);
        };
        assert_eq!(Selected::default().row(3, fill).0.len(), 3);
        let select = Selected::of(vec![2, 0]).unwrap();
        for _ in 0..2 {
            // The reused row is filled afresh each time.
            assert_eq!(
                select.row(3, fill).0,
                vec![Value::Timestamp(3), Value::BigInt(1)]
            );
        }
        // A column named twice cannot be moved twice: not selected this way.
        assert!(Selected::of(vec![1, 1]).is_none());
    }

    #[test]
    fn projections_of_columns_compose_with_the_projection_below() {
        let plan = |query: &str| {
            let script = crate::Script::parse(&format!(
                "CREATE TABLE t (a BIGINT, b BIGINT) WITH ('connector' = 'datagen');
                 {query}"
            ))
            .unwrap();
            script.program.sinks[0].plan.clone()
        };
        let texts = |p: &Plan| match p {
            Plan::Project { exprs, .. } => exprs
                .iter()
                .map(|(n, e)| format!("{n}={}", e.text))
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        // Columns of a projection: one projection of the expressions below.
        let p = plan("SELECT y, x FROM (SELECT a + 1 AS x, b * 2 AS y FROM t);");
        let Plan::Project { input, exprs } = &p else {
            panic!()
        };
        let one = composed(input, exprs).expect("composed");
        assert_eq!(texts(&one), ["y=b * 2", "x=a + 1"]);
        let Plan::Project { input: below, .. } = &one else {
            panic!()
        };
        assert!(matches!(below.as_ref(), Plan::Scan { .. }), "{below:?}");
        // A computed column read twice stays computed once, below.
        let p = plan("SELECT x, x FROM (SELECT a + 1 AS x FROM t);");
        let Plan::Project { input, exprs } = &p else {
            panic!()
        };
        assert!(composed(input, exprs).is_none());
        // Nor one that nothing above reads: a row it fails on must still fail the job.
        let p = plan("SELECT a FROM (SELECT a, b / 0 AS y FROM t);");
        let Plan::Project { input, exprs } = &p else {
            panic!()
        };
        assert!(matches!(input.as_ref(), Plan::Project { .. }), "{input:?}");
        assert!(composed(input, exprs).is_none());
        // A column below that nothing above reads is left out.
        let p = plan("SELECT x FROM (SELECT a + 1 AS x, b FROM t);");
        let Plan::Project { input, exprs } = &p else {
            panic!()
        };
        assert_eq!(texts(&composed(input, exprs).unwrap()), ["x=a + 1"]);
        // An expression above is not composed.
        let p = plan("SELECT x + 1 FROM (SELECT a + 1 AS x FROM t);");
        let Plan::Project { input, exprs } = &p else {
            panic!()
        };
        assert!(composed(input, exprs).is_none());
    }

    #[test]
    fn nexmark_rows_leave_the_string_columns_nothing_reads_null() {
        let script = crate::Script::parse(
            "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR,
               url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR)
             WITH ('connector' = 'nexmark', 'table' = 'bid', 'events' = '100');
             SELECT auction, channel FROM bid;",
        )
        .unwrap();
        let Plan::Project { input, .. } = &script.program.sinks[0].plan else {
            panic!()
        };
        let Plan::Scan { table } = input.as_ref() else {
            panic!()
        };
        let config = NexmarkConfig::default();
        let bid = (0..100)
            .map(|n| config.event(n))
            .find(|e| matches!(e, Event::Bid(_)))
            .unwrap();
        let mut strings = Interned::default();
        let row = |needed: Option<&[bool]>, strings: &mut Interned| {
            nexmark_row(table, NexmarkKind::Bid, &bid, strings, needed)
                .unwrap()
                .unwrap()
        };
        let all = row(None, &mut strings);
        assert!(
            matches!(&all.0[3], Value::Str(c) if !c.is_empty()),
            "{all:?}"
        );
        assert_eq!(all.0[4], Value::str(""));
        // Auction and channel read: the other strings are NULL, the rest as before.
        let some = row(Some(&[true, false, false, true]), &mut strings);
        assert_eq!(some.0[..4], all.0[..4]);
        assert_eq!(some.0[4], Value::Null);
        assert_eq!(some.0[5], all.0[5]);
        assert_eq!(some.0[6], Value::Null);
        // Nothing read: no string at all.
        let none = row(Some(&[]), &mut strings);
        assert_eq!(none.0[3], Value::Null);
        assert_eq!(none.0[0], all.0[0]);
    }

    #[test]
    fn datagen_rows_depend_only_on_their_number() {
        let script = crate::Script::parse(
            "CREATE TABLE g (id INT, n BIGINT, name STRING, x DOUBLE, doubled AS n * 2)
             WITH ('connector' = 'datagen', 'number-of-rows' = '50',
                   'fields.id.kind' = 'sequence', 'fields.id.start' = '10', 'fields.id.end' = '1000',
                   'fields.n.min' = '-5', 'fields.n.max' = '5', 'fields.name.length' = '7',
                   'fields.x.min' = '0', 'fields.x.max' = '1');
             SELECT * FROM g;",
        )
        .unwrap();
        let Plan::Project { input, .. } = &script.program.sinks[0].plan else {
            panic!()
        };
        let Plan::Scan { table } = input.as_ref() else {
            panic!()
        };
        let Connector::Datagen(spec) = &table.connector else {
            panic!()
        };
        assert_eq!(spec.rows, Some(50));
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..50 {
            let row = generate(table, spec, i).unwrap();
            assert_eq!(row, generate(table, spec, i).unwrap(), "row {i} again");
            assert_eq!(row.0[0], Value::Int(10 + i as i32));
            let n = row.0[1].as_i64().unwrap();
            assert!((-5..=5).contains(&n), "{n}");
            seen.insert(n);
            assert_eq!(row.0[4], Value::BigInt(n * 2));
            assert!(
                matches!(&row.0[2], Value::Str(s) if s.len() == 7 && s.bytes().all(|b| b.is_ascii_lowercase()))
            );
            assert!(matches!(row.0[3], Value::Double(x) if (0.0..=1.0).contains(&x)));
        }
        assert!(seen.len() > 5, "random values vary: {seen:?}");
    }

    #[test]
    fn hop_windows_cover_each_time_size_over_slide_times() {
        let spec = WindowSpec::Hop { slide: 2, size: 10 };
        let w = windows_of(spec, 13);
        assert_eq!(w, [(4, 14), (6, 16), (8, 18), (10, 20), (12, 22)]);
        assert_eq!(windows_of(WindowSpec::Tumble { size: 10 }, -1), [(-10, 0)]);
        let cumulate = WindowSpec::Cumulate { step: 5, size: 15 };
        assert_eq!(windows_of(cumulate, 22), [(15, 25), (15, 30)]);
        assert_eq!(windows_of(cumulate, 29), [(15, 30)]);
        assert_eq!(windows_of(cumulate, 15), [(15, 20), (15, 25), (15, 30)]);
    }
}
