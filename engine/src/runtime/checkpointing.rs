//! Taking checkpoints while a job runs: the fences, the cut, the parts and the manifest.
//!
//! The protocol and why it is consistent are described in [`checkpoint`](crate::checkpoint).
//! Every worker runs [`WorkerCheckpoints::poll`] after each step of its dataflow; worker 0 also
//! coordinates. Messages travel on the control plane ([`control`](crate::runtime::control)).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use timely::dataflow::ProbeHandle;

use crate::checkpoint::incremental::{Taken, Tracker};

/// Takes every state's snapshot as of a cut, given the checkpoint each state may build on.
pub(crate) type Snapshotter<'a> =
    dyn Fn(Time, &dyn Fn(&str) -> Option<u64>) -> Result<Vec<(String, Taken)>> + 'a;
use crate::checkpoint::{
    self, CheckpointConfig, CheckpointListener, CompletedCheckpoint, Manifest, Part, Restored,
    SourcePosition, StoredPart, WrittenPart, write_manifest, write_part,
};
use crate::error::{Error, ErrorKind, Result};
use crate::operator::OperatorMeta;
use crate::runtime::control::Control;
use crate::time::{Time, now_millis};

/// A source instance as the checkpoints see it.
#[derive(Debug)]
pub(crate) struct SourceSlot {
    /// The name the source was created with, and its operator (renamable).
    created_as: String,
    pub(crate) operator: Option<Rc<OperatorMeta>>,
    /// The instance's capability (`None` once it has ended).
    pub(crate) cap: Option<Time>,
    /// Where the instance stood each time its capability moved: (the new capability, its position
    /// then — before it sent anything at the new capability). Entries below the last cut are
    /// dropped.
    pub(crate) log: std::collections::VecDeque<(Time, PositionResult)>,
    /// The last checkpoint known complete and this instance's position in it, until the source
    /// driver hands it to its reader ([`SourceReader::checkpoint_complete`](crate::SourceReader::checkpoint_complete)).
    pub(crate) completed: Option<(u64, Vec<u8>)>,
}

/// A source position, or why the source cannot give one.
pub(crate) type PositionResult = std::result::Result<SourcePosition, String>;

impl SourceSlot {
    /// Notes that the capability moved to `cap` with the reader at `position`.
    pub(crate) fn moved(&mut self, cap: Time, position: PositionResult) {
        self.cap = Some(cap);
        self.log.push_back((cap, position));
    }
    /// The position at cut `cut`: where the instance stood when its capability first reached the
    /// cut (every record it sent before is below the cut). `None` while it is below the cut.
    pub(crate) fn position_at(&self, cut: Time) -> Option<PositionResult> {
        if self.cap.is_some_and(|c| c < cut) {
            return None;
        }
        match self.log.iter().find(|(at, _)| *at >= cut) {
            Some((_, position)) => Some(position.clone()),
            // Ended below the cut: everything it read was sent below it.
            None => Some(Ok(SourcePosition::Done)),
        }
    }
    /// Forgets the positions no cut after `cut` can need.
    fn forget_before(&mut self, cut: Time) {
        while self.log.len() > 1 && self.log.get(1).is_some_and(|(at, _)| *at <= cut) {
            self.log.pop_front();
        }
    }
    /// The source's identity in checkpoints: its operator's final name.
    pub(crate) fn name(&self) -> String {
        match &self.operator {
            Some(meta) => meta.name(),
            None => self.created_as.clone(),
        }
    }
}

/// One worker's side of checkpointing.
pub(crate) struct WorkerCheckpoints {
    pub(crate) config: Option<Arc<CheckpointConfig>>,
    pub(crate) restored: Option<Arc<Restored>>,
    /// Sources may not move their capability past this time.
    fence: Cell<Time>,
    /// The checkpoint being taken: (id, cut), and whether it is a savepoint.
    cut: Cell<Option<(u64, Time)>>,
    savepoint: Cell<bool>,
    /// The checkpoint whose part this worker has written.
    written: Cell<Option<u64>>,
    pub(crate) sources: RefCell<Vec<Rc<RefCell<SourceSlot>>>>,
    /// Watches the outputs of every stateful operator on this worker.
    pub(crate) probe: ProbeHandle<Time>,
    /// Checkpoint messages received, in order.
    pub(crate) inbox: Rc<RefCell<Vec<Control>>>,
    coordinator: RefCell<Option<Coordinator>>,
    /// What this worker's incremental checkpoints build on.
    tracker: RefCell<Tracker>,
}

