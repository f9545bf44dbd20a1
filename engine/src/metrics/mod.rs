//! Metrics of a running job: per operator and worker, records in and out, time spent and the
//! watermark; per job, checkpoints and uptime; and the [job graph](JobGraph).
//!
//! **Where they come from.** With metrics on (`--metrics-addr`, or [`Job::with_metrics`]), each
//! worker registers a logger for timely's own events before it builds the dataflow: timely logs
//! every operator and channel it builds, every batch of records sent or received on a channel
//! (with its length) and every start and stop of an operator's scheduling. The worker's
//! [`Collector`] sums those per timely operator; [`build`](graph) groups timely operators into
//! Tidal's operators. Each Tidal operator's output frontier is followed by a probe: the frontier
//! is the operator's watermark (event time is timely's time in Tidal). Records out of an
//! operator are counted once per output even when several operators read it.
//!
//! **How they travel.** Once a second each worker turns its counters into a [`WorkerMetrics`]
//! snapshot and sends it on the control plane; every process keeps the latest snapshot of every
//! worker of the job, so process 0 serves the whole job's metrics. Without metrics on, nothing is
//! logged or sent.
//!
//! [`Job::with_metrics`]: crate::Job::with_metrics

pub mod graph;
pub mod prometheus;
pub mod server;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use timely::logging::{StartStop, TimelyEvent};

pub use graph::{GraphNode, JobGraph};

use crate::operator::OperatorMeta;
use crate::time::Time;
use graph::{Registered, TimelyChannel, TimelyOperator};

/// The dashboard: one page, no assets from the network, polling `/api/overview`,
/// `/api/exceptions` and `/api/metrics` once a second. Served by process 0 on `--metrics-addr`
/// and by the launcher on `--web-addr` (with restarts and actions).
pub const DASHBOARD: &str = include_str!("dashboard.html");

/// How often each worker sends its metrics.
pub(crate) const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// One operator's counters on one worker.
///
/// ```
/// use tidal_engine::metrics::OperatorMetrics;
/// let m = OperatorMetrics { node: 0, records_in: 10, records_out: 4, records_sent_to: 10, busy_ns: 1_000, watermark: Some(99) };
/// assert_eq!(m.records_in - m.records_out, 6);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorMetrics {
    /// The operator's node in the [`JobGraph`].
    pub node: usize,
    /// Records it received (all inputs).
    pub records_in: u64,
    /// Records it produced (each output counted once, however many operators read it).
    pub records_out: u64,
    /// Records this worker sent towards the operator (to its instances on every worker):
    /// summed over the job and less the job's [`records_in`](Self::records_in), the records
    /// waiting at the operator's inputs — a backpressure signal.
    pub records_sent_to: u64,
    /// Time spent in the operator's scheduling, in nanoseconds.
    pub busy_ns: u64,
    /// Its watermark: every record it will still produce has a time above this (`None`: it has
    /// finished).
    pub watermark: Option<Time>,
}

/// One worker's metrics at one moment.
///
/// ```
/// use tidal_engine::metrics::{StateMetrics, WorkerMetrics};
/// let count = StateMetrics { name: "count".into(), keys: 12, bytes: Some(96) };
/// let w = WorkerMetrics { worker: 1, process: 0, seq: 3, uptime_ms: 2_000, operators: vec![], states: vec![count] };
/// assert_eq!(w.states[0].keys, 12);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerMetrics {
    /// The worker's index in the job.
    pub worker: usize,
    /// Its process.
    pub process: usize,
    /// Increases with every snapshot the worker sends.
    pub seq: u64,
    /// Since the worker started, in milliseconds.
    pub uptime_ms: u64,
    /// Per operator.
    pub operators: Vec<OperatorMetrics>,
    /// Per registered state.
    pub states: Vec<StateMetrics>,
}

