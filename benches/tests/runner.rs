//! The benchmark runner end to end, on small inputs: `tidal-bench all --quick` runs W1, W2 and
//! Nexmark queries on Tidal (the example binaries) and on the hand-written timely baselines, and
//! W2 with checkpoints against W2 without, and the incremental jobs cdc_revenue and
//! graph_components against the same jobs on differential, and the Nexmark queries written in SQL
//! (q0-q5, q7, q8, q11) against their DataStream versions, 1 and 2 workers, and finds their
//! outputs equal (it fails otherwise); the table has a row per job.

#[test]
fn the_runner_compares_tidal_and_timely_and_their_outputs_agree() {
    let data = std::env::temp_dir().join(format!("tidal-bench-test-{}", std::process::id()));
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_tidal-bench"))
        .args([
            "all",
            "--quick",
            "--words",
            "60000",
            "--bids",
            "60000",
            "--events",
            "60000",
            "--only",
            "W1,W2,checkpoints,q3,q4,q5,q6,q11,q12,SQL,cdc,components",
            "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&data);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("outputs were compared in 20 configuration(s) and were equal"),
        "{stdout}"
    );
    // Table rows of exactly `workload` (its name, then the workers column: `nexmark q3` is not
    // `nexmark q3 SQL`) whose job contains `job`.
    let rows = |workload: &str, job: &str| {
        stdout
            .lines()
            .filter(|l| {
                l.strip_prefix(workload)
                    .is_some_and(|rest| rest.trim_start().starts_with(|c: char| c.is_ascii_digit()))
                    && l.contains(job)
                    && !l.contains("worker(s)")
            })
            .count()
    };
    assert_eq!(rows("W2+checkpoints 1s", "tidal, 1 s ckpt"), 2, "{stdout}");
    assert_eq!(rows("W2+checkpoints 1s", "tidal, no ckpt"), 2, "{stdout}");
    // q12 (processing-time windows) is measured against its baseline, but the windows its
    // outputs fall in depend on the clock: they are not compared (14 + 6 comparisons above: q4,
    // q6 and q11 on 1 and 2 workers).
    assert_eq!(rows("nexmark q12", "tidal"), 2, "{stdout}");
    // The SQL versions against their DataStream versions (formats differ: not compared;
    // tests/sql.rs checks their rows).
    for query in ["q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q11"] {
        let workload = format!("nexmark {query} SQL");
        assert_eq!(rows(&workload, "tidal sql"), 2, "{stdout}");
        assert_eq!(rows(&workload, "tidal DataStream"), 2, "{stdout}");
    }
    assert_eq!(rows("nexmark q12", "timely"), 2, "{stdout}");
    for workload in ["cdc_revenue", "graph_components"] {
        for job in ["tidal", "differential"] {
            assert_eq!(
                rows(workload, job),
                2,
                "{workload} {job} on 1 and 2 workers:\n{stdout}"
            );
        }
    }
    for workload in [
        "W1 wordcount",
        "W2 bid_windows",
        "nexmark q3",
        "nexmark q4",
        "nexmark q5",
        "nexmark q6",
        "nexmark q11",
    ] {
        for job in ["tidal", "timely (hand)"] {
            assert_eq!(
                rows(workload, job),
                2,
                "{workload} {job} on 1 and 2 workers:\n{stdout}"
            );
        }
    }
}
