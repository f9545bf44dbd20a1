//! Flink SQL scripts run on Apache Flink itself and on Tidal: the same script text, the same input
//! files, and the same rows.
//!
//! Flink is the real thing — PyFlink's distribution from PyPI (`apache-flink`, the Flink jars and a
//! local mini-cluster on Java 17), installed into `target/flink` by the README's test command —
//! driven by `tests/flink/run_flink.py`, which runs each script's statements in order and its
//! INSERTs as one job, at parallelism 1, in streaming mode. Each print table's `+I`/`-U`/`+U`/`-D`
//! lines, folded into its final rows, must be the same from Flink and from `tidal sql` on 1
//! worker, 2 threads and 2 processes; every print table must have rows (a query that returns
//! nothing on both would prove nothing).
//!
//! The scripts are `tests/flink/*.sql` (projections, window aggregations, updating queries, and
//! queries built from others: window Top-N, window and interval joins, DISTINCT, IN subqueries,
//! OVER aggregations);
//! their input is generated here (seeded): orders with event
//! times out of order by less than the watermark delay (so no record is late for either engine,
//! whose watermarks advance at different moments), NULLs in several columns, and customers.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::sql::{fold, printed_changes, run_captured, tidal_sql_with};
use common::{SHAPES, assert_same, fixture_dir};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The Python with PyFlink: `TIDAL_FLINK_PYTHON`, or `target/flink/bin/python` (where the README's
/// test command installs it).
fn flink_python() -> PathBuf {
    if let Some(p) = std::env::var_os("TIDAL_FLINK_PYTHON") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/flink/bin/python");
    assert!(
        p.exists(),
        "no PyFlink found at {}: install it with `python3 -m venv target/flink && target/flink/bin/pip install apache-flink==2.3.0` (the README's test command does; Flink needs Java 17) or set TIDAL_FLINK_PYTHON",
        p.display()
    );
    p
}

/// The scripts compared, in `tests/flink/`.
const SCRIPTS: [&str; 5] = [
    "projections.sql",
    "windows.sql",
    "updating.sql",
    "queries.sql",
    "nested.sql",
];

/// Writes `orders.csv`, `customers.csv`, `order_changes.json` and `events.json` into `dir`.
///
/// Orders: `id,customer,product,qty,price,ts` — customers 1..=10 (every 13th order none), products
/// with upper and lower case and spaces (every 7th none), prices with cents, event times rising by
/// up to 1.5 s and each up to 0.9 s late (the scripts' watermarks wait 1 s), no two at the same
/// time. Customers: 1..=10
/// but not 9 (orders of customer 9 find no customer; customer 10 has a few orders), with a name,
/// a country and a date.
fn write_data(dir: &Path, orders: usize) {
    let mut rng = SmallRng::seed_from_u64(11);
    let products = ["apple", "Pear", "kiwi fruit", "Plum-x", "fig", "Date palm"];
    let mut text = String::new();
    let base = 1_709_280_000_000i64; // 2024-03-01 08:00:00
    let mut t = 0i64;
    // No two orders at the same time: OVER ... ROWS frames order rows of one time by arrival,
    // which differs between Flink's one reader and Tidal's several.
    let mut used = BTreeSet::new();
    for id in 0..orders {
        t += rng.random_range(0..1500);
        let mut ms = base + t + rng.random_range(0..900);
        while !used.insert(ms) {
            ms += 1;
        }
        let customer = if id % 13 == 5 {
            String::new()
        } else {
            rng.random_range(1..=10u32).to_string()
        };
        let product = if id % 7 == 3 {
            ""
        } else {
            products[rng.random_range(0..products.len())]
        };
        let qty = rng.random_range(1..10u32);
        let price = format!(
            "{}.{:02}",
            rng.random_range(0..100u32),
            rng.random_range(0..100u32)
        );
        writeln!(
            text,
            "{id},{customer},{product},{qty},{price},{}",
            tidal::sql::Value::Timestamp(ms)
        )
        .unwrap();
    }
    std::fs::write(dir.join("orders.csv"), text).unwrap();
    let mut text = String::new();
    let names = ["Ann", "Bo", "Cy", "Di"];
    let countries = ["NL", "DE", "FR"];
    for c in (1..=10).filter(|c| *c != 9) {
        writeln!(
            text,
            "{c},{}{c},{},2023-{:02}-{:02}",
            names[rng.random_range(0..names.len())],
            countries[rng.random_range(0..countries.len())],
            rng.random_range(1..=12u32),
            rng.random_range(1..=28u32)
        )
        .unwrap();
    }
    std::fs::write(dir.join("customers.csv"), text).unwrap();
    write_changes(dir, &mut rng);
    write_events(dir, &mut rng);
}

/// Writes `events.json`: JSON objects with nested values — `tags` (an array of strings: some
/// empty, some NULL, some with a NULL element), `scores` (integers), `owner` (a row with a name,
/// an age and a `home` row, NULL at each level now and then) and `items` (an array of rows of a
/// `sku` and a `qty`) — at event times rising by up to 1.5 s, each up to 0.9 s late, none twice;
/// and `events.csv`: ids, arrays of strings (some empty) and rows of a number and a city.
fn write_events(dir: &Path, rng: &mut SmallRng) {
    let words = ["red", "green", "blue", "teal", "gold"];
    let names = ["ann", "bo", "cy"];
    let cities = ["Oslo", "Rome", "Lima"];
    let base = 1_709_280_000_000i64;
    let (mut t, mut used) = (0i64, BTreeSet::new());
    let mut text = String::new();
    for id in 0..300u32 {
        t += rng.random_range(0..1500);
        let mut ms = base + t + rng.random_range(0..900);
        while !used.insert(ms) {
            ms += 1;
        }
        let tags = match id % 11 {
            3 => "null".to_string(),
            7 => "[]".to_string(),
            _ => {
                let n = rng.random_range(1..4);
                let tags: Vec<String> = (0..n)
                    .map(|k| {
                        if id % 17 == 2 && k == 1 {
                            "null".to_string()
                        } else {
                            format!("\"{}\"", words[rng.random_range(0..words.len())])
                        }
                    })
                    .collect();
                format!("[{}]", tags.join(","))
            }
        };
        let scores: Vec<String> = (0..rng.random_range(0..4))
            .map(|_| rng.random_range(0..50u32).to_string())
            .collect();
        let owner = match id % 13 {
            4 => "null".to_string(),
            _ => {
                let home = if id % 5 == 1 {
                    "null".to_string()
                } else {
                    format!(
                        r#"{{"city":"{}"}}"#,
                        cities[rng.random_range(0..cities.len())]
                    )
                };
                let age = if id % 9 == 0 {
                    "null".to_string()
                } else {
                    rng.random_range(18..70u32).to_string()
                };
                format!(
                    r#"{{"name":"{}","age":{age},"home":{home}}}"#,
                    names[rng.random_range(0..names.len())]
                )
            }
        };
        let items: Vec<String> = (0..rng.random_range(0..3))
            .map(|_| {
                format!(
                    r#"{{"sku":"s{}","qty":{}}}"#,
                    rng.random_range(1..6u32),
                    rng.random_range(1..5u32)
                )
            })
            .collect();
        writeln!(
            text,
            r#"{{"id":{id},"tags":{tags},"scores":[{}],"owner":{owner},"items":[{}],"ts":"{}"}}"#,
            scores.join(","),
            items.join(","),
            tidal::sql::Value::Timestamp(ms)
        )
        .unwrap();
    }
    std::fs::write(dir.join("events.json"), text).unwrap();
    // The same kind of values in CSV, as Flink's CSV format holds them: an array's elements and
    // a row's fields separated by `;` (an empty field: an empty array), quoted when they hold a
    // space.
    let mut text = String::new();
    for id in 0..120u32 {
        let n = rng.random_range(0..4);
        let tags: Vec<String> = (0..n)
            .map(|k| {
                let w = words[rng.random_range(0..words.len())];
                if k == 1 && id % 3 == 0 {
                    format!("{w} x")
                } else {
                    w.to_string()
                }
            })
            .collect();
        let tags = tags.join(";");
        let tags = if tags.contains(' ') {
            format!("\"{tags}\"")
        } else {
            tags
        };
        writeln!(
            text,
            "{id},{tags},{};{}",
            rng.random_range(0..100u32),
            cities[rng.random_range(0..cities.len())]
        )
        .unwrap();
    }
    std::fs::write(dir.join("events.csv"), text).unwrap();
}

/// Writes `order_changes.json`: Debezium change events of a table of orders (`id`, `customer`,
/// `price`) — each order inserted (`c`, some as snapshot reads `r`), later some updated (`u`:
/// another price or customer, the row before given) and some deleted (`d`), with `ts_ms`
/// rising; customers 1..=10 (some orders none).
fn write_changes(dir: &Path, rng: &mut SmallRng) {
    use std::collections::BTreeMap;
    let row = |id: u64, row: &(Option<u64>, u64)| {
        let customer = row.0.map_or("null".to_string(), |c| c.to_string());
        format!(
            r#"{{"id":{id},"customer":{customer},"price":{}.{:02}}}"#,
            row.1 / 100,
            row.1 % 100
        )
    };
    let mut live: BTreeMap<u64, (Option<u64>, u64)> = BTreeMap::new();
    let mut text = String::new();
    let mut ts = 1_709_280_000_000u64;
    for id in 0..300u64 {
        ts += rng.random_range(1..2000);
        let customer = (id % 11 != 4).then(|| rng.random_range(1..=10u64));
        let new = (customer, rng.random_range(100..20_000u64));
        let op = if id < 20 { "r" } else { "c" };
        writeln!(
            text,
            r#"{{"before":null,"after":{},"op":"{op}","ts_ms":{ts}}}"#,
            row(id, &new)
        )
        .unwrap();
        live.insert(id, new);
        if id % 5 == 0 && id >= 3 {
            let target = id - 3;
            if let Some(before) = live.get(&target).copied() {
                let after = if id % 2 == 0 {
                    (before.0, before.1 + rng.random_range(1..500u64))
                } else {
                    (Some(rng.random_range(1..=10u64)), before.1)
                };
                ts += 1;
                writeln!(
                    text,
                    r#"{{"before":{},"after":{},"op":"u","ts_ms":{ts}}}"#,
                    row(target, &before),
                    row(target, &after)
                )
                .unwrap();
                live.insert(target, after);
            }
        }
        if id % 7 == 0 && id >= 2 {
            let target = id - 2;
            if let Some(before) = live.remove(&target) {
                ts += 1;
                writeln!(
                    text,
                    r#"{{"before":{},"after":null,"op":"d","ts_ms":{ts}}}"#,
                    row(target, &before)
                )
                .unwrap();
            }
        }
    }
    std::fs::write(dir.join("order_changes.json"), text).unwrap();
}

/// The print tables' identifiers in `stdout` (the text before `> ` of each change line).
fn identifiers(stdout: &str) -> BTreeSet<String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once("> "))
        .filter(|(_, rest)| {
            ["+I[", "-U[", "+U[", "-D["]
                .iter()
                .any(|k| rest.starts_with(k))
        })
        .map(|(id, _)| id.to_string())
        .collect()
}

