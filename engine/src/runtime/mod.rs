//! Running a job: starting workers on threads and processes, catching failures, stopping cleanly.
//!
//! - [`Job`] (here): starts the workers, builds the dataflow on each, runs it to the end.
//! - [`worker`]: what each worker's operators see ([`WorkerContext`], [`Env`]) and the state
//!   registry.
//! - [`output`]: what a job returns ([`Collected`], [`WorkerOutput`], [`JobReport`]).
//! - [`signals`]: stopping ([`StopHandle`], Ctrl-C / SIGTERM, savepoint signals) and the panic hook.

pub(crate) mod checkpointing;
pub mod control;
pub mod output;
pub mod progress;
pub mod signals;
pub mod worker;

pub use output::{Collected, JobReport, WorkerOutput};
pub use progress::ProgressMode;
pub use signals::StopHandle;
pub use worker::{Env, SourceHold, WorkerContext};

use signals::{install_panic_hook, install_signal_handlers, register_active, unregister_active};
use worker::JobShared;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::{Allocator, AllocatorBuilder, ProcessBuilder};
use timely::communication::{Hooks, initialize_from};
use timely::dataflow::operators::Inspect;
use timely::dataflow::operators::vec::{Broadcast, Input};
use timely::worker::Worker;

use crate::checkpoint::{
    self, CheckpointConfig, CheckpointListener, CompletedCheckpoint, Restored,
};
use crate::cli::JobArgs;
use crate::cluster::{ClusterSpec, connect};
use crate::error::{Error, ErrorKind, JobFailure, Result};
use crate::metrics::{ExplainFormat, SharedMetrics, Watcher};
use crate::runtime::checkpointing::WorkerCheckpoints;
use crate::runtime::control::Control;
use crate::time::{JobClock, Time};
use timely::logging::TimelyEventBuilder;

/// A job ready to run: how many workers and processes, and how to reach the other processes.
///
/// The closure given to [`Job::run`] is called once on every worker to build the same dataflow;
/// the job then runs until every source is exhausted and every operator has flushed (the final
/// watermark), or until it is stopped (Ctrl-C, SIGTERM or a [`StopHandle`]), or until a worker
/// fails — then every worker stops and `run` returns the first failure.
///
/// ```
/// use tidal_engine::{Job, Collected};
/// let job = Job::local(2);
/// let indexes: Vec<usize> = job.run(|env| {
///     let seen = Collected::new();
///     seen.extend([env.worker_index()]);
///     seen
/// }).unwrap();
/// assert_eq!(indexes.len(), 2);
/// ```
pub struct Job {
    spec: ClusterSpec,
    clock: JobClock,
    tick: Duration,
    stop: StopHandle,
    quiet: bool,
    checkpoints: Option<CheckpointConfig>,
    listeners: Vec<CheckpointListener>,
    parameters: BTreeMap<String, String>,
    /// With metrics on: where this process keeps them, and where process 0 serves them.
    metrics: Option<SharedMetrics>,
    metrics_addr: Option<String>,
    /// Print the job graph instead of running the job.
    explain: Option<ExplainFormat>,
    /// When the progress line of a bounded job is shown.
    progress: ProgressMode,
}

