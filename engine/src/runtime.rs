//! Running a job: starting workers on threads and processes, catching failures, stopping cleanly.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};

use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};
use timely::communication::{Hooks, initialize_from};
use timely::dataflow::Scope;
use timely::dataflow::operators::Inspect;
use timely::dataflow::operators::vec::{Broadcast, Input};
use timely::worker::Worker;

use crate::checkpoint::{self, CheckpointConfig, Restored};
use crate::checkpointing::WorkerCheckpoints;
use crate::cli::JobArgs;
use crate::cluster::{ClusterSpec, connect};
use crate::control::{Control, WatermarkBoard};
use crate::error::{Error, ErrorKind, JobFailure, Result};
use crate::state::{KeyedStore, Owner, StateHandle};
use crate::stream::OperatorMeta;
use crate::time::{JobClock, Time};

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
}

/// Stops a running job cleanly: its sources end, and everything in flight is flushed.
///
/// Clone it into any thread; Ctrl-C and SIGTERM do the same for a job started with [`Job::run`].
///
/// It also asks for savepoints (the job needs a savepoint directory, see
/// [`CheckpointConfig::savepoints`]), as SIGUSR1 and SIGUSR2 do for a process.
#[derive(Clone, Debug, Default)]
pub struct StopHandle(Arc<AtomicBool>, Arc<std::sync::atomic::AtomicU8>);

impl StopHandle {
    /// Asks the job to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    /// Asks for a savepoint; with `then_stop`, the job stops cleanly once it is complete.
    pub fn savepoint(&self, then_stop: bool) {
        self.1
            .store(if then_stop { 2 } else { 1 }, Ordering::SeqCst);
    }
    /// Takes a pending savepoint request (from this handle or a signal): `Some(then_stop)`.
    fn take_savepoint(&self) -> Option<bool> {
        let signal = savepoint_signals();
        let asked = self.1.swap(0, Ordering::SeqCst);
        if asked == 2 || signal.1.swap(false, Ordering::SeqCst) {
            Some(true)
        } else if asked == 1 || signal.0.swap(false, Ordering::SeqCst) {
            Some(false)
        } else {
            None
        }
    }
}

/// Set by SIGUSR1 (take a savepoint) and SIGUSR2 (take a savepoint, then stop).
fn savepoint_signals() -> &'static (Arc<AtomicBool>, Arc<AtomicBool>) {
    static FLAGS: OnceLock<(Arc<AtomicBool>, Arc<AtomicBool>)> = OnceLock::new();
    FLAGS.get_or_init(|| {
        (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        )
    })
}

/// What a job reports at its end, summed over this process's workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobReport {
    /// Per source name: records that failed to decode and were set aside, and where they went.
    pub skipped: BTreeMap<String, (u64, String)>,
    /// Per stateful operator: keys held in its state when the job ended, summed over workers.
    pub state_keys: BTreeMap<String, usize>,
    /// Per event-time operator: late records dropped (no side output was asked for).
    pub late_dropped: BTreeMap<String, u64>,
}

impl JobReport {
    /// Records set aside by all sources.
    pub fn total_skipped(&self) -> u64 {
        self.skipped.values().map(|(n, _)| n).sum()
    }
}

/// What one worker's build closure returns, and how this process's workers' results combine.
pub trait WorkerOutput: Send + 'static {
    /// The combined result returned by [`Job::run`].
    type Merged;
    /// Combines the results of this process's workers.
    fn merge(parts: Vec<Self>) -> Self::Merged
    where
        Self: Sized;
}

impl WorkerOutput for () {
    type Merged = ();
    fn merge(_: Vec<Self>) {}
}

impl<A: WorkerOutput, B: WorkerOutput> WorkerOutput for (A, B) {
    type Merged = (A::Merged, B::Merged);
    fn merge(parts: Vec<Self>) -> Self::Merged {
        let (a, b): (Vec<A>, Vec<B>) = parts.into_iter().unzip();
        (A::merge(a), B::merge(b))
    }
}

/// Records handed back to the caller of [`Job::run`] (see the `collect` sink).
///
/// ```
/// let c = tidal_engine::Collected::new();
/// c.extend([1, 2]);
/// assert_eq!(<tidal_engine::Collected<i32> as tidal_engine::WorkerOutput>::merge(vec![c]), vec![1, 2]);
/// ```
#[derive(Debug)]
pub struct Collected<T> {
    items: Arc<Mutex<Vec<T>>>,
}

