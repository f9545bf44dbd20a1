//! Throughput runner: Tidal jobs against the same jobs written directly on timely.
//!
//! ```text
//! cargo run --release -p tidal-bench -- gen-text --words 8000000 --out /tmp/w1.txt
//! cargo run --release -p tidal-bench -- wordcount --input /tmp/w1.txt --workers 1 --reps 5
//! ```
//!
//! Each repetition runs Tidal and the baseline back to back (alternating which goes first), in
//! this process; the table shows medians and the ratio Tidal / baseline (lower is better).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rustc_hash::FxHashMap;
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

#[derive(Subcommand)]
enum Command {
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
        Command::GenText { words, out, seed } => gen_text(words, &out, seed),
        Command::Wordcount {
            input,
            workers,
            reps,
        } => wordcount(&input, workers, reps),
    }
}

fn gen_text(words: u64, out: &Path, seed: u64) {
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
        // Zipf-like: small ranks much more frequent.
        let u: f64 = rng.random::<f64>();
        let rank = ((vocabulary.len() as f64).powf(u) as usize)
            .saturating_sub(1)
            .min(vocabulary.len() - 1);
        let w = &vocabulary[rank];
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

fn count_words(input: &Path) -> u64 {
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

/// The same job directly on timely: each worker reads its byte range of the file, splits words,
/// exchanges every word by hash, and counts in a hash map, emitting the counts at the end.
fn timely_wordcount(input: &Path, workers: usize) -> Vec<(String, u64)> {
    use timely::dataflow::channels::pact::Exchange;
    use timely::dataflow::operators::core::Inspect;
    use timely::dataflow::operators::generic::Operator;
    use timely::dataflow::operators::vec::{Map, ToStream};

    let path = input.to_path_buf();
    let results = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&results);
    timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let lines = LineRange::new(&path, index, peers);
        let sink = std::sync::Arc::clone(&sink);
        worker.dataflow::<u64, _, _>(|scope| {
            lines
                .to_stream(scope)
                .flat_map(|line: String| tidal::into_words(line))
                .unary_frontier::<timely::container::CapacityContainerBuilder<Vec<(String, u64)>>, _, _, _>(
                    Exchange::new(|w: &String| {
                        use std::hash::{Hash, Hasher};
                        let mut h = rustc_hash::FxHasher::default();
                        w.hash(&mut h);
                        h.finish()
                    }),
                    "count",
                    |_, _| {
                        let mut counts: FxHashMap<String, u64> = FxHashMap::default();
                        let mut cap = None;
                        move |(input, frontier), output| {
                            input.for_each(|c, data| {
                                if cap.is_none() {
                                    cap = c.retain_least(0);
                                }
                                for w in data.drain(..) {
                                    *counts.entry(w).or_insert(0) += 1;
                                }
                            });
                            if frontier.is_empty()
                                && let Some(c) = cap.take() {
                                    output.session(&c).give_iterator(counts.drain());
                                }
                        }
                    },
                )
                .inspect(move |x: &(String, u64)| sink.lock().unwrap().push(x.clone()));
        });
    })
    .unwrap();
    std::mem::take(&mut *results.lock().unwrap())
}

/// The lines starting in this worker's byte range of the file.
struct LineRange {
    reader: BufReader<std::fs::File>,
    pos: u64,
    end: u64,
}

impl LineRange {
    fn new(path: &Path, index: usize, peers: usize) -> Self {
        let mut file = std::fs::File::open(path).unwrap();
        let size = file.metadata().unwrap().len();
        let (start, end) = (
            size * index as u64 / peers as u64,
            size * (index as u64 + 1) / peers as u64,
        );
        let mut pos = start;
        if start > 0 {
            file.seek(SeekFrom::Start(start - 1)).unwrap();
            let mut r = BufReader::new(&mut file);
            let mut skip = Vec::new();
            pos = start - 1 + r.read_until(b'\n', &mut skip).unwrap() as u64;
        }
        file.seek(SeekFrom::Start(pos)).unwrap();
        LineRange {
            reader: BufReader::with_capacity(1 << 16, file),
            pos,
            end,
        }
    }
}

impl Iterator for LineRange {
    type Item = String;
    fn next(&mut self) -> Option<String> {
        if self.pos >= self.end {
            return None;
        }
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).unwrap();
        if n == 0 {
            return None;
        }
        self.pos += n as u64;
        Some(line)
    }
}
