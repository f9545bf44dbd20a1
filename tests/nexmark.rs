//! Nexmark queries (the `nexmark` example) on 1 worker, 2 worker threads and 2 processes: the
//! part files hold exactly the results computed here, from scratch, from the same events
//! (`NexmarkConfig::event`), each once — or, for the running aggregates of q4 and q6, each key's
//! last line is its final value.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Command;

use common::{example, fixture_dir, launch_once};
use tidal::connectors::nexmark::{Auction, Bid, Event, NexmarkConfig, Person};

/// Events per test run, and their event-time rate: 40 s of event time, so that the 10 s windows,
/// sessions and auctions open and close many times.
const EVENTS: u64 = 40_000;
const EVENT_RATE: u64 = 1_000;

const SHAPES: [&str; 3] = ["1", "2", "2 processes"];

struct Events {
    people: Vec<Person>,
    auctions: Vec<Auction>,
    bids: Vec<Bid>,
}

fn events() -> Events {
    let config = NexmarkConfig {
        events_per_second: EVENT_RATE,
        ..NexmarkConfig::default()
    };
    let mut e = Events {
        people: Vec::new(),
        auctions: Vec::new(),
        bids: Vec::new(),
    };
    for n in 0..EVENTS {
        match config.event(n) {
            Event::Person(p) => e.people.push(p),
            Event::Auction(a) => e.auctions.push(a),
            Event::Bid(b) => e.bids.push(b),
        }
    }
    e
}

/// Runs the example's `query` on one shape and returns its output lines, sorted.
fn run_query(query: &str, workers: &str) -> Vec<String> {
    run_query_with(query, workers, &[])
}

/// Like [`run_query`], with more flags for the example.
fn run_query_with(query: &str, workers: &str, flags: &[&str]) -> Vec<String> {
    let out =
        fixture_dir(&format!("nexmark_{query}{}", flags.join(""))).join(workers.replace(' ', "-"));
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
        .args(["--query", query, "--events", &EVENTS.to_string()])
        .args(["--event-rate", &EVENT_RATE.to_string()])
        .args(flags)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{query} on {workers}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut lines: Vec<String> = std::fs::read_dir(&out)
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
    lines.sort();
    lines
}

/// Asserts that `query` gives exactly `expected` (sorted here) on every shape.
fn check_exact(query: &str, mut expected: Vec<String>) {
    expected.sort();
    assert!(expected.len() > 1, "{query}: the model has results");
    for workers in SHAPES {
        let got = run_query(query, workers);
        if got != expected {
            let missing: Vec<_> = expected
                .iter()
                .filter(|l| !got.contains(l))
                .take(5)
                .collect();
            let extra: Vec<_> = got
                .iter()
                .filter(|l| !expected.contains(l))
                .take(5)
                .collect();
            panic!(
                "{query} on {workers} worker(s): {} lines, expected {}; missing {missing:?}, unexpected {extra:?}",
                got.len(),
                expected.len()
            );
        }
    }
}

/// For running results `key,count,value`: each key's line with the largest count, which must be
/// unique.
fn final_lines(query: &str, workers: &str, lines: &[String]) -> BTreeMap<String, String> {
    let mut last: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for line in lines {
        let mut fields = line.splitn(3, ',');
        let (key, count) = (fields.next().unwrap(), fields.next().unwrap());
        let count: u64 = count.parse().unwrap();
        assert!(
            seen.insert((key.to_string(), count)),
            "{query} on {workers}: {key} has two lines with count {count}"
        );
        let entry = last.entry(key.to_string()).or_insert((0, String::new()));
        if count > entry.0 {
            *entry = (count, line.clone());
        }
    }
    last.into_iter().map(|(k, (_, l))| (k, l)).collect()
}

/// Winning price of every auction that has one: the highest bid at or above the reserve in
/// `[date_time, expires)`.
fn winners(e: &Events) -> Vec<(&Auction, u64)> {
    let mut bids: HashMap<u64, Vec<&Bid>> = HashMap::new();
    for b in &e.bids {
        bids.entry(b.auction).or_default().push(b);
    }
    e.auctions
        .iter()
        .filter_map(|a| {
            let best = bids
                .get(&a.id)?
                .iter()
                .filter(|b| {
                    b.date_time >= a.date_time && b.date_time < a.expires && b.price >= a.reserve
                })
                .map(|b| b.price)
                .max()?;
            Some((a, best))
        })
        .collect()
}

