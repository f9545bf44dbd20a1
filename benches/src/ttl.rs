//! State that expires: resident memory over a long run whose keys keep changing
//! (`tidal-bench ttl-memory`).
//!
//! Every `period` a new set of `keys` keys takes over (the key space turns over), and a keyed
//! process function keeps about a hundred bytes per key. With a time to live of one period the
//! state of the keys no longer written expires, so resident memory should level off at what two
//! periods of keys need; without one it grows with every key ever seen.
//!
//! With `upserts`, each record is an upsert of its key at an event time that follows the clock
//! (record i at i / rate s), into a table joined with a copy of itself by key: the table's root
//! and both sides of the join's arrangements hold every live key. A time to live on the table
//! deletes the keys not upserted for that long, and the join's state follows the deletions.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tidal::prelude::*;

/// Resident and peak resident memory of this process, in MB (from `/proc/self/status`).
fn memory_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Keeps the last eight values of each key (about a hundred bytes with the map's share).
struct Remember;

impl KeyedProcessFunction<u64, u64> for Remember {
    type State = Vec<u64>;
    type Out = ();
    type Side = ();
    fn process_element(&mut self, value: u64, ctx: &mut ProcessContext<'_, u64, Vec<u64>, (), ()>) {
        let state = ctx.state();
        if state.len() == 8 {
            state.remove(0);
        }
        state.push(value);
    }
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What one run is given.
pub struct TtlRun {
    /// How long the job reads.
    pub seconds: u64,
    /// Records per second.
    pub rate: f64,
    /// Keys of each period.
    pub keys: u64,
    /// How long a set of keys lasts.
    pub period: Duration,
    /// The state's time to live (`None`: no expiry).
    pub ttl: Option<Duration>,
    /// Through an upsert table and a join instead of a process function.
    pub upserts: bool,
    /// Worker threads.
    pub workers: usize,
}

/// Runs the job and prints resident memory every second, then a summary line.
pub fn ttl_memory(run: TtlRun) {
    let TtlRun {
        seconds,
        rate,
        keys,
        period,
        ttl,
        upserts,
        workers,
    } = run;
    let events = (rate * seconds as f64) as u64;
    let per_period = ((rate * period.as_secs_f64()) as u64).max(1);
    let done = Arc::new(AtomicBool::new(false));
    let watching = Arc::clone(&done);
    let started = Instant::now();
    println!(
        "ttl-memory: {events} records at {rate}/s, {keys} new keys every {period:?}, through {}, time to live {}",
        if upserts {
            "an upsert table joined with itself"
        } else {
            "a process function"
        },
        ttl.map_or("none".to_string(), |t| format!("{t:?}"))
    );
    println!("{:>6} {:>10} {:>12}", "s", "RSS MB", "key space");
    let monitor = std::thread::spawn(move || {
        let mut next = Duration::from_secs(1);
        while !watching.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
            let elapsed = started.elapsed();
            if elapsed >= next {
                next += Duration::from_secs(1);
                let read = (rate * elapsed.as_secs_f64()) as u64;
                let seen = (read / per_period + 1).min(events / per_period + 1) * keys;
                println!(
                    "{:>6} {:>10.1} {:>12}",
                    elapsed.as_secs(),
                    memory_mb().0,
                    seen
                );
                let _ = std::io::stdout().flush();
            }
        }
    });
    let (_, report) = Job::local(workers)
        .quiet()
        .run_with_report(move |env| {
            let key = move |i: u64| (i / per_period) * keys + splitmix(i) % keys;
            if upserts {
                // Record i at i / rate seconds of event time: the watermark follows the clock.
                let at = move |i: u64| (i as f64 * 1000.0 / rate) as Time;
                let records = Generator::new(move |i| (at(i), key(i), i))
                    .count(events)
                    .rate(rate);
                let strategy =
                    WatermarkStrategy::monotonous().with_timestamps(|r: &(Time, u64, u64)| r.0);
                let upserts = env
                    .generate_with(records, strategy)
                    .map(|(_, k, i)| (k, Some(i)));
                let table = match ttl {
                    Some(ttl) => upserts.upsert_by_key_with_ttl(ttl),
                    None => upserts.upsert_by_key(),
                };
                return table
                    .clone()
                    .join(table)
                    .changes()
                    .filter(|_| false)
                    .map(|_| ())
                    .collect();
            }
            let records = Generator::new(key).count(events).rate(rate);
            let keyed = env.generate(records).key_by(|k| *k);
            let keyed = match ttl {
                Some(ttl) => keyed.with_state_ttl(ttl),
                None => keyed,
            };
            keyed.process(Remember).collect()
        })
        .expect("the ttl-memory job");
    done.store(true, Ordering::SeqCst);
    let _ = monitor.join();
    let (rss, peak) = memory_mb();
    let held: usize = report.state_keys.values().sum();
    println!(
        "ttl-memory, time to live {}: peak RSS {peak:.1} MB, at the end {rss:.1} MB, {held} keys held at the end, {:.1} s",
        ttl.map_or("none".to_string(), |t| format!("{t:?}")),
        started.elapsed().as_secs_f64()
    );
}
