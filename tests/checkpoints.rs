//! Checkpoints taken while a job runs, restored on other worker counts: the restored job's final
//! result equals a from-scratch count of the whole input.

mod common;
#[path = "common/rules.rs"]
mod rules;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{SHAPES, fixture_dir, is_child, run_with, sorted};
use tidal::engine::checkpoint::{self, Restored, Section, decode_part};
use tidal::engine::{CompletedCheckpoint, SourcePosition};
use tidal::prelude::*;

// The checkpoint functions on local directories, as these tests use them.
/// Waits, checkpoint by checkpoint as the job reports them ([`Job::on_checkpoint`]), until
/// `found` gives something for one; fails after 60 s, or when the job ends first.
fn wait_for_checkpoint<T>(
    completed: &mpsc::Receiver<CompletedCheckpoint>,
    what: &str,
    mut found: impl FnMut(&CompletedCheckpoint) -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match completed.recv_timeout(left) {
            Ok(c) => {
                if let Some(t) = found(&c) {
                    return t;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: none within 60 s"),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: the job ended first"),
        }
    }
}

/// A channel of the checkpoints a job completes, and the listener that fills it.
fn checkpoint_channel() -> (
    impl Fn(&CompletedCheckpoint) + Send + Sync + 'static,
    mpsc::Receiver<CompletedCheckpoint>,
) {
    let (tx, rx) = mpsc::channel();
    (move |c: &CompletedCheckpoint| drop(tx.send(c.clone())), rx)
}

/// Bytes of every state section of a checkpoint.
fn state_bytes(c: &Restored) -> usize {
    c.parts
        .iter()
        .flat_map(|p| &p.states)
        .map(|s| s.1.len())
        .sum()
}

/// Whether every source had more to read at the checkpoint's cut.
fn mid_run(c: &Restored) -> bool {
    c.parts
        .iter()
        .flat_map(|p| &p.sources)
        .all(|(_, s)| matches!(s, SourcePosition::At { .. }))
}

fn latest_valid(dir: &Path) -> Option<Restored> {
    checkpoint::latest_valid(&dir.into()).unwrap()
}

fn list_checkpoints(dir: &Path) -> Vec<(u64, PathBuf)> {
    checkpoint::list_checkpoints(&dir.into())
        .unwrap()
        .into_iter()
        .map(|(id, at)| (id, at.as_local().unwrap().to_path_buf()))
        .collect()
}

fn read_checkpoint(path: &Path) -> tidal::Result<Restored> {
    checkpoint::read_checkpoint(&path.into())
}

const RECORDS: u64 = 40_000;

fn word(i: u64) -> String {
    format!("w{}", i.wrapping_mul(2_654_435_761) % 997)
}

fn oracle() -> Vec<(String, u64)> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..RECORDS {
        *counts.entry(word(i)).or_insert(0) += 1;
    }
    counts.into_iter().collect()
}

/// `count` records of `make`, at most `rate` per second when given (the first run of each test is
/// throttled so that it is checkpointed mid-run; the restored runs are not).
fn events<T: 'static>(
    make: impl Fn(u64) -> T + Send + Sync + 'static,
    count: u64,
    rate: Option<f64>,
) -> Generator<T> {
    let generator = Generator::new(make).count(count);
    match rate {
        Some(rate) => generator.rate(rate),
        None => generator,
    }
}

/// Per key and window: the sum of the values and their number, with the window's end.
fn sum_and_count(
    windowed: tidal::operators::WindowedStream<'_, u64, i64>,
) -> DataStream<'_, (u64, i64, i64, u64)> {
    windowed.aggregate_with(
        |v: i64| (v, 1u64),
        |a, v| {
            a.0 += v;
            a.1 += 1
        },
        |a, b| {
            a.0 += b.0;
            a.1 += b.1
        },
        |k: &u64, w: &Window, a: &(i64, u64)| (*k, w.end, a.0, a.1),
    )
}

/// The job: a throttled sequence of words, counted per word; the final counts. The source is
/// renamed, as jobs that checkpoint should: it is found in the checkpoint by that name.
fn word_counts(env: &mut Env<'_>, rate: Option<f64>) -> Collected<(String, u64)> {
    env.generate(events(word, RECORDS, rate))
        .name("words")
        .key_by(|w| w.clone())
        .count()
        .final_values()
        .collect()
}

/// Runs the job on 2 threads with checkpoints every 20 ms until a checkpoint has been taken with
/// part of the input read, then stops it. Returns that checkpoint's directory.
fn checkpoint_mid_run(dir: &Path) -> PathBuf {
    checkpoint_mid_run_of(dir, word_counts)
}

/// A word-count job, given the rate it reads at (`None`: as fast as it can).
type WordCountJob = fn(&mut Env<'_>, Option<f64>) -> Collected<(String, u64)>;

/// [`checkpoint_mid_run`] of another word-count job.
fn checkpoint_mid_run_of(dir: &Path, word_counts: WordCountJob) -> PathBuf {
    let (listener, completed) = checkpoint_channel();
    let job = Job::local(2)
        .with_tick(Duration::from_millis(5))
        .quiet()
        .with_checkpoints(CheckpointConfig::new(dir).interval(Duration::from_millis(20)))
        .on_checkpoint(listener);
    let stop = job.stop_handle();
    // About 2 s of input at 20 000 records/s.
    let runner = std::thread::spawn(move || job.run(move |env| word_counts(env, Some(20_000.0))));
    // A checkpoint with counts in its state and sources that had more to read.
    let chosen = wait_for_checkpoint(&completed, "a mid-run checkpoint", |done| {
        let c = read_checkpoint(done.location.as_local()?).ok()?;
        (state_bytes(&c) > 4_000 && mid_run(&c)).then(|| c.path.as_local().unwrap().to_path_buf())
    });
    stop.stop();
    runner.join().unwrap().unwrap();
    chosen
}

#[test]
fn a_checkpoint_restores_on_one_worker_two_threads_and_two_processes() {
    let test = "a_checkpoint_restores_on_one_worker_two_threads_and_two_processes";
    let dir = fixture_dir(test);
    let first = dir.join("first");
    if !is_child() {
        let taken = checkpoint_mid_run(&first);
        inspect_reports_keys(&taken);
    }
    // The child process finds the same checkpoint: the first job has ended before it starts.
    let checkpoint = latest_valid(&first).expect("a complete checkpoint").path;
    restore_on_every_shape(
        test,
        &dir,
        &checkpoint,
        false,
        |env| word_counts(env, None),
        |shape, out| assert_eq!(sorted(out), oracle(), "{shape:?}"),
    );
}

/// `tidal checkpoints inspect` reports the keys of each keyed state: for the word counts, summed
/// over the parts, as many as the checkpoint holds (each an input word, counted at most as often
/// as the input has it).
fn inspect_reports_keys(checkpoint: &Path) {
    let run = std::process::Command::new(common::launcher())
        .args(["checkpoints", "inspect"])
        .arg(checkpoint)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{text}");
    let mut reported: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        let Some((name, tail)) = line
            .trim()
            .strip_prefix("state '")
            .and_then(|r| r.split_once("': "))
        else {
            continue;
        };
        if let Some(keys) = tail.split(", ").nth(1).and_then(|f| f.split(' ').next()) {
            *reported.entry(name.to_string()).or_default() += keys.parse::<usize>().unwrap();
        }
    }
    let c = read_checkpoint(checkpoint).unwrap();
    let counts = c.parts[0]
        .states
        .iter()
        .map(|s| s.0.clone())
        .find(|n| n.starts_with("count"))
        .expect("the count's state");
    let sections: Vec<&[u8]> = c
        .parts
        .iter()
        .flat_map(|p| &p.states)
        .filter(|s| s.0 == counts)
        .map(|s| &s.1[..])
        .collect();
    // A rolling count's entry: the count and its TTL deadline (none here).
    let entries: Vec<(String, (u64, Option<i64>))> =
        tidal::engine::state::read_sections(&counts, &sections).unwrap();
    let entries: Vec<(String, u64)> = entries.into_iter().map(|(w, (n, _))| (w, n)).collect();
    let all: BTreeMap<String, u64> = oracle().into_iter().collect();
    assert!(
        entries.len() > 100,
        "{} words in the checkpoint",
        entries.len()
    );
    assert!(
        entries
            .iter()
            .all(|(w, n)| all.get(w).is_some_and(|total| n <= total))
    );
    assert_eq!(reported.get(&counts), Some(&entries.len()), "{text}");
}

