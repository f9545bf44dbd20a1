//! Joins with a window's highest (or lowest) value: rows that cannot be it are dropped before
//! they wait in the join.
//!
//! A query such as Nexmark q7 joins a stream with a window aggregate of the same stream on the
//! aggregate's `MAX` ("the bids whose price is the highest of their window"):
//!
//! ```sql
//! SELECT B.* FROM bid B JOIN (
//!   SELECT MAX(price) AS maxprice, window_end AS t
//!   FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
//!   GROUP BY window_start, window_end) M
//! ON B.price = M.maxprice WHERE B.dateTime BETWEEN M.t - INTERVAL '10' SECOND AND M.t
//! ```
//!
//! Run as written, every bid waits in the interval join until the watermark passes its interval,
//! although almost none of them is the highest of its window. The join's time bounds name the
//! windows a row can meet (those whose result time falls within them: one or two here). A row
//! whose value is below the highest value *seen so far* of every such window, among the rows of
//! that window this worker has read, cannot equal the window's final `MAX` — the aggregate
//! counts every row seen here and more — so it is dropped at once. What remains is, per window
//! and worker, the running maxima: on rows in random order, about ln(n) of a window's n rows.
//!
//! Why the result is the same:
//! - the filtered rows are the very rows the aggregate reads (the same subplan over the same
//!   stream of events, or projections of one window aggregation, built once and read by both:
//!   q5's counts per auction and window, joined with the highest count of their window), at
//!   the same timely times; a row counts towards a window's running value only if the window operator
//!   counts it too: a row sent at time `t` falls in a window only while the window's end is
//!   after `t` (the window operator fires windows ending at or before `t` before it folds the
//!   rows of time `t`; later, such rows are late for them);
//! - a window (and group) with no value seen yet keeps the row; so does a NULL value;
//! - the state is a hint: it is not snapshotted, and after a restore (or on another worker
//!   count) it starts empty and keeps more rows — never fewer than the join needs;
//! - used only for inner joins, where a row that meets no partner produces nothing.
//!
//! When the aggregate computes nothing but that extreme over exactly the filtered rows, and
//! each row can meet every window it falls in (q7: a bid can meet its own window's result), the
//! aggregate reads only the kept rows (see [`ExtremeFilter::feeds`]): the stream is read once,
//! and the window operator folds the running maxima instead of every row.
//!
//! A `MAX` may also be met with `>=` (a `MIN` with `<=`), as q5 writes it (`num >= maxn`): a
//! row beaten by the running value is below the final one there too. The windows of a cascading
//! aggregation (over the windows of its input's rows) are each row's own: its rows sit at their
//! window's time, told apart by their `window_start` and `window_end`, which the join must
//! equate.
//!
//! The same times need the same stream: the subplan's tables must be Nexmark tables, whose
//! scans read one shared generator. Two readers of a file or a Kafka topic send a row at times
//! that depend on how each batched its reading, so a row late for a window in one may be on
//! time in the other; such plans are left as written.

use std::collections::VecDeque;

use tidal_engine::state::FastMap;
use tidal_engine::{DataStream, Time};
use tidal_operators::{Window, Windows};

use crate::expr::Scalar;
use crate::plan::{AggFunc, Plan, WindowSpec};
use crate::value::DataType;
use crate::value::{Row, Value};

/// How the rows of one join side are tested against the running extremes of the windows they
/// can meet.
#[derive(Clone, Debug)]
pub(crate) struct ExtremeFilter {
    /// The side filtered: the left input (`false`: the right one).
    pub(crate) left: bool,
    /// The aggregate's windows.
    windows: Windows,
    /// The ends of those windows: `phase` plus multiples of `grid` (ms).
    grid: i64,
    phase: i64,
    /// The windows a row at `ts` can meet end within `ts + from ..= ts + to`.
    from: i64,
    to: i64,
    /// The aggregate's groups (an attached window's start and end, then the grouping
    /// expressions), as expressions on the filtered side's rows.
    keys: Vec<Scalar>,
    /// The aggregated expression, on the filtered side's rows.
    arg: Scalar,
    /// `MAX` (`false`: `MIN`).
    pub(crate) max: bool,
    /// When the window aggregate can read the rows the filter keeps instead of all of its input
    /// (see [`ExtremeFilter::feeds`]).
    feeds: Option<Feeds>,
    /// When the groups (at most two) and the value are columns of integers, dates or
    /// timestamps: those columns, tested as integers ([`ExtremeFilter::keep_ints`]).
    int_columns: Option<(Vec<usize>, usize)>,
}

