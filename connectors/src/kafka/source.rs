//! One worker's share of a Kafka source: its partitions, their offsets, and their watermarks.

use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::Message as _;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::error::KafkaResult;
use rdkafka::message::Headers;
use rdkafka::{ClientContext, TopicPartitionList as Offsets};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tidal_engine::state::key_hash;
use tidal_engine::{Error, Poll, Result, SourceReader, SplitId, WorkerContext};

use super::errors::{ClientErrors, refused};
use super::format::{KafkaFormat, Message};
use super::{KafkaSource, StartFrom};
use crate::deadletter::DeadLetters;
use crate::position;
use crate::throttle::Throttle;

/// How long one metadata or offset request may take before it is tried again.
const REQUEST: Duration = Duration::from_secs(2);
/// How long a reader with nothing to read waits before it polls again.
const IDLE: Duration = Duration::from_millis(2);

/// A partition this reader reads, and how far.
#[derive(Debug, Clone)]
struct Partition {
    topic: String,
    partition: i32,
    /// The offset of the next record not yet handed on.
    next: i64,
    /// Where this run started reading it (for the progress of a bounded source).
    first: i64,
    /// Bounded: the offset it stops before.
    end: Option<i64>,
    split: SplitId,
    done: bool,
}

/// A topic's partition.
type TopicPartition = (String, i32);

/// A partition in a checkpoint: where its reader stood.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Piece {
    topic: String,
    partition: i32,
    next: i64,
    end: Option<i64>,
}

/// The reader of one worker: its own consumer, assigned the partitions that fall to this worker.
pub struct KafkaReader<F: KafkaFormat> {
    consumer: BaseConsumer<Commits>,
    /// The group offsets are committed to when checkpoints complete (`None`: not committed).
    commit_to: Option<String>,
    format: F,
    parts: Vec<Partition>,
    /// Every partition of the topics when the job started, in the order they are shared out.
    all: Vec<(String, i32)>,
    start: StartFrom,
    bounded: bool,
    brokers: String,
    /// Whether the consumer has been given the partitions (at the first read, after a restore).
    assigned: bool,
    /// A record polled for another partition than the current read's: handed on next time.
    stash: Option<(usize, i64, Option<F::Item>)>,
    last_split: Option<SplitId>,
    started: Vec<SplitId>,
    ended: Vec<SplitId>,
    throttle: Option<Throttle>,
    dead: DeadLetters,
    ctx: Rc<WorkerContext>,
    name: String,
    /// Partitions found while running, from the discovery thread (see [`Discovery`]), and the
    /// thread's stop signal (dropped with the reader).
    discovered: Option<(mpsc::Receiver<Vec<Partition>>, mpsc::Sender<()>)>,
    /// Whether the topics are those matching a pattern (not a list).
    subscription_is_pattern: bool,
}

/// The topics of a source: a list or a pattern, on some brokers.
#[derive(Debug, Clone)]
struct Subscription {
    brokers: String,
    topics: Vec<String>,
    /// Instead of `topics`: every topic whose whole name this matches (anchored).
    pattern: Option<(String, regex::Regex)>,
    connect_timeout: Duration,
}