impl WorkerCheckpoints {
    pub(crate) fn new(
        config: Option<Arc<CheckpointConfig>>,
        restored: Option<Arc<Restored>>,
        index: usize,
        next_id: u64,
        listeners: Vec<CheckpointListener>,
    ) -> Self {
        let coordinator = (index == 0 && config.is_some()).then(|| Coordinator {
            listeners,
            phase: Phase::Idle {
                since: Instant::now(),
            },
            next_id,
            last_cut: restored.as_ref().map_or(Time::MIN, |r| r.cut),
            failures: 0,
            metrics: None,
        });
        WorkerCheckpoints {
            config,
            restored,
            fence: Cell::new(Time::MAX),
            cut: Cell::new(None),
            savepoint: Cell::new(false),
            written: Cell::new(None),
            sources: RefCell::new(Vec::new()),
            probe: ProbeHandle::new(),
            inbox: Rc::new(RefCell::new(Vec::new())),
            coordinator: RefCell::new(coordinator),
            tracker: RefCell::new(Tracker::default()),
        }
    }

    /// Counts this coordinator's checkpoints into `metrics` (worker 0 only; others have none).
    pub(crate) fn count_into(&self, metrics: crate::metrics::SharedMetrics) {
        if let Some(c) = self.coordinator.borrow_mut().as_mut() {
            c.metrics = Some(metrics);
        }
    }

    /// The time no source capability may pass now.
    pub(crate) fn fence(&self) -> Time {
        self.fence.get()
    }

    /// The pending cut, when a checkpoint waits for a source whose capability is `cap`.
    pub(crate) fn cut_above(&self, cap: Time) -> Option<Time> {
        self.cut.get().map(|(_, cut)| cut).filter(|cut| cap < *cut)
    }

    /// Registers a source instance.
    pub(crate) fn register_source(&self, name: &str) -> Rc<RefCell<SourceSlot>> {
        let slot = Rc::new(RefCell::new(SourceSlot {
            created_as: name.to_string(),
            operator: None,
            cap: Some(Time::MIN),
            log: std::collections::VecDeque::new(),
            completed: None,
        }));
        self.sources.borrow_mut().push(Rc::clone(&slot));
        slot
    }

