//! File sources and sinks: every line read once on any shape, decode errors named or set aside,
//! part files whose union is the result.

mod common;

use std::path::Path;

use common::{fixture_dir, is_child, on_every_shape, sorted};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tidal::prelude::*;

fn write(path: &Path, text: &str) {
    if !is_child() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// Random lines of random length, some empty, some with non-ASCII text.
fn random_lines(seed: u64, n: usize) -> Vec<String> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let alphabet: Vec<char> = "abcdefghij éüß漢字 ,.;-0123456789".chars().collect();
    (0..n)
        .map(|i| {
            let len = rng.random_range(0..60);
            let body: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            format!("{i}:{body}")
        })
        .collect()
}

#[test]
fn text_files_are_read_once_from_files_directories_and_globs() {
    let dir = fixture_dir("text_files");
    // Three files (one larger than a split, so it is cut in the middle), one hidden file that a
    // directory read skips, and CRLF line ends in one file.
    let big = random_lines(1, 60_000);
    let small = random_lines(2, 100);
    let crlf = random_lines(3, 50);
    write(&dir.join("in/big.txt"), &(big.join("\n") + "\n"));
    write(&dir.join("in/sub/small.txt"), &small.join("\n"));
    write(&dir.join("in/crlf.log"), &(crlf.join("\r\n") + "\r\n"));
    write(&dir.join("in/.hidden"), "never read\n");
    let all: Vec<String> = big.iter().chain(&small).chain(&crlf).cloned().collect();
    let txt_only: Vec<String> = big.iter().chain(&small).cloned().collect();

    let d = dir.join("in").to_str().unwrap().to_string();
    on_every_shape(
        "text_files_are_read_once_from_files_directories_and_globs",
        move |env| env.read(TextFiles::new(&d)).collect(),
        |shape, out| {
            assert!(
                sorted(out) == sorted(all.clone()),
                "directory read differs on {shape:?}"
            )
        },
    );
    let g = format!("{}/in/**/*.txt", dir.display());
    on_every_shape(
        "text_files_are_read_once_from_files_directories_and_globs",
        move |env| env.read(TextFiles::new(&g)).collect(),
        |shape, out| {
            assert!(
                sorted(out) == sorted(txt_only.clone()),
                "glob read differs on {shape:?}"
            )
        },
    );
}

#[derive(Debug, Clone, PartialEq, PartialOrd, Serialize, Deserialize)]
struct Ride {
    id: u64,
    driver: String,
    fare: f64,
    note: Option<String>,
}

fn rides(seed: u64, n: u64) -> Vec<Ride> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n)
        .map(|id| Ride {
            id,
            driver: format!("driver, \"{}\"", rng.random_range(0..50)),
            fare: rng.random_range(0..10_000) as f64 / 100.0,
            note: if id % 3 == 0 {
                None
            } else {
                Some(format!("n{id}"))
            },
        })
        .collect()
}

fn sorted_rides(mut v: Vec<Ride>) -> Vec<Ride> {
    v.sort_by_key(|r| r.id);
    v
}

