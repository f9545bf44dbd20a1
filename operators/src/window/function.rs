//! Window functions with a lifecycle ([`ProcessWindowFunction`]): opened once per worker before
//! their first window, closed once after the window operator's last result.

use std::cell::RefCell;
use std::rc::Rc;

use tidal_engine::{DataStream, Time, WorkerContext, timely};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use crate::function::{Lifecycle, Opened};
use crate::window::Window;

/// A window function given as an object with a lifecycle — Flink's `ProcessWindowFunction` as a
/// rich function: [`open`](Lifecycle::open) once per worker before it sees its first window
/// (with the worker's index and the job's parameters), [`process`](Self::process) for each window
/// that fires with the window's records in arrival order, [`close`](Lifecycle::close) once after
/// the window operator's last result on that worker. Given to
/// [`WindowedStream::process_with`](crate::WindowedStream::process_with) or
/// [`TriggeredWindows::process_with`](crate::window::TriggeredWindows::process_with). An `open`
/// that fails fails the job naming the function; the windows of that worker are then dropped.
///
/// ```
/// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
/// use std::time::Duration;
/// use tidal_engine::WatermarkStrategy;
/// use tidal_operators::{ProcessWindowFunction, Window, Windows};
/// // Labels each window's sum with a unit read from the job's parameters.
/// struct Label { unit: String }
/// impl Lifecycle for Label {
///     fn open(&mut self, ctx: &RuntimeContext<'_>) -> tidal_engine::Result<()> {
///         self.unit = ctx.parameter("unit").unwrap_or("units").to_string();
///         Ok(())
///     }
/// }
/// impl ProcessWindowFunction<char, i64> for Label {
///     type Out = String;
///     fn process(&mut self, key: &char, window: &Window, values: &[i64]) -> String {
///         format!("{key} [{}, {}): {} {}", window.start, window.end, values.iter().sum::<i64>(), self.unit)
///     }
/// }
/// let out: Vec<String> = tidal_engine::Job::local(1).with_parameter("unit", "ms").run(|env| {
///     env.from_iter_with(vec![('a', 1i64), ('a', 4), ('a', 11)], WatermarkStrategy::monotonous().with_timestamps(|r: &(char, i64)| r.1))
///         .keyed()
///         .window(Windows::tumbling(Duration::from_millis(10)))
///         .process_with(Label { unit: String::new() })
///         .collect()
/// }).unwrap();
/// assert_eq!(out, vec!["a [0, 10): 5 ms", "a [10, 20): 11 ms"]);
/// ```
pub trait ProcessWindowFunction<K, V>: Lifecycle + 'static {
    /// What one window gives.
    type Out: 'static;
    /// The result of a window that fires: its key, bounds and records.
    fn process(&mut self, key: &K, window: &Window, values: &[V]) -> Self::Out;
}

/// Builds a window operator with `function` as its window function (`build` gets the function
/// to call per window: `None` when the function could not be opened), then a pass-through after
/// it that opens the function when first scheduled and closes it when the window operator's
/// output ends.
pub(crate) fn with_window_lifecycle<'s, K, V, F>(
    ctx: &Rc<WorkerContext>,
    function: F,
    build: impl FnOnce(
        Box<dyn Fn(&K, &Window, &[V]) -> Option<F::Out>>,
    ) -> DataStream<'s, Option<F::Out>>,
) -> DataStream<'s, F::Out>
where
    K: 'static,
    V: 'static,
    F: ProcessWindowFunction<K, V>,
{
    let opened = Rc::new(RefCell::new(Opened::new(
        function,
        Rc::clone(ctx),
        "window",
    )));
    let calls = Rc::clone(&opened);
    let windows = build(Box::new(move |k, w, values| {
        let mut f = calls.borrow_mut();
        f.open_once().then(|| f.function.process(k, w, values))
    }));
    let window_name = windows.operator_name();
    opened.borrow_mut().set_operator(&window_name);
    windows.then("window_close", move |input, name| {
        input.unary_frontier::<CapacityContainerBuilder<Vec<(F::Out, Time)>>, _, _, _>(
            Pipeline,
            name,
            move |_, _| {
                move |(input, frontier), output| {
                    opened.borrow_mut().open_once();
                    input.for_each(|message, data| {
                        let mut session = output.session(&message);
                        for (out, ts) in data.drain(..) {
                            if let Some(out) = out {
                                session.give((out, ts));
                            }
                        }
                    });
                    if frontier.is_empty() {
                        opened.borrow_mut().close_once();
                    }
                }
            },
        )
    })
}
