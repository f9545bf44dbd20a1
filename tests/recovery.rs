//! Recovery as a user sees it: the `tidal` launcher runs the wordcount example on 2 processes with
//! checkpoints; worker processes are killed with `kill -9` at random moments, several times; the
//! launcher restarts the job from its latest checkpoint, and the final output equals a
//! from-scratch count of the input.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{example, fixture_dir, launcher, read_word_counts, wait_with_limit, write_words};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Runs `program` with `args` on 2 processes under the launcher (checkpoints every 200 ms into
/// `checkpoints`, up to 5 restarts), kills one of its two processes with `kill -9` three times, at
/// a moment drawn from `delays` (ms after the attempt's processes started; seeded by `seed`), and
/// returns the launcher's log once the job has finished well. Fails when a kill finds its process
/// gone, the job fails, or no restart restored a checkpoint.
fn run_with_kills(
    program: &str,
    args: &[&str],
    checkpoints: &Path,
    delays: std::ops::Range<u64>,
    seed: u64,
) -> String {
    let mut launcher = Command::new(launcher())
        .args([
            "run",
            "--processes",
            "2",
            "--restart-attempts",
            "5",
            "--restart-delay",
            "100ms",
            "--",
        ])
        .arg(example(program))
        .args(args)
        .args([
            "--checkpoint-dir",
            checkpoints.to_str().unwrap(),
            "--checkpoint-interval",
            "200ms",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The launcher names every process it starts: "started process P (pid N)".
    let (pids_tx, pids_rx) = mpsc::channel::<(usize, u32)>();
    let stderr = launcher.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("tidal: started process ") {
                let (p, pid) = rest.split_once(" (pid ").unwrap();
                let pid = pid.trim_end_matches(')').parse().unwrap();
                let _ = pids_tx.send((p.parse().unwrap(), pid));
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let mut rng = SmallRng::seed_from_u64(seed);
    for kill in 0..3 {
        let mut attempt = Vec::new();
        while attempt.len() < 2 {
            attempt.push(
                pids_rx
                    .recv_timeout(Duration::from_secs(60))
                    .expect("processes start"),
            );
        }
        let victim = attempt[rng.random_range(0..2)];
        std::thread::sleep(Duration::from_millis(rng.random_range(delays.clone())));
        let killed = Command::new("kill")
            .args(["-KILL", &victim.1.to_string()])
            .status()
            .unwrap();
        assert!(
            killed.success(),
            "kill {kill}: process {} had already ended",
            victim.0
        );
    }
    let status = wait_with_limit(&mut launcher, Duration::from_secs(120));
    let log = log.join().unwrap();
    assert!(status.success(), "the launcher failed: {status}\n{log}");
    assert_eq!(log.matches("was killed by signal 9").count(), 3, "{log}");
    assert!(
        log.contains("tidal: restoring checkpoint"),
        "no restart restored a checkpoint:\n{log}"
    );
    log
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
    run_with_kills("wordcount", &args, &dir.join("checkpoints"), 500..1500, 99);
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
    // 100 000 lines at 10 000 lines/s: about 10 s if it were not stopped.
    let mut first = Command::new(launcher())
        .args([
            "run",
            "--processes",
            "2",
            "--restart-strategy",
            "none",
            "--",
        ])
        .arg(example("wordcount"))
        .args(job_args(&dir.join("out-first")))
        .args(["-w", "2", "--rate", "10000"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = first.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
    let mut log = String::new();
    let pid0 = loop {
        let line = lines.next().expect("the launcher starts process 0");
        log.push_str(&line);
        log.push('\n');
        if let Some(rest) = line.strip_prefix("tidal: started process 0 (pid ") {
            break rest.trim_end_matches(')').to_string();
        }
    };
    // Once the job has made progress (its first output would only come at the end), stop it.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        Command::new("kill")
            .args(["-USR2", &pid0])
            .status()
            .unwrap()
            .success()
    );
    for line in lines {
        log.push_str(&line);
        log.push('\n');
    }
    let status = wait_with_limit(&mut first, Duration::from_secs(60));
    assert!(status.success(), "{log}");
    let savepoint = log
        .lines()
        .find_map(|l| {
            l.strip_prefix("tidal: savepoint ")
                .and_then(|rest| rest.rsplit_once(": "))
                .map(|(_, path)| PathBuf::from(path))
        })
        .unwrap_or_else(|| panic!("no savepoint was reported:\n{log}"));
    assert!(log.contains("stopping the job after savepoint"), "{log}");
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
    let three = Command::new(launcher())
        .args([
            "run",
            "--processes",
            "3",
            "--restart-strategy",
            "none",
            "--",
        ])
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
    let generated = Command::new(example("bid_windows"))
        .args([
            "--generate",
            input.to_str().unwrap(),
            "--events",
            "160000",
            "--seed",
            "5",
        ])
        .status()
        .unwrap();
    assert!(generated.success());
    // The model, from the file.
    let mut model: BTreeMap<(i64, u64), (u64, u64)> = BTreeMap::new();
    for line in std::fs::read_to_string(&input).unwrap().lines() {
        let f: Vec<i64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        let end = f[2] - f[2].rem_euclid(10_000) + 10_000;
        let e = model.entry((end, f[0] as u64)).or_insert((0, 0));
        e.0 += 1;
        e.1 = e.1.max(f[1] as u64);
    }
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
        &dir.join("checkpoints"),
        1200..2200,
        3,
    );
    eprintln!(
        "{} output part(s) were cut back to a checkpoint",
        log.matches(" cut from ").count()
    );
    // Every window once, with the model's values.
    let mut got: BTreeMap<(i64, u64), (u64, u64)> = BTreeMap::new();
    for entry in std::fs::read_dir(&out).unwrap().flatten() {
        if !entry.file_name().to_string_lossy().starts_with("part-") {
            continue;
        }
        for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
            let f: Vec<i64> = line.split(',').map(|x| x.parse().unwrap()).collect();
            let previous = got.insert((f[0], f[1] as u64), (f[2] as u64, f[3] as u64));
            assert!(previous.is_none(), "window {line} written twice\n{log}");
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
        &dir.join("checkpoints"),
        1200..2200,
        8,
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
