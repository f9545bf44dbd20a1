//! Keyed process functions against a from-scratch model: state, event-time timers (register,
//! delete, fire in order at the watermark), processing-time timers and side outputs.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{on_every_shape, sorted};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tidal::engine::{JobClock, ManualClock, Time, WatermarkStrategy};
use tidal::prelude::*;

const BUCKET: i64 = 100;

/// Per key, the buckets of BUCKET ms still open: count and sum.
#[derive(Default, Serialize, Deserialize)]
struct Buckets {
    open: BTreeMap<Time, (u64, i64)>,
}

/// A tumbling count-and-sum built from state and timers: each record goes into its bucket, whose
/// timer (at the bucket's last millisecond) emits it when the watermark passes. Every record also
/// registers and deletes a far-away timer, which must never fire. Values below -45 also go to the
/// side output.
struct BucketSums;

impl KeyedProcessFunction<u8, i64> for BucketSums {
    type State = Buckets;
    type Out = (u8, Time, u64, i64);
    type Side = (u8, i64);
    fn process_element(
        &mut self,
        value: i64,
        ctx: &mut ProcessContext<'_, u8, Buckets, Self::Out, Self::Side>,
    ) {
        let ts = ctx.timestamp();
        assert!(
            ts > ctx.current_watermark(),
            "no record is late in this input"
        );
        if value < -45 {
            let k = *ctx.key();
            ctx.side_output((k, value));
        }
        let start = ts - ts.rem_euclid(BUCKET);
        let bucket = ctx.state().open.entry(start).or_insert((0, 0));
        bucket.0 += 1;
        bucket.1 += value;
        ctx.register_event_time_timer(start + BUCKET - 1);
        ctx.register_event_time_timer(ts + 1_000_000_000);
        ctx.delete_event_time_timer(ts + 1_000_000_000);
    }
    fn on_timer(
        &mut self,
        at: Time,
        domain: TimeDomain,
        ctx: &mut ProcessContext<'_, u8, Buckets, Self::Out, Self::Side>,
    ) {
        assert_eq!(domain, TimeDomain::EventTime);
        assert!(
            ctx.current_watermark() >= at,
            "a timer fires only when the watermark has passed it"
        );
        assert_eq!(ctx.timestamp(), at);
        let k = *ctx.key();
        let start = at + 1 - BUCKET;
        let (n, sum) = ctx
            .state()
            .open
            .remove(&start)
            .expect("a timer belongs to an open bucket");
        if ctx.state().open.is_empty() {
            ctx.clear_state();
        }
        ctx.output((k, start, n, sum));
    }
}

fn events(seed: u64, n: usize, disorder: i64) -> Arc<Vec<(u8, i64, i64)>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut t = 0i64;
    let mut v: Vec<(i64, (u8, i64, i64))> = (0..n)
        .map(|_| {
            t += rng.random_range(0..8);
            let e = (rng.random_range(0..6), rng.random_range(-50..50), t);
            (t + rng.random_range(0..=disorder), e)
        })
        .collect();
    v.sort_by_key(|(k, _)| *k);
    Arc::new(v.into_iter().map(|(_, e)| e).collect())
}

/// The model: per key and bucket, count and sum.
fn model(input: &[(u8, i64, i64)]) -> Vec<(u8, Time, u64, i64)> {
    let mut out: BTreeMap<(u8, Time), (u64, i64)> = BTreeMap::new();
    for &(k, v, ts) in input {
        let e = out.entry((k, ts - ts.rem_euclid(BUCKET))).or_insert((0, 0));
        e.0 += 1;
        e.1 += v;
    }
    out.into_iter()
        .map(|((k, s), (n, sum))| (k, s, n, sum))
        .collect()
}

