//! Scalar expressions: sqlparser's expressions resolved against the columns in scope, typed, and
//! evaluated on rows with SQL's NULL semantics.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlparser::ast::{self, BinaryOperator, Expr, Spanned, UnaryOperator};

use crate::parse::{Pos, SqlError, data_type, object_name};
use crate::value::{self, DataType, Value, rescale};

/// A column in scope: its table (or alias), name and type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// The table or alias it belongs to.
    pub qualifier: Option<String>,
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: DataType,
}

/// The columns an expression may name, in the order of the rows it is evaluated on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// The columns.
    pub fields: Vec<Field>,
    /// Expressions (as written) that stand for a column: after a GROUP BY, the grouping
    /// expressions and the aggregates.
    pub subst: Vec<(String, usize)>,
    /// Whether this is the scope after a GROUP BY (for messages).
    pub grouped: bool,
}

impl Scope {
    /// The index of the column `parts` names (`name` or `qualifier.name`, matched without regard
    /// to case when no column matches exactly).
    pub(crate) fn resolve(&self, parts: &[String], pos: Pos) -> Result<usize, SqlError> {
        let matches = |exact: bool| -> Vec<usize> {
            let eq = |a: &str, b: &str| {
                if exact {
                    a == b
                } else {
                    a.eq_ignore_ascii_case(b)
                }
            };
            self.fields
                .iter()
                .enumerate()
                .filter(|(_, f)| match parts {
                    [name] => eq(&f.name, name),
                    [q, name] => {
                        eq(&f.name, name) && f.qualifier.as_deref().is_some_and(|fq| eq(fq, q))
                    }
                    _ => false,
                })
                .map(|(i, _)| i)
                .collect()
        };
        let mut found = matches(true);
        if found.is_empty() {
            found = matches(false);
        }
        let written = parts.join(".");
        match found[..] {
            [i] => Ok(i),
            [] if self.grouped => Err(SqlError::at(
                pos,
                format!(
                    "'{written}' is neither grouped nor aggregated: add it to GROUP BY or aggregate it"
                ),
            )),
            [] => Err(SqlError::at(
                pos,
                format!(
                    "unknown column '{written}' (columns here: {})",
                    self.fields
                        .iter()
                        .map(|f| match &f.qualifier {
                            Some(q) if parts.len() == 2 => format!("{q}.{}", f.name),
                            _ => f.name.clone(),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            _ => Err(SqlError::at(
                pos,
                format!("column '{written}' is ambiguous: qualify it with its table's name"),
            )),
        }
    }
}

/// Arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`, `MOD`
    Mod,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The comparison with its sides swapped (`a < b` is `b > a`).
    pub(crate) fn flipped(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            other => other,
        }
    }

    /// Whether two values in order `o` (the left against the right) satisfy the comparison.
    #[inline]
    pub(crate) fn holds_for(self, o: std::cmp::Ordering) -> bool {
        match self {
            CmpOp::Eq => o.is_eq(),
            CmpOp::Ne => o.is_ne(),
            CmpOp::Lt => o.is_lt(),
            CmpOp::Le => o.is_le(),
            CmpOp::Gt => o.is_gt(),
            CmpOp::Ge => o.is_ge(),
        }
    }
}

/// Built-in scalar functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Func {
    /// `COALESCE(a, b, ...)`
    Coalesce,
    /// `UPPER(s)`
    Upper,
    /// `LOWER(s)`
    Lower,
    /// `CONCAT(a, b, ...)`, `a || b`
    Concat,
    /// `CHAR_LENGTH(s)`
    CharLength,
    /// `SUBSTRING(s FROM i [FOR n])`, `SUBSTR(s, i [, n])`
    Substring,
    /// `TRIM(s)`
    Trim,
    /// `TRIM([BOTH | LEADING | TRAILING] chars FROM s)`, `LTRIM(s)`, `RTRIM(s)`: arguments
    /// (s, chars): whether to trim the start and the end.
    TrimChars(bool, bool),
    /// `POSITION(needle IN s)`, `LOCATE(needle, s)`: the 1-based character position of the first
    /// occurrence, 0 if none.
    Position,
    /// `REPLACE(s, from, to)`: every occurrence of `from` replaced.
    Replace,
    /// `ROUND(x [, digits])`: half away from zero, to `digits` decimal places (default 0).
    Round,
    /// `ABS(x)`
    Abs,
    /// `SPLIT_INDEX(s, sep, i)`
    SplitIndex,
    /// `REGEXP_EXTRACT(s, pattern [, group])`
    RegexpExtract,
    /// `DATE_FORMAT(ts, format)`
    DateFormat,
    /// `TO_TIMESTAMP(s [, format])`
    ToTimestamp,
    /// `TO_TIMESTAMP_LTZ(n [, precision])`: epoch seconds (precision 0) or milliseconds (3, the
    /// default)
    ToTimestampLtz,
    /// `EXTRACT(unit FROM ts)`: YEAR, MONTH, DAY, HOUR, MINUTE, SECOND
    Extract(TimeUnit),
    /// `FLOOR(x)`
    Floor,
    /// `CEIL(x)`
    Ceil,
    /// `ARRAY[a, b, ...]`
    MakeArray,
    /// `ROW(a, b, ...)`
    MakeRow,
    /// `CARDINALITY(array)`: the number of elements.
    Cardinality,
    /// `ELEMENT(array)`: the only element (NULL when empty; an error when more).
    Element,
    /// `array[i]`: the element at `i`, from 1 (NULL out of range).
    Index,
    /// `row.field`: the field at this position.
    Field(usize),
}

/// A part of a date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeUnit {
    /// The year.
    Year,
    /// The month, 1 to 12.
    Month,
    /// The day of the month.
    Day,
    /// The hour.
    Hour,
    /// The minute.
    Minute,
    /// The second.
    Second,
}

/// A resolved, typed scalar expression, evaluated on a row of its scope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Scalar {
    /// The value of a column.
    Col(usize),
    /// A constant.
    Lit(Value),
    /// Arithmetic, with its result type.
    Arith(ArithOp, Box<Scalar>, Box<Scalar>, DataType),
    /// A comparison.
    Cmp(CmpOp, Box<Scalar>, Box<Scalar>),
    /// `AND` (three-valued).
    And(Box<Scalar>, Box<Scalar>),
    /// `OR` (three-valued).
    Or(Box<Scalar>, Box<Scalar>),
    /// `NOT`.
    Not(Box<Scalar>),
    /// Unary minus.
    Neg(Box<Scalar>),
    /// `IS NULL` (`IS NOT NULL` when set).
    IsNull(Box<Scalar>, bool),
    /// `CASE WHEN c THEN r ... ELSE e END`.
    Case(Vec<(Scalar, Scalar)>, Box<Scalar>),
    /// `CAST(e AS type)` (`TRY_CAST` when set: NULL instead of an error).
    Cast(Box<Scalar>, DataType, bool),
    /// `e [NOT] IN (list)`.
    InList(Box<Scalar>, Vec<Scalar>, bool),
    /// `e [NOT] LIKE pattern`.
    Like(Box<Scalar>, Box<Scalar>, bool),
    /// A function call.
    Call(Func, Vec<Scalar>),
}

/// A compiled expression: what it computes, its type and its text (for messages and plans).
#[derive(Debug, Clone)]
pub struct Typed {
    /// What it computes.
    pub scalar: Scalar,
    /// Its type.
    pub ty: DataType,
    /// As written.
    pub text: String,
    /// Where it is.
    pub pos: Pos,
}

impl fmt::Display for Typed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where an expression starts.
pub(crate) fn pos_of(e: &Expr) -> Pos {
    e.span().start.into()
}

/// Compiles `e` against `scope`.
pub(crate) fn compile(e: &Expr, scope: &Scope) -> Result<Typed, SqlError> {
    let (scalar, ty) = build(e, scope)?;
    Ok(Typed {
        scalar,
        ty,
        text: e.to_string(),
        pos: pos_of(e),
    })
}

fn err<T>(e: &Expr, message: impl Into<String>) -> Result<T, SqlError> {
    Err(SqlError::at(pos_of(e), message))
}

/// The type of `e` as a decimal: integers as decimals of their digits.
fn as_decimal(ty: DataType) -> Option<(u8, u8)> {
    match ty {
        DataType::Int => Some((10, 0)),
        DataType::BigInt => Some((19, 0)),
        DataType::Decimal(p, s) => Some((p, s)),
        _ => None,
    }
}

fn cap(p: u32, s: u32) -> DataType {
    if p <= 38 {
        DataType::Decimal(p as u8, s as u8)
    } else {
        // Keep the integer digits, give up fraction digits (at least 6 kept when there were).
        let int = p - s;
        let s = s.min(38u32.saturating_sub(int)).max(s.min(6));
        DataType::Decimal(38, s as u8)
    }
}

