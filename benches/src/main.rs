//! Throughput runner: Tidal jobs against the same jobs written directly on timely.
//!
//! ```text
//! cargo run --release -p tidal-bench -- all            # W1 and W2, 1 and 2 workers, a table
//! cargo run --release -p tidal-bench -- all --quick    # smaller inputs, one repetition
//! cargo run --release -p tidal-bench -- timely-wordcount --input FILE --output DIR -w 2
//! cargo run --release -p tidal-bench -- timely-bid-windows --input FILE --output DIR -w 2
//! cargo run --release -p tidal-bench -- gen-text --words 8000000 --out /tmp/w1.txt
//! cargo run --release -p tidal-bench -- wordcount --input /tmp/w1.txt --workers 1 --reps 5
//! ```
//!
//! `all` runs each job as a whole process (the examples for Tidal, this binary's baselines for
//! timely), alternating; the table shows medians, peak RSS and the ratio Tidal / timely (lower
//! is better). `wordcount` runs both in this process, back to back.

mod baselines;
mod differential;
mod kafka;
mod nexmark;
mod runner;
mod ttl;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tidal::prelude::*;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tidal-bench",
    about = "Throughput of Tidal jobs against hand-written timely baselines"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

/// The flags of a baseline job: those of the example it stands beside.
#[derive(clap::Args)]
struct Baseline {
    /// Input file.
    #[arg(long)]
    input: PathBuf,
    /// Directory for the part files.
    #[arg(long)]
    output: PathBuf,
    /// Worker threads.
    #[arg(short = 'w', long, default_value_t = 1)]
    workers: usize,
}

