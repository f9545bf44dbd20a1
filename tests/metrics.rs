//! Seeing a running job: operator metrics counted from what the dataflow really did, on every
//! shape (the 2-process run's metrics gathered in process 0); the job graph printed by
//! `--explain` without running the job; `/metrics` served in Prometheus's text format by
//! process 0 of a job under `tidal run`, its counters growing.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{SHAPES, example, free_addresses, is_child, launch_once, run_example, run_with};
use tidal::engine::metrics::{JobMetrics, SharedMetrics};
use tidal::prelude::*;

/// Per node name: records in, records out (summed over workers), and whether every worker's
/// instance has finished (no watermark left).
fn totals(m: &JobMetrics) -> BTreeMap<String, (u64, u64, bool)> {
    let graph = m.graph.as_ref().expect("a job graph");
    let mut out: BTreeMap<String, (u64, u64, bool)> = BTreeMap::new();
    for w in m.workers.values() {
        for o in &w.operators {
            let e = out
                .entry(graph.nodes[o.node].name.clone())
                .or_insert((0, 0, true));
            e.0 += o.records_in;
            e.1 += o.records_out;
            e.2 &= o.watermark.is_none();
        }
    }
    out
}

/// Records in and out of every operator of a job, summed over its workers, are what the
/// dataflow did — the source's N records, a filter passing a third, a map passing all, the keyed
/// sum's input, its changes into `final_values` — and every operator has finished, on 1 worker,
/// 2 threads and 2 processes (process 0 holding process 1's worker's metrics too). Each worker's
/// keyed state holds its keys, and its size in bytes is what those keys' final entries take.
#[test]
fn operator_metrics_count_every_record_on_every_shape() {
    const N: u64 = 30_000;
    let test = "operator_metrics_count_every_record_on_every_shape";
    for shape in SHAPES {
        let handle: Arc<Mutex<Option<SharedMetrics>>> = Arc::new(Mutex::new(None));
        let keep = Arc::clone(&handle);
        let out: Vec<(u64, u64)> = run_with(
            test,
            shape,
            move |job| {
                let (job, metrics) = job.with_metrics();
                *keep.lock().unwrap() = Some(metrics);
                job
            },
            |env| {
                env.generate(Generator::new(|i| i).count(N))
                    .name("numbers")
                    .filter(|x| x % 3 == 0)
                    .name("thirds")
                    .map(|x| (x % 10, 1u64))
                    .name("pairs")
                    .keyed()
                    .sum()
                    .name("sums")
                    .final_values()
                    .name("final")
                    .collect()
            },
        );
        if is_child() {
            continue;
        }
        let thirds = N.div_ceil(3);
        assert_eq!(out.iter().map(|(_, c)| c).sum::<u64>(), thirds, "{shape:?}");
        let metrics = handle.lock().unwrap().take().unwrap();
        let m = metrics.lock().unwrap();
        let workers = if matches!(shape, common::Shape::OneWorker) {
            1
        } else {
            2
        };
        assert_eq!(
            m.workers.len(),
            workers,
            "{shape:?}: metrics of every worker"
        );
        let t = totals(&m);
        assert_eq!(t["numbers"].1, N, "{shape:?}: source out");
        assert_eq!(t["thirds"], (N, thirds, true), "{shape:?}: filter");
        assert_eq!(t["pairs"], (thirds, thirds, true), "{shape:?}: map");
        assert_eq!(t["sums"].0, thirds, "{shape:?}: keyed sum in");
        assert!(t["sums"].1 >= 10, "{shape:?}: at least one change per key");
        assert_eq!(
            t["final"].0, t["sums"].1,
            "{shape:?}: changes into final_values"
        );
        assert!(
            t.values().all(|v| v.2),
            "{shape:?}: every operator finished: {t:?}"
        );
        // Every record sent towards an operator was taken in by the end: no input queue left
        // (what was sent on any worker, to instances on every worker).
        let mut sent_and_taken: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
        for w in m.workers.values() {
            for o in &w.operators {
                let e = sent_and_taken.entry(o.node).or_default();
                e.0 += o.records_sent_to;
                e.1 += o.records_in;
            }
        }
        for (node, (sent, taken)) in &sent_and_taken {
            assert_eq!(
                sent, taken,
                "{shape:?}: node {node} has an input queue at the end"
            );
        }
        // Each worker's state of the keyed sum holds the keys it owns, each with its final sum
        // (and no write time: no time to live); its size is what those entries take encoded.
        let peers = m.workers.len();
        for (index, w) in &m.workers {
            let owner = tidal::engine::state::Owner {
                index: *index,
                peers,
            };
            let owned: Vec<&(u64, u64)> = out.iter().filter(|(k, _)| owner.owns(k)).collect();
            let expected = tidal::engine::state::measure_entries(|e| {
                for (k, sum) in &owned {
                    e.entry(k, &(sum, None::<Time>))?;
                }
                Ok(())
            });
            let sums = w.states.iter().find(|s| s.name == "sums");
            let sums = sums.unwrap_or_else(|| panic!("{shape:?}: no state 'sums' in {w:?}"));
            assert_eq!(
                sums.keys,
                owned.len() as u64,
                "{shape:?}: worker {index}'s keys"
            );
            assert_eq!(
                sums.bytes, expected,
                "{shape:?}: worker {index}'s state bytes"
            );
        }
        let text = tidal::engine::metrics::prometheus::render(&m, 0);
        assert!(
            text.contains("tidal_operator_input_queue_records{operator=\"sums\"} 0"),
            "{text}"
        );
        let worker_0_bytes = m.workers[&0].states.iter().find(|s| s.name == "sums");
        let line = format!(
            "tidal_state_bytes{{state=\"sums\",worker=\"0\"}} {}",
            worker_0_bytes.and_then(|s| s.bytes).unwrap()
        );
        assert!(text.contains(&line), "{line} in {text}");
        let graph = m.graph.as_ref().unwrap();
        let name = |id: usize| graph.nodes[id].name.as_str();
        let edges: Vec<(&str, &str)> = graph
            .edges
            .iter()
            .map(|(a, b)| (name(*a), name(*b)))
            .collect();
        for pair in [
            ("numbers", "thirds"),
            ("thirds", "pairs"),
            ("pairs", "sums"),
            ("sums", "final"),
        ] {
            assert!(edges.contains(&pair), "{shape:?}: {pair:?} in {edges:?}");
        }
    }
}

