//! The runtime: failures end the whole job with the user's message, stops are clean, peers that
//! die are noticed.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{child_spec, free_addresses, is_child, spawn_self_captured, wait_with_limit};
use tidal::prelude::*;

#[test]
fn a_panic_in_user_code_ends_the_job_with_the_message() {
    for workers in [1, 2] {
        let err = Job::local(workers)
            .run(|env| {
                env.from_iter(0..10_000u32)
                    .map(|x| {
                        if x == 4321 {
                            panic!("record {x} is cursed")
                        } else {
                            x
                        }
                    })
                    .keyed_by_self()
                    .count()
                    .collect()
            })
            .unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.kind(), tidal::ErrorKind::UserCode, "{msg}");
        assert!(msg.contains("record 4321 is cursed"), "{msg}");
        assert!(msg.contains("runtime.rs"), "the location is named: {msg}");
    }
}

trait KeyBySelf<'s> {
    fn keyed_by_self(self) -> KeyedStream<'s, u32, u32>;
}

impl<'s> KeyBySelf<'s> for DataStream<'s, u32> {
    fn keyed_by_self(self) -> KeyedStream<'s, u32, u32> {
        self.key_by(|x| *x)
    }
}

/// Ctrl-C, SIGTERM and a StopHandle stop the sources; what was read is fully counted.
#[test]
fn a_stopped_unbounded_job_flushes_everything_it_read() {
    for workers in [1, 2] {
        let job = Job::local(workers).with_tick(Duration::from_millis(5));
        let stop = job.stop_handle();
        let emitted = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&emitted);
        let counts: Vec<(u64, u64)> = job
            .run(move |env| {
                let stop = stop.clone();
                let seen = Arc::clone(&seen);
                env.generate(Generator::new(|i| i % 100))
                    .inspect(move |_| {
                        if seen.fetch_add(1, Ordering::SeqCst) == 200_000 {
                            stop.stop();
                        }
                    })
                    .key_by(|k| *k)
                    .count()
                    .final_values()
                    .collect()
            })
            .unwrap();
        let total: u64 = counts.iter().map(|(_, n)| n).sum();
        assert!(
            total > 200_000,
            "{workers} workers: the job ran until stopped"
        );
        assert_eq!(
            total,
            emitted.load(Ordering::SeqCst),
            "{workers} workers: every record read was counted"
        );
        assert_eq!(counts.len(), 100);
    }
}

/// A job of two processes in which process 1's user code panics: both processes exit non-zero,
/// process 1 names the user's message, process 0 says it lost its peer; no panic trace, no hang.
#[test]
fn a_panic_on_one_process_ends_every_process() {
    const TEST: &str = "a_panic_on_one_process_ends_every_process";
    if let Some(spec) = child_spec() {
        let result = Job::from_spec(spec).run(|env| {
            let me = env.context().process();
            env.generate(Generator::new(|i| i).rate(5_000.0))
                .map(move |x| {
                    if me == 1 && x > 1000 {
                        panic!("process one gives up at {x}")
                    } else {
                        x
                    }
                })
                .key_by(|x| x % 7)
                .count()
                .collect()
        });
        eprintln!("error: {}", result.unwrap_err());
        std::process::exit(1);
    }
    let addresses = free_addresses(2);
    let mut p0 = spawn_self_captured(TEST, 0, &addresses);
    let mut p1 = spawn_self_captured(TEST, 1, &addresses);
    let s1 = wait_with_limit(&mut p1, Duration::from_secs(60));
    let s0 = wait_with_limit(&mut p0, Duration::from_secs(60));
    let (e0, e1) = (stderr_of(&mut p0), stderr_of(&mut p1));
    assert!(!s1.success() && !s0.success(), "both fail: {s0} {s1}");
    assert!(
        e1.contains("process one gives up at"),
        "process 1 names the cause: {e1}"
    );
    assert!(
        e0.contains("lost the connection"),
        "process 0 names its lost peer: {e0}"
    );
    for e in [&e0, &e1] {
        assert!(!e.contains("panicked at"), "no panic trace: {e}");
    }
}

/// `kill -9` of one process of a running job: the other exits non-zero with a clear message.
#[test]
fn a_killed_process_ends_its_peers() {
    const TEST: &str = "a_killed_process_ends_its_peers";
    if let Some(spec) = child_spec() {
        let result = Job::from_spec(spec).run(|env| {
            let announced = std::sync::Once::new();
            env.generate(Generator::new(|i| i).rate(20_000.0))
                .inspect(move |_| {
                    announced.call_once(|| println!("\nchild-is-running"));
                })
                .key_by(|x| x % 13)
                .count()
                .collect()
        });
        eprintln!("error: {}", result.unwrap_err());
        std::process::exit(1);
    }
    let addresses = free_addresses(2);
    let mut p0 = spawn_self_captured(TEST, 0, &addresses);
    let mut p1 = spawn_self_captured(TEST, 1, &addresses);
    // Wait until process 1 has processed records, then kill it.
    let mut lines = BufReader::new(p1.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.unwrap().contains("child-is-running")),
        "process 1 started"
    );
    std::process::Command::new("kill")
        .args(["-9", &p1.id().to_string()])
        .status()
        .unwrap();
    let s0 = wait_with_limit(&mut p0, Duration::from_secs(60));
    let _ = p1.wait();
    let e0 = stderr_of(&mut p0);
    assert!(!s0.success(), "process 0 fails when its peer is killed");
    assert!(e0.contains("lost the connection"), "{e0}");
    assert!(!e0.contains("panicked at"), "no panic trace: {e0}");
}

/// SIGTERM stops an unbounded job cleanly: exit 0, and the final result covers every record read.
#[test]
fn sigterm_stops_an_unbounded_job_cleanly() {
    const TEST: &str = "sigterm_stops_an_unbounded_job_cleanly";
    if is_child() {
        let read = Arc::new(AtomicU64::new(0));
        let r = Arc::clone(&read);
        let counts: Vec<(u64, u64)> = Job::local(2)
            .run(move |env| {
                let r = Arc::clone(&r);
                env.generate(Generator::new(|i| i % 10).rate(50_000.0))
                    .inspect(move |_| {
                        if r.fetch_add(1, Ordering::SeqCst) == 1000 {
                            println!("\nchild-is-running");
                        }
                    })
                    .key_by(|x| *x)
                    .count()
                    .final_values()
                    .collect()
            })
            .unwrap();
        let total: u64 = counts.iter().map(|(_, n)| n).sum();
        println!("\nread {} counted {total}", read.load(Ordering::SeqCst));
        std::process::exit(0);
    }
    let mut child = spawn_self_captured(TEST, 0, &["127.0.0.1:1".to_string()]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.unwrap().contains("child-is-running")),
        "the job started"
    );
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = wait_with_limit(&mut child, Duration::from_secs(60));
    assert!(
        status.success(),
        "clean exit after SIGTERM: {status} {}",
        stderr_of(&mut child)
    );
    let last = lines
        .map(|l| l.unwrap())
        .find(|l| l.starts_with("read "))
        .expect("a final line");
    let words: Vec<&str> = last.split(' ').collect();
    assert_eq!(words[1], words[3], "every record read was counted: {last}");
}

fn stderr_of(child: &mut std::process::Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut s).unwrap();
    }
    s
}
