//! Checkpoints, sources and sinks on a real S3-compatible server (`moto_server` on loopback,
//! started by each test): the storage layer's operations; a job under the launcher whose S3
//! server goes away for a while — its checkpoints fail with a clear log line, the job keeps
//! running, later checkpoints succeed — and whose process is then killed with `kill -9`: the
//! restart restores from S3 and the output equals a from-scratch count; file sources reading
//! objects; and the exactly-once file sink writing objects across `kill -9`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::s3::{Outage, S3Server};
use common::{
    Kills, Windows, add_windows, example, fixture_dir, launch_once, launcher, read_word_counts,
    run_with_kills, wait_with_limit, write_bids, write_words,
};
use tidal::engine::storage::{self, Location, S3Settings};

/// Credentials (moto accepts any) and region for the jobs these tests start.
const S3_ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "eu-west-1"),
];

/// Points this process's S3 client (the checks these tests make) at `server`.
fn talk_to(server: &S3Server) {
    storage::configure_s3(S3Settings {
        endpoint: Some(server.endpoint.clone()),
        region: Some("eu-west-1".into()),
        credentials: Some(("test".into(), "test".into())),
    });
}

#[test]
fn s3_objects_write_read_list_and_delete() {
    let server = S3Server::start("store");
    talk_to(&server);
    let root = Location::parse("s3://store/jobs/one").unwrap();
    let at = root.join("chk-000000001").join("part-00000-of-00001");
    storage::write(&at, b"0123456789").unwrap();
    storage::write(&root.join("chk-000000002").join("MANIFEST"), b"m").unwrap();
    assert_eq!(storage::read(&at).unwrap(), b"0123456789");
    assert_eq!(storage::read_range(&at, 3, 4).unwrap(), b"3456");
    let listed = storage::list(&root).unwrap();
    let names: Vec<(&str, bool)> = listed.iter().map(|l| (l.name.as_str(), l.is_dir)).collect();
    assert_eq!(
        names,
        vec![("chk-000000001", true), ("chk-000000002", true)]
    );
    let inside = storage::list(&root.join("chk-000000001")).unwrap();
    assert_eq!(
        (inside[0].name.as_str(), inside[0].size),
        ("part-00000-of-00001", 10)
    );
    assert!(storage::exists(&at).unwrap());
    let missing = storage::read(&root.join("nothing")).unwrap_err();
    assert_eq!(missing.kind(), std::io::ErrorKind::NotFound, "{missing}");
    storage::remove_all(&root.join("chk-000000001")).unwrap();
    assert!(!storage::exists(&at).unwrap());
    assert_eq!(storage::list(&root).unwrap().len(), 1);
    // An upload in pieces: invisible and listed until completed; completing twice is fine.
    let big = root.join("big");
    let upload = storage::upload_begin(&big).unwrap();
    let first = vec![b'a'; 5 << 20];
    let etags = vec![
        (1, storage::upload_piece(&big, &upload, 1, &first).unwrap()),
        (2, storage::upload_piece(&big, &upload, 2, b"tail").unwrap()),
    ];
    assert!(!storage::exists(&big).unwrap());
    assert_eq!(
        storage::uploads_under(&root).unwrap(),
        vec![(big.clone(), upload.clone())]
    );
    storage::upload_complete(&big, &upload, &etags).unwrap();
    storage::upload_complete(&big, &upload, &etags).unwrap();
    assert_eq!(storage::read_range(&big, 5 << 20, 10).unwrap(), b"tail");
    assert!(storage::uploads_under(&root).unwrap().is_empty());
    let dropped = root.join("dropped");
    let upload = storage::upload_begin(&dropped).unwrap();
    storage::upload_piece(&dropped, &upload, 1, b"x").unwrap();
    storage::upload_abort(&dropped, &upload).unwrap();
    storage::upload_abort(&dropped, &upload).unwrap();
    assert!(storage::uploads_under(&root).unwrap().is_empty());
    assert!(!storage::exists(&dropped).unwrap());
    // A bucket that does not exist: the error names the bucket and the server's code.
    let e = storage::write(&Location::parse("s3://no-such-bucket/x").unwrap(), b"x").unwrap_err();
    assert!(
        e.to_string().contains("s3://no-such-bucket/x") && e.to_string().contains("NoSuchBucket"),
        "{e}"
    );
}

