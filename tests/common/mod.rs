//! Test harness: run the same job on 1 worker, 2 worker threads, and 2 processes.
//!
//! For the 2-process run the test binary starts itself again as process 1 (running only the test
//! named), while the test itself runs process 0 in-process and gets the collected result.

#![allow(dead_code)]

pub mod s3;
pub mod sql;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tidal::engine::ClusterSpec;
use tidal::prelude::*;

const CHILD_ENV: &str = "TIDAL_TEST_CHILD";
const HOSTS_ENV: &str = "TIDAL_TEST_HOSTS";
const RUN_ENV: &str = "TIDAL_TEST_RUN";
const PARENT_ENV: &str = "TIDAL_TEST_PARENT";

/// A directory for `test`'s input files, the same in the test process and in the processes it
/// starts (which must only read it). Created empty in the test process, and removed when the
/// returned guard is dropped there.
pub fn fixture_dir(test: &str) -> FixtureDir {
    let owner = std::env::var(PARENT_ENV).unwrap_or_else(|_| std::process::id().to_string());
    let dir = std::env::temp_dir().join(format!("tidal-test-{owner}-{test}"));
    if !is_child() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
    }
    FixtureDir(dir)
}

/// A fixture directory; the test process removes it when done.
pub struct FixtureDir(pub std::path::PathBuf);

impl std::ops::Deref for FixtureDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for FixtureDir {
    fn drop(&mut self) {
        if !is_child() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Counts the 2-process runs of each test, so that a child joins the run its parent started.
static TWO_PROCESS_RUNS: std::sync::Mutex<BTreeMap<String, usize>> =
    std::sync::Mutex::new(BTreeMap::new());

fn next_two_process_run(test: &str) -> usize {
    let mut runs = TWO_PROCESS_RUNS.lock().unwrap();
    let k = runs.entry(test.to_string()).or_insert(0);
    *k += 1;
    *k - 1
}

/// The shapes every oracle test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    OneWorker,
    TwoThreads,
    TwoProcesses,
}

pub const SHAPES: [Shape; 3] = [Shape::OneWorker, Shape::TwoThreads, Shape::TwoProcesses];

/// Two free loopback ports.
pub fn free_addresses(n: usize) -> Vec<String> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect()
}

/// Whether this process is a child started by [`run`] for the test `test`.
pub fn is_child() -> bool {
    std::env::var(CHILD_ENV).is_ok()
}

