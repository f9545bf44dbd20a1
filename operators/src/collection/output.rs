//! Out of collections: changelogs (each change at the time it happens) and the final table.
//!
//! Every output consolidates first: updates of the same row at the same time are summed, and
//! those that cancel disappear, so a changelog holds only real changes. A time's changes leave
//! once the watermark passes it.
//!
//! After a restore from a checkpoint at cut `T`, the changelogs leave out every change at a time
//! below `T`: those are the recomputation of what the restored inputs held, which the job had
//! emitted before the cut (and an exactly-once sink had committed). The final table leaves out
//! nothing: it is emitted once, at the end of input.

use std::collections::BTreeMap;
use std::rc::Rc;

use differential_dataflow::consolidation::consolidate;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::operator::Operator;

use super::{Change, Collection, Row, RowKind};
use crate::build::{FastMap, key_hash};
use tidal_engine::{DataStream, Time};

impl<'s, D: Row> Collection<'s, D> {
    /// The collection's changes as a stream of `(row, time, diff)`: at each time (an event
    /// time, in order of the watermark) the rows whose count changed, by how much. Each record's
    /// event time is its change's time.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// use tidal_engine::WatermarkStrategy;
    /// let mut out: Vec<(char, tidal_engine::Time, isize)> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter_with(vec![(1, 'a'), (1, 'a'), (2, 'b')],
    ///             WatermarkStrategy::monotonous().with_timestamps(|(t, _)| *t))
    ///         .map(|(_, c)| c)
    ///         .into_collection()
    ///         .changes()
    ///         .collect()
    /// }).unwrap();
    /// out.sort();
    /// assert_eq!(out, vec![('a', 1, 2), ('b', 2, 1)]);
    /// ```
    pub fn changes(self) -> DataStream<'s, (D, Time, isize)> {
        consolidated(
            self,
            "changes",
            |row: &D| key_hash(row),
            |t, rows, out| {
                out.extend(rows.into_iter().map(|(row, diff)| ((row, t, diff), t)));
            },
        )
    }
    /// The collection's changes as a changelog: `+I` for each copy of a row that comes, `-D` for
    /// each that goes, at the time of the change (the record's event time).
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<Change<u8>> = tidal_engine::Job::local(1).run(|env| {
    ///     env.from_iter(vec![3u8]).into_collection().changelog().collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![Change::new(RowKind::Insert, 3)]);
    /// ```
    pub fn changelog(self) -> DataStream<'s, Change<D>> {
        consolidated(
            self,
            "changelog",
            |row: &D| key_hash(row),
            |t, rows, out| {
                for (row, diff) in rows {
                    let kind = if diff > 0 {
                        RowKind::Insert
                    } else {
                        RowKind::Delete
                    };
                    for _ in 1..diff.unsigned_abs() {
                        out.push((Change::new(kind, row.clone()), t));
                    }
                    out.push((Change::new(kind, row), t));
                }
            },
        )
    }
    /// The rows of the collection once the input has ended (or the job is stopped): each row as
    /// many times as it is there. Emitted once, on the worker that owns the row.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// let out: Vec<u8> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter(vec![1u8, 1]).into_collection().final_table().collect()
    /// }).unwrap();
    /// assert_eq!(out, vec![1, 1]);
    /// ```
    pub fn final_table(self) -> DataStream<'s, D> {
        let ctx = Rc::clone(&self.ctx);
        let probe_name = format!("final_table#{}", ctx.next_operator_id());
        let stream = self.inner.inner.unary_frontier(
            Exchange::new(|(row, _, _): &(D, Time, isize)| key_hash(row)),
            &probe_name,
            |_, _| {
                let mut table: FastMap<D, isize> = FastMap::default();
                let mut cap: Option<Capability<Time>> = None;
                move |(input, frontier), output| {
                    input.for_each(|message, data| {
                        if cap.is_none() {
                            cap = message.retain_least(0);
                        }
                        for (row, _, diff) in data.drain(..) {
                            let count = table.entry(row).or_insert(0);
                            *count += diff;
                        }
                    });
                    let Some(held) = cap.as_mut() else { return };
                    match frontier.frontier().first() {
                        // Follow the input, so that whatever is downstream is not held back.
                        Some(&t) => held.downgrade(&t.max(*held.time())),
                        None => {
                            let at = *held.time();
                            let mut session = output.session(&*held);
                            for (row, count) in table.drain() {
                                for _ in 0..count.max(0) {
                                    session.give((row.clone(), at));
                                }
                            }
                            drop(session);
                            cap = None;
                        }
                    }
                }
            },
        );
        DataStream::from_timely(stream, ctx, probe_name)
    }
}

