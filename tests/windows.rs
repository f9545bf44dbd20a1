//! Event-time windows against a from-scratch model: tumbling and sliding windows over out-of-order
//! input on every shape; lateness, allowed lateness and the late side output on a deterministic
//! watermark (a tick of zero advances it after every record).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{SHAPES, on_every_shape, run_with, sorted};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tidal::engine::WatermarkStrategy;
use tidal::prelude::*;

/// (key, value, timestamp): timestamps rise by 0..20 ms per event and are then shuffled by up to
/// `disorder` ms, so a bounded-out-of-orderness watermark of `disorder` ms sees no late event.
fn events(seed: u64, n: usize, disorder: i64) -> Arc<Vec<(u8, i64, i64)>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut t = 1_600_000_000_000i64;
    let mut out: Vec<(u8, i64, i64)> = (0..n)
        .map(|_| {
            t += rng.random_range(0..20);
            (rng.random_range(0..8), rng.random_range(-50..50), t)
        })
        .collect();
    // Displace each event by up to `disorder` ms: sort by a jittered time.
    let mut keyed: Vec<(i64, (u8, i64, i64))> = out
        .drain(..)
        .map(|e| (e.2 + rng.random_range(0..=disorder), e))
        .collect();
    keyed.sort_by_key(|(k, _)| *k);
    Arc::new(keyed.into_iter().map(|(_, e)| e).collect())
}

fn strategy(disorder: i64) -> WatermarkStrategy<(u8, i64, i64)> {
    WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(disorder as u64))
        .with_timestamps(|e: &(u8, i64, i64)| e.2)
}

/// The model: per (key, window start) the sum and count of values.
fn model(input: &[(u8, i64, i64)], windows: Windows) -> BTreeMap<(u8, i64), (i64, u64)> {
    let mut out = BTreeMap::new();
    for &(k, v, ts) in input {
        for w in windows.windows_of(ts) {
            let e = out.entry((k, w.start)).or_insert((0, 0));
            e.0 += v;
            e.1 += 1;
        }
    }
    out
}

#[test]
fn tumbling_and_sliding_windows_match_the_model() {
    let disorder = 200;
    for (seed, windows) in [
        (1, Windows::tumbling(Duration::from_secs(1))),
        (
            2,
            Windows::tumbling(Duration::from_millis(700)).with_offset(Duration::from_millis(250)),
        ),
        (
            3,
            Windows::sliding(Duration::from_secs(2), Duration::from_millis(500)),
        ),
    ] {
        let input = events(seed, 20_000, disorder);
        let expected: Vec<(u8, i64, i64, u64)> = model(&input, windows)
            .into_iter()
            .map(|((k, s), (sum, n))| (k, s, sum, n))
            .collect();
        let data = Arc::clone(&input);
        on_every_shape(
            "tumbling_and_sliding_windows_match_the_model",
            move |env| {
                env.from_iter_with(data.to_vec(), strategy(disorder))
                    .map(|(k, v, _)| (k, v))
                    .keyed()
                    .window(windows)
                    .aggregate_with(
                        |v| (v, 1u64),
                        |a, v| {
                            a.0 += v;
                            a.1 += 1
                        },
                        |a, b| {
                            a.0 += b.0;
                            a.1 += b.1
                        },
                        |k: &u8, w: &Window, a: &(i64, u64)| (*k, w.start, a.0, a.1),
                    )
                    .collect()
            },
            |shape, out| {
                assert!(
                    sorted(out) == expected,
                    "{shape:?} {windows:?}: window results differ from the model"
                )
            },
        );
    }
}

#[test]
fn window_results_carry_the_window_end_as_timestamp_and_process_sees_all_values() {
    let input = events(9, 5_000, 50);
    let windows = Windows::tumbling(Duration::from_millis(300));
    let mut expected: BTreeMap<(u8, i64), Vec<i64>> = BTreeMap::new();
    for &(k, v, ts) in input.iter() {
        expected
            .entry((k, windows.windows_of(ts)[0].start))
            .or_default()
            .push(v);
    }
    let expected: Vec<(u8, i64, Vec<i64>)> = expected
        .into_iter()
        .map(|((k, s), mut vs)| {
            vs.sort();
            (k, s, vs)
        })
        .collect();
    let data = Arc::clone(&input);
    on_every_shape(
        "window_results_carry_the_window_end_as_timestamp_and_process_sees_all_values",
        move |env| {
            env.from_iter_with(data.to_vec(), strategy(50))
                .map(|(k, v, _)| (k, v))
                .keyed()
                .window(windows)
                .process(|k: &u8, w: &Window, values: &[i64]| {
                    let mut vs = values.to_vec();
                    vs.sort();
                    (*k, w.start, vs)
                })
                .collect()
        },
        |shape, out| assert!(sorted(out) == expected, "{shape:?}: process results differ"),
    );
}

