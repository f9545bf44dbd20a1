//! Incremental collections against from-scratch oracles: for random histories of tables
//! (insertions, updates, deletions, re-insertions, slightly out of order), the changes each query
//! emits, accumulated up to every input time, equal the query recomputed from scratch on the
//! input up to that time — on 1 worker, 2 threads and 2 processes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use common::on_every_shape;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tidal::prelude::*;

/// The disorder of the generated inputs, in ms, and the watermark bound that tolerates it.
const DISORDER: i64 = 20;

fn strategy<T: 'static>(time: fn(&T) -> Time) -> WatermarkStrategy<T> {
    WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(DISORDER as u64 + 5))
        .with_timestamps(time)
}

/// Shuffles `(time, x)` events by up to [`DISORDER`] ms.
fn disorder<T>(events: Vec<(Time, T)>, rng: &mut SmallRng) -> Vec<(Time, T)> {
    let mut keyed: Vec<(Time, usize, (Time, T))> = events
        .into_iter()
        .enumerate()
        .map(|(i, e)| (e.0 + rng.random_range(0..=DISORDER), i, e))
        .collect();
    keyed.sort_by_key(|(k, i, _)| (*k, *i));
    keyed.into_iter().map(|(_, _, e)| e).collect()
}

type Customer = (i64, String); // (id, region)
type Order = (i64, (i64, i64)); // (customer id, (order id, amount))

/// A valid history of a table with `ids` keys: at each time at most one change per key.
fn history<R: Clone>(
    rng: &mut SmallRng,
    steps: usize,
    ids: i64,
    mut make: impl FnMut(&mut SmallRng, i64) -> R,
) -> Vec<(Time, Change<R>)> {
    let mut current: BTreeMap<i64, R> = BTreeMap::new();
    let mut out = Vec::new();
    let mut t = 1_000;
    for _ in 0..steps {
        t += rng.random_range(0..4);
        let mut touched = BTreeSet::new();
        for _ in 0..rng.random_range(1..4) {
            let id = rng.random_range(0..ids);
            if !touched.insert(id) {
                continue;
            }
            match current.get(&id).cloned() {
                None => {
                    let row = make(rng, id);
                    current.insert(id, row.clone());
                    out.push((t, Change::new(RowKind::Insert, row)));
                }
                Some(old) if rng.random_bool(0.6) => {
                    let new = make(rng, id);
                    current.insert(id, new.clone());
                    out.push((t, Change::new(RowKind::UpdateBefore, old)));
                    out.push((t, Change::new(RowKind::UpdateAfter, new)));
                }
                Some(old) => {
                    current.remove(&id);
                    out.push((t, Change::new(RowKind::Delete, old)));
                }
            }
        }
    }
    out
}

fn region(rng: &mut SmallRng) -> String {
    format!("r{}", rng.random_range(0..4))
}

/// The table as of `t`: every row with its count, from the changes at times up to `t`.
fn table_at<R: Ord + Clone>(changes: &[(Time, Change<R>)], t: Time) -> BTreeMap<R, isize> {
    let mut table = BTreeMap::new();
    for (time, c) in changes {
        if *time <= t {
            *table.entry(c.row.clone()).or_insert(0) += c.kind.diff();
        }
    }
    table.retain(|_, n| *n != 0);
    table
}

/// Output rows tagged with their query, as `tag row` strings.
fn tagged<'s, D: Debug + 'static>(
    tag: &'static str,
    changes: DataStream<'s, (D, Time, isize)>,
) -> DataStream<'s, (String, Time, isize)> {
    changes.map(move |(row, t, diff)| (format!("{tag} {row:?}"), t, diff))
}

fn put<D: Debug>(expected: &mut BTreeMap<String, isize>, tag: &str, row: D, n: isize) {
    *expected.entry(format!("{tag} {row:?}")).or_insert(0) += n;
}

