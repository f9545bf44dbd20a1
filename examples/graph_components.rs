//! Connected components of a changing graph, kept up to date as edges come and go.
//!
//! Input (`--edges`): CSV lines `time,op,src,dst` — `time` in ms (non-decreasing), `op` `+` to
//! insert an undirected edge between nodes `src` and `dst`, `-` to delete one earlier copy of it
//! (in either direction; multi-edges count). Each node's component is the smallest node id it is
//! connected to, found by propagating the least label along the edges to a fixed point
//! (`iterate`); when an edge is deleted, only the components it touched are recomputed.
//!
//! Output: without `--changelog`, the final `node,component` for every node with an edge; with
//! `--changelog`, every change as `op,node,component` (`op` one of `+I -U +U -D`), which folds to
//! it. On the stdout of process 0, or with `--output DIR` as part files.
//!
//! A line that does not decode fails the job naming the file, line and field; so does the
//! deletion of an edge that is not there.
//!
//! ```text
//! cargo run --release --example graph_components -- --edges edges.csv
//! ```

use std::process::ExitCode;

use clap::Parser;
use serde::Deserialize;
use tidal::prelude::*;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Connected components of a graph given as a log of edge insertions and deletions.
#[derive(Parser)]
#[command(name = "graph_components")]
struct Args {
    #[command(flatten)]
    tidal: JobArgs,
    /// CSV lines `time,op,src,dst` (a file, directory or glob).
    #[arg(long, value_name = "FILE")]
    edges: String,
    /// Write part files into this directory (or s3://BUCKET/PREFIX) instead of printing.
    #[arg(long, value_name = "DIR")]
    output: Option<Location>,
    /// Write every change (`op,node,component`), not the final components.
    #[arg(long)]
    changelog: bool,
    /// Read at most this many lines per second (to make a run last).
    #[arg(long, value_name = "LINES_PER_S")]
    rate: Option<f64>,
}

/// `+` inserts an edge, `-` deletes one copy.
#[derive(Debug, Clone, Copy, Deserialize)]
enum Op {
    #[serde(rename = "+")]
    Insert,
    #[serde(rename = "-")]
    Delete,
}

/// One line of the edge log.
#[derive(Debug, Clone, Deserialize)]
struct EdgeChange {
    time: i64,
    op: Op,
    src: u64,
    dst: u64,
}

fn main() -> ExitCode {
    tidal::main_with(run)
}

fn run(args: Args) -> tidal::Result<()> {
    let job = Job::new(&args.tidal)?;
    if args.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        return Err(tidal::Error::config(
            "--rate must be a positive number of lines per second",
        ));
    }
    let Args {
        edges,
        output,
        changelog,
        rate,
        ..
    } = args;
    job.run(move |env| {
        let mut files = CsvFiles::<EdgeChange>::new(&edges).has_headers(false);
        if let Some(rate) = rate {
            files = files.rate(rate);
        }
        let by_time = WatermarkStrategy::monotonous().with_timestamps(|e: &EdgeChange| e.time);
        // Undirected: an edge is its two ends in order, so `- 2 1` deletes `+ 1 2`.
        let edges = env
            .read_with(files, by_time)
            .name("edges")
            .map(|e| {
                let diff = match e.op {
                    Op::Insert => 1,
                    Op::Delete => -1,
                };
                ((e.src.min(e.dst), e.src.max(e.dst)), diff)
            })
            .updates_into_collection();
        let components = components(edges);
        let lines = if changelog {
            components
                .changelog_by_key()
                .map(|c| format!("{},{},{}", c.kind, c.row.0, c.row.1))
        } else {
            components
                .final_table()
                .map(|(node, component)| format!("{node},{component}"))
        };
        match &output {
            Some(dir) => lines.write_text(dir.clone()),
            None => lines.print(),
        }
    })
}

/// `(node, component)` for every node with an edge: the least node id reachable from it.
fn components<'s>(edges: Collection<'s, (u64, u64)>) -> Collection<'s, (u64, u64)> {
    let both_ways = edges.flat_map(|(a, b)| [(a, b), (b, a)]);
    let labels = both_ways.clone().map(|(node, _)| (node, node)).distinct();
    labels.clone().iterate(move |scope, current| {
        let both_ways = both_ways.enter(scope);
        let labels = labels.enter(scope);
        current
            .join(both_ways)
            .map(|(_node, (label, neighbour))| (neighbour, label))
            .concat(labels)
            .min_by_key()
    })
}
