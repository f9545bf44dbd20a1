//! The logical plan: tables and views of a script resolved, expressions typed, and each query
//! turned into a tree of operators Tidal runs — scans, filters, projections, window assignment
//! and window aggregation (on the DataStream window operator), unions — ending in sinks.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::ops::ControlFlow;
use std::sync::Arc;

use sqlparser::ast::{self, Expr, Query, SelectItem, SetExpr, TableFactor, visit_expressions};

use crate::expr::{self, Field, Scalar, Scope, Typed, compile, pos_of};
use crate::parse::{ColumnDef, Pos, SqlError, Stmt, TABLE_ARG, TableDef, object_name};
use crate::value::DataType;

/// How a table's files are written or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// One CSV record per line, fields in the table's column order.
    Csv,
    /// One JSON object per line, keys the column names.
    Json,
    /// Debezium JSON change events (`before`, `after`, `op`): what an updating query writes.
    DebeziumJson,
}

/// Where a table's rows come from or go to (its `'connector'` option).
#[derive(Debug, Clone, PartialEq)]
pub enum Connector {
    /// `'connector' = 'filesystem'`: files under `'path'` in `'format'`.
    Filesystem {
        /// A file, directory or glob (local or `s3://`).
        path: String,
        /// The format.
        format: FileFormat,
        /// CSV: whether files start with a header line (`'csv.header' = 'true'`; default no,
        /// as Flink's CSV format).
        header: bool,
        /// CSV: the field text read as NULL, in a column of any type (`'csv.null-literal'`;
        /// default none: as in Flink, an empty field is an empty STRING and an error in a column
        /// of another type).
        null_literal: Option<String>,
        /// `'dead-letter.path'`: where rows that cannot be read go, with their file, line and
        /// error, the job going on (default none: such a row fails the job).
        dead_letter: Option<String>,
    },
    /// `'connector' = 'kafka'`: the messages of a topic, read and written (see [`KafkaTable`]).
    Kafka(KafkaTable),
    /// `'connector' = 'print'`: rows on the stdout of process 0 as `+I[...]`.
    Print {
        /// `'print-identifier'`: a prefix of every line.
        identifier: Option<String>,
    },
    /// `'connector' = 'blackhole'`: rows dropped.
    Blackhole,
    /// `'connector' = 'datagen'`: generated rows.
    Datagen(Datagen),
    /// `'connector' = 'nexmark'`: one of the Nexmark benchmark's tables from Tidal's generator
    /// (the events `nexmark --write-events` writes): `'table'` = `'bid'`, `'auction'` or
    /// `'person'`, `'events'` (all kinds together; default without end), `'events-per-second'`
    /// of event time (default 10 000), `'rate'` (events per second of wall-clock time).
    Nexmark(NexmarkTable),
}

/// A Kafka table, with Flink's options: `'topic'`, `'properties.bootstrap.servers'`,
/// `'format'` (`'csv'`, `'json'`, or `'debezium-json'` for change logs, read as an updating
/// table and written from updating queries), `'scan.startup.mode'` (`'earliest-offset'`, the
/// default; `'latest-offset'`; `'group-offsets'` with `'properties.group.id'`; `'timestamp'`
/// with `'scan.startup.timestamp-millis'`), `'scan.bounded.mode'` (`'unbounded'`, the default,
/// or `'latest-offset'`: read up to the end offsets found at start, then finish), any other
/// `'properties.KEY'` passed to librdkafka. Each partition has its own watermark.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaTable {
    /// The topic.
    pub topic: String,
    /// `host:port,...` of the brokers.
    pub brokers: String,
    /// How message values are read and written.
    pub format: FileFormat,
    /// Where reading starts.
    pub startup: KafkaStartup,
    /// Whether reading stops at the end offsets found at start.
    pub bounded: bool,
    /// The consumer group (offsets committed there on completed checkpoints).
    pub group: Option<String>,
    /// Other librdkafka properties (`'properties.KEY'`).
    pub properties: Vec<(String, String)>,
    /// `'dead-letter.path'`: where messages that cannot be read go, with their topic, partition,
    /// offset and error, the job going on (default none: such a message fails the job).
    pub dead_letter: Option<String>,
    /// `'connector' = 'upsert-kafka'`: messages keyed by the PRIMARY KEY, each the key's latest
    /// row, a tombstone its deletion.
    pub upsert: Option<KafkaUpsert>,
}

/// How an `'upsert-kafka'` table keys its messages.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaUpsert {
    /// The PRIMARY KEY's columns.
    pub key: Vec<usize>,
    /// `'key.format'`: how the key columns are written in a message's key.
    pub key_format: FileFormat,
    /// `'value.fields-include' = 'EXCEPT_KEY'`: values hold the other columns only (default
    /// `'ALL'`: every column).
    pub except_key: bool,
}

/// Where a Kafka table's reading starts (`'scan.startup.mode'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaStartup {
    /// `'earliest-offset'`.
    Earliest,
    /// `'latest-offset'`.
    Latest,
    /// `'group-offsets'` (the earliest where the group has none).
    Group,
    /// `'timestamp'`: the first message at or after this time (ms).
    Timestamp(i64),
}

fn kafka(def: &TableDef, fields: &[Field], upsert: bool) -> Result<KafkaTable, SqlError> {
    let err = |m: String| SqlError::at(def.pos, format!("table '{}': {m}", def.name));
    let text_format = |key: &str| match option(def, key) {
        Some("csv") => Ok(FileFormat::Csv),
        Some("json") => Ok(FileFormat::Json),
        other => Err(err(format!(
            "'{key}' = {}: upsert-kafka tables read and write 'csv' and 'json'",
            other.map_or("(none)".to_string(), |f| format!("'{f}'"))
        ))),
    };
    let upsert = if upsert {
        if def.primary_key.is_empty() {
            return Err(err(
                "'connector' = 'upsert-kafka' needs a PRIMARY KEY (...) NOT ENFORCED: the columns of the messages' keys".to_string(),
            ));
        }
        let mut key = Vec::new();
        for k in &def.primary_key {
            let c = fields
                .iter()
                .position(|f| f.name.eq_ignore_ascii_case(k))
                .ok_or_else(|| err(format!("PRIMARY KEY ({k}): no such column")))?;
            key.push(c);
        }
        let except_key = match option(def, "value.fields-include") {
            None | Some("ALL") => false,
            Some("EXCEPT_KEY") => true,
            Some(other) => {
                return Err(err(format!(
                    "'value.fields-include' = '{other}': give 'ALL' or 'EXCEPT_KEY'"
                )));
            }
        };
        Some(KafkaUpsert {
            key,
            key_format: text_format("key.format")?,
            except_key,
        })
    } else {
        None
    };
    let topic = option(def, "topic")
        .ok_or_else(|| err("'connector' = 'kafka' needs a 'topic'".to_string()))?;
    let brokers = option(def, "properties.bootstrap.servers").ok_or_else(|| {
        err(
            "'connector' = 'kafka' needs 'properties.bootstrap.servers' (host:port of the brokers)"
                .to_string(),
        )
    })?;
    let format = match option(def, "format").or_else(|| option(def, "value.format")) {
        _ if upsert.is_some() => text_format("value.format")?,
        Some("csv") => FileFormat::Csv,
        Some("json") => FileFormat::Json,
        Some("debezium-json") => FileFormat::DebeziumJson,
        other => {
            return Err(err(format!(
                "'format' = {}: Kafka tables read and write 'csv', 'json' and 'debezium-json'",
                other.map_or("(none)".to_string(), |f| format!("'{f}'"))
            )));
        }
    };
    let group = option(def, "properties.group.id").map(str::to_string);
    let startup = match option(def, "scan.startup.mode") {
        // An upsert table is the whole topic's latest rows: always from the start.
        _ if upsert.is_some() => KafkaStartup::Earliest,
        None | Some("earliest-offset") => KafkaStartup::Earliest,
        Some("latest-offset") => KafkaStartup::Latest,
        Some("group-offsets") if group.is_some() => KafkaStartup::Group,
        Some("group-offsets") => {
            return Err(err(
                "'scan.startup.mode' = 'group-offsets' needs 'properties.group.id'".to_string(),
            ));
        }
        Some("timestamp") => {
            let ms = option(def, "scan.startup.timestamp-millis")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    err("'scan.startup.mode' = 'timestamp' needs 'scan.startup.timestamp-millis' (ms since the epoch)".to_string())
                })?;
            KafkaStartup::Timestamp(ms)
        }
        Some(other) => {
            return Err(err(format!(
                "'scan.startup.mode' = '{other}': give 'earliest-offset', 'latest-offset', 'group-offsets' or 'timestamp'"
            )));
        }
    };
    let bounded = match option(def, "scan.bounded.mode") {
        None | Some("unbounded") => false,
        Some("latest-offset") => true,
        Some(other) => {
            return Err(err(format!(
                "'scan.bounded.mode' = '{other}': give 'unbounded' or 'latest-offset'"
            )));
        }
    };
    let properties = def
        .options
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("properties.")?, v)))
        .filter(|(k, _)| !["bootstrap.servers", "group.id"].contains(k))
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Ok(KafkaTable {
        topic: topic.to_string(),
        brokers: brokers.to_string(),
        format,
        startup,
        bounded,
        group,
        properties,
        upsert,
        dead_letter: option(def, "dead-letter.path").map(str::to_string),
    })
}

/// A Nexmark table (see [`Connector::Nexmark`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NexmarkTable {
    /// Which of the three.
    pub kind: NexmarkKind,
    /// Events generated (of all kinds).
    pub events: Option<u64>,
    /// Events per second of event time.
    pub events_per_second: u64,
    /// Events per second of wall-clock time.
    pub rate: Option<f64>,
}

/// The Nexmark tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NexmarkKind {
    /// `person (id, name, emailAddress, creditCard, city, state, dateTime, extra)`.
    Person,
    /// `auction (id, itemName, description, initialBid, reserve, dateTime, expires, seller,
    /// category, extra)`.
    Auction,
    /// `bid (auction, bidder, price, channel, url, dateTime, extra)`.
    Bid,
}

impl NexmarkKind {
    /// The types of the table's columns, in order.
    pub fn types(self) -> &'static [DataType] {
        use DataType::{BigInt as B, String as S, Timestamp as T};
        match self {
            NexmarkKind::Person => &[B, S, S, S, S, S, T, S],
            NexmarkKind::Auction => &[B, S, S, B, B, T, T, B, B, S],
            NexmarkKind::Bid => &[B, B, B, S, S, T, S],
        }
    }
    /// The index of its `dateTime` column.
    pub fn date_time(self) -> usize {
        match self {
            NexmarkKind::Person => 6,
            NexmarkKind::Auction | NexmarkKind::Bid => 5,
        }
    }
}

/// A generated table: `'rows-per-second'` (default 10 000; over the whole job),
/// `'number-of-rows'` (default unbounded, or as many as the shortest sequence), and per column
/// `'fields.NAME.kind'` = `'random'` (the default: `'fields.NAME.min'` / `'.max'` for numbers,
/// `'.length'` for strings, default 100) or `'sequence'` (`'.start'`, `'.end'`: row `i` holds
/// `start + i`). Random values depend only on the row's number and column, so a restored job
/// generates the same rows again. Time columns hold the wall clock when generated, minus a random
/// part of `'fields.NAME.max-past'` (milliseconds) when given.
#[derive(Debug, Clone, PartialEq)]
pub struct Datagen {
    /// Rows per second over the job (`None`: as fast as it goes).
    pub rows_per_second: Option<f64>,
    /// How many rows (`None`: without end).
    pub rows: Option<u64>,
    /// Per physical column, how its values are made.
    pub fields: Vec<GenField>,
}

/// How a generated column's values are made.
#[derive(Debug, Clone, PartialEq)]
pub enum GenField {
    /// `start + i` in row `i`.
    Sequence {
        /// The first value.
        start: i64,
    },
    /// Random numbers in `[min, max]`, strings of `length` letters, random booleans.
    Random {
        /// Smallest number.
        min: f64,
        /// Largest number.
        max: f64,
        /// Letters in a string.
        length: usize,
        /// Times: at most this far (ms) before the wall clock.
        max_past: i64,
    },
}

/// What a metadata column of a `'kafka'` table reads of each message (Flink's keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaMeta {
    /// `'topic'`: the topic's name (`STRING`).
    Topic,
    /// `'partition'`: the partition (`INT`).
    Partition,
    /// `'offset'`: the offset in the partition (`BIGINT`).
    Offset,
    /// `'timestamp'`: the message's timestamp (`TIMESTAMP_LTZ(3)`).
    Timestamp,
}

impl KafkaMeta {
    /// The metadata of key `key`.
    fn of(key: &str) -> Option<KafkaMeta> {
        Some(match key {
            "topic" => KafkaMeta::Topic,
            "partition" => KafkaMeta::Partition,
            "offset" => KafkaMeta::Offset,
            "timestamp" => KafkaMeta::Timestamp,
            _ => return None,
        })
    }
    /// The type its values have.
    pub fn ty(self) -> DataType {
        match self {
            KafkaMeta::Topic => DataType::String,
            KafkaMeta::Partition => DataType::Int,
            KafkaMeta::Offset => DataType::BigInt,
            KafkaMeta::Timestamp => DataType::TimestampLtz,
        }
    }
}

/// A table of the script: its columns (physical and computed), event time and connector.
#[derive(Debug, Clone)]
pub struct Table {
    /// Its name.
    pub name: String,
    /// Every column, physical and computed, in declared order.
    pub fields: Vec<Field>,
    /// The physical columns: index in `fields` and type, in the order files hold them.
    pub physical: Vec<usize>,
    /// The computed columns: index in `fields` and expression (on the row of `fields`).
    pub computed: Vec<(usize, Typed)>,
    /// The metadata columns: index in `fields`, what they read, and whether they are `VIRTUAL`.
    pub metadata: Vec<(usize, KafkaMeta, bool)>,
    /// The event-time column and the watermark's delay behind the largest time seen (ms).
    pub watermark: Option<(usize, i64)>,
    /// Where rows come from or go to.
    pub connector: Connector,
    /// Where it is declared.
    pub pos: Pos,
}

impl Table {
    /// The columns an INSERT gives, in order: all but the `VIRTUAL` metadata columns.
    pub fn written_fields(&self) -> Vec<Field> {
        self.fields
            .iter()
            .enumerate()
            .filter(|(c, _)| {
                !self
                    .metadata
                    .iter()
                    .any(|(m, _, is_virtual)| m == c && *is_virtual)
            })
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// Whether its rows are changes (a `'debezium-json'` file table): read, an updating table.
    pub fn is_changelog(&self) -> bool {
        matches!(
            self.connector,
            Connector::Filesystem {
                format: FileFormat::DebeziumJson,
                ..
            } | Connector::Kafka(KafkaTable {
                format: FileFormat::DebeziumJson,
                ..
            }) | Connector::Kafka(KafkaTable {
                upsert: Some(_),
                ..
            })
        )
    }

    /// How its rows are written and read, for files and Kafka messages.
    pub fn format(&self) -> Option<FileFormat> {
        match &self.connector {
            Connector::Filesystem { format, .. } => Some(*format),
            Connector::Kafka(k) => Some(k.format),
            _ => None,
        }
    }
}

/// The window a window table function assigns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// `TUMBLE(TABLE t, DESCRIPTOR(ts), size)`.
    Tumble {
        /// Its size (ms).
        size: i64,
    },
    /// `HOP(TABLE t, DESCRIPTOR(ts), slide, size)`.
    Hop {
        /// How far apart windows start (ms).
        slide: i64,
        /// Their size (ms).
        size: i64,
    },
    /// `CUMULATE(TABLE t, DESCRIPTOR(ts), step, size)`: from every multiple of the size, windows
    /// ending every step until the next multiple.
    Cumulate {
        /// How much longer each window is than the one before (ms).
        step: i64,
        /// The largest window's size (ms).
        size: i64,
    },
    /// `GROUP BY SESSION(ts, gap)`: per key, rows no further apart than the gap.
    Session {
        /// The gap that ends a session (ms).
        gap: i64,
    },
    /// The windows the input's rows already carry: `GROUP BY window_start, window_end` over the
    /// result of a window aggregation (or of a session window table function), whose rows all
    /// sit at their window's `window_time`. The window of a row is its `window_start` and
    /// `window_end` columns; it closes when the watermark passes the window's end, as it did
    /// upstream (Flink's cascading window aggregation on window-attached rows).
    Attached {
        /// The input column holding `window_start`.
        start: usize,
        /// The input column holding `window_end`.
        end: usize,
    },
}

impl fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowSpec::Tumble { size } => write!(f, "TUMBLE(size {})", millis(*size)),
            WindowSpec::Hop { slide, size } => {
                write!(f, "HOP(slide {}, size {})", millis(*slide), millis(*size))
            }
            WindowSpec::Cumulate { step, size } => {
                write!(
                    f,
                    "CUMULATE(step {}, size {})",
                    millis(*step),
                    millis(*size)
                )
            }
            WindowSpec::Session { gap } => write!(f, "SESSION(gap {})", millis(*gap)),
            WindowSpec::Attached { .. } => f.write_str("the input's windows"),
        }
    }
}

fn millis(ms: i64) -> String {
    if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

/// An aggregate function of a window aggregation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AggFunc {
    /// `COUNT(*)`, `COUNT(x)` (non-NULL values).
    Count,
    /// `SUM(x)`.
    Sum,
    /// `MIN(x)`.
    Min,
    /// `MAX(x)`.
    Max,
    /// `AVG(x)`.
    Avg,
}

/// The rows an `OVER` aggregate covers: the current row (and its peers of the same time for
/// `RANGE`) and before it...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverFrame {
    /// ... every earlier row (`UNBOUNDED PRECEDING`); `true`: rows of the same time are peers
    /// (`RANGE`), `false`: each row counts only those before it (`ROWS`).
    Unbounded(bool),
    /// ... the `n` rows before it (`ROWS BETWEEN n PRECEDING AND CURRENT ROW`).
    Rows(u64),
    /// ... the rows at most this many ms earlier (`RANGE BETWEEN INTERVAL ... PRECEDING AND
    /// CURRENT ROW`).
    Range(i64),
}

impl fmt::Display for OverFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OverFrame::Unbounded(true) => f.write_str("RANGE UNBOUNDED PRECEDING"),
            OverFrame::Unbounded(false) => f.write_str("ROWS UNBOUNDED PRECEDING"),
            OverFrame::Rows(n) => write!(f, "ROWS {n} PRECEDING"),
            OverFrame::Range(ms) => write!(f, "RANGE {} PRECEDING", millis(*ms)),
        }
    }
}

/// One aggregate: the function, its argument (none for `COUNT(*)`), `DISTINCT`, `FILTER (WHERE
/// ...)` and result type.
#[derive(Debug, Clone)]
pub struct Agg {
    /// The function.
    pub func: AggFunc,
    /// The argument, on the input row.
    pub arg: Option<Scalar>,
    /// The argument's type.
    pub arg_ty: DataType,
    /// `DISTINCT`: each distinct value once.
    pub distinct: bool,
    /// `FILTER (WHERE ...)`: only the rows where it holds.
    pub filter: Option<Scalar>,
    /// The result's type.
    pub ty: DataType,
    /// As written.
    pub text: String,
}

/// Which rows a join keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// Matched pairs only.
    Inner,
    /// And left rows without a match.
    Left,
    /// And right rows without a match.
    Right,
    /// And rows of either side without a match.
    Full,
}

/// A node of a plan: what it computes and the columns of its rows.
#[derive(Debug, Clone)]
pub enum Plan {
    /// The rows of a table.
    Scan {
        /// The table.
        table: Arc<Table>,
    },
    /// The rows for which a condition holds.
    Filter {
        /// The input.
        input: Box<Plan>,
        /// The condition.
        cond: Typed,
    },
    /// One row of expressions per input row.
    Project {
        /// The input.
        input: Box<Plan>,
        /// The expressions, named.
        exprs: Vec<(String, Typed)>,
    },
    /// Each input row once per window it falls in, with `window_start`, `window_end` and
    /// `window_time` after its columns (for sessions, once the session it falls in closes).
    WindowAssign {
        /// The input.
        input: Box<Plan>,
        /// The windows.
        spec: WindowSpec,
        /// Sessions are found per value of these columns (`PARTITION BY`).
        partition: Vec<usize>,
    },
    /// Per window and key, the aggregates of its rows, when the watermark passes the window's
    /// end: `window_start, window_end, window_time, keys..., aggregates...`.
    WindowAggregate {
        /// The input.
        input: Box<Plan>,
        /// The windows.
        spec: WindowSpec,
        /// The grouping expressions besides the window, named.
        keys: Vec<(String, Typed)>,
        /// The aggregates.
        aggs: Vec<Agg>,
    },
    /// Per group (the values of the grouping expressions), its aggregates, kept up to date as
    /// rows come and go: an updating result (on the incremental collections), `keys...,
    /// aggregates...`.
    GroupAggregate {
        /// The input.
        input: Box<Plan>,
        /// The grouping expressions, named.
        keys: Vec<(String, Typed)>,
        /// The aggregates.
        aggs: Vec<Agg>,
    },
    /// A regular join on equal keys: each left row with each right row of the same key
    /// (and, for outer joins, the rows without a match, NULLs for the other side): `left
    /// columns..., right columns...`. On the incremental collections; an inner join bounded in
    /// event time, or of two append-only inputs, on the DataStream interval join (see
    /// [`interval_join_bounds`](Plan::interval_join_bounds)).
    Join {
        /// The left input.
        left: Box<Plan>,
        /// The right input.
        right: Box<Plan>,
        /// Inner, left, right or full.
        kind: JoinKind,
        /// The key on the left rows.
        left_keys: Vec<Typed>,
        /// The key on the right rows (same number and comparable types).
        right_keys: Vec<Typed>,
        /// The rest of an inner join's ON condition, on the joined row.
        residual: Option<Typed>,
    },
    /// Top-N per partition: each partition's first `limit` rows in the order given, with their
    /// row number (`ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)` under a `WHERE rn <= N`):
    /// `input columns..., row number`. Updating (on the incremental collections).
    Rank {
        /// The input.
        input: Box<Plan>,
        /// The partition keys.
        partition: Vec<Typed>,
        /// The order: expressions, each descending when set.
        order: Vec<(Typed, bool)>,
        /// The number of rows kept per partition (`None` until the enclosing filter gives it).
        limit: Option<u64>,
        /// The row number column's name.
        name: String,
    },
    /// Aggregates over each row's preceding rows in its partition, in event-time order
    /// (`SUM(x) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)`):
    /// `input columns..., aggregates`, each row emitted when the watermark passes its time.
    /// Append-only, on the DataStream keyed process operator.
    Over {
        /// The input (append-only, with event time).
        input: Box<Plan>,
        /// The partition keys.
        partition: Vec<Typed>,
        /// Which preceding rows each row's aggregates cover.
        frame: OverFrame,
        /// The aggregates.
        aggs: Vec<Agg>,
    },
    /// The rows of every input.
    Union {
        /// The inputs (same column types).
        inputs: Vec<Plan>,
    },
    /// `CROSS JOIN UNNEST(array)`: each input row once per element of an array it holds, with
    /// the element after its columns (a ROW element's fields as columns of their own). With
    /// `outer` (`LEFT JOIN UNNEST(...) ON TRUE`), a row whose array is empty or NULL once, with
    /// NULLs.
    Unnest {
        /// The input.
        input: Box<Plan>,
        /// The array, on the input's rows.
        array: Typed,
        /// The columns the elements give.
        columns: Vec<Field>,
        /// Whether rows without elements are kept.
        outer: bool,
        /// `WITH ORDINALITY`: the last of `columns` is each element's position (from 1).
        ordinality: bool,
    },
}

impl Plan {
    /// The plans it reads.
    pub fn inputs(&self) -> Vec<&Plan> {
        match self {
            Plan::Scan { .. } => Vec::new(),
            Plan::Filter { input, .. }
            | Plan::Project { input, .. }
            | Plan::WindowAssign { input, .. }
            | Plan::WindowAggregate { input, .. }
            | Plan::GroupAggregate { input, .. }
            | Plan::Rank { input, .. }
            | Plan::Over { input, .. }
            | Plan::Unnest { input, .. } => vec![input],
            Plan::Join { left, right, .. } => vec![left, right],
            Plan::Union { inputs } => inputs.iter().collect(),
        }
    }

