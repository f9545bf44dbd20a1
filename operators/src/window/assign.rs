//! Which windows a record belongs to: [`Window`] and the assigners of [`Windows`].

use std::time::Duration;

use tidal_engine::Time;

/// A window: the timestamps `start <= t < end`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Window {
    /// First timestamp in the window.
    pub start: Time,
    /// First timestamp after the window.
    pub end: Time,
}

impl Window {
    /// The last timestamp in the window, which is also the timestamp of its results.
    ///
    /// ```
    /// let w = tidal_operators::Window { start: 0, end: 10 };
    /// assert_eq!(w.max_timestamp(), 9);
    /// ```
    pub fn max_timestamp(&self) -> Time {
        self.end - 1
    }
}

/// Which windows a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Windows {
    /// One window per key holding all its records, which never ends (Flink's `GlobalWindows`): it
    /// emits only when a trigger says so ([`WindowedStream::with_trigger`](crate::WindowedStream::with_trigger),
    /// or [`Trigger::Count`](crate::Trigger::Count)); without one it emits nothing.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use tidal_operators::window::CountTrigger;
    /// // Per key, the sum of every 3 values (a count window).
    /// let mut out: Vec<(char, u32)> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter(vec![('a', 1u32), ('a', 2), ('a', 3), ('a', 4), ('b', 5)])
    ///         .keyed()
    ///         .window(Windows::Global)
    ///         .with_trigger(tidal_operators::window::PurgingTrigger::of(CountTrigger::of(3)))
    ///         .reduce(|a, b| *a += b)
    ///         .collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![('a', 6)]);
    /// ```
    Global,
    /// Per key, records closer than `gap` ms to each other form one window (a session): each record
    /// opens `[ts, ts + gap)`, and windows of a key that overlap or touch merge.
    Session {
        /// Inactivity gap in ms.
        gap: Time,
    },
    /// Consecutive windows of `size` ms, aligned to `offset`.
    Tumbling {
        /// Window length in ms.
        size: Time,
        /// Shift of the window boundaries from the epoch, in ms.
        offset: Time,
    },
    /// Windows of `size` ms starting every `slide` ms, aligned to `offset`.
    Sliding {
        /// Window length in ms.
        size: Time,
        /// Distance between window starts in ms.
        slide: Time,
        /// Shift of the window boundaries from the epoch, in ms.
        offset: Time,
    },
    /// Windows that grow by `step` ms from a common start until they are `max` ms long, then
    /// start again (Flink SQL's `CUMULATE`): for a day by the hour, `[0:00, 1:00)`,
    /// `[0:00, 2:00)`, ... `[0:00, 24:00)`, each emitted when event time passes its end.
    Cumulating {
        /// How much each window is longer than the one before, in ms.
        step: Time,
        /// The length of the largest window (a whole number of steps), in ms.
        max: Time,
        /// Shift of the window boundaries from the epoch, in ms.
        offset: Time,
    },
}

pub(crate) fn millis(d: Duration) -> Time {
    d.as_millis() as Time
}

