//! Every operator against a from-scratch oracle, over seeded random inputs, on 1 worker,
//! 2 worker threads and 2 processes.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{Shape, on_every_shape, sorted};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tidal::prelude::*;

const SEEDS: [u64; 2] = [7, 1234];

/// `n` records `(key, value)` with keys drawn from `keys` distinct values.
fn pairs(seed: u64, n: usize, keys: u32) -> Arc<Vec<(u32, i64)>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    Arc::new(
        (0..n)
            .map(|_| (rng.random_range(0..keys), rng.random_range(-1000..1000)))
            .collect(),
    )
}

fn group(input: &[(u32, i64)]) -> BTreeMap<u32, Vec<i64>> {
    let mut groups: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    for (k, v) in input {
        groups.entry(*k).or_default().push(*v);
    }
    groups
}

#[test]
fn stateless_operators_match_oracle() {
    for seed in SEEDS {
        let input = pairs(seed, 20_000, 50);
        let expected: Vec<(u32, i64)> = input
            .iter()
            .filter(|(_, v)| v % 3 != 0)
            .flat_map(|&(k, v)| [(k, v * 2), (k + 1000, v)])
            .chain(input.iter().map(|&(k, v)| (k, -v)))
            .collect();
        let data = Arc::clone(&input);
        on_every_shape(
            "stateless_operators_match_oracle",
            move |env| {
                let a = env.from_iter(data.to_vec());
                let b = env.from_iter(data.to_vec()).map(|(k, v)| (k, -v));
                a.filter(|(_, v)| v % 3 != 0)
                    .inspect(|_| {})
                    .flat_map(|(k, v)| [(k, v * 2), (k + 1000, v)])
                    .union(b)
                    .collect()
            },
            |shape, out| {
                assert_eq!(
                    sorted(out),
                    sorted(expected.clone()),
                    "{shape:?} seed {seed}"
                )
            },
        );
    }
}

#[test]
fn rolling_aggregates_match_oracle() {
    for seed in SEEDS {
        let input = pairs(seed, 30_000, 200);
        let groups = group(&input);
        let sums: Vec<(u32, i64)> = groups.iter().map(|(k, vs)| (*k, vs.iter().sum())).collect();
        let mins: Vec<(u32, i64)> = groups
            .iter()
            .map(|(k, vs)| (*k, *vs.iter().min().unwrap()))
            .collect();
        let maxs: Vec<(u32, i64)> = groups
            .iter()
            .map(|(k, vs)| (*k, *vs.iter().max().unwrap()))
            .collect();
        let counts: Vec<(u32, u64)> = groups.iter().map(|(k, vs)| (*k, vs.len() as u64)).collect();
        let data = Arc::clone(&input);
        on_every_shape(
            "rolling_aggregates_match_oracle",
            move |env| {
                let s = env.from_iter(data.to_vec());
                let sum = s
                    .clone()
                    .keyed()
                    .sum()
                    .final_values()
                    .map(|(k, v)| (0u8, k, v));
                let min = s
                    .clone()
                    .keyed()
                    .min()
                    .final_values()
                    .map(|(k, v)| (1u8, k, v));
                let max = s
                    .clone()
                    .keyed()
                    .max()
                    .final_values()
                    .map(|(k, v)| (2u8, k, v));
                let red = s
                    .clone()
                    .keyed()
                    .reduce(|a, v| *a += v)
                    .final_values()
                    .map(|(k, v)| (3u8, k, v));
                let cnt = s
                    .keyed()
                    .count()
                    .final_values()
                    .map(|(k, v)| (4u8, k, v as i64));
                sum.union(min).union(max).union(red).union(cnt).collect()
            },
            |shape, out| {
                let pick = |tag: u8| {
                    sorted(
                        out.iter()
                            .filter(|r| r.0 == tag)
                            .map(|r| (r.1, r.2))
                            .collect::<Vec<_>>(),
                    )
                };
                assert_eq!(pick(0), sums, "sum {shape:?} seed {seed}");
                assert_eq!(pick(1), mins, "min {shape:?} seed {seed}");
                assert_eq!(pick(2), maxs, "max {shape:?} seed {seed}");
                assert_eq!(pick(3), sums, "reduce {shape:?} seed {seed}");
                let c: Vec<(u32, u64)> = pick(4).into_iter().map(|(k, v)| (k, v as u64)).collect();
                assert_eq!(c, counts, "count {shape:?} seed {seed}");
            },
        );
    }
}

