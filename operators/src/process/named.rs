//! Named state of a keyed process function (Flink's value, list, map, reducing and aggregating
//! state): beside the function's per-key `State` value, any number of states per key, each found
//! by its descriptor's name and each with a time to live of its own.
//!
//! Which to pick: the per-key `State` type is the Rust idiom — one struct, typed, checked by the
//! compiler, one lookup per record — and the fastest. Named states suit a function whose pieces
//! of state live for different times (a list of recent events kept a minute, a flag kept a day),
//! since each has its own time to live, or code ported from Flink as it is structured there.
//!
//! A state's value is held as the typed value once used, and as its encoding (postcard) when it
//! was restored and not yet used; checkpoints write each key's states with their last-write times.
//! A state with a time to live is never returned once expired, and is removed when found expired,
//! when the operator's clock passes its expiry (checked at the end of every activation) and when
//! a checkpoint is written.

use std::any::Any;
use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tidal_engine::{Error, Result, Time};

use crate::build::FastMap;
use crate::keyed::Key;

/// When a state's time to live starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlUpdate {
    /// When the state is created or written (Flink's `OnCreateAndWrite`).
    OnCreateAndWrite,
    /// Also when it is read (Flink's `OnReadAndWrite`).
    OnReadAndWrite,
}

/// A state's time to live, in the job's processing time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateTtl {
    ttl: Time,
    update: TtlUpdate,
}

impl StateTtl {
    /// Expires `ttl` after the state was created or last written.
    pub fn after_write(ttl: std::time::Duration) -> Self {
        StateTtl {
            ttl: ttl.as_millis() as Time,
            update: TtlUpdate::OnCreateAndWrite,
        }
    }
    /// Expires `ttl` after the state was last written or read.
    pub fn after_access(ttl: std::time::Duration) -> Self {
        StateTtl {
            ttl: ttl.as_millis() as Time,
            update: TtlUpdate::OnReadAndWrite,
        }
    }
}

/// Names a state of type `T` (with its time to live, if any); `Kind` says which kind of state.
#[derive(Debug)]
pub struct StateDescriptor<Kind> {
    name: String,
    ttl: Option<StateTtl>,
    kind: Kind,
}

impl<Kind> StateDescriptor<Kind> {
    /// The state expires as `ttl` says.
    pub fn with_ttl(mut self, ttl: StateTtl) -> Self {
        self.ttl = Some(ttl);
        self
    }
    /// The state's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A value (Flink's `ValueState`).
pub struct Value<T>(PhantomData<fn() -> T>);
/// A list (Flink's `ListState`).
pub struct List<T>(PhantomData<fn() -> T>);
/// A map (Flink's `MapState`), ordered by key.
pub struct Map<MK, MV>(PhantomData<fn() -> (MK, MV)>);
/// A value folded from what is added (Flink's `ReducingState`).
pub struct Reducing<T> {
    reduce: fn(&mut T, T),
}
/// An accumulator folded from what is added, read through `result` (Flink's
/// `AggregatingState`).
pub struct Aggregating<I, A, O> {
    create: fn(I) -> A,
    add: fn(&mut A, I),
    result: fn(&A) -> O,
}

fn descriptor<Kind>(name: &str, kind: Kind) -> StateDescriptor<Kind> {
    StateDescriptor {
        name: name.to_string(),
        ttl: None,
        kind,
    }
}

/// A value state called `name`.
pub fn value_state<T>(name: &str) -> StateDescriptor<Value<T>> {
    descriptor(name, Value(PhantomData))
}
/// A list state called `name`.
pub fn list_state<T>(name: &str) -> StateDescriptor<List<T>> {
    descriptor(name, List(PhantomData))
}
/// A map state called `name`.
pub fn map_state<MK, MV>(name: &str) -> StateDescriptor<Map<MK, MV>> {
    descriptor(name, Map(PhantomData))
}
/// A reducing state called `name`, folding what is added with `reduce`.
pub fn reducing_state<T>(name: &str, reduce: fn(&mut T, T)) -> StateDescriptor<Reducing<T>> {
    descriptor(name, Reducing { reduce })
}
/// An aggregating state called `name`: `create` from the first input, `add` the others,
/// `result` to read it.
pub fn aggregating_state<I, A, O>(
    name: &str,
    create: fn(I) -> A,
    add: fn(&mut A, I),
    result: fn(&A) -> O,
) -> StateDescriptor<Aggregating<I, A, O>> {
    descriptor(
        name,
        Aggregating {
            create,
            add,
            result,
        },
    )
}

/// A state's value: typed once used, or its encoding as restored.
enum Stored {
    Live(Box<dyn Erased>),
    Encoded(Vec<u8>),
}

/// A typed value that can write its encoding.
trait Erased {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn encode(&self) -> Result<Vec<u8>>;
}

impl<T: Serialize + 'static> Erased for T {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn encode(&self) -> Result<Vec<u8>> {
        postcard::to_allocvec(self)
            .map_err(|e| Error::external(format!("encoding a named state: {e}")))
    }
}