/// Checks that `out`, accumulated to every time in `times`, equals `oracle(t)`.
fn check_every_time(
    shape: common::Shape,
    out: Vec<(String, Time, isize)>,
    times: &BTreeSet<Time>,
    oracle: impl Fn(Time) -> BTreeMap<String, isize>,
) {
    let mut by_time: BTreeMap<Time, Vec<(String, isize)>> = BTreeMap::new();
    for (row, t, diff) in out {
        by_time.entry(t).or_default().push((row, diff));
    }
    let mut acc: BTreeMap<String, isize> = BTreeMap::new();
    let mut applied = by_time.into_iter().peekable();
    for &t in times {
        while let Some((time, _)) = applied.peek()
            && *time <= t
        {
            let (_, rows) = applied.next().unwrap();
            for (row, diff) in rows {
                *acc.entry(row).or_insert(0) += diff;
            }
        }
        acc.retain(|_, n| *n != 0);
        let expected = oracle(t);
        if acc != expected {
            let missing: Vec<_> = expected
                .iter()
                .filter(|(k, v)| acc.get(*k) != Some(v))
                .take(5)
                .collect();
            let extra: Vec<_> = acc
                .iter()
                .filter(|(k, v)| expected.get(*k) != Some(v))
                .take(5)
                .collect();
            panic!(
                "{shape:?}: at time {t} the output differs from the query recomputed from scratch; expected but not output: {missing:?}; output but not expected: {extra:?}"
            );
        }
    }
    assert!(
        applied.next().is_none(),
        "{shape:?}: output at a time after the last input"
    );
}

#[test]
fn joins_and_aggregates_equal_recomputing_from_scratch() {
    for seed in [1u64, 2] {
        let mut rng = SmallRng::seed_from_u64(seed);
        let customers: Vec<(Time, Change<Customer>)> =
            history(&mut rng, 150, 12, |rng, id| (id, region(rng)));
        let orders: Vec<(Time, Change<Order>)> = history(&mut rng, 200, 40, |rng, id| {
            (rng.random_range(0..14), (id, rng.random_range(-5..100)))
        });
        let times: BTreeSet<Time> = customers
            .iter()
            .map(|(t, _)| *t)
            .chain(orders.iter().map(|(t, _)| *t))
            .collect();
        let c_in = Arc::new(disorder(customers.clone(), &mut rng));
        let o_in = Arc::new(disorder(orders.clone(), &mut rng));
        let test = "joins_and_aggregates_equal_recomputing_from_scratch";
        on_every_shape(
            test,
            move |env| {
                let customers = env
                    .from_iter_with(c_in.to_vec(), strategy(|e: &(Time, Change<Customer>)| e.0))
                    .map(|(_, c)| c)
                    .changelog_into_collection();
                let orders = env
                    .from_iter_with(o_in.to_vec(), strategy(|e: &(Time, Change<Order>)| e.0))
                    .map(|(_, c)| c)
                    .changelog_into_collection();
                let joined = orders.clone().join(customers.clone());
                let totals = joined
                    .clone()
                    .map(|(_, ((_, amount), region))| (region, amount))
                    .totals_by_key(|a| *a);
                let left = orders
                    .clone()
                    .left_join(customers.clone())
                    .map(|(cid, ((oid, _), region))| (oid, (cid, region)));
                let r0: Collection<'_, i64> = customers
                    .clone()
                    .filter(|(_, r)| r == "r0")
                    .map(|(id, _)| id);
                let semi = orders.clone().semijoin(r0.clone());
                let anti = orders.clone().antijoin(r0);
                let per_customer = orders.clone().map(|(cid, (_, amount))| (cid, amount));
                let top = per_customer.clone().top_k(2);
                let min = per_customer.clone().min_by_key();
                let max = per_customer.clone().max_by_key();
                let regions = customers.clone().map(|(_, r)| r).distinct();
                let per_region = customers.map(|(_, r)| (r, ())).count_by_key();
                let shared = orders.clone().arrange_by_key();
                let self_join = shared
                    .join(&shared)
                    .map(|(cid, ((a, _), (b, _)))| (cid, (a, b)));
                tagged("totals", totals.changes())
                    .union(tagged("left", left.changes()))
                    .union(tagged("semi", semi.changes()))
                    .union(tagged("anti", anti.changes()))
                    .union(tagged("top", top.changes()))
                    .union(tagged("min", min.changes()))
                    .union(tagged("max", max.changes()))
                    .union(tagged("regions", regions.changes()))
                    .union(tagged("per_region", per_region.changes()))
                    .union(tagged("self_join", self_join.changes()))
                    .collect()
            },
            |shape, out| {
                check_every_time(shape, out, &times, |t| {
                    let cs = table_at(&customers, t);
                    let os = table_at(&orders, t);
                    let region_of: BTreeMap<i64, String> =
                        cs.keys().map(|(id, r)| (*id, r.clone())).collect();
                    let mut e = BTreeMap::new();
                    let mut totals: BTreeMap<String, Totals> = BTreeMap::new();
                    let mut amounts: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
                    for ((cid, (oid, amount)), n) in &os {
                        assert_eq!(*n, 1);
                        match region_of.get(cid) {
                            Some(r) => {
                                let entry = totals.entry(r.clone()).or_default();
                                entry.count += 1;
                                entry.sum += amount;
                                put(&mut e, "left", (*oid, (*cid, Some(r.clone()))), 1);
                                if r == "r0" {
                                    put(&mut e, "semi", (*cid, (*oid, *amount)), 1);
                                } else {
                                    put(&mut e, "anti", (*cid, (*oid, *amount)), 1);
                                }
                            }
                            None => {
                                put(&mut e, "left", (*oid, (*cid, None::<String>)), 1);
                                put(&mut e, "anti", (*cid, (*oid, *amount)), 1);
                            }
                        }
                        amounts.entry(*cid).or_default().push(*amount);
                    }
                    for (r, tot) in totals {
                        put(&mut e, "totals", (r, tot), 1);
                    }
                    for (cid, mut v) in amounts {
                        v.sort();
                        put(&mut e, "min", (cid, v[0]), 1);
                        put(&mut e, "max", (cid, v[v.len() - 1]), 1);
                        for a in v.iter().rev().take(2) {
                            put(&mut e, "top", (cid, *a), 1);
                        }
                    }
                    let regions: BTreeSet<&String> = region_of.values().collect();
                    for r in regions {
                        put(&mut e, "regions", r, 1);
                        let n = region_of.values().filter(|x| *x == r).count() as i64;
                        put(&mut e, "per_region", (r, n), 1);
                    }
                    for a in os.keys() {
                        for b in os.keys() {
                            if a.0 == b.0 {
                                put(&mut e, "self_join", (a.0, (a.1.0, b.1.0)), 1);
                            }
                        }
                    }
                    e.retain(|_, n| *n != 0);
                    e
                });
            },
        );
    }
}

