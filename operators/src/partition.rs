//! Partitioning: which worker each record goes to next.

use std::cell::Cell;

use tidal_engine::{DataStream, timely};

use crate::broadcast::{BroadcastStream, MapStateDescriptor};
use timely::dataflow::operators::core::Exchange;
use timely::dataflow::operators::vec::Broadcast;

/// Partitioning operators on a [`DataStream`].
pub trait Partition<'s, T>: Sized {
    /// Spreads records evenly over all workers, round-robin.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// let mut out: Vec<(usize, u64)> = tidal_engine::Job::local(2).run(|env| {
    ///     let me = env.worker_index();
    ///     // How many records land on each worker.
    ///     env.from_iter(0..100).rebalance().map(move |_: i32| (me, ())).keyed().count().final_values().collect()
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![(0, 50), (1, 50)]);
    /// ```
    fn rebalance(self) -> DataStream<'s, T>;
    /// Sends every record to a worker chosen at random.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// let mut out: Vec<u32> = tidal_engine::Job::local(2)
    ///     .run(|env| env.from_iter(0..100u32).shuffle().collect())
    ///     .unwrap();
    /// out.sort();
    /// assert_eq!(out, (0..100).collect::<Vec<_>>());
    /// ```
    fn shuffle(self) -> DataStream<'s, T>;
    /// Sends a copy of every record to every worker.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// let out: Vec<i32> = tidal_engine::Job::local(3).run(|env| {
    ///     env.from_iter(if env.worker_index() == 0 { vec![7] } else { vec![] }).broadcast().collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![7, 7, 7]);
    /// ```
    fn broadcast(self) -> DataStream<'s, T>
    where
        T: Clone;
    /// Makes this stream the broadcast side of the broadcast-state pattern: connected with a
    /// keyed stream, every record reaches every worker, where it may change the map `descriptor`
    /// describes (see [`broadcast`](crate::broadcast)).
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use tidal_operators::broadcast::MapStateDescriptor;
    /// tidal_engine::Job::local(1).run(|env| {
    ///     let rules = env.from_iter(vec![(1u32, "x > 2".to_string())]);
    ///     let _broadcast = rules.broadcast_state(&MapStateDescriptor::<u32, String>::new("rules"));
    /// }).unwrap();
    /// ```
    fn broadcast_state<MK, MV>(
        self,
        descriptor: &MapStateDescriptor<MK, MV>,
    ) -> BroadcastStream<'s, T, MK, MV>
    where
        T: Clone;
}

impl<'s, T> Partition<'s, T> for DataStream<'s, T>
where
    T: timely::ExchangeData,
{
    fn rebalance(self) -> DataStream<'s, T> {
        // Start each worker at its own offset so that small inputs spread too.
        let next = Cell::new(self.context().index() as u64);
        self.then("rebalance", |s, _| {
            s.exchange(move |_| {
                let n = next.get();
                next.set(n.wrapping_add(1));
                n
            })
        })
    }
    fn shuffle(self) -> DataStream<'s, T> {
        // xorshift64*, seeded per worker: cheap, and no shared state.
        let state = Cell::new(
            0x9E37_79B9_7F4A_7C15u64
                ^ (self.context().index() as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
        );
        self.then("shuffle", |s, _| {
            s.exchange(move |_| {
                let mut x = state.get();
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                state.set(x);
                x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 16
            })
        })
    }
    fn broadcast(self) -> DataStream<'s, T>
    where
        T: Clone,
    {
        self.then("broadcast", |s, _| s.broadcast())
    }
    fn broadcast_state<MK, MV>(
        self,
        descriptor: &MapStateDescriptor<MK, MV>,
    ) -> BroadcastStream<'s, T, MK, MV>
    where
        T: Clone,
    {
        BroadcastStream::new(self, descriptor)
    }
}