/// One state of one key.
struct Slot {
    stored: Stored,
    written: Time,
    /// When it expires (with a time to live).
    expires: Option<Time>,
}

/// The named states of every key of one process operator on one worker.
#[derive(Default)]
pub(crate) struct NamedStates<K> {
    keys: FastMap<K, BTreeMap<String, Slot>>,
    /// Keys with a state that may expire, by when.
    schedule: BTreeMap<Time, Vec<K>>,
}

/// One key's named states in a snapshot: name, last write, expiry, encoding.
pub(crate) type NamedEntry = Vec<(String, Time, Option<Time>, Vec<u8>)>;

impl<K: Key> NamedStates<K> {
    pub(crate) fn new() -> Self {
        NamedStates {
            keys: FastMap::default(),
            schedule: BTreeMap::new(),
        }
    }
    /// The keys with named states.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.keys.keys()
    }
    /// `key`'s states for a snapshot (expired ones left out).
    pub(crate) fn entry(&self, key: &K, now: Time) -> Result<NamedEntry> {
        let Some(slots) = self.keys.get(key) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (name, slot) in slots {
            if slot.expires.is_some_and(|e| e <= now) {
                continue;
            }
            let bytes = match &slot.stored {
                Stored::Live(value) => value.encode()?,
                Stored::Encoded(bytes) => bytes.clone(),
            };
            out.push((name.clone(), slot.written, slot.expires, bytes));
        }
        Ok(out)
    }
    /// Loads `key`'s restored states.
    pub(crate) fn restore(&mut self, key: K, entry: NamedEntry) {
        if entry.is_empty() {
            return;
        }
        let slots = self.keys.entry(key.clone()).or_default();
        for (name, written, expires, bytes) in entry {
            if let Some(at) = expires {
                self.schedule.entry(at).or_default().push(key.clone());
            }
            slots.insert(
                name,
                Slot {
                    stored: Stored::Encoded(bytes),
                    written,
                    expires,
                },
            );
        }
    }
    /// Removes the states that expired by `now`.
    pub(crate) fn expire(&mut self, now: Time) {
        while let Some(entry) = self.schedule.first_entry() {
            if *entry.key() > now {
                break;
            }
            for key in entry.remove() {
                if let Some(slots) = self.keys.get_mut(&key) {
                    slots.retain(|_, s| s.expires.is_none_or(|e| e > now));
                    if slots.is_empty() {
                        self.keys.remove(&key);
                    }
                }
            }
        }
    }
    /// When the next state may expire.
    pub(crate) fn next_expiry(&self) -> Option<Time> {
        self.schedule.first_key_value().map(|(t, _)| *t)
    }

    /// `key`'s state `name` of type `T`, for reading (`None` if absent or expired; an expired
    /// one is removed), refreshing its time to live when reads count.
    fn get<T: DeserializeOwned + Serialize + 'static>(
        &mut self,
        key: &K,
        name: &str,
        ttl: Option<StateTtl>,
        now: Time,
    ) -> Result<Option<&mut T>> {
        let Some(slots) = self.keys.get_mut(key) else {
            return Ok(None);
        };
        if slots
            .get(name)
            .is_some_and(|s| s.expires.is_some_and(|e| e <= now))
        {
            slots.remove(name);
            return Ok(None);
        }
        let Some(slot) = slots.get_mut(name) else {
            return Ok(None);
        };
        if let Some(ttl) = ttl
            && ttl.update == TtlUpdate::OnReadAndWrite
        {
            let at = now.saturating_add(ttl.ttl);
            slot.expires = Some(at);
            self.schedule.entry(at).or_default().push(key.clone());
        }
        typed(slot, name).map(Some)
    }

    /// `key`'s state `name`, created with `init` if absent or expired, for writing: its time to
    /// live starts again.
    fn write<T: DeserializeOwned + Serialize + 'static>(
        &mut self,
        key: &K,
        name: &str,
        ttl: Option<StateTtl>,
        now: Time,
        init: impl FnOnce() -> T,
    ) -> Result<&mut T> {
        let slots = self.keys.entry(key.clone()).or_default();
        let expired = slots
            .get(name)
            .is_some_and(|s| s.expires.is_some_and(|e| e <= now));
        if expired || !slots.contains_key(name) {
            slots.insert(
                name.to_string(),
                Slot {
                    stored: Stored::Live(Box::new(init())),
                    written: now,
                    expires: None,
                },
            );
        }
        let slot = slots.get_mut(name).expect("just made");
        slot.written = now;
        if let Some(ttl) = ttl {
            let at = now.saturating_add(ttl.ttl);
            slot.expires = Some(at);
            self.schedule.entry(at).or_default().push(key.clone());
        }
        typed(slot, name)
    }

    /// Removes `key`'s state `name`.
    fn clear(&mut self, key: &K, name: &str) {
        if let Some(slots) = self.keys.get_mut(key) {
            slots.remove(name);
            if slots.is_empty() {
                self.keys.remove(key);
            }
        }
    }
}