/// One worker, watermark advanced after every record: which records are late is deterministic.
/// The model replays the same watermark: before event i it is max(ts of events before i) - bound - 1.
#[test]
#[allow(clippy::type_complexity)]
fn late_records_go_to_the_side_output_and_allowed_lateness_refires() {
    let bound = 20i64;
    // Events with some displaced far beyond the bound.
    let mut rng = SmallRng::seed_from_u64(77);
    let mut t = 0i64;
    let input: Vec<(u8, i64, i64)> = (0..3000)
        .map(|i| {
            t += rng.random_range(0..10);
            let ts = if i % 37 == 0 {
                t - rng.random_range(0..400)
            } else {
                t
            };
            (rng.random_range(0..3), 1, ts)
        })
        .collect();
    let windows = Windows::tumbling(Duration::from_millis(100));
    for lateness in [0i64, 150] {
        // Model.
        let mut watermark = i64::MIN;
        let mut max_ts = i64::MIN;
        let mut kept: BTreeMap<(u8, i64), i64> = BTreeMap::new();
        let mut late = Vec::new();
        let mut refires = 0usize;
        for &(k, v, ts) in &input {
            let w = windows.windows_of(ts)[0];
            if w.end + lateness <= watermark.saturating_add(1) {
                late.push((k, v, ts));
            } else {
                *kept.entry((k, w.start)).or_insert(0) += v;
                if w.end <= watermark.saturating_add(1) {
                    refires += 1;
                }
            }
            max_ts = max_ts.max(ts);
            watermark = max_ts - bound - 1;
        }
        let data = input.clone();
        let (results, late_out): (Vec<(u8, i64, i64)>, Vec<(u8, (i64, i64))>) = Job::local(1)
            .with_tick(Duration::ZERO)
            .quiet()
            .run(move |env| {
                let tag = OutputTag::new();
                let sums = env
                    .from_iter_with(data.clone(), strategy(bound))
                    .map(|(k, v, ts)| (k, (v, ts)))
                    .keyed()
                    .window(windows)
                    .allowed_lateness(Duration::from_millis(lateness as u64))
                    .side_output_late_data(&tag)
                    .aggregate_with(
                        |v: (i64, i64)| v.0,
                        |a, v| *a += v.0,
                        |a, b| *a += b,
                        |k: &u8, w: &Window, a: &i64| (*k, w.start, *a),
                    );
                (sums.collect(), tag.stream().collect())
            })
            .unwrap();
        // The last result per window is the model's sum of the records kept.
        let mut last: BTreeMap<(u8, i64), i64> = BTreeMap::new();
        for (k, s, sum) in &results {
            let e = last.entry((*k, *s)).or_insert(i64::MIN);
            *e = (*e).max(*sum);
        }
        assert_eq!(last, kept, "lateness {lateness}: final window results");
        let late_out: Vec<(u8, i64, i64)> = late_out
            .into_iter()
            .map(|(k, (v, ts))| (k, v, ts))
            .collect();
        assert_eq!(
            sorted(late_out),
            sorted(late.clone()),
            "lateness {lateness}: late side output"
        );
        assert!(!late.is_empty(), "the input has late records");
        assert_eq!(
            results.len(),
            kept.len() + refires,
            "lateness {lateness}: one result per window plus one per late refire"
        );
        if lateness > 0 {
            assert!(
                refires > 0,
                "some late records fall within the allowed lateness"
            );
        }
    }
}

/// Late records without a side output are dropped and counted in the job report.
#[test]
fn dropped_late_records_are_reported() {
    // The window operator, and the same windows with a custom trigger (a process function).
    for custom in [false, true] {
        let (_, report) = Job::local(1)
            .with_tick(Duration::ZERO)
            .quiet()
            .run_with_report(move |env| {
                let windowed = env
                    .from_iter_with(
                        vec![(0u8, 5i64), (0, 50), (0, 1), (0, 2)],
                        WatermarkStrategy::monotonous().with_timestamps(|e: &(u8, i64)| e.1),
                    )
                    .keyed()
                    .window(Windows::tumbling(Duration::from_millis(10)));
                if custom {
                    windowed
                        .with_trigger(tidal::operators::window::EventTimeTrigger)
                        .reduce(|a, b| *a += b)
                        .collect()
                } else {
                    windowed.reduce(|a, b| *a += b).collect()
                }
            })
            .unwrap();
        assert_eq!(
            report.late_dropped.values().sum::<u64>(),
            2,
            "custom trigger {custom}: {:?}",
            report.late_dropped
        );
    }
}

