//! Property tests: the core operators against from-scratch models, over random inputs and 1 to 3
//! worker threads (proptest draws both; a failing case is shrunk to a small one and kept under
//! `tests/properties.proptest-regressions`). The event-time inputs are out of order but never
//! late: each record's timestamp is at most `DISORDER` ms past the time the input has reached,
//! and the watermark trails the largest timestamp by `DISORDER`.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use tidal::prelude::*;

/// How far a timestamp may run ahead of the input's progress (and the watermark behind it).
const DISORDER: i64 = 40;

/// `(key, value, timestamp)`: timestamps follow `steps` (the input's progress) plus a jitter of
/// at most [`DISORDER`].
fn timed(records: &[(u8, i64, u8, u8)]) -> Vec<(u8, i64, i64)> {
    let mut progress = 1_700_000_000_000i64;
    records
        .iter()
        .map(|&(k, v, step, jitter)| {
            progress += i64::from(step);
            (k, v, progress + i64::from(jitter) % (DISORDER + 1))
        })
        .collect()
}

fn by_time() -> WatermarkStrategy<(u8, i64, i64)> {
    WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(DISORDER as u64))
        .with_timestamps(|r: &(u8, i64, i64)| r.2)
}

fn records() -> impl Strategy<Value = Vec<(u8, i64, u8, u8)>> {
    prop::collection::vec((0u8..6, -100i64..100, 0u8..30, any::<u8>()), 0..300)
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Rolling count, sum, min and max per key, kept to their final values, equal a fold of the
    /// input per key.
    #[test]
    fn rolling_aggregates_equal_a_fold_per_key(
        input in prop::collection::vec((0u8..12, -1000i64..1000), 0..400),
        workers in 1usize..=3,
    ) {
        let data = input.clone();
        type Out = ((Vec<(u8, u64)>, Vec<(u8, i64)>), (Vec<(u8, i64)>, Vec<(u8, i64)>));
        let ((count, sum), (min, max)): Out = Job::local(workers)
            .run(move |env| {
                let pairs = env.from_iter(data.clone());
                (
                    (
                        pairs.clone().keyed().count().final_values().collect(),
                        pairs.clone().keyed().sum().final_values().collect(),
                    ),
                    (
                        pairs.clone().keyed().min().final_values().collect(),
                        pairs.keyed().max().final_values().collect(),
                    ),
                )
            })
            .unwrap();
        let mut model: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
        for (k, v) in &input {
            model.entry(*k).or_default().push(*v);
        }
        let fold = |f: fn(&[i64]) -> i64| -> Vec<(u8, i64)> {
            model.iter().map(|(k, vs)| (*k, f(vs))).collect()
        };
        prop_assert_eq!(
            sorted(count),
            model.iter().map(|(k, vs)| (*k, vs.len() as u64)).collect::<Vec<_>>()
        );
        prop_assert_eq!(sorted(sum), fold(|vs| vs.iter().sum()));
        prop_assert_eq!(sorted(min), fold(|vs| *vs.iter().min().unwrap()));
        prop_assert_eq!(sorted(max), fold(|vs| *vs.iter().max().unwrap()));
    }

    /// Sums and counts per key over sliding windows (tumbling when the slide is the size) equal
    /// the model: every record counted in each window that holds its timestamp.
    #[test]
    fn window_aggregates_equal_the_model(
        input in records(),
        size in 5i64..120,
        slide_part in 1i64..=4,
        workers in 1usize..=3,
    ) {
        let slide = (size / slide_part).max(1);
        let events = timed(&input);
        let data = events.clone();
        let windows = Windows::sliding(
            Duration::from_millis(size as u64),
            Duration::from_millis(slide as u64),
        );
        let out: Vec<(u8, i64, i64, u64)> = Job::local(workers)
            .run(move |env| {
                env.from_iter_with(data.clone(), by_time())
                    .map(|(k, v, _)| (k, v))
                    .keyed()
                    .window(windows)
                    .aggregate_with(
                        |v| (v, 1u64),
                        |a, v| { a.0 += v; a.1 += 1 },
                        |a, b| { a.0 += b.0; a.1 += b.1 },
                        |k: &u8, w: &Window, a: &(i64, u64)| (*k, w.end, a.0, a.1),
                    )
                    .collect()
            })
            .unwrap();
        let mut model: BTreeMap<(u8, i64), (i64, u64)> = BTreeMap::new();
        for (k, v, ts) in &events {
            for w in windows.windows_of(*ts) {
                let e = model.entry((*k, w.end)).or_insert((0, 0));
                e.0 += v;
                e.1 += 1;
            }
        }
        let model: Vec<(u8, i64, i64, u64)> =
            model.into_iter().map(|((k, end), (s, n))| (k, end, s, n)).collect();
        prop_assert_eq!(sorted(out), model);
    }

    /// Session windows equal the model: per key, records sorted by time, a new session wherever
    /// the next record comes after the current session's end (the last timestamp plus the gap).
    #[test]
    fn session_windows_equal_the_model(
        input in records(),
        gap in 1i64..60,
        workers in 1usize..=3,
    ) {
        let events = timed(&input);
        let data = events.clone();
        let out: Vec<(u8, i64, i64, usize)> = Job::local(workers)
            .run(move |env| {
                env.from_iter_with(data.clone(), by_time())
                    .map(|(k, _, ts)| (k, ts))
                    .keyed()
                    .window(Windows::session(Duration::from_millis(gap as u64)))
                    .process(|k: &u8, w: &Window, records: &[i64]| (*k, w.start, w.end, records.len()))
                    .collect()
            })
            .unwrap();
        let mut per_key: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
        for (k, _, ts) in &events {
            per_key.entry(*k).or_default().push(*ts);
        }
        let mut model = Vec::new();
        for (k, mut times) in per_key {
            times.sort();
            let (mut start, mut end, mut n) = (times[0], times[0] + gap, 0);
            for ts in times {
                if ts > end {
                    model.push((k, start, end, n));
                    (start, n) = (ts, 0);
                }
                end = end.max(ts + gap);
                n += 1;
            }
            model.push((k, start, end, n));
        }
        prop_assert_eq!(sorted(out), sorted(model));
    }

    /// The interval join emits exactly the pairs of the same key with
    /// `a.ts + lower <= b.ts <= a.ts + upper`.
    #[test]
    fn interval_join_equals_all_matching_pairs(
        left in records(),
        right in records(),
        lower in -50i64..20,
        width in 0i64..60,
        workers in 1usize..=3,
    ) {
        let upper = lower + width;
        let (a, b) = (timed(&left), timed(&right));
        let (da, db) = (a.clone(), b.clone());
        let out: Vec<(u8, i64, i64)> = Job::local(workers)
            .run(move |env| {
                let a = env.from_iter_with(da.clone(), by_time()).map(|(k, _, ts)| (k, ts)).keyed();
                let b = env.from_iter_with(db.clone(), by_time()).map(|(k, _, ts)| (k, ts)).keyed();
                a.connect(b)
                    .interval_join(lower, upper, |k: &u8, x: &i64, y: &i64| (*k, *x, *y))
                    .collect()
            })
            .unwrap();
        let mut model = Vec::new();
        for (ka, _, ta) in &a {
            for (kb, _, tb) in &b {
                if ka == kb && ta + lower <= *tb && *tb <= ta + upper {
                    model.push((*ka, *ta, *tb));
                }
            }
        }
        prop_assert_eq!(sorted(out), sorted(model));
    }
}
