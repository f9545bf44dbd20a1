//! Broadcast state (Flink's broadcast-state pattern): a low-volume stream — rules,
//! configuration, thresholds — sent to every worker, where it updates a map that the records of a
//! keyed stream are handled against.
//!
//! `events.keyed().connect(rules.broadcast_state(&descriptor)).process(f)` applies a
//! [`KeyedBroadcastProcessFunction`]: `process_broadcast_element` sees every record of the
//! broadcast stream on every worker and may change the [`BroadcastState`] map; `process_element`
//! and `on_timer` see the keyed records with their key's state and timers, as a keyed process
//! function does, and may only read the map.
//!
//! **Order.** The operator handles its input in time order as the frontier of both inputs passes
//! (see [`process`](crate::process)): at each time, the event-time timers that are due, then the
//! broadcast records of that time, then the keyed records. Every worker therefore applies the
//! same broadcast records at the same point of its keyed input, and — provided
//! `process_broadcast_element` changes the map the same way wherever it runs (it must not depend
//! on the worker, a clock or randomness) — every worker holds the same map. Which keyed records
//! come before a broadcast record follows the watermarks at which each was read, as in Flink,
//! where it follows arrival; a function whose results must not depend on that keeps rule
//! versions by event time and evaluates a record in an event-time timer at its timestamp (the
//! `fraud_rules` example does).
//!
//! **Checkpoints.** The map is part of the operator's state: worker 0 writes it once per
//! checkpoint (every worker holds the same), and a restore on any number of workers gives every
//! worker the whole map.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::rc::Rc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tidal_engine::state::{EntryWriter, KeyedStore, Owner};
use tidal_engine::{DataStream, JobClock, Result, Time};

use crate::connect::Connectable;
use crate::function::RuntimeContext;
use crate::keyed::{Key, KeyedStream, Value};
use crate::process::operator::BroadcastCall;
use crate::process::{KeyedProcessFunction, ProcessContext, TimeDomain};
use crate::window::OutputTag;

/// What a broadcast map's keys must be: ordered (every worker iterates the map in the same
/// order), hashable, and serde-serialisable for checkpoints.
pub trait MapKey: Ord + Hash + Clone + Serialize + DeserializeOwned + 'static {}
impl<T: Ord + Hash + Clone + Serialize + DeserializeOwned + 'static> MapKey for T {}

/// What a broadcast map's values must be: serde-serialisable for checkpoints.
pub trait MapValue: Serialize + DeserializeOwned + 'static {}
impl<T: Serialize + DeserializeOwned + 'static> MapValue for T {}

/// Names a broadcast map and its key and value types (Flink's `MapStateDescriptor`).
///
/// ```
/// use tidal_operators::broadcast::MapStateDescriptor;
/// let rules: MapStateDescriptor<u32, String> = MapStateDescriptor::new("rules");
/// assert_eq!(rules.name(), "rules");
/// ```
pub struct MapStateDescriptor<MK, MV> {
    name: String,
    types: PhantomData<fn() -> (MK, MV)>,
}

impl<MK, MV> MapStateDescriptor<MK, MV> {
    /// A map called `name` (the name shows in error messages about the map).
    pub fn new(name: impl Into<String>) -> Self {
        MapStateDescriptor {
            name: name.into(),
            types: PhantomData,
        }
    }
    /// The map's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<MK, MV> Clone for MapStateDescriptor<MK, MV> {
    fn clone(&self) -> Self {
        MapStateDescriptor::new(self.name.clone())
    }
}

/// The map every worker keeps from a broadcast stream, ordered by key.
///
/// ```
/// use tidal_operators::broadcast::BroadcastState;
/// let mut limits: BroadcastState<String, f64> = BroadcastState::default();
/// limits.insert("eur".into(), 500.0);
/// limits.insert("usd".into(), 450.0);
/// assert_eq!(limits.get("eur"), Some(&500.0));
/// assert_eq!(limits.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["eur", "usd"]);
/// assert_eq!(limits.remove("usd"), Some(450.0));
/// assert_eq!(limits.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastState<MK, MV> {
    map: BTreeMap<MK, MV>,
}