    /// The columns of its rows.
    pub fn fields(&self) -> Vec<Field> {
        match self {
            Plan::Scan { table } => table.fields.clone(),
            Plan::Filter { input, .. } => input.fields(),
            Plan::Unnest { input, columns, .. } => {
                let mut f = input.fields();
                f.extend(columns.iter().cloned());
                f
            }
            Plan::Project { exprs, .. } => exprs
                .iter()
                .map(|(name, e)| Field {
                    qualifier: None,
                    name: name.clone(),
                    ty: e.ty,
                })
                .collect(),
            Plan::WindowAssign { input, .. } => {
                let mut f = input.fields();
                f.extend(window_fields(None));
                f
            }
            Plan::WindowAggregate { keys, aggs, .. } => {
                let mut f = window_fields(None);
                f.extend(keys.iter().map(|(name, k)| Field {
                    qualifier: None,
                    name: name.clone(),
                    ty: k.ty,
                }));
                f.extend(aggs.iter().map(|a| Field {
                    qualifier: None,
                    name: a.text.clone(),
                    ty: a.ty,
                }));
                f
            }
            Plan::GroupAggregate { keys, aggs, .. } => keys
                .iter()
                .map(|(name, k)| Field {
                    qualifier: None,
                    name: name.clone(),
                    ty: k.ty,
                })
                .chain(aggs.iter().map(|a| Field {
                    qualifier: None,
                    name: a.text.clone(),
                    ty: a.ty,
                }))
                .collect(),
            Plan::Join { left, right, .. } => {
                left.fields().into_iter().chain(right.fields()).collect()
            }
            Plan::Rank { input, name, .. } => {
                let mut f = input.fields();
                f.push(Field {
                    qualifier: None,
                    name: name.clone(),
                    ty: DataType::BigInt,
                });
                f
            }
            Plan::Over { input, aggs, .. } => {
                let mut f = input.fields();
                f.extend(aggs.iter().map(|a| Field {
                    qualifier: None,
                    name: a.text.clone(),
                    ty: a.ty,
                }));
                f
            }
            Plan::Union { inputs } => inputs[0].fields(),
        }
    }

    /// For an inner join of two append-only inputs whose condition bounds the right side's event
    /// time by the left side's from below and above (`r.ts BETWEEN l.ts - INTERVAL ... AND l.ts +
    /// INTERVAL ...`, or the same with comparisons): `(lower, upper)` with `l.ts + lower <= r.ts
    /// <= l.ts + upper` (ms). Such a join runs as an interval join: a row is kept only until the
    /// watermark passes the times it can still match, and the result is append-only, as in Flink.
    /// A bound on one side only (`r.ts >= l.ts`) gives `i64::MIN` or `i64::MAX` for the other;
    /// such a join runs with both ends open — both sides kept, the bound tested on the pairs,
    /// no row dropped as late: a regular join's rows (as Flink runs it), append-only, on the
    /// interval join's keyed state instead of arrangements.
    ///
    /// A window join — equal `window_end` of the same windows on both sides (window table
    /// functions or window aggregations) — is one too: rows of one window lie at most the
    /// window's length apart in event time (a window aggregation's rows all at its window_time),
    /// and the equal keys keep other windows apart. The bounds may also be written on the
    /// `window_end` or `window_time` of a side whose rows sit at their window's time (a window
    /// aggregation's result): `window_time` is the row's event time, `window_end` one after.
    pub fn interval(&self) -> Option<(i64, i64)> {
        let Plan::Join {
            left,
            right,
            kind: JoinKind::Inner,
            residual,
            left_keys,
            right_keys,
        } = self
        else {
            return None;
        };
        if left.updating() || right.updating() {
            return None;
        }
        for (l, r) in left_keys.iter().zip(right_keys) {
            if let (Scalar::Col(a), Scalar::Col(b)) = (&l.scalar, &r.scalar)
                && let (Some((1, ls)), Some((1, rs))) =
                    (window_column(left, *a), window_column(right, *b))
            {
                let spread = ls.max(rs);
                return Some((-spread, spread));
            }
        }
        let residual = residual.as_ref()?;
        let lw = left.fields().len();
        // A column's value as its row's event time plus a constant (ms): the event-time
        // column itself, and the window columns of rows that sit at their window's time
        // (`window_time`, and `window_end` one after it). Which side, and the constant.
        let time = |c: usize| -> Option<(bool, i64)> {
            let (plan, c, right) = if c < lw {
                (left, c, false)
            } else {
                (right, c - lw, true)
            };
            if plan.rowtime() == Some(c) {
                return Some((right, 0));
            }
            match window_column(plan, c)? {
                (1, 0) => Some((right, 1)),
                (2, 0) => Some((right, 0)),
                _ => None,
            }
        };
        // A side of a comparison as a time column plus a constant: which column, and the ms.
        fn offset(s: &Scalar) -> Option<(usize, i64)> {
            use crate::expr::ArithOp;
            match s {
                Scalar::Col(c) => Some((*c, 0)),
                Scalar::Arith(op, a, b, _) => match (op, &**a, &**b) {
                    (ArithOp::Add, Scalar::Col(c), Scalar::Lit(crate::Value::Interval(ms)))
                    | (ArithOp::Add, Scalar::Lit(crate::Value::Interval(ms)), Scalar::Col(c)) => {
                        Some((*c, *ms))
                    }
                    (ArithOp::Sub, Scalar::Col(c), Scalar::Lit(crate::Value::Interval(ms))) => {
                        Some((*c, -*ms))
                    }
                    _ => None,
                },
                _ => None,
            }
        }
        let mut conjuncts = Vec::new();
        conjuncts_of(&residual.scalar, &mut conjuncts);
        let (mut lower, mut upper) = (None::<i64>, None::<i64>);
        for c in conjuncts {
            let Scalar::Cmp(op, a, b) = c else { continue };
            let (Some((ca, da)), Some((cb, db))) = (offset(a), offset(b)) else {
                continue;
            };
            let (Some((ra, ta)), Some((rb, tb))) = (time(ca), time(cb)) else {
                continue;
            };
            let (da, db) = (da + ta, db + tb);
            use crate::expr::CmpOp;
            // As `r.ts OP l.ts + d`.
            let (op, d) = if ra && !rb {
                (*op, db - da)
            } else if !ra && rb {
                (op.flipped(), da - db)
            } else {
                continue;
            };
            match op {
                CmpOp::Ge => lower = Some(lower.map_or(d, |x| x.max(d))),
                CmpOp::Gt => lower = Some(lower.map_or(d + 1, |x| x.max(d + 1))),
                CmpOp::Le => upper = Some(upper.map_or(d, |x| x.min(d))),
                CmpOp::Lt => upper = Some(upper.map_or(d - 1, |x| x.min(d - 1))),
                _ => {}
            }
        }
        // With one bound only, the side it does not bound is kept for as long as the job
        // runs (as a regular join keeps both); the other is still dropped as the watermark
        // passes it, and the result is append-only.
        match (lower, upper) {
            (None, None) => None,
            (lower, upper) => Some((lower.unwrap_or(i64::MIN), upper.unwrap_or(i64::MAX))),
        }
    }

    /// The bounds a join runs with on the DataStream interval join, if it does: those of
    /// [`interval`](Self::interval), or both ends open (`i64::MIN`, `i64::MAX`) for any other
    /// inner join of two append-only inputs. Such a join's result is append-only (a row, once
    /// joined, is never retracted), so it needs no arrangements: each side's rows wait per key
    /// in keyed state, as long as the job runs, and every pair of a key is tested by the
    /// condition — a regular join's rows, late rows included, as Flink runs a regular join of
    /// insert-only inputs.
    pub fn interval_join_bounds(&self) -> Option<(i64, i64)> {
        if let Some(bounds) = self.interval() {
            return Some(bounds);
        }
        match self {
            Plan::Join {
                left,
                right,
                kind: JoinKind::Inner,
                ..
            } if !left.updating() && !right.updating() => Some((i64::MIN, i64::MAX)),
            _ => None,
        }
    }

    /// A window join of two window aggregations, run as one window operator: an inner join
    /// whose sides are window aggregations of the same windows (tumbling, hopping or
    /// cumulating; through projections of their columns), joined only within a window (the
    /// interval join's bounds are `[0, 0]`: both sides' rows sit at their window's
    /// `window_time`, and the same windows' ends differ), on equal group keys (at least one
    /// pair; equal window columns pair with each other). Both sides' rows are keyed by the
    /// joined group keys into one window operator, each window keeps both sides' groups with
    /// their accumulators, and as it fires each left group is paired with each right group of
    /// its key (the residual condition tested on the pair): the rows of the two aggregations
    /// and their interval join, with one operator and one exchange where they take three and
    /// four (Flink runs such a query as two window aggregations and a window join).
    pub(crate) fn window_join(&self) -> Option<WindowJoin<'_>> {
        let Plan::Join {
            left,
            right,
            kind: JoinKind::Inner,
            left_keys,
            right_keys,
            ..
        } = self
        else {
            return None;
        };
        if self.interval_join_bounds() != Some((0, 0)) {
            return None;
        }
        let (l, r) = (WindowJoinSide::of(left)?, WindowJoinSide::of(right)?);
        if l.spec != r.spec
            || !matches!(
                l.spec,
                WindowSpec::Tumble { .. } | WindowSpec::Hop { .. } | WindowSpec::Cumulate { .. }
            )
        {
            return None;
        }
        let mut keys = Vec::new();
        for (a, b) in left_keys.iter().zip(right_keys) {
            let (Scalar::Col(a), Scalar::Col(b)) = (&a.scalar, &b.scalar) else {
                return None;
            };
            match (l.columns[*a], r.columns[*b]) {
                // The same window column of the same window: equal on every pair.
                (x, y) if x < 3 && x == y => {}
                (x, y) if x >= 3 && y >= 3 && x - 3 < l.keys.len() && y - 3 < r.keys.len() => {
                    keys.push((x - 3, y - 3));
                }
                _ => return None,
            }
        }
        if keys.is_empty() {
            return None;
        }
        Some(WindowJoin {
            spec: l.spec,
            left: l,
            right: r,
            keys,
        })
    }

    /// Whether its result changes after it was emitted (rows retracted): an updating result,
    /// run on the incremental collections and written as a changelog.
    pub fn updating(&self) -> bool {
        match self {
            Plan::Scan { table } => table.is_changelog(),
            Plan::GroupAggregate { .. } | Plan::Rank { .. } => true,
            Plan::Filter { input, .. }
            | Plan::Project { input, .. }
            | Plan::WindowAssign { input, .. }
            | Plan::WindowAggregate { input, .. }
            | Plan::Over { input, .. }
            | Plan::Unnest { input, .. } => input.updating(),
            Plan::Union { inputs } => inputs.iter().any(Plan::updating),
            // An outer join first emits a row without its match, and retracts it when one comes.
            Plan::Join {
                left, right, kind, ..
            } => *kind != JoinKind::Inner || left.updating() || right.updating(),
        }
    }

    /// The column that holds each row's event time, if one does (the records' timestamps are
    /// its values).
    pub fn rowtime(&self) -> Option<usize> {
        match self {
            Plan::Scan { table } if table.is_changelog() => None,
            Plan::Scan { table } => table.watermark.map(|(c, _)| c),
            // Rows of a session leave when it closes, at its window_time.
            Plan::WindowAssign {
                input,
                spec: WindowSpec::Session { .. },
                ..
            } => Some(input.fields().len() + 2),
            Plan::Filter { input, .. }
            | Plan::WindowAssign { input, .. }
            | Plan::Over { input, .. }
            | Plan::Unnest { input, .. } => input.rowtime(),
            Plan::Project { input, exprs } => {
                let r = input.rowtime()?;
                exprs
                    .iter()
                    .position(|(_, e)| matches!(e.scalar, Scalar::Col(c) if c == r))
            }
            // window_time
            Plan::WindowAggregate { .. } => Some(2),
            Plan::GroupAggregate { .. } | Plan::Join { .. } | Plan::Rank { .. } => None,
            Plan::Union { inputs } => {
                let r = inputs[0].rowtime()?;
                inputs.iter().all(|i| i.rowtime() == Some(r)).then_some(r)
            }
        }
    }

    fn explain(&self, depth: usize, out: &mut String) {
        let pad = "  ".repeat(depth);
        let names = |fields: &[Field]| {
            fields
                .iter()
                .map(|f| f.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Plan::Scan { table } => {
                let _ = write!(
                    out,
                    "{pad}Scan: table {} ({}",
                    table.name,
                    names(&table.fields)
                );
                let _ = match &table.connector {
                    Connector::Filesystem { path, format, .. } => {
                        write!(out, "; {format:?} files {path}")
                    }
                    Connector::Datagen(d) => write!(
                        out,
                        "; datagen, {} rows at {} rows/s",
                        d.rows.map_or("unbounded".to_string(), |n| n.to_string()),
                        d.rows_per_second
                            .map_or("full speed".to_string(), |r| r.to_string())
                    ),
                    other => write!(out, "; {other:?}"),
                };
                if let Some((c, delay)) = table.watermark {
                    let _ = write!(
                        out,
                        "; event time {}, watermark {} behind",
                        table.fields[c].name,
                        millis(delay)
                    );
                }
                let _ = writeln!(out, ")");
            }
            Plan::Filter { input, cond } => {
                let _ = writeln!(out, "{pad}Filter: {cond}");
                input.explain(depth + 1, out);
            }
            Plan::Unnest {
                input,
                array,
                columns,
                outer,
                ordinality,
            } => {
                let _ = writeln!(
                    out,
                    "{pad}Unnest: {array}{} AS ({}){}",
                    if *ordinality { " WITH ORDINALITY" } else { "" },
                    names(columns),
                    if *outer {
                        ", rows without elements kept"
                    } else {
                        ""
                    }
                );
                input.explain(depth + 1, out);
            }
            Plan::Project { input, exprs } => {
                let list: Vec<String> = exprs
                    .iter()
                    .map(|(n, e)| {
                        if e.text == *n {
                            n.clone()
                        } else {
                            format!("{e} AS {n}")
                        }
                    })
                    .collect();
                let _ = writeln!(out, "{pad}Project: {}", list.join(", "));
                input.explain(depth + 1, out);
            }
            Plan::WindowAssign {
                input,
                spec,
                partition,
            } => {
                let _ = write!(out, "{pad}WindowAssign: {spec} on event time");
                if !partition.is_empty() {
                    let fields = input.fields();
                    let names: Vec<&str> =
                        partition.iter().map(|c| fields[*c].name.as_str()).collect();
                    let _ = write!(out, ", partition [{}]", names.join(", "));
                }
                let _ = writeln!(out);
                input.explain(depth + 1, out);
            }
            Plan::WindowAggregate {
                input,
                spec,
                keys,
                aggs,
            } => {
                let _ = writeln!(
                    out,
                    "{pad}WindowAggregate: {spec} on event time, {} (DataStream window operator, emits when the watermark passes a window's end)",
                    grouping(keys, aggs)
                );
                input.explain(depth + 1, out);
            }
            Plan::GroupAggregate { input, keys, aggs } => {
                let _ = writeln!(
                    out,
                    "{pad}GroupAggregate: {} (incremental collection: an updating result, a changelog)",
                    grouping(keys, aggs)
                );
                input.explain(depth + 1, out);
            }
            Plan::Join {
                left,
                right,
                kind,
                left_keys,
                right_keys,
                residual,
            } => {
                // Keys taken from an ON or WHERE carry that condition's text, as does the
                // residual: each text once.
                let mut texts: Vec<String> = Vec::new();
                let pairs = left_keys.iter().zip(right_keys).map(|(l, r)| {
                    if l.text == r.text {
                        l.text.clone()
                    } else {
                        format!("{l} = {r}")
                    }
                });
                for t in pairs.chain(residual.iter().map(|r| r.text.clone())) {
                    if !texts.contains(&t) {
                        texts.push(t);
                    }
                }
                let _ = write!(out, "{pad}Join: {kind:?} on {}", texts.join(" AND "));
                let window_join = self.window_join().map(|w| {
                    w.keys
                        .iter()
                        .map(|&(a, b)| {
                            format!("{} = {}", w.left.keys[a].1.text, w.right.keys[b].1.text)
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                });
                match self.interval_join_bounds() {
                    _ if let Some(keys) = &window_join => {
                        let _ = writeln!(
                            out,
                            " (window join: both window aggregations below run as one DataStream window operator keyed by {keys}, each window's groups of the two sides paired as it fires)"
                        );
                    }
                    Some((i64::MIN, i64::MAX)) if self.interval().is_none() => {
                        let _ = writeln!(
                            out,
                            " (inputs append-only: both sides kept, as a regular join, on the DataStream interval join with open ends; append-only)"
                        );
                    }
                    Some((lower, upper)) if lower == i64::MIN || upper == i64::MAX => {
                        let _ = writeln!(
                            out,
                            " (a bound on one side only: both sides kept, as a regular join, on the DataStream interval join with open ends; append-only)"
                        );
                    }
                    Some((lower, upper)) => {
                        let bound = |b: i64| match b {
                            i64::MIN => "-inf".to_string(),
                            i64::MAX => "+inf".to_string(),
                            b => b.to_string(),
                        };
                        let extreme = match crate::extreme::extreme_filter(self, lower, upper) {
                            Some(f) => format!(
                                "; the {} side's rows below the running {} of every window they can meet dropped first{}",
                                if f.left { "left" } else { "right" },
                                if f.max { "MAX" } else { "MIN" },
                                if f.feeds().is_some() {
                                    ", and the window aggregate reads only the rows kept"
                                } else {
                                    ""
                                }
                            ),
                            None => String::new(),
                        };
                        let _ = writeln!(
                            out,
                            " (interval join: right time - left time in [{}, {}] ms; each row kept until the watermark passes its interval{extreme})",
                            bound(lower),
                            bound(upper)
                        );
                    }
                    None => {
                        let _ = writeln!(
                            out,
                            " (incremental collections: both sides kept, arranged by key)"
                        );
                    }
                }
                left.explain(depth + 1, out);
                right.explain(depth + 1, out);
            }
            Plan::Rank {
                input,
                partition,
                order,
                limit,
                ..
            } => {
                let part: Vec<String> = partition.iter().map(|p| p.text.clone()).collect();
                let ord: Vec<String> = order
                    .iter()
                    .map(|(e, desc)| format!("{e}{}", if *desc { " DESC" } else { "" }))
                    .collect();
                let _ = writeln!(
                    out,
                    "{pad}Rank: top {} per [{}] by {} (incremental collection: an updating result)",
                    limit.map_or("?".to_string(), |n| n.to_string()),
                    part.join(", "),
                    ord.join(", ")
                );
                input.explain(depth + 1, out);
            }
            Plan::Over {
                input,
                partition,
                frame,
                aggs,
            } => {
                let part: Vec<String> = partition.iter().map(|p| p.text.clone()).collect();
                let texts: Vec<&str> = aggs.iter().map(|a| a.text.as_str()).collect();
                let _ = writeln!(
                    out,
                    "{pad}Over: {} per [{}] by event time, {frame} (DataStream keyed process operator, emits each row when the watermark passes it)",
                    texts.join(", "),
                    part.join(", ")
                );
                input.explain(depth + 1, out);
            }
            Plan::Union { inputs } => {
                let _ = writeln!(out, "{pad}Union all");
                for i in inputs {
                    i.explain(depth + 1, out);
                }
            }
        }
    }
}

/// `key [k1, k2], AGG1, AGG2`: an aggregation's grouping for plans.
fn grouping(keys: &[(String, Typed)], aggs: &[Agg]) -> String {
    let keys: Vec<&str> = keys.iter().map(|(n, _)| n.as_str()).collect();
    let aggs: Vec<&str> = aggs.iter().map(|a| a.text.as_str()).collect();
    format!("key [{}], {}", keys.join(", "), aggs.join(", "))
}

fn window_fields(qualifier: Option<&str>) -> Vec<Field> {
    ["window_start", "window_end", "window_time"]
        .iter()
        .map(|n| Field {
            qualifier: qualifier.map(str::to_string),
            name: n.to_string(),
            ty: DataType::Timestamp,
        })
        .collect()
}

/// Where an `INSERT INTO` (or a query on its own) writes.
#[derive(Debug, Clone)]
pub struct Sink {
    /// The table written (`None`: a query on its own, printed).
    pub table: Option<Arc<Table>>,
    /// The rows (already cast to the table's column types).
    pub plan: Plan,
}

impl Sink {
    /// Where the rows go, for plans.
    fn describe(&self) -> String {
        match &self.table {
            None => "Print: rows on stdout of process 0".to_string(),
            Some(t) => match &t.connector {
                Connector::Print { .. } => format!("Sink: table {} (print)", t.name),
                Connector::Blackhole => format!("Sink: table {} (blackhole)", t.name),
                Connector::Datagen(_) | Connector::Nexmark(_) => {
                    format!("Sink: table {} (generated)", t.name)
                }
                Connector::Filesystem { path, format, .. } => {
                    format!("Sink: table {} ({format:?} part files in {path})", t.name)
                }
                Connector::Kafka(k) => format!(
                    "Sink: table {} ({:?} messages to Kafka topic '{}' on {}, at least once)",
                    t.name, k.format, k.topic, k.brokers
                ),
            },
        }
    }
}

/// A planned script: its options and its sinks, run together as one job.
#[derive(Debug, Clone, Default)]
pub struct Program {
    /// `SET` options, in order.
    pub options: BTreeMap<String, String>,
    /// Every `INSERT INTO` and query on its own.
    pub sinks: Vec<Sink>,
    /// The plans `EXPLAIN` asked for, as text.
    pub explained: Vec<String>,
}

/// Renders a sink's plan as text.
pub fn explain(sink: &Sink) -> String {
    let mut out = format!("{}\n", sink.describe());
    sink.plan.explain(1, &mut out);
    out
}

/// Tables and views by name (names compared without regard to case when no exact match).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tables: BTreeMap<String, Arc<Table>>,
    views: BTreeMap<String, (Box<Query>, Pos)>,
}

enum Named<'a> {
    Table(&'a Arc<Table>),
    View(&'a Query),
}

impl Catalog {
    fn find(&self, name: &str) -> Option<Named<'_>> {
        let exact = self
            .tables
            .get(name)
            .map(Named::Table)
            .or_else(|| self.views.get(name).map(|(q, _)| Named::View(q)));
        exact.or_else(|| {
            self.tables
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, t)| Named::Table(t))
                .or_else(|| {
                    self.views
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, (q, _))| Named::View(q))
                })
        })
    }

    fn known(&self) -> String {
        let names: Vec<&str> = self
            .tables
            .keys()
            .chain(self.views.keys())
            .map(String::as_str)
            .collect();
        if names.is_empty() {
            "none declared".to_string()
        } else {
            names.join(", ")
        }
    }

    fn add_table(&mut self, def: &TableDef) -> Result<(), SqlError> {
        if self.find(&def.name).is_some() {
            return Err(SqlError::at(
                def.pos,
                format!("table '{}' is declared twice", def.name),
            ));
        }
        let table = table(def)?;
        self.tables.insert(def.name.clone(), Arc::new(table));
        Ok(())
    }
}

fn option<'a>(def: &'a TableDef, key: &str) -> Option<&'a str> {
    def.options.get(key).map(String::as_str)
}

