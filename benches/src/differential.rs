//! The incremental benchmark jobs written directly on differential-dataflow — the overhead floor
//! of Tidal's collections — and generators of their inputs.
//!
//! Each reads the same files and writes the same lines as the example it stands beside
//! (`cdc_revenue`, `graph_components`), one part file per worker: each worker reads its byte range
//! of every file, feeds the changes to differential input sessions at their times, and writes the
//! final table when the input ends.

use std::collections::BTreeMap;
use std::path::Path;

use differential_dataflow::input::Input;
use differential_dataflow::operators::Iterate;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use timely::dataflow::operators::probe::Handle;

use crate::baselines::{LineRange, Out};

#[derive(Deserialize)]
struct Event<T> {
    before: Option<T>,
    after: Option<T>,
    op: String,
    ts_ms: i64,
}

#[derive(Deserialize)]
struct Customer {
    id: i64,
    region: String,
}

#[derive(Deserialize)]
struct Order {
    id: i64,
    customer_id: i64,
    amount_cents: i64,
}

/// The row changes of one Debezium line: (row, time, diff).
fn changes<T, R>(line: &str, row: impl Fn(T) -> R, out: &mut Vec<(R, i64, isize)>)
where
    T: for<'de> Deserialize<'de>,
{
    let e: Event<T> = serde_json::from_str(line).expect("a Debezium event");
    match e.op.as_str() {
        "c" | "r" => out.push((row(e.after.expect("after")), e.ts_ms, 1)),
        "u" => {
            out.push((row(e.before.expect("before")), e.ts_ms, -1));
            out.push((row(e.after.expect("after")), e.ts_ms, 1));
        }
        "d" => out.push((row(e.before.expect("before")), e.ts_ms, -1)),
        other => panic!("unknown op {other}"),
    }
}

/// Writes worker `index`'s rows of the final table (those with a positive count) as lines.
fn write_table<R>(
    out: &Out,
    index: usize,
    table: &BTreeMap<R, isize>,
    line: impl Fn(&R) -> String,
) {
    let lines = table
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(row, _)| line(row));
    out.writer(index).write_lines(lines);
}

/// Lines read per input between steps of the worker (the frontier moves once per chunk): the
/// cadence of Tidal's sources, which move their watermark every 32 Ki records (or 200 ms), so
/// that both jobs stream at the same granularity. (Fed as one batch, all times at once,
/// differential does less work: the cdc job took 3.4 s instead of 4.9 s on 1 M order events.)
const CHUNK: usize = 32 * 1024;

/// `cdc_revenue` on differential: orders joined to customers, per region the number of orders
/// and the sum of their amounts (carried in the difference, as a pair).
pub fn cdc(customers: &Path, orders: &Path, workers: usize, out: Out) {
    let (customers, orders) = (customers.to_path_buf(), orders.to_path_buf());
    timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let probe = Handle::new();
        let table = std::rc::Rc::new(std::cell::RefCell::new(BTreeMap::new()));
        let sink = std::rc::Rc::clone(&table);
        let (mut c_in, mut o_in) = worker.dataflow::<i64, _, _>(|scope| {
            let (c_in, customers) = scope.new_collection::<(i64, String), isize>();
            let (o_in, orders) = scope.new_collection::<(i64, (i64, i64)), isize>();
            orders
                .join(customers)
                .explode(|(_, ((_, amount), region))| Some((region, (1isize, amount as isize))))
                .count_core::<isize>()
                .inspect(move |((region, (n, sum)), _, diff)| {
                    *sink
                        .borrow_mut()
                        .entry((region.clone(), *n, *sum))
                        .or_insert(0) += *diff;
                })
                .probe_with(&probe);
            (c_in, o_in)
        });
        let mut c_lines = LineRange::new(&customers, index, peers);
        let mut o_lines = LineRange::new(&orders, index, peers);
        let (mut c_done, mut o_done) = (false, false);
        let (mut c_buffer, mut o_buffer) = (Vec::new(), Vec::new());
        let mut line = String::new();
        while !(c_done && o_done) {
            for _ in 0..CHUNK {
                line.clear();
                if c_done || !c_lines.next_into(&mut line) {
                    c_done = true;
                    break;
                }
                changes(&line, |c: Customer| (c.id, c.region), &mut c_buffer);
                for (row, t, diff) in c_buffer.drain(..) {
                    c_in.advance_to(t.max(*c_in.time()));
                    c_in.update(row, diff);
                }
            }
            for _ in 0..CHUNK {
                line.clear();
                if o_done || !o_lines.next_into(&mut line) {
                    o_done = true;
                    break;
                }
                changes(
                    &line,
                    |o: Order| (o.customer_id, (o.id, o.amount_cents)),
                    &mut o_buffer,
                );
                for (row, t, diff) in o_buffer.drain(..) {
                    o_in.advance_to(t.max(*o_in.time()));
                    o_in.update(row, diff);
                }
            }
            c_in.flush();
            o_in.flush();
            worker.step();
        }
        drop((c_in, o_in));
        while !probe.done() {
            worker.step();
        }
        write_table(&out, index, &table.borrow(), |(region, n, sum)| {
            format!("{region},{n},{sum}")
        });
    })
    .expect("the differential cdc job");
}