impl<T> Clone for Collected<T> {
    fn clone(&self) -> Self {
        Collected {
            items: Arc::clone(&self.items),
        }
    }
}

impl<T> Default for Collected<T> {
    fn default() -> Self {
        Collected {
            items: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl<T> Collected<T> {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds records.
    pub fn extend(&self, items: impl IntoIterator<Item = T>) {
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(items);
    }
    /// Takes the records out.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.items.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl<T: Send + 'static> WorkerOutput for Collected<T> {
    type Merged = Vec<T>;
    fn merge(parts: Vec<Self>) -> Vec<T> {
        parts.iter().flat_map(|c| c.take()).collect()
    }
}

/// A watermark sent on the control plane (own watermark and idle flag, or ended), and when.
type SentWatermark = (Option<(Time, bool)>, Instant);

/// How often a moving watermark is sent to other processes at most.
const CONTROL_INTERVAL: Duration = Duration::from_millis(5);

/// State shared by the workers of one job in this process.
pub(crate) struct JobShared {
    stop: StopHandle,
    failed: AtomicBool,
    failure: Mutex<Option<Error>>,
    threads: Mutex<Vec<Thread>>,
    report: Mutex<JobReport>,
    cluster: bool,
    process: usize,
    /// Per source name: each instance's own watermark and whether it is idle (every process's,
    /// through the control plane).
    watermarks: Mutex<WatermarkBoard>,
}

impl JobShared {
    /// Applies a control message from another worker (those of this process are applied already).
    fn apply_control(&self, message: &Control) {
        // Checkpoint messages are handled by each worker (see the control dataflow).
        if let Control::Watermark {
            source,
            worker,
            process,
            seq,
            value,
        } = message
            && *process != self.process
        {
            self.watermarks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .set(source, *worker, *seq, *value);
        }
    }

    fn fail(&self, error: Error) {
        if self.cluster {
            // timely cannot shut down part of a cluster: the other processes would wait forever.
            // End this process; its peers see the connection drop and fail in turn.
            crate::say(format_args!("error: process {}: {error}", self.process));
            std::process::exit(1);
        }
        let mut slot = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(error);
        }
        drop(slot);
        self.failed.store(true, Ordering::SeqCst);
        for t in self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            t.unpark();
        }
    }
}

/// A registered state and the operator it belongs to (with its number among that operator's).
struct StateEntry {
    state: Box<dyn StateHandle>,
    /// The name it was registered under, until its operator is known.
    registered_as: String,
    operator: Option<(Rc<OperatorMeta>, usize)>,
}

impl StateEntry {
    /// The state's identity: its operator's name (with `/k` for an operator's k-th extra state).
    fn name(&self) -> String {
        match &self.operator {
            Some((meta, 0)) => meta.name(),
            Some((meta, k)) => format!("{}/{k}", meta.name()),
            None => self.registered_as.clone(),
        }
    }
}

/// What every operator of a worker can see about where it runs.
pub struct WorkerContext {
    index: usize,
    peers: usize,
    process: usize,
    processes: usize,
    tick: Duration,
    clock: JobClock,
    job: Arc<JobShared>,
    next_id: Cell<usize>,
    run_id: u64,
    states: RefCell<Vec<StateEntry>>,
    /// Control messages waiting to be sent, and the sequence number of the last one.
    outbox: RefCell<Vec<Control>>,
    sequence: Cell<u64>,
    /// Per source: the watermark last sent on the control plane, and when.
    sent_watermarks: RefCell<std::collections::HashMap<String, SentWatermark>>,
    /// This worker's side of checkpointing (fences, cuts, sources, restored state).
    pub(crate) checkpoints: WorkerCheckpoints,
}

impl WorkerContext {
    /// This worker's index among all workers of the job.
    pub fn index(&self) -> usize {
        self.index
    }
    /// Number of workers in the job (all processes).
    pub fn peers(&self) -> usize {
        self.peers
    }
    /// This process's index.
    pub fn process(&self) -> usize {
        self.process
    }
    /// Number of processes.
    pub fn processes(&self) -> usize {
        self.processes
    }
    /// This run's id: the same on every worker of every process, and another one each time the
    /// job is started (a restart or restore is a new run). Sinks name their files with it, so that
    /// a run can tell its own files from those of earlier runs.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// let ids = Arc::new(Mutex::new(Vec::new()));
    /// let seen = Arc::clone(&ids);
    /// tidal_engine::Job::local(2).run(move |env| seen.lock().unwrap().push(env.context().run_id())).unwrap();
    /// let ids = ids.lock().unwrap();
    /// assert_eq!(ids.len(), 2);
    /// assert_eq!(ids[0], ids[1]);
    /// ```
    pub fn run_id(&self) -> u64 {
        self.run_id
    }
    /// The processing-time tick (`--tick`).
    pub fn tick(&self) -> Duration {
        self.tick
    }
    /// The job's processing-time clock.
    pub fn clock(&self) -> JobClock {
        self.clock.clone()
    }
    /// Whether the job was asked to stop (sources end when they see this).
    pub fn stop_requested(&self) -> bool {
        self.job.stop.is_stopped() || signalled().load(Ordering::Relaxed)
    }
    /// Counts `n` records that source `source` set aside, written to `destination`.
    pub fn report_skipped(&self, source: &str, n: u64, destination: &str) {
        let mut report = self.job.report.lock().unwrap_or_else(|p| p.into_inner());
        let entry = report
            .skipped
            .entry(source.to_string())
            .or_insert((0, destination.to_string()));
        entry.0 += n;
    }
    /// Publishes this worker's own watermark for `source` and whether it is idle (`None`: the
    /// instance is done and leaves the board), to every worker of the job. Returns what an idle
    /// instance may follow: the least watermark of the other active instances in any process, or,
    /// when all of them are idle, the least of their own watermarks — an idle instance never
    /// holds back the others' progress.
    pub fn publish_watermark(&self, source: &str, watermark: Option<(Time, bool)>) -> Option<Time> {
        let seq = self.sequence.get() + 1;
        self.sequence.set(seq);
        let mut board = self
            .job
            .watermarks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        board.set(source, self.index, seq, watermark);
        let follow = board.follow(source, self.index);
        drop(board);
        if self.processes > 1 {
            // Other processes hear of a change in the idle flag or the end at once, of a moving
            // watermark at most every few milliseconds.
            let mut sent = self.sent_watermarks.borrow_mut();
            let due = match sent.get(source) {
                None => true,
                Some((last, at)) => {
                    last.map(|(_, idle)| idle) != watermark.map(|(_, idle)| idle)
                        || (*last != watermark && at.elapsed() >= CONTROL_INTERVAL.max(self.tick))
                }
            };
            if due {
                sent.insert(source.to_string(), (watermark, Instant::now()));
                self.outbox.borrow_mut().push(Control::Watermark {
                    source: source.to_string(),
                    worker: self.index,
                    process: self.process,
                    seq,
                    value: watermark,
                });
            }
        }
        follow
    }
    /// Counts `n` late records that operator `operator` dropped.
    pub fn report_late_dropped(&self, operator: &str, n: u64) {
        let mut report = self.job.report.lock().unwrap_or_else(|p| p.into_inner());
        *report.late_dropped.entry(operator.to_string()).or_insert(0) += n;
    }
    /// Registers an operator's keyed state with this worker.
    ///
    /// Every stateful operator registers its state when it is built, so that the worker can list,
    /// measure and snapshot all of it. Its identity in checkpoints is the name of the operator that
    /// registered it (as finally named with [`DataStream::name`](crate::DataStream::name)); when the
    /// job restores a checkpoint, the state is loaded with the keys this worker owns once the
    /// dataflow is built, and a state that cannot be restored fails the job with the reason.
    ///
    /// Operators built with the keyed-operator builder of `tidal-operators` are registered by it;
    /// call this directly only for state outside keyed operators (a sink's, say). `name` is the
    /// state's identity until the operator it belongs to is named.
    pub fn register_state<S: KeyedStore>(&self, name: &str, state: Rc<RefCell<S>>) {
        self.states.borrow_mut().push(StateEntry {
            state: Box::new(state),
            registered_as: name.to_string(),
            operator: None,
        });
    }
    /// Ties the states registered since `first` to the operator `meta` (see [`DataStream::then`]).
    pub(crate) fn assign_states(&self, first: usize, meta: &Rc<OperatorMeta>) {
        let mut states = self.states.borrow_mut();
        for (k, entry) in states.iter_mut().skip(first).enumerate() {
            entry.operator = Some((Rc::clone(meta), k));
        }
    }
    /// Loads every registered state from a restored checkpoint.
    fn restore_states(&self, restored: &Restored) -> Result<()> {
        for entry in self.states.borrow().iter() {
            let name = entry.name();
            let sections: Vec<&[u8]> = restored.state_sections(&name).collect();
            if !sections.is_empty() {
                let owner = Owner {
                    index: self.index,
                    peers: self.peers,
                };
                entry
                    .state
                    .restore(&name, &sections, owner)
                    .map_err(|e| e.context(format!("restoring checkpoint {}", restored.path)))?;
            }
        }
        Ok(())
    }
    /// Number of states registered on this worker.
    pub(crate) fn state_count(&self) -> usize {
        self.states.borrow().len()
    }
    /// Whether the job restores a checkpoint: the cut time the restored state is as of.
    pub fn restored_cut(&self) -> Option<Time> {
        self.checkpoints.restored.as_ref().map(|r| r.cut)
    }
    /// When the job restores a checkpoint: its id.
    pub fn restored_checkpoint(&self) -> Option<u64> {
        self.checkpoints.restored.as_ref().map(|r| r.id)
    }
    /// Whether checkpoints are taken.
    pub fn checkpointing(&self) -> bool {
        self.checkpoints.config.is_some()
    }
    /// The states registered on this worker: operator name and number of keys.
    pub fn state_keys(&self) -> Vec<(String, usize)> {
        self.states
            .borrow()
            .iter()
            .map(|e| (e.name(), e.state.key_count()))
            .collect()
    }
    /// A snapshot of every state registered on this worker as of cut `cut`: operator name and
    /// encoded entries.
    pub fn snapshot_states(&self, cut: Time) -> Result<Vec<(String, Vec<u8>)>> {
        let mut parts = Vec::new();
        for entry in self.states.borrow().iter() {
            let name = entry.name();
            let bytes = entry.state.snapshot(&name, cut)?;
            parts.push((name, bytes));
        }
        Ok(parts)
    }
    /// Tells every registered state that checkpoint `id` is complete.
    fn checkpoint_complete(&self, id: u64) -> Result<()> {
        for entry in self.states.borrow().iter() {
            let name = entry.name();
            entry
                .state
                .checkpoint_complete(id)
                .map_err(|e| e.context(format!("'{name}' after checkpoint {id}")))?;
        }
        Ok(())
    }
    /// A fresh operator number, for default operator names.
    pub fn next_operator_id(&self) -> usize {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }
}

/// The place a job's dataflow is built: one per worker, handed to the build closure.
pub struct Env<'s> {
    scope: Scope<'s, Time>,
    ctx: Rc<WorkerContext>,
}

