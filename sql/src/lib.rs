//! # Tidal SQL
//!
//! Flink SQL scripts on Tidal: tables over files with event time and watermarks, views, queries
//! with projections, filters, scalar functions, window table functions (`TUMBLE`, `HOP`,
//! `CUMULATE`, `SESSION`) with window aggregation, joins, Top-N, subqueries and `UNION ALL`,
//! written to files or printed — planned onto Tidal's DataStream operators and incremental
//! collections and run as one job on any number of workers and processes, with checkpoints,
//! savepoints and restarts like any Tidal job; `SET` configures parallelism and checkpoints.
//!
//! A script runs with `tidal sql SCRIPT.sql [job flags]`, or from a program with [`run_script`];
//! [`Sql`] plans a query inside a program's own job and hands back its rows as a
//! [`DataStream`].
//!
//! ```
//! use tidal_sql::{Row, Sql, Value};
//! use tidal_connectors::prelude::*;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let file = dir.path().join("bids.csv");
//! std::fs::write(&file, "1,100,2024-01-01 00:00:01\n2,250,2024-01-01 00:00:02\n1,70,2024-01-01 00:00:12\n").unwrap();
//! let sql = Sql::new(&format!(
//!     "CREATE TABLE bids (auction BIGINT, price BIGINT, ts TIMESTAMP(3),
//!        WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
//!      WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
//!     file.display()
//! ))
//! .unwrap();
//! let mut rows: Vec<Row> = tidal_engine::Job::local(2)
//!     .run(move |env| {
//!         sql.query(env, "SELECT auction, SUM(price) AS total
//!                         FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND))
//!                         GROUP BY auction, window_start, window_end")
//!             .unwrap()
//!             .collect()
//!     })
//!     .unwrap();
//! rows.sort();
//! assert_eq!(rows, vec![
//!     Row(vec![Value::BigInt(1), Value::BigInt(70)]),
//!     Row(vec![Value::BigInt(1), Value::BigInt(100)]),
//!     Row(vec![Value::BigInt(2), Value::BigInt(250)]),
//! ]);
//! ```

pub mod exec;
pub mod expr;
mod extreme;
mod intagg;
mod intcond;
pub mod options;
pub mod parse;
pub mod plan;
pub mod value;

pub use parse::{Pos, SqlError};
pub use plan::{Catalog, Program};
pub use value::{DataType, Printed, Row, Unscaled, Value, file_text, write_file_text};

use tidal_engine::{DataStream, Env, Job, JobArgs};

/// A script read and planned: every statement checked, each `INSERT INTO` and query on its own
/// planned onto operators.
///
/// ```
/// let script = tidal_sql::Script::parse(
///     "CREATE TABLE t (a INT) WITH ('connector' = 'filesystem', 'path' = '/data', 'format' = 'csv');
///      CREATE TABLE out (a INT) WITH ('connector' = 'print');
///      INSERT INTO out SELECT a * 2 FROM t WHERE a > 0;",
/// )
/// .unwrap();
/// assert_eq!(script.program.sinks.len(), 1);
/// assert!(script.explain().contains("Filter: a > 0"));
/// ```
#[derive(Debug, Clone)]
pub struct Script {
    /// Its statements as read.
    pub statements: Vec<parse::Stmt>,
    /// What runs.
    pub program: Program,
}

impl Script {
    /// Reads and plans `text`; an error names the line and column, with the line and a caret.
    pub fn parse(text: &str) -> Result<Script, SqlError> {
        let statements = parse::parse_script(text).map_err(|e| e.in_script(text))?;
        let (_, program) = plan::plan_script(&statements).map_err(|e| e.in_script(text))?;
        Ok(Script {
            statements,
            program,
        })
    }

    /// The plans of the script's `INSERT INTO`s and queries, and of its `EXPLAIN`s.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        for s in &self.program.sinks {
            out.push_str(&plan::explain(s));
        }
        for e in &self.program.explained {
            out.push_str(e);
        }
        out
    }
}