/// The type of `l op r`, as Flink types it.
pub(crate) fn arith_type(op: ArithOp, l: DataType, r: DataType) -> Option<DataType> {
    use DataType::*;
    Some(match (l, r) {
        (Null, t) | (t, Null) => t,
        (Timestamp, Interval) if matches!(op, ArithOp::Add | ArithOp::Sub) => Timestamp,
        (TimestampLtz, Interval) if matches!(op, ArithOp::Add | ArithOp::Sub) => TimestampLtz,
        (Interval, Timestamp) if op == ArithOp::Add => Timestamp,
        (Interval, Interval) if matches!(op, ArithOp::Add | ArithOp::Sub) => Interval,
        (a, b) if a.is_numeric() && b.is_numeric() => {
            if a == Double || b == Double {
                Double
            } else if matches!(a, Decimal(..)) || matches!(b, Decimal(..)) {
                let (p1, s1) = as_decimal(a)?;
                let (p2, s2) = as_decimal(b)?;
                let (p1, s1, p2, s2) = (p1 as u32, s1 as u32, p2 as u32, s2 as u32);
                match op {
                    ArithOp::Add | ArithOp::Sub => {
                        let s = s1.max(s2);
                        cap((p1 - s1).max(p2 - s2) + s + 1, s)
                    }
                    ArithOp::Mul => cap(p1 + p2, s1 + s2),
                    ArithOp::Div => {
                        let s = 6.max(s1 + p2 + 1);
                        cap(p1 - s1 + s2 + s, s)
                    }
                    ArithOp::Mod => {
                        let s = s1.max(s2);
                        cap((p1 - s1).min(p2 - s2) + s, s)
                    }
                }
            } else if a == BigInt || b == BigInt {
                BigInt
            } else {
                Int
            }
        }
        _ => return None,
    })
}

fn literal(v: &ast::Value, e: &Expr) -> Result<(Value, DataType), SqlError> {
    Ok(match v {
        ast::Value::Number(n, _) => {
            if let Ok(i) = n.parse::<i32>() {
                (Value::Int(i), DataType::Int)
            } else if let Ok(i) = n.parse::<i64>() {
                (Value::BigInt(i), DataType::BigInt)
            } else if n.contains(['e', 'E']) {
                match n.parse::<f64>() {
                    Ok(d) => (Value::Double(d), DataType::Double),
                    Err(_) => return err(e, format!("'{n}' is not a number")),
                }
            } else {
                let (int, frac) = n.split_once('.').unwrap_or((n, ""));
                let int = int.trim_start_matches('-').trim_start_matches('0');
                let scale = frac.len() as u8;
                let precision = ((int.len() + frac.len()).max(1)) as u8;
                if precision > 38 {
                    return err(e, format!("'{n}' has more than 38 digits"));
                }
                let unscaled = value::parse_decimal(n, scale)
                    .ok_or_else(|| SqlError::at(pos_of(e), format!("'{n}' is not a number")))?;
                (
                    Value::decimal(unscaled, scale),
                    DataType::Decimal(precision.max(scale), scale),
                )
            }
        }
        ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => {
            (Value::str(s), DataType::String)
        }
        ast::Value::Boolean(b) => (Value::Bool(*b), DataType::Boolean),
        ast::Value::Null => (Value::Null, DataType::Null),
        other => return err(e, format!("literal {other} is not supported")),
    })
}

fn interval_millis(i: &ast::Interval, e: &Expr) -> Result<i64, SqlError> {
    let text = match i.value.as_ref() {
        Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::Number(s, _) => s.clone(),
            _ => {
                return err(
                    e,
                    "an interval's value is a number in quotes: INTERVAL '10' SECOND",
                );
            }
        },
        _ => {
            return err(
                e,
                "an interval's value is a number in quotes: INTERVAL '10' SECOND",
            );
        }
    };
    let unit = match &i.leading_field {
        Some(ast::DateTimeField::Day | ast::DateTimeField::Days) => 86_400_000.0,
        Some(ast::DateTimeField::Hour | ast::DateTimeField::Hours) => 3_600_000.0,
        Some(ast::DateTimeField::Minute | ast::DateTimeField::Minutes) => 60_000.0,
        Some(ast::DateTimeField::Second | ast::DateTimeField::Seconds) => 1000.0,
        Some(ast::DateTimeField::Millisecond | ast::DateTimeField::Milliseconds) => 1.0,
        other => {
            return err(
                e,
                format!(
                    "INTERVAL ... {}: use DAY, HOUR, MINUTE, SECOND or MILLISECOND",
                    other
                        .as_ref()
                        .map_or("(no unit)".to_string(), |u| u.to_string())
                ),
            );
        }
    };
    if i.last_field.is_some() {
        return err(
            e,
            "INTERVAL ranges (DAY TO SECOND) are not supported: give one unit",
        );
    }
    let n: f64 = text
        .trim()
        .parse()
        .map_err(|_| SqlError::at(pos_of(e), format!("INTERVAL '{text}': not a number")))?;
    Ok((n * unit).round() as i64)
}

fn function_args(f: &ast::Function, e: &Expr) -> Result<Vec<Expr>, SqlError> {
    match &f.args {
        ast::FunctionArguments::None => Ok(Vec::new()),
        ast::FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) => Ok(x.clone()),
                _ => err(e, format!("{}: arguments are expressions", f.name)),
            })
            .collect(),
        ast::FunctionArguments::Subquery(_) => err(e, "a subquery as an argument is not supported"),
    }
}

fn need(e: &Expr, ok: bool, what: &str) -> Result<(), SqlError> {
    if ok { Ok(()) } else { err(e, what.to_string()) }
}

