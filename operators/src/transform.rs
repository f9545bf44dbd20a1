//! Stateless transformations: one record in, zero or more out, on the same worker.

use tidal_engine::{DataStream, Time, timely};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::core::{Concat, Inspect};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::{Filter, Map};

use crate::keyed::KeyedStream;

/// Stateless operators on a [`DataStream`].
pub trait Transform<'s, T: 'static>: Sized {
    /// Applies `f` to every record.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// let out: Vec<i32> = tidal_engine::Job::local(1)
    ///     .run(|env| env.from_iter(vec![1, 2, 3]).map(|x| x * 10).collect()).unwrap();
    /// assert_eq!(out, vec![10, 20, 30]);
    /// ```
    fn map<U: 'static>(self, f: impl FnMut(T) -> U + 'static) -> DataStream<'s, U>;
    /// Applies `f` to every record and emits every item of what it returns.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// let out: Vec<char> = tidal_engine::Job::local(1)
    ///     .run(|env| env.from_iter(vec!["ab".to_string()]).flat_map(|s| s.chars().collect::<Vec<_>>()).collect())
    ///     .unwrap();
    /// assert_eq!(out, vec!['a', 'b']);
    /// ```
    fn flat_map<I>(self, f: impl FnMut(T) -> I + 'static) -> DataStream<'s, I::Item>
    where
        I: IntoIterator,
        I::Item: 'static;
    /// Like [`flat_map`](Transform::flat_map), but `f` reads each record where it lies, by
    /// reference, and the records are dropped after: no record is moved. For large records
    /// (events with several strings, say) from which little is taken, or most of which make
    /// nothing, moving each one into `f` can cost more than `f` itself.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// let out: Vec<usize> = tidal_engine::Job::local(1)
    ///     .run(|env| env.from_iter(vec!["ab".to_string(), "c".into()]).flat_map_ref(|s| (s.len() > 1).then(|| s.len())).collect())
    ///     .unwrap();
    /// assert_eq!(out, vec![2]);
    /// ```
    fn flat_map_ref<I>(self, f: impl FnMut(&T) -> I + 'static) -> DataStream<'s, I::Item>
    where
        I: IntoIterator,
        I::Item: 'static;
    /// Keeps the records for which `predicate` is true.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// let out: Vec<i32> = tidal_engine::Job::local(1)
    ///     .run(|env| env.from_iter(1..=6).filter(|x| x % 2 == 0).collect()).unwrap();
    /// assert_eq!(out, vec![2, 4, 6]);
    /// ```
    fn filter(self, predicate: impl FnMut(&T) -> bool + 'static) -> DataStream<'s, T>;
    /// Calls `f` on every record and passes the records on unchanged.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// static SEEN: AtomicUsize = AtomicUsize::new(0);
    /// tidal_engine::Job::local(1)
    ///     .run(|env| { env.from_iter(0..4).inspect(|_| { SEEN.fetch_add(1, Ordering::SeqCst); }); })
    ///     .unwrap();
    /// assert_eq!(SEEN.load(Ordering::SeqCst), 4);
    /// ```
    fn inspect(self, f: impl FnMut(&T) + 'static) -> DataStream<'s, T>;
    /// Merges this stream with `other` (records of both, in no particular order).
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// let mut out: Vec<i32> = tidal_engine::Job::local(2)
    ///     .run(|env| { let a = env.from_iter(0..2); let b = env.from_iter(10..12); a.union(b).collect() })
    ///     .unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![0, 1, 10, 11]);
    /// ```
    fn union(self, other: DataStream<'s, T>) -> DataStream<'s, T>;
    /// Partitions the stream by the key `key(&record)`: the keyed stream of `(key, record)`.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// let mut out: Vec<(bool, u64)> = tidal_engine::Job::local(2)
    ///     .run(|env| env.from_iter(0..10u64).key_by(|x| x % 2 == 0).count().final_values().collect())
    ///     .unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![(false, 5), (true, 5)]);
    /// ```
    fn key_by<K: 'static>(self, key: impl Fn(&T) -> K + 'static) -> KeyedStream<'s, K, T>;
}

impl<'s, T: 'static> Transform<'s, T> for DataStream<'s, T> {
    fn map<U: 'static>(self, f: impl FnMut(T) -> U + 'static) -> DataStream<'s, U> {
        let mut f = f;
        self.then("map", move |s, name| {
            each_record(s, name, move |x, ts, out| out.push((f(x), ts)))
        })
    }
    fn flat_map<I>(self, f: impl FnMut(T) -> I + 'static) -> DataStream<'s, I::Item>
    where
        I: IntoIterator,
        I::Item: 'static,
    {
        let mut f = f;
        self.then("flat_map", move |s, name| {
            each_record(s, name, move |x, ts, out| {
                for y in f(x) {
                    out.push((y, ts));
                }
            })
        })
    }
    fn flat_map_ref<I>(self, f: impl FnMut(&T) -> I + 'static) -> DataStream<'s, I::Item>
    where
        I: IntoIterator,
        I::Item: 'static,
    {
        let mut f = f;
        self.then("flat_map", move |s, name| {
            each_batch(s, name, move |data, out, flush| {
                for (x, ts) in data.iter() {
                    for y in f(x) {
                        out.push((y, *ts));
                    }
                    if !out.full.is_empty() {
                        flush(out);
                    }
                }
                data.clear();
            })
        })
    }
    fn filter(self, mut predicate: impl FnMut(&T) -> bool + 'static) -> DataStream<'s, T> {
        self.then("filter", |s, _| {
            Filter::filter(s, move |(x, _): &(T, Time)| predicate(x))
        })
    }
    fn inspect(self, mut f: impl FnMut(&T) + 'static) -> DataStream<'s, T> {
        self.then("inspect", |s, _| {
            Inspect::inspect(s, move |(x, _): &(T, Time)| f(x))
        })
    }
    fn union(self, other: DataStream<'s, T>) -> DataStream<'s, T> {
        self.then("union", |s, _| s.concat(other.into_inner()))
    }
    fn key_by<K: 'static>(self, key: impl Fn(&T) -> K + 'static) -> KeyedStream<'s, K, T> {
        KeyedStream::new(self.then("key_by", |s, _| s.map(move |(t, ts)| ((key(&t), t), ts))))
    }
}

/// Streams of `(key, value)` pairs can be keyed without copying the key.
pub trait KeyedPairs<'s, K: 'static, V: 'static> {
    /// The keyed stream whose key is each pair's first field.
    ///
    /// ```
    /// # use tidal_operators::prelude::*; use tidal_connectors::prelude::*;
    /// let mut out: Vec<(char, i64)> = tidal_engine::Job::local(2)
    ///     .run(|env| env.from_iter(vec![('a', 1i64), ('b', 2), ('a', 3)]).keyed().sum().final_values().collect())
    ///     .unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![('a', 4), ('b', 2)]);
    /// ```
    fn keyed(self) -> KeyedStream<'s, K, V>;
}

impl<'s, K: 'static, V: 'static> KeyedPairs<'s, K, V> for DataStream<'s, (K, V)> {
    fn keyed(self) -> KeyedStream<'s, K, V> {
        KeyedStream::new(self)
    }
}

/// A stateless operator on the same worker: `f(record, timestamp, out)` pushes the outputs into
/// `out`, whose containers are handed on as they fill. A plain loop into a container of its own
/// costs less than iterator adapters over the input with a session push per item (a third of
/// word count's splitting went to those).
fn each_record<'s, T: 'static, U: 'static>(
    s: StreamVec<'s, Time, (T, Time)>,
    name: &str,
    mut f: impl FnMut(T, Time, &mut Out<U>) + 'static,
) -> StreamVec<'s, Time, (U, Time)> {
    each_batch(s, name, move |data, out, flush| {
        for (x, ts) in data.drain(..) {
            f(x, ts, out);
            if !out.full.is_empty() {
                flush(out);
            }
        }
    })
}