#[test]
fn q0_to_q2_stateless() {
    let e = events();
    check_exact(
        "q0",
        e.bids
            .iter()
            .map(|b| format!("{},{},{},{}", b.auction, b.bidder, b.price, b.date_time))
            .collect(),
    );
    check_exact(
        "q1",
        e.bids
            .iter()
            .map(|b| {
                let euros = b.price * 908 / 1000;
                format!("{},{},{euros},{}", b.auction, b.bidder, b.date_time)
            })
            .collect(),
    );
    check_exact(
        "q2",
        e.bids
            .iter()
            .filter(|b| b.auction % 123 == 0)
            .map(|b| format!("{},{}", b.auction, b.price))
            .collect(),
    );
}

#[test]
fn q3_local_item_suggestion_joins_sellers_and_auctions() {
    let e = events();
    let sellers: HashMap<u64, &Person> = e
        .people
        .iter()
        .filter(|p| ["OR", "ID", "CA"].contains(&p.state.as_str()))
        .map(|p| (p.id, p))
        .collect();
    check_exact(
        "q3",
        e.auctions
            .iter()
            .filter(|a| a.category == 10)
            .filter_map(|a| {
                let p = sellers.get(&a.seller)?;
                Some(format!("{},{},{},{}", p.name, p.city, p.state, a.id))
            })
            .collect(),
    );
}