#[test]
fn csv_and_json_lines_round_trip_through_part_files() {
    let dir = fixture_dir("csv_json");
    let input = rides(11, 30_000);
    if !is_child() {
        let mut w = csv::Writer::from_path(dir.join("rides.csv")).unwrap();
        for r in &input {
            w.serialize(r).unwrap();
        }
        w.flush().unwrap();
        let jsonl: String = input
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        std::fs::write(dir.join("rides.jsonl"), jsonl).unwrap();
    }
    let base = dir.to_path_buf();
    let expected = input.clone();
    on_every_shape(
        "csv_and_json_lines_round_trip_through_part_files",
        move |env| {
            let csv_in = base.join("rides.csv").to_str().unwrap().to_string();
            let json_in = base.join("rides.jsonl").to_str().unwrap().to_string();
            // Read both formats, write each to part files, and collect what was read.
            let from_csv = env.read(CsvFiles::<Ride>::new(&csv_in));
            let from_json = env.read(JsonLinesFiles::<Ride>::new(&json_in));
            from_csv.clone().write_csv(base.join("csv-out"));
            from_json.clone().write_jsonl(base.join("jsonl-out"));
            from_csv.union(from_json).collect()
        },
        |shape, out| {
            let mut both = expected.clone();
            both.extend(expected.iter().cloned());
            assert!(
                sorted_rides(out) == sorted_rides(both),
                "read records differ on {shape:?}"
            );
            // The union of the part files is the input, whatever the number of workers.
            let read_back: Vec<Ride> = Job::local(1)
                .quiet()
                .run({
                    let d = dir.to_path_buf();
                    move |env| {
                        env.read(CsvFiles::<Ride>::new(d.join("csv-out").to_str().unwrap()))
                            .union(env.read(JsonLinesFiles::<Ride>::new(
                                d.join("jsonl-out").to_str().unwrap(),
                            )))
                            .collect()
                    }
                })
                .unwrap();
            let mut both = expected.clone();
            both.extend(expected.iter().cloned());
            assert!(
                sorted_rides(read_back) == sorted_rides(both),
                "part files differ on {shape:?}"
            );
            // Parts of this run only (those of the shape before were removed), at most one per
            // worker (a worker that got no records writes none).
            let names: Vec<String> = std::fs::read_dir(dir.join("csv-out"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            let runs: std::collections::BTreeSet<&str> =
                names.iter().map(|n| &n["part-".len()..][..16]).collect();
            let workers = if shape == common::Shape::OneWorker {
                1
            } else {
                2
            };
            assert!(
                runs.len() == 1 && !names.is_empty() && names.len() <= workers,
                "{shape:?}: parts of one run, at most one per worker: {names:?}"
            );
        },
    );
}

#[derive(Debug, Deserialize, Serialize, PartialEq, Clone)]
struct Reading {
    sensor: String,
    value: u32,
}

#[test]
fn a_bad_csv_record_fails_the_job_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("readings.csv");
    std::fs::write(&path, "sensor,value\na,1\nb,2\nc,not-a-number\nd,4\n").unwrap();
    let p = path.to_str().unwrap().to_string();
    let err = Job::local(2)
        .run(move |env| env.read(CsvFiles::<Reading>::new(&p)).collect())
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("readings.csv line 4"), "{msg}");
    assert!(msg.contains("field 'value'"), "{msg}");
    assert!(msg.contains("not-a-number"), "{msg}");
    assert_eq!(err.kind(), tidal::ErrorKind::Input);
}

#[test]
fn a_bad_json_record_fails_the_job_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("readings.jsonl");
    std::fs::write(
        &path,
        "{\"sensor\":\"a\",\"value\":1}\n{\"sensor\":\"b\",\"value\":\"x\"}\n",
    )
    .unwrap();
    let p = path.to_str().unwrap().to_string();
    let err = Job::local(1)
        .run(move |env| env.read(JsonLinesFiles::<Reading>::new(&p)).collect())
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("readings.jsonl line 2"), "{msg}");
    assert!(msg.contains("field 'value'"), "{msg}");
}