#[test]
fn upserts_keep_each_keys_latest_value() {
    let mut rng = SmallRng::seed_from_u64(7);
    // (time, (key, Some(value)) or (key, None)), at most one upsert per key and time.
    let mut upserts: Vec<(Time, (u32, Option<u32>))> = Vec::new();
    let mut t = 1_000;
    for _ in 0..300 {
        // Upserts of a key at one time apply in the order they arrive, which the disorder of
        // the input changes: one upsert per key and time.
        t += rng.random_range(1..3);
        let mut keys: Vec<u32> = (0..rng.random_range(1..4))
            .map(|_| rng.random_range(0..15))
            .collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let v = (!rng.random_bool(0.25)).then(|| rng.random_range(0..5));
            upserts.push((t, (k, v)));
        }
    }
    let times: BTreeSet<Time> = upserts.iter().map(|(t, _)| *t).collect();
    let input = Arc::new(disorder(upserts.clone(), &mut rng));
    on_every_shape(
        "upserts_keep_each_keys_latest_value",
        move |env| {
            let table = env
                .from_iter_with(
                    input.to_vec(),
                    strategy(|e: &(Time, (u32, Option<u32>))| e.0),
                )
                .map(|(_, u)| u)
                .upsert_by_key();
            let per_value = table.clone().map(|(_, v)| (v, ())).count_by_key();
            tagged("table", table.changes())
                .union(tagged("per_value", per_value.changes()))
                .collect()
        },
        |shape, out| {
            check_every_time(shape, out, &times, |t| {
                let mut latest: BTreeMap<u32, u32> = BTreeMap::new();
                for (time, (k, v)) in &upserts {
                    if *time <= t {
                        match v {
                            Some(v) => latest.insert(*k, *v),
                            None => latest.remove(k),
                        };
                    }
                }
                let mut e = BTreeMap::new();
                let mut per_value: BTreeMap<u32, i64> = BTreeMap::new();
                for (k, v) in &latest {
                    put(&mut e, "table", (*k, *v), 1);
                    *per_value.entry(*v).or_insert(0) += 1;
                }
                for (v, n) in per_value {
                    put(&mut e, "per_value", (v, n), 1);
                }
                e
            });
        },
    );
}

