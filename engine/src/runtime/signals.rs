//! Stopping a job: the [`StopHandle`], Ctrl-C / SIGTERM, the savepoint signals (SIGUSR1,
//! SIGUSR2), and the panic hook that keeps a job's own failures quiet.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use crate::error::JobFailure;

use super::worker::JobShared;
use super::{IN_WORKER, LAST_PANIC_AT, lost_peer};

/// Stops a running job cleanly: its sources end, and everything in flight is flushed.
///
/// Clone it into any thread; Ctrl-C and SIGTERM do the same for a job started with [`Job::run`](crate::Job::run).
///
/// It also asks for savepoints (the job needs a savepoint directory, see
/// [`CheckpointConfig::savepoints`](crate::CheckpointConfig::savepoints)), as SIGUSR1 and SIGUSR2 do for a process.
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
    pub(super) fn take_savepoint(&self) -> Option<bool> {
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
pub(super) fn savepoint_signals() -> &'static (Arc<AtomicBool>, Arc<AtomicBool>) {
    static FLAGS: OnceLock<(Arc<AtomicBool>, Arc<AtomicBool>)> = OnceLock::new();
    FLAGS.get_or_init(|| {
        (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        )
    })
}

static ACTIVE: Mutex<Vec<Weak<JobShared>>> = Mutex::new(Vec::new());

pub(super) fn register_active(shared: &Arc<JobShared>) {
    let mut active = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
    active.retain(|w| w.strong_count() > 0);
    active.push(Arc::downgrade(shared));
}

pub(super) fn unregister_active(shared: &Arc<JobShared>) {
    let mut active = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
    active.retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(shared)));
}

/// Workers report their panics themselves (with the location); network threads' panics mean a peer
/// process went away and fail the job. Other threads keep the previous hook.
pub(super) fn install_panic_hook() {
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

pub(super) fn signalled() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// First Ctrl-C / SIGTERM: stop cleanly (sources end, results flush). Second: exit at once (130).
pub(super) fn install_signal_handlers() {
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
