//! Reading a script: statements split at `;`, Flink's `CREATE TABLE` (columns, computed
//! columns, `WATERMARK FOR`, `PRIMARY KEY ... NOT ENFORCED`, `WITH (...)`) and `SET` read here,
//! everything else (queries, `INSERT INTO`, `CREATE VIEW`) by sqlparser with [`FlinkDialect`].

use std::collections::BTreeMap;
use std::fmt;

use sqlparser::ast::{self, Expr, Query, Statement};
use sqlparser::dialect::Dialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use crate::value::DataType;

/// A place in the script: line and column, from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1.
    pub column: u64,
}

impl From<Location> for Pos {
    fn from(l: Location) -> Self {
        Pos {
            line: l.line,
            column: l.column,
        }
    }
}

/// An error in a script: what is wrong and where. Its `Display` quotes the line with a caret
/// under the spot.
///
/// ```
/// let err = tidal_sql::Script::parse("SELECT 1;\nSELEC x FROM t;").unwrap_err();
/// assert_eq!((err.pos.line, err.pos.column), (2, 1));
/// assert!(err.to_string().contains("^"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// What is wrong, and what to do when it says.
    pub message: String,
    /// Where (line 0: the script as a whole).
    pub pos: Pos,
    /// The line of the script it is on (empty when not known).
    pub line_text: String,
}

