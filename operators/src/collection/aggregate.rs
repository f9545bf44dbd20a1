//! Aggregates that retract: `distinct`, `count`, `reduce`, the group-by aggregates (count, sum,
//! average, min, max) and top-k per key.
//!
//! Count, sum and average are carried in differential's *differences* rather than recomputed from
//! each group's rows: a row `(key, v)` with count `r` adds `(r, r·v)` to its key's [`Totals`], so
//! a change costs the same whatever the group's size, and a retraction subtracts exactly what the
//! insertion added. Min, max, top-k and `reduce` see the group's rows (sorted, with their counts)
//! and are recomputed for the keys that changed.

use differential_dataflow::difference::{Abelian, IsZero, Monoid, Multiply, Semigroup};
use serde::{Deserialize, Serialize};

use super::{Collection, CollectionTime, Row};

/// A group's number of rows and the sum of its values (what count, sum and average are made of).
///
/// ```
/// use tidal_operators::collection::Totals;
/// let t = Totals { count: 4, sum: 10 };
/// assert_eq!(t.average(), Some(2.5));
/// assert_eq!(Totals::default().average(), None);
/// ```
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Totals {
    /// Number of rows.
    pub count: i64,
    /// Sum of their values.
    pub sum: i64,
}

impl Totals {
    /// `sum / count`, or `None` for an empty group.
    pub fn average(&self) -> Option<f64> {
        (self.count != 0).then(|| self.sum as f64 / self.count as f64)
    }
}

impl IsZero for Totals {
    fn is_zero(&self) -> bool {
        self.count == 0 && self.sum == 0
    }
}
impl Semigroup for Totals {
    fn plus_equals(&mut self, rhs: &Self) {
        self.count += rhs.count;
        self.sum += rhs.sum;
    }
}
impl Monoid for Totals {
    fn zero() -> Self {
        Totals::default()
    }
}
impl Abelian for Totals {
    fn negate(&mut self) {
        self.count = -self.count;
        self.sum = -self.sum;
    }
}
impl Multiply<isize> for Totals {
    type Output = Totals;
    fn multiply(self, rhs: &isize) -> Totals {
        Totals {
            count: self.count * *rhs as i64,
            sum: self.sum * *rhs as i64,
        }
    }
}

/// Several sums at once, added element by element: what [`sums_by_key`](Collection::sums_by_key)
/// carries per key. Vectors of different lengths add as if the shorter had zeros after its end,
/// and a vector of zeros is no change at all.
///
/// ```
/// use tidal_operators::collection::Sums;
/// let mut a = Sums(vec![1, 10]);
/// a.add(&Sums(vec![2, 5, 7]));
/// assert_eq!(a, Sums(vec![3, 15, 7]));
/// assert!(Sums(vec![0, 0]).is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Sums(pub Vec<i128>);

impl Sums {
    /// Adds `other`, element by element.
    pub fn add(&mut self, other: &Sums) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a = a.wrapping_add(*b);
        }
    }
    /// Whether every sum is zero.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|x| *x == 0)
    }
}

impl IsZero for Sums {
    fn is_zero(&self) -> bool {
        self.is_empty()
    }
}
impl Semigroup for Sums {
    fn plus_equals(&mut self, rhs: &Self) {
        self.add(rhs);
    }
}
impl Monoid for Sums {
    fn zero() -> Self {
        Sums::default()
    }
}
impl Abelian for Sums {
    fn negate(&mut self) {
        for x in &mut self.0 {
            *x = x.wrapping_neg();
        }
    }
}
impl Multiply<isize> for Sums {
    type Output = Sums;
    fn multiply(mut self, rhs: &isize) -> Sums {
        for x in &mut self.0 {
            *x = x.wrapping_mul(*rhs as i128);
        }
        self
    }
}

