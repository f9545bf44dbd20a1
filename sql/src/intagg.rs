//! Window aggregates over integers kept as integers.
//!
//! `COUNT`, and `SUM`, `AVG`, `MIN` and `MAX` of integer-like columns (BIGINT, INT, and for
//! `MIN`/`MAX` DATE and TIMESTAMP), without `DISTINCT`, are the window aggregates of most
//! streaming queries (every Nexmark one). Their general accumulators ([`Acc`](crate::plan::Acc):
//! a count and a [`Value`], folded by matching on the aggregate and the value's type) cost a
//! window operator, per record and window, a 40-byte accumulator per aggregate and a dispatch per
//! update. Here a record's contribution is taken once, when it is keyed: per aggregate an
//! integer and whether it counts ([`IntArgs`]); and a window's accumulators are per aggregate a
//! count and an integer ([`IntAccs`], 16 bytes), added to with integer arithmetic.
//!
//! The results are those of the general accumulators: sums wrap in their type as SQL's integer
//! arithmetic does here (an `INT` sum kept in 64 bits and cut to 32 at the end is the same as
//! one wrapped at every step), `AVG` of integers is the integer quotient, and an aggregate that
//! saw no value is NULL (a `COUNT` is 0).

use std::rc::Rc;

use tidal_engine::WorkerContext;

use crate::expr::Scalar;
use crate::plan::{Agg, AggFunc};
use crate::value::{DataType, Value};

/// What `M` aggregates take from one record: per aggregate an integer, and (bit `i` of
/// `present`) whether the record counts for aggregate `i` (a NULL argument, or a `FILTER` that
/// does not hold, does not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(bound(
    serialize = "[i64; M]: serde::Serialize",
    deserialize = "[i64; M]: serde::Deserialize<'de>"
))]
pub(crate) struct IntArgs<const M: usize> {
    v: [i64; M],
    present: u8,
}

/// The accumulators of `M` aggregates of one key and window: per aggregate the number of
/// values added and their sum, least or greatest (unused for `COUNT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(bound(
    serialize = "[i64; M]: serde::Serialize",
    deserialize = "[i64; M]: serde::Deserialize<'de>"
))]
pub(crate) struct IntAccs<const M: usize> {
    n: [i64; M],
    v: [i64; M],
}

/// Aggregates that all have integer accumulators: how to take a record's [`IntArgs`] and
/// turn [`IntAccs`] into the results.
#[derive(Clone)]
pub(crate) struct IntAggs {
    aggs: Rc<Vec<Agg>>,
    ctx: Option<Rc<WorkerContext>>,
}

impl IntAggs {
    /// The most aggregates kept this way.
    pub(crate) const MOST: usize = 4;

    /// Integer accumulators for `aggs`, if each of them can have one.
    pub(crate) fn of(aggs: &[Agg]) -> Option<IntAggs> {
        let fits = |a: &Agg| {
            !a.distinct
                && match a.func {
                    AggFunc::Count => true,
                    AggFunc::Sum | AggFunc::Avg => {
                        matches!(a.arg_ty, DataType::Int | DataType::BigInt)
                            && matches!(a.ty, DataType::Int | DataType::BigInt)
                    }
                    AggFunc::Min | AggFunc::Max => {
                        a.ty == a.arg_ty
                            && matches!(
                                a.arg_ty,
                                DataType::Int
                                    | DataType::BigInt
                                    | DataType::Date
                                    | DataType::Timestamp
                                    | DataType::TimestampLtz
                            )
                    }
                }
        };
        (aggs.len() <= Self::MOST && aggs.iter().all(fits)).then(|| IntAggs {
            aggs: Rc::new(aggs.to_vec()),
            ctx: None,
        })
    }

    /// The same, failing the job through `ctx` when an argument cannot be evaluated.
    pub(crate) fn on(mut self, ctx: &Rc<WorkerContext>) -> IntAggs {
        self.ctx = Some(Rc::clone(ctx));
        self
    }

