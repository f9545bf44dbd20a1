//! Nexmark queries on generated events (see `tidal_connectors::nexmark`).
//!
//! - `q0` pass-through: every bid, unchanged;
//! - `q1` currency conversion: every bid with its price in euros (× 0.908, as an integer);
//! - `q2` selection: the bids on auctions whose id is a multiple of 123: `auction,price`.
//!
//! Output: CSV lines `auction,bidder,price,date_time` (q0, q1) or `auction,price` (q2) as part
//! files with `--output DIR`; without it the results are counted and dropped. The number of
//! events, the results and events/s are printed on stderr.
//!
//! ```text
//! cargo run --release --example nexmark -- --query q1 --events 10000000 -w 2
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Parser;
use tidal::connectors::nexmark::{Event, NexmarkConfig};
use tidal::prelude::*;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs one Nexmark query on generated events.
#[derive(Parser)]
#[command(name = "nexmark")]
struct Args {
    #[command(flatten)]
    tidal: JobArgs,
    /// The query: q0, q1 or q2.
    #[arg(long, default_value = "q0")]
    query: String,
    /// How many events to generate (people, auctions and bids).
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    events: u64,
    /// Generate at most this many events per second (default: as fast as possible).
    #[arg(long, value_name = "EVENTS_PER_S")]
    rate: Option<f64>,
    /// Write part files into this directory (or s3://BUCKET/PREFIX) instead of counting.
    #[arg(long, value_name = "DIR")]
    output: Option<tidal::engine::storage::Location>,
}

fn main() -> ExitCode {
    tidal::main_with(run)
}

fn run(args: Args) -> tidal::Result<()> {
    let query = args.query.clone();
    if !["q0", "q1", "q2"].contains(&query.as_str()) {
        return Err(tidal::Error::config(format!(
            "--query {query}: this example runs q0, q1 and q2"
        )));
    }
    let job = Job::new(&args.tidal)?;
    let (events, rate, output) = (args.events, args.rate, args.output);
    let results = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&results);
    let started = Instant::now();
    job.run(move |env| {
        let mut generator = NexmarkConfig::default().generator(Some(events));
        if let Some(rate) = rate {
            generator = generator.rate(rate);
        }
        let bids = env
            .generate(generator)
            .name("nexmark events")
            .flat_map(|e| match e {
                Event::Bid(b) => Some(b),
                _ => None,
            });
        let lines = match query.as_str() {
            "q0" => bids.map(|b| format!("{},{},{},{}", b.auction, b.bidder, b.price, b.date_time)),
            "q1" => bids.map(|b| {
                let euros = b.price * 908 / 1000;
                format!("{},{},{euros},{}", b.auction, b.bidder, b.date_time)
            }),
            _ => bids
                .filter(|b| b.auction % 123 == 0)
                .map(|b| format!("{},{}", b.auction, b.price)),
        }
        .name(&query);
        match &output {
            Some(dir) => lines.write_text(dir.clone()),
            None => {
                let counted = Arc::clone(&counted);
                lines
                    .inspect(move |_| {
                        counted.fetch_add(1, Ordering::Relaxed);
                    })
                    .filter(|_| false)
                    .print()
            }
        }
    })?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "nexmark {}: {events} events, {} results counted here, {:.3} s, {:.0} events/s",
        args.query,
        results.load(Ordering::Relaxed),
        seconds,
        events as f64 / seconds
    );
    Ok(())
}
