//! How a Kafka message becomes a record: [`KafkaFormat`] and the formats Tidal has.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::files::decode::{CsvDecoder, json_value};
use crate::files::{DebeziumEvent, Decoder};

/// One message as a [`KafkaFormat`] sees it (borrowed from the consumer's buffer).
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The message's offset in its partition.
    pub offset: i64,
    /// The message's timestamp (ms since the epoch), when it has one.
    pub timestamp: Option<i64>,
    /// The key, when there is one.
    pub key: Option<&'a [u8]>,
    /// The value; `None` for a tombstone.
    pub payload: Option<&'a [u8]>,
    /// The headers: name and value (`None`: a header without a value).
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

/// Decodes messages into records. `Ok(None)` skips the message; an `Err` names what is wrong
/// (the field, when it can) and is handled by the source's [`OnError`](crate::OnError) policy
/// with the message's topic, partition and offset.
///
/// ```
/// use tidal_connectors::kafka::{KafkaFormat, Message};
/// // Values that are decimal numbers.
/// #[derive(Clone)]
/// struct Number;
/// impl KafkaFormat for Number {
///     type Item = i64;
///     const KIND: &'static str = "number";
///     fn decode(&mut self, m: &Message<'_>) -> Result<Option<i64>, String> {
///         let Some(bytes) = m.payload else { return Ok(None) };
///         let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
///         text.trim().parse().map(Some).map_err(|e| format!("not a number: {e}"))
///     }
/// }
/// let m = Message { topic: "t", partition: 0, offset: 7, timestamp: None, key: None, payload: Some(b"42"), headers: &[] };
/// assert_eq!(Number.decode(&m), Ok(Some(42)));
/// ```
pub trait KafkaFormat: Clone + 'static {
    /// The records made.
    type Item: 'static;
    /// A short name, for messages.
    const KIND: &'static str;
    /// Decodes one message.
    fn decode(&mut self, message: &Message<'_>) -> Result<Option<Self::Item>, String>;
}

/// Values as raw bytes; tombstones are skipped.
///
/// ```
/// use tidal_connectors::kafka::{Bytes, KafkaFormat, Message};
/// let m = Message { topic: "t", partition: 0, offset: 0, timestamp: None, key: None, payload: Some(b"\x01\x02"), headers: &[] };
/// assert_eq!(Bytes.decode(&m), Ok(Some(vec![1, 2])));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Bytes;

impl KafkaFormat for Bytes {
    type Item = Vec<u8>;
    const KIND: &'static str = "bytes";
    fn decode(&mut self, m: &Message<'_>) -> Result<Option<Vec<u8>>, String> {
        Ok(m.payload.map(<[u8]>::to_vec))
    }
}

/// Values as UTF-8 text; tombstones are skipped, other bytes are an error.
///
/// ```
/// use tidal_connectors::kafka::{KafkaFormat, Message, Utf8};
/// let m = Message { topic: "t", partition: 0, offset: 0, timestamp: None, key: None, payload: Some(b"tide"), headers: &[] };
/// assert_eq!(Utf8.decode(&m), Ok(Some("tide".to_string())));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Utf8;

impl KafkaFormat for Utf8 {
    type Item = String;
    const KIND: &'static str = "utf8";
    fn decode(&mut self, m: &Message<'_>) -> Result<Option<String>, String> {
        let Some(bytes) = m.payload else {
            return Ok(None);
        };
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Some(s.to_string())),
            Err(e) => Err(format!(
                "the value is not valid UTF-8 (byte {})",
                e.valid_up_to() + 1
            )),
        }
    }
}

/// Values as JSON decoded with serde into `T`; tombstones are skipped; an error names the field.
///
/// ```
/// use tidal_connectors::kafka::{Json, KafkaFormat, Message};
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Bid { auction: u64 }
/// let m = Message { topic: "t", partition: 0, offset: 0, timestamp: None, key: None, payload: Some(br#"{"auction":"x"}"#), headers: &[] };
/// let err = Json::<Bid>::new().decode(&m).unwrap_err();
/// assert!(err.contains("auction"), "{err}");
/// ```
pub struct Json<T>(PhantomData<fn() -> T>);

