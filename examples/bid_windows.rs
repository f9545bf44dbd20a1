//! Windowed bids: per auction, per 10 s tumbling event-time window, the number of bids and the
//! highest price.
//!
//! Input: CSV lines `auction,price,event_time_ms` (integers, no header), event times up to 2 s out
//! of order; a bounded-out-of-orderness watermark of 2 s. Without `--input` it runs on generated
//! bids (`--events N`, `--seed S`); `--generate FILE` writes such a file instead of running.
//!
//! Output: CSV lines `window_end,auction,count,max_price`, one per auction and window with bids —
//! on the stdout of process 0, or with `--output DIR` as part files in DIR (exactly-once with
//! `--checkpoint-dir`: see the README).
//!
//! ```text
//! cargo run --release --example bid_windows -- --generate bids.csv --events 5000000
//! cargo run --release --example bid_windows -- --input bids.csv --output out/ -w 2
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tidal::prelude::*;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Count and maximum price of bids per auction per 10 s event-time window.
#[derive(Parser)]
#[command(name = "bid_windows")]
struct Args {
    #[command(flatten)]
    tidal: JobArgs,
    /// CSV file(s) of `auction,price,event_time_ms`; without it, generated bids.
    #[arg(long, value_name = "PATH")]
    input: Vec<String>,
    /// Write part files into this directory (or s3://BUCKET/PREFIX) instead of printing.
    #[arg(long, value_name = "DIR")]
    output: Option<Location>,
    /// Read at most this many bids per second over the whole job.
    #[arg(long, value_name = "BIDS_PER_S")]
    rate: Option<f64>,
    /// Generated bids: how many.
    #[arg(long, default_value_t = 200_000, value_name = "N")]
    events: u64,
    /// Generated bids: the seed.
    #[arg(long, default_value_t = 1, value_name = "S")]
    seed: u64,
    /// Generated bids: over how many auctions (a tenth of them get three quarters of the bids).
    #[arg(long, default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u64).range(10..))]
    auctions: u64,
    /// Write the generated bids to FILE as CSV and exit.
    #[arg(long, value_name = "FILE")]
    generate: Option<PathBuf>,
}

/// A bid: auction, price, event time (ms).
type Bid = (u64, u64, i64);

/// One window's result for one auction. Its `Display` is the output line
/// `window_end,auction,count,max_price`, which the sink formats straight into its buffer (no
/// string is made per result).
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

/// Bid `i` of the generated sequence for `seed`: one bid per ms of event time, displaced by up to
/// 1999 ms, over `auctions` auctions of which a tenth get most bids.
fn bid(seed: u64, auctions: u64, i: u64) -> Bid {
    let h = splitmix(seed ^ splitmix(i));
    let auction = if h.is_multiple_of(4) {
        (h >> 8) % auctions
    } else {
        (h >> 8) % (auctions / 10)
    };
    let price = 1 + (h >> 24) % 10_000;
    let time = 1_700_000_000_000 + i as i64 - ((h >> 40) % 2000) as i64;
    (auction, price, time)
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn main() -> ExitCode {
    tidal::main_with(run)
}

fn run(args: Args) -> tidal::Result<()> {
    if let Some(path) = &args.generate {
        return generate(path, args.events, args.seed, args.auctions);
    }
    if args.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        return Err(tidal::Error::config(
            "--rate must be a positive number of bids per second",
        ));
    }
    let job = Job::new(&args.tidal)?;
    let (inputs, output, rate, events, seed, auctions) = (
        args.input,
        args.output,
        args.rate,
        args.events,
        args.seed,
        args.auctions,
    );
    job.run(move |env| {
        let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(2))
            .with_timestamps(|b: &Bid| b.2);
        let bids = if inputs.is_empty() {
            let mut generator = Generator::new(move |i| bid(seed, auctions, i)).count(events);
            if let Some(rate) = rate {
                generator = generator.rate(rate);
            }
            env.generate_with(generator, strategy)
                .name("generated bids")
        } else {
            let mut files = CsvFiles::<Bid>::paths(&inputs).has_headers(false);
            if let Some(rate) = rate {
                files = files.rate(rate);
            }
            env.read_with(files, strategy).name("bids")
        };
        let windows = bids
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
            .name("count and max per auction");
        match &output {
            Some(dir) => windows.write_text(dir.clone()),
            None => windows.print(),
        }
    })
}

fn generate(path: &PathBuf, events: u64, seed: u64, auctions: u64) -> tidal::Result<()> {
    let file = std::fs::File::create(path)
        .map_err(|e| tidal::Error::external(format!("cannot create '{}': {e}", path.display())))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let written = (0..events).try_for_each(|i| {
        let (auction, price, time) = bid(seed, auctions, i);
        writeln!(out, "{auction},{price},{time}")
    });
    written
        .and_then(|_| out.flush())
        .map_err(|e| tidal::Error::external(format!("writing '{}': {e}", path.display())))
}
