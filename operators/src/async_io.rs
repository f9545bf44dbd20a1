//! Asynchronous I/O (Flink's Async I/O): each record is handed to an `async` function — a call to
//! an external service, say — and many calls are under way at once, without stalling the worker.
//!
//! [`AsyncMap::async_map`] starts the function's future for each record on a small tokio runtime
//! shared by the process (two threads), up to [`AsyncOptions::capacity`] at once per worker;
//! records beyond that wait in the operator, in order. A call that does not finish within the
//! timeout, or returns an error, is tried again as [`AsyncOptions::retries`] says (waiting twice
//! as long after each failure); when the attempts are used up the job fails, naming the operator
//! and the last error.
//!
//! **Order and time.** In ordered mode (the default) results leave in the order their records
//! came in; [`AsyncOptions::unordered`] lets each leave as soon as it is ready. Either way a
//! result keeps its record's timestamp and its record's place between watermarks: the operator
//! holds its record's time until the result has left, so the watermark never passes a record
//! whose call is still under way.
//!
//! **Checkpoints.** Because of that hold, a checkpoint at cut `c` completes only once every call
//! for a record before `c` has returned and its result has gone downstream; the calls for records
//! at or after `c` belong to the sources' part of the checkpoint (their positions), so a restore
//! reads those records again and calls again for them. Nothing in flight is lost, and a result
//! before the cut is never repeated — the async function should still be safe to call twice for
//! a record (a call may have reached the service just before a failure).

use std::collections::VecDeque;
use std::fmt::Display;
use std::future::Future;
use std::rc::Rc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tidal_engine::{DataStream, Error, Time, timely};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

/// How [`AsyncMap::async_map`] calls its function.
///
/// ```
/// use std::time::Duration;
/// use tidal_operators::async_io::AsyncOptions;
/// let options = AsyncOptions::new()
///     .capacity(200)
///     .timeout(Duration::from_millis(500))
///     .retries(3, Duration::from_millis(50))
///     .unordered();
/// assert_eq!(options.get_capacity(), 200);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AsyncOptions {
    capacity: usize,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    ordered: bool,
}

impl Default for AsyncOptions {
    fn default() -> Self {
        AsyncOptions {
            capacity: 100,
            timeout: Duration::from_secs(10),
            retries: 0,
            backoff: Duration::from_millis(100),
            ordered: true,
        }
    }
}

impl AsyncOptions {
    /// Ordered results, 100 calls at once per worker, a 10 s timeout, no retries.
    pub fn new() -> Self {
        Self::default()
    }
    /// At most `n` calls under way at once per worker (at least 1).
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = n.max(1);
        self
    }
    /// The calls under way at once per worker.
    pub fn get_capacity(&self) -> usize {
        self.capacity
    }
    /// How long one attempt may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Tries a failed or timed-out call `retries` more times, waiting `backoff` before the first
    /// retry and twice as long before each next one.
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }
    /// Lets each result leave as soon as it is ready (still never past a watermark).
    pub fn unordered(mut self) -> Self {
        self.ordered = false;
        self
    }
}

/// The runtime the futures of every `async_map` of this process run on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tidal-async")
            .enable_all()
            .build()
            .expect("a tokio runtime starts")
    })
}

/// Asynchronous calls per record; see the [module documentation](self).
pub trait AsyncMap<'s, T> {
    /// Calls `f` for every record and emits what its future returns, as `options` say.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use std::time::Duration;
    /// use tidal_operators::async_io::{AsyncMap, AsyncOptions};
    /// // A lookup that takes a while (here a timer stands in for a network call).
    /// async fn square(x: u64) -> Result<u64, String> {
    ///     tokio::time::sleep(Duration::from_millis(x % 3)).await;
    ///     Ok(x * x)
    /// }
    /// let out: Vec<u64> = tidal_engine::Job::local(1)
    ///     .run(|env| env.from_iter(0..20u64).async_map(square, AsyncOptions::new().capacity(8)).collect())
    ///     .unwrap();
    /// // Ordered: results in the records' order, though later calls may finish first.
    /// assert_eq!(out, (0..20).map(|x| x * x).collect::<Vec<_>>());
    /// ```
    fn async_map<O, E, Fut, F>(self, f: F, options: AsyncOptions) -> DataStream<'s, O>
    where
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        O: Send + 'static,
        E: Display + Send + 'static;
}

/// A finished call: the record's number and the result.
type Done<O> = (u64, Result<O, String>);