/// Runs a script as one job with the standard job flags: prints the plans its `EXPLAIN`s ask
/// for (on process 0), then runs every `INSERT INTO` and query on its own together. A script
/// with nothing to run (only `EXPLAIN`s and declarations) only prints. The script's `SET`s of
/// parallelism and checkpoint options (see [`options`]) override `args`.
///
/// ```no_run
/// let args = tidal_engine::JobArgs { workers: 2, ..Default::default() };
/// tidal_sql::run_script(&std::fs::read_to_string("job.sql").unwrap(), &args).unwrap();
/// ```
pub fn run_script(text: &str, args: &JobArgs) -> tidal_engine::Result<()> {
    run_script_with(text, args, &|_| false)
}

/// [`run_script`], where `given(flag id)` says which of `args` were given on the command line:
/// a `SET` does not override those.
pub fn run_script_with(
    text: &str,
    args: &JobArgs,
    given: &dyn Fn(&str) -> bool,
) -> tidal_engine::Result<()> {
    let script = Script::parse(text).map_err(|e| tidal_engine::Error::config(e.to_string()))?;
    let mut args = args.clone();
    for key in options::apply(&script.program.options, &mut args, given)? {
        tidal_engine::warn(format_args!(
            "SET '{key}': not an option Tidal SQL reads (it reads parallelism.default and the checkpoint options: see `tidal_sql::options`)"
        ));
    }
    if args.process == 0 {
        for e in &script.program.explained {
            exec::say(e);
        }
    }
    if script.program.sinks.is_empty() {
        return Ok(());
    }
    let job = Job::new(&args)?;
    let sinks = script.program.sinks.clone();
    job.run(move |env| {
        let plans: Vec<&plan::Plan> = sinks.iter().map(|s| &s.plan).collect();
        let mut cx = exec::Cx::new(env, &plans);
        for sink in &sinks {
            exec::build_sink(&mut cx, sink);
        }
    })
}

/// Tables and views declared once, queried from inside a program's job.
///
/// See the crate's example.
#[derive(Debug, Clone)]
pub struct Sql {
    statements: Vec<parse::Stmt>,
}

impl Sql {
    /// Reads `ddl`: `CREATE TABLE` and `CREATE VIEW` statements.
    pub fn new(ddl: &str) -> Result<Sql, SqlError> {
        let statements = parse::parse_script(ddl).map_err(|e| e.in_script(ddl))?;
        if let Some(other) = statements.iter().find(|s| {
            !matches!(
                s,
                parse::Stmt::CreateTable(_) | parse::Stmt::CreateView { .. }
            )
        }) {
            return Err(SqlError::at(
                statement_pos(other),
                "Sql::new takes CREATE TABLE and CREATE VIEW statements; run queries with Sql::query",
            )
            .in_script(ddl));
        }
        plan::plan_script(&statements).map_err(|e| e.in_script(ddl))?;
        Ok(Sql { statements })
    }