impl SqlError {
    pub(crate) fn at(pos: Pos, message: impl Into<String>) -> Self {
        SqlError {
            message: message.into(),
            pos,
            line_text: String::new(),
        }
    }
    /// The same error, quoting its line of `script`.
    pub(crate) fn in_script(mut self, script: &str) -> Self {
        if self.pos.line > 0 && self.line_text.is_empty() {
            self.line_text = script
                .lines()
                .nth(self.pos.line as usize - 1)
                .unwrap_or("")
                .to_string();
        }
        self
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pos.line == 0 {
            return f.write_str(&self.message);
        }
        write!(
            f,
            "line {}, column {}: {}",
            self.pos.line, self.pos.column, self.message
        )?;
        if !self.line_text.is_empty() {
            let number = self.pos.line.to_string();
            let pad = " ".repeat(number.len());
            // The caret under the column (tabs kept so it lines up).
            let lead: String = self
                .line_text
                .chars()
                .take(self.pos.column.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(
                f,
                "\n{number} | {}\n{pad} | {lead}^",
                self.line_text.trim_end()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for SqlError {}

/// Flink's SQL dialect as far as sqlparser needs telling: identifiers quoted with backticks,
/// `TABLE name` as an argument of a table function (`TUMBLE(TABLE bids, ...)`).
#[derive(Debug, Default)]
pub struct FlinkDialect;

/// The name under which `TABLE name` arguments reach the planner: a call of this function.
pub(crate) const TABLE_ARG: &str = "$table";

impl Dialect for FlinkDialect {
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`'
    }
    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_alphabetic() || ch == '_'
    }
    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_alphanumeric() || ch == '_' || ch == '$'
    }
    fn supports_filter_during_aggregation(&self) -> bool {
        true
    }
    fn supports_group_by_expr(&self) -> bool {
        true
    }
    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        let [first, second] = parser.peek_tokens();
        match (first, second) {
            (Token::Word(w), Token::Word(_)) if w.keyword == Keyword::TABLE => {
                parser.next_token();
                Some(table_argument(parser))
            }
            _ => None,
        }
    }
}

/// `TABLE name [PARTITION BY column | PARTITION BY (column, ...)]` (after `TABLE`), as a call of
/// [`TABLE_ARG`] whose arguments are the table's name and then the partition columns.
fn table_argument(parser: &mut Parser) -> Result<Expr, ParserError> {
    let name = parser.parse_object_name(false)?;
    let mut args = vec![ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(
        Expr::CompoundIdentifier(
            name.0
                .iter()
                .filter_map(|p| p.as_ident().cloned())
                .collect(),
        ),
    ))];
    if parser.parse_keywords(&[Keyword::PARTITION, Keyword::BY]) {
        let columns = if parser.consume_token(&Token::LParen) {
            let columns = parser.parse_comma_separated(|p| p.parse_identifier())?;
            parser.expect_token(&Token::RParen)?;
            columns
        } else {
            vec![parser.parse_identifier()?]
        };
        args.extend(
            columns.into_iter().map(|c| {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(Expr::Identifier(c)))
            }),
        );
    }
    Ok(Expr::Function(ast::Function {
        name: ast::ObjectName::from(vec![ast::Ident::new(TABLE_ARG)]),
        uses_odbc_syntax: false,
        parameters: ast::FunctionArguments::None,
        args: ast::FunctionArguments::List(ast::FunctionArgumentList {
            duplicate_treatment: None,
            args,
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    }))
}

/// A column of a `CREATE TABLE`.
#[derive(Debug, Clone)]
pub enum ColumnDef {
    /// `name TYPE [NOT NULL]`: read from the source.
    Physical {
        /// Its name.
        name: String,
        /// Its type.
        ty: DataType,
        /// Where it is declared.
        pos: Pos,
    },
    /// `name TYPE METADATA [FROM 'key'] [VIRTUAL]`: a fact about the record rather than its
    /// content (a Kafka message's partition, offset, timestamp, topic).
    Metadata {
        /// Its name.
        name: String,
        /// Its type.
        ty: DataType,
        /// The metadata key (the name when no `FROM` is given).
        key: String,
        /// Whether it is only read (`VIRTUAL`: not part of what an INSERT writes).
        is_virtual: bool,
        /// Where it is declared.
        pos: Pos,
    },
    /// `name AS expr`: computed from the other columns of each row.
    Computed {
        /// Its name.
        name: String,
        /// The expression.
        expr: Box<Expr>,
        /// Where it is declared.
        pos: Pos,
    },
}

impl ColumnDef {
    /// The column's name.
    pub fn name(&self) -> &str {
        match self {
            ColumnDef::Physical { name, .. }
            | ColumnDef::Metadata { name, .. }
            | ColumnDef::Computed { name, .. } => name,
        }
    }
    /// Where it is declared.
    pub fn pos(&self) -> Pos {
        match self {
            ColumnDef::Physical { pos, .. }
            | ColumnDef::Metadata { pos, .. }
            | ColumnDef::Computed { pos, .. } => *pos,
        }
    }
}

/// `CREATE TABLE`: its columns, watermark, key and connector options.
#[derive(Debug, Clone)]
pub struct TableDef {
    /// The table's name.
    pub name: String,
    /// Its columns in order.
    pub columns: Vec<ColumnDef>,
    /// `WATERMARK FOR column AS expr`.
    pub watermark: Option<(String, Expr, Pos)>,
    /// `PRIMARY KEY (...) NOT ENFORCED`.
    pub primary_key: Vec<String>,
    /// `WITH ('key' = 'value', ...)`.
    pub options: BTreeMap<String, String>,
    /// Where the statement starts.
    pub pos: Pos,
}

/// One statement of a script.
#[derive(Debug, Clone)]
pub enum Stmt {
    /// `CREATE [TEMPORARY] TABLE`.
    CreateTable(Box<TableDef>),
    /// `CREATE [TEMPORARY] VIEW name AS query`.
    CreateView {
        /// The view's name.
        name: String,
        /// Its query.
        query: Box<Query>,
        /// Where the statement starts.
        pos: Pos,
    },
    /// `INSERT INTO table query`.
    Insert {
        /// The table written.
        table: String,
        /// What is written.
        query: Box<Query>,
        /// Where the statement starts.
        pos: Pos,
    },
    /// A query on its own: its rows are printed.
    Select {
        /// The query.
        query: Box<Query>,
        /// Where it starts.
        pos: Pos,
    },
    /// `SET 'key' = 'value'`.
    Set {
        /// The option.
        key: String,
        /// Its value.
        value: String,
        /// Where the statement starts.
        pos: Pos,
    },
    /// `EXPLAIN [PLAN FOR] statement`.
    Explain(Box<Stmt>),
}

/// Splits `script` into its statements and reads each.
pub(crate) fn parse_script(script: &str) -> Result<Vec<Stmt>, SqlError> {
    let dialect = FlinkDialect;
    let tokens = Tokenizer::new(&dialect, script)
        .tokenize_with_location()
        .map_err(|e| SqlError::at(e.location.into(), e.message.clone()))?;
    let mut statements = Vec::new();
    let mut current: Vec<TokenWithSpan> = Vec::new();
    for t in tokens {
        match t.token {
            Token::SemiColon => {
                if has_content(&current) {
                    statements.push(parse_statement(std::mem::take(&mut current))?);
                } else {
                    current.clear();
                }
            }
            _ => current.push(t),
        }
    }
    if has_content(&current) {
        statements.push(parse_statement(current)?);
    }
    Ok(statements)
}

fn has_content(tokens: &[TokenWithSpan]) -> bool {
    tokens
        .iter()
        .any(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
}

/// The position of the first token that is not whitespace.
fn first_pos(tokens: &[TokenWithSpan]) -> Pos {
    tokens
        .iter()
        .find(|t| !matches!(t.token, Token::Whitespace(_)))
        .map(|t| t.span.start.into())
        .unwrap_or_default()
}

/// The words the statement starts with, upper-cased (at most `n`).
fn leading_words(tokens: &[TokenWithSpan], n: usize) -> Vec<String> {
    tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .take(n)
        .map(|t| match &t.token {
            Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
            other => other.to_string(),
        })
        .collect()
}

fn parse_statement(tokens: Vec<TokenWithSpan>) -> Result<Stmt, SqlError> {
    let pos = first_pos(&tokens);
    // Where an error at the end of the statement points: just after its last token.
    let end: Pos = tokens
        .iter()
        .rev()
        .find(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .map(|t| t.span.end.into())
        .unwrap_or_default();
    let words = leading_words(&tokens, 3);
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let dialect = FlinkDialect;
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let failed = |e: ParserError, parser: &Parser| {
        let mut err = parser_error(e, parser.peek_token().span.start);
        if err.pos.line == 0 {
            err.pos = end;
        }
        err
    };
    match w.as_slice() {
        ["EXPLAIN", ..] => {
            parser.next_token();
            let _ = parser.parse_keywords(&[Keyword::PLAN, Keyword::FOR]);
            let rest = remaining(&mut parser);
            Ok(Stmt::Explain(Box::new(parse_statement(rest)?)))
        }
        ["CREATE", "TABLE", ..] | ["CREATE", "TEMPORARY", "TABLE"] => {
            create_table(&mut parser, pos)
                .map(|t| Stmt::CreateTable(Box::new(t)))
                .map_err(|e| failed(e, &parser))
        }
        ["SET", ..] => set(&mut parser, pos).map_err(|e| failed(e, &parser)),
        _ => {
            let statement = parser
                .parse_statement()
                .and_then(|s| {
                    if parser.peek_token().token != Token::EOF {
                        return parser.expected("the end of the statement", parser.peek_token());
                    }
                    Ok(s)
                })
                .map_err(|e| failed(e, &parser))?;
            Stmt::try_from((statement, pos))
        }
    }
}

/// What sqlparser read, as one of the statements a script may hold.
impl TryFrom<(Statement, Pos)> for Stmt {
    type Error = SqlError;
    fn try_from((statement, pos): (Statement, Pos)) -> Result<Self, SqlError> {
        match statement {
            Statement::Query(query) => Ok(Stmt::Select { query, pos }),
            Statement::Insert(insert) => {
                let table = match &insert.table {
                    ast::TableObject::TableName(name) => object_name(name),
                    other => {
                        return Err(SqlError::at(
                            pos,
                            format!("INSERT INTO {other}: write into a table by its name"),
                        ));
                    }
                };
                if !insert.columns.is_empty() {
                    return Err(SqlError::at(
                        pos,
                        "INSERT INTO with a column list is not supported yet: select the table's columns in order",
                    ));
                }
                let Some(query) = insert.source else {
                    return Err(SqlError::at(pos, "INSERT INTO needs a query"));
                };
                Ok(Stmt::Insert { table, query, pos })
            }
            Statement::CreateView { name, query, .. } => Ok(Stmt::CreateView {
                name: object_name(&name),
                query,
                pos,
            }),
            other => Err(SqlError::at(
                pos,
                format!(
                    "'{}' is not a statement Tidal runs: a script holds CREATE TABLE, CREATE VIEW, INSERT INTO, SELECT, SET and EXPLAIN",
                    first_line(&other.to_string())
                ),
            )),
        }
    }
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.len() > 60 {
        format!(
            "{}...",
            &line[..line.char_indices().nth(57).map_or(line.len(), |(i, _)| i)]
        )
    } else {
        line.to_string()
    }
}

/// The tokens the parser has not read.
fn remaining(parser: &mut Parser) -> Vec<TokenWithSpan> {
    let mut out = Vec::new();
    loop {
        let t = parser.next_token();
        if t.token == Token::EOF {
            break;
        }
        out.push(t);
    }
    out
}

/// A parser error: at the position its message names (sqlparser ends messages with
/// ` at Line: L, Column: C`), else at `at` (the next token when it failed).
fn parser_error(e: ParserError, at: Location) -> SqlError {
    let message = match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
        ParserError::RecursionLimitExceeded => "the statement nests too deeply".to_string(),
    };
    match message.rfind(" at Line: ") {
        Some(i) => {
            let numbers: Vec<u64> = message[i..]
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse().ok())
                .collect();
            let pos = match numbers[..] {
                [line, column, ..] => Pos { line, column },
                _ => at.into(),
            };
            SqlError::at(pos, &message[..i])
        }
        None => SqlError::at(at.into(), message),
    }
}

/// A name as written, its parts joined by dots (quoted parts as given, others as written).
pub(crate) fn object_name(name: &ast::ObjectName) -> String {
    name.0
        .iter()
        .map(|p| {
            p.as_ident()
                .map_or_else(|| p.to_string(), |i| i.value.clone())
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn set(parser: &mut Parser, pos: Pos) -> Result<Stmt, ParserError> {
    parser.next_token(); // SET
    let key = parser.parse_literal_string()?;
    parser.expect_token(&Token::Eq)?;
    let value = parser.parse_literal_string()?;
    if parser.peek_token().token != Token::EOF {
        return parser.expected("the end of the SET statement", parser.peek_token());
    }
    Ok(Stmt::Set { key, value, pos })
}

fn create_table(parser: &mut Parser, pos: Pos) -> Result<TableDef, ParserError> {
    parser.expect_keyword(Keyword::CREATE)?;
    let _ = parser.parse_keyword(Keyword::TEMPORARY);
    parser.expect_keyword(Keyword::TABLE)?;
    let _ = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = object_name(&parser.parse_object_name(false)?);
    parser.expect_token(&Token::LParen)?;
    let mut table = TableDef {
        name,
        columns: Vec::new(),
        watermark: None,
        primary_key: Vec::new(),
        options: BTreeMap::new(),
        pos,
    };
    loop {
        let at: Pos = parser.peek_token().span.start.into();
        let watermark = matches!(&parser.peek_token().token,
            Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("WATERMARK"));
        if watermark {
            parser.next_token();
            parser.expect_keyword(Keyword::FOR)?;
            let column = parser.parse_identifier()?.value;
            parser.expect_keyword(Keyword::AS)?;
            let expr = parser.parse_expr()?;
            table.watermark = Some((column, expr, at));
        } else if parser.parse_keywords(&[Keyword::PRIMARY, Keyword::KEY]) {
            parser.expect_token(&Token::LParen)?;
            loop {
                table.primary_key.push(parser.parse_identifier()?.value);
                if !parser.consume_token(&Token::Comma) {
                    break;
                }
            }
            parser.expect_token(&Token::RParen)?;
            parser.expect_keywords(&[Keyword::NOT, Keyword::ENFORCED])?;
        } else {
            let name = parser.parse_identifier()?.value;
            if parser.parse_keyword(Keyword::AS) {
                let expr = parser.parse_expr()?;
                table.columns.push(ColumnDef::Computed {
                    name,
                    expr: Box::new(expr),
                    pos: at,
                });
            } else {
                let mut closed = false;
                let ty = column_type(parser, &mut closed)?;
                if closed {
                    return parser.expected(
                        "one '>' (the '>>' closes a type never opened)",
                        parser.peek_token(),
                    );
                }
                let _ = parser.parse_keywords(&[Keyword::NOT, Keyword::NULL])
                    || parser.parse_keyword(Keyword::NULL);
                let metadata = matches!(&parser.peek_token().token,
                    Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("METADATA"));
                let column = if metadata {
                    parser.next_token();
                    let key = if parser.parse_keyword(Keyword::FROM) {
                        parser.parse_literal_string()?
                    } else {
                        name.clone()
                    };
                    let is_virtual = parser.parse_keyword(Keyword::VIRTUAL);
                    ColumnDef::Metadata {
                        name,
                        ty,
                        key,
                        is_virtual,
                        pos: at,
                    }
                } else {
                    ColumnDef::Physical { name, ty, pos: at }
                };
                if parser.parse_keyword(Keyword::COMMENT) {
                    parser.parse_literal_string()?;
                }
                table.columns.push(column);
            }
        }
        if !parser.consume_token(&Token::Comma) {
            break;
        }
    }
    parser.expect_token(&Token::RParen)?;
    if parser.parse_keyword(Keyword::COMMENT) {
        parser.parse_literal_string()?;
    }
    if parser.parse_keyword(Keyword::WITH) {
        parser.expect_token(&Token::LParen)?;
        loop {
            let key = parser.parse_literal_string()?;
            parser.expect_token(&Token::Eq)?;
            let value = parser.parse_literal_string()?;
            table.options.insert(key, value);
            if !parser.consume_token(&Token::Comma) {
                break;
            }
        }
        parser.expect_token(&Token::RParen)?;
    }
    if parser.peek_token().token != Token::EOF {
        return parser.expected("the end of CREATE TABLE", parser.peek_token());
    }
    Ok(table)
}

/// A column's type in `CREATE TABLE`, nested types included: `ARRAY<T>`, `ROW<name T, ...>`
/// and `ROW(name T, ...)` (sqlparser reads neither nested rows nor `>>`). `closed` is set when a
/// `>>` closed this type and the one around it.
fn column_type(parser: &mut Parser, closed: &mut bool) -> Result<DataType, ParserError> {
    let at = parser.peek_token();
    let [first, second] = parser.peek_tokens();
    let word = match &first {
        Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
        _ => String::new(),
    };
    let here = |m: String| {
        ParserError::ParserError(format!(
            "{m} at Line: {}, Column: {}",
            at.span.start.line, at.span.start.column
        ))
    };
    // The closing `>` of a nested type (half of a `>>`, the other half closing the outer one).
    let close_angle = |parser: &mut Parser, closed: &mut bool| -> Result<(), ParserError> {
        match parser.peek_token().token {
            Token::Gt => {
                parser.next_token();
                Ok(())
            }
            Token::ShiftRight => {
                parser.next_token();
                *closed = true;
                Ok(())
            }
            _ => parser.expected(">", parser.peek_token()),
        }
    };
    let not_null = |parser: &mut Parser| {
        let _ = parser.parse_keywords(&[Keyword::NOT, Keyword::NULL]);
    };
    match (word.as_str(), &second) {
        ("ARRAY", Token::Lt) => {
            parser.next_token();
            parser.next_token();
            let mut inner_closed = false;
            let element = column_type(parser, &mut inner_closed)?;
            not_null(parser);
            // Unless the element's `>>` closed this array too.
            if !inner_closed {
                close_angle(parser, closed)?;
            }
            Ok(DataType::array(element))
        }
        ("ROW", Token::Lt | Token::LParen) => {
            parser.next_token();
            let angle = parser.next_token().token == Token::Lt;
            let mut fields: Vec<(String, DataType)> = Vec::new();
            loop {
                let name = parser.parse_identifier()?.value;
                if fields.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                    return Err(here(format!("ROW has two fields named '{name}'")));
                }
                let mut inner_closed = false;
                let ty = column_type(parser, &mut inner_closed)?;
                not_null(parser);
                if parser.parse_keyword(Keyword::COMMENT) {
                    parser.parse_literal_string()?;
                }
                fields.push((name, ty));
                if inner_closed {
                    // `ROW<a ROW<b INT>>`: the `>>` closed this row too.
                    if !angle {
                        return parser.expected(")", parser.peek_token());
                    }
                    return Ok(DataType::row(fields));
                }
                if !parser.consume_token(&Token::Comma) {
                    break;
                }
            }
            if angle {
                close_angle(parser, closed)?;
            } else {
                parser.expect_token(&Token::RParen)?;
            }
            Ok(DataType::row(fields))
        }
        ("MAP" | "MULTISET", Token::Lt) => Err(here(format!(
            "type {word} is not supported: use ARRAY<...> or ROW<...>"
        ))),
        _ => {
            let ty = parser.parse_data_type()?;
            data_type(&ty).map_err(here)
        }
    }
}

/// The type a declared SQL type names.
pub(crate) fn data_type(ty: &ast::DataType) -> Result<DataType, String> {
    use ast::DataType as T;
    let precision_3 = |p: &Option<u64>| match p {
        None | Some(3) => Ok(()),
        Some(p) => Err(format!(
            "TIMESTAMP({p}): Tidal keeps timestamps to the millisecond; declare TIMESTAMP(3)"
        )),
    };
    Ok(match ty {
        T::Boolean | T::Bool => DataType::Boolean,
        T::Int(_) | T::Integer(_) | T::Int4(_) => DataType::Int,
        T::BigInt(_) | T::Int8(_) | T::Int64 => DataType::BigInt,
        T::Double(_) | T::DoublePrecision | T::Float8 | T::Float64 => DataType::Double,
        T::Decimal(info) | T::Numeric(info) | T::Dec(info) => {
            let (p, s) = match info {
                ast::ExactNumberInfo::None => (10, 0),
                ast::ExactNumberInfo::Precision(p) => (*p, 0),
                ast::ExactNumberInfo::PrecisionAndScale(p, s) => (*p, (*s).max(0) as u64),
            };
            if p == 0 || p > 38 || s > p {
                return Err(format!(
                    "DECIMAL({p}, {s}): the precision is 1 to 38 and the scale at most the precision"
                ));
            }
            DataType::Decimal(p as u8, s as u8)
        }
        T::String(_) | T::Varchar(_) | T::Text | T::Char(_) | T::CharVarying(_) => DataType::String,
        T::Date => DataType::Date,
        T::Timestamp(p, tz) => {
            precision_3(p)?;
            match tz {
                ast::TimezoneInfo::None | ast::TimezoneInfo::WithoutTimeZone => DataType::Timestamp,
                _ => DataType::TimestampLtz,
            }
        }
        T::Array(ast::ArrayElemTypeDef::AngleBracket(inner))
        | T::Array(ast::ArrayElemTypeDef::SquareBracket(inner, _)) => {
            DataType::array(data_type(inner)?)
        }
        T::Custom(name, args) if object_name(name).eq_ignore_ascii_case("TIMESTAMP_LTZ") => {
            let p = args.first().and_then(|a| a.parse::<u64>().ok());
            precision_3(&p)?;
            DataType::TimestampLtz
        }
        other => {
            return Err(format!(
                "type {other} is not supported: use BOOLEAN, INT, BIGINT, DOUBLE, DECIMAL(p, s), STRING, DATE, TIMESTAMP(3), TIMESTAMP_LTZ(3), ARRAY<T> or (in CREATE TABLE) ROW<name T, ...>"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_table_reads_flink_ddl() {
        let stmts = parse_script(
            "CREATE TABLE bids (\n  auction BIGINT,\n  price DECIMAL(10, 2) NOT NULL,\n  `date_time` TIMESTAMP(3),\n  doubled AS price * 2,\n  WATERMARK FOR date_time AS date_time - INTERVAL '2' SECOND,\n  PRIMARY KEY (auction) NOT ENFORCED\n) WITH ('connector' = 'filesystem', 'path' = '/tmp/x', 'format' = 'csv');",
        )
        .unwrap();
        let Stmt::CreateTable(t) = &stmts[0] else {
            panic!("{stmts:?}")
        };
        assert_eq!(t.name, "bids");
        let names: Vec<&str> = t.columns.iter().map(ColumnDef::name).collect();
        assert_eq!(names, ["auction", "price", "date_time", "doubled"]);
        assert!(matches!(
            t.columns[1],
            ColumnDef::Physical {
                ty: DataType::Decimal(10, 2),
                ..
            }
        ));
        assert_eq!(t.watermark.as_ref().unwrap().0, "date_time");
        assert_eq!(t.primary_key, ["auction"]);
        assert_eq!(t.options["format"], "csv");
    }

    #[test]
    fn nested_types_read_as_flink_writes_them() {
        let stmts = parse_script(
            "CREATE TABLE t (\n  tags ARRAY<STRING>,\n  grid ARRAY<ARRAY<INT NOT NULL>>,\n  owner ROW<name STRING, home ROW<city STRING, zip INT>>,\n  pair ROW(a DECIMAL(10, 2), b ARRAY<BIGINT>) NOT NULL\n) WITH ('connector' = 'print');",
        )
        .unwrap();
        let Stmt::CreateTable(t) = &stmts[0] else {
            panic!("{stmts:?}")
        };
        let types: Vec<String> = t
            .columns
            .iter()
            .map(|c| match c {
                ColumnDef::Physical { ty, .. } => ty.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            types,
            [
                "ARRAY<STRING>",
                "ARRAY<ARRAY<INT>>",
                "ROW<name STRING, home ROW<city STRING, zip INT>>",
                "ROW<a DECIMAL(10, 2), b ARRAY<BIGINT>>"
            ]
        );
        let err =
            parse_script("CREATE TABLE t (\n  m MAP<STRING, INT>\n) WITH ('connector' = 'print');")
                .unwrap_err();
        assert_eq!(err.pos, Pos { line: 2, column: 5 }, "{err}");
        assert!(err.message.contains("MAP"), "{err}");
        let err = parse_script("CREATE TABLE t (a ARRAY<INT>>) WITH ('connector' = 'print');")
            .unwrap_err();
        assert!(err.message.contains(')'), "{err}");
    }

    #[test]
    fn errors_name_line_and_column() {
        let err =
            parse_script("CREATE TABLE t (\n  a INT,\n  b BLOB\n) WITH ('connector' = 'print');")
                .unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, column: 5 }, "{err}");
        assert!(err.message.contains("BLOB"), "{err}");
        let err = parse_script("SELECT a FROM t WHERE;").unwrap_err();
        assert_eq!(err.pos.line, 1);
        assert_eq!(err.pos.column, 22, "{err}");
    }

    #[test]
    fn table_arguments_and_statements_parse() {
        let stmts = parse_script(
            "SET 'parallelism.default' = '2';\nEXPLAIN PLAN FOR SELECT window_end, COUNT(*) FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '10' SECOND)) GROUP BY window_start, window_end;\nINSERT INTO out SELECT * FROM bids;\nCREATE VIEW v AS SELECT auction FROM bids",
        )
        .unwrap();
        assert!(matches!(&stmts[0], Stmt::Set { key, .. } if key == "parallelism.default"));
        assert!(matches!(&stmts[1], Stmt::Explain(s) if matches!(**s, Stmt::Select { .. })));
        assert!(matches!(&stmts[2], Stmt::Insert { table, .. } if table == "out"));
        assert!(matches!(&stmts[3], Stmt::CreateView { name, .. } if name == "v"));
    }
}
