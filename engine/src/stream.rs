//! [`DataStream`]: a typed stream of records on one worker, the handle every operator extends.

use std::rc::Rc;

use timely::dataflow::StreamVec;
use timely::dataflow::operators::Probe;

use crate::operator::OperatorMeta;
use crate::runtime::WorkerContext;
use crate::time::Time;

/// A stream of records of type `T`, as seen by one worker.
///
/// Operators (in `tidal-operators`) and sinks (in `tidal-connectors`) are methods added to it by
/// extension traits; sources (in `tidal-connectors`) create it.
///
/// Every record carries its **event timestamp** (ms since the epoch), as in Flink: assigned by its
/// source (the source's timestamp assigner, or the ingestion time), kept by stateless operators, and
/// read by event-time operators. Underneath is a timely stream of `Vec<(T, Time)>` batches whose
/// timely time is the source's watermark + 1: the earliest event time still to come.
pub struct DataStream<'s, T> {
    inner: StreamVec<'s, Time, (T, Time)>,
    ctx: Rc<WorkerContext>,
    meta: Rc<OperatorMeta>,
}

impl<'s, T: 'static> Clone for DataStream<'s, T>
where
    T: Clone,
{
    fn clone(&self) -> Self {
        DataStream {
            inner: self.inner.clone(),
            ctx: Rc::clone(&self.ctx),
            meta: Rc::clone(&self.meta),
        }
    }
}

impl<'s, T: 'static> DataStream<'s, T> {
    /// Wraps a timely stream produced by an operator called `name`.
    pub fn from_timely(
        inner: StreamVec<'s, Time, (T, Time)>,
        ctx: Rc<WorkerContext>,
        name: impl Into<String>,
    ) -> Self {
        DataStream {
            inner,
            ctx,
            meta: Rc::new(OperatorMeta::new(name, None)),
        }
    }
    /// A stream produced by a new operator `name` downstream of this one, on the same worker.
    pub fn derive<U: 'static>(
        &self,
        inner: StreamVec<'s, Time, (U, Time)>,
        name: impl Into<String>,
    ) -> DataStream<'s, U> {
        DataStream {
            inner,
            ctx: Rc::clone(&self.ctx),
            meta: Rc::new(OperatorMeta::new(name, Some(Rc::clone(&self.meta)))),
        }
    }
    /// The name the job gave (with [`name`](Self::name)) to the operator that makes this stream
    /// or to the nearest one upstream of it — usually the source's — to say in a message where
    /// records come from; `None` when none was named.
    ///
    /// ```
    /// tidal_engine::Job::local(1).run(|env| {
    ///     let numbers = env.source("numbers", tidal_engine_doc::Empty);
    ///     assert_eq!(numbers.named_origin(), None);
    ///     let numbers = numbers.name("my numbers");
    ///     let doubled = numbers.then("double", |s, _| {
    ///         use timely::dataflow::operators::vec::Map;
    ///         s.map(|(n, t)| (n * 2, t))
    ///     });
    ///     assert!(doubled.operator_name().starts_with("double#"));
    ///     assert_eq!(doubled.named_origin().as_deref(), Some("my numbers"));
    /// }).unwrap();
    /// # mod tidal_engine_doc {
    /// #     pub struct Empty;
    /// #     impl tidal_engine::SourceReader for Empty {
    /// #         type Item = u8;
    /// #         fn read(&mut self, _: &mut Vec<u8>, _: usize) -> tidal_engine::Poll { tidal_engine::Poll::Done }
    /// #     }
    /// # }
    /// ```
    pub fn named_origin(&self) -> Option<String> {
        self.meta.named_origin()
    }
    /// Adds an operator of kind `kind` downstream: `build` gets the timely stream and the new
    /// operator's name (`kind#N`) and returns the operator's output. Every Tidal operator is added
    /// this way, so that each gets a name and stays on this worker's context.
    pub fn then<U: 'static>(
        self,
        kind: &str,
        build: impl FnOnce(StreamVec<'s, Time, (T, Time)>, &str) -> StreamVec<'s, Time, (U, Time)>,
    ) -> DataStream<'s, U> {
        let name = self.default_name(kind);
        let states = self.ctx.state_count();
        let first_id = self.inner.scope().worker().peek_identifier();
        let mut inner = build(self.inner, &name);
        let stateful = self.ctx.state_count() > states;
        if stateful && self.ctx.checkpointing() {
            // A stateful operator: checkpoints wait for its output to reach their cut.
            inner = inner.probe_with(&self.ctx.checkpoints.probe);
        }
        // With metrics on, a probe follows the operator's output: its watermark.
        let probe = if self.ctx.metrics_on() {
            let probe = timely::dataflow::ProbeHandle::new();
            inner = inner.probe_with(&probe);
            Some(probe)
        } else {
            None
        };
        let ids = (first_id, inner.scope().worker().peek_identifier());
        let out = DataStream {
            inner,
            ctx: self.ctx,
            meta: Rc::new(OperatorMeta::new(name, Some(self.meta))),
        };
        out.ctx.watch_operator(&out.meta, kind, ids, probe);
        if stateful {
            out.ctx.assign_states(states, &out.meta);
        }
        out
    }
    /// The timely stream underneath: records with their event timestamps.
    pub fn inner(&self) -> &StreamVec<'s, Time, (T, Time)> {
        &self.inner
    }
    /// The timely stream underneath, by value.
    pub fn into_inner(self) -> StreamVec<'s, Time, (T, Time)> {
        self.inner
    }
    /// The worker this stream lives on.
    pub fn context(&self) -> &Rc<WorkerContext> {
        &self.ctx
    }
    /// What Tidal knows of the operator that produced this stream.
    pub(crate) fn meta(&self) -> &Rc<OperatorMeta> {
        &self.meta
    }
    /// The name of the operator that produced this stream.
    pub fn operator_name(&self) -> String {
        self.meta.name()
    }
    /// Names the operator that produced this stream (as Flink's `.name(...)` does). The name is
    /// used in metrics, logs and as the identity of its state.
    ///
    /// ```
    /// tidal_engine::Job::local(1).run(|env| {
    ///     let stream = env.source("numbers", tidal_engine_doc::Empty).name("my numbers");
    ///     assert_eq!(stream.operator_name(), "my numbers");
    /// }).unwrap();
    /// # mod tidal_engine_doc {
    /// #     pub struct Empty;
    /// #     impl tidal_engine::SourceReader for Empty {
    /// #         type Item = u8;
    /// #         fn read(&mut self, _: &mut Vec<u8>, _: usize) -> tidal_engine::Poll { tidal_engine::Poll::Done }
    /// #     }
    /// # }
    /// ```
    pub fn name(self, name: impl Into<String>) -> Self {
        self.meta.rename(name);
        self
    }
    /// A default name for a new operator of kind `kind`: `kind#N`, N unique on this worker.
    pub fn default_name(&self, kind: &str) -> String {
        format!("{kind}#{}", self.ctx.next_operator_id())
    }
}
