//! A windowed stream with a custom trigger or an evictor ([`TriggeredWindows`]).

use std::time::Duration;

use tidal_engine::{DataStream, Time};

use crate::keyed::{Key, KeyedStream, Value};
use crate::window::OutputTag;
use crate::window::assign::millis;
use crate::window::custom::TriggerWindows;
use crate::window::trigger::{Evictor, WindowTrigger};
use crate::window::{Window, Windows};

/// A keyed stream cut into windows with a custom trigger or an evictor (made by
/// [`WindowedStream::with_trigger`](crate::WindowedStream::with_trigger) or
/// [`WindowedStream::evictor`](crate::WindowedStream::evictor)); finish it with a window
/// function. Each record goes to its key's worker (no combining before the exchange); windows
/// with an evictor keep their records, others an accumulator.
pub struct TriggeredWindows<'s, K, V, T> {
    pub(crate) stream: KeyedStream<'s, K, V>,
    pub(crate) windows: Windows,
    pub(crate) lateness: Time,
    pub(crate) late: Option<OutputTag<'s, (K, V)>>,
    pub(crate) processing_time: bool,
    pub(crate) trigger: T,
    pub(crate) evictor: Option<Evictor<V>>,
}

impl<'s, K: Key, V: Value, T: WindowTrigger<V>> TriggeredWindows<'s, K, V, T> {
    /// Replaces the trigger.
    pub fn with_trigger<U: WindowTrigger<V>>(self, trigger: U) -> TriggeredWindows<'s, K, V, U> {
        TriggeredWindows {
            stream: self.stream,
            windows: self.windows,
            lateness: self.lateness,
            late: self.late,
            processing_time: self.processing_time,
            trigger,
            evictor: self.evictor,
        }
    }
    /// Removes records from each window before (or after) its function runs.
    pub fn evictor(mut self, evictor: Evictor<V>) -> Self {
        self.evictor = Some(evictor);
        self
    }
    /// Keeps each window for `lateness` after its end; later records go to the late output.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = millis(lateness);
        self
    }
    /// Sends records that arrive too late for all their windows to `tag`.
    pub fn side_output_late_data(mut self, tag: &OutputTag<'s, (K, V)>) -> Self {
        self.late = Some(tag.clone());
        self
    }
    /// Reduces each window's values with `f`; emits `(key, result)` each time a window fires.
    pub fn reduce(self, f: impl Fn(&mut V, V) + 'static) -> DataStream<'s, (K, V)> {
        self.aggregate_with(|v| v, f, |k: &K, _: &Window, v: &V| (k.clone(), v.clone()))
    }
    /// Aggregates each window with an accumulator (`create`, `add`); emits `(key, acc)` each time
    /// a window fires.
    pub fn aggregate<A: Value>(
        self,
        create: impl Fn(V) -> A + 'static,
        add: impl Fn(&mut A, V) + 'static,
    ) -> DataStream<'s, (K, A)> {
        self.aggregate_with(create, add, |k: &K, _: &Window, a: &A| {
            (k.clone(), a.clone())
        })
    }
    /// Hands a window's values, with its key and bounds, to `f` each time it fires.
    pub fn process<O: 'static>(
        self,
        f: impl Fn(&K, &Window, &[V]) -> O + 'static,
    ) -> DataStream<'s, O> {
        self.aggregate_with(
            |v| vec![v],
            |acc: &mut Vec<V>, v| acc.push(v),
            move |k, w, values: &Vec<V>| f(k, w, values),
        )
    }
    /// [`process`](Self::process) with a window function that has a lifecycle: opened once per
    /// worker before its first window, closed after the operator's last result (see
    /// [`ProcessWindowFunction`](crate::ProcessWindowFunction)).
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use std::time::Duration;
    /// use tidal_engine::WatermarkStrategy;
    /// use tidal_operators::window::Evictor;
    /// // The last two readings of each 10 ms window, counted over the windows a worker fired.
    /// struct LastTwo { fired: u32 }
    /// impl Lifecycle for LastTwo {}
    /// impl ProcessWindowFunction<char, i64> for LastTwo {
    ///     type Out = (u32, Vec<i64>);
    ///     fn process(&mut self, _: &char, _: &Window, values: &[i64]) -> (u32, Vec<i64>) {
    ///         self.fired += 1;
    ///         (self.fired, values.to_vec())
    ///     }
    /// }
    /// let out: Vec<(u32, Vec<i64>)> = tidal_engine::Job::local(1).run(|env| {
    ///     env.from_iter_with(vec![('a', 1i64), ('a', 4), ('a', 7), ('a', 11)], WatermarkStrategy::monotonous().with_timestamps(|r: &(char, i64)| r.1))
    ///         .keyed()
    ///         .window(Windows::tumbling(Duration::from_millis(10)))
    ///         .evictor(Evictor::count(2))
    ///         .process_with(LastTwo { fired: 0 })
    ///         .collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![(1, vec![4, 7]), (2, vec![11])]);
    /// ```
    pub fn process_with<F: crate::ProcessWindowFunction<K, V>>(
        self,
        function: F,
    ) -> DataStream<'s, F::Out> {
        let ctx = std::rc::Rc::clone(self.stream.stream.context());
        crate::window::function::with_window_lifecycle(&ctx, function, |call| {
            self.process(move |k, w, values| call(k, w, values))
        })
    }
    /// Incremental aggregation (`create`, `add`) and a final function with the window's key and
    /// bounds, called each time the window fires. With an evictor, the window's remaining
    /// records are aggregated anew at each firing.
    pub fn aggregate_with<A: Value, O: 'static>(
        self,
        create: impl Fn(V) -> A + 'static,
        add: impl Fn(&mut A, V) + 'static,
        finish: impl Fn(&K, &Window, &A) -> O + 'static,
    ) -> DataStream<'s, O> {
        let function = TriggerWindows {
            types: std::marker::PhantomData,
            report: None,
            windows: self.windows,
            processing_time: self.processing_time,
            trigger: self.trigger,
            evictor: self.evictor,
            lateness: self.lateness,
            keep_late: self.late.is_some(),
            create,
            add,
            finish,
        };
        match &self.late {
            Some(tag) => self.stream.process_with_side_output(function, tag),
            None => self.stream.process(function),
        }
    }
}