    /// Whether the aggregates fit in `M` accumulators.
    pub(crate) fn fit(&self, m: usize) -> bool {
        self.aggs.len() <= m
    }

    fn fail(&self, what: &str, m: &str) {
        if let Some(ctx) = &self.ctx {
            crate::exec::fail(ctx, what, m);
        }
    }

    /// When no aggregate has a `FILTER` and each reads nothing (`COUNT(*)`) or a plain column:
    /// per aggregate the column whose integer it takes (`None`: it takes none, as `COUNT`
    /// does). A column `never_null` does not say is never NULL makes this `None` too: then a
    /// row's contributions depend on its values' NULLs, and [`args`](Self::args) takes them.
    pub(crate) fn plain_columns(
        &self,
        never_null: impl Fn(usize) -> bool,
    ) -> Option<Vec<Option<usize>>> {
        self.aggs
            .iter()
            .map(|a| match (&a.filter, &a.arg) {
                (Some(_), _) => None,
                (None, None) => Some(None),
                (None, Some(Scalar::Col(c))) if never_null(*c) => {
                    Some((a.func != AggFunc::Count).then_some(*c))
                }
                _ => None,
            })
            .collect()
    }

    /// Whether every aggregate is a count without `FILTER` or `DISTINCT`: `COUNT(*)`, or
    /// `COUNT` of a column (to be given only rows in which it is never NULL).
    pub(crate) fn counts_only(&self) -> bool {
        self.aggs
            .iter()
            .all(|a| a.func == AggFunc::Count && a.filter.is_none() && !a.distinct)
    }

    /// The aggregates' values for a key and window of `n` rows when [`counts_only`](Self::counts_only)
    /// holds, pushed onto `out`.
    pub(crate) fn count_results(&self, n: i64, out: &mut Vec<Value>) {
        // Each count's accumulator: `n` values, nothing summed.
        let accs = IntAccs {
            n: [n; Self::MOST],
            v: [0; Self::MOST],
        };
        self.results(&accs, out);
    }

    /// What a row adds to each aggregate when every one counts it (see
    /// [`plain_columns`](Self::plain_columns)): per aggregate its integer `v[i]`.
    pub(crate) fn counted<const M: usize>(&self, v: [i64; M]) -> IntArgs<M> {
        IntArgs {
            v,
            present: ((1u16 << self.aggs.len().min(M)) - 1) as u8,
        }
    }

    /// What `row` adds to each aggregate (an argument or filter that fails to evaluate fails
    /// the job, and the row adds nothing to that aggregate).
    pub(crate) fn args<const M: usize>(&self, row: &[Value]) -> IntArgs<M> {
        let mut out = IntArgs {
            v: [0; M],
            present: 0,
        };
        for (i, a) in self.aggs.iter().enumerate() {
            match self.arg(a, row) {
                Ok(Some(x)) => {
                    out.v[i] = x;
                    out.present |= 1 << i;
                }
                Ok(None) => {}
                Err(m) => self.fail(&a.text, &m),
            }
        }
        out
    }

    /// One aggregate's integer for `row`: `None` when the row does not count for it.
    fn arg(&self, a: &Agg, row: &[Value]) -> crate::expr::Eval<Option<i64>> {
        if let Some(f) = &a.filter
            && !f.holds(row)?
        {
            return Ok(None);
        }
        let computed;
        let v = match &a.arg {
            None => return Ok(Some(0)),
            Some(Scalar::Col(c)) => &row[*c],
            Some(s) => {
                computed = s.eval(row)?;
                &computed
            }
        };
        Ok(match v {
            Value::Null => None,
            _ if a.func == AggFunc::Count => Some(0),
            Value::BigInt(x) | Value::Timestamp(x) | Value::TimestampLtz(x) => Some(*x),
            Value::Int(x) | Value::Date(x) => Some(i64::from(*x)),
            other => {
                return Err(format!(
                    "{other} is not of the argument's type {}",
                    a.arg_ty
                ));
            }
        })
    }