fn table(def: &TableDef) -> Result<Table, SqlError> {
    let mut fields = Vec::new();
    let mut physical = Vec::new();
    let mut metadata = Vec::new();
    for c in &def.columns {
        if fields.iter().any(|f: &Field| f.name == c.name()) {
            return Err(SqlError::at(
                c.pos(),
                format!("column '{}' is declared twice", c.name()),
            ));
        }
        if let ColumnDef::Physical { name, ty, .. } = c {
            physical.push(fields.len());
            fields.push(Field {
                qualifier: Some(def.name.clone()),
                name: name.clone(),
                ty: *ty,
            });
        } else if let ColumnDef::Metadata {
            name,
            ty,
            key,
            is_virtual,
            pos,
        } = c
        {
            let kafka = matches!(option(def, "connector"), Some("kafka"))
                && matches!(option(def, "format"), Some("csv" | "json"));
            if !kafka {
                return Err(SqlError::at(
                    *pos,
                    format!(
                        "column '{name}': metadata columns are read from 'kafka' tables in 'csv' or 'json'"
                    ),
                ));
            }
            let Some(meta) = KafkaMeta::of(key) else {
                return Err(SqlError::at(
                    *pos,
                    format!(
                        "column '{name}': no Kafka metadata '{key}': give 'topic', 'partition', 'offset' or 'timestamp'"
                    ),
                ));
            };
            if !crate::expr::castable(meta.ty(), *ty)
                || *ty == DataType::String && meta.ty() != DataType::String
            {
                return Err(SqlError::at(
                    *pos,
                    format!(
                        "column '{name}': metadata '{key}' is {}, not {ty}",
                        meta.ty()
                    ),
                ));
            }
            metadata.push((fields.len(), meta, *is_virtual));
            fields.push(Field {
                qualifier: Some(def.name.clone()),
                name: name.clone(),
                ty: *ty,
            });
        } else {
            fields.push(Field {
                qualifier: Some(def.name.clone()),
                name: c.name().to_string(),
                ty: DataType::Null,
            });
        }
    }
    // Computed columns see the physical ones and the computed ones before them.
    let mut computed = Vec::new();
    for (i, c) in def.columns.iter().enumerate() {
        if let ColumnDef::Computed { expr, .. } = c {
            let scope = Scope {
                fields: fields[..i].to_vec(),
                ..Scope::default()
            };
            let typed = compile(expr, &scope)?;
            fields[i].ty = typed.ty;
            computed.push((i, typed));
        }
    }
    let watermark = match &def.watermark {
        None => None,
        Some((column, expr, pos)) => {
            let Some(c) = fields
                .iter()
                .position(|f| f.name.eq_ignore_ascii_case(column))
            else {
                return Err(SqlError::at(
                    *pos,
                    format!("WATERMARK FOR {column}: no such column in '{}'", def.name),
                ));
            };
            if !fields[c].ty.is_time() {
                return Err(SqlError::at(
                    *pos,
                    format!(
                        "WATERMARK FOR {column}: the event-time column is a TIMESTAMP(3) or TIMESTAMP_LTZ(3), not {}",
                        fields[c].ty
                    ),
                ));
            }
            Some((c, watermark_delay(expr, column)?))
        }
    };
    let connector = match option(def, "connector") {
        Some("filesystem") => {
            let path = option(def, "path").ok_or_else(|| {
                SqlError::at(
                    def.pos,
                    format!(
                        "table '{}': 'connector' = 'filesystem' needs a 'path'",
                        def.name
                    ),
                )
            })?;
            let format = match option(def, "format") {
                Some("csv") => FileFormat::Csv,
                Some("json") => FileFormat::Json,
                Some("debezium-json") => FileFormat::DebeziumJson,
                other => {
                    return Err(SqlError::at(
                        def.pos,
                        format!(
                            "table '{}': 'format' = {}: the filesystem connector reads and writes 'csv', 'json' and 'debezium-json'",
                            def.name,
                            other.map_or("(none)".to_string(), |f| format!("'{f}'"))
                        ),
                    ));
                }
            };
            let header = match option(def, "csv.header") {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(SqlError::at(
                        def.pos,
                        format!(
                            "table '{}': 'csv.header' = '{other}': give 'true' or 'false'",
                            def.name
                        ),
                    ));
                }
            };
            Connector::Filesystem {
                path: path.to_string(),
                format,
                header,
                null_literal: option(def, "csv.null-literal").map(str::to_string),
                dead_letter: option(def, "dead-letter.path").map(str::to_string),
            }
        }
        Some("print") => Connector::Print {
            identifier: option(def, "print-identifier").map(str::to_string),
        },
        Some("blackhole") => Connector::Blackhole,
        Some("kafka") => Connector::Kafka(kafka(def, &fields, false)?),
        Some("upsert-kafka") => Connector::Kafka(kafka(def, &fields, true)?),
        Some("datagen") => Connector::Datagen(datagen(def, &fields, &physical)?),
        Some("nexmark") => Connector::Nexmark(nexmark(def, &fields, &physical, watermark)?),
        other => {
            return Err(SqlError::at(
                def.pos,
                format!(
                    "table '{}': 'connector' = {}: Tidal SQL has 'filesystem', 'datagen', 'nexmark', 'print' and 'blackhole' tables",
                    def.name,
                    other.map_or("(none)".to_string(), |c| format!("'{c}'"))
                ),
            ));
        }
    };
    Ok(Table {
        name: def.name.clone(),
        fields,
        physical,
        computed,
        metadata,
        watermark,
        connector,
        pos: def.pos,
    })
}

/// A nexmark table's options, and its columns checked against the table it names.
fn nexmark(
    def: &TableDef,
    fields: &[Field],
    physical: &[usize],
    watermark: Option<(usize, i64)>,
) -> Result<NexmarkTable, SqlError> {
    let bad = |m: String| SqlError::at(def.pos, format!("table '{}': {m}", def.name));
    let kind = match option(def, "table") {
        Some("bid") => NexmarkKind::Bid,
        Some("auction") => NexmarkKind::Auction,
        Some("person") => NexmarkKind::Person,
        other => {
            return Err(bad(format!(
                "'table' = {}: a nexmark table is 'bid', 'auction' or 'person'",
                other.map_or("(none)".to_string(), |t| format!("'{t}'"))
            )));
        }
    };
    let types: Vec<DataType> = physical.iter().map(|&c| fields[c].ty).collect();
    if types != kind.types() {
        return Err(bad(format!(
            "a nexmark {kind:?} table has the columns ({}), not ({})",
            kind.types()
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            types
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if let Some((c, _)) = watermark
        && physical.get(kind.date_time()) != Some(&c)
    {
        return Err(bad(
            "a nexmark table's event time is its dateTime column".to_string()
        ));
    }
    for key in def.options.keys() {
        if !["connector", "table", "events", "events-per-second", "rate"].contains(&key.as_str()) {
            return Err(bad(format!(
                "option '{key}' is not a nexmark option ('table', 'events', 'events-per-second', 'rate')"
            )));
        }
    }
    let number = |key: &str| -> Result<Option<f64>, SqlError> {
        option(def, key)
            .map(|v| {
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| bad(format!("'{key}' = '{v}' is not a number")))
            })
            .transpose()
    };
    Ok(NexmarkTable {
        kind,
        events: number("events")?.map(|n| n as u64),
        events_per_second: number("events-per-second")?.map_or(10_000, |n| n.max(1.0) as u64),
        rate: number("rate")?.filter(|r| *r > 0.0),
    })
}

/// A datagen table's options, checked against its columns.
fn datagen(def: &TableDef, fields: &[Field], physical: &[usize]) -> Result<Datagen, SqlError> {
    let bad = |m: String| SqlError::at(def.pos, format!("table '{}': {m}", def.name));
    let number = |key: &str| -> Result<Option<f64>, SqlError> {
        match option(def, key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<f64>()
                .map(Some)
                .map_err(|_| bad(format!("'{key}' = '{v}' is not a number"))),
        }
    };
    for key in def.options.keys() {
        if let Some(rest) = key.strip_prefix("fields.") {
            let column = rest.rsplit_once('.').map_or(rest, |(c, _)| c);
            if !physical.iter().any(|&c| fields[c].name == column) {
                return Err(bad(format!("option '{key}' names no physical column")));
            }
        } else if !["connector", "rows-per-second", "number-of-rows"].contains(&key.as_str()) {
            return Err(bad(format!(
                "option '{key}' is not a datagen option ('rows-per-second', 'number-of-rows', 'fields.NAME.kind' / 'start' / 'end' / 'min' / 'max' / 'length' / 'max-past')"
            )));
        }
    }
    let mut rows = number("number-of-rows")?.map(|n| n as u64);
    let rows_per_second = match number("rows-per-second")? {
        Some(r) if r <= 0.0 => return Err(bad("'rows-per-second' is positive".to_string())),
        Some(r) => Some(r),
        None => Some(10_000.0),
    };
    let mut gen_fields = Vec::new();
    for &c in physical {
        let f = &fields[c];
        let key = |k: &str| format!("fields.{}.{k}", f.name);
        let field = match option(def, &key("kind")) {
            Some("sequence") => {
                if !matches!(f.ty, DataType::Int | DataType::BigInt) {
                    return Err(bad(format!(
                        "column '{}': a sequence is of INT or BIGINT, not {}",
                        f.name, f.ty
                    )));
                }
                let (Some(start), Some(end)) = (number(&key("start"))?, number(&key("end"))?)
                else {
                    return Err(bad(format!(
                        "column '{}': a sequence needs '{}' and '{}'",
                        f.name,
                        key("start"),
                        key("end")
                    )));
                };
                if end < start {
                    return Err(bad(format!(
                        "column '{}': the sequence ends before it starts",
                        f.name
                    )));
                }
                let len = (end - start) as u64 + 1;
                rows = Some(rows.map_or(len, |r| r.min(len)));
                GenField::Sequence {
                    start: start as i64,
                }
            }
            None | Some("random") if f.ty.is_nested() => {
                return Err(bad(format!(
                    "column '{}': datagen makes no {} values; generate its parts and build it in a view (ARRAY[...], ROW(...))",
                    f.name, f.ty
                )));
            }
            None | Some("random") => {
                let (lo, hi) = match f.ty {
                    DataType::Int => (i32::MIN as f64, i32::MAX as f64),
                    DataType::BigInt => (i64::MIN as f64, i64::MAX as f64),
                    DataType::Decimal(p, s) => {
                        let m = 10f64.powi(i32::from(p) - i32::from(s));
                        (-m + 1.0, m - 1.0)
                    }
                    _ => (f64::MIN, f64::MAX),
                };
                let min = number(&key("min"))?.unwrap_or(lo);
                let max = number(&key("max"))?.unwrap_or(hi);
                if max < min {
                    return Err(bad(format!("column '{}': max is below min", f.name)));
                }
                GenField::Random {
                    min,
                    max,
                    length: number(&key("length"))?.map_or(100, |l| l as usize),
                    max_past: number(&key("max-past"))?.map_or(0, |m| m as i64),
                }
            }
            Some(other) => {
                return Err(bad(format!(
                    "column '{}': 'kind' = '{other}': give 'random' or 'sequence'",
                    f.name
                )));
            }
        };
        gen_fields.push(field);
    }
    Ok(Datagen {
        rows_per_second,
        rows,
        fields: gen_fields,
    })
}

/// The delay of `WATERMARK FOR ts AS ts` (0) or `ts - INTERVAL '...' unit`.
fn watermark_delay(expr: &Expr, column: &str) -> Result<i64, SqlError> {
    let names_column =
        |e: &Expr| matches!(e, Expr::Identifier(i) if i.value.eq_ignore_ascii_case(column));
    match expr {
        e if names_column(e) => Ok(0),
        Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::Minus,
            right,
        } if names_column(left) => {
            let scope = Scope::default();
            let delay = compile(right, &scope)?;
            match delay.scalar.eval(&[]) {
                Ok(crate::Value::Interval(ms)) if ms >= 0 => Ok(ms),
                _ => Err(SqlError::at(
                    pos_of(right),
                    "the watermark's delay is an interval: INTERVAL '5' SECOND",
                )),
            }
        }
        _ => Err(SqlError::at(
            pos_of(expr),
            format!(
                "WATERMARK FOR {column} AS ...: give '{column}' or '{column} - INTERVAL ...' (a bounded delay)"
            ),
        )),
    }
}

/// Plans every statement of a script.
pub(crate) fn plan_script(statements: &[Stmt]) -> Result<(Catalog, Program), SqlError> {
    let mut catalog = Catalog::default();
    let mut program = Program::default();
    for s in statements {
        plan_statement(s, &mut catalog, &mut program, false)?;
    }
    Ok((catalog, program))
}

fn plan_statement(
    s: &Stmt,
    catalog: &mut Catalog,
    program: &mut Program,
    explain_only: bool,
) -> Result<(), SqlError> {
    match s {
        Stmt::CreateTable(def) => catalog.add_table(def)?,
        Stmt::CreateView { name, query, pos } => {
            if catalog.find(name).is_some() {
                return Err(SqlError::at(*pos, format!("'{name}' is declared twice")));
            }
            // Plan it now, for its errors.
            plan_query(query, catalog)?;
            catalog.views.insert(name.clone(), (query.clone(), *pos));
        }
        Stmt::Set { key, value, .. } => {
            program.options.insert(key.clone(), value.clone());
        }
        Stmt::Select { query, pos } => {
            let plan = plan_query(query, catalog)?;
            check_ranks(&plan, pos_of_query(query).unwrap_or(*pos))?;
            let sink = Sink { table: None, plan };
            if explain_only {
                program.explained.push(explain(&sink));
            } else {
                program.sinks.push(sink);
            }
        }
        Stmt::Insert { table, query, pos } => {
            let Some(Named::Table(t)) = catalog.find(table) else {
                return Err(SqlError::at(
                    *pos,
                    format!(
                        "INSERT INTO {table}: no such table (tables: {})",
                        catalog.known()
                    ),
                ));
            };
            let t = Arc::clone(t);
            if matches!(t.connector, Connector::Datagen(_) | Connector::Nexmark(_)) {
                return Err(SqlError::at(
                    *pos,
                    format!("INSERT INTO {table}: a datagen table is only read"),
                ));
            }
            if let Some(&(c, meta, _)) = t
                .metadata
                .iter()
                .find(|(_, m, is_virtual)| !is_virtual && *m != KafkaMeta::Timestamp)
            {
                return Err(SqlError::at(
                    *pos,
                    format!(
                        "INSERT INTO {table}: metadata column '{}' ({meta:?}) cannot be written (only 'timestamp' can): declare it VIRTUAL",
                        t.fields[c].name
                    ),
                ));
            }
            if matches!(
                t.connector,
                Connector::Filesystem { .. } | Connector::Kafka(_)
            ) && !t.computed.is_empty()
            {
                return Err(SqlError::at(
                    *pos,
                    format!("INSERT INTO {table}: a table written to has no computed columns"),
                ));
            }
            let plan = plan_query(query, catalog)?;
            check_ranks(&plan, pos_of_query(query).unwrap_or(*pos))?;
            if let Some(format) = &t.format() {
                let changelog = t.is_changelog();
                if plan.updating() && !changelog {
                    return Err(SqlError::at(
                        *pos,
                        format!(
                            "INSERT INTO {table}: the query's result is updating (its rows change after they are written) and '{table}' is append-only ('format' = '{}'); write it to a table with 'format' = 'debezium-json'",
                            if *format == FileFormat::Csv {
                                "csv"
                            } else {
                                "json"
                            }
                        ),
                    ));
                }
            }
            let plan = fit_to(plan, &t, pos_of_query(query).unwrap_or(*pos))?;
            let sink = Sink {
                table: Some(t),
                plan,
            };
            if explain_only {
                program.explained.push(explain(&sink));
            } else if let Some(first) = program.sinks.iter_mut().find(|s| {
                let written = sink.table.as_ref().map(|t| &t.name);
                s.table.as_ref().is_some_and(|w| {
                    Some(&w.name) == written && matches!(w.connector, Connector::Filesystem { .. })
                })
            }) {
                // Several INSERTs into one file table: one sink writes the rows of all (a
                // directory holds the parts of one sink: two would remove each other's).
                let earlier =
                    std::mem::replace(&mut first.plan, Plan::Union { inputs: Vec::new() });
                first.plan = Plan::Union {
                    inputs: vec![earlier, sink.plan],
                };
            } else {
                program.sinks.push(sink);
            }
        }
        Stmt::Explain(inner) => plan_statement(inner, catalog, program, true)?,
    }
    Ok(())
}

fn pos_of_query(q: &Query) -> Option<Pos> {
    match q.body.as_ref() {
        SetExpr::Select(s) => Some(s.select_token.0.span.start.into()),
        _ => None,
    }
}

/// The rows of `plan` in the column types of table `t`: the same number of columns, each cast
/// where its type differs (and can be cast).
fn fit_to(plan: Plan, t: &Table, pos: Pos) -> Result<Plan, SqlError> {
    let fields = plan.fields();
    let written = t.written_fields();
    if fields.len() != written.len() {
        return Err(SqlError::at(
            pos,
            format!(
                "INSERT INTO {}: the query gives {} column(s), the table has {} ({})",
                t.name,
                fields.len(),
                written.len(),
                written
                    .iter()
                    .map(|f| format!("{} {}", f.name, f.ty))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if fields
        .iter()
        .zip(&written)
        .all(|(a, b)| a.ty == b.ty || a.ty == DataType::Null)
    {
        return Ok(plan);
    }
    let mut exprs = Vec::new();
    for (i, (have, want)) in fields.iter().zip(&written).enumerate() {
        if !crate::expr::castable(have.ty, want.ty) {
            return Err(SqlError::at(
                pos,
                format!(
                    "INSERT INTO {}: column {} ('{}') is {}, the table's '{}' is {}",
                    t.name,
                    i + 1,
                    have.name,
                    have.ty,
                    want.name,
                    want.ty
                ),
            ));
        }
        // A DECIMAL written where a wider one of its scale is declared keeps its value as it is.
        let same_values = match (have.ty, want.ty) {
            (DataType::Decimal(p1, s1), DataType::Decimal(p2, s2)) => s1 == s2 && p1 <= p2,
            (a, b) => a == b,
        };
        let scalar = if same_values {
            Scalar::Col(i)
        } else {
            Scalar::Cast(Box::new(Scalar::Col(i)), want.ty, false)
        };
        exprs.push((
            want.name.clone(),
            Typed {
                scalar,
                ty: want.ty,
                text: have.name.clone(),
                pos,
            },
        ));
    }
    Ok(Plan::Project {
        input: Box::new(plan),
        exprs,
    })
}

/// The select with each `OVER name` replaced by the window its `WINDOW name AS (...)` clause
/// defines.
fn with_named_windows(select: &ast::Select, at: Pos) -> Result<ast::Select, SqlError> {
    let mut windows: Vec<(String, ast::WindowSpec)> = Vec::new();
    for ast::NamedWindowDefinition(name, def) in &select.named_window {
        let spec = match def {
            ast::NamedWindowExpr::WindowSpec(spec) => spec.clone(),
            ast::NamedWindowExpr::NamedWindow(other) => windows
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&other.value))
                .map(|(_, s)| s.clone())
                .ok_or_else(|| {
                    SqlError::at(
                        at,
                        format!("WINDOW {name} AS {other}: no window {other} before it"),
                    )
                })?,
        };
        windows.push((name.value.clone(), spec));
    }
    let mut out = select.clone();
    out.named_window.clear();
    let mut missing = None;
    for item in &mut out.projection {
        if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
            let _ = ast::visit_expressions_mut(e, |x| {
                if let Expr::Function(f) = x
                    && let Some(ast::WindowType::NamedWindow(name)) = &f.over
                {
                    match windows
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(&name.value))
                    {
                        Some((_, spec)) => f.over = Some(ast::WindowType::WindowSpec(spec.clone())),
                        None => missing = Some(name.value.clone()),
                    }
                }
                ControlFlow::<()>::Continue(())
            });
        }
    }
    if let Some(name) = missing {
        return Err(SqlError::at(
            at,
            format!("OVER {name}: no WINDOW {name} AS (...) in this query"),
        ));
    }
    Ok(out)
}

/// `SELECT DISTINCT a, b FROM ...` as `SELECT a, b FROM ... GROUP BY a, b` (an updating result,
/// as in Flink: one row per distinct value, kept on the incremental collections).
fn plan_distinct(select: &ast::Select, catalog: &Catalog, at: Pos) -> Result<Plan, SqlError> {
    let has_aggregates = select.projection.iter().any(|item| match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
            let mut found = Vec::new();
            aggregates_in(e, &mut found);
            !found.is_empty()
        }
        _ => false,
    });
    let grouped = !matches!(&select.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty());
    if has_aggregates || grouped || select.having.is_some() {
        return Err(SqlError::at(
            at,
            "SELECT DISTINCT with GROUP BY or aggregates is not supported: select from a subquery that aggregates",
        ));
    }
    let mut keys = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                keys.push(e.clone());
            }
            _ => {
                return Err(SqlError::at(
                    at,
                    "SELECT DISTINCT * is not supported: name the columns",
                ));
            }
        }
    }
    let mut grouped = select.clone();
    grouped.distinct = None;
    grouped.group_by = ast::GroupByExpr::Expressions(keys, Vec::new());
    plan_select(&grouped, catalog)
}

/// A join run as one window operator over both sides (see [`Plan::window_join`]).
pub(crate) struct WindowJoin<'p> {
    /// The windows of both sides.
    pub spec: WindowSpec,
    /// The left side.
    pub left: WindowJoinSide<'p>,
    /// The right side.
    pub right: WindowJoinSide<'p>,
    /// The joined group keys: pairs of a left group key's index and a right one's.
    pub keys: Vec<(usize, usize)>,
}

/// One side of a [`WindowJoin`]: a window aggregation, seen through projections of its columns.
pub(crate) struct WindowJoinSide<'p> {
    /// The window aggregation's input.
    pub input: &'p Plan,
    /// Its windows.
    pub spec: WindowSpec,
    /// Its group keys besides the window.
    pub keys: &'p [(String, Typed)],
    /// Its aggregates.
    pub aggs: &'p [Agg],
    /// For each of the side's columns, the window aggregation's column it is (`window_start,
    /// window_end, window_time, keys..., aggregates...`).
    pub columns: Vec<usize>,
}

impl<'p> WindowJoinSide<'p> {
    /// `plan` as a window aggregation under projections of its columns, if it is one.
    fn of(plan: &'p Plan) -> Option<Self> {
        match plan {
            Plan::WindowAggregate {
                input,
                spec,
                keys,
                aggs,
            } => Some(WindowJoinSide {
                input,
                spec: *spec,
                keys,
                aggs,
                columns: (0..3 + keys.len() + aggs.len()).collect(),
            }),
            Plan::Project { input, exprs } => {
                let below = WindowJoinSide::of(input)?;
                let columns = exprs
                    .iter()
                    .map(|(_, e)| match e.scalar {
                        Scalar::Col(c) => below.columns.get(c).copied(),
                        _ => None,
                    })
                    .collect::<Option<Vec<usize>>>()?;
                Some(WindowJoinSide { columns, ..below })
            }
            _ => None,
        }
    }
}

/// Column `col` of `plan` traced to a window column: which one (0 `window_start`, 1
/// `window_end`, 2 `window_time`) and how far apart in event time the rows of one window can be
/// (ms): a window table function's rows keep their own times (up to the window's length minus
/// one apart; a session's rows leave at its window_time), a window aggregation's rows are at its
/// window_time. Through projections that pass the column on, and filters.
fn window_column(plan: &Plan, col: usize) -> Option<(usize, i64)> {
    match plan {
        Plan::Project { input, exprs } => match exprs.get(col)?.1.scalar {
            Scalar::Col(c) => window_column(input, c),
            _ => None,
        },
        Plan::Filter { input, .. } => window_column(input, col),
        Plan::Unnest { input, .. } if col < input.fields().len() => window_column(input, col),
        Plan::WindowAssign { input, spec, .. } => {
            let which = col.checked_sub(input.fields().len())?;
            let spread = match spec {
                WindowSpec::Tumble { size }
                | WindowSpec::Hop { size, .. }
                | WindowSpec::Cumulate { size, .. } => size - 1,
                WindowSpec::Session { .. } | WindowSpec::Attached { .. } => 0,
            };
            Some((which, spread))
        }
        Plan::WindowAggregate { .. } if col < 3 => Some((col, 0)),
        _ => None,
    }
}

/// The conjuncts of a condition: `a AND (b AND c)` is `[a, b, c]`.
fn conjuncts(e: &Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner)
            if matches!(
                **inner,
                Expr::BinaryOp {
                    op: ast::BinaryOperator::And,
                    ..
                } | Expr::Nested(_)
            ) =>
        {
            conjuncts(inner, out)
        }
        other => out.push(other.clone()),
    }
}