fn build(e: &Expr, scope: &Scope) -> Result<(Scalar, DataType), SqlError> {
    use DataType as T;
    let boolean = |x: &Expr| -> Result<Scalar, SqlError> {
        let (s, ty) = build(x, scope)?;
        need(
            x,
            matches!(ty, T::Boolean | T::Null),
            &format!("'{x}' is {ty}, not BOOLEAN"),
        )?;
        Ok(s)
    };
    if !scope.subst.is_empty() {
        let text = e.to_string();
        if let Some((_, i)) = scope.subst.iter().find(|(t, _)| *t == text) {
            return Ok((Scalar::Col(*i), scope.fields[*i].ty));
        }
    }
    Ok(match e {
        Expr::Identifier(i) => {
            let at = scope.resolve(std::slice::from_ref(&i.value), pos_of(e))?;
            (Scalar::Col(at), scope.fields[at].ty)
        }
        Expr::CompoundIdentifier(parts) => {
            let names: Vec<String> = parts.iter().map(|p| p.value.clone()).collect();
            compound(&names, e, scope)?
        }
        Expr::CompoundFieldAccess { root, access_chain } => {
            // `e.tags[1]`, `e.owner.home.city[2]`: the names before the first subscript are a
            // column (qualified or not) and its fields, resolved as a dotted name is.
            let mut names = Vec::new();
            if let Expr::Identifier(first) = root.as_ref() {
                names.push(first.value.clone());
                for access in access_chain {
                    match access {
                        ast::AccessExpr::Dot(Expr::Identifier(field)) => {
                            names.push(field.value.clone());
                        }
                        _ => break,
                    }
                }
            }
            let (mut s, mut ty, rest) = if names.len() > 1 {
                let (s, ty) = compound(&names, e, scope)?;
                (s, ty, &access_chain[names.len() - 1..])
            } else {
                let (s, ty) = build(root, scope)?;
                (s, ty, &access_chain[..])
            };
            for access in rest {
                (s, ty) = match access {
                    ast::AccessExpr::Dot(Expr::Identifier(field)) => {
                        field_of((s, ty), &field.value, e)?
                    }
                    ast::AccessExpr::Subscript(ast::Subscript::Index { index }) => {
                        let Some(element) = ty.element() else {
                            return err(e, format!("'{e}': only an ARRAY is indexed, not {ty}"));
                        };
                        let (i, it) = build(index, scope)?;
                        need(
                            index,
                            matches!(it, T::Int | T::BigInt | T::Null),
                            &format!("'{index}' is {it}: an array index is an integer"),
                        )?;
                        (Scalar::Call(Func::Index, vec![s, i]), element)
                    }
                    other => return err(e, format!("'{other}' is not supported in Tidal SQL yet")),
                };
            }
            (s, ty)
        }
        Expr::Array(array) => {
            if array.elem.is_empty() {
                return err(e, "ARRAY[] needs at least one element".to_string());
            }
            let mut items = Vec::new();
            let mut ty = T::Null;
            for x in &array.elem {
                let (s, t) = build(x, scope)?;
                ty = common_type(e, ty, t)?;
                items.push((s, t));
            }
            let items = items
                .into_iter()
                .map(|(s, t)| {
                    if t == ty {
                        s
                    } else {
                        Scalar::Cast(Box::new(s), ty, false)
                    }
                })
                .collect();
            (Scalar::Call(Func::MakeArray, items), T::array(ty))
        }
        Expr::Value(v) => {
            let (v, ty) = literal(&v.value, e)?;
            (Scalar::Lit(v), ty)
        }
        Expr::Interval(i) => (
            Scalar::Lit(Value::Interval(interval_millis(i, e)?)),
            T::Interval,
        ),
        Expr::TypedString(ts) => {
            let ty = data_type(&ts.data_type).map_err(|m| SqlError::at(pos_of(e), m))?;
            let text = match &ts.value.value {
                ast::Value::SingleQuotedString(s) => s.clone(),
                other => other.to_string(),
            };
            let v = value::parse_text(ty, &text).map_err(|m| SqlError::at(pos_of(e), m))?;
            (Scalar::Lit(v), ty)
        }
        Expr::Nested(inner) => build(inner, scope)?,
        Expr::UnaryOp { op, expr } => match op {
            UnaryOperator::Not => (Scalar::Not(Box::new(boolean(expr)?)), T::Boolean),
            UnaryOperator::Minus => {
                let (s, ty) = build(expr, scope)?;
                need(
                    e,
                    ty.is_numeric() || ty == T::Interval,
                    &format!("'{expr}' is {ty}: only numbers are negated"),
                )?;
                (Scalar::Neg(Box::new(s)), ty)
            }
            UnaryOperator::Plus => build(expr, scope)?,
            other => return err(e, format!("operator {other} is not supported")),
        },
        Expr::BinaryOp { left, op, right } => {
            let arith = match op {
                BinaryOperator::Plus => Some(ArithOp::Add),
                BinaryOperator::Minus => Some(ArithOp::Sub),
                BinaryOperator::Multiply => Some(ArithOp::Mul),
                BinaryOperator::Divide => Some(ArithOp::Div),
                BinaryOperator::Modulo => Some(ArithOp::Mod),
                _ => None,
            };
            let cmp = match op {
                BinaryOperator::Eq => Some(CmpOp::Eq),
                BinaryOperator::NotEq => Some(CmpOp::Ne),
                BinaryOperator::Lt => Some(CmpOp::Lt),
                BinaryOperator::LtEq => Some(CmpOp::Le),
                BinaryOperator::Gt => Some(CmpOp::Gt),
                BinaryOperator::GtEq => Some(CmpOp::Ge),
                _ => None,
            };
            if let Some(a) = arith {
                let (l, lt) = build(left, scope)?;
                let (r, rt) = build(right, scope)?;
                let Some(ty) = arith_type(a, lt, rt) else {
                    return err(e, format!("'{e}': cannot apply {op} to {lt} and {rt}"));
                };
                (Scalar::Arith(a, Box::new(l), Box::new(r), ty), ty)
            } else if let Some(c) = cmp {
                let (l, lt) = build(left, scope)?;
                let (r, rt) = build(right, scope)?;
                let (l, r) = comparable(e, (l, lt), (r, rt))?;
                (Scalar::Cmp(c, Box::new(l), Box::new(r)), T::Boolean)
            } else {
                match op {
                    BinaryOperator::And => (
                        Scalar::And(Box::new(boolean(left)?), Box::new(boolean(right)?)),
                        T::Boolean,
                    ),
                    BinaryOperator::Or => (
                        Scalar::Or(Box::new(boolean(left)?), Box::new(boolean(right)?)),
                        T::Boolean,
                    ),
                    BinaryOperator::StringConcat => {
                        let (l, _) = build(left, scope)?;
                        let (r, _) = build(right, scope)?;
                        (Scalar::Call(Func::Concat, vec![l, r]), T::String)
                    }
                    other => return err(e, format!("operator {other} is not supported")),
                }
            }
        }
        Expr::IsNull(x) => (
            Scalar::IsNull(Box::new(build(x, scope)?.0), false),
            T::Boolean,
        ),
        Expr::IsNotNull(x) => (
            Scalar::IsNull(Box::new(build(x, scope)?.0), true),
            T::Boolean,
        ),
        Expr::Between {
            expr,
            negated,
            low,
            high,
        } => {
            let x = build(expr, scope)?;
            let lo = build(low, scope)?;
            let hi = build(high, scope)?;
            let (a, lo) = comparable(e, x.clone(), lo)?;
            let (b, hi) = comparable(e, x, hi)?;
            let both = Scalar::And(
                Box::new(Scalar::Cmp(CmpOp::Ge, Box::new(a), Box::new(lo))),
                Box::new(Scalar::Cmp(CmpOp::Le, Box::new(b), Box::new(hi))),
            );
            let s = if *negated {
                Scalar::Not(Box::new(both))
            } else {
                both
            };
            (s, T::Boolean)
        }
        Expr::InList {
            expr,
            list,
            negated,
        } => {
            let x = build(expr, scope)?;
            let mut items = Vec::new();
            for item in list {
                let (_, i) = comparable(e, x.clone(), build(item, scope)?)?;
                items.push(i);
            }
            (Scalar::InList(Box::new(x.0), items, *negated), T::Boolean)
        }
        Expr::Like {
            negated,
            expr,
            pattern,
            escape_char: None,
            any: false,
        } => {
            let (x, xt) = build(expr, scope)?;
            let (p, pt) = build(pattern, scope)?;
            need(
                e,
                matches!(xt, T::String | T::Null) && matches!(pt, T::String | T::Null),
                "LIKE compares strings",
            )?;
            (Scalar::Like(Box::new(x), Box::new(p), *negated), T::Boolean)
        }
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            let mut whens = Vec::new();
            let mut ty = T::Null;
            for w in conditions {
                let cond = match operand {
                    Some(op) => {
                        let (l, r) = comparable(e, build(op, scope)?, build(&w.condition, scope)?)?;
                        Scalar::Cmp(CmpOp::Eq, Box::new(l), Box::new(r))
                    }
                    None => boolean(&w.condition)?,
                };
                let (r, rt) = build(&w.result, scope)?;
                ty = common_type(e, ty, rt)?;
                whens.push((cond, r));
            }
            let otherwise = match else_result {
                Some(x) => {
                    let (s, t) = build(x, scope)?;
                    ty = common_type(e, ty, t)?;
                    s
                }
                None => Scalar::Lit(Value::Null),
            };
            let whens = whens
                .into_iter()
                .map(|(c, r)| (c, Scalar::Cast(Box::new(r), ty, false)))
                .collect();
            (
                Scalar::Case(
                    whens,
                    Box::new(Scalar::Cast(Box::new(otherwise), ty, false)),
                ),
                ty,
            )
        }
        Expr::Cast {
            kind,
            expr,
            data_type: dt,
            ..
        } => {
            let ty = data_type(dt).map_err(|m| SqlError::at(pos_of(e), m))?;
            let (x, _) = build(expr, scope)?;
            let try_cast = matches!(kind, ast::CastKind::TryCast | ast::CastKind::SafeCast);
            (Scalar::Cast(Box::new(x), ty, try_cast), ty)
        }
        Expr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            let mut args = vec![build(expr, scope)?.0];
            args.push(match substring_from {
                Some(f) => build(f, scope)?.0,
                None => Scalar::Lit(Value::Int(1)),
            });
            if let Some(n) = substring_for {
                args.push(build(n, scope)?.0);
            }
            (Scalar::Call(Func::Substring, args), T::String)
        }
        Expr::Trim {
            expr,
            trim_where: None,
            trim_what: None,
            ..
        } => (
            Scalar::Call(Func::Trim, vec![build(expr, scope)?.0]),
            T::String,
        ),
        Expr::Trim {
            expr,
            trim_where,
            trim_what,
            trim_characters: None,
        } => {
            let (start, end) = match trim_where {
                None | Some(ast::TrimWhereField::Both) => (true, true),
                Some(ast::TrimWhereField::Leading) => (true, false),
                Some(ast::TrimWhereField::Trailing) => (false, true),
            };
            let chars = match trim_what {
                Some(w) => build(w, scope)?.0,
                None => Scalar::Lit(Value::str(" ")),
            };
            (
                Scalar::Call(
                    Func::TrimChars(start, end),
                    vec![build(expr, scope)?.0, chars],
                ),
                T::String,
            )
        }
        Expr::Position { expr, r#in } => (
            Scalar::Call(
                Func::Position,
                vec![build(expr, scope)?.0, build(r#in, scope)?.0],
            ),
            T::Int,
        ),
        Expr::Extract { field, expr, .. } => {
            let unit = match field {
                ast::DateTimeField::Year => TimeUnit::Year,
                ast::DateTimeField::Month => TimeUnit::Month,
                ast::DateTimeField::Day => TimeUnit::Day,
                ast::DateTimeField::Hour => TimeUnit::Hour,
                ast::DateTimeField::Minute => TimeUnit::Minute,
                ast::DateTimeField::Second => TimeUnit::Second,
                other => {
                    return err(
                        e,
                        format!(
                            "EXTRACT({other} ...): use YEAR, MONTH, DAY, HOUR, MINUTE or SECOND"
                        ),
                    );
                }
            };
            let (x, ty) = build(expr, scope)?;
            need(
                e,
                ty.is_time() || matches!(ty, T::Date | T::Null),
                "EXTRACT reads a DATE or TIMESTAMP",
            )?;
            (Scalar::Call(Func::Extract(unit), vec![x]), T::BigInt)
        }
        Expr::Function(f) => call(f, e, scope)?,
        other => return err(e, format!("'{other}' is not supported in Tidal SQL yet")),
    })
}

/// A name with dots: `column`, `table.column`, or either followed by the fields of a ROW
/// column (`owner.name`, `e.owner.home.city`). A qualified column wins over a field of the same
/// spelling, as in Flink.
fn compound(names: &[String], e: &Expr, scope: &Scope) -> Result<(Scalar, DataType), SqlError> {
    let pos = pos_of(e);
    let whole = if names.len() <= 2 {
        match scope.resolve(names, pos) {
            Ok(at) => return Ok((Scalar::Col(at), scope.fields[at].ty)),
            Err(error) => Some(error),
        }
    } else {
        None
    };
    for k in (1..=2.min(names.len() - 1)).rev() {
        let Ok(at) = scope.resolve(&names[..k], pos) else {
            continue;
        };
        if !matches!(scope.fields[at].ty, DataType::Row(_)) {
            continue;
        }
        let mut built = (Scalar::Col(at), scope.fields[at].ty);
        for field in &names[k..] {
            built = field_of(built, field, e)?;
        }
        return Ok(built);
    }
    match whole {
        Some(error) => Err(error),
        None => scope
            .resolve(&names[..2], pos)
            .and_then(|_| err(e, format!("'{e}': no such field"))),
    }
}