#[test]
fn q4_and_q6_running_averages_of_winning_bids_end_at_the_model() {
    let e = events();
    let winners = winners(&e);
    assert!(
        winners.len() > 100,
        "{} auctions with a winner",
        winners.len()
    );
    // q4: per category, over all its closed auctions.
    let mut per_category: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for (a, price) in &winners {
        let c = per_category.entry(a.category).or_default();
        c.0 += 1;
        c.1 += price;
    }
    // q6: per seller, over the last 10 by (expires, auction).
    let mut per_seller: BTreeMap<u64, Vec<(i64, u64, u64)>> = BTreeMap::new();
    for (a, price) in &winners {
        per_seller
            .entry(a.seller)
            .or_default()
            .push((a.expires, a.id, *price));
    }
    let q4: BTreeMap<String, String> = per_category
        .iter()
        .map(|(c, (n, sum))| (c.to_string(), format!("{c},{n},{}", sum / n)))
        .collect();
    let q6: BTreeMap<String, String> = per_seller
        .iter_mut()
        .map(|(s, closed)| {
            closed.sort();
            let last = &closed[closed.len().saturating_sub(10)..];
            let avg = last.iter().map(|l| l.2).sum::<u64>() / last.len() as u64;
            (s.to_string(), format!("{s},{},{avg}", closed.len()))
        })
        .collect();
    assert!(q6.values().any(|l| l.split(',').nth(1) > Some("10")));
    for (query, expected) in [("q4", q4), ("q6", q6)] {
        for workers in SHAPES {
            let lines = run_query(query, workers);
            let got = final_lines(query, workers, &lines);
            assert!(
                got == expected,
                "{query} on {workers}: final lines {:?}…, expected {:?}…",
                got.values().take(5).collect::<Vec<_>>(),
                expected.values().take(5).collect::<Vec<_>>()
            );
            // The updating form on collections: its changelog folds to the same final lines.
            let changes = run_query_with(query, workers, &["--updating"]);
            let mut folded: BTreeMap<String, i64> = BTreeMap::new();
            for line in &changes {
                let (op, row) = line.split_once(',').unwrap();
                let diff = if op.starts_with('+') { 1 } else { -1 };
                *folded.entry(row.to_string()).or_insert(0) += diff;
            }
            folded.retain(|_, n| *n != 0);
            let expected_rows: BTreeMap<String, i64> =
                expected.values().map(|l| (l.clone(), 1)).collect();
            assert!(
                folded == expected_rows,
                "{query} --updating on {workers}: the changelog folds to {:?}…, expected {:?}…",
                folded.iter().take(5).collect::<Vec<_>>(),
                expected_rows.iter().take(5).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn q5_q7_q8_windows_equal_the_model() {
    let e = events();
    // q5: 10 s windows every 2 s; a bid at t is in the windows ending in (t, t + 10 s].
    let mut counts: BTreeMap<i64, HashMap<u64, u64>> = BTreeMap::new();
    for b in &e.bids {
        let first_end = b.date_time - b.date_time.rem_euclid(2_000) + 2_000;
        for end in (first_end..=b.date_time + 10_000).step_by(2_000) {
            *counts.entry(end).or_default().entry(b.auction).or_default() += 1;
        }
    }
    let mut q5 = Vec::new();
    for (end, per_auction) in &counts {
        let most = per_auction.values().max().unwrap();
        for (auction, n) in per_auction {
            if n == most {
                q5.push(format!("{end},{auction},{n}"));
            }
        }
    }
    check_exact("q5", q5);
    // q7: per 10 s window, every bid with the highest price.
    let mut windows: BTreeMap<i64, Vec<&Bid>> = BTreeMap::new();
    for b in &e.bids {
        let end = b.date_time - b.date_time.rem_euclid(10_000) + 10_000;
        windows.entry(end).or_default().push(b);
    }
    let q7 = windows
        .iter()
        .flat_map(|(end, bids)| {
            let top = bids.iter().map(|b| b.price).max().unwrap();
            bids.iter().filter(move |b| b.price == top).map(move |b| {
                format!(
                    "{end},{},{},{},{}",
                    b.auction, b.bidder, b.price, b.date_time
                )
            })
        })
        .collect();
    check_exact("q7", q7);
    // q8: people with an auction of theirs in the 10 s window they registered in.
    let start = |t: i64| t - t.rem_euclid(10_000);
    let opened: BTreeSet<(u64, i64)> = e
        .auctions
        .iter()
        .map(|a| (a.seller, start(a.date_time)))
        .collect();
    let q8 = e
        .people
        .iter()
        .filter(|p| opened.contains(&(p.id, start(p.date_time))))
        .map(|p| format!("{},{},{}", p.id, p.name, start(p.date_time)))
        .collect();
    check_exact("q8", q8);
}

#[test]
fn q11_sessions_and_q12_processing_time_windows() {
    let e = events();
    let mut per_bidder: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    for b in &e.bids {
        per_bidder.entry(b.bidder).or_default().push(b.date_time);
    }
    // q11: a session ends when a bidder's next bid is more than 10 s after the last one.
    let mut q11 = Vec::new();
    for (bidder, times) in &mut per_bidder {
        times.sort();
        let (mut start, mut last, mut n) = (times[0], times[0], 0);
        for &t in times.iter() {
            if t > last + 10_000 {
                q11.push(format!("{bidder},{start},{},{n}", last + 10_000));
                (start, n) = (t, 0);
            }
            last = t;
            n += 1;
        }
        q11.push(format!("{bidder},{start},{},{n}", last + 10_000));
    }
    assert!(
        q11.len() > per_bidder.len(),
        "some bidders have several sessions"
    );
    check_exact("q11", q11);
    // q12: the windows depend on the clock; every bid is counted once, in a window ending on a
    // multiple of 10 s.
    for workers in SHAPES {
        let mut counted: BTreeMap<u64, usize> = BTreeMap::new();
        for line in run_query("q12", workers) {
            let f: Vec<u64> = line.split(',').map(|f| f.parse().unwrap()).collect();
            assert_eq!(f[1] % 10_000, 0, "q12 on {workers}: {line}");
            *counted.entry(f[0]).or_default() += f[2] as usize;
        }
        let expected: BTreeMap<u64, usize> =
            per_bidder.iter().map(|(b, t)| (*b, t.len())).collect();
        assert!(
            counted == expected,
            "q12 on {workers}: bids per bidder differ"
        );
    }
}

#[test]
fn an_unknown_query_is_a_clear_error() {
    let run = Command::new(example("nexmark"))
        .args(["--query", "q9"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && stderr.contains("q9") && stderr.contains("q12"),
        "{stderr}"
    );
}