#[test]
fn checkpoints_on_s3_survive_an_outage_and_a_kill_9() {
    let dir = fixture_dir("checkpoints_on_s3_survive_an_outage");
    let server = S3Server::start("tidal");
    let outage = Outage::proxy(&server.address);
    let input = dir.join("input.txt");
    let expected = write_words(&input, 160_000, 23);
    let out = dir.join("out");
    // 160 000 lines at 20 000 lines/s: about 8 s without failures.
    let mut job = Command::new(launcher())
        .args([
            "run",
            "--processes",
            "2",
            "--restart-attempts",
            "3",
            "--restart-delay",
            "100ms",
            "--",
        ])
        .arg(example("wordcount"))
        .args([
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .args([
            "--rate",
            "20000",
            "--checkpoint-dir",
            "s3://tidal/jobs/wordcount",
        ])
        .args([
            "--checkpoint-interval",
            "200ms",
            "--tolerable-checkpoint-failures",
            "1000",
        ])
        .args(["--s3-endpoint", &outage.endpoint])
        .envs(S3_ENV)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stderr = job.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line.clone());
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let last_pid = std::cell::Cell::new(0u32);
    // Waits for a log line with `needle`, remembering the processes started meanwhile.
    let wait_for = |needle: &str| -> String {
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no log line with '{needle}' within 60 s"));
            if let Some((_, rest)) = line.split_once("tidal: started process ") {
                let pid: u32 = rest
                    .split_once(" (pid ")
                    .unwrap()
                    .1
                    .trim_end_matches(')')
                    .parse()
                    .unwrap();
                last_pid.set(pid);
            }
            if line.contains(needle) {
                return line;
            }
        }
    };
    wait_for("complete at cut");
    outage.begin();
    let failed = wait_for("failed:");
    assert!(
        failed.contains("s3://tidal/jobs/wordcount"),
        "the failure names the location: {failed}"
    );
    outage.end();
    // A checkpoint after the outage succeeds: the job kept running.
    wait_for("complete at cut");
    let victim = last_pid.get();
    let killed = Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status()
        .unwrap();
    assert!(killed.success(), "the job ended before the kill");
    wait_for("restoring checkpoint");
    let status = wait_with_limit(&mut job, Duration::from_secs(120));
    let log = log.join().unwrap();
    assert!(status.success(), "the launcher failed: {status}\n{log}");
    assert_eq!(read_word_counts(&out), expected);

    // What is on S3: complete, valid checkpoints, listed by the launcher's tool.
    let listed = Command::new(launcher())
        .args([
            "checkpoints",
            "list",
            "s3://tidal/jobs/wordcount",
            "--s3-endpoint",
            &server.endpoint,
        ])
        .envs(S3_ENV)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("valid"), "{listed}");
    assert!(!listed.contains("INVALID"), "{listed}");
}

#[test]
fn file_sources_read_s3_objects_prefixes_and_patterns() {
    let dir = fixture_dir("file_sources_read_s3_objects");
    let server = S3Server::start("data");
    // Objects of about 3.6 MB and 0.5 MB (on 2 workers the first is read as two splits, the
    // second from a byte in its middle), one more that the pattern leaves out, and a hidden one.
    let input = dir.join("input.txt");
    let mut expected = std::collections::BTreeMap::new();
    for (i, (name, lines)) in [("books/a.txt", 130_000), ("books/b.txt", 20_000)]
        .iter()
        .enumerate()
    {
        let counts = write_words(&input, *lines, 40 + i as u64);
        for (w, n) in counts {
            *expected.entry(w).or_insert(0) += n;
        }
        server.put(&format!("/data/{name}"), &std::fs::read(&input).unwrap());
    }
    server.put("/data/books/notes.md", b"left out by the pattern\n");
    server.put("/data/books/_SUCCESS", b"");
    for (k, source) in ["s3://data/books/*.txt", "s3://data/books"]
        .iter()
        .enumerate()
    {
        let out = dir.join(format!("out-{k}"));
        let run = launch_once(2)
            .arg(example("wordcount"))
            .args([
                "--input",
                source,
                "--output",
                out.to_str().unwrap(),
                "--s3-endpoint",
                &server.endpoint,
            ])
            .envs(S3_ENV)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let mut got = read_word_counts(&out);
        if k == 1 {
            // The prefix reads notes.md too (but not _SUCCESS).
            for w in ["left", "out", "by", "the", "pattern"] {
                assert_eq!(got.remove(w), Some(1), "{w}");
            }
        }
        assert_eq!(got, expected, "{source}");
    }
    // A pattern that matches nothing, and a missing bucket: errors that name them.
    for (source, says) in [
        ("s3://data/none/*.txt", "matches no file"),
        ("s3://nobucket/x", "NoSuchBucket"),
    ] {
        let run = Command::new(example("wordcount"))
            .args(["--input", source, "--s3-endpoint", &server.endpoint])
            .envs(S3_ENV)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            !run.status.success() && stderr.contains(source) && stderr.contains(says),
            "{stderr}"
        );
    }
}