/// The field `name` of a ROW-typed expression (matched exactly, else without regard to case).
fn field_of(
    (s, ty): (Scalar, DataType),
    name: &str,
    e: &Expr,
) -> Result<(Scalar, DataType), SqlError> {
    let Some(fields) = ty.fields() else {
        return err(e, format!("'{e}': {ty} has no fields (only a ROW has)"));
    };
    let at = fields.iter().position(|(n, _)| n == name).or_else(|| {
        fields
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
    });
    match at {
        Some(i) => Ok((Scalar::Call(Func::Field(i), vec![s]), fields[i].1)),
        None => err(
            e,
            format!(
                "'{e}': {ty} has no field '{name}' (fields: {})",
                fields
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    }
}

/// The type both branches of a CASE (or COALESCE's arguments) fit.
fn common_type(e: &Expr, a: DataType, b: DataType) -> Result<DataType, SqlError> {
    use DataType as T;
    Ok(match (a, b) {
        (T::Null, t) | (t, T::Null) => t,
        (a, b) if a == b => a,
        (a, b) if a.is_numeric() && b.is_numeric() => arith_type(ArithOp::Add, a, b)
            .map(|t| match t {
                T::Decimal(p, s) => T::Decimal(p.saturating_sub(1).max(s).max(1), s),
                t => t,
            })
            .unwrap_or(T::Double),
        (a, b) => return err(e, format!("'{e}': {a} and {b} have no common type")),
    })
}

/// Checks that two operands can be compared; a string literal compared with a date or time is
/// read as one.
fn comparable(
    e: &Expr,
    (l, lt): (Scalar, DataType),
    (r, rt): (Scalar, DataType),
) -> Result<(Scalar, Scalar), SqlError> {
    use DataType as T;
    let family = |t: DataType| match t {
        t if t.is_numeric() => 1,
        T::String => 2,
        T::Boolean => 3,
        T::Date => 4,
        T::Timestamp | T::TimestampLtz => 5,
        T::Interval => 6,
        T::Null => 0,
        _ => 7,
    };
    let read_as = |s: Scalar, ty: DataType| -> Result<Scalar, SqlError> {
        match s {
            Scalar::Lit(Value::Str(text)) => value::parse_text(ty, &text)
                .map(Scalar::Lit)
                .map_err(|m| SqlError::at(pos_of(e), m)),
            other => Ok(other),
        }
    };
    match (family(lt), family(rt)) {
        (0, _) | (_, 0) => Ok((l, r)),
        (7, 7) if !(castable(lt, rt) && castable(rt, lt)) => {
            err(e, format!("'{e}': cannot compare {lt} with {rt}"))
        }
        (a, b) if a == b => Ok((l, r)),
        (2, 4 | 5) if matches!(l, Scalar::Lit(_)) => Ok((read_as(l, rt)?, r)),
        (4 | 5, 2) if matches!(r, Scalar::Lit(_)) => Ok((l, read_as(r, lt)?)),
        _ => err(e, format!("'{e}': cannot compare {lt} with {rt}")),
    }
}

fn call(f: &ast::Function, e: &Expr, scope: &Scope) -> Result<(Scalar, DataType), SqlError> {
    use DataType as T;
    let name = object_name(&f.name).to_ascii_uppercase();
    if f.over.is_some() || f.filter.is_some() {
        return err(
            e,
            format!("{name}(...) with OVER or FILTER is not a scalar function here"),
        );
    }
    let raw = function_args(f, e)?;
    let mut args = Vec::new();
    let mut types = Vec::new();
    for a in &raw {
        let (s, t) = build(a, scope)?;
        args.push(s);
        types.push(t);
    }
    let arity = |lo: usize, hi: usize| -> Result<(), SqlError> {
        if (lo..=hi).contains(&args.len()) {
            Ok(())
        } else if lo == hi {
            err(
                e,
                format!("{name} takes {lo} argument(s), not {}", args.len()),
            )
        } else {
            err(
                e,
                format!("{name} takes {lo} to {hi} arguments, not {}", args.len()),
            )
        }
    };
    let (func, ty) = match name.as_str() {
        "COALESCE" => {
            arity(1, usize::MAX)?;
            let mut ty = T::Null;
            for t in &types {
                ty = common_type(e, ty, *t)?;
            }
            args = args
                .into_iter()
                .map(|a| Scalar::Cast(Box::new(a), ty, false))
                .collect();
            (Func::Coalesce, ty)
        }
        "ROW" => {
            arity(1, usize::MAX)?;
            let fields = types
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("EXPR${i}"), *t))
                .collect();
            (Func::MakeRow, T::row(fields))
        }
        "CARDINALITY" | "ELEMENT" => {
            arity(1, 1)?;
            let Some(element) = types[0].element() else {
                return err(e, format!("{name} takes an ARRAY, not {}", types[0]));
            };
            if name == "CARDINALITY" {
                (Func::Cardinality, T::Int)
            } else {
                (Func::Element, element)
            }
        }
        "UPPER" => (arity(1, 1).map(|_| Func::Upper)?, T::String),
        "LOWER" => (arity(1, 1).map(|_| Func::Lower)?, T::String),
        "CONCAT" => (arity(1, usize::MAX).map(|_| Func::Concat)?, T::String),
        "CHAR_LENGTH" | "CHARACTER_LENGTH" => (arity(1, 1).map(|_| Func::CharLength)?, T::Int),
        "SUBSTR" | "SUBSTRING" => (arity(2, 3).map(|_| Func::Substring)?, T::String),
        "TRIM" => (arity(1, 1).map(|_| Func::Trim)?, T::String),
        "LTRIM" | "RTRIM" => {
            arity(1, 1)?;
            args.push(Scalar::Lit(Value::str(" ")));
            (Func::TrimChars(name == "LTRIM", name == "RTRIM"), T::String)
        }
        "LOCATE" => (arity(2, 2).map(|_| Func::Position)?, T::Int),
        "REPLACE" => (arity(3, 3).map(|_| Func::Replace)?, T::String),
        "ROUND" => {
            arity(1, 2)?;
            need(
                e,
                types[0].is_numeric() || types[0] == T::Null,
                "ROUND takes a number",
            )?;
            let digits = match args.get(1) {
                None => 0,
                Some(Scalar::Lit(v)) if v.as_i64().is_some() => v.as_i64().unwrap_or(0),
                Some(_) => return err(e, "ROUND's number of digits is an integer literal"),
            };
            if args.len() == 1 {
                args.push(Scalar::Lit(Value::Int(0)));
            }
            let ty = match types[0] {
                // As Flink types it.
                T::Decimal(p, s) if digits >= i64::from(s) => T::Decimal(p, s),
                T::Decimal(p, s) => {
                    let scale = digits.max(0) as u8;
                    T::Decimal((p - s + scale + 1).min(38), scale)
                }
                t => t,
            };
            (Func::Round, ty)
        }
        "ABS" => {
            arity(1, 1)?;
            need(
                e,
                types[0].is_numeric() || types[0] == T::Null,
                "ABS takes a number",
            )?;
            (Func::Abs, types[0])
        }
        "MOD" => {
            arity(2, 2)?;
            let Some(ty) = arith_type(ArithOp::Mod, types[0], types[1]) else {
                return err(e, "MOD takes numbers");
            };
            let r = args.pop().expect("two");
            let l = args.pop().expect("two");
            return Ok((
                Scalar::Arith(ArithOp::Mod, Box::new(l), Box::new(r), ty),
                ty,
            ));
        }
        "FLOOR" | "CEIL" | "CEILING" => {
            arity(1, 1)?;
            need(
                e,
                types[0].is_numeric() || types[0] == T::Null,
                "FLOOR and CEIL take a number",
            )?;
            let ty = match types[0] {
                T::Decimal(p, _) => T::Decimal(p, 0),
                t => t,
            };
            (
                if name == "FLOOR" {
                    Func::Floor
                } else {
                    Func::Ceil
                },
                ty,
            )
        }
        "SPLIT_INDEX" => (arity(3, 3).map(|_| Func::SplitIndex)?, T::String),
        "REGEXP_EXTRACT" => {
            arity(2, 3)?;
            if let Scalar::Lit(Value::Str(p)) = &args[1]
                && let Err(x) = regex::Regex::new(p)
            {
                return err(
                    e,
                    format!("REGEXP_EXTRACT: the pattern does not compile: {x}"),
                );
            }
            (Func::RegexpExtract, T::String)
        }
        "DATE_FORMAT" => {
            arity(2, 2)?;
            need(
                e,
                types[0].is_time() || matches!(types[0], T::String | T::Null),
                "DATE_FORMAT formats a TIMESTAMP",
            )?;
            (Func::DateFormat, T::String)
        }
        "TO_TIMESTAMP" => (arity(1, 2).map(|_| Func::ToTimestamp)?, T::Timestamp),
        "TO_TIMESTAMP_LTZ" => {
            arity(1, 2)?;
            need(
                e,
                types[0].is_numeric() || types[0] == T::Null,
                "TO_TIMESTAMP_LTZ takes epoch seconds or milliseconds",
            )?;
            match args.get(1) {
                None | Some(Scalar::Lit(Value::Int(0 | 3))) => {}
                _ => {
                    return err(
                        e,
                        "TO_TIMESTAMP_LTZ(n, precision): the precision is 0 (seconds) or 3 (milliseconds)",
                    );
                }
            }
            (Func::ToTimestampLtz, T::TimestampLtz)
        }
        _ => return err(e, format!("unknown function {name}")),
    };
    Ok((Scalar::Call(func, args), ty))
}

