//! Word count: the number of times each word occurs in a text.
//!
//! Words are the maximal runs of Unicode alphanumeric characters, lowercased (see `tidal::words`).
//! Without `--input` it counts an embedded text; with `--input PATH` (a file, a directory or a
//! glob; repeatable) it counts the lines of those files, split across all workers.
//!
//! Output: one `word count` line per distinct word with its final count — on the stdout of process
//! 0, or with `--output DIR` as part files in DIR (the union of their lines is the result).
//!
//! With `--checkpoint-dir DIR` it takes checkpoints (every `--checkpoint-interval`), and with
//! `--restore latest` it goes on from the newest one; `--rate LINES_PER_S` makes a run last.
//!
//! ```text
//! cargo run --release --example wordcount
//! cargo run --release --example wordcount -- --input 'books/*.txt' -w 2 --output counts/
//! ```

use std::process::ExitCode;

use clap::Parser;
use tidal::prelude::*;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The text counted when no --input is given.
const DEFAULT_TEXT: &str = include_str!("data/tides.txt");

/// Count words in text files (or in an embedded text) on any number of workers and processes.
#[derive(Parser)]
#[command(name = "wordcount")]
struct Args {
    #[command(flatten)]
    tidal: JobArgs,
    /// Input file, directory or glob; repeat for more. Without it, an embedded text is counted.
    #[arg(long, value_name = "PATH")]
    input: Vec<String>,
    /// Write part files into this directory (or s3://BUCKET/PREFIX) instead of printing.
    #[arg(long, value_name = "DIR")]
    output: Option<Location>,
    /// Read at most this many lines per second over the whole job (to make a run last).
    #[arg(long, value_name = "LINES_PER_S")]
    rate: Option<f64>,
}

fn main() -> ExitCode {
    tidal::main_with(run)
}

fn run(args: Args) -> tidal::Result<()> {
    let job = Job::new(&args.tidal)?;
    let inputs = args.input;
    let output = args.output;
    let rate = args.rate;
    if rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        return Err(tidal::Error::config(
            "--rate must be a positive number of lines per second",
        ));
    }
    job.run(move |env| {
        let lines = if inputs.is_empty() {
            let text: Vec<&'static str> = DEFAULT_TEXT.lines().collect();
            let mut lines = Generator::new(move |i| text[i as usize].to_string())
                .count(DEFAULT_TEXT.lines().count() as u64);
            if let Some(rate) = rate {
                lines = lines.rate(rate);
            }
            env.generate(lines).name("embedded text")
        } else {
            let mut files = TextFiles::paths(&inputs);
            if let Some(rate) = rate {
                files = files.rate(rate);
            }
            env.read(files).name("input files")
        };
        let counts = lines
            .flat_map(|line| tidal::into_word_keys(line).map(|word| (word, ())))
            .name("split words")
            .keyed()
            .count()
            .name("count per word")
            .final_values()
            .map(|(word, count)| format!("{word} {count}"));
        match &output {
            Some(dir) => counts.write_text(dir.clone()),
            None => counts.print(),
        }
    })
}