/// `--explain` prints every operator of the example and the streams between them, as text and
/// as DOT, and exits without running the job (nothing written).
#[test]
fn explain_prints_every_operator_without_running_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out_arg = out.to_str().unwrap();
    let text = run_example("wordcount", &["--output", out_arg, "--explain"]);
    let text = text.join("\n");
    for operator in [
        "embedded text (source",
        "split words (flat_map",
        "count per word (count",
        "(final_values",
        "(map",
        "(write_txt",
    ] {
        assert!(text.contains(operator), "no {operator} in:\n{text}");
    }
    for stream in [
        "embedded text -> split words",
        "split words -> count per word",
    ] {
        assert!(text.contains(stream), "no {stream} in:\n{text}");
    }
    // The sink may make its directory when it is built; nothing is written into it.
    let written = std::fs::read_dir(&out).map_or(0, |d| d.count());
    assert_eq!(written, 0, "--explain ran the job");
    let dot = run_example("bid_windows", &["--explain", "dot", "-w", "2"]).join("\n");
    assert!(dot.contains("digraph job {"), "{dot}");
    let nodes = dot.lines().filter(|l| l.contains("[label=")).count();
    let edges = dot.lines().filter(|l| l.contains(" -> ")).count();
    assert!(
        nodes >= 4 && edges == nodes - 1,
        "a chain of operators:\n{dot}"
    );
}

/// One scrape of `/metrics` at `addr`: the body, or `None` while nothing listens.
fn scrape(addr: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    Some(body.to_string())
}

/// Parses Prometheus's text format strictly enough for a scraper: every sample line is
/// `name{labels} value` or `name value` with a float value, and its family has a `# TYPE` line
/// before it. Returns each sample's value by its whole name and labels.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut typed = std::collections::HashSet::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        let labels = &series[name.len()..];
        assert!(
            labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
            "{line}"
        );
        assert!(typed.contains(name), "sample before its # TYPE: {line}");
        samples.insert(series.to_string(), value);
    }
    samples
}

