//! [`OutputTag`]: where an operator's side output can be picked up.

use std::cell::RefCell;
use std::rc::Rc;

use tidal_engine::DataStream;

/// A place for a side output, filled when the operator that writes to it is built (Flink's
/// `OutputTag`).
///
/// ```
/// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
/// use std::time::Duration;
/// use tidal_engine::WatermarkStrategy;
/// use tidal_operators::{OutputTag, Windows};
/// // A tick of zero advances the watermark after every record, so lateness is deterministic.
/// let (sums, late): (Vec<(u8, (u8, i64))>, Vec<(u8, (u8, i64))>) = tidal_engine::Job::local(1)
///     .with_tick(Duration::ZERO)
///     .run(|env| {
///         let tag = OutputTag::new();
///         // Timestamps 5, 20, then 3: the window [0, 10) has fired when 3 arrives.
///         let events = env.from_iter_with(vec![(0u8, 5i64), (0, 20), (0, 3)],
///             WatermarkStrategy::monotonous().with_timestamps(|e: &(u8, i64)| e.1));
///         let sums = events.map(|e| (e.0, e)).keyed()
///             .window(Windows::tumbling(Duration::from_millis(10)))
///             .side_output_late_data(&tag)
///             .reduce(|a, b| a.1 += b.1);
///         (sums.collect(), tag.stream().collect())
///     })
///     .unwrap();
/// assert_eq!(sums, vec![(0, (0, 5)), (0, (0, 20))]);
/// assert_eq!(late, vec![(0, (0, 3))]);
/// ```
pub struct OutputTag<'s, T> {
    slot: Rc<RefCell<Option<DataStream<'s, T>>>>,
}

impl<'s, T> Clone for OutputTag<'s, T> {
    fn clone(&self) -> Self {
        OutputTag {
            slot: Rc::clone(&self.slot),
        }
    }
}

impl<'s, T: 'static> Default for OutputTag<'s, T> {
    fn default() -> Self {
        OutputTag {
            slot: Rc::new(RefCell::new(None)),
        }
    }
}

impl<'s, T: 'static> OutputTag<'s, T> {
    /// An empty tag.
    pub fn new() -> Self {
        Self::default()
    }
    /// The side output, once the operator writing to it has been built.
    ///
    /// Taking a side output that no operator writes to is a mistake in the job's definition: the
    /// job fails with a configuration error saying so (see [`try_stream`](Self::try_stream) to
    /// handle it instead).
    pub fn stream(&self) -> DataStream<'s, T> {
        self.try_stream().unwrap_or_else(|e| tidal_engine::fail(e))
    }
    /// The side output, or an error if no operator writes to this tag (or it was taken already).
    ///
    /// ```
    /// use tidal_operators::OutputTag;
    /// tidal_engine::Job::local(1).run(|_env| {
    ///     let tag: OutputTag<'_, u32> = OutputTag::new();
    ///     assert!(tag.try_stream().is_err());
    /// }).unwrap();
    /// ```
    pub fn try_stream(&self) -> tidal_engine::Result<DataStream<'s, T>> {
        self.slot.borrow_mut().take().ok_or_else(|| {
            tidal_engine::Error::config(
                "OutputTag::stream: no operator writes to this tag (build the window before taking its side output), \
                 or the stream was taken already",
            )
        })
    }
    pub(crate) fn fill(&self, stream: DataStream<'s, T>) {
        *self.slot.borrow_mut() = Some(stream);
    }
}