impl<MK, MV> Default for BroadcastState<MK, MV> {
    fn default() -> Self {
        BroadcastState {
            map: BTreeMap::new(),
        }
    }
}

impl<MK: Ord, MV> BroadcastState<MK, MV> {
    /// The value for `key`.
    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&MV>
    where
        MK: std::borrow::Borrow<Q>,
    {
        self.map.get(key)
    }
    /// The value for `key`, to change it.
    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut MV>
    where
        MK: std::borrow::Borrow<Q>,
    {
        self.map.get_mut(key)
    }
    /// Whether `key` has a value.
    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        MK: std::borrow::Borrow<Q>,
    {
        self.map.contains_key(key)
    }
    /// Sets the value for `key`, returning the old one.
    pub fn insert(&mut self, key: MK, value: MV) -> Option<MV> {
        self.map.insert(key, value)
    }
    /// The entry for `key`, to insert or change it in place.
    pub fn entry(&mut self, key: MK) -> std::collections::btree_map::Entry<'_, MK, MV> {
        self.map.entry(key)
    }
    /// Removes `key`, returning its value.
    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<MV>
    where
        MK: std::borrow::Borrow<Q>,
    {
        self.map.remove(key)
    }
    /// Keeps only the entries for which `keep` returns `true`.
    pub fn retain(&mut self, keep: impl FnMut(&MK, &mut MV) -> bool) {
        self.map.retain(keep)
    }
    /// Removes every entry.
    pub fn clear(&mut self) {
        self.map.clear()
    }
    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&MK, &MV)> {
        self.map.iter()
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// A stream to be broadcast into a map on every worker (made by
/// [`Partition::broadcast_state`](crate::Partition::broadcast_state)); connect a keyed stream
/// with it.
pub struct BroadcastStream<'s, B, MK, MV> {
    stream: DataStream<'s, B>,
    descriptor: MapStateDescriptor<MK, MV>,
}

impl<'s, B, MK, MV> BroadcastStream<'s, B, MK, MV> {
    pub(crate) fn new(stream: DataStream<'s, B>, descriptor: &MapStateDescriptor<MK, MV>) -> Self {
        BroadcastStream {
            stream,
            descriptor: descriptor.clone(),
        }
    }
}

