//! Word count: the number of times each word occurs in a text.
//!
//! Words are the maximal runs of Unicode alphanumeric characters, lowercased (see `tidal::words`).
//! Without `--input` it counts an embedded text; with `--input PATH` (a file, a directory or a
//! glob; repeatable) it counts the lines of those files, split across all workers.
//!
//! Output: one `word count` line per distinct word with its final count — on the stdout of process
//! 0, or with `--output DIR` as part files in DIR (the union of their lines is the result).
//!
//! ```text
//! cargo run --release --example wordcount
//! cargo run --release --example wordcount -- --input 'books/*.txt' -w 2 --output counts/
//! ```

use std::path::PathBuf;
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
    /// Write part files into this directory instead of printing.
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args: Args = tidal::parse_args();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> tidal::Result<()> {
    let job = Job::new(&args.tidal)?;
    let inputs = args.input;
    let output = args.output;
    job.run(move |env| {
        let lines = if inputs.is_empty() {
            env.from_iter(DEFAULT_TEXT.lines())
                .map(String::from)
                .name("embedded text")
        } else {
            env.read(TextFiles::paths(&inputs)).name("input files")
        };
        let counts = lines
            .flat_map(|line| tidal::into_words(line).map(|word| (word, ())))
            .name("split words")
            .keyed()
            .count()
            .name("count per word")
            .final_values()
            .map(|(word, count)| format!("{word} {count}"));
        match &output {
            Some(dir) => counts.write_text(dir),
            None => counts.print(),
        }
    })
}
