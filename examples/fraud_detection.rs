//! Fraud detection (Flink's DataStream walkthrough): alert when an account makes a small
//! transaction (under 1.00) followed by a large one (over 500.00) within one minute of processing
//! time. A keyed process function keeps a flag per account, set by a small transaction, and a
//! processing-time timer that clears it after a minute.
//!
//! Input: generated transactions (`--count N`, default 10 000; `--rate R` per second, default as
//! fast as possible; `--count 0` runs until Ctrl-C), or `--input FILE`: CSV
//! `accountId,timestamp,amount` with a header line.
//!
//! Output: one `accountId,timestamp,amount` line per alert (the large transaction), no header.
//!
//! ```text
//! cargo run --release --example fraud_detection [-- --count 100000 -w 2 --output DIR]
//! ```

use std::process::ExitCode;

use clap::Parser;
use serde::{Deserialize, Serialize};
use tidal::prelude::*;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A card transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Transaction {
    account_id: u32,
    timestamp: i64,
    amount: f64,
}

const SMALL: f64 = 1.00;
const LARGE: f64 = 500.00;
const ONE_MINUTE: Time = 60 * 1000;

/// Per account: whether the last transaction was small, and the timer that will forget it.
#[derive(Default, Serialize, Deserialize)]
struct Flag {
    small_seen: bool,
    timer: Option<Time>,
}

struct FraudDetector;

impl KeyedProcessFunction<u32, Transaction> for FraudDetector {
    type State = Flag;
    type Out = Transaction;
    type Side = ();
    fn process_element(
        &mut self,
        t: Transaction,
        ctx: &mut ProcessContext<'_, u32, Flag, Transaction, ()>,
    ) {
        if let Some(flag) = ctx.state_if_any() {
            let timer = flag.timer;
            if flag.small_seen && t.amount > LARGE {
                ctx.output(t.clone());
            }
            if let Some(at) = timer {
                ctx.delete_processing_time_timer(at);
            }
            ctx.clear_state();
        }
        if t.amount < SMALL {
            let at = ctx.current_processing_time() + ONE_MINUTE;
            ctx.register_processing_time_timer(at);
            *ctx.state() = Flag {
                small_seen: true,
                timer: Some(at),
            };
        }
    }
    fn on_timer(
        &mut self,
        _at: Time,
        _domain: TimeDomain,
        ctx: &mut ProcessContext<'_, u32, Flag, Transaction, ()>,
    ) {
        ctx.clear_state();
    }
}

/// Transactions of 10 accounts, one every 100 ms of event time; amounts are mostly moderate, with
/// some small ones and some large ones (deterministic).
fn transaction(i: u64) -> Transaction {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    let amount = match x % 20 {
        0 => 0.09 + (x % 80) as f64 / 100.0, // small
        1 => 501.0 + (x % 500) as f64,       // large
        r => 5.0 + (r * 7 + x % 100) as f64, // moderate
    };
    Transaction {
        account_id: 1 + ((x >> 8) % 10) as u32,
        timestamp: 1_577_880_000_000 + 100 * i as i64,
        amount,
    }
}

/// Find card fraud: a small transaction followed by a large one within a minute.
#[derive(Parser)]
#[command(name = "fraud_detection")]
struct Args {
    #[command(flatten)]
    tidal: JobArgs,
    /// Read transactions from CSV files instead of generating them.
    #[arg(long, value_name = "FILE")]
    input: Option<String>,
    /// Number of transactions to generate (0: until stopped).
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// Generated transactions per second (default: as fast as possible).
    #[arg(long)]
    rate: Option<f64>,
    /// Write part files into this directory (or s3://BUCKET/PREFIX) instead of printing.
    #[arg(long, value_name = "DIR")]
    output: Option<Location>,
}

fn main() -> ExitCode {
    tidal::main_with(|args: Args| {
        let job = Job::new(&args.tidal)?;
        let (input, count, rate, output) = (
            args.input.clone(),
            args.count,
            args.rate,
            args.output.clone(),
        );
        job.run(move |env| {
            let strategy =
                WatermarkStrategy::monotonous().with_timestamps(|t: &Transaction| t.timestamp);
            let transactions = match &input {
                Some(path) => env.read_with(CsvFiles::<Transaction>::new(path), strategy),
                None => {
                    // One instance, like the walkthrough's non-parallel source: each account's
                    // transactions reach the detector in order.
                    let mut generator = Generator::new(transaction).single_instance();
                    if count > 0 {
                        generator = generator.count(count);
                    }
                    if let Some(r) = rate {
                        generator = generator.rate(r);
                    }
                    env.generate_with(generator, strategy)
                }
            };
            let alerts = transactions
                .key_by(|t| t.account_id)
                .process(FraudDetector)
                .name("fraud detector")
                .map(|t| format!("{},{},{:.2}", t.account_id, t.timestamp, t.amount));
            match &output {
                Some(dir) => alerts.write_text(dir.clone()),
                None => alerts.print(),
            }
        })
    })
}
