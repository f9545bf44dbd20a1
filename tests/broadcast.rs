//! Broadcast state against a from-scratch model, on 1 worker, 2 threads and 2 processes: rule
//! versions broadcast to every worker while the keyed stream runs.

mod common;
#[path = "common/rules.rs"]
mod rules;

use std::collections::{BTreeMap, VecDeque};

use common::{example_on_every_shape, on_every_shape, run_example, sorted};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rules::{MatchRules, event, model, rule};
use tidal::engine::WatermarkStrategy;
use tidal::prelude::*;

#[test]
fn broadcast_rules_changed_mid_run_match_the_model() {
    const EVENTS: u64 = 30_000;
    // Versions up to a little past the last event (10 s of event time).
    const VERSIONS: u64 = rules::RULES * 8;
    let expected = model(EVENTS, VERSIONS);
    assert!(
        expected.len() > 10_000,
        "the model matches often enough to tell"
    );
    on_every_shape(
        "broadcast_rules_changed_mid_run_match_the_model",
        |env| {
            let by_time = |r: &(u64, i64, i64)| r.2;
            let rules = env
                .generate_with(
                    Generator::new(rule).count(VERSIONS),
                    WatermarkStrategy::monotonous().with_timestamps(|r: &(u64, i64, i64)| r.1),
                )
                .broadcast_state(&MapStateDescriptor::new("rules"));
            env.generate_with(
                Generator::new(event).count(EVENTS),
                WatermarkStrategy::monotonous().with_timestamps(by_time),
            )
            .map(|(account, amount, ts)| (account, (amount, ts)))
            .keyed()
            .connect(rules)
            .process(MatchRules)
            .collect()
        },
        |shape, out| {
            let out = sorted(out);
            common::assert_same(&out, &expected, &format!("{shape:?}"));
        },
    );
}

/// A rule version of the `fraud_rules` example, as the model reads it.
struct Version {
    from: i64,
    id: u32,
    kind: &'static str,
    limit: f64,
    window: i64,
}

/// The `fraud_rules` example on files — rule versions of every kind (including `off`) changing
/// every 1.5 s of event time, transactions of 5 accounts with several at one timestamp — against
/// a model that replays both in event-time order; on 1 worker, 2 threads and 2 processes.
#[test]
fn fraud_rules_example_gives_the_model_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SmallRng::seed_from_u64(19);
    let base = 1_000_000i64;
    let versions: Vec<Version> = (0..16)
        .map(|k| {
            let kind = ["max_amount", "max_count", "off"][rng.random_range(0..3)];
            Version {
                from: base + k * 1_500 + rng.random_range(0..1_000),
                id: rng.random_range(1..=3),
                kind,
                limit: match kind {
                    "max_amount" => rng.random_range(800..990) as f64,
                    "max_count" => rng.random_range(2..6) as f64,
                    _ => 0.0,
                },
                window: rng.random_range(5..40) * 10,
            }
        })
        .collect();
    let mut rules = String::from("effectiveFrom,ruleId,kind,limit,windowMs\n");
    for v in &versions {
        let window = if v.kind == "max_count" {
            v.window.to_string()
        } else {
            String::new()
        };
        rules.push_str(&format!(
            "{},{},{},{},{window}\n",
            v.from, v.id, v.kind, v.limit
        ));
    }
    // Transactions: two per timestamp, 10 ms apart.
    let transactions: Vec<(u32, i64, f64)> = (0..3_000)
        .map(|i| {
            let amount = rng.random_range(1..100_000) as f64 / 100.0;
            (rng.random_range(1..=5), base + (i / 2) * 10, amount)
        })
        .collect();
    let mut text = String::from("accountId,timestamp,amount\n");
    for (account, ts, amount) in &transactions {
        text.push_str(&format!("{account},{ts},{amount}\n"));
    }
    let (rules_path, input_path) = (
        dir.path().join("rules.csv"),
        dir.path().join("transactions.csv"),
    );
    std::fs::write(&rules_path, rules).unwrap();
    std::fs::write(&input_path, text).unwrap();

    // The model: per rule the version in effect at each timestamp; per account its timestamps.
    let mut recent: BTreeMap<u32, VecDeque<i64>> = BTreeMap::new();
    let mut expected = Vec::new();
    let mut by_time: BTreeMap<i64, Vec<(u32, f64)>> = BTreeMap::new();
    for (account, ts, amount) in &transactions {
        by_time.entry(*ts).or_default().push((*account, *amount));
    }
    for (ts, here) in &by_time {
        for (account, _) in here {
            recent.entry(*account).or_default().push_back(*ts);
        }
        for (account, amount) in here {
            for id in 1..=3u32 {
                // (Versions are in order of `from`.)
                let Some(v) = versions.iter().rev().find(|v| v.id == id && v.from <= *ts) else {
                    continue;
                };
                let hit = match v.kind {
                    "max_amount" => *amount > v.limit,
                    "max_count" => {
                        let n = recent[account]
                            .iter()
                            .filter(|t| **t > ts - v.window)
                            .count();
                        n as f64 > v.limit
                    }
                    _ => false,
                };
                if hit {
                    expected.push(format!("{id},{account},{ts},{amount:.2}"));
                }
            }
        }
    }
    expected.sort();
    let kinds: Vec<char> = expected.iter().map(|l| l.as_bytes()[0] as char).collect();
    assert!(
        expected.len() > 100 && ('1'..='3').all(|id| kinds.contains(&id)),
        "the model alerts on every rule"
    );
    let args = [
        "--rules",
        rules_path.to_str().unwrap(),
        "--input",
        input_path.to_str().unwrap(),
    ];
    let got = run_example("fraud_rules", &[&args[..], &["-w", "1"]].concat());
    common::assert_same(&got, &expected, "fraud_rules on 1 worker");
    example_on_every_shape("fraud_rules", &args, &expected);
}