/// A function over a keyed stream and a broadcast stream (Flink's
/// `KeyedBroadcastProcessFunction`): the broadcast records change a map that every worker keeps;
/// the keyed records are handled with their key's state and timers, reading the map. See the
/// [module documentation](self).
///
/// ```
/// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
/// use tidal_engine::WatermarkStrategy;
/// use tidal_operators::broadcast::{BroadcastContext, BroadcastState, KeyedBroadcastProcessFunction, MapStateDescriptor};
///
/// /// Alerts on amounts over the limit of their currency; limits come on the broadcast stream.
/// struct OverLimit;
/// impl KeyedBroadcastProcessFunction<String, f64, (String, f64)> for OverLimit {
///     type State = ();
///     type MapKey = String;
///     type MapValue = f64;
///     type Out = (String, f64);
///     type Side = ();
///     fn process_element(&mut self, amount: f64, limits: &BroadcastState<String, f64>,
///                        ctx: &mut ProcessContext<'_, String, (), (String, f64), ()>) {
///         if limits.get(ctx.key()).is_some_and(|limit| amount > *limit) {
///             let currency = ctx.key().clone();
///             ctx.output((currency, amount));
///         }
///     }
///     fn process_broadcast_element(&mut self, (currency, limit): (String, f64),
///                                  ctx: &mut BroadcastContext<'_, String, f64, (String, f64), ()>) {
///         ctx.state().insert(currency, limit);
///     }
/// }
///
/// let out: Vec<(String, f64)> = tidal_engine::Job::local(2).run(|env| {
///     // Both sources are read in their first step: at that time the operator handles the
///     // broadcast limit before the keyed payments, so both payments see it.
///     let limits = env.from_iter_with(vec![("eur".to_string(), 100.0, 0i64)],
///         WatermarkStrategy::monotonous().with_timestamps(|l: &(String, f64, i64)| l.2))
///         .map(|(c, l, _)| (c, l))
///         .broadcast_state(&MapStateDescriptor::new("limits"));
///     let payments = env.from_iter_with(vec![("eur".to_string(), 50.0, 10i64), ("eur".to_string(), 150.0, 11)],
///         WatermarkStrategy::monotonous().with_timestamps(|p: &(String, f64, i64)| p.2))
///         .map(|(c, a, _)| (c, a));
///     payments.keyed().connect(limits).process(OverLimit).collect()
/// }).unwrap();
/// assert_eq!(out, vec![("eur".to_string(), 150.0)]);
/// ```
pub trait KeyedBroadcastProcessFunction<K, V, B>: 'static {
    /// The per-key state (created with `Default` when first used).
    type State: Default + Serialize + DeserializeOwned + 'static;
    /// The broadcast map's keys.
    type MapKey: MapKey;
    /// The broadcast map's values.
    type MapValue: MapValue;
    /// Records emitted.
    type Out: 'static;
    /// Records emitted to the side output (`()` when none).
    type Side: 'static;
    /// Handles a record of the keyed stream, reading the broadcast map.
    fn process_element(
        &mut self,
        value: V,
        broadcast: &BroadcastState<Self::MapKey, Self::MapValue>,
        ctx: &mut ProcessContext<'_, K, Self::State, Self::Out, Self::Side>,
    );
    /// Handles a record of the broadcast stream: called on every worker, in the same order, with
    /// the map to change. What it emits is emitted by every worker.
    fn process_broadcast_element(
        &mut self,
        value: B,
        ctx: &mut BroadcastContext<'_, Self::MapKey, Self::MapValue, Self::Out, Self::Side>,
    );
    /// Handles a timer of the context's key, reading the broadcast map.
    fn on_timer(
        &mut self,
        timestamp: Time,
        domain: TimeDomain,
        broadcast: &BroadcastState<Self::MapKey, Self::MapValue>,
        ctx: &mut ProcessContext<'_, K, Self::State, Self::Out, Self::Side>,
    ) {
        let _ = (timestamp, domain, broadcast, ctx);
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

/// What `process_broadcast_element` can see and do: change the map, emit records.
pub struct BroadcastContext<'a, MK, MV, O, D> {
    state: &'a mut BroadcastState<MK, MV>,
    /// This worker's keyed states (see [`apply_to_keyed_state`](Self::apply_to_keyed_state)).
    keyed: &'a mut dyn std::any::Any,
    worker: usize,
    timestamp: Time,
    watermark: Time,
    clock: &'a JobClock,
    out: &'a mut Vec<(O, Time)>,
    side: &'a mut Vec<(D, Time)>,
}

