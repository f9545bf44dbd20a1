//! `tidal-bench all`: W1 and W2 on Tidal (the example binaries) and on hand-written timely (this
//! binary's baselines), each run as a whole process on the same input file, alternating, on 1 and
//! 2 workers; a table of medians, peak memory and the ratio Tidal / timely; outputs compared.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What `all` runs.
pub struct Options {
    /// Smaller inputs and one repetition (a smoke run, e.g. in CI).
    pub quick: bool,
    /// Repetitions per job (medians are shown).
    pub reps: usize,
    /// Where inputs are generated (kept for later runs) and outputs written.
    pub data: PathBuf,
    /// Input sizes other than the defaults: words of W1, bids of W2.
    pub words: Option<u64>,
    pub bids: Option<u64>,
}

/// One measured run of a process.
#[derive(Clone, Copy, Debug)]
struct Run {
    seconds: f64,
    peak_rss_kb: i64,
}

/// Runs `program` with `args` under `tidal-bench measure`: wall time and peak RSS of that process
/// alone. Panics with its stderr when it fails.
fn measured(program: &Path, args: &[String]) -> Run {
    let me = std::env::current_exe().expect("own path");
    let output = Command::new(me)
        .arg("measure")
        .arg("--")
        .arg(program)
        .args(args)
        .output()
        .expect("start the measuring process");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let fields: Vec<&str> = stdout.split_whitespace().collect();
    assert!(
        output.status.success() && fields.len() == 3 && fields[2] == "0",
        "{} {} failed:\n{stdout}\n{stderr}",
        program.display(),
        args.join(" ")
    );
    Run {
        seconds: fields[0].parse().expect("seconds"),
        peak_rss_kb: fields[1].parse().expect("peak RSS"),
    }
}

/// `tidal-bench measure -- PROGRAM ARGS`: runs the program (its output discarded, its stderr
/// passed on) and prints `SECONDS PEAK_RSS_KB EXIT_CODE`. The peak is that of this process's
/// children, of which the program is the only one.
pub fn measure(command: &[String]) {
    let started = std::time::Instant::now();
    let status = Command::new(&command[0])
        .args(&command[1..])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("start the program");
    let seconds = started.elapsed().as_secs_f64();
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage");
    println!(
        "{seconds:.4} {} {}",
        usage.max_rss(),
        status.code().unwrap_or(-1)
    );
}

