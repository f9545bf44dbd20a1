//! `tidal-bench all`: W1, W2 and the Nexmark queries on Tidal (the example binaries) and on
//! hand-written timely (this binary's baselines), and W2 with and without checkpoints every
//! second, each run as a whole process, alternating, on 1 and 2 workers; a table of medians, peak
//! memory and the ratio to the reference with its target; outputs compared. Then what each
//! checkpoint of `cdc_revenue` writes, whole and incremental.
//!
//! With `--yardstick DIR`, W1 and W2 are also run by an independent hand-written timely build
//! (`DIR/timely_w1`, `DIR/timely_w2`), on the same inputs, alternating with the others; the
//! summary then gives Tidal's time and peak memory against it, and the project's own baseline's
//! time against it (which must not be slower, or the baseline flatters Tidal).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

mod growth;
use growth::{cdc_input, checkpoint_sizes, scaling, state_per_key};

/// What `all` runs.
pub struct Options {
    /// Smaller inputs and one repetition (a smoke run, e.g. in CI).
    pub quick: bool,
    /// Repetitions per job (medians are shown).
    pub reps: usize,
    /// Where inputs are generated (kept for later runs) and outputs written.
    pub data: PathBuf,
    /// Input sizes other than the defaults: words of W1, bids of W2, Nexmark events.
    pub words: Option<u64>,
    pub bids: Option<u64>,
    pub events: Option<u64>,
    /// Bids of the input of W2 with and without checkpoints.
    pub checkpoint_bids: Option<u64>,
    /// The directory of the independent yardstick's `timely_w1` and `timely_w2`: a third job
    /// for W1 and W2 (W1 then reads plain text, see `gen_plain_text`).
    pub yardstick: Option<PathBuf>,
    /// Run only these workloads (`W1`, `W2`, `checkpoints`, `nexmark`, `q0` … `q12`, `SQL`, `cdc`,
    /// `components`, `scaling`); `cdc` and `checkpoints` also select the checkpoint sizes of
    /// `cdc_revenue`.
    pub only: Vec<String>,
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

/// Nexmark queries the runner runs in SQL too, as the Nexmark benchmark writes them (only the
/// tables replaced; the texts in `sql/nexmark/`, which `tests/sql.rs` runs too): name, the
/// sink's columns, its format (updating results are written as Debezium JSON changes; q3's and
/// q8's joins of append-only inputs are append-only, written as CSV lines as their DataStream
/// versions write text lines), the query.
const NEXMARK_SQL: [(&str, &str, &str, &str); 9] = [
    (
        "q0",
        "auction BIGINT, bidder BIGINT, price BIGINT, dateTime TIMESTAMP(3), extra VARCHAR",
        "csv",
        include_str!("../../../sql/nexmark/q0.sql"),
    ),
    (
        "q1",
        "auction BIGINT, bidder BIGINT, price DECIMAL(23, 3), dateTime TIMESTAMP(3), extra VARCHAR",
        "csv",
        include_str!("../../../sql/nexmark/q1.sql"),
    ),
    (
        "q2",
        "auction BIGINT, price BIGINT",
        "csv",
        include_str!("../../../sql/nexmark/q2.sql"),
    ),
    (
        "q3",
        "name VARCHAR, city VARCHAR, state VARCHAR, id BIGINT",
        "csv",
        include_str!("../../../sql/nexmark/q3.sql"),
    ),
    (
        "q4",
        "category BIGINT, avg_final BIGINT",
        "debezium-json",
        include_str!("../../../sql/nexmark/q4.sql"),
    ),
    (
        "q5",
        "auction BIGINT, num BIGINT",
        "csv",
        include_str!("../../../sql/nexmark/q5.sql"),
    ),
    (
        "q7",
        "auction BIGINT, price BIGINT, bidder BIGINT, dateTime TIMESTAMP(3), extra VARCHAR",
        "csv",
        include_str!("../../../sql/nexmark/q7.sql"),
    ),
    (
        "q8",
        "id BIGINT, name VARCHAR, starttime TIMESTAMP(3)",
        "csv",
        include_str!("../../../sql/nexmark/q8.sql"),
    ),
    (
        "q11",
        "bidder BIGINT, bid_count BIGINT, starttime TIMESTAMP(3), endtime TIMESTAMP(3)",
        "csv",
        include_str!("../../../sql/nexmark/q11.sql"),
    ),
];

/// The Nexmark tables a SQL query reads, on the nexmark connector generating `events` events.
fn nexmark_sql_tables(select: &str, events: u64) -> String {
    let tables = [
        (
            "bid",
            "auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
  dateTime TIMESTAMP(3), extra VARCHAR",
        ),
        (
            "person",
            "id BIGINT, name VARCHAR, emailAddress VARCHAR, creditCard VARCHAR, city VARCHAR,
  state VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR",
        ),
        (
            "auction",
            "id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT,
  dateTime TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR",
        ),
    ];
    let words: Vec<&str> = select
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .collect();
    tables
        .iter()
        .filter(|(name, _)| words.contains(name))
        .map(|(name, columns)| {
            format!(
                "CREATE TABLE {name} (
  {columns},
  WATERMARK FOR dateTime AS dateTime
) WITH ('connector' = 'nexmark', 'table' = '{name}', 'events' = '{events}');
"
            )
        })
        .collect()
}