    /// Handles received messages, writes this worker's part when it can, and (worker 0)
    /// coordinates. `post` sends a message to every worker; `snapshot` encodes every registered
    /// state; `completed` tells every registered state that a checkpoint is complete. An error
    /// fails the job (too many failed checkpoints in a row, or a state's error on completion).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn poll(
        &self,
        worker: usize,
        peers: usize,
        stopping: bool,
        post: &mut dyn FnMut(Control),
        snapshot: &Snapshotter<'_>,
        completed: &dyn Fn(u64) -> Result<()>,
        savepoint_request: &dyn Fn() -> Option<bool>,
        stop_job: &dyn Fn(),
    ) -> Result<()> {
        let Some(config) = self.config.as_ref() else {
            return Ok(());
        };
        let messages: Vec<Control> = std::mem::take(&mut *self.inbox.borrow_mut());
        for message in messages {
            match message {
                Control::CheckpointPrepare { id } => {
                    // Hold every source where this worker's furthest-behind one is, and say
                    // where each source's furthest-behind instance here stands.
                    let sources = self.sources.borrow();
                    let mut least: BTreeMap<String, Time> = BTreeMap::new();
                    for s in sources.iter() {
                        let s = s.borrow();
                        if let Some(cap) = s.cap {
                            let e = least.entry(s.name()).or_insert(cap);
                            *e = (*e).min(cap);
                        }
                    }
                    if let Some(lowest) = least.values().min() {
                        self.fence.set(*lowest);
                    }
                    post(Control::CheckpointFenced {
                        id,
                        worker,
                        at: least.into_iter().collect(),
                        stopping,
                    });
                }
                Control::CheckpointCut { id, cut, savepoint } => {
                    self.fence.set(cut);
                    self.cut.set(Some((id, cut)));
                    self.savepoint.set(savepoint);
                }
                Control::Stop => stop_job(),
                Control::Metrics(_) | Control::Progress { .. } => {}
                Control::CheckpointEnd { id, complete } => {
                    self.tracker.borrow_mut().ended(id, complete);
                    if complete
                        && self.written.get() == Some(id)
                        && let Some((pending, cut)) = self.cut.get()
                        && pending == id
                    {
                        // Each source's position in the completed checkpoint, for its reader.
                        for s in self.sources.borrow().iter() {
                            let mut s = s.borrow_mut();
                            if let Some(Ok(SourcePosition::At { position, .. })) =
                                s.position_at(cut)
                            {
                                s.completed = Some((id, position));
                            }
                        }
                    }
                    if let Some((pending, cut)) = self.cut.get()
                        && pending <= id
                    {
                        self.cut.set(None);
                        for s in self.sources.borrow().iter() {
                            s.borrow_mut().forget_before(cut);
                        }
                    }
                    self.fence.set(Time::MAX);
                    if complete && self.written.get() == Some(id) {
                        completed(id)?;
                    }
                }
                Control::CheckpointFenced {
                    id,
                    worker,
                    at,
                    stopping,
                } => {
                    if let Some(c) = self.coordinator.borrow_mut().as_mut() {
                        c.fenced(id, worker, at, stopping);
                    }
                }
                Control::CheckpointWritten { id, worker, part } => {
                    if let Some(c) = self.coordinator.borrow_mut().as_mut() {
                        c.written(id, worker, part);
                    }
                }
                Control::Watermark { .. } => {}
            }
        }

        // This worker's part, once its stateful operators and sources have reached the cut.
        if let Some((id, cut)) = self.cut.get()
            && self.written.get() != Some(id)
            && !self.probe.less_than(&cut)
        {
            let sources = self.sources.borrow();
            let ready = sources
                .iter()
                .all(|s| s.borrow().position_at(cut).is_some());
            if ready {
                let savepoint = self.savepoint.get();
                let folder = config.folder(id, savepoint);
                let incremental = config.incremental && !savepoint;
                let writing = std::time::Instant::now();
                let part = self
                    .part(id, cut, worker, peers, &sources)
                    .and_then(|part| {
                        let taken = {
                            let tracker = self.tracker.borrow();
                            let base = |name: &str| incremental.then(|| tracker.base_for(name))?;
                            snapshot(cut, &base)?
                        };
                        let mut needs = Vec::new();
                        let stored = if incremental {
                            let (sections, needed) =
                                self.tracker.borrow_mut().sections(id, taken)?;
                            needs = needed;
                            StoredPart::with_sections(part, sections)
                        } else {
                            let mut part = part;
                            for (name, taken) in taken {
                                match taken {
                                    Taken::Whole(bytes) => part.states.push((name, bytes)),
                                    Taken::Changes { .. } => {
                                        return Err(Error::internal(format!(
                                            "state '{name}' wrote changes for a whole checkpoint"
                                        )));
                                    }
                                }
                            }
                            StoredPart::full(part)
                        };
                        let (name, bytes, crc) = write_part(&folder, &stored)?;
                        self.tracker.borrow_mut().written(id, crc);
                        Ok(WrittenPart {
                            name,
                            bytes,
                            crc,
                            needs,
                            took_us: writing.elapsed().as_micros() as u64,
                        })
                    });
                self.written.set(Some(id));
                post(Control::CheckpointWritten {
                    id,
                    worker,
                    part: part.map_err(|e| e.to_string()),
                });
            }
        }

        if let Some(c) = self.coordinator.borrow_mut().as_mut() {
            c.poll(config, peers, stopping, post, savepoint_request)?;
        }
        Ok(())
    }

    fn part(
        &self,
        id: u64,
        cut: Time,
        worker: usize,
        peers: usize,
        sources: &[Rc<RefCell<SourceSlot>>],
    ) -> Result<Part> {
        let mut positions = Vec::with_capacity(sources.len());
        for s in sources {
            let s = s.borrow();
            match s.position_at(cut) {
                Some(Ok(position)) => positions.push((s.name(), position)),
                Some(Err(why)) => return Err(Error::config(why)),
                None => unreachable!("parts are written once every source reached the cut"),
            }
        }
        Ok(Part {
            checkpoint: id,
            cut,
            worker,
            peers,
            sources: positions,
            states: Vec::new(),
        })
    }
}

/// Worker 0's view of the checkpoint in progress.
struct Coordinator {
    /// Told of every checkpoint that completes.
    listeners: Vec<CheckpointListener>,
    phase: Phase,
    next_id: u64,
    last_cut: Time,
    /// Failed checkpoints in a row.
    failures: usize,
    /// Where completed and failed checkpoints are counted, with metrics on.
    metrics: Option<crate::metrics::SharedMetrics>,
}