#[derive(Subcommand)]
enum Command {
    /// W1, W2 and Nexmark on Tidal and on hand-written timely, and W2 with checkpoints against W2
    /// without, 1 and 2 workers: a table.
    All {
        /// Smaller inputs (1 M words, 1 M bids) and one repetition.
        #[arg(long)]
        quick: bool,
        /// Repetitions per job.
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Where inputs are generated (and kept) and outputs written.
        #[arg(long, default_value = "target/tidal-bench")]
        data: PathBuf,
        /// Words of W1's input (default 8 M, 1 M with --quick).
        #[arg(long)]
        words: Option<u64>,
        /// Bids of W2's input (default 5 M, 1 M with --quick).
        #[arg(long)]
        bids: Option<u64>,
        /// Events of each Nexmark query (default 5 M, 200 k with --quick).
        #[arg(long)]
        events: Option<u64>,
        /// Bids of the input of W2 with and without checkpoints (default 30 M, so that a run
        /// lasts several checkpoint intervals; with --quick, as many as --bids).
        #[arg(long)]
        checkpoint_bids: Option<u64>,
        /// The directory of an independent hand-written timely build of W1 and W2 (`timely_w1`,
        /// `timely_w2`, run as `BIN WORKERS INPUT OUTPUT`), e.g.
        /// `../shared/yardstick/rust/target/release`: each becomes a third job of its workload,
        /// and W1 then reads plain text (lowercase ASCII words separated by spaces, which both
        /// word rules split alike) so that all outputs can be compared.
        #[arg(long, value_name = "DIR")]
        yardstick: Option<PathBuf>,
        /// Run only these workloads, comma-separated: W1, W2, checkpoints, nexmark, q0 ... q12, SQL.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// W1 hand-written on timely: `word count` lines into DIR/part-WWWWW.txt.
    TimelyWordcount(Baseline),
    /// W2 hand-written on timely: `window_end,auction,count,max_price` lines into DIR.
    TimelyBidWindows(Baseline),
    /// Nexmark queries hand-written on timely (q0, q1, q2, q3, q5, q7, q8): the example's lines
    /// into DIR.
    TimelyNexmark {
        /// The query.
        #[arg(long)]
        query: String,
        /// How many events to generate.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Events per second of event time.
        #[arg(long, default_value_t = 10_000)]
        event_rate: u64,
        /// Directory for the part files.
        #[arg(long)]
        output: PathBuf,
        /// Worker threads.
        #[arg(short = 'w', long, default_value_t = 1)]
        workers: usize,
    },
    /// `cdc_revenue` written directly on differential-dataflow.
    DifferentialCdc {
        #[arg(long)]
        customers: PathBuf,
        #[arg(long)]
        orders: PathBuf,
        #[arg(long)]
        output: PathBuf,
        #[arg(short = 'w', long, default_value_t = 1)]
        workers: usize,
    },
    /// `graph_components` written directly on differential-dataflow.
    DifferentialComponents {
        #[arg(long)]
        edges: PathBuf,
        #[arg(long)]
        output: PathBuf,
        #[arg(short = 'w', long, default_value_t = 1)]
        workers: usize,
    },
    /// Writes the inputs of the cdc workload (`customers.jsonl`, `orders.jsonl`) into `--out`.
    GenCdc {
        #[arg(long, default_value_t = 20_000)]
        customers: i64,
        #[arg(long, default_value_t = 1_000_000)]
        order_events: u64,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Writes the edge log of the components workload to `--out`.
    GenEdges {
        #[arg(long, default_value_t = 300_000)]
        events: u64,
        #[arg(long, default_value_t = 100_000)]
        nodes: u64,
        /// Changes per millisecond of event time (each distinct time is a round of the fixed point).
        #[arg(long, default_value_t = 1_000)]
        per_ms: u64,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Upserts on a fixed set of keys through an incremental collection (a count of keys per
    /// value): peak memory should not grow with the number of upserts, as arrangements compact
    /// up to the watermark.
    LiveKeys {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long, default_value_t = 10_000)]
        keys: u64,
        #[arg(short = 'w', long, default_value_t = 1)]
        workers: usize,
    },
    /// State that expires: a key space that turns over every `--period-ms` through a keyed
    /// process function (or, with `--upserts`, an upsert table joined with itself); prints
    /// resident memory every second (flat with `--ttl-ms`, growing without).
    TtlMemory {
        /// How long the job reads, in seconds.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Records per second.
        #[arg(long, default_value_t = 200_000.0)]
        rate: f64,
        /// Keys of each period.
        #[arg(long, default_value_t = 100_000)]
        keys: u64,
        /// How long a set of keys lasts, in ms.
        #[arg(long, default_value_t = 1_000)]
        period_ms: u64,
        /// The state's time to live in ms (none: no expiry).
        #[arg(long)]
        ttl_ms: Option<u64>,
        /// The keys go through an upsert table (event time following the clock) joined with a
        /// copy of itself, instead of a process function: the time to live is the table's.
        #[arg(long)]
        upserts: bool,
        #[arg(short = 'w', long, default_value_t = 1)]
        workers: usize,
    },
    /// Kafka → Tidal → Kafka throughput against a plain librdkafka consume-produce loop, both on
    /// an in-process mock cluster (see `src/kafka.rs`).
    Kafka {
        /// Bids loaded into the input topic.
        #[arg(long, default_value_t = 500_000)]
        messages: u64,
        #[arg(long, default_value_t = 3)]
        reps: usize,
        #[arg(short = 'w', long, default_value_t = 1)]
        workers: usize,
    },
    /// Runs a program; prints its wall time, peak RSS (KiB) and exit code (used by `all`).
    Measure {
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// Writes a text of WORDS words (about 100 k distinct, Zipf-like frequencies, mixed case).
    GenText {
        /// Number of words.
        #[arg(long, default_value_t = 8_000_000)]
        words: u64,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// W1: word count of a text file, Tidal against hand-written timely.
    Wordcount {
        /// Input text file.
        #[arg(long)]
        input: PathBuf,
        /// Worker threads.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Repetitions (medians are reported).
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
}

fn main() {
    let args = Args::parse();
    match args.command {
        Command::All {
            quick,
            reps,
            data,
            words,
            bids,
            events,
            checkpoint_bids,
            yardstick,
            only,
        } => runner::all(&runner::Options {
            quick,
            reps,
            data,
            words,
            bids,
            events,
            checkpoint_bids,
            yardstick,
            only,
        }),
        Command::TimelyWordcount(b) => {
            baselines::wordcount(&b.input, b.workers, baselines::Out::Dir(b.output))
        }
        Command::TimelyBidWindows(b) => {
            baselines::bid_windows(&b.input, b.workers, baselines::Out::Dir(b.output))
        }
        Command::TimelyNexmark {
            query,
            events,
            event_rate,
            output,
            workers,
        } => {
            if !nexmark::QUERIES.contains(&query.as_str()) {
                eprintln!(
                    "error: --query {query}: the timely baselines are {}",
                    nexmark::QUERIES.join(", ")
                );
                std::process::exit(2);
            }
            nexmark::run(
                &query,
                events,
                event_rate,
                workers,
                baselines::Out::Dir(output),
            )
        }
        Command::DifferentialCdc {
            customers,
            orders,
            output,
            workers,
        } => differential::cdc(&customers, &orders, workers, baselines::Out::Dir(output)),
        Command::DifferentialComponents {
            edges,
            output,
            workers,
        } => differential::components(&edges, workers, baselines::Out::Dir(output)),
        Command::GenCdc {
            customers,
            order_events,
            out,
            seed,
        } => differential::gen_cdc(&out, customers, order_events, seed),
        Command::GenEdges {
            events,
            nodes,
            per_ms,
            out,
            seed,
        } => differential::gen_edges(&out, events, nodes, per_ms, seed),
        Command::LiveKeys {
            events,
            keys,
            workers,
        } => live_keys(events, keys, workers),
        Command::TtlMemory {
            seconds,
            rate,
            keys,
            period_ms,
            ttl_ms,
            upserts,
            workers,
        } => ttl::ttl_memory(ttl::TtlRun {
            seconds,
            rate,
            keys,
            period: Duration::from_millis(period_ms),
            ttl: ttl_ms.map(Duration::from_millis),
            upserts,
            workers,
        }),
        Command::Kafka {
            messages,
            reps,
            workers,
        } => kafka::kafka_throughput(messages, reps, workers),
        Command::Measure { command } => runner::measure(&command),
        Command::GenText { words, out, seed } => gen_text(words, &out, seed),
        Command::Wordcount {
            input,
            workers,
            reps,
        } => wordcount(&input, workers, reps),
    }
}

pub(crate) fn gen_text(words: u64, out: &Path, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let syllables = [
        "ta", "de", "ri", "mo", "su", "la", "ne", "ko", "vi", "ma", "é", "ü", "an", "or", "es",
        "in",
    ];
    let vocabulary: Vec<String> = (0..100_000u32)
        .map(|mut i| {
            let mut w = String::new();
            loop {
                w.push_str(syllables[(i % 16) as usize]);
                i /= 16;
                if i == 0 {
                    break;
                }
            }
            w
        })
        .collect();
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).expect("create output"));
    for n in 0..words {
        let w = &vocabulary[zipf_rank(&mut rng, vocabulary.len())];
        if rng.random_range(0..10) == 0 {
            write!(file, "{}", w.to_uppercase()).unwrap();
        } else {
            write!(file, "{w}").unwrap();
        }
        let sep = if n % 12 == 11 {
            "\n"
        } else if rng.random_range(0..8) == 0 {
            ", "
        } else {
            " "
        };
        write!(file, "{sep}").unwrap();
    }
    file.flush().unwrap();
}

/// A rank below `n` drawn with Zipf-like frequencies (rank r about as often as 1/r): `n` to a
/// uniform power, so that the logarithm of the rank is uniform.
fn zipf_rank(rng: &mut SmallRng, n: usize) -> usize {
    let u: f64 = rng.random::<f64>();
    ((n as f64).powf(u) as usize).saturating_sub(1).min(n - 1)
}

/// Writes a plain text of `words` words: lowercase ASCII words of 2 to 10 letters from a
/// vocabulary of 100 000, Zipf-like frequencies, ten words a line separated by single spaces — a
/// text that splitting on whitespace and splitting into alphanumeric runs cut alike.
pub(crate) fn gen_plain_text(words: u64, out: &Path, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut seen = std::collections::HashSet::new();
    let mut vocabulary: Vec<String> = Vec::with_capacity(100_000);
    while vocabulary.len() < 100_000 {
        let len = rng.random_range(2..=10);
        let w: String = (0..len)
            .map(|_| char::from(rng.random_range(b'a'..=b'z')))
            .collect();
        if seen.insert(w.clone()) {
            vocabulary.push(w);
        }
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).expect("create output"));
    for n in 0..words {
        let rank = zipf_rank(&mut rng, vocabulary.len());
        let sep = if n % 10 == 9 || n + 1 == words {
            "\n"
        } else {
            " "
        };
        write!(file, "{}{sep}", vocabulary[rank]).unwrap();
    }
    file.flush().unwrap();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn wordcount(input: &Path, workers: usize, reps: usize) {
    let words = count_words(input);
    let mut tidal_times = Vec::new();
    let mut timely_times = Vec::new();
    let mut reference: Option<HashMap<String, u64>> = None;
    for rep in 0..reps {
        let order: [bool; 2] = if rep % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for is_tidal in order {
            let started = Instant::now();
            let counts = if is_tidal {
                tidal_wordcount(input, workers)
            } else {
                timely_wordcount(input, workers)
            };
            let took = started.elapsed();
            if is_tidal {
                tidal_times.push(took)
            } else {
                timely_times.push(took)
            }
            let counts: HashMap<String, u64> = counts.into_iter().collect();
            match &reference {
                None => reference = Some(counts),
                Some(r) => assert!(r == &counts, "Tidal and the baseline disagree"),
            }
        }
    }
    let (t, b) = (median(tidal_times), median(timely_times));
    println!(
        "W1 wordcount, {} words, {workers} worker(s), {reps} reps (medians)",
        words
    );
    println!("{:<22} {:>10} {:>14}", "job", "seconds", "words/s");
    for (name, d) in [("tidal", t), ("timely (hand-written)", b)] {
        println!(
            "{name:<22} {:>10.3} {:>14.0}",
            d.as_secs_f64(),
            words as f64 / d.as_secs_f64()
        );
    }
    println!(
        "ratio tidal / timely: {:.2}",
        t.as_secs_f64() / b.as_secs_f64()
    );
}

pub(crate) fn count_words(input: &Path) -> u64 {
    let file = BufReader::new(std::fs::File::open(input).expect("open input"));
    file.lines()
        .map(|l| tidal::words(&l.unwrap()).count() as u64)
        .sum()
}

fn tidal_wordcount(input: &Path, workers: usize) -> Vec<(String, u64)> {
    let path = input.to_str().unwrap().to_string();
    Job::local(workers)
        .quiet()
        .run(move |env| {
            env.read(TextFiles::new(&path))
                .flat_map(|line| tidal::into_words(line).map(|w| (w, ())))
                .keyed()
                .count()
                .final_values()
                .collect()
        })
        .unwrap()
}

/// The baseline of [`baselines::wordcount`], its lines gathered here.
fn timely_wordcount(input: &Path, workers: usize) -> Vec<(String, u64)> {
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    baselines::wordcount(input, workers, baselines::Out::Lines(lines.clone()));
    let lines = std::mem::take(&mut *lines.lock().unwrap());
    lines
        .into_iter()
        .map(|l| {
            let (w, n) = l.rsplit_once(' ').expect("word count");
            (w.to_string(), n.parse().expect("count"))
        })
        .collect()
}

/// See [`Command::LiveKeys`]: upsert `i % keys` to a value derived from `i`, one per ms of event
/// time; count keys per value; print the final table's size and the time taken.
fn live_keys(events: u64, keys: u64, workers: usize) {
    let started = Instant::now();
    let out: Vec<(u64, i64)> = Job::local(workers)
        .quiet()
        .run(move |env| {
            let upserts = Generator::new(move |i| (i % keys, Some((i * 7919) % 97))).count(events);
            env.generate_with(
                upserts,
                WatermarkStrategy::monotonous().with_timestamps(|_| tidal::engine::now_millis()),
            )
            .upsert_by_key()
            .map(|(_, v)| (v, ()))
            .count_by_key()
            .final_table()
            .collect()
        })
        .expect("the live-keys job");
    let total: i64 = out.iter().map(|(_, n)| n).sum();
    println!(
        "{events} upserts on {keys} keys: {} values, {total} keys at the end, {:.2} s",
        out.len(),
        started.elapsed().as_secs_f64()
    );
}