/// What can go wrong evaluating an expression on a row.
pub(crate) type Eval<T> = Result<T, String>;

fn truth(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

impl Scalar {
    /// Evaluates on `row`.
    pub fn eval(&self, row: &[Value]) -> Eval<Value> {
        Ok(match self {
            Scalar::Col(i) => row[*i].clone(),
            Scalar::Lit(v) => v.clone(),
            Scalar::Cmp(op, l, r) if let Some(result) = int_cmp(*op, l, r, row) => match result {
                Some(b) => Value::Bool(b),
                None => Value::Null,
            },
            Scalar::Arith(op, l, r, ty) => {
                let (l, r) = (l.operand(row)?, r.operand(row)?);
                if l.is_null() || r.is_null() {
                    return Ok(Value::Null);
                }
                arith(*op, &l, &r, *ty)?
            }
            Scalar::Cmp(op, l, r) => {
                let (l, r) = (l.operand(row)?, r.operand(row)?);
                if l.is_null() || r.is_null() {
                    return Ok(Value::Null);
                }
                Value::Bool(op.holds_for(l.cmp(&r)))
            }
            Scalar::And(l, r) => match truth(&l.eval(row)?) {
                Some(false) => Value::Bool(false),
                lt => match (lt, truth(&r.eval(row)?)) {
                    (_, Some(false)) => Value::Bool(false),
                    (Some(true), Some(true)) => Value::Bool(true),
                    _ => Value::Null,
                },
            },
            Scalar::Or(l, r) => match truth(&l.eval(row)?) {
                Some(true) => Value::Bool(true),
                lt => match (lt, truth(&r.eval(row)?)) {
                    (_, Some(true)) => Value::Bool(true),
                    (Some(false), Some(false)) => Value::Bool(false),
                    _ => Value::Null,
                },
            },
            Scalar::Not(x) => match truth(&x.eval(row)?) {
                Some(b) => Value::Bool(!b),
                None => Value::Null,
            },
            Scalar::Neg(x) => match x.eval(row)? {
                Value::Int(v) => Value::Int(v.wrapping_neg()),
                Value::BigInt(v) => Value::BigInt(v.wrapping_neg()),
                Value::Double(v) => Value::Double(-v),
                Value::Decimal(v, s) => Value::decimal(-v.get(), s),
                Value::Interval(v) => Value::Interval(-v),
                other => other,
            },
            Scalar::IsNull(x, negated) => Value::Bool(x.eval(row)?.is_null() != *negated),
            Scalar::Case(whens, otherwise) => {
                for (c, r) in whens {
                    if truth(&c.eval(row)?) == Some(true) {
                        return r.eval(row);
                    }
                }
                otherwise.eval(row)?
            }
            Scalar::Cast(x, ty, try_cast) => match cast(x.eval(row)?, *ty) {
                Ok(v) => v,
                Err(_) if *try_cast => Value::Null,
                Err(m) => return Err(m),
            },
            Scalar::InList(x, items, negated) => {
                let v = x.eval(row)?;
                if v.is_null() {
                    return Ok(Value::Null);
                }
                let mut saw_null = false;
                for i in items {
                    let w = i.eval(row)?;
                    if w.is_null() {
                        saw_null = true;
                    } else if w == v {
                        return Ok(Value::Bool(!negated));
                    }
                }
                if saw_null {
                    Value::Null
                } else {
                    Value::Bool(*negated)
                }
            }
            Scalar::Like(x, p, negated) => match (x.eval(row)?, p.eval(row)?) {
                (Value::Str(s), Value::Str(p)) => Value::Bool(like(&s, &p) != *negated),
                _ => Value::Null,
            },
            Scalar::Call(f, args) => {
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    vals.push(a.eval(row)?);
                }
                call_value(*f, vals)?
            }
        })
    }

    /// The value of `self` on `row`, borrowed where it lies for a column or a constant (an
    /// operand that is only read need not be copied).
    #[inline]
    fn operand<'a>(&'a self, row: &'a [Value]) -> Eval<std::borrow::Cow<'a, Value>> {
        use std::borrow::Cow;
        Ok(match self {
            Scalar::Col(i) => Cow::Borrowed(&row[*i]),
            Scalar::Lit(v) => Cow::Borrowed(v),
            other => Cow::Owned(other.eval(row)?),
        })
    }

    /// Evaluates a condition: only TRUE passes (NULL and FALSE do not).
    pub fn holds(&self, row: &[Value]) -> Eval<bool> {
        if let Scalar::Cmp(op, l, r) = self
            && let Some(result) = int_cmp(*op, l, r, row)
        {
            return Ok(result == Some(true));
        }
        Ok(truth(&self.eval(row)?) == Some(true))
    }

    /// The value of an integer expression — an INT or BIGINT column or constant, or arithmetic
    /// of such in INT or BIGINT — computed without making values: `Some(None)` for NULL, `None`
    /// when `self` is not such an expression or must take the general way (a division by
    /// zero, which is an error there). The same value as [`eval`](Self::eval) gives.
    #[inline]
    fn int_value(&self, row: &[Value]) -> Option<Option<i64>> {
        fn of(v: &Value) -> Option<Option<i64>> {
            match v {
                Value::BigInt(x) => Some(Some(*x)),
                Value::Int(x) => Some(Some(i64::from(*x))),
                Value::Null => Some(None),
                _ => None,
            }
        }
        match self {
            Scalar::Col(i) => of(&row[*i]),
            Scalar::Lit(v) => of(v),
            Scalar::Arith(op, l, r, ty @ (DataType::Int | DataType::BigInt)) => {
                let (a, b) = (l.int_value(row)?, r.int_value(row)?);
                let (Some(a), Some(b)) = (a, b) else {
                    return Some(None);
                };
                Some(Some(int_arith(*op, *ty == DataType::Int, a, b)?))
            }
            _ => None,
        }
    }
}

/// Integer arithmetic as evaluation does it: INT (`int32`) wraps in 32 bits, BIGINT in 64;
/// `None` for a division by zero or an overflowing division (an error the general way reports).
#[inline(always)]
pub(crate) fn int_arith(op: ArithOp, int32: bool, a: i64, b: i64) -> Option<i64> {
    Some(if int32 {
        let (a, b) = (a as i32, b as i32);
        i64::from(match op {
            ArithOp::Add => a.wrapping_add(b),
            ArithOp::Sub => a.wrapping_sub(b),
            ArithOp::Mul => a.wrapping_mul(b),
            ArithOp::Div => a.checked_div(b)?,
            ArithOp::Mod => a.checked_rem(b)?,
        })
    } else {
        match op {
            ArithOp::Add => a.wrapping_add(b),
            ArithOp::Sub => a.wrapping_sub(b),
            ArithOp::Mul => a.wrapping_mul(b),
            ArithOp::Div => a.checked_div(b)?,
            ArithOp::Mod => a.checked_rem(b)?,
        }
    })
}

/// A comparison of two integer expressions (see [`Scalar::int_value`]) without making values:
/// `Some(None)` when one side is NULL; `None` when a side is not such an expression.
#[inline]
fn int_cmp(op: CmpOp, l: &Scalar, r: &Scalar, row: &[Value]) -> Option<Option<bool>> {
    let a = l.int_value(row)?;
    let b = r.int_value(row)?;
    let (Some(a), Some(b)) = (a, b) else {
        return Some(None);
    };
    Some(Some(op.holds_for(a.cmp(&b))))
}

fn like(s: &str, p: &str) -> bool {
    fn go(s: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('%', rest)) => (0..=s.len()).any(|i| go(&s[i..], rest)),
            Some(('_', rest)) => !s.is_empty() && go(&s[1..], rest),
            Some((c, rest)) => s.first() == Some(c) && go(&s[1..], rest),
        }
    }
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = p.chars().collect();
    go(&s, &p)
}

fn decimal_of(v: &Value) -> Option<(i128, u8)> {
    match v {
        Value::Int(i) => Some((*i as i128, 0)),
        Value::BigInt(i) => Some((*i as i128, 0)),
        Value::Decimal(v, s) => Some((v.get(), *s)),
        _ => None,
    }
}

/// `v / 10^by`, rounded half away from zero.
fn round_down_scale(v: i128, by: u32) -> i128 {
    if by == 0 {
        return v;
    }
    let m = 10i128.pow(by);
    let q = v / m;
    let r = v % m;
    if r.abs() * 2 >= m { q + v.signum() } else { q }
}

/// `v` from scale `from` to scale `to`, rounding when `to` is smaller.
fn to_scale(v: i128, from: u8, to: u8) -> Eval<i128> {
    if to >= from {
        rescale(v, from, to).ok_or_else(|| "decimal overflow".to_string())
    } else {
        Ok(round_down_scale(v, u32::from(from - to)))
    }
}

