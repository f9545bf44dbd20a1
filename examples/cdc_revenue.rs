//! Revenue per region from change data: orders joined to customers, grouped by region, kept up to
//! date as customers move region and orders are changed or deleted.
//!
//! Inputs are Debezium JSON change events, one per line (`{"before":..., "after":...,
//! "op":"c"|"r"|"u"|"d", "ts_ms":...}`, unknown fields ignored): `--customers` rows
//! `{"id", "name", "region"}`, `--orders` rows `{"id", "customer_id", "amount_cents"}`. The
//! query, in SQL:
//!
//! ```sql
//! SELECT c.region, COUNT(*) AS orders, SUM(o.amount_cents) AS revenue_cents
//! FROM orders o JOIN customers c ON o.customer_id = c.id
//! GROUP BY c.region
//! ```
//!
//! Output: without `--changelog`, the final table, `region,orders,revenue_cents` lines, one per
//! region with at least one joined order; with `--changelog`, every change of it as
//! `op,region,orders,revenue_cents` (`op` one of `+I -U +U -D`), at the event time it happens,
//! which folds to the final table. On the stdout of process 0, or with `--output DIR` as part
//! files (exactly once across failures when the job checkpoints).
//!
//! A line that is not a change event fails the job naming the file, line and field; so does a
//! deletion of a row that was never inserted.
//!
//! ```text
//! cargo run --release --example cdc_revenue -- --customers customers.jsonl --orders orders.jsonl
//! ```

use std::process::ExitCode;

use clap::Parser;
use serde::Deserialize;
use tidal::prelude::*;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Revenue per region from Debezium change events of customers and orders.
#[derive(Parser)]
#[command(name = "cdc_revenue")]
struct Args {
    #[command(flatten)]
    tidal: JobArgs,
    /// Debezium JSON change events of the customers (a file, directory or glob).
    #[arg(long, value_name = "FILE")]
    customers: String,
    /// Debezium JSON change events of the orders (a file, directory or glob).
    #[arg(long, value_name = "FILE")]
    orders: String,
    /// Write part files into this directory (or s3://BUCKET/PREFIX) instead of printing.
    #[arg(long, value_name = "DIR")]
    output: Option<Location>,
    /// Write every change of the result (`op,region,orders,revenue_cents`), not the final table.
    #[arg(long)]
    changelog: bool,
    /// Read at most this many events per second from each input (to make a run last).
    #[arg(long, value_name = "EVENTS_PER_S")]
    rate: Option<f64>,
}

/// A customer row (other fields of the row are ignored).
#[derive(Debug, Clone, Deserialize)]
struct Customer {
    id: i64,
    region: String,
}

/// An order row (other fields of the row are ignored).
#[derive(Debug, Clone, Deserialize)]
struct Order {
    id: i64,
    customer_id: i64,
    amount_cents: i64,
}

/// Change events in the order of their `ts_ms`.
fn by_time<T: 'static>() -> WatermarkStrategy<DebeziumEvent<T>> {
    WatermarkStrategy::monotonous().with_timestamps(|e: &DebeziumEvent<T>| e.ts_ms)
}

fn main() -> ExitCode {
    tidal::main_with(run)
}

fn run(args: Args) -> tidal::Result<()> {
    let job = Job::new(&args.tidal)?;
    if args.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        return Err(tidal::Error::config(
            "--rate must be a positive number of events per second",
        ));
    }
    let Args {
        customers,
        orders,
        output,
        changelog,
        rate,
        ..
    } = args;
    job.run(move |env| {
        let mut customer_files = DebeziumJsonFiles::<Customer>::new(&customers);
        let mut order_files = DebeziumJsonFiles::<Order>::new(&orders);
        if let Some(rate) = rate {
            customer_files = customer_files.rate(rate);
            order_files = order_files.rate(rate);
        }
        // customers: (id, region)
        let customers = env
            .read_with(customer_files, by_time())
            .name("customers")
            .flat_map(|event| event)
            .map(|c| Change::new(c.kind, (c.row.id, c.row.region)))
            .changelog_into_collection();
        // orders: (customer_id, (order id, amount))
        let orders = env
            .read_with(order_files, by_time())
            .name("orders")
            .flat_map(|event| event)
            .map(|c| Change::new(c.kind, (c.row.customer_id, (c.row.id, c.row.amount_cents))))
            .changelog_into_collection();
        let per_region = orders
            .join_map(customers, |_customer, (_order, amount), region| {
                (region.clone(), *amount)
            })
            .totals_by_key(|amount| *amount);
        let lines = if changelog {
            per_region
                .changelog_by_key()
                .map(|c| format!("{},{},{},{}", c.kind, c.row.0, c.row.1.count, c.row.1.sum))
        } else {
            per_region
                .final_table()
                .map(|(region, t)| format!("{region},{},{}", t.count, t.sum))
        };
        match &output {
            Some(dir) => lines.write_text(dir.clone()),
            None => lines.print(),
        }
    })
}