impl Job {
    /// A job shaped by the standard flags (workers, processes, hostfile, timeouts, tick).
    pub fn new(args: &JobArgs) -> Result<Job> {
        args.configure_s3();
        Ok(Job {
            spec: args.cluster_spec()?,
            tick: args.tick,
            stop: StopHandle::default(),
            quiet: false,
            clock: JobClock::system(),
            checkpoints: args.checkpoint_config()?,
            listeners: Vec::new(),
            parameters: args.parameters()?,
            metrics: args.metrics_addr.is_some().then(SharedMetrics::default),
            metrics_addr: args.metrics_addr.clone(),
            explain: args.explain,
            progress: args.progress,
        })
    }
    /// A job of one process with `workers` threads.
    pub fn local(workers: usize) -> Job {
        Job::from_spec(ClusterSpec::local(workers.max(1)))
    }
    /// A job from an explicit cluster spec.
    pub fn from_spec(spec: ClusterSpec) -> Job {
        Job {
            spec,
            tick: Duration::from_millis(200),
            stop: StopHandle::default(),
            quiet: false,
            clock: JobClock::system(),
            checkpoints: None,
            listeners: Vec::new(),
            parameters: BTreeMap::new(),
            metrics: None,
            metrics_addr: None,
            explain: None,
            progress: ProgressMode::Never,
        }
    }
    /// Sets a job parameter (as `--param KEY=VALUE` does), for the job's functions to read
    /// ([`WorkerContext::parameter`]).
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let record = Arc::clone(&seen);
    /// tidal_engine::Job::local(2)
    ///     .with_parameter("region", "eu")
    ///     .run(move |env| {
    ///         let region = env.context().parameter("region").map(String::from);
    ///         record.lock().unwrap().push(region);
    ///     })
    ///     .unwrap();
    /// assert_eq!(*seen.lock().unwrap(), vec![Some("eu".to_string()); 2]);
    /// ```
    pub fn with_parameter(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.insert(key.into(), value.into());
        self
    }
    /// Uses `clock` for processing time (timers), e.g. a [`ManualClock`](crate::ManualClock) in tests.
    pub fn with_clock(mut self, clock: JobClock) -> Self {
        self.clock = clock;
        self
    }
    /// Takes checkpoints (and restores one at start) as `config` says.
    pub fn with_checkpoints(mut self, config: CheckpointConfig) -> Self {
        self.checkpoints = Some(config);
        self
    }
    /// Calls `listener` once for every checkpoint and savepoint that completes (its manifest is
    /// written), on the thread of worker 0 in process 0, before the next one starts: to follow a
    /// job's checkpoints from a program or a test without polling the checkpoint directory. It
    /// should return quickly.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use tidal_engine::{CheckpointConfig, Job, Poll, SourceReader};
    /// /// A source that never ends (and can be checkpointed).
    /// struct Forever;
    /// impl SourceReader for Forever {
    ///     type Item = u8;
    ///     fn read(&mut self, _: &mut Vec<u8>, _: usize) -> Poll {
    ///         Poll::Pending(std::time::Duration::from_millis(5))
    ///     }
    ///     fn position(&self) -> Option<Vec<u8>> {
    ///         Some(Vec::new())
    ///     }
    /// }
    /// let dir = tempfile::tempdir().unwrap();
    /// let (done, completed) = mpsc::channel();
    /// let job = Job::local(1)
    ///     .quiet()
    ///     .with_checkpoints(
    ///         CheckpointConfig::new(dir.path().join("chk")).savepoints(dir.path().join("sp")),
    ///     )
    ///     .on_checkpoint(move |c| done.send(c.clone()).unwrap());
    /// // Take a savepoint, then stop (as SIGUSR2 does).
    /// job.stop_handle().savepoint(true);
    /// job.run(|env| {
    ///     let _ = env.source("forever", Forever);
    /// })
    /// .unwrap();
    /// let savepoint = completed.recv().unwrap();
    /// assert!(savepoint.savepoint);
    /// ```
    pub fn on_checkpoint(
        mut self,
        listener: impl Fn(&CompletedCheckpoint) + Send + Sync + 'static,
    ) -> Self {
        self.listeners.push(Arc::new(listener));
        self
    }
    /// Collects metrics while the job runs (records in and out, time spent and watermark per
    /// operator and worker, checkpoints; see [`metrics`](crate::metrics)) and returns where they
    /// are kept, to read from another thread. With several processes, every process holds every
    /// worker's latest metrics. `--metrics-addr` turns this on and serves them over HTTP.
    ///
    /// ```
    /// use tidal_engine::{Job, Poll, SourceReader};
    /// /// Each worker's instance reads 500 numbers.
    /// struct Numbers(u32);
    /// impl SourceReader for Numbers {
    ///     type Item = u32;
    ///     fn read(&mut self, out: &mut Vec<u32>, _: usize) -> Poll {
    ///         out.extend(self.0..500);
    ///         self.0 = 500;
    ///         Poll::Done
    ///     }
    /// }
    /// let (job, metrics) = Job::local(2).with_metrics();
    /// job.run(|env| {
    ///     let _ = env.source("numbers", Numbers(0));
    /// })
    /// .unwrap();
    /// let m = metrics.lock().unwrap();
    /// let graph = m.graph.as_ref().unwrap();
    /// let source = graph.nodes.iter().find(|n| n.kind == "source").unwrap();
    /// let out: u64 = m.workers.values().map(|w| w.operators[source.id].records_out).sum();
    /// assert_eq!(out, 1000);
    /// ```
    pub fn with_metrics(mut self) -> (Self, SharedMetrics) {
        let metrics = self.metrics.get_or_insert_with(SharedMetrics::default);
        let handle = SharedMetrics::clone(metrics);
        (self, handle)
    }
    /// When process 0 shows the progress line of a bounded job on standard error (see
    /// [`progress`](crate::runtime::progress)): [`ProgressMode::Auto`] when it is a terminal
    /// (the default of `--progress`), always, or never (the default of jobs made in code).
    ///
    /// ```
    /// use tidal_engine::{Job, runtime::ProgressMode};
    /// let job = Job::local(1).with_progress(ProgressMode::Never);
    /// # drop(job);
    /// ```
    pub fn with_progress(mut self, mode: ProgressMode) -> Self {
        self.progress = mode;
        self
    }
    /// Sets the processing-time tick.
    pub fn with_tick(mut self, tick: Duration) -> Self {
        self.tick = tick;
        self
    }
    /// Does not print the end-of-job report (skipped records) to stderr.
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }
    /// A handle that stops the job cleanly when asked.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }
    /// The process layout this job runs with.
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// Builds the dataflow with `build` on every worker and runs it to the end.
    ///
    /// Returns the merged outputs of this process's workers (e.g. collected records).
    pub fn run<R, F>(self, build: F) -> Result<R::Merged>
    where
        R: WorkerOutput,
        F: Fn(&mut Env<'_>) -> R + Send + Sync + 'static,
    {
        let quiet = self.quiet;
        let (merged, report) = self.run_with_report(build)?;
        if !quiet {
            for (source, (n, destination)) in &report.skipped {
                crate::say(format_args!(
                    "tidal: source '{source}' set aside {n} record(s) that failed to decode; see {destination}"
                ));
            }
            for (operator, n) in &report.late_dropped {
                crate::say(format_args!(
                    "tidal: '{operator}' dropped {n} late record(s); give it a side output for late data to keep them"
                ));
            }
        }
        Ok(merged)
    }

    /// Like [`Job::run`], and also returns the end-of-job report instead of printing it.
    pub fn run_with_report<R, F>(self, build: F) -> Result<(R::Merged, JobReport)>
    where
        R: WorkerOutput,
        F: Fn(&mut Env<'_>) -> R + Send + Sync + 'static,
    {
        install_panic_hook();
        install_signal_handlers();
        if let Some(format) = self.explain {
            return self.explain_only(format, build);
        }
        let (restored, first_checkpoint) = self.restore_point()?;
        if let Some(m) = &self.metrics {
            let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
            m.started = Some(Instant::now());
            m.restarts = std::env::var("TIDAL_RESTARTS")
                .ok()
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
        }
        if let (Some(addr), Some(metrics), 0) =
            (&self.metrics_addr, &self.metrics, self.spec.process)
        {
            let bound = crate::metrics::server::serve(addr, SharedMetrics::clone(metrics))?;
            if !self.quiet {
                crate::say(format_args!("tidal: metrics on http://{bound}/metrics"));
            }
        }
        let (builders, others, run_id) = communication(&self.spec)?;
        let processes = self.spec.processes();
        // Every process sends its sources' progress unless told never to; process 0 shows it.
        let board = (self.progress != ProgressMode::Never)
            .then(|| Arc::new(Mutex::new(progress::ProgressBoard::default())));
        let shows = match self.progress {
            ProgressMode::Always => true,
            ProgressMode::Auto => std::io::IsTerminal::is_terminal(&std::io::stderr()),
            ProgressMode::Never => false,
        };
        let printer = match (&board, shows && self.spec.process == 0) {
            (Some(board), true) => Some(progress::Printer::start(Arc::clone(board))),
            _ => None,
        };
        let shared = Arc::new(JobShared::new(
            self.stop.clone(),
            (self.spec.process, processes),
            self.metrics.clone(),
            board,
        ));
        register_active(&shared);
        let plan = WorkerPlan {
            shared: Arc::clone(&shared),
            process: self.spec.process,
            processes,
            tick: self.tick,
            clock: self.clock.clone(),
            run_id,
            checkpoints: self.checkpoints.clone().map(Arc::new),
            restored,
            first_checkpoint,
            listeners: self.listeners.clone(),
            parameters: Arc::new(self.parameters.clone()),
            explain: false,
        };
        let guards = initialize_from(builders, others, move |allocator| {
            run_worker(allocator, &plan, &build)
        })
        .map_err(|e| Error::external(format!("starting worker threads: {e}")))?;
        let results = guards.join();
        if let Some(printer) = printer {
            printer.finish();
        }
        unregister_active(&shared);
        collect_results::<R>(results, &shared)
    }

    /// `--explain`: builds the dataflow on one worker of this process, prints the job graph
    /// to stdout and ends the process, without running the job or connecting to other processes.
    fn explain_only<R, F>(self, format: ExplainFormat, build: F) -> Result<(R::Merged, JobReport)>
    where
        R: WorkerOutput,
        F: Fn(&mut Env<'_>) -> R + Send + Sync + 'static,
    {
        let workers = self.spec.workers * self.spec.processes();
        let shared = Arc::new(JobShared::new(
            self.stop.clone(),
            (0, 1),
            Some(SharedMetrics::default()),
            None,
        ));
        let plan = WorkerPlan {
            shared: Arc::clone(&shared),
            process: 0,
            processes: 1,
            tick: self.tick,
            clock: self.clock.clone(),
            run_id: 0,
            checkpoints: None,
            restored: None,
            first_checkpoint: 1,
            listeners: Vec::new(),
            parameters: Arc::new(self.parameters.clone()),
            explain: true,
        };
        let (builders, others, _) = communication(&ClusterSpec::local(1))?;
        let guards = initialize_from(builders, others, move |allocator| {
            run_worker(allocator, &plan, &build)
        })
        .map_err(|e| Error::external(format!("starting worker threads: {e}")))?;
        drop(guards.join());
        if let Some(error) = shared
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(error);
        }
        let graph = shared
            .metrics
            .as_ref()
            .and_then(|m| m.lock().unwrap_or_else(|p| p.into_inner()).graph.clone())
            .unwrap_or_default();
        let graph = crate::metrics::JobGraph { workers, ..graph };
        let text = match format {
            ExplainFormat::Text => graph.to_text(),
            ExplainFormat::Dot => graph.to_dot(),
        };
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
        std::process::exit(0);
    }

    /// The checkpoint to restore, if any (and says so), and the id the job's first new
    /// checkpoint takes: after every one in the directory, since a restore from an older one must
    /// not overwrite newer ones, which later checkpoints of theirs may build on.
    fn restore_point(&self) -> Result<(Option<Arc<Restored>>, u64)> {
        let Some(config) = &self.checkpoints else {
            return Ok((None, 1));
        };
        let restored = checkpoint::resolve_restore(config)?.map(Arc::new);
        if let Some(r) = &restored {
            crate::say(format_args!(
                "tidal: restoring checkpoint {} (cut {}, written by {} worker(s))",
                r.path,
                r.cut,
                r.parts.len()
            ));
        }
        let newest = checkpoint::list_checkpoints(&config.dir)
            .ok()
            .and_then(|listed| listed.first().map(|c| c.0))
            .unwrap_or(0);
        let first = newest.max(restored.as_ref().map_or(0, |r| r.id)) + 1;
        Ok((restored, first))
    }
}

/// What every worker of this process starts from.
struct WorkerPlan {
    shared: Arc<JobShared>,
    process: usize,
    processes: usize,
    tick: Duration,
    clock: JobClock,
    run_id: u64,
    checkpoints: Option<Arc<CheckpointConfig>>,
    restored: Option<Arc<Restored>>,
    first_checkpoint: u64,
    listeners: Vec<CheckpointListener>,
    parameters: Arc<BTreeMap<String, String>>,
    /// Build the dataflow, record its graph and stop (`--explain`).
    explain: bool,
}

/// The allocators of this process's workers (threads, and with several processes the network
/// between them, connected with a deadline), what keeps the network threads alive, and the run's
/// id.
fn communication(
    spec: &ClusterSpec,
) -> Result<(Vec<AllocatorBuilder>, Box<dyn std::any::Any + Send>, u64)> {
    let hooks = Hooks::default();
    let threads =
        ProcessBuilder::new_typed_vector(spec.workers, hooks.refill.clone(), hooks.spill.clone());
    if spec.processes() == 1 {
        let builders = threads.into_iter().map(AllocatorBuilder::Process).collect();
        return Ok((builders, Box::new(()), crate::cluster::fresh_run_id()));
    }
    let (sockets, run_id) = connect(spec)?;
    let (tcp, guard) =
        initialize_networking_from_sockets(threads, sockets, spec.process, spec.workers, hooks)
            .map_err(|e| Error::external(format!("starting network threads: {e}")))?;
    let builders = tcp.into_iter().map(AllocatorBuilder::Tcp).collect();
    Ok((builders, Box::new(guard), run_id))
}

/// One worker thread: builds the job's dataflow and runs it to its end; `None` when the job
/// failed (the failure is in the shared state) or the worker's build or run panicked.
fn run_worker<R, F>(allocator: Allocator, plan: &WorkerPlan, build: &F) -> Option<R>
where
    F: Fn(&mut Env<'_>) -> R,
{
    let shared = &plan.shared;
    IN_WORKER.with(|w| w.set(true));
    shared
        .threads
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(std::thread::current());
    let mut worker = Worker::new(
        timely::WorkerConfig::default(),
        allocator,
        Some(Instant::now()),
    );
    let watcher = shared.metrics.as_ref().map(|_| {
        let watcher = Watcher::new();
        let collector = Rc::clone(&watcher.collector);
        if let Some(mut registry) = worker.log_register() {
            registry.insert::<TimelyEventBuilder, _>("timely", move |_, events| {
                if let Some(events) = events {
                    collector.borrow_mut().take(events);
                }
            });
        }
        watcher
    });
    let ctx = Rc::new(WorkerContext {
        watcher,
        index: worker.index(),
        peers: worker.peers(),
        process: plan.process,
        processes: plan.processes,
        tick: plan.tick,
        clock: plan.clock.clone(),
        job: Arc::clone(shared),
        next_id: Cell::new(0),
        run_id: plan.run_id,
        parameters: Arc::clone(&plan.parameters),
        states: RefCell::new(Vec::new()),
        outbox: RefCell::new(Vec::new()),
        sequence: Cell::new(0),
        sent_watermarks: RefCell::new(std::collections::HashMap::new()),
        aligned_sources: RefCell::new(Vec::new()),
        stop_announced: Cell::new(false),
        progress: RefCell::new(BTreeMap::new()),
        progress_seq: Cell::new(0),
        progress_sent: Cell::new(None),
        checkpoints: WorkerCheckpoints::new(
            plan.checkpoints.clone(),
            plan.restored.clone(),
            worker.index(),
            plan.first_checkpoint,
            plan.listeners.clone(),
        ),
    });
    let index = ctx.index;
    if index == 0
        && let Some(m) = &shared.metrics
    {
        ctx.checkpoints.count_into(SharedMetrics::clone(m));
    }
    let explain = plan.explain;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if explain {
            return explain_dataflow(&mut worker, &ctx, build);
        }
        let out = run_dataflows(&mut worker, &ctx, build);
        let mut report = shared.report.lock().unwrap_or_else(|p| p.into_inner());
        for (name, keys) in ctx.state_keys() {
            *report.state_keys.entry(name).or_insert(0) += keys;
        }
        out
    }));
    match outcome {
        Ok(out) if !shared.failed.load(Ordering::SeqCst) => Some(out),
        Ok(_) => None,
        Err(payload) => {
            shared.fail(failure_from_panic(index, payload));
            None
        }
    }
}