/// The changelog of a rolling count: per key, strictly increasing values (one per tick in which
/// the key changed), the last one the key's final count.
#[test]
fn rolling_count_changelog_is_monotone_and_ends_at_oracle() {
    let input = pairs(99, 50_000, 100);
    let counts: BTreeMap<u32, u64> = group(&input)
        .into_iter()
        .map(|(k, vs)| (k, vs.len() as u64))
        .collect();
    let data = Arc::clone(&input);
    // A rate-limited generator spreads the input over many ticks.
    on_every_shape(
        "rolling_count_changelog_is_monotone_and_ends_at_oracle",
        move |env| {
            let d = Arc::clone(&data);
            let n = d.len() as u64;
            env.generate(
                Generator::new(move |i| d[i as usize])
                    .count(n)
                    .rate(200_000.0),
            )
            .keyed()
            .count()
            .collect()
        },
        |shape, out| {
            let mut per_key: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
            for (k, c) in out {
                per_key.entry(k).or_default().push(c);
            }
            let mut updates = 0;
            for (k, seq) in &per_key {
                assert!(
                    seq.windows(2).all(|w| w[0] < w[1]),
                    "{shape:?}: key {k} changelog not increasing: {seq:?}"
                );
                assert_eq!(seq.last(), counts.get(k), "{shape:?}: key {k}");
                updates += seq.len();
            }
            assert_eq!(per_key.len(), counts.len(), "{shape:?}");
            // Combining per tick: far fewer updates than records.
            assert!(
                updates < input.len() / 2,
                "{shape:?}: {updates} changelog updates for {} records",
                input.len()
            );
        },
    );
}

#[test]
#[allow(clippy::type_complexity)]
fn min_by_max_by_and_aggregate_match_oracle() {
    for seed in SEEDS {
        let mut rng = SmallRng::seed_from_u64(seed);
        // Distinct scores so that the record with the extreme score is unique.
        let mut scores: Vec<i64> = (0..10_000).collect();
        for i in (1..scores.len()).rev() {
            scores.swap(i, rng.random_range(0..=i));
        }
        let input: Arc<Vec<(u8, (i64, String))>> = Arc::new(
            scores
                .iter()
                .map(|&s| ((s % 17) as u8, (s, format!("r{s}"))))
                .collect(),
        );
        let mut best: BTreeMap<u8, ((i64, String), (i64, String), (i64, u64))> = BTreeMap::new();
        for (k, (s, name)) in input.iter() {
            let e = best
                .entry(*k)
                .or_insert(((*s, name.clone()), (*s, name.clone()), (0, 0)));
            if *s < e.0.0 {
                e.0 = (*s, name.clone());
            }
            if *s > e.1.0 {
                e.1 = (*s, name.clone());
            }
            e.2.0 += s;
            e.2.1 += 1;
        }
        let data = Arc::clone(&input);
        on_every_shape(
            "min_by_max_by_and_aggregate_match_oracle",
            move |env| {
                let s = env.from_iter(data.to_vec());
                let lo = s.clone().keyed().min_by(|r| r.0).final_values();
                let hi = s.clone().keyed().max_by(|r| r.0).final_values();
                let avg = s
                    .keyed()
                    .aggregate(
                        |r| (r.0, 1u64),
                        |a, r| {
                            a.0 += r.0;
                            a.1 += 1
                        },
                        |a, b| {
                            a.0 += b.0;
                            a.1 += b.1
                        },
                    )
                    .final_values();
                lo.map(|(k, r)| (k, 0u8, r.0, r.1, 0))
                    .union(hi.map(|(k, r)| (k, 1u8, r.0, r.1, 0)))
                    .union(avg.map(|(k, a)| (k, 2u8, a.0, String::new(), a.1)))
                    .collect()
            },
            |shape, out| {
                let mut expected = Vec::new();
                for (k, (lo, hi, agg)) in &best {
                    expected.push((*k, 0u8, lo.0, lo.1.clone(), 0));
                    expected.push((*k, 1u8, hi.0, hi.1.clone(), 0));
                    expected.push((*k, 2u8, agg.0, String::new(), agg.1));
                }
                assert_eq!(sorted(out), sorted(expected), "{shape:?} seed {seed}");
            },
        );
    }
}