    /// Accumulators with `args` added.
    pub(crate) fn create<const M: usize>(&self, args: IntArgs<M>) -> IntAccs<M> {
        let mut accs = IntAccs {
            n: [0; M],
            v: [0; M],
        };
        self.add(&mut accs, args);
        accs
    }

    /// Adds a record's `args`.
    #[inline]
    pub(crate) fn add<const M: usize>(&self, accs: &mut IntAccs<M>, args: IntArgs<M>) {
        for (i, a) in self.aggs.iter().enumerate().take(M) {
            if args.present & (1 << i) != 0 {
                fold(a.func, &mut accs.n[i], &mut accs.v[i], 1, args.v[i]);
            }
        }
    }

    /// Merges the accumulators of other records of the same key and window.
    pub(crate) fn merge<const M: usize>(&self, accs: &mut IntAccs<M>, other: IntAccs<M>) {
        for (i, a) in self.aggs.iter().enumerate().take(M) {
            if other.n[i] > 0 {
                fold(
                    a.func,
                    &mut accs.n[i],
                    &mut accs.v[i],
                    other.n[i],
                    other.v[i],
                );
            }
        }
    }

    /// Merges `other` as [`merge`](Self::merge) does, and says whether any aggregate's result
    /// changed (a `MIN` or `MAX` only when `other` holds a value beyond it), for a rolling
    /// aggregate that emits only the groups whose results changed.
    pub(crate) fn merge_changed<const M: usize>(
        &self,
        accs: &mut IntAccs<M>,
        other: IntAccs<M>,
    ) -> bool {
        let mut changed = false;
        for (i, a) in self.aggs.iter().enumerate().take(M) {
            let (n, v) = (other.n[i], other.v[i]);
            if n == 0 {
                continue;
            }
            changed |= match a.func {
                AggFunc::Min => accs.n[i] == 0 || v < accs.v[i],
                AggFunc::Max => accs.n[i] == 0 || v > accs.v[i],
                _ => true,
            };
            fold(a.func, &mut accs.n[i], &mut accs.v[i], n, v);
        }
        changed
    }

    /// The aggregates' values, pushed onto `out`.
    pub(crate) fn results<const M: usize>(&self, accs: &IntAccs<M>, out: &mut Vec<Value>) {
        for (i, a) in self.aggs.iter().enumerate().take(M) {
            let (n, v) = (accs.n[i], accs.v[i]);
            let value = match a.func {
                // The common results made directly (as `result_of_sums` makes them).
                AggFunc::Count => Value::BigInt(n),
                _ if n == 0 => Value::Null,
                AggFunc::Sum if a.ty == DataType::BigInt => Value::BigInt(v),
                AggFunc::Min | AggFunc::Max => match a.ty {
                    DataType::Int => Value::Int(v as i32),
                    DataType::Date => Value::Date(v as i32),
                    DataType::Timestamp => Value::Timestamp(v),
                    DataType::TimestampLtz => Value::TimestampLtz(v),
                    _ => Value::BigInt(v),
                },
                AggFunc::Sum | AggFunc::Avg => a
                    .result_of_sums(i128::from(n), i128::from(v))
                    .unwrap_or_else(|m| {
                        self.fail(&a.text, &m);
                        Value::Null
                    }),
            };
            out.push(value);
        }
    }
}

