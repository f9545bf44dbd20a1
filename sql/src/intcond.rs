//! Conditions on integer columns compiled into closures.
//!
//! A `WHERE` such as `MOD(auction, 123) = 0` or `category = 10 AND price > 1000` reads only
//! integer columns (and a join's `b.t BETWEEN a.start AND a.end` only timestamps, compared as
//! their milliseconds; dates as their days). Evaluated on the expression tree, each row pays for making a [`Value`] per
//! column read, for matching every node's kind and type, and for wrapping every intermediate
//! result. Compiled here, once per operator, into closures over the columns' integers, a row
//! costs loading those integers and calling a closure or two.
//!
//! A compiled condition gives the result the tree gives ([`Scalar::holds`]), or `None` where the
//! general way must decide: a column that is not an integer in this row (a NULL), or an
//! arithmetic error (a division by zero), which the general way reports. `AND` and `OR` stop
//! where the general way stops (`FALSE AND e` does not evaluate `e`, so an error in `e` is no
//! error there either).

use crate::expr::{CmpOp, Scalar, int_arith as arith};
use crate::value::{DataType, Value};

/// The most columns a compiled condition reads (their integers are held on the stack).
pub(crate) const MOST_COLUMNS: usize = 8;

type IntFn = Box<dyn Fn(&[i64]) -> Option<i64>>;
type BoolFn = Box<dyn Fn(&[i64]) -> Option<bool>>;

/// An integer operand: a column's slot, a constant, or computed.
enum Int {
    Slot(usize),
    Const(i64),
    Computed(IntFn),
}

impl Int {
    #[inline(always)]
    fn get(&self, slots: &[i64]) -> Option<i64> {
        match self {
            Int::Slot(i) => Some(slots[*i]),
            Int::Const(c) => Some(*c),
            Int::Computed(f) => f(slots),
        }
    }
}

/// A condition that reads only INT and BIGINT columns (and DATE, TIMESTAMP and TIMESTAMP_LTZ
/// columns compared with their own type), compiled: `MOD(auction, 123) = 0` on
/// a row whose column 0 is `auction BIGINT` reads `columns() == [0]`, and `test(&[246])` is
/// `Some(true)` (see the tests below).
pub(crate) struct IntCondition {
    columns: Vec<usize>,
    test: BoolFn,
}

impl IntCondition {
    /// `cond` compiled against columns of types `types`, or `None` if it reads anything but
    /// INT and BIGINT columns and constants, arithmetic (`+ - * / %`) and comparisons of them,
    /// comparisons of a DATE, TIMESTAMP or TIMESTAMP_LTZ column or constant with one of its
    /// own type, `AND`, `OR` and `NOT`, or more than [`MOST_COLUMNS`] columns.
    pub(crate) fn compile(cond: &Scalar, types: &[DataType]) -> Option<IntCondition> {
        let mut columns = Vec::new();
        let test = boolean(cond, types, &mut columns)?;
        (columns.len() <= MOST_COLUMNS).then_some(IntCondition { columns, test })
    }

    /// The columns it reads, in the order [`test`](Self::test) takes their values.
    pub(crate) fn columns(&self) -> &[usize] {
        &self.columns
    }

    /// Whether it holds for a row whose columns [`columns`](Self::columns) have the values
    /// `slots`; `None` on an arithmetic error (the general way reports it).
    #[inline]
    pub(crate) fn test(&self, slots: &[i64]) -> Option<bool> {
        (self.test)(slots)
    }

    /// Whether it holds for `row`; `None` where the general way must decide (a column read is
    /// NULL, or an arithmetic error).
    #[inline]
    pub(crate) fn test_row(&self, row: &[Value]) -> Option<bool> {
        self.test_split(row, &[])
    }

    /// [`test_row`](Self::test_row) for the row whose columns are those of `a`, then those of
    /// `b` (a join's pair, tested without being made).
    #[inline]
    pub(crate) fn test_split(&self, a: &[Value], b: &[Value]) -> Option<bool> {
        let n = a.len();
        self.test_with(|c| if c < n { &a[c] } else { &b[c - n] }.as_ordered_int())
    }

    /// Whether it holds for a row whose column `c` is the integer `column(c)`; `None` where
    /// the general way must decide (`column` gave `None`: NULL, or an arithmetic error).
    #[inline]
    pub(crate) fn test_with(&self, column: impl Fn(usize) -> Option<i64>) -> Option<bool> {
        let mut slots = [0i64; MOST_COLUMNS];
        for (s, &c) in slots.iter_mut().zip(&self.columns) {
            *s = column(c)?;
        }
        self.test(&slots[..self.columns.len()])
    }
}

/// Which values compare as integers with which: INT and BIGINT with each other, and a date,
/// a timestamp or a timestamp with local time zone each with its own type.
fn class(t: DataType) -> Option<u8> {
    match t {
        DataType::Int | DataType::BigInt => Some(0),
        DataType::Date => Some(1),
        DataType::Timestamp => Some(2),
        DataType::TimestampLtz => Some(3),
        _ => None,
    }
}