/// A stateless operator on the same worker that hands `f` each input container of one time
/// (which `f` leaves empty), the output to push into, and a way to send the full output
/// containers at once (else they are sent after the input container).
fn each_batch<'s, T: 'static, U: 'static>(
    s: StreamVec<'s, Time, (T, Time)>,
    name: &str,
    mut f: impl FnMut(&mut Vec<(T, Time)>, &mut Out<U>, &mut dyn FnMut(&mut Out<U>)) + 'static,
) -> StreamVec<'s, Time, (U, Time)> {
    s.unary::<CapacityContainerBuilder<Vec<(U, Time)>>, _, _, _>(Pipeline, name, move |_, _| {
        let mut out = Out {
            buf: Vec::new(),
            full: Vec::new(),
            cap: timely::container::buffer::default_capacity::<(U, Time)>(),
        };
        move |input, output| {
            input.for_each(|time, data| {
                let mut session = output.session(&time);
                let mut flush = |out: &mut Out<U>| {
                    for mut container in out.full.drain(..) {
                        session.give_container(&mut container);
                    }
                };
                f(data, &mut out, &mut flush);
                flush(&mut out);
                if !out.buf.is_empty() {
                    session.give_container(&mut out.buf);
                    out.buf.clear();
                }
            });
        }
    })
}

/// The output containers of [`each_record`]: the one being filled, and those filled while one
/// record was mapped (a record may make more outputs than a container holds). A full container
/// is set aside rather than grown: growing copies it, and word count's splitting spent 5 % of
/// its instructions doing so.
struct Out<U> {
    buf: Vec<(U, Time)>,
    full: Vec<Vec<(U, Time)>>,
    cap: usize,
}

impl<U> Out<U> {
    #[inline]
    fn push(&mut self, item: (U, Time)) {
        if self.buf.len() == self.buf.capacity() {
            if !self.buf.is_empty() {
                self.full.push(std::mem::take(&mut self.buf));
            }
            self.buf.reserve_exact(self.cap);
        }
        self.buf.push(item);
    }
}