/// Folds `count` values (at least one) whose sum, least or greatest is `x` into an
/// accumulator of `func` that holds `n` values folded into `v`.
#[inline]
fn fold(func: AggFunc, n: &mut i64, v: &mut i64, count: i64, x: i64) {
    *v = match func {
        AggFunc::Count => 0,
        AggFunc::Sum | AggFunc::Avg => v.wrapping_add(x),
        AggFunc::Min if *n > 0 => (*v).min(x),
        AggFunc::Max if *n > 0 => (*v).max(x),
        AggFunc::Min | AggFunc::Max => x,
    };
    *n += count;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Acc;

    fn agg(func: AggFunc, arg: Option<usize>, arg_ty: DataType, ty: DataType) -> Agg {
        Agg {
            func,
            arg: arg.map(Scalar::Col),
            arg_ty,
            distinct: false,
            filter: None,
            ty,
            text: format!("{func:?}"),
        }
    }

    /// Integer accumulators give what the general ones give, added one by one and merged in
    /// two parts, on rows with NULLs, negative values and sums that wrap.
    #[test]
    fn integer_accumulators_agree_with_the_general_ones() {
        let aggs = vec![
            agg(AggFunc::Count, None, DataType::Null, DataType::BigInt),
            agg(AggFunc::Sum, Some(0), DataType::Int, DataType::Int),
            agg(AggFunc::Min, Some(1), DataType::BigInt, DataType::BigInt),
            agg(AggFunc::Avg, Some(1), DataType::BigInt, DataType::BigInt),
        ];
        let ints = IntAggs::of(&aggs).expect("all four fit");
        let rows: Vec<Vec<Value>> = (0..40i64)
            .map(|i| {
                vec![
                    if i % 7 == 0 {
                        Value::Null
                    } else {
                        Value::Int(i32::MAX - 4 + i as i32 % 5)
                    },
                    if i % 5 == 0 {
                        Value::Null
                    } else {
                        Value::BigInt((i * 37) % 23 - 11)
                    },
                ]
            })
            .collect();
        for split in [0, 1, 17, 40] {
            let mut general: Vec<Acc> = aggs.iter().map(Agg::start).collect();
            for r in &rows {
                for (a, acc) in aggs.iter().zip(&mut general) {
                    a.add(acc, r).unwrap();
                }
            }
            let expected: Vec<Value> = aggs
                .iter()
                .zip(&general)
                .map(|(a, acc)| a.result(acc).unwrap())
                .collect();
            let fold = |part: &[Vec<Value>]| {
                let mut accs = IntAccs::<4> {
                    n: [0; 4],
                    v: [0; 4],
                };
                for r in part {
                    ints.add(&mut accs, ints.args::<4>(r));
                }
                accs
            };
            let mut accs = fold(&rows[..split]);
            ints.merge(&mut accs, fold(&rows[split..]));
            let mut got = Vec::new();
            ints.results(&accs, &mut got);
            assert_eq!(got, expected, "split at {split}");
        }
        // With no rows: COUNT 0, the others NULL.
        let mut got = Vec::new();
        ints.results(
            &ints.create::<4>(IntArgs {
                v: [0; 4],
                present: 0,
            }),
            &mut got,
        );
        assert_eq!(
            got,
            vec![Value::BigInt(0), Value::Null, Value::Null, Value::Null]
        );
    }

    #[test]
    fn distinct_doubles_and_strings_keep_the_general_accumulators() {
        let fits = |func, arg_ty, ty| IntAggs::of(&[agg(func, Some(0), arg_ty, ty)]).is_some();
        let mut distinct = agg(AggFunc::Count, Some(0), DataType::BigInt, DataType::BigInt);
        distinct.distinct = true;
        assert!(IntAggs::of(&[distinct]).is_none());
        assert!(!fits(AggFunc::Sum, DataType::Double, DataType::Double));
        assert!(!fits(AggFunc::Max, DataType::String, DataType::String));
        assert!(!fits(
            AggFunc::Sum,
            DataType::Decimal(10, 2),
            DataType::Decimal(38, 2)
        ));
        assert!(fits(AggFunc::Count, DataType::String, DataType::BigInt));
        assert!(fits(AggFunc::Min, DataType::Timestamp, DataType::Timestamp));
    }
}