impl<F: KafkaFormat> KafkaReader<F> {
    /// Connects, lists the topics' partitions (retrying unreachable brokers until the source's
    /// connect timeout), takes this worker's share and resolves where each starts.
    pub(crate) fn connect(
        source: KafkaSource<F>,
        ctx: &Rc<WorkerContext>,
        name: &str,
    ) -> Result<Self> {
        let group = source
            .group
            .clone()
            .unwrap_or_else(|| format!("tidal-{name}"));
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &source.brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false");
        for (k, v) in &source.properties {
            config.set(k, v);
        }
        let commits = Commits {
            source: name.to_string(),
            group: group.clone(),
            errors: ClientErrors::default(),
        };
        let consumer: BaseConsumer<Commits> = config.create_with_context(commits).map_err(|e| {
            Error::config(format!(
                "Kafka source '{name}': the consumer cannot be made ({e}); check the properties given with .property()"
            ))
        })?;
        let pattern = match &source.pattern {
            None => None,
            Some(pattern) => {
                let re = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                    Error::config(format!(
                        "Kafka source '{name}': topic pattern '{pattern}' is not a regular expression: {e}"
                    ))
                })?;
                Some((pattern.clone(), re))
            }
        };
        let subscription = Subscription {
            brokers: source.brokers.clone(),
            topics: source.topics.clone(),
            pattern,
            connect_timeout: source.connect_timeout,
        };
        // Discovery: unbounded sources only (a bounded one reads what there was at start).
        let discovering = !source.bounded && !source.discovery.is_zero();
        let all = partitions(&consumer, &subscription, name, true, discovering)?;
        let (index, peers) = (ctx.index(), ctx.peers());
        let mine: Vec<(String, i32)> = all
            .iter()
            .enumerate()
            .filter(|(k, _)| k % peers == index)
            .map(|(_, p)| p.clone())
            .collect();
        let commit_to = source
            .commit_offsets
            .unwrap_or(source.group.is_some())
            .then_some(group);
        let mut reader = KafkaReader {
            consumer,
            commit_to,
            format: source.format,
            parts: Vec::new(),
            all,
            start: source.start,
            bounded: source.bounded,
            brokers: source.brokers,
            assigned: false,
            stash: None,
            last_split: None,
            started: Vec::new(),
            ended: Vec::new(),
            throttle: source.rate.map(|r| Throttle::new(r, peers)),
            dead: DeadLetters::new(source.on_error, name, index),
            ctx: Rc::clone(ctx),
            name: name.to_string(),
            discovered: None,
            subscription_is_pattern: source.pattern.is_some(),
        };
        reader.parts = reader.resolve(&mine, reader.start)?;
        if discovering {
            let discovery = Discovery {
                config,
                subscription,
                known: reader.all.iter().cloned().collect(),
                name: name.to_string(),
                index: index as u64,
                peers: peers as u64,
            };
            reader.discovered = Some(discovery.spawn(source.discovery)?);
        }
        Ok(reader)
    }

    /// Where each of `partitions` starts (`start`) and, when bounded, ends.
    fn resolve(&self, partitions: &[(String, i32)], start: StartFrom) -> Result<Vec<Partition>> {
        let mut out = Vec::with_capacity(partitions.len());
        let committed = if start == StartFrom::Committed && !partitions.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (t, p) in partitions {
                tpl.add_partition(t, *p);
            }
            Some(
                self.consumer
                    .committed_offsets(tpl, REQUEST)
                    .map_err(|e| self.broker_error("reading the group's committed offsets", &e))?,
            )
        } else {
            None
        };
        for (topic, partition) in partitions {
            let (low, high) = self
                .consumer
                .fetch_watermarks(topic, *partition, REQUEST)
                .map_err(|e| {
                    self.broker_error(&format!("reading the offsets of {topic}/{partition}"), &e)
                })?;
            let next = match start {
                StartFrom::Earliest => low,
                StartFrom::Latest => high,
                StartFrom::Committed => committed
                    .as_ref()
                    .and_then(|c| c.find_partition(topic, *partition))
                    .and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    })
                    .unwrap_or(low)
                    .max(low),
                StartFrom::Timestamp(ms) => {
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition_offset(topic, *partition, Offset::Offset(ms))
                        .map_err(|e| Error::input(e.to_string()))?;
                    let found = self.consumer.offsets_for_times(tpl, REQUEST).map_err(|e| {
                        self.broker_error(
                            &format!("finding the offset at time {ms} in {topic}/{partition}"),
                            &e,
                        )
                    })?;
                    match found.find_partition(topic, *partition).map(|e| e.offset()) {
                        Some(Offset::Offset(o)) => o,
                        _ => high,
                    }
                }
            };
            let end = self.bounded.then_some(high);
            out.push(Partition {
                topic: topic.clone(),
                partition: *partition,
                next,
                first: next,
                end,
                split: key_hash(&(topic.as_str(), *partition)),
                done: end.is_some_and(|e| next >= e),
            });
        }
        Ok(out)
    }

    fn broker_error(&self, doing: &str, e: &KafkaError) -> Error {
        Error::external(format!(
            "Kafka source '{}': {doing} from brokers {}: {e}",
            self.name, self.brokers
        ))
    }

    /// Gives the consumer this reader's partitions at their offsets.
    fn assign(&mut self) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        for p in self.parts.iter().filter(|p| !p.done) {
            tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next))
                .map_err(|e| Error::input(e.to_string()))?;
        }
        self.consumer.assign(&tpl).map_err(|e| {
            Error::external(format!(
                "Kafka source '{}': assigning its partitions: {e}",
                self.name
            ))
        })?;
        self.started
            .extend(self.parts.iter().filter(|p| !p.done).map(|p| p.split));
        self.assigned = true;
        Ok(())
    }

    /// Takes on the partitions the discovery thread found for this worker.
    fn take_discovered(&mut self) -> Result<()> {
        let Some((found, _)) = &self.discovered else {
            return Ok(());
        };
        let added: Vec<Partition> = found.try_iter().flatten().collect();
        if added.is_empty() {
            return Ok(());
        }
        if self.assigned {
            let mut tpl = TopicPartitionList::new();
            for p in &added {
                tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next))
                    .map_err(|e| Error::input(e.to_string()))?;
            }
            self.consumer.incremental_assign(&tpl).map_err(|e| {
                Error::external(format!(
                    "Kafka source '{}': assigning partitions found while running: {e}",
                    self.name
                ))
            })?;
            self.started.extend(added.iter().map(|p| p.split));
        }
        self.parts.extend(added);
        Ok(())
    }

    /// Hands on a decoded record of partition `part` at `offset`.
    fn take(&mut self, part: usize, offset: i64, item: Option<F::Item>, out: &mut Vec<F::Item>) {
        out.extend(item);
        let p = &mut self.parts[part];
        p.next = offset + 1;
        self.last_split = Some(p.split);
        if p.end.is_some_and(|e| p.next >= e) && !p.done {
            p.done = true;
            self.ended.push(p.split);
            self.pause(part);
        }
    }

    /// Stops fetching a partition that is done (bounded: at its end).
    fn pause(&self, part: usize) {
        let p = &self.parts[part];
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&p.topic, p.partition);
        // Only saves fetching: records past the end are passed over anyway.
        let _ = self.consumer.pause(&tpl);
    }

    /// Bounded: partitions whose consumer position has reached their end (past control records
    /// of transactions, which are never handed on) are done.
    fn check_positions(&mut self) {
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        for p in self.parts.iter_mut().filter(|p| !p.done) {
            let Some(end) = p.end else { continue };
            let at = positions
                .find_partition(&p.topic, p.partition)
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            if at.is_some_and(|o| o >= end) && self.stash.is_none() {
                p.next = p.next.max(end);
                p.done = true;
                self.ended.push(p.split);
            }
        }
    }
}