/// Session windows: per key, sorted timestamps split where a record starts after the session's
/// end (last timestamp + gap). Timestamps are even and the gap odd, so no record falls exactly on
/// a session's end (where the outcome would depend on whether the session has fired yet).
#[test]
fn session_windows_match_the_model() {
    let gap: i64 = 41;
    for seed in [21, 22] {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut t = 0i64;
        let mut input: Vec<(i64, (u8, i64, i64))> = (0..15_000)
            .map(|_| {
                t += 2 * rng.random_range(0..6);
                let e = (rng.random_range(0..20), rng.random_range(-9..10), t);
                (t + rng.random_range(0..=30), e)
            })
            .collect();
        input.sort_by_key(|(k, _)| *k);
        let input: Arc<Vec<(u8, i64, i64)>> = Arc::new(input.into_iter().map(|(_, e)| e).collect());
        // Model.
        let mut per_key: BTreeMap<u8, Vec<(i64, i64)>> = BTreeMap::new();
        for &(k, v, ts) in input.iter() {
            per_key.entry(k).or_default().push((ts, v));
        }
        let mut expected = Vec::new();
        for (k, mut recs) in per_key {
            recs.sort();
            let mut cur: Option<(i64, i64, i64, u64)> = None; // start, end, sum, count
            for (ts, v) in recs {
                cur = match cur {
                    Some((s, e, sum, n)) if ts <= e => Some((s, e.max(ts + gap), sum + v, n + 1)),
                    Some(done) => {
                        expected.push((k, done.0, done.1, done.2, done.3));
                        Some((ts, ts + gap, v, 1))
                    }
                    None => Some((ts, ts + gap, v, 1)),
                };
            }
            if let Some(done) = cur {
                expected.push((k, done.0, done.1, done.2, done.3));
            }
        }
        let expected = sorted(expected);
        let data = Arc::clone(&input);
        on_every_shape(
            "session_windows_match_the_model",
            move |env| {
                env.from_iter_with(data.to_vec(), strategy(30))
                    .map(|(k, v, _)| (k, v))
                    .keyed()
                    .window(Windows::session(Duration::from_millis(gap as u64)))
                    .aggregate_with(
                        |v| (v, 1u64),
                        |a, v| {
                            a.0 += v;
                            a.1 += 1
                        },
                        |a, b| {
                            a.0 += b.0;
                            a.1 += b.1
                        },
                        |k: &u8, w: &Window, a: &(i64, u64)| (*k, w.start, w.end, a.0, a.1),
                    )
                    .collect()
            },
            |shape, out| {
                let out = sorted(out);
                assert_eq!(
                    out.len(),
                    expected.len(),
                    "{shape:?} seed {seed}: number of sessions"
                );
                assert!(
                    out == expected,
                    "{shape:?} seed {seed}: sessions differ from the model"
                );
            },
        );
    }
}

/// A count trigger fires a key's window at every n-th record and not at its end.
#[test]
fn count_trigger_fires_every_n_records() {
    use tidal::operators::Trigger;
    let input = events(31, 10_000, 100);
    let windows = Windows::tumbling(Duration::from_millis(500));
    let every = 7u64;
    let mut expected = Vec::new();
    for ((k, start), (_, n)) in model(&input, windows) {
        for m in 1..=(n / every) {
            expected.push((k, start, m * every));
        }
    }
    let expected = sorted(expected);
    let data = Arc::clone(&input);
    on_every_shape(
        "count_trigger_fires_every_n_records",
        move |env| {
            env.from_iter_with(data.to_vec(), strategy(100))
                .map(|(k, v, _)| (k, v))
                .keyed()
                .window(windows)
                .trigger(Trigger::Count(every))
                .aggregate_with(
                    |_| 1u64,
                    |n, _| *n += 1,
                    |n, m| *n += m,
                    |k: &u8, w: &Window, n: &u64| (*k, w.start, *n),
                )
                .collect()
        },
        |shape, out| {
            assert!(
                sorted(out) == expected,
                "{shape:?}: count-triggered results differ"
            )
        },
    );
}

/// Processing-time windows follow the job's clock: with the clock standing still, every record
/// falls in the window of that instant, which fires when the input ends.
#[test]
fn processing_time_windows_follow_the_job_clock() {
    use tidal::engine::{JobClock, ManualClock};
    let clock = ManualClock::new(1_700_000_123_456);
    for workers in [1, 2] {
        let out: Vec<(u8, i64, u64)> = Job::local(workers)
            .with_clock(JobClock::manual(&clock))
            .run(|env| {
                env.from_iter(0..3000u32)
                    .key_by(|x| (x % 3) as u8)
                    .window(Windows::tumbling(Duration::from_secs(60)))
                    .in_processing_time()
                    .aggregate_with(
                        |_| 1u64,
                        |n, _| *n += 1,
                        |n, m| *n += m,
                        |k: &u8, w: &Window, n: &u64| (*k, w.start, *n),
                    )
                    .collect()
            })
            .unwrap();
        let start = 1_700_000_123_456 - 1_700_000_123_456 % 60_000;
        assert_eq!(
            sorted(out),
            vec![(0, start, 1000), (1, start, 1000), (2, start, 1000)],
            "{workers} workers"
        );
    }
}