/// Takes the subquery conjuncts out of a WHERE condition — `x IN (SELECT c FROM ...)`,
/// `EXISTS (SELECT ... WHERE inner = outer ...)` and `NOT EXISTS (...)` — each a join of the rows
/// so far with the subquery's distinct keys (see [`semi_join`]). Returns the plan and the rest of
/// the condition.
fn semi_joins(
    mut plan: Plan,
    condition: &Expr,
    scope: &Scope,
    catalog: &Catalog,
) -> Result<(Plan, Option<Expr>), SqlError> {
    let mut parts = Vec::new();
    conjuncts(condition, &mut parts);
    if !parts
        .iter()
        .any(|p| matches!(p, Expr::InSubquery { .. } | Expr::Exists { .. }))
    {
        return Ok((plan, Some(condition.clone())));
    }
    let mut rest = Vec::new();
    for part in parts {
        match &part {
            Expr::InSubquery {
                expr,
                subquery,
                negated,
            } => {
                let key = compile(expr, scope)?;
                let sub = plan_query(subquery, catalog)?;
                let sub_fields = sub.fields();
                let [column] = &sub_fields[..] else {
                    return Err(SqlError::at(
                        pos_of(&part),
                        format!(
                            "IN (SELECT ...) compares with one column; this subquery has {}",
                            sub_fields.len()
                        ),
                    ));
                };
                comparable(&key, column, "IN (SELECT")?;
                plan = if *negated {
                    not_in(plan, key, sub)
                } else {
                    semi_join(plan, vec![key], sub, false)
                };
            }
            Expr::Exists { subquery, negated } => {
                let (keys, sub) = correlated(subquery, scope, catalog, pos_of(&part))?;
                plan = semi_join(plan, keys, sub, *negated);
            }
            _ => rest.push(part),
        }
    }
    let rest = rest.into_iter().reduce(|a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: ast::BinaryOperator::And,
        right: Box::new(b),
    });
    Ok((plan, rest))
}

/// Whether `key` can be compared with the subquery's `column` (`what`: the construct, for the
/// message).
fn comparable(key: &Typed, column: &Field, what: &str) -> Result<(), SqlError> {
    let same_kind = key.ty == column.ty
        || (key.ty.is_numeric() && column.ty.is_numeric())
        || key.ty == DataType::Null
        || column.ty == DataType::Null;
    if same_kind {
        return Ok(());
    }
    Err(SqlError::at(
        key.pos,
        format!(
            "{key} {what} {} ...): a {} is not compared with a {}",
            column.name, key.ty, column.ty
        ),
    ))
}

/// The rows of `plan` whose `keys` are among the rows of `sub` (its columns, in order): an inner
/// join with `sub`'s distinct rows — every row at most once, a NULL key never. `anti`: the rows
/// whose keys are not among them (a row with a NULL key always): a left join, keeping the rows
/// left without a match. Either way projected back to `plan`'s own columns; updating, as a join
/// is (a `NOT EXISTS` row is retracted when a match comes).
fn semi_join(plan: Plan, keys: Vec<Typed>, sub: Plan, anti: bool) -> Plan {
    let pos = keys.first().map(|k| k.pos).unwrap_or_default();
    let column = |i: usize, f: &Field| Typed {
        scalar: Scalar::Col(i),
        ty: f.ty,
        text: f.name.clone(),
        pos,
    };
    let sub_fields = sub.fields();
    let values: Vec<Typed> = sub_fields
        .iter()
        .enumerate()
        .map(|(i, f)| column(i, f))
        .collect();
    let distinct = Plan::GroupAggregate {
        input: Box::new(sub),
        keys: sub_fields
            .iter()
            .zip(&values)
            .map(|(f, v)| (f.name.clone(), v.clone()))
            .collect(),
        aggs: Vec::new(),
    };
    let fields = plan.fields();
    let mut joined = Plan::Join {
        left: Box::new(plan),
        right: Box::new(distinct),
        kind: if anti {
            JoinKind::Left
        } else {
            JoinKind::Inner
        },
        left_keys: keys,
        right_keys: values,
        residual: None,
    };
    if anti {
        // A matched row has the subquery's key (never NULL: NULL keys match nothing).
        joined = Plan::Filter {
            input: Box::new(joined),
            cond: Typed {
                scalar: Scalar::IsNull(Box::new(Scalar::Col(fields.len())), false),
                ty: DataType::Boolean,
                text: "NOT EXISTS".to_string(),
                pos,
            },
        };
    }
    Plan::Project {
        input: Box::new(joined),
        exprs: fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), column(i, f)))
            .collect(),
    }
}

/// The rows of `plan` for which `key NOT IN (sub)` holds, with SQL's NULLs: all of them when
/// `sub` has no row; otherwise none with a NULL key, none whose key is among `sub`'s values, and
/// none at all while `sub` holds a NULL (the answer is then unknown). Two left joins: with `sub`'s
/// counts of rows and of non-NULL values (one row, on a constant key: none while `sub` is
/// empty) and with its distinct values; a filter on those; projected back. Updating: a row is
/// retracted when its value, or a NULL, comes into `sub`, and comes back when they go.
fn not_in(plan: Plan, key: Typed, sub: Plan) -> Plan {
    let pos = key.pos;
    let typed = |scalar: Scalar, ty: DataType, text: &str| Typed {
        scalar,
        ty,
        text: text.to_string(),
        pos,
    };
    let column = sub.fields().remove(0);
    let count = |arg: Option<Scalar>, text: &str| Agg {
        func: AggFunc::Count,
        arg,
        arg_ty: column.ty,
        distinct: false,
        filter: None,
        ty: DataType::BigInt,
        text: text.to_string(),
    };
    let counts = Plan::GroupAggregate {
        input: Box::new(sub.clone()),
        keys: Vec::new(),
        aggs: vec![
            count(None, "COUNT(*)"),
            count(Some(Scalar::Col(0)), &format!("COUNT({})", column.name)),
        ],
    };
    let fields = plan.fields();
    let width = fields.len();
    let one = typed(Scalar::Lit(crate::Value::Int(1)), DataType::Int, "1");
    let with_counts = Plan::Join {
        left: Box::new(plan),
        right: Box::new(counts),
        kind: JoinKind::Left,
        left_keys: vec![one.clone()],
        right_keys: vec![one],
        residual: None,
    };
    let (all, non_null, matched) = (width, width + 1, width + 2);
    let values = typed(Scalar::Col(0), column.ty, &column.name);
    let distinct = Plan::GroupAggregate {
        input: Box::new(sub),
        keys: vec![(column.name.clone(), values.clone())],
        aggs: Vec::new(),
    };
    let joined = Plan::Join {
        left: Box::new(with_counts),
        right: Box::new(distinct),
        kind: JoinKind::Left,
        left_keys: vec![key.clone()],
        right_keys: vec![values],
        residual: None,
    };
    let col = |c: usize| Box::new(Scalar::Col(c));
    let empty = Scalar::IsNull(col(all), false);
    let found_nothing = Scalar::And(
        Box::new(Scalar::And(
            Box::new(Scalar::IsNull(Box::new(key.scalar.clone()), true)),
            Box::new(Scalar::IsNull(col(matched), false)),
        )),
        Box::new(Scalar::Cmp(crate::expr::CmpOp::Eq, col(all), col(non_null))),
    );
    let filtered = Plan::Filter {
        input: Box::new(joined),
        cond: typed(
            Scalar::Or(Box::new(empty), Box::new(found_nothing)),
            DataType::Boolean,
            &format!("{key} NOT IN (SELECT {} ...)", column.name),
        ),
    };
    Plan::Project {
        input: Box::new(filtered),
        exprs: fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), typed(Scalar::Col(i), f.ty, &f.name)))
            .collect(),
    }
}

/// An `EXISTS (SELECT ... FROM ... WHERE ...)` subquery decorrelated: its WHERE's equalities
/// between a column of its own and one of the outer query (`scope`) become join keys — the outer
/// sides (compiled in `scope`) and the subquery's rows of the inner sides under the rest of its
/// WHERE. A name both queries have is the subquery's own, as in SQL.
fn correlated(
    subquery: &Query,
    scope: &Scope,
    catalog: &Catalog,
    at: Pos,
) -> Result<(Vec<Typed>, Plan), SqlError> {
    let SetExpr::Select(select) = &*subquery.body else {
        return Err(SqlError::at(
            at,
            "EXISTS takes one SELECT ... FROM ... WHERE ... (no UNION)",
        ));
    };
    let grouped = !matches!(&select.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty());
    if grouped || select.having.is_some() || select.distinct.is_some() {
        return Err(SqlError::at(
            at,
            "EXISTS over a grouped or DISTINCT subquery is not supported yet",
        ));
    }
    let (from, _) = plan_from(select, catalog)?;
    let inner = scope_of(&from);
    let mut parts = Vec::new();
    if let Some(w) = &select.selection {
        conjuncts(w, &mut parts);
    }
    let (mut keys, mut inner_sides, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    for part in parts {
        if let Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::Eq,
            right,
        } = &part
        {
            let sides = match (
                compile(left, &inner).is_ok(),
                compile(right, &inner).is_ok(),
            ) {
                (true, false) => Some((left, right)),
                (false, true) => Some((right, left)),
                _ => None,
            };
            if let Some((own, outer)) = sides
                && let Ok(key) = compile(outer, scope)
            {
                keys.push(key);
                inner_sides.push((**own).clone());
                continue;
            }
        }
        if let Err(e) = compile(&part, &inner) {
            if compile(&part, scope).is_err() && compile(&part, &Scope::default()).is_err() {
                // Neither query's alone: a condition across both that is not an equality.
                let mut both = inner.clone();
                both.fields.extend(scope.fields.iter().cloned());
                if compile(&part, &both).is_ok() {
                    return Err(SqlError::at(
                        pos_of(&part),
                        format!(
                            "EXISTS: the subquery is tied to the outer query by equalities (its column = an outer column); {part} is not one"
                        ),
                    ));
                }
                return Err(e);
            }
            return Err(SqlError::at(
                pos_of(&part),
                format!(
                    "EXISTS: {part} is about the outer query's row alone; put it in the outer WHERE"
                ),
            ));
        }
        rest.push(part);
    }
    if keys.is_empty() {
        return Err(SqlError::at(
            at,
            "EXISTS without an equality between a column of the subquery and one of the outer query is not supported yet",
        ));
    }
    let mut own = select.clone();
    own.projection = inner_sides
        .iter()
        .enumerate()
        .map(|(i, e)| SelectItem::ExprWithAlias {
            expr: e.clone(),
            alias: ast::Ident::new(format!("EXPR${i}")),
        })
        .collect();
    own.selection = rest.into_iter().reduce(|a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: ast::BinaryOperator::And,
        right: Box::new(b),
    });
    let sub = plan_select(&own, catalog)?;
    for (key, column) in keys.iter().zip(sub.fields()) {
        comparable(key, &column, "= (EXISTS: the subquery's")?;
    }
    Ok((keys, sub))
}

/// Plans a query.
pub(crate) fn plan_query(q: &Query, catalog: &Catalog) -> Result<Plan, SqlError> {
    let at = pos_of_query(q).unwrap_or_default();
    if q.with.is_some() {
        return Err(SqlError::at(
            at,
            "WITH is not supported yet: declare a view instead",
        ));
    }
    if q.order_by.is_some() || q.limit_clause.is_some() || q.fetch.is_some() {
        return Err(SqlError::at(
            at,
            "ORDER BY and LIMIT are not supported on streams (Top-N with ROW_NUMBER is not there yet either)",
        ));
    }
    plan_set_expr(&q.body, catalog, at)
}

fn plan_set_expr(body: &SetExpr, catalog: &Catalog, at: Pos) -> Result<Plan, SqlError> {
    match body {
        SetExpr::Select(s) => plan_select(s, catalog),
        SetExpr::Query(q) => plan_query(q, catalog),
        SetExpr::SetOperation {
            op: ast::SetOperator::Union,
            set_quantifier: ast::SetQuantifier::All,
            left,
            right,
        } => {
            let l = plan_set_expr(left, catalog, at)?;
            let r = plan_set_expr(right, catalog, at)?;
            let (lf, rf) = (l.fields(), r.fields());
            let same = lf.len() == rf.len()
                && lf
                    .iter()
                    .zip(&rf)
                    .all(|(a, b)| a.ty == b.ty || a.ty == DataType::Null || b.ty == DataType::Null);
            if !same {
                let types = |f: &[Field]| {
                    f.iter()
                        .map(|f| f.ty.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(SqlError::at(
                    at,
                    format!(
                        "UNION ALL of rows of different types: ({}) and ({})",
                        types(&lf),
                        types(&rf)
                    ),
                ));
            }
            let mut inputs = Vec::new();
            for p in [l, r] {
                match p {
                    Plan::Union { inputs: more } => inputs.extend(more),
                    other => inputs.push(other),
                }
            }
            Ok(Plan::Union { inputs })
        }
        SetExpr::SetOperation {
            op, set_quantifier, ..
        } => Err(SqlError::at(
            at,
            format!("{op} {set_quantifier} is not supported yet: UNION ALL is"),
        )),
        other => Err(SqlError::at(
            at,
            format!("'{other}' is not supported as a query yet"),
        )),
    }
}

/// A FROM clause planned: its rows, their columns (qualified by table or alias), and the window a
/// window table function assigns to them.
struct From {
    plan: Plan,
    fields: Vec<Field>,
    window: Option<WindowSpec>,
    /// A `SESSION` window table function's `PARTITION BY` columns (indexes in `fields`).
    partition: Vec<usize>,
}

impl From {
    fn of(plan: Plan, qualifier: Option<String>, window: Option<WindowSpec>) -> From {
        let fields = plan
            .fields()
            .into_iter()
            .map(|f| Field {
                qualifier: qualifier.clone().or(f.qualifier),
                ..f
            })
            .collect();
        From {
            plan,
            fields,
            window,
            partition: Vec::new(),
        }
    }
}

/// The FROM clause: its rows, and whether its join took the WHERE condition as its own (`FROM
/// a, b WHERE ...`, an inner join on the condition).
fn plan_from(select: &ast::Select, catalog: &Catalog) -> Result<(From, bool), SqlError> {
    let at: Pos = select.select_token.0.span.start.into();
    match &select.from[..] {
        [] => Err(SqlError::at(at, "a query reads a table: FROM is missing")),
        [from] => {
            let mut left = plan_factor(&from.relation, catalog, at)?;
            for join in &from.joins {
                if let Some((array, alias, ordinality)) = unnest_of(&join.relation) {
                    let outer = unnest_join(&join.join_operator, at)?;
                    left = plan_unnest(left, array, alias, outer, ordinality)?;
                    continue;
                }
                let right = plan_factor(&join.relation, catalog, at)?;
                left = plan_join(left, right, &join.join_operator, at)?;
            }
            Ok((left, false))
        }
        [a, b] if b.joins.is_empty() && unnest_of(&b.relation).is_some() => {
            // `FROM t, UNNEST(t.array) AS x(...)`: a cross join with the array's elements.
            let (array, alias, ordinality) = unnest_of(&b.relation).expect("matched");
            let mut left = plan_factor(&a.relation, catalog, at)?;
            for join in &a.joins {
                let right = plan_factor(&join.relation, catalog, at)?;
                left = plan_join(left, right, &join.join_operator, at)?;
            }
            Ok((plan_unnest(left, array, alias, false, ordinality)?, false))
        }
        [a, b] if a.joins.is_empty() && b.joins.is_empty() => {
            let Some(cond) = &select.selection else {
                return Err(SqlError::at(
                    at,
                    "FROM a, b needs a WHERE with an equality between the two (a cross join is not supported)",
                ));
            };
            let left = plan_factor(&a.relation, catalog, at)?;
            let right = plan_factor(&b.relation, catalog, at)?;
            Ok((join_on(left, right, JoinKind::Inner, cond)?, true))
        }
        _ => Err(SqlError::at(
            at,
            "more than two tables in FROM: join them with JOIN ... ON",
        )),
    }
}

/// Why a plan's rows have no event time, and what to do, for an error about a window over it.
fn no_event_time(plan: &Plan, column: &str) -> String {
    match plan {
        Plan::Join { .. } => "the rows of a join have none in Tidal (Flink keeps an interval join's time columns; Tidal does not yet); window the inputs before joining them".to_string(),
        Plan::GroupAggregate { .. } | Plan::Rank { .. } => {
            "an aggregation or ranking without windows gives updating rows, which have none".to_string()
        }
        Plan::Project { input, .. } | Plan::Filter { input, .. } | Plan::Unnest { input, .. } if input.rowtime().is_some() => {
            "the query drops its time column; keep it and name it in DESCRIPTOR(...)".to_string()
        }
        Plan::Project { input, .. } | Plan::Filter { input, .. } | Plan::Unnest { input, .. } | Plan::Over { input, .. } => {
            no_event_time(input, column)
        }
        Plan::Union { .. } => "the inputs of a UNION ALL must have their event time in the same column".to_string(),
        _ => format!("declare WATERMARK FOR {column} AS ... in its CREATE TABLE"),
    }
}

/// `UNNEST(array) [WITH ORDINALITY] [AS alias(columns)]` in FROM: the array, the alias and
/// whether each element's position is asked for.
fn unnest_of(factor: &TableFactor) -> Option<(&Expr, Option<&ast::TableAlias>, bool)> {
    match factor {
        TableFactor::Table {
            name,
            args: Some(args),
            alias,
            with_ordinality,
            ..
        } if object_name(name).eq_ignore_ascii_case("UNNEST") => match &args.args[..] {
            [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e))] => {
                Some((e, alias.as_ref(), *with_ordinality))
            }
            _ => None,
        },
        TableFactor::UNNEST {
            alias,
            array_exprs,
            with_ordinality,
            with_offset: false,
            ..
        } if array_exprs.len() == 1 => Some((&array_exprs[0], alias.as_ref(), *with_ordinality)),
        _ => None,
    }
}

/// How UNNEST is joined: `CROSS JOIN` or `[INNER] JOIN ... ON TRUE` (false), `LEFT JOIN ... ON
/// TRUE` (true: rows without elements kept).
fn unnest_join(op: &ast::JoinOperator, at: Pos) -> Result<bool, SqlError> {
    use ast::JoinOperator as J;
    let on_true = |c: &ast::JoinConstraint| matches!(c, ast::JoinConstraint::On(Expr::Value(v)) if v.value == ast::Value::Boolean(true));
    match op {
        J::CrossJoin(ast::JoinConstraint::None) => Ok(false),
        J::Join(c) | J::Inner(c) if on_true(c) => Ok(false),
        J::Left(c) | J::LeftOuter(c) if on_true(c) => Ok(true),
        _ => Err(SqlError::at(
            at,
            "UNNEST is joined with CROSS JOIN UNNEST(...), JOIN UNNEST(...) ON TRUE or LEFT JOIN UNNEST(...) ON TRUE",
        )),
    }
}

/// `left` with each row once per element of `array` (an expression on `left`'s columns), and
/// with `ordinality` the element's position after its columns (an `INT` from 1; NULL on the
/// row a LEFT JOIN keeps for an empty array), named `ORDINALITY` unless the alias names it.
fn plan_unnest(
    left: From,
    array: &Expr,
    alias: Option<&ast::TableAlias>,
    outer: bool,
    ordinality: bool,
) -> Result<From, SqlError> {
    let scope = Scope {
        fields: left.fields.clone(),
        ..Scope::default()
    };
    let array = compile(array, &scope)?;
    let Some(element) = array.ty.element() else {
        return Err(SqlError::at(
            array.pos,
            format!("UNNEST takes an ARRAY: '{array}' is {}", array.ty),
        ));
    };
    let mut columns: Vec<(String, DataType)> = match element.fields() {
        Some(fields) => fields,
        None => vec![("EXPR$0".to_string(), element)],
    };
    if ordinality {
        columns.push(("ORDINALITY".to_string(), DataType::Int));
    }
    let qualifier = alias.map(|a| a.name.value.clone());
    if let Some(a) = alias
        && !a.columns.is_empty()
    {
        if a.columns.len() != columns.len() {
            return Err(SqlError::at(
                array.pos,
                format!(
                    "UNNEST of {} gives {} column(s); the alias names {}",
                    array.ty,
                    columns.len(),
                    a.columns.len()
                ),
            ));
        }
        for (c, named) in columns.iter_mut().zip(&a.columns) {
            c.0 = named.name.value.clone();
        }
    }
    let columns: Vec<Field> = columns
        .into_iter()
        .map(|(name, ty)| Field {
            qualifier: qualifier.clone(),
            name,
            ty,
        })
        .collect();
    let mut fields = left.fields;
    fields.extend(columns.iter().cloned());
    Ok(From {
        plan: Plan::Unnest {
            input: Box::new(left.plan),
            array,
            columns,
            outer,
            ordinality,
        },
        fields,
        window: left.window,
        partition: left.partition,
    })
}

/// `left JOIN right ON ...`: an equi-join on the ON condition's equalities between the sides.
fn plan_join(left: From, right: From, op: &ast::JoinOperator, at: Pos) -> Result<From, SqlError> {
    use ast::JoinOperator as J;
    let (kind, constraint) = match op {
        J::Join(c) | J::Inner(c) => (JoinKind::Inner, c),
        J::Left(c) | J::LeftOuter(c) => (JoinKind::Left, c),
        J::Right(c) | J::RightOuter(c) => (JoinKind::Right, c),
        J::FullOuter(c) => (JoinKind::Full, c),
        other => {
            return Err(SqlError::at(
                at,
                format!("{other:?} joins are not supported: INNER, LEFT, RIGHT and FULL joins are"),
            ));
        }
    };
    let ast::JoinConstraint::On(on) = constraint else {
        return Err(SqlError::at(
            at,
            "a join needs ON with an equality between its two sides",
        ));
    };
    join_on(left, right, kind, on)
}