#[test]
fn event_time_timers_and_state_match_the_model() {
    let disorder = 30;
    for seed in [3, 4] {
        let input = events(seed, 20_000, disorder);
        let expected = model(&input);
        let expected_side: Vec<(u8, i64)> = sorted(
            input
                .iter()
                .filter(|e| e.1 < -45)
                .map(|e| (e.0, e.1))
                .collect(),
        );
        let data = Arc::clone(&input);
        on_every_shape(
            "event_time_timers_and_state_match_the_model",
            move |env| {
                let tag = OutputTag::new();
                let sessions = env
                    .from_iter_with(
                        data.to_vec(),
                        WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(
                            disorder as u64,
                        ))
                        .with_timestamps(|e: &(u8, i64, i64)| e.2),
                    )
                    .map(|(k, v, _)| (k, v))
                    .keyed()
                    .process_with_side_output(BucketSums, &tag);
                let side = tag.stream().map(|(k, v)| (k, -1i64, 0u64, v));
                sessions.union(side).collect()
            },
            |shape, out| {
                let (side, main): (Vec<_>, Vec<_>) = out.into_iter().partition(|r| r.1 == -1);
                let main = sorted(main);
                common::assert_same(
                    &main,
                    &expected,
                    &format!("{shape:?} seed {seed}: sessions"),
                );
                let side: Vec<(u8, i64)> = sorted(side.into_iter().map(|r| (r.0, r.3)).collect());
                assert_eq!(side, expected_side, "{shape:?} seed {seed}: side output");
            },
        );
    }
}

/// Processing-time timers fire when the job's clock reaches them, deleted ones never, and timers
/// not yet due are dropped at the end of the input so that the job ends.
#[test]
fn processing_time_timers_follow_the_job_clock() {
    struct Echo;
    impl KeyedProcessFunction<u32, u32> for Echo {
        type State = ();
        type Out = (u32, bool);
        type Side = ();
        fn process_element(
            &mut self,
            _: u32,
            ctx: &mut ProcessContext<'_, u32, (), Self::Out, ()>,
        ) {
            let now = ctx.current_processing_time();
            ctx.register_processing_time_timer(now); // due now
            ctx.register_processing_time_timer(now + 10); // deleted below
            ctx.delete_processing_time_timer(now + 10);
            ctx.register_processing_time_timer(now + 60_000); // never due: the clock stands still
        }
        fn on_timer(
            &mut self,
            at: Time,
            domain: TimeDomain,
            ctx: &mut ProcessContext<'_, u32, (), Self::Out, ()>,
        ) {
            assert_eq!(domain, TimeDomain::ProcessingTime);
            assert!(at <= ctx.current_processing_time());
            let k = *ctx.key();
            ctx.output((k, true));
        }
    }
    let clock = ManualClock::new(1_000_000);
    for workers in [1, 2] {
        let out: Vec<(u32, bool)> = Job::local(workers)
            .with_clock(JobClock::manual(&clock))
            .run(|env| {
                env.from_iter(0..500u32)
                    .key_by(|x| *x)
                    .process(Echo)
                    .collect()
            })
            .unwrap();
        assert_eq!(
            sorted(out),
            (0..500).map(|k| (k, true)).collect::<Vec<_>>(),
            "{workers} workers"
        );
    }
}

/// State with a time to live is removed once it expires: keys that are never written again do
/// not stay. 50 000 keys, each written once while the job's clock moves 1 ms per record handled;
/// with a time to live of 100 ms only the last ones are still held when the input ends (the job
/// report counts the keys held), without one all are.
#[test]
fn expired_state_is_removed_so_the_keys_held_stay_bounded() {
    /// Keeps 64 bytes per key; the job's clock moves 1 ms per record.
    struct Keep(ManualClock);
    impl KeyedProcessFunction<u64, u64> for Keep {
        type State = Vec<u8>;
        type Out = ();
        type Side = ();
        fn process_element(&mut self, _: u64, ctx: &mut ProcessContext<'_, u64, Vec<u8>, (), ()>) {
            ctx.state().resize(64, 1);
            self.0.advance(Duration::from_millis(1));
        }
    }
    const KEYS: u64 = 50_000;
    for ttl in [None, Some(Duration::from_millis(100))] {
        let clock = ManualClock::new(1_000_000);
        let moving = clock.clone();
        let (_, report) = Job::local(1)
            .with_clock(JobClock::manual(&clock))
            .quiet()
            .run_with_report(move |env| {
                let moving = moving.clone();
                let keyed = env
                    .generate(Generator::new(|i| i).count(KEYS))
                    .key_by(|i| *i);
                let keyed = match ttl {
                    Some(ttl) => keyed.with_state_ttl(ttl),
                    None => keyed,
                };
                keyed.process(Keep(moving)).collect()
            })
            .unwrap();
        let held: usize = report.state_keys.values().sum();
        match ttl {
            None => assert_eq!(held, KEYS as usize, "without a time to live"),
            Some(_) => assert!(
                held > 0 && held <= 2_000,
                "with a time to live of 100 ms, {held} keys were still held"
            ),
        }
    }
}