impl<T> Json<T> {
    /// The JSON format for `T`.
    pub fn new() -> Self {
        Json(PhantomData)
    }
}

impl<T> Default for Json<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Json<T> {
    fn clone(&self) -> Self {
        Json(PhantomData)
    }
}

impl<T> std::fmt::Debug for Json<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Json")
    }
}

impl<T: DeserializeOwned + 'static> KafkaFormat for Json<T> {
    type Item = T;
    const KIND: &'static str = "json";
    fn decode(&mut self, m: &Message<'_>) -> Result<Option<T>, String> {
        match m.payload {
            None => Ok(None),
            Some(bytes) => json_value(bytes).map(Some),
        }
    }
}

/// Values as one CSV row each (comma-separated unless [`delimiter`](Csv::delimiter) says
/// otherwise), fields matched to `T` by position; tombstones are skipped.
///
/// ```
/// use tidal_connectors::kafka::{Csv, KafkaFormat, Message};
/// let m = Message { topic: "t", partition: 0, offset: 0, timestamp: None, key: None, payload: Some(b"7;250"), headers: &[] };
/// assert_eq!(Csv::<(u64, u64)>::new().delimiter(b';').decode(&m), Ok(Some((7, 250))));
/// ```
pub struct Csv<T> {
    delimiter: u8,
    decoder: Option<Box<CsvDecoder<T>>>,
}

impl<T> Csv<T> {
    /// The CSV format for `T`, comma-separated.
    pub fn new() -> Self {
        Csv {
            delimiter: b',',
            decoder: None,
        }
    }
    /// Fields separated by `delimiter`.
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = delimiter;
        self.decoder = None;
        self
    }
}

impl<T> Default for Csv<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Csv<T> {
    fn clone(&self) -> Self {
        Csv {
            delimiter: self.delimiter,
            decoder: None,
        }
    }
}

impl<T> std::fmt::Debug for Csv<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Csv({:?})", self.delimiter as char)
    }
}

impl<T: DeserializeOwned + 'static> KafkaFormat for Csv<T> {
    type Item = T;
    const KIND: &'static str = "csv";
    fn decode(&mut self, m: &Message<'_>) -> Result<Option<T>, String> {
        let Some(bytes) = m.payload else {
            return Ok(None);
        };
        let delimiter = self.delimiter;
        let decoder = self
            .decoder
            .get_or_insert_with(|| Box::new(CsvDecoder::new(false, delimiter)));
        decoder.decode(bytes)
    }
}

/// A message whole: where it came from, its key, timestamp and headers, and its value decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaRecord<T> {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset in the partition.
    pub offset: i64,
    /// The timestamp (ms since the epoch), when the message has one.
    pub timestamp: Option<i64>,
    /// The key, when there is one.
    pub key: Option<Vec<u8>>,
    /// The headers: name and value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The value; `None` for a tombstone (or a value the inner format skips).
    pub value: Option<T>,
}

/// Each message as a [`KafkaRecord`], its value decoded by the format `F`
/// ([`KafkaSource::with_metadata`](super::KafkaSource::with_metadata)).
///
/// ```
/// use tidal_connectors::kafka::{KafkaFormat, Message, Utf8, WithMetadata};
/// let m = Message { topic: "t", partition: 2, offset: 9, timestamp: Some(1000), key: Some(b"k"), payload: None, headers: &[("trace", Some(b"x"))] };
/// let r = WithMetadata(Utf8).decode(&m).unwrap().unwrap();
/// assert_eq!((r.partition, r.offset, r.key.as_deref(), r.value), (2, 9, Some(&b"k"[..]), None));
/// assert_eq!(r.headers, vec![("trace".to_string(), Some(b"x".to_vec()))]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct WithMetadata<F>(pub F);

impl<F: KafkaFormat> KafkaFormat for WithMetadata<F> {
    type Item = KafkaRecord<F::Item>;
    const KIND: &'static str = F::KIND;
    fn decode(&mut self, m: &Message<'_>) -> Result<Option<Self::Item>, String> {
        let value = self.0.decode(m)?;
        Ok(Some(KafkaRecord {
            topic: m.topic.to_string(),
            partition: m.partition,
            offset: m.offset,
            timestamp: m.timestamp,
            key: m.key.map(<[u8]>::to_vec),
            headers: m
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
                .collect(),
            value,
        }))
    }
}