impl<'s, K: Row, V: Row> Collection<'s, (K, V)> {
    /// The changes of a keyed collection with (at most) one row per key — a group-by result, an
    /// upserted table — as a changelog that pairs them per key: a key whose row changes at a time
    /// gives `-U` (the old row) and `+U` (the new), a new key `+I`, a key that goes `-D`.
    ///
    /// ```
    /// use tidal_operators::prelude::*;
    /// use tidal_connectors::prelude::*;
    /// use tidal_engine::WatermarkStrategy;
    /// let out: Vec<String> = tidal_engine::Job::local(2).run(|env| {
    ///     env.from_iter_with(vec![(1, ('a', 5u32)), (2, ('a', 5))],
    ///             WatermarkStrategy::monotonous().with_timestamps(|(t, _)| *t))
    ///         .map(|(_, row)| row)
    ///         .into_collection()
    ///         .sum_by_key(|v| *v as i64)
    ///         .changelog_by_key()
    ///         .map(|c| format!("{} {:?}", c.kind, c.row))
    ///         .collect()
    /// }).unwrap();
    /// assert_eq!(out, vec!["+I ('a', 5)", "-U ('a', 5)", "+U ('a', 10)"]);
    /// ```
    pub fn changelog_by_key(self) -> DataStream<'s, Change<(K, V)>> {
        consolidated(
            self,
            "changelog_by_key",
            |(k, _): &(K, V)| key_hash(k),
            |t, rows, out| {
                // Consolidated rows are sorted: each key's retractions and insertions are together.
                let mut i = 0;
                while i < rows.len() {
                    let mut j = i;
                    while j < rows.len() && rows[j].0.0 == rows[i].0.0 {
                        j += 1;
                    }
                    let (gone, come): (Vec<_>, Vec<_>) =
                        rows[i..j].iter().cloned().partition(|(_, diff)| *diff < 0);
                    let mut gone = expand(gone);
                    let mut come = expand(come);
                    while let (Some(old), Some(new)) = (gone.first(), come.first()) {
                        out.push((Change::new(RowKind::UpdateBefore, old.clone()), t));
                        out.push((Change::new(RowKind::UpdateAfter, new.clone()), t));
                        gone.remove(0);
                        come.remove(0);
                    }
                    out.extend(
                        gone.into_iter()
                            .map(|row| (Change::new(RowKind::Delete, row), t)),
                    );
                    out.extend(
                        come.into_iter()
                            .map(|row| (Change::new(RowKind::Insert, row), t)),
                    );
                    i = j;
                }
            },
        )
    }
}

/// Each row as many times as its count says (in absolute value).
fn expand<D: Clone>(rows: Vec<(D, isize)>) -> Vec<D> {
    let mut out = Vec::new();
    for (row, diff) in rows {
        for _ in 0..diff.unsigned_abs() {
            out.push(row.clone());
        }
    }
    out
}

/// The consolidated changes of `collection`, exchanged by `route`, handed per time (in time
/// order, once the watermark passes it; rows sorted) to `emit`, which writes the output records
/// with their event times. Changes at times below a restored cut are left out.
fn consolidated<'s, D: Row, O: 'static>(
    collection: Collection<'s, D>,
    kind: &str,
    route: impl Fn(&D) -> u64 + 'static,
    mut emit: impl FnMut(Time, Vec<(D, isize)>, &mut Vec<(O, Time)>) + 'static,
) -> DataStream<'s, O> {
    let ctx = Rc::clone(&collection.ctx);
    let name = format!("{kind}#{}", ctx.next_operator_id());
    let restored_cut = ctx.restored_cut();
    let stream = collection.inner.inner.unary_frontier(
        Exchange::new(move |(row, _, _): &(D, Time, isize)| route(row)),
        &name,
        |_, _| {
            let mut pending: BTreeMap<Time, Vec<(D, isize)>> = BTreeMap::new();
            let mut cap: Option<Capability<Time>> = None;
            move |(input, frontier), output| {
                input.for_each(|message, data| {
                    let Some(&at) = message.least() else { return };
                    if cap.as_ref().is_none_or(|c| *c.time() > at) {
                        cap = message.retain_least(0);
                    }
                    for (row, t, diff) in data.drain(..) {
                        if restored_cut.is_some_and(|cut| t < cut) {
                            continue;
                        }
                        pending.entry(t).or_default().push((row, diff));
                    }
                });
                let Some(held) = cap.as_mut() else { return };
                let mut out = Vec::new();
                while let Some((&t, _)) = pending.first_key_value() {
                    if frontier.less_equal(&t) {
                        break;
                    }
                    let (t, mut rows) = pending.pop_first().expect("a first entry");
                    consolidate(&mut rows);
                    emit(t, rows, &mut out);
                }
                if !out.is_empty() {
                    output.session(&*held).give_container(&mut out);
                }
                match pending.keys().next() {
                    Some(&t) => held.downgrade(&t.max(*held.time())),
                    None => cap = None,
                }
            }
        },
    );
    DataStream::from_timely(stream, ctx, name)
}