/// `apply_to_keyed_state` reaches every key's state on every worker: a broadcast "reset" sent
/// after all events (its timestamp is after theirs; with a tick of zero the watermark follows
/// every record) clears every count, each worker reporting how many it cleared.
#[test]
fn a_broadcast_record_can_change_the_state_of_every_key() {
    use tidal::operators::broadcast::{
        BroadcastContext, BroadcastState, KeyedBroadcastProcessFunction,
    };
    struct Counts;
    impl KeyedBroadcastProcessFunction<u64, i64, String> for Counts {
        type State = u64;
        type MapKey = u8;
        type MapValue = ();
        type Out = (String, u64);
        type Side = ();
        fn process_element(
            &mut self,
            _: i64,
            _: &BroadcastState<u8, ()>,
            ctx: &mut ProcessContext<'_, u64, u64, (String, u64), ()>,
        ) {
            *ctx.state() += 1;
        }
        fn process_broadcast_element(
            &mut self,
            command: String,
            ctx: &mut BroadcastContext<'_, u8, (), (String, u64), ()>,
        ) {
            let mut cleared = 0u64;
            let mut total = 0u64;
            ctx.apply_to_keyed_state(|_: &u64, count: &mut Option<u64>| {
                total += count.unwrap_or(0);
                cleared += 1;
                *count = None;
            })
            .unwrap();
            ctx.output((command.clone(), cleared));
            ctx.output((format!("{command} total"), total));
            // The wrong types are an error, not a panic.
            assert!(
                ctx.apply_to_keyed_state(|_: &u32, _: &mut Option<u64>| {})
                    .is_err()
            );
        }
    }
    let test = "a_broadcast_record_can_change_the_state_of_every_key";
    for shape in common::SHAPES {
        let out: Vec<(String, u64)> = common::run_with(
            test,
            shape,
            |job| job.with_tick(std::time::Duration::ZERO),
            |env| {
                // 1 000 events over 10 keys, then a sentinel at a later time.
                let mut input: Vec<(u64, i64)> = (0..1000).map(|i| (i % 10, i as i64)).collect();
                input.push((u64::MAX, 5_000));
                let events = env.from_iter_with(
                    input,
                    WatermarkStrategy::monotonous().with_timestamps(|e: &(u64, i64)| e.1),
                );
                let reset = events
                    .clone()
                    .filter(|e| e.0 == u64::MAX)
                    .map(|_| "reset".to_string())
                    .broadcast_state(&MapStateDescriptor::<u8, ()>::new("commands"));
                events
                    .filter(|e| e.0 != u64::MAX)
                    .keyed()
                    .connect(reset)
                    .process(Counts)
                    .collect()
            },
        );
        if common::is_child() {
            continue;
        }
        let sum = |what: &str| -> u64 { out.iter().filter(|r| r.0 == what).map(|r| r.1).sum() };
        assert_eq!(
            sum("reset"),
            10,
            "{shape:?}: every key cleared once: {out:?}"
        );
        assert_eq!(sum("reset total"), 1000, "{shape:?}: the counts it cleared");
    }
}
