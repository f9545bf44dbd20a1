//! Recovery as a user sees it: the `tidal` launcher runs the wordcount example on 2 processes with
//! checkpoints; worker processes are killed with `kill -9` at random moments, several times; the
//! launcher restarts the job from its latest checkpoint, and the final output equals a
//! from-scratch count of the input.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    Kills, add_windows, example, fixture_dir, launch_once, launcher, read_word_counts,
    run_with_kills, stop_with_savepoint, write_bids, write_words,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Three kills at moments drawn from `delays` with `seed`; checkpoints on disk in `checkpoints`.
fn three_kills(checkpoints: &Path, delays: std::ops::Range<u64>, seed: u64) -> Kills<'_> {
    fn nothing() {}
    Kills {
        checkpoints: checkpoints.to_str().unwrap(),
        kills: 3,
        delays,
        seed,
        envs: &[],
        before_first_kill: &nothing,
    }
}

#[test]
fn wordcount_survives_kill_9_of_its_processes() {
    let dir = fixture_dir("wordcount_survives_kill_9");
    let input = dir.join("input.txt");
    let expected = write_words(&input, 120_000, 7);
    let out = dir.join("out");
    // 120 000 lines at 20 000 lines/s: about 6 s without failures.
    let args = [
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--rate",
        "20000",
    ];
    run_with_kills(
        "wordcount",
        &args,
        three_kills(&dir.join("checkpoints"), 500..1500, 99),
    );
    assert_eq!(read_word_counts(&out), expected);
}

#[test]
fn a_job_out_of_restarts_exits_non_zero_with_its_last_cause() {
    let dir = fixture_dir("a_job_out_of_restarts");
    let output = Command::new(launcher())
        .args([
            "run",
            "--processes",
            "2",
            "--restart-attempts",
            "1",
            "--restart-delay",
            "10ms",
            "--",
        ])
        .arg(example("wordcount"))
        .args(["--input", dir.join("missing.txt").to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.matches("restarting all processes").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("exited with code 1; not restarting"),
        "{stderr}"
    );
}

/// Stop with a savepoint (SIGUSR2 to process 0) on 2 processes × 2 workers; restore it on 1
/// process × 1 worker and on 3 processes: both outputs equal a from-scratch count.
#[test]
fn stop_with_savepoint_then_restore_on_other_shapes() {
    let dir = fixture_dir("stop_with_savepoint");
    let input = dir.join("input.txt");
    let expected = write_words(&input, 100_000, 11);
    let savepoints = dir.join("savepoints");
    let job_args = |out: &Path| -> Vec<String> {
        vec![
            "--input".into(),
            input.to_str().unwrap().into(),
            "--output".into(),
            out.to_str().unwrap().into(),
            "--savepoint-dir".into(),
            savepoints.to_str().unwrap().into(),
        ]
    };
    // 100 000 lines at 10 000 lines/s: about 10 s if it were not stopped. Once the job has made
    // progress (its first output would only come at the end), stop it.
    let mut first_args = job_args(&dir.join("out-first"));
    first_args.extend(["--rate".to_string(), "10000".to_string()]);
    let savepoint = stop_with_savepoint("wordcount", &first_args, Duration::from_millis(1500));
    // It was taken mid-run: the stopped job's output is not the whole count.
    assert_ne!(read_word_counts(&dir.join("out-first")), expected);

    // 1 process × 1 worker.
    let out_one = dir.join("out-one");
    let one = Command::new(example("wordcount"))
        .args(job_args(&out_one))
        .args(["--restore", savepoint.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    assert_eq!(read_word_counts(&out_one), expected, "restored on 1 worker");

    // 3 processes.
    let out_three = dir.join("out-three");
    let three = launch_once(3)
        .arg(example("wordcount"))
        .args(job_args(&out_three))
        .args(["--restore", savepoint.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        three.status.success(),
        "{}",
        String::from_utf8_lossy(&three.stderr)
    );
    assert_eq!(
        read_word_counts(&out_three),
        expected,
        "restored on 3 processes"
    );
}

/// A windowed job whose results are written as they fire (bid_windows: per auction per 10 s
/// window, count and max price) survives kill -9 of its processes with exactly-once part files:
/// every window's line appears once, with the model's values. (160 000 bids at 20 000/s; the kills
/// come 1.2-2.2 s into each run, after windows were written past the latest checkpoint.)
#[test]
fn windowed_output_is_exactly_once_across_kill_9() {
    let dir = fixture_dir("windowed_output_is_exactly_once");
    let input = dir.join("bids.csv");
    let model = write_bids(&input, 160_000, 5);
    let out = dir.join("out");
    let args = [
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--rate",
        "20000",
    ];
    let log = run_with_kills(
        "bid_windows",
        &args,
        three_kills(&dir.join("checkpoints"), 1200..2200, 3),
    );
    eprintln!(
        "{} output part(s) written after a restored checkpoint's cut were removed",
        log.matches("removing output part").count()
    );
    // Every window once, with the model's values.
    let mut got = BTreeMap::new();
    for entry in std::fs::read_dir(&out).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("part-") {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            add_windows(&text, &mut got, &log);
        }
    }
    assert_eq!(got.len(), model.len(), "windows written");
    assert_eq!(got, model);
}

/// Rides for long_ride_alerts: START every 2 s of event time, END 10 min to 3 h later (none for
/// every seventh ride), events up to 30 s out of order. Returns the rides that must be alerted.
fn write_rides(path: &Path, rides: u64, seed: u64) -> std::collections::BTreeSet<i64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let base = 1_577_880_000_000i64;
    let mut events: Vec<(i64, String)> = Vec::new();
    let mut alerts = std::collections::BTreeSet::new();
    for id in 1..=rides as i64 {
        let start = base + id * 2000;
        let mut duration = rng.random_range(600_000..3 * 3_600_000i64);
        if duration == 2 * 3_600_000 {
            duration += 1;
        }
        let line = |is_start: bool, t: i64| {
            format!(
                "{id},{is_start},{t},-73.9,40.7,-73.8,40.8,1,{},{}",
                2013000000 + id % 500,
                2013000000 + id % 500
            )
        };
        events.push((start + rng.random_range(0..30_000), line(true, start)));
        if id % 7 == 0 {
            alerts.insert(id);
        } else {
            events.push((
                start + duration + rng.random_range(0..30_000),
                line(false, start + duration),
            ));
            if duration > 2 * 3_600_000 {
                alerts.insert(id);
            }
        }
    }
    // In arrival order: event time displaced by up to 30 s.
    events.sort();
    let text: String = std::iter::once(
        "rideId,isStart,eventTime,startLon,startLat,endLon,endLat,passengerCnt,taxiId,driverId"
            .to_string(),
    )
    .chain(events.into_iter().map(|(_, l)| l))
    .map(|l| l + "\n")
    .collect();
    std::fs::write(path, text).unwrap();
    alerts
}

/// A keyed process-function job with event-time timers (long_ride_alerts) survives kill -9 of its
/// processes: every long ride is alerted exactly once.
#[test]
fn long_ride_alerts_are_exactly_once_across_kill_9() {
    let dir = fixture_dir("long_ride_alerts_are_exactly_once");
    let rides = dir.join("rides.csv");
    let expected = write_rides(&rides, 80_000, 21);
    let out = dir.join("out");
    // 160 000 events at 20 000 events/s: about 8 s without failures.
    let args = [
        "--rides",
        rides.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--rate",
        "20000",
    ];
    let log = run_with_kills(
        "long_ride_alerts",
        &args,
        three_kills(&dir.join("checkpoints"), 1200..2200, 8),
    );
    let mut got = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&out).unwrap().flatten() {
        if !entry.file_name().to_string_lossy().starts_with("part-") {
            continue;
        }
        for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
            let id: i64 = line.parse().unwrap();
            assert!(got.insert(id), "ride {id} alerted twice\n{log}");
        }
    }
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);
}

