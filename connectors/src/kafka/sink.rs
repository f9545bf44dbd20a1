//! The Kafka sink, at least once: every record is sent as it arrives, and a checkpoint completes
//! only once every record before its cut has been acknowledged by the brokers.

use std::cell::RefCell;
use std::fmt::Display;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use super::errors::{ClientErrors, SECURITY_PROPERTIES, refused};
use serde::Serialize;
use tidal_engine::state::{EntryWriter, KeyedStore, Owner};
use tidal_engine::{DataStream, Error, Time, timely};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

/// Encodes a record into bytes (the message's value or key).
type Encode<T> = Rc<dyn Fn(&T, &mut Vec<u8>) -> Result<(), String>>;

/// Whether a record is sent as a tombstone.
type Tombstone<T> = Rc<dyn Fn(&T) -> bool>;
/// A record's own timestamp for its message (ms since the epoch), when it has one.
type Stamp<T> = Rc<dyn Fn(&T) -> Option<i64>>;

/// A Kafka sink: brokers, topic, how a record becomes a message's value (and key), and librdkafka
/// producer properties. Given to [`KafkaSinks::write_kafka`].
///
/// **Delivery: at least once.** Each worker has its own producer and sends each record as it
/// arrives. A checkpoint's part for the sink is written only after the producer has flushed —
/// every record before the cut acknowledged by the brokers — so after a failure the restored job
/// (which reads the sources again from the cut) loses nothing; records sent after the cut are
/// sent again, so a consumer may see a record twice. A message the brokers refuse (after
/// librdkafka's retries, within `delivery.timeout.ms`) fails the job with the broker's error;
/// so does a flush that does not finish within [`flush_timeout`](Self::flush_timeout).
///
/// The message's timestamp is the record's time (its event time, or the processing time of an
/// ingestion-time source), or what [`timestamp`](Self::timestamp) takes from it; the partition is chosen by librdkafka from the key (no key: spread).
///
/// ```no_run
/// use tidal_connectors::prelude::*;
/// use tidal_connectors::kafka::{KafkaSink, KafkaSinks};
/// #[derive(serde::Serialize, serde::Deserialize, Clone)]
/// struct Total { auction: u64, count: u64 }
/// tidal_engine::Job::local(2).run(|env| {
///     env.from_iter(vec![Total { auction: 7, count: 3 }])
///         .write_kafka(KafkaSink::json("localhost:9092", "totals").key(|t: &Total| t.auction.to_string()));
/// }).unwrap();
/// ```
pub struct KafkaSink<T> {
    brokers: String,
    topic: String,
    value: Encode<T>,
    key: Option<Encode<T>>,
    /// Records sent as tombstones (a key and no value).
    tombstone: Option<Tombstone<T>>,
    /// Messages' timestamps taken from the records.
    timestamp: Option<Stamp<T>>,
    properties: Vec<(String, String)>,
    flush_timeout: Duration,
}