impl<MK, MV, O, D> BroadcastContext<'_, MK, MV, O, D> {
    /// The broadcast map, to read or change. Change it only as a function of the broadcast
    /// records, so that it stays the same on every worker.
    pub fn state(&mut self) -> &mut BroadcastState<MK, MV> {
        self.state
    }
    /// The index of the worker handling the record (every worker handles each one): to emit
    /// something once, emit it on worker 0.
    pub fn worker_index(&self) -> usize {
        self.worker
    }
    /// The timestamp of the broadcast record.
    pub fn timestamp(&self) -> Time {
        self.timestamp
    }
    /// The current watermark of the operator (of both inputs).
    pub fn current_watermark(&self) -> Time {
        self.watermark
    }
    /// The job's processing time (ms since the epoch), read from its clock now.
    pub fn current_processing_time(&self) -> Time {
        self.clock.now()
    }
    /// Emits a record with the broadcast record's timestamp.
    pub fn output(&mut self, record: O) {
        self.out.push((record, self.timestamp));
    }
    /// Emits a record to the side output, with the broadcast record's timestamp.
    pub fn side_output(&mut self, record: D) {
        self.side.push((record, self.timestamp));
    }
    /// Calls `f` with every key's state on this worker (Flink's `applyToKeyedState`): to change
    /// or clear (`*state = None`) the state of all keys when a rule changes, say. `K` and `S` are
    /// the function's key and `State` types; other types are an error. State that expired (with
    /// a time to live) is left out.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use tidal_operators::broadcast::{BroadcastContext, BroadcastState, KeyedBroadcastProcessFunction, MapStateDescriptor};
    /// /// Counts records per key; a broadcast "reset" clears every count.
    /// struct Counts;
    /// impl KeyedBroadcastProcessFunction<u8, (), String> for Counts {
    ///     type State = u32;
    ///     type MapKey = u8;
    ///     type MapValue = ();
    ///     type Out = (u8, u32);
    ///     type Side = ();
    ///     fn process_element(&mut self, _: (), _: &BroadcastState<u8, ()>, ctx: &mut ProcessContext<'_, u8, u32, (u8, u32), ()>) {
    ///         *ctx.state() += 1;
    ///         let (k, n) = (*ctx.key(), *ctx.state());
    ///         ctx.output((k, n));
    ///     }
    ///     fn process_broadcast_element(&mut self, command: String, ctx: &mut BroadcastContext<'_, u8, (), (u8, u32), ()>) {
    ///         if command == "reset" {
    ///             ctx.apply_to_keyed_state(|_: &u8, count: &mut Option<u32>| *count = None).unwrap();
    ///         }
    ///     }
    /// }
    /// # let _ = Counts;
    /// ```
    pub fn apply_to_keyed_state<K: Key, S: 'static>(
        &mut self,
        f: impl FnMut(&K, &mut Option<S>),
    ) -> tidal_engine::Result<()> {
        let now = self.clock.now();
        match self
            .keyed
            .downcast_mut::<crate::process::TtlStateOf<K, S>>()
        {
            Some(states) => {
                states.for_each_mut(now, f);
                Ok(())
            }
            None => Err(tidal_engine::Error::config(format!(
                "apply_to_keyed_state with key {} and state {}: not the function's key and state types",
                std::any::type_name::<K>(),
                std::any::type_name::<S>()
            ))),
        }
    }
}

/// A keyed stream connected with a broadcast stream, to be processed with a
/// [`KeyedBroadcastProcessFunction`].
pub struct BroadcastConnectedStream<'s, K, V, B, MK, MV> {
    keyed: KeyedStream<'s, K, V>,
    broadcast: BroadcastStream<'s, B, MK, MV>,
}

impl<'s, K: Key, V: Value, B: Value, MK: MapKey, MV: MapValue> Connectable<'s, K, V>
    for BroadcastStream<'s, B, MK, MV>
{
    type Connected = BroadcastConnectedStream<'s, K, V, B, MK, MV>;
    fn connect_to(self, keyed: KeyedStream<'s, K, V>) -> Self::Connected {
        BroadcastConnectedStream {
            keyed,
            broadcast: self,
        }
    }
}