/// One state of one worker: how many keys it holds and how many bytes.
///
/// ```
/// use tidal_engine::metrics::StateMetrics;
/// let s = StateMetrics { name: "count".into(), keys: 2, bytes: None };
/// assert!(s.bytes.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateMetrics {
    /// The state's name (its operator's).
    pub name: String,
    /// Keys it holds.
    pub keys: u64,
    /// The bytes its entries take encoded — what a whole snapshot of it writes — as last
    /// measured ([`KeyedStore::encoded_bytes`](crate::state::KeyedStore::encoded_bytes);
    /// `None`: its store does not say). Measuring encodes the state, so it is done at most every
    /// [`PUBLISH_EVERY`] and, for large states, seldom enough to take about
    /// [`MEASURE_SHARE`] of the worker's time.
    pub bytes: Option<u64>,
}

/// The share of a worker's time that measuring its states' bytes may take.
pub const MEASURE_SHARE: f64 = 0.01;

/// Checkpoints of the job as process 0 has seen them.
///
/// ```
/// let c = tidal_engine::metrics::CheckpointMetrics::default();
/// assert_eq!(c.completed, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMetrics {
    /// Checkpoints and savepoints completed.
    pub completed: u64,
    /// Checkpoints abandoned or failed.
    pub failed: u64,
    /// The most recent completed ones, oldest first (at most [`CHECKPOINT_HISTORY`]).
    pub history: Vec<CheckpointRecord>,
}

/// How many completed checkpoints [`CheckpointMetrics::history`] keeps.
pub const CHECKPOINT_HISTORY: usize = 50;

/// A completed checkpoint or savepoint.
///
/// ```
/// use tidal_engine::metrics::CheckpointRecord;
/// let r = CheckpointRecord { id: 3, bytes: 512, duration_ms: 12, completed_ms: 0, savepoint: false, path: "chk/chk-000000003".into() };
/// assert!(!r.savepoint);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRecord {
    /// Its id.
    pub id: u64,
    /// Bytes of its parts.
    pub bytes: u64,
    /// From its start to its completion.
    pub duration_ms: u64,
    /// When it completed (ms since the epoch).
    pub completed_ms: i64,
    /// Whether it is a savepoint.
    pub savepoint: bool,
    /// Where it is (restore it with `--restore PATH`).
    pub path: String,
}

impl CheckpointMetrics {
    /// The last completed checkpoint or savepoint.
    pub fn last(&self) -> Option<&CheckpointRecord> {
        self.history.last()
    }
}

/// What this process knows of the job's metrics (the latest snapshot of every worker, the
/// graph, checkpoints).
#[derive(Debug, Default)]
pub struct JobMetrics {
    /// The latest snapshot of each worker, by worker index.
    pub workers: BTreeMap<usize, WorkerMetrics>,
    /// The job graph (set once a worker has built it).
    pub graph: Option<JobGraph>,
    /// Checkpoints.
    pub checkpoints: CheckpointMetrics,
    /// When the job started in this process.
    pub started: Option<Instant>,
    /// Restarts of the job before this run (from `tidal run`, `TIDAL_RESTARTS`).
    pub restarts: u64,
}

/// The process's [`JobMetrics`], shared by its workers and its HTTP server.
pub type SharedMetrics = std::sync::Arc<Mutex<JobMetrics>>;

impl JobMetrics {
    /// Counts a completed checkpoint (completed at `at_ms`, ms since the epoch).
    pub(crate) fn checkpoint_completed(&mut self, c: &crate::CompletedCheckpoint, at_ms: i64) {
        let history = &mut self.checkpoints;
        history.completed += 1;
        history.history.push(CheckpointRecord {
            id: c.id,
            bytes: c.bytes,
            duration_ms: c.duration_ms,
            completed_ms: at_ms,
            savepoint: c.savepoint,
            path: c.location.to_string(),
        });
        if history.history.len() > CHECKPOINT_HISTORY {
            history.history.remove(0);
        }
    }

    /// The overview the dashboard shows at its top, as process 0 sees the job (the launcher's
    /// has its restarts and process ids too).
    pub fn overview_json(&self) -> serde_json::Value {
        let processes: std::collections::BTreeSet<usize> =
            self.workers.values().map(|w| w.process).collect();
        let uptime = self.started.map_or(0, |s| s.elapsed().as_millis() as u64);
        serde_json::json!({
            "state": "RUNNING",
            "processes": processes.len(),
            "workers": self.workers.len(),
            "pids": [],
            "uptime_ms": uptime,
            "attempt_uptime_ms": uptime,
            "restarts": self.restarts,
            "actions": false,
        })
    }