/// Rolling aggregates with a time to live snapshot each key's last write with its aggregate: a
/// mid-run checkpoint of a word count whose state lives an hour restores on every shape and
/// gives the whole input's counts (nothing expires within the run).
#[test]
fn rolling_aggregates_with_a_time_to_live_restore_on_every_shape() {
    fn counts_with_ttl(env: &mut Env<'_>, rate: Option<f64>) -> Collected<(String, u64)> {
        env.generate(events(word, RECORDS, rate))
            .name("words")
            .key_by(|w| w.clone())
            .with_state_ttl(Duration::from_secs(3600))
            .count()
            .final_values()
            .collect()
    }
    let test = "rolling_aggregates_with_a_time_to_live_restore_on_every_shape";
    let dir = fixture_dir(test);
    let first = dir.join("first");
    if !is_child() {
        checkpoint_mid_run_of(&first, counts_with_ttl);
    }
    let checkpoint = latest_valid(&first).expect("a complete checkpoint").path;
    restore_on_every_shape(
        test,
        &dir,
        &checkpoint,
        false,
        |env| counts_with_ttl(env, None),
        |shape, out| assert_eq!(sorted(out), oracle(), "{shape:?}"),
    );
}

/// Restores `checkpoint` into the job `build` on 1 worker, 2 threads and 2 processes (taking
/// checkpoints of its own every 20 ms, `incremental` or not), and hands what process 0 collected
/// to `check` (in the test process only).
fn restore_on_every_shape<T, F>(
    test: &str,
    dir: &Path,
    checkpoint: &tidal::engine::storage::Location,
    incremental: bool,
    build: F,
    check: impl Fn(common::Shape, Vec<T>),
) where
    T: Send + 'static,
    F: Fn(&mut Env<'_>) -> Collected<T> + Clone + Send + Sync + 'static,
{
    for (i, shape) in SHAPES.into_iter().enumerate() {
        let restore = checkpoint.clone();
        let own = dir.join(format!("restored-{i}"));
        let out = run_with(
            test,
            shape,
            move |job| {
                job.with_checkpoints(
                    CheckpointConfig::new(&own)
                        .interval(Duration::from_millis(20))
                        .incremental(incremental)
                        .restore(Restore::Path(restore.clone())),
                )
            },
            build.clone(),
        );
        if !is_child() {
            check(shape, out);
        }
    }
}

#[test]
fn restore_latest_passes_over_a_corrupt_checkpoint_and_names_it() {
    let dir = fixture_dir("restore_latest_passes_over_a_corrupt_checkpoint");
    let first = dir.join("first");
    let chosen = checkpoint_mid_run(&first);
    // Damage every checkpoint newer than the chosen one (a flipped byte in one part).
    let chosen_id = read_checkpoint(&chosen).unwrap().id;
    for (id, path) in list_checkpoints(&first) {
        if id > chosen_id {
            // A flipped byte in one part.
            let part = std::fs::read_dir(&path)
                .unwrap()
                .flatten()
                .find(|e| e.file_name().to_string_lossy().starts_with("part-"))
                .unwrap()
                .path();
            let mut bytes = std::fs::read(&part).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x10;
            std::fs::write(&part, bytes).unwrap();
        }
    }
    assert_eq!(latest_valid(&first).unwrap().id, chosen_id);
    let out = Job::local(3)
        .quiet()
        .with_checkpoints(
            CheckpointConfig::new(&first)
                .interval(Duration::from_secs(3600))
                .restore(Restore::Latest),
        )
        .run(|env| word_counts(env, None))
        .unwrap();
    assert_eq!(sorted(out), oracle());

    // Restoring a damaged checkpoint by path is an error that names the part.
    let mut damaged = None;
    for (_, path) in list_checkpoints(&first) {
        if let Err(e) = read_checkpoint(&path) {
            damaged = Some((path, e.to_string()));
        }
    }
    if let Some((path, why)) = damaged {
        let err = Job::local(1)
            .quiet()
            .with_checkpoints(CheckpointConfig::new(&first).restore(Restore::Path(path.into())))
            .run(|env| word_counts(env, None))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("corrupt") && err.contains("part-"),
            "{err} / {why}"
        );
    }
}

