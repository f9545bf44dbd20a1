//! Restart strategies: whether, and after how long, a failed job is started again.
//!
//! The launcher (`tidal run`) starts a job's processes, and when any of them fails it stops the
//! others and asks a [`Restarts`] tracker what to do: restart every process (from the latest
//! checkpoint) after a delay, or give up and exit with the last cause. The strategies are Flink's:
//!
//! - `none`: never restart.
//! - `fixed-delay`: up to `attempts` restarts, each after `delay`.
//! - `exponential-delay`: restart after `initial`, doubling (×`multiplier`) up to `max` with each
//!   failure; the delay goes back to `initial` when the job ran `reset_after` without failing.
//! - `failure-rate`: restart after `delay` unless more than `max_failures` failures happened within
//!   the last `interval`.

use std::time::{Duration, Instant};

/// How a failed job is restarted.
///
/// ```
/// use std::time::Duration;
/// use tidal_engine::cluster::supervise::{RestartStrategy, Restarts};
/// let mut restarts = Restarts::new(RestartStrategy::FixedDelay {
///     attempts: 2,
///     delay: Duration::from_millis(10),
/// });
/// let now = std::time::Instant::now();
/// assert_eq!(restarts.after_failure(now), Some(Duration::from_millis(10)));
/// assert_eq!(restarts.after_failure(now), Some(Duration::from_millis(10)));
/// assert_eq!(restarts.after_failure(now), None); // out of attempts
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum RestartStrategy {
    /// Never restart.
    None,
    /// Up to `attempts` restarts, each after `delay`.
    FixedDelay {
        /// Restarts allowed.
        attempts: u32,
        /// Wait before each restart.
        delay: Duration,
    },
    /// Growing delays, reset after a quiet period.
    ExponentialDelay {
        /// First delay.
        initial: Duration,
        /// Largest delay.
        max: Duration,
        /// Factor between consecutive delays.
        multiplier: f64,
        /// A run this long without failure resets the delay to `initial`.
        reset_after: Duration,
    },
    /// Restart unless failures come too often.
    FailureRate {
        /// Most failures tolerated within `interval`.
        max_failures: u32,
        /// The window failures are counted in.
        interval: Duration,
        /// Wait before each restart.
        delay: Duration,
    },
}

impl RestartStrategy {
    /// A short description for logs.
    pub fn describe(&self) -> String {
        match self {
            RestartStrategy::None => "none".into(),
            RestartStrategy::FixedDelay { attempts, delay } => {
                format!("fixed-delay ({attempts} attempts, {delay:?} apart)")
            }
            RestartStrategy::ExponentialDelay {
                initial,
                max,
                multiplier,
                reset_after,
            } => format!(
                "exponential-delay ({initial:?} ×{multiplier} up to {max:?}, reset after {reset_after:?})"
            ),
            RestartStrategy::FailureRate {
                max_failures,
                interval,
                delay,
            } => format!(
                "failure-rate (at most {max_failures} failures per {interval:?}, {delay:?} apart)"
            ),
        }
    }
}

/// The failures so far, and what the strategy says about the next one.
#[derive(Debug, Clone)]
pub struct Restarts {
    strategy: RestartStrategy,
    restarts: u32,
    failures: Vec<Instant>,
    next_delay: Option<Duration>,
    last_start: Option<Instant>,
}

impl Restarts {
    /// A tracker for `strategy`, with no failure yet.
    pub fn new(strategy: RestartStrategy) -> Self {
        Restarts {
            strategy,
            restarts: 0,
            failures: Vec::new(),
            next_delay: None,
            last_start: None,
        }
    }

    /// Notes that the job was (re)started at `at` (for the exponential strategy's quiet period).
    pub fn started(&mut self, at: Instant) {
        self.last_start = Some(at);
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// A failure at `now`: the delay before restarting, or `None` to give up.
    pub fn after_failure(&mut self, now: Instant) -> Option<Duration> {
        let delay = match &self.strategy {
            RestartStrategy::None => None,
            RestartStrategy::FixedDelay { attempts, delay } => {
                (self.restarts < *attempts).then_some(*delay)
            }
            RestartStrategy::ExponentialDelay {
                initial,
                max,
                multiplier,
                reset_after,
            } => {
                let quiet = self
                    .last_start
                    .is_some_and(|s| now.saturating_duration_since(s) >= *reset_after);
                let delay = match self.next_delay {
                    Some(d) if !quiet => d,
                    _ => *initial,
                };
                self.next_delay = Some(delay.mul_f64(multiplier.max(1.0)).min(*max));
                Some(delay.min(*max))
            }
            RestartStrategy::FailureRate {
                max_failures,
                interval,
                delay,
            } => {
                self.failures.push(now);
                self.failures
                    .retain(|t| now.saturating_duration_since(*t) < *interval);
                (self.failures.len() as u32 <= *max_failures).then_some(*delay)
            }
        };
        if delay.is_some() {
            self.restarts += 1;
        }
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn none_gives_up_at_once() {
        assert_eq!(
            Restarts::new(RestartStrategy::None).after_failure(Instant::now()),
            None
        );
    }

    #[test]
    fn exponential_delays_grow_to_the_maximum_and_reset_after_a_quiet_run() {
        let mut r = Restarts::new(RestartStrategy::ExponentialDelay {
            initial: 10 * MS,
            max: 50 * MS,
            multiplier: 2.0,
            reset_after: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        r.started(t0);
        let delays: Vec<_> = (0..5).map(|_| r.after_failure(t0).unwrap()).collect();
        assert_eq!(delays, vec![10 * MS, 20 * MS, 40 * MS, 50 * MS, 50 * MS]);
        // A run of more than a minute without failure: back to the initial delay.
        r.started(t0);
        assert_eq!(r.after_failure(t0 + Duration::from_secs(61)), Some(10 * MS));
    }

    #[test]
    fn failure_rate_counts_failures_within_the_interval() {
        let mut r = Restarts::new(RestartStrategy::FailureRate {
            max_failures: 2,
            interval: Duration::from_secs(10),
            delay: 5 * MS,
        });
        let t0 = Instant::now();
        assert_eq!(r.after_failure(t0), Some(5 * MS));
        assert_eq!(r.after_failure(t0 + Duration::from_secs(1)), Some(5 * MS));
        // A third failure within 10 s: too many.
        assert_eq!(r.after_failure(t0 + Duration::from_secs(2)), None);
        // Much later, the old failures have left the window.
        let mut r2 = r.clone();
        assert_eq!(r2.after_failure(t0 + Duration::from_secs(30)), Some(5 * MS));
    }
}
