//! # tidal-operators: the DataStream API
//!
//! Methods on [`DataStream`](tidal_engine::DataStream), added by extension traits:
//! - [`Transform`]: `map`, `flat_map`, `filter`, `inspect`, `union`, `key_by`, `keyed`.
//! - [`RichTransform`]: `rich_map`, `rich_flat_map`, `rich_filter` with functions that have a
//!   lifecycle ([`Lifecycle`]: `open` once per worker before the first record, `close` after the
//!   last; process functions have the same two methods).
//! - [`AsyncMap`]: `async_map` calls an `async` function per record, many at once, in order or
//!   not ([`async_io`]).
//! - [`Partition`]: `rebalance`, `shuffle`, `broadcast`.
//! - [`KeyedStream`]: rolling `reduce`, `sum`, `min`, `max`, `count`, `min_by`, `max_by`,
//!   `aggregate` — each a **changelog**: the new value of every key that changed, once per tick.
//! - [`Changelog`]: `final_values` keeps the last value per key and emits it at the end of input.
//! - [`KeyedStream::window`]: event-time [`Windows`] (tumbling, sliding) with `reduce`, `aggregate`,
//!   `process`, allowed lateness and a late side output ([`OutputTag`]).
//! - [`KeyedStream::process`]: a [`KeyedProcessFunction`] with per-key state, event-time and
//!   processing-time timers, and a side output; [`KeyedStream::connect`] two keyed streams and
//!   process them with a [`KeyedCoProcessFunction`] sharing state and timers, or join them on event
//!   time ([`join`]: interval join, window join).
//! - [`broadcast`]: a keyed stream connected with a broadcast stream
//!   ([`Partition::broadcast_state`]) and processed with a [`KeyedBroadcastProcessFunction`] —
//!   rules or configuration in a map every worker keeps the same.
//!
//! Every keyed operator — rolling aggregates, `final_values`, windows, sessions, process and
//! co-process functions, joins — is made with one builder, [`build::keyed_operator`]: exchange by
//! [`key_hash`](tidal_engine::state::key_hash), state registered once for checkpoints (a
//! [`KeyedStore`](tidal_engine::state::KeyedStore)), restored capabilities and late-record counting.
//! Aggregations combine records per key within a tick on the sending worker first, so the exchange
//! carries partial results; state is changed in time order as the frontier passes. Operator
//! authors find the builder and the engine pieces they need in [`build`].
//!
//! ```
//! use tidal_operators::prelude::*;
//! use tidal_connectors::prelude::*;
//!
//! let mut counts: Vec<(String, u64)> = tidal_engine::Job::local(2).run(|env| {
//!     env.from_iter(["a b", "b c", "c c"].map(String::from))
//!         .flat_map(|line: String| line.split(' ').map(|w| (w.to_string(), ())).collect::<Vec<_>>())
//!         .keyed()
//!         .count()
//!         .final_values()
//!         .collect()
//! }).unwrap();
//! counts.sort();
//! assert_eq!(counts, vec![("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]);
//! ```

pub mod async_io;
pub mod broadcast;
pub mod build;
pub mod changelog;
pub mod collection;
pub mod connect;
pub mod function;
pub mod join;
pub mod keyed;
pub mod partition;
pub mod process;
pub mod transform;
mod ttl;
pub mod window;

pub use async_io::{AsyncMap, AsyncOptions};
pub use broadcast::{
    BroadcastConnectedStream, BroadcastContext, BroadcastState, BroadcastStream,
    KeyedBroadcastProcessFunction, MapStateDescriptor,
};
pub use changelog::Changelog;
pub use connect::{Connectable, ConnectedStreams, Either, KeyedCoProcessFunction};
pub use function::{
    FilterFunction, FlatMapFunction, Lifecycle, MapFunction, RichTransform, RuntimeContext,
};
pub use keyed::KeyedStream;
pub use partition::Partition;
pub use process::{KeyedProcessFunction, Outputs, Process, ProcessContext, TimeDomain};
pub use transform::{KeyedPairs, Transform};
pub use window::{
    OutputTag, ProcessWindowFunction, Trigger, Window, WindowAll, WindowedStream, Windows,
};

/// Everything needed to write pipelines: `use tidal_operators::prelude::*;`.
pub mod prelude {
    pub use crate::collection::{
        Arranged, Change, ChangelogIntoCollection, Collection, IntoCollection, RowKind, Totals,
        UpdatesIntoCollection, UpsertByKey,
    };
    pub use crate::{
        AsyncMap, AsyncOptions, BroadcastContext, BroadcastState, Changelog, ConnectedStreams,
        Either, FilterFunction, FlatMapFunction, KeyedBroadcastProcessFunction,
        KeyedCoProcessFunction, KeyedPairs, KeyedProcessFunction, KeyedStream, Lifecycle,
        MapFunction, MapStateDescriptor, OutputTag, Outputs, Partition, Process, ProcessContext,
        ProcessWindowFunction, RichTransform, RuntimeContext, TimeDomain, Transform, Window,
        WindowAll, Windows,
    };
}
