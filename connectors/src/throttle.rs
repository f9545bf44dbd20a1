//! Rate limits for sources: at most so many records per second over the whole job.

use std::time::{Duration, Instant};

/// Paces one source instance at `per_instance` records per second (its share of the job's rate).
#[derive(Debug, Clone)]
pub(crate) struct Throttle {
    per_instance: f64,
    started: Option<Instant>,
    made: u64,
}

impl Throttle {
    /// A throttle for one of `instances` instances sharing `per_second` records per second.
    pub(crate) fn new(per_second: f64, instances: usize) -> Self {
        Throttle {
            per_instance: per_second / instances.max(1) as f64,
            started: None,
            made: 0,
        }
    }
    /// How many records may be made now (at most `max`), or how long to wait before the next.
    pub(crate) fn allowed(&mut self, max: usize) -> Result<usize, Duration> {
        let started = *self.started.get_or_insert_with(Instant::now);
        let elapsed = started.elapsed().as_secs_f64();
        let due = (elapsed * self.per_instance) as u64 + 1;
        if due <= self.made {
            let next_at = self.made as f64 / self.per_instance;
            return Err(Duration::from_secs_f64(
                (next_at - elapsed).clamp(0.0005, 1.0),
            ));
        }
        Ok(((due - self.made) as usize).min(max))
    }
    /// Counts records made.
    pub(crate) fn made(&mut self, n: usize) {
        self.made += n as u64;
    }
}