/// A source instance that reads nothing holds the watermark back; marked idle, it lets windows
/// fire as the other instance's watermark advances.
#[test]
fn an_idle_source_instance_does_not_hold_back_windows() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tidal::engine::{Poll, SourceReader};

    /// Worker 0 reads events 10 ms apart in event time (200 per read); worker 1 reads nothing.
    struct Events {
        worker: usize,
        next: i64,
    }
    impl SourceReader for Events {
        type Item = (u8, i64);
        fn read(&mut self, out: &mut Vec<(u8, i64)>, _max: usize) -> Poll {
            if self.worker == 0 && self.next < 100_000 {
                for _ in 0..200 {
                    out.push((0, self.next));
                    self.next += 10;
                }
            }
            Poll::Pending(Duration::from_millis(5))
        }
    }

    let job = Job::local(2).quiet();
    let stop = job.stop_handle();
    let saw_window = Arc::new(AtomicBool::new(false));
    let saw = Arc::clone(&saw_window);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let runner = std::thread::spawn(move || {
        let out: Vec<(i64, u64)> = job
            .run(move |env| {
                let worker = env.worker_index();
                let stop = stop.clone();
                let saw = Arc::clone(&saw);
                env.source_with(
                    "events",
                    Events { worker, next: 0 },
                    WatermarkStrategy::monotonous()
                        .with_timestamps(|e: &(u8, i64)| e.1)
                        .with_idleness(Duration::from_millis(50)),
                )
                .keyed()
                .window(Windows::tumbling(Duration::from_millis(100)))
                .aggregate_with(
                    |_| 1u64,
                    |n, _| *n += 1,
                    |n, m| *n += m,
                    |_: &u8, w: &Window, n: &u64| (w.start, *n),
                )
                .inspect(move |_| {
                    // A window fired while worker 1 still reads nothing: stop the job.
                    saw.store(true, Ordering::SeqCst);
                    stop.stop();
                })
                .collect()
            })
            .unwrap();
        done_tx.send(out).unwrap();
    });
    let out = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("windows fired although one source instance is idle");
    runner.join().unwrap();
    assert!(saw_window.load(Ordering::SeqCst));
    // Every window that fired before the stop is complete: 10 events of 10 ms in 100 ms.
    let full: Vec<_> = out.iter().filter(|(_, n)| *n == 10).collect();
    assert!(!full.is_empty(), "{out:?}");
}

/// A reader of two splits, one 5 s of event time ahead of the other, read in turns. With one
/// watermark generator per split the instance's watermark is the lagging split's, so nothing is
/// late; with one generator for the whole reader the lagging split's records would all be late.
#[test]
fn each_split_has_its_own_watermark() {
    use tidal::engine::{Poll, SourceReader, SplitId};

    const START: [i64; 2] = [5_000, 0];
    const END: [i64; 2] = [25_000, 20_000];
    /// Reads 10 records 7 ms apart from each split in turn.
    struct TwoSplits {
        per_split: bool,
        next: [i64; 2],
        turn: usize,
        last: Option<SplitId>,
        started: Vec<SplitId>,
        ended: Vec<SplitId>,
    }
    impl SourceReader for TwoSplits {
        type Item = (u8, i64);
        fn read(&mut self, out: &mut Vec<(u8, i64)>, _max: usize) -> Poll {
            if self.next.iter().zip(END).all(|(n, e)| *n >= e) {
                return Poll::Done;
            }
            let s = self.turn;
            self.turn = 1 - self.turn;
            if self.next[s] >= END[s] {
                return Poll::Ready;
            }
            for _ in 0..10 {
                out.push((s as u8, self.next[s]));
                self.next[s] += 7;
            }
            self.last = Some(s as SplitId);
            if self.next[s] >= END[s] {
                self.ended.push(s as SplitId);
            }
            Poll::Ready
        }
        fn last_split(&self) -> Option<SplitId> {
            self.last.filter(|_| self.per_split)
        }
        fn started_splits(&mut self, started: &mut Vec<SplitId>) {
            started.append(&mut self.started);
        }
        fn finished_splits(&mut self, finished: &mut Vec<SplitId>) {
            finished.append(&mut self.ended);
        }
    }

    let mut model: BTreeMap<(u8, i64), u64> = BTreeMap::new();
    for s in 0..2 {
        let mut t = START[s];
        while t < END[s] {
            for _ in 0..10 {
                *model.entry((s as u8, t - t % 1000)).or_insert(0) += 1;
                t += 7;
            }
        }
    }
    let run = |workers: usize, per_split: bool| {
        Job::local(workers)
            .with_tick(Duration::ZERO)
            .quiet()
            .run_with_report(move |env| {
                let first = env.worker_index() == 0;
                let reader = TwoSplits {
                    per_split,
                    next: if first { START } else { END },
                    turn: 0,
                    last: None,
                    // Both splits are assigned from the start (as partitions are).
                    started: if first && per_split {
                        vec![0, 1]
                    } else {
                        vec![]
                    },
                    ended: Vec::new(),
                };
                env.source_with(
                    "splits",
                    reader,
                    WatermarkStrategy::monotonous().with_timestamps(|e: &(u8, i64)| e.1),
                )
                .map(|e| (e.0, ()))
                .keyed()
                .window(Windows::tumbling(Duration::from_secs(1)))
                .aggregate_with(
                    |_| 1u64,
                    |n, _| *n += 1,
                    |n, m| *n += m,
                    |k: &u8, w: &Window, n: &u64| (*k, w.start, *n),
                )
                .collect()
            })
            .unwrap()
    };
    for workers in [1, 2] {
        let (out, report): (Vec<(u8, i64, u64)>, _) = run(workers, true);
        let got: BTreeMap<(u8, i64), u64> = out.into_iter().map(|(k, s, n)| ((k, s), n)).collect();
        assert_eq!(got, model, "{workers} workers");
        assert!(report.late_dropped.is_empty(), "{:?}", report.late_dropped);
    }
    // The same reader without split information: one generator, and the lagging split is late.
    let (_, report) = run(1, false);
    assert!(report.late_dropped.values().sum::<u64>() > 0);
}