    /// Everything as JSON for the REST API and the dashboard: uptime, restarts, the graph, every
    /// worker's latest metrics and the checkpoints.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "uptime_ms": self.started.map_or(0, |s| s.elapsed().as_millis() as u64),
            "restarts": self.restarts,
            "now_ms": crate::time::now_millis(),
            "graph": self.graph.clone().unwrap_or_default(),
            "workers": self.workers.values().collect::<Vec<_>>(),
            "checkpoints": self.checkpoints,
        })
    }

    /// Records a worker's snapshot unless a later one of that worker is already there.
    pub(crate) fn record(&mut self, snapshot: WorkerMetrics) {
        match self.workers.get(&snapshot.worker) {
            Some(have) if have.seq >= snapshot.seq => {}
            _ => {
                self.workers.insert(snapshot.worker, snapshot);
            }
        }
    }
}

/// One worker's counters, fed by timely's log (see the [module docs](self)).
#[derive(Default)]
pub(crate) struct Collector {
    operators: BTreeMap<usize, TimelyOperator>,
    channels: BTreeMap<usize, TimelyChannel>,
    /// Records sent and received per channel.
    sent: HashMap<usize, u64>,
    received: HashMap<usize, u64>,
    /// Scheduling time per timely operator, and the start of the current scheduling.
    busy: HashMap<usize, Duration>,
    started: HashMap<usize, Duration>,
}

impl Collector {
    /// Takes a batch of timely's log events.
    pub(crate) fn take(&mut self, events: &[(Duration, TimelyEvent)]) {
        for (at, event) in events {
            match event {
                TimelyEvent::Operates(o) => {
                    self.operators.insert(
                        o.id,
                        TimelyOperator {
                            id: o.id,
                            addr: o.addr.clone(),
                            name: o.name.clone(),
                        },
                    );
                }
                TimelyEvent::Channels(c) => {
                    self.channels.insert(
                        c.id,
                        TimelyChannel {
                            scope: c.scope_addr.clone(),
                            source: c.source,
                            target: c.target,
                        },
                    );
                }
                TimelyEvent::Messages(m) => {
                    let count = u64::try_from(m.record_count).unwrap_or(0);
                    let side = if m.is_send {
                        &mut self.sent
                    } else {
                        &mut self.received
                    };
                    *side.entry(m.channel).or_insert(0) += count;
                }
                TimelyEvent::Schedule(s) => match s.start_stop {
                    StartStop::Start => {
                        self.started.insert(s.id, *at);
                    }
                    StartStop::Stop => {
                        if let Some(start) = self.started.remove(&s.id) {
                            *self.busy.entry(s.id).or_default() += at.saturating_sub(start);
                        }
                    }
                },
                _ => {}
            }
        }
    }

    /// The job graph of dataflow `dataflow`, given the Tidal operators registered while it was
    /// built.
    pub(crate) fn graph(
        &self,
        dataflow: usize,
        registered: &[Registered],
        workers: usize,
    ) -> graph::Built {
        graph::build(
            dataflow,
            &self.operators,
            &self.channels,
            registered,
            workers,
        )
    }

