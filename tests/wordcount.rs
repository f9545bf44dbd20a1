//! The wordcount example as a user runs it: on texts it has not seen, on 1 worker, 2 workers and
//! 2 processes with a hostfile, against a from-scratch count; and every bad-flag case.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{free_addresses, wait_with_limit};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The example binary, built by `cargo test` next to the test binaries.
fn wordcount() -> PathBuf {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let bin = deps.parent().unwrap().join("examples").join("wordcount");
    assert!(bin.exists(), "{} is built by cargo test", bin.display());
    bin
}

/// A from-scratch count: scan characters, a word is a maximal run of alphanumerics, lowercased.
fn oracle(texts: &[String]) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for text in texts {
        let mut word = String::new();
        for c in text.chars().chain(std::iter::once(' ')) {
            if c.is_alphanumeric() {
                word.push(c);
            } else if !word.is_empty() {
                *counts.entry(word.to_lowercase()).or_insert(0) += 1;
                word.clear();
            }
        }
    }
    counts
}

/// A random text of about `bytes` bytes: mixed case, punctuation, accented and non-Latin letters,
/// digits, tabs, CRLF and blank lines.
fn random_text(seed: u64, bytes: usize) -> String {
    let mut rng = SmallRng::seed_from_u64(seed);
    let vocabulary: Vec<String> = (0..5000)
        .map(|i| {
            let stems = [
                "tide", "Wave", "MOON", "été", "Straße", "naïve", "Ωmega", "水", "x2", "ĳssel",
            ];
            format!("{}{}", stems[i % stems.len()], i / stems.len())
        })
        .collect();
    let separators = [
        " ", " ", " ", ", ", ". ", "! ", "—", "'", "\t", "\n", "\r\n", "\n\n", "-", "_", "…",
    ];
    let mut text = String::with_capacity(bytes + 64);
    while text.len() < bytes {
        let w = &vocabulary[rng.random_range(0..vocabulary.len())];
        match rng.random_range(0..4) {
            0 => text.push_str(&w.to_uppercase()),
            1 => text.push_str(&capitalise(w)),
            _ => text.push_str(w),
        }
        text.push_str(separators[rng.random_range(0..separators.len())]);
    }
    text
}

fn capitalise(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn parse_counts(text: &str) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for line in text.lines() {
        let (word, n) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad output line '{line}'"));
        let previous = counts.insert(word.to_string(), n.parse().unwrap());
        assert!(previous.is_none(), "word '{word}' printed twice");
    }
    counts
}

fn read_parts(dir: &Path) -> HashMap<String, u64> {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            name.starts_with("part-"),
            "only finished part files are left: {name}"
        );
        text.push_str(&std::fs::read_to_string(&path).unwrap());
    }
    parse_counts(&text)
}

