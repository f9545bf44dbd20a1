//! Incremental collections across failures and rescaling: the change-data example `cdc_revenue`
//! and the graph example `graph_components`, killed with `kill -9` under `tidal run`, or stopped
//! with a savepoint and restored on other worker counts, give exactly the from-scratch answer.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Kills, example, fixture_dir, launch_once, run_with_kills, stop_with_savepoint};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Final `region -> (orders, revenue)`.
type Revenue = BTreeMap<String, (i64, i64)>;

/// Writes Debezium change logs of customers (`customers.jsonl`) and orders (`orders.jsonl`) in
/// `dir`: customers move region, are deleted and come back; orders are created, changed (amount
/// or customer) and deleted. Returns the query's answer on the final tables.
fn write_cdc(dir: &Path, customers: i64, order_events: usize, seed: u64) -> Revenue {
    let mut rng = SmallRng::seed_from_u64(seed);
    let regions = ["emea", "apac", "amer", "anz", "latam"];
    let base = 1_700_000_000_000i64;
    let customer = |id: i64, region: &str| {
        format!(r#"{{"id":{id},"name":"customer {id}","region":"{region}","tier":3}}"#)
    };
    let order = |id: i64, cid: i64, amount: i64| {
        format!(r#"{{"id":{id},"customer_id":{cid},"amount_cents":{amount},"note":"x"}}"#)
    };
    let event = |before: Option<String>, after: Option<String>, op: &str, ts: i64| {
        format!(
            r#"{{"before":{},"after":{},"source":{{"db":"shop"}},"op":"{op}","ts_ms":{ts}}}"#,
            before.unwrap_or("null".into()),
            after.unwrap_or("null".into())
        ) + "\n"
    };
    // Customers: all created first, then one change every 40 ms of event time.
    let mut regions_now: BTreeMap<i64, &str> = BTreeMap::new();
    let mut text = String::new();
    for id in 0..customers {
        let r = regions[rng.random_range(0..regions.len())];
        regions_now.insert(id, r);
        text += &event(None, Some(customer(id, r)), "r", base);
    }
    let span = order_events as i64;
    let mut t = base;
    while t < base + span {
        t += 40;
        let id = rng.random_range(0..customers);
        match regions_now.get(&id).copied() {
            Some(old) if rng.random_bool(0.8) => {
                let new = regions[rng.random_range(0..regions.len())];
                regions_now.insert(id, new);
                text += &event(Some(customer(id, old)), Some(customer(id, new)), "u", t);
            }
            Some(old) => {
                regions_now.remove(&id);
                text += &event(Some(customer(id, old)), None, "d", t);
            }
            None => {
                let new = regions[rng.random_range(0..regions.len())];
                regions_now.insert(id, new);
                text += &event(None, Some(customer(id, new)), "c", t);
            }
        }
    }
    std::fs::write(dir.join("customers.jsonl"), text).unwrap();
    // Orders: one event per ms.
    let mut orders: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    let mut next_id = 0;
    let mut text = String::new();
    for i in 0..order_events {
        let t = base + i as i64;
        let live: Vec<i64> = if orders.is_empty() || rng.random_bool(0.6) {
            Vec::new()
        } else {
            vec![
                *orders
                    .keys()
                    .nth(rng.random_range(0..orders.len()))
                    .unwrap(),
            ]
        };
        match live.first() {
            None => {
                let (cid, amount) = (
                    rng.random_range(0..customers + 5),
                    rng.random_range(1..10_000),
                );
                orders.insert(next_id, (cid, amount));
                text += &event(None, Some(order(next_id, cid, amount)), "c", t);
                next_id += 1;
            }
            Some(&id) if rng.random_bool(0.7) => {
                let (cid, amount) = orders[&id];
                let new = if rng.random_bool(0.5) {
                    (cid, rng.random_range(1..10_000))
                } else {
                    (rng.random_range(0..customers + 5), amount)
                };
                orders.insert(id, new);
                text += &event(
                    Some(order(id, cid, amount)),
                    Some(order(id, new.0, new.1)),
                    "u",
                    t,
                );
            }
            Some(&id) => {
                let (cid, amount) = orders.remove(&id).unwrap();
                text += &event(Some(order(id, cid, amount)), None, "d", t);
            }
        }
    }
    std::fs::write(dir.join("orders.jsonl"), text).unwrap();
    let mut revenue = Revenue::new();
    for (cid, amount) in orders.values() {
        if let Some(region) = regions_now.get(cid) {
            let entry = revenue.entry(region.to_string()).or_insert((0, 0));
            entry.0 += 1;
            entry.1 += amount;
        }
    }
    revenue
}

/// The part files' lines in `dirs`.
fn part_lines(dirs: &[PathBuf]) -> Vec<String> {
    let mut lines = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.file_name().to_string_lossy().starts_with("part-") {
                let text = std::fs::read_to_string(entry.path()).unwrap();
                lines.extend(text.lines().map(String::from));
            }
        }
    }
    lines
}

