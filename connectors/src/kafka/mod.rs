//! Kafka: a source that reads topics with its offsets in Tidal's checkpoints and a watermark per
//! partition, and a sink that delivers at least once ([`KafkaSink`]).
//!
//! Built on librdkafka (the `rdkafka` crate, compiled from its bundled sources). A
//! [`KafkaSource`] names the brokers, the topics, where to start, how to decode each message's
//! value ([`KafkaFormat`]) and whether to stop at the end offsets it finds when the job starts
//! ([`KafkaSource::bounded`]). [`KafkaSources::kafka`] turns it into a stream.
//!
//! **Partitions and workers.** Every worker fetches the topics' metadata when the job is built,
//! lists their partitions in the order the topics were given (partitions ascending), and takes
//! partition `k` when `k % workers == worker index`. Each worker assigns its partitions to its own
//! consumer (no consumer-group rebalancing: Tidal, not the broker, decides who reads what, as
//! Flink's source does), starting at the offsets [`StartFrom`] resolves to when the job starts.
//! An unbounded source also looks for partitions that appear while it runs
//! ([`KafkaSource::partition_discovery`], every 5 minutes by default): each goes to the worker
//! its topic and partition hash to, and is read from its earliest record.
//!
//! **Checkpoints.** A source's position is, for each of its partitions, the offset of the next
//! record it has not yet handed on (and, when bounded, the end offset it stops at). A restore on
//! any number of workers shares the partitions of every former instance out anew (partition `k`
//! of them all to worker `k % workers`) and seeks each to its offset. Partitions the checkpoint
//! does not know: of a topic it knows, or matching the pattern, they appeared after the job
//! started and are read from their earliest record (not at all by a bounded source); of a topic
//! added to the list since, from [`StartFrom`]. A partition an instance had read to its end before
//! the cut is not read again. Nothing is read twice or skipped: the
//! checkpoint's cut and the offsets are taken together. With a [`KafkaSource::group_id`], each
//! worker also commits its partitions' offsets in every completed checkpoint to the group (for
//! monitoring, and for jobs that start from [`StartFrom::Committed`]); a restore never reads them.
//! [`checkpointed_offsets`] decodes a checkpoint's positions.
//!
//! **Watermarks per partition.** The reader reports each partition as a split of its own, so the
//! source's watermark is the least of its partitions' (with the strategy's idleness, an empty
//! partition does not hold it back): a partition that lags does not find its records late because
//! another ran ahead, as with Flink's per-partition watermarks.
//!
//! **Errors.** Brokers that cannot be reached are retried, with a line on stderr each time, until
//! [`KafkaSource::connect_timeout`] (30 s by default); the job then fails naming the brokers. A
//! topic that does not exist fails the job naming it. A value that does not decode follows the
//! source's [`OnError`] policy: fail naming the topic, partition and offset (the default), or set
//! the message aside in a dead-letter directory with its offset and go on. Properties given with
//! [`KafkaSource::property`] go to librdkafka as they are (security settings such as
//! `security.protocol` and `sasl.*`, fetch sizes, timeouts); a property librdkafka does not know
//! fails the job naming it. librdkafka is built with OpenSSL: TLS (`security.protocol=SSL`,
//! `ssl.*`) and SASL (`SASL_SSL`/`SASL_PLAINTEXT` with `PLAIN`, `SCRAM-SHA-256/512` or
//! `OAUTHBEARER`) work; Kerberos (`GSSAPI`) is not built in. A TLS handshake or a login the
//! brokers refuse while connecting (a source listing its partitions, a sink before its first
//! acknowledged message) fails the job at once (retrying cannot mend a wrong password or an
//! unknown certificate authority), naming librdkafka's reason; any other connection trouble,
//! and such a refusal once connected, is retried as above, and the failure at the deadline says
//! what librdkafka last reported.

mod errors;
mod format;
mod sink;
mod source;

pub use format::{
    Bytes, Csv, Debezium, Json, KafkaFormat, KafkaRecord, Message, Upsert, Utf8, WithMetadata,
};
pub use sink::{KafkaSink, KafkaSinks};
pub use source::{Commits, KafkaReader, PartitionOffset, checkpointed_offsets};