/// Every partition of the subscription's topics, in the order they are shared out. `patient`:
/// retries brokers that cannot be reached until the connect timeout (otherwise one try);
/// `may_be_empty`: a pattern that matches no topic yet is not an error (topics are discovered
/// later).
fn partitions(
    consumer: &BaseConsumer<Commits>,
    source: &Subscription,
    name: &str,
    patient: bool,
    may_be_empty: bool,
) -> Result<Vec<(String, i32)>> {
    let started = Instant::now();
    // The brokers' metadata (of one topic, or of all), trying again until the connect timeout.
    let fetch = |topic: Option<&str>| loop {
        match consumer.fetch_metadata(topic, REQUEST) {
            Ok(m) => return Ok(m),
            Err(e) => {
                let errors = &consumer.context().errors;
                // A consumer hears of broken connections as errors from its poll (no partition is
                // assigned yet, so it yields nothing else). A poll that serves a log line or
                // another event returns nothing: poll a few times to reach the errors queued.
                for _ in 0..64 {
                    if let Some(Err(e)) = consumer.poll(Duration::ZERO) {
                        errors.record(&e, "");
                    }
                }
                if let Some(reason) = errors.fatal() {
                    return Err(Error::config(refused(
                        &format!("Kafka source '{name}' on brokers {}", source.brokers),
                        &reason,
                    )));
                }
                let waited = started.elapsed();
                if !patient || waited >= source.connect_timeout {
                    return Err(Error::external(format!(
                        "Kafka source '{name}': no answer from brokers {} within {:?} ({e}{}); check the address and that the brokers run",
                        source.brokers,
                        waited.max(REQUEST),
                        errors.last_said()
                    )));
                }
                tidal_engine::warn(format_args!(
                    "tidal: Kafka source '{name}': cannot reach brokers {} ({e}{}); trying again ({:.0} s of {:?} passed)",
                    source.brokers,
                    errors.last_said(),
                    waited.as_secs_f64(),
                    source.connect_timeout
                ));
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    let topics: Vec<String> = match &source.pattern {
        None => source.topics.clone(),
        Some((pattern, re)) => {
            let metadata = fetch(None)?;
            let mut matching: Vec<String> = metadata
                .topics()
                .iter()
                .map(|t| t.name().to_string())
                .filter(|t| !t.starts_with("__") && re.is_match(t))
                .collect();
            matching.sort();
            if matching.is_empty() && !may_be_empty {
                return Err(Error::input(format!(
                    "Kafka source '{name}': no topic on brokers {} matches the pattern '{pattern}'",
                    source.brokers
                )));
            }
            matching
        }
    };
    let mut out = Vec::new();
    for topic in &topics {
        let metadata = fetch(Some(topic))?;
        let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(unknown_topic(name, topic, &source.brokers));
        };
        if t.error().is_some() || t.partitions().is_empty() {
            return Err(unknown_topic(name, topic, &source.brokers));
        }
        let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
        ids.sort_unstable();
        out.extend(ids.into_iter().map(|p| (topic.clone(), p)));
    }
    Ok(out)
}

/// Looks for new partitions on a thread of its own, with a consumer of its own (metadata and
/// offset requests take a round trip each, which a worker should not wait for): every `every`,
/// lists the subscription's partitions; those not seen before that hash to this worker are
/// resolved to their earliest offset and sent to the reader. Every worker's thread makes the same
/// choice, so each new partition is read by exactly one worker, whenever each looks. Brokers that
/// do not answer are logged and tried again at the next look.
struct Discovery {
    config: ClientConfig,
    subscription: Subscription,
    known: std::collections::HashSet<(String, i32)>,
    name: String,
    index: u64,
    peers: u64,
}

impl Discovery {
    fn spawn(
        mut self,
        every: Duration,
    ) -> Result<(mpsc::Receiver<Vec<Partition>>, mpsc::Sender<()>)> {
        let (found_tx, found) = mpsc::channel();
        let (stop, stopped) = mpsc::channel::<()>();
        let consumer: BaseConsumer<Commits> = self
            .config
            .create_with_context(Commits {
                source: self.name.clone(),
                group: String::new(),
                errors: ClientErrors::default(),
            })
            .map_err(|e| Error::config(format!("Kafka source '{}': {e}", self.name)))?;
        std::thread::Builder::new()
            .name(format!("tidal-kafka-discovery-{}", self.index))
            .spawn(move || {
                // Ends when the reader is dropped (its stop sender with it).
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    let mine = match self.look(&consumer) {
                        Ok(mine) => mine,
                        Err(e) => {
                            tidal_engine::warn(format_args!(
                                "tidal: looking for new partitions: {e}; trying again in {every:?}"
                            ));
                            continue;
                        }
                    };
                    if !mine.is_empty() && found_tx.send(mine).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::external(format!("starting partition discovery: {e}")))?;
        Ok((found, stop))
    }

    /// One look: this worker's new partitions, each at its earliest offset.
    fn look(&mut self, consumer: &BaseConsumer<Commits>) -> Result<Vec<Partition>> {
        let listed = partitions(consumer, &self.subscription, &self.name, false, true)?;
        let mut new: Vec<(String, i32)> = listed
            .into_iter()
            .filter(|p| !self.known.contains(p))
            .collect();
        new.sort();
        let mut mine = Vec::new();
        for (topic, partition) in new {
            if key_hash(&(topic.as_str(), partition)) % self.peers == self.index {
                let low = match consumer.fetch_watermarks(&topic, partition, REQUEST) {
                    Ok((low, _)) => low,
                    Err(e) => {
                        // This one and the rest at the next look; those resolved go on now.
                        tidal_engine::warn(format_args!(
                            "tidal: Kafka source '{}': reading the offsets of new partition {topic}/{partition}: {e}; trying again later",
                            self.name
                        ));
                        break;
                    }
                };
                mine.push(Partition {
                    split: key_hash(&(topic.as_str(), partition)),
                    topic: topic.clone(),
                    partition,
                    next: low,
                    first: low,
                    end: None,
                    done: false,
                });
            }
            // Known only once resolved: a failed look tries this partition again.
            self.known.insert((topic, partition));
        }
        Ok(mine)
    }
}

fn unknown_topic(name: &str, topic: &str, brokers: &str) -> Error {
    Error::input(format!(
        "Kafka source '{name}': topic '{topic}' does not exist on brokers {brokers}; create it or correct the name"
    ))
}

impl<F: KafkaFormat> SourceReader for KafkaReader<F> {
    type Item = F::Item;

    fn read(&mut self, out: &mut Vec<F::Item>, max: usize) -> Poll {
        if !self.assigned
            && let Err(e) = self.assign()
        {
            return Poll::Failed(e);
        }
        if let Err(e) = self.take_discovered() {
            return Poll::Failed(e);
        }
        let max = match self.throttle.as_mut().map(|t| t.allowed(max)) {
            Some(Err(wait)) => return Poll::Pending(wait),
            Some(Ok(n)) => n,
            None => max,
        };
        let before = out.len();
        let mut split: Option<SplitId> = None;
        if let Some((part, offset, item)) = self.stash.take() {
            split = Some(self.parts[part].split);
            self.take(part, offset, item, out);
        }
        while out.len() - before < max {
            let message = match self.consumer.poll(Duration::ZERO) {
                None => break,
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    // librdkafka retries brokers itself; a fatal error ends the job. A TLS or
                    // login failure after the source has connected (credentials rotated on the
                    // brokers) is retried too: said, with librdkafka's reason.
                    if matches!(e, KafkaError::MessageConsumptionFatal(_)) {
                        return Poll::Failed(self.broker_error("reading", &e));
                    }
                    let errors = &self.consumer.context().errors;
                    errors.record(&e, "");
                    tidal_engine::warn(format_args!(
                        "tidal: Kafka source '{}': {e}{} (retrying)",
                        self.name,
                        errors.last_said()
                    ));
                    break;
                }
            };
            let (topic, partition, offset) =
                (message.topic(), message.partition(), message.offset());
            let Some(part) = self
                .parts
                .iter()
                .position(|p| p.partition == partition && p.topic == topic)
            else {
                continue;
            };
            let p = &self.parts[part];
            if p.done || offset < p.next {
                // Past the end of a bounded partition, or before where it stands.
                continue;
            }
            let mut headers: Vec<(&str, Option<&[u8]>)> = Vec::new();
            if let Some(h) = message.headers() {
                headers.extend(h.iter().map(|h| (h.key, h.value)));
            }
            let decoded = self.format.decode(&Message {
                topic,
                partition,
                offset,
                timestamp: message.timestamp().to_millis(),
                key: message.key(),
                payload: message.payload(),
                headers: &headers,
            });
            let item = match decoded {
                Ok(item) => item,
                Err(error) => {
                    let at = format!("topic '{topic}' partition {partition}");
                    let payload = message.payload().unwrap_or_default();
                    let at_offset = u64::try_from(offset).unwrap_or_default();
                    if let Err(e) = self.dead.reject(&at, at_offset, &error, payload) {
                        return Poll::Failed(Error::input(format!(
                            "Kafka source '{}': {} (the line is the offset)",
                            self.name, e
                        )));
                    }
                    None
                }
            };
            drop(headers);
            drop(message);
            let this = self.parts[part].split;
            if split.is_some_and(|s| s != this) {
                // One partition per read, so that each has its own watermark.
                self.stash = Some((part, offset, item));
                break;
            }
            split = Some(this);
            self.take(part, offset, item, out);
        }
        if let Some(t) = self.throttle.as_mut() {
            t.made(out.len() - before);
        }
        if self.bounded && out.len() == before && self.stash.is_none() {
            self.check_positions();
        }
        if self.bounded && self.stash.is_none() && self.parts.iter().all(|p| p.done) {
            return Poll::Done;
        }
        if out.len() > before || self.stash.is_some() {
            Poll::Ready
        } else {
            Poll::Pending(IDLE)
        }
    }

    fn last_split(&self) -> Option<SplitId> {
        self.last_split
    }

    fn started_splits(&mut self, started: &mut Vec<SplitId>) {
        started.append(&mut self.started);
    }

    fn finished_splits(&mut self, finished: &mut Vec<SplitId>) {
        finished.append(&mut self.ended);
    }

    fn position(&self) -> Option<Vec<u8>> {
        let pieces: Vec<Piece> = self
            .parts
            .iter()
            .map(|p| Piece {
                topic: p.topic.clone(),
                partition: p.partition,
                next: p.next,
                end: p.end,
            })
            .collect();
        // The pieces, then every partition the source had when it started (see `restore`).
        let mut bytes = position::encode(&pieces)?;
        bytes.extend(postcard::to_allocvec(&self.all).ok()?);
        Some(bytes)
    }

    fn progress(&self) -> Option<tidal_engine::Progress> {
        // Bounded: offsets read of those between where this run started and the ends.
        if !self.bounded {
            return None;
        }
        let (mut done, mut total) = (0u64, 0u64);
        for p in &self.parts {
            let end = p.end.unwrap_or(p.next);
            total += end.saturating_sub(p.first).max(0) as u64;
            done += p.next.min(end).saturating_sub(p.first).max(0) as u64;
        }
        Some(tidal_engine::Progress { done, total })
    }

    fn checkpoint_complete(&mut self, id: u64, position: &[u8]) -> Result<()> {
        let Some(group) = &self.commit_to else {
            return Ok(());
        };
        let pieces: Vec<Piece> = match postcard::from_bytes(position) {
            Ok(pieces) => pieces,
            Err(e) => {
                tidal_engine::warn(format_args!(
                    "tidal: Kafka source '{}': the position in checkpoint {id} does not decode ({e}); no offsets committed to group '{group}'",
                    self.name
                ));
                return Ok(());
            }
        };
        let mut offsets = Offsets::new();
        for p in &pieces {
            if let Err(e) =
                offsets.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next))
            {
                tidal_engine::warn(format_args!(
                    "tidal: Kafka source '{}': offset {} of {}/{} cannot be committed ({e})",
                    self.name, p.next, p.topic, p.partition
                ));
            }
        }
        if offsets.count() == 0 {
            return Ok(());
        }
        // Asynchronous: the result comes to `Commits::commit_callback` at a later poll. A
        // failure is logged, never fatal: the job's own offsets are those in its checkpoints.
        if let Err(e) = self.consumer.commit(&offsets, CommitMode::Async) {
            tidal_engine::warn(format_args!(
                "tidal: Kafka source '{}': committing the offsets of checkpoint {id} to group '{group}' failed ({e}); the job goes on from its checkpoints",
                self.name
            ));
        }
        Ok(())
    }

    fn restore(&mut self, positions: &[&[u8]], index: usize, peers: usize) -> Result<()> {
        use std::collections::HashSet;
        if positions.is_empty() {
            // Every former instance had read everything (a bounded source that ended before
            // the cut): there is nothing left to read.
            self.parts.clear();
            return Ok(());
        }
        // The partitions in the checkpoint's pieces, and those the source had when it started
        // (listed in every position): a listed partition with no piece belonged to an instance
        // that had finished — read to its end — before the cut.
        let mut in_pieces: HashSet<(String, i32)> = HashSet::new();
        let mut listed: HashSet<(String, i32)> = HashSet::new();
        for position in positions {
            let (pieces, started_with) = decode_position(position).map_err(|e| {
                Error::input(format!(
                    "Kafka source '{}': a checkpointed position does not decode ({e}): the checkpoint was written by another source under this name",
                    self.name
                ))
            })?;
            in_pieces.extend(pieces.into_iter().map(|p| (p.topic, p.partition)));
            listed.extend(started_with);
        }
        listed.extend(in_pieces.iter().cloned());
        let pieces: Vec<Piece> = position::share(positions, index, peers)?;
        let mut parts: Vec<Partition> = pieces
            .into_iter()
            .map(|p| {
                let split = key_hash(&(p.topic.as_str(), p.partition));
                Partition {
                    done: p.end.is_some_and(|e| p.next >= e),
                    topic: p.topic,
                    partition: p.partition,
                    next: p.next,
                    first: p.next,
                    end: p.end,
                    split,
                }
            })
            .collect();
        // Partitions the checkpoint does not know. Of a topic it knows, or matching the pattern:
        // they appeared after the job started — read from their earliest record, as partitions
        // found while running are (a bounded source reads only what there was at its start).
        // Of a topic added to the list since: from where the source starts.
        let known_topics: HashSet<&str> = listed.iter().map(|(t, _)| t.as_str()).collect();
        let pattern = self.subscription_is_pattern;
        let mut added = Vec::new();
        let mut other = Vec::new();
        for (k, p) in self.all.iter().filter(|p| !listed.contains(*p)).enumerate() {
            let appeared = pattern || known_topics.contains(p.0.as_str());
            if k % peers != index || (appeared && self.bounded) {
                continue;
            }
            if appeared { &mut added } else { &mut other }.push(p.clone());
        }
        parts.extend(self.resolve(&added, StartFrom::Earliest)?);
        parts.extend(self.resolve(&other, self.start)?);
        self.parts = parts;
        // Later checkpoints list every partition this run knows of.
        let mut all: Vec<(String, i32)> = listed.into_iter().chain(self.all.drain(..)).collect();
        all.sort();
        all.dedup();
        self.all = all;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if let Some(destination) = self.dead.finish()? {
            self.ctx
                .report_skipped(&self.name, self.dead.count, &destination);
        }
        Ok(())
    }
}