/// The example binaries next to this one (`target/PROFILE/examples/`), built first when this
/// runs under cargo.
fn example(name: &str) -> PathBuf {
    let me = std::env::current_exe().expect("own path");
    let dir = me.parent().expect("a directory");
    let path = dir.join("examples").join(name);
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut build = Command::new(cargo);
        build.args(["build", "-q", "-p", "tidal", "--example", name]);
        if dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo");
        assert!(status.success(), "building example {name} failed");
    }
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --release --example {name}`, or run this with `cargo run --release -p tidal-bench -- all`",
        path.display()
    );
    path
}

/// Every line of the visible files in `dir`, sorted.
fn sorted_lines(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir)
        .expect("an output directory")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).expect("read an output file");
        lines.extend(text.lines().map(str::to_string));
    }
    lines.sort_unstable();
    lines
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A workload: its name, its input, how many events it holds, and how each engine runs it.
struct Workload {
    name: &'static str,
    input: PathBuf,
    events: u64,
    tidal: PathBuf,
    baseline: &'static str,
}

pub fn all(options: &Options) {
    std::fs::create_dir_all(&options.data).expect("create the data directory");
    let (words, bids) = if options.quick {
        (1_000_000, 1_000_000)
    } else {
        (8_000_000, 5_000_000)
    };
    let (words, bids) = (options.words.unwrap_or(words), options.bids.unwrap_or(bids));
    let reps = if options.quick {
        1
    } else {
        options.reps.max(1)
    };

    let text = options.data.join(format!("w1-{words}.txt"));
    if !text.exists() {
        eprintln!("generating {} ...", text.display());
        crate::gen_text(words, &text, 1);
    }
    let bid_windows = example("bid_windows");
    let csv = options.data.join(format!("w2-{bids}.csv"));
    if !csv.exists() {
        eprintln!("generating {} ...", csv.display());
        let status = Command::new(&bid_windows)
            .arg("--generate")
            .arg(&csv)
            .args(["--events", &bids.to_string(), "--seed", "1"])
            .status()
            .expect("run bid_windows --generate");
        assert!(status.success());
    }
    let workloads = [
        Workload {
            name: "W1 wordcount",
            events: crate::count_words(&text),
            input: text,
            tidal: example("wordcount"),
            baseline: "timely-wordcount",
        },
        Workload {
            name: "W2 bid_windows",
            events: bids,
            input: csv,
            tidal: bid_windows,
            baseline: "timely-bid-windows",
        },
    ];
    let me = std::env::current_exe().expect("own path");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "tidal-bench all{}: {reps} rep(s) per job, alternating Tidal and timely; medians; {cores} core(s)",
        if options.quick { " --quick" } else { "" }
    );
    println!(
        "{:<15} {:>7} {:<16} {:>10} {:>9} {:>12} {:>10} {:>8}",
        "workload", "workers", "job", "events", "seconds", "events/s", "peak MB", "ratio"
    );
    let mut summary: BTreeMap<(&str, usize), f64> = BTreeMap::new();
    for w in &workloads {
        for workers in [1usize, 2] {
            let out_tidal = options.data.join("out-tidal");
            let out_timely = options.data.join("out-timely");
            let args = |out: &Path| -> Vec<String> {
                vec![
                    "--input".into(),
                    w.input.display().to_string(),
                    "--output".into(),
                    out.display().to_string(),
                    "-w".into(),
                    workers.to_string(),
                ]
            };
            let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
            for rep in 0..reps {
                let order = if rep % 2 == 0 { [0, 1] } else { [1, 0] };
                for job in order {
                    let out = if job == 0 { &out_tidal } else { &out_timely };
                    let _ = std::fs::remove_dir_all(out);
                    let run = if job == 0 {
                        measured(&w.tidal, &args(out))
                    } else {
                        let mut a = vec![w.baseline.to_string()];
                        a.extend(args(out));
                        measured(&me, &a)
                    };
                    runs[job].push(run);
                }
                if rep == 0 {
                    let (t, b) = (sorted_lines(&out_tidal), sorted_lines(&out_timely));
                    assert!(
                        t == b,
                        "{} on {workers} worker(s): Tidal wrote {} lines, timely {}; they differ",
                        w.name,
                        t.len(),
                        b.len()
                    );
                }
            }
            let seconds: Vec<f64> = runs
                .iter()
                .map(|r| median(r.iter().map(|x| x.seconds).collect()))
                .collect();
            for (job, name) in ["tidal", "timely (hand)"].iter().enumerate() {
                let peak = runs[job].iter().map(|r| r.peak_rss_kb).max().unwrap_or(0);
                let ratio = if job == 0 {
                    format!("{:.2}", seconds[0] / seconds[1])
                } else {
                    String::new()
                };
                println!(
                    "{:<15} {:>7} {:<16} {:>10} {:>9.3} {:>12.0} {:>10.1} {:>8}",
                    w.name,
                    workers,
                    name,
                    w.events,
                    seconds[job],
                    w.events as f64 / seconds[job],
                    peak as f64 / 1024.0,
                    ratio
                );
            }
            summary.insert((w.name, workers), seconds[0] / seconds[1]);
        }
    }
    println!("outputs of Tidal and timely were equal in every configuration");
    for ((name, workers), ratio) in &summary {
        let target = if *ratio <= 1.25 { "within" } else { "OVER" };
        println!(
            "{name}, {workers} worker(s): Tidal / timely = {ratio:.2} ({target} the 1.25 target)"
        );
    }
}