impl<'s> Env<'s> {
    /// The timely scope, for operators written directly on timely.
    pub fn scope(&self) -> Scope<'s, Time> {
        self.scope
    }
    /// The worker's context.
    pub fn context(&self) -> &Rc<WorkerContext> {
        &self.ctx
    }
    /// This worker's index among all workers of the job.
    pub fn worker_index(&self) -> usize {
        self.ctx.index
    }
    /// Number of workers in the job.
    pub fn peers(&self) -> usize {
        self.ctx.peers
    }
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
        })
    }
    /// A job of one process with `workers` threads.
    pub fn local(workers: usize) -> Job {
        Job {
            spec: ClusterSpec::local(workers.max(1)),
            tick: Duration::from_millis(200),
            stop: StopHandle::default(),
            quiet: false,
            clock: JobClock::system(),
            checkpoints: None,
        }
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
        }
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
        let restored = match &self.checkpoints {
            Some(config) => checkpoint::resolve_restore(config)?.map(Arc::new),
            None => None,
        };
        if let Some(r) = &restored {
            crate::say(format_args!(
                "tidal: restoring checkpoint {} (cut {}, written by {} worker(s))",
                r.path,
                r.cut,
                r.parts.len()
            ));
        }
        // New checkpoints take ids after every one in the directory (a restore from an older one
        // must not overwrite newer ones, which later checkpoints of theirs may build on).
        let first_checkpoint = match &self.checkpoints {
            Some(config) => {
                let newest = checkpoint::list_checkpoints(&config.dir)
                    .ok()
                    .and_then(|listed| listed.first().map(|c| c.0))
                    .unwrap_or(0);
                newest.max(restored.as_ref().map_or(0, |r| r.id)) + 1
            }
            None => 1,
        };
        let checkpoint_config = self.checkpoints.clone().map(Arc::new);
        let spec = self.spec;
        let processes = spec.processes();
        let builders: Vec<AllocatorBuilder>;
        let others: Box<dyn std::any::Any + Send>;
        let hooks = Hooks::default();
        let run_id;
        if processes == 1 {
            run_id = crate::cluster::fresh_run_id();
            builders = ProcessBuilder::new_typed_vector(
                spec.workers,
                hooks.refill.clone(),
                hooks.spill.clone(),
            )
            .into_iter()
            .map(AllocatorBuilder::Process)
            .collect();
            others = Box::new(());
        } else {
            let sockets;
            (sockets, run_id) = connect(&spec)?;
            let process_allocators = ProcessBuilder::new_typed_vector(
                spec.workers,
                hooks.refill.clone(),
                hooks.spill.clone(),
            );
            let (tcp, guard) = initialize_networking_from_sockets(
                process_allocators,
                sockets,
                spec.process,
                spec.workers,
                hooks,
            )
            .map_err(|e| Error::external(format!("starting network threads: {e}")))?;
            builders = tcp.into_iter().map(AllocatorBuilder::Tcp).collect();
            others = Box::new(guard);
        }

        let shared = Arc::new(JobShared {
            stop: self.stop.clone(),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            threads: Mutex::new(Vec::new()),
            report: Mutex::new(JobReport::default()),
            cluster: processes > 1,
            process: spec.process,
            watermarks: Mutex::new(WatermarkBoard::default()),
        });
        register_active(&shared);
        let tick = self.tick;
        let clock = self.clock.clone();
        let worker_shared = Arc::clone(&shared);
        let guards = initialize_from(builders, others, move |allocator| {
            let shared = &worker_shared;
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
            let ctx = Rc::new(WorkerContext {
                index: worker.index(),
                peers: worker.peers(),
                process: spec.process,
                processes,
                tick,
                clock: clock.clone(),
                job: Arc::clone(shared),
                next_id: Cell::new(0),
                run_id,
                states: RefCell::new(Vec::new()),
                outbox: RefCell::new(Vec::new()),
                sequence: Cell::new(0),
                sent_watermarks: RefCell::new(std::collections::HashMap::new()),
                checkpoints: WorkerCheckpoints::new(
                    checkpoint_config.clone(),
                    restored.clone(),
                    worker.index(),
                    first_checkpoint,
                ),
            });
            let index = ctx.index;
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let main = worker.next_dataflow_index();
                let out = worker.dataflow::<Time, _, _>(|scope| {
                    let mut env = Env {
                        scope,
                        ctx: Rc::clone(&ctx),
                    };
                    build(&mut env)
                });
                if let Some(restored) = &ctx.checkpoints.restored {
                    check_restored_names(&ctx, restored);
                    if let Err(e) = ctx.restore_states(restored) {
                        crate::fail(e);
                    }
                }
                let mut control = Some(worker.dataflow::<u64, _, _>(|scope| {
                    let (input, messages) = scope.new_input::<Control>();
                    let shared = Arc::clone(shared);
                    let inbox = Rc::clone(&ctx.checkpoints.inbox);
                    messages.broadcast().inspect(move |message| match message {
                        Control::Watermark { .. } => shared.apply_control(message),
                        _ => inbox.borrow_mut().push(message.clone()),
                    });
                    input
                }));
                // With checkpoints, worker 0 wakes up to start them on time.
                let park = ctx.checkpointing().then_some(Duration::from_millis(5));
                while !shared.failed.load(Ordering::Relaxed) && worker.step_or_park(park) {
                    if control.is_some() {
                        let polled = ctx.checkpoints.poll(
                            ctx.index,
                            ctx.peers,
                            ctx.stop_requested(),
                            &mut |m| ctx.outbox.borrow_mut().push(m),
                            &|cut| ctx.snapshot_states(cut),
                            &|id| ctx.checkpoint_complete(id),
                            &|| shared.stop.take_savepoint(),
                            &|| shared.stop.stop(),
                        );
                        if let Err(e) = polled {
                            shared.fail(e);
                        }
                    }
                    if let Some(input) = control.as_mut() {
                        let mut outbox = ctx.outbox.borrow_mut();
                        if !outbox.is_empty() {
                            for message in outbox.drain(..) {
                                input.send(message);
                            }
                            let next = *input.time() + 1;
                            input.advance_to(next);
                        }
                        drop(outbox);
                        // The job's dataflow has finished here: nothing more to say.
                        if !worker.installed_dataflows().contains(&main) {
                            control = None;
                        }
                    }
                }
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
        })
        .map_err(|e| Error::external(format!("starting worker threads: {e}")))?;

        let results = guards.join();
        unregister_active(&shared);
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
}