/// Restoring an older checkpoint than the latest, after the job committed output past it: the
/// parts committed after its cut are removed (their windows are written again), so the output
/// is still every window once. bid_windows on 2 worker threads, checkpoints every 200 ms; killed
/// (`kill -9`) once output beyond the first checkpoint was committed; restored from the first
/// checkpoint taken after some output was committed.
#[test]
fn restoring_an_older_checkpoint_removes_output_committed_after_it() {
    let dir = fixture_dir("restoring_an_older_checkpoint");
    let input = dir.join("bids.csv");
    let model = write_bids(&input, 120_000, 21);
    let out = dir.join("out");
    let checkpoints = dir.join("checkpoints");
    let job = |extra: &[&str]| {
        let mut command = Command::new(example("bid_windows"));
        command
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&out)
            .arg("--checkpoint-dir")
            .arg(&checkpoints)
            .args([
                "--checkpoint-interval",
                "200ms",
                "--checkpoints-kept",
                "100",
            ])
            .args(["-w", "2"])
            .args(extra);
        command
    };
    let mut first = job(&["--rate", "20000"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = first.stderr.take().unwrap();
    let visible = || {
        std::fs::read_dir(&out)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("part-"))
                    .count()
            })
            .unwrap_or(0)
    };
    // Kill once parts beyond the first checkpoint's were committed: more than the two (one per
    // worker) its completion may still commit after its log line.
    let mut first_checkpoint = None;
    let mut at_first = 0;
    let mut committed = 0;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if line.contains(" complete at cut ") {
            let folder = line.rsplit_once(": ").unwrap().1.to_string();
            if first_checkpoint.is_none() {
                // The first checkpoint after some output was committed.
                if visible() > 0 {
                    first_checkpoint = Some(folder);
                    at_first = visible();
                }
            } else if visible() >= at_first + 3 {
                committed = visible();
                break;
            }
        }
    }
    assert!(
        committed > 0,
        "the job ended before committing enough output"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    let first_checkpoint = first_checkpoint.unwrap();
    let restored = job(&["--restore", &first_checkpoint]).output().unwrap();
    let log = String::from_utf8_lossy(&restored.stderr).into_owned();
    assert!(restored.status.success(), "{log}");
    let mut got = common::Windows::new();
    for entry in std::fs::read_dir(&out).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            name.starts_with("part-"),
            "only committed parts are left: {name}"
        );
        add_windows(
            &std::fs::read_to_string(entry.path()).unwrap(),
            &mut got,
            &log,
        );
    }
    assert_eq!(got.len(), model.len(), "windows written\n{log}");
    assert_eq!(got, model);
    let removed = log.matches("removing output part").count();
    assert!(
        removed > 0,
        "{committed} parts were visible, none removed:\n{log}"
    );
}