#[test]
fn a_checkpoint_of_another_job_shape_is_refused_with_the_operator_name() {
    let dir = fixture_dir("a_checkpoint_of_another_job_shape_is_refused");
    let first = dir.join("first");
    let chosen = checkpoint_mid_run(&first);
    // The same counting, but the count operator has another name.
    let err = Job::local(1)
        .quiet()
        .with_checkpoints(
            CheckpointConfig::new(dir.join("second")).restore(Restore::Path(chosen.into())),
        )
        .run(|env| -> Collected<(String, u64)> {
            env.generate(Generator::new(word).count(RECORDS))
                .key_by(|w| w.clone())
                .count()
                .name("renamed count")
                .final_values()
                .collect()
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("which this job does not have"), "{err}");
}

/// Every checkpoint is a consistent cut: in each, the count per word and the latest value the
/// downstream `final_values` holds agree key for key — also for checkpoints taken as the input
/// ends (when operators must not run to the end of input before the cut is snapshotted).
#[test]
fn every_checkpoint_is_a_consistent_cut() {
    use tidal::engine::state::KeyedState;
    let dir = fixture_dir("every_checkpoint_is_a_consistent_cut");
    let out = Job::local(2)
        .with_tick(Duration::from_millis(2))
        .quiet()
        .with_checkpoints(
            CheckpointConfig::new(&*dir)
                .interval(Duration::from_millis(1))
                .keep(10_000),
        )
        .run(|env| word_counts(env, Some(40_000.0)))
        .unwrap();
    assert_eq!(sorted(out), oracle());
    let checkpoints = list_checkpoints(&dir);
    assert!(checkpoints.len() >= 5, "{} checkpoints", checkpoints.len());
    // Every part written, also of a checkpoint that was under way as the job ended.
    let total = checkpoints.len();
    let mut checked = 0;
    for (id, path) in checkpoints {
        let parts: Vec<_> = std::fs::read_dir(&path)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("part-"))
            .map(|e| decode_part(&std::fs::read(e.path()).unwrap(), "part").unwrap())
            .collect();
        if parts.len() < 2 {
            continue; // one worker had not written its part when the job ended
        }
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut latest: BTreeMap<String, u64> = BTreeMap::new();
        for part in &parts {
            for (name, section) in &part.states {
                let Section::Full(bytes) = section else {
                    panic!("checkpoints are not incremental here");
                };
                if name.starts_with("count") {
                    // A rolling count's entry: the count and its TTL deadline (none here).
                    let entries =
                        KeyedState::<String, (u64, Option<i64>)>::read_snapshot(&bytes[..], name)
                            .unwrap();
                    counts.extend(entries.into_iter().map(|(w, (n, _))| (w, n)));
                } else if name.starts_with("final_values") {
                    let entries =
                        KeyedState::<String, (u64, i64)>::read_snapshot(&bytes[..], name).unwrap();
                    latest.extend(entries.into_iter().map(|(k, (v, _))| (k, v)));
                }
            }
        }
        assert_eq!(counts, latest, "checkpoint {id}");
        checked += 1;
    }
    // Only a checkpoint under way as the job ended may lack a part: every other one was checked.
    assert!(
        checked + 1 >= total,
        "{checked} of {total} checkpoints checked"
    );
}

/// A job stopped while a checkpoint is under way finishes that checkpoint with where its sources
/// really were, not as if they had read everything: restoring the newest checkpoint after a stop
/// gives the whole count. Checkpoints are taken back to back (every millisecond), so most stops
/// land while one is under way; a few rounds make sure one of them does.
#[test]
fn a_checkpoint_finished_after_a_stop_restores_the_whole_input() {
    let dir = fixture_dir("a_checkpoint_finished_after_a_stop_restores_the_whole_input");
    for round in 0..12 {
        let first = dir.join(format!("round-{round}"));
        let (listener, completed) = checkpoint_channel();
        let job = Job::local(2)
            .with_tick(Duration::from_millis(2))
            .quiet()
            .with_checkpoints(CheckpointConfig::new(&first).interval(Duration::from_millis(1)))
            .on_checkpoint(listener);
        let stop = job.stop_handle();
        let runner = std::thread::spawn(move || job.run(|env| word_counts(env, Some(10_000.0))));
        wait_for_checkpoint(&completed, &format!("round {round}: a checkpoint"), |_| {
            Some(())
        });
        stop.stop();
        runner.join().unwrap().unwrap();
        let restored = latest_valid(&first).expect("a checkpoint");
        let out = Job::local(1)
            .quiet()
            .with_checkpoints(
                CheckpointConfig::new(dir.join(format!("restored-{round}")))
                    .restore(Restore::Path(restored.path.clone())),
            )
            .run(|env| word_counts(env, None))
            .unwrap();
        assert_eq!(
            sorted(out),
            oracle(),
            "round {round}: restored from {} (cut {})",
            restored.path,
            restored.cut
        );
    }
}

/// A windowed job (per key, 100 ms tumbling event-time windows, sum and count) checkpointed
/// mid-run on 2 threads and restored on 1 worker, 2 threads and 2 processes: the windows the first
/// run fired before the cut, with those the restored run fires, are exactly the model's.
#[test]
fn windows_restore_from_a_checkpoint_on_every_shape() {
    use tidal::engine::WatermarkStrategy;
    let test = "windows_restore_from_a_checkpoint_on_every_shape";
    const EVENTS: u64 = 30_000;
    // Event i: key i % 7, value i % 13, timestamp i ms, up to 40 ms out of order.
    fn event(i: u64) -> (u64, i64, i64) {
        let jitter = (i.wrapping_mul(2_654_435_761) % 41) as i64;
        (i % 7, (i % 13) as i64, (i as i64 - jitter).max(0))
    }
    fn job(env: &mut Env<'_>, rate: Option<f64>) -> Collected<(u64, i64, i64, u64)> {
        let events = events(event, EVENTS, rate);
        let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(40))
            .with_timestamps(|e: &(u64, i64, i64)| e.2);
        let windowed = env
            .generate_with(events, strategy)
            .map(|(k, v, _)| (k, v))
            .keyed()
            .window(Windows::tumbling(Duration::from_millis(100)));
        sum_and_count(windowed).collect()
    }
    let mut model: BTreeMap<(u64, i64), (i64, u64)> = BTreeMap::new();
    for i in 0..EVENTS {
        let (k, v, ts) = event(i);
        let e = model.entry((k, ts - ts % 100 + 100)).or_insert((0, 0));
        e.0 += v;
        e.1 += 1;
    }
    let model: Vec<(u64, i64, i64, u64)> = model
        .into_iter()
        .map(|((k, end), (s, n))| (k, end, s, n))
        .collect();

    check_restore(test, 5_000, model, |end, cut| end <= cut, job);
}