/// Named states of every kind (value, list, map, reducing, aggregating), folded per key and
/// reported by an event-time timer after the input: against the model, on every shape.
#[test]
fn named_states_match_the_model() {
    use tidal::operators::process::named::{
        self, Aggregating, List, Map, Reducing, StateDescriptor, Value,
    };
    struct Fold {
        max: StateDescriptor<Value<i64>>,
        seen: StateDescriptor<List<i64>>,
        signs: StateDescriptor<Map<bool, u32>>,
        sum: StateDescriptor<Reducing<i64>>,
        mean: StateDescriptor<Aggregating<i64, (i64, i64), i64>>,
    }
    type Out = (u8, i64, usize, u32, u32, i64, i64);
    impl KeyedProcessFunction<u8, i64> for Fold {
        type State = ();
        type Out = Out;
        type Side = ();
        fn process_element(&mut self, v: i64, ctx: &mut ProcessContext<'_, u8, (), Out, ()>) {
            let mut s = ctx.named();
            if s.value(&self.max).is_none_or(|m| v > m) {
                s.set_value(&self.max, v);
            }
            s.add_to_list(&self.seen, v);
            let n = s.map_get(&self.signs, &(v >= 0)).unwrap_or(0);
            s.map_put(&self.signs, v >= 0, n + 1);
            s.reduce(&self.sum, v);
            s.aggregate(&self.mean, v);
            ctx.register_event_time_timer(1_000_000);
        }
        fn on_timer(
            &mut self,
            _: Time,
            _: TimeDomain,
            ctx: &mut ProcessContext<'_, u8, (), Out, ()>,
        ) {
            let k = *ctx.key();
            let mut s = ctx.named();
            let signs: BTreeMap<bool, u32> = s.map_entries(&self.signs).into_iter().collect();
            let out = (
                k,
                s.value(&self.max).unwrap(),
                s.list(&self.seen).len(),
                signs.get(&true).copied().unwrap_or(0),
                signs.get(&false).copied().unwrap_or(0),
                s.reduced(&self.sum).unwrap(),
                s.aggregated(&self.mean).unwrap(),
            );
            s.clear(&self.max);
            s.clear(&self.seen);
            s.clear(&self.signs);
            s.clear(&self.sum);
            s.clear(&self.mean);
            ctx.output(out);
        }
    }
    let input = events(8, 20_000, 0);
    let mut model: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
    for (k, v, _) in input.iter() {
        model.entry(*k).or_default().push(*v);
    }
    let expected: Vec<Out> = model
        .iter()
        .map(|(k, vs)| {
            let sum: i64 = vs.iter().sum();
            let pos = vs.iter().filter(|v| **v >= 0).count() as u32;
            (
                *k,
                *vs.iter().max().unwrap(),
                vs.len(),
                pos,
                vs.len() as u32 - pos,
                sum,
                sum / vs.len() as i64,
            )
        })
        .collect();
    let data = Arc::clone(&input);
    on_every_shape(
        "named_states_match_the_model",
        move |env| {
            env.from_iter_with(
                data.to_vec(),
                WatermarkStrategy::monotonous().with_timestamps(|e: &(u8, i64, i64)| e.2),
            )
            .map(|(k, v, _)| (k, v))
            .keyed()
            .process(Fold {
                max: named::value_state("max"),
                seen: named::list_state("seen"),
                signs: named::map_state("signs"),
                sum: named::reducing_state("sum", |a, b| *a += b),
                mean: named::aggregating_state(
                    "mean",
                    |v| (v, 1),
                    |a, v| {
                        a.0 += v;
                        a.1 += 1
                    },
                    |a| a.0 / a.1,
                ),
            })
            .collect()
        },
        |shape, out| assert_eq!(sorted(out), expected, "{shape:?}"),
    );
}

