//! Windows over a whole (non-keyed) stream.

use tidal_engine::DataStream;

use crate::keyed::Value;
use crate::window::{WindowedStream, Windows};

/// Windows over a whole (non-keyed) stream.
pub trait WindowAll<'s, T> {
    /// Cuts the whole stream into event-time windows (Flink's `windowAll`): all records of a window
    /// meet on one worker.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use std::time::Duration;
    /// use tidal_engine::WatermarkStrategy;
    /// let out: Vec<((), i64)> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter_with(vec![1i64, 5, 12], WatermarkStrategy::monotonous().with_timestamps(|t| *t))
    ///         .window_all(Windows::tumbling(Duration::from_millis(10)))
    ///         .reduce(|a, b| *a = (*a).max(b))
    ///         .collect()
    /// }).unwrap();
    /// let mut maxima: Vec<i64> = out.into_iter().map(|(_, m)| m).collect();
    /// maxima.sort();
    /// assert_eq!(maxima, vec![5, 12]);
    /// ```
    fn window_all(self, windows: Windows) -> WindowedStream<'s, (), T>;
}

impl<'s, T: Value> WindowAll<'s, T> for DataStream<'s, T> {
    fn window_all(self, windows: Windows) -> WindowedStream<'s, (), T> {
        use crate::transform::Transform;
        self.key_by(|_| ()).window(windows)
    }
}
