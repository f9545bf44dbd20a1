//! Kafka against a real Kafka-protocol broker on loopback: librdkafka's mock cluster, started by
//! each test in its own process (the other processes of a run connect to it over TCP). The
//! source: every partition read once on every shape, a watermark per partition, offsets in
//! checkpoints restored on every shape, clear errors. The sink: every record delivered, refusals
//! named, and the `kafka_bid_windows` example on every shape and across `kill -9`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{SHAPES, fixture_dir, is_child, on_every_shape, run_with, sorted};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tidal::connectors::DebeziumEvent;
use tidal::connectors::kafka::{
    KafkaRecord, KafkaSink, KafkaSinks, KafkaSource, KafkaSources, StartFrom, checkpointed_offsets,
};
use tidal::engine::checkpoint::{self, Restored};
use tidal::engine::{CompletedCheckpoint, SourcePosition, WatermarkStrategy};
use tidal::prelude::*;

type Cluster = MockCluster<'static, DefaultProducerContext>;

/// In the test process: starts a mock cluster with `topics` (name, partitions), writes its
/// address into `dir` for the processes the test starts, and returns both. In such a process:
/// reads the address.
fn cluster(dir: &Path, topics: &[(&str, i32)]) -> (Option<Cluster>, String) {
    let file = dir.join("brokers");
    if is_child() {
        return (None, std::fs::read_to_string(file).unwrap());
    }
    let cluster = MockCluster::new(1).unwrap();
    for (topic, partitions) in topics {
        cluster.create_topic(topic, *partitions, 1).unwrap();
    }
    let brokers = cluster.bootstrap_servers();
    std::fs::write(file, &brokers).unwrap();
    (Some(cluster), brokers)
}