impl<'s, K: Key, V: Value, B: Value, MK: MapKey, MV: MapValue>
    BroadcastConnectedStream<'s, K, V, B, MK, MV>
{
    /// Applies a keyed broadcast process function.
    pub fn process<F>(self, function: F) -> DataStream<'s, F::Out>
    where
        F: KeyedBroadcastProcessFunction<K, V, B, MapKey = MK, MapValue = MV>,
    {
        self.process_core(function, None)
    }
    /// Like [`process`](Self::process), with the side output going to `tag`.
    pub fn process_with_side_output<F>(
        self,
        function: F,
        tag: &OutputTag<'s, F::Side>,
    ) -> DataStream<'s, F::Out>
    where
        F: KeyedBroadcastProcessFunction<K, V, B, MapKey = MK, MapValue = MV>,
    {
        self.process_core(function, Some(tag.clone()))
    }

    fn process_core<F>(
        self,
        function: F,
        tag: Option<OutputTag<'s, F::Side>>,
    ) -> DataStream<'s, F::Out>
    where
        F: KeyedBroadcastProcessFunction<K, V, B, MapKey = MK, MapValue = MV>,
    {
        let BroadcastStream { stream, descriptor } = self.broadcast;
        let ctx = Rc::clone(stream.context());
        let store = Rc::new(RefCell::new(BroadcastStore {
            state: BroadcastState::default(),
            worker: ctx.index(),
        }));
        let registered = Rc::clone(&store);
        let register: Box<dyn FnOnce(&str)> = Box::new(move |operator: &str| {
            ctx.register_state(&format!("{operator}/{}", descriptor.name()), registered);
        });
        let adapter = Adapter {
            function,
            store,
            broadcast: PhantomData,
        };
        self.keyed.process_with_broadcast(
            adapter,
            tag,
            Some((stream, register)),
            |adapter: &mut Adapter<F, B, MK, MV>,
             call: &mut BroadcastCall<'_, F::Out, F::Side>,
             value: B| {
                let store = Rc::clone(&adapter.store);
                let mut store = store.borrow_mut();
                let BroadcastStore { state, worker, .. } = &mut *store;
                let mut ctx = BroadcastContext {
                    state,
                    keyed: &mut *call.keyed,
                    worker: *worker,
                    timestamp: call.timestamp,
                    watermark: call.watermark,
                    clock: call.clock,
                    out: call.out,
                    side: call.side,
                };
                adapter.function.process_broadcast_element(value, &mut ctx);
            },
        )
    }
}

/// The user's function as a keyed process function that reads the broadcast map.
struct Adapter<F, B, MK, MV> {
    function: F,
    store: Rc<RefCell<BroadcastStore<MK, MV>>>,
    broadcast: PhantomData<fn(B)>,
}

impl<K, V, B, F, MK, MV> KeyedProcessFunction<K, V> for Adapter<F, B, MK, MV>
where
    K: Key,
    B: 'static,
    F: KeyedBroadcastProcessFunction<K, V, B, MapKey = MK, MapValue = MV>,
    MK: MapKey,
    MV: MapValue,
{
    type State = F::State;
    type Out = F::Out;
    type Side = F::Side;
    fn process_element(
        &mut self,
        value: V,
        ctx: &mut ProcessContext<'_, K, F::State, F::Out, F::Side>,
    ) {
        let store = self.store.borrow();
        self.function.process_element(value, &store.state, ctx);
    }
    fn on_timer(
        &mut self,
        timestamp: Time,
        domain: TimeDomain,
        ctx: &mut ProcessContext<'_, K, F::State, F::Out, F::Side>,
    ) {
        let store = self.store.borrow();
        self.function.on_timer(timestamp, domain, &store.state, ctx);
    }
    fn open(&mut self, ctx: &RuntimeContext<'_>) -> tidal_engine::Result<()> {
        self.function.open(ctx)
    }
    fn close(&mut self) -> tidal_engine::Result<()> {
        self.function.close()
    }
}

/// The broadcast map of one operator on one worker, as checkpoints see it: written by worker 0
/// only (every worker holds the same), restored whole on every worker.
struct BroadcastStore<MK, MV> {
    state: BroadcastState<MK, MV>,
    worker: usize,
}

impl<MK: MapKey, MV: MapValue> KeyedStore for BroadcastStore<MK, MV> {
    type Key = MK;
    type Entry = MV;
    const ROUTED: bool = false;
    fn key_count(&self) -> usize {
        // Counted once for the job, not once per worker.
        if self.worker == 0 {
            self.state.len()
        } else {
            0
        }
    }
    fn write_entries(&self, _cut: Time, out: &mut EntryWriter<'_, MK>) -> Result<()> {
        if self.worker == 0 {
            for (k, v) in self.state.iter() {
                out.entry(k, v)?;
            }
        }
        Ok(())
    }
    fn encoded_bytes(&self) -> Option<u64> {
        tidal_engine::state::measure_entries(|out| self.write_entries(Time::MAX, out))
    }
    fn restore(&mut self, entries: Vec<(MK, MV)>, _owner: Owner) -> Result<()> {
        self.state.map = entries.into_iter().collect();
        Ok(())
    }
}