/// The slot's value as a `T` (decoding it first if it was restored).
fn typed<'a, T: DeserializeOwned + Serialize + 'static>(
    slot: &'a mut Slot,
    name: &str,
) -> Result<&'a mut T> {
    if let Stored::Encoded(bytes) = &slot.stored {
        let value: T = postcard::from_bytes(bytes).map_err(|e| {
            Error::input(format!(
                "named state '{name}' in the checkpoint does not decode as the type the function \
                 asks for: {e}"
            ))
        })?;
        slot.stored = Stored::Live(Box::new(value));
    }
    let Stored::Live(value) = &mut slot.stored else {
        unreachable!("decoded above")
    };
    value.as_any_mut().downcast_mut::<T>().ok_or_else(|| {
        Error::input(format!(
            "named state '{name}' is used with two different types"
        ))
    })
}

/// Access to one key's named states from a process function (see [`ProcessContext`]).
///
/// [`ProcessContext`]: crate::ProcessContext
pub struct NamedAccess<'a, K> {
    pub(crate) states: &'a mut NamedStates<K>,
    pub(crate) key: &'a K,
    pub(crate) now: Time,
    pub(crate) errors: &'a mut Vec<Error>,
}

/// The value of `r`, or `None` with its error kept (the operator fails the job with it).
fn note<T>(errors: &mut Vec<Error>, r: Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

impl<K: Key> NamedAccess<'_, K> {
    /// Writes state `name`: made from `input` with `create` when absent or expired, otherwise
    /// `input` folded into it with `fold`.
    fn create_or_fold<T: Serialize + DeserializeOwned + 'static, X>(
        &mut self,
        name: &str,
        ttl: Option<StateTtl>,
        input: X,
        create: impl FnOnce(X) -> T,
        fold: impl FnOnce(&mut T, X),
    ) {
        let mut input = Some(input);
        let r = self.states.write::<T>(self.key, name, ttl, self.now, || {
            create(input.take().expect("taken once"))
        });
        // `input` is still there when the state existed: fold it in.
        if let (Some(state), Some(x)) = (note(self.errors, r), input) {
            fold(state, x);
        }
    }

    /// The value state's value, if set and not expired.
    pub fn value<T: Serialize + DeserializeOwned + Clone + 'static>(
        &mut self,
        d: &StateDescriptor<Value<T>>,
    ) -> Option<T> {
        let r = self.states.get::<T>(self.key, &d.name, d.ttl, self.now);
        note(self.errors, r).flatten().cloned()
    }
    /// Sets the value state.
    pub fn set_value<T: Serialize + DeserializeOwned + 'static>(
        &mut self,
        d: &StateDescriptor<Value<T>>,
        value: T,
    ) {
        self.create_or_fold(&d.name, d.ttl, value, |v| v, |slot, v| *slot = v);
    }
    /// The list state's elements (empty if unset or expired).
    pub fn list<T: Serialize + DeserializeOwned + Clone + 'static>(
        &mut self,
        d: &StateDescriptor<List<T>>,
    ) -> Vec<T> {
        let r = self
            .states
            .get::<Vec<T>>(self.key, &d.name, d.ttl, self.now);
        note(self.errors, r).flatten().cloned().unwrap_or_default()
    }
    /// Appends to the list state.
    pub fn add_to_list<T: Serialize + DeserializeOwned + 'static>(
        &mut self,
        d: &StateDescriptor<List<T>>,
        element: T,
    ) {
        let r = self
            .states
            .write::<Vec<T>>(self.key, &d.name, d.ttl, self.now, Vec::new);
        if let Some(list) = note(self.errors, r) {
            list.push(element);
        }
    }
    /// The map state's value for `k`.
    pub fn map_get<MK, MV>(&mut self, d: &StateDescriptor<Map<MK, MV>>, k: &MK) -> Option<MV>
    where
        MK: Ord + Serialize + DeserializeOwned + 'static,
        MV: Serialize + DeserializeOwned + Clone + 'static,
    {
        let r = self
            .states
            .get::<BTreeMap<MK, MV>>(self.key, &d.name, d.ttl, self.now);
        note(self.errors, r)
            .flatten()
            .and_then(|m| m.get(k).cloned())
    }
    /// Sets the map state's value for `k`.
    pub fn map_put<MK, MV>(&mut self, d: &StateDescriptor<Map<MK, MV>>, k: MK, v: MV)
    where
        MK: Ord + Serialize + DeserializeOwned + 'static,
        MV: Serialize + DeserializeOwned + 'static,
    {
        let r = self.states.write::<BTreeMap<MK, MV>>(
            self.key,
            &d.name,
            d.ttl,
            self.now,
            BTreeMap::new,
        );
        if let Some(map) = note(self.errors, r) {
            map.insert(k, v);
        }
    }
    /// Removes the map state's value for `k`, returning it.
    pub fn map_remove<MK, MV>(&mut self, d: &StateDescriptor<Map<MK, MV>>, k: &MK) -> Option<MV>
    where
        MK: Ord + Serialize + DeserializeOwned + 'static,
        MV: Serialize + DeserializeOwned + 'static,
    {
        let r = self
            .states
            .get::<BTreeMap<MK, MV>>(self.key, &d.name, d.ttl, self.now);
        note(self.errors, r).flatten().and_then(|m| m.remove(k))
    }
    /// The map state's entries, in key order.
    pub fn map_entries<MK, MV>(&mut self, d: &StateDescriptor<Map<MK, MV>>) -> Vec<(MK, MV)>
    where
        MK: Ord + Clone + Serialize + DeserializeOwned + 'static,
        MV: Serialize + DeserializeOwned + Clone + 'static,
    {
        let r = self
            .states
            .get::<BTreeMap<MK, MV>>(self.key, &d.name, d.ttl, self.now);
        note(self.errors, r)
            .flatten()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }
    /// Folds `value` into the reducing state.
    pub fn reduce<T: Serialize + DeserializeOwned + 'static>(
        &mut self,
        d: &StateDescriptor<Reducing<T>>,
        value: T,
    ) {
        self.create_or_fold(&d.name, d.ttl, value, |v| v, d.kind.reduce);
    }
    /// The reducing state's value.
    pub fn reduced<T: Serialize + DeserializeOwned + Clone + 'static>(
        &mut self,
        d: &StateDescriptor<Reducing<T>>,
    ) -> Option<T> {
        let r = self.states.get::<T>(self.key, &d.name, d.ttl, self.now);
        note(self.errors, r).flatten().cloned()
    }
    /// Adds `input` to the aggregating state.
    pub fn aggregate<I, A: Serialize + DeserializeOwned + 'static, O>(
        &mut self,
        d: &StateDescriptor<Aggregating<I, A, O>>,
        input: I,
    ) {
        self.create_or_fold(&d.name, d.ttl, input, d.kind.create, d.kind.add);
    }
    /// The aggregating state's result.
    pub fn aggregated<I, A: Serialize + DeserializeOwned + 'static, O>(
        &mut self,
        d: &StateDescriptor<Aggregating<I, A, O>>,
    ) -> Option<O> {
        let r = self.states.get::<A>(self.key, &d.name, d.ttl, self.now);
        note(self.errors, r).flatten().map(|a| (d.kind.result)(a))
    }
    /// Removes the state `d` names for this key.
    pub fn clear<Kind>(&mut self, d: &StateDescriptor<Kind>) {
        self.states.clear(self.key, &d.name);
    }
}