/// Upserts with a time to live: a key not upserted for 30 ms of event time is deleted then. The
/// table, a count per value and a join on the value (pairs of keys holding the same value),
/// accumulated to every upsert time and every time a key may expire, equal the table
/// recomputed from scratch (each key's last upsert up to that time, if it holds a value and is
/// less than 30 ms old) — on every shape.
#[test]
fn upserts_with_a_time_to_live_expire_their_keys_everywhere_downstream() {
    const TTL: Time = 30;
    let mut rng = SmallRng::seed_from_u64(11);
    let mut upserts: Vec<(Time, (u32, Option<u32>))> = Vec::new();
    let mut t = 1_000;
    for _ in 0..300 {
        t += rng.random_range(1..3);
        let mut keys: Vec<u32> = (0..rng.random_range(1..4))
            .map(|_| rng.random_range(0..40))
            .collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let v = (!rng.random_bool(0.15)).then(|| rng.random_range(0..4));
            upserts.push((t, (k, v)));
        }
    }
    let times: BTreeSet<Time> = upserts
        .iter()
        .flat_map(|(t, _)| [*t, *t + TTL - 1, *t + TTL])
        .collect();
    let input = Arc::new(disorder(upserts.clone(), &mut rng));
    on_every_shape(
        "upserts_with_a_time_to_live_expire_their_keys_everywhere_downstream",
        move |env| {
            let table = env
                .from_iter_with(
                    input.to_vec(),
                    strategy(|e: &(Time, (u32, Option<u32>))| e.0),
                )
                .map(|(_, u)| u)
                .upsert_by_key_with_ttl(Duration::from_millis(TTL as u64));
            let per_value = table.clone().map(|(_, v)| (v, ())).count_by_key();
            let by_value = table.clone().map(|(k, v)| (v, k));
            let same_value = by_value
                .clone()
                .join(by_value)
                .filter(|(_, (a, b))| a < b)
                .map(|(_, pair)| pair);
            tagged("table", table.changes())
                .union(tagged("per_value", per_value.changes()))
                .union(tagged("same_value", same_value.changes()))
                .collect()
        },
        |shape, out| {
            check_every_time(shape, out, &times, |t| {
                // Each key's last upsert at or before t.
                let mut last: BTreeMap<u32, (Time, Option<u32>)> = BTreeMap::new();
                for (time, (k, v)) in &upserts {
                    if *time <= t {
                        last.insert(*k, (*time, *v));
                    }
                }
                let live: BTreeMap<u32, u32> = last
                    .into_iter()
                    .filter_map(|(k, (w, v))| v.filter(|_| t < w + TTL).map(|v| (k, v)))
                    .collect();
                let mut e = BTreeMap::new();
                let mut per_value: BTreeMap<u32, i64> = BTreeMap::new();
                for (k, v) in &live {
                    put(&mut e, "table", (*k, *v), 1);
                    *per_value.entry(*v).or_insert(0) += 1;
                    for (k2, v2) in &live {
                        if v2 == v && k < k2 {
                            put(&mut e, "same_value", (*k, *k2), 1);
                        }
                    }
                }
                for (v, n) in per_value {
                    put(&mut e, "per_value", (v, n), 1);
                }
                e
            });
        },
    );
}

/// Components by union-find over the edges present: node -> least node connected to it.
fn components_from_scratch(edges: &BTreeMap<(u32, u32), isize>) -> BTreeMap<u32, u32> {
    let mut parent: BTreeMap<u32, u32> = BTreeMap::new();
    fn find(parent: &mut BTreeMap<u32, u32>, x: u32) -> u32 {
        let p = parent[&x];
        if p == x {
            return x;
        }
        let root = find(parent, p);
        parent.insert(x, root);
        root
    }
    for &(a, b) in edges.keys() {
        parent.entry(a).or_insert(a);
        parent.entry(b).or_insert(b);
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        // The least node of a component is its root.
        if ra < rb {
            parent.insert(rb, ra);
        } else {
            parent.insert(ra, rb);
        }
    }
    let nodes: Vec<u32> = parent.keys().copied().collect();
    nodes
        .into_iter()
        .map(|n| (n, find(&mut parent, n)))
        .collect()
}