/// A periodic checkpoint, or a savepoint (and whether the job stops after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Checkpoint,
    Savepoint { stop: bool },
}

impl Kind {
    fn is_savepoint(self) -> bool {
        matches!(self, Kind::Savepoint { .. })
    }
    fn word(self) -> &'static str {
        if self.is_savepoint() {
            "savepoint"
        } else {
            "checkpoint"
        }
    }
}

enum Phase {
    Idle {
        since: Instant,
    },
    Preparing {
        id: u64,
        kind: Kind,
        started: Instant,
        fenced: BTreeMap<usize, Vec<(String, Time)>>,
        /// Some worker was asked to stop before it fenced its sources.
        stopping: bool,
    },
    Writing {
        id: u64,
        kind: Kind,
        cut: Time,
        started: Instant,
        parts: BTreeMap<usize, std::result::Result<WrittenPart, String>>,
    },
}

impl Coordinator {
    fn fenced(&mut self, id: u64, worker: usize, at: Vec<(String, Time)>, stopped: bool) {
        if let Phase::Preparing {
            id: current,
            fenced,
            stopping,
            ..
        } = &mut self.phase
            && *current == id
        {
            fenced.insert(worker, at);
            *stopping |= stopped;
        }
    }

    fn written(&mut self, id: u64, worker: usize, part: std::result::Result<WrittenPart, String>) {
        if let Phase::Writing {
            id: current, parts, ..
        } = &mut self.phase
            && *current == id
        {
            parts.insert(worker, part);
        }
    }