#[test]
fn scripts_give_the_rows_flink_gives_on_every_shape() {
    let fixture = fixture_dir("flink_sql_scripts");
    let data = fixture.to_path_buf();
    write_data(&data, 400);
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/flink");
    let scripts: Vec<PathBuf> = SCRIPTS.iter().map(|s| here.join(s)).collect();
    let var = format!("data={}", data.display());

    let (status, flink_out, flink_err) = run_captured(
        Command::new(flink_python())
            .arg(here.join("run_flink.py"))
            .arg(&var)
            .args(&scripts),
        Duration::from_secs(600),
    );
    assert!(
        status.success(),
        "Flink failed on the scripts:\n{flink_out}\n{flink_err}"
    );

    for script in &scripts {
        let text = std::fs::read_to_string(script).unwrap();
        let ids: Vec<String> = identifiers(&flink_out)
            .into_iter()
            .filter(|id| text.contains(&format!("'print-identifier' = '{id}'")))
            .collect();
        let declared = text.matches("'print-identifier'").count();
        assert_eq!(
            ids.len(),
            declared,
            "{}: Flink printed rows for {ids:?} only, of {declared} print tables",
            script.display()
        );
        let name = script.file_name().unwrap().to_string_lossy();
        for shape in SHAPES {
            let (ok, stdout, stderr) =
                tidal_sql_with(script, &["--var".to_string(), var.clone()], shape);
            assert!(ok, "{name} on {shape:?}: {stderr}");
            for id in &ids {
                let expected = fold(
                    &printed_changes(&flink_out, Some(id)),
                    &format!("Flink {id}"),
                );
                let got = fold(
                    &printed_changes(&stdout, Some(id)),
                    &format!("{shape:?} {id}"),
                );
                assert_same(&got, &expected, &format!("{name} {id} on {shape:?}"));
            }
        }
    }
}
