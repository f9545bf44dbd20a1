//! The progress line of a bounded job: shown by process 0 when standard error is a terminal (a
//! real pseudo-terminal here, from util-linux's `script`), for every worker of every process,
//! ending at 100 %; quiet when standard error is not a terminal.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{example, launcher, read_word_counts, write_words};

/// Runs `command` (a shell command line) under a pseudo-terminal; returns what it wrote to the
/// terminal and whether it succeeded.
fn on_a_terminal(command: &str) -> (String, bool) {
    let out = Command::new("script")
        .args(["-q", "-e", "-c", command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("util-linux's script");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.success(),
    )
}

fn quote(p: &Path) -> String {
    format!("'{}'", p.display())
}

/// Word count on a 30 000-line file, paced so that the line is drawn several times, on one
/// process and on two under `tidal run`: the terminal shows rising percentages ending with
/// "100.0 % of the input read" and the records read; the counts are right.
#[test]
fn a_bounded_job_on_a_terminal_shows_its_progress_up_to_100_percent() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("words.txt");
    let oracle = write_words(&input, 30_000, 4);
    for (i, processes) in [1, 2].into_iter().enumerate() {
        let out = dir.path().join(format!("out-{i}"));
        let job = format!(
            "{} --input {} --output {} --rate 15000",
            quote(&example("wordcount")),
            quote(&input),
            quote(&out)
        );
        let command = if processes == 1 {
            job
        } else {
            format!(
                "{} run --processes 2 --restart-strategy none -- {job}",
                launcher()
            )
        };
        let (screen, ok) = on_a_terminal(&command);
        assert!(ok, "{processes} process(es): {screen}");
        let shown: Vec<f64> = screen
            .split("tidal: ")
            .filter_map(|l| l.split(" % of the input read").next()?.trim().parse().ok())
            .collect();
        assert!(
            shown.len() >= 3,
            "{processes} process(es): the line was drawn {} times:\n{screen}",
            shown.len()
        );
        assert!(
            shown.windows(2).all(|w| w[0] <= w[1]),
            "{processes}: the percentage never goes back: {shown:?}"
        );
        assert_eq!(*shown.last().unwrap(), 100.0, "{processes}: {shown:?}");
        assert!(
            shown[0] < 100.0,
            "{processes}: the first line is before the end: {shown:?}"
        );
        let last = screen
            .rsplit("tidal: 100.0 % of the input read, ")
            .next()
            .unwrap();
        let records: u64 = last
            .split(" records")
            .next()
            .unwrap()
            .replace(' ', "")
            .parse()
            .unwrap();
        assert_eq!(
            records, 30_000,
            "{processes}: every line read, all processes' workers counted"
        );
        assert!(
            read_word_counts(&out) == oracle,
            "{processes}: other counts"
        );
    }
}

/// Without a terminal (standard error into a pipe), nothing of the line is written; with
/// `--progress always` it is.
#[test]
fn without_a_terminal_the_job_is_quiet_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("words.txt");
    write_words(&input, 2_000, 6);
    let run = |extra: &[&str]| {
        let out = Command::new(example("wordcount"))
            .args([
                "--input",
                input.to_str().unwrap(),
                "--output",
                dir.path().join("o").to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success());
        let _ = std::fs::remove_dir_all(dir.path().join("o"));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(!run(&[]).contains("of the input read"));
    assert!(run(&["--progress", "always"]).contains("100.0 % of the input read"));
}
