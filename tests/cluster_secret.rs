//! Who may join a job: with a cluster secret, the processes of a job prove to each other that
//! they know it before they connect; a process with another secret or none, and a stranger, are
//! refused with a clear message on both sides, and a stranger does not keep the job from forming.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{example, free_addresses, read_word_counts, wait_with_limit, write_words};

fn hostfile(dir: &Path, addresses: &[String]) -> PathBuf {
    let path = dir.join("hosts.txt");
    std::fs::write(&path, addresses.join("\n")).unwrap();
    path
}

fn secret_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts process `p` of a 2-process word count with `extra` flags and `env`.
fn process(
    p: usize,
    hosts: &Path,
    input: &Path,
    out: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Child {
    let mut command = Command::new(example("wordcount"));
    command
        .args([
            "-n",
            "2",
            "-p",
            &p.to_string(),
            "-h",
            hosts.to_str().unwrap(),
        ])
        .args([
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .args(extra)
        .env_remove("TIDAL_CLUSTER_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    command.spawn().unwrap()
}

fn finish(mut child: Child) -> Output {
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut s).unwrap();
        s
    });
    let status = wait_with_limit(&mut child, Duration::from_secs(60));
    Output {
        status,
        stdout: Vec::new(),
        stderr: err.join().unwrap(),
    }
}

/// Both processes with the same secret (one from a file, one from the environment): the job
/// runs and counts every word.
#[test]
fn processes_that_share_the_secret_run_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("words.txt");
    let oracle = write_words(&input, 5_000, 11);
    let secret = secret_file(dir.path(), "secret", "correct horse battery staple\n");
    let hosts = hostfile(dir.path(), &free_addresses(2));
    let out = dir.path().join("out");
    let secret_arg = ["--cluster-secret-file", secret.to_str().unwrap()];
    let p1 = process(
        1,
        &hosts,
        &input,
        &out,
        &[],
        &[("TIDAL_CLUSTER_SECRET", "correct horse battery staple")],
    );
    let p0 = process(0, &hosts, &input, &out, &secret_arg, &[]);
    let (o0, o1) = (finish(p0), finish(p1));
    assert!(
        o0.status.success(),
        "{}",
        String::from_utf8_lossy(&o0.stderr)
    );
    assert!(
        o1.status.success(),
        "{}",
        String::from_utf8_lossy(&o1.stderr)
    );
    assert!(read_word_counts(&out) == oracle, "other counts");
}

/// A process with another secret, or with none, is refused: it fails saying the other process
/// does not know its secret (or uses one), and the process it tried logs the refusal, waits for
/// a real peer until its connect timeout, and fails naming the missing process.
#[test]
fn a_process_with_another_secret_or_none_is_refused_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("words.txt");
    write_words(&input, 100, 1);
    let right = secret_file(dir.path(), "right", "s3cret");
    let wrong = secret_file(dir.path(), "wrong", "guess");
    for (case, theirs) in [("another secret", Some(&wrong)), ("no secret", None)] {
        let hosts = hostfile(dir.path(), &free_addresses(2));
        let out = dir.path().join("out");
        let p0 = process(
            0,
            &hosts,
            &input,
            &out,
            &[
                "--cluster-secret-file",
                right.to_str().unwrap(),
                "--connect-timeout",
                "3s",
            ],
            &[],
        );
        let p1_args: Vec<&str> = match theirs {
            Some(f) => vec![
                "--cluster-secret-file",
                f.to_str().unwrap(),
                "--connect-timeout",
                "3s",
            ],
            None => vec!["--connect-timeout", "3s"],
        };
        let p1 = process(1, &hosts, &input, &out, &p1_args, &[]);
        let (o0, o1) = (finish(p0), finish(p1));
        let (e0, e1) = (
            String::from_utf8_lossy(&o0.stderr),
            String::from_utf8_lossy(&o1.stderr),
        );
        assert!(
            !o0.status.success() && !o1.status.success(),
            "{case}: both fail"
        );
        let expected = match theirs {
            Some(_) => "does not know this job's cluster secret",
            None => "uses a cluster secret and process 1 does not",
        };
        assert!(e1.contains(expected), "{case}: process 1 says why: {e1}");
        assert!(
            e0.contains("process 0 refused a connection from 127.0.0.1"),
            "{case}: process 0 logs the refusal: {e0}"
        );
        // With another secret, process 1 finds process 0's proof wrong and hangs up before
        // giving its own.
        let why = match theirs {
            Some(_) => "calls itself process 1 but did not prove that it knows the cluster secret",
            None => "was started without the cluster secret",
        };
        assert!(e0.contains(why), "{case}: {e0}");
        assert!(
            e0.contains("waiting for process 1"),
            "{case}: process 0 names who is missing: {e0}"
        );
        assert!(
            !e0.contains("panicked") && !e1.contains("panicked"),
            "{case}"
        );
    }
}

/// A stranger that connects to process 0 first — sending garbage, then one calling itself
/// process 1 without the proof — is refused and logged, and the job forms with the real process
/// 1 and counts every word.
#[test]
fn a_stranger_is_refused_and_the_job_still_forms() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("words.txt");
    let oracle = write_words(&input, 5_000, 2);
    let secret = secret_file(dir.path(), "secret", "s3cret");
    let addresses = free_addresses(2);
    let hosts = hostfile(dir.path(), &addresses);
    let out = dir.path().join("out");
    let args = ["--cluster-secret-file", secret.to_str().unwrap()];
    let p0 = process(0, &hosts, &input, &out, &args, &[]);
    // Wait until process 0 listens, then send it two strangers.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut garbage = loop {
        if let Ok(s) = std::net::TcpStream::connect(&addresses[0]) {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process 0 does not listen"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    garbage
        .write_all(b"GET / HTTP/1.0\r\n\r\nhello there, let me in")
        .unwrap();
    let mut impostor = std::net::TcpStream::connect(&addresses[0]).unwrap();
    let mut hello = 1u64.to_be_bytes().to_vec();
    hello.extend_from_slice(b"TIDAL\x00\x03\x00");
    hello.extend_from_slice(&2u32.to_be_bytes());
    hello.extend_from_slice(&1u32.to_be_bytes());
    hello.extend_from_slice(&7u64.to_be_bytes());
    hello.push(1);
    hello.extend_from_slice(&[0u8; 32]); // a nonce
    impostor.write_all(&hello).unwrap();
    // It cannot answer process 0's challenge: it sends a made-up proof.
    let mut answer = vec![0u8; 25 + 64];
    std::io::Read::read_exact(&mut impostor, &mut answer).unwrap();
    impostor.write_all(&[0u8; 32]).unwrap();
    let p1 = process(1, &hosts, &input, &out, &args, &[]);
    let (o0, o1) = (finish(p0), finish(p1));
    let e0 = String::from_utf8_lossy(&o0.stderr);
    assert!(o0.status.success(), "{e0}");
    assert!(
        o1.status.success(),
        "{}",
        String::from_utf8_lossy(&o1.stderr)
    );
    assert_eq!(
        e0.matches("process 0 refused a connection").count(),
        2,
        "{e0}"
    );
    assert!(
        e0.contains("calls itself process 1 but does not know the cluster secret"),
        "{e0}"
    );
    assert!(read_word_counts(&out) == oracle, "other counts");
    drop(garbage);
}