pub(crate) fn arith(op: ArithOp, l: &Value, r: &Value, ty: DataType) -> Eval<Value> {
    use DataType as T;
    let zero = || "division by zero".to_string();
    Ok(match ty {
        T::Int => {
            let (a, b) = (
                l.as_i64().unwrap_or(0) as i32,
                r.as_i64().unwrap_or(0) as i32,
            );
            Value::Int(match op {
                ArithOp::Add => a.wrapping_add(b),
                ArithOp::Sub => a.wrapping_sub(b),
                ArithOp::Mul => a.wrapping_mul(b),
                ArithOp::Div => a.checked_div(b).ok_or_else(zero)?,
                ArithOp::Mod => a.checked_rem(b).ok_or_else(zero)?,
            })
        }
        T::BigInt => {
            let (a, b) = (l.as_i64().unwrap_or(0), r.as_i64().unwrap_or(0));
            Value::BigInt(match op {
                ArithOp::Add => a.wrapping_add(b),
                ArithOp::Sub => a.wrapping_sub(b),
                ArithOp::Mul => a.wrapping_mul(b),
                ArithOp::Div => a.checked_div(b).ok_or_else(zero)?,
                ArithOp::Mod => a.checked_rem(b).ok_or_else(zero)?,
            })
        }
        T::Double => {
            let (a, b) = (l.as_f64().unwrap_or(0.0), r.as_f64().unwrap_or(0.0));
            Value::Double(match op {
                ArithOp::Add => a + b,
                ArithOp::Sub => a - b,
                ArithOp::Mul => a * b,
                ArithOp::Div => a / b,
                ArithOp::Mod => a % b,
            })
        }
        T::Decimal(_, s) => {
            let (Some((a, sa)), Some((b, sb))) = (decimal_of(l), decimal_of(r)) else {
                return Err(format!("cannot compute {l} and {r} as decimals"));
            };
            let overflow = || "decimal overflow".to_string();
            let v = match op {
                ArithOp::Add | ArithOp::Sub | ArithOp::Mod => {
                    let common = sa.max(sb);
                    let a = to_scale(a, sa, common)?;
                    let b = to_scale(b, sb, common)?;
                    let v = match op {
                        ArithOp::Add => a.checked_add(b).ok_or_else(overflow)?,
                        ArithOp::Sub => a.checked_sub(b).ok_or_else(overflow)?,
                        _ => a.checked_rem(b).ok_or_else(zero)?,
                    };
                    to_scale(v, common, s)?
                }
                ArithOp::Mul => to_scale(a.checked_mul(b).ok_or_else(overflow)?, sa + sb, s)?,
                ArithOp::Div => {
                    if b == 0 {
                        return Err(zero());
                    }
                    // a / b at scale s: a * 10^(s + sb - sa + 1) / b, then round off one digit.
                    let shift = i32::from(s) + i32::from(sb) - i32::from(sa) + 1;
                    let num = if shift >= 0 {
                        rescale(a, 0, shift as u8).ok_or_else(overflow)?
                    } else {
                        a / 10i128.pow((-shift) as u32)
                    };
                    round_down_scale(num / b, 1)
                }
            };
            Value::decimal(v, s)
        }
        T::Timestamp | T::TimestampLtz => {
            let (t, i) = match (l, r) {
                (Value::Interval(i), t) => (t.as_millis().unwrap_or(0), *i),
                (t, Value::Interval(i)) => (t.as_millis().unwrap_or(0), *i),
                _ => return Err(format!("cannot add {l} and {r}")),
            };
            let v = if op == ArithOp::Sub { t - i } else { t + i };
            if ty == T::Timestamp {
                Value::Timestamp(v)
            } else {
                Value::TimestampLtz(v)
            }
        }
        T::Interval => {
            let (Value::Interval(a), Value::Interval(b)) = (l, r) else {
                return Err(format!("cannot add {l} and {r}"));
            };
            Value::Interval(if op == ArithOp::Sub { a - b } else { a + b })
        }
        other => return Err(format!("no arithmetic on {other}")),
    })
}

/// Converts `v` to `ty` (CAST): an error says why it cannot.
/// Whether values of type `have` may be written where `want` is declared (an INSERT's column):
/// the same type, NULL, anything to STRING, numbers to numbers, times to times, and arrays and
/// rows whose parts may (rows by position, as Flink matches them).
pub(crate) fn castable(have: DataType, want: DataType) -> bool {
    use DataType as T;
    match (have, want) {
        (a, b) if a == b => true,
        (T::Null, _) | (_, T::String) => true,
        (a, b) if a.is_numeric() && b.is_numeric() => true,
        (a, b) if a.is_time() && b.is_time() => true,
        (T::Array(_), T::Array(_)) => castable(
            have.element().unwrap_or(T::Null),
            want.element().unwrap_or(T::Null),
        ),
        (T::Row(_), T::Row(_)) => {
            let (a, b) = (
                have.fields().unwrap_or_default(),
                want.fields().unwrap_or_default(),
            );
            a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| castable(x.1, y.1))
        }
        _ => false,
    }
}

pub(crate) fn cast(v: Value, ty: DataType) -> Eval<Value> {
    use DataType as T;
    if v.is_null() {
        return Ok(Value::Null);
    }
    let fail = |v: &Value| format!("cannot cast '{v}' to {ty}");
    Ok(match (ty, &v) {
        (T::Null, _) => v,
        (T::String, _) => match v {
            Value::Str(_) => v,
            other => Value::str(&other.to_string()),
        },
        (_, Value::Str(s)) => value::parse_text(ty, s).map_err(|_| fail(&v))?,
        (T::Boolean, Value::Bool(_)) => v,
        (T::Int | T::BigInt, _) if v.as_i64().is_some() => {
            let i = v.as_i64().expect("integer");
            if ty == T::Int {
                Value::Int(i as i32)
            } else {
                Value::BigInt(i)
            }
        }
        (T::Int | T::BigInt, Value::Double(d)) => {
            if ty == T::Int {
                Value::Int(d.trunc() as i32)
            } else {
                Value::BigInt(d.trunc() as i64)
            }
        }
        (T::Int | T::BigInt, Value::Decimal(d, s)) => {
            let i = d.get() / 10i128.pow(u32::from(*s));
            if ty == T::Int {
                Value::Int(i as i32)
            } else {
                Value::BigInt(i as i64)
            }
        }
        (T::Double, _) if v.as_f64().is_some() => Value::Double(v.as_f64().expect("number")),
        (T::Decimal(p, s), _) => {
            let unscaled = match &v {
                Value::Double(d) => (d * 10f64.powi(i32::from(s))).round() as i128,
                other => {
                    let (x, xs) = decimal_of(other).ok_or_else(|| fail(&v))?;
                    to_scale(x, xs, s)?
                }
            };
            if unscaled.unsigned_abs() >= 10u128.pow(u32::from(p)) {
                return Err(format!("'{v}' does not fit {ty}"));
            }
            Value::decimal(unscaled, s)
        }
        (T::Timestamp, Value::Timestamp(_)) => v,
        (T::Timestamp, Value::TimestampLtz(t)) => Value::Timestamp(*t),
        (T::TimestampLtz, Value::Timestamp(t) | Value::TimestampLtz(t)) => Value::TimestampLtz(*t),
        (T::Timestamp, Value::Date(d)) => Value::Timestamp(i64::from(*d) * 86_400_000),
        (T::Date, Value::Timestamp(t) | Value::TimestampLtz(t)) => {
            Value::Date(t.div_euclid(86_400_000) as i32)
        }
        (T::Date, Value::Date(_)) | (T::Interval, Value::Interval(_)) => v,
        (T::Array(_), Value::Array(items)) => {
            let element = ty.element().unwrap_or(T::Null);
            let items = items
                .iter()
                .map(|i| cast(i.clone(), element))
                .collect::<Eval<Vec<Value>>>()?;
            Value::Array(items.into())
        }
        (T::Row(_), Value::Row(values)) => {
            let types: Vec<DataType> = ty.with_fields(|f| f.iter().map(|(_, t)| *t).collect());
            if types.len() != values.len() {
                return Err(fail(&v));
            }
            let values = values
                .iter()
                .zip(types)
                .map(|(v, t)| cast(v.clone(), t))
                .collect::<Eval<Vec<Value>>>()?;
            Value::Row(values.into())
        }
        _ => return Err(fail(&v)),
    })
}

/// Formats `ms` with a Java date pattern (`yyyy-MM-dd HH:mm:ss.SSS`, quoted text in `'...'`).
pub(crate) fn date_format(ms: i64, pattern: &str) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, mo, d) = value::civil_from_days(days);
    let fields = [
        ('y', y),
        ('M', i64::from(mo)),
        ('d', i64::from(d)),
        ('H', in_day / 3_600_000),
        ('m', in_day / 60_000 % 60),
        ('s', in_day / 1000 % 60),
        ('S', in_day % 1000),
    ];
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let end = chars[i + 1..]
                .iter()
                .position(|&x| x == '\'')
                .map_or(chars.len(), |p| i + 1 + p);
            out.extend(&chars[i + 1..end]);
            i = end + 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        match fields.iter().find(|(f, _)| *f == c) {
            Some((_, v)) => {
                let text = if c == 'y' && run == 2 {
                    format!("{:02}", v % 100)
                } else {
                    format!("{v:0run$}")
                };
                out.push_str(&text);
            }
            None => out.extend(&chars[i..i + run]),
        }
        i += run;
    }
    out
}