    /// Plans `query` on the declared tables and builds it on this worker: its rows.
    pub fn query<'s>(
        &self,
        env: &mut Env<'s>,
        query: &str,
    ) -> Result<DataStream<'s, Row>, SqlError> {
        let parsed = parse::parse_script(query).map_err(|e| e.in_script(query))?;
        let [parse::Stmt::Select { query: q, .. }] = &parsed[..] else {
            return Err(SqlError::at(
                Pos::default(),
                "Sql::query takes one query (a SELECT)",
            ));
        };
        let plan = self.plan(query, q)?;
        if plan.updating() {
            return Err(SqlError::at(
                Pos::default(),
                "this query's result is updating (its rows change): take it with Sql::changelog",
            ));
        }
        Ok(exec::build(&mut exec::Cx::new(env, &[&plan]), &plan))
    }

    /// Plans `query` and builds it on this worker: its changes as a changelog — `+I` for an
    /// append-only query's rows; `+I`, `-U`/`+U` pairs and `-D` for an updating one's.
    ///
    /// ```
    /// use tidal_sql::{Row, Sql, Value};
    /// use tidal_connectors::prelude::*;
    /// use tidal_engine::change::{Change, RowKind};
    /// let dir = tempfile::tempdir().unwrap();
    /// let file = dir.path().join("bids.csv");
    /// std::fs::write(&file, "1,100\n2,250\n1,70\n").unwrap();
    /// let sql = Sql::new(&format!(
    ///     "CREATE TABLE bids (auction BIGINT, price BIGINT)
    ///      WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv')",
    ///     file.display()
    /// ))
    /// .unwrap();
    /// let changes: Vec<Change<Row>> = tidal_engine::Job::local(1)
    ///     .run(move |env| {
    ///         sql.changelog(env, "SELECT auction, SUM(price) FROM bids GROUP BY auction")
    ///             .unwrap()
    ///             .collect()
    ///     })
    ///     .unwrap();
    /// // Folded, the changelog is the final table.
    /// let mut table: Vec<Row> = Vec::new();
    /// for c in changes {
    ///     match c.kind {
    ///         RowKind::Insert | RowKind::UpdateAfter => table.push(c.row),
    ///         _ => table.retain(|r| *r != c.row),
    ///     }
    /// }
    /// table.sort();
    /// assert_eq!(table, vec![
    ///     Row(vec![Value::BigInt(1), Value::BigInt(170)]),
    ///     Row(vec![Value::BigInt(2), Value::BigInt(250)]),
    /// ]);
    /// ```
    pub fn changelog<'s>(
        &self,
        env: &mut Env<'s>,
        query: &str,
    ) -> Result<DataStream<'s, tidal_engine::change::Change<Row>>, SqlError> {
        let parsed = parse::parse_script(query).map_err(|e| e.in_script(query))?;
        let [parse::Stmt::Select { query: q, .. }] = &parsed[..] else {
            return Err(SqlError::at(
                Pos::default(),
                "Sql::changelog takes one query (a SELECT)",
            ));
        };
        let plan = self.plan(query, q)?;
        Ok(exec::changelog(&mut exec::Cx::new(env, &[&plan]), &plan))
    }

    fn plan(&self, text: &str, q: &sqlparser::ast::Query) -> Result<plan::Plan, SqlError> {
        let (catalog, _) = plan::plan_script(&self.statements)?;
        plan::plan_query(q, &catalog).map_err(|e| e.in_script(text))
    }
}

/// The script `text` with each `${NAME}` replaced by its value in `vars` (`tidal sql --var
/// NAME=VALUE`): paths and sizes given when the script runs. A `${NAME}` without a value is an
/// error at its line and column.
///
/// ```
/// let vars = vec![("out".to_string(), "/tmp/o".to_string())];
/// let text = tidal_sql::substitute("'path' = '${out}'", &vars).unwrap();
/// assert_eq!(text, "'path' = '/tmp/o'");
/// let err = tidal_sql::substitute("SELECT 1;\n'${nope}'", &vars).unwrap_err();
/// assert_eq!((err.pos.line, err.pos.column), (2, 2));
/// ```
pub fn substitute(text: &str, vars: &[(String, String)]) -> Result<String, SqlError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[i..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        match vars.iter().rev().find(|(k, _)| k == name) {
            Some((_, v)) => out.push_str(v),
            None => {
                let before = &text[..text.len() - rest.len() + i];
                let line = before.matches('\n').count() as u64 + 1;
                let column = before.rsplit('\n').next().unwrap_or("").chars().count() as u64 + 1;
                return Err(SqlError::at(
                    Pos { line, column },
                    format!("${{{name}}} has no value: pass --var {name}=VALUE"),
                )
                .in_script(text));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn statement_pos(s: &parse::Stmt) -> Pos {
    match s {
        parse::Stmt::CreateTable(t) => t.pos,
        parse::Stmt::CreateView { pos, .. }
        | parse::Stmt::Insert { pos, .. }
        | parse::Stmt::Select { pos, .. }
        | parse::Stmt::Set { pos, .. } => *pos,
        parse::Stmt::Explain(inner) => statement_pos(inner),
    }
}