/// Builds the job's dataflow on `worker`, restores its state from the checkpoint (if any), adds
/// the control dataflow (watermarks and checkpoint messages between workers), and steps until
/// the job's dataflow ends or the job fails.
fn run_dataflows<R, F>(worker: &mut Worker, ctx: &Rc<WorkerContext>, build: &F) -> R
where
    F: Fn(&mut Env<'_>) -> R,
{
    let shared = &ctx.job;
    let (main, out) = build_job_dataflow(worker, ctx, build);
    if let Some(restored) = &ctx.checkpoints.restored {
        let loaded =
            check_restored_names(ctx, restored).and_then(|()| ctx.restore_states(restored));
        if let Err(e) = loaded {
            shared.fail(e);
        }
    }
    let mut control = Some(worker.dataflow::<u64, _, _>(|scope| {
        let (input, messages) = scope.new_input::<Control>();
        let shared = Arc::clone(shared);
        let inbox = Rc::clone(&ctx.checkpoints.inbox);
        messages.broadcast().inspect(move |message| match message {
            Control::Watermark { .. } => shared.apply_control(message),
            Control::Metrics(m) => shared.record_metrics(m.clone()),
            Control::Progress {
                worker,
                seq,
                sources,
            } => shared.record_progress(*worker, *seq, sources.clone()),
            _ => inbox.borrow_mut().push(message.clone()),
        });
        input
    }));
    // With checkpoints, worker 0 wakes up to start them on time.
    let park = ctx.checkpointing().then_some(Duration::from_millis(5));
    while !shared.failed.load(Ordering::Relaxed) && worker.step_or_park(park) {
        let Some(input) = control.as_mut() else {
            continue;
        };
        step_checkpoints(ctx);
        ctx.announce_stop();
        ctx.publish_metrics(false);
        ctx.publish_progress(false);
        send_control(ctx, input);
        // The job's dataflow has finished here: nothing more to say.
        if !worker.installed_dataflows().contains(&main) {
            ctx.publish_metrics(true);
            ctx.publish_progress(true);
            send_control(ctx, input);
            control = None;
        }
    }
    ctx.publish_metrics(true);
    out
}

/// Builds the job's dataflow on `worker` with `build`: its index and the build's output.
fn build_job_dataflow<R, F>(worker: &mut Worker, ctx: &Rc<WorkerContext>, build: &F) -> (usize, R)
where
    F: Fn(&mut Env<'_>) -> R,
{
    let main = worker.next_dataflow_index();
    if let Some(w) = &ctx.watcher {
        w.dataflow.set(main);
    }
    let out = worker.dataflow::<Time, _, _>(|scope| {
        let mut env = Env {
            scope,
            ctx: Rc::clone(ctx),
        };
        build(&mut env)
    });
    (main, out)
}

/// `--explain`: builds the job's dataflow, records its graph from the operators timely logged
/// while building it, and drops it without running it.
fn explain_dataflow<R, F>(worker: &mut Worker, ctx: &Rc<WorkerContext>, build: &F) -> R
where
    F: Fn(&mut Env<'_>) -> R,
{
    let (main, out) = build_job_dataflow(worker, ctx, build);
    if let Some(mut registry) = worker.log_register() {
        registry.flush();
    }
    if let (Some(w), Some(m)) = (&ctx.watcher, &ctx.job.metrics) {
        m.lock().unwrap_or_else(|p| p.into_inner()).graph = Some(w.graph(ctx.peers));
    }
    worker.drop_dataflow(main);
    out
}

/// This worker's part of checkpointing after a step: handle received messages, write its part
/// when it can, and on worker 0 coordinate. A failure fails the job.
fn step_checkpoints(ctx: &WorkerContext) {
    let shared = &ctx.job;
    let polled = ctx.checkpoints.poll(
        ctx.index,
        ctx.peers,
        ctx.stop_requested(),
        &mut |m| ctx.outbox.borrow_mut().push(m),
        &|cut, base| ctx.take_states(cut, base),
        &|id| ctx.checkpoint_complete(id),
        &|| shared.stop.take_savepoint(),
        &|| shared.stop.stop(),
    );
    if let Err(e) = polled {
        shared.fail(e);
    }
}

/// Sends this worker's waiting control messages to every worker.
fn send_control(ctx: &WorkerContext, input: &mut timely::dataflow::InputHandleVec<u64, Control>) {
    let mut outbox = ctx.outbox.borrow_mut();
    if !outbox.is_empty() {
        for message in outbox.drain(..) {
            input.send(message);
        }
        let next = *input.time() + 1;
        input.advance_to(next);
    }
}

/// The job's result from its workers' results: the first failure, or every worker's output
/// merged, with the job's report.
fn collect_results<R: WorkerOutput>(
    results: Vec<std::result::Result<Option<R>, String>>,
    shared: &JobShared,
) -> Result<(R::Merged, JobReport)> {
    if let Some(error) = shared
        .failure
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        return Err(error);
    }
    let mut parts = Vec::with_capacity(results.len());
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(Some(out)) => parts.push(out),
            Ok(None) => {
                return Err(Error::new(
                    ErrorKind::Cancelled,
                    format!("worker {i} stopped"),
                ));
            }
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::UserCode,
                    format!("worker {i} failed: {e}"),
                ));
            }
        }
    }
    let report = shared
        .report
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok((R::merge(parts), report))
}