/// The consumer's context: logs an offset commit the brokers refused (commits only mirror the
/// checkpoints for monitoring; a failed one does not stop the job).
pub struct Commits {
    source: String,
    group: String,
    errors: ClientErrors,
}

impl ClientContext for Commits {
    fn log(&self, level: RDKafkaLogLevel, _facility: &str, line: &str) {
        self.errors.log(level, line);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        self.errors.record(&error, reason);
    }
}

impl ConsumerContext for Commits {
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &Offsets) {
        if let Err(e) = result {
            tidal_engine::warn(format_args!(
                "tidal: Kafka source '{}': the brokers refused the offsets committed to group '{}' ({e}); the job goes on from its checkpoints",
                self.source, self.group
            ));
        }
    }
}

/// A Kafka source's position: its pieces, then (since positions carry it) the partitions the
/// source had when it started.
fn decode_position(bytes: &[u8]) -> postcard::Result<(Vec<Piece>, Vec<TopicPartition>)> {
    let (pieces, rest): (Vec<Piece>, &[u8]) = postcard::take_from_bytes(bytes)?;
    let started_with = if rest.is_empty() {
        Vec::new()
    } else {
        postcard::from_bytes(rest)?
    };
    Ok((pieces, started_with))
}

/// Where a partition stood in a Kafka source's checkpointed position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset of the first record the job had not yet handed on (what a restore reads first).
    pub next: i64,
    /// For a bounded source, the offset the partition is read up to.
    pub end: Option<i64>,
}