/// Per group of at most two integers, the extreme so far (see [`ExtremeFilter::keep_ints`]).
pub(crate) type IntGroups = FastMap<[i64; 2], i64>;

/// What [`ExtremeFilter::keep_row`] has seen: on integers, or on values.
pub(crate) enum RowsRunning {
    Ints(Running<IntGroups>),
    Values(Running<Groups>),
}

/// How a window aggregate reads the rows an extreme filter keeps (see
/// [`ExtremeFilter::feeds`]).
#[derive(Clone, Debug)]
pub(crate) struct Feeds {
    /// The aggregate's text (see `exec::without_positions`).
    pub(crate) aggregate: String,
    /// The columns of the kept rows it reads, which the filtered side must therefore make.
    pub(crate) columns: Vec<usize>,
    /// Per column of the aggregate's input, the column of a kept row it is (`None`: one it
    /// does not read, left NULL).
    pub(crate) at: Vec<Option<usize>>,
}

impl Feeds {
    /// A kept row as a row of the aggregate's input.
    pub(crate) fn input_row(&self, row: Row) -> Row {
        let same_place = |(i, c): (usize, &Option<usize>)| c.is_none_or(|c| c == i);
        if self.at.len() == row.0.len() && self.at.iter().enumerate().all(same_place) {
            return row;
        }
        Row(self
            .at
            .iter()
            .map(|c| c.map_or(Value::Null, |c| row.0[c].clone()))
            .collect())
    }
}

/// Whether values of `t` are kept as integers that order them (see `Value::as_ordered_int`).
fn is_ordered_int(t: DataType) -> bool {
    matches!(
        t,
        DataType::Int
            | DataType::BigInt
            | DataType::Date
            | DataType::Timestamp
            | DataType::TimestampLtz
    )
}

/// At most this many windows a row can meet: beyond it, testing each row costs more than the
/// join saves.
const MOST_WINDOWS: i64 = 64;

/// The window aggregate under projections and filters, and the aggregate's output column that
/// column `col` of `plan` is.
fn aggregate_column(plan: &Plan, col: usize) -> Option<(&Plan, usize)> {
    match plan {
        Plan::Project { input, exprs } => match exprs.get(col)?.1.scalar {
            Scalar::Col(c) => aggregate_column(input, c),
            _ => None,
        },
        Plan::Filter { input, .. } => aggregate_column(input, col),
        Plan::WindowAggregate { .. } => Some((plan, col)),
        _ => None,
    }
}

/// Whether every table the plan reads is a Nexmark table: its scans, however many, read one
/// stream of events (see the module's notes).
fn one_stream(plan: &Plan) -> bool {
    match plan {
        Plan::Scan { table } => matches!(table.connector, crate::plan::Connector::Nexmark(_)),
        Plan::Project { input, .. } | Plan::Filter { input, .. } => one_stream(input),
        _ => false,
    }
}

/// A plan's or expression's text without script positions: equal texts compute the same.
fn text(v: &impl std::fmt::Debug) -> String {
    crate::exec::without_positions(&format!("{v:?}"))
}

/// How a join relates a row's value to the aggregate's extreme: equal to it, or at least (for
/// a `MAX`) or at most (for a `MIN`) it. A row beaten by the running extreme can meet it in none
/// of these.
#[derive(Clone, Copy, PartialEq)]
enum Relation {
    Equal,
    AtLeast,
    AtMost,
}

/// `s`, on the columns of `plan`, as an expression on the columns of the plan under `plan`'s
/// projections, and that plan: two sides' expressions that lower to the same text over the same
/// plan compute the same on the same rows.
fn lowered<'a>(mut plan: &'a Plan, s: &Scalar) -> (&'a Plan, Scalar) {
    let mut s = s.clone();
    while let Plan::Project { input, exprs } = plan {
        s = crate::plan::replace_columns(&s, &|c| exprs[c].1.scalar.clone());
        plan = input;
    }
    (plan, s)
}