/// A windowed job writing its results to S3 (`bid_windows --output s3://...`, checkpoints on S3
/// too) under the launcher on 2 processes: results are visible while it runs (each completed
/// checkpoint commits the parts sealed at its cut); the server then becomes unreachable for a
/// while (checkpoints fail, naming the location; the job goes on); then the job is killed with
/// `kill -9` twice. In the end the visible objects hold every window once, with the model's
/// values; no upload is left incomplete.
#[test]
fn windowed_output_on_s3_is_exactly_once_across_kill_9() {
    let dir = fixture_dir("windowed_output_on_s3");
    let server = S3Server::start("out");
    talk_to(&server);
    let outage = Outage::proxy(&server.address);
    let input = dir.join("bids.csv");
    let model = write_bids(&input, 160_000, 11);
    let out = Location::parse("s3://out/windows").unwrap();
    let args = [
        "--input",
        input.to_str().unwrap(),
        "--output",
        "s3://out/windows",
        "--rate",
        "20000",
        "--s3-endpoint",
        &outage.endpoint,
        "--tolerable-checkpoint-failures",
        "1000",
    ];
    let visible_while_running = std::cell::Cell::new(0);
    let wait_for_output = || {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let parts = storage::list_files(&out).unwrap();
            if !parts.is_empty() {
                visible_while_running.set(parts.len());
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no output part became visible within 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // An outage that turns away several of the job's requests.
        outage.begin();
        let turned_away = outage.refused();
        while outage.refused() < turned_away + 4 {
            assert!(
                std::time::Instant::now() < deadline,
                "the job made no request to S3 during the outage"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        outage.end();
    };
    let log = run_with_kills(
        "bid_windows",
        &args,
        Kills {
            checkpoints: "s3://out/checkpoints",
            kills: 2,
            delays: 300..1200,
            seed: 17,
            envs: &S3_ENV,
            before_first_kill: &wait_for_output,
        },
    );
    assert!(visible_while_running.get() > 0);
    let failure = log
        .lines()
        .find(|l| l.contains(" failed") && l.contains("s3://out/"))
        .unwrap_or_else(|| {
            panic!("the outage failed a checkpoint or a commit, naming the location:\n{log}")
        });
    eprintln!("during the outage: {failure}");
    let mut got = Windows::new();
    let parts = storage::list_files(&out).unwrap();
    for (at, _) in &parts {
        let name = at.file_name().unwrap();
        assert!(name.starts_with("part-") && name.ends_with(".txt"), "{at}");
        let text = String::from_utf8(storage::read(at).unwrap()).unwrap();
        add_windows(&text, &mut got, &log);
    }
    assert_eq!(got.len(), model.len(), "windows written\n{log}");
    assert_eq!(got, model);
    let left = storage::uploads_under(&out).unwrap();
    assert!(left.is_empty(), "uploads left incomplete: {left:?}");
    eprintln!(
        "{} part(s) visible before the first kill, {} in the end",
        visible_while_running.get(),
        parts.len()
    );
}

/// Output larger than an upload piece (8 MiB) per worker, without checkpoints: each worker's part
/// goes up in pieces as it grows and appears whole when the input ends; on 1 and 2 workers the
/// objects hold every line once.
#[test]
fn large_output_goes_to_s3_in_pieces() {
    let server = S3Server::start("big");
    talk_to(&server);
    // 200 000 lines of 100 bytes: 20 MB.
    let n: u64 = 200_000;
    let line = |i: u64| format!("{i:010}-{}", "x".repeat(88));
    for workers in [1, 2] {
        let out = format!("s3://big/out-{workers}");
        let target = out.clone();
        tidal::engine::Job::local(workers)
            .quiet()
            .run(move |env| {
                use tidal::prelude::*;
                env.from_iter(0..n).map(line).write_text(target.as_str())
            })
            .unwrap();
        let parts = storage::list_files(&Location::parse(&out).unwrap()).unwrap();
        assert!(parts.len() <= workers, "{parts:?}");
        assert!(
            parts.iter().any(|(_, size)| *size > 8 << 20),
            "a part larger than a piece: {parts:?}"
        );
        let mut lines: Vec<String> = Vec::new();
        for (at, _) in &parts {
            let text = String::from_utf8(storage::read(at).unwrap()).unwrap();
            lines.extend(text.lines().map(str::to_string));
        }
        assert_eq!(lines.len() as u64, n, "{workers} worker(s)");
        lines.sort();
        assert!(
            lines.iter().enumerate().all(|(i, l)| *l == line(i as u64)),
            "{workers} worker(s): lines differ"
        );
    }
}
