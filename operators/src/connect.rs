//! Connected keyed streams: two inputs keyed the same way, one function with shared keyed state and
//! timers (Flink's `connect(...).process(KeyedCoProcessFunction)`).
//!
//! The two inputs are merged into one keyed stream of [`Either`] values and handled by the keyed
//! process operator, so the watermark is the minimum of both inputs' and everything the process
//! operator guarantees (time order, timers, state registration) holds for both.

use serde::{Deserialize, Serialize};
use tidal_engine::{DataStream, Time};

use crate::function::RuntimeContext;
use crate::keyed::{Key, KeyedStream, Value};
use crate::process::{KeyedProcessFunction, ProcessContext, TimeDomain};
use crate::transform::{KeyedPairs, Transform};
use crate::window::OutputTag;

/// A value from the first or the second input of connected streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Either<A, B> {
    /// From the first input.
    First(A),
    /// From the second input.
    Second(B),
}

/// A function over two keyed inputs with shared per-key state and timers.
///
/// ```
/// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
/// use tidal_operators::{KeyedCoProcessFunction, ProcessContext};
///
/// /// Pairs each order with its payment, whichever comes first.
/// struct Pair;
/// impl KeyedCoProcessFunction<u32, String, f64> for Pair {
///     type State = (Option<String>, Option<f64>);
///     type Out = (u32, String, f64);
///     type Side = ();
///     fn process_first(&mut self, order: String, ctx: &mut ProcessContext<'_, u32, Self::State, Self::Out, ()>) {
///         match ctx.state().1.take() {
///             Some(paid) => { let k = *ctx.key(); ctx.output((k, order, paid)); ctx.clear_state(); }
///             None => ctx.state().0 = Some(order),
///         }
///     }
///     fn process_second(&mut self, paid: f64, ctx: &mut ProcessContext<'_, u32, Self::State, Self::Out, ()>) {
///         match ctx.state().0.take() {
///             Some(order) => { let k = *ctx.key(); ctx.output((k, order, paid)); ctx.clear_state(); }
///             None => ctx.state().1 = Some(paid),
///         }
///     }
/// }
///
/// let mut out: Vec<(u32, String, f64)> = tidal_engine::Job::local(2).run(|env| {
///     let orders = env.from_iter(vec![(1u32, "tea".to_string()), (2, "cake".to_string())]).keyed();
///     let payments = env.from_iter(vec![(2u32, 4.5), (1, 2.0)]).keyed();
///     orders.connect(payments).process(Pair).collect()
/// }).unwrap();
/// out.sort_by_key(|r| r.0);
/// assert_eq!(out, vec![(1, "tea".to_string(), 2.0), (2, "cake".to_string(), 4.5)]);
/// ```
pub trait KeyedCoProcessFunction<K, A, B>: 'static {
    /// The per-key state shared by both inputs.
    type State: Default + Serialize + serde::de::DeserializeOwned + 'static;
    /// Records emitted.
    type Out: 'static;
    /// Records emitted to the side output (`()` when none).
    type Side: 'static;
    /// Handles a record of the first input.
    fn process_first(
        &mut self,
        value: A,
        ctx: &mut ProcessContext<'_, K, Self::State, Self::Out, Self::Side>,
    );
    /// Handles a record of the second input.
    fn process_second(
        &mut self,
        value: B,
        ctx: &mut ProcessContext<'_, K, Self::State, Self::Out, Self::Side>,
    );
    /// Handles a timer of the context's key.
    fn on_timer(
        &mut self,
        timestamp: Time,
        domain: TimeDomain,
        ctx: &mut ProcessContext<'_, K, Self::State, Self::Out, Self::Side>,
    ) {
        let _ = (timestamp, domain, ctx);
    }
    /// Sets the function up on one worker, before its first record or timer (after a restore has
    /// loaded the state); an error fails the job. See [`function`](crate::function).
    fn open(&mut self, ctx: &RuntimeContext<'_>) -> tidal_engine::Result<()> {
        let _ = ctx;
        Ok(())
    }
    /// Tears the function down on one worker, after the last record and timer.
    fn close(&mut self) -> tidal_engine::Result<()> {
        Ok(())
    }
}

/// Two keyed streams with the same key type, to be processed together.
pub struct ConnectedStreams<'s, K, A, B> {
    first: KeyedStream<'s, K, A>,
    second: KeyedStream<'s, K, B>,
}

/// What a keyed stream can be connected with: another stream keyed the same way (giving
/// [`ConnectedStreams`]) or a broadcast stream (giving
/// [`BroadcastConnectedStream`](crate::broadcast::BroadcastConnectedStream)).
pub trait Connectable<'s, K, A> {
    /// The connected streams.
    type Connected;
    /// Connects `keyed` (the first input) with this stream.
    fn connect_to(self, keyed: KeyedStream<'s, K, A>) -> Self::Connected;
}

impl<'s, K: Key, A: Value, B: Value> Connectable<'s, K, A> for KeyedStream<'s, K, B> {
    type Connected = ConnectedStreams<'s, K, A, B>;
    fn connect_to(self, keyed: KeyedStream<'s, K, A>) -> Self::Connected {
        ConnectedStreams {
            first: keyed,
            second: self,
        }
    }
}

/// A keyed stream connected with a plain (non-keyed) one, for functions without state: each
/// record is handled on the worker that made it.
pub struct KeyedAndPlainStreams<'s, K, A, B> {
    keyed: KeyedStream<'s, K, A>,
    plain: DataStream<'s, B>,
}