/// Fails the job when the checkpoint holds state or a source position for an operator this job
/// does not have (a renamed or removed operator): it would be lost silently.
fn check_restored_names(ctx: &WorkerContext, restored: &Restored) {
    let states: std::collections::BTreeSet<String> =
        ctx.states.borrow().iter().map(StateEntry::name).collect();
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
    if let Some(name) = missing {
        crate::fail(Error::config(format!(
            "checkpoint {} holds state of operator '{name}', which this job does not have: \
             give the operator the same name as in the job that wrote the checkpoint (.name(...)), \
             or start without --restore",
            restored.path
        )));
    }
}

thread_local! {
    static IN_WORKER: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn failure_from_panic(worker: usize, payload: Box<dyn std::any::Any + Send>) -> Error {
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

fn lost_peer(detail: &str) -> Error {
    Error::external(format!(
        "lost the connection to another process of the job ({detail}); it failed or was killed: see its own output for the cause"
    ))
}

static ACTIVE: Mutex<Vec<Weak<JobShared>>> = Mutex::new(Vec::new());

fn register_active(shared: &Arc<JobShared>) {
    let mut active = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
    active.retain(|w| w.strong_count() > 0);
    active.push(Arc::downgrade(shared));
}

fn unregister_active(shared: &Arc<JobShared>) {
    let mut active = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
    active.retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(shared)));
}