/// Debezium's JSON change events, one per message, rows decoded into `T` (as
/// [`DebeziumJsonFiles`](crate::DebeziumJsonFiles) reads them from files): a create or snapshot
/// read is `+I`, an update `-U` and `+U`, a delete `-D`, at the event's `ts_ms`. Tombstones (the
/// null value Debezium writes after a delete, for log compaction) are skipped. Flatten the events
/// into changes and give them to a collection (`changelog_into_collection`).
///
/// ```
/// use tidal_connectors::kafka::{Debezium, KafkaFormat, Message};
/// let value = br#"{"before":null,"after":{"id":1,"region":"emea"},"op":"c","ts_ms":5}"#;
/// let m = Message { topic: "customers", partition: 0, offset: 0, timestamp: None, key: None, payload: Some(value), headers: &[] };
/// let event = Debezium::<serde_json::Value>::new().decode(&m).unwrap().unwrap();
/// assert_eq!((event.ts_ms, event.into_iter().count()), (5, 1));
/// ```
pub struct Debezium<T>(PhantomData<fn() -> T>);

impl<T> Debezium<T> {
    /// The Debezium JSON format for rows of type `T`.
    pub fn new() -> Self {
        Debezium(PhantomData)
    }
}

impl<T> Default for Debezium<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Debezium<T> {
    fn clone(&self) -> Self {
        Debezium(PhantomData)
    }
}

impl<T> std::fmt::Debug for Debezium<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Debezium")
    }
}

impl<T: DeserializeOwned + 'static> KafkaFormat for Debezium<T> {
    type Item = DebeziumEvent<T>;
    const KIND: &'static str = "debezium-json";
    fn decode(&mut self, m: &Message<'_>) -> Result<Option<DebeziumEvent<T>>, String> {
        match m.payload {
            None => Ok(None),
            Some(bytes) => DebeziumEvent::parse(bytes).map(Some),
        }
    }
}

/// Upserts, as Flink's `upsert-kafka` reads them: the key (JSON, decoded into `K`) names the row,
/// the value (JSON, decoded into `V`) is its new content, and a null value (a tombstone) deletes
/// it. Each message becomes `(key, Some(value))` or `(key, None)`, ready for
/// `upsert_by_key()`. A message without a key is an error (it cannot name a row).
///
/// ```
/// use tidal_connectors::kafka::{KafkaFormat, Message, Upsert};
/// let m = Message { topic: "prices", partition: 0, offset: 3, timestamp: Some(9), key: Some(b"7"), payload: None, headers: &[] };
/// assert_eq!(Upsert::<u64, f64>::new().decode(&m), Ok(Some((7, None))));
/// ```
pub struct Upsert<K, V>(PhantomData<fn() -> (K, V)>);

impl<K, V> Upsert<K, V> {
    /// The upsert format with JSON keys and values.
    pub fn new() -> Self {
        Upsert(PhantomData)
    }
}

impl<K, V> Default for Upsert<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> Clone for Upsert<K, V> {
    fn clone(&self) -> Self {
        Upsert(PhantomData)
    }
}

impl<K, V> std::fmt::Debug for Upsert<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Upsert")
    }
}

impl<K: DeserializeOwned + 'static, V: DeserializeOwned + 'static> KafkaFormat for Upsert<K, V> {
    type Item = (K, Option<V>);
    const KIND: &'static str = "upsert-json";
    fn decode(&mut self, m: &Message<'_>) -> Result<Option<(K, Option<V>)>, String> {
        let Some(key) = m.key else {
            return Err("the message has no key: an upsert must name its row by its key".into());
        };
        let key: K = json_value(key).map_err(|e| format!("the key: {e}"))?;
        let value = match m.payload {
            None => None,
            Some(bytes) => Some(json_value(bytes).map_err(|e| format!("the value: {e}"))?),
        };
        Ok(Some((key, value)))
    }
}