impl<T: 'static> KafkaSink<T> {
    /// Values encoded by `encode`.
    ///
    /// ```
    /// use tidal_connectors::kafka::KafkaSink;
    /// let _sink = KafkaSink::with_encoder("localhost:9092", "squares", |x: &u64, out: &mut Vec<u8>| {
    ///     out.extend_from_slice(&(x * x).to_be_bytes());
    ///     Ok(())
    /// });
    /// ```
    pub fn with_encoder(
        brokers: impl Into<String>,
        topic: impl Into<String>,
        encode: impl Fn(&T, &mut Vec<u8>) -> Result<(), String> + 'static,
    ) -> Self {
        KafkaSink {
            brokers: brokers.into(),
            topic: topic.into(),
            value: Rc::new(encode),
            key: None,
            tombstone: None,
            timestamp: None,
            properties: Vec::new(),
            flush_timeout: Duration::from_secs(60),
        }
    }
    /// Values as JSON (serde).
    ///
    /// ```
    /// let _sink = tidal_connectors::kafka::KafkaSink::<(u64, String)>::json("localhost:9092", "out");
    /// ```
    pub fn json(brokers: impl Into<String>, topic: impl Into<String>) -> Self
    where
        T: Serialize,
    {
        Self::with_encoder(brokers, topic, |t: &T, out: &mut Vec<u8>| {
            serde_json::to_writer(out, t).map_err(|e| e.to_string())
        })
    }
    /// Values as text (`Display`).
    ///
    /// ```
    /// let _sink = tidal_connectors::kafka::KafkaSink::<String>::text("localhost:9092", "lines");
    /// ```
    pub fn text(brokers: impl Into<String>, topic: impl Into<String>) -> Self
    where
        T: Display,
    {
        Self::with_encoder(brokers, topic, |t: &T, out: &mut Vec<u8>| {
            use std::io::Write;
            write!(out, "{t}").map_err(|e| e.to_string())
        })
    }
    /// Each message's key: `key(record)`'s bytes (records with the same key go to the same
    /// partition).
    pub fn key<K: AsRef<[u8]>>(mut self, key: impl Fn(&T) -> K + 'static) -> Self {
        self.key = Some(Rc::new(move |t: &T, out: &mut Vec<u8>| {
            out.extend_from_slice(key(t).as_ref());
            Ok(())
        }));
        self
    }
    /// Records for which `is_tombstone` holds are sent as tombstones: their key and no value
    /// (what compacted topics and upsert readers take as a deletion of the key).
    ///
    /// ```
    /// use tidal_connectors::kafka::KafkaSink;
    /// // (key, Some(value)) upserts, (key, None) deletions.
    /// let _sink = KafkaSink::with_encoder("localhost:9092", "latest", |u: &(String, Option<u64>), out: &mut Vec<u8>| {
    ///     out.extend_from_slice(u.1.unwrap_or(0).to_string().as_bytes());
    ///     Ok(())
    /// })
    /// .key(|u: &(String, Option<u64>)| u.0.clone())
    /// .tombstone_if(|u: &(String, Option<u64>)| u.1.is_none());
    /// ```
    pub fn tombstone_if(mut self, is_tombstone: impl Fn(&T) -> bool + 'static) -> Self {
        self.tombstone = Some(Rc::new(is_tombstone));
        self
    }
    /// Each message's timestamp (ms since the epoch) taken from its record; a record for which
    /// `stamp` gives `None` keeps its time.
    ///
    /// ```
    /// use tidal_connectors::kafka::KafkaSink;
    /// // (name, ms): each message stamped with the record's own time.
    /// let _sink = KafkaSink::<(String, i64)>::json("localhost:9092", "events")
    ///     .timestamp(|(_, ms): &(String, i64)| Some(*ms));
    /// ```
    pub fn timestamp(mut self, stamp: impl Fn(&T) -> Option<i64> + 'static) -> Self {
        self.timestamp = Some(Rc::new(stamp));
        self
    }
    /// A librdkafka producer property, passed as it is (e.g. `linger.ms`, `compression.type`,
    /// `delivery.timeout.ms`).
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }
    /// How long a checkpoint, or the end of the input, waits for the brokers to acknowledge what
    /// was sent before the job fails (default 60 s).
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }
}

/// Kafka sinks on a [`DataStream`].
pub trait KafkaSinks<'s, T> {
    /// Sends every record to Kafka, at least once (see [`KafkaSink`]).
    ///
    /// ```no_run
    /// use tidal_connectors::prelude::*;
    /// use tidal_connectors::kafka::{KafkaSink, KafkaSinks};
    /// tidal_engine::Job::local(1).run(|env| {
    ///     env.from_iter(vec!["a".to_string()]).write_kafka(KafkaSink::text("localhost:9092", "lines"));
    /// }).unwrap();
    /// ```
    fn write_kafka(self, sink: KafkaSink<T>);
}

/// Delivery reports of one producer: the first error, for the worker to fail the job with,
/// whether any message was acknowledged; and what librdkafka said about its connections.
#[derive(Clone, Default)]
struct Reports {
    failed: Arc<Mutex<Option<String>>>,
    delivered: Arc<std::sync::atomic::AtomicBool>,
    errors: ClientErrors,
}

impl Reports {
    /// A TLS or login failure while the producer has not yet had a message acknowledged (a
    /// wrong setting, not trouble a working connection meets and librdkafka retries).
    fn refused(&self) -> Option<String> {
        if self.delivered.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        self.errors.fatal()
    }
}

impl ClientContext for Reports {
    fn log(&self, level: RDKafkaLogLevel, _facility: &str, line: &str) {
        self.errors.log(level, line);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        self.errors.record(&error, reason);
    }
}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_ok() {
            self.delivered
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if let Err((e, _)) = result {
            let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            failed.get_or_insert_with(|| e.to_string());
        }
    }
}

/// The sink's part of a checkpoint: nothing to restore, but the part is written only once the
/// producer has flushed (every record before the cut acknowledged).
struct Flush {
    producer: Rc<ThreadedProducer<Reports>>,
    reports: Reports,
    timeout: Duration,
    describe: String,
}

impl Flush {
    /// Flushes, and says whether any message was refused.
    fn flush(&self) -> tidal_engine::Result<()> {
        self.producer.flush(self.timeout).map_err(|e| {
            self.check().err().unwrap_or_else(|| {
                Error::external(format!(
                    "{}: the brokers did not acknowledge every message within {:?} ({e}{})",
                    self.describe,
                    self.timeout,
                    self.reports.errors.last_said()
                ))
            })
        })?;
        self.check()
    }
    /// Fails on a refused message, or on a TLS or authentication failure before any message was
    /// acknowledged (which retrying cannot mend: see the Kafka module's docs).
    fn check(&self) -> tidal_engine::Result<()> {
        if let Some(reason) = self.reports.refused() {
            return Err(Error::config(refused(&self.describe, &reason)));
        }
        let failed = self
            .reports
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match failed.as_ref() {
            Some(e) => Err(Error::external(format!(
                "{}: a message was refused: {e}",
                self.describe
            ))),
            None => Ok(()),
        }
    }
}