/// An operand of a comparison compiled, with its [`class`]: an integer expression, or a
/// date or timestamp column or constant (compared as its days or milliseconds).
fn operand(e: &Scalar, types: &[DataType], columns: &mut Vec<usize>) -> Option<(Int, u8)> {
    match e {
        Scalar::Col(c) => match types.get(*c).copied().and_then(class) {
            Some(k) if k > 0 => Some((Int::Slot(slot(*c, columns)), k)),
            _ => integer(e, types, columns).map(|i| (i, 0)),
        },
        Scalar::Lit(Value::Date(x)) => Some((Int::Const(i64::from(*x)), 1)),
        Scalar::Lit(Value::Timestamp(x)) => Some((Int::Const(*x), 2)),
        Scalar::Lit(Value::TimestampLtz(x)) => Some((Int::Const(*x), 3)),
        _ => integer(e, types, columns).map(|i| (i, 0)),
    }
}

fn slot(c: usize, columns: &mut Vec<usize>) -> usize {
    match columns.iter().position(|&x| x == c) {
        Some(i) => i,
        None => {
            columns.push(c);
            columns.len() - 1
        }
    }
}

/// An INT or BIGINT expression compiled.
fn integer(e: &Scalar, types: &[DataType], columns: &mut Vec<usize>) -> Option<Int> {
    Some(match e {
        Scalar::Col(c) if matches!(types.get(*c), Some(DataType::Int | DataType::BigInt)) => {
            Int::Slot(slot(*c, columns))
        }
        Scalar::Lit(Value::BigInt(x)) => Int::Const(*x),
        Scalar::Lit(Value::Int(x)) => Int::Const(i64::from(*x)),
        Scalar::Arith(op, l, r, ty @ (DataType::Int | DataType::BigInt)) => {
            let (op, int32) = (*op, *ty == DataType::Int);
            let (l, r) = (integer(l, types, columns)?, integer(r, types, columns)?);
            if let (Int::Const(a), Int::Const(b)) = (&l, &r) {
                // Folded now unless it fails: then every row takes the general way.
                if let Some(v) = arith(op, int32, *a, *b) {
                    return Some(Int::Const(v));
                }
            }
            Int::Computed(match (l, r) {
                (Int::Slot(a), Int::Const(b)) => {
                    Box::new(move |s: &[i64]| arith(op, int32, s[a], b))
                }
                (l, r) => Box::new(move |s: &[i64]| arith(op, int32, l.get(s)?, r.get(s)?)),
            })
        }
        _ => return None,
    })
}