use std::time::Duration;

use tidal_engine::{DataStream, Env, WatermarkStrategy};

use crate::deadletter::OnError;

/// How often unbounded sources look for new partitions unless told otherwise.
const DEFAULT_DISCOVERY: Duration = Duration::from_secs(300);

/// Where a Kafka source starts reading the partitions it has no checkpointed offset for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The oldest record still in each partition (the default).
    #[default]
    Earliest,
    /// The end of each partition when the job starts: only records written after.
    Latest,
    /// The first record whose timestamp is at or after this time (ms since the epoch), or the
    /// end of the partition if there is none.
    Timestamp(i64),
    /// The offsets the consumer group ([`KafkaSource::group_id`]) last committed; the oldest
    /// record where the group has none.
    Committed,
}

/// A Kafka source: brokers, topics, where to start, the value format `F` and what to do with
/// values that do not decode. See the [module docs](self).
///
/// ```no_run
/// use tidal_connectors::prelude::*;
/// use tidal_connectors::kafka::{KafkaSource, KafkaSources, StartFrom};
/// #[derive(serde::Deserialize, serde::Serialize, Clone, Debug)]
/// struct Bid { auction: u64, price: u64 }
/// let bids: Vec<Bid> = tidal_engine::Job::local(2).run(|env| {
///     let source = KafkaSource::new("localhost:9092", &["bids"])
///         .json::<Bid>()
///         .start_from(StartFrom::Earliest)
///         .bounded();
///     env.kafka(source).collect()
/// }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct KafkaSource<F> {
    brokers: String,
    topics: Vec<String>,
    /// Instead of `topics`: every topic whose whole name the regular expression matches.
    pattern: Option<String>,
    start: StartFrom,
    bounded: bool,
    group: Option<String>,
    commit_offsets: Option<bool>,
    properties: Vec<(String, String)>,
    on_error: OnError,
    connect_timeout: Duration,
    discovery: Duration,
    rate: Option<f64>,
    format: F,
}

impl KafkaSource<Bytes> {
    /// Reads `topics` from the brokers `brokers` (`host:port`, comma-separated); values as raw
    /// bytes until another format is chosen.
    ///
    /// ```
    /// use tidal_connectors::kafka::KafkaSource;
    /// let source = KafkaSource::new("localhost:9092", &["bids", "auctions"]).utf8().bounded();
    /// assert_eq!(source.topics(), ["bids", "auctions"]);
    /// ```
    pub fn new(brokers: impl Into<String>, topics: &[&str]) -> Self {
        KafkaSource {
            brokers: brokers.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            pattern: None,
            start: StartFrom::Earliest,
            bounded: false,
            group: None,
            commit_offsets: None,
            properties: Vec::new(),
            on_error: OnError::Fail,
            connect_timeout: Duration::from_secs(30),
            discovery: DEFAULT_DISCOVERY,
            rate: None,
            format: Bytes,
        }
    }
}

impl KafkaSource<Bytes> {
    /// Reads every topic whose whole name matches the regular expression `pattern` (`regex`
    /// syntax; topics starting with `__`, Kafka's own, are left out), found when the job starts;
    /// no match fails the job naming the pattern.
    ///
    /// ```
    /// use tidal_connectors::kafka::KafkaSource;
    /// let _clicks = KafkaSource::pattern("localhost:9092", "clicks-.*").utf8();
    /// ```
    pub fn pattern(brokers: impl Into<String>, pattern: impl Into<String>) -> Self {
        KafkaSource {
            pattern: Some(pattern.into()),
            ..KafkaSource::new(brokers, &[])
        }
    }
}

