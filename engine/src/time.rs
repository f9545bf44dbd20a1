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