/// The plan under `plan`'s projections.
fn under_projections(mut plan: &Plan) -> &Plan {
    while let Plan::Project { input, .. } = plan {
        plan = input;
    }
    plan
}

/// The filter for an inner interval join with bounds `lower ..= upper` (right time − left time,
/// ms), when one side is a window aggregate with `MAX` or `MIN` of the other side's rows that
/// the join equates with that side's values (or, for a `MAX`, requires them to be at least it;
/// for a `MIN`, at most), group by group.
///
/// The other side's rows are the aggregate's input rows (a Nexmark scan's, as in q7), or the
/// rows of the same window aggregation that the aggregate reads, projected differently (q5:
/// the auctions' counts per window, joined with the highest count of each window — a
/// cascading aggregation over the windows of the counts, whose rows sit at their window's time).
pub(crate) fn extreme_filter(plan: &Plan, lower: Time, upper: Time) -> Option<ExtremeFilter> {
    let Plan::Join {
        left,
        right,
        left_keys,
        right_keys,
        residual,
        ..
    } = plan
    else {
        return None;
    };
    if lower == Time::MIN || upper == Time::MAX {
        return None;
    }
    let lw = left.fields().len();
    [true, false].into_iter().find_map(|filter_left| {
        let (rows, aggregated, row_keys, agg_keys) = if filter_left {
            (left, right, left_keys, right_keys)
        } else {
            (right, left, right_keys, left_keys)
        };
        // Each (rows' expression, aggregated side's column, relation): the key pairs, then
        // the residual's comparisons of a rows' expression with an aggregated side's column.
        let mut related: Vec<(Scalar, usize, Relation)> = Vec::new();
        for (r, a) in row_keys.iter().zip(agg_keys) {
            if let Scalar::Col(c) = a.scalar {
                related.push((r.scalar.clone(), c, Relation::Equal));
            }
        }
        if let Some(res) = residual {
            // Columns of the joined row as one side's: `None` for the other side's.
            let side = |s: &Scalar, of_rows: bool| -> Option<Scalar> {
                let mut on_side = true;
                crate::plan::visit_columns(s, &mut |c| {
                    on_side &= (c < lw) == (filter_left == of_rows)
                });
                let offset = if filter_left == of_rows { 0 } else { lw };
                on_side.then(|| crate::plan::replace_columns(s, &|c| Scalar::Col(c - offset)))
            };
            let mut conjuncts = Vec::new();
            crate::plan::conjuncts_of(&res.scalar, &mut conjuncts);
            for c in conjuncts {
                let Scalar::Cmp(op, x, y) = c else { continue };
                use crate::expr::CmpOp;
                // As `rows' expression OP aggregated column`.
                let (r, a, op) = match (side(x, true), side(y, false)) {
                    (Some(r), Some(Scalar::Col(a))) => (r, a, *op),
                    _ => match (side(y, true), side(x, false)) {
                        (Some(r), Some(Scalar::Col(a))) => (r, a, op.flipped()),
                        _ => continue,
                    },
                };
                let relation = match op {
                    CmpOp::Eq => Relation::Equal,
                    CmpOp::Ge | CmpOp::Gt => Relation::AtLeast,
                    CmpOp::Le | CmpOp::Lt => Relation::AtMost,
                    CmpOp::Ne => continue,
                };
                related.push((r, a, relation));
            }
        }
        // All on one window aggregate's columns.
        let mut found: Option<&Plan> = None;
        let mut pairs = Vec::new();
        for (r, c, relation) in related {
            let Some((node, col)) = aggregate_column(aggregated, c) else {
                continue;
            };
            if found.is_some_and(|f| !std::ptr::eq(f, node)) {
                return None;
            }
            found = Some(node);
            pairs.push((r, col, relation));
        }
        let node = found?;
        let Plan::WindowAggregate {
            input,
            spec,
            keys,
            aggs,
        } = node
        else {
            return None;
        };
        // The same rows: the aggregate's input and the filtered side are projections of one
        // plan, which is one stream of events (Nexmark scans) or a window aggregation (built
        // once, read by both: sub-plan reuse).
        let (base, input_base) = (under_projections(rows), under_projections(input));
        let same_stream = one_stream(base) || matches!(base, Plan::WindowAggregate { .. });
        if text(base) != text(input_base) || !same_stream {
            return None;
        }
        let same = |r: &Scalar, on_input: &Scalar| {
            text(&lowered(rows, r).1) == text(&lowered(input, on_input).1)
        };
        // The groups: an attached window's own columns (its rows' window_start and
        // window_end), then the grouping expressions; each must be equated with the same
        // expression of the rows, and one MAX or MIN related to its argument.
        let mut groups: Vec<Scalar> = Vec::new();
        if let WindowSpec::Attached { start, end } = *spec {
            groups.extend([Scalar::Col(start), Scalar::Col(end)]);
        }
        let window_columns = groups.len();
        groups.extend(keys.iter().map(|(_, k)| k.scalar.clone()));
        let mut grouped: Vec<Option<Scalar>> = vec![None; groups.len()];
        let mut extreme = None;
        for (r, col, relation) in pairs {
            // The aggregate's columns: window_start, window_end, window_time, keys, aggregates.
            let group = match col {
                0 | 1 if window_columns > 0 => Some(col),
                0..=2 => None,
                c if c - 3 < keys.len() => Some(window_columns + c - 3),
                _ => None,
            };
            if let Some(g) = group {
                if relation == Relation::Equal && same(&r, &groups[g]) {
                    grouped[g] = Some(r);
                }
            } else if let Some(agg) = col.checked_sub(3 + keys.len()).and_then(|i| aggs.get(i))
                && matches!(agg.func, AggFunc::Max | AggFunc::Min)
                && agg.filter.is_none()
                && let Some(arg) = &agg.arg
                && same(&r, arg)
                && extreme.is_none()
            {
                let max = agg.func == AggFunc::Max;
                let fits = match relation {
                    Relation::Equal => true,
                    Relation::AtLeast => max,
                    Relation::AtMost => !max,
                };
                if fits {
                    extreme = Some((r, max));
                }
            }
        }
        let (arg, max) = extreme?;
        // Which aggregate is the extreme, and the window spans a row's own windows can reach.
        let extreme_func = if max { AggFunc::Max } else { AggFunc::Min };
        let keys: Vec<Scalar> = grouped.into_iter().collect::<Option<_>>()?;
        let (windows, grid, phase) = match *spec {
            WindowSpec::Tumble { size } => (crate::exec::windows(*spec), size, 0),
            WindowSpec::Hop { slide, size } => {
                (crate::exec::windows(*spec), slide, size.rem_euclid(slide))
            }
            WindowSpec::Cumulate { step, .. } => (crate::exec::windows(*spec), step, 0),
            // Rows at their window's time (end - 1), each in the window of one millisecond
            // there (its window told apart by its start and end, which lead the groups).
            WindowSpec::Attached { .. } => (crate::exec::windows(*spec), 1, 0),
            WindowSpec::Session { .. } => return None,
        };
        // The aggregate's rows sit at their window's last millisecond (end − 1).
        let (from, to) = if filter_left {
            (lower.checked_add(1)?, upper.checked_add(1)?)
        } else {
            (1i64.checked_sub(upper)?, 1i64.checked_sub(lower)?)
        };
        if to.checked_sub(from)? / grid + 1 > MOST_WINDOWS {
            return None;
        }
        // The aggregate can read only the kept rows when they are exactly its input rows, it
        // computes nothing but this extreme, and every window a row falls in is one it can
        // meet (its end within `ts + from ..= ts + to`): a row is then dropped only when a row
        // of each of its windows seen here beats it, which the window's extreme does too.
        let own_windows = match *spec {
            WindowSpec::Tumble { size }
            | WindowSpec::Hop { size, .. }
            | WindowSpec::Cumulate { size, .. } => size,
            WindowSpec::Attached { .. } => 1,
            WindowSpec::Session { .. } => return None,
        };
        let only_extreme = aggs.iter().all(|a| {
            a.func == extreme_func
                && a.filter.is_none()
                && a.arg.as_ref().is_some_and(|x| same(&arg, x))
        });
        // Where each column of the aggregate's input lies among the filtered rows' columns
        // (the same expression over the same plan), if it does.
        let input_width = input.fields().len();
        let at: Vec<Option<usize>> = (0..input_width)
            .map(|i| (0..rows.fields().len()).find(|&j| same(&Scalar::Col(j), &Scalar::Col(i))))
            .collect();
        let mut read = Vec::new();
        for s in groups
            .iter()
            .chain(aggs.iter().filter_map(|a| a.arg.as_ref()))
        {
            crate::plan::visit_columns(s, &mut |c| read.push(c));
        }
        read.sort_unstable();
        read.dedup();
        let found_all = read.iter().all(|&c| at.get(c).is_some_and(Option::is_some));
        let feeds = (found_all && only_extreme && from <= 1 && to >= own_windows).then(|| {
            // Only the columns the aggregate reads are taken from the kept rows.
            let at: Vec<Option<usize>> = (0..input_width)
                .map(|c| at[c].filter(|_| read.contains(&c)))
                .collect();
            let columns = read.iter().filter_map(|&c| at[c]).collect();
            Feeds {
                aggregate: text(node),
                columns,
                at,
            }
        });
        // Groups and value as integers, when they are columns of such types.
        let types: Vec<DataType> = rows.fields().iter().map(|f| f.ty).collect();
        let int_col = |s: &Scalar| match s {
            Scalar::Col(c) if types.get(*c).is_some_and(|t| is_ordered_int(*t)) => Some(*c),
            _ => None,
        };
        let int_columns = (keys.len() <= 2)
            .then(|| {
                let keys = keys.iter().map(int_col).collect::<Option<Vec<usize>>>()?;
                Some((keys, int_col(&arg)?))
            })
            .flatten();
        Some(ExtremeFilter {
            left: filter_left,
            windows,
            grid,
            phase,
            from,
            to,
            keys,
            arg,
            max,
            feeds,
            int_columns,
        })
    })
}