#[test]
fn partitioning_operators_deliver_every_record() {
    let input = pairs(5, 10_000, 10);
    let data = Arc::clone(&input);
    let expected_once = sorted(input.to_vec());
    on_every_shape(
        "partitioning_operators_deliver_every_record",
        move |env| {
            let peers = env.peers() as u8;
            let me = env.worker_index();
            let s = env.from_iter(data.to_vec());
            let bc = s.clone().broadcast().map(move |r| (2u8, r, peers));
            // All records on worker 0 only (a broadcast copy kept there): rebalance and shuffle
            // must spread them.
            let on_zero = s.broadcast().filter(move |_| me == 0);
            // Tag each record with the worker it lands on.
            let re = on_zero.clone().rebalance().map(move |r| (0u8, r, me as u8));
            let sh = on_zero.shuffle().map(move |r| (1u8, r, me as u8));
            re.union(sh).union(bc).collect()
        },
        |shape, out| {
            let take = |tag: u8| {
                sorted(
                    out.iter()
                        .filter(|r| r.0 == tag)
                        .map(|r| r.1)
                        .collect::<Vec<_>>(),
                )
            };
            let re = take(0);
            assert_eq!(
                re.len(),
                expected_once.len(),
                "rebalance {shape:?}: record count"
            );
            assert!(re == expected_once, "rebalance {shape:?}: records differ");
            assert_eq!(take(1), expected_once, "shuffle {shape:?}");
            if shape != Shape::OneWorker {
                for tag in [0u8, 1] {
                    let on_one = out.iter().filter(|r| r.0 == tag && r.2 == 1).count();
                    let total = expected_once.len();
                    assert!(
                        on_one > total / 3 && on_one < total * 2 / 3,
                        "tag {tag} {shape:?}: {on_one} of {total} on worker 1"
                    );
                }
            }
            let peers = if shape == Shape::OneWorker { 1 } else { 2 };
            let mut expected_bc: Vec<(u32, i64)> = Vec::new();
            for _ in 0..peers {
                expected_bc.extend(input.iter().copied());
            }
            assert_eq!(take(2), sorted(expected_bc), "broadcast {shape:?}");
        },
    );
}

/// `name` renames the operator that made a stream; operators without a name get `kind#N`.
#[test]
fn operator_names_can_be_set() {
    tidal::Job::local(1)
        .run(|env| {
            let s = env.from_iter(0..3).map(|x| x + 1).name("plus one");
            assert_eq!(s.operator_name(), "plus one");
            let t = s.filter(|_| true);
            assert!(
                t.operator_name().starts_with("filter#"),
                "{}",
                t.operator_name()
            );
        })
        .unwrap();
}