/// `left` joined with `right` (`kind`) on condition `on`.
fn join_on(left: From, right: From, kind: JoinKind, on: &Expr) -> Result<From, SqlError> {
    let at = pos_of(on);
    if left.window.is_some() || right.window.is_some() {
        return Err(SqlError::at(at, "window joins are not supported yet"));
    }
    let width = left.fields.len();
    let mut fields = left.fields.clone();
    fields.extend(right.fields.iter().cloned());
    let scope = Scope {
        fields: fields.clone(),
        ..Scope::default()
    };
    let cond = compile(on, &scope)?;
    if cond.ty != DataType::Boolean {
        return Err(SqlError::at(cond.pos, "ON takes a condition"));
    }
    // The condition's conjuncts, each with its own text: equalities across the sides are the
    // keys, the rest conditions on the joined rows (or, in an inner join, on one side).
    let mut written = Vec::new();
    conjuncts(on, &mut written);
    let side = |s: &Scalar| -> Option<bool> {
        // Some(true): only left columns; Some(false): only right; None: both or none.
        let left_only = !uses_columns_from(s, width);
        let right_only = !uses_columns_below(s, width);
        match (left_only, right_only) {
            (true, false) => Some(true),
            (false, true) => Some(false),
            _ => None,
        }
    };
    let (mut left_keys, mut right_keys, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    for e in &written {
        let c = compile(e, &scope)?;
        if let Scalar::Cmp(expr::CmpOp::Eq, a, b) = &c.scalar {
            match (side(a), side(b)) {
                (Some(true), Some(false)) => {
                    left_keys.push(keyed(a, 0, &fields, &c));
                    right_keys.push(keyed(b, width, &fields, &c));
                    continue;
                }
                (Some(false), Some(true)) => {
                    left_keys.push(keyed(b, 0, &fields, &c));
                    right_keys.push(keyed(a, width, &fields, &c));
                    continue;
                }
                _ => {}
            }
        }
        rest.push(c);
    }
    if left_keys.is_empty() {
        return Err(SqlError::at(
            cond.pos,
            "a join needs an equality between a column of each side in ON (a cross join or a join on a range is not supported yet)",
        ));
    }
    if !rest.is_empty() && kind != JoinKind::Inner {
        return Err(SqlError::at(
            cond.pos,
            "an outer join's ON holds only equalities between the sides here; put the other conditions in WHERE or a subquery",
        ));
    }
    let plan = with_conditions(
        Plan::Join {
            left: Box::new(left.plan),
            right: Box::new(right.plan),
            kind,
            left_keys,
            right_keys,
            residual: None,
        },
        rest,
    );
    Ok(From {
        plan,
        fields,
        window: None,
        partition: Vec::new(),
    })
}

/// An inner join with more conditions: each condition on one side's columns only filters that
/// side before the join (so its state holds only rows that can match; a filter right above a
/// Nexmark scan is tested in the scan), the others join its residual condition. Another plan
/// gets them as a filter.
fn with_conditions(join: Plan, conds: Vec<Typed>) -> Plan {
    if conds.is_empty() {
        return join;
    }
    let Plan::Join {
        left,
        right,
        kind: JoinKind::Inner,
        left_keys,
        right_keys,
        residual,
    } = join
    else {
        return Plan::Filter {
            input: Box::new(join),
            cond: and_all(conds).expect("conditions"),
        };
    };
    let lw = left.fields().len();
    let (mut l, mut r, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    rest.extend(residual);
    for c in conds {
        match (
            uses_columns_below(&c.scalar, lw),
            uses_columns_from(&c.scalar, lw),
        ) {
            (true, false) => l.push(c),
            (false, true) => r.push(Typed {
                scalar: shift(&c.scalar, lw),
                ..c
            }),
            _ => rest.push(c),
        }
    }
    let filtered = |input: Box<Plan>, conds: Vec<Typed>| match and_all(conds) {
        None => input,
        Some(cond) => Box::new(Plan::Filter { input, cond }),
    };
    Plan::Join {
        left: filtered(left, l),
        right: filtered(right, r),
        kind: JoinKind::Inner,
        left_keys,
        right_keys,
        residual: and_all(rest),
    }
}

/// The conjunction of `conds` (`None` for none), its text theirs joined by AND.
fn and_all(conds: Vec<Typed>) -> Option<Typed> {
    conds.into_iter().reduce(|a, b| Typed {
        scalar: Scalar::And(Box::new(a.scalar), Box::new(b.scalar)),
        ty: DataType::Boolean,
        text: format!("{} AND {}", a.text, b.text),
        pos: a.pos,
    })
}

/// A join key taken from one side's rows: its columns renumbered from `offset`.
fn keyed(s: &Scalar, offset: usize, fields: &[Field], cond: &Typed) -> Typed {
    Typed {
        scalar: shift(s, offset),
        ty: type_of_key(s, fields),
        text: cond.text.clone(),
        pos: cond.pos,
    }
}

fn type_of_key(s: &Scalar, fields: &[Field]) -> DataType {
    match s {
        Scalar::Col(c) => fields[*c].ty,
        _ => DataType::Null,
    }
}

/// `s` with every column index lowered by `offset`.
fn shift(s: &Scalar, offset: usize) -> Scalar {
    replace_columns(s, &|c| Scalar::Col(c - offset))
}

/// The conjuncts of a condition (`a AND b AND c`: `a`, `b`, `c`).
pub(crate) fn conjuncts_of<'a>(s: &'a Scalar, out: &mut Vec<&'a Scalar>) {
    match s {
        Scalar::And(a, b) => {
            conjuncts_of(a, out);
            conjuncts_of(b, out);
        }
        other => out.push(other),
    }
}

/// `s` with every column `c` it reads replaced by the expression `f(c)`.
pub(crate) fn replace_columns(s: &Scalar, f: &dyn Fn(usize) -> Scalar) -> Scalar {
    let b = |x: &Scalar| Box::new(replace_columns(x, f));
    match s {
        Scalar::Col(c) => f(*c),
        Scalar::Lit(v) => Scalar::Lit(v.clone()),
        Scalar::Arith(op, x, y, t) => Scalar::Arith(*op, b(x), b(y), *t),
        Scalar::Cmp(op, x, y) => Scalar::Cmp(*op, b(x), b(y)),
        Scalar::And(x, y) => Scalar::And(b(x), b(y)),
        Scalar::Or(x, y) => Scalar::Or(b(x), b(y)),
        Scalar::Not(x) => Scalar::Not(b(x)),
        Scalar::Neg(x) => Scalar::Neg(b(x)),
        Scalar::IsNull(x, n) => Scalar::IsNull(b(x), *n),
        Scalar::Case(w, e) => Scalar::Case(
            w.iter()
                .map(|(c, r)| (replace_columns(c, f), replace_columns(r, f)))
                .collect(),
            b(e),
        ),
        Scalar::Cast(x, t, tr) => Scalar::Cast(b(x), *t, *tr),
        Scalar::InList(x, items, n) => Scalar::InList(
            b(x),
            items.iter().map(|i| replace_columns(i, f)).collect(),
            *n,
        ),
        Scalar::Like(x, y, n) => Scalar::Like(b(x), b(y), *n),
        Scalar::Call(func, args) => {
            Scalar::Call(*func, args.iter().map(|a| replace_columns(a, f)).collect())
        }
    }
}

/// Whether `s` reads a column below `below`.
fn uses_columns_below(s: &Scalar, below: usize) -> bool {
    let mut found = false;
    visit_columns(s, &mut |c| found |= c < below);
    found
}

/// Renumbers every column `s` reads with `f`.
pub(crate) fn map_columns(s: &mut Scalar, f: &mut dyn FnMut(usize) -> usize) {
    match s {
        Scalar::Col(c) => *c = f(*c),
        Scalar::Lit(_) => {}
        Scalar::Arith(_, a, b, _)
        | Scalar::Cmp(_, a, b)
        | Scalar::And(a, b)
        | Scalar::Or(a, b)
        | Scalar::Like(a, b, _) => {
            map_columns(a, f);
            map_columns(b, f);
        }
        Scalar::Not(a) | Scalar::Neg(a) | Scalar::IsNull(a, _) | Scalar::Cast(a, _, _) => {
            map_columns(a, f)
        }
        Scalar::Case(w, e) => {
            for (c, r) in w {
                map_columns(c, f);
                map_columns(r, f);
            }
            map_columns(e, f);
        }
        Scalar::InList(a, items, _) => {
            map_columns(a, f);
            for i in items {
                map_columns(i, f);
            }
        }
        Scalar::Call(_, args) => {
            for a in args {
                map_columns(a, f);
            }
        }
    }
}

pub(crate) fn visit_columns(s: &Scalar, f: &mut dyn FnMut(usize)) {
    match s {
        Scalar::Col(c) => f(*c),
        Scalar::Lit(_) => {}
        Scalar::Arith(_, a, b, _)
        | Scalar::Cmp(_, a, b)
        | Scalar::And(a, b)
        | Scalar::Or(a, b)
        | Scalar::Like(a, b, _) => {
            visit_columns(a, f);
            visit_columns(b, f);
        }
        Scalar::Not(a) | Scalar::Neg(a) | Scalar::IsNull(a, _) | Scalar::Cast(a, _, _) => {
            visit_columns(a, f)
        }
        Scalar::Case(w, e) => {
            for (c, r) in w {
                visit_columns(c, f);
                visit_columns(r, f);
            }
            visit_columns(e, f);
        }
        Scalar::InList(a, items, _) => {
            visit_columns(a, f);
            for i in items {
                visit_columns(i, f);
            }
        }
        Scalar::Call(_, args) => {
            for a in args {
                visit_columns(a, f);
            }
        }
    }
}

fn plan_named(name: &str, catalog: &Catalog, at: Pos) -> Result<Plan, SqlError> {
    match catalog.find(name) {
        Some(Named::Table(t)) => {
            if !matches!(
                t.connector,
                Connector::Filesystem { .. }
                    | Connector::Kafka(_)
                    | Connector::Datagen(_)
                    | Connector::Nexmark(_)
            ) {
                return Err(SqlError::at(
                    at,
                    format!(
                        "table '{name}' is a sink ({:?}): it cannot be read",
                        t.connector
                    ),
                ));
            }
            Ok(Plan::Scan {
                table: Arc::clone(t),
            })
        }
        Some(Named::View(q)) => plan_query(q, catalog),
        None => Err(SqlError::at(
            at,
            format!("no table or view '{name}' (declared: {})", catalog.known()),
        )),
    }
}

fn plan_factor(factor: &TableFactor, catalog: &Catalog, at: Pos) -> Result<From, SqlError> {
    let alias_of = |a: &Option<ast::TableAlias>| a.as_ref().map(|a| a.name.value.clone());
    match factor {
        TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } => {
            let n = object_name(name);
            let plan = plan_named(&n, catalog, name.span().start.into())?;
            Ok(From::of(plan, Some(alias_of(alias).unwrap_or(n)), None))
        }
        TableFactor::Derived {
            subquery, alias, ..
        } => {
            let plan = plan_query(subquery, catalog)?;
            Ok(From::of(plan, alias_of(alias), None))
        }
        TableFactor::TableFunction { expr, alias } => {
            let (plan, spec, partition) = window_function(expr, catalog)?;
            let mut from = From::of(plan, alias_of(alias), Some(spec));
            from.partition = partition;
            Ok(from)
        }
        other => Err(SqlError::at(
            at,
            format!("FROM {other} is not supported yet"),
        )),
    }
}

use sqlparser::ast::Spanned as _;

/// `TUMBLE(TABLE t, DESCRIPTOR(ts), size)`, `HOP(TABLE t, DESCRIPTOR(ts), slide, size)`,
/// `CUMULATE(TABLE t, DESCRIPTOR(ts), step, size)` or `SESSION(TABLE t [PARTITION BY cols],
/// DESCRIPTOR(ts), gap)`: the table's plan, the window and the partition columns (`SESSION`'s).
fn window_function(
    e: &Expr,
    catalog: &Catalog,
) -> Result<(Plan, WindowSpec, Vec<usize>), SqlError> {
    let bad = |m: &str| SqlError::at(pos_of(e), m.to_string());
    let Expr::Function(f) = e else {
        return Err(bad(
            "TABLE(...) in FROM takes a window function: TUMBLE or HOP",
        ));
    };
    let name = object_name(&f.name).to_ascii_uppercase();
    let ast::FunctionArguments::List(list) = &f.args else {
        return Err(bad("the window function needs its arguments"));
    };
    let args: Vec<&Expr> = list
        .args
        .iter()
        .filter_map(|a| match a {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) => Some(x),
            _ => None,
        })
        .collect();
    if args.len() != list.args.len() {
        return Err(bad(
            "the window function's arguments are given in order, without names",
        ));
    }
    let wanted = match name.as_str() {
        "TUMBLE" | "SESSION" => 3,
        "HOP" | "CUMULATE" => 4,
        _ => {
            return Err(bad(&format!(
                "{name}: TABLE(...) in FROM takes TUMBLE, HOP, CUMULATE or SESSION"
            )));
        }
    };
    if args.len() != wanted {
        return Err(bad(&format!(
            "{name} takes {wanted} arguments: (TABLE t, DESCRIPTOR(time column){})",
            match name.as_str() {
                "TUMBLE" => ", size",
                "SESSION" => ", gap",
                "HOP" => ", slide, size",
                _ => ", step, size",
            }
        )));
    }
    let (table, partition) = match args[0] {
        Expr::Function(t) if object_name(&t.name) == TABLE_ARG => match &t.args {
            ast::FunctionArguments::List(l) => match &l.args[..] {
                [
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(
                        Expr::CompoundIdentifier(parts),
                    )),
                    columns @ ..,
                ] => (
                    parts
                        .iter()
                        .map(|p| p.value.clone())
                        .collect::<Vec<_>>()
                        .join("."),
                    columns
                        .iter()
                        .filter_map(|c| match c {
                            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(
                                Expr::Identifier(i),
                            )) => Some(i.clone()),
                            _ => None,
                        })
                        .collect::<Vec<_>>(),
                ),
                _ => return Err(bad("the first argument is TABLE name")),
            },
            _ => return Err(bad("the first argument is TABLE name")),
        },
        other => {
            return Err(SqlError::at(
                pos_of(other),
                "the first argument of a window function is TABLE name",
            ));
        }
    };
    if !partition.is_empty() && name != "SESSION" {
        return Err(SqlError::at(
            pos_of(args[0]),
            format!("{name}: PARTITION BY is for SESSION windows; group by the columns instead"),
        ));
    }
    let input = plan_named(&table, catalog, pos_of(args[0]))?;
    let descriptor = match args[1] {
        Expr::Function(d) if object_name(&d.name).eq_ignore_ascii_case("DESCRIPTOR") => {
            match &d.args {
                ast::FunctionArguments::List(l) => match &l.args[..] {
                    [
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(Expr::Identifier(i))),
                    ] => i.value.clone(),
                    _ => return Err(SqlError::at(pos_of(args[1]), "DESCRIPTOR names one column")),
                },
                _ => return Err(SqlError::at(pos_of(args[1]), "DESCRIPTOR names one column")),
            }
        }
        other => {
            return Err(SqlError::at(
                pos_of(other),
                "the second argument is DESCRIPTOR(time column)",
            ));
        }
    };
    let fields = input.fields();
    let Some(c) = fields
        .iter()
        .position(|f| f.name.eq_ignore_ascii_case(&descriptor))
    else {
        return Err(SqlError::at(
            pos_of(args[1]),
            format!("DESCRIPTOR({descriptor}): no such column in {table}"),
        ));
    };
    match input.rowtime() {
        Some(r) if r == c => {}
        Some(r) => {
            return Err(SqlError::at(
                pos_of(args[1]),
                format!(
                    "DESCRIPTOR({descriptor}): windows run on {table}'s event time, the column its WATERMARK is declared for: {}",
                    fields[r].name
                ),
            ));
        }
        None => {
            return Err(SqlError::at(
                pos_of(args[1]),
                format!(
                    "{table} has no event time: {}",
                    no_event_time(&input, &descriptor)
                ),
            ));
        }
    }
    let interval = |x: &Expr| -> Result<i64, SqlError> {
        let t = compile(x, &Scope::default())?;
        match t.scalar.eval(&[]) {
            Ok(crate::Value::Interval(ms)) if ms > 0 => Ok(ms),
            _ => Err(SqlError::at(
                pos_of(x),
                "a window's size and slide are positive intervals: INTERVAL '10' SECOND",
            )),
        }
    };
    let spec = if name == "SESSION" {
        WindowSpec::Session {
            gap: interval(args[2])?,
        }
    } else if wanted == 3 {
        WindowSpec::Tumble {
            size: interval(args[2])?,
        }
    } else {
        let (slide, size) = (interval(args[2])?, interval(args[3])?);
        if size % slide != 0 {
            return Err(SqlError::at(
                pos_of(args[3]),
                if name == "HOP" {
                    "HOP: the size is a whole number of slides"
                } else {
                    "CUMULATE: the size is a whole number of steps"
                },
            ));
        }
        if name == "HOP" {
            WindowSpec::Hop { slide, size }
        } else {
            WindowSpec::Cumulate { step: slide, size }
        }
    };
    let mut columns = Vec::new();
    for p in &partition {
        let Some(c) = fields
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(&p.value))
        else {
            return Err(SqlError::at(
                p.span.start.into(),
                format!("PARTITION BY {}: no such column in {table}", p.value),
            ));
        };
        columns.push(c);
    }
    Ok((input, spec, columns))
}

/// The scope of a FROM clause's rows.
fn scope_of(from: &From) -> Scope {
    let mut fields = from.fields.clone();
    if from.window.is_some() {
        let q = fields.first().and_then(|f| f.qualifier.clone());
        fields.extend(window_fields(q.as_deref()));
    }
    Scope {
        fields,
        ..Scope::default()
    }
}

const AGGREGATES: [&str; 5] = ["COUNT", "SUM", "MIN", "MAX", "AVG"];

fn is_aggregate(e: &Expr) -> bool {
    matches!(e, Expr::Function(f) if f.over.is_none()
        && AGGREGATES.iter().any(|a| object_name(&f.name).eq_ignore_ascii_case(a)))
}

/// The aggregate calls in `e` (outermost ones).
fn aggregates_in(e: &Expr, out: &mut Vec<Expr>) {
    let _ = visit_expressions(e, |x| {
        if is_aggregate(x) && !out.contains(x) {
            out.push(x.clone());
        }
        ControlFlow::<()>::Continue(())
    });
}

fn output_name(item: &SelectItem, e: &Expr, i: usize) -> String {
    match item {
        SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
        _ => match e {
            Expr::Identifier(id) => id.value.clone(),
            Expr::CompoundIdentifier(parts) => {
                parts.last().map_or(String::new(), |p| p.value.clone())
            }
            _ => format!("EXPR${i}"),
        },
    }
}

fn plan_select(select: &ast::Select, catalog: &Catalog) -> Result<Plan, SqlError> {
    let at: Pos = select.select_token.0.span.start.into();
    match &select.distinct {
        None => {}
        Some(ast::Distinct::Distinct) => return plan_distinct(select, catalog, at),
        Some(ast::Distinct::On(_)) => {
            return Err(SqlError::at(at, "SELECT DISTINCT ON is not supported"));
        }
    }
    if select.qualify.is_some() {
        return Err(SqlError::at(at, "QUALIFY is not supported"));
    }
    if !select.named_window.is_empty() {
        return plan_select(&with_named_windows(select, at)?, catalog);
    }
    let (from, where_joined) = plan_from(select, catalog)?;
    let scope = scope_of(&from);
    let input_width = from.plan.fields().len();
    let mut plan = from.plan.clone();
    let mut condition = select.selection.clone().filter(|_| !where_joined);
    if let Some(w) = condition.take() {
        let (joined, rest) = semi_joins(plan, &w, &scope, catalog)?;
        plan = joined;
        condition = rest;
    }
    if let Some(w) = condition.as_ref() {
        let cond = compile(w, &scope)?;
        if cond.ty != DataType::Boolean && cond.ty != DataType::Null {
            return Err(SqlError::at(
                cond.pos,
                format!("WHERE {cond}: a condition is BOOLEAN, not {}", cond.ty),
            ));
        }
        if from.window.is_some() && uses_columns_from(&cond.scalar, input_width) {
            return Err(SqlError::at(
                cond.pos,
                "WHERE on window_start, window_end or window_time is not supported yet: filter the window's rows in an outer query",
            ));
        }
        set_rank_limit(&mut plan, &cond.scalar);
        plan = match plan {
            // On an inner join, WHERE is part of the join's condition (where a bound on event
            // time makes it an interval join, and a condition on one side filters that side).
            join @ Plan::Join {
                kind: JoinKind::Inner,
                ..
            } => {
                let mut written = Vec::new();
                conjuncts(w, &mut written);
                let conds = written
                    .iter()
                    .map(|e| compile(e, &scope))
                    .collect::<Result<Vec<_>, _>>()?;
                with_conditions(join, conds)
            }
            plan => Plan::Filter {
                input: Box::new(plan),
                cond,
            },
        };
    }
    let group_exprs: Vec<Expr> = match &select.group_by {
        ast::GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty() {
                return Err(SqlError::at(
                    at,
                    "GROUP BY modifiers (ROLLUP, CUBE) are not supported",
                ));
            }
            exprs.clone()
        }
        ast::GroupByExpr::All(_) => return Err(SqlError::at(at, "GROUP BY ALL is not supported")),
    };
    let items: Vec<(&SelectItem, Option<&Expr>)> = select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                (item, Some(e))
            }
            _ => (item, None),
        })
        .collect();
    let mut agg_calls = Vec::new();
    for (_, e) in &items {
        if let Some(e) = e {
            aggregates_in(e, &mut agg_calls);
        }
    }
    if let Some(h) = &select.having {
        aggregates_in(h, &mut agg_calls);
    }
    let grouped = !group_exprs.is_empty() || !agg_calls.is_empty();
    if !grouped {
        if select.having.is_some() {
            return Err(SqlError::at(at, "HAVING without GROUP BY or aggregates"));
        }
        if let Some(spec) = from.window {
            if plan.updating() {
                return Err(SqlError::at(
                    at,
                    "window table functions read append-only inputs; this one is updating",
                ));
            }
            plan = Plan::WindowAssign {
                input: Box::new(plan),
                spec,
                partition: from.partition.clone(),
            };
        }
        if let Some((over, texts)) = over_aggregates(&items, &scope, &plan, input_width)? {
            let Plan::Over {
                partition,
                frame,
                aggs,
                ..
            } = over
            else {
                unreachable!("an over aggregation")
            };
            let mut scope = scope.clone();
            for (text, a) in texts.into_iter().zip(&aggs) {
                scope.subst.push((text, scope.fields.len()));
                scope.fields.push(Field {
                    qualifier: None,
                    name: a.text.clone(),
                    ty: a.ty,
                });
            }
            let plan = Plan::Over {
                input: Box::new(plan),
                partition,
                frame,
                aggs,
            };
            let exprs = project_with(&items, &scope, input_width)?;
            return Ok(Plan::Project {
                input: Box::new(plan),
                exprs,
            });
        }
        if let Some((rank, rank_text)) = row_number(&items, &scope)? {
            let Plan::Rank { name, .. } = &rank else {
                unreachable!("a rank")
            };
            let mut scope = scope.clone();
            scope.subst.push((rank_text, scope.fields.len()));
            scope.fields.push(Field {
                qualifier: None,
                name: name.clone(),
                ty: DataType::BigInt,
            });
            let Plan::Rank {
                partition,
                order,
                name,
                ..
            } = rank
            else {
                unreachable!("a rank")
            };
            plan = Plan::Rank {
                input: Box::new(plan),
                partition,
                order,
                limit: None,
                name,
            };
            let exprs = project_with(&items, &scope, scope.fields.len() - 1)?;
            return Ok(Plan::Project {
                input: Box::new(plan),
                exprs,
            });
        }
        let exprs = project(&items, &scope)?;
        return Ok(Plan::Project {
            input: Box::new(plan),
            exprs,
        });
    }
    let group_exprs_all = group_exprs.clone();
    // Flink's group window functions: GROUP BY TUMBLE(ts, size) / HOP(ts, slide, size) /
    // SESSION(ts, gap), with X_START / X_END / X_ROWTIME(...) in the select list.
    let legacy = match from.window {
        Some(_) => None,
        None => group_window(&group_exprs, &scope, &plan)?,
    };
    let (spec, group_exprs, legacy) = match (from.window, legacy) {
        (Some(spec), _) => (spec, group_exprs, None),
        (None, Some((i, spec, call))) => {
            let mut rest = group_exprs.clone();
            rest.remove(i);
            (spec, rest, Some(call))
        }
        (None, None) => match attached_windows(&group_exprs, &scope, &plan)? {
            Some((spec, rest)) => (spec, rest, None),
            None => {
                return group_aggregate(select, &scope, plan, &group_exprs, &agg_calls, &items);
            }
        },
    };
    if plan.updating() {
        return Err(SqlError::at(
            at,
            "a window aggregation reads an append-only input; this one is updating (its rows change)",
        ));
    }
    // A window aggregation: GROUP BY window_start, window_end (window_time may be grouped too)
    // and other keys.
    let mut keys = Vec::new();
    let mut has = [false; 3];
    for g in &group_exprs {
        let typed = compile(g, &scope)?;
        if let Scalar::Col(c) = typed.scalar
            && c >= input_width
        {
            has[c - input_width] = true;
            continue;
        }
        if uses_columns_from(&typed.scalar, input_width) {
            return Err(SqlError::at(
                typed.pos,
                "group by window_start and window_end themselves",
            ));
        }
        let name = match g {
            Expr::Identifier(i) => i.value.clone(),
            Expr::CompoundIdentifier(p) => p.last().map_or(String::new(), |p| p.value.clone()),
            other => other.to_string(),
        };
        keys.push((name, g.clone(), typed));
    }
    let attached = matches!(spec, WindowSpec::Attached { .. });
    if legacy.is_none() && !attached && !(has[0] && has[1]) {
        return Err(SqlError::at(
            at,
            "a window aggregation groups by window_start and window_end (GROUP BY window_start, window_end, ...); without them it is an updating aggregation, not supported yet",
        ));
    }
    let mut spec = spec;
    if legacy.is_none() && matches!(spec, WindowSpec::Session { .. }) {
        // Sessions are found per partition (the PARTITION BY columns). Grouped by exactly
        // those, the window operator finds them itself; grouped by other keys, the sessions'
        // rows are aggregated per session and key, as Flink does: the sessions are found first
        // (each row leaving at its session's window_time with its bounds), then aggregated on
        // those windows.
        let mut grouped: Vec<usize> = keys
            .iter()
            .filter_map(|(_, _, t)| match t.scalar {
                Scalar::Col(c) => Some(c),
                _ => None,
            })
            .collect();
        let mut partition = from.partition.clone();
        grouped.sort_unstable();
        grouped.dedup();
        partition.sort_unstable();
        partition.dedup();
        if grouped.len() != keys.len() || grouped != partition {
            plan = Plan::WindowAssign {
                input: Box::new(plan),
                spec,
                partition: from.partition.clone(),
            };
            spec = WindowSpec::Attached {
                start: input_width,
                end: input_width + 1,
            };
        }
    }
    let mut aggs = Vec::new();
    for call in &agg_calls {
        aggs.push(aggregate(call, &scope, input_width)?);
    }
    // The scope after aggregation: window columns, keys, aggregates.
    let q = from.fields.first().and_then(|f| f.qualifier.clone());
    let mut fields = window_fields(q.as_deref());
    let mut subst = Vec::new();
    if let WindowSpec::Attached { start, end } = spec {
        // The input's window columns keep their names (and are what GROUP BY named).
        for (k, c) in [start, end].into_iter().enumerate() {
            fields[k] = scope.fields[c].clone();
            for g in &group_exprs_all {
                if matches!(compile(g, &scope)?.scalar, Scalar::Col(x) if x == c) {
                    subst.push((g.to_string(), k));
                }
            }
        }
    }
    for (name, g, typed) in &keys {
        let (qualifier, name) = match g {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                let Scalar::Col(c) = typed.scalar else {
                    unreachable!("a column")
                };
                (
                    scope.fields[c].qualifier.clone(),
                    scope.fields[c].name.clone(),
                )
            }
            _ => (None, name.clone()),
        };
        subst.push((g.to_string(), fields.len()));
        fields.push(Field {
            qualifier,
            name,
            ty: typed.ty,
        });
    }
    for (call, a) in agg_calls.iter().zip(&aggs) {
        subst.push((call.to_string(), fields.len()));
        fields.push(Field {
            qualifier: None,
            name: a.text.clone(),
            ty: a.ty,
        });
    }
    if let Some((name, args)) = &legacy {
        // X_START(...), X_END(...), X_ROWTIME(...) with the group window's arguments are the
        // window columns.
        for (k, suffix) in ["_START", "_END", "_ROWTIME"].iter().enumerate() {
            for n in [name.to_uppercase(), name.to_lowercase(), name.clone()] {
                let suffix = if n.chars().any(|c| c.is_lowercase()) && n == n.to_lowercase() {
                    suffix.to_lowercase()
                } else {
                    suffix.to_string()
                };
                subst.push((format!("{n}{suffix}({args})"), k));
            }
        }
    }
    let after = Scope {
        fields,
        subst,
        grouped: true,
    };
    let mut plan = Plan::WindowAggregate {
        input: Box::new(plan),
        spec,
        keys: keys.into_iter().map(|(n, _, t)| (n, t)).collect(),
        aggs,
    };
    if let Some(h) = &select.having {
        let cond = compile(h, &after)?;
        plan = Plan::Filter {
            input: Box::new(plan),
            cond,
        };
    }
    let exprs = project(&items, &after)?;
    Ok(Plan::Project {
        input: Box::new(plan),
        exprs,
    })
}