/// Idleness across processes: only the instance on worker 0 reads; the other instance (on another
/// thread, or in another process) is idle and follows it, so windows fire while both sources are
/// still running. Each source ends once a window has fired in its process, or after 30 s: windows
/// that fire only then (when a source ending releases the watermark) fail the test.
#[test]
fn an_idle_source_instance_in_another_process_does_not_hold_back_windows() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;
    use tidal::engine::{Poll, SourceReader};

    static FIRED: AtomicBool = AtomicBool::new(false);
    const GIVE_UP: Duration = Duration::from_secs(30);
    struct Events {
        worker: usize,
        next: i64,
        deadline: Instant,
    }
    impl SourceReader for Events {
        type Item = (u8, i64);
        fn read(&mut self, out: &mut Vec<(u8, i64)>, _max: usize) -> Poll {
            if FIRED.load(Ordering::SeqCst) {
                return Poll::Done;
            }
            if Instant::now() > self.deadline {
                return Poll::Done;
            }
            if self.worker == 0 && self.next < 100_000 {
                for _ in 0..200 {
                    out.push(((self.next / 10 % 8) as u8, self.next));
                    self.next += 10;
                }
            }
            Poll::Pending(Duration::from_millis(5))
        }
    }

    on_every_shape(
        "an_idle_source_instance_in_another_process_does_not_hold_back_windows",
        |env| {
            FIRED.store(false, Ordering::SeqCst);
            let started = Instant::now();
            let reader = Events {
                worker: env.worker_index(),
                next: 0,
                deadline: started + GIVE_UP,
            };
            env.source_with(
                "events",
                reader,
                WatermarkStrategy::monotonous()
                    .with_timestamps(|e: &(u8, i64)| e.1)
                    .with_idleness(Duration::from_millis(50)),
            )
            .keyed()
            .window(Windows::tumbling(Duration::from_millis(100)))
            .aggregate_with(
                |_| 1u64,
                |n, _| *n += 1,
                |n, m| *n += m,
                // Fired well before any source gave up (processes start within a second or two).
                move |_: &u8, w: &Window, n: &u64| (w.start, *n, started.elapsed() < GIVE_UP / 2),
            )
            .inspect(|_| FIRED.store(true, Ordering::SeqCst))
            .collect()
        },
        |shape, out| {
            assert!(
                out.iter().any(|(_, n, in_time)| *n > 0 && *in_time),
                "{shape:?}: no window fired while the sources ran: {out:?}"
            );
        },
    );
}

/// Aggregations combine records into partial accumulators before the exchange; a window function
/// that sees all values (`process`) does not. In one job both read the same stream, so each
/// record arrives at both at the same watermark step: results, late refires and the late side
/// output must be the same. Late input comes from records displaced far behind the watermark;
/// with a tick of zero every record is its own watermark step, with 1 ms a step holds many.
#[test]
#[allow(clippy::type_complexity)]
fn combining_before_the_exchange_changes_no_result() {
    let mut rng = SmallRng::seed_from_u64(5);
    let mut t = 0i64;
    let input: Arc<Vec<(u8, i64, i64)>> = Arc::new(
        (0..30_000)
            .map(|i| {
                t += rng.random_range(0..3);
                let ts = if i % 41 == 0 {
                    t - rng.random_range(0..600)
                } else {
                    t
                };
                (rng.random_range(0..5), rng.random_range(-9..10), ts)
            })
            .collect(),
    );
    for (tick, windows) in [
        (
            Duration::ZERO,
            Windows::tumbling(Duration::from_millis(100)),
        ),
        (
            Duration::ZERO,
            Windows::sliding(Duration::from_millis(200), Duration::from_millis(50)),
        ),
        (
            Duration::from_millis(1),
            Windows::sliding(Duration::from_millis(200), Duration::from_millis(50)),
        ),
    ] {
        for shape in SHAPES {
            let data = Arc::clone(&input);
            let out = run_with(
                "combining_before_the_exchange_changes_no_result",
                shape,
                move |job| job.with_tick(tick),
                move |env| {
                    // (path: 0 combined, 1 plain; late?; key; window start or timestamp; sum
                    // or value; count)
                    let events = env
                        .from_iter_with(data.to_vec(), strategy(20))
                        .map(|(k, v, ts)| (k, (v, ts)));
                    let (combined_late, plain_late) = (OutputTag::new(), OutputTag::new());
                    let combined = events
                        .clone()
                        .keyed()
                        .window(windows)
                        .allowed_lateness(Duration::from_millis(120))
                        .side_output_late_data(&combined_late)
                        .aggregate_with(
                            |v: (i64, i64)| (v.0, 1u64),
                            |a, v| {
                                a.0 += v.0;
                                a.1 += 1
                            },
                            |a, b| {
                                a.0 += b.0;
                                a.1 += b.1
                            },
                            |k: &u8, w: &Window, a: &(i64, u64)| {
                                (0u8, false, *k, w.start, a.0, a.1)
                            },
                        );
                    let plain = events
                        .keyed()
                        .window(windows)
                        .allowed_lateness(Duration::from_millis(120))
                        .side_output_late_data(&plain_late)
                        .process(|k: &u8, w: &Window, vs: &[(i64, i64)]| {
                            let sum = vs.iter().map(|v| v.0).sum();
                            (1u8, false, *k, w.start, sum, vs.len() as u64)
                        });
                    combined
                        .union(plain)
                        .union(
                            combined_late
                                .stream()
                                .map(|(k, (v, ts))| (0u8, true, k, ts, v, 1u64)),
                        )
                        .union(
                            plain_late
                                .stream()
                                .map(|(k, (v, ts))| (1u8, true, k, ts, v, 1u64)),
                        )
                        .collect()
                },
            );
            if common::is_child() {
                continue; // process 1 of a run: process 0 checks
            }
            // Per path: per (key, window start) the number of results and the final result (the
            // one with the most records), and the late records. Within a watermark step, records
            // from two workers arrive in no fixed order, so intermediate refire results may differ.
            let of = |path: u8| {
                let mut windows: BTreeMap<(u8, i64), (usize, (u64, i64))> = BTreeMap::new();
                let mut late = Vec::new();
                for &(p, is_late, k, at, sum, n) in &out {
                    if p != path {
                        continue;
                    }
                    if is_late {
                        late.push((k, at, sum));
                    } else {
                        let e = windows.entry((k, at)).or_insert((0, (0, 0)));
                        e.0 += 1;
                        e.1 = e.1.max((n, sum));
                    }
                }
                (windows, sorted(late))
            };
            let (combined, plain) = (of(0), of(1));
            assert!(
                combined == plain,
                "{shape:?} tick {tick:?} {windows:?}: combined and plain windows differ"
            );
            let (results, late) = plain;
            let refires: usize = results.values().map(|r| r.0 - 1).sum();
            if tick == Duration::ZERO {
                assert!(!late.is_empty(), "{shape:?}: the input has late records");
                assert!(
                    refires > 0,
                    "{shape:?}: late records within the allowed lateness refire windows"
                );
            }
        }
    }
}

