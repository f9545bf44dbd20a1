//! Nexmark queries q0–q2 (the `nexmark` example) on 1 worker, 2 worker threads and 2 processes:
//! the part files hold exactly the results computed here from the same events
//! (`NexmarkConfig::event`), each once.

mod common;

use std::process::Command;

use common::{example, fixture_dir, launch_once};
use tidal::connectors::nexmark::{Event, NexmarkConfig};

/// The results of `query` over the first `events` events, as the example writes them, sorted.
fn model(query: &str, events: u64) -> Vec<String> {
    let config = NexmarkConfig::default();
    let mut lines: Vec<String> = (0..events)
        .filter_map(|n| match config.event(n) {
            Event::Bid(b) => Some(b),
            _ => None,
        })
        .filter_map(|b| match query {
            "q0" => Some(format!(
                "{},{},{},{}",
                b.auction, b.bidder, b.price, b.date_time
            )),
            "q1" => Some(format!(
                "{},{},{},{}",
                b.auction,
                b.bidder,
                b.price * 908 / 1000,
                b.date_time
            )),
            _ => (b.auction % 123 == 0).then(|| format!("{},{}", b.auction, b.price)),
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn nexmark_q0_to_q2_equal_the_model_on_every_shape() {
    let dir = fixture_dir("nexmark_q0_to_q2");
    let events = 60_000;
    for query in ["q0", "q1", "q2"] {
        let expected = model(query, events);
        assert!(!expected.is_empty());
        // 1 worker, 2 worker threads, 2 processes (under the launcher).
        for workers in ["1", "2", "2 processes"] {
            let out = dir.join(format!("{query}-{workers}"));
            let mut command = if workers == "2 processes" {
                let mut c = launch_once(2);
                c.arg(example("nexmark"));
                c
            } else {
                let mut c = Command::new(example("nexmark"));
                c.args(["-w", workers]);
                c
            };
            let run = command
                .args(["--query", query, "--events", &events.to_string()])
                .arg("--output")
                .arg(&out)
                .output()
                .unwrap();
            assert!(
                run.status.success(),
                "{}",
                String::from_utf8_lossy(&run.stderr)
            );
            let mut got: Vec<String> = std::fs::read_dir(&out)
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("part-"))
                .flat_map(|e| {
                    std::fs::read_to_string(e.path())
                        .unwrap()
                        .lines()
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect();
            got.sort();
            assert!(
                got == expected,
                "{query} on {workers} worker(s): {} lines, expected {}",
                got.len(),
                expected.len()
            );
        }
    }
    // A query the example does not run: a clear error.
    let run = Command::new(example("nexmark"))
        .args(["--query", "q9"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && stderr.contains("q9"), "{stderr}");
}
