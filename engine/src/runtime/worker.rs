//! What a worker's operators see: the [`WorkerContext`] (its place in the job, the state
//! registry, reports and control messages) and the [`Env`] handed to the build closure.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

use timely::dataflow::Scope;

use crate::checkpoint::Restored;
use crate::checkpoint::incremental::Taken;
use crate::error::{Error, Result};
use crate::operator::OperatorMeta;
use crate::runtime::checkpointing::WorkerCheckpoints;
use crate::runtime::control::{Control, WatermarkBoard};
use crate::state::{KeyedStore, Owner, StateHandle};
use crate::time::{JobClock, Time};

use super::output::JobReport;
use super::signals::{StopHandle, signalled};

/// A watermark sent on the control plane (own watermark and idle flag, or ended), and when.
type SentWatermark = (Option<(Time, bool)>, Instant);

/// How often a moving watermark is sent to other processes at most.
const CONTROL_INTERVAL: Duration = Duration::from_millis(5);
/// The watermark board's key under which each worker says it knows the job is stopping (no
/// source name can take it).
const STOP_SEEN: &str = "\u{1}stop seen";

/// State shared by the workers of one job in this process.
pub(crate) struct JobShared {
    pub(super) stop: StopHandle,
    pub(super) failed: AtomicBool,
    pub(super) failure: Mutex<Option<Error>>,
    pub(super) threads: Mutex<Vec<Thread>>,
    pub(super) report: Mutex<JobReport>,
    pub(super) cluster: bool,
    pub(super) process: usize,
    /// Per source name: each instance's own watermark and whether it is idle (every process's,
    /// through the control plane).
    pub(super) watermarks: Mutex<WatermarkBoard>,
    /// How many [`SourceHold`]s are held in this process: while any is, its sources read nothing.
    pub(super) held_back: AtomicUsize,
    /// With metrics on: every worker's latest metrics (all processes').
    pub(super) metrics: Option<crate::metrics::SharedMetrics>,
    /// Unless `--progress never`: every worker's sources' progress (all processes').
    pub(super) progress: Option<Arc<Mutex<super::progress::ProgressBoard>>>,
}

impl JobShared {
    /// A job's shared state in process `process` of `processes`, not failed, nothing reported.
    pub(super) fn new(
        stop: StopHandle,
        (process, processes): (usize, usize),
        metrics: Option<crate::metrics::SharedMetrics>,
        progress: Option<Arc<Mutex<super::progress::ProgressBoard>>>,
    ) -> Self {
        JobShared {
            stop,
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            threads: Mutex::new(Vec::new()),
            report: Mutex::new(JobReport::default()),
            cluster: processes > 1,
            process,
            watermarks: Mutex::new(WatermarkBoard::default()),
            held_back: AtomicUsize::new(0),
            metrics,
            progress,
        }
    }

    /// Applies a control message from another worker (those of this process are applied already).
    /// The cluster-wide watermark board (a poisoned lock is taken as it is: the board holds
    /// plain values, each set whole).
    pub(super) fn board(&self) -> std::sync::MutexGuard<'_, WatermarkBoard> {
        self.watermarks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps a worker's report of its sources' progress (from this process or another).
    pub(super) fn record_progress(
        &self,
        worker: usize,
        seq: u64,
        sources: Vec<(String, super::progress::SourceProgress)>,
    ) {
        if let Some(board) = &self.progress {
            board
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(worker, seq, sources);
        }
    }

    /// Keeps a worker's metrics snapshot (from this process or another).
    pub(super) fn record_metrics(&self, snapshot: crate::metrics::WorkerMetrics) {
        if let Some(m) = &self.metrics {
            m.lock().unwrap_or_else(|p| p.into_inner()).record(snapshot);
        }
    }