/// A group window found in GROUP BY: its position there, the window, and the function's name and
/// arguments as written.
type GroupWindow = (usize, WindowSpec, (String, String));

/// A group window function among `group_exprs` (`TUMBLE(ts, size)`, `HOP(ts, slide, size)`,
/// `SESSION(ts, gap)` on the input's event time): its position, the window, and its name and
/// arguments as written (for `X_START(args)` and the like).
fn group_window(
    group_exprs: &[Expr],
    scope: &Scope,
    input: &Plan,
) -> Result<Option<GroupWindow>, SqlError> {
    for (i, g) in group_exprs.iter().enumerate() {
        let Expr::Function(f) = g else { continue };
        let name = object_name(&f.name);
        let wanted = match name.to_ascii_uppercase().as_str() {
            "TUMBLE" | "SESSION" => 2,
            "HOP" => 3,
            _ => continue,
        };
        let ast::FunctionArguments::List(list) = &f.args else {
            continue;
        };
        let args: Vec<&Expr> = list
            .args
            .iter()
            .filter_map(|a| match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) => Some(x),
                _ => None,
            })
            .collect();
        if args.len() != wanted {
            return Err(SqlError::at(
                pos_of(g),
                format!(
                    "{name} in GROUP BY takes the time column and {} interval(s)",
                    wanted - 1
                ),
            ));
        }
        let time = compile(args[0], scope)?;
        let is_rowtime = matches!(time.scalar, Scalar::Col(c) if Some(c) == input.rowtime());
        if !is_rowtime {
            return Err(SqlError::at(
                time.pos,
                format!(
                    "{name}({time}, ...): group windows run on the table's event time, the column its WATERMARK is declared for"
                ),
            ));
        }
        let mut ms = Vec::new();
        for x in &args[1..] {
            let t = compile(x, &Scope::default())?;
            match t.scalar.eval(&[]) {
                Ok(crate::Value::Interval(v)) if v > 0 => ms.push(v),
                _ => {
                    return Err(SqlError::at(
                        pos_of(x),
                        "a window's size, slide or gap is a positive interval",
                    ));
                }
            }
        }
        let spec = match name.to_ascii_uppercase().as_str() {
            "TUMBLE" => WindowSpec::Tumble { size: ms[0] },
            "HOP" => {
                if ms[1] % ms[0] != 0 {
                    return Err(SqlError::at(
                        pos_of(g),
                        "HOP: the size is a whole number of slides",
                    ));
                }
                WindowSpec::Hop {
                    slide: ms[0],
                    size: ms[1],
                }
            }
            _ => WindowSpec::Session { gap: ms[0] },
        };
        let written: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        return Ok(Some((i, spec, (name, written.join(", ")))));
    }
    Ok(None)
}

/// A `GROUP BY` over rows that carry their windows already — grouped by `window_start` and
/// `window_end` of an append-only input whose rows all sit at their window's `window_time` (a
/// window aggregation's result, a session's rows) — is a window aggregation on those windows:
/// the windows, and the grouping expressions besides them. `None` for any other `GROUP BY`.
fn attached_windows(
    group_exprs: &[Expr],
    scope: &Scope,
    input: &Plan,
) -> Result<Option<(WindowSpec, Vec<Expr>)>, SqlError> {
    if input.updating() {
        return Ok(None);
    }
    let (mut start, mut end) = (None, None);
    let mut rest = Vec::new();
    for g in group_exprs {
        let typed = compile(g, scope)?;
        if let Scalar::Col(c) = typed.scalar {
            match window_column(input, c) {
                Some((0, 0)) if start.is_none() => {
                    start = Some(c);
                    continue;
                }
                Some((1, 0)) if end.is_none() => {
                    end = Some(c);
                    continue;
                }
                _ => {}
            }
        }
        rest.push(g.clone());
    }
    Ok(match (start, end) {
        (Some(start), Some(end)) => Some((WindowSpec::Attached { start, end }, rest)),
        _ => None,
    })
}

/// `GROUP BY` without a window (or aggregates without `GROUP BY`): an updating aggregation.
fn group_aggregate(
    select: &ast::Select,
    scope: &Scope,
    input: Plan,
    group_exprs: &[Expr],
    agg_calls: &[Expr],
    items: &[(&SelectItem, Option<&Expr>)],
) -> Result<Plan, SqlError> {
    let mut keys = Vec::new();
    let mut fields = Vec::new();
    let mut subst = Vec::new();
    for g in group_exprs {
        let typed = compile(g, scope)?;
        let (qualifier, name) = match (&typed.scalar, g) {
            (Scalar::Col(c), Expr::Identifier(_) | Expr::CompoundIdentifier(_)) => (
                scope.fields[*c].qualifier.clone(),
                scope.fields[*c].name.clone(),
            ),
            _ => (None, g.to_string()),
        };
        subst.push((g.to_string(), fields.len()));
        fields.push(Field {
            qualifier,
            name: name.clone(),
            ty: typed.ty,
        });
        keys.push((name, typed));
    }
    let mut aggs = Vec::new();
    for call in agg_calls {
        let a = aggregate(call, scope, scope.fields.len())?;
        subst.push((call.to_string(), fields.len()));
        fields.push(Field {
            qualifier: None,
            name: a.text.clone(),
            ty: a.ty,
        });
        aggs.push(a);
    }
    let after = Scope {
        fields,
        subst,
        grouped: true,
    };
    let mut plan = Plan::GroupAggregate {
        input: Box::new(input),
        keys,
        aggs,
    };
    if let Some(h) = &select.having {
        let cond = compile(h, &after)?;
        plan = Plan::Filter {
            input: Box::new(plan),
            cond,
        };
    }
    let exprs = project(items, &after)?;
    Ok(Plan::Project {
        input: Box::new(plan),
        exprs,
    })
}

/// The `ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)` among the select items, if one is
/// there: a rank (without its input and limit) and the call's text.
/// The aggregates `AGG(x) OVER (PARTITION BY ... ORDER BY rowtime [frame])` of a select list
/// (every one with the same window, as Flink requires), as an `Over` plan without its input,
/// and each call's text. `None` when there is none (a `ROW_NUMBER()` is left to Top-N).
fn over_aggregates(
    items: &[(&SelectItem, Option<&Expr>)],
    scope: &Scope,
    input: &Plan,
    input_width: usize,
) -> Result<Option<(Plan, Vec<String>)>, SqlError> {
    let mut calls = Vec::new();
    for (_, e) in items {
        let Some(e) = e else { continue };
        let _ = visit_expressions(*e, |x| {
            if let Expr::Function(f) = x
                && f.over.is_some()
                && AGGREGATES
                    .iter()
                    .any(|a| object_name(&f.name).eq_ignore_ascii_case(a))
                && !calls.contains(x)
            {
                calls.push(x.clone());
            }
            ControlFlow::<()>::Continue(())
        });
    }
    let Some(first) = calls.first() else {
        return Ok(None);
    };
    let spec_of = |call: &Expr| -> Result<ast::WindowSpec, SqlError> {
        match call {
            Expr::Function(ast::Function {
                over: Some(ast::WindowType::WindowSpec(spec)),
                ..
            }) => Ok(spec.clone()),
            _ => Err(SqlError::at(
                pos_of(call),
                "an OVER aggregate's window is written in place: OVER (PARTITION BY ... ORDER BY ...)",
            )),
        }
    };
    let spec = spec_of(first)?;
    for call in &calls[1..] {
        if spec_of(call)? != spec {
            return Err(SqlError::at(
                pos_of(call),
                "every OVER aggregate of a query has the same window (as in Flink)",
            ));
        }
    }
    let at = pos_of(first);
    if input.updating() {
        return Err(SqlError::at(
            at,
            "OVER aggregates read an append-only input; this one is updating",
        ));
    }
    let rowtime = input.rowtime();
    let ordered_by_time = match &spec.order_by[..] {
        [o] => {
            let t = compile(&o.expr, scope)?;
            o.options.asc != Some(false) && matches!(t.scalar, Scalar::Col(c) if Some(c) == rowtime)
        }
        _ => false,
    };
    if !ordered_by_time {
        return Err(SqlError::at(
            at,
            "OVER aggregates are ordered by the event-time column, ascending: ORDER BY its WATERMARK column",
        ));
    }
    let partition = spec
        .partition_by
        .iter()
        .map(|p| compile(p, scope))
        .collect::<Result<Vec<_>, _>>()?;
    let frame = match &spec.window_frame {
        None => OverFrame::Unbounded(true),
        Some(w) => {
            if !matches!(w.end_bound, None | Some(ast::WindowFrameBound::CurrentRow)) {
                return Err(SqlError::at(at, "an OVER window ends at the CURRENT ROW"));
            }
            let range = match w.units {
                ast::WindowFrameUnits::Rows => false,
                ast::WindowFrameUnits::Range => true,
                ast::WindowFrameUnits::Groups => {
                    return Err(SqlError::at(at, "GROUPS frames are not supported"));
                }
            };
            match &w.start_bound {
                ast::WindowFrameBound::Preceding(None) => OverFrame::Unbounded(range),
                ast::WindowFrameBound::CurrentRow if range => OverFrame::Range(0),
                ast::WindowFrameBound::CurrentRow => OverFrame::Rows(0),
                ast::WindowFrameBound::Preceding(Some(n)) => {
                    let v = compile(n, &Scope::default())?.scalar.eval(&[]);
                    match (range, v) {
                        (false, Ok(v)) if v.as_i64().is_some_and(|n| n >= 0) => {
                            OverFrame::Rows(v.as_i64().unwrap_or(0) as u64)
                        }
                        (true, Ok(crate::Value::Interval(ms))) if ms >= 0 => OverFrame::Range(ms),
                        _ => {
                            return Err(SqlError::at(
                                pos_of(n),
                                if range {
                                    "RANGE BETWEEN INTERVAL '...' ... PRECEDING AND CURRENT ROW takes an interval"
                                } else {
                                    "ROWS BETWEEN n PRECEDING AND CURRENT ROW takes a whole number"
                                },
                            ));
                        }
                    }
                }
                ast::WindowFrameBound::Following(_) => {
                    return Err(SqlError::at(
                        at,
                        "an OVER window starts before the current row: ... PRECEDING",
                    ));
                }
            }
        }
    };
    let mut aggs = Vec::new();
    let mut texts = Vec::new();
    for call in &calls {
        let Expr::Function(f) = call else {
            unreachable!("a function call")
        };
        let mut plain = f.clone();
        plain.over = None;
        let mut agg = aggregate(&Expr::Function(plain), scope, input_width)?;
        agg.text = call.to_string();
        aggs.push(agg);
        texts.push(call.to_string());
    }
    Ok(Some((
        Plan::Over {
            input: Box::new(Plan::Union { inputs: Vec::new() }),
            partition,
            frame,
            aggs,
        },
        texts,
    )))
}

fn row_number(
    items: &[(&SelectItem, Option<&Expr>)],
    scope: &Scope,
) -> Result<Option<(Plan, String)>, SqlError> {
    let mut found = None;
    for (item, e) in items {
        let Some(e) = e else { continue };
        let mut calls = Vec::new();
        let _ = visit_expressions(*e, |x| {
            if let Expr::Function(f) = x
                && f.over.is_some()
            {
                calls.push(x.clone());
            }
            ControlFlow::<()>::Continue(())
        });
        for call in calls {
            let Expr::Function(f) = &call else {
                unreachable!()
            };
            if !object_name(&f.name).eq_ignore_ascii_case("ROW_NUMBER") {
                return Err(SqlError::at(
                    pos_of(&call),
                    format!(
                        "{}() OVER: only ROW_NUMBER() (for Top-N and deduplication) is supported over a window",
                        object_name(&f.name)
                    ),
                ));
            }
            if found.is_some() {
                return Err(SqlError::at(pos_of(&call), "one ROW_NUMBER() per query"));
            }
            let Some(ast::WindowType::WindowSpec(spec)) = &f.over else {
                return Err(SqlError::at(
                    pos_of(&call),
                    "ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)",
                ));
            };
            if spec.order_by.is_empty() {
                return Err(SqlError::at(
                    pos_of(&call),
                    "ROW_NUMBER() needs an ORDER BY in its OVER clause",
                ));
            }
            let partition = spec
                .partition_by
                .iter()
                .map(|p| compile(p, scope))
                .collect::<Result<Vec<_>, _>>()?;
            let order = spec
                .order_by
                .iter()
                .map(|o| Ok((compile(&o.expr, scope)?, o.options.asc == Some(false))))
                .collect::<Result<Vec<_>, SqlError>>()?;
            let name = match item {
                SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
                _ => "row_num".to_string(),
            };
            found = Some((
                Plan::Rank {
                    input: Box::new(Plan::Union { inputs: Vec::new() }),
                    partition,
                    order,
                    limit: None,
                    name,
                },
                call.to_string(),
            ));
        }
    }
    Ok(found)
}

/// When `plan` is a ranking without a limit (seen through projections), and `cond` bounds its
/// row number (`rn <= N`, `rn < N`, `rn = 1`): sets the limit.
fn set_rank_limit(plan: &mut Plan, cond: &Scalar) {
    // The column of `plan`'s rows that holds the rank's row number.
    fn rank_column(plan: &mut Plan) -> Option<(usize, &mut Option<u64>)> {
        match plan {
            Plan::Rank { input, limit, .. } => {
                let width = input.fields().len();
                Some((width, limit))
            }
            Plan::Project { input, exprs } => {
                let at = exprs
                    .iter()
                    .map(|(_, e)| e.scalar.clone())
                    .collect::<Vec<_>>();
                let (col, limit) = rank_column(input)?;
                let pos = at
                    .iter()
                    .position(|s| matches!(s, Scalar::Col(c) if *c == col))?;
                Some((pos, limit))
            }
            Plan::Filter { input, .. } => rank_column(input),
            _ => None,
        }
    }
    let mut conjuncts = Vec::new();
    fn split<'a>(s: &'a Scalar, out: &mut Vec<&'a Scalar>) {
        match s {
            Scalar::And(a, b) => {
                split(a, out);
                split(b, out);
            }
            other => out.push(other),
        }
    }
    split(cond, &mut conjuncts);
    let Some((col, limit)) = rank_column(plan) else {
        return;
    };
    for c in conjuncts {
        let bound = match c {
            Scalar::Cmp(op, a, b) => match (a.as_ref(), b.as_ref()) {
                (Scalar::Col(x), Scalar::Lit(v)) if *x == col => {
                    v.as_i64().and_then(|n| match op {
                        expr::CmpOp::Le => Some(n),
                        expr::CmpOp::Lt => Some(n - 1),
                        expr::CmpOp::Eq if n == 1 => Some(1),
                        _ => None,
                    })
                }
                (Scalar::Lit(v), Scalar::Col(x)) if *x == col => {
                    v.as_i64().and_then(|n| match op {
                        expr::CmpOp::Ge => Some(n),
                        expr::CmpOp::Gt => Some(n - 1),
                        expr::CmpOp::Eq if n == 1 => Some(1),
                        _ => None,
                    })
                }
                _ => None,
            },
            _ => None,
        };
        if let Some(n) = bound.filter(|n| *n >= 1) {
            *limit = Some(limit.map_or(n as u64, |l| l.min(n as u64)));
        }
    }
}

/// The first ranking in `plan` left without a limit, if any.
fn unbounded_rank(plan: &Plan) -> Option<&str> {
    match plan {
        Plan::Rank {
            limit: None, name, ..
        } => Some(name),
        Plan::Scan { .. } => None,
        Plan::Filter { input, .. }
        | Plan::Project { input, .. }
        | Plan::WindowAssign { input, .. }
        | Plan::WindowAggregate { input, .. }
        | Plan::GroupAggregate { input, .. }
        | Plan::Over { input, .. }
        | Plan::Unnest { input, .. }
        | Plan::Rank { input, .. } => unbounded_rank(input),
        Plan::Join { left, right, .. } => unbounded_rank(left).or_else(|| unbounded_rank(right)),
        Plan::Union { inputs } => inputs.iter().find_map(unbounded_rank),
    }
}

fn check_ranks(plan: &Plan, pos: Pos) -> Result<(), SqlError> {
    match unbounded_rank(plan) {
        None => Ok(()),
        Some(name) => Err(SqlError::at(
            pos,
            format!(
                "ROW_NUMBER() ({name}) needs a bound in the enclosing query: WHERE {name} <= N (Top-N) or {name} = 1 (deduplication)"
            ),
        )),
    }
}

/// Whether `s` reads a column at or after `from`.
fn uses_columns_from(s: &Scalar, from: usize) -> bool {
    match s {
        Scalar::Col(c) => *c >= from,
        Scalar::Lit(_) => false,
        Scalar::Arith(_, a, b, _)
        | Scalar::Cmp(_, a, b)
        | Scalar::And(a, b)
        | Scalar::Or(a, b)
        | Scalar::Like(a, b, _) => uses_columns_from(a, from) || uses_columns_from(b, from),
        Scalar::Not(a) | Scalar::Neg(a) | Scalar::IsNull(a, _) | Scalar::Cast(a, _, _) => {
            uses_columns_from(a, from)
        }
        Scalar::Case(whens, e) => {
            uses_columns_from(e, from)
                || whens
                    .iter()
                    .any(|(c, r)| uses_columns_from(c, from) || uses_columns_from(r, from))
        }
        Scalar::InList(a, items, _) => {
            uses_columns_from(a, from) || items.iter().any(|i| uses_columns_from(i, from))
        }
        Scalar::Call(_, args) => args.iter().any(|a| uses_columns_from(a, from)),
    }
}

fn project(
    items: &[(&SelectItem, Option<&Expr>)],
    scope: &Scope,
) -> Result<Vec<(String, Typed)>, SqlError> {
    project_with(items, scope, scope.fields.len())
}

/// The select items on `scope`; a wildcard stands for its first `wildcard` columns.
fn project_with(
    items: &[(&SelectItem, Option<&Expr>)],
    scope: &Scope,
    wildcard: usize,
) -> Result<Vec<(String, Typed)>, SqlError> {
    let mut exprs = Vec::new();
    for (i, (item, e)) in items.iter().enumerate() {
        match (item, e) {
            (_, Some(e)) => {
                let typed = compile(e, scope)?;
                exprs.push((output_name(item, e, i), typed));
            }
            (SelectItem::Wildcard(_), None) => {
                for (c, f) in scope.fields.iter().enumerate().take(wildcard) {
                    exprs.push((f.name.clone(), column(c, f)));
                }
            }
            (SelectItem::QualifiedWildcard(kind, _), None) => {
                let q = match kind {
                    ast::SelectItemQualifiedWildcardKind::ObjectName(n) => object_name(n),
                    ast::SelectItemQualifiedWildcardKind::Expr(e) => e.to_string(),
                };
                let mut any = false;
                for (c, f) in scope.fields.iter().enumerate() {
                    if f.qualifier
                        .as_deref()
                        .is_some_and(|fq| fq.eq_ignore_ascii_case(&q))
                    {
                        exprs.push((f.name.clone(), column(c, f)));
                        any = true;
                    }
                }
                if !any {
                    return Err(SqlError::at(
                        Pos::default(),
                        format!("{q}.*: no table or alias '{q}' here"),
                    ));
                }
            }
            _ => unreachable!("items carry an expression unless wildcards"),
        }
    }
    Ok(exprs)
}

fn column(c: usize, f: &Field) -> Typed {
    Typed {
        scalar: Scalar::Col(c),
        ty: f.ty,
        text: f.name.clone(),
        pos: Pos::default(),
    }
}

/// An aggregate call on the rows of `scope` (which must not read the window columns).
fn aggregate(call: &Expr, scope: &Scope, input_width: usize) -> Result<Agg, SqlError> {
    let Expr::Function(f) = call else {
        unreachable!("an aggregate is a call")
    };
    let name = object_name(&f.name).to_ascii_uppercase();
    let func = match name.as_str() {
        "COUNT" => AggFunc::Count,
        "SUM" => AggFunc::Sum,
        "MIN" => AggFunc::Min,
        "MAX" => AggFunc::Max,
        _ => AggFunc::Avg,
    };
    let ast::FunctionArguments::List(list) = &f.args else {
        return Err(SqlError::at(
            pos_of(call),
            format!("{name} needs an argument"),
        ));
    };
    let distinct = matches!(
        list.duplicate_treatment,
        Some(ast::DuplicateTreatment::Distinct)
    );
    let (arg, arg_ty) = match &list.args[..] {
        [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard)]
            if func == AggFunc::Count && !distinct =>
        {
            (None, DataType::BigInt)
        }
        [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x))] => {
            if is_aggregate_inside(x) {
                return Err(SqlError::at(pos_of(x), "aggregates do not nest"));
            }
            let t = compile(x, scope)?;
            if uses_columns_from(&t.scalar, input_width) {
                return Err(SqlError::at(
                    t.pos,
                    "aggregate the window's rows, not its window_start or window_end",
                ));
            }
            (Some(t.scalar), t.ty)
        }
        _ => {
            return Err(SqlError::at(
                pos_of(call),
                format!("{name} takes one argument"),
            ));
        }
    };
    let ty = match func {
        AggFunc::Count => DataType::BigInt,
        AggFunc::Min | AggFunc::Max if arg_ty.is_nested() => {
            // As Flink: arrays and rows have no order to take a least or greatest of.
            return Err(SqlError::at(
                pos_of(call),
                format!("{name} takes a value with an order, not {arg_ty}"),
            ));
        }
        AggFunc::Min | AggFunc::Max => arg_ty,
        AggFunc::Sum | AggFunc::Avg => {
            if !arg_ty.is_numeric() && arg_ty != DataType::Null {
                return Err(SqlError::at(
                    pos_of(call),
                    format!("{name} takes numbers, not {arg_ty}"),
                ));
            }
            match (func, arg_ty) {
                (AggFunc::Sum, DataType::Decimal(_, s)) => DataType::Decimal(38, s),
                (AggFunc::Avg, DataType::Decimal(_, s)) => DataType::Decimal(38, s.max(6)),
                (_, t) => t,
            }
        }
    };
    let filter = match &f.filter {
        None => None,
        Some(c) => {
            let t = compile(c, scope)?;
            if t.ty != DataType::Boolean {
                return Err(SqlError::at(t.pos, "FILTER (WHERE ...) takes a condition"));
            }
            Some(t.scalar)
        }
    };
    Ok(Agg {
        func,
        arg,
        arg_ty,
        distinct,
        filter,
        ty,
        text: call.to_string(),
    })
}