    /// Per node of the graph: records in and out and time spent, from the counters. `probed`:
    /// the nodes whose last timely operator is the probe metrics put on their output.
    pub(crate) fn per_node(
        &self,
        dataflow: usize,
        node_of_id: &BTreeMap<usize, usize>,
        nodes: usize,
        probed: &std::collections::HashSet<usize>,
    ) -> Vec<OperatorMetrics> {
        let mut out: Vec<OperatorMetrics> = (0..nodes)
            .map(|node| OperatorMetrics {
                node,
                ..OperatorMetrics::default()
            })
            .collect();
        // Operator index in the dataflow's scope -> node.
        let mut node_of_index: HashMap<usize, usize> = HashMap::new();
        for op in self.operators.values() {
            if op.addr.len() >= 2
                && op.addr[0] == dataflow
                && let Some(node) = node_of_id.get(&self.top_level_id(op))
            {
                if op.addr.len() == 2 {
                    node_of_index.insert(op.addr[1], *node);
                }
                let busy = self.busy.get(&op.id).copied().unwrap_or_default();
                out[*node].busy_ns += busy.as_nanos() as u64;
            }
        }
        // A probed node's output is what its probe (its last operator) received.
        let mut probe_index: HashMap<usize, usize> = HashMap::new();
        for op in self.operators.values() {
            if op.addr.len() == 2
                && op.addr[0] == dataflow
                && let Some(node) = node_of_id.get(&op.id)
                && probed.contains(node)
            {
                let last = probe_index.entry(*node).or_insert(op.addr[1]);
                *last = (*last).max(op.addr[1]);
            }
        }
        let probes: HashMap<usize, usize> = probe_index.iter().map(|(n, i)| (*i, *n)).collect();
        // Records out: for a probed node, what its probe received; for others, per output port
        // the most any one channel from it carried (each channel from a port carries all its
        // records). Records in: what every channel into the operator from another delivered.
        let mut port_out: HashMap<(usize, usize), u64> = HashMap::new();
        for (id, ch) in &self.channels {
            if ch.scope.as_slice() != [dataflow] {
                continue;
            }
            let (from, to) = (
                node_of_index.get(&ch.source.0),
                node_of_index.get(&ch.target.0),
            );
            if let Some(node) = probes.get(&ch.target.0) {
                out[*node].records_out += self.received.get(id).copied().unwrap_or(0);
            }
            if let (Some(from), Some(to)) = (from, to)
                && from == to
            {
                continue;
            }
            if from.is_some_and(|n| !probed.contains(n)) {
                let sent = self.sent.get(id).copied().unwrap_or(0);
                let port = port_out.entry(ch.source).or_insert(0);
                *port = (*port).max(sent);
            }
            if let Some(to) = to {
                out[*to].records_in += self.received.get(id).copied().unwrap_or(0);
                out[*to].records_sent_to += self.sent.get(id).copied().unwrap_or(0);
            }
        }
        for ((index, _), n) in port_out {
            if let Some(node) = node_of_index.get(&index) {
                out[*node].records_out += n;
            }
        }
        out
    }

    /// The id of the top-level operator of the dataflow that holds `op` (itself when it is
    /// top-level).
    fn top_level_id(&self, op: &TimelyOperator) -> usize {
        if op.addr.len() == 2 {
            return op.id;
        }
        self.operators
            .values()
            .find(|o| o.addr.len() == 2 && o.addr[..] == op.addr[..2])
            .map_or(op.id, |o| o.id)
    }
}

/// A Tidal operator built with metrics on: its registration and the probe on its output.
pub(crate) struct Watched {
    pub(crate) meta: Rc<OperatorMeta>,
    pub(crate) kind: String,
    pub(crate) ids: (usize, usize),
    pub(crate) probe: Option<timely::dataflow::ProbeHandle<Time>>,
}

impl Watched {
    pub(crate) fn registered(&self) -> Registered {
        Registered {
            name: self.meta.name(),
            kind: self.kind.clone(),
            ids: self.ids,
        }
    }
}

/// How `--explain` prints the job graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ExplainFormat {
    /// One line per operator and per stream.
    #[default]
    Text,
    /// Graphviz's DOT language.
    Dot,
}

/// One worker's metrics machinery: the collector fed by timely's log, the Tidal operators
/// registered while the dataflow was built, and when it last published.
pub(crate) struct Watcher {
    pub(crate) collector: Rc<RefCell<Collector>>,
    watched: RefCell<Vec<Watched>>,
    built: RefCell<Option<graph::Built>>,
    seq: Cell<u64>,
    last: Cell<Option<Instant>>,
    started: Instant,
    /// The index of the job's dataflow on the worker.
    pub(crate) dataflow: Cell<usize>,
    /// When the states' bytes are next measured, and per state name the last measure.
    measure_next: Cell<Option<Instant>>,
    measured: RefCell<BTreeMap<String, u64>>,
}

impl Watcher {
    pub(crate) fn new() -> Self {
        Watcher {
            collector: Rc::new(RefCell::new(Collector::default())),
            watched: RefCell::new(Vec::new()),
            built: RefCell::new(None),
            seq: Cell::new(0),
            last: Cell::new(None),
            started: Instant::now(),
            dataflow: Cell::new(0),
            measure_next: Cell::new(None),
            measured: RefCell::new(BTreeMap::new()),
        }
    }