/// Fails the job when the checkpoint holds state or a source position for an operator this job
/// does not have (a renamed or removed operator): it would be lost silently.
pub(super) fn check_restored_names(ctx: &WorkerContext, restored: &Restored) -> Result<()> {
    let states: std::collections::BTreeSet<String> = worker::state_names(&ctx.states.borrow())
        .into_iter()
        .collect();
    let sources: std::collections::BTreeSet<String> = ctx
        .checkpoints
        .sources
        .borrow()
        .iter()
        .map(|s| s.borrow().name())
        .collect();
    let missing = restored
        .state_names()
        .into_iter()
        .find(|n| !states.contains(*n))
        .or_else(|| {
            restored
                .parts
                .iter()
                .flat_map(|p| p.sources.iter().map(|(n, _)| n.as_str()))
                .find(|n| !sources.contains(*n))
        });
    match missing {
        Some(name) => Err(Error::config(format!(
            "checkpoint {} holds state of operator '{name}', which this job does not have: \
             give the operator the same name as in the job that wrote the checkpoint (.name(...)), \
             or start without --restore",
            restored.path
        ))),
        None => Ok(()),
    }
}

thread_local! {
    static IN_WORKER: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

pub(super) fn failure_from_panic(worker: usize, payload: Box<dyn std::any::Any + Send>) -> Error {
    let payload = match payload.downcast::<JobFailure>() {
        Ok(failure) => return failure.0,
        Err(p) => p,
    };
    let message = if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    };
    if message.contains("timely communication error") {
        return lost_peer(&message);
    }
    let at = LAST_PANIC_AT
        .with(|l| l.borrow_mut().take())
        .map(|l| format!(" (at {l})"))
        .unwrap_or_default();
    Error::new(
        ErrorKind::UserCode,
        format!("worker {worker} failed in user code: {message}{at}"),
    )
}

pub(super) fn lost_peer(detail: &str) -> Error {
    Error::external(format!(
        "lost the connection to another process of the job ({detail}); it failed or was killed: see its own output for the cause"
    ))
}
