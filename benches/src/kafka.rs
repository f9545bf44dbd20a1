//! Kafka → Tidal → Kafka throughput (`tidal-bench kafka`), against a plain librdkafka
//! consume-produce loop on the same broker as the floor.
//!
//! Both run in this process against one librdkafka mock cluster (real wire protocol on loopback,
//! in-memory logs; at 1 M messages over 4 partitions the plain loop received 806 283 of them
//! and then nothing more, so the default stays at 500 000, which both read whole): `--messages` bids (`auction,price,event_time_ms`) are loaded into a topic of
//! 4 partitions, then, alternately, the plain loop (one consumer assigned every partition, read to
//! the end, each value produced to an output topic by a threaded producer, flushed) and the Tidal
//! job (the bounded Kafka source, each line parsed and formatted again, the Kafka sink, at least
//! once) copy it to a fresh output topic. Records per second of each, medians over `--reps`.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tidal::connectors::kafka::{KafkaSink, KafkaSinks, KafkaSource, KafkaSources};
use tidal::prelude::*;

const PARTITIONS: i32 = 4;

/// Loads `n` bids into `topic`.
fn load(brokers: &str, topic: &str, n: u64) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("queue.buffering.max.messages", "2000000")
        .set("linger.ms", "20")
        .create()
        .expect("a producer");
    for i in 0..n {
        let line = format!("{},{},{}", (i * 7) % 1000, 1 + (i * 13) % 10_000, 1_000 + i);
        let key = ((i * 7) % 1000).to_string();
        let mut record = BaseRecord::<String, String>::to(topic)
            .key(&key)
            .payload(&line);
        let mut tries = 0;
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, r)) => {
                    tries += 1;
                    assert!(tries < 12_000, "loading bid {i}: {e}");
                    record = r;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
        if i % 10_000 == 0 {
            // Serve delivery reports as they come, not all at the end (without this, loading a
            // million stalled).
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(120)).expect("loaded");
}

/// The floor: one consumer reads every partition to its end, a threaded producer writes each
/// value to `out`. Returns the records copied.
fn plain_loop(brokers: &str, input: &str, out: &str) -> u64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "plain")
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer");
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("a producer");
    let mut tpl = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in 0..PARTITIONS {
        let (low, high) = consumer
            .fetch_watermarks(input, p, Duration::from_secs(10))
            .expect("offsets");
        ends.push(high - low);
        tpl.add_partition_offset(input, p, Offset::Beginning)
            .expect("a partition");
    }
    consumer.assign(&tpl).expect("assigned");
    let total: i64 = ends.iter().sum();
    let mut copied = 0i64;
    while copied < total {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let mut record = BaseRecord::<[u8], [u8]>::to(out).payload(m.payload().unwrap_or_default());
        if let Some(k) = m.key() {
            record = record.key(k);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        copied += 1;
    }
    producer.flush(Duration::from_secs(120)).expect("flushed");
    copied as u64
}

/// Tidal: the bounded source, each line parsed and formatted again, the sink.
fn tidal_job(brokers: &str, input: &str, out: &str, workers: usize) {
    let (b, i, o) = (brokers.to_string(), input.to_string(), out.to_string());
    Job::local(workers)
        .quiet()
        .run(move |env| {
            env.kafka(
                KafkaSource::new(b.as_str(), &[i.as_str()])
                    .csv::<(u64, u64, i64)>()
                    .bounded(),
            )
            .map(|(auction, price, time)| format!("{auction},{price},{time}"))
            .write_kafka(
                KafkaSink::text(b.as_str(), o.as_str())
                    .key(|line: &String| line.split(',').next().unwrap_or_default().to_string()),
            );
        })
        .expect("the Tidal job");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the comparison and prints the table.
pub fn kafka_throughput(messages: u64, reps: usize, workers: usize) {
    let cluster = MockCluster::new(1).expect("a mock cluster");
    let brokers = cluster.bootstrap_servers();
    cluster
        .create_topic("bids", PARTITIONS, 1)
        .expect("a topic");
    let started = Instant::now();
    load(&brokers, "bids", messages);
    println!(
        "kafka: {messages} bids loaded into 4 partitions of a mock cluster in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (mut plain, mut tidal) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        let out = format!("plain-{rep}");
        cluster.create_topic(&out, PARTITIONS, 1).expect("a topic");
        let t = Instant::now();
        let copied = plain_loop(&brokers, "bids", &out);
        assert_eq!(
            copied, messages,
            "the mock cluster kept only part of the input"
        );
        plain.push(messages as f64 / t.elapsed().as_secs_f64());
        let out = format!("tidal-{rep}");
        cluster.create_topic(&out, PARTITIONS, 1).expect("a topic");
        let t = Instant::now();
        tidal_job(&brokers, "bids", &out, workers);
        tidal.push(messages as f64 / t.elapsed().as_secs_f64());
    }
    let (p, t) = (median(plain), median(tidal));
    println!("| job | records/s (median of {reps}) |");
    println!("|---|---|");
    println!("| plain librdkafka consume-produce loop | {p:.0} |");
    println!("| Tidal, {workers} worker(s): source, map, sink | {t:.0} |");
    println!("Tidal / plain loop: {:.2} of its throughput", t / p);
}