    fn poll(
        &mut self,
        config: &CheckpointConfig,
        peers: usize,
        stopping: bool,
        post: &mut dyn FnMut(Control),
        savepoint_request: &dyn Fn() -> Option<bool>,
    ) -> Result<()> {
        match &mut self.phase {
            Phase::Idle { since } => {
                let kind = match savepoint_request() {
                    Some(stop) if config.savepoint_dir.is_some() => Some(Kind::Savepoint { stop }),
                    Some(_) => {
                        crate::say(format_args!(
                            "tidal: a savepoint was asked for, but the job has no --savepoint-dir"
                        ));
                        None
                    }
                    None => (config.periodic && since.elapsed() >= config.interval)
                        .then_some(Kind::Checkpoint),
                };
                if let Some(kind) = kind
                    && !stopping
                {
                    let id = self.next_id;
                    self.next_id += 1;
                    post(Control::CheckpointPrepare { id });
                    self.phase = Phase::Preparing {
                        id,
                        kind,
                        started: Instant::now(),
                        fenced: BTreeMap::new(),
                        stopping: false,
                    };
                }
            }
            Phase::Preparing {
                id,
                kind,
                started,
                fenced,
                stopping,
            } => {
                let (id, kind) = (*id, *kind);
                if fenced.len() == peers && *stopping {
                    // A source that saw the stop before its worker fenced it may have ended
                    // without reading everything, and the cut would pass over what it had left
                    // (a checkpoint under way when the stop came keeps its sources at the fence).
                    crate::say(format_args!(
                        "tidal: {} {id} not taken: the job is stopping",
                        kind.word()
                    ));
                    self.end(id, false, post);
                } else if fenced.len() == peers {
                    // The cut: just past the furthest-behind instance of each source (the one
                    // that holds back the operators downstream of it), the latest of those.
                    let mut least: BTreeMap<&str, Time> = BTreeMap::new();
                    for (name, cap) in fenced.values().flatten() {
                        let e = least.entry(name.as_str()).or_insert(*cap);
                        *e = (*e).min(*cap);
                    }
                    match least.values().max() {
                        // No source is running any more: the job is ending.
                        None => {
                            if kind.is_savepoint() {
                                crate::say(format_args!(
                                    "tidal: savepoint {id} not taken: the job is ending"
                                ));
                            }
                            self.end(id, false, post)
                        }
                        Some(&at) => {
                            let cut = at.saturating_add(1).max(self.last_cut.saturating_add(1));
                            self.last_cut = cut;
                            post(Control::CheckpointCut {
                                id,
                                cut,
                                savepoint: kind.is_savepoint(),
                            });
                            self.phase = Phase::Writing {
                                id,
                                kind,
                                cut,
                                started: *started,
                                parts: BTreeMap::new(),
                            };
                        }
                    }
                } else if started.elapsed() > config.timeout {
                    let why = "not every worker answered in time".to_string();
                    return self.failed(id, kind, why, config, post);
                }
            }
            Phase::Writing {
                id,
                kind,
                cut,
                started,
                parts,
            } => {
                let (id, kind, cut) = (*id, *kind, *cut);
                if parts.len() == peers {
                    let mut written = Vec::with_capacity(peers);
                    let mut needs = std::collections::BTreeSet::new();
                    let mut error = None;
                    let mut slowest_us = 0;
                    for (worker, part) in std::mem::take(parts) {
                        match part {
                            Ok(p) => {
                                slowest_us = slowest_us.max(p.took_us);
                                needs.extend(p.needs);
                                written.push((p.name, p.bytes, p.crc));
                            }
                            Err(e) => {
                                error.get_or_insert(format!("worker {worker}: {e}"));
                            }
                        }
                    }
                    if let Some(why) = error {
                        return self.failed(id, kind, why, config, post);
                    }
                    let manifest = Manifest {
                        id,
                        cut,
                        created_ms: now_millis(),
                        workers: peers,
                        parts: written,
                        needs: needs.into_iter().collect(),
                    };
                    let folder = config.folder(id, kind.is_savepoint());
                    if let Err(e) = write_manifest(&folder, &manifest) {
                        return self.failed(id, kind, e.to_string(), config, post);
                    }
                    let bytes: u64 = manifest.parts.iter().map(|p| p.1).sum();
                    crate::say(format_args!(
                        "tidal: {} {id} complete at cut {cut}: {} part(s), {bytes} bytes, {} ms (parts taken and written in at most {:.1} ms): {}",
                        kind.word(),
                        manifest.parts.len(),
                        started.elapsed().as_millis(),
                        slowest_us as f64 / 1000.0,
                        folder
                    ));
                    let completed = CompletedCheckpoint {
                        id,
                        cut,
                        location: folder.clone(),
                        savepoint: kind.is_savepoint(),
                        bytes,
                        duration_ms: started.elapsed().as_millis() as u64,
                    };
                    if let Some(m) = &self.metrics {
                        m.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .checkpoint_completed(&completed, manifest.created_ms);
                    }
                    for listener in &self.listeners {
                        listener(&completed);
                    }
                    if !kind.is_savepoint() {
                        if let Err(e) = checkpoint::prune(&config.dir, config.keep, id) {
                            crate::say(format_args!(
                                "tidal: pruning old checkpoints (left for later): {e}"
                            ));
                        }
                        self.failures = 0;
                    }
                    self.last_cut = cut;
                    self.end(id, true, post);
                    if kind == (Kind::Savepoint { stop: true }) {
                        crate::say(format_args!("tidal: stopping the job after savepoint {id}"));
                        post(Control::Stop);
                    }
                } else if started.elapsed() > config.timeout {
                    let why = format!(
                        "not complete after {:?} (a source whose watermark stands still holds the cut back)",
                        config.timeout
                    );
                    return self.failed(id, kind, why, config, post);
                }
            }
        }
        Ok(())
    }

    fn end(&mut self, id: u64, complete: bool, post: &mut dyn FnMut(Control)) {
        post(Control::CheckpointEnd { id, complete });
        self.phase = Phase::Idle {
            since: Instant::now(),
        };
    }

    fn failed(
        &mut self,
        id: u64,
        kind: Kind,
        why: String,
        config: &CheckpointConfig,
        post: &mut dyn FnMut(Control),
    ) -> Result<()> {
        crate::warn(format_args!("tidal: {} {id} failed: {why}", kind.word()));
        if let Some(m) = &self.metrics {
            m.lock()
                .unwrap_or_else(|p| p.into_inner())
                .checkpoints
                .failed += 1;
        }
        self.end(id, false, post);
        if kind.is_savepoint() {
            // A failed savepoint does not count against the job; it keeps running.
            return Ok(());
        }
        self.failures += 1;
        if self.failures > config.tolerable_failures {
            return Err(Error::new(
                ErrorKind::External,
                format!(
                    "{} checkpoints in a row failed (tolerated: {}); the last: {why}",
                    self.failures, config.tolerable_failures
                ),
            ));
        }
        Ok(())
    }
}