/// Reads `text` with a Java date pattern (the fields of [`date_format`]).
fn parse_with_pattern(text: &str, pattern: &str) -> Option<i64> {
    let (mut y, mut mo, mut d, mut h, mut mi, mut s, mut ms) =
        (1970i64, 1i64, 1i64, 0i64, 0i64, 0i64, 0i64);
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut i, mut j) = (0, 0);
    while j < p.len() {
        let c = p[j];
        let run = p[j..].iter().take_while(|&&x| x == c).count();
        let slot = match c {
            'y' => Some(&mut y),
            'M' => Some(&mut mo),
            'd' => Some(&mut d),
            'H' => Some(&mut h),
            'm' => Some(&mut mi),
            's' => Some(&mut s),
            'S' => Some(&mut ms),
            _ => None,
        };
        match slot {
            Some(slot) => {
                let digits: String = t[i..]
                    .iter()
                    .take(run.max(if c == 'y' { 4 } else { run }))
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                if digits.is_empty() {
                    return None;
                }
                i += digits.len();
                *slot = digits.parse().ok()?;
            }
            None => {
                for k in 0..run {
                    if t.get(i + k) != Some(&c) {
                        return None;
                    }
                }
                i += run;
            }
        }
        j += run;
    }
    if i != t.len()
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || h > 23
        || mi > 59
        || s > 59
    {
        return None;
    }
    Some(
        value::days_from_civil(y, mo as u32, d as u32) * 86_400_000
            + h * 3_600_000
            + mi * 60_000
            + s * 1000
            + ms,
    )
}

