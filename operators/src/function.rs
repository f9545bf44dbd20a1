//! User functions with a lifecycle (Flink's rich functions): set up once per worker before the
//! first record, torn down once after the last.
//!
//! Closures stay the way to write most transformations (`map`, `flat_map`, `filter`). A function
//! that needs set-up — a connection, a lookup table loaded from a file, a parameter of the job —
//! is a type implementing [`Lifecycle`] and [`MapFunction`], [`FlatMapFunction`] or
//! [`FilterFunction`], applied with [`RichTransform`]; keyed process functions (and co-process and
//! broadcast process functions) have the same `open` and `close`.
//!
//! **When they are called.** `open` is called on every worker, once, before the function sees
//! its first record, with a [`RuntimeContext`]: the worker's index, the number of workers, the
//! job's parameters (`--param KEY=VALUE`), and whether the job restores a checkpoint (state has
//! been loaded by then). `close` is called once after the last record: when the input ends, or
//! when the job stops or fails first. A job restored from a checkpoint runs in new processes, so
//! `open` is called again there.
//!
//! **Errors.** An error from `open` fails the job, naming the function's type and operator; the
//! function then sees no record. An error from `close` fails the job too (if it is still running).

use std::rc::Rc;

use tidal_engine::{DataStream, Result, Time, WorkerContext, timely};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

/// What a function sees when it opens: where it runs and the job's parameters.
pub struct RuntimeContext<'a> {
    worker: &'a Rc<WorkerContext>,
    operator: &'a str,
}

impl<'a> RuntimeContext<'a> {
    pub(crate) fn new(worker: &'a Rc<WorkerContext>, operator: &'a str) -> Self {
        RuntimeContext { worker, operator }
    }
    /// The worker, for operators built on functions (to report what they drop).
    pub(crate) fn worker(&self) -> &Rc<WorkerContext> {
        self.worker
    }
    /// The index of the worker the function runs on (among all workers of the job).
    pub fn worker_index(&self) -> usize {
        self.worker.index()
    }
    /// Number of workers of the job (all processes).
    pub fn workers(&self) -> usize {
        self.worker.peers()
    }
    /// The index of this worker's process.
    pub fn process(&self) -> usize {
        self.worker.process()
    }
    /// The name of the operator the function runs in.
    pub fn operator_name(&self) -> &str {
        self.operator
    }
    /// The job parameter `key` (`--param KEY=VALUE`).
    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.worker.parameter(key)
    }
    /// Every job parameter, by key.
    pub fn parameters(&self) -> &std::collections::BTreeMap<String, String> {
        self.worker.parameters()
    }
    /// Whether the job restores a checkpoint (the function's state, if any, is loaded already).
    pub fn restored(&self) -> bool {
        self.worker.restored_cut().is_some()
    }
}

/// Set-up and tear-down of a user function; see the [module documentation](self).
///
/// ```
/// use tidal_operators::function::{Lifecycle, RuntimeContext};
/// struct Threshold { limit: f64 }
/// impl Lifecycle for Threshold {
///     fn open(&mut self, ctx: &RuntimeContext<'_>) -> tidal_engine::Result<()> {
///         if let Some(text) = ctx.parameter("limit") {
///             self.limit = text.parse().map_err(|_| {
///                 tidal_engine::Error::config(format!("--param limit={text}: not a number"))
///             })?;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Lifecycle {
    /// Sets the function up on one worker, before its first record.
    fn open(&mut self, ctx: &RuntimeContext<'_>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }
    /// Tears the function down on one worker, after its last record.
    fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A one-to-one function with a lifecycle ([`RichTransform::rich_map`]).
pub trait MapFunction<T>: Lifecycle + 'static {
    /// What it makes of a record.
    type Out: 'static;
    /// Maps one record.
    fn map(&mut self, value: T) -> Self::Out;
}

/// A one-to-many function with a lifecycle ([`RichTransform::rich_flat_map`]).
pub trait FlatMapFunction<T>: Lifecycle + 'static {
    /// What it makes of a record.
    type Out: 'static;
    /// Pushes any number of records made from `value` onto `out`.
    fn flat_map(&mut self, value: T, out: &mut Vec<Self::Out>);
}

/// A predicate with a lifecycle ([`RichTransform::rich_filter`]).
pub trait FilterFunction<T>: Lifecycle + 'static {
    /// Whether to keep the record.
    fn filter(&mut self, value: &T) -> bool;
}

