//! Bids from Kafka, counted per auction in 10 s event-time windows, back to Kafka.
//!
//! Reads `auction,price,event_time_ms` lines from `--input-topic` (a watermark per partition,
//! 2 s out of order at most), and writes `window_end,auction,count,max_price` to
//! `--output-topic`, keyed by auction, at least once (see `KafkaSink`).
//!
//! ```sh
//! # Against your brokers: load a file of bids into the input topic, then run (to the end of
//! # what the topic holds now with --bounded; without, until stopped).
//! cargo run --release --example bid_windows -- --generate /tmp/bids.csv --events 100000
//! cargo run --release --example kafka_bid_windows -- --brokers localhost:9092 --load /tmp/bids.csv
//! cargo run --release --example kafka_bid_windows -- --brokers localhost:9092 --bounded -w 2
//! # Without brokers: an in-process mock cluster (librdkafka's) loaded with generated bids; the
//! # output topic is printed at the end.
//! cargo run --release --example kafka_bid_windows -- --mock --events 20000
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tidal::connectors::kafka::{KafkaSink, KafkaSinks, KafkaSource, KafkaSources};
use tidal::prelude::*;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Count and maximum price of bids per auction per 10 s event-time window, from a Kafka topic to
/// another
#[derive(Parser)]
#[command(name = "kafka_bid_windows")]
struct Args {
    #[command(flatten)]
    tidal: JobArgs,
    /// The brokers, `host:port[,host:port...]`.
    #[arg(long, value_name = "HOSTS", required_unless_present = "mock")]
    brokers: Option<String>,
    /// The topic bids are read from.
    #[arg(long, default_value = "bids", value_name = "TOPIC")]
    input_topic: String,
    /// The topic window rows are written to.
    #[arg(long, default_value = "bid-windows", value_name = "TOPIC")]
    output_topic: String,
    /// Read each partition up to its end offset at start, then finish.
    #[arg(long)]
    bounded: bool,
    /// Read at most this many bids per second over the whole job.
    #[arg(long, value_name = "BIDS_PER_S")]
    rate: Option<f64>,
    /// Write the lines of FILE (`auction,price,event_time_ms`) into the input topic, keyed by
    /// auction, and exit.
    #[arg(long, value_name = "FILE")]
    load: Option<PathBuf>,
    /// Run against an in-process mock cluster loaded with `--events` generated bids, and print
    /// the output topic at the end.
    #[arg(long)]
    mock: bool,
    /// With --mock: how many bids.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    events: u64,
}

type Bid = (u64, u64, i64);

/// One window's row: `window_end,auction,count,max_price`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct WindowRow {
    end: Time,
    auction: u64,
    count: u64,
    max_price: u64,
}

impl std::fmt::Display for WindowRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{},{},{},{}",
            self.end, self.auction, self.count, self.max_price
        )
    }
}

fn main() -> ExitCode {
    tidal::main_with(run)
}

fn run(args: Args) -> tidal::Result<()> {
    if args.mock {
        return run_on_mock(args);
    }
    let brokers = args.brokers.clone().expect("clap requires it");
    if let Some(file) = &args.load {
        let text = std::fs::read_to_string(file).map_err(|e| {
            tidal::Error::external(format!("cannot read '{}': {e}", file.display()))
        })?;
        let n = load(&brokers, &args.input_topic, text.lines())?;
        eprintln!("loaded {n} bids into topic '{}'", args.input_topic);
        return Ok(());
    }
    let job = Job::new(&args.tidal)?;
    windows_job(job, brokers, &args)
}

/// The job: Kafka → 10 s windows per auction → Kafka.
fn windows_job(job: Job, brokers: String, args: &Args) -> tidal::Result<()> {
    let (input, output, bounded, rate) = (
        args.input_topic.clone(),
        args.output_topic.clone(),
        args.bounded,
        args.rate,
    );
    job.run(move |env| {
        let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(2))
            .with_timestamps(|b: &Bid| b.2)
            .with_idleness(Duration::from_secs(5));
        let mut source = KafkaSource::new(brokers.as_str(), &[input.as_str()]).csv::<Bid>();
        if bounded {
            source = source.bounded();
        }
        if let Some(rate) = rate {
            source = source.rate(rate);
        }
        env.kafka_with(source, strategy)
            .name("bids")
            .map(|(auction, price, _)| (auction, price))
            .keyed()
            .window(Windows::tumbling(Duration::from_secs(10)))
            .aggregate_with(
                |price: u64| (1u64, price),
                |a, price| {
                    a.0 += 1;
                    a.1 = a.1.max(price)
                },
                |a, b| {
                    a.0 += b.0;
                    a.1 = a.1.max(b.1)
                },
                |auction: &u64, w: &Window, a: &(u64, u64)| WindowRow {
                    end: w.end,
                    auction: *auction,
                    count: a.0,
                    max_price: a.1,
                },
            )
            .name("count and max per auction")
            .write_kafka(
                KafkaSink::text(brokers.as_str(), output.as_str())
                    .key(|r: &WindowRow| r.auction.to_string()),
            );
    })
}

/// Writes CSV lines `auction,price,time` to `topic`, keyed by auction.
fn load<'a>(
    brokers: &str,
    topic: &str,
    lines: impl Iterator<Item = &'a str>,
) -> tidal::Result<u64> {
    let failed = |e: &dyn std::fmt::Display| {
        tidal::Error::external(format!("loading topic '{topic}' on {brokers}: {e}"))
    };
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .map_err(|e| failed(&e))?;
    let mut n = 0;
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let key = line.split(',').next().unwrap_or_default();
        let mut record = BaseRecord::<str, str>::to(topic).key(key).payload(line);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        n += 1;
    }
    producer
        .flush(Duration::from_secs(60))
        .map_err(|e| failed(&e))?;
    Ok(n)
}

/// `--mock`: a mock cluster with both topics, loaded with generated bids; the job bounded; the
/// output topic printed.
fn run_on_mock(args: Args) -> tidal::Result<()> {
    let kafka = |e: &dyn std::fmt::Display| tidal::Error::external(format!("mock cluster: {e}"));
    let cluster = MockCluster::new(1).map_err(|e| kafka(&e))?;
    cluster
        .create_topic(&args.input_topic, 4, 1)
        .map_err(|e| kafka(&e))?;
    cluster
        .create_topic(&args.output_topic, 4, 1)
        .map_err(|e| kafka(&e))?;
    let brokers = cluster.bootstrap_servers();
    let bids: Vec<String> = (0..args.events)
        .map(|i| {
            let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
            format!("{},{},{}", h % 50, 1 + h % 1000, 1_000 + i as i64 * 3)
        })
        .collect();
    load(&brokers, &args.input_topic, bids.iter().map(String::as_str))?;
    let job = Job::new(&args.tidal)?;
    let mut bounded = args;
    bounded.bounded = true;
    windows_job(job, brokers.clone(), &bounded)?;
    let output = bounded.output_topic.clone();
    let rows: Vec<String> = Job::local(1).quiet().run(move |env| {
        env.kafka(
            KafkaSource::new(brokers.as_str(), &[output.as_str()])
                .utf8()
                .bounded(),
        )
        .collect()
    })?;
    let mut rows = rows;
    rows.sort_by_key(|r| {
        let f: Vec<i64> = r.split(',').map(|x| x.parse().unwrap_or(0)).collect();
        (f[0], f[1])
    });
    for row in rows {
        println!("{row}");
    }
    drop(cluster);
    Ok(())
}