/// `graph_components` on differential: the least node id reachable from each node, by
/// propagating labels along the edges to a fixed point.
pub fn components(edges: &Path, workers: usize, out: Out) {
    let edges = edges.to_path_buf();
    timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let probe = Handle::new();
        let table = std::rc::Rc::new(std::cell::RefCell::new(BTreeMap::new()));
        let sink = std::rc::Rc::clone(&table);
        let mut input = worker.dataflow::<i64, _, _>(|scope| {
            let (input, edges) = scope.new_collection::<(u64, u64), isize>();
            let both = edges.flat_map(|(a, b)| [(a, b), (b, a)]);
            let labels = both.clone().map(|(n, _)| (n, n)).distinct();
            labels
                .clone()
                .iterate(move |scope, current| {
                    let both = both.enter(scope);
                    let labels = labels.enter(scope);
                    current
                        .join_map(both, |_, label, next| (*next, *label))
                        .concat(labels)
                        .reduce(|_, labels, out| out.push((*labels[0].0, 1)))
                })
                .inspect(move |((node, label), _, diff)| {
                    *sink.borrow_mut().entry((*node, *label)).or_insert(0) += *diff;
                })
                .probe_with(&probe);
            input
        });
        let mut lines = LineRange::new(&edges, index, peers);
        let mut line = String::new();
        let mut done = false;
        while !done {
            for _ in 0..CHUNK {
                line.clear();
                if !lines.next_into(&mut line) {
                    done = true;
                    break;
                }
                let mut fields = line.trim_end().split(',');
                let t: i64 = fields.next().unwrap().parse().unwrap();
                let diff = if fields.next() == Some("+") { 1 } else { -1 };
                let a: u64 = fields.next().unwrap().parse().unwrap();
                let b: u64 = fields.next().unwrap().parse().unwrap();
                input.advance_to(t.max(*input.time()));
                input.update((a.min(b), a.max(b)), diff);
            }
            input.flush();
            worker.step();
        }
        drop(input);
        while !probe.done() {
            worker.step();
        }
        write_table(&out, index, &table.borrow(), |(node, label)| {
            format!("{node},{label}")
        });
    })
    .expect("the differential components job");
}

