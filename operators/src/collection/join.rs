//! Joins of keyed collections: inner and left outer, semijoin and antijoin, and arrangements
//! shared between the joins that read the same index.

use differential_dataflow::AsCollection;
use differential_dataflow::operators::arrange::{Arranged as DdArranged, TraceAgent};
use differential_dataflow::operators::join::join_traces;
use differential_dataflow::trace::implementations::ValSpine;
use timely::container::{CapacityContainerBuilder, PushInto};

use super::{Collection, CollectionTime, Row};

type Trace<K, V, T> = TraceAgent<ValSpine<K, V, T, isize>>;

/// A keyed collection indexed by key (a differential *arrangement*), made once with
/// [`arrange_by_key`](Collection::arrange_by_key) and read by any number of joins on the same
/// worker: the index and its memory are shared, not built per join.
pub struct Arranged<'s, K: Row, V: Row, T: CollectionTime> {
    inner: DdArranged<'s, Trace<K, V, T>>,
    source: Collection<'s, (K, V), T>,
}

impl<'s, K: Row, V: Row, T: CollectionTime> Clone for Arranged<'s, K, V, T> {
    fn clone(&self) -> Self {
        Arranged {
            inner: self.inner.clone(),
            source: self.source.clone(),
        }
    }
}

impl<'s, K: Row, V: Row, T: CollectionTime> Arranged<'s, K, V, T> {
    /// Inner join with another arrangement: `(key, (v, w))` for every pair of rows with equal keys.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<(u8, (char, char))> = tidal_engine::Job::local(2).run(|env| {
    ///     let a = env.from_iter(vec![(1u8, 'a')]).into_collection().arrange_by_key();
    ///     let b = env.from_iter(vec![(1u8, 'x'), (1, 'y')]).into_collection().arrange_by_key();
    ///     a.join(&b).final_table().collect()
    /// }).unwrap();
    /// assert_eq!(out.len(), 2);
    /// ```
    pub fn join<W: Row>(&self, other: &Arranged<'s, K, W, T>) -> Collection<'s, (K, (V, W)), T> {
        self.join_map(other, |k, v, w| (k.clone(), (v.clone(), w.clone())))
    }
    /// Inner join with another arrangement, each matching pair made into a row by `logic`
    /// (in the join itself: no copy of the pair is made only to be mapped).
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<String> = tidal_engine::Job::local(2).run(|env| {
    ///     let a = env.from_iter(vec![(1u8, 'a')]).into_collection().arrange_by_key();
    ///     let b = env.from_iter(vec![(1u8, 'x'), (2, 'y')]).into_collection().arrange_by_key();
    ///     a.join_map(&b, |k, v, w| format!("{k}{v}{w}")).final_table().collect()
    /// }).unwrap();
    /// assert_eq!(out, vec!["1ax".to_string()]);
    /// ```
    pub fn join_map<W: Row, R: Row>(
        &self,
        other: &Arranged<'s, K, W, T>,
        logic: impl Fn(&K, &V, &W) -> R + 'static,
    ) -> Collection<'s, R, T> {
        // The pairs go out as they are matched, not consolidated: the rows a join makes are
        // often cheap to make and dear to sort (a string first, where the key was a number), and
        // every consumer consolidates anyway — an arrangement in its batcher, an output before it
        // writes. (`join_core` sorts each output container by row.)
        let inner = join_traces::<_, _, _, _, CapacityContainerBuilder<Vec<(R, T, isize)>>>(
            self.inner.clone(),
            other.inner.clone(),
            "JoinMap",
            move |k: &K, v: &V, w: &W, t: T, d1: &isize, d2: &isize, out| {
                out.push_into((logic(k, v, w), t, d1 * d2));
            },
        )
        .as_collection();
        self.source.wrap(inner)
    }
    /// The arranged collection itself.
    pub fn as_collection(&self) -> Collection<'s, (K, V), T> {
        self.source.clone()
    }
}

impl<'s, K: Row, V: Row, T: CollectionTime> Collection<'s, (K, V), T> {
    /// Indexes the collection by key, to share the index between several joins
    /// ([`Arranged::join`], [`join_arranged`](Self::join_arranged)).
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<(u8, (char, u32))> = tidal_engine::Job::local(1).run(|env| {
    ///     let names = env.from_iter(vec![(1u8, 'a'), (2, 'b')]).into_collection().arrange_by_key();
    ///     let x = env.from_iter(vec![(1u8, 10u32)]).into_collection();
    ///     let y = env.from_iter(vec![(2u8, 20u32)]).into_collection();
    ///     // Both joins read the one index of `names`.
    ///     x.join_arranged(&names).concat(y.join_arranged(&names)).final_table().collect()
    /// }).unwrap();
    /// let mut out = out; out.sort();
    /// assert_eq!(out, vec![(1, ('a', 10)), (2, ('b', 20))]);
    /// ```
    pub fn arrange_by_key(self) -> Arranged<'s, K, V, T> {
        Arranged {
            inner: self.inner.clone().arrange_by_key(),
            source: self,
        }
    }
    /// Inner join with an arranged collection: `(key, (w, v))`, `w` from the arrangement.
    pub fn join_arranged<W: Row>(
        self,
        other: &Arranged<'s, K, W, T>,
    ) -> Collection<'s, (K, (W, V)), T> {
        other.join(&self.arrange_by_key())
    }
    /// Inner join: `(key, (v, w))` for every pair of rows with equal keys (counts multiply).
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<(u8, (char, u32))> = tidal_engine::Job::local(2).run(|env| {
    ///     let a = env.from_iter(vec![(1u8, 'a'), (2, 'b')]).into_collection();
    ///     let b = env.from_iter(vec![(1u8, 10u32), (3, 30)]).into_collection();
    ///     a.join(b).final_table().collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![(1, ('a', 10))]);
    /// ```
    pub fn join<W: Row>(self, other: Collection<'s, (K, W), T>) -> Collection<'s, (K, (V, W)), T> {
        self.arrange_by_key().join(&other.arrange_by_key())
    }
    /// Inner join, each matching pair made into a row by `logic` — the same as
    /// [`join`](Self::join) followed by [`map`](Collection::map), without the intermediate rows.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<(char, u32)> = tidal_engine::Job::local(2).run(|env| {
    ///     let names = env.from_iter(vec![(1u8, 'a'), (2, 'b')]).into_collection();
    ///     let amounts = env.from_iter(vec![(1u8, 10u32), (1, 5), (3, 30)]).into_collection();
    ///     names.join_map(amounts, |_id, name, amount| (*name, *amount)).final_table().collect()
    /// }).unwrap();
    /// let mut out = out; out.sort();
    /// assert_eq!(out, vec![('a', 5), ('a', 10)]);
    /// ```
    pub fn join_map<W: Row, R: Row>(
        self,
        other: Collection<'s, (K, W), T>,
        logic: impl Fn(&K, &V, &W) -> R + 'static,
    ) -> Collection<'s, R, T> {
        self.arrange_by_key()
            .join_map(&other.arrange_by_key(), logic)
    }
    /// Left outer join: the inner join's rows, and `(key, (v, None))` for each row whose key has
    /// no match on the right. When a first match arrives, the `None` row is retracted.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<(u8, (char, Option<u32>))> = tidal_engine::Job::local(1).run(|env| {
    ///     let a = env.from_iter(vec![(1u8, 'a'), (2, 'b')]).into_collection();
    ///     let b = env.from_iter(vec![(1u8, 10u32)]).into_collection();
    ///     a.left_join(b).final_table().collect()
    /// }).unwrap();
    /// let mut out = out; out.sort();
    /// assert_eq!(out, vec![(1, ('a', Some(10))), (2, ('b', None))]);
    /// ```
    pub fn left_join<W: Row>(
        self,
        other: Collection<'s, (K, W), T>,
    ) -> Collection<'s, (K, (V, Option<W>)), T> {
        let left = self.clone().arrange_by_key();
        let right = other.clone().arrange_by_key();
        let matched = left.join(&right).map(|(k, (v, w))| (k, (v, Some(w))));
        let keys = other.map(|(k, _)| k).distinct().inner.arrange_by_self();
        let with_match = left.inner.clone().join_core(keys, |k: &K, v: &V, _: &()| {
            Some((k.clone(), (v.clone(), None)))
        });
        let unmatched = self
            .map(|(k, v)| (k, (v, None)))
            .concat(self_wrap(&left.source, with_match).negate());
        matched.concat(unmatched)
    }
    /// The rows whose key is in `keys` (each once, however often the key is there).
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<(u8, char)> = tidal_engine::Job::local(1).run(|env| {
    ///     let a = env.from_iter(vec![(1u8, 'a'), (2, 'b')]).into_collection();
    ///     let keys = env.from_iter(vec![2u8, 2]).into_collection();
    ///     a.semijoin(keys).final_table().collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![(2, 'b')]);
    /// ```
    pub fn semijoin(self, keys: Collection<'s, K, T>) -> Self {
        let keys = keys.distinct().inner.arrange_by_self();
        let inner = self
            .inner
            .clone()
            .arrange_by_key()
            .join_core(keys, |k: &K, v: &V, _: &()| Some((k.clone(), v.clone())));
        self.wrap(inner)
    }
    /// The rows whose key is not in `keys`.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<(u8, char)> = tidal_engine::Job::local(1).run(|env| {
    ///     let a = env.from_iter(vec![(1u8, 'a'), (2, 'b')]).into_collection();
    ///     let keys = env.from_iter(vec![2u8]).into_collection();
    ///     a.antijoin(keys).final_table().collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![(1, 'a')]);
    /// ```
    pub fn antijoin(self, keys: Collection<'s, K, T>) -> Self {
        let matched = self.clone().semijoin(keys);
        self.concat(matched.negate())
    }
}

fn self_wrap<'s, D: Row, D2: Row, T: CollectionTime>(
    like: &Collection<'s, D, T>,
    inner: differential_dataflow::VecCollection<'s, T, D2, isize>,
) -> Collection<'s, D2, T> {
    like.wrap(inner)
}
