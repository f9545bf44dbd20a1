//! Asynchronous I/O (Flink's Async I/O): each record is handed to an `async` function — a call to
//! an external service, say — and many calls are under way at once, without stalling the worker.
//!
//! [`AsyncMap::async_map`] starts the function's future for each record on a small tokio runtime
//! shared by the process (two threads), up to [`AsyncOptions::capacity`] records per worker
//! between a call's start and its result leaving (as in Flink, a result that is ready but waits
//! for an earlier one in ordered mode still counts); records beyond that wait in the operator, in
//! order.
//!
//! **Backpressure.** When as many records wait as the capacity, the operator holds back its
//! process's sources ([`WorkerContext::hold_back_sources`](tidal_engine::WorkerContext::hold_back_sources))
//! until half of them have started: a service slower than the input makes the sources read at
//! its pace, instead of the waiting records filling memory. (Sources in other processes feeding
//! the operator through an exchange are not held back.)
//!
//! A call that does not finish within the
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
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tidal_engine::{DataStream, Error, SourceHold, Time, timely};

use crate::function::{Lifecycle, Opened, RuntimeContext};
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
    /// At most `n` records per worker between the start of their call and their result leaving
    /// (at least 1); as many more wait before the sources are held back.
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = n.max(1);
        self
    }
    /// The records per worker between the start of their call and their result leaving.
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

    /// Like [`async_map`](AsyncMap::async_map), with an [`AsyncFunction`]: opened on every worker
    /// before its first call (a client made from the job's parameters, say) and closed once the
    /// last call has answered.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use std::future::Future;
    /// use tidal_operators::async_io::{AsyncFunction, AsyncMap, AsyncOptions};
    /// use tidal_operators::function::{Lifecycle, RuntimeContext};
    ///
    /// /// Adds the job parameter `offset`, read when the function opens.
    /// #[derive(Default)]
    /// struct AddOffset { offset: u64 }
    /// impl Lifecycle for AddOffset {
    ///     fn open(&mut self, ctx: &RuntimeContext<'_>) -> tidal_engine::Result<()> {
    ///         self.offset = ctx.parameter("offset").unwrap_or("0").parse().unwrap_or(0);
    ///         Ok(())
    ///     }
    /// }
    /// impl AsyncFunction<u64> for AddOffset {
    ///     type Out = u64;
    ///     type Error = String;
    ///     fn call(&self, x: u64) -> impl Future<Output = Result<u64, String>> + Send + 'static + use<> {
    ///         let offset = self.offset;
    ///         async move { Ok(x + offset) }
    ///     }
    /// }
    /// let out: Vec<u64> = tidal_engine::Job::local(1).with_parameter("offset", "10")
    ///     .run(|env| env.from_iter(0..3u64).rich_async_map(AddOffset::default(), AsyncOptions::new()).collect())
    ///     .unwrap();
    /// assert_eq!(out, vec![10, 11, 12]);
    /// ```
    fn rich_async_map<F: AsyncFunction<T>>(
        self,
        function: F,
        options: AsyncOptions,
    ) -> DataStream<'s, F::Out>;
}

/// An asynchronous function with a lifecycle (Flink's `RichAsyncFunction`), for
/// [`AsyncMap::rich_async_map`]. `call` makes the future of one record's call; it may be called
/// again for the same record (retries), from the runtime's threads.
pub trait AsyncFunction<T>: Lifecycle + Send + 'static {
    /// What a call gives.
    type Out: Send + 'static;
    /// Why a call failed.
    type Error: Display + Send + 'static;
    /// The call for `value`.
    fn call(
        &self,
        value: T,
    ) -> impl Future<Output = Result<Self::Out, Self::Error>> + Send + 'static + use<Self, T>;
}

/// A function shared with the calls under way, its lifecycle reached through the lock.
struct Shared<F>(Arc<Mutex<F>>);

impl<F: Lifecycle> Lifecycle for Shared<F> {
    fn open(&mut self, ctx: &RuntimeContext<'_>) -> tidal_engine::Result<()> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).open(ctx)
    }
    fn close(&mut self) -> tidal_engine::Result<()> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).close()
    }
}

/// No lifecycle (plain `async_map`).
struct NoLifecycle;
impl Lifecycle for NoLifecycle {}

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
        async_core(self, "async_map", f, options, NoLifecycle)
    }

    fn rich_async_map<F: AsyncFunction<T>>(
        self,
        function: F,
        options: AsyncOptions,
    ) -> DataStream<'s, F::Out> {
        let shared = Arc::new(Mutex::new(function));
        let calls = Arc::clone(&shared);
        let call = move |value: T| calls.lock().unwrap_or_else(|p| p.into_inner()).call(value);
        async_core(self, "rich_async_map", call, options, Shared(shared))
    }
}

/// The async operator: `f` per record, `lifecycle` opened before the first call and closed after
/// the last answer.
fn async_core<'s, T, O, E, Fut, F, L>(
    stream: DataStream<'s, T>,
    kind: &str,
    f: F,
    options: AsyncOptions,
    lifecycle: L,
) -> DataStream<'s, O>
where
    T: Clone + Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    O: Send + 'static,
    E: Display + Send + 'static,
    L: Lifecycle + 'static,
{
    {
        let ctx = Rc::clone(stream.context());
        let f = Arc::new(f);
        stream.then(kind, move |input, name| {
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
                    // Started and not yet left (the capacity's count).
                    let mut unemitted = 0usize;
                    // Held while `waiting` is full (backpressure on this process's sources).
                    let mut hold: Option<SourceHold> = None;
                    let mut failed = false;
                    let mut opened = Opened::new(lifecycle, Rc::clone(&ctx), &name);
                    move |(input, frontier), output| {
                        // Opened before the first call; an open that fails fails the job.
                        if !failed && !opened.open_once() {
                            failed = true;
                        }
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
                            unemitted -= 1;
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
                            hold = None;
                            return;
                        }
                        // Start calls up to the capacity.
                        while unemitted < options.capacity {
                            let Some((cap, value, ts)) = waiting.pop_front() else {
                                break;
                            };
                            let seq = next;
                            next += 1;
                            unemitted += 1;
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
                        // Backpressure: hold the sources back while a capacity's worth waits,
                        // until half of it has started.
                        if waiting.len() >= options.capacity {
                            if hold.is_none() {
                                hold = Some(ctx.hold_back_sources());
                            }
                        } else if waiting.len() <= options.capacity / 2 {
                            hold = None;
                        }
                        // Every call has answered and no more will come: close.
                        if frontier.is_empty() && waiting.is_empty() && slots.is_empty() {
                            opened.close_once();
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