impl<F: KafkaFormat> KafkaSource<F> {
    /// Decodes values with `format` instead.
    ///
    /// ```
    /// use tidal_connectors::kafka::{KafkaSource, Utf8};
    /// let _lines = KafkaSource::new("localhost:9092", &["lines"]).format(Utf8);
    /// ```
    pub fn format<G: KafkaFormat>(self, format: G) -> KafkaSource<G> {
        KafkaSource {
            brokers: self.brokers,
            topics: self.topics,
            pattern: self.pattern,
            start: self.start,
            bounded: self.bounded,
            group: self.group,
            commit_offsets: self.commit_offsets,
            properties: self.properties,
            on_error: self.on_error,
            connect_timeout: self.connect_timeout,
            discovery: self.discovery,
            rate: self.rate,
            format,
        }
    }
    /// Values as UTF-8 text ([`Utf8`]).
    pub fn utf8(self) -> KafkaSource<Utf8> {
        self.format(Utf8)
    }
    /// Values as JSON decoded with serde into `T` ([`Json`]).
    pub fn json<T: serde::de::DeserializeOwned + 'static>(self) -> KafkaSource<Json<T>> {
        self.format(Json::new())
    }
    /// Values as one CSV row each, fields matched to `T` by position ([`Csv`]).
    pub fn csv<T: serde::de::DeserializeOwned + 'static>(self) -> KafkaSource<Csv<T>> {
        self.format(Csv::new())
    }
    /// Debezium JSON change events with rows of type `T` ([`Debezium`]).
    pub fn debezium_json<T: serde::de::DeserializeOwned + 'static>(
        self,
    ) -> KafkaSource<Debezium<T>> {
        self.format(Debezium::new())
    }
    /// Upserts: JSON keys `K`, JSON values `V`, null values deleting ([`Upsert`]), as
    /// `(key, Option<value>)` for `upsert_by_key()`.
    pub fn upsert_json<K, V>(self) -> KafkaSource<Upsert<K, V>>
    where
        K: serde::de::DeserializeOwned + 'static,
        V: serde::de::DeserializeOwned + 'static,
    {
        self.format(Upsert::new())
    }
    /// Each message whole ([`KafkaRecord`]): topic, partition, offset, timestamp, key, headers
    /// and the value decoded by the current format (`None` for a tombstone).
    pub fn with_metadata(self) -> KafkaSource<WithMetadata<F>> {
        let inner = self.format.clone();
        self.format(WithMetadata(inner))
    }
    /// Where to start in partitions without a checkpointed offset.
    pub fn start_from(mut self, start: StartFrom) -> Self {
        self.start = start;
        self
    }
    /// Reads each partition up to the end offset it has when the job starts, then ends (the
    /// source's final watermark); without it the source reads until the job is stopped.
    pub fn bounded(mut self) -> Self {
        self.bounded = true;
        self
    }
    /// The consumer group (`group.id`): where [`StartFrom::Committed`] looks, and where the
    /// offsets of completed checkpoints are committed (see
    /// [`commit_offsets_on_checkpoint`](Self::commit_offsets_on_checkpoint)). Tidal assigns
    /// partitions itself; the group does not decide who reads what.
    pub fn group_id(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }
    /// Whether each worker commits its partitions' offsets to the consumer group when a
    /// checkpoint completes (the offsets in that checkpoint), so that the group's lag shows in
    /// Kafka's monitoring tools and a new job can start from [`StartFrom::Committed`]. On by
    /// default when a [`group_id`](Self::group_id) is given, off otherwise; without checkpoints
    /// nothing is committed. Commits are asynchronous and a refused one is logged, not fatal:
    /// a restore reads from the offsets in the checkpoint, never from the group's.
    ///
    /// ```
    /// use tidal_connectors::kafka::KafkaSource;
    /// let source = KafkaSource::new("localhost:9092", &["bids"])
    ///     .group_id("bid-monitor")
    ///     .commit_offsets_on_checkpoint(false);
    /// ```
    pub fn commit_offsets_on_checkpoint(mut self, commit: bool) -> Self {
        self.commit_offsets = Some(commit);
        self
    }
    /// A librdkafka consumer property, passed as it is (e.g. `security.protocol`,
    /// `fetch.max.bytes`).
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }
    /// What to do with a value that does not decode (default: fail the job).
    pub fn on_error(mut self, policy: OnError) -> Self {
        self.on_error = policy;
        self
    }
    /// How long to keep trying brokers that cannot be reached before the job fails.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
    /// How often an unbounded source looks for partitions that appeared since the job started:
    /// partitions added to its topics and, with a [`pattern`](Self::pattern), new topics that
    /// match. Each found partition goes to one worker (by a hash of topic and partition) and is
    /// read from its earliest record, so nothing written to it is missed. Every 5 minutes by
    /// default (as Flink's Kafka source); `Duration::ZERO` turns it off. A bounded source reads
    /// the partitions there were at start.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidal_connectors::kafka::KafkaSource;
    /// let source = KafkaSource::pattern("localhost:9092", "clicks-.*")
    ///     .partition_discovery(Duration::from_secs(10));
    /// ```
    pub fn partition_discovery(mut self, every: Duration) -> Self {
        self.discovery = every;
        self
    }
    /// Reads at most this many records per second over the whole job.
    pub fn rate(mut self, records_per_second: f64) -> Self {
        self.rate = Some(records_per_second);
        self
    }
    /// The topics read.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }
}