/// Each named state expires after its own time to live: with the clock moving 20 ms per record,
/// a state kept 10 ms after each write is gone at every next record, one kept an hour is not,
/// and one kept 30 ms after each access lives on while it is read every record.
#[test]
fn named_states_expire_each_after_its_own_time_to_live() {
    use tidal::operators::process::named::{self, StateDescriptor, StateTtl, Value};
    struct Three {
        clock: ManualClock,
        short: StateDescriptor<Value<u8>>,
        long: StateDescriptor<Value<u8>>,
        touched: StateDescriptor<Value<u8>>,
    }
    impl KeyedProcessFunction<u8, u8> for Three {
        type State = ();
        type Out = (bool, bool, bool);
        type Side = ();
        fn process_element(&mut self, _: u8, ctx: &mut ProcessContext<'_, u8, (), Self::Out, ()>) {
            let mut s = ctx.named();
            let seen = (
                s.value(&self.short).is_some(),
                s.value(&self.long).is_some(),
                s.value(&self.touched).is_some(),
            );
            s.set_value(&self.short, 1);
            s.set_value(&self.long, 1);
            if !seen.2 {
                s.set_value(&self.touched, 1);
            }
            ctx.output(seen);
            self.clock.advance(Duration::from_millis(20));
        }
    }
    let clock = ManualClock::new(1_000_000);
    let c = clock.clone();
    let out = Job::local(1)
        .with_clock(JobClock::manual(&clock))
        .run(move |env| {
            env.from_iter(vec![(0u8, 0u8); 5])
                .keyed()
                .process(Three {
                    clock: c.clone(),
                    short: named::value_state("short")
                        .with_ttl(StateTtl::after_write(Duration::from_millis(10))),
                    long: named::value_state("long")
                        .with_ttl(StateTtl::after_write(Duration::from_secs(3600))),
                    touched: named::value_state("touched")
                        .with_ttl(StateTtl::after_access(Duration::from_millis(30))),
                })
                .collect()
        })
        .unwrap();
    let mut expected = vec![(false, false, false)];
    expected.extend(std::iter::repeat_n((false, true, true), 4));
    assert_eq!(out, expected);
}

/// A time to live set on a keyed stream holds for a co-process function on it (a join of two
/// streams written as one, the state of a key expiring when neither side writes it): orders wait
/// for their payment, and an order whose payment comes after the time to live is forgotten.
#[test]
fn co_process_functions_keep_the_time_to_live_of_their_input() {
    use tidal::operators::KeyedCoProcessFunction;
    /// Pairs an order with its payment; the clock moves 1 s per record.
    struct Pair(ManualClock);
    impl KeyedCoProcessFunction<u32, String, u32> for Pair {
        type State = Option<String>;
        type Out = (u32, String, u32);
        type Side = ();
        fn process_first(
            &mut self,
            order: String,
            ctx: &mut ProcessContext<'_, u32, Self::State, Self::Out, ()>,
        ) {
            *ctx.state() = Some(order);
            self.0.advance(Duration::from_secs(1));
        }
        fn process_second(
            &mut self,
            cents: u32,
            ctx: &mut ProcessContext<'_, u32, Self::State, Self::Out, ()>,
        ) {
            if let Some(order) = ctx.state_if_any().cloned().flatten() {
                let k = *ctx.key();
                ctx.output((k, order, cents));
            }
            self.0.advance(Duration::from_secs(1));
        }
    }
    for (ttl, paired) in [
        (Duration::from_secs(60), 2usize),
        (Duration::from_millis(1500), 1),
    ] {
        let clock = ManualClock::new(0);
        let c = clock.clone();
        let out: Vec<(u32, String, u32)> = Job::local(1)
            .with_clock(JobClock::manual(&clock))
            .with_tick(Duration::ZERO)
            .run(move |env| {
                // Order 1 is paid a record (1 s) later; order 2 three records (3 s) later.
                let events = env.from_iter_with(
                    vec![
                        (0i64, 1u32, Some("tea"), None),
                        (1, 1, None, Some(250u32)),
                        (2, 2, Some("cake"), None),
                        (3, 3, None, Some(100)),
                        (4, 3, None, Some(100)),
                        (5, 2, None, Some(450)),
                    ],
                    WatermarkStrategy::monotonous()
                        .with_timestamps(|e: &(i64, u32, Option<&'static str>, Option<u32>)| e.0),
                );
                let orders = events
                    .clone()
                    .flat_map(|e| e.2.map(|o| (e.1, o.to_string())))
                    .keyed()
                    .with_state_ttl(ttl);
                let payments = events.flat_map(|e| e.3.map(|p| (e.1, p))).keyed();
                orders.connect(payments).process(Pair(c.clone())).collect()
            })
            .unwrap();
        assert_eq!(out.len(), paired, "time to live {ttl:?}: {out:?}");
    }
}