/// Copies the files of directory `from` into a new directory `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Folds changelog lines `op,rest` as a multiset: `+I`/`+U` add `rest`, `-U`/`-D` remove it.
/// Exactly-once output folds to the final table with every row once; a change written twice or
/// lost leaves a row counted 0, 2 or -1.
fn fold(lines: &[String]) -> BTreeMap<String, i64> {
    let mut table: BTreeMap<String, i64> = BTreeMap::new();
    for line in lines {
        let (op, rest) = line
            .split_once(',')
            .unwrap_or_else(|| panic!("not a change: {line}"));
        let diff = match op {
            "+I" | "+U" => 1,
            "-U" | "-D" => -1,
            _ => panic!("unknown row kind in {line}"),
        };
        *table.entry(rest.to_string()).or_insert(0) += diff;
    }
    table.retain(|_, n| *n != 0);
    table
}

/// Asserts that `got` equals `expected`, naming at most ten rows that differ.
fn assert_same(got: &BTreeMap<String, i64>, expected: &BTreeMap<String, i64>, what: &str) {
    let differ: Vec<_> = got
        .keys()
        .chain(expected.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| got.get(*k) != expected.get(*k))
        .take(10)
        .map(|k| {
            format!(
                "{k}: output {:?}, expected {:?}",
                got.get(k),
                expected.get(k)
            )
        })
        .collect();
    assert!(
        differ.is_empty(),
        "{what}: rows differ (up to ten): {differ:#?}"
    );
}

fn revenue_rows(revenue: &Revenue) -> BTreeMap<String, i64> {
    revenue
        .iter()
        .map(|(region, (orders, cents))| (format!("{region},{orders},{cents}"), 1))
        .collect()
}

/// The sections of every part of every checkpoint left in `dir`: (full, delta, changes).
fn section_kinds(dir: &Path) -> (usize, usize, usize) {
    use tidal::engine::checkpoint::{Section, decode_part};
    let mut kinds = (0, 0, 0);
    for checkpoint in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
        for part in std::fs::read_dir(&checkpoint)
            .unwrap()
            .map(|e| e.unwrap().path())
        {
            let name = part.file_name().unwrap().to_string_lossy().into_owned();
            if !name.starts_with("part-") {
                continue;
            }
            let stored = decode_part(&std::fs::read(&part).unwrap(), &name).unwrap();
            for (_, section) in &stored.states {
                match section {
                    Section::Full(_) => kinds.0 += 1,
                    Section::Delta { .. } => kinds.1 += 1,
                    Section::Changes { .. } => kinds.2 += 1,
                }
            }
        }
    }
    kinds
}

/// With incremental checkpoints: the roots write only the rows changed since the last complete
/// checkpoint, and restores rebuild them from the chains.
#[test]
fn cdc_changelog_is_exactly_once_across_kill_9() {
    let dir = fixture_dir("cdc_changelog_exactly_once");
    let expected = write_cdc(&dir, 300, 24_000, 5);
    let out = dir.join("out");
    let (customers, orders) = (dir.join("customers.jsonl"), dir.join("orders.jsonl"));
    // 24 000 order events at 6 000/s: about 4 s without failures.
    let args = [
        "--customers",
        customers.to_str().unwrap(),
        "--orders",
        orders.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--changelog",
        "--rate",
        "6000",
        "--incremental-checkpoints",
    ];
    fn nothing() {}
    let checkpoints = dir.join("checkpoints");
    let log = run_with_kills(
        "cdc_revenue",
        &args,
        Kills {
            checkpoints: checkpoints.to_str().unwrap(),
            kills: 3,
            delays: 1200..2200,
            seed: 9,
            envs: &[],
            before_first_kill: &nothing,
        },
    );
    let folded = fold(&part_lines(&[out]));
    if folded != revenue_rows(&expected) {
        eprintln!("{log}");
    }
    assert_same(&folded, &revenue_rows(&expected), "the changelog folded");
    let (full, _, changes) = section_kinds(&checkpoints);
    assert!(
        full > 0 && changes > 0,
        "{full} full and {changes} changes sections in the checkpoints left"
    );
}

