//! Criterion benches of Tidal's inner paths: keyed state updates, snapshot encoding and
//! decoding, and small dataflows through the exchange, a keyed aggregate and an event-time window.
//!
//! ```text
//! cargo bench -p tidal-bench --bench inner
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tidal::engine::WatermarkStrategy;
use tidal::engine::state::KeyedState;
use tidal::prelude::*;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// 100 000 keys: (key, (count, max)).
fn filled(keys: u64) -> KeyedState<u64, (u64, u64)> {
    let mut state = KeyedState::new("bench");
    for k in 0..keys {
        state.insert(k, (k % 7, k * 3));
    }
    state
}

fn keyed_state(c: &mut Criterion) {
    let mut group = c.benchmark_group("keyed_state");
    let updates = 1_000_000u64;
    group.throughput(Throughput::Elements(updates));
    group.bench_function("update 1M on 10k keys", |b| {
        let mut state = filled(10_000);
        b.iter(|| {
            for i in 0..updates {
                let e = state
                    .entry(i.wrapping_mul(0x9E37_79B9) % 10_000)
                    .or_insert((0, 0));
                e.0 += 1;
                e.1 = e.1.max(i);
            }
        })
    });
    group.finish();
}

fn snapshots(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot");
    for keys in [10_000u64, 100_000] {
        let state = filled(keys);
        let mut bytes = Vec::new();
        state.snapshot(&mut bytes).unwrap();
        group.throughput(Throughput::Elements(keys));
        group.bench_with_input(BenchmarkId::new("encode", keys), &state, |b, s| {
            b.iter(|| {
                let mut out = Vec::with_capacity(bytes.len());
                s.snapshot(&mut out).unwrap();
                black_box(out)
            })
        });
        group.bench_with_input(BenchmarkId::new("decode", keys), &bytes, |b, bytes| {
            b.iter(|| KeyedState::<u64, (u64, u64)>::read_snapshot(&bytes[..], "bench").unwrap())
        });
    }
    group.finish();
}

fn dataflows(c: &mut Criterion) {
    let mut group = c.benchmark_group("dataflow");
    group.sample_size(10);
    let n = 200_000u64;
    group.throughput(Throughput::Elements(n));
    // Records through the exchange into a rolling keyed count, final values only.
    group.bench_function("exchange + keyed count", |b| {
        b.iter(|| {
            let out: Vec<(u64, u64)> = Job::local(1)
                .quiet()
                .run(move |env| {
                    env.from_iter(0..n)
                        .map(|i| (i % 1_000, ()))
                        .keyed()
                        .count()
                        .final_values()
                        .collect()
                })
                .unwrap();
            black_box(out)
        })
    });
    // Timestamped records into 10 s tumbling windows, fired as the watermark passes.
    group.bench_function("tumbling window fire", |b| {
        b.iter(|| {
            let out: Vec<String> = Job::local(1)
                .quiet()
                .run(move |env| {
                    let strategy =
                        WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(2))
                            .with_timestamps(|r: &(u64, i64)| r.1);
                    env.from_iter_with((0..n).map(|i| (i % 100, i as i64)), strategy)
                        .map(|(k, _)| (k, 1u64))
                        .keyed()
                        .window(Windows::tumbling(Duration::from_secs(10)))
                        .aggregate_with(
                            |v: u64| v,
                            |a, v| *a += v,
                            |a, b| *a += b,
                            |k: &u64, w: &Window, a: &u64| format!("{},{k},{a}", w.end),
                        )
                        .collect()
                })
                .unwrap();
            black_box(out)
        })
    });
    group.finish();
}

criterion_group!(benches, keyed_state, snapshots, dataflows);
criterion_main!(benches);