/// Decodes a Kafka source instance's position in a checkpoint (the bytes of
/// [`SourcePosition::At`](tidal_engine::SourcePosition)), e.g. to see how far a checkpoint had
/// read each partition.
///
/// ```
/// use tidal_connectors::kafka::checkpointed_offsets;
/// // Not a Kafka source's position:
/// assert!(checkpointed_offsets(&[0xff, 0xff]).is_err());
/// assert_eq!(checkpointed_offsets(&[0]).unwrap(), vec![]);
/// ```
pub fn checkpointed_offsets(position: &[u8]) -> Result<Vec<PartitionOffset>> {
    let (pieces, _) = decode_position(position).map_err(|e| {
        Error::input(format!(
            "not the position of a Kafka source ({e}): it was written by another kind of source"
        ))
    })?;
    Ok(pieces
        .into_iter()
        .map(|p| PartitionOffset {
            topic: p.topic,
            partition: p.partition,
            next: p.next,
            end: p.end,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(partition: i32, next: i64) -> Piece {
        Piece {
            topic: "t".into(),
            partition,
            next,
            end: None,
        }
    }

    #[test]
    fn positions_carry_the_starting_partitions_and_older_ones_still_decode() {
        let pieces = vec![piece(0, 5), piece(2, 7)];
        let started = vec![
            ("t".to_string(), 0),
            ("t".to_string(), 1),
            ("t".to_string(), 2),
        ];
        let mut bytes = position::encode(&pieces).unwrap();
        // Written before positions listed the starting partitions: the pieces alone.
        let (old, none) = decode_position(&bytes).unwrap();
        assert_eq!((old.len(), none.len()), (2, 0));
        bytes.extend(postcard::to_allocvec(&started).unwrap());
        let (now, listed) = decode_position(&bytes).unwrap();
        assert_eq!(now.iter().map(|p| p.next).collect::<Vec<_>>(), vec![5, 7]);
        assert_eq!(listed, started);
        // What restores share out reads the pieces only.
        let shared: Vec<Piece> = position::share(&[&bytes], 0, 1).unwrap();
        assert_eq!(shared.len(), 2);
        assert_eq!(checkpointed_offsets(&bytes).unwrap()[1].next, 7);
    }
}