impl KeyedStore for Flush {
    type Key = String;
    type Entry = ();
    const ROUTED: bool = false;
    fn key_count(&self) -> usize {
        0
    }
    fn write_entries(
        &self,
        _cut: Time,
        _out: &mut EntryWriter<'_, String>,
    ) -> tidal_engine::Result<()> {
        self.flush()
    }
    fn restore(&mut self, _entries: Vec<(String, ())>, _owner: Owner) -> tidal_engine::Result<()> {
        Ok(())
    }
}

impl<'s, T: 'static> KafkaSinks<'s, T> for DataStream<'s, T> {
    fn write_kafka(self, sink: KafkaSink<T>) {
        let ctx = self.context().clone();
        let describe = format!(
            "Kafka sink to topic '{}' on brokers {}",
            sink.topic, sink.brokers
        );
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &sink.brokers);
        for (k, v) in &sink.properties {
            config.set(k, v);
        }
        let reports = Reports::default();
        let producer: ThreadedProducer<Reports> = match config.create_with_context(reports.clone())
        {
            Ok(p) => p,
            Err(e) => {
                ctx.fail(Error::config(format!(
                    "{describe}: the producer cannot be made ({e}); check the properties given with .property()"
                )));
                return;
            }
        };
        let producer = Rc::new(producer);
        let flush = Rc::new(RefCell::new(Flush {
            producer: Rc::clone(&producer),
            reports,
            timeout: sink.flush_timeout,
            describe: describe.clone(),
        }));
        let KafkaSink {
            topic,
            value,
            key,
            tombstone,
            timestamp,
            ..
        } = sink;
        let _ = self.then("write_kafka", move |input, name| {
            ctx.register_state(name, Rc::clone(&flush));
            let mut failed = false;
            let (mut v, mut k) = (Vec::new(), Vec::new());
            input.unary_frontier::<CapacityContainerBuilder<Vec<((), Time)>>, _, _, _>(
                Pipeline,
                name,
                move |_, _| {
                    move |(input, frontier), _output| {
                        input.for_each(|_, data| {
                            for (record, time) in data.drain(..) {
                                if failed {
                                    continue;
                                }
                                if let Err(e) = send(
                                    &producer,
                                    (&topic, &value, &key, &tombstone, &timestamp),
                                    &record,
                                    time,
                                    (&mut v, &mut k),
                                ) {
                                    ctx.fail(Error::external(format!("{describe}: {e}")));
                                    failed = true;
                                }
                            }
                        });
                        if failed {
                            return;
                        }
                        let f = flush.borrow();
                        if let Err(e) = f.check() {
                            ctx.fail(e);
                            failed = true;
                        } else if frontier.is_empty() {
                            // The input has ended: everything sent must be acknowledged.
                            if let Err(e) = f.flush() {
                                ctx.fail(e);
                            }
                            failed = true;
                        }
                    }
                },
            )
        });
    }
}

/// Sends one record, waiting while librdkafka's queue is full.
/// Where a record goes and how it is encoded: topic, value, key, whether it is a tombstone,
/// its timestamp.
type Route<'a, T> = (
    &'a str,
    &'a Encode<T>,
    &'a Option<Encode<T>>,
    &'a Option<Tombstone<T>>,
    &'a Option<Stamp<T>>,
);

fn send<T>(
    producer: &ThreadedProducer<Reports>,
    (topic, value, key, tombstone, stamp): Route<'_, T>,
    record: &T,
    time: Time,
    (v, k): (&mut Vec<u8>, &mut Vec<u8>),
) -> Result<(), String> {
    v.clear();
    let mut message = BaseRecord::<[u8], [u8]>::to(topic);
    if !tombstone.as_ref().is_some_and(|t| t(record)) {
        value(record, v).map_err(|e| format!("cannot encode a record: {e}"))?;
        message = message.payload(&v[..]);
    }
    let time = stamp.as_ref().and_then(|s| s(record)).unwrap_or(time);
    if time > 0 {
        message = message.timestamp(time);
    }
    if let Some(key) = key {
        k.clear();
        key(record, k).map_err(|e| format!("cannot encode a key: {e}"))?;
        message = message.key(&k[..]);
    }
    loop {
        match producer.send(message) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), m)) => {
                // Backpressure: librdkafka's queue is full until the brokers acknowledge more
                // (never, if they refused the connection).
                if let Some(reason) = producer.context().refused() {
                    return Err(format!(
                        "the connection was refused: {reason}; check the security properties ({SECURITY_PROPERTIES})"
                    ));
                }
                message = m;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e.to_string()),
        }
    }
}
