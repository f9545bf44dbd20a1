//! Enriching bids from an external service with asynchronous I/O: for every bid the job asks an
//! HTTP service about its auction (`GET /auction/ID`, answered with one line of text), many
//! requests at once per worker, and writes the bid with the answer.
//!
//! Input: CSV bids `auction,price,event_time_ms` (`--input FILE`), or generated bids (`--events N`,
//! default 10 000, over `--auctions N` auctions); `--rate R` reads R bids per second.
//!
//! Output: one `auction,price,event_time_ms,answer` line per bid, no header; in the bids' order
//! per worker unless `--unordered`. With `--output DIR` and `--checkpoint-dir`, exactly once
//! across failures.
//!
//! Calls: `--capacity N` at once per worker (default 50), `--timeout D` per attempt (default 5s),
//! `--retries N` more attempts after a failure (default 3); when they are used up (the service is
//! down, say) the job fails naming the service and the error.
//!
//! ```text
//! cargo run --release --example async_enrich -- --service http://127.0.0.1:8080 [-w 2 --output DIR]
//! ```
//!
//! The HTTP client here is a minimal one (HTTP/1.1, one connection per request, the body read to
//! the end), enough to show the operator; a real job would use a full client library.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tidal::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `(auction, price, event time ms)`.
type Bid = (u64, u64, i64);

/// Enrich bids with auction details from an HTTP service, asynchronously.
#[derive(Parser)]
#[command(name = "async_enrich")]
struct Args {
    #[command(flatten)]
    tidal: JobArgs,
    /// The service: http://HOST:PORT (asked GET /auction/ID for each bid).
    #[arg(long, value_name = "URL")]
    service: String,
    /// CSV file(s) of `auction,price,event_time_ms`; without it, generated bids.
    #[arg(long, value_name = "FILE")]
    input: Vec<String>,
    /// Number of bids to generate.
    #[arg(long, default_value_t = 10_000)]
    events: u64,
    /// Number of auctions of the generated bids.
    #[arg(long, default_value_t = 1_000)]
    auctions: u64,
    /// Bids read per second (default: as fast as possible).
    #[arg(long)]
    rate: Option<f64>,
    /// Requests under way at once per worker.
    #[arg(long, default_value_t = 50)]
    capacity: usize,
    /// How long one attempt may take.
    #[arg(long, default_value = "5s", value_parser = tidal::engine::parse_duration)]
    timeout: Duration,
    /// More attempts after a failed or timed-out request.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Let each enriched bid leave as soon as its answer is in.
    #[arg(long)]
    unordered: bool,
    /// Write part files into this directory (or s3://BUCKET/PREFIX) instead of printing.
    #[arg(long, value_name = "DIR")]
    output: Option<Location>,
}

/// Where the service listens, from `http://HOST:PORT`.
fn service_address(url: &str) -> tidal::Result<String> {
    url.strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .filter(|addr| {
            addr.rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        })
        .map(String::from)
        .ok_or_else(|| {
            tidal::Error::config(format!(
                "--service '{url}': expected http://HOST:PORT (plain HTTP, a port number)"
            ))
        })
}

/// `GET path` on `address`: the body of a 200 answer, or why not.
async fn get(address: &str, path: &str) -> Result<String, String> {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| format!("connecting to {address}: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending to {address}: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| format!("reading from {address}: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{address}{path}: not an HTTP response"))?;
    let status = head.split(' ').nth(1).unwrap_or("");
    if status != "200" {
        let line = head.lines().next().unwrap_or("");
        return Err(format!("{address}{path}: {line}"));
    }
    Ok(body.trim_end().to_string())
}

/// Bid `i` of the generated sequence: auctions spread evenly, prices and times from `i`.
fn bid(auctions: u64, i: u64) -> Bid {
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (
        h % auctions.max(1),
        1 + (h >> 32) % 10_000,
        1_700_000_000_000 + i as i64,
    )
}

fn main() -> ExitCode {
    tidal::main_with(run)
}

fn run(args: Args) -> tidal::Result<()> {
    let address = Arc::new(service_address(&args.service)?);
    if args.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        return Err(tidal::Error::config(
            "--rate must be a positive number of bids per second",
        ));
    }
    let mut options = AsyncOptions::new()
        .capacity(args.capacity)
        .timeout(args.timeout)
        .retries(args.retries, Duration::from_millis(50));
    if args.unordered {
        options = options.unordered();
    }
    let job = Job::new(&args.tidal)?;
    let Args {
        input,
        events,
        auctions,
        rate,
        output,
        ..
    } = args;
    job.run(move |env| {
        let strategy = WatermarkStrategy::monotonous().with_timestamps(|b: &Bid| b.2);
        let bids = if input.is_empty() {
            let mut generator = Generator::new(move |i| bid(auctions, i)).count(events);
            if let Some(rate) = rate {
                generator = generator.rate(rate);
            }
            env.generate_with(generator, strategy)
                .name("generated bids")
        } else {
            let mut files = CsvFiles::<Bid>::paths(&input).has_headers(false);
            if let Some(rate) = rate {
                files = files.rate(rate);
            }
            env.read_with(files, strategy).name("bids")
        };
        let address = Arc::clone(&address);
        let enriched = bids
            .async_map(
                move |(auction, price, time): Bid| {
                    let address = Arc::clone(&address);
                    async move {
                        let answer = get(&address, &format!("/auction/{auction}")).await?;
                        Ok::<_, String>(format!("{auction},{price},{time},{answer}"))
                    }
                },
                options,
            )
            .name("ask the auction service");
        match &output {
            Some(dir) => enriched.write_text(dir.clone()),
            None => enriched.print(),
        }
    })
}
