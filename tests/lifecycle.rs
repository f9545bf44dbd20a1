//! Functions with a lifecycle: `open` once per worker before the first record, with the job's
//! parameters; `close` once after the last record; an `open` that fails fails the job with the
//! function's name. On 1 worker, 2 threads and 2 processes.

mod common;

use std::path::PathBuf;

use common::{SHAPES, Shape, fixture_dir, is_child, run_with, sorted};
use tidal::engine::{Error, Time, WatermarkStrategy};
use tidal::prelude::*;

/// Writes `closed-<worker>` into `dir` with what the function saw; a second close fails.
fn record_close(dir: &std::path::Path, worker: usize, text: String) -> tidal::Result<()> {
    use std::io::Write;
    let path = dir.join(format!("closed-{worker}"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::external(format!("{}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .map_err(|e| Error::external(e.to_string()))
}

/// The closes recorded in `dir`: per worker, what its function saw.
fn closes(dir: &std::path::Path) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter_map(|e| {
            let name = e.file_name().into_string().unwrap();
            let worker = name.strip_prefix("closed-")?.parse().ok()?;
            Some((worker, std::fs::read_to_string(e.path()).unwrap()))
        })
        .collect();
    out.sort();
    out
}

fn workers(shape: Shape) -> usize {
    if shape == Shape::OneWorker { 1 } else { 2 }
}

/// Tags every record with the `region` parameter and the worker it was opened on; counts opens.
struct Tag {
    dir: PathBuf,
    region: String,
    worker: usize,
    opens: u32,
    seen: u64,
}

impl Lifecycle for Tag {
    fn open(&mut self, ctx: &RuntimeContext<'_>) -> tidal::Result<()> {
        self.opens += 1;
        self.worker = ctx.worker_index();
        self.region = ctx
            .parameter("region")
            .ok_or_else(|| Error::config("no --param region"))?
            .to_string();
        assert!(ctx.operator_name().starts_with("rich_map"));
        assert!(!ctx.restored());
        Ok(())
    }
    fn close(&mut self) -> tidal::Result<()> {
        record_close(
            &self.dir,
            self.worker,
            format!("{} {}", self.opens, self.seen),
        )
    }
}

impl MapFunction<u64> for Tag {
    type Out = (u64, String, usize, u32);
    fn map(&mut self, x: u64) -> Self::Out {
        self.seen += 1;
        (x, self.region.clone(), self.worker, self.opens)
    }
}

#[test]
fn rich_functions_open_once_per_worker_and_close_after_the_last_record() {
    const N: u64 = 20_000;
    for (i, shape) in SHAPES.into_iter().enumerate() {
        let test = "rich_functions_open_once_per_worker_and_close_after_the_last_record";
        let dir = fixture_dir(&format!("{test}-{i}"));
        let d = dir.to_path_buf();
        let out = run_with(
            test,
            shape,
            |job| job.with_parameter("region", "eu-west"),
            move |env| {
                let tag = Tag {
                    dir: d.clone(),
                    region: String::new(),
                    worker: usize::MAX,
                    opens: 0,
                    seen: 0,
                };
                env.generate(Generator::new(|i| i).count(N))
                    .rebalance()
                    .rich_map(tag)
                    .collect()
            },
        );
        if is_child() {
            continue;
        }
        let n = workers(shape);
        assert_eq!(
            sorted(out.iter().map(|r| r.0).collect()),
            (0..N).collect::<Vec<_>>(),
            "{shape:?}: every record once"
        );
        assert!(
            out.iter().all(|r| r.1 == "eu-west" && r.2 < n && r.3 == 1),
            "{shape:?}: every record mapped after one open, with the parameter"
        );
        // One close per worker, after its last record: the records each saw add up to all.
        let closed = closes(&dir);
        assert_eq!(closed.len(), n, "{shape:?}: {closed:?}");
        let seen: u64 = closed
            .iter()
            .map(|(_, text)| {
                let (opens, seen) = text.split_once(' ').unwrap();
                assert_eq!(opens, "1", "{shape:?}");
                seen.parse::<u64>().unwrap()
            })
            .sum();
        assert_eq!(seen, N, "{shape:?}: the closes saw every record");
    }
}

/// Never opens: its `open` fails, and `map` must not be called.
struct Unreachable;

impl Lifecycle for Unreachable {
    fn open(&mut self, ctx: &RuntimeContext<'_>) -> tidal::Result<()> {
        Err(Error::external(format!(
            "cannot reach the enrichment service {}",
            ctx.parameter("url").unwrap_or("(none)")
        )))
    }
}

impl FilterFunction<u32> for Unreachable {
    fn filter(&mut self, _: &u32) -> bool {
        panic!("a function whose open failed saw a record");
    }
}

#[test]
fn an_open_that_fails_fails_the_job_naming_the_function() {
    for workers in [1, 2] {
        let result: tidal::Result<Vec<u32>> = Job::local(workers)
            .quiet()
            .with_parameter("url", "http://127.0.0.1:9")
            .run(|env| env.from_iter(0..1000u32).rich_filter(Unreachable).collect());
        let err = result.expect_err("the job fails");
        let text = err.to_string();
        assert!(
            text.contains("Unreachable")
                && text.contains("rich_filter")
                && text.contains("cannot reach the enrichment service http://127.0.0.1:9"),
            "{workers} workers: {text}"
        );
    }
}

/// A process function whose threshold is a job parameter read in `open`: emits values over it
/// when an event-time timer 10 ms after them fires; `close` records what it emitted.
struct OverLimit {
    dir: PathBuf,
    limit: i64,
    worker: usize,
    emitted: u64,
}

impl KeyedProcessFunction<u8, i64> for OverLimit {
    type State = Vec<i64>;
    type Out = (u8, i64);
    type Side = ();
    fn open(&mut self, ctx: &RuntimeContext<'_>) -> tidal::Result<()> {
        let text = ctx.parameter("limit").unwrap_or("");
        self.limit = text
            .parse()
            .map_err(|_| Error::config(format!("--param limit={text}: not a number")))?;
        self.worker = ctx.worker_index();
        Ok(())
    }
    fn process_element(
        &mut self,
        v: i64,
        ctx: &mut ProcessContext<'_, u8, Vec<i64>, (u8, i64), ()>,
    ) {
        let at = ctx.timestamp() + 10;
        ctx.state().push(v);
        ctx.register_event_time_timer(at);
    }
    fn on_timer(
        &mut self,
        _: Time,
        _: TimeDomain,
        ctx: &mut ProcessContext<'_, u8, Vec<i64>, (u8, i64), ()>,
    ) {
        let key = *ctx.key();
        let values = std::mem::take(ctx.state());
        ctx.clear_state();
        for v in values.into_iter().filter(|v| *v > self.limit) {
            self.emitted += 1;
            ctx.output((key, v));
        }
    }
    fn close(&mut self) -> tidal::Result<()> {
        record_close(&self.dir, self.worker, self.emitted.to_string())
    }
}

#[test]
fn process_functions_open_with_the_parameters_and_close_after_their_last_timer() {
    const N: i64 = 10_000;
    let expected: Vec<(u8, i64)> = sorted(
        (0..N)
            .map(|i| ((i % 5) as u8, (i * 7) % 100))
            .filter(|(_, v)| *v > 60)
            .collect(),
    );
    for (i, shape) in SHAPES.into_iter().enumerate() {
        let test = "process_functions_open_with_the_parameters_and_close_after_their_last_timer";
        let dir = fixture_dir(&format!("{test}-{i}"));
        let d = dir.to_path_buf();
        let out = run_with(
            test,
            shape,
            |job| job.with_parameter("limit", "60"),
            move |env| {
                let f = OverLimit {
                    dir: d.clone(),
                    limit: i64::MAX,
                    worker: usize::MAX,
                    emitted: 0,
                };
                env.generate_with(
                    Generator::new(|i| i as i64).count(N as u64),
                    WatermarkStrategy::monotonous().with_timestamps(|i: &i64| *i),
                )
                .map(|i| ((i % 5) as u8, (i * 7) % 100))
                .keyed()
                .process(f)
                .collect()
            },
        );
        if is_child() {
            continue;
        }
        assert_eq!(sorted(out), expected, "{shape:?}");
        // Every worker closed once, after its last timer: their emissions add up to the output.
        let closed = closes(&dir);
        assert_eq!(closed.len(), workers(shape), "{shape:?}: {closed:?}");
        let emitted: u64 = closed.iter().map(|(_, t)| t.parse::<u64>().unwrap()).sum();
        assert_eq!(emitted, expected.len() as u64, "{shape:?}");
    }
}

/// Sums each window's values and labels them with the `unit` parameter; counts its windows.
struct SumWindow {
    dir: PathBuf,
    unit: String,
    worker: usize,
    opens: u32,
    windows: u64,
}

impl Lifecycle for SumWindow {
    fn open(&mut self, ctx: &RuntimeContext<'_>) -> tidal::Result<()> {
        self.opens += 1;
        self.worker = ctx.worker_index();
        self.unit = ctx
            .parameter("unit")
            .ok_or_else(|| Error::config("no --param unit"))?
            .to_string();
        // The window operator's name (a process operator's with an evictor), not the pass-through's.
        let name = ctx.operator_name();
        assert!(
            name.starts_with("window#") || name.starts_with("process#"),
            "{name}"
        );
        Ok(())
    }
    fn close(&mut self) -> tidal::Result<()> {
        record_close(
            &self.dir,
            self.worker,
            format!("{} {}", self.opens, self.windows),
        )
    }
}

impl ProcessWindowFunction<u8, i64> for SumWindow {
    type Out = (u8, Time, i64, String);
    fn process(&mut self, key: &u8, window: &Window, values: &[i64]) -> Self::Out {
        assert_eq!(self.opens, 1, "process before open");
        self.windows += 1;
        (*key, window.end, values.iter().sum(), self.unit.clone())
    }
}

/// A window function with a lifecycle, on tumbling windows and on windows with an evictor:
/// opened once per worker with the job's parameters before its first window, closed after the
/// last; its results equal the per-window sums, and the windows each worker's close counted add
/// up to them. On every shape.
#[test]
fn window_functions_open_before_their_first_window_and_close_after_the_last() {
    const N: i64 = 10_000;
    // Key i % 5, value i % 13, at i ms; 100 ms windows; with the evictor, the values within 30 ms
    // of the window's latest (its last 6: a key's records are 5 ms apart).
    let mut model: std::collections::BTreeMap<(u8, Time), Vec<i64>> = Default::default();
    for i in 0..N {
        model
            .entry(((i % 5) as u8, (i / 100 + 1) * 100))
            .or_default()
            .push(i % 13);
    }
    for evict in [false, true] {
        let expected: Vec<(u8, Time, i64, String)> = sorted(
            model
                .iter()
                .map(|((k, end), values)| {
                    let kept = if evict {
                        &values[values.len() - 6..]
                    } else {
                        &values[..]
                    };
                    (*k, *end, kept.iter().sum(), "ms".to_string())
                })
                .collect(),
        );
        for (i, shape) in SHAPES.into_iter().enumerate() {
            let test = "window_functions_open_before_their_first_window_and_close_after_the_last";
            let dir = fixture_dir(&format!("{test}-{evict}-{i}"));
            let d = dir.to_path_buf();
            let out = run_with(
                test,
                shape,
                |job| job.with_parameter("unit", "ms"),
                move |env| {
                    let f = SumWindow {
                        dir: d.clone(),
                        unit: String::new(),
                        worker: usize::MAX,
                        opens: 0,
                        windows: 0,
                    };
                    let windowed = env
                        .generate_with(
                            Generator::new(|i| i as i64).count(N as u64),
                            WatermarkStrategy::monotonous().with_timestamps(|i: &i64| *i),
                        )
                        .map(|i| ((i % 5) as u8, i % 13))
                        .keyed()
                        .window(Windows::tumbling(std::time::Duration::from_millis(100)));
                    if evict {
                        windowed
                            .evictor(tidal::operators::window::Evictor::time(
                                std::time::Duration::from_millis(30),
                            ))
                            .process_with(f)
                            .collect()
                    } else {
                        windowed.process_with(f).collect()
                    }
                },
            );
            if is_child() {
                continue;
            }
            let out = sorted(out);
            assert!(
                out == expected,
                "{shape:?}, evictor {evict}: other results, first {:?} against {:?}",
                out.iter().zip(&expected).find(|(a, b)| a != b),
                (out.len(), expected.len())
            );
            let closed = closes(&dir);
            assert_eq!(closed.len(), workers(shape), "{shape:?}: {closed:?}");
            let windows: u64 = closed
                .iter()
                .map(|(_, t)| {
                    let (opens, windows) = t.split_once(' ').unwrap();
                    assert_eq!(opens, "1", "{shape:?}: opened {opens} times");
                    windows.parse::<u64>().unwrap()
                })
                .sum();
            assert_eq!(windows, expected.len() as u64, "{shape:?}");
        }
    }
}

/// An async function with a lifecycle: opened once per worker before its first call (with the
/// job's parameters), closed after its last call has answered; the calls each worker's close saw
/// add up to the input. On every shape.
#[test]
fn async_functions_open_before_their_calls_and_close_after_the_last_answer() {
    use std::future::Future;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tidal::operators::async_io::{AsyncFunction, AsyncOptions};
    struct Scale {
        dir: PathBuf,
        factor: u64,
        worker: usize,
        calls: Arc<AtomicU64>,
    }
    impl Lifecycle for Scale {
        fn open(&mut self, ctx: &RuntimeContext<'_>) -> tidal::Result<()> {
            self.factor = ctx.parameter("factor").unwrap_or("1").parse().unwrap();
            self.worker = ctx.worker_index();
            Ok(())
        }
        fn close(&mut self) -> tidal::Result<()> {
            record_close(
                &self.dir,
                self.worker,
                self.calls.load(Ordering::SeqCst).to_string(),
            )
        }
    }
    impl AsyncFunction<u64> for Scale {
        type Out = u64;
        type Error = String;
        fn call(
            &self,
            x: u64,
        ) -> impl Future<Output = Result<u64, String>> + Send + 'static + use<> {
            let (factor, calls) = (self.factor, Arc::clone(&self.calls));
            async move {
                tokio::time::sleep(std::time::Duration::from_micros(x % 500)).await;
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(x * factor)
            }
        }
    }
    const N: u64 = 3_000;
    for (i, shape) in SHAPES.into_iter().enumerate() {
        let test = "async_functions_open_before_their_calls_and_close_after_the_last_answer";
        let dir = fixture_dir(&format!("{test}-{i}"));
        let d = dir.to_path_buf();
        let out = run_with(
            test,
            shape,
            |job| job.with_parameter("factor", "3"),
            move |env| {
                let f = Scale {
                    dir: d.clone(),
                    factor: 0,
                    worker: usize::MAX,
                    calls: Arc::new(AtomicU64::new(0)),
                };
                env.generate(Generator::new(|i| i).count(N))
                    .rich_async_map(f, AsyncOptions::new().capacity(32))
                    .collect()
            },
        );
        if is_child() {
            continue;
        }
        assert_eq!(
            sorted(out),
            (0..N).map(|x| x * 3).collect::<Vec<_>>(),
            "{shape:?}"
        );
        let closed = closes(&dir);
        assert_eq!(closed.len(), workers(shape), "{shape:?}: {closed:?}");
        let calls: u64 = closed.iter().map(|(_, t)| t.parse::<u64>().unwrap()).sum();
        assert_eq!(calls, N, "{shape:?}: the closes saw every call answered");
    }
}