fn is_aggregate_inside(e: &Expr) -> bool {
    let mut found = Vec::new();
    aggregates_in(e, &mut found);
    !found.is_empty()
}

/// Accumulated state of one aggregate in one window and key.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Acc {
    count: i64,
    value: crate::Value,
    /// The distinct values so far, for a `DISTINCT` aggregate (boxed: most aggregates have
    /// none, and accumulators are kept inline, one per key and window: boxed, the set takes 8
    /// bytes of each accumulator instead of 24).
    #[allow(clippy::box_collection)]
    distinct: Option<Box<std::collections::BTreeSet<crate::Value>>>,
}

/// The accumulators of one key and window, one per aggregate: up to two kept inline (no
/// allocation per key and window; a checkpoint writes them as a sequence either way).
pub(crate) type Accs = smallvec::SmallVec<[Acc; 2]>;

impl Agg {
    /// A fresh accumulator.
    pub(crate) fn start(&self) -> Acc {
        Acc {
            count: 0,
            value: crate::Value::Null,
            distinct: self.distinct.then(Default::default),
        }
    }

    /// Adds the input row `row`.
    pub(crate) fn add(&self, acc: &mut Acc, row: &[crate::Value]) -> expr::Eval<()> {
        if let Some(f) = &self.filter
            && !f.holds(row)?
        {
            return Ok(());
        }
        let v = match &self.arg {
            None => {
                acc.count += 1;
                return Ok(());
            }
            Some(a) => a.eval(row)?,
        };
        if v.is_null() {
            return Ok(());
        }
        if let Some(set) = &mut acc.distinct {
            set.insert(v);
            return Ok(());
        }
        self.fold(acc, v)
    }

    /// Adds the input row `row` `times` times (a row of an updating input, with its count):
    /// counts and sums of integers and decimals take it in one step; a `DISTINCT` aggregate,
    /// `MIN` and `MAX` see the value once; a sum of doubles adds it `times` times, as it would
    /// one row after another.
    pub(crate) fn add_times(
        &self,
        acc: &mut Acc,
        row: &[crate::Value],
        times: i64,
    ) -> expr::Eval<()> {
        if times == 1 {
            return self.add(acc, row);
        }
        if let Some(f) = &self.filter
            && !f.holds(row)?
        {
            return Ok(());
        }
        let v = match &self.arg {
            None => {
                acc.count += times;
                return Ok(());
            }
            Some(a) => a.eval(row)?,
        };
        if v.is_null() {
            return Ok(());
        }
        if let Some(set) = &mut acc.distinct {
            set.insert(v);
            return Ok(());
        }
        let ty = self.sum_type();
        match self.func {
            AggFunc::Count => acc.count += times,
            AggFunc::Min | AggFunc::Max => {
                self.fold(acc, v)?;
                acc.count += times - 1;
            }
            AggFunc::Sum | AggFunc::Avg if ty == DataType::Double => {
                for _ in 0..times {
                    self.fold(acc, v.clone())?;
                }
            }
            AggFunc::Sum | AggFunc::Avg => {
                let total = expr::arith(expr::ArithOp::Mul, &v, &crate::Value::BigInt(times), ty)?;
                self.fold(acc, total)?;
                acc.count += times - 1;
            }
        }
        Ok(())
    }

    fn fold(&self, acc: &mut Acc, v: crate::Value) -> expr::Eval<()> {
        acc.count += 1;
        acc.value = match (&self.func, std::mem::take(&mut acc.value)) {
            (AggFunc::Count, _) => crate::Value::Null,
            (_, crate::Value::Null) => v,
            (AggFunc::Min, cur) => cur.min(v),
            (AggFunc::Max, cur) => cur.max(v),
            (AggFunc::Sum | AggFunc::Avg, cur) => {
                let ty = self.sum_type();
                expr::arith(expr::ArithOp::Add, &cur, &v, ty)?
            }
        };
        Ok(())
    }

    /// Whether the aggregate can be carried as a count and an exact integer sum that a
    /// retraction subtracts again: COUNT, and SUM and AVG of integers and decimals, without
    /// DISTINCT (a sum of doubles depends on the order it is added in).
    pub(crate) fn invertible(&self) -> bool {
        !self.distinct
            && match self.func {
                AggFunc::Count => true,
                AggFunc::Sum | AggFunc::Avg => matches!(
                    self.sum_type(),
                    DataType::Int | DataType::BigInt | DataType::Decimal(..)
                ),
                AggFunc::Min | AggFunc::Max => false,
            }
    }

    /// What one input row adds to an [`invertible`](Self::invertible) aggregate: the number of
    /// values it counts (0 or 1) and its value as an integer in the sum's type (a decimal
    /// unscaled at the sum's scale).
    pub(crate) fn contribution(&self, row: &[crate::Value]) -> expr::Eval<(i128, i128)> {
        if let Some(f) = &self.filter
            && !f.holds(row)?
        {
            return Ok((0, 0));
        }
        let v = match &self.arg {
            None => return Ok((1, 0)),
            Some(a) => a.eval(row)?,
        };
        if v.is_null() {
            return Ok((0, 0));
        }
        if self.func == AggFunc::Count {
            return Ok((1, 0));
        }
        Ok(match expr::cast(v, self.sum_type())? {
            crate::Value::Decimal(x, _) => (1, x.get()),
            other => (1, i128::from(other.as_i64().unwrap_or(0))),
        })
    }

    /// The value of an [`invertible`](Self::invertible) aggregate from its count and sum (as
    /// [`contribution`](Self::contribution) makes them): the same as adding the rows one by
    /// one (integer sums wrap as they would).
    pub(crate) fn result_of_sums(&self, count: i128, sum: i128) -> expr::Eval<crate::Value> {
        use crate::Value;
        let value = match self.sum_type() {
            DataType::Int => Value::Int(sum as i32),
            DataType::Decimal(_, s) => Value::decimal(sum, s),
            _ => Value::BigInt(sum as i64),
        };
        let acc = Acc {
            count: count as i64,
            value: if count == 0 { Value::Null } else { value },
            distinct: None,
        };
        self.result_of(&acc)
    }

    /// The type sums are kept in: the result type, or BIGINT for an average of integers.
    fn sum_type(&self) -> DataType {
        match (self.func, self.arg_ty) {
            (AggFunc::Avg, DataType::Int | DataType::BigInt) => DataType::BigInt,
            (AggFunc::Avg, DataType::Decimal(_, s)) => DataType::Decimal(38, s),
            _ => self.ty,
        }
    }

    /// Merges `other` into `acc`.
    pub(crate) fn merge(&self, acc: &mut Acc, other: Acc) -> expr::Eval<()> {
        if let (Some(set), Some(more)) = (&mut acc.distinct, other.distinct) {
            set.extend(*more);
            return Ok(());
        }
        if other.count == 0 {
            return Ok(());
        }
        if self.func == AggFunc::Count {
            acc.count += other.count;
            return Ok(());
        }
        let n = other.count;
        self.fold(acc, other.value)?;
        acc.count += n - 1;
        Ok(())
    }

    /// Merges `other` into `acc`, saying whether the aggregate's value may have changed
    /// (`false` only when it surely did not: a smaller value under a MAX, a value already
    /// counted by a DISTINCT aggregate, nothing merged).
    pub(crate) fn merge_changed(&self, acc: &mut Acc, other: Acc) -> expr::Eval<bool> {
        if let Some(set) = &acc.distinct {
            let before = set.len();
            self.merge(acc, other)?;
            return Ok(acc.distinct.as_ref().is_none_or(|s| s.len() != before));
        }
        if other.count == 0 {
            return Ok(false);
        }
        match self.func {
            AggFunc::Min | AggFunc::Max if acc.count > 0 => {
                let before = acc.value.clone();
                self.merge(acc, other)?;
                Ok(acc.value != before)
            }
            _ => self.merge(acc, other).map(|()| true),
        }
    }

    /// The aggregate's value.
    pub(crate) fn result(&self, acc: &Acc) -> expr::Eval<crate::Value> {
        if let Some(set) = &acc.distinct {
            let mut plain = Acc::default();
            for v in set.iter() {
                self.fold(&mut plain, v.clone())?;
            }
            return self.result_of(&plain);
        }
        self.result_of(acc)
    }