/// Writes Debezium logs `customers.jsonl` (`customers` rows created, then one change every
/// 10 ms: a move to another region, a deletion or a re-creation) and `orders.jsonl`
/// (`order_events` events, one per ms: created, changed or deleted) into `dir`.
pub fn gen_cdc(dir: &Path, customers: i64, order_events: u64, seed: u64) {
    std::fs::create_dir_all(dir).expect("create the data directory");
    let mut rng = SmallRng::seed_from_u64(seed);
    let regions = [
        "emea", "apac", "amer", "anz", "latam", "nordics", "iberia", "benelux",
    ];
    let base = 1_700_000_000_000i64;
    let customer =
        |id: i64, r: &str| format!(r#"{{"id":{id},"name":"customer {id}","region":"{r}"}}"#);
    let order =
        |id: i64, c: i64, a: i64| format!(r#"{{"id":{id},"customer_id":{c},"amount_cents":{a}}}"#);
    let event = |b: Option<String>, a: Option<String>, op: &str, ts: i64| {
        format!(
            r#"{{"before":{},"after":{},"op":"{op}","ts_ms":{ts}}}"#,
            b.unwrap_or_else(|| "null".into()),
            a.unwrap_or_else(|| "null".into())
        ) + "\n"
    };
    let mut now: BTreeMap<i64, &str> = BTreeMap::new();
    let mut text = String::new();
    for id in 0..customers {
        let r = regions[rng.random_range(0..regions.len())];
        now.insert(id, r);
        text += &event(None, Some(customer(id, r)), "r", base);
    }
    let mut t = base;
    while t < base + order_events as i64 {
        t += 10;
        let id = rng.random_range(0..customers);
        let r = regions[rng.random_range(0..regions.len())];
        match now.get(&id).copied() {
            Some(old) if rng.random_bool(0.9) => {
                now.insert(id, r);
                text += &event(Some(customer(id, old)), Some(customer(id, r)), "u", t);
            }
            Some(old) => {
                now.remove(&id);
                text += &event(Some(customer(id, old)), None, "d", t);
            }
            None => {
                now.insert(id, r);
                text += &event(None, Some(customer(id, r)), "c", t);
            }
        }
    }
    std::fs::write(dir.join("customers.jsonl"), text).expect("write customers");
    let mut live: Vec<(i64, i64, i64)> = Vec::new();
    let mut next = 0;
    let mut text = String::with_capacity(order_events as usize * 120);
    for i in 0..order_events {
        let t = base + i as i64;
        if live.is_empty() || rng.random_bool(0.6) {
            let (c, a) = (
                rng.random_range(0..customers + customers / 20),
                rng.random_range(1..100_000),
            );
            live.push((next, c, a));
            text += &event(None, Some(order(next, c, a)), "c", t);
            next += 1;
        } else {
            let k = rng.random_range(0..live.len());
            let (id, c, a) = live[k];
            if rng.random_bool(0.7) {
                let new = (id, c, rng.random_range(1..100_000));
                live[k] = new;
                text += &event(Some(order(id, c, a)), Some(order(id, c, new.2)), "u", t);
            } else {
                live.swap_remove(k);
                text += &event(Some(order(id, c, a)), None, "d", t);
            }
        }
    }
    std::fs::write(dir.join("orders.jsonl"), text).expect("write orders");
}

/// Writes an edge log `time,op,src,dst` of `events` lines among `nodes` nodes: insertions, and
/// (three in ten) deletions of a present edge; `per_ms` changes share each millisecond.
pub fn gen_edges(path: &Path, events: u64, nodes: u64, per_ms: u64, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut present: Vec<(u64, u64)> = Vec::new();
    let mut text = String::new();
    for i in 0..events {
        let t = 1_700_000_000_000i64 + (i / per_ms.max(1)) as i64;
        if !present.is_empty() && rng.random_bool(0.3) {
            let (a, b) = present.swap_remove(rng.random_range(0..present.len()));
            text += &format!("{t},-,{a},{b}\n");
        } else {
            let (a, b) = (rng.random_range(0..nodes), rng.random_range(0..nodes));
            present.push((a, b));
            text += &format!("{t},+,{a},{b}\n");
        }
    }
    std::fs::write(path, text).expect("write edges");
}