/// What a filter has seen on one worker: per window end (ascending), what `G` keeps of the
/// window's rows — per group, the extreme value so far ([`Groups`]), or for a filter without
/// groups on an integer, that integer ([`ExtremeFilter::keep_int`]).
pub(crate) struct Running<G> {
    seen: VecDeque<(Time, G)>,
    assigned: Vec<Window>,
    latest: Time,
}

/// Per group, the extreme value so far.
pub(crate) type Groups = FastMap<Vec<Value>, Value>;

impl<G: Default> Running<G> {
    /// What is kept of the window ending at `end`, made when it is new.
    fn slot(&mut self, end: Time) -> &mut G {
        // Rows come nearly in time order: the window is almost always the last one or new.
        let at = match self.seen.back() {
            Some((last, _)) if *last == end => self.seen.len() - 1,
            Some((last, _)) if *last < end => {
                self.seen.push_back((end, G::default()));
                self.seen.len() - 1
            }
            _ => match self.seen.binary_search_by_key(&end, |(e, _)| *e) {
                Ok(at) => at,
                Err(at) => {
                    self.seen.insert(at, (end, G::default()));
                    at
                }
            },
        };
        &mut self.seen[at].1
    }

    /// What is kept of the window ending at `end`, if anything.
    fn get(&self, end: Time) -> Option<&G> {
        let at = self.seen.binary_search_by_key(&end, |(e, _)| *e).ok()?;
        Some(&self.seen[at].1)
    }
}