/// Runs `program` restoring `savepoint` on `processes` processes (1: without the launcher).
fn restore(program: &str, args: &[String], savepoint: &Path, processes: usize) {
    let mut command = if processes == 1 {
        Command::new(example(program))
    } else {
        let mut c = launch_once(processes);
        c.arg(example(program));
        c
    };
    let run = command
        .args(args)
        .args(["--restore", savepoint.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// A changelog folded: each row with its net count.
type Folded = BTreeMap<String, i64>;

/// Runs `program` with `inputs` and `--changelog` on 2 processes × 2 workers at 4 000 records/s,
/// stops it with a savepoint after 1.5 s, then restores the savepoint on each of `shapes`
/// (processes) into a copy of the stopped job's output directory (the restored job removes what
/// the stopped one wrote after the cut and writes it again). Returns the stopped job's folded
/// changelog and, per shape, the folded changelog of the whole output.
fn stop_then_restore(
    dir: &Path,
    program: &str,
    inputs: &[String],
    shapes: &[usize],
) -> (Folded, Vec<(usize, Folded)>) {
    let savepoints = dir.join("savepoints");
    let args = |out: &Path| -> Vec<String> {
        let mut args = inputs.to_vec();
        args.extend(
            [
                "--output",
                out.to_str().unwrap(),
                "--changelog",
                "--savepoint-dir",
                savepoints.to_str().unwrap(),
            ]
            .map(String::from),
        );
        args
    };
    let first = dir.join("out-first");
    let mut first_args = args(&first);
    first_args.extend(["--rate".to_string(), "4000".to_string()]);
    let savepoint = stop_with_savepoint(program, &first_args, Duration::from_millis(1500));
    let before = fold(&part_lines(std::slice::from_ref(&first)));
    let restored = shapes
        .iter()
        .map(|&processes| {
            let out = dir.join(format!("out-{processes}"));
            copy_dir(&first, &out);
            restore(program, &args(&out), &savepoint, processes);
            (processes, fold(&part_lines(&[out])))
        })
        .collect();
    (before, restored)
}

#[test]
fn cdc_changelog_stopped_with_a_savepoint_continues_on_other_shapes() {
    let dir = fixture_dir("cdc_savepoint");
    let expected = write_cdc(&dir, 200, 16_000, 8);
    let inputs = [
        "--customers",
        dir.join("customers.jsonl").to_str().unwrap(),
        "--orders",
        dir.join("orders.jsonl").to_str().unwrap(),
    ]
    .map(String::from);
    // 16 000 order events at 4 000/s: about 4 s if it were not stopped.
    let (before, restored) = stop_then_restore(&dir, "cdc_revenue", &inputs, &[1, 3]);
    assert_ne!(before, revenue_rows(&expected), "stopped mid-run");
    for (processes, folded) in restored {
        assert_same(
            &folded,
            &revenue_rows(&expected),
            &format!("restored on {processes} process(es)"),
        );
    }
}

/// Writes an edge log (`time,op,src,dst`) to `path` and returns the final components.
fn write_edges(path: &Path, events: usize, nodes: u64, seed: u64) -> BTreeMap<u64, u64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut present: Vec<(u64, u64)> = Vec::new();
    let mut text = String::new();
    for i in 0..events {
        let t = 1_700_000_000_000i64 + i as i64;
        if !present.is_empty() && rng.random_bool(0.3) {
            let (a, b) = present.swap_remove(rng.random_range(0..present.len()));
            // Either direction deletes the edge.
            let (a, b) = if rng.random_bool(0.5) { (a, b) } else { (b, a) };
            text += &format!("{t},-,{a},{b}\n");
        } else {
            let (a, b) = (rng.random_range(0..nodes), rng.random_range(0..nodes));
            present.push((a, b));
            text += &format!("{t},+,{a},{b}\n");
        }
    }
    std::fs::write(path, text).unwrap();
    // From scratch: least node reachable, by repeated relaxation.
    let mut label: BTreeMap<u64, u64> = BTreeMap::new();
    for &(a, b) in &present {
        label.insert(a, a);
        label.insert(b, b);
    }
    loop {
        let mut changed = false;
        for &(a, b) in &present {
            let m = label[&a].min(label[&b]);
            for n in [a, b] {
                if label[&n] > m {
                    label.insert(n, m);
                    changed = true;
                }
            }
        }
        if !changed {
            return label;
        }
    }
}

#[test]
fn graph_components_stopped_with_a_savepoint_continue_on_one_worker() {
    let dir = fixture_dir("graph_savepoint");
    let edges = dir.join("edges.csv");
    let expected = write_edges(&edges, 12_000, 3_000, 4);
    let inputs = ["--edges", edges.to_str().unwrap()].map(String::from);
    let (_, restored) = stop_then_restore(&dir, "graph_components", &inputs, &[1]);
    let folded = &restored[0].1;
    let expected: BTreeMap<String, i64> = expected
        .iter()
        .map(|(n, c)| (format!("{n},{c}"), 1))
        .collect();
    assert_same(folded, &expected, "components restored on 1 worker");
}