/// The `tidal` launcher next to this binary (`target/PROFILE/tidal`), built first when this runs
/// under cargo.
fn launcher() -> PathBuf {
    let me = std::env::current_exe().expect("own path");
    let dir = me.parent().expect("a directory");
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut build = Command::new(cargo);
        build.args(["build", "-q", "-p", "tidal", "--bin", "tidal"]);
        if dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo");
        assert!(status.success(), "building the tidal launcher failed");
    }
    let path = dir.join("tidal");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --release --bin tidal`",
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

/// One way to run a workload: a program and its arguments (before `--output DIR -w N`), and
/// directories to empty before each run.
struct Job {
    label: String,
    program: PathBuf,
    args: Vec<String>,
    scratch: Vec<PathBuf>,
    /// Run as the yardstick's programs are: `PROGRAM WORKERS INPUT OUTPUT_FILE`, where `args` is
    /// the input alone.
    yardstick: bool,
    /// A SQL script run by `tidal sql`: the output directory is the script's `${output}`.
    sql: bool,
}

impl Job {
    /// A job run with `--output DIR -w N` after its arguments.
    fn new(label: &str, program: &Path, args: Vec<String>) -> Job {
        Job {
            label: label.into(),
            program: program.to_path_buf(),
            args,
            scratch: vec![],
            yardstick: false,
            sql: false,
        }
    }

    /// The yardstick's program `name` in `dir`, reading `input`.
    fn yardstick(dir: &Path, name: &str, input: &Path) -> Job {
        let program = dir.join(name);
        assert!(
            program.exists(),
            "{} is missing: build the yardstick first (cargo build --release in its rust/ folder)",
            program.display()
        );
        Job {
            label: format!("yardstick {name}"),
            program,
            args: vec![input.display().to_string()],
            scratch: vec![],
            yardstick: true,
            sql: false,
        }
    }

    /// The arguments of a run on `workers` workers writing to the directory `out`.
    fn args(&self, workers: usize, out: &Path) -> Vec<String> {
        if self.yardstick {
            std::fs::create_dir_all(out).expect("create an output directory");
            let file = out.join("part-0").display().to_string();
            vec![workers.to_string(), self.args[0].clone(), file]
        } else if self.sql {
            let mut a = self.args.clone();
            a.extend([
                "--var".into(),
                format!("output={}", out.display()),
                "-w".into(),
                workers.to_string(),
            ]);
            a
        } else {
            let mut a = self.args.clone();
            a.extend([
                "--output".into(),
                out.display().to_string(),
                "-w".into(),
                workers.to_string(),
            ]);
            a
        }
    }
}

/// A workload: its name, how many events it processes, Tidal's job and the jobs it is compared
/// with (a hand-written baseline, or Tidal itself without a feature; and the yardstick), and the
/// ratio it must meet against each.
struct Workload {
    name: String,
    events: u64,
    tidal: Job,
    references: Vec<Job>,
    /// Most Tidal / reference may be.
    target: f64,
    /// Whether both write the same lines (not so for processing-time windows).
    same_output: bool,
    /// Whether the lines are a running result (`key,count,...`, a line per change, as many as
    /// the batching makes): then what is compared is each key's final line, the one with the
    /// largest count.
    running: bool,
}

/// Each key's final line of a running result: per first field, the line with the largest second
/// field.
fn final_lines(lines: Vec<String>) -> Vec<String> {
    let mut last: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for line in lines {
        let mut fields = line.splitn(3, ',');
        let key = fields.next().unwrap_or_default().to_string();
        let count: u64 = fields.next().and_then(|c| c.parse().ok()).unwrap_or(0);
        match last.get(&key) {
            Some((n, _)) if *n >= count => {}
            _ => {
                last.insert(key, (count, line));
            }
        }
    }
    last.into_values().map(|(_, line)| line).collect()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// Whether `--only` selects the workload `name` (e.g. `W1`, `W2`, `checkpoints`, `q5`).
fn selected(only: &[String], name: &str) -> bool {
    only.is_empty()
        || only.iter().any(|o| {
            name.split([' ', '+'])
                .next()
                .is_some_and(|first| first.eq_ignore_ascii_case(o))
                || name.eq_ignore_ascii_case(o)
                || (o.eq_ignore_ascii_case("nexmark") && name.starts_with("nexmark"))
                || (o.eq_ignore_ascii_case("checkpoints") && name.contains("checkpoints"))
                || name.ends_with(&format!(" {o}"))
        })
}

pub fn all(options: &Options) {
    std::fs::create_dir_all(&options.data).expect("create the data directory");
    let (words, bids, events) = if options.quick {
        (1_000_000, 1_000_000, 200_000)
    } else {
        (8_000_000, 5_000_000, 5_000_000)
    };
    let (words, bids, events) = (
        options.words.unwrap_or(words),
        options.bids.unwrap_or(bids),
        options.events.unwrap_or(events),
    );
    let reps = if options.quick {
        1
    } else {
        options.reps.max(1)
    };
    let me = std::env::current_exe().expect("own path");
    let only = &options.only;

    let yardstick = options.yardstick.as_deref();
    let text = match yardstick {
        Some(_) => options.data.join(format!("w1-plain-{words}.txt")),
        None => options.data.join(format!("w1-{words}.txt")),
    };
    if selected(only, "W1") && !text.exists() {
        eprintln!("generating {} ...", text.display());
        match yardstick {
            Some(_) => crate::gen_plain_text(words, &text, 1),
            None => crate::gen_text(words, &text, 1),
        }
    }
    let bid_windows = example("bid_windows");
    let bids_file = |n: u64| {
        let csv = options.data.join(format!("w2-{n}.csv"));
        if !csv.exists() {
            eprintln!("generating {} ...", csv.display());
            let status = Command::new(&bid_windows)
                .arg("--generate")
                .arg(&csv)
                .args(["--events", &n.to_string(), "--seed", "1"])
                .status()
                .expect("run bid_windows --generate");
            assert!(status.success());
        }
        csv
    };
    let csv = options.data.join(format!("w2-{bids}.csv"));
    if selected(only, "W2") {
        bids_file(bids);
    }
    let mut workloads = Vec::new();
    if selected(only, "W1") {
        workloads.push(Workload {
            name: "W1 wordcount".into(),
            events: crate::count_words(&text),
            tidal: Job::new(
                "tidal",
                &example("wordcount"),
                vec!["--input".into(), text.display().to_string()],
            ),
            references: [Job::new(
                "timely (hand)",
                &me,
                vec![
                    "timely-wordcount".into(),
                    "--input".into(),
                    text.display().to_string(),
                ],
            )]
            .into_iter()
            .chain(yardstick.map(|dir| Job::yardstick(dir, "timely_w1", &text)))
            .collect(),
            target: 1.25,
            same_output: true,
            running: false,
        });
    }
    let w2_input = vec!["--input".to_string(), csv.display().to_string()];
    if selected(only, "W2") {
        workloads.push(Workload {
            name: "W2 bid_windows".into(),
            events: bids,
            tidal: Job::new("tidal", &bid_windows, w2_input.clone()),
            references: [Job::new(
                "timely (hand)",
                &me,
                [vec!["timely-bid-windows".to_string()], w2_input.clone()].concat(),
            )]
            .into_iter()
            .chain(yardstick.map(|dir| Job::yardstick(dir, "timely_w2", &csv)))
            .collect(),
            target: 1.25,
            same_output: true,
            running: false,
        });
    }
    let checkpoints = options.data.join("checkpoints");
    if selected(only, "checkpoints") {
        // A run lasting several intervals: 30 M bids take 3-4 s on one worker here.
        let ckpt_bids =
            options
                .checkpoint_bids
                .unwrap_or(if options.quick { bids } else { 30_000_000 });
        let ckpt_csv = bids_file(ckpt_bids);
        let w2_input = vec!["--input".to_string(), ckpt_csv.display().to_string()];
        let mut args = w2_input.clone();
        args.extend(strings(&[
            "--checkpoint-interval",
            "1s",
            "--checkpoint-dir",
        ]));
        args.push(checkpoints.display().to_string());
        workloads.push(Workload {
            name: "W2+checkpoints 1s".into(),
            events: ckpt_bids,
            tidal: Job {
                scratch: vec![checkpoints.clone()],
                ..Job::new("tidal, 1 s ckpt", &bid_windows, args)
            },
            references: vec![Job::new("tidal, no ckpt", &bid_windows, w2_input.clone())],
            target: 1.05,
            same_output: true,
            running: false,
        });
    }
    let nexmark = example("nexmark");
    for query in [
        "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q11", "q12",
    ] {
        let name = format!("nexmark {query}");
        if !selected(only, &name) {
            continue;
        }
        let args = strings(&["--query", query, "--events", &events.to_string()]);
        workloads.push(Workload {
            name,
            events,
            tidal: Job::new("tidal", &nexmark, args.clone()),
            references: crate::nexmark::QUERIES
                .contains(&query)
                .then(|| {
                    Job::new(
                        "timely (hand)",
                        &me,
                        [vec!["timely-nexmark".to_string()], args].concat(),
                    )
                })
                .into_iter()
                .collect(),
            target: 1.5,
            same_output: query != "q12",
            running: ["q4", "q6"].contains(&query),
        });
    }
    // Nexmark queries in SQL (on a nexmark table generating the same events) against their
    // DataStream versions: the planner's overhead.
    for (query, columns, format, select) in NEXMARK_SQL {
        let name = format!("nexmark {query} SQL");
        if !selected(only, &name) {
            continue;
        }
        let script = options.data.join(format!("nexmark-{query}.sql"));
        let text = format!(
            "{tables}CREATE TABLE out ({columns}) WITH ('connector' = 'filesystem', 'path' = '${{output}}', 'format' = '{format}');
INSERT INTO out {select};
",
            tables = nexmark_sql_tables(select, events)
        );
        std::fs::write(&script, text).expect("write a SQL script");
        // q4 in SQL is an updating query (a regular join and two group-bys): its DataStream
        // counterpart is the example's updating form.
        let mut args = strings(&["--query", query, "--events", &events.to_string()]);
        if query == "q4" {
            args.push("--updating".to_string());
        }
        workloads.push(Workload {
            name,
            events,
            tidal: Job {
                sql: true,
                ..Job::new(
                    "tidal sql",
                    &launcher(),
                    vec!["sql".to_string(), script.display().to_string()],
                )
            },
            references: vec![Job::new("tidal DataStream", &nexmark, args)],
            target: 1.2,
            same_output: false,
            running: false,
        });
    }
    if selected(only, "cdc") {
        // cdc_revenue against the same job on differential: Debezium logs of customers and
        // orders, joined and grouped by region.
        let (dir, order_events) = cdc_input(options);
        let args = vec![
            "--customers".to_string(),
            dir.join("customers.jsonl").display().to_string(),
            "--orders".to_string(),
            dir.join("orders.jsonl").display().to_string(),
        ];
        workloads.push(Workload {
            name: "cdc_revenue".into(),
            events: order_events,
            tidal: Job::new("tidal", &example("cdc_revenue"), args.clone()),
            references: vec![Job::new(
                "differential",
                &me,
                [vec!["differential-cdc".to_string()], args].concat(),
            )],
            target: 1.15,
            same_output: true,
            running: false,
        });
    }
    if selected(only, "components") {
        // graph_components against the same fixed point on differential.
        let (events, nodes) = if options.quick {
            (10_000, 4_000)
        } else {
            (60_000, 20_000)
        };
        let edges = options.data.join(format!("edges-{events}-{nodes}.csv"));
        if !edges.exists() {
            eprintln!("generating {} ...", edges.display());
            crate::differential::gen_edges(&edges, events, nodes, 2_000, 1);
        }
        let args = vec!["--edges".to_string(), edges.display().to_string()];
        workloads.push(Workload {
            name: "graph_components".into(),
            events,
            tidal: Job::new("tidal", &example("graph_components"), args.clone()),
            references: vec![Job::new(
                "differential",
                &me,
                [vec!["differential-components".to_string()], args].concat(),
            )],
            target: 1.15,
            same_output: true,
            running: false,
        });
    }
    let sections = selected(only, "cdc+checkpoints") || selected(only, "scaling");
    assert!(
        !workloads.is_empty() || sections,
        "--only {}: no such workload (W1, W2, checkpoints, nexmark, q0 ... q12, SQL, cdc, components, scaling)",
        only.join(",")
    );

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "tidal-bench all{}: {reps} rep(s) per job, alternating each job with its reference; medians; {cores} core(s)",
        if options.quick { " --quick" } else { "" }
    );
    if !workloads.is_empty() {
        println!(
            "{:<18} {:>7} {:<18} {:>10} {:>9} {:>12} {:>10} {:>8} {:>7}",
            "workload",
            "workers",
            "job",
            "events",
            "seconds",
            "events/s",
            "peak MB",
            "ratio",
            "target"
        );
    }
    let mut summary: Vec<(String, usize, String, f64, f64)> = Vec::new();
    let mut compared = 0;
    for w in &workloads {
        for workers in [1usize, 2] {
            let jobs: Vec<&Job> = std::iter::once(&w.tidal).chain(&w.references).collect();
            let outs: Vec<PathBuf> = (0..jobs.len())
                .map(|j| options.data.join(format!("out-{j}")))
                .collect();
            let mut runs: Vec<Vec<Run>> = vec![Vec::new(); jobs.len()];
            for rep in 0..reps {
                let mut order: Vec<usize> = (0..jobs.len()).collect();
                if rep % 2 == 1 {
                    order.reverse();
                }
                for j in order {
                    let _ = std::fs::remove_dir_all(&outs[j]);
                    for dir in &jobs[j].scratch {
                        let _ = std::fs::remove_dir_all(dir);
                    }
                    runs[j].push(measured(&jobs[j].program, &jobs[j].args(workers, &outs[j])));
                }
                if rep == 0 && w.same_output {
                    let lines = |dir: &Path| match w.running {
                        true => final_lines(sorted_lines(dir)),
                        false => sorted_lines(dir),
                    };
                    let tidal = lines(&outs[0]);
                    for j in 1..jobs.len() {
                        let other = lines(&outs[j]);
                        assert!(
                            tidal == other,
                            "{} on {workers} worker(s): {} wrote {} lines, {} {}; they differ",
                            w.name,
                            jobs[0].label,
                            tidal.len(),
                            jobs[j].label,
                            other.len()
                        );
                        compared += 1;
                    }
                }
            }
            let seconds: Vec<f64> = runs
                .iter()
                .map(|r| median(r.iter().map(|x| x.seconds).collect()))
                .collect();
            for (j, job) in jobs.iter().enumerate() {
                let peak = runs[j].iter().map(|r| r.peak_rss_kb).max().unwrap_or(0);
                // On each reference's row: Tidal's time over its time, and the target.
                let (ratio, target) = if j > 0 {
                    (
                        format!("{:.2}", seconds[0] / seconds[j]),
                        format!("{:.2}", w.target),
                    )
                } else {
                    (String::new(), String::new())
                };
                println!(
                    "{:<18} {:>7} {:<18} {:>10} {:>9.3} {:>12.0} {:>10.1} {:>8} {:>7}",
                    w.name,
                    workers,
                    job.label,
                    w.events,
                    seconds[j],
                    w.events as f64 / seconds[j],
                    peak as f64 / 1024.0,
                    ratio,
                    target
                );
                if j > 0 {
                    summary.push((
                        w.name.clone(),
                        workers,
                        format!("tidal / {}", job.label),
                        seconds[0] / seconds[j],
                        w.target,
                    ));
                }
            }
            // The project's own baseline must be no slower than the independent yardstick.
            if let Some(y) = jobs.iter().position(|j| j.yardstick) {
                summary.push((
                    w.name.clone(),
                    workers,
                    format!("{} / {}", jobs[1].label, jobs[y].label),
                    seconds[1] / seconds[y],
                    1.0,
                ));
                let peak = |j: usize| runs[j].iter().map(|r| r.peak_rss_kb).max().unwrap_or(0);
                summary.push((
                    w.name.clone(),
                    workers,
                    format!("tidal / {} peak memory", jobs[y].label),
                    peak(0) as f64 / peak(y).max(1) as f64,
                    2.0,
                ));
            }
            if !w.tidal.scratch.is_empty() {
                state_per_key(&w.tidal.scratch[0]);
            }
        }
    }
    if !workloads.is_empty() {
        println!("outputs were compared in {compared} configuration(s) and were equal");
    }
    for (name, workers, what, ratio, target) in &summary {
        let verdict = if ratio <= target { "within" } else { "OVER" };
        println!(
            "{name}, {workers} worker(s), {what}: {ratio:.2} ({verdict} the {target:.2} target)"
        );
    }
    if selected(only, "cdc+checkpoints") {
        checkpoint_sizes(options);
    }
    if selected(only, "scaling") {
        scaling(options);
    }
}

#[cfg(test)]
mod tests {
    use super::Job;
    use std::path::Path;

    /// Tidal's jobs and the project's baselines take `--output DIR -w N` after their arguments;
    /// the yardstick's programs take `WORKERS INPUT OUTPUT_FILE`.
    #[test]
    fn each_kind_of_job_gets_its_arguments() {
        let out = tempfile::tempdir().expect("a temporary directory");
        let tidal = Job::new(
            "tidal",
            Path::new("wordcount"),
            vec!["--input".into(), "t".into()],
        );
        let dir = out.path().display().to_string();
        assert_eq!(
            tidal.args(2, out.path()),
            ["--input", "t", "--output", &dir, "-w", "2"]
        );
        let yardstick = Job {
            yardstick: true,
            ..Job::new("yardstick", Path::new("timely_w1"), vec!["t".into()])
        };
        let file = out.path().join("part-0").display().to_string();
        assert_eq!(yardstick.args(2, out.path()), ["2", "t", &file]);
    }
}