impl Windows {
    /// Tumbling windows of `size`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidal_operators::{Window, Windows};
    /// let w = Windows::tumbling(Duration::from_secs(10));
    /// assert_eq!(w.windows_of(12_345), vec![Window { start: 10_000, end: 20_000 }]);
    /// ```
    pub fn tumbling(size: Duration) -> Self {
        Windows::Tumbling {
            size: millis(size).max(1),
            offset: 0,
        }
    }
    /// Sliding windows of `size`, a new one every `slide`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidal_operators::{Window, Windows};
    /// let w = Windows::sliding(Duration::from_secs(10), Duration::from_secs(5));
    /// assert_eq!(w.windows_of(12_000), vec![Window { start: 10_000, end: 20_000 }, Window { start: 5_000, end: 15_000 }]);
    /// ```
    pub fn sliding(size: Duration, slide: Duration) -> Self {
        Windows::Sliding {
            size: millis(size).max(1),
            slide: millis(slide).max(1),
            offset: 0,
        }
    }
    /// Cumulating windows: from each multiple of `max`, windows ending every `step` until the
    /// next multiple (`max` is rounded up to a whole number of steps).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidal_operators::{Window, Windows};
    /// let w = Windows::cumulating(Duration::from_secs(5), Duration::from_secs(15));
    /// assert_eq!(
    ///     w.windows_of(22_000),
    ///     vec![Window { start: 15_000, end: 25_000 }, Window { start: 15_000, end: 30_000 }]
    /// );
    /// ```
    pub fn cumulating(step: Duration, max: Duration) -> Self {
        let step = millis(step).max(1);
        let max = millis(max).max(step);
        Windows::Cumulating {
            step,
            max: (max + step - 1) / step * step,
            offset: 0,
        }
    }
    /// Session windows with an inactivity `gap`.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use std::time::Duration;
    /// use tidal_engine::WatermarkStrategy;
    /// let mut out: Vec<(i64, i64, usize)> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter_with(vec![('u', 1i64), ('u', 4), ('u', 30), ('u', 8)], WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(50)).with_timestamps(|r: &(char, i64)| r.1))
    ///         .keyed()
    ///         .window(Windows::session(Duration::from_millis(10)))
    ///         .process(|_, w: &Window, clicks: &[i64]| (w.start, w.end, clicks.len()))
    ///         .collect()
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![(1, 18, 3), (30, 40, 1)]);
    /// ```
    pub fn session(gap: Duration) -> Self {
        Windows::Session {
            gap: millis(gap).max(1),
        }
    }
    /// Shifts the window boundaries by `offset` (e.g. to align daily windows to a time zone).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidal_operators::{Window, Windows};
    /// let w = Windows::tumbling(Duration::from_secs(10)).with_offset(Duration::from_secs(3));
    /// assert_eq!(w.windows_of(12_345), vec![Window { start: 3_000, end: 13_000 }]);
    /// ```
    pub fn with_offset(self, offset: Duration) -> Self {
        let o = millis(offset);
        match self {
            Windows::Tumbling { size, .. } => Windows::Tumbling {
                size,
                offset: o.rem_euclid(size),
            },
            Windows::Session { gap } => Windows::Session { gap },
            Windows::Global => Windows::Global,
            Windows::Sliding { size, slide, .. } => Windows::Sliding {
                size,
                slide,
                offset: o.rem_euclid(slide),
            },
            Windows::Cumulating { step, max, .. } => Windows::Cumulating {
                step,
                max,
                offset: o.rem_euclid(max),
            },
        }
    }
    /// The windows a record with timestamp `ts` belongs to.
    pub fn windows_of(&self, ts: Time) -> Vec<Window> {
        let mut out = Vec::new();
        self.assign(ts, &mut out);
        out
    }
    /// Appends the windows a record with timestamp `ts` belongs to to `out` (as
    /// [`windows_of`](Self::windows_of), into a buffer the caller reuses).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidal_operators::{Window, Windows};
    /// let mut out = Vec::new();
    /// Windows::sliding(Duration::from_millis(10), Duration::from_millis(5)).assign(12, &mut out);
    /// assert_eq!(out, vec![Window { start: 10, end: 20 }, Window { start: 5, end: 15 }]);
    /// ```
    pub fn assign(&self, ts: Time, out: &mut Vec<Window>) {
        match *self {
            Windows::Global => out.push(Window {
                start: Time::MIN,
                end: Time::MAX,
            }),
            Windows::Session { gap } => out.push(Window {
                start: ts,
                end: ts + gap,
            }),
            Windows::Tumbling { size, offset } => {
                let start = ts - (ts - offset).rem_euclid(size);
                out.push(Window {
                    start,
                    end: start + size,
                });
            }
            Windows::Sliding {
                size,
                slide,
                offset,
            } => {
                let mut start = ts - (ts - offset).rem_euclid(slide);
                while start > ts - size {
                    out.push(Window {
                        start,
                        end: start + size,
                    });
                    start -= slide;
                }
            }
            Windows::Cumulating { step, max, offset } => {
                let start = ts - (ts - offset).rem_euclid(max);
                let first_end = ts - (ts - offset).rem_euclid(step) + step;
                let mut end = first_end;
                while end <= start + max {
                    out.push(Window { start, end });
                    end += step;
                }
            }
        }
    }
}