/// Kafka sources on an [`Env`].
pub trait KafkaSources<'s> {
    /// A stream of the source's decoded values (records) with ingestion-time timestamps. The
    /// consumers connect and the partitions are shared out when this is called; an error (no
    /// brokers within the timeout, an unknown topic) fails the job before it reads anything.
    ///
    /// ```no_run
    /// use tidal_connectors::prelude::*;
    /// use tidal_connectors::kafka::{KafkaSource, KafkaSources};
    /// tidal_engine::Job::local(1).run(|env| {
    ///     env.kafka(KafkaSource::new("localhost:9092", &["lines"]).utf8().bounded()).print();
    /// }).unwrap();
    /// ```
    fn kafka<F: KafkaFormat>(&mut self, source: KafkaSource<F>) -> DataStream<'s, F::Item>;

    /// Like [`kafka`](Self::kafka), with timestamps and watermarks from `strategy`; each
    /// partition has its own watermark.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tidal_connectors::prelude::*;
    /// use tidal_connectors::kafka::{KafkaRecord, KafkaSource, KafkaSources};
    /// use tidal_engine::WatermarkStrategy;
    /// tidal_engine::Job::local(1).run(|env| {
    ///     // Event time from each record's Kafka timestamp, 2 s out of order at most.
    ///     let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(2))
    ///         .with_timestamps(|r: &KafkaRecord<String>| r.timestamp.unwrap_or(0))
    ///         .with_idleness(Duration::from_secs(5));
    ///     let source = KafkaSource::new("localhost:9092", &["lines"]).utf8().with_metadata();
    ///     env.kafka_with(source, strategy).collect()
    /// }).unwrap();
    /// ```
    fn kafka_with<F: KafkaFormat>(
        &mut self,
        source: KafkaSource<F>,
        strategy: WatermarkStrategy<F::Item>,
    ) -> DataStream<'s, F::Item>;
}

impl<'s> KafkaSources<'s> for Env<'s> {
    fn kafka<F: KafkaFormat>(&mut self, source: KafkaSource<F>) -> DataStream<'s, F::Item> {
        self.kafka_with(source, WatermarkStrategy::ingestion_time())
    }

    fn kafka_with<F: KafkaFormat>(
        &mut self,
        source: KafkaSource<F>,
        strategy: WatermarkStrategy<F::Item>,
    ) -> DataStream<'s, F::Item> {
        let name = format!("kafka#{}", self.context().next_operator_id());
        let ctx = std::rc::Rc::clone(self.context());
        match KafkaReader::connect(source, &ctx, &name) {
            Ok(reader) => self.source_with(&name, reader, strategy),
            Err(e) => {
                // The job fails with the reason before it reads anything; the source is empty.
                ctx.fail(e);
                self.source_with(
                    &name,
                    crate::collection::NoRecords(std::marker::PhantomData),
                    WatermarkStrategy::ingestion_time(),
                )
            }
        }
    }
}