impl<'s, D: Row, T: CollectionTime> Collection<'s, D, T> {
    /// Each row once (a set), however many times it is in the collection.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<u32> = tidal_engine::Job::local(2)
    ///     .run(|env| env.from_iter(vec![1u32, 1, 2]).into_collection().distinct().final_table().collect())
    ///     .unwrap();
    /// let mut out = out; out.sort();
    /// assert_eq!(out, vec![1, 2]);
    /// ```
    pub fn distinct(self) -> Self {
        let inner = self.inner.clone().distinct();
        self.wrap(inner)
    }
    /// Each distinct row with the number of times it is in the collection.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<(u32, i64)> = tidal_engine::Job::local(1)
    ///     .run(|env| env.from_iter(vec![1u32, 1]).into_collection().count().final_table().collect())
    ///     .unwrap();
    /// assert_eq!(out, vec![(1, 2)]);
    /// ```
    pub fn count(self) -> Collection<'s, (D, i64), T> {
        let inner = self.inner.clone().count().map(|(d, n)| (d, n as i64));
        self.wrap(inner)
    }
}

impl<'s, K: Row, V: Row, T: CollectionTime> Collection<'s, (K, V), T> {
    /// Per key, the output rows `logic` makes from the key's rows: it gets the key and the rows'
    /// values in order, each with its count (positive), and pushes `(value, count)` pairs. Called
    /// again for a key whenever its rows change; its old output is retracted.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// // Per key, the number of distinct values.
    /// let out: Vec<(char, usize)> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter(vec![('a', 1u32), ('a', 1), ('a', 2), ('b', 5)])
    ///         .into_collection()
    ///         .reduce(|_key, values, out| out.push((values.len(), 1)))
    ///         .final_table()
    ///         .collect()
    /// }).unwrap();
    /// let mut out = out; out.sort();
    /// assert_eq!(out, vec![('a', 2), ('b', 1)]);
    /// ```
    pub fn reduce<V2: Row>(
        self,
        logic: impl FnMut(&K, &[(&V, isize)], &mut Vec<(V2, isize)>) + 'static,
    ) -> Collection<'s, (K, V2), T> {
        let inner = self.inner.clone().reduce(logic);
        self.wrap(inner)
    }
    /// Per key, the number of rows and the sum of their values (`value_of` turns a value into the
    /// number summed), in one arrangement.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<(char, Totals)> = tidal_engine::Job::local(1).run(|env| {
    ///     env.from_iter(vec![('a', 10i64), ('a', 30)]).into_collection().totals_by_key(|v| *v).final_table().collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![('a', Totals { count: 2, sum: 40 })]);
    /// ```
    pub fn totals_by_key(
        self,
        value_of: impl Fn(&V) -> i64 + 'static,
    ) -> Collection<'s, (K, Totals), T> {
        let inner = self
            .inner
            .clone()
            .explode(move |(k, v)| {
                let sum = value_of(&v);
                Some((k, Totals { count: 1, sum }))
            })
            .count_core::<isize>();
        self.wrap(inner)
    }
    /// Per key, the element-wise sum of what `contribution` makes of each row, carried in
    /// differential's differences as [`totals_by_key`](Self::totals_by_key) is: a change costs
    /// the same whatever the group's size. A key whose sums are all zero is not in the result, so
    /// count the rows in one of them to keep every non-empty group.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_operators::collection::Sums;
    /// use tidal_connectors::prelude::*;
    /// // Per key: rows, and the sum of the values.
    /// let out: Vec<(char, Sums)> = tidal_engine::Job::local(1).run(|env| {
    ///     env.from_iter(vec![('a', 10i64), ('a', 30), ('b', 0)])
    ///         .into_collection()
    ///         .sums_by_key(|v| Sums(vec![1, i128::from(*v)]))
    ///         .final_table()
    ///         .collect()
    /// }).unwrap();
    /// let mut out = out; out.sort();
    /// assert_eq!(out, vec![('a', Sums(vec![2, 40])), ('b', Sums(vec![1, 0]))]);
    /// ```
    pub fn sums_by_key(
        self,
        contribution: impl Fn(&V) -> Sums + 'static,
    ) -> Collection<'s, (K, Sums), T> {
        let inner = self
            .inner
            .clone()
            .explode(move |(k, v)| {
                let sums = contribution(&v);
                Some((k, sums))
            })
            .count_core::<isize>();
        self.wrap(inner)
    }
    /// Per key, the number of rows.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<(char, i64)> = tidal_engine::Job::local(1).run(|env| {
    ///     env.from_iter(vec![('a', 1u8), ('a', 2)]).into_collection().count_by_key().final_table().collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![('a', 2)]);
    /// ```
    pub fn count_by_key(self) -> Collection<'s, (K, i64), T> {
        self.map(|(k, _)| k).count()
    }
    /// Per key, the sum of the values (`value_of` turns a value into the number summed). A key
    /// whose rows sum to zero is in the result, with 0.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<(char, i64)> = tidal_engine::Job::local(1).run(|env| {
    ///     env.from_iter(vec![('a', 5i64), ('a', -5)]).into_collection().sum_by_key(|v| *v).final_table().collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![('a', 0)]);
    /// ```
    pub fn sum_by_key(self, value_of: impl Fn(&V) -> i64 + 'static) -> Collection<'s, (K, i64), T> {
        self.totals_by_key(value_of).map(|(k, t)| (k, t.sum))
    }
    /// Per key, the average of the values as [`Totals`] (call [`Totals::average`] for the number:
    /// kept as integers so that results compare exactly).
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<(char, Totals)> = tidal_engine::Job::local(1).run(|env| {
    ///     env.from_iter(vec![('a', 1i64), ('a', 2)]).into_collection().average_by_key(|v| *v).final_table().collect()
    /// }).unwrap();
    /// assert_eq!(out[0].1.average(), Some(1.5));
    /// ```
    pub fn average_by_key(
        self,
        value_of: impl Fn(&V) -> i64 + 'static,
    ) -> Collection<'s, (K, Totals), T> {
        self.totals_by_key(value_of)
    }
    /// Per key, the least value.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<(char, u32)> = tidal_engine::Job::local(1).run(|env| {
    ///     env.from_iter(vec![('a', 3u32), ('a', 1)]).into_collection().min_by_key().final_table().collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![('a', 1)]);
    /// ```
    pub fn min_by_key(self) -> Self {
        self.reduce(|_, values, out| out.push((values[0].0.clone(), 1)))
    }
    /// Per key, the greatest value.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<(char, u32)> = tidal_engine::Job::local(1).run(|env| {
    ///     env.from_iter(vec![('a', 3u32), ('a', 1)]).into_collection().max_by_key().final_table().collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![('a', 3)]);
    /// ```
    pub fn max_by_key(self) -> Self {
        self.reduce(|_, values, out| out.push((values[values.len() - 1].0.clone(), 1)))
    }
    /// Per key, the `k` greatest values (with repeats, as many as they occur up to `k`); wrap
    /// values in [`std::cmp::Reverse`] for the least.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<(char, u32)> = tidal_engine::Job::local(1).run(|env| {
    ///     env.from_iter(vec![('a', 3u32), ('a', 1), ('a', 7), ('a', 7)]).into_collection().top_k(3).final_table().collect()
    /// }).unwrap();
    /// let mut out = out; out.sort();
    /// assert_eq!(out, vec![('a', 3), ('a', 7), ('a', 7)]);
    /// ```
    pub fn top_k(self, k: usize) -> Self {
        self.reduce(move |_, values, out| {
            let mut left = k as isize;
            for (v, count) in values.iter().rev() {
                if left <= 0 {
                    break;
                }
                let take = (*count).min(left);
                out.push(((*v).clone(), take));
                left -= take;
            }
        })
    }
}
