//! Asynchronous I/O as a user runs it: the `async_enrich` example asks an HTTP service (started
//! by the test on loopback) about each bid's auction. Order in ordered mode, the limit of calls
//! under way, retries and timeouts, every shape, and `kill -9` with exactly-once output.

mod common;
#[path = "common/http.rs"]
mod http;

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{Kills, example, example_on_every_shape, fixture_dir, run_example, run_with_kills};
use tidal::prelude::*;

/// Writes `n` bids `auction,price,time` (time rising) and returns the enriched lines expected.
fn write_bids(path: &Path, n: u64) -> Vec<String> {
    let mut text = String::new();
    let mut expected = Vec::new();
    for i in 0..n {
        let (auction, price, time) = ((i * 37) % 500, 1 + (i * 13) % 997, 1_000 + i as i64);
        text.push_str(&format!("{auction},{price},{time}\n"));
        expected.push(format!("{auction},{price},{time},auction-{auction}"));
    }
    std::fs::write(path, text).unwrap();
    expected
}

#[test]
fn ordered_results_keep_the_input_order_with_calls_limited_per_worker() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bids.csv");
    let expected = write_bids(&input, 3_000);
    let service = http::start(http::Behaviour::default());
    let args = [
        "--service",
        &service.url,
        "--input",
        input.to_str().unwrap(),
        "--capacity",
        "16",
    ];
    // One worker, ordered: the printed lines are the bids' order (the calls finish out of order).
    let out = run_example_unsorted("async_enrich", &[&args[..], &["-w", "1"]].concat());
    assert_eq!(out.len(), expected.len());
    assert!(out == expected, "ordered mode changed the order");
    let most = service.most_at_once.load(Ordering::SeqCst);
    assert!(
        (2..=16).contains(&most),
        "one worker with capacity 16 had {most} calls under way at once"
    );
    // Every shape, ordered and unordered: every bid enriched once.
    example_on_every_shape("async_enrich", &args, &expected);
    let unordered = [&args[..], &["--unordered"]].concat();
    example_on_every_shape("async_enrich", &unordered, &expected);
    // Two processes of two workers each at most: 16 calls each.
    assert!(service.most_at_once.load(Ordering::SeqCst) <= 32);
}

/// Runs an example and returns its stdout lines as printed.
fn run_example_unsorted(name: &str, args: &[&str]) -> Vec<String> {
    let output = Command::new(example(name)).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn failed_calls_are_retried_and_a_call_out_of_attempts_fails_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bids.csv");
    let expected = write_bids(&input, 300);
    let input = input.to_str().unwrap();
    // Every id's first request fails: one retry is enough.
    let flaky = http::start(http::Behaviour {
        fail_first: true,
        ..Default::default()
    });
    let args = ["--service", &flaky.url, "--input", input, "--retries", "1"];
    assert_eq!(run_example("async_enrich", &args), {
        let mut e = expected.clone();
        e.sort();
        e
    });
    // Without retries the job fails, naming the answer.
    let flaky = http::start(http::Behaviour {
        fail_first: true,
        ..Default::default()
    });
    let output = Command::new(example("async_enrich"))
        .args(["--service", &flaky.url, "--input", input, "--retries", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("503 Service Unavailable") && stderr.contains("async_map"),
        "{stderr}"
    );
    // A call that takes longer than the timeout, every attempt: the job fails saying so.
    let slow = http::start(http::Behaviour {
        slow: Some((HashSet::from([37]), Duration::from_millis(600))),
        ..Default::default()
    });
    let output = Command::new(example("async_enrich"))
        .args(["--service", &slow.url, "--input", input])
        .args(["--timeout", "100ms", "--retries", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no answer within 100ms (attempt 2 of 2)"),
        "{stderr}"
    );
    // A service that is not there, and a service that is not a URL.
    let output = Command::new(example("async_enrich"))
        .args(["--service", "localhost:1", "--input", input])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("expected http://HOST:PORT"), "{stderr}");
}

#[test]
fn async_enrichment_survives_kill_9_with_every_bid_enriched_once() {
    let dir = fixture_dir("async_enrichment_survives_kill_9");
    let input = dir.join("bids.csv");
    let mut expected = write_bids(&input, 30_000);
    expected.sort();
    let service = http::start(http::Behaviour::default());
    let out = dir.join("out");
    fn nothing() {}
    // 30 000 bids at 6 000 per second: about 5 s without failures.
    let args = [
        "--service",
        &service.url,
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--rate",
        "6000",
    ];
    run_with_kills(
        "async_enrich",
        &args,
        Kills {
            checkpoints: dir.join("checkpoints").to_str().unwrap(),
            kills: 2,
            delays: 500..1500,
            seed: 23,
            envs: &[],
            before_first_kill: &nothing,
        },
    );
    let mut got = Vec::new();
    for entry in std::fs::read_dir(&out).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("part-") {
            got.extend(
                std::fs::read_to_string(entry.path())
                    .unwrap()
                    .lines()
                    .map(String::from),
            );
        }
    }
    got.sort();
    if got != expected {
        let mut seen = HashSet::new();
        let twice: Vec<_> = got.iter().filter(|l| !seen.insert(*l)).take(3).collect();
        let missing = expected.iter().filter(|l| !seen.contains(*l)).count();
        panic!(
            "{} lines against {}: twice {twice:?}, {missing} missing",
            got.len(),
            expected.len()
        );
    }
}

/// Records the source has handed on, and calls started (per process).
static READ: AtomicU64 = AtomicU64::new(0);
static STARTED: AtomicU64 = AtomicU64::new(0);

/// Backpressure: a source that could read 60 000 records at once feeds calls that take a
/// millisecond, 64 at a time per worker. The records read but not yet started, seen at each
/// call, stay within what the sources read before the operator holds them back — a capacity's
/// worth waiting, plus the few activations of 2 048 records a source may run before the operator
/// runs and takes its hold (8 192 per worker allowed here; seen: 3 083 on one worker, 5 146 on
/// two threads, 3 103 per process on two processes) — where without backpressure nearly the whole
/// input waits (59 615 seen on one worker). Every record is answered once, on every shape.
#[test]
fn a_slow_service_holds_the_sources_back() {
    const N: u64 = 60_000;
    const CAPACITY: usize = 64;
    common::on_every_shape(
        "a_slow_service_holds_the_sources_back",
        |env| {
            env.generate(Generator::new(|i| i).count(N))
                .map(|x| {
                    READ.fetch_add(1, Ordering::SeqCst);
                    x
                })
                .async_map(
                    |x: u64| async move {
                        let started = STARTED.fetch_add(1, Ordering::SeqCst) + 1;
                        let waiting = READ.load(Ordering::SeqCst).saturating_sub(started);
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        Ok::<_, String>((x, waiting))
                    },
                    AsyncOptions::new().capacity(CAPACITY),
                )
                .collect()
        },
        |shape, out: Vec<(u64, u64)>| {
            let mut got: Vec<u64> = out.iter().map(|(x, _)| *x).collect();
            got.sort();
            assert!(
                got == (0..N).collect::<Vec<_>>(),
                "{shape:?}: not every record once"
            );
            let most = out.iter().map(|(_, w)| *w).max().unwrap();
            // Two workers in a process share the counters.
            let bound = 2 * (CAPACITY as u64 + 8 * 1024);
            assert!(
                most <= bound,
                "{shape:?}: up to {most} records read and waiting (bound {bound})"
            );
        },
    );
}