/// A record whose call is under way or done, waiting to leave (ordered mode).
struct Slot<O> {
    cap: Capability<Time>,
    ts: Time,
    result: Option<Result<O, String>>,
}

impl<'s, T: Clone + Send + 'static> AsyncMap<'s, T> for DataStream<'s, T> {
    fn async_map<O, E, Fut, F>(self, f: F, options: AsyncOptions) -> DataStream<'s, O>
    where
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        O: Send + 'static,
        E: Display + Send + 'static,
    {
        let ctx = Rc::clone(self.context());
        let f = Arc::new(f);
        self.then("async_map", move |input, name| {
            let scope = input.scope();
            let name = name.to_string();
            input.unary_frontier::<CapacityContainerBuilder<Vec<(O, Time)>>, _, _, _>(
                Pipeline,
                &name.clone(),
                move |_, info| {
                    let activator = scope.worker().sync_activator_for(info.address.to_vec());
                    let (done_tx, done_rx): (Sender<Done<O>>, Receiver<Done<O>>) = channel();
                    // Received records not yet started (over capacity), in order.
                    let mut waiting: VecDeque<(Capability<Time>, T, Time)> = VecDeque::new();
                    // Ordered: every started record from `first` on; unordered: by number.
                    let mut slots: VecDeque<Option<Slot<O>>> = VecDeque::new();
                    let mut first: u64 = 0;
                    let mut next: u64 = 0;
                    let mut under_way = 0usize;
                    let mut failed = false;
                    move |(input, _frontier), output| {
                        input.for_each(|message, data| {
                            let Some(cap) = message.retain_least(0) else {
                                return;
                            };
                            for (value, ts) in data.drain(..) {
                                waiting.push_back((cap.clone(), value, ts));
                            }
                        });
                        // Results that came back.
                        while let Ok((seq, result)) = done_rx.try_recv() {
                            under_way -= 1;
                            if let Some(Some(slot)) = slots.get_mut((seq - first) as usize) {
                                slot.result = Some(result);
                            }
                        }
                        // Results that may leave: in order, or each as soon as it is ready.
                        let mut i = 0;
                        while i < slots.len() {
                            let ready = matches!(&slots[i], Some(s) if s.result.is_some());
                            if !ready {
                                if options.ordered && slots[i].is_some() {
                                    break;
                                }
                                i += 1;
                                continue;
                            }
                            let slot = slots[i].take().expect("ready");
                            match slot.result.expect("ready") {
                                Ok(out) if !failed => {
                                    output.session(&slot.cap).give((out, slot.ts));
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    if !failed {
                                        ctx.fail(Error::external(format!(
                                            "async function in operator '{name}': {e}"
                                        )));
                                    }
                                    failed = true;
                                }
                            }
                            i += 1;
                        }
                        while matches!(slots.front(), Some(None)) {
                            slots.pop_front();
                            first += 1;
                        }
                        if failed {
                            // The job is failing: start nothing more, hold no time.
                            waiting.clear();
                            slots.clear();
                            return;
                        }
                        // Start calls up to the capacity.
                        while under_way < options.capacity {
                            let Some((cap, value, ts)) = waiting.pop_front() else {
                                break;
                            };
                            let seq = next;
                            next += 1;
                            under_way += 1;
                            slots.push_back(Some(Slot {
                                cap,
                                ts,
                                result: None,
                            }));
                            let (f, done, activator) =
                                (Arc::clone(&f), done_tx.clone(), activator.clone());
                            runtime().spawn(async move {
                                let result = call(&*f, value, options).await;
                                // The operator may be gone (the job ended or failed).
                                let _ = done.send((seq, result));
                                let _ = activator.activate();
                            });
                        }
                    }
                },
            )
        })
    }
}

/// One record's call, with the timeout and retries of `options`.
async fn call<T: Clone, O, E: Display, Fut: Future<Output = Result<O, E>>>(
    f: &impl Fn(T) -> Fut,
    value: T,
    options: AsyncOptions,
) -> Result<O, String> {
    let mut wait = options.backoff;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let why = match tokio::time::timeout(options.timeout, f(value.clone())).await {
            Ok(Ok(out)) => return Ok(out),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {:?}", options.timeout),
        };
        if attempt > options.retries {
            return Err(format!(
                "{why} (attempt {attempt} of {})",
                options.retries + 1
            ));
        }
        tokio::time::sleep(wait).await;
        wait = wait.saturating_mul(2);
    }
}