/// Custom triggers: the built-in triggers reimplemented on [`WindowTrigger`] give what the
/// window operator gives for the same input in the same job (event time with records late and
/// within the allowed lateness, refires and the late side output; the count trigger), on every
/// shape — result for result on one worker; on several, each window's number of firings and last
/// result (late records of one time may reach the two operators in different orders).
#[test]
#[allow(clippy::type_complexity)]
fn built_in_triggers_on_the_trigger_trait_match_the_window_operator() {
    use tidal::operators::Trigger;
    use tidal::operators::window::{CountTrigger, EventTimeTrigger};
    // Out of order by up to 600 ms against a bound of 40 ms: many records are late.
    let input = events(41, 20_000, 600);
    let windows = Windows::sliding(Duration::from_millis(200), Duration::from_millis(100));
    type Out = (u8, i64, i64, u64);
    let data = Arc::clone(&input);
    let test = "built_in_triggers_on_the_trigger_trait_match_the_window_operator";
    for shape in SHAPES {
        let data = Arc::clone(&data);
        // Read over 0.2 s, the watermark advances between batches: many records are late.
        let out = run_with(
            test,
            shape,
            |job| job.with_tick(Duration::ZERO).quiet(),
            move |env| {
                let (data, n) = (Arc::clone(&data), data.len() as u64);
                let events = env
                    .generate_with(
                        Generator::new(move |i| data[i as usize])
                            .count(n)
                            .rate(100_000.0),
                        strategy(40),
                    )
                    .map(|(k, v, ts)| (k, (v, ts)));
                let finish = |k: &u8, w: &Window, a: &(i64, u64)| (*k, w.start, a.0, a.1);
                let create = |v: (i64, i64)| (v.0, 1u64);
                let add = |a: &mut (i64, u64), v: (i64, i64)| {
                    a.0 += v.0;
                    a.1 += 1
                };
                let merge = |a: &mut (i64, u64), b: (i64, u64)| {
                    a.0 += b.0;
                    a.1 += b.1
                };
                let (late_a, late_b) = (OutputTag::new(), OutputTag::new());
                let lateness = Duration::from_millis(50);
                // Tag 0: the window operator; 1: the trigger trait; 2, 3: the same with counts.
                let a = events
                    .clone()
                    .keyed()
                    .window(windows)
                    .allowed_lateness(lateness)
                    .side_output_late_data(&late_a)
                    .aggregate_with(create, add, merge, finish)
                    .map(|r| (0u8, r));
                let b = events
                    .clone()
                    .keyed()
                    .window(windows)
                    .with_trigger(EventTimeTrigger)
                    .allowed_lateness(lateness)
                    .side_output_late_data(&late_b)
                    .aggregate_with(create, add, finish)
                    .map(|r| (1u8, r));
                let c = events
                    .clone()
                    .keyed()
                    .window(windows)
                    .trigger(Trigger::Count(5))
                    .aggregate_with(create, add, merge, finish)
                    .map(|r| (2u8, r));
                let d = events
                    .keyed()
                    .window(windows)
                    .with_trigger(CountTrigger::of(5))
                    .aggregate_with(create, add, finish)
                    .map(|r| (3u8, r));
                let late_a = late_a.stream().map(|(k, (v, ts))| (4u8, (k, ts, v, 0u64)));
                let late_b = late_b.stream().map(|(k, (v, ts))| (5u8, (k, ts, v, 0u64)));
                a.union(b)
                    .union(c)
                    .union(d)
                    .union(late_a)
                    .union(late_b)
                    .collect()
            },
        );
        if common::is_child() {
            continue;
        }
        let out: Vec<(u8, Out)> = out;
        let part = |tag: u8| {
            sorted(
                out.iter()
                    .filter(|r| r.0 == tag)
                    .map(|r| r.1)
                    .collect::<Vec<Out>>(),
            )
        };
        let (a, b, c, d, la, lb) = (part(0), part(1), part(2), part(3), part(4), part(5));
        assert!(
            a.len() > 1000 && !la.is_empty() && c.len() > 50,
            "{shape:?}: enough to compare: {} {} {} {} {} {}",
            a.len(),
            b.len(),
            c.len(),
            d.len(),
            la.len(),
            lb.len()
        );
        // Per window: how often it fired and its last result (the one with every record). On
        // several workers the two operators receive a window's late records of one time through
        // exchange channels of their own, so they may apply them in different orders; each late
        // record within the allowed lateness fires the window again, and the results between
        // the first and the last then differ with the order. On one worker the order is the same
        // and every result must be.
        let fired = |v: &[Out]| {
            let mut m: BTreeMap<(u8, i64), (usize, Out)> = BTreeMap::new();
            for r in v {
                let e = m.entry((r.0, r.1)).or_insert((0, *r));
                e.0 += 1;
                if r.3 > e.1.3 {
                    e.1 = *r;
                }
            }
            m
        };
        let same = if shape == common::Shape::OneWorker {
            a == b
        } else {
            a.len() == b.len() && fired(&a) == fired(&b)
        };
        assert!(
            same,
            "{shape:?}: event-time trigger: {} results against {}; only the operator's: {:?}; only the trigger's: {:?}",
            b.len(),
            a.len(),
            a.iter()
                .filter(|r| !b.contains(r))
                .take(5)
                .collect::<Vec<_>>(),
            b.iter()
                .filter(|r| !a.contains(r))
                .take(5)
                .collect::<Vec<_>>()
        );
        assert!(
            la == lb,
            "{shape:?}: late records: {} against {}",
            lb.len(),
            la.len()
        );
        assert!(
            c == d,
            "{shape:?}: count trigger: {} results against {}",
            d.len(),
            c.len()
        );
    }
}