#[test]
fn components_follow_edge_insertions_and_deletions() {
    let mut rng = SmallRng::seed_from_u64(11);
    // Undirected edges (lesser end first), inserted and deleted (multi-edges count).
    let mut log: Vec<(Time, Change<(u32, u32)>)> = Vec::new();
    let mut present: Vec<(u32, u32)> = Vec::new();
    let mut t = 1_000;
    for _ in 0..250 {
        t += rng.random_range(0..4);
        if !present.is_empty() && rng.random_bool(0.35) {
            let edge = present.swap_remove(rng.random_range(0..present.len()));
            log.push((t, Change::new(RowKind::Delete, edge)));
        } else {
            let (a, b) = (rng.random_range(0..40), rng.random_range(0..40));
            let edge = (a.min(b), a.max(b));
            present.push(edge);
            log.push((t, Change::new(RowKind::Insert, edge)));
        }
    }
    let times: BTreeSet<Time> = log.iter().map(|(t, _)| *t).collect();
    let input = Arc::new(disorder(log.clone(), &mut rng));
    on_every_shape(
        "components_follow_edge_insertions_and_deletions",
        move |env| {
            let edges = env
                .from_iter_with(
                    input.to_vec(),
                    strategy(|e: &(Time, Change<(u32, u32)>)| e.0),
                )
                .map(|(_, c)| c)
                .changelog_into_collection();
            let both = edges.flat_map(|(a, b)| [(a, b), (b, a)]);
            let labels = both.clone().map(|(n, _)| (n, n)).distinct();
            let components = labels.clone().iterate(move |scope, current| {
                let both = both.enter(scope);
                let labels = labels.enter(scope);
                current
                    .join(both)
                    .map(|(_, (label, next))| (next, label))
                    .concat(labels)
                    .min_by_key()
            });
            tagged("component", components.changes()).collect()
        },
        |shape, out| {
            check_every_time(shape, out, &times, |t| {
                let mut e = BTreeMap::new();
                for (node, c) in components_from_scratch(&table_at(&log, t)) {
                    put(&mut e, "component", (node, c), 1);
                }
                e
            });
        },
    );
}

#[test]
fn keyed_changelogs_pair_updates_and_fold_to_the_final_table() {
    let mut rng = SmallRng::seed_from_u64(3);
    let orders: Vec<(Time, Change<Order>)> = history(&mut rng, 200, 30, |rng, id| {
        (rng.random_range(0..6), (id, rng.random_range(1..50)))
    });
    let input = Arc::new(disorder(orders.clone(), &mut rng));
    on_every_shape(
        "keyed_changelogs_pair_updates_and_fold_to_the_final_table",
        move |env| {
            let totals = env
                .from_iter_with(input.to_vec(), strategy(|e: &(Time, Change<Order>)| e.0))
                .map(|(_, c)| c)
                .changelog_into_collection()
                .map(|(cid, (_, amount))| (cid, amount))
                .sum_by_key(|a| *a);
            totals.changelog_by_key().collect()
        },
        |shape, out| {
            // Fold the changelog in the order it came (each key's changes come from one worker,
            // in time order): -U and -D remove the key's current row, +U follows the key's -U.
            let mut table: BTreeMap<i64, i64> = BTreeMap::new();
            let mut updating: BTreeSet<i64> = BTreeSet::new();
            for change in out {
                let (k, v) = change.row;
                match change.kind {
                    RowKind::Insert => {
                        assert!(
                            !updating.contains(&k),
                            "{shape:?}: +I of key {k} after its -U"
                        );
                        assert!(
                            table.insert(k, v).is_none(),
                            "{shape:?}: +I of key {k} present"
                        );
                    }
                    RowKind::UpdateBefore => {
                        assert_eq!(table.remove(&k), Some(v), "{shape:?}: -U of key {k}");
                        assert!(updating.insert(k), "{shape:?}: two -U of key {k}");
                    }
                    RowKind::UpdateAfter => {
                        assert!(updating.remove(&k), "{shape:?}: +U of key {k} without -U");
                        table.insert(k, v);
                    }
                    RowKind::Delete => {
                        assert!(
                            !updating.contains(&k),
                            "{shape:?}: -D of key {k} after its -U"
                        );
                        assert_eq!(table.remove(&k), Some(v), "{shape:?}: -D of key {k}");
                    }
                }
            }
            assert!(updating.is_empty(), "{shape:?}: -U without +U");
            let mut expected: BTreeMap<i64, i64> = BTreeMap::new();
            for ((cid, (_, amount)), n) in table_at(&orders, Time::MAX) {
                *expected.entry(cid).or_insert(0) += amount * n as i64;
            }
            assert_eq!(table, expected, "{shape:?}: the folded changelog");
        },
    );
}