/// Runs `job` (throttled at `rate` records per second) on 2 threads with checkpoints into `dir`
/// every `interval` until a checkpoint whose cut `wanted` accepts is complete, then stops it;
/// returns what the job collected.
fn run_until_checkpoint<T, F>(
    dir: &Path,
    interval: Duration,
    rate: f64,
    wanted: impl Fn(i64) -> bool,
    job: F,
) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(&mut Env<'_>, Option<f64>) -> Collected<T> + Send + Sync + 'static,
{
    let (listener, completed) = checkpoint_channel();
    let first = Job::local(2)
        .with_tick(Duration::from_millis(2))
        .quiet()
        .with_checkpoints(CheckpointConfig::new(dir).interval(interval))
        .on_checkpoint(listener);
    let stop = first.stop_handle();
    let runner = std::thread::spawn(move || first.run(move |env| job(env, Some(rate))));
    wait_for_checkpoint(&completed, "a checkpoint at the wanted cut", |c| {
        wanted(c.cut).then_some(())
    });
    stop.stop();
    runner.join().unwrap().unwrap()
}

/// Runs `job` unthrottled on `shape`, restored from `checkpoint`, checkpointing into `own`.
fn run_restored<T, F>(
    test: &str,
    shape: common::Shape,
    checkpoint: &Location,
    own: PathBuf,
    job: F,
) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(&mut Env<'_>, Option<f64>) -> Collected<T> + Send + Sync + 'static,
{
    let restore = checkpoint.clone();
    run_with(
        test,
        shape,
        move |j| {
            j.with_checkpoints(CheckpointConfig::new(&own).restore(Restore::Path(restore.clone())))
        },
        move |env| job(env, None),
    )
}

/// Runs `job` with checkpoints on 2 threads until a checkpoint with cut past `min_cut` exists,
/// stops it, and restores that checkpoint on every shape. Results carry in their second field the
/// time they fired for (a window's end, a timer's time); `before_cut(time, cut)` says whether the
/// first run fired it before the cut. Those, with what each restored run fires, equal `model`,
/// none twice. Returns the size of the restored checkpoint's state (bytes).
fn check_restore<F>(
    test: &str,
    min_cut: i64,
    model: Vec<(u64, i64, i64, u64)>,
    before_cut: fn(i64, i64) -> bool,
    job: F,
) -> usize
where
    F: Fn(&mut Env<'_>, Option<f64>) -> Collected<(u64, i64, i64, u64)>
        + Send
        + Sync
        + Copy
        + 'static,
{
    let dir = fixture_dir(test);
    let first = dir.join("first");
    let fired_first = dir.join("fired-first.txt");
    if !is_child() {
        let fired = run_until_checkpoint(
            &first,
            Duration::from_millis(20),
            10_000.0,
            |cut| cut > min_cut,
            job,
        );
        let text: String = fired
            .iter()
            .map(|r| format!("{} {} {} {}\n", r.0, r.1, r.2, r.3))
            .collect();
        std::fs::write(&fired_first, text).unwrap();
    }
    let checkpoint = latest_valid(&first).expect("a checkpoint");
    let cut = checkpoint.cut;
    for (i, shape) in SHAPES.into_iter().enumerate() {
        let own = dir.join(format!("restored-{i}"));
        let out = run_restored(test, shape, &checkpoint.path, own, job);
        if is_child() {
            continue;
        }
        // The restored run fires only what comes after the cut; the first run fired the rest.
        assert!(
            out.iter().all(|w| !before_cut(w.1, cut)),
            "{shape:?}: a result fired twice"
        );
        let before: Vec<(u64, i64, i64, u64)> = std::fs::read_to_string(&fired_first)
            .unwrap()
            .lines()
            .map(|l| {
                let f: Vec<i64> = l.split(' ').map(|x| x.parse().unwrap()).collect();
                (f[0] as u64, f[1], f[2], f[3] as u64)
            })
            .filter(|w| before_cut(w.1, cut))
            .collect();
        let mut all = before;
        all.extend(out);
        assert_eq!(sorted(all), model, "{shape:?}");
    }
    state_bytes(&checkpoint)
}

/// Session windows (gap 41 ms, per key; bursts of events 10 ms apart, 1 s between bursts)
/// checkpointed mid-run and restored on every shape: sessions before the cut plus the restored
/// runs' equal the model, none twice.
#[test]
fn session_windows_restore_from_a_checkpoint_on_every_shape() {
    use tidal::engine::WatermarkStrategy;
    const EVENTS: u64 = 30_000;
    // Event i: key i % 5, value i % 13, timestamp 2i ms plus 1 s after every 500 events.
    fn event(i: u64) -> (u64, i64, i64) {
        (
            i % 5,
            (i % 13) as i64,
            2 * i as i64 + 1000 * (i / 500) as i64,
        )
    }
    fn job(env: &mut Env<'_>, rate: Option<f64>) -> Collected<(u64, i64, i64, u64)> {
        let events = events(event, EVENTS, rate);
        let strategy = WatermarkStrategy::monotonous().with_timestamps(|e: &(u64, i64, i64)| e.2);
        let windowed = env
            .generate_with(events, strategy)
            .map(|(k, v, _)| (k, v))
            .keyed()
            .window(Windows::session(Duration::from_millis(41)));
        sum_and_count(windowed).collect()
    }
    // Per key, a session per burst: it ends 41 ms after the key's last event of the burst.
    let mut model: BTreeMap<(u64, u64), (i64, i64, u64)> = BTreeMap::new();
    for i in 0..EVENTS {
        let (k, v, ts) = event(i);
        let e = model.entry((k, i / 500)).or_insert((0, 0, 0));
        e.0 = e.0.max(ts + 41);
        e.1 += v;
        e.2 += 1;
    }
    let model: Vec<(u64, i64, i64, u64)> = sorted(
        model
            .into_iter()
            .map(|((k, _), (end, sum, n))| (k, end, sum, n))
            .collect(),
    );
    check_restore(
        "session_windows_restore_from_a_checkpoint_on_every_shape",
        10_000,
        model,
        |end, cut| end <= cut,
        job,
    );
}

/// Events of the process-function restore tests.
const REPORT_EVENTS: u64 = 30_000;

/// Event i of the process-function restore tests: key i % 5, value i % 17, timestamp i / 3 ms
/// (in order).
fn report_event(i: u64) -> (u64, i64, i64) {
    (i % 5, (i % 17) as i64, (i / 3) as i64)
}

/// What those tests report: per key and report time (50 ms after the values' timestamp), the
/// sum and count of the values.
fn report_later_model() -> Vec<(u64, tidal::engine::Time, i64, u64)> {
    let mut model: BTreeMap<(u64, i64), (i64, u64)> = BTreeMap::new();
    for i in 0..REPORT_EVENTS {
        let (k, v, ts) = report_event(i);
        let e = model.entry((k, ts + 50)).or_insert((0, 0));
        e.0 += v;
        e.1 += 1;
    }
    model
        .into_iter()
        .map(|((k, at), (s, n))| (k, at, s, n))
        .collect()
}

/// A keyed process function with state and event-time timers (per key, the sum and count of the
/// values at each timestamp, reported by a timer 50 ms later), checkpointed mid-run on 2 threads
/// and restored on 1 worker, 2 threads and 2 processes: reports before the cut plus the restored
/// run's reports are exactly the model's, none twice.
#[test]
fn process_functions_restore_state_and_timers_on_every_shape() {
    use tidal::engine::{Time, WatermarkStrategy};
    use tidal::operators::{KeyedProcessFunction, ProcessContext, TimeDomain};
    let test = "process_functions_restore_state_and_timers_on_every_shape";
    const EVENTS: u64 = REPORT_EVENTS;
    use report_event as event;
    /// Per key: (sum, count) per report time.
    type Pending = BTreeMap<Time, (i64, u64)>;
    /// `opened`: whether `open` was called (before any record or timer, restored ones too).
    struct ReportLater {
        opened: Option<bool>,
    }
    impl KeyedProcessFunction<u64, (i64, i64)> for ReportLater {
        type State = Pending;
        type Out = (u64, Time, i64, u64);
        type Side = ();
        fn open(&mut self, ctx: &tidal::operators::RuntimeContext<'_>) -> tidal::Result<()> {
            assert!(self.opened.is_none(), "opened once");
            self.opened = Some(ctx.restored());
            Ok(())
        }
        fn process_element(
            &mut self,
            (v, ts): (i64, i64),
            ctx: &mut ProcessContext<'_, u64, Pending, Self::Out, ()>,
        ) {
            assert!(self.opened.is_some(), "a record before open");
            let e = ctx.state().entry(ts + 50).or_insert((0, 0));
            e.0 += v;
            e.1 += 1;
            ctx.register_event_time_timer(ts + 50);
        }
        fn on_timer(
            &mut self,
            at: Time,
            _: TimeDomain,
            ctx: &mut ProcessContext<'_, u64, Pending, Self::Out, ()>,
        ) {
            assert!(self.opened.is_some(), "a timer before open");
            let key = *ctx.key();
            if let Some((sum, n)) = ctx.state().remove(&at) {
                ctx.output((key, at, sum, n));
            }
            if ctx.state().is_empty() {
                ctx.clear_state();
            }
        }
    }
    fn job(env: &mut Env<'_>, rate: Option<f64>) -> Collected<(u64, Time, i64, u64)> {
        let events = events(event, EVENTS, rate);
        let strategy = WatermarkStrategy::monotonous().with_timestamps(|e: &(u64, i64, i64)| e.2);
        env.generate_with(events, strategy)
            .map(|(k, v, ts)| (k, (v, ts)))
            .keyed()
            .process(ReportLater { opened: None })
            .collect()
    }
    let model = report_later_model();

    // A timer fires before the cut when its time is below it.
    check_restore(test, 2_000, model, |at, cut| at < cut, job);
}

/// Windows with a custom trigger and an evictor (per key, tumbling 100 ms windows that fire at
/// their end with the trait's event-time trigger and keep only the records of their last 50 ms),
/// checkpointed mid-run and restored on every shape: the windows' records, trigger state and
/// timers come back; results before the cut plus the restored run's equal the model's.
#[test]
fn windows_with_custom_triggers_and_evictors_restore_on_every_shape() {
    use tidal::engine::WatermarkStrategy;
    use tidal::operators::window::{EventTimeTrigger, Evictor};
    let test = "windows_with_custom_triggers_and_evictors_restore_on_every_shape";
    const EVENTS: u64 = 30_000;
    /// Event i: key i % 7, value i % 13, timestamp i / 2 ms (in order).
    fn event(i: u64) -> (u64, i64, i64) {
        (i % 7, (i % 13) as i64, (i / 2) as i64)
    }
    fn job(env: &mut Env<'_>, rate: Option<f64>) -> Collected<(u64, i64, i64, u64)> {
        let strategy = WatermarkStrategy::monotonous().with_timestamps(|e: &(u64, i64, i64)| e.2);
        env.generate_with(events(event, EVENTS, rate), strategy)
            .map(|(k, v, ts)| (k, (v, ts)))
            .keyed()
            .window(Windows::tumbling(Duration::from_millis(100)))
            .with_trigger(EventTimeTrigger)
            .evictor(Evictor::time(Duration::from_millis(50)))
            .aggregate_with(
                |v: (i64, i64)| (v.0, 1u64),
                |a, v| {
                    a.0 += v.0;
                    a.1 += 1
                },
                |k: &u64, w: &Window, a: &(i64, u64)| (*k, w.end, a.0, a.1),
            )
            .collect()
    }
    // Per key and window: the records within 50 ms of the window's latest one.
    let mut records: BTreeMap<(u64, i64), Vec<(i64, i64)>> = BTreeMap::new();
    for i in 0..EVENTS {
        let (k, v, ts) = event(i);
        records
            .entry((k, ts - ts % 100 + 100))
            .or_default()
            .push((v, ts));
    }
    let model: Vec<(u64, i64, i64, u64)> = records
        .into_iter()
        .map(|((k, end), rs)| {
            let latest = rs.iter().map(|r| r.1).max().unwrap();
            let kept: Vec<_> = rs.iter().filter(|r| r.1 > latest - 50).collect();
            (k, end, kept.iter().map(|r| r.0).sum(), kept.len() as u64)
        })
        .collect();
    check_restore(test, 5_000, model, |end, cut| end <= cut, job);
}

/// Broadcast state: rule versions broadcast to every worker and matched against a keyed stream
/// in event-time timers, checkpointed mid-run on 2 threads and restored on 1 worker, 2 threads and
/// 2 processes. The rules are read before the cut, so after a restore every worker has them only
/// from the checkpoint (written once, by worker 0): matches before the cut plus the restored run's
/// are the model's, none twice.
#[test]
fn broadcast_state_restores_on_every_worker_of_every_shape() {
    use tidal::engine::WatermarkStrategy;
    use tidal::operators::MapStateDescriptor;
    const EVENTS: u64 = 30_000;
    const VERSIONS: u64 = rules::RULES * 8;
    fn job(env: &mut Env<'_>, rate: Option<f64>) -> Collected<(u64, i64, i64, u64)> {
        let by_effect = |r: &(u64, i64, i64)| r.1;
        let by_time = |e: &(u64, i64, i64)| e.2;
        let rules = env
            .generate_with(
                events(rules::rule, VERSIONS, rate),
                WatermarkStrategy::monotonous().with_timestamps(by_effect),
            )
            .name("rules")
            .broadcast_state(&MapStateDescriptor::new("rules"));
        env.generate_with(
            events(rules::event, EVENTS, rate),
            WatermarkStrategy::monotonous().with_timestamps(by_time),
        )
        .name("events")
        .map(|(account, amount, ts)| (account, (amount, ts)))
        .keyed()
        .connect(rules)
        .process(rules::MatchRules)
        .filter(|r| r.0 != rules::ACCEPTED)
        .collect()
    }
    let model: Vec<(u64, i64, i64, u64)> = rules::model(EVENTS, VERSIONS)
        .into_iter()
        .filter(|r| r.0 != rules::ACCEPTED)
        .collect();
    check_restore(
        "broadcast_state_restores_on_every_worker_of_every_shape",
        2_000,
        model,
        |at, cut| at < cut,
        job,
    );
}

/// [`process_functions_restore_state_and_timers_on_every_shape`] with named states: per key a
/// map state of (sum, count) per report time and a value state counting reports, checkpointed mid-run and restored on every shape: reports before the
/// cut plus the restored run's are the model's, none twice (the named states come back, decoded
/// on first use).
#[test]
fn named_states_restore_on_every_shape() {
    use tidal::engine::{Time, WatermarkStrategy};
    use tidal::operators::process::named::{self, Map, StateDescriptor, Value};
    use tidal::operators::{KeyedProcessFunction, ProcessContext, TimeDomain};
    let test = "named_states_restore_on_every_shape";
    const EVENTS: u64 = REPORT_EVENTS;
    use report_event as event;
    struct ReportLater {
        pending: StateDescriptor<Map<Time, (i64, u64)>>,
        reports: StateDescriptor<Value<u64>>,
    }
    impl KeyedProcessFunction<u64, (i64, i64)> for ReportLater {
        type State = ();
        type Out = (u64, Time, i64, u64);
        type Side = ();
        fn process_element(
            &mut self,
            (v, ts): (i64, i64),
            ctx: &mut ProcessContext<'_, u64, (), Self::Out, ()>,
        ) {
            let mut s = ctx.named();
            let (sum, n) = s.map_get(&self.pending, &(ts + 50)).unwrap_or((0, 0));
            s.map_put(&self.pending, ts + 50, (sum + v, n + 1));
            ctx.register_event_time_timer(ts + 50);
        }
        fn on_timer(
            &mut self,
            at: Time,
            _: TimeDomain,
            ctx: &mut ProcessContext<'_, u64, (), Self::Out, ()>,
        ) {
            let key = *ctx.key();
            let mut s = ctx.named();
            let reports = s.value(&self.reports).unwrap_or(0);
            s.set_value(&self.reports, reports + 1);
            if let Some((sum, n)) = s.map_remove(&self.pending, &at) {
                ctx.output((key, at, sum, n));
            }
        }
    }
    fn job(env: &mut Env<'_>, rate: Option<f64>) -> Collected<(u64, Time, i64, u64)> {
        let strategy = WatermarkStrategy::monotonous().with_timestamps(|e: &(u64, i64, i64)| e.2);
        env.generate_with(events(event, EVENTS, rate), strategy)
            .map(|(k, v, ts)| (k, (v, ts)))
            .keyed()
            .process(ReportLater {
                pending: named::map_state("pending"),
                reports: named::value_state("reports"),
            })
            .collect()
    }
    let model = report_later_model();
    check_restore(test, 2_000, model, |at, cut| at < cut, job);
}

/// An interval join (pairs of the two inputs with the same key, the second 0..=25 ms after the
/// first), counted per key, checkpointed mid-run and restored on every shape: the final counts
/// equal the model's (the join's buffered records and the counts both come back).
#[test]
fn interval_joins_restore_from_a_checkpoint_on_every_shape() {
    use tidal::engine::WatermarkStrategy;
    const EVENTS: u64 = 20_000;
    fn left(i: u64) -> (u64, i64) {
        (i % 7, 3 * i as i64)
    }
    fn right(i: u64) -> (u64, i64) {
        (i % 5, 3 * i as i64 + 1)
    }
    fn job(env: &mut Env<'_>, rate: Option<f64>) -> Collected<(u64, i64, i64, u64)> {
        let ts = |e: &(u64, i64)| e.1;
        let lefts = env
            .generate_with(
                events(left, EVENTS, rate),
                WatermarkStrategy::monotonous().with_timestamps(ts),
            )
            .keyed();
        let rights = env
            .generate_with(
                events(right, EVENTS, rate),
                WatermarkStrategy::monotonous().with_timestamps(ts),
            )
            .keyed();
        lefts
            .connect(rights)
            .interval_join(0, 25, |k: &u64, _: &i64, _: &i64| (*k, ()))
            .keyed()
            .count()
            .final_values()
            .map(|(k, n)| (k, 0, 0, n))
            .collect()
    }
    let mut model: BTreeMap<u64, u64> = BTreeMap::new();
    for i in 0..EVENTS {
        let (k, t) = left(i);
        // Only rights i..=i+8 fall within 0..=25 ms after left i (times 3i and 3j + 1).
        for j in i..(i + 9).min(EVENTS) {
            let (k2, t2) = right(j);
            if k == k2 && t <= t2 && t2 <= t + 25 {
                *model.entry(k).or_insert(0) += 1;
            }
        }
    }
    let model: Vec<(u64, i64, i64, u64)> = model.into_iter().map(|(k, n)| (k, 0, 0, n)).collect();
    // Every result is counted into the final values: nothing is fired before the cut.
    let test = "interval_joins_restore_from_a_checkpoint_on_every_shape";
    let bytes = check_restore(test, 5_000, model, |_, _| false, job);
    if !is_child() {
        // The join keeps a record only until the watermark passes the times it can still
        // match (25 ms): at a cut past 5 s, a few records of the thousands read, not all. Kept
        // all, the more than 3 300 records read (a time and a value each) would take over
        // 53 kB; dropped, about 500 bytes — several times that when the watermark lags the
        // records read on a loaded machine (4 114 bytes seen in CI), so the bound is loose.
        eprintln!("interval join checkpoint: {bytes} bytes of state");
        assert!(
            bytes < 16_000,
            "the join's checkpoint holds {bytes} bytes of state: records are not dropped"
        );
    }
}

/// Count-triggered windows (per key, 1 s windows firing every 10 records) checkpointed mid-run
/// and restored on every shape: the number of times each window fired, counted into final
/// values, is the model's (the per-window record counts come back with the state).
#[test]
fn count_triggered_windows_restore_from_a_checkpoint_on_every_shape() {
    use tidal::engine::WatermarkStrategy;
    const EVENTS: u64 = 30_000;
    fn event(i: u64) -> (u64, i64) {
        (i % 3, i as i64)
    }
    fn job(env: &mut Env<'_>, rate: Option<f64>) -> Collected<(u64, i64, i64, u64)> {
        let events = events(event, EVENTS, rate);
        let strategy = WatermarkStrategy::monotonous().with_timestamps(|e: &(u64, i64)| e.1);
        env.generate_with(events, strategy)
            .map(|(k, _)| (k, 1u64))
            .keyed()
            .window(Windows::tumbling(Duration::from_secs(1)))
            .trigger(tidal::operators::Trigger::Count(10))
            .reduce(|a, b| *a += b)
            .map(|(k, _)| (k, ()))
            .keyed()
            .count()
            .final_values()
            .map(|(k, fires)| (k, 0, 0, fires))
            .collect()
    }
    // Per key: records per window (1000 ms of timestamps, a third of them per key), fired every 10.
    let mut per: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    for i in 0..EVENTS {
        let (k, ts) = event(i);
        *per.entry((k, ts / 1000)).or_insert(0) += 1;
    }
    let mut fires: BTreeMap<u64, u64> = BTreeMap::new();
    for ((k, _), n) in per {
        *fires.entry(k).or_insert(0) += n / 10;
    }
    let model: Vec<(u64, i64, i64, u64)> = fires.into_iter().map(|(k, n)| (k, 0, 0, n)).collect();
    check_restore(
        "count_triggered_windows_restore_from_a_checkpoint_on_every_shape",
        5_000,
        model,
        |_, _| false,
        job,
    );
}

const HOT_RECORDS: u64 = 60_000;

/// Records 0..20 000 bring 20 000 keys; the rest fall on 40 hot keys: after the first second,
/// each checkpoint interval changes a few dozen of 20 000 entries.
fn hot_key(i: u64) -> u64 {
    if i < 20_000 { i } else { i % 40 }
}

fn hot_counts(env: &mut Env<'_>, rate: Option<f64>) -> Collected<(u64, u64)> {
    env.generate(events(hot_key, HOT_RECORDS, rate))
        .key_by(|k| *k)
        .count()
        .final_values()
        .collect()
}

/// The newest complete checkpoint in `dir` taken mid-run that builds on earlier ones and whose
/// parts take less than a tenth of the state they restore.
fn small_incremental(dir: &Path) -> Option<Restored> {
    for (_, path) in list_checkpoints(dir) {
        let Ok(c) = read_checkpoint(&path) else {
            continue;
        };
        if mid_run(&c) && !c.needs.is_empty() && (c.bytes as usize) * 10 < state_bytes(&c) {
            return Some(c);
        }
    }
    None
}

/// Runs `job` paced at `rate` records/s on 2 threads with incremental checkpoints every 50 ms
/// into `first` (all kept) until `found()` holds after a completed checkpoint, stops it, and
/// returns what it collected.
fn run_incremental_until<T: Send + 'static>(
    first: &Path,
    rate: f64,
    job: fn(&mut Env<'_>, Option<f64>) -> Collected<T>,
    what: &str,
    found: impl Fn() -> bool,
) -> Vec<T> {
    let (listener, completed) = checkpoint_channel();
    let run = Job::local(2)
        .with_tick(Duration::from_millis(5))
        .quiet()
        .with_checkpoints(
            CheckpointConfig::new(first)
                .interval(Duration::from_millis(50))
                .keep(10_000)
                .incremental(true),
        )
        .on_checkpoint(listener);
    let stop = run.stop_handle();
    let runner = std::thread::spawn(move || run.run(move |env| job(env, Some(rate))));
    wait_for_checkpoint(&completed, what, |_| found().then_some(()));
    stop.stop();
    runner.join().unwrap().unwrap()
}

#[test]
fn incremental_checkpoints_write_what_changed_and_restore_on_every_shape() {
    let test = "incremental_checkpoints_write_what_changed_and_restore_on_every_shape";
    let dir = fixture_dir(test);
    let first = dir.join("first");
    if !is_child() {
        // About 3 s of input at 20 000 records/s.
        run_incremental_until(
            &first,
            20_000.0,
            hot_counts,
            "a small incremental checkpoint mid-run",
            || small_incremental(&first).is_some(),
        );
    }
    let chosen = small_incremental(&first)
        .expect("found by the first run")
        .path;
    let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
    for i in 0..HOT_RECORDS {
        *counts.entry(hot_key(i)).or_insert(0) += 1;
    }
    let oracle: Vec<(u64, u64)> = counts.into_iter().collect();
    restore_on_every_shape(
        test,
        &dir,
        &chosen,
        true,
        |env| hot_counts(env, None),
        |shape, out| {
            let out = sorted(out);
            let wrong = out.iter().zip(&oracle).filter(|(a, b)| a != b).count();
            assert!(
                out.len() == oracle.len() && wrong == 0,
                "{shape:?}: {} keys restored ({} expected), {wrong} counts wrong",
                out.len(),
                oracle.len()
            );
        },
    );
}

/// Upserts with a time to live (200 ms of event time), checkpointed incrementally mid-run while
/// keys expire between and across checkpoints, restored on every shape: the first run's changes
/// before the cut and the restored run's after it (none before), accumulated to every time,
/// equal the table recomputed from the whole input. Keys upserted before the cut expire when
/// the first run would have expired them (their last upsert time is in the checkpoint).
#[test]
fn upserts_with_a_time_to_live_restore_on_every_shape() {
    use tidal::engine::WatermarkStrategy;
    const EVENTS: u64 = 30_000;
    const TTL: Time = 200;
    type Upsert = (Time, u64, Option<u64>);
    type Row = (u64, u64);
    /// Upsert i: at i / 3 ms, one of 600 keys, a value 0..7 or (one in ten) a deletion.
    fn upsert(i: u64) -> Upsert {
        let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
        (
            (i / 3) as Time,
            h % 600,
            (!h.is_multiple_of(10)).then_some(h % 7),
        )
    }
    fn job(env: &mut Env<'_>, rate: Option<f64>) -> Collected<(Row, Time, isize)> {
        let strategy = WatermarkStrategy::monotonous().with_timestamps(|e: &Upsert| e.0);
        env.generate_with(events(upsert, EVENTS, rate), strategy)
            .name("upserts")
            .map(|(_, k, v)| (k, v))
            .upsert_by_key_with_ttl(Duration::from_millis(TTL as u64))
            .changes()
            .collect()
    }
    /// The newest complete incremental checkpoint taken mid-run with a cut past 1 s.
    fn chosen(dir: &Path) -> Option<Restored> {
        list_checkpoints(dir).into_iter().find_map(|(_, path)| {
            let c = read_checkpoint(&path).ok()?;
            (mid_run(&c) && !c.needs.is_empty() && c.cut > 1_000).then_some(c)
        })
    }
    let test = "upserts_with_a_time_to_live_restore_on_every_shape";
    let dir = fixture_dir(test);
    let first = dir.join("first");
    let mut first_out = Vec::new();
    if !is_child() {
        // About 3 s of input at 10 000 upserts/s.
        first_out = run_incremental_until(
            &first,
            10_000.0,
            job,
            "an incremental checkpoint past 1 s",
            || chosen(&first).is_some(),
        );
    }
    let checkpoint = chosen(&first).expect("found by the first run");
    let cut = checkpoint.cut;
    let upserts: Vec<Upsert> = (0..EVENTS).map(upsert).collect();
    let times: std::collections::BTreeSet<Time> =
        upserts.iter().flat_map(|(t, ..)| [*t, *t + TTL]).collect();
    first_out.retain(|(_, t, _)| *t < cut);
    restore_on_every_shape(
        test,
        &dir,
        &checkpoint.path,
        true,
        |env| job(env, None),
        |shape, out| {
            assert!(
                out.iter().all(|(_, t, _)| *t >= cut),
                "{shape:?}: a change before the cut"
            );
            let mut by_time: BTreeMap<Time, Vec<(Row, isize)>> = BTreeMap::new();
            let expiries_after_cut = out.iter().filter(|(_, _, d)| *d < 0).count();
            for (row, t, diff) in first_out.iter().cloned().chain(out) {
                by_time.entry(t).or_default().push((row, diff));
            }
            let mut table: BTreeMap<Row, isize> = BTreeMap::new();
            let mut changes = by_time.into_iter().peekable();
            // The model, swept through time: each key's last upsert so far.
            let mut last: BTreeMap<u64, (Time, Option<u64>)> = BTreeMap::new();
            let mut read = upserts.iter().peekable();
            for &t in &times {
                while let Some((time, _)) = changes.peek()
                    && *time <= t
                {
                    for (row, diff) in changes.next().unwrap().1 {
                        *table.entry(row).or_insert(0) += diff;
                    }
                }
                table.retain(|_, n| *n != 0);
                while let Some((time, k, v)) = read.next_if(|u| u.0 <= t) {
                    last.insert(*k, (*time, *v));
                }
                // Each key's last upsert at or before t, if a value less than TTL old.
                let expected: BTreeMap<Row, isize> = last
                    .iter()
                    .filter_map(|(k, (w, v))| v.filter(|_| t < w + TTL).map(|v| ((*k, v), 1)))
                    .collect();
                assert!(
                    table == expected,
                    "{shape:?}: cut {cut}, at {t} the table has {} rows, {} expected; {} differ",
                    table.len(),
                    expected.len(),
                    table
                        .iter()
                        .filter(|(r, n)| expected.get(*r) != Some(n))
                        .count()
                        + expected
                            .iter()
                            .filter(|(r, _)| !table.contains_key(*r))
                            .count()
                );
            }
            assert!(
                changes.next().is_none(),
                "{shape:?}: a change after the last expiry"
            );
            assert!(
                expiries_after_cut > 100,
                "{shape:?}: {expiries_after_cut} retractions after the cut"
            );
        },
    );
}

/// Two independent pipelines in one job: a long stream, and a small table whose timestamps run
/// far ahead of the stream's, read to its end long before the stream. A checkpoint taken after
/// the table has ended, at a cut the table's timestamps had passed while it was still being read,
/// restored on every shape: each pipeline's final counts equal a count of its whole input (the
/// table's records are neither lost nor counted twice, although the operator counting them is
/// fed by no source still running).
#[test]
fn a_source_that_ended_ahead_of_the_cut_is_restored_exactly_once() {
    use tidal::engine::WatermarkStrategy;
    let test = "a_source_that_ended_ahead_of_the_cut_is_restored_exactly_once";
    const STREAM: u64 = 30_000;
    const TABLE: u64 = 1_000;
    /// (pipeline, key, count): pipeline 0 counts the stream, 1 the table, per key i % 7.
    fn job(env: &mut Env<'_>, rate: Option<f64>) -> Collected<(u8, u64, u64)> {
        // The stream: 10 000 records/s in the first run, timestamps 1 ms apart (3 s of input).
        let by_ms = WatermarkStrategy::monotonous().with_timestamps(|i: &u64| *i as i64);
        let stream = env
            .generate_with(events(|i| i, STREAM, rate), by_ms)
            .name("stream")
            .key_by(|i| i % 7)
            .count()
            .final_values()
            .map(|(k, n)| (0u8, k, n));
        // The table: 2 000 records/s in the first run (half a second), 100 ms apart.
        let by_100ms = WatermarkStrategy::monotonous().with_timestamps(|i: &u64| *i as i64 * 100);
        let table = env
            .generate_with(events(|i| i, TABLE, rate.map(|r| r / 5.0)), by_100ms)
            .name("table")
            .key_by(|i| i % 7)
            .count()
            .final_values()
            .map(|(k, n)| (1u8, k, n));
        stream.union(table).collect()
    }
    let mut model = Vec::new();
    for (pipeline, n) in [(0u8, STREAM), (1, TABLE)] {
        for k in 0..7 {
            model.push((pipeline, k, (0..n).filter(|i| i % 7 == k).count() as u64));
        }
    }
    let dir = fixture_dir(test);
    let first = dir.join("first");
    let first_table = dir.join("first-table.txt");
    if !is_child() {
        // The first checkpoint starts 1 s in, a third of the way through the stream: the table
        // has ended by then, unfenced.
        let fired = run_until_checkpoint(
            &first,
            Duration::from_secs(1),
            10_000.0,
            |cut| cut > 5_000 && cut < STREAM as i64,
            job,
        );
        // The table's pipeline finished in the first run, before the cut: its counts are
        // results of that run (a sink commits them with the checkpoint).
        let table: String = fired
            .into_iter()
            .filter(|r| r.0 == 1)
            .map(|(p, k, n)| format!("{p} {k} {n}\n"))
            .collect();
        std::fs::write(&first_table, table).unwrap();
    }
    let checkpoint = latest_valid(&first).expect("a checkpoint");
    for (i, shape) in SHAPES.into_iter().enumerate() {
        let own = dir.join(format!("restored-{i}"));
        let out = run_restored(test, shape, &checkpoint.path, own, job);
        if is_child() {
            continue;
        }
        // Every count exactly once across the two runs: the stream's from the restored run,
        // the table's from whichever run finished its pipeline.
        let mut all: Vec<(u8, u64, u64)> = std::fs::read_to_string(&first_table)
            .unwrap()
            .lines()
            .map(|l| {
                let f: Vec<u64> = l.split(' ').map(|x| x.parse().unwrap()).collect();
                (f[0] as u8, f[1], f[2])
            })
            .collect();
        all.extend(out);
        assert_eq!(sorted(all), model, "{shape:?}");
    }
}

/// A source reader is told of every checkpoint that completes with its own position in it: on 2
/// workers with checkpoints every 20 ms, each instance's notices name completed checkpoints, come
/// in increasing order, and carry exactly the position that instance has in that checkpoint.
#[test]
fn readers_learn_of_completed_checkpoints_with_their_position_in_them() {
    use std::sync::{Arc, Mutex};
    use tidal::engine::{Poll, SourceReader};
    /// (worker, checkpoint id, position) of each notice.
    type Notices = Arc<Mutex<Vec<(u8, u64, Vec<u8>)>>>;
    /// Counts up, paced; its position is its worker and next number.
    struct Numbers {
        worker: u8,
        next: u64,
        notices: Notices,
    }
    impl SourceReader for Numbers {
        type Item = u64;
        fn read(&mut self, out: &mut Vec<u64>, _max: usize) -> Poll {
            out.extend(self.next..self.next + 20);
            self.next += 20;
            Poll::Pending(Duration::from_millis(1))
        }
        fn position(&self) -> Option<Vec<u8>> {
            let mut p = vec![self.worker];
            p.extend(self.next.to_le_bytes());
            Some(p)
        }
        fn checkpoint_complete(&mut self, id: u64, position: &[u8]) -> tidal::Result<()> {
            let notice = (self.worker, id, position.to_vec());
            self.notices.lock().unwrap().push(notice);
            Ok(())
        }
    }
    let dir = fixture_dir("readers_learn_of_completed_checkpoints");
    let notices: Notices = Arc::new(Mutex::new(Vec::new()));
    let (tx, completed) = mpsc::channel::<CompletedCheckpoint>();
    let job = Job::local(2)
        .quiet()
        .with_checkpoints(
            CheckpointConfig::new(dir.join("c"))
                .interval(Duration::from_millis(20))
                .keep(1_000),
        )
        .on_checkpoint(move |c| drop(tx.send(c.clone())));
    let stop = job.stop_handle();
    let n = Arc::clone(&notices);
    let runner = std::thread::spawn(move || {
        job.run(move |env| {
            let worker = env.worker_index() as u8;
            let reader = Numbers {
                worker,
                next: 0,
                notices: Arc::clone(&n),
            };
            env.source("numbers", reader).map(|_| ()).collect()
        })
    });
    // Run until both instances have heard of at least five checkpoints.
    let deadline = Instant::now() + Duration::from_secs(60);
    while (0..2u8).any(|w| notices.lock().unwrap().iter().filter(|n| n.0 == w).count() < 5) {
        assert!(Instant::now() < deadline, "too few notices within 60 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.stop();
    let _: Vec<()> = runner.join().unwrap().unwrap();
    let checkpoints: BTreeMap<u64, Restored> = completed
        .try_iter()
        .map(|c| (c.id, checkpoint::read_checkpoint(&c.location).unwrap()))
        .collect();
    let notices = notices.lock().unwrap().clone();
    for w in 0..2u8 {
        let ids: Vec<u64> = notices.iter().filter(|n| n.0 == w).map(|n| n.1).collect();
        assert!(ids.windows(2).all(|p| p[0] < p[1]), "worker {w}: {ids:?}");
    }
    for (worker, id, position) in &notices {
        let c = checkpoints
            .get(id)
            .unwrap_or_else(|| panic!("notice of checkpoint {id}, which did not complete"));
        let theirs: Vec<&Vec<u8>> = c
            .parts
            .iter()
            .flat_map(|p| &p.sources)
            .filter_map(|(_, s)| match s {
                SourcePosition::At { position, .. } if position[0] == *worker => Some(position),
                _ => None,
            })
            .collect();
        assert_eq!(theirs, vec![position], "worker {worker}, checkpoint {id}");
    }
}
