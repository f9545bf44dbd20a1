//! The benchmark runner end to end, on small inputs: `tidal-bench all --quick` runs W1 and W2 on
//! Tidal (the example binaries) and on the hand-written timely baselines, 1 and 2 workers, and
//! finds their outputs equal (it fails otherwise); the table has a row per job.

#[test]
fn the_runner_compares_tidal_and_timely_and_their_outputs_agree() {
    let data = std::env::temp_dir().join(format!("tidal-bench-test-{}", std::process::id()));
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_tidal-bench"))
        .args([
            "all", "--quick", "--words", "60000", "--bids", "60000", "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&data);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("outputs of Tidal and timely were equal in every configuration"),
        "{stdout}"
    );
    for workload in ["W1 wordcount", "W2 bid_windows"] {
        for job in ["tidal", "timely (hand)"] {
            let rows = stdout
                .lines()
                .filter(|l| l.starts_with(workload) && l.contains(job))
                .count();
            assert_eq!(rows, 2, "{workload} {job} on 1 and 2 workers:\n{stdout}");
        }
    }
}