impl ExtremeFilter {
    /// The rows of `stream` that can meet their windows' extreme.
    pub(crate) fn apply<'s>(self, stream: DataStream<'s, Row>) -> DataStream<'s, Row> {
        use tidal_engine::timely::dataflow::channels::pact::Pipeline;
        use tidal_engine::timely::dataflow::operators::generic::operator::Operator;
        let kind = if self.max { "MAX" } else { "MIN" };
        stream.then(
            &format!("rows that can be a window's {kind}"),
            move |s, op| {
                let f = self;
                let mut running = f.rows_running();
                s.unary(Pipeline, op, move |_, _| {
                    move |input, output| {
                        input.for_each_stamp(|cap, data| {
                            let Some(&t) = cap.least() else { return };
                            let mut session = output.session(&cap);
                            for batch in data {
                                session.give_iterator(
                                    batch
                                        .drain(..)
                                        .filter(|(r, ts)| f.keep_row(&r.0, *ts, t, &mut running)),
                                );
                            }
                        });
                        f.forget_rows(&mut running);
                    }
                })
            },
        )
    }

    /// A start: nothing seen.
    pub(crate) fn running<G>(&self) -> Running<G> {
        Running {
            seen: VecDeque::new(),
            assigned: Vec::new(),
            latest: Time::MIN,
        }
    }

    /// When the window aggregate can read only the rows this filter keeps (rather than every
    /// row of its input): how it reads them.
    ///
    /// That holds when the aggregate's input rows are the kept rows (or the same plan's rows
    /// projected otherwise: the columns the aggregate reads are among theirs), the aggregate
    /// computes nothing but this extreme, and every window a row falls in is one it can meet. A
    /// row is then dropped only when, in each of its windows, a row seen here beats it; the
    /// window's extreme is at least as good as that row, so it is the same without the dropped
    /// one. Rows late for a window of theirs are kept, so that the window operator counts them
    /// as it would. Nexmark q7 so reads the bids once: the window's highest price is taken over
    /// the running maxima alone.
    pub(crate) fn feeds(&self) -> Option<&Feeds> {
        self.feeds.as_ref()
    }

    /// The columns of the filtered side's rows it reads.
    pub(crate) fn columns(&self) -> Vec<usize> {
        let mut read = Vec::new();
        for s in self.keys.iter().chain([&self.arg]) {
            crate::plan::visit_columns(s, &mut |c| read.push(c));
        }
        read.sort_unstable();
        read.dedup();
        read
    }

    /// Forgets the windows ending before the earliest a row sent from now on can meet (a
    /// window not known keeps its rows).
    pub(crate) fn forget<G>(&self, running: &mut Running<G>) {
        let horizon = running.latest.saturating_add(self.from).saturating_sub(1);
        while running.seen.front().is_some_and(|(end, _)| *end < horizon) {
            running.seen.pop_front();
        }
    }

    /// Whether a row at `ts`, sent at time `t`, can meet the extreme of a window it may join;
    /// it also counts towards the windows it falls in.
    pub(crate) fn keep(
        &self,
        row: &[Value],
        ts: Time,
        t: Time,
        running: &mut Running<Groups>,
    ) -> bool {
        // A value or key that cannot be computed: the row goes on, the join reports it.
        let Ok(v) = self.arg.eval(row) else {
            return true;
        };
        if v.is_null() {
            return true;
        }
        let mut key = Vec::with_capacity(self.keys.len());
        for k in &self.keys {
            match k.eval(row) {
                Ok(k) => key.push(k),
                Err(_) => return true,
            }
        }
        self.test(
            ts,
            t,
            running,
            |groups| match groups.get_mut(&key) {
                Some(best) if self.better(&v, best) => *best = v.clone(),
                Some(_) => {}
                None => {
                    groups.insert(key.clone(), v.clone());
                }
            },
            |groups| groups.get(&key).is_some_and(|best| self.better(best, &v)),
        )
    }

    /// The integer column the filter's value is, when it has no groups: such a filter can test
    /// the integer alone ([`keep_int`](Self::keep_int)), read where the row's event lies.
    pub(crate) fn int_column(&self) -> Option<usize> {
        match &self.int_columns {
            Some((keys, arg)) if keys.is_empty() => Some(*arg),
            _ => None,
        }
    }

    /// [`keep`](Self::keep) for a filter of [`int_column`](Self::int_column): whether a row
    /// whose value is `v` can meet the extreme of a window it may join.
    pub(crate) fn keep_int(
        &self,
        v: i64,
        ts: Time,
        t: Time,
        running: &mut Running<Option<i64>>,
    ) -> bool {
        self.test(
            ts,
            t,
            running,
            |best| {
                if best.is_none_or(|b| self.better(&v, &b)) {
                    *best = Some(v);
                }
            },
            |best| best.is_some_and(|b| self.better(&b, &v)),
        )
    }

    /// A start for [`keep_row`](Self::keep_row): nothing seen.
    pub(crate) fn rows_running(&self) -> RowsRunning {
        match self.int_columns {
            Some(_) => RowsRunning::Ints(self.running()),
            None => RowsRunning::Values(self.running()),
        }
    }

    /// Whether a row can meet the extreme of a window it may join (see [`keep`](Self::keep)),
    /// tested on integers when its groups and value are ([`keep_ints`](Self::keep_ints)).
    pub(crate) fn keep_row(
        &self,
        row: &[Value],
        ts: Time,
        t: Time,
        running: &mut RowsRunning,
    ) -> bool {
        match running {
            RowsRunning::Ints(r) => self.keep_ints(row, ts, t, r),
            RowsRunning::Values(r) => self.keep(row, ts, t, r),
        }
    }

    /// [`forget`](Self::forget) for [`keep_row`](Self::keep_row)'s state.
    pub(crate) fn forget_rows(&self, running: &mut RowsRunning) {
        match running {
            RowsRunning::Ints(r) => self.forget(r),
            RowsRunning::Values(r) => self.forget(r),
        }
    }

    /// [`keep`](Self::keep) for a filter whose groups and value are columns of integers,
    /// dates or timestamps ([`int_columns`](Self::int_columns)): compared as the integers they
    /// are kept as, without making a key. A NULL keeps the row.
    fn keep_ints(
        &self,
        row: &[Value],
        ts: Time,
        t: Time,
        running: &mut Running<IntGroups>,
    ) -> bool {
        let Some((keys, arg)) = &self.int_columns else {
            return true;
        };
        let Some(v) = row[*arg].as_ordered_int() else {
            return true;
        };
        let mut key = [0i64; 2];
        for (k, &c) in key.iter_mut().zip(keys) {
            match row[c].as_ordered_int() {
                Some(x) => *k = x,
                None => return true,
            }
        }
        self.test(
            ts,
            t,
            running,
            |groups| match groups.get_mut(&key) {
                Some(best) if self.better(&v, best) => *best = v,
                Some(_) => {}
                None => {
                    groups.insert(key, v);
                }
            },
            |groups| groups.get(&key).is_some_and(|best| self.better(best, &v)),
        )
    }

    /// Whether `v` beats `than`: greater for a `MAX`, less for a `MIN`.
    fn better<T: PartialOrd>(&self, v: &T, than: &T) -> bool {
        if self.max { v > than } else { v < than }
    }

    /// The test of [`keep`](Self::keep) on what `G` keeps of each window: `count` adds the row
    /// to the windows it falls in, `beaten` tells whether a window's rows seen so far beat it.
    fn test<G: Default>(
        &self,
        ts: Time,
        t: Time,
        running: &mut Running<G>,
        mut count: impl FnMut(&mut G),
        beaten: impl Fn(&G) -> bool,
    ) -> bool {
        running.latest = running.latest.max(t);
        let mut assigned = std::mem::take(&mut running.assigned);
        assigned.clear();
        self.windows.assign(ts, &mut assigned);
        for w in assigned.iter().filter(|w| w.end > t) {
            count(running.slot(w.end));
        }
        // A row late for a window of its own goes on when the aggregate reads the kept rows:
        // the window operator reports it (or fires the window again) as it would have.
        let late = self.feeds.is_some() && assigned.iter().any(|w| w.end <= t);
        running.assigned = assigned;
        if late {
            return true;
        }
        // The ends of the windows the row can meet, on the windows' grid.
        let (Some(first), Some(last)) = (ts.checked_add(self.from), ts.checked_add(self.to)) else {
            return true;
        };
        // (An end past the time range keeps the row.)
        let Some(mut end) = self
            .phase
            .checked_sub(first)
            .and_then(|d| first.checked_add(d.rem_euclid(self.grid)))
        else {
            return true;
        };
        while end <= last {
            if !running.get(end).is_some_and(&beaten) {
                return true;
            }
            let Some(next) = end.checked_add(self.grid) else {
                return true;
            };
            end = next;
        }
        false
    }
}