fn call_value(f: Func, a: Vec<Value>) -> Eval<Value> {
    let text = |v: &Value| -> Option<String> {
        match v {
            Value::Null => None,
            other => Some(other.to_string()),
        }
    };
    if !matches!(
        f,
        Func::Coalesce | Func::Concat | Func::MakeArray | Func::MakeRow
    ) && a.iter().any(Value::is_null)
    {
        return Ok(Value::Null);
    }
    Ok(match f {
        Func::MakeArray => Value::Array(a.into()),
        Func::MakeRow => Value::Row(a.into()),
        Func::Cardinality => match &a[0] {
            Value::Array(items) => Value::Int(items.len() as i32),
            _ => Value::Null,
        },
        Func::Element => match &a[0] {
            Value::Array(items) if items.len() > 1 => {
                return Err(format!(
                    "ELEMENT of an array of {} elements (it takes one or none)",
                    items.len()
                ));
            }
            Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        },
        Func::Index => match (&a[0], a[1].as_i64()) {
            (Value::Array(items), Some(i)) if i >= 1 => {
                items.get(i as usize - 1).cloned().unwrap_or(Value::Null)
            }
            _ => Value::Null,
        },
        Func::Field(i) => match &a[0] {
            Value::Row(values) => values.get(i).cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        },
        Func::Coalesce => a.into_iter().find(|v| !v.is_null()).unwrap_or(Value::Null),
        Func::Concat => {
            // As Flink: NULL if any argument is NULL.
            let mut out = String::new();
            for v in &a {
                match text(v) {
                    Some(t) => out.push_str(&t),
                    None => return Ok(Value::Null),
                }
            }
            Value::Str(Arc::from(out))
        }
        Func::Upper => Value::str(&text(&a[0]).unwrap_or_default().to_uppercase()),
        Func::Lower => Value::str(&text(&a[0]).unwrap_or_default().to_lowercase()),
        Func::Trim => Value::str(text(&a[0]).unwrap_or_default().trim()),
        Func::TrimChars(start, end) => {
            let s = text(&a[0]).unwrap_or_default();
            let chars: Vec<char> = text(&a[1]).unwrap_or_default().chars().collect();
            let mut t = s.as_str();
            if start {
                t = t.trim_start_matches(chars.as_slice());
            }
            if end {
                t = t.trim_end_matches(chars.as_slice());
            }
            Value::str(t)
        }
        Func::Position => {
            let needle = text(&a[0]).unwrap_or_default();
            let s = text(&a[1]).unwrap_or_default();
            Value::Int(
                s.find(&needle)
                    .map_or(0, |i| s[..i].chars().count() as i32 + 1),
            )
        }
        Func::Replace => {
            let s = text(&a[0]).unwrap_or_default();
            let from = text(&a[1]).unwrap_or_default();
            let to = text(&a[2]).unwrap_or_default();
            Value::str(&if from.is_empty() {
                s
            } else {
                s.replace(&from, &to)
            })
        }
        Func::Round => {
            let digits = a[1].as_i64().ok_or("ROUND: the digits are an integer")?;
            match &a[0] {
                Value::Double(v) => {
                    let m = 10f64.powi(digits as i32);
                    Value::Double((v * m).round() / m)
                }
                Value::Decimal(v, s) => {
                    let v = v.get();
                    let to = digits.clamp(0, i64::from(*s)) as u8;
                    let m = 10i128.pow(u32::from(*s - to));
                    let q = v / m;
                    let r = v % m;
                    let q = if r.abs() * 2 >= m { q + v.signum() } else { q };
                    Value::decimal(q, to)
                }
                Value::Int(v) if digits < 0 => {
                    let m = 10i64.pow((-digits) as u32);
                    let q = (i64::from(*v) + m / 2 * i64::from(v.signum())) / m * m;
                    Value::Int(q as i32)
                }
                Value::BigInt(v) if digits < 0 => {
                    let m = 10i64.pow((-digits) as u32);
                    Value::BigInt((v + m / 2 * v.signum()) / m * m)
                }
                other => other.clone(),
            }
        }
        Func::CharLength => Value::Int(text(&a[0]).unwrap_or_default().chars().count() as i32),
        Func::Substring => {
            let s: Vec<char> = text(&a[0]).unwrap_or_default().chars().collect();
            let start = a[1].as_i64().ok_or("SUBSTRING: the start is an integer")?;
            let len = match a.get(2) {
                Some(n) => n.as_i64().ok_or("SUBSTRING: the length is an integer")?,
                None => i64::MAX / 2,
            };
            if len < 0 {
                return Err(format!("SUBSTRING: negative length {len}"));
            }
            // Positions from 1; a start of 0 or below counts from the beginning (as Flink).
            let from = if start > 0 {
                start - 1
            } else if start < 0 {
                (s.len() as i64 + start).max(0)
            } else {
                0
            };
            let from = from.min(s.len() as i64) as usize;
            let to = (from as i64 + len).min(s.len() as i64) as usize;
            Value::str(&s[from..to].iter().collect::<String>())
        }
        Func::Abs => match &a[0] {
            Value::Int(v) => Value::Int(v.wrapping_abs()),
            Value::BigInt(v) => Value::BigInt(v.wrapping_abs()),
            Value::Double(v) => Value::Double(v.abs()),
            Value::Decimal(v, s) => Value::decimal(v.get().abs(), *s),
            other => other.clone(),
        },
        Func::Floor | Func::Ceil => match &a[0] {
            Value::Double(v) => Value::Double(if f == Func::Floor {
                v.floor()
            } else {
                v.ceil()
            }),
            Value::Decimal(v, s) => {
                let v = v.get();
                let m = 10i128.pow(u32::from(*s));
                let q = if f == Func::Floor {
                    v.div_euclid(m)
                } else {
                    -(-v).div_euclid(m)
                };
                Value::decimal(q, 0)
            }
            other => other.clone(),
        },
        Func::SplitIndex => {
            let s = text(&a[0]).unwrap_or_default();
            let sep = text(&a[1]).unwrap_or_default();
            let i = a[2]
                .as_i64()
                .ok_or("SPLIT_INDEX: the index is an integer")?;
            if i < 0 || sep.is_empty() {
                return Ok(Value::Null);
            }
            s.split(sep.as_str())
                .nth(i as usize)
                .map_or(Value::Null, Value::str)
        }
        Func::RegexpExtract => {
            let s = text(&a[0]).unwrap_or_default();
            let p = text(&a[1]).unwrap_or_default();
            let group = a.get(2).and_then(Value::as_i64).unwrap_or(0);
            let re = regex::Regex::new(&p).map_err(|e| format!("REGEXP_EXTRACT: {e}"))?;
            re.captures(&s)
                .and_then(|c| c.get(group as usize))
                .map_or(Value::Null, |m| Value::str(m.as_str()))
        }
        Func::DateFormat => {
            let ms = match &a[0] {
                Value::Str(s) => value::parse_timestamp(s)
                    .ok_or_else(|| format!("DATE_FORMAT: '{s}' is not a timestamp"))?,
                v => v.as_millis().ok_or("DATE_FORMAT formats a TIMESTAMP")?,
            };
            Value::str(&date_format(ms, &text(&a[1]).unwrap_or_default()))
        }
        Func::ToTimestamp => {
            let s = text(&a[0]).unwrap_or_default();
            let parsed = match a.get(1) {
                Some(p) => parse_with_pattern(&s, &text(p).unwrap_or_default()),
                None => value::parse_timestamp(&s),
            };
            // As Flink: NULL when the text does not fit.
            parsed.map_or(Value::Null, Value::Timestamp)
        }
        Func::ToTimestampLtz => {
            let n = a[0].as_f64().ok_or("TO_TIMESTAMP_LTZ takes a number")?;
            // Without a precision: milliseconds (as Flink).
            let millis = !matches!(a.get(1), Some(Value::Int(0)));
            Value::TimestampLtz(if millis {
                n as i64
            } else {
                (n * 1000.0) as i64
            })
        }
        Func::Extract(unit) => {
            let ms = match &a[0] {
                Value::Date(d) => i64::from(*d) * 86_400_000,
                v => v.as_millis().ok_or("EXTRACT reads a TIMESTAMP")?,
            };
            let (y, mo, d) = value::civil_from_days(ms.div_euclid(86_400_000));
            let in_day = ms.rem_euclid(86_400_000);
            Value::BigInt(match unit {
                TimeUnit::Year => y,
                TimeUnit::Month => i64::from(mo),
                TimeUnit::Day => i64::from(d),
                TimeUnit::Hour => in_day / 3_600_000,
                TimeUnit::Minute => in_day / 60_000 % 60,
                TimeUnit::Second => in_day / 1000 % 60,
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::parser::Parser;

    #[test]
    fn integer_comparisons_without_values_agree_with_the_general_way() {
        let ints = [
            Value::Null,
            Value::Int(0),
            Value::Int(-7),
            Value::Int(i32::MAX),
            Value::BigInt(3),
            Value::BigInt(-123),
            Value::BigInt(i64::MIN),
        ];
        let ops = [
            ArithOp::Add,
            ArithOp::Sub,
            ArithOp::Mul,
            ArithOp::Div,
            ArithOp::Mod,
        ];
        let cmps = [
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
        ];
        for a in &ints {
            for b in &ints {
                let row = [a.clone(), b.clone()];
                for op in ops {
                    for ty in [DataType::Int, DataType::BigInt] {
                        let arith = Scalar::Arith(
                            op,
                            Box::new(Scalar::Col(0)),
                            Box::new(Scalar::Col(1)),
                            ty,
                        );
                        // The general way: a value, then Value's order.
                        let general = arith.eval(&row);
                        for c in cmps {
                            for other in [Value::Int(0), Value::BigInt(-1), Value::Null] {
                                let lit = Scalar::Lit(other.clone());
                                let fast = int_cmp(c, &arith, &lit, &row);
                                match &general {
                                    // A division by zero takes the general way, to its error.
                                    Err(_) => {
                                        assert_eq!(fast, None, "{a:?} {op:?} {b:?}");
                                        let cond =
                                            Scalar::Cmp(c, Box::new(arith.clone()), Box::new(lit));
                                        assert!(cond.holds(&row).is_err());
                                    }
                                    Ok(v) => {
                                        let expected =
                                            (!v.is_null() && !other.is_null()).then(|| {
                                                let o = v.cmp(&other);
                                                match c {
                                                    CmpOp::Eq => o.is_eq(),
                                                    CmpOp::Ne => o.is_ne(),
                                                    CmpOp::Lt => o.is_lt(),
                                                    CmpOp::Le => o.is_le(),
                                                    CmpOp::Gt => o.is_gt(),
                                                    CmpOp::Ge => o.is_ge(),
                                                }
                                            });
                                        assert_eq!(
                                            fast,
                                            Some(expected),
                                            "{a:?} {op:?} {b:?} {ty} {c:?} {other:?}"
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        // Anything else takes the general way.
        let text = Scalar::Cmp(
            CmpOp::Eq,
            Box::new(Scalar::Col(0)),
            Box::new(Scalar::Lit(Value::str("x"))),
        );
        assert!(text.holds(&[Value::str("x")]).unwrap());
        assert_eq!(
            int_cmp(
                CmpOp::Eq,
                &Scalar::Col(0),
                &Scalar::Lit(Value::Double(1.0)),
                &[Value::Int(1)]
            ),
            None
        );
    }

    fn scope() -> Scope {
        let f = |name: &str, ty| Field {
            qualifier: Some("t".into()),
            name: name.into(),
            ty,
        };
        Scope {
            subst: vec![],
            grouped: false,
            fields: vec![
                f("a", DataType::Int),
                f("b", DataType::BigInt),
                f("s", DataType::String),
                f("ts", DataType::Timestamp),
                f("d", DataType::Decimal(10, 2)),
            ],
        }
    }

    fn eval(text: &str, row: &[Value]) -> (Value, DataType) {
        let e = Parser::new(&crate::parse::FlinkDialect)
            .try_with_sql(text)
            .unwrap()
            .parse_expr()
            .unwrap();
        let t = compile(&e, &scope()).unwrap_or_else(|x| panic!("{text}: {x}"));
        (t.scalar.eval(row).unwrap(), t.ty)
    }

    fn row() -> Vec<Value> {
        vec![
            Value::Int(7),
            Value::BigInt(100),
            Value::str("a,b,c"),
            Value::Timestamp(value::parse_timestamp("2015-07-15 12:34:56.789").unwrap()),
            Value::decimal(1250, 2),
        ]
    }

    #[test]
    fn arithmetic_types_as_flink() {
        let r = row();
        assert_eq!(eval("a / 2", &r), (Value::Int(3), DataType::Int));
        assert_eq!(eval("a + b", &r).1, DataType::BigInt);
        let (v, ty) = eval("0.908 * b", &r);
        // 0.908 is DECIMAL(3, 3), BIGINT as DECIMAL(19, 0): the product is DECIMAL(22, 3).
        assert_eq!(ty, DataType::Decimal(22, 3));
        assert_eq!(v.to_string(), "90.800");
        assert_eq!(eval("d * 2", &r).0.to_string(), "25.00");
        // Division: scale max(6, s1 + p2 + 1) = 13.
        assert_eq!(eval("d / 4", &r).0.to_string(), "3.1250000000000");
        assert_eq!(
            eval("a * 1.5e0", &r),
            (Value::Double(10.5), DataType::Double)
        );
        assert_eq!(
            eval("ts + INTERVAL '1' SECOND", &r).0.to_string(),
            "2015-07-15 12:34:57.789"
        );
    }

    #[test]
    fn nulls_follow_three_valued_logic() {
        let mut r = row();
        r[0] = Value::Null;
        assert_eq!(eval("a + 1", &r).0, Value::Null);
        assert_eq!(eval("a > 1 AND b > 1000", &r).0, Value::Bool(false));
        assert_eq!(eval("a > 1 OR b > 1", &r).0, Value::Bool(true));
        assert_eq!(eval("a > 1 OR b > 1000", &r).0, Value::Null);
        assert_eq!(eval("a IS NULL", &r).0, Value::Bool(true));
        assert_eq!(eval("COALESCE(a, 5)", &r).0, Value::Int(5));
        assert_eq!(eval("b IN (1, NULL)", &r).0, Value::Null);
        assert_eq!(eval("b NOT IN (1, 2)", &r).0, Value::Bool(true));
    }

    #[test]
    fn strings_and_times() {
        let r = row();
        assert_eq!(eval("SPLIT_INDEX(s, ',', 1)", &r).0, Value::str("b"));
        assert_eq!(
            eval("UPPER(SUBSTRING(s FROM 3 FOR 3))", &r).0,
            Value::str("B,C")
        );
        assert_eq!(eval("s || '!'", &r).0, Value::str("a,b,c!"));
        assert_eq!(eval("s LIKE 'a%c'", &r).0, Value::Bool(true));
        assert_eq!(
            eval("REGEXP_EXTRACT(s, '([a-z]),([a-z])', 2)", &r).0,
            Value::str("b")
        );
        assert_eq!(
            eval("DATE_FORMAT(ts, 'yyyy-MM-dd')", &r).0,
            Value::str("2015-07-15")
        );
        assert_eq!(eval("DATE_FORMAT(ts, 'HH:mm')", &r).0, Value::str("12:34"));
        assert_eq!(eval("EXTRACT(HOUR FROM ts)", &r).0, Value::BigInt(12));
        assert_eq!(
            eval("TO_TIMESTAMP('15/07/2015 01:02', 'dd/MM/yyyy HH:mm')", &r)
                .0
                .to_string(),
            "2015-07-15 01:02:00.000"
        );
        assert_eq!(eval("ts > '2015-07-15 00:00:00'", &r).0, Value::Bool(true));
        assert_eq!(
            eval("TO_TIMESTAMP_LTZ(b * 1000 + 5, 3)", &r).0.to_string(),
            "1970-01-01 00:01:40.005"
        );
        assert_eq!(
            eval("TO_TIMESTAMP_LTZ(b, 0)", &r).0.to_string(),
            "1970-01-01 00:01:40.000"
        );
        assert_eq!(
            eval("TO_TIMESTAMP_LTZ(b)", &r).0.to_string(),
            "1970-01-01 00:00:00.100"
        );
        assert_eq!(
            eval("CASE WHEN a > 5 THEN 'big' ELSE 'small' END", &r).0,
            Value::str("big")
        );
        let e = Parser::new(&crate::parse::FlinkDialect)
            .try_with_sql("CAST(s AS INT)")
            .unwrap()
            .parse_expr()
            .unwrap();
        let cast = compile(&e, &scope()).unwrap();
        assert_eq!(cast.ty, DataType::Int);
        assert_eq!(
            cast.scalar.eval(&r),
            Err("cannot cast 'a,b,c' to INT".to_string())
        );
        assert_eq!(eval("TRY_CAST(s AS INT)", &r).0, Value::Null);
        assert_eq!(
            eval("CAST('12.345' AS DECIMAL(5, 2))", &r).0.to_string(),
            "12.35"
        );
    }

    #[test]
    fn type_errors_name_the_expression() {
        let e = Parser::new(&crate::parse::FlinkDialect)
            .try_with_sql("a + s")
            .unwrap()
            .parse_expr()
            .unwrap();
        let err = compile(&e, &scope()).unwrap_err();
        assert!(
            err.message.contains("cannot apply + to INT and STRING"),
            "{err}"
        );
        let e = Parser::new(&crate::parse::FlinkDialect)
            .try_with_sql("1 + nope")
            .unwrap()
            .parse_expr()
            .unwrap();
        let err = compile(&e, &scope()).unwrap_err();
        assert!(err.message.contains("unknown column 'nope'"), "{err}");
        assert_eq!(err.pos.column, 5);
    }
}