/// Runs `build` on `shape` and returns what process 0 collected. The tick is 1 ms so that jobs
/// span many ticks. In a child process (process 1 of a 2-process run) it runs the job and exits.
pub fn run<T, F>(test: &str, shape: Shape, build: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(&mut Env<'_>) -> Collected<T> + Send + Sync + 'static,
{
    run_with(test, shape, |job| job, build)
}

/// Like [`run`], with `configure` applied to the job of every process (e.g. checkpoints).
pub fn run_with<T, F>(test: &str, shape: Shape, configure: impl Fn(Job) -> Job, build: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(&mut Env<'_>) -> Collected<T> + Send + Sync + 'static,
{
    let tick = Duration::from_millis(1);
    if let Ok(process) = std::env::var(CHILD_ENV) {
        if shape != Shape::TwoProcesses {
            return Vec::new();
        }
        let k = next_two_process_run(test);
        if std::env::var(RUN_ENV).unwrap() != k.to_string() {
            return Vec::new();
        }
        let addresses: Vec<String> = std::env::var(HOSTS_ENV)
            .unwrap()
            .split(',')
            .map(String::from)
            .collect();
        let spec = ClusterSpec {
            workers: 1,
            process: process.parse().unwrap(),
            addresses,
            connect_timeout: Duration::from_secs(30),
            secret: None,
        };
        let result = configure(Job::from_spec(spec).with_tick(tick).quiet()).run(build);
        if let Err(e) = &result {
            eprintln!("process 1 of test {test}: {e}");
        }
        std::process::exit(if result.is_ok() { 0 } else { 1 });
    }
    match shape {
        Shape::OneWorker => configure(Job::local(1).with_tick(tick).quiet())
            .run(build)
            .unwrap(),
        Shape::TwoThreads => configure(Job::local(2).with_tick(tick).quiet())
            .run(build)
            .unwrap(),
        Shape::TwoProcesses => {
            let addresses = free_addresses(2);
            let k = next_two_process_run(test);
            let mut child = spawn_self(test, 1, &addresses, k);
            let spec = ClusterSpec {
                workers: 1,
                process: 0,
                addresses,
                connect_timeout: Duration::from_secs(30),
                secret: None,
            };
            let out = configure(Job::from_spec(spec).with_tick(tick).quiet())
                .run(build)
                .unwrap();
            let status = child.wait().unwrap();
            assert!(
                status.success(),
                "process 1 of test {test} failed: {status}"
            );
            out
        }
    }
}

/// Starts this test binary again as process `process`, running only `test`.
pub fn spawn_self(
    test: &str,
    process: usize,
    addresses: &[String],
    run: usize,
) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, process.to_string())
        .env(RUN_ENV, run.to_string())
        .env(PARENT_ENV, std::process::id().to_string())
        .env(HOSTS_ENV, addresses.join(","))
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

/// Sorts a vector for multiset comparison.
pub fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Runs `build` on every shape and checks `check(shape, result)`.
pub fn on_every_shape<T, F>(test: &str, build: F, check: impl Fn(Shape, Vec<T>))
where
    T: Send + 'static,
    F: Fn(&mut Env<'_>) -> Collected<T> + Send + Sync + 'static,
{
    let build = Arc::new(build);
    for shape in SHAPES {
        let b = Arc::clone(&build);
        let out = run(test, shape, move |env| b(env));
        if !is_child() {
            check(shape, out);
        }
    }
}

/// In a process started by [`spawn_self`]: the cluster spec it was given (1 worker per process).
pub fn child_spec() -> Option<ClusterSpec> {
    let process = std::env::var(CHILD_ENV).ok()?.parse().ok()?;
    let addresses = std::env::var(HOSTS_ENV)
        .ok()?
        .split(',')
        .map(String::from)
        .collect();
    Some(ClusterSpec {
        workers: 1,
        process,
        addresses,
        connect_timeout: Duration::from_secs(30),
        secret: None,
    })
}

/// Starts this test binary as process `process` of `addresses`, capturing its output.
pub fn spawn_self_captured(
    test: &str,
    process: usize,
    addresses: &[String],
) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, process.to_string())
        .env(RUN_ENV, "0")
        .env(PARENT_ENV, std::process::id().to_string())
        .env(HOSTS_ENV, addresses.join(","))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a child, failing the test if it has not ended within `limit` (a hang detector).
pub fn wait_with_limit(
    child: &mut std::process::Child,
    limit: Duration,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not end within {limit:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The path of example `name`, built by `cargo test` beside the test binaries.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(bin.exists(), "{} is built by cargo test", bin.display());
    bin
}

/// The `tidal` launcher binary.
pub fn launcher() -> &'static str {
    env!("CARGO_BIN_EXE_tidal")
}

/// `lines` lines of words from a vocabulary of 3000, seeded.
pub fn write_words(path: &Path, lines: usize, seed: u64) -> BTreeMap<String, u64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut text = String::new();
    let mut counts = BTreeMap::new();
    for _ in 0..lines {
        let n = rng.random_range(1..10);
        for i in 0..n {
            let word = format!("w{}", rng.random_range(0..3000));
            if i > 0 {
                text.push(' ');
            }
            text.push_str(&word);
            *counts.entry(word).or_insert(0) += 1;
        }
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
    counts
}

/// The union of the `word count` lines of every part file in `dir`.
pub fn read_word_counts(dir: &Path) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with("part-") {
            continue;
        }
        for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
            let (word, n) = line.rsplit_once(' ').unwrap();
            let previous = counts.insert(word.to_string(), n.parse().unwrap());
            assert!(previous.is_none(), "{word} appears twice in the output");
        }
    }
    counts
}

