//! Incremental collections: tables that change, on differential-dataflow.
//!
//! A [`Collection`] is a multiset of rows that changes over event time: each change is an update
//! `(row, time, diff)` — `diff` copies of `row` come (positive) or go (negative) at `time`. Rows
//! come from DataStreams ([`IntoCollection`]: each record an insertion at its event time), from
//! changelogs ([`Change`] streams, as change-data-capture sources read them), or from upserts by
//! key. Operators on collections — `map`, `filter`, `join`, `distinct`, group-by aggregates,
//! top-k, `iterate` — keep their results equal, at every watermark, to the query recomputed from
//! scratch on the input up to it: when an input row goes, so does every result it contributed
//! to. Results leave as changelogs ([`changes`](Collection::changes),
//! [`changelog`](Collection::changelog), [`changelog_by_key`](Collection::changelog_by_key)) or
//! as the final table at the end of input ([`final_table`](Collection::final_table)).
//!
//! ```
//! use tidal_operators::prelude::*;
//! use tidal_connectors::prelude::*;
//!
//! // Orders per region, kept up to date as a customer moves.
//! use tidal_engine::WatermarkStrategy;
//! let mut totals: Vec<(String, i64)> = tidal_engine::Job::local(2).run(|env| {
//!     let customers = env
//!         .from_iter_with(
//!             vec![
//!                 (0, Change::new(RowKind::Insert, (1u32, "emea".to_string()))),
//!                 (5, Change::new(RowKind::UpdateBefore, (1u32, "emea".to_string()))),
//!                 (5, Change::new(RowKind::UpdateAfter, (1u32, "apac".to_string()))),
//!             ],
//!             WatermarkStrategy::monotonous().with_timestamps(|(t, _)| *t),
//!         )
//!         .map(|(_, change)| change)
//!         .changelog_into_collection();
//!     let orders = env.from_iter(vec![(1u32, 100i64), (1, 250)]).into_collection();
//!     orders
//!         .join(customers)
//!         .map(|(_customer, (_amount, region))| (region, ()))
//!         .count_by_key()
//!         .final_table()
//!         .collect()
//! }).unwrap();
//! totals.sort();
//! assert_eq!(totals, vec![("apac".to_string(), 2)]);
//! ```
//!
//! ## Time
//! Collection times are event times (ms since the epoch). A record that is late (its event time
//! below the watermark its batch travels at) is not dropped: it takes effect at the earliest time
//! still open, the batch's. Differential's operators hold their results for a time until the
//! watermark passes it, and compact their history up to the watermark, so memory follows the live
//! rows, not the history.
//!
//! ## Checkpoints
//! Every operator's state in a collection dataflow is a deterministic function of the rows that
//! entered it. So a checkpoint snapshots the *inputs*: each root (where rows enter from a
//! DataStream) keeps its accumulated rows as of the cut, and the updates waiting for the
//! watermark, as keyed state ([`KeyedStore`](crate::build::KeyedStore)). A restore on any number
//! of workers re-inserts them at the instant before the cut; every join, reduce and iteration
//! downstream recomputes its state from them, and the changelog outputs leave out what they
//! emitted before the cut (all of it at times below the cut, which the exactly-once sinks had
//! committed). Differential offers no public way to pre-fill an operator's output trace, so
//! recomputing is the way its arrangements are restored.
//!
//! The roots keep that state only where it is needed: with checkpoints on, or for changelogs and
//! upserts (which must know the current rows to check a deletion or to retract an older value).
//! An insert-only root without checkpoints hands its records straight to differential.

mod aggregate;
mod input;
mod iterate;
mod join;
mod output;

use std::hash::Hash;
use std::rc::Rc;

use differential_dataflow::VecCollection;
use differential_dataflow::lattice::Lattice;
use timely::progress::Timestamp;

pub use aggregate::{Sums, Totals};
pub use input::{ChangelogIntoCollection, IntoCollection, UpdatesIntoCollection, UpsertByKey};
pub use iterate::Iteration;
pub use join::Arranged;
pub use tidal_engine::change::{Change, RowKind};
use tidal_engine::{Time, WorkerContext};

/// What a collection's rows (and keys and values) must be: comparable, hashable, printable for
/// errors, and able to cross processes (serde).
pub trait Row: differential_dataflow::ExchangeData + Hash {}
impl<T: differential_dataflow::ExchangeData + Hash> Row for T {}

/// The times of a collection: event time ([`Time`]) outside iterations, and event time with a
/// round counter inside [`iterate`](Collection::iterate).
pub trait CollectionTime: Timestamp + Lattice + Ord {}
impl<T: Timestamp + Lattice + Ord> CollectionTime for T {}

/// A multiset of rows of type `D` that changes over time `T` (see the [module docs](self)).
///
/// Rows that are pairs `(K, V)` are keyed: joins, group-by aggregates and top-k work per key.
pub struct Collection<'s, D: 'static, T: Timestamp = Time> {
    inner: VecCollection<'s, T, D, isize>,
    ctx: Rc<WorkerContext>,
}