/// Every stateful operator registers its keyed state; each key lives on exactly one worker.
#[test]
fn keyed_state_is_registered_and_each_key_held_once() {
    for workers in [1, 2, 3] {
        let (_, report) = tidal::Job::local(workers)
            .quiet()
            .run_with_report(|env| {
                env.from_iter(0..10_000u32)
                    .key_by(|x| x % 97)
                    .count()
                    .final_values()
                    .collect()
            })
            .unwrap();
        let keys = |kind: &str| -> usize {
            report
                .state_keys
                .iter()
                .filter(|(name, _)| name.starts_with(kind))
                .map(|(_, n)| n)
                .sum()
        };
        assert_eq!(
            keys("count#"),
            97,
            "{workers} workers: {:?}",
            report.state_keys
        );
        // final_values hands its state downstream when the input ends.
        assert_eq!(
            keys("final_values#"),
            0,
            "{workers} workers: {:?}",
            report.state_keys
        );
    }
}

/// Co-flat-map over two keyed streams and over a keyed and a plain stream: every record of each
/// input goes through its own function once, on every shape.
#[test]
fn co_flat_maps_match_oracle() {
    let left = pairs(21, 10_000, 40);
    let right = pairs(22, 8_000, 40);
    let expected: Vec<(u32, i64)> = sorted(
        left.iter()
            .filter(|(_, v)| v % 2 == 0)
            .map(|&(k, v)| (k, v + 1))
            .chain(right.iter().flat_map(|&(k, v)| [(k, v), (k + 100, v)]))
            .collect(),
    );
    let (l, r) = (Arc::clone(&left), Arc::clone(&right));
    on_every_shape(
        "co_flat_maps_match_oracle",
        move |env| {
            let a = env.from_iter(l.to_vec()).keyed();
            let b = env.from_iter(r.to_vec()).keyed();
            let both_keyed = a.connect(b).flat_map(
                |k, v| (v % 2 == 0).then_some((*k, v + 1)),
                |k, v| [(*k, v), (*k + 100, v)],
            );
            // The same with the second input not keyed, tagged to tell the two apart.
            let c = env.from_iter(l.to_vec()).keyed();
            let d = env.from_iter(r.to_vec());
            let with_plain = c.connect(d).flat_map(
                |k, v| (v % 2 == 0).then_some((*k + 1_000_000, v + 1)),
                |(k, v)| [(k + 1_000_000, v), (k + 1_000_100, v)],
            );
            both_keyed.union(with_plain).collect()
        },
        |shape, out: Vec<(u32, i64)>| {
            let (plain, keyed): (Vec<_>, Vec<_>) = out.into_iter().partition(|r| r.0 >= 1_000_000);
            assert_eq!(sorted(keyed), expected, "{shape:?}: keyed with keyed");
            let plain: Vec<(u32, i64)> =
                plain.into_iter().map(|(k, v)| (k - 1_000_000, v)).collect();
            assert_eq!(sorted(plain), expected, "{shape:?}: keyed with plain");
        },
    );
}

/// A rolling count with a time to live starts anew for a key written again after its state
/// expired: records 400 ms apart with a 50 ms time to live all count 1; with 60 s they count up.
#[test]
fn rolling_aggregates_with_a_time_to_live_start_anew_after_it() {
    use std::time::Duration;
    for (ttl, expected) in [(50u64, vec![1u64, 1, 1, 1]), (60_000, vec![1, 2, 3, 4])] {
        let out: Vec<(u8, u64)> = Job::local(1)
            .with_tick(Duration::ZERO)
            .quiet()
            .run(move |env| {
                // Each record its own event time: with a tick of zero, each its own step.
                env.generate_with(
                    Generator::new(|i| (7u8, i as i64 * 1000))
                        .count(4)
                        .rate(2.5),
                    tidal::engine::WatermarkStrategy::monotonous()
                        .with_timestamps(|r: &(u8, i64)| r.1),
                )
                .map(|(k, _)| k)
                .key_by(|k| *k)
                .with_state_ttl(Duration::from_millis(ttl))
                .count()
                .collect()
            })
            .unwrap();
        let counts: Vec<u64> = out.into_iter().map(|(_, n)| n).collect();
        assert_eq!(counts, expected, "time to live {ttl} ms");
    }
}
