//! Time: what timely's timestamps mean in Tidal.
//!
//! Every Tidal dataflow is timestamped with [`Time`], an `i64` in milliseconds since the Unix epoch.
//! A source holds a timely capability at its current *watermark* and downgrades it in coarse ticks,
//! so an operator's input frontier is the minimum watermark of every source instance upstream of it,
//! and a frontier that becomes empty is the final watermark at +infinity.
//!
//! Sources without event time use ingestion time: the watermark is the wall clock, closed every
//! tick (`--tick`, 200 ms by default). Records carry no per-record timely time of their own; each
//! batch travels at its tick, so progress tracking costs one update per tick, not per record.

pub mod watermark;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A timely timestamp: milliseconds since the Unix epoch (a watermark, or an ingestion tick).
pub type Time = i64;

/// Milliseconds since the Unix epoch, now.
///
/// ```
/// assert!(tidal_engine::now_millis() > 1_600_000_000_000);
/// ```
pub fn now_millis() -> Time {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Time)
        .unwrap_or(0)
}

/// Closes ticks of processing time: the start of the tick that contains the current instant.
///
/// ```
/// use std::time::Duration;
/// let clock = tidal_engine::TickClock::new(Duration::from_millis(200));
/// let t = clock.current();
/// assert_eq!(t % 200, 0);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TickClock {
    interval: Time,
}

impl TickClock {
    /// A clock closing a tick every `interval` (at least 1 ms).
    pub fn new(interval: Duration) -> Self {
        TickClock {
            interval: (interval.as_millis() as Time).max(1),
        }
    }
    /// The start of the current tick.
    pub fn current(&self) -> Time {
        let now = now_millis();
        now - now.rem_euclid(self.interval)
    }
}

/// The job's processing-time clock: the system clock, or a manual one that tests move.
///
/// ```
/// let clock = tidal_engine::ManualClock::new(1_000);
/// let job_clock = tidal_engine::JobClock::manual(&clock);
/// clock.advance(std::time::Duration::from_millis(500));
/// assert_eq!(job_clock.now(), 1_500);
/// ```
#[derive(Debug, Clone, Default)]
pub struct JobClock(Option<std::sync::Arc<std::sync::atomic::AtomicI64>>);

impl JobClock {
    /// The system clock.
    pub fn system() -> Self {
        JobClock(None)
    }
    /// A clock that reads `clock`.
    pub fn manual(clock: &ManualClock) -> Self {
        JobClock(Some(std::sync::Arc::clone(&clock.0)))
    }
    /// Processing time now, in ms since the epoch.
    pub fn now(&self) -> Time {
        match &self.0 {
            None => now_millis(),
            Some(t) => t.load(std::sync::atomic::Ordering::SeqCst),
        }
    }
}

/// A processing-time clock moved by hand (for tests of processing-time timers).
#[derive(Debug, Clone)]
pub struct ManualClock(std::sync::Arc<std::sync::atomic::AtomicI64>);

impl ManualClock {
    /// A clock showing `at` (ms since the epoch).
    pub fn new(at: Time) -> Self {
        ManualClock(std::sync::Arc::new(std::sync::atomic::AtomicI64::new(at)))
    }
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0
            .fetch_add(by.as_millis() as Time, std::sync::atomic::Ordering::SeqCst);
    }
    /// Sets the clock.
    pub fn set(&self, at: Time) {
        self.0.store(at, std::sync::atomic::Ordering::SeqCst);
    }
    /// What the clock shows.
    pub fn now(&self) -> Time {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}