fn run(args: &[&str]) -> Output {
    let mut child = Command::new(wordcount())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::thread::spawn({
        let mut stdout = child.stdout.take().unwrap();
        move || {
            let mut s = Vec::new();
            std::io::Read::read_to_end(&mut stdout, &mut s).unwrap();
            s
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut s).unwrap();
        s
    });
    let status = wait_with_limit(&mut child, Duration::from_secs(120));
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn hostfile(dir: &Path, addresses: &[String]) -> PathBuf {
    let path = dir.join("hosts.txt");
    let mut text = String::from("# loopback hostfile for the test\n\n");
    for a in addresses {
        text.push_str(&format!("{a}   # a process\n"));
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn wordcount_matches_a_from_scratch_count_on_every_shape() {
    let dir = tempfile::tempdir().unwrap();
    // Two files of several MB and one small one, read as a directory and as a glob.
    let texts = vec![
        random_text(1, 3_000_000),
        random_text(2, 2_500_000),
        random_text(3, 10_000),
    ];
    for (i, t) in texts.iter().enumerate() {
        std::fs::write(dir.path().join(format!("book{i}.txt")), t).unwrap();
    }
    let expected = oracle(&texts);
    let input_dir = dir.path().to_str().unwrap().to_string();
    let glob = format!("{}/book*.txt", dir.path().display());

    // 1 worker, to stdout, reading the directory.
    let out = run(&["--input", &input_dir, "-w", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        parse_counts(&String::from_utf8(out.stdout).unwrap()) == expected,
        "-w 1 differs"
    );

    // 2 workers, to part files, reading the glob.
    let out_dir = dir.path().join("out-w2");
    let out = run(&[
        "--input",
        &glob,
        "-w",
        "2",
        "--output",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(read_parts(&out_dir) == expected, "-w 2 differs");

    // 2 processes with a loopback hostfile: stdout of process 0, and part files.
    let hosts = hostfile(dir.path(), &free_addresses(2));
    let h = hosts.to_str().unwrap();
    let p1 = std::thread::spawn({
        let (h, glob) = (h.to_string(), glob.clone());
        move || run(&["--input", &glob, "-n", "2", "-p", "1", "-h", &h])
    });
    let p0 = run(&["--input", &glob, "-n", "2", "-p", "0", "-h", h]);
    let p1 = p1.join().unwrap();
    assert!(
        p0.status.success() && p1.status.success(),
        "{}",
        String::from_utf8_lossy(&p0.stderr)
    );
    assert!(p1.stdout.is_empty(), "only process 0 prints");
    assert!(
        parse_counts(&String::from_utf8(p0.stdout).unwrap()) == expected,
        "2 processes differ"
    );

    let out_dir = dir.path().join("out-n2");
    let o = out_dir.to_str().unwrap().to_string();
    let hosts = hostfile(dir.path(), &free_addresses(2));
    let h = hosts.to_str().unwrap().to_string();
    let p1 = std::thread::spawn({
        let (h, glob, o) = (h.clone(), glob.clone(), o.clone());
        move || {
            run(&[
                "--input", &glob, "-n", "2", "-p", "1", "-h", &h, "-w", "2", "--output", &o,
            ])
        }
    });
    let p0 = run(&[
        "--input", &glob, "-n", "2", "-p", "0", "-h", &h, "-w", "2", "--output", &o,
    ]);
    assert!(p0.status.success() && p1.join().unwrap().status.success());
    assert!(
        read_parts(&out_dir) == expected,
        "2 processes x 2 workers differ"
    );
}

#[test]
fn wordcount_counts_its_embedded_text_without_flags() {
    let out = run(&[]);
    assert!(out.status.success());
    let counts = parse_counts(&String::from_utf8(out.stdout).unwrap());
    let embedded = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/data/tides.txt"
    ))
    .unwrap();
    assert!(counts == oracle(&[embedded]));
    let two = run(&["-w", "2"]);
    assert!(parse_counts(&String::from_utf8(two.stdout).unwrap()) == counts);
}

/// Each bad input: a clear message naming the problem, a non-zero exit, no panic trace, no hang.
#[test]
fn bad_flags_and_hostfiles_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |name: &str, text: &str| {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let good = write("good.txt", "127.0.0.1:1\n127.0.0.1:2\n");
    let malformed = write("malformed.txt", "# first\n127.0.0.1:2101\nlocalhost\n");
    let short = write("short.txt", "127.0.0.1:2101\n");
    let missing = d.join("absent.txt").to_str().unwrap().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["-n".into(), "2".into(), "-h".into(), missing.clone()],
            "absent.txt",
        ),
        (
            vec!["-n".into(), "2".into(), "-h".into(), malformed.clone()],
            "malformed.txt' line 3",
        ),
        (
            vec!["-n".into(), "2".into(), "-h".into(), short.clone()],
            "names 1 process but -n is 2",
        ),
        (
            vec![
                "-n".into(),
                "2".into(),
                "-p".into(),
                "2".into(),
                "-h".into(),
                good.clone(),
            ],
            "-p 2 is out of range",
        ),
        (vec!["-w".into(), "0".into()], "at least 1"),
        (
            vec!["--workers".into(), "many".into()],
            "invalid value 'many'",
        ),
        (
            vec!["--connect-timeout".into(), "soon".into()],
            "not a duration",
        ),
        (
            vec!["--input".into(), missing.clone()],
            "absent.txt' does not exist",
        ),
        (vec!["--no-such-flag".into()], "unexpected argument"),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(
            err.contains(expected),
            "{args:?}: expected '{expected}' in: {err}"
        );
        assert!(!err.contains("panicked at"), "{args:?}: {err}");
    }
}

#[test]
fn cluster_start_up_errors_name_the_address_or_the_missing_process() {
    let dir = tempfile::tempdir().unwrap();
    // A port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let hosts = hostfile(dir.path(), &[addr.clone(), free_addresses(1).remove(0)]);
    let out = run(&[
        "-n",
        "2",
        "-p",
        "0",
        "-h",
        hosts.to_str().unwrap(),
        "--connect-timeout",
        "2s",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&addr) && err.contains("in use"), "{err}");

    // A peer that never starts: the deadline names it.
    let addresses = free_addresses(2);
    let hosts = hostfile(dir.path(), &addresses);
    let out = run(&[
        "-n",
        "2",
        "-p",
        "0",
        "-h",
        hosts.to_str().unwrap(),
        "--connect-timeout",
        "1s",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("process 1") && err.contains(&addresses[1]),
        "{err}"
    );
    assert!(!err.contains("panicked at"), "{err}");

    // Processes started with different -w: the handshake says so.
    let addresses = free_addresses(2);
    let hosts = hostfile(dir.path(), &addresses);
    let h = hosts.to_str().unwrap().to_string();
    let p1 = std::thread::spawn(move || {
        run(&[
            "-n",
            "2",
            "-p",
            "1",
            "-h",
            &h,
            "-w",
            "2",
            "--connect-timeout",
            "5s",
        ])
    });
    let p0 = run(&[
        "-n",
        "2",
        "-p",
        "0",
        "-h",
        hosts.to_str().unwrap(),
        "--connect-timeout",
        "5s",
    ]);
    let p1 = p1.join().unwrap();
    let both = format!(
        "{}{}",
        String::from_utf8_lossy(&p0.stderr),
        String::from_utf8_lossy(&p1.stderr)
    );
    assert!(!p0.status.success() && !p1.status.success(), "{both}");
    assert!(both.contains("-w 2") && both.contains("-w 1"), "{both}");
}