#[test]
fn bad_records_go_to_the_dead_letter_directory_and_are_counted() {
    let dir = fixture_dir("dead_letter");
    let mut text = String::from("sensor,value\n");
    let mut good = Vec::new();
    let mut bad_lines = Vec::new();
    for i in 0..20_000u32 {
        if i % 997 == 0 {
            text.push_str(&format!("s{i},bad{i}\n"));
            bad_lines.push(i as u64 + 2);
        } else {
            text.push_str(&format!("s{i},{i}\n"));
            good.push(Reading {
                sensor: format!("s{i}"),
                value: i,
            });
        }
    }
    write(&dir.join("in.csv"), &text);
    let input = dir.join("in.csv").to_str().unwrap().to_string();
    let dead = dir.join("dead");
    for workers in [1, 2] {
        let _ = std::fs::remove_dir_all(&dead);
        let (i, d) = (input.clone(), dead.clone());
        let (out, report) = Job::local(workers)
            .run_with_report(move |env| {
                env.read(CsvFiles::<Reading>::new(&i).on_error(OnError::DeadLetter(d.clone())))
                    .collect()
            })
            .unwrap();
        let mut out = out;
        out.sort_by_key(|r| r.value);
        assert_eq!(out, good, "{workers} workers: good records");
        assert_eq!(
            report.total_skipped(),
            bad_lines.len() as u64,
            "{workers} workers: count reported"
        );
        let mut dead_lines = Vec::new();
        for entry in std::fs::read_dir(&dead).unwrap() {
            for line in std::fs::read_to_string(entry.unwrap().path())
                .unwrap()
                .lines()
            {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert!(
                    v["error"].as_str().unwrap().contains("field 'value'"),
                    "{v}"
                );
                assert!(v["record"].as_str().unwrap().contains(",bad"), "{v}");
                dead_lines.push(v["line"].as_u64().unwrap());
            }
        }
        dead_lines.sort();
        assert_eq!(
            dead_lines, bad_lines,
            "{workers} workers: dead-lettered lines"
        );
    }
}

#[test]
fn invalid_utf8_in_text_is_an_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.txt");
    std::fs::write(&path, b"fine\nbad \xff byte\n").unwrap();
    let p = path.to_str().unwrap().to_string();
    let err = Job::local(1)
        .run(move |env| env.read(TextFiles::new(&p)).collect())
        .unwrap_err();
    assert!(err.to_string().contains("t.txt line 2"), "{err}");
    assert!(err.to_string().contains("UTF-8"), "{err}");
}

#[test]
fn missing_inputs_are_named() {
    let err = Job::local(2)
        .run(|env| {
            env.read(TextFiles::new("/definitely/not/here.txt"))
                .collect()
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("/definitely/not/here.txt"),
        "{err}"
    );
    let err = Job::local(1)
        .run(|env| env.read(TextFiles::new("/definitely/not/*.txt")).collect())
        .unwrap_err();
    assert!(err.to_string().contains("matches no file"), "{err}");
}

/// A sink that cannot make its output directory fails the job with an error naming it, returned
/// by `Job::run` (the operator reports it and stops; nothing unwinds).
#[test]
fn an_output_directory_that_cannot_be_made_fails_the_job_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let out = blocker.join("out");
    let err = Job::local(2)
        .quiet()
        .run(move |env| {
            env.from_iter(vec!["x".to_string()]).write_text(out.clone());
        })
        .unwrap_err();
    assert_eq!(err.kind(), tidal::ErrorKind::External);
    let msg = err.to_string();
    assert!(msg.contains("cannot create output directory"), "{msg}");
    assert!(msg.contains("a-file"), "{msg}");
}

/// A record set aside into a dead-letter directory that cannot be made fails the job with an
/// error naming the dead-letter file (the record is not lost silently).
#[test]
fn a_dead_letter_directory_that_cannot_be_made_fails_the_job_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("readings.csv");
    std::fs::write(&path, "sensor,value\na,1\nb,oops\n").unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let dead = blocker.join("dead");
    let p = path.to_str().unwrap().to_string();
    let err = Job::local(1)
        .quiet()
        .run(move |env| {
            env.read(CsvFiles::<Reading>::new(&p).on_error(OnError::DeadLetter(dead.clone())))
                .collect()
        })
        .map(|_: Vec<Reading>| ())
        .unwrap_err();
    assert_eq!(err.kind(), tidal::ErrorKind::External);
    let msg = err.to_string();
    assert!(msg.contains("cannot create dead-letter file"), "{msg}");
    assert!(msg.contains("a-file"), "{msg}");
}