/// An evictor that keeps the records within 30 ms of a window's latest one, and global windows
/// that fire and purge every 4 records of a key (with [`PurgingTrigger`] on [`CountTrigger`]):
/// against the model, on every shape.
#[test]
fn evictors_and_global_windows_match_the_model() {
    use tidal::operators::window::{CountTrigger, Evictor, PurgingTrigger};
    let input = events(43, 10_000, 50);
    let windows = Windows::tumbling(Duration::from_millis(250));
    // Per window: the sum and count of the values within 30 ms of its latest timestamp.
    let mut by_window: BTreeMap<(u8, i64), Vec<(i64, i64)>> = BTreeMap::new();
    for &(k, v, ts) in input.iter() {
        by_window
            .entry((k, windows.windows_of(ts)[0].start))
            .or_default()
            .push((v, ts));
    }
    let evicted: Vec<(u8, i64, i64, u64)> = by_window
        .iter()
        .map(|((k, start), records)| {
            let latest = records.iter().map(|r| r.1).max().unwrap();
            let kept: Vec<_> = records.iter().filter(|r| r.1 > latest - 30).collect();
            (
                *k,
                *start,
                kept.iter().map(|r| r.0).sum(),
                kept.len() as u64,
            )
        })
        .collect();
    let mut per_key: BTreeMap<u8, u64> = BTreeMap::new();
    for &(k, _, _) in input.iter() {
        *per_key.entry(k).or_insert(0) += 1;
    }
    let data = Arc::clone(&input);
    on_every_shape(
        "evictors_and_global_windows_match_the_model",
        move |env| {
            let events = env
                .from_iter_with(data.to_vec(), strategy(50))
                .map(|(k, v, ts)| (k, (v, ts)));
            let evicting = events
                .clone()
                .keyed()
                .window(windows)
                .evictor(Evictor::time(Duration::from_millis(30)))
                .aggregate_with(
                    |v: (i64, i64)| (v.0, 1u64),
                    |a, v| {
                        a.0 += v.0;
                        a.1 += 1
                    },
                    |k: &u8, w: &Window, a: &(i64, u64)| (*k, w.start, a.0, a.1),
                );
            let counted = events
                .keyed()
                .window(Windows::Global)
                .with_trigger(PurgingTrigger::of(CountTrigger::of(4)))
                .aggregate(|_| 1u64, |n, _| *n += 1)
                .map(|(k, n)| (k, i64::MIN, 0i64, n));
            evicting.union(counted).collect()
        },
        |shape, out| {
            let (global, evicting): (Vec<_>, Vec<_>) =
                out.into_iter().partition(|r| r.1 == i64::MIN);
            assert_eq!(sorted(evicting), evicted, "{shape:?}: evicting windows");
            // Every firing holds 4 records; per key, one firing per 4 records.
            let mut firings: BTreeMap<u8, u64> = BTreeMap::new();
            for (k, _, _, n) in global {
                assert_eq!(n, 4, "{shape:?}: a purging count window of 4");
                *firings.entry(k).or_insert(0) += 1;
            }
            let expected: BTreeMap<u8, u64> = per_key.iter().map(|(k, n)| (*k, n / 4)).collect();
            assert_eq!(firings, expected, "{shape:?}: global windows");
        },
    );
}

