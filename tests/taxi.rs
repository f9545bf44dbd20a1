//! The taxi examples as a user runs them, on 1 worker, 2 workers and 2 processes, against
//! from-scratch computations over the same CSV files (the embedded data, and variants of it with
//! rides outside New York City, long rides and missing END events).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use common::{example_on_every_shape as on_every_shape, run_example as run};

const RIDES: &str = include_str!("../examples/data/rides.csv");
const FARES: &str = include_str!("../examples/data/fares.csv");

fn columns(line: &str) -> Vec<&str> {
    line.split(',').collect()
}

fn f32_of(s: &str) -> f32 {
    s.parse().unwrap()
}

fn nyc(lon: f32, lat: f32) -> bool {
    let (lon, lat) = (lon as f64, lat as f64);
    (-74.05..=-73.7).contains(&lon) && (40.5..=41.0).contains(&lat)
}

fn data_lines(text: &str) -> Vec<String> {
    text.lines().skip(1).map(String::from).collect()
}

/// A variant of the embedded rides: some rides moved outside NYC (exactly at and beyond the
/// bounds), some lengthened past two hours, some END events dropped.
fn variant_rides(dir: &Path) -> (PathBuf, Vec<String>) {
    let mut lines = Vec::new();
    for line in data_lines(RIDES) {
        let mut c: Vec<String> = columns(&line).iter().map(|s| s.to_string()).collect();
        let id: i64 = c[0].parse().unwrap();
        let is_end = c[1] == "false";
        match id % 11 {
            0 => c[3] = "-73.7".into(),  // -73.7f32 is east of -73.7: outside
            1 => c[4] = "41.0".into(),   // exactly on the northern bound: inside
            2 => c[5] = "-74.05".into(), // -74.05f32 is west of -74.05: outside
            3 if is_end => {
                let t: i64 = c[2].parse().unwrap();
                c[2] = (t + 3 * 3600 * 1000).to_string(); // a ride of more than two hours
            }
            4 if is_end => continue, // no END: only the timer can alert
            _ => {}
        }
        lines.push(c.join(","));
    }
    let path = dir.join("rides.csv");
    let header = RIDES.lines().next().unwrap();
    std::fs::write(&path, format!("{header}\n{}\n", lines.join("\n"))).unwrap();
    (path, lines)
}

#[test]
fn ride_cleansing_keeps_exactly_the_rides_in_nyc() {
    let dir = tempfile::tempdir().unwrap();
    let (path, lines) = variant_rides(dir.path());
    let keep = |l: &String| {
        let c = columns(l);
        nyc(f32_of(c[3]), f32_of(c[4])) && nyc(f32_of(c[5]), f32_of(c[6]))
    };
    let expected: Vec<String> = lines.iter().filter(|l| keep(l)).cloned().collect();
    assert!(expected.len() < lines.len() && !expected.is_empty());
    on_every_shape(
        "ride_cleansing",
        &["--rides", path.to_str().unwrap()],
        &expected,
    );
    // The embedded data: every ride is in NYC, and lines come out exactly as they were read.
    assert_eq!(run("ride_cleansing", &[]), {
        let mut l = data_lines(RIDES);
        l.sort();
        l
    });
}

#[test]
fn ride_count_counts_every_event_per_driver() {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for line in data_lines(RIDES) {
        *counts.entry(columns(&line)[9].to_string()).or_insert(0) += 1;
    }
    let expected: Vec<String> = counts.iter().map(|(d, n)| format!("{d},{n}")).collect();
    on_every_shape("ride_count", &[], &expected);
}

#[test]
fn long_ride_alerts_name_rides_over_two_hours() {
    let dir = tempfile::tempdir().unwrap();
    let (path, lines) = variant_rides(dir.path());
    let mut start = HashMap::new();
    let mut end = HashMap::new();
    for l in &lines {
        let c = columns(l);
        let (id, t): (i64, i64) = (c[0].parse().unwrap(), c[2].parse().unwrap());
        if c[1] == "true" {
            start.insert(id, t)
        } else {
            end.insert(id, t)
        };
    }
    let expected: Vec<String> = start
        .iter()
        .filter(|(id, s)| end.get(id).is_none_or(|e| e - *s > 2 * 3600 * 1000))
        .map(|(id, _)| id.to_string())
        .collect();
    assert!(
        expected.len() > 100,
        "the variant has long rides and missing ENDs"
    );
    on_every_shape(
        "long_ride_alerts",
        &["--rides", path.to_str().unwrap()],
        &expected,
    );
}