    pub(super) fn apply_control(&self, message: &Control) {
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
            self.board().set(source, *worker, *seq, *value);
        }
    }

    pub(super) fn fail(&self, error: Error) {
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
pub(super) struct StateEntry {
    state: Box<dyn StateHandle>,
    /// The name it was registered under, until its operator is known.
    registered_as: String,
    operator: Option<(Rc<OperatorMeta>, usize)>,
}

impl StateEntry {
    /// The state's identity: its operator's name (with `/k` for an operator's k-th extra state).
    pub(super) fn name(&self) -> String {
        match &self.operator {
            Some((meta, 0)) => meta.name(),
            Some((meta, k)) => format!("{}/{k}", meta.name()),
            None => self.registered_as.clone(),
        }
    }
}

/// Each registered state's identity in checkpoints: its [`name`](StateEntry::name), and for a
/// name several states share (operators the job named alike, such as two SQL window
/// aggregations of the same windows) ` #2`, ` #3`, ... after the second and later, in the order
/// they were registered — the order the job builds its operators in, the same on every worker
/// and every run of the job — so that each restores its own state, not all of theirs.
pub(super) fn state_names(entries: &[StateEntry]) -> Vec<String> {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    entries
        .iter()
        .map(|e| {
            let name = e.name();
            let n = seen.entry(name.clone()).or_insert(0);
            *n += 1;
            if *n == 1 {
                name
            } else {
                format!("{name} #{n}")
            }
        })
        .collect()
}

/// A hold on this process's sources, taken by an operator whose backlog is over its bound
/// ([`WorkerContext::hold_back_sources`]); dropping it releases them.
pub struct SourceHold {
    job: Arc<JobShared>,
}

impl Drop for SourceHold {
    fn drop(&mut self) {
        self.job.held_back.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What every operator of a worker can see about where it runs.
pub struct WorkerContext {
    /// With metrics on: this worker's collector and registered operators.
    pub(crate) watcher: Option<crate::metrics::Watcher>,
    pub(super) index: usize,
    pub(super) peers: usize,
    pub(super) process: usize,
    pub(super) processes: usize,
    pub(super) tick: Duration,
    pub(super) clock: JobClock,
    pub(super) job: Arc<JobShared>,
    pub(super) next_id: Cell<usize>,
    pub(super) run_id: u64,
    pub(super) parameters: Arc<std::collections::BTreeMap<String, String>>,
    pub(super) states: RefCell<Vec<StateEntry>>,
    /// Control messages waiting to be sent, and the sequence number of the last one.
    pub(super) outbox: RefCell<Vec<Control>>,
    pub(super) sequence: Cell<u64>,
    /// Per source: the watermark last sent on the control plane, and when.
    pub(super) sent_watermarks: RefCell<std::collections::HashMap<String, SentWatermark>>,
    /// The board keys of this worker's event-time source instances that keep in step while
    /// the job checkpoints (the same on every worker: every worker builds the same dataflow).
    pub(super) aligned_sources: RefCell<Vec<String>>,
    /// Whether this worker has told the others that it knows the job is stopping.
    pub(super) stop_announced: Cell<bool>,
    /// Its sources' progress by name, the last report's sequence number and when it was sent.
    pub(super) progress:
        RefCell<std::collections::BTreeMap<String, super::progress::SourceProgress>>,
    pub(super) progress_seq: Cell<u64>,
    pub(super) progress_sent: Cell<Option<Instant>>,
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
    /// The job parameter `key` (`--param KEY=VALUE`, [`Job::with_parameter`](crate::Job::with_parameter)).
    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.parameters.get(key).map(String::as_str)
    }
    /// Every job parameter, by key.
    pub fn parameters(&self) -> &std::collections::BTreeMap<String, String> {
        &self.parameters
    }
    /// The processing-time tick (`--tick`).
    pub fn tick(&self) -> Duration {
        self.tick
    }
    /// The job's processing-time clock.
    pub fn clock(&self) -> JobClock {
        self.clock.clone()
    }
    /// Ends the job with `error`, from inside a running dataflow, where there is no caller to
    /// return it to: this worker stops at the end of its current step, the other workers stop
    /// too, and [`Job::run`](crate::Job::run) returns `error` (in a job of several processes, this
    /// process prints it and exits with status 1, and its peers see it go). The operator that
    /// calls it returns normally and does no more work (see [`failed`](Self::failed)).
    ///
    /// ```
    /// use tidal_engine::{Error, ErrorKind, Job};
    /// let err = Job::local(1).quiet().run(|env| {
    ///     env.context().fail(Error::input("line 3 of 'bids.csv': field 'price': not a number"));
    /// }).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Input);
    /// assert!(err.to_string().contains("line 3"));
    /// ```
    pub fn fail(&self, error: Error) {
        self.job.fail(error);
    }
    /// Whether the job is failing (some worker called [`fail`](Self::fail)): an operator that
    /// sees it does no more work.
    pub fn failed(&self) -> bool {
        self.job.failed.load(Ordering::Relaxed)
    }
    /// Backpressure: an operator whose backlog of records is over its bound (records it has taken
    /// in but cannot work on yet, such as an `async_map` waiting for its service) takes a hold,
    /// and while any hold is taken in this process, this process's sources read nothing — they
    /// look again every millisecond — so the backlog stops growing. Dropping the hold lets them
    /// read again. Holds are per process: a source in another process feeding this one through an
    /// exchange is not held back.
    ///
    /// ```
    /// tidal_engine::Job::local(1).run(|env| {
    ///     let ctx = env.context();
    ///     assert!(!ctx.sources_held_back());
    ///     let hold = ctx.hold_back_sources();
    ///     assert!(ctx.sources_held_back());
    ///     drop(hold);
    ///     assert!(!ctx.sources_held_back());
    /// }).unwrap();
    /// ```
    pub fn hold_back_sources(&self) -> SourceHold {
        self.job.held_back.fetch_add(1, Ordering::SeqCst);
        SourceHold {
            job: Arc::clone(&self.job),
        }
    }
    /// Whether an operator of this process holds its sources back
    /// ([`hold_back_sources`](Self::hold_back_sources)).
    pub fn sources_held_back(&self) -> bool {
        self.job.held_back.load(Ordering::Relaxed) > 0
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
        let mut board = self.job.board();
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
    /// Tells every worker, once, that this one knows the job is stopping (called after each step).
    pub(super) fn announce_stop(&self) {
        if !self.stop_announced.get() && self.stop_requested() {
            self.stop_announced.set(true);
            // A stop one process was given (a signal to it alone) is the whole job's.
            if self.processes > 1 {
                self.outbox.borrow_mut().push(Control::Stop);
            }
            self.publish_watermark(STOP_SEEN, Some((0, false)));
        }
    }
    /// Whether every worker of the job knows that it is stopping. A source stopped before its
    /// end keeps its capability until then: dropping it earlier would let the frontier pass
    /// times whose input was not all read on a worker that does not yet know of the stop, where
    /// collection roots would release those times as complete.
    pub(crate) fn stop_seen_everywhere(&self) -> bool {
        self.job.board().heard_from_all(STOP_SEEN, self.peers)
    }
    /// Registers an event-time source instance that keeps in step with the others while the job
    /// checkpoints; returns the key it publishes its watermark under.
    pub(crate) fn register_aligned_source(&self) -> String {
        let mut aligned = self.aligned_sources.borrow_mut();
        // A key no source name can take (names are the user's; this counts instances).
        let key = format!("\u{1}aligned#{}", aligned.len());
        aligned.push(key.clone());
        key
    }
    /// The least own watermark of the active instances of every aligned source but `key`, on
    /// every worker (`Time::MIN` until all have been heard of; `None` when none is active).
    pub(crate) fn least_aligned_watermark(&self, key: &str) -> Option<Time> {
        let aligned = self.aligned_sources.borrow();
        let others = aligned.iter().filter(|k| *k != key);
        others.clone().next()?;
        self.job.board().least_of(others, self.peers)
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
    pub(super) fn restore_states(&self, restored: &Restored) -> Result<()> {
        let states = self.states.borrow();
        for (entry, name) in states.iter().zip(state_names(&states)) {
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
    /// With metrics on, when due (or `now`): takes this worker's metrics, keeps them in the
    /// process's metrics and sends them to the other processes. Worker 0 of process 0 also
    /// keeps the job graph there the first time.
    pub(super) fn publish_metrics(&self, now: bool) {
        let Some(w) = &self.watcher else { return };
        if !now && !w.due() {
            return;
        }
        let keys = self
            .state_keys()
            .into_iter()
            .map(|(name, n)| (name, n as u64))
            .collect();
        let states = w.states(keys, now, || {
            self.states
                .borrow()
                .iter()
                .map(|e| e.state.encoded_bytes())
                .collect()
        });
        let snapshot = w.snapshot(self.index, self.process, self.peers, states);
        if let Some(m) = &self.job.metrics {
            let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
            if m.graph.is_none() {
                m.graph = Some(w.graph(self.peers));
            }
            m.record(snapshot.clone());
        }
        if self.job.cluster {
            self.outbox.borrow_mut().push(Control::Metrics(snapshot));
        }
    }
    /// Whether sources note their progress (for the progress line of process 0).
    pub(crate) fn progress_on(&self) -> bool {
        self.job.progress.is_some()
    }
    /// Notes how far source `name`'s instance on this worker has read.
    pub(crate) fn note_progress(
        &self,
        name: &str,
        records: u64,
        progress: Option<crate::source::Progress>,
        finished: bool,
    ) {
        let mut all = self.progress.borrow_mut();
        let entry = match all.get_mut(name) {
            Some(e) => e,
            None => all.entry(name.to_string()).or_default(),
        };
        *entry = super::progress::SourceProgress {
            records,
            progress,
            finished,
        };
    }
    /// When due (twice a second) or `now`: keeps this worker's sources' progress in the
    /// process's board and sends it to the other processes.
    pub(super) fn publish_progress(&self, now: bool) {
        if !self.progress_on() {
            return;
        }
        let due = self
            .progress_sent
            .get()
            .is_none_or(|t| t.elapsed() >= super::progress::EVERY);
        if !(now || due) {
            return;
        }
        self.progress_sent.set(Some(Instant::now()));
        self.progress_seq.set(self.progress_seq.get() + 1);
        let sources: Vec<(String, super::progress::SourceProgress)> = self
            .progress
            .borrow()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.job
            .record_progress(self.index, self.progress_seq.get(), sources.clone());
        if self.job.cluster {
            self.outbox.borrow_mut().push(Control::Progress {
                worker: self.index,
                seq: self.progress_seq.get(),
                sources,
            });
        }
    }
    /// Whether metrics are collected (operators then register themselves and probe their
    /// outputs).
    pub fn metrics_on(&self) -> bool {
        self.watcher.is_some()
    }
    /// With metrics on: registers the Tidal operator `meta`, of kind `kind`, built from the timely
    /// identifiers in `ids`, whose output `probe` follows (for its watermark).
    pub(crate) fn watch_operator(
        &self,
        meta: &Rc<OperatorMeta>,
        kind: &str,
        ids: (usize, usize),
        probe: Option<timely::dataflow::ProbeHandle<Time>>,
    ) {
        if let Some(w) = &self.watcher {
            w.watch(meta, kind, ids, probe);
        }
    }
    /// The states registered on this worker: operator name and number of keys.
    pub fn state_keys(&self) -> Vec<(String, usize)> {
        let states = self.states.borrow();
        states
            .iter()
            .zip(state_names(&states))
            .map(|(e, name)| (name, e.state.key_count()))
            .collect()
    }
    /// A snapshot of every state registered on this worker as of cut `cut`: operator name and
    /// encoded entries.
    pub fn snapshot_states(&self, cut: Time) -> Result<Vec<(String, Vec<u8>)>> {
        let mut parts = Vec::new();
        let states = self.states.borrow();
        for (entry, name) in states.iter().zip(state_names(&states)) {
            let bytes = entry.state.snapshot(&name, cut)?;
            parts.push((name, bytes));
        }
        Ok(parts)
    }
    /// Every registered state's snapshot as of cut `cut` for a checkpoint: what its store changed
    /// since the checkpoint `base` names for it, when it names one and the store can tell, else
    /// whole.
    pub(super) fn take_states(
        &self,
        cut: Time,
        base: &dyn Fn(&str) -> Option<u64>,
    ) -> Result<Vec<(String, Taken)>> {
        let mut parts = Vec::new();
        let states = self.states.borrow();
        for (entry, name) in states.iter().zip(state_names(&states)) {
            let changes = match base(&name) {
                Some(on) => entry
                    .state
                    .changes(&name, cut, on)?
                    .map(|changes| Taken::Changes { base: on, changes }),
                None => None,
            };
            let taken = match changes {
                Some(taken) => taken,
                None => Taken::Whole(entry.state.snapshot(&name, cut)?),
            };
            parts.push((name, taken));
        }
        Ok(parts)
    }
    /// Tells every registered state that checkpoint `id` is complete.
    pub(super) fn checkpoint_complete(&self, id: u64) -> Result<()> {
        let states = self.states.borrow();
        for (entry, name) in states.iter().zip(state_names(&states)) {
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
    pub(super) scope: Scope<'s, Time>,
    pub(super) ctx: Rc<WorkerContext>,
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