/// Workers report their panics themselves (with the location); network threads' panics mean a peer
/// process went away and fail the job. Other threads keep the previous hook.
fn install_panic_hook() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_WORKER.with(|w| w.get()) {
                if info.payload().downcast_ref::<JobFailure>().is_none() {
                    let at = info.location().map(|l| l.to_string());
                    LAST_PANIC_AT.with(|l| *l.borrow_mut() = at);
                }
                return;
            }
            let name = std::thread::current().name().unwrap_or("").to_string();
            if name.starts_with("timely:send") || name.starts_with("timely:recv") {
                let message = info
                    .payload()
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let peer = name.rsplit('-').next().unwrap_or("?").to_string();
                let error = lost_peer(&format!("process {peer}: {message}"));
                for job in ACTIVE
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .filter_map(Weak::upgrade)
                {
                    job.fail(error.clone());
                }
                return;
            }
            previous(info);
        }));
    });
}

fn signalled() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// First Ctrl-C / SIGTERM: stop cleanly (sources end, results flush). Second: exit at once (130).
fn install_signal_handlers() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
        let (savepoint, savepoint_and_stop) = savepoint_signals();
        let _ = signal_hook::flag::register(SIGUSR1, Arc::clone(savepoint));
        let _ = signal_hook::flag::register(SIGUSR2, Arc::clone(savepoint_and_stop));
        let flag = Arc::clone(signalled());
        for signal in [SIGINT, SIGTERM] {
            let _ =
                signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&flag));
            let _ = signal_hook::flag::register(signal, Arc::clone(&flag));
        }
        // Wake parked workers so that sources see the flag promptly.
        let watcher = Arc::clone(&flag);
        let _ = std::thread::Builder::new()
            .name("tidal-signals".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_millis(50));
                    if watcher.load(Ordering::Relaxed) {
                        for job in ACTIVE
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .iter()
                            .filter_map(Weak::upgrade)
                        {
                            for t in job.threads.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                                t.unpark();
                            }
                        }
                        break;
                    }
                }
            });
    });
}