impl<'s, K: Key, A: Value, B: 'static> Connectable<'s, K, A> for DataStream<'s, B> {
    type Connected = KeyedAndPlainStreams<'s, K, A, B>;
    fn connect_to(self, keyed: KeyedStream<'s, K, A>) -> Self::Connected {
        KeyedAndPlainStreams { keyed, plain: self }
    }
}

impl<'s, K: Key, A: Value, B: 'static> KeyedAndPlainStreams<'s, K, A, B> {
    /// Applies `keyed` to the records of the keyed input, with their key, and `plain` to those of
    /// the plain input, each returning any number of records (Flink's `CoFlatMapFunction`).
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// let mut out: Vec<String> = tidal_engine::Job::local(2).run(|env| {
    ///     let orders = env.from_iter(vec![(1u32, 2.5f64), (2, 4.0)]).keyed();
    ///     let notes = env.from_iter(vec!["closing early".to_string()]);
    ///     orders
    ///         .connect(notes)
    ///         .flat_map(|k, amount| Some(format!("{k}: {amount}")), |note| Some(format!("note: {note}")))
    ///         .collect()
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, vec!["1: 2.5", "2: 4", "note: closing early"]);
    /// ```
    pub fn flat_map<O: 'static, I1, I2>(
        self,
        mut keyed: impl FnMut(&K, A) -> I1 + 'static,
        mut plain: impl FnMut(B) -> I2 + 'static,
    ) -> DataStream<'s, O>
    where
        I1: IntoIterator<Item = O>,
        I2: IntoIterator<Item = O>,
    {
        let a = self
            .keyed
            .into_stream()
            .flat_map(move |(k, a)| keyed(&k, a).into_iter().collect::<Vec<_>>());
        let b = self
            .plain
            .flat_map(move |b| plain(b).into_iter().collect::<Vec<_>>());
        a.union(b)
    }
}

impl<'s, K: Key, A: Value> KeyedStream<'s, K, A> {
    /// Connects this keyed stream with another keyed the same way, a plain stream, or a broadcast stream
    /// ([`Partition::broadcast_state`](crate::Partition::broadcast_state)).
    pub fn connect<C: Connectable<'s, K, A>>(self, other: C) -> C::Connected {
        other.connect_to(self)
    }
}

struct Adapter<F>(F);

impl<K: Key, A: Value, B: Value, F: KeyedCoProcessFunction<K, A, B>>
    KeyedProcessFunction<K, Either<A, B>> for Adapter<F>
{
    type State = F::State;
    type Out = F::Out;
    type Side = F::Side;
    fn process_element(
        &mut self,
        value: Either<A, B>,
        ctx: &mut ProcessContext<'_, K, F::State, F::Out, F::Side>,
    ) {
        match value {
            Either::First(a) => self.0.process_first(a, ctx),
            Either::Second(b) => self.0.process_second(b, ctx),
        }
    }
    fn on_timer(
        &mut self,
        timestamp: Time,
        domain: TimeDomain,
        ctx: &mut ProcessContext<'_, K, F::State, F::Out, F::Side>,
    ) {
        self.0.on_timer(timestamp, domain, ctx)
    }
    fn open(&mut self, ctx: &RuntimeContext<'_>) -> tidal_engine::Result<()> {
        self.0.open(ctx)
    }
    fn close(&mut self) -> tidal_engine::Result<()> {
        self.0.close()
    }
}

impl<'s, K: Key, A: Value, B: Value> ConnectedStreams<'s, K, A, B> {
    /// Both inputs as one stream of `(key, Either)` pairs.
    pub(crate) fn into_either(self) -> DataStream<'s, (K, Either<A, B>)> {
        let first: DataStream<'s, (K, Either<A, B>)> =
            self.first.into_stream().map(|(k, a)| (k, Either::First(a)));
        let second = self
            .second
            .into_stream()
            .map(|(k, b)| (k, Either::Second(b)));
        first.union(second)
    }
    /// Both inputs as one keyed stream, keeping a time to live set on either
    /// ([`with_state_ttl`](KeyedStream::with_state_ttl)): the shared state expires as it says.
    fn merged(self) -> KeyedStream<'s, K, Either<A, B>> {
        let ttl = self.first.state_ttl.or(self.second.state_ttl);
        let mut merged = self.into_either().keyed();
        merged.state_ttl = ttl;
        merged
    }
    /// Applies a co-process function with shared keyed state and timers.
    pub fn process<F: KeyedCoProcessFunction<K, A, B>>(
        self,
        function: F,
    ) -> DataStream<'s, F::Out> {
        self.merged().process(Adapter(function))
    }
    /// Like [`process`](ConnectedStreams::process), with the side output going to `tag`.
    pub fn process_with_side_output<F: KeyedCoProcessFunction<K, A, B>>(
        self,
        function: F,
        tag: &OutputTag<'s, F::Side>,
    ) -> DataStream<'s, F::Out> {
        self.merged()
            .process_with_side_output(Adapter(function), tag)
    }
    /// Applies `first` to records of the first input and `second` to those of the second, each
    /// returning any number of records (Flink's `CoFlatMapFunction`, without state).
    pub fn flat_map<O: 'static, I1, I2>(
        self,
        mut first: impl FnMut(&K, A) -> I1 + 'static,
        mut second: impl FnMut(&K, B) -> I2 + 'static,
    ) -> DataStream<'s, O>
    where
        I1: IntoIterator<Item = O>,
        I2: IntoIterator<Item = O>,
    {
        let a = self
            .first
            .into_stream()
            .flat_map(move |(k, a)| first(&k, a).into_iter().collect::<Vec<_>>());
        let b = self
            .second
            .into_stream()
            .flat_map(move |(k, b)| second(&k, b).into_iter().collect::<Vec<_>>());
        a.union(b)
    }
}