/// Session windows with custom triggers merge as records join them: with the trait's
/// event-time trigger (and a count evictor that keeps everything) they give what the session
/// operator gives in the same job, on every shape; a trigger that cannot merge fails the job
/// saying so.
#[test]
fn session_windows_with_custom_triggers_merge_like_the_session_operator() {
    use tidal::operators::window::{
        EventTimeTrigger, Evictor, TriggerContext, TriggerResult, WindowTrigger,
    };
    let input = events(47, 10_000, 30);
    let gap = Duration::from_millis(25);
    let data = Arc::clone(&input);
    type Out = (u8, i64, i64, i64, u64);
    let test = "session_windows_with_custom_triggers_merge_like_the_session_operator";
    for shape in SHAPES {
        let data = Arc::clone(&data);
        let out = run_with(
            test,
            shape,
            |job| job,
            move |env| {
                let (data, n) = (Arc::clone(&data), data.len() as u64);
                let events = env
                    .generate_with(
                        Generator::new(move |i| data[i as usize])
                            .count(n)
                            .rate(50_000.0),
                        strategy(10),
                    )
                    .map(|(k, v, ts)| (k, (v, ts)));
                let finish = |k: &u8, w: &Window, a: &(i64, u64)| (*k, w.start, w.end, a.0, a.1);
                let create = |v: (i64, i64)| (v.0, 1u64);
                let add = |a: &mut (i64, u64), v: (i64, i64)| {
                    a.0 += v.0;
                    a.1 += 1
                };
                let merge = |a: &mut (i64, u64), b: (i64, u64)| {
                    a.0 += b.0;
                    a.1 += b.1
                };
                let a = events
                    .clone()
                    .keyed()
                    .window(Windows::session(gap))
                    .aggregate_with(create, add, merge, finish)
                    .map(|r| (0u8, r));
                let b = events
                    .clone()
                    .keyed()
                    .window(Windows::session(gap))
                    .with_trigger(EventTimeTrigger)
                    .aggregate_with(create, add, finish)
                    .map(|r| (1u8, r));
                let c = events
                    .keyed()
                    .window(Windows::session(gap))
                    .evictor(Evictor::count(usize::MAX))
                    .aggregate_with(create, add, finish)
                    .map(|r| (2u8, r));
                a.union(b).union(c).collect()
            },
        );
        if common::is_child() {
            continue;
        }
        let part = |tag: u8| {
            sorted(
                out.iter()
                    .filter(|r: &&(u8, Out)| r.0 == tag)
                    .map(|r| r.1)
                    .collect::<Vec<Out>>(),
            )
        };
        let (a, b, c) = (part(0), part(1), part(2));
        assert!(a.len() > 100, "{shape:?}: {} sessions", a.len());
        assert!(
            a == b,
            "{shape:?}: trigger: {} sessions against {}",
            b.len(),
            a.len()
        );
        assert!(
            a == c,
            "{shape:?}: evictor: {} sessions against {}",
            c.len(),
            a.len()
        );
    }

    /// Fires every record, and cannot merge.
    #[derive(Clone)]
    struct Eager;
    impl WindowTrigger<i64> for Eager {
        type State = ();
        fn on_element(
            &self,
            _: &i64,
            _: i64,
            _: &Window,
            _: &mut (),
            _: &mut TriggerContext<'_>,
        ) -> TriggerResult {
            TriggerResult::Fire
        }
    }
    let result: tidal::Result<Vec<(u8, i64)>> = Job::local(1).quiet().run(|env| {
        env.from_iter_with(
            vec![(1u8, 1i64, 1i64), (1, 2, 5)],
            WatermarkStrategy::monotonous().with_timestamps(|r: &(u8, i64, i64)| r.2),
        )
        .map(|(k, v, _)| (k, v))
        .keyed()
        .window(Windows::session(Duration::from_millis(10)))
        .with_trigger(Eager)
        .reduce(|a, b| *a += b)
        .collect()
    });
    let err = result.expect_err("refused").to_string();
    assert!(
        err.contains("cannot merge session windows") && err.contains("Eager"),
        "{err}"
    );
}