/// How [`run_with_kills`] treats a job.
pub struct Kills<'a> {
    /// Where checkpoints go (a path or `s3://...`).
    pub checkpoints: &'a str,
    /// How many times a process is killed.
    pub kills: usize,
    /// When (ms after the attempt's processes started), drawn with `seed`.
    pub delays: std::ops::Range<u64>,
    pub seed: u64,
    /// Environment of the processes.
    pub envs: &'a [(&'a str, &'a str)],
    /// Called once the first attempt's processes have started, before the first kill.
    pub before_first_kill: &'a dyn Fn(),
}

/// Runs `program` (an example's name, or a path) with `args` on 2 processes under the launcher (checkpoints every 200 ms, up to
/// 5 restarts), kills one of its two processes with `kill -9` as `plan` says, and returns the
/// launcher's log once the job has finished well. Fails when a kill finds its process gone, the
/// job fails, or no restart restored a checkpoint.
pub fn run_with_kills(program: &str, args: &[&str], plan: Kills<'_>) -> String {
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
        .arg(if program.contains('/') {
            std::path::PathBuf::from(program)
        } else {
            example(program)
        })
        .args(args)
        .args([
            "--checkpoint-dir",
            plan.checkpoints,
            "--checkpoint-interval",
            "200ms",
        ])
        .envs(plan.envs.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The launcher names every process it starts: "started process P (pid N)".
    let (pids_tx, pids_rx) = mpsc::channel::<(usize, u32)>();
    let stderr = launcher.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // Found anywhere in the line: output that is not the launcher's (a panic message
            // is written piece by piece) may have run into it.
            if let Some((_, rest)) = line.split_once("tidal: started process ") {
                let (p, pid) = rest.split_once(" (pid ").unwrap();
                let pid = pid.trim_end_matches(')').parse().unwrap();
                let _ = pids_tx.send((p.parse().unwrap(), pid));
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let mut rng = SmallRng::seed_from_u64(plan.seed);
    for kill in 0..plan.kills {
        let mut attempt = Vec::new();
        while attempt.len() < 2 {
            match pids_rx.recv_timeout(Duration::from_secs(60)) {
                Ok(started) => attempt.push(started),
                Err(e) => {
                    // The launcher ended (or hangs) before the kills were done: show why.
                    let _ = launcher.kill();
                    let status = launcher.wait();
                    let log = log.join().unwrap_or_default();
                    panic!("kill {kill}: no new processes ({e}); launcher {status:?}:\n{log}");
                }
            }
        }
        if kill == 0 {
            (plan.before_first_kill)();
        }
        let victim = attempt[rng.random_range(0..2)];
        std::thread::sleep(Duration::from_millis(rng.random_range(plan.delays.clone())));
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
    assert_eq!(
        log.matches("was killed by signal 9").count(),
        plan.kills,
        "{log}"
    );
    assert!(
        log.contains("tidal: restoring checkpoint"),
        "no restart restored a checkpoint:\n{log}"
    );
    log
}

/// A window of bid_windows: (window end, auction) → (count, max price).
pub type Windows = BTreeMap<(i64, u64), (u64, u64)>;

/// Generates `events` bids into `path` with the bid_windows example (`--seed seed`), and returns
/// the model: every window's count and max price, computed from the file.
pub fn write_bids(path: &Path, events: u64, seed: u64) -> Windows {
    let generated = Command::new(example("bid_windows"))
        .arg("--generate")
        .arg(path)
        .args(["--events", &events.to_string(), "--seed", &seed.to_string()])
        .status()
        .unwrap();
    assert!(generated.success());
    let mut model = Windows::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let f: Vec<i64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        let end = f[2] - f[2].rem_euclid(10_000) + 10_000;
        let e = model.entry((end, f[0] as u64)).or_insert((0, 0));
        e.0 += 1;
        e.1 = e.1.max(f[1] as u64);
    }
    model
}

/// Adds the lines of bid_windows output `text` to `got`; a window written twice fails (showing
/// `log`).
pub fn add_windows(text: &str, got: &mut Windows, log: &str) {
    for line in text.lines() {
        let f: Vec<i64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        let previous = got.insert((f[0], f[1] as u64), (f[2] as u64, f[3] as u64));
        assert!(previous.is_none(), "window {line} written twice\n{log}");
    }
}

/// The launcher set to run a program on `processes` processes on this machine, without restarts:
/// `tidal run --processes N --restart-strategy none --`; add the program and its arguments.
pub fn launch_once(processes: usize) -> Command {
    let mut command = Command::new(launcher());
    command.args(["run", "--processes", &processes.to_string()]);
    command.args(["--restart-strategy", "none", "--"]);
    command
}

/// Starts `program` on 2 processes × 2 workers, stops it with a savepoint (SIGUSR2) after
/// `after`, and returns the savepoint's path.
pub fn stop_with_savepoint(program: &str, args: &[String], after: Duration) -> PathBuf {
    let mut first = launch_once(2)
        .arg(example(program))
        .args(args)
        .args(["-w", "2"])
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
        if let Some((_, rest)) = line.split_once("tidal: started process 0 (pid ") {
            break rest.trim_end_matches(')').to_string();
        }
    };
    std::thread::sleep(after);
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
    assert!(log.contains("stopping the job after savepoint"), "{log}");
    log.lines()
        .find_map(|l| {
            l.strip_prefix("tidal: savepoint ")
                .and_then(|rest| rest.rsplit_once(": "))
                .map(|(_, path)| PathBuf::from(path))
        })
        .unwrap_or_else(|| panic!("no savepoint was reported:\n{log}"))
}

/// Runs an example and returns its stdout lines, sorted; fails the test on a non-zero exit.
pub fn run_example(name: &str, args: &[&str]) -> Vec<String> {
    let mut child = Command::new(example(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let status = wait_with_limit(&mut child, Duration::from_secs(120));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{name} {args:?} failed: {err}");
    let mut lines: Vec<String> = reader.join().unwrap().lines().map(String::from).collect();
    lines.sort();
    lines
}

/// Runs an example on every shape (1 worker, 2 workers, 2 processes) and checks each output.
pub fn example_on_every_shape(name: &str, args: &[&str], expected: &[String]) {
    let mut expected = expected.to_vec();
    expected.sort();
    for workers in ["1", "2"] {
        let mut a = args.to_vec();
        a.extend(["-w", workers]);
        assert!(
            run_example(name, &a) == expected,
            "{name} -w {workers} differs from the model"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, free_addresses(2).join("\n")).unwrap();
    let h = hosts.to_str().unwrap().to_string();
    let (n, a1) = (
        name.to_string(),
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    );
    let h1 = h.clone();
    let p1 = std::thread::spawn(move || {
        let mut a: Vec<&str> = a1.iter().map(String::as_str).collect();
        a.extend(["-n", "2", "-p", "1", "-h", &h1]);
        run_example(&n, &a)
    });
    let mut a = args.to_vec();
    a.extend(["-n", "2", "-p", "0", "-h", &h]);
    let p0 = run_example(name, &a);
    assert!(p1.join().unwrap().is_empty(), "only process 0 prints");
    assert!(
        p0 == expected,
        "{name} on 2 processes differs from the model"
    );
}

/// Fails with `what`, the sizes and up to five records each of what `got` has that `expected`
/// lacks and the reverse, unless the two are equal.
pub fn assert_same<T: PartialEq + std::fmt::Debug>(got: &[T], expected: &[T], what: &str) {
    if got == expected {
        return;
    }
    let extra: Vec<_> = got
        .iter()
        .filter(|r| !expected.contains(r))
        .take(5)
        .collect();
    let missing: Vec<_> = expected
        .iter()
        .filter(|r| !got.contains(r))
        .take(5)
        .collect();
    panic!(
        "{what}: {} records against the model's {}; extra {extra:?}, missing {missing:?}",
        got.len(),
        expected.len()
    );
}

/// Asks `child` to stop cleanly (SIGTERM, as Ctrl-C would; the launcher passes it on to the
/// job's processes) and waits up to a minute for it to end.
pub fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_with_limit(child, Duration::from_secs(60))
}