    fn result_of(&self, acc: &Acc) -> expr::Eval<crate::Value> {
        use crate::Value;
        Ok(match self.func {
            AggFunc::Count => Value::BigInt(acc.count),
            AggFunc::Min | AggFunc::Max | AggFunc::Sum => {
                if acc.count == 0 {
                    Value::Null
                } else {
                    expr::cast(acc.value.clone(), self.ty)?
                }
            }
            AggFunc::Avg => {
                if acc.count == 0 {
                    return Ok(Value::Null);
                }
                let sum = &acc.value;
                match self.ty {
                    DataType::Double => {
                        Value::Double(sum.as_f64().unwrap_or(0.0) / acc.count as f64)
                    }
                    DataType::Decimal(..) => {
                        let d = expr::cast(sum.clone(), self.ty)?;
                        expr::arith(expr::ArithOp::Div, &d, &Value::BigInt(acc.count), self.ty)?
                    }
                    ty => expr::cast(Value::BigInt(sum.as_i64().unwrap_or(0) / acc.count), ty)?,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_script;

    #[test]
    fn a_value_added_with_a_count_aggregates_as_that_many_rows() {
        use crate::Value;
        let kinds = [
            (AggFunc::Count, DataType::BigInt, DataType::BigInt, false),
            (AggFunc::Sum, DataType::BigInt, DataType::BigInt, false),
            (AggFunc::Avg, DataType::BigInt, DataType::BigInt, false),
            (
                AggFunc::Sum,
                DataType::Decimal(10, 2),
                DataType::Decimal(38, 2),
                false,
            ),
            (
                AggFunc::Avg,
                DataType::Decimal(10, 2),
                DataType::Decimal(38, 2),
                false,
            ),
            (AggFunc::Sum, DataType::Double, DataType::Double, false),
            (AggFunc::Avg, DataType::Double, DataType::Double, false),
            (AggFunc::Min, DataType::BigInt, DataType::BigInt, false),
            (AggFunc::Max, DataType::BigInt, DataType::BigInt, false),
            (AggFunc::Count, DataType::BigInt, DataType::BigInt, true),
            (AggFunc::Sum, DataType::BigInt, DataType::BigInt, true),
        ];
        let value = |ty: DataType, i: i64| match ty {
            DataType::Decimal(_, s) => Value::decimal(i128::from(i) * 10 + 3, s),
            DataType::Double => Value::Double(i as f64 / 3.0),
            _ => Value::BigInt(i),
        };
        for (func, arg_ty, ty, distinct) in kinds {
            for filtered in [false, true] {
                let agg = Agg {
                    func,
                    arg: Some(Scalar::Col(0)),
                    arg_ty,
                    distinct,
                    // Rows whose second column is 0 are left out.
                    filter: filtered.then(|| {
                        Scalar::Cmp(
                            expr::CmpOp::Ne,
                            Box::new(Scalar::Col(1)),
                            Box::new(Scalar::Lit(Value::BigInt(0))),
                        )
                    }),
                    ty,
                    text: format!("{func:?}"),
                };
                // Rows (value, flag) with counts, NULLs among them.
                let rows: Vec<(Vec<Value>, i64)> = (0..12)
                    .map(|i| {
                        let v = if i % 5 == 4 {
                            Value::Null
                        } else {
                            value(arg_ty, i % 4 - 1)
                        };
                        (vec![v, Value::BigInt(i % 3)], 1 + i % 4)
                    })
                    .collect();
                let (mut once, mut each) = (agg.start(), agg.start());
                for (row, n) in &rows {
                    agg.add_times(&mut once, row, *n).unwrap();
                    for _ in 0..*n {
                        agg.add(&mut each, row).unwrap();
                    }
                }
                assert_eq!(
                    agg.result(&once).unwrap(),
                    agg.result(&each).unwrap(),
                    "{func:?} of {arg_ty}, distinct {distinct}, filtered {filtered}"
                );
                // Carried as a count and an exact sum instead, where the aggregate allows it.
                let invertible = match func {
                    AggFunc::Min | AggFunc::Max => false,
                    AggFunc::Count => !distinct,
                    AggFunc::Sum | AggFunc::Avg => !distinct && arg_ty != DataType::Double,
                };
                assert_eq!(agg.invertible(), invertible, "{func:?} of {arg_ty}");
                if invertible {
                    let (mut count, mut sum) = (0i128, 0i128);
                    for (row, n) in &rows {
                        let (c, s) = agg.contribution(row).unwrap();
                        count += c * i128::from(*n);
                        sum += s * i128::from(*n);
                    }
                    assert_eq!(
                        agg.result_of_sums(count, sum).unwrap(),
                        agg.result(&each).unwrap(),
                        "{func:?} of {arg_ty} from sums, filtered {filtered}"
                    );
                }
            }
        }
    }

    const BIDS: &str = "CREATE TABLE bids (auction BIGINT, bidder BIGINT, price BIGINT, date_time TIMESTAMP(3), WATERMARK FOR date_time AS date_time - INTERVAL '2' SECOND) WITH ('connector' = 'filesystem', 'path' = '/x', 'format' = 'csv');\n";

    /// The names of the first sink's columns.
    fn field_names(p: &Program) -> Vec<String> {
        p.sinks[0]
            .plan
            .fields()
            .into_iter()
            .map(|f| f.name)
            .collect()
    }

    fn plan(sql: &str) -> Result<Program, SqlError> {
        let text = format!("{BIDS}{sql}");
        parse_script(&text)
            .and_then(|s| plan_script(&s))
            .map(|(_, p)| p)
    }

    #[test]
    fn kafka_tables_take_flinks_options() {
        let table = |options: &str| {
            plan(&format!(
                "CREATE TABLE k (a BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH ('connector' = 'kafka', {options}); SELECT a FROM k;"
            ))
        };
        let p = table("'topic' = 't', 'properties.bootstrap.servers' = 'h:9092', 'format' = 'json', 'scan.startup.mode' = 'group-offsets', 'properties.group.id' = 'g', 'scan.bounded.mode' = 'latest-offset', 'properties.fetch.max.bytes' = '1000'").unwrap();
        let mut at = &p.sinks[0].plan;
        while let [input] = at.inputs()[..] {
            at = input;
        }
        let Plan::Scan { table: scanned } = at else {
            panic!("a scan")
        };
        assert_eq!(
            scanned.connector,
            Connector::Kafka(KafkaTable {
                topic: "t".into(),
                brokers: "h:9092".into(),
                format: FileFormat::Json,
                startup: KafkaStartup::Group,
                bounded: true,
                group: Some("g".into()),
                properties: vec![("fetch.max.bytes".into(), "1000".into())],
                upsert: None,
                dead_letter: None,
            })
        );
        assert!(!p.sinks[0].plan.updating());
        let p = table(
            "'topic' = 't', 'properties.bootstrap.servers' = 'h:9092', 'format' = 'debezium-json'",
        )
        .unwrap();
        assert!(
            p.sinks[0].plan.updating(),
            "a change log is an updating table"
        );
        for (options, message) in [
            (
                "'properties.bootstrap.servers' = 'h:9092', 'format' = 'csv'",
                "needs a 'topic'",
            ),
            (
                "'topic' = 't', 'format' = 'csv'",
                "needs 'properties.bootstrap.servers'",
            ),
            (
                "'topic' = 't', 'properties.bootstrap.servers' = 'h', 'format' = 'avro'",
                "'format' = 'avro'",
            ),
            (
                "'topic' = 't', 'properties.bootstrap.servers' = 'h', 'format' = 'csv', 'scan.startup.mode' = 'group-offsets'",
                "needs 'properties.group.id'",
            ),
            (
                "'topic' = 't', 'properties.bootstrap.servers' = 'h', 'format' = 'csv', 'scan.startup.mode' = 'timestamp'",
                "needs 'scan.startup.timestamp-millis'",
            ),
            (
                "'topic' = 't', 'properties.bootstrap.servers' = 'h', 'format' = 'csv', 'scan.bounded.mode' = 'later'",
                "'scan.bounded.mode' = 'later'",
            ),
        ] {
            let e = table(options).unwrap_err();
            assert!(e.message.contains(message), "{options}: {e}");
        }
        // Metadata columns: read as Flink's keys say, checked, never written.
        let meta = |columns: &str, connector: &str| {
            plan(&format!(
                "CREATE TABLE m (a BIGINT, {columns}) WITH ({connector}); SELECT * FROM m;"
            ))
        };
        let kafka = "'connector' = 'kafka', 'topic' = 't', 'properties.bootstrap.servers' = 'h', 'format' = 'json'";
        let p = meta("ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp', `partition` BIGINT METADATA VIRTUAL, WATERMARK FOR ts AS ts", kafka).unwrap();
        let fields: Vec<String> = p.sinks[0]
            .plan
            .fields()
            .iter()
            .map(|f| format!("{} {}", f.name, f.ty))
            .collect();
        assert_eq!(
            fields,
            ["a BIGINT", "ts TIMESTAMP_LTZ(3)", "partition BIGINT"]
        );
        for (columns, connector, message) in [
            (
                "o BIGINT METADATA FROM 'headers'",
                kafka,
                "no Kafka metadata 'headers'",
            ),
            (
                "o STRING METADATA FROM 'offset'",
                kafka,
                "metadata 'offset' is BIGINT, not STRING",
            ),
            (
                "o BIGINT METADATA FROM 'offset'",
                "'connector' = 'filesystem', 'path' = '/x', 'format' = 'csv'",
                "read from 'kafka' tables",
            ),
        ] {
            let e = meta(columns, connector).unwrap_err();
            assert!(e.message.contains(message), "{columns}: {e}");
        }
        let e = plan(&format!("CREATE TABLE m (a BIGINT, o BIGINT METADATA FROM 'offset') WITH ({kafka}); INSERT INTO m SELECT auction, auction FROM bids;")).unwrap_err();
        assert!(e.message.contains("'o' (Offset) cannot be written"), "{e}");
        // Written: the VIRTUAL columns are not given, a 'timestamp' column is.
        let p = plan(&format!("CREATE TABLE m (a BIGINT, o BIGINT METADATA FROM 'offset' VIRTUAL, ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp') WITH ({kafka}); INSERT INTO m SELECT auction, CAST(date_time AS TIMESTAMP_LTZ(3)) FROM bids;")).unwrap();
        assert_eq!(p.sinks[0].plan.fields().len(), 2);
    }

    #[test]
    fn nested_values_are_typed_taken_apart_and_unnested() {
        let events = "CREATE TABLE ev (id BIGINT, tags ARRAY<STRING>, owner ROW<name STRING, home ROW<city STRING>>, items ARRAY<ROW<sku STRING, qty INT>>, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH ('connector' = 'filesystem', 'path' = '/x', 'format' = 'json');";
        let types = |select: &str| -> Vec<String> {
            let p = plan(&format!("{events}{select}")).unwrap();
            p.sinks[0]
                .plan
                .fields()
                .iter()
                .map(|f| format!("{} {}", f.name, f.ty))
                .collect()
        };
        assert_eq!(
            types(
                "SELECT e.tags[1], owner.name, e.owner.home.city, CARDINALITY(tags) AS n, ARRAY[id, 2] AS a, ROW(id, 'x') AS r, e.items[1].sku FROM ev e;"
            )[1..],
            [
                "name STRING",
                "city STRING",
                "n INT",
                "a ARRAY<BIGINT>",
                "r ROW<EXPR$0 BIGINT, EXPR$1 STRING>",
                "EXPR$6 STRING"
            ]
        );
        assert_eq!(
            types(
                "SELECT e.id, i.sku, i.qty, t.tag FROM ev e CROSS JOIN UNNEST(e.items) AS i(sku, qty) LEFT JOIN UNNEST(e.tags) AS t(tag) ON TRUE;"
            ),
            ["id BIGINT", "sku STRING", "qty INT", "tag STRING"]
        );
        // WITH ORDINALITY: the position after the element's columns, named as in Flink when
        // no alias names them (an element without fields is EXPR$0).
        assert_eq!(
            types("SELECT * FROM ev CROSS JOIN UNNEST(tags) WITH ORDINALITY;")[5..],
            ["EXPR$0 STRING", "ORDINALITY INT"]
        );
        assert_eq!(
            types(
                "SELECT i.sku, i.n FROM ev e CROSS JOIN UNNEST(e.items) WITH ORDINALITY AS i(sku, qty, n);"
            ),
            ["sku STRING", "n INT"]
        );
        assert!(
            plan(&format!(
                "{events}SELECT x FROM ev CROSS JOIN UNNEST(tags) WITH ORDINALITY AS t(x);"
            ))
            .unwrap_err()
            .message
            .contains("gives 2 column(s); the alias names 1")
        );
        // Event time passes through UNNEST: a window aggregation over its rows.
        let p = plan(&format!("{events}CREATE VIEW tagged AS SELECT e.ts, t.tag FROM ev AS e, UNNEST(e.tags) AS t(tag); SELECT window_end, tag, COUNT(*) FROM TABLE(TUMBLE(TABLE tagged, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY window_start, window_end, tag;")).unwrap();
        let text = explain(&p.sinks[0]);
        assert!(
            text.contains("WindowAggregate") && text.contains("Unnest: e.tags AS (tag)"),
            "{text}"
        );
        assert!(!p.sinks[0].plan.updating(), "{text}");
        for (select, message) in [
            (
                "SELECT owner.nme FROM ev;",
                "no field 'nme' (fields: name, home)",
            ),
            (
                "SELECT id[1] FROM ev;",
                "only an ARRAY is indexed, not BIGINT",
            ),
            ("SELECT tags['a'] FROM ev;", "an array index is an integer"),
            (
                "SELECT CARDINALITY(owner) FROM ev;",
                "CARDINALITY takes an ARRAY",
            ),
            (
                "SELECT t FROM ev CROSS JOIN UNNEST(id) AS x(t);",
                "UNNEST takes an ARRAY: 'id' is BIGINT",
            ),
            (
                "SELECT a FROM ev CROSS JOIN UNNEST(items) AS x(a);",
                "gives 2 column(s); the alias names 1",
            ),
            (
                "SELECT t FROM ev JOIN UNNEST(tags) AS x(t) ON id = 1;",
                "ON TRUE",
            ),
            (
                "SELECT MAX(tags) FROM ev;",
                "MAX takes a value with an order, not ARRAY<STRING>",
            ),
            (
                "SELECT id FROM ev WHERE tags = owner;",
                "cannot compare ARRAY<STRING> with ROW",
            ),
            (
                "SELECT id FROM ev WHERE tags = ARRAY[1];",
                "cannot compare ARRAY<STRING> with ARRAY<INT>",
            ),
        ] {
            let e = plan(&format!("{events}{select}")).unwrap_err();
            assert!(e.message.contains(message), "{select}: {e}");
        }
    }

    #[test]
    fn window_aggregation_plans_onto_the_window_operator() {
        let p = plan("SELECT auction, window_end, COUNT(*) AS bids, MAX(price) FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end;").unwrap();
        let text = explain(&p.sinks[0]);
        assert!(
            text.contains("WindowAggregate: TUMBLE(size 10 s)"),
            "{text}"
        );
        assert!(
            text.contains("key [auction], COUNT(*), MAX(price)"),
            "{text}"
        );
        let names = field_names(&p);
        assert_eq!(names, ["auction", "window_end", "bids", "EXPR$3"]);
    }

    #[test]
    fn group_window_functions_plan_onto_the_window_operator() {
        let p = plan("SELECT auction, TUMBLE_START(date_time, INTERVAL '10' SECOND) AS s, COUNT(*) FROM bids GROUP BY TUMBLE(date_time, INTERVAL '10' SECOND), auction;").unwrap();
        let text = explain(&p.sinks[0]);
        assert!(
            text.contains("WindowAggregate: TUMBLE(size 10 s) on event time, key [auction]"),
            "{text}"
        );
        assert!(!p.sinks[0].plan.updating());
        let names = field_names(&p);
        assert_eq!(names, ["auction", "s", "EXPR$2"]);
        let e = plan("SELECT COUNT(*) FROM bids GROUP BY SESSION(auction, INTERVAL '1' SECOND);")
            .unwrap_err();
        assert!(e.message.contains("event time"), "{e}");
    }

    #[test]
    fn session_window_table_functions_aggregate_per_partition() {
        let p = plan("SELECT auction, window_start, window_end, COUNT(*) FROM TABLE(SESSION(TABLE bids PARTITION BY auction, DESCRIPTOR(date_time), INTERVAL '5' SECOND)) GROUP BY auction, window_start, window_end;").unwrap();
        let text = explain(&p.sinks[0]);
        assert!(
            text.contains("WindowAggregate: SESSION(gap 5 s) on event time, key [auction]"),
            "{text}"
        );
        assert!(!p.sinks[0].plan.updating());
        // Without PARTITION BY, one session at a time over the whole table; several columns
        // in parentheses.
        let p = plan("SELECT window_end, COUNT(*) FROM TABLE(SESSION(TABLE bids, DESCRIPTOR(date_time), INTERVAL '5' SECOND)) GROUP BY window_start, window_end;").unwrap();
        assert!(explain(&p.sinks[0]).contains("SESSION(gap 5 s)"));
        plan("SELECT bidder, auction, COUNT(*) FROM TABLE(SESSION(TABLE bids PARTITION BY (auction, bidder), DESCRIPTOR(date_time), INTERVAL '5' SECOND)) GROUP BY window_start, window_end, bidder, auction;").unwrap();
        // Keys other than the partition's: the sessions found per partition, then aggregated
        // per session and key (on the sessions' windows).
        for sql in [
            "SELECT bidder, COUNT(*) FROM TABLE(SESSION(TABLE bids PARTITION BY auction, DESCRIPTOR(date_time), INTERVAL '5' SECOND)) GROUP BY bidder, window_start, window_end;",
            "SELECT bidder, COUNT(*) FROM TABLE(SESSION(TABLE bids, DESCRIPTOR(date_time), INTERVAL '5' SECOND)) GROUP BY bidder, window_start, window_end;",
        ] {
            let text = explain(&plan(sql).unwrap().sinks[0]);
            assert!(
                text.contains("WindowAggregate: the input's windows on event time, key [bidder]")
                    && text.contains("WindowAssign: SESSION(gap 5 s)"),
                "{text}"
            );
        }
        let e = plan("SELECT * FROM TABLE(SESSION(TABLE bids PARTITION BY nope, DESCRIPTOR(date_time), INTERVAL '5' SECOND));").unwrap_err();
        assert!(
            e.message.contains("PARTITION BY nope: no such column"),
            "{e}"
        );
        let e = plan("SELECT * FROM TABLE(TUMBLE(TABLE bids PARTITION BY auction, DESCRIPTOR(date_time), INTERVAL '5' SECOND));").unwrap_err();
        assert!(e.message.contains("PARTITION BY is for SESSION"), "{e}");
        let e = plan("SELECT COUNT(*) FROM TABLE(SESSION(TABLE bids, DESCRIPTOR(date_time))) GROUP BY window_start, window_end;").unwrap_err();
        assert!(
            e.message
                .contains("(TABLE t, DESCRIPTOR(time column), gap)"),
            "{e}"
        );
    }

    #[test]
    fn planning_errors_say_what_and_where() {
        let e = plan("SELECT auction, price FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end;").unwrap_err();
        assert!(
            e.message
                .contains("'price' is neither grouped nor aggregated"),
            "{e}"
        );
        assert_eq!((e.pos.line, e.pos.column), (2, 17));
        let e = plan("CREATE TABLE o (a BIGINT, n BIGINT) WITH ('connector' = 'filesystem', 'path' = '/o', 'format' = 'csv');\nINSERT INTO o SELECT auction, COUNT(*) FROM bids GROUP BY auction;").unwrap_err();
        assert!(e.message.contains("the query's result is updating"), "{e}");
        let p = plan("SELECT auction, COUNT(*) FROM bids GROUP BY auction HAVING SUM(price) > 10;")
            .unwrap();
        assert!(p.sinks[0].plan.updating());
        assert!(
            explain(&p.sinks[0]).contains("GroupAggregate: key [auction], COUNT(*), SUM(price)")
        );
        let e = plan(
            "SELECT * FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(auction), INTERVAL '1' SECOND));",
        )
        .unwrap_err();
        assert!(e.message.contains("event time"), "{e}");
        // A window over rows that have no event time says why: a join's, a grouping's, a
        // table's without WATERMARK.
        let e = plan("CREATE VIEW j AS SELECT a.auction, a.date_time FROM bids a JOIN bids b ON a.auction = b.auction AND b.date_time BETWEEN a.date_time AND a.date_time + INTERVAL '1' SECOND;\nSELECT * FROM TABLE(TUMBLE(TABLE j, DESCRIPTOR(date_time), INTERVAL '1' SECOND));").unwrap_err();
        assert!(
            e.message
                .contains("j has no event time: the rows of a join have none"),
            "{e}"
        );
        assert_eq!(e.pos.line, 3);
        let e = plan("CREATE VIEW g AS SELECT auction, MAX(date_time) AS t FROM bids GROUP BY auction;\nSELECT * FROM TABLE(TUMBLE(TABLE g, DESCRIPTOR(t), INTERVAL '1' SECOND));").unwrap_err();
        assert!(
            e.message.contains("without windows gives updating rows"),
            "{e}"
        );
        let e = plan("CREATE TABLE plain (a BIGINT, t TIMESTAMP(3)) WITH ('connector' = 'filesystem', 'path' = '/p', 'format' = 'csv');\nSELECT * FROM TABLE(TUMBLE(TABLE plain, DESCRIPTOR(t), INTERVAL '1' SECOND));").unwrap_err();
        assert!(e.message.contains("declare WATERMARK FOR t AS"), "{e}");
        let e = plan("SELECT * FROM bid;").unwrap_err();
        assert!(
            e.message
                .contains("no table or view 'bid' (declared: bids)"),
            "{e}"
        );
    }

    #[test]
    fn over_aggregates_plan_onto_the_process_operator() {
        let p = plan("SELECT auction, SUM(price) OVER w, COUNT(*) OVER w FROM bids WINDOW w AS (PARTITION BY auction ORDER BY date_time ROWS BETWEEN 2 PRECEDING AND CURRENT ROW);").unwrap();
        assert!(!p.sinks[0].plan.updating());
        let text = explain(&p.sinks[0]);
        assert!(text.contains("Over: SUM(price) OVER"), "{text}");
        assert!(
            text.contains("per [auction] by event time, ROWS 2 PRECEDING"),
            "{text}"
        );
        let p = plan("SELECT MAX(price) OVER (ORDER BY date_time RANGE BETWEEN INTERVAL '5' SECOND PRECEDING AND CURRENT ROW) FROM bids;").unwrap();
        assert!(explain(&p.sinks[0]).contains("RANGE 5 s PRECEDING"));
        let e = plan("SELECT SUM(price) OVER (PARTITION BY auction ORDER BY price) FROM bids;")
            .unwrap_err();
        assert!(
            e.message.contains("ordered by the event-time column"),
            "{e}"
        );
        let e = plan("SELECT SUM(price) OVER (ORDER BY date_time), COUNT(*) OVER (PARTITION BY auction ORDER BY date_time) FROM bids;").unwrap_err();
        assert!(e.message.contains("the same window"), "{e}");
        let e = plan("SELECT SUM(price) OVER v FROM bids WINDOW w AS (ORDER BY date_time);")
            .unwrap_err();
        assert!(e.message.contains("no WINDOW v"), "{e}");
    }

    #[test]
    fn distinct_and_in_subqueries_plan_onto_group_aggregates_and_joins() {
        let p = plan("SELECT DISTINCT auction FROM bids;").unwrap();
        assert!(p.sinks[0].plan.updating());
        assert!(explain(&p.sinks[0]).contains("GroupAggregate: key [auction]"));
        let p =
            plan("SELECT price FROM bids WHERE price > 3 AND auction IN (SELECT auction FROM bids WHERE price > 100);")
                .unwrap();
        let text = explain(&p.sinks[0]);
        assert!(text.contains("Join"), "{text}");
        assert!(text.contains("GroupAggregate: key [auction]"), "{text}");
        let e = plan("SELECT DISTINCT * FROM bids;").unwrap_err();
        assert!(e.message.contains("name the columns"), "{e}");
        // NOT IN: with the subquery's counts (rows, non-NULL values) and its distinct values.
        let p =
            plan("SELECT price FROM bids WHERE auction NOT IN (SELECT bidder FROM bids);").unwrap();
        let text = explain(&p.sinks[0]);
        assert!(
            text.contains("auction NOT IN (SELECT bidder ...)"),
            "{text}"
        );
        assert!(text.contains("COUNT(*), COUNT(bidder)"), "{text}");
        assert_eq!(field_names(&p), ["price"]);
        let e = plan("SELECT price FROM bids WHERE auction IN (SELECT auction, price FROM bids);")
            .unwrap_err();
        assert!(e.message.contains("one column; this subquery has 2"), "{e}");
    }

    #[test]
    fn inserts_into_one_file_table_are_one_sink() {
        let p = plan(
            "CREATE TABLE f (a BIGINT) WITH ('connector' = 'filesystem', 'path' = '/o', 'format' = 'csv');
CREATE TABLE p (a BIGINT) WITH ('connector' = 'print');
INSERT INTO f SELECT auction FROM bids; INSERT INTO p SELECT price FROM bids;
INSERT INTO f SELECT bidder FROM bids; INSERT INTO p SELECT bidder FROM bids;",
        )
        .unwrap();
        let names: Vec<&str> = p
            .sinks
            .iter()
            .map(|s| s.table.as_ref().unwrap().name.as_str())
            .collect();
        assert_eq!(names, ["f", "p", "p"]);
        let Plan::Union { inputs } = &p.sinks[0].plan else {
            panic!("{}", explain(&p.sinks[0]))
        };
        assert_eq!(inputs.len(), 2);
    }

    #[test]
    fn joins_of_window_aggregations_of_the_same_windows_are_window_joins() {
        // The joined group keys (left index, right index), if the join is a window join.
        let keys = |sql: &str| -> Option<Vec<(usize, usize)>> {
            let p = plan(sql).unwrap();
            let mut at = &p.sinks[0].plan;
            while let Plan::Project { input, .. } | Plan::Filter { input, .. } = at {
                at = input;
            }
            assert!(matches!(at, Plan::Join { .. }), "{sql}");
            let keys = at.window_join().map(|w| w.keys);
            assert_eq!(
                explain(&p.sinks[0]).contains("(window join: "),
                keys.is_some(),
                "{sql}"
            );
            keys
        };
        let agg = |windows: &str, group: &str, aggs: &str| {
            format!(
                "SELECT {group}, {aggs} window_start, window_end FROM TABLE({windows}) GROUP BY {group}, window_start, window_end"
            )
        };
        let tumble = "TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '10' SECOND)";
        let hop =
            "HOP(TABLE bids, DESCRIPTOR(date_time), INTERVAL '2' SECOND, INTERVAL '10' SECOND)";
        let cumulate = "CUMULATE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '2' SECOND, INTERVAL '10' SECOND)";
        // Nexmark q8's shape: a group of two keys joined on one with a group of one; the
        // window columns renamed by projections; equal starts and ends.
        let l = agg(tumble, "auction, bidder", "");
        let r = format!(
            "SELECT auction AS a, window_start AS s, window_end AS e FROM ({}) x",
            agg(tumble, "auction", "COUNT(*) AS n,")
        );
        assert_eq!(
            keys(&format!(
                "SELECT L.bidder, R.a FROM ({l}) L JOIN ({r}) R ON L.auction = R.a AND L.window_start = R.s AND L.window_end = R.e;"
            )),
            Some(vec![(0, 0)])
        );
        // Two keys, in another order on the right; equal ends alone; hopping and cumulating
        // windows; a residual condition on both sides' aggregates.
        for windows in [hop, cumulate] {
            let l = agg(windows, "auction, bidder", "MAX(price) AS top,");
            let r = agg(windows, "bidder, auction", "SUM(price) AS total,");
            assert_eq!(
                keys(&format!(
                    "SELECT L.top, R.total FROM ({l}) L JOIN ({r}) R ON L.bidder = R.bidder AND L.auction = R.auction AND L.window_end = R.window_end AND L.top * 2 > R.total;"
                )),
                Some(vec![(1, 0), (0, 1)])
            );
        }
        // Not window joins: windows that differ (the same ends, other starts); a key equated
        // with an aggregate; no group key equated; window_start alone (for cumulating windows
        // that names several windows).
        let other = agg(
            "TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '5' SECOND)",
            "auction",
            "",
        );
        let l = agg(tumble, "auction", "COUNT(*) AS n,");
        for on in [
            format!(
                "({l}) L JOIN ({other}) R ON L.auction = R.auction AND L.window_end = R.window_end"
            ),
            format!("({l}) L JOIN ({l}) R ON L.auction = R.n AND L.window_end = R.window_end"),
            format!(
                "({l}) L JOIN ({l}) R ON L.window_start = R.window_start AND L.window_end = R.window_end"
            ),
        ] {
            assert_eq!(keys(&format!("SELECT L.n FROM {on};")), None, "{on}");
        }
        let c = agg(cumulate, "auction", "COUNT(*) AS n,");
        let p = plan(&format!(
            "SELECT L.n FROM ({c}) L JOIN ({c}) R ON L.auction = R.auction AND L.window_start = R.window_start;"
        ))
        .unwrap();
        assert!(!explain(&p.sinks[0]).contains("window join"));
    }

    #[test]
    fn joins_bounded_in_event_time_run_as_interval_joins() {
        let interval = |sql: &str| {
            let p = plan(sql).unwrap();
            let mut at = &p.sinks[0].plan;
            while let Plan::Project { input, .. } | Plan::Filter { input, .. } = at {
                at = input;
            }
            at.interval()
        };
        assert_eq!(
            interval(
                "SELECT a.price FROM bids a, bids b WHERE a.auction = b.auction AND b.date_time BETWEEN a.date_time - INTERVAL '1' SECOND AND a.date_time + INTERVAL '2' SECOND;"
            ),
            Some((-1000, 2000))
        );
        // Comparisons either way round; strict ones exclude the bound's ms.
        assert_eq!(
            interval(
                "SELECT a.price FROM bids a JOIN bids b ON a.auction = b.auction AND a.date_time < b.date_time AND a.date_time + INTERVAL '5' SECOND >= b.date_time;"
            ),
            Some((1, 5000))
        );
        // One bound only: the rows it does not limit are kept (as a regular join keeps them).
        assert_eq!(
            interval(
                "SELECT a.price FROM bids a, bids b WHERE a.auction = b.auction AND b.date_time > a.date_time;"
            ),
            Some((1, i64::MAX))
        );
        assert_eq!(
            interval(
                "SELECT a.price FROM bids a, bids b WHERE a.auction = b.auction AND b.date_time <= a.date_time - INTERVAL '1' SECOND;"
            ),
            Some((i64::MIN, -1000))
        );
        // Not on the event time: a regular join. Its inputs are append-only: it runs with both
        // ends open on the interval join, and its result is append-only.
        assert_eq!(
            interval(
                "SELECT a.price FROM bids a, bids b WHERE a.auction = b.auction AND b.price > a.price;"
            ),
            None
        );
        let p = plan(
            "SELECT a.price FROM bids a, bids b WHERE a.auction = b.auction AND b.price > a.price;",
        )
        .unwrap();
        let mut join = &p.sinks[0].plan;
        while let Plan::Project { input, .. } | Plan::Filter { input, .. } = join {
            join = input;
        }
        assert_eq!(join.interval_join_bounds(), Some((i64::MIN, i64::MAX)));
        assert!(!p.sinks[0].plan.updating());
        assert!(explain(&p.sinks[0]).contains("inputs append-only: both sides kept"));
        // An outer join, or an updating input, stays on the incremental collections.
        for sql in [
            "SELECT a.price FROM bids a LEFT JOIN bids b ON a.auction = b.auction;",
            "SELECT a.price FROM bids a JOIN (SELECT auction, COUNT(*) AS n FROM bids GROUP BY auction) b ON a.auction = b.auction;",
        ] {
            let p = plan(sql).unwrap();
            assert!(p.sinks[0].plan.updating(), "{sql}");
            assert!(
                explain(&p.sinks[0]).contains("incremental collections: both sides kept"),
                "{sql}"
            );
        }
        let p = plan("SELECT a.price FROM bids a, bids b WHERE a.auction = b.auction AND b.date_time BETWEEN a.date_time AND a.date_time + INTERVAL '2' SECOND;").unwrap();
        assert!(
            explain(&p.sinks[0]).contains("interval join: right time - left time in [0, 2000] ms")
        );
        assert!(!p.sinks[0].plan.updating());
        // Window joins: equal window_end of window table functions' rows (up to a window's
        // length apart) or of window aggregations (all at window_time).
        let rows =
            "SELECT * FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '5' SECOND))";
        assert_eq!(
            interval(&format!(
                "SELECT L.price FROM ({rows}) L JOIN ({rows}) R ON L.window_end = R.window_end AND L.auction = R.auction;"
            )),
            Some((-4999, 4999))
        );
        let counts = "SELECT window_start, window_end, auction, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '5' SECOND)) GROUP BY window_start, window_end, auction";
        assert_eq!(
            interval(&format!(
                "SELECT L.n FROM ({counts}) L JOIN ({counts}) R ON L.window_start = R.window_start AND L.window_end = R.window_end AND L.auction = R.auction;"
            )),
            Some((0, 0))
        );
        // window_start alone does not make a window join (other windows may share it).
        assert_eq!(
            interval(&format!(
                "SELECT L.price FROM ({rows}) L JOIN ({rows}) R ON L.window_start = R.window_start AND L.auction = R.auction;"
            )),
            None
        );
        // A bound written on a window aggregation's window_end (its rows at window_time, one
        // before it), in WHERE: part of the inner join's condition, so an interval join.
        let maxima = "SELECT MAX(price) AS m, window_end AS t FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '10' SECOND)) GROUP BY window_start, window_end";
        let q7 = format!(
            "SELECT b.auction FROM bids b JOIN ({maxima}) w ON b.price = w.m WHERE b.date_time BETWEEN w.t - INTERVAL '10' SECOND AND w.t;"
        );
        assert_eq!(interval(&q7), Some((-1, 9999)));
        assert!(!plan(&q7).unwrap().sinks[0].plan.updating());
        // The same bound on an outer join stays a filter over a regular join.
        assert_eq!(
            interval(&format!(
                "SELECT b.auction FROM bids b LEFT JOIN ({maxima}) w ON b.price = w.m WHERE b.date_time BETWEEN w.t - INTERVAL '10' SECOND AND w.t;"
            )),
            None
        );
    }

    #[test]
    fn conditions_on_one_side_of_an_inner_join_filter_that_side() {
        for sql in [
            "SELECT a.price FROM bids a JOIN bids b ON a.auction = b.bidder AND a.price > 10 AND b.price < 5 AND a.price + b.price > 12;",
            "SELECT a.price FROM bids a JOIN bids b ON a.auction = b.bidder WHERE a.price > 10 AND b.price < 5 AND a.price + b.price > 12;",
            "SELECT a.price FROM bids a, bids b WHERE a.auction = b.bidder AND a.price > 10 AND b.price < 5 AND a.price + b.price > 12;",
        ] {
            let p = plan(sql).unwrap();
            let Plan::Join {
                left,
                right,
                residual,
                ..
            } = p.sinks[0].plan.inputs()[0]
            else {
                panic!("{sql}: a join under the projection")
            };
            let cond = |side: &Plan| match side {
                Plan::Filter { cond, .. } => cond.text.clone(),
                other => panic!("{sql}: no filter over {other:?}"),
            };
            assert_eq!(cond(left), "a.price > 10", "{sql}");
            assert_eq!(cond(right), "b.price < 5", "{sql}");
            assert_eq!(
                residual.as_ref().map(|r| r.text.as_str()),
                Some("a.price + b.price > 12"),
                "{sql}"
            );
        }
        // Parentheses around the conjunction, however deep.
        plan(
            "SELECT a.price FROM bids a JOIN bids b ON ((a.auction = b.bidder AND a.price > 10));",
        )
        .unwrap();
        // An outer join keeps them where they are (WHERE above it, as written).
        let p = plan("SELECT a.price FROM bids a LEFT JOIN bids b ON a.auction = b.bidder WHERE b.price < 5;").unwrap();
        assert!(matches!(p.sinks[0].plan.inputs()[0], Plan::Filter { .. }));
    }

    #[test]
    fn group_by_the_windows_of_a_window_aggregation_is_a_window_aggregation() {
        // Nexmark q5's shape: per window the largest of the per-auction counts, joined back on
        // the window's bounds.
        let counts = "SELECT auction, COUNT(*) AS num, window_start AS starttime, window_end AS endtime FROM TABLE(HOP(TABLE bids, DESCRIPTOR(date_time), INTERVAL '2' SECOND, INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end";
        let most = format!(
            "SELECT MAX(c.num) AS maxn, c.starttime, c.endtime FROM ({counts}) c GROUP BY c.starttime, c.endtime"
        );
        let p = plan(&format!("{most};")).unwrap();
        let text = explain(&p.sinks[0]);
        assert!(
            text.contains("WindowAggregate: the input's windows on event time, key [], MAX(c.num)"),
            "{text}"
        );
        assert!(!p.sinks[0].plan.updating());
        assert_eq!(
            field_names(&p),
            ["maxn", "starttime", "endtime"],
            "the window columns keep the names they were grouped by"
        );
        let p = plan(&format!(
            "SELECT a.auction, a.num FROM ({counts}) a JOIN ({most}) m ON a.starttime = m.starttime AND a.endtime = m.endtime AND a.num >= m.maxn;"
        ))
        .unwrap();
        let text = explain(&p.sinks[0]);
        assert!(
            text.contains("(interval join: right time - left time in [0, 0] ms"),
            "{text}"
        );
        assert!(!p.sinks[0].plan.updating());
        // Grouped by window_end alone, or over rows that do not sit at their window's time (a
        // window table function's), it stays an updating aggregation.
        let p = plan(&format!(
            "SELECT MAX(c.num), c.endtime FROM ({counts}) c GROUP BY c.endtime;"
        ))
        .unwrap();
        assert!(p.sinks[0].plan.updating());
        let p = plan("SELECT COUNT(*), r.window_start, r.window_end FROM (SELECT * FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '5' SECOND))) r GROUP BY r.window_start, r.window_end;").unwrap();
        assert!(p.sinks[0].plan.updating());
    }

    #[test]
    fn exists_subqueries_plan_onto_joins_with_their_distinct_keys() {
        let p = plan("SELECT b.price FROM bids b WHERE EXISTS (SELECT * FROM bids o WHERE o.bidder = b.auction AND o.price > 100);").unwrap();
        let text = explain(&p.sinks[0]);
        assert!(text.contains("Join: Inner on b.auction = EXPR$0"), "{text}");
        assert!(text.contains("GroupAggregate: key [EXPR$0]"), "{text}");
        assert!(p.sinks[0].plan.updating());
        // NOT EXISTS: a left join keeping the rows without a match; several keys.
        let p = plan("SELECT price FROM bids b WHERE NOT EXISTS (SELECT 1 FROM bids o WHERE b.auction = o.auction AND o.bidder = b.bidder);").unwrap();
        let text = explain(&p.sinks[0]);
        assert!(text.contains("Join: Left"), "{text}");
        assert!(text.contains("NOT EXISTS"), "{text}");
        assert!(text.contains("key [EXPR$0, EXPR$1]"), "{text}");
        let names = field_names(&p);
        assert_eq!(names, ["price"]);
        let e = plan(
            "SELECT price FROM bids b WHERE EXISTS (SELECT 1 FROM bids o WHERE o.price > b.price);",
        )
        .unwrap_err();
        assert!(
            e.message.contains("tied to the outer query by equalities"),
            "{e}"
        );
        let e =
            plan("SELECT price FROM bids b WHERE EXISTS (SELECT 1 FROM bids o WHERE o.price > 3);")
                .unwrap_err();
        assert!(e.message.contains("without an equality"), "{e}");
        let e = plan("SELECT price FROM bids b WHERE EXISTS (SELECT 1 FROM bids o WHERE o.auction = b.auction AND b.price > 3);").unwrap_err();
        assert!(e.message.contains("put it in the outer WHERE"), "{e}");
        let e = plan("SELECT price FROM bids b WHERE EXISTS (SELECT o.auction FROM bids o WHERE o.auction = b.auction GROUP BY o.auction);").unwrap_err();
        assert!(e.message.contains("grouped"), "{e}");
        let e = plan("SELECT price FROM bids b WHERE EXISTS (SELECT 1 FROM bids o WHERE o.nope = b.auction);").unwrap_err();
        assert!(e.message.contains("nope"), "{e}");
    }
}