/// A word count under `tidal run --processes 2 --metrics-addr`: process 0 serves `/metrics` in
/// Prometheus's text format with both processes' workers, and the source's records-out counter
/// of each grows between two scrapes.
#[test]
fn metrics_are_served_by_process_0_for_the_whole_job() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("words.txt");
    common::write_words(&input, 200_000, 7);
    let addr = free_addresses(1).remove(0);
    let mut job = launch_once(2)
        .arg(example("wordcount"))
        .args(["--input", input.to_str().unwrap()])
        .args(["--output", dir.path().join("out").to_str().unwrap()])
        .args(["--rate", "20000", "--metrics-addr", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let source_out = |samples: &BTreeMap<String, f64>, worker: usize| -> f64 {
        samples
            .iter()
            .find(|(k, _)| {
                k.starts_with("tidal_operator_records_out_total{")
                    && k.contains("kind=\"source\"")
                    && k.contains(&format!("worker=\"{worker}\""))
            })
            .map(|(_, v)| *v)
            .unwrap_or(0.0)
    };
    // Until both workers have reported records read.
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        assert!(
            Instant::now() < deadline,
            "no metrics of both processes within 60 s"
        );
        if let Some(body) = scrape(&addr) {
            let samples = parse_prometheus(&body);
            if source_out(&samples, 0) > 0.0 && source_out(&samples, 1) > 0.0 {
                break samples;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(first["tidal_workers"], 2.0);
    // The input watermark of the operator after the source (its upstream's least, an ingestion
    // time once every instance has started).
    let input_wm = |samples: &BTreeMap<String, f64>| {
        samples
            .iter()
            .find(|(k, _)| {
                k.starts_with("tidal_operator_input_watermark_ms{operator=\"split words\"}")
            })
            .map(|(_, v)| *v)
    };
    // Each worker's counter grows.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "the counters did not grow within 60 s"
        );
        let samples = parse_prometheus(&scrape(&addr).expect("process 0 still serves"));
        if (0..2).all(|w| source_out(&samples, w) > source_out(&first, w))
            && input_wm(&samples).is_some_and(|wm| wm > 1e12)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // SIGTERM: the launcher stops both processes.
    common::terminate(&mut job);
}

/// Every example's `--help` starts with what the example does (not the usage line, not the
/// documentation of the flags every job shares) and lists the shared flags of this issue.
#[test]
fn every_example_says_what_it_does_in_its_help() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let out = std::process::Command::new(example(&name))
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name} --help");
        let help = String::from_utf8(out.stdout).unwrap();
        let first = help.lines().next().unwrap_or_default();
        assert!(
            !first.starts_with("Usage:") && !first.contains("flags every Tidal job"),
            "{name} --help starts with {first:?}"
        );
        for flag in ["--metrics-addr", "--explain", "--checkpoint-dir"] {
            assert!(help.contains(flag), "{name} --help lacks {flag}");
        }
        seen += 1;
    }
    assert!(seen >= 10, "only {seen} examples found");
}

/// The job's log: lines of each checkpoint by default; none of them with `RUST_LOG=warn` (they
/// are `info`); with `TIDAL_LOG_FORMAT=json`, every line a JSON object with a timestamp, the
/// level and the message.
#[test]
fn the_log_follows_rust_log_and_can_be_json() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("words.txt");
    common::write_words(&input, 20_000, 8);
    let run = |k: usize, env: &[(&str, &str)]| -> String {
        let mut command = std::process::Command::new(example("wordcount"));
        command
            .args(["--input", input.to_str().unwrap()])
            .args([
                "--output",
                dir.path().join(format!("out-{k}")).to_str().unwrap(),
            ])
            .args(["--rate", "40000", "--checkpoint-interval", "100ms"])
            .args([
                "--checkpoint-dir",
                dir.path().join(format!("chk-{k}")).to_str().unwrap(),
            ])
            .env_remove("RUST_LOG")
            .env_remove("TIDAL_LOG_FORMAT");
        for (key, value) in env {
            command.env(key, value);
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "{env:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    let plain = run(0, &[]);
    assert!(
        plain
            .lines()
            .any(|l| l.starts_with("tidal: checkpoint ") && l.contains(" complete ")),
        "{plain}"
    );
    let quiet = run(1, &[("RUST_LOG", "warn")]);
    assert!(
        !quiet.contains("complete"),
        "RUST_LOG=warn still shows info lines: {quiet}"
    );
    let json = run(2, &[("TIDAL_LOG_FORMAT", "json")]);
    let mut checkpoints = 0;
    for line in json.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        let message = v["fields"]["message"].as_str().unwrap();
        if message.starts_with("tidal: checkpoint ") {
            assert_eq!(v["level"], "INFO");
            checkpoints += 1;
        }
    }
    assert!(checkpoints > 0, "{json}");
}
