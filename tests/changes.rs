//! Bad change data: a line that is not a change fails the job naming the file, line and field
//! (or goes to the dead-letter directory); a deletion of a row that is not there fails the job
//! naming the row; nothing is dropped silently.

mod common;

use std::path::Path;
use std::process::Command;

use common::{example, fixture_dir};
use tidal::prelude::*;

const CUSTOMERS: &str = concat!(
    r#"{"before":null,"after":{"id":1,"name":"a","region":"emea"},"op":"c","ts_ms":1000}"#,
    "\n",
    r#"{"before":null,"after":{"id":2,"name":"b","region":"apac"},"op":"c","ts_ms":1000}"#,
    "\n"
);

/// Runs cdc_revenue on `customers` (appended to two good lines) and an order; returns stderr.
fn run_cdc(dir: &Path, customers: &str) -> (bool, String) {
    std::fs::write(
        dir.join("customers.jsonl"),
        format!("{CUSTOMERS}{customers}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("orders.jsonl"),
        r#"{"before":null,"after":{"id":9,"customer_id":1,"amount_cents":5},"op":"c","ts_ms":1500}"#,
    )
    .unwrap();
    let out = Command::new(example("cdc_revenue"))
        .args(["--customers", dir.join("customers.jsonl").to_str().unwrap()])
        .args(["--orders", dir.join("orders.jsonl").to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn malformed_changes_fail_the_job_naming_file_line_and_field() {
    let dir = fixture_dir("malformed_changes");
    let cases = [
        (
            r#"{"before":null,"after":{"id":1,"region":"apac"},"op":"u","ts_ms":2000}"#,
            "field 'before'",
        ),
        (
            r#"{"before":{"id":1,"region":"emea"},"after":null,"op":"x","ts_ms":2000}"#,
            "field 'op': unknown operation 'x'",
        ),
        (
            r#"{"before":null,"after":{"id":"three","region":"apac"},"op":"c","ts_ms":2000}"#,
            "field 'after.id'",
        ),
        (
            r#"{"before":null,"after":{"id":3,"region":"x"},"op":"c"}"#,
            "field 'ts_ms'",
        ),
    ];
    for (line, field) in cases {
        let (ok, stderr) = run_cdc(&dir, line);
        assert!(!ok, "{line}: the job should fail");
        assert!(
            stderr.contains("customers.jsonl line 3"),
            "{line}: {stderr}"
        );
        assert!(
            stderr.contains(field),
            "{line}: expected {field} in {stderr}"
        );
    }
}

#[test]
fn a_deletion_of_a_row_that_is_not_there_fails_the_job_naming_the_row() {
    let dir = fixture_dir("deletion_of_absent_row");
    // Customer 1 is in emea, not apac: this deletion removes a row that is not there.
    let (ok, stderr) = run_cdc(
        &dir,
        r#"{"before":{"id":1,"region":"apac"},"after":null,"op":"d","ts_ms":2000}"#,
    );
    assert!(!ok, "the job should fail: {stderr}");
    assert!(
        stderr.contains(r#"row (1, "apac") with count -1"#),
        "{stderr}"
    );
    assert!(stderr.contains("at time 2000"), "{stderr}");
    // The collection is named after the source it reads.
    assert!(
        stderr.contains("the collection read from 'customers'"),
        "{stderr}"
    );
    // The same row deleted as it is, then again: the second deletion fails.
    let twice = concat!(
        r#"{"before":{"id":2,"region":"apac"},"after":null,"op":"d","ts_ms":2000}"#,
        "\n",
        r#"{"before":{"id":2,"region":"apac"},"after":null,"op":"d","ts_ms":3000}"#
    );
    let (ok, stderr) = run_cdc(&dir, twice);
    assert!(!ok, "the job should fail: {stderr}");
    assert!(
        stderr.contains(r#"row (2, "apac") with count -1"#),
        "{stderr}"
    );
}

#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
struct Customer {
    id: i64,
    region: String,
}

#[test]
fn malformed_changes_can_go_to_the_dead_letter_directory() {
    let dir = fixture_dir("changes_dead_letter");
    let input = dir.join("customers.jsonl");
    std::fs::write(
        &input,
        format!(
            "{CUSTOMERS}{}\n{}\n",
            r#"{"before":null,"after":{"id":1,"region":"apac"},"op":"u","ts_ms":2000}"#,
            r#"{"before":{"id":2,"region":"apac"},"after":{"id":2,"region":"anz"},"op":"u","ts_ms":3000}"#
        ),
    )
    .unwrap();
    let dead = dir.join("dead");
    let (path, d) = (input.to_str().unwrap().to_string(), dead.clone());
    let (table, report) = Job::local(2)
        .run_with_report(move |env| {
            env.read_with(
                DebeziumJsonFiles::<Customer>::new(&path).on_error(OnError::DeadLetter(d.clone())),
                WatermarkStrategy::monotonous()
                    .with_timestamps(|e: &DebeziumEvent<Customer>| e.ts_ms),
            )
            .flat_map(|e| e)
            .changelog_into_collection()
            .final_table()
            .collect()
        })
        .unwrap();
    let mut table = table;
    table.sort();
    assert_eq!(
        table,
        vec![
            Customer {
                id: 1,
                region: "emea".into()
            },
            Customer {
                id: 2,
                region: "anz".into()
            }
        ]
    );
    assert_eq!(report.total_skipped(), 1);
    let mut set_aside = String::new();
    for entry in std::fs::read_dir(&dead).unwrap().flatten() {
        set_aside += &std::fs::read_to_string(entry.path()).unwrap();
    }
    let v: serde_json::Value = serde_json::from_str(set_aside.trim()).unwrap();
    assert_eq!(v["line"].as_u64(), Some(3));
    assert!(
        v["error"].as_str().unwrap().contains("field 'before'"),
        "{v}"
    );
}