/// A condition compiled.
fn boolean(e: &Scalar, types: &[DataType], columns: &mut Vec<usize>) -> Option<BoolFn> {
    Some(match e {
        Scalar::Cmp(op, l, r) => {
            let op: CmpOp = *op;
            let ((l, lk), (r, rk)) = (operand(l, types, columns)?, operand(r, types, columns)?);
            if lk != rk {
                return None;
            }
            match (l, r) {
                (l, Int::Const(b)) => {
                    Box::new(move |s: &[i64]| Some(op.holds_for(l.get(s)?.cmp(&b))))
                }
                (l, r) => Box::new(move |s: &[i64]| Some(op.holds_for(l.get(s)?.cmp(&r.get(s)?)))),
            }
        }
        Scalar::And(l, r) => {
            let (l, r) = (boolean(l, types, columns)?, boolean(r, types, columns)?);
            Box::new(move |s: &[i64]| if l(s)? { r(s) } else { Some(false) })
        }
        Scalar::Or(l, r) => {
            let (l, r) = (boolean(l, types, columns)?, boolean(r, types, columns)?);
            Box::new(move |s: &[i64]| if l(s)? { Some(true) } else { r(s) })
        }
        Scalar::Not(x) => {
            let x = boolean(x, types, columns)?;
            Box::new(move |s: &[i64]| x(s).map(|b| !b))
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::ArithOp;

    fn col(c: usize) -> Box<Scalar> {
        Box::new(Scalar::Col(c))
    }
    fn big(x: i64) -> Box<Scalar> {
        Box::new(Scalar::Lit(Value::BigInt(x)))
    }
    fn arith(op: ArithOp, l: Box<Scalar>, r: Box<Scalar>, ty: DataType) -> Box<Scalar> {
        Box::new(Scalar::Arith(op, l, r, ty))
    }

    /// Conditions over a row of (BIGINT, INT, BIGINT, VARCHAR).
    fn conditions() -> Vec<Scalar> {
        use ArithOp::*;
        use CmpOp::*;
        let int = DataType::Int;
        let bigint = DataType::BigInt;
        vec![
            Scalar::Cmp(Eq, arith(Mod, col(0), big(123), bigint), big(0)),
            Scalar::Cmp(Gt, arith(Mul, col(1), col(1), int), big(1000)),
            Scalar::Cmp(Le, arith(Div, col(0), col(2), bigint), big(3)),
            Scalar::And(
                Box::new(Scalar::Cmp(Ge, col(0), big(10))),
                Box::new(Scalar::Cmp(Ne, arith(Mod, col(0), col(2), bigint), big(1))),
            ),
            Scalar::Or(
                Box::new(Scalar::Cmp(Lt, col(2), col(0))),
                Box::new(Scalar::Not(Box::new(Scalar::Cmp(
                    Eq,
                    arith(Sub, col(1), big(7), int),
                    arith(Add, big(2), big(3), bigint),
                )))),
            ),
            Scalar::Cmp(
                Eq,
                arith(Add, col(1), big(1), int),
                big(i64::from(i32::MIN)),
            ),
        ]
    }

    #[test]
    fn compiled_conditions_agree_with_the_expression_tree() {
        let types = [
            DataType::BigInt,
            DataType::Int,
            DataType::BigInt,
            DataType::String,
        ];
        let values = [
            0,
            1,
            -1,
            7,
            10,
            12,
            123,
            246,
            1000,
            i64::from(i32::MAX),
            i64::MIN,
            -1,
        ];
        let mut decided = 0;
        for cond in conditions() {
            let compiled = IntCondition::compile(&cond, &types).expect("compiles");
            for &a in &values {
                for &b in &values {
                    for &c in &values {
                        let row = [
                            Value::BigInt(a),
                            Value::Int(b as i32),
                            Value::BigInt(c),
                            Value::str("x"),
                        ];
                        match compiled.test_row(&row) {
                            Some(fast) => {
                                assert_eq!(Ok(fast), cond.holds(&row), "{cond:?} on {row:?}");
                                decided += 1;
                            }
                            // Left to the general way: only where it reports an error.
                            None => assert!(cond.holds(&row).is_err(), "{cond:?} on {row:?}"),
                        }
                    }
                }
            }
        }
        assert!(decided > 9000, "{decided}");
    }

    #[test]
    fn timestamps_and_dates_compare_with_their_own_type_on_a_split_row() {
        use CmpOp::*;
        // A join's residual: b.t BETWEEN a.start AND a.end, and a date after a constant; the
        // pair's row is a's columns (start, end, day), then b's (t).
        let ts = DataType::Timestamp;
        let types = [ts, ts, DataType::Date, ts];
        let between = Scalar::And(
            Box::new(Scalar::Cmp(Ge, col(3), col(0))),
            Box::new(Scalar::Cmp(Le, col(3), col(1))),
        );
        let day = Box::new(Scalar::Lit(Value::Date(19_000)));
        let cond = Scalar::And(Box::new(between), Box::new(Scalar::Cmp(Gt, col(2), day)));
        let c = IntCondition::compile(&cond, &types).expect("compiles");
        let mut decided = 0;
        for start in [0, 5, 10] {
            for end in [4, 10, 20] {
                for day in [18_999, 19_000, 19_001] {
                    for t in [-1, 0, 5, 10, 11, 20, 21] {
                        let a = [
                            Value::Timestamp(start),
                            Value::Timestamp(end),
                            Value::Date(day),
                        ];
                        let b = [Value::Timestamp(t)];
                        let row: Vec<Value> = a.iter().chain(&b).cloned().collect();
                        assert_eq!(c.test_split(&a, &b).map(Ok), Some(cond.holds(&row)));
                        decided += 1;
                    }
                }
            }
        }
        assert_eq!(decided, 189);
        // A NULL timestamp is left to the general way.
        let a = [Value::Null, Value::Timestamp(9), Value::Date(19_001)];
        assert_eq!(c.test_split(&a, &[Value::Timestamp(5)]), None);
        // A timestamp is not compared with an integer here, nor a date with a timestamp.
        let mixed = Scalar::Cmp(Lt, col(0), big(3));
        assert!(IntCondition::compile(&mixed, &types).is_none());
        let mixed = Scalar::Cmp(Lt, col(2), col(3));
        assert!(IntCondition::compile(&mixed, &types).is_none());
    }

    #[test]
    fn a_null_or_a_column_of_another_type_is_left_to_the_general_way() {
        let types = [DataType::BigInt, DataType::String];
        let cond = Scalar::Cmp(CmpOp::Eq, col(0), big(1));
        let c = IntCondition::compile(&cond, &types).expect("compiles");
        assert_eq!(c.test_row(&[Value::Null, Value::str("a")]), None);
        assert_eq!(c.test_row(&[Value::BigInt(1), Value::Null]), Some(true));
        let on_text = Scalar::Cmp(CmpOp::Eq, col(1), Box::new(Scalar::Lit(Value::str("a"))));
        assert!(IntCondition::compile(&on_text, &types).is_none());
    }
}