/// Stateless operators with functions that have a lifecycle.
pub trait RichTransform<'s, T: 'static>: Sized {
    /// Applies a [`MapFunction`] to every record.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use tidal_operators::function::{Lifecycle, MapFunction, RichTransform, RuntimeContext};
    ///
    /// /// Adds the job parameter `offset`, read once per worker.
    /// #[derive(Default)]
    /// struct AddOffset { offset: i64 }
    /// impl Lifecycle for AddOffset {
    ///     fn open(&mut self, ctx: &RuntimeContext<'_>) -> tidal_engine::Result<()> {
    ///         self.offset = ctx.parameter("offset").unwrap_or("0").parse().unwrap_or(0);
    ///         Ok(())
    ///     }
    /// }
    /// impl MapFunction<i64> for AddOffset {
    ///     type Out = i64;
    ///     fn map(&mut self, x: i64) -> i64 { x + self.offset }
    /// }
    ///
    /// let mut out: Vec<i64> = tidal_engine::Job::local(2).with_parameter("offset", "100")
    ///     .run(|env| env.from_iter(vec![1i64, 2]).rich_map(AddOffset::default()).collect())
    ///     .unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![101, 102]);
    /// ```
    fn rich_map<F: MapFunction<T>>(self, function: F) -> DataStream<'s, F::Out>;
    /// Applies a [`FlatMapFunction`] to every record and emits what it pushes.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use tidal_operators::function::{FlatMapFunction, Lifecycle, RichTransform};
    /// struct Chars;
    /// impl Lifecycle for Chars {}
    /// impl FlatMapFunction<String> for Chars {
    ///     type Out = char;
    ///     fn flat_map(&mut self, s: String, out: &mut Vec<char>) { out.extend(s.chars()) }
    /// }
    /// let out: Vec<char> = tidal_engine::Job::local(1)
    ///     .run(|env| env.from_iter(vec!["ab".to_string()]).rich_flat_map(Chars).collect())
    ///     .unwrap();
    /// assert_eq!(out, vec!['a', 'b']);
    /// ```
    fn rich_flat_map<F: FlatMapFunction<T>>(self, function: F) -> DataStream<'s, F::Out>;
    /// Keeps the records a [`FilterFunction`] accepts.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use tidal_operators::function::{FilterFunction, Lifecycle, RichTransform};
    /// struct Even;
    /// impl Lifecycle for Even {}
    /// impl FilterFunction<u32> for Even {
    ///     fn filter(&mut self, x: &u32) -> bool { x % 2 == 0 }
    /// }
    /// let out: Vec<u32> = tidal_engine::Job::local(1)
    ///     .run(|env| env.from_iter(1..=6u32).rich_filter(Even).collect())
    ///     .unwrap();
    /// assert_eq!(out, vec![2, 4, 6]);
    /// ```
    fn rich_filter<F: FilterFunction<T>>(self, function: F) -> DataStream<'s, T>;
}

impl<'s, T: 'static> RichTransform<'s, T> for DataStream<'s, T> {
    fn rich_map<F: MapFunction<T>>(self, function: F) -> DataStream<'s, F::Out> {
        with_lifecycle(self, "rich_map", function, |f, value, out| {
            out.push(f.map(value))
        })
    }
    fn rich_flat_map<F: FlatMapFunction<T>>(self, function: F) -> DataStream<'s, F::Out> {
        with_lifecycle(self, "rich_flat_map", function, |f, value, out| {
            f.flat_map(value, out)
        })
    }
    fn rich_filter<F: FilterFunction<T>>(self, function: F) -> DataStream<'s, T> {
        with_lifecycle(self, "rich_filter", function, |f, value, out| {
            if f.filter(&value) {
                out.push(value)
            }
        })
    }
}

/// A stateless operator that opens `function` before its first record, hands each record to
/// `apply`, and closes it after the last.
fn with_lifecycle<'s, T: 'static, O: 'static, F: Lifecycle + 'static>(
    stream: DataStream<'s, T>,
    kind: &str,
    function: F,
    mut apply: impl FnMut(&mut F, T, &mut Vec<O>) + 'static,
) -> DataStream<'s, O> {
    let ctx = Rc::clone(stream.context());
    stream.then(kind, move |input, name| {
        let mut function = Opened::new(function, ctx, name);
        let mut made: Vec<O> = Vec::new();
        input.unary_frontier::<CapacityContainerBuilder<Vec<(O, Time)>>, _, _, _>(
            Pipeline,
            name,
            move |_, _| {
                move |(input, frontier), output| {
                    let open = function.open_once();
                    input.for_each(|message, data| {
                        let Some(f) = open.then_some(&mut function.function) else {
                            // Not opened (its open failed, and so does the job): nothing is made.
                            data.clear();
                            return;
                        };
                        let mut session = output.session(&message);
                        for (value, ts) in data.drain(..) {
                            apply(f, value, &mut made);
                            session.give_iterator(made.drain(..).map(|o| (o, ts)));
                        }
                    });
                    if frontier.is_empty() {
                        function.close_once();
                    }
                }
            },
        )
    })
}

/// Where a function is in its lifecycle on one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    New,
    Open,
    /// Its open failed: it sees no record and is not closed.
    Failed,
    Closed,
}

/// A user function with its lifecycle on one worker: opened once, closed once (when the input
/// ends, or when dropped open because the job stopped or failed first).
pub(crate) struct Opened<F: Lifecycle> {
    pub(crate) function: F,
    stage: Stage,
    ctx: Rc<WorkerContext>,
    operator: String,
}

impl<F: Lifecycle> Opened<F> {
    pub(crate) fn new(function: F, ctx: Rc<WorkerContext>, operator: &str) -> Self {
        Opened {
            function,
            stage: Stage::New,
            ctx,
            operator: operator.to_string(),
        }
    }

    /// Names the operator the function belongs to (for its context and errors), when it is known
    /// only after the function was wrapped.
    pub(crate) fn set_operator(&mut self, operator: &str) {
        self.operator = operator.to_string();
    }

    /// Opens the function if it is not yet; whether it is open.
    pub(crate) fn open_once(&mut self) -> bool {
        if self.stage == Stage::New {
            let context = RuntimeContext::new(&self.ctx, &self.operator);
            match self.function.open(&context) {
                Ok(()) => self.stage = Stage::Open,
                Err(e) => {
                    self.stage = Stage::Failed;
                    self.ctx.fail(e.context(format!(
                        "opening function {} in operator '{}'",
                        std::any::type_name::<F>(),
                        self.operator
                    )));
                }
            }
        }
        self.stage == Stage::Open
    }

    /// Closes the function if it is open.
    pub(crate) fn close_once(&mut self) {
        if self.stage == Stage::Open {
            self.stage = Stage::Closed;
            if let Err(e) = self.function.close() {
                self.ctx.fail(e.context(format!(
                    "closing function {} in operator '{}'",
                    std::any::type_name::<F>(),
                    self.operator
                )));
            }
        }
    }
}

impl<F: Lifecycle> Drop for Opened<F> {
    fn drop(&mut self) {
        self.close_once();
    }
}