/// Writes `(partition, key, value, timestamp)` messages to `topic`.
fn produce(brokers: &str, topic: &str, messages: &[(i32, String, String, i64)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    for (partition, key, value, ts) in messages {
        let record = BaseRecord::to(topic)
            .partition(*partition)
            .key(key)
            .payload(value)
            .timestamp(*ts);
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
struct Bid {
    auction: u64,
    price: u64,
    time: i64,
}

fn bid(i: u64) -> Bid {
    Bid {
        auction: (i * 7) % 97,
        price: 1 + (i * 13) % 500,
        time: 1_000 + i as i64,
    }
}

/// Bids as JSON messages, partition by auction.
fn bid_messages(n: u64, partitions: u64) -> Vec<(i32, String, String, i64)> {
    (0..n)
        .map(|i| {
            let b = bid(i);
            let json = serde_json::to_string(&b).unwrap();
            (
                (b.auction % partitions) as i32,
                b.auction.to_string(),
                json,
                b.time,
            )
        })
        .collect()
}

/// A bounded source over a topic of 4 partitions reads every message once on every shape: the
/// values decoded from JSON, and with metadata each (partition, offset) once and the key and
/// timestamp the producer gave.
#[test]
fn a_bounded_source_reads_every_partition_once_on_every_shape() {
    const N: u64 = 20_000;
    let test = "a_bounded_source_reads_every_partition_once_on_every_shape";
    let dir = fixture_dir(test);
    let (_cluster, brokers) = cluster(&dir, &[("bids", 4)]);
    if !is_child() {
        produce(&brokers, "bids", &bid_messages(N, 4));
    }
    let expected: Vec<Bid> = sorted((0..N).map(bid).collect());
    let b = brokers.clone();
    on_every_shape(
        test,
        move |env| {
            let source = KafkaSource::new(b.as_str(), &["bids"])
                .json::<Bid>()
                .bounded()
                .with_metadata();
            env.kafka(source).collect()
        },
        |shape, out: Vec<KafkaRecord<Bid>>| {
            let values: Vec<Bid> = sorted(out.iter().filter_map(|r| r.value.clone()).collect());
            assert!(values == expected, "{shape:?}: not every bid once");
            let mut at: Vec<(i32, i64)> = out.iter().map(|r| (r.partition, r.offset)).collect();
            at.sort();
            at.dedup();
            assert_eq!(at.len(), N as usize, "{shape:?}: a message read twice");
            for r in &out {
                let v = r.value.as_ref().unwrap();
                assert_eq!(r.partition as u64, v.auction % 4, "{shape:?}");
                assert_eq!(r.key.as_deref(), Some(v.auction.to_string().as_bytes()));
                assert_eq!(r.timestamp, Some(v.time), "{shape:?}");
            }
        },
    );
}

/// Each partition has its own watermark: partition p holds events at 1 + p * 100 s onwards, in
/// order, and the partitions are read interleaved (small fetches, a paced read), so one watermark
/// for the whole source would run ahead with partition 3 and find the others' records late. Per 1 s window and partition, the counts equal the model's
/// and no record is dropped as late — on every shape (one worker reads all four partitions).
#[test]
fn each_partition_has_its_own_watermark() {
    const PER: i64 = 5_000;
    let test = "each_partition_has_its_own_watermark";
    let dir = fixture_dir(test);
    let (_cluster, brokers) = cluster(&dir, &[("skewed", 4)]);
    let messages: Vec<(i32, String, String, i64)> = (0..4)
        .flat_map(|p| {
            (0..PER).map(move |i| {
                // Not 0: librdkafka stamps a message given timestamp 0 with the current time.
                let ts = 1_000 + p as i64 * 100_000 + i * 3;
                (p, p.to_string(), ts.to_string(), ts)
            })
        })
        .collect();
    if !is_child() {
        produce(&brokers, "skewed", &messages);
    }
    let mut model: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for (p, _, _, ts) in &messages {
        *model
            .entry((p.to_string(), ts / 1000 * 1000 + 1000))
            .or_insert(0) += 1;
    }
    let model: Vec<(String, i64, u64)> = model.into_iter().map(|((k, e), n)| (k, e, n)).collect();
    let b = brokers.clone();
    on_every_shape(
        test,
        move |env| {
            let strategy = WatermarkStrategy::monotonous()
                .with_timestamps(|r: &KafkaRecord<String>| r.timestamp.unwrap());
            // Small fetches and a paced read, so that the partitions are read interleaved.
            let source = KafkaSource::new(b.as_str(), &["skewed"])
                .utf8()
                .bounded()
                .property("max.partition.fetch.bytes", "2000")
                .rate(40_000.0)
                .with_metadata();
            let late = OutputTag::new();
            let counts = env
                .kafka_with(source, strategy)
                .map(|r| (r.partition.to_string(), 1u64))
                .keyed()
                .window(Windows::tumbling(Duration::from_secs(1)))
                .side_output_late_data(&late)
                .aggregate_with(
                    |_| 1u64,
                    |n, _| *n += 1,
                    |n, m| *n += m,
                    |k: &String, w: &Window, n: &u64| (k.clone(), w.end, *n as i64, 0u64),
                );
            let late = late.stream().map(|(k, _)| (k, -1, -1, 1u64));
            counts.union(late).collect()
        },
        |shape, out: Vec<(String, i64, i64, u64)>| {
            let late = out.iter().filter(|r| r.3 == 1).count();
            assert_eq!(late, 0, "{shape:?}: records dropped as late");
            let got: Vec<(String, i64, u64)> = sorted(
                out.into_iter()
                    .map(|(k, e, n, _)| (k, e, n as u64))
                    .collect(),
            );
            assert!(
                got == model,
                "{shape:?}: other window counts ({} windows, {} expected; first different: {:?} against {:?})",
                got.len(),
                model.len(),
                got.iter().zip(&model).find(|(a, b)| a != b).map(|p| p.0),
                got.iter().zip(&model).find(|(a, b)| a != b).map(|p| p.1),
            );
        },
    );
}

/// Whether every source had more to read at the checkpoint's cut.
fn mid_run(c: &Restored) -> bool {
    c.parts
        .iter()
        .flat_map(|p| &p.sources)
        .all(|(_, s)| matches!(s, SourcePosition::At { .. }))
}

/// A job over Kafka that counts words: `(env, brokers, rate)`, paced at `rate` records/s when
/// given.
type CountJob = fn(&mut Env<'_>, &str, Option<f64>) -> Collected<(String, u64)>;

/// Runs `job` paced at 10 000 records/s on 2 threads with checkpoints every 50 ms into
/// `dir/first` until a completed checkpoint satisfies `wanted` (in the test process), stops it,
/// then restores the newest complete checkpoint (which must satisfy `wanted` too) on every shape
/// unpaced: each restored run's counts equal `oracle`.
fn restore_counts_on_every_shape(
    test: &str,
    dir: &Path,
    brokers: &str,
    job: CountJob,
    wanted: fn(&Restored) -> bool,
    oracle: &[(String, u64)],
) {
    let first = dir.join("first");
    if !is_child() {
        let (tx, completed) = mpsc::channel::<CompletedCheckpoint>();
        let first_run = Job::local(2)
            .quiet()
            .with_checkpoints(CheckpointConfig::new(&first).interval(Duration::from_millis(50)))
            .on_checkpoint(move |c| drop(tx.send(c.clone())));
        let stop = first_run.stop_handle();
        let b = brokers.to_string();
        let runner =
            std::thread::spawn(move || first_run.run(move |env| job(env, &b, Some(10_000.0))));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let c = completed
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("a checkpoint within 60 s");
            if wanted(&checkpoint::read_checkpoint(&c.location).unwrap()) {
                break;
            }
        }
        stop.stop();
        runner.join().unwrap().unwrap();
    }
    let chosen = checkpoint::latest_valid(&first.as_path().into())
        .unwrap()
        .expect("a complete checkpoint");
    assert!(
        wanted(&chosen),
        "the newest checkpoint is one the test wanted"
    );
    for (i, shape) in SHAPES.into_iter().enumerate() {
        let restore = chosen.path.clone();
        let own = dir.join(format!("restored-{i}"));
        let b = brokers.to_string();
        let out = run_with(
            test,
            shape,
            move |job| {
                job.with_checkpoints(
                    CheckpointConfig::new(&own).restore(Restore::Path(restore.clone())),
                )
            },
            move |env| job(env, &b, None),
        );
        if !is_child() {
            assert!(
                sorted(out) == oracle,
                "{shape:?}: other counts after the restore"
            );
        }
    }
}

/// Offsets are part of the checkpoint: a count per key over a topic of 4 partitions, read at
/// 10 000 messages/s on 2 threads and stopped after a checkpoint taken mid-run, restored on 1
/// worker, 2 threads and 2 processes, gives the count of the whole topic (nothing read twice or
/// skipped across the restore).
#[test]
fn offsets_restore_from_a_checkpoint_on_every_shape() {
    const N: u64 = 30_000;
    let test = "offsets_restore_from_a_checkpoint_on_every_shape";
    let dir = fixture_dir(test);
    let (_cluster, brokers) = cluster(&dir, &[("words", 4)]);
    let word = |i: u64| format!("w{}", (i * 31) % 113);
    if !is_child() {
        let messages: Vec<(i32, String, String, i64)> = (0..N)
            .map(|i| ((i % 4) as i32, String::new(), word(i), 1_000 + i as i64))
            .collect();
        produce(&brokers, "words", &messages);
    }
    let mut oracle: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..N {
        *oracle.entry(word(i)).or_insert(0) += 1;
    }
    let oracle: Vec<(String, u64)> = oracle.into_iter().collect();
    fn counts(env: &mut Env<'_>, brokers: &str, rate: Option<f64>) -> Collected<(String, u64)> {
        let mut source = KafkaSource::new(brokers, &["words"]).utf8().bounded();
        if let Some(rate) = rate {
            source = source.rate(rate);
        }
        env.kafka(source)
            .key_by(|w| w.clone())
            .count()
            .final_values()
            .collect()
    }
    restore_counts_on_every_shape(
        test,
        &dir,
        &brokers,
        counts,
        |c| c.id >= 3 && mid_run(c),
        &oracle,
    );
}

/// Brokers that cannot be reached fail the job after the connect timeout, naming them; a topic
/// that does not exist fails it naming the topic; a value that does not decode fails it naming
/// the topic, partition and offset — or, with a dead-letter directory, is set aside with its
/// offset while the rest is read.
#[test]
fn errors_name_the_brokers_the_topic_and_the_offset() {
    let test = "errors_name_the_brokers_the_topic_and_the_offset";
    let dir = fixture_dir(test);
    // Nothing listens on this port.
    let nowhere = common::free_addresses(1).remove(0);
    let err = Job::local(1)
        .quiet()
        .run(move |env| {
            let source = KafkaSource::new(nowhere.as_str(), &["bids"])
                .utf8()
                .connect_timeout(Duration::from_secs(1));
            env.kafka(source).collect()
        })
        .map(|v: Vec<String>| v.len())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no answer from brokers"), "{err}");

    let (_cluster, brokers) = cluster(&dir, &[("bids", 2)]);
    let b = brokers.clone();
    let err = Job::local(1)
        .quiet()
        .run(move |env| {
            env.kafka(KafkaSource::new(b.as_str(), &["no-such-topic"]).utf8())
                .collect()
        })
        .map(|v: Vec<String>| v.len())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("topic 'no-such-topic' does not exist"),
        "{err}"
    );

    // Offsets 0..10 of partition 1; offset 4 is not a bid.
    let mut messages: Vec<(i32, String, String, i64)> = (0..10)
        .map(|i| {
            (
                1,
                String::new(),
                serde_json::to_string(&bid(i)).unwrap(),
                1_000 + i as i64,
            )
        })
        .collect();
    messages[4].2 = r#"{"auction": "seven"}"#.to_string();
    produce(&brokers, "bids", &messages);
    let b = brokers.clone();
    let err = Job::local(1)
        .quiet()
        .run(move |env| {
            env.kafka(
                KafkaSource::new(b.as_str(), &["bids"])
                    .json::<Bid>()
                    .bounded(),
            )
            .collect()
        })
        .map(|v: Vec<Bid>| v.len())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("topic 'bids' partition 1 line 4") && err.contains("auction"),
        "{err}"
    );
    let dead = dir.join("dead");
    let d = dead.clone();
    let b = brokers.clone();
    let out: Vec<Bid> = Job::local(1)
        .quiet()
        .run(move |env| {
            let source = KafkaSource::new(b.as_str(), &["bids"])
                .json::<Bid>()
                .bounded()
                .on_error(OnError::DeadLetter(d.clone()));
            env.kafka(source).collect()
        })
        .unwrap();
    assert_eq!(out.len(), 9);
    let letters = std::fs::read_to_string(dead.join("part-00000.jsonl")).unwrap();
    assert_eq!(letters.lines().count(), 1, "{letters}");
    assert!(
        letters.contains(r#""line":4"#) && letters.contains("seven"),
        "{letters}"
    );
}

/// Everything in `topic`, read to its end.
fn read_topic(brokers: &str, topic: &str) -> Vec<String> {
    let (b, t) = (brokers.to_string(), topic.to_string());
    Job::local(1)
        .quiet()
        .run(move |env| {
            env.kafka(KafkaSource::new(b.as_str(), &[t.as_str()]).utf8().bounded())
                .collect()
        })
        .unwrap()
}

/// The sink sends every record once in a run without failures, on every shape: a topic of bids
/// read, turned into text lines and written to another topic, read back whole.
#[test]
fn the_sink_delivers_every_record_on_every_shape() {
    const N: u64 = 10_000;
    let test = "the_sink_delivers_every_record_on_every_shape";
    let dir = fixture_dir(test);
    let (_cluster, brokers) = cluster(&dir, &[("in", 4), ("out-0", 3), ("out-1", 3), ("out-2", 3)]);
    if !is_child() {
        produce(&brokers, "in", &bid_messages(N, 4));
    }
    let line = |b: &Bid| format!("{},{},{}", b.auction, b.price, b.time);
    let expected: Vec<String> = sorted((0..N).map(|i| line(&bid(i))).collect());
    for (i, shape) in SHAPES.into_iter().enumerate() {
        let b = brokers.clone();
        let out = format!("out-{i}");
        let o = out.clone();
        run_with(
            test,
            shape,
            |job| job,
            move |env| {
                env.kafka(
                    KafkaSource::new(b.as_str(), &["in"])
                        .json::<Bid>()
                        .bounded(),
                )
                .map(move |b| line(&b))
                .write_kafka(KafkaSink::text(b.as_str(), o.as_str()).key(|l: &String| l.clone()));
                Collected::<()>::new()
            },
        );
        if !is_child() {
            let got = sorted(read_topic(&brokers, &out));
            assert!(
                got == expected,
                "{shape:?}: {} lines in the topic, {} expected",
                got.len(),
                expected.len()
            );
        }
    }
}

/// A message the producer refuses fails the job with the sink's topic and the reason.
#[test]
fn a_refused_message_fails_the_job_naming_the_sink() {
    let test = "a_refused_message_fails_the_job_naming_the_sink";
    let dir = fixture_dir(test);
    let (_cluster, brokers) = cluster(&dir, &[("small", 1)]);
    let err = Job::local(1)
        .quiet()
        .run(move |env| {
            env.from_iter(vec!["x".repeat(5_000)]).write_kafka(
                KafkaSink::text(brokers.as_str(), "small").property("message.max.bytes", "1000"),
            );
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("Kafka sink to topic 'small'"), "{err}");
    assert!(err.to_lowercase().contains("size"), "{err}");
}

/// The bids of the `kafka_bid_windows` tests, and the window rows they give:
/// `window_end,auction,count,max_price` per 10 s window and auction.
fn window_bids(n: u64) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut windows: BTreeMap<(i64, u64), (u64, u64)> = BTreeMap::new();
    for i in 0..n {
        let (auction, price, time) = ((i * 37) % 40, 1 + (i * 13) % 997, 1_000 + i as i64 * 2);
        text.push_str(&format!("{auction},{price},{time}\n"));
        let w = windows
            .entry((time / 10_000 * 10_000 + 10_000, auction))
            .or_insert((0, 0));
        w.0 += 1;
        w.1 = w.1.max(price);
    }
    let rows = windows
        .into_iter()
        .map(|((end, auction), (count, max))| format!("{end},{auction},{count},{max}"))
        .collect();
    (text, sorted(rows))
}

/// The `kafka_bid_windows` example: a file loaded into a topic with `--load`, then the job
/// bounded on 1 worker, 2 workers and 2 processes under `tidal run`, each into its own output
/// topic: the window rows equal the model's.
#[test]
fn kafka_bid_windows_gives_the_models_windows_on_every_shape() {
    let test = "kafka_bid_windows_gives_the_models_windows_on_every_shape";
    let dir = fixture_dir(test);
    let (_cluster, brokers) = cluster(&dir, &[("bids", 4), ("w-0", 2), ("w-1", 2), ("w-2", 2)]);
    let (text, expected) = window_bids(20_000);
    let file = dir.join("bids.csv");
    std::fs::write(&file, text).unwrap();
    let example = common::example("kafka_bid_windows");
    let base = ["--brokers", brokers.as_str(), "--input-topic", "bids"];
    let status = std::process::Command::new(&example)
        .args(base)
        .args(["--load", file.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    for (i, shape) in [["-w", "1"], ["-w", "2"], ["-n", "2"]].iter().enumerate() {
        let output = format!("w-{i}");
        let args = [&base[..], &["--output-topic", &output, "--bounded"]].concat();
        let status = if shape[0] == "-n" {
            common::launch_once(2)
                .arg(&example)
                .args(&args)
                .status()
                .unwrap()
        } else {
            std::process::Command::new(&example)
                .args(&args)
                .args(shape)
                .status()
                .unwrap()
        };
        assert!(status.success(), "{shape:?}");
        let got = sorted(read_topic(&brokers, &output));
        common::assert_same(&got, &expected, &format!("{shape:?}: window rows"));
    }
}

/// `kafka_bid_windows` under `tidal run` on 2 processes, killed with `kill -9` twice while it
/// reads (40 000 bids paced at 8 000/s; each kill 1.5 to 2.5 s after its attempt started, when
/// checkpoints have completed even on a loaded machine): after the restarts every window row of
/// the model is in the output topic — at least once, each copy the same row — and nothing else.
#[test]
fn kafka_bid_windows_delivers_every_window_at_least_once_across_kill_9() {
    let test = "kafka_bid_windows_delivers_every_window_at_least_once_across_kill_9";
    let dir = fixture_dir(test);
    let (_cluster, brokers) = cluster(&dir, &[("bids", 4), ("windows", 2)]);
    let (text, expected) = window_bids(40_000);
    let file = dir.join("bids.csv");
    std::fs::write(&file, text).unwrap();
    let example = common::example("kafka_bid_windows");
    let status = std::process::Command::new(&example)
        .args([
            "--brokers",
            brokers.as_str(),
            "--load",
            file.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let nothing = || {};
    common::run_with_kills(
        "kafka_bid_windows",
        &[
            "--brokers",
            brokers.as_str(),
            "--output-topic",
            "windows",
            "--bounded",
            "--rate",
            "8000",
        ],
        common::Kills {
            checkpoints: dir.join("checkpoints").to_str().unwrap(),
            kills: 2,
            delays: 1500..2500,
            seed: 29,
            envs: &[],
            before_first_kill: &nothing,
        },
    );
    let got = read_topic(&brokers, "windows");
    let mut distinct = sorted(got.clone());
    distinct.dedup();
    common::assert_same(&distinct, &expected, "window rows (duplicates aside)");
    assert!(got.len() >= expected.len());
}

#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
struct Customer {
    id: u64,
    region: String,
}

/// Change data from Kafka into incremental collections, on every shape: a Debezium JSON log of
/// customers (created, moved between regions, deleted, created again) counted per region, and
/// an upsert topic of prices (set, changed, deleted by tombstones) kept as a table. The final
/// tables equal the model's: the last state of every row.
#[test]
fn change_data_from_kafka_feeds_collections_on_every_shape() {
    let test = "change_data_from_kafka_feeds_collections_on_every_shape";
    let dir = fixture_dir(test);
    let (_cluster, brokers) = cluster(&dir, &[("customers", 2), ("prices", 3)]);
    let regions = ["emea", "apac", "amer"];
    // Customers: 200 ids, 3 000 changes; each id's changes in one partition, in time order.
    let mut now: BTreeMap<u64, String> = BTreeMap::new();
    let mut log = Vec::new();
    for i in 0..3_000u64 {
        let id = (i * 7919) % 200;
        let ts = 1_000 + i as i64;
        let region = regions[((i * 31) % 3) as usize].to_string();
        let row = |r: &str| format!(r#"{{"id":{id},"region":"{r}"}}"#);
        let (op, before, after) = match now.get(&id).cloned() {
            None => ("c", "null".to_string(), row(&region)),
            Some(old) if i % 5 == 0 => ("d", row(&old), "null".to_string()),
            Some(old) => ("u", row(&old), row(&region)),
        };
        match op {
            "d" => now.remove(&id),
            _ => now.insert(id, region.clone()),
        };
        let event = format!(r#"{{"before":{before},"after":{after},"op":"{op}","ts_ms":{ts}}}"#);
        log.push(((id % 2) as i32, id.to_string(), event, ts));
    }
    let mut per_region: BTreeMap<String, i64> = BTreeMap::new();
    for region in now.values() {
        *per_region.entry(region.clone()).or_insert(0) += 1;
    }
    let expected_regions: Vec<(String, i64)> = per_region.into_iter().collect();
    // Prices: 50 items, 2 000 upserts, every seventh a tombstone.
    let mut prices: BTreeMap<u64, u64> = BTreeMap::new();
    let mut upserts = Vec::new();
    for i in 0..2_000u64 {
        let item = (i * 13) % 50;
        let key = item.to_string();
        let ts = 1_000 + i as i64;
        let value = if i % 7 == 0 {
            prices.remove(&item);
            None
        } else {
            prices.insert(item, i);
            Some(i.to_string())
        };
        upserts.push(((item % 3) as i32, key, value, ts));
    }
    let expected_prices: Vec<(u64, u64)> = prices.into_iter().collect();
    if !is_child() {
        produce(&brokers, "customers", &log);
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .unwrap();
        for (partition, key, value, ts) in &upserts {
            let mut record = BaseRecord::<String, String>::to("prices")
                .partition(*partition)
                .key(key)
                .timestamp(*ts);
            if let Some(v) = value {
                record = record.payload(v);
            }
            producer.send(record).map_err(|(e, _)| e).unwrap();
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    }
    let b = brokers.clone();
    on_every_shape(
        test,
        move |env| {
            let by_ts = WatermarkStrategy::monotonous()
                .with_timestamps(|e: &DebeziumEvent<Customer>| e.ts_ms);
            let customers = env
                .kafka_with(
                    KafkaSource::new(b.as_str(), &["customers"])
                        .debezium_json::<Customer>()
                        .bounded(),
                    by_ts,
                )
                .flat_map(|event| event)
                .changelog_into_collection();
            let regions = customers
                .map(|c| (c.region, ()))
                .count_by_key()
                .final_table()
                .map(|(region, n)| (0u8, region, n as u64));
            let prices = env
                .kafka(
                    KafkaSource::new(b.as_str(), &["prices"])
                        .upsert_json::<u64, u64>()
                        .bounded(),
                )
                .upsert_by_key()
                .final_table()
                .map(|(item, price)| (1u8, item.to_string(), price));
            regions.union(prices).collect()
        },
        |shape, out: Vec<(u8, String, u64)>| {
            let got_regions: Vec<(String, i64)> = sorted(
                out.iter()
                    .filter(|r| r.0 == 0)
                    .map(|r| (r.1.clone(), r.2 as i64))
                    .collect(),
            );
            assert_eq!(
                got_regions, expected_regions,
                "{shape:?}: customers per region"
            );
            let got_prices: Vec<(u64, u64)> = sorted(
                out.iter()
                    .filter(|r| r.0 == 1)
                    .map(|r| (r.1.parse().unwrap(), r.2))
                    .collect(),
            );
            assert_eq!(got_prices, expected_prices, "{shape:?}: prices");
        },
    );
}

/// A bounded topic read to its end before a checkpoint's cut, in a job whose other source goes
/// on: restored on every shape, the topic is not read again (its words counted once) and the
/// other source resumes (its numbers counted once).
#[test]
fn a_topic_read_to_its_end_before_the_cut_is_not_read_again() {
    const N: u64 = 20_000;
    let test = "a_topic_read_to_its_end_before_the_cut_is_not_read_again";
    let dir = fixture_dir(test);
    let (_cluster, brokers) = cluster(&dir, &[("small", 3)]);
    let word = |i: u64| format!("w{}", i % 17);
    if !is_child() {
        let messages: Vec<(i32, String, String, i64)> = (0..1_000)
            .map(|i| ((i % 3) as i32, String::new(), word(i), 1_000 + i as i64))
            .collect();
        produce(&brokers, "small", &messages);
    }
    let mut oracle: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..1_000 {
        *oracle.entry(word(i)).or_insert(0) += 1;
    }
    for i in 0..N {
        *oracle.entry(format!("n{}", i % 11)).or_insert(0) += 1;
    }
    let oracle: Vec<(String, u64)> = oracle.into_iter().collect();
    fn job(env: &mut Env<'_>, brokers: &str, rate: Option<f64>) -> Collected<(String, u64)> {
        let words = env.kafka(KafkaSource::new(brokers, &["small"]).utf8().bounded());
        let mut numbers = Generator::new(|i| format!("n{}", i % 11)).count(N);
        if let Some(rate) = rate {
            numbers = numbers.rate(rate);
        }
        words
            .union(env.generate(numbers).name("numbers"))
            .key_by(|w| w.clone())
            .count()
            .final_values()
            .collect()
    }
    /// The topic's source had read everything at the cut, the generator had not.
    fn kafka_done(c: &Restored) -> bool {
        let sources: Vec<&(String, SourcePosition)> =
            c.parts.iter().flat_map(|p| &p.sources).collect();
        sources
            .iter()
            .filter(|(name, _)| name.starts_with("kafka"))
            .all(|(_, s)| *s == SourcePosition::Done)
            && sources
                .iter()
                .any(|(name, s)| name == "numbers" && matches!(s, SourcePosition::At { .. }))
    }
    restore_counts_on_every_shape(test, &dir, &brokers, job, kafka_done, &oracle);
}

/// A topic pattern reads every topic whose whole name matches, and only those, on every shape;
/// a pattern that matches nothing fails the job naming it.
#[test]
fn a_topic_pattern_reads_the_matching_topics() {
    let test = "a_topic_pattern_reads_the_matching_topics";
    let dir = fixture_dir(test);
    let topics = [
        ("events-a", 2),
        ("events-b", 1),
        ("other", 1),
        ("events-a-old", 1),
    ];
    let (_cluster, brokers) = cluster(&dir, &topics);
    let messages = |topic: &str, partitions: i32| -> Vec<(i32, String, String, i64)> {
        (0..100)
            .map(|i| {
                (
                    i % partitions,
                    String::new(),
                    format!("{topic} {i}"),
                    1_000 + i as i64,
                )
            })
            .collect()
    };
    if !is_child() {
        for (topic, partitions) in topics {
            produce(&brokers, topic, &messages(topic, partitions));
        }
    }
    let expected: Vec<String> = sorted(
        ["events-a", "events-b"]
            .iter()
            .flat_map(|t| messages(t, 1).into_iter().map(|m| m.2))
            .collect(),
    );
    let b = brokers.clone();
    on_every_shape(
        test,
        move |env| {
            env.kafka(
                KafkaSource::pattern(b.as_str(), "events-[a-z]")
                    .utf8()
                    .bounded(),
            )
            .collect()
        },
        |shape, out: Vec<String>| {
            assert!(sorted(out) == expected, "{shape:?}: other records");
        },
    );
    if is_child() {
        return;
    }
    let err = Job::local(1)
        .quiet()
        .run(move |env| {
            env.kafka(
                KafkaSource::pattern(brokers.as_str(), "nothing-.*")
                    .utf8()
                    .bounded(),
            )
            .collect()
        })
        .map(|v: Vec<String>| v.len())
        .unwrap_err()
        .to_string();
    assert!(err.contains("matches the pattern 'nothing-.*'"), "{err}");
}

/// Each partition's offset in `c`, from every worker's part (`(topic, partition)` → next offset).
fn offsets_in(c: &Restored) -> BTreeMap<(String, i32), i64> {
    let mut out = BTreeMap::new();
    for (_, s) in c.parts.iter().flat_map(|p| &p.sources) {
        if let SourcePosition::At { position, .. } = s {
            for p in checkpointed_offsets(position).unwrap() {
                out.insert((p.topic, p.partition), p.next);
            }
        }
    }
    out
}

/// The offsets group `group` has committed for `topic`'s `partitions` (`None` where it has none).
fn group_offsets(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    (0..partitions)
        .map(
            |p| match committed.find_partition(topic, p).unwrap().offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            },
        )
        .collect()
}

/// With a group id, the offsets of each completed checkpoint are committed to the group: while a
/// paced job runs on 2 workers, every partition's committed offset becomes its offset in one of the
/// job's completed checkpoints (past the start); a source with commits turned off commits
/// nothing; and after the job is stopped, a new job that starts from the committed offsets reads
/// exactly the messages at and after them.
#[test]
fn completed_checkpoints_commit_their_offsets_to_the_group() {
    const N: u64 = 20_000;
    let test = "completed_checkpoints_commit_their_offsets_to_the_group";
    let dir = fixture_dir(test);
    let (_cluster, brokers) = cluster(&dir, &[("clicks", 4)]);
    let messages: Vec<(i32, String, String, i64)> = (0..N)
        .map(|i| {
            (
                (i % 4) as i32,
                String::new(),
                format!("c{i}"),
                1_000 + i as i64,
            )
        })
        .collect();
    produce(&brokers, "clicks", &messages);

    let (tx, completed) = mpsc::channel::<CompletedCheckpoint>();
    let job = Job::local(2)
        .quiet()
        .with_checkpoints(
            CheckpointConfig::new(dir.join("first"))
                .interval(Duration::from_millis(50))
                .keep(1_000),
        )
        .on_checkpoint(move |c| drop(tx.send(c.clone())));
    let stop = job.stop_handle();
    let b = brokers.clone();
    let runner = std::thread::spawn(move || {
        job.run(move |env| {
            let source = |group: Option<&str>| {
                let s = KafkaSource::new(b.as_str(), &["clicks"])
                    .utf8()
                    .rate(10_000.0);
                match group {
                    Some(g) => s.group_id(g),
                    None => s,
                }
            };
            let monitored = env.kafka(source(Some("monitor")));
            let silent = env.kafka(source(Some("silent")).commit_offsets_on_checkpoint(false));
            let unnamed = env.kafka(source(None));
            monitored.union(silent).union(unnamed).map(|_| ()).collect()
        })
    });
    // Every partition's committed offset is its offset in one of the completed checkpoints.
    let mut seen: Vec<BTreeMap<(String, i32), i64>> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "no committed offsets of a checkpoint within 60 s"
        );
        if let Ok(c) = completed.recv_timeout(Duration::from_millis(20)) {
            seen.push(offsets_in(
                &checkpoint::read_checkpoint(&c.location).unwrap(),
            ));
        }
        let committed = group_offsets(&brokers, "monitor", "clicks", 4);
        let from_checkpoints = committed.iter().enumerate().all(|(p, o)| {
            o.is_some_and(|o| {
                o > 0
                    && seen
                        .iter()
                        .any(|s| s.get(&("clicks".to_string(), p as i32)) == Some(&o))
            })
        });
        if from_checkpoints {
            break;
        }
    }
    stop.stop();
    runner.join().unwrap().unwrap();
    assert_eq!(
        group_offsets(&brokers, "silent", "clicks", 4),
        vec![None; 4]
    );

    // A new job from the group's committed offsets reads the rest of each partition.
    let committed: Vec<i64> = group_offsets(&brokers, "monitor", "clicks", 4)
        .into_iter()
        .map(Option::unwrap)
        .collect();
    let b = brokers.clone();
    let rest: Vec<KafkaRecord<String>> = Job::local(2)
        .quiet()
        .run(move |env| {
            let source = KafkaSource::new(b.as_str(), &["clicks"])
                .utf8()
                .group_id("monitor")
                .start_from(StartFrom::Committed)
                .bounded()
                .with_metadata();
            env.kafka(source).collect()
        })
        .unwrap();
    let mut got: Vec<(i32, i64)> = rest.iter().map(|r| (r.partition, r.offset)).collect();
    got.sort();
    let expected: Vec<(i32, i64)> = (0..4)
        .flat_map(|p| (committed[p as usize]..(N / 4) as i64).map(move |o| (p, o)))
        .collect();
    assert!(
        got == expected,
        "the new job read other messages than those after the committed offsets"
    );
}

/// An unbounded source with a topic pattern finds topics created while it runs: on 1 worker and
/// on 2, a topic matching the pattern created after the job has read the first one is read
/// from its first message (each of its 3 partitions going to one worker), every message of
/// both exactly once; a topic that does not match is not read.
#[test]
fn topics_created_while_running_are_found_and_read_from_the_start() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = fixture_dir("topics_created_while_running");
    let (cluster, brokers) = cluster(&dir, &[("live-a", 2)]);
    let cluster = cluster.unwrap();
    let messages = |topic: &str, partitions: i32| -> Vec<(i32, String, String, i64)> {
        (0..300)
            .map(|i| {
                (
                    i % partitions,
                    String::new(),
                    format!("{topic} {i}"),
                    1_000 + i as i64,
                )
            })
            .collect()
    };
    produce(&brokers, "live-a", &messages("live-a", 2));
    for (round, workers) in [1usize, 2].into_iter().enumerate() {
        let (b_topic, other) = (format!("live-b{round}"), format!("live-c{round}"));
        let pattern = format!("live-(a|b{round})");
        let seen = Arc::new(AtomicUsize::new(0));
        let job = Job::local(workers).quiet();
        let stop = job.stop_handle();
        let (b, counter) = (brokers.clone(), Arc::clone(&seen));
        let runner = std::thread::spawn(move || {
            job.run(move |env| {
                let counter = Arc::clone(&counter);
                let source = KafkaSource::pattern(b.as_str(), pattern.as_str())
                    .utf8()
                    .partition_discovery(Duration::from_millis(50));
                env.kafka(source)
                    .inspect(move |_| {
                        counter.fetch_add(1, Ordering::SeqCst);
                    })
                    .collect()
            })
        });
        let wait_for = |n: usize| {
            let deadline = Instant::now() + Duration::from_secs(60);
            while seen.load(Ordering::SeqCst) < n {
                assert!(
                    Instant::now() < deadline,
                    "{workers} workers: fewer than {n} records within 60 s"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        wait_for(300);
        cluster.create_topic(&b_topic, 3, 1).unwrap();
        cluster.create_topic(&other, 1, 1).unwrap();
        produce(&brokers, &b_topic, &messages(&b_topic, 3));
        produce(&brokers, &other, &messages(&other, 1));
        wait_for(600);
        stop.stop();
        let out: Vec<String> = runner.join().unwrap().unwrap();
        let expected: Vec<String> = sorted(
            messages("live-a", 1)
                .into_iter()
                .chain(messages(&b_topic, 1))
                .map(|m| m.2)
                .collect(),
        );
        assert!(sorted(out) == expected, "{workers} workers: other records");
    }
}

/// A bounded source whose worker finished its partitions before the cut while another had not:
/// restored on every shape, the finished partitions are not read again and the other resumes
/// (every word counted once).
#[test]
fn partitions_of_a_finished_worker_are_not_read_again_after_a_restore() {
    let test = "partitions_of_a_finished_worker_are_not_read_again_after_a_restore";
    let dir = fixture_dir(test);
    let (_cluster, brokers) = cluster(&dir, &[("uneven", 2)]);
    // Partition 0 (worker 0 of 2) is short, partition 1 long.
    let messages: Vec<(i32, String, String, i64)> = (0..20_000u64)
        .map(|i| {
            let partition = if i % 400 == 0 { 0 } else { 1 };
            (
                partition,
                String::new(),
                format!("w{}", i % 13),
                1_000 + i as i64,
            )
        })
        .collect();
    if !is_child() {
        produce(&brokers, "uneven", &messages);
    }
    let mut oracle: BTreeMap<String, u64> = BTreeMap::new();
    for m in &messages {
        *oracle.entry(m.2.clone()).or_insert(0) += 1;
    }
    let oracle: Vec<(String, u64)> = oracle.into_iter().collect();
    fn counts(env: &mut Env<'_>, brokers: &str, rate: Option<f64>) -> Collected<(String, u64)> {
        let mut source = KafkaSource::new(brokers, &["uneven"]).utf8().bounded();
        if let Some(rate) = rate {
            source = source.rate(rate);
        }
        env.kafka(source)
            .key_by(|w| w.clone())
            .count()
            .final_values()
            .collect()
    }
    /// One instance had finished at the cut, the other had not.
    fn one_finished(c: &Restored) -> bool {
        let sources: Vec<&SourcePosition> = c
            .parts
            .iter()
            .flat_map(|p| &p.sources)
            .map(|(_, s)| s)
            .collect();
        sources.iter().any(|s| **s == SourcePosition::Done)
            && sources
                .iter()
                .any(|s| matches!(s, SourcePosition::At { .. }))
    }
    restore_counts_on_every_shape(test, &dir, &brokers, counts, one_finished, &oracle);
}

/// The `tansu` broker (a Kafka-compatible broker of its own, a separate process): where
/// `TIDAL_TANSU` says, on `PATH`, or in cargo's bin directory.
fn tansu() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("TIDAL_TANSU") {
        return path.into();
    }
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin")));
    for dir in candidates {
        let path = dir.join("tansu");
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "no tansu broker found: install it with `cargo install tansu --version 0.6.0 --features dynostore` (the README's test command does) or set TIDAL_TANSU"
    );
}

/// A server process on loopback (a broker, a TLS front), killed when dropped.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts tansu (in-memory storage) listening on `listen`, telling clients to connect to
/// `advertise`, with `extra` arguments; returns once it accepts connections.
fn start_tansu(listen: &str, advertise: &str, extra: &[&str]) -> Server {
    start_tansu_on(listen, advertise, "memory://tansu/", &[], extra)
}

/// [`start_tansu`] with the storage `storage` (a URL) and `env` set for the broker.
fn start_tansu_on(
    listen: &str,
    advertise: &str,
    storage: &str,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Server {
    let broker = std::process::Command::new(tansu())
        .args(["broker", "--listener-url", &format!("tcp://{listen}")])
        .args(["--advertised-listener-url", &format!("tcp://{advertise}")])
        .args(["--storage-engine", storage, "--silent"])
        .envs(env.iter().copied())
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tansu starts");
    let broker = Server(broker);
    wait_for_listener(listen, "tansu");
    broker
}

/// Waits until something accepts connections on `addr` (30 s at most).
fn wait_for_listener(addr: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} does not listen on {addr} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `kafka_bid_windows` against a separate broker process (tansu, in-memory storage) rather than
/// librdkafka's mock: bids loaded with `--load`, the job reading them on 2 processes under
/// `tidal run` (sink at least once), the output topic read back as it fills: every window row of
/// the model arrives, and nothing else. Unbounded, with a last bid far in the future to close
/// the windows: tansu 0.6 with in-memory storage reports end offsets below the end of its
/// partitions (4 140 for a partition holding 6 500 records, seen here), so a bounded read of it
/// stops early.
#[test]
fn kafka_bid_windows_against_a_separate_broker_process() {
    use std::sync::{Arc, Mutex};
    let addr = common::free_addresses(1).remove(0);
    let url = format!("tcp://{addr}");
    let _broker = start_tansu(&addr, &addr, &[]);
    for (topic, partitions) in [("bids", "3"), ("windows", "2")] {
        let status = std::process::Command::new(tansu())
            .args([
                "topic",
                "create",
                "--broker",
                &url,
                "--partitions",
                partitions,
                topic,
            ])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "creating topic {topic}");
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut text, expected) = window_bids(20_000);
    // Closes every window of the model when read (its own window never closes).
    text.push_str("999,1,100000000\n");
    let file = dir.path().join("bids.csv");
    std::fs::write(&file, text).unwrap();
    let example = common::example("kafka_bid_windows");
    let base = ["--brokers", addr.as_str(), "--input-topic", "bids"];
    let status = std::process::Command::new(&example)
        .args(base)
        .args(["--load", file.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success(), "loading the bids");
    let mut job = common::launch_once(2)
        .arg(&example)
        .args(base)
        .args(["--output-topic", "windows"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Read the output topic as it fills, until every row of the model has come.
    let rows: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let reader = Job::local(1).quiet();
    let stop = reader.stop_handle();
    let (b, seen) = (addr.clone(), Arc::clone(&rows));
    let reading = std::thread::spawn(move || {
        reader
            .run(move |env| {
                let seen = Arc::clone(&seen);
                env.kafka(KafkaSource::new(b.as_str(), &["windows"]).utf8())
                    .inspect(move |row| seen.lock().unwrap().push(row.clone()))
                    .map(|_| ())
                    .collect()
            })
            .map(|v: Vec<()>| v.len())
    });
    let wanted: std::collections::BTreeSet<&String> = expected.iter().collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got: std::collections::BTreeSet<String> =
            rows.lock().unwrap().iter().cloned().collect();
        if wanted.iter().all(|r| got.contains(*r)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} window rows within 90 s",
            wanted.iter().filter(|r| got.contains(**r)).count(),
            wanted.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.stop();
    reading.join().unwrap().unwrap();
    common::terminate(&mut job);
    let extra: Vec<String> = rows
        .lock()
        .unwrap()
        .iter()
        .filter(|r| !wanted.contains(r))
        .cloned()
        .collect();
    assert!(extra.is_empty(), "rows the model does not have: {extra:?}");
}

/// SQL tables on Kafka topics, on every shape: bids read from a topic (CSV, event time with a
/// watermark, bounded at the end offsets found at start), a window aggregation written to a
/// topic as JSON and an updating aggregation as Debezium JSON; a second script reads the change
/// log back (an updating table) and prints it; the totals also go to an upsert-kafka table and
/// are read back from it; upserts and tombstones written by hand read as each key's latest row.
/// The windows and the folded totals equal a model computed from the bids.
#[test]
fn sql_tables_read_and_write_kafka_topics_on_every_shape() {
    use common::sql::{fold, printed_changes, tidal_sql_with};
    const N: u64 = 3_000;
    let test = "sql_tables_read_and_write_kafka_topics_on_every_shape";
    let dir = fixture_dir(test);
    let mut topics = vec![("sql-bids".to_string(), 3), ("sql-upserts".to_string(), 1)];
    for i in 0..SHAPES.len() {
        topics.push((format!("sql-replaced-{i}"), 2));
        topics.push((format!("sql-windows-{i}"), 2));
        topics.push((format!("sql-totals-{i}"), 2));
        topics.push((format!("sql-latest-{i}"), 2));
    }
    let names: Vec<(&str, i32)> = topics.iter().map(|(t, p)| (t.as_str(), *p)).collect();
    let (_cluster, brokers) = cluster(&dir, &names);
    if is_child() {
        return; // the scripts run as `tidal sql` processes, not in test children
    }
    // Bids: auction, price, time (rising, each up to 400 ms late: the watermark waits 1 s).
    let base = 1_709_280_000_000i64;
    let bids: Vec<(u64, u64, i64)> = (0..N)
        .map(|i| {
            let t = base + 7 * i as i64 + ((i * 37) % 400) as i64;
            ((i * 7) % 23, 1 + (i * 13) % 500, t)
        })
        .collect();
    let messages: Vec<(i32, String, String, i64)> = bids
        .iter()
        .enumerate()
        .map(|(i, (a, p, t))| {
            let line = format!("{a},{p},{}", tidal::sql::Value::Timestamp(*t));
            ((i % 3) as i32, a.to_string(), line, *t)
        })
        .collect();
    produce(&brokers, "sql-bids", &messages);
    let mut windows: BTreeMap<(i64, u64), (u64, u64)> = BTreeMap::new();
    let mut totals: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for (a, p, t) in &bids {
        let end = t - t.rem_euclid(10_000) + 10_000;
        let w = windows.entry((end, *a)).or_insert((0, 0));
        *w = (w.0 + 1, w.1.max(*p));
        let s = totals.entry(*a).or_insert((0, 0));
        *s = (s.0 + 1, s.1 + p);
    }
    // Window ends are whole seconds: JSON has them without a fraction.
    let expected_windows: Vec<String> = sorted(
        windows
            .iter()
            .map(|((end, a), (n, hi))| {
                let end = tidal::sql::Value::Timestamp(*end).to_string();
                format!("{},{a},{n},{hi}", end.trim_end_matches(".000"))
            })
            .collect(),
    );
    let expected_totals: Vec<String> = sorted(
        totals
            .iter()
            .map(|(a, (n, s))| format!("{a}, {n}, {s}"))
            .collect(),
    );
    let table = |name: &str, columns: &str, topic: &str, extra: &str| {
        format!(
            "CREATE TABLE {name} ({columns}) WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{brokers}'{extra});\n"
        )
    };
    let bids_table = table(
        "bids",
        "auction BIGINT, price BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND",
        "sql-bids",
        ", 'format' = 'csv', 'scan.bounded.mode' = 'latest-offset'",
    );
    for (i, shape) in SHAPES.into_iter().enumerate() {
        let (w, t) = (format!("sql-windows-{i}"), format!("sql-totals-{i}"));
        let write = dir.join(format!("write-{i}.sql"));
        let script = [
            bids_table.clone(),
            table(
                "windows",
                "window_end TIMESTAMP(3), auction BIGINT, n BIGINT, hi BIGINT",
                &w,
                ", 'format' = 'json'",
            ),
            table(
                "totals",
                "auction BIGINT, n BIGINT, total BIGINT",
                &t,
                ", 'format' = 'debezium-json'",
            ),
            "INSERT INTO windows SELECT window_end, auction, COUNT(*), MAX(price) FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)) GROUP BY window_start, window_end, auction;\n".to_string(),
            "INSERT INTO totals SELECT auction, COUNT(*), SUM(price) FROM bids GROUP BY auction;\n".to_string(),
        ]
        .concat();
        std::fs::write(&write, script).unwrap();
        let (ok, _, err) = tidal_sql_with(&write, &[], shape);
        assert!(ok, "{shape:?}: {err}");
        let got_windows: Vec<String> = sorted(
            read_topic(&brokers, &w)
                .iter()
                .map(|line| {
                    let v: serde_json::Value = serde_json::from_str(line).unwrap();
                    format!(
                        "{},{},{},{}",
                        v["window_end"].as_str().unwrap(),
                        v["auction"],
                        v["n"],
                        v["hi"]
                    )
                })
                .collect(),
        );
        assert_eq!(got_windows, expected_windows, "{shape:?}: windows");
        // The change log, read back as an updating table.
        let read = dir.join(format!("read-{i}.sql"));
        let script = [
            table(
                "totals",
                "auction BIGINT, n BIGINT, total BIGINT",
                &t,
                ", 'format' = 'debezium-json', 'scan.bounded.mode' = 'latest-offset'",
            ),
            "SELECT auction, n, total FROM totals;\n".to_string(),
        ]
        .concat();
        std::fs::write(&read, script).unwrap();
        let (ok, out, err) = tidal_sql_with(&read, &[], shape);
        assert!(ok, "{shape:?}: {err}");
        let got_totals = fold(&printed_changes(&out, None), "totals");
        assert_eq!(got_totals, expected_totals, "{shape:?}: totals");

        // The same totals into an upsert-kafka table (keyed by auction, the key's columns only
        // in the key), read back as each key's latest row.
        let latest = format!("sql-latest-{i}");
        let upsert_table = |extra: &str| {
            format!(
                "CREATE TABLE latest (auction BIGINT, n BIGINT, total BIGINT, PRIMARY KEY (auction) NOT ENFORCED) WITH ('connector' = 'upsert-kafka', 'topic' = '{latest}', 'properties.bootstrap.servers' = '{brokers}', 'key.format' = 'json', 'value.format' = 'csv', 'value.fields-include' = 'EXCEPT_KEY'{extra});\n"
            )
        };
        let write = dir.join(format!("upsert-{i}.sql"));
        let script = [
            bids_table.clone(),
            upsert_table(""),
            "INSERT INTO latest SELECT auction, COUNT(*), SUM(price) FROM bids GROUP BY auction;\n"
                .to_string(),
        ]
        .concat();
        std::fs::write(&write, script).unwrap();
        let (ok, _, err) = tidal_sql_with(&write, &[], shape);
        assert!(ok, "{shape:?}: {err}");
        let read = dir.join(format!("read-upsert-{i}.sql"));
        let script = [
            upsert_table(", 'scan.bounded.mode' = 'latest-offset'"),
            "SELECT auction, n, total FROM latest;\n".to_string(),
        ]
        .concat();
        std::fs::write(&read, script).unwrap();
        let (ok, out, err) = tidal_sql_with(&read, &[], shape);
        assert!(ok, "{shape:?}: {err}");
        assert_eq!(
            fold(&printed_changes(&out, None), "latest"),
            expected_totals,
            "{shape:?}: upserted totals"
        );
    }

    // Upserts and tombstones written by hand: each key's latest row, a deleted key gone.
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    // Key 4's second message has an older timestamp than its first: Kafka's order wins.
    let now = 1_709_280_000_000i64;
    for (key, value, ts) in [
        (r#"{"id":1}"#, Some(r#"{"id":1,"name":"a","n":1}"#), now),
        (r#"{"id":2}"#, Some(r#"{"id":2,"name":"b","n":5}"#), now + 1),
        (
            r#"{"id":4}"#,
            Some(r#"{"id":4,"name":"e","n":9}"#),
            now + 50,
        ),
        (r#"{"id":1}"#, Some(r#"{"id":1,"name":"c","n":2}"#), now + 2),
        (
            r#"{"id":4}"#,
            Some(r#"{"id":4,"name":"f","n":3}"#),
            now + 10,
        ),
        (
            r#"{"id":3}"#,
            Some(r#"{"id":3,"name":"d","n":7}"#),
            now + 60,
        ),
        (r#"{"id":2}"#, None, now + 61),
    ] {
        let mut record = BaseRecord::<str, str>::to("sql-upserts")
            .partition(0)
            .key(key)
            .timestamp(ts);
        if let Some(v) = value {
            record = record.payload(v);
        }
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let read = dir.join("read-hand-upserts.sql");
    std::fs::write(
        &read,
        format!(
            "CREATE TABLE people (id BIGINT, name STRING, n BIGINT, PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'upsert-kafka', 'topic' = 'sql-upserts', 'properties.bootstrap.servers' = '{brokers}', 'key.format' = 'json', 'value.format' = 'json', 'scan.bounded.mode' = 'latest-offset');
SELECT name, n FROM people;
"
        ),
    )
    .unwrap();
    for shape in SHAPES {
        let (ok, out, err) = tidal_sql_with(&read, &[], shape);
        assert!(ok, "{shape:?}: {err}");
        assert_eq!(
            fold(&printed_changes(&out, None), "people"),
            ["c, 2", "d, 7", "f, 3"],
            "{shape:?}: upserts and a tombstone"
        );
    }

    // A change log whose update replaces a row by one of the same PRIMARY KEY that sorts
    // before it, written to an upsert table: the key keeps the new row (its deletion and
    // insertion are one update under the key, not a tombstone sent after the new value).
    let changes = dir.join("changes.json");
    std::fs::write(
        &changes,
        [
            r#"{"before":null,"after":{"id":1,"v":2},"op":"c","ts_ms":1000}"#,
            r#"{"before":null,"after":{"id":2,"v":5},"op":"c","ts_ms":1000}"#,
            r#"{"before":{"id":1,"v":2},"after":{"id":1,"v":1},"op":"u","ts_ms":2000}"#,
            r#"{"before":{"id":2,"v":5},"after":null,"op":"d","ts_ms":2000}"#,
            "",
        ]
        .join("\n"),
    )
    .unwrap();
    for (i, shape) in SHAPES.into_iter().enumerate() {
        let topic = format!("sql-replaced-{i}");
        let up = format!(
            "CREATE TABLE up (id BIGINT, v BIGINT, PRIMARY KEY (id) NOT ENFORCED) WITH ('connector' = 'upsert-kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{brokers}', 'key.format' = 'json', 'value.format' = 'json', 'scan.bounded.mode' = 'latest-offset');\n"
        );
        let write = dir.join(format!("replace-{i}.sql"));
        std::fs::write(
            &write,
            format!(
                "CREATE TABLE src (id BIGINT, v BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'debezium-json');\n{up}INSERT INTO up SELECT id, v FROM src;\n",
                changes.display()
            ),
        )
        .unwrap();
        let (ok, _, err) = tidal_sql_with(&write, &[], shape);
        assert!(ok, "{shape:?}: {err}");
        let read = dir.join(format!("read-replaced-{i}.sql"));
        std::fs::write(&read, format!("{up}SELECT id, v FROM up;\n")).unwrap();
        let (ok, out, err) = tidal_sql_with(&read, &[], shape);
        assert!(ok, "{shape:?}: {err}");
        assert_eq!(
            fold(&printed_changes(&out, None), "replaced"),
            ["1, 1"],
            "{shape:?}: the replaced row"
        );
    }
}

/// Runs `openssl` in `dir` (the TLS test's certificates).
fn openssl(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (Debian's openssl package) makes the test's certificates");
    assert!(status.success(), "openssl {args:?}");
}

/// A self-signed certificate for 127.0.0.1 and its key, `NAME.pem` and `NAME-key.pem` in `dir`.
fn certificate(dir: &Path, name: &str) -> std::path::PathBuf {
    let (cert, key) = (format!("{name}.pem"), format!("{name}-key.pem"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &key,
            "-out",
            &cert,
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
    );
    dir.join(cert)
}

/// A TLS front on `tls` for a broker listening in the clear on `plain` (socat, with `cert` and
/// its key `key`), killed when dropped.
fn tls_front(tls: &str, plain: &str, cert: &Path, key: &Path) -> Server {
    let port = tls.rsplit(':').next().unwrap();
    let front = std::process::Command::new("socat")
        .arg(format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,verify=0,cert={},key={}",
            cert.display(),
            key.display()
        ))
        .arg(format!("TCP:{plain}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("socat (Debian's socat package) is the test's TLS front");
    let front = Server(front);
    wait_for_listener(tls, "socat");
    front
}

/// TLS and SASL properties reach librdkafka, against tansu broker processes behind a TLS front
/// (socat with a certificate made for the test: tansu 0.6 takes `--cert` but does not use it).
/// With `security.protocol=SSL` and the certificate's authority, Tidal's sink writes lines and
/// Tidal's source reads every one back, on one and on two workers; a SQL Kafka table with the
/// same settings as `'properties.*'` writes them too. The job fails at once,
/// naming librdkafka's reason and the properties to check, when the certificate authority is
/// another (source and sink) and when a broker that requires SASL refuses the login
/// (`SCRAM-SHA-512`; tansu's in-memory storage keeps no users, so no login succeeds there, and
/// librdkafka's mock cluster has no SASL); without SASL that broker never answers, and the
/// failure at the deadline says what librdkafka last reported.
#[test]
fn tls_and_sasl_properties_reach_the_brokers() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let (cert, other) = (
        certificate(dir.path(), "broker"),
        certificate(dir.path(), "other"),
    );
    let key = dir.path().join("broker-key.pem");
    let addrs = common::free_addresses(4);
    let (plain, tls) = (&addrs[0], &addrs[1]);
    let _broker = start_tansu(plain, tls, &[]);
    let _front = tls_front(tls, plain, &cert, &key);
    for (topic, partitions) in [("lines-1", "2"), ("lines-2", "3"), ("lines-sql", "2")] {
        let status = std::process::Command::new(tansu())
            .args(["topic", "create", "--broker", &format!("tcp://{plain}")])
            .args(["--partitions", partitions, topic])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "creating topic {topic}");
    }
    let ssl = |ca: &Path| -> Vec<(String, String)> {
        vec![
            ("security.protocol".to_string(), "SSL".to_string()),
            ("ssl.ca.location".to_string(), ca.display().to_string()),
        ]
    };

    let lines: Vec<String> = (0..2_000).map(|i| format!("line_{i}")).collect();
    // `topic` read through TLS on `workers` workers until `n` lines have come (unbounded, then
    // stopped: tansu's end offsets lag), sorted.
    let read_back = |topic: &str, workers: usize, n: usize| -> Vec<String> {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let reader = Job::local(workers).quiet();
        let stop = reader.stop_handle();
        let (b, t, p, s) = (
            tls.clone(),
            topic.to_string(),
            ssl(&cert),
            Arc::clone(&seen),
        );
        let reading = std::thread::spawn(move || {
            reader.run(move |env| {
                let mut source = KafkaSource::new(b.as_str(), &[t.as_str()]).utf8();
                for (k, v) in &p {
                    source = source.property(k, v);
                }
                let s = Arc::clone(&s);
                env.kafka(source)
                    .inspect(move |line| s.lock().unwrap().push(line.clone()))
                    .map(|_| ())
                    .collect()
            })
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.lock().unwrap().len() < n {
            assert!(
                Instant::now() < deadline && !reading.is_finished(),
                "{topic} on {workers} worker(s): {} of {n} lines read back within 60 s",
                seen.lock().unwrap().len(),
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.stop();
        let _: Vec<()> = reading.join().unwrap().unwrap();
        sorted(seen.lock().unwrap().clone())
    };
    for workers in [1, 2] {
        let topic = format!("lines-{workers}");
        // Write the lines through TLS.
        let (b, t, p, l) = (tls.clone(), topic.clone(), ssl(&cert), lines.clone());
        Job::local(workers)
            .quiet()
            .run(move |env| {
                let mut sink = KafkaSink::text(b.as_str(), t.as_str());
                for (k, v) in &p {
                    sink = sink.property(k, v);
                }
                env.from_iter(l.clone()).write_kafka(sink);
            })
            .unwrap();
        assert_eq!(
            read_back(&topic, workers, lines.len()),
            sorted(lines.clone()),
            "{workers} worker(s)"
        );
    }
    // A SQL table on the topic takes the same settings as 'properties.*'.
    let file = dir.path().join("lines.csv");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let script = dir.path().join("tls.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE input (line STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
CREATE TABLE output (line STRING) WITH ('connector' = 'kafka', 'topic' = 'lines-sql', 'properties.bootstrap.servers' = '{tls}', 'format' = 'csv', 'properties.security.protocol' = 'SSL', 'properties.ssl.ca.location' = '{}');
INSERT INTO output SELECT line FROM input;
",
            file.display(),
            cert.display()
        ),
    )
    .unwrap();
    let (ok, _, err) = common::sql::tidal_sql_with(&script, &[], common::Shape::OneWorker);
    assert!(ok, "SQL over TLS: {err}");
    assert_eq!(
        read_back("lines-sql", 1, lines.len()),
        sorted(lines.clone()),
        "SQL"
    );

    // The source's error, reading `brokers` with `props` and the connect timeout `timeout` s.
    let read_with = |brokers: &str, props: Vec<(String, String)>, timeout: u64| {
        let b = brokers.to_string();
        Job::local(1)
            .quiet()
            .run(move |env| {
                let mut source = KafkaSource::new(b.as_str(), &["lines-1"])
                    .utf8()
                    .connect_timeout(Duration::from_secs(timeout));
                for (k, v) in &props {
                    source = source.property(k, v);
                }
                env.kafka(source).collect()
            })
            .map(|v: Vec<String>| v.len())
            .unwrap_err()
            .to_string()
    };
    // A certificate authority that did not sign the broker's certificate. The deadline is far:
    // failing at once must not depend on reaching it.
    let err = read_with(tls, ssl(&other), 60);
    assert!(
        err.contains("connection was refused")
            && err.contains("certificate verify failed")
            && err.contains("ssl.ca.location"),
        "{err}"
    );
    let (b, p) = (tls.clone(), ssl(&other));
    let err = Job::local(1)
        .quiet()
        .run(move |env| {
            let mut sink =
                KafkaSink::text(b.as_str(), "lines-1").flush_timeout(Duration::from_secs(60));
            for (k, v) in &p {
                sink = sink.property(k, v);
            }
            env.from_iter((0..200_000).map(|i| format!("never {i}")))
                .write_kafka(sink);
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Kafka sink to topic 'lines-1'")
            && err.contains("connection was refused")
            && err.contains("certificate verify failed"),
        "{err}"
    );

    // A broker that requires SASL, behind its own TLS front.
    let (plain, tls) = (&addrs[2], &addrs[3]);
    let _broker = start_tansu(plain, tls, &["--authentication"]);
    let _front = tls_front(tls, plain, &cert, &key);
    let mut sasl = ssl(&cert);
    sasl[0].1 = "SASL_SSL".to_string();
    for (k, v) in [
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", "tidal"),
        ("sasl.password", "secret"),
    ] {
        sasl.push((k.to_string(), v.to_string()));
    }
    let err = read_with(tls, sasl, 60);
    assert!(
        err.contains("connection was refused")
            && err.contains("SASL authentication error")
            && err.contains("sasl.password"),
        "{err}"
    );
    // TLS without SASL: the broker drops the connection; retried until the deadline.
    let err = read_with(tls, ssl(&cert), 3);
    assert!(
        err.contains("no answer from brokers") && err.contains("librdkafka last said"),
        "{err}"
    );
}

/// A SQL table on a topic reads its messages' metadata (`METADATA FROM 'partition'`,
/// `'offset'`, `'timestamp'`, `'topic'`, VIRTUAL or not), on every shape: per partition the
/// topic's name, the number of messages, the first and last offset, and that each message's
/// Kafka timestamp is the time the producer gave it; and a tumbling window on the Kafka
/// timestamp as event time (the watermark's column a metadata column) — all as the messages
/// written say.
#[test]
fn sql_tables_read_kafka_message_metadata_on_every_shape() {
    use common::sql::{fold, printed_changes, tidal_sql_with};
    const N: i64 = 2_000;
    let test = "sql_tables_read_kafka_message_metadata_on_every_shape";
    let dir = fixture_dir(test);
    let (_cluster, brokers) = cluster(
        &dir,
        &[
            ("sql-meta", 3),
            ("sql-meta-out-0", 2),
            ("sql-meta-out-1", 2),
            ("sql-meta-out-2", 2),
        ],
    );
    if is_child() {
        return; // the scripts run as `tidal sql` processes, not in test children
    }
    let base = 1_709_280_000_000i64;
    // Message i: partition i % 3, timestamp rising with a little disorder; its CSV holds the
    // same time as its last field.
    let messages: Vec<(i32, String, String, i64)> = (0..N)
        .map(|i| {
            let t = base + 9 * i + (i * 31) % 300;
            let line = format!("{},{},{}", i % 17, i, tidal::sql::Value::Timestamp(t));
            ((i % 3) as i32, String::new(), line, t)
        })
        .collect();
    produce(&brokers, "sql-meta", &messages);
    let mut parts: BTreeMap<i32, i64> = BTreeMap::new();
    let mut windows: BTreeMap<i64, u64> = BTreeMap::new();
    for (p, _, _, t) in &messages {
        *parts.entry(*p).or_default() += 1;
        *windows
            .entry(t - t.rem_euclid(10_000) + 10_000)
            .or_default() += 1;
    }
    let expected_parts: Vec<String> = sorted(
        parts
            .iter()
            .map(|(p, n)| format!("sql-meta, {p}, {n}, 0, {}, {n}", n - 1))
            .collect(),
    );
    let expected_windows: Vec<String> = sorted(
        windows
            .iter()
            .map(|(end, n)| {
                let end = tidal::sql::Value::Timestamp(*end);
                format!("{}, {n}", tidal::sql::Printed(&end))
            })
            .collect(),
    );
    let script = dir.join("meta.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE bids (
  auction BIGINT, id BIGINT, ts TIMESTAMP(3),
  part INT METADATA FROM 'partition' VIRTUAL,
  off BIGINT METADATA FROM 'offset' VIRTUAL,
  kts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',
  src STRING METADATA FROM 'topic' VIRTUAL,
  WATERMARK FOR kts AS kts - INTERVAL '1' SECOND
) WITH ('connector' = 'kafka', 'topic' = 'sql-meta', 'properties.bootstrap.servers' = '{brokers}', 'format' = 'csv', 'scan.bounded.mode' = 'latest-offset');
CREATE TABLE parts (src STRING, part INT, n BIGINT, lo BIGINT, hi BIGINT, same BIGINT)
  WITH ('connector' = 'print', 'print-identifier' = 'parts');
INSERT INTO parts
SELECT src, part, COUNT(*), MIN(off), MAX(off), SUM(CASE WHEN CAST(kts AS TIMESTAMP(3)) = ts THEN 1 ELSE 0 END)
FROM bids GROUP BY src, part;
CREATE TABLE windows (window_end TIMESTAMP(3), n BIGINT)
  WITH ('connector' = 'print', 'print-identifier' = 'windows');
INSERT INTO windows
SELECT window_end, COUNT(*) FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(kts), INTERVAL '10' SECOND))
GROUP BY window_start, window_end;
"
        ),
    )
    .unwrap();
    let table = |name: &str, topic: &str, extra: &str| {
        format!(
            "CREATE TABLE {name} (auction BIGINT, id BIGINT, ts TIMESTAMP(3), kts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp', off BIGINT METADATA FROM 'offset' VIRTUAL) WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{brokers}', 'format' = 'csv'{extra});\n"
        )
    };
    for (i, shape) in SHAPES.into_iter().enumerate() {
        let (ok, stdout, err) = tidal_sql_with(&script, &[], shape);
        assert!(ok, "{shape:?}: {err}");
        let got = fold(&printed_changes(&stdout, Some("parts")), "parts");
        assert_eq!(sorted(got), expected_parts, "{shape:?}: parts");
        let got = fold(&printed_changes(&stdout, Some("windows")), "windows");
        assert_eq!(sorted(got), expected_windows, "{shape:?}: windows");
        // Written with a 'timestamp' column (an hour after each row's time; the VIRTUAL offset
        // not written), read back: every message stamped so, the value the physical columns.
        let out = format!("sql-meta-out-{i}");
        let write = dir.join(format!("write-{i}.sql"));
        std::fs::write(
            &write,
            [
                table("bids", "sql-meta", ", 'scan.bounded.mode' = 'latest-offset'"),
                table("out", &out, ""),
                "INSERT INTO out SELECT auction, id, ts, CAST(ts AS TIMESTAMP_LTZ(3)) + INTERVAL '1' HOUR FROM bids;\n".to_string(),
            ]
            .concat(),
        )
        .unwrap();
        let (ok, _, err) = tidal_sql_with(&write, &[], shape);
        assert!(ok, "{shape:?} writing: {err}");
        let read = dir.join(format!("read-{i}.sql"));
        std::fs::write(
            &read,
            [
                table("out", &out, ", 'scan.bounded.mode' = 'latest-offset'"),
                "CREATE TABLE stamped (n BIGINT, later BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'stamped');\n".to_string(),
                "INSERT INTO stamped SELECT COUNT(*), SUM(CASE WHEN CAST(kts AS TIMESTAMP(3)) = ts + INTERVAL '1' HOUR THEN 1 ELSE 0 END) FROM out;\n".to_string(),
            ]
            .concat(),
        )
        .unwrap();
        let (ok, stdout, err) = tidal_sql_with(&read, &[], shape);
        assert!(ok, "{shape:?} reading: {err}");
        let got = fold(&printed_changes(&stdout, Some("stamped")), "stamped");
        assert_eq!(got, [format!("{N}, {N}")], "{shape:?}: stamped");
        let lines = read_topic(&brokers, &out);
        assert_eq!(lines.len() as i64, N, "{shape:?}");
        assert!(
            lines.iter().all(|l| l.split(',').count() == 3),
            "{:?}",
            &lines[..3]
        );
    }
}