impl<'s, D: Clone + 'static, T: Timestamp> Clone for Collection<'s, D, T> {
    fn clone(&self) -> Self {
        Collection {
            inner: self.inner.clone(),
            ctx: Rc::clone(&self.ctx),
        }
    }
}

impl<'s, D: Row, T: CollectionTime> Collection<'s, D, T> {
    /// Wraps a differential-dataflow collection made on the worker `ctx` (for jobs that use an
    /// operator of differential directly; see [`into_differential`](Self::into_differential)).
    pub fn from_differential(
        inner: VecCollection<'s, T, D, isize>,
        ctx: Rc<WorkerContext>,
    ) -> Self {
        Collection { inner, ctx }
    }
    /// The differential-dataflow collection underneath, to use any of its operators.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<u32> = tidal_engine::Job::local(1).run(|env| {
    ///     let numbers = env.from_iter(vec![1u32, 2, 2]).into_collection();
    ///     let ctx = numbers.context().clone();
    ///     let inner = numbers.into_differential().consolidate();
    ///     Collection::from_differential(inner, ctx).final_table().collect()
    /// }).unwrap();
    /// assert_eq!(out.len(), 3);
    /// ```
    pub fn into_differential(self) -> VecCollection<'s, T, D, isize> {
        self.inner
    }
    /// The worker this collection lives on.
    pub fn context(&self) -> &Rc<WorkerContext> {
        &self.ctx
    }
    fn wrap<D2: Row, T2: CollectionTime>(
        &self,
        inner: VecCollection<'s, T2, D2, isize>,
    ) -> Collection<'s, D2, T2> {
        Collection {
            inner,
            ctx: Rc::clone(&self.ctx),
        }
    }

    /// Each row replaced by `logic(row)`.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<u32> = tidal_engine::Job::local(1)
    ///     .run(|env| env.from_iter(vec![1u32, 2]).into_collection().map(|x| x * 10).final_table().collect())
    ///     .unwrap();
    /// assert_eq!(out.iter().sum::<u32>(), 30);
    /// ```
    pub fn map<D2: Row>(self, logic: impl FnMut(D) -> D2 + 'static) -> Collection<'s, D2, T> {
        let inner = self.inner.clone().map(logic);
        self.wrap(inner)
    }
    /// Each row replaced by the rows `logic(row)` gives (none, one or many).
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<char> = tidal_engine::Job::local(1)
    ///     .run(|env| env.from_iter(vec!["ab".to_string()]).into_collection()
    ///         .flat_map(|s| s.chars().collect::<Vec<_>>()).final_table().collect())
    ///     .unwrap();
    /// assert_eq!(out.len(), 2);
    /// ```
    pub fn flat_map<I>(self, logic: impl FnMut(D) -> I + 'static) -> Collection<'s, I::Item, T>
    where
        I: IntoIterator,
        I::Item: Row,
    {
        let inner = self.inner.clone().flat_map(logic);
        self.wrap(inner)
    }
    /// The rows for which `predicate` holds.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<u32> = tidal_engine::Job::local(1)
    ///     .run(|env| env.from_iter(vec![1u32, 2, 3]).into_collection().filter(|x| x % 2 == 1).final_table().collect())
    ///     .unwrap();
    /// assert_eq!(out.len(), 2);
    /// ```
    pub fn filter(self, mut predicate: impl FnMut(&D) -> bool + 'static) -> Self {
        let inner = self.inner.clone().filter(move |d| predicate(d));
        self.wrap(inner)
    }
    /// The rows of both collections (a multiset union: counts add).
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<u32> = tidal_engine::Job::local(1).run(|env| {
    ///     let a = env.from_iter(vec![1u32]).into_collection();
    ///     let b = env.from_iter(vec![1u32]).into_collection();
    ///     a.concat(b).final_table().collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![1, 1]);
    /// ```
    pub fn concat(self, other: Self) -> Self {
        let inner = self.inner.clone().concat(other.inner);
        self.wrap(inner)
    }
    /// Every row's count negated: `a.concat(b.negate())` is `a` minus `b`.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<u32> = tidal_engine::Job::local(1).run(|env| {
    ///     let a = env.from_iter(vec![1u32, 2]).into_collection();
    ///     let b = env.from_iter(vec![2u32]).into_collection();
    ///     a.concat(b.negate()).final_table().collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![1]);
    /// ```
    pub fn negate(self) -> Self {
        let inner = self.inner.clone().negate();
        self.wrap(inner)
    }
    /// The same collection with the updates of each row and time summed into one (and those that
    /// cancel removed). Results are the same without it; it makes the stream of updates smaller.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// use tidal_engine::WatermarkStrategy;
    /// let out: Vec<(u32, tidal_engine::Time, isize)> = tidal_engine::Job::local(1).run(|env| {
    ///     let a = env
    ///         .from_iter_with(vec![1u32, 1], WatermarkStrategy::monotonous().with_timestamps(|_| 5))
    ///         .into_collection();
    ///     a.consolidate().changes().collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![(1, 5, 2)]);
    /// ```
    pub fn consolidate(self) -> Self {
        let inner = self.inner.clone().consolidate();
        self.wrap(inner)
    }
}