    /// Registers a Tidal operator built from the timely identifiers `ids` (a range), whose output
    /// `probe` follows.
    pub(crate) fn watch(
        &self,
        meta: &Rc<OperatorMeta>,
        kind: &str,
        ids: (usize, usize),
        probe: Option<timely::dataflow::ProbeHandle<Time>>,
    ) {
        self.watched.borrow_mut().push(Watched {
            meta: Rc::clone(meta),
            kind: kind.to_string(),
            ids,
            probe,
        });
    }

    /// The job graph, built on first use (once the dataflow's log has arrived).
    pub(crate) fn graph(&self, workers: usize) -> JobGraph {
        self.ensure_built(workers);
        self.built
            .borrow()
            .as_ref()
            .map(|b| b.graph.clone())
            .unwrap_or_default()
    }

    fn ensure_built(&self, workers: usize) {
        if self.built.borrow().is_some() {
            return;
        }
        let registered: Vec<Registered> = self
            .watched
            .borrow()
            .iter()
            .map(Watched::registered)
            .collect();
        let built = self
            .collector
            .borrow()
            .graph(self.dataflow.get(), &registered, workers);
        *self.built.borrow_mut() = Some(built);
    }

    /// The states' metrics, from `keys` (each state's name and keys) and, when a measure is due
    /// or `force`d, `bytes` (each state's encoded bytes, in the same order); between measures,
    /// the last ones. A measure taking `d` makes the next one due after `d / MEASURE_SHARE` (at
    /// least [`PUBLISH_EVERY`]).
    pub(crate) fn states(
        &self,
        keys: Vec<(String, u64)>,
        force: bool,
        bytes: impl FnOnce() -> Vec<Option<u64>>,
    ) -> Vec<StateMetrics> {
        let now = Instant::now();
        let mut measured = self.measured.borrow_mut();
        if force || self.measure_next.get().is_none_or(|next| now >= next) {
            let all = bytes();
            let took = now.elapsed();
            measured.clear();
            for ((name, _), b) in keys.iter().zip(all) {
                if let Some(b) = b {
                    measured.insert(name.clone(), b);
                }
            }
            let wait = took.div_f64(MEASURE_SHARE).max(PUBLISH_EVERY);
            self.measure_next.set(Some(Instant::now() + wait));
        }
        keys.into_iter()
            .map(|(name, keys)| StateMetrics {
                bytes: measured.get(&name).copied(),
                name,
                keys,
            })
            .collect()
    }

    /// Whether a snapshot is due (every [`PUBLISH_EVERY`]).
    pub(crate) fn due(&self) -> bool {
        self.last.get().is_none_or(|t| t.elapsed() >= PUBLISH_EVERY)
    }

    /// This worker's metrics now.
    pub(crate) fn snapshot(
        &self,
        worker: usize,
        process: usize,
        workers: usize,
        states: Vec<StateMetrics>,
    ) -> WorkerMetrics {
        self.ensure_built(workers);
        self.last.set(Some(Instant::now()));
        self.seq.set(self.seq.get() + 1);
        let built = self.built.borrow();
        let built = built.as_ref().expect("built above");
        let probed: std::collections::HashSet<usize> = self
            .watched
            .borrow()
            .iter()
            .enumerate()
            .filter(|(_, w)| w.probe.is_some())
            .filter_map(|(k, _)| built.node_of_registered.get(&k).copied())
            .collect();
        let mut operators = self.collector.borrow().per_node(
            self.dataflow.get(),
            &built.node_of_id,
            built.graph.nodes.len(),
            &probed,
        );
        for (k, w) in self.watched.borrow().iter().enumerate() {
            if let (Some(node), Some(probe)) = (built.node_of_registered.get(&k), &w.probe) {
                // The frontier is the least time a record may still have: the watermark is
                // just below it.
                operators[*node].watermark =
                    probe.with_frontier(|f| f.first().map(|t| t.saturating_sub(1)));
            }
        }
        WorkerMetrics {
            worker,
            process,
            seq: self.seq.get(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            operators,
            states,
        }
    }
}