#[test]
fn rides_and_fares_pairs_every_start_with_its_fare() {
    let fares: HashMap<String, String> = data_lines(FARES)
        .into_iter()
        .map(|l| (columns(&l)[0].to_string(), l.clone()))
        .collect();
    let expected: Vec<String> = data_lines(RIDES)
        .into_iter()
        .filter(|l| columns(l)[1] == "true")
        .map(|l| format!("{l},{}", fares[columns(&l)[0]]))
        .collect();
    on_every_shape("rides_and_fares", &[], &expected);
}

#[test]
fn hourly_tips_finds_the_best_driver_of_every_hour() {
    // f32 sums of tips per driver per hour, in the order of the file.
    let mut sums: BTreeMap<(i64, String), f32> = BTreeMap::new();
    for line in data_lines(FARES) {
        let c = columns(&line);
        let start: i64 = c[3].parse().unwrap();
        let end = start - start.rem_euclid(3_600_000) + 3_600_000;
        *sums.entry((end, c[2].to_string())).or_insert(0.0) += f32_of(c[5]);
    }
    let mut best: BTreeMap<i64, (f32, Vec<String>)> = BTreeMap::new();
    for ((end, driver), sum) in &sums {
        let e = best.entry(*end).or_insert((f32::MIN, Vec::new()));
        if *sum > e.0 {
            *e = (*sum, vec![driver.clone()]);
        } else if *sum == e.0 {
            e.1.push(driver.clone());
        }
    }
    for args in [vec!["-w", "1"], vec!["-w", "2"]] {
        let out = run("hourly_tips", &args);
        assert_eq!(out.len(), best.len(), "one line per hour");
        for line in out {
            let c = columns(&line);
            let end: i64 = c[0].parse().unwrap();
            let (sum, drivers) = &best[&end];
            assert!(
                drivers.iter().any(|d| d == c[1]),
                "{line}: not a best driver of the hour {drivers:?}"
            );
            assert_eq!(f32_of(c[2]), *sum, "{line}");
        }
    }
}

#[path = "../examples/taxi/mod.rs"]
#[allow(unused_imports)]
mod taxi;

/// The Rust generator reproduces the training's data files byte for byte (1000 rides).
#[test]
fn the_generator_reproduces_the_data_files() {
    let rides: Vec<String> = taxi::generator::rides(1000).map(|r| r.to_csv()).collect();
    assert_eq!(rides, data_lines(RIDES), "rides.csv, in order");
    let fares: Vec<String> = taxi::generator::fares(1000).map(|f| f.to_csv()).collect();
    assert_eq!(fares, data_lines(FARES), "fares.csv, in order");
    // fdlibm's log at a few points where a naive log could differ in the last bit.
    for x in [
        0.5f64,
        0.9999999,
        1e-300,
        std::f64::consts::FRAC_1_SQRT_2,
        3.0e-5,
    ] {
        let l = taxi::generator::strict_log(x);
        assert!(
            (l - x.ln()).abs() <= 2.0 * f64::EPSILON * l.abs().max(1.0),
            "log({x})"
        );
    }
}

/// Fraud detection on a file, against the model: an alert for every large transaction (over 500)
/// that directly follows a small one (under 1) of the same account (the run takes far less than
/// the minute after which the flag would be forgotten). The generated input gives the same alerts
/// on every shape.
#[test]
fn fraud_detection_alerts_on_small_then_large() {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SmallRng::seed_from_u64(5);
    let mut text = String::from("accountId,timestamp,amount\n");
    let mut last_small: HashMap<u32, bool> = HashMap::new();
    let mut expected = Vec::new();
    for i in 0..5000i64 {
        let account: u32 = rng.random_range(1..8);
        let amount: f64 = match rng.random_range(0..10) {
            0 => 0.5,
            1 => 750.25,
            _ => rng.random_range(2..400) as f64,
        };
        let ts = 1_000_000 + i * 10;
        text.push_str(&format!("{account},{ts},{amount}\n"));
        if last_small.get(&account) == Some(&true) && amount > 500.0 {
            expected.push(format!("{account},{ts},{amount:.2}"));
        }
        last_small.insert(account, amount < 1.0);
    }
    let path = dir.path().join("tx.csv");
    std::fs::write(&path, text).unwrap();

    expected.sort();
    assert!(expected.len() > 10);
    assert_eq!(
        run(
            "fraud_detection",
            &["--input", path.to_str().unwrap(), "-w", "1"]
        ),
        expected
    );
    let one = run("fraud_detection", &["-w", "1"]);
    assert!(!one.is_empty());
    on_every_shape("fraud_detection", &[], &one);
}
