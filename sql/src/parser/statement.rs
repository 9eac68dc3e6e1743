//! The statements of Weir's SQL surface and the script parser that produces them.

use sqlparser::ast::{self, ColumnDef, Expr, Ident, ObjectName, Query, Value};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use super::columns::{columns_to_schema, normalize, watermark_from_expr};
use super::limits::{check_depth, check_nesting};
use crate::catalog::{Options, SinkDesc, SourceDesc, TableDesc, ViewDesc};
use crate::error::{Result, SqlError};

/// One statement of a Weir script.
#[derive(Debug, Clone)]
pub enum Statement {
    /// `CREATE [OR REPLACE] SOURCE [IF NOT EXISTS] name [(columns, WATERMARK ...)] WITH (...)`
    CreateSource {
        source: SourceDesc,
        or_replace: bool,
        if_not_exists: bool,
    },
    /// `CREATE [OR REPLACE] TABLE [IF NOT EXISTS] name [(columns)] WITH (...)`
    CreateTable {
        table: TableDesc,
        or_replace: bool,
        if_not_exists: bool,
    },
    /// `CREATE [OR REPLACE] VIEW name AS query`
    CreateView { view: ViewDesc, or_replace: bool },
    /// `CREATE SINK name WITH (...) [AS query]`; with a query it also starts it.
    CreateSink {
        sink: SinkDesc,
        query: Option<Box<Query>>,
    },
    /// `INSERT INTO name query`: starts a continuous query into a sink, or appends rows to a
    /// `memory` source.
    Insert { target: String, query: Box<Query> },
    /// An ad hoc query.
    Query(Box<Query>),
    /// `EXPLAIN query`
    Explain(Box<Query>),
    /// `EXPLAIN ANALYZE query_name`: a running query's last batch, per operator.
    ExplainAnalyze(String),
    /// `SHOW SOURCES | TABLES | VIEWS | SINKS | QUERIES`
    Show(ShowKind),
    /// `SHOW PROGRESS query_name`: a query's recent batches.
    ShowProgress(String),
    /// `DESCRIBE name`
    Describe(String),
    /// `STOP QUERY name`
    StopQuery(String),
    /// `DROP SOURCE | TABLE | VIEW | SINK [IF EXISTS] name`
    Drop {
        kind: ShowKind,
        name: String,
        if_exists: bool,
    },
}

/// What `SHOW` lists (and what `DROP` removes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowKind {
    /// Streaming sources.
    Sources,
    /// Static tables.
    Tables,
    /// Views.
    Views,
    /// Sinks.
    Sinks,
    /// Continuous queries.
    Queries,
}

/// Parses a script of `;`-separated statements.
///
/// ```
/// let statements = weir_sql::parse_sql(
///     "CREATE SOURCE s (a INT) WITH (connector = 'memory'); SELECT a FROM s;",
/// ).unwrap();
/// assert_eq!(statements.len(), 2);
/// ```
pub fn parse_sql(sql: &str) -> Result<Vec<Statement>> {
    Ok(parse_script(sql)?
        .into_iter()
        .map(|s| s.statement)
        .collect())
}

/// A statement of a script with its own text, as written (what a persisted catalog keeps to
/// run it again).
#[derive(Debug, Clone)]
pub struct ScriptStatement {
    /// The statement.
    pub statement: Statement,
    /// Its text, from its first token to its last (without the `;` or comments after it).
    pub text: String,
}

/// Parses a script of `;`-separated statements, keeping each statement's text.
///
/// ```
/// let script = weir_sql::parse_script("SHOW SOURCES;\n  SELECT 'a;b' AS x ;").unwrap();
/// assert_eq!(script[1].text, "SELECT 'a;b' AS x");
/// ```
pub fn parse_script(sql: &str) -> Result<Vec<ScriptStatement>> {
    // A leading byte-order mark (files saved by some Windows editors) is not SQL.
    let sql = sql.strip_prefix('\u{feff}').unwrap_or(sql);
    check_nesting(sql)?;
    parse_bounded(sql)
}

/// Parses on a thread of its own, with a large stack and a time limit: some nestings make
/// sqlparser backtrack, each level doubling the work, long before any limit on nesting that
/// real SQL would accept (see [`PARSE_TIME_LIMIT`]). A parse over the limit is refused (its
/// thread is left to finish on its own).
fn parse_bounded(sql: &str) -> Result<Vec<ScriptStatement>> {
    let text = sql.to_string();
    let (answer, parsed) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("weir-parser".to_string())
        .stack_size(PARSER_STACK)
        .spawn(move || {
            let _ = answer.send(parse_statements(&text));
        })
        .map_err(|e| SqlError::Invalid(format!("cannot start a thread to parse SQL: {e}")))?;
    match parsed.recv_timeout(PARSE_TIME_LIMIT) {
        Ok(statements) => statements,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(SqlError::Invalid(format!(
            "the statement could not be parsed within {} seconds: its nesting makes the \
             parser try too many readings; simplify it (for example with a view or a WITH \
             clause)",
            PARSE_TIME_LIMIT.as_secs()
        ))),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(SqlError::Invalid(
            "the SQL parser failed on this statement (a bug in Weir or sqlparser); please \
             report it with the statement"
                .to_string(),
        )),
    }
}

/// Where each line of a script starts, to turn the parser's line and column into a byte
/// offset.
struct LineStarts<'a> {
    sql: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineStarts<'a> {
    fn of(sql: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { sql, starts }
    }

    /// The byte offset of a 1-based line and column (counted in characters).
    fn offset(&self, location: sqlparser::tokenizer::Location) -> usize {
        let Some(&line_start) = (location.line as usize)
            .checked_sub(1)
            .and_then(|i| self.starts.get(i))
        else {
            return self.sql.len();
        };
        self.sql[line_start..]
            .char_indices()
            .nth((location.column as usize).saturating_sub(1))
            .map_or(self.sql.len(), |(i, _)| line_start + i)
    }
}

/// The stack of the parser's thread: room for the deepest nesting the limits let through.
const PARSER_STACK: usize = 64 * 1024 * 1024;

/// How long parsing one script may take.
pub const PARSE_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

fn parse_statements(sql: &str) -> Result<Vec<ScriptStatement>> {
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect).try_with_sql(sql)?;
    let lines = LineStarts::of(sql);
    let mut statements = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        if parser.peek_token_ref().token == Token::EOF {
            return Ok(statements);
        }
        let start = lines.offset(parser.peek_token_ref().span.start);
        let statement = parse_statement(&mut parser)?;
        if let Some(query) = statement.query() {
            check_depth(query)?;
        }
        // The statement's text ends with its last token (comments after it are not its).
        parser.prev_token();
        let end = lines.offset(parser.next_token().span.end);
        statements.push(ScriptStatement {
            statement,
            text: sql.get(start..end).unwrap_or_default().to_string(),
        });
        let next = parser.peek_token();
        if next.token != Token::SemiColon && next.token != Token::EOF {
            return parser
                .expected("';' or the end of the statement", next)
                .map_err(Into::into);
        }
    }
}

impl Statement {
    /// Whether the statement answers rows (a query, `SHOW`, `DESCRIBE`, `EXPLAIN`) and
    /// changes nothing.
    pub fn returns_rows(&self) -> bool {
        matches!(
            self,
            Statement::Query(_)
                | Statement::Explain(_)
                | Statement::ExplainAnalyze(_)
                | Statement::Show(_)
                | Statement::ShowProgress(_)
                | Statement::Describe(_)
        )
    }

    /// The query the statement holds, if any.
    fn query(&self) -> Option<&Query> {
        match self {
            Statement::CreateSink { query, .. } => query.as_deref(),
            Statement::Insert { query, .. }
            | Statement::Query(query)
            | Statement::Explain(query) => Some(query),
            _ => None,
        }
    }
}

fn parse_statement(parser: &mut Parser) -> Result<Statement> {
    if parser.parse_keyword(Keyword::CREATE) {
        let or_replace = parser.parse_keywords(&[Keyword::OR, Keyword::REPLACE]);
        if parse_word(parser, "SOURCE") {
            return parse_create_source(parser, or_replace);
        }
        if parse_word(parser, "SINK") {
            return parse_create_sink(parser, or_replace);
        }
        if parser.parse_keyword(Keyword::TABLE) {
            return parse_create_table(parser, or_replace);
        }
        if parser.parse_keyword(Keyword::VIEW) {
            let name = parse_name(parser)?;
            parser.expect_keyword(Keyword::AS)?;
            let query = parser.parse_query()?;
            check_depth(&query)?;
            return Ok(Statement::CreateView {
                view: ViewDesc {
                    name,
                    query: query.to_string(),
                },
                or_replace,
            });
        }
        let found = parser.peek_token();
        return parser
            .expected("SOURCE, SINK, TABLE or VIEW after CREATE", found)
            .map_err(Into::into);
    }
    if parser.parse_keyword(Keyword::INSERT) {
        parser.expect_keyword(Keyword::INTO)?;
        let target = parse_name(parser)?;
        if parser.peek_token_ref().token == Token::LParen {
            return Err(SqlError::Syntax(format!(
                "INSERT INTO {target} (columns) is not supported: select the columns in the \
                 order of the target instead"
            )));
        }
        return Ok(Statement::Insert {
            target,
            query: parser.parse_query()?,
        });
    }
    if parser.parse_keyword(Keyword::EXPLAIN) {
        if parser.parse_keyword(Keyword::ANALYZE) {
            return Ok(Statement::ExplainAnalyze(parse_name(parser)?));
        }
        return Ok(Statement::Explain(parser.parse_query()?));
    }
    if parser.parse_keyword(Keyword::SHOW) {
        if parse_word(parser, "PROGRESS") {
            return Ok(Statement::ShowProgress(parse_name(parser)?));
        }
        return Ok(Statement::Show(parse_kind(parser, "SHOW")?));
    }
    if parser
        .parse_one_of_keywords(&[Keyword::DESCRIBE, Keyword::DESC])
        .is_some()
    {
        return Ok(Statement::Describe(parse_name(parser)?));
    }
    if parse_word(parser, "STOP") {
        if !parse_word(parser, "QUERY") {
            let found = parser.peek_token();
            return parser
                .expected("QUERY after STOP", found)
                .map_err(Into::into);
        }
        return Ok(Statement::StopQuery(parse_name(parser)?));
    }
    if parser.parse_keyword(Keyword::DROP) {
        let kind = parse_kind(parser, "DROP")?;
        if kind == ShowKind::Queries {
            return Err(SqlError::Syntax(
                "use STOP QUERY <name> to stop a query".to_string(),
            ));
        }
        let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        return Ok(Statement::Drop {
            kind,
            name: parse_name(parser)?,
            if_exists,
        });
    }
    match parser.parse_statement()? {
        ast::Statement::Query(query) => Ok(Statement::Query(query)),
        other => Err(SqlError::Syntax(format!(
            "unsupported statement: {}; Weir runs CREATE SOURCE | TABLE | VIEW | SINK, INSERT \
             INTO, SELECT, EXPLAIN, SHOW, DESCRIBE, STOP QUERY and DROP",
            first_words(&other.to_string())
        ))),
    }
}

fn parse_create_source(parser: &mut Parser, or_replace: bool) -> Result<Statement> {
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = parse_name(parser)?;
    let (columns, watermark) = parse_column_list(parser, true)?;
    let options = parse_with_options(parser, &name)?;
    let declared_schema = if columns.is_empty() {
        None
    } else {
        Some(columns_to_schema(columns)?)
    };
    if let (Some(wm), Some(schema)) = (&watermark, &declared_schema)
        && schema.field_with_name(&wm.column).is_err()
    {
        return Err(SqlError::Invalid(format!(
            "watermark column '{}' is not a column of source '{name}'",
            wm.column
        )));
    }
    Ok(Statement::CreateSource {
        source: SourceDesc {
            name,
            declared_schema,
            watermark,
            options,
        },
        or_replace,
        if_not_exists,
    })
}

fn parse_create_table(parser: &mut Parser, or_replace: bool) -> Result<Statement> {
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = parse_name(parser)?;
    let (columns, _) = parse_column_list(parser, false)?;
    let options = parse_with_options(parser, &name)?;
    let declared_schema = if columns.is_empty() {
        None
    } else {
        Some(columns_to_schema(columns)?)
    };
    Ok(Statement::CreateTable {
        table: TableDesc {
            name,
            declared_schema,
            options,
        },
        or_replace,
        if_not_exists,
    })
}

fn parse_create_sink(parser: &mut Parser, or_replace: bool) -> Result<Statement> {
    if or_replace {
        return Err(SqlError::Syntax(
            "CREATE OR REPLACE SINK is not supported: a sink's output and checkpoint belong \
             to its query; use a new sink name"
                .to_string(),
        ));
    }
    let name = parse_name(parser)?;
    let options = parse_with_options(parser, &name)?;
    let query = if parser.parse_keyword(Keyword::AS) {
        Some(parser.parse_query()?)
    } else {
        None
    };
    Ok(Statement::CreateSink {
        sink: SinkDesc { name, options },
        query,
    })
}

/// `( column type, ..., WATERMARK FOR col AS expr )`, all optional.
fn parse_column_list(
    parser: &mut Parser,
    allow_watermark: bool,
) -> Result<(Vec<ColumnDef>, Option<crate::catalog::WatermarkDesc>)> {
    let mut columns = Vec::new();
    let mut watermark = None;
    if !parser.consume_token(&Token::LParen) {
        return Ok((columns, watermark));
    }
    loop {
        if parse_word(parser, "WATERMARK") {
            if !allow_watermark {
                return Err(SqlError::Syntax(
                    "WATERMARK is declared on sources, not on static tables".to_string(),
                ));
            }
            if watermark.is_some() {
                return Err(SqlError::Syntax(
                    "a source has at most one WATERMARK".to_string(),
                ));
            }
            parser.expect_keyword(Keyword::FOR)?;
            let column = normalize(&parser.parse_identifier()?);
            parser.expect_keyword(Keyword::AS)?;
            let expr = parser.parse_expr()?;
            watermark = Some(watermark_from_expr(column, &expr)?);
        } else {
            columns.push(parser.parse_column_def()?);
        }
        if parser.consume_token(&Token::RParen) {
            return Ok((columns, watermark));
        }
        parser.expect_token(&Token::Comma)?;
    }
}

/// `WITH (key = 'value', ...)`; a key is a name, a dotted name (`s3.endpoint`) or a quoted
/// string (`'s3.endpoint'`, as Flink writes them).
fn parse_with_options(parser: &mut Parser, object: &str) -> Result<Options> {
    let mut options = Options::new();
    if !parser.parse_keyword(Keyword::WITH) {
        return Ok(options);
    }
    parser.expect_token(&Token::LParen)?;
    if parser.consume_token(&Token::RParen) {
        return Ok(options);
    }
    loop {
        let key = parse_option_key(parser, object)?;
        parser.expect_token(&Token::Eq)?;
        let value = parser.parse_expr()?;
        let value = match value {
            Expr::Value(v) => match v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s,
                Value::Number(n, _) => n,
                Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(SqlError::Syntax(format!(
                        "option '{key}' of '{object}' has an unsupported value {other}"
                    )));
                }
            },
            Expr::Identifier(Ident { value, .. }) => value,
            other => {
                return Err(SqlError::Syntax(format!(
                    "option '{key}' of '{object}' must be a quoted string, found {other}"
                )));
            }
        };
        if options.insert(key.clone(), value).is_some() {
            return Err(SqlError::Syntax(format!(
                "option '{key}' of '{object}' is given twice"
            )));
        }
        if parser.consume_token(&Token::Comma) {
            continue;
        }
        parser.expect_token(&Token::RParen)?;
        return Ok(options);
    }
}

/// An option key, lower-cased: `name`, `name.name...` or `'any text'`.
fn parse_option_key(parser: &mut Parser, object: &str) -> Result<String> {
    let token = parser.next_token();
    let mut key = match token.token {
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => return Ok(s.to_lowercase()),
        Token::Word(word) => word.value,
        other => {
            return Err(SqlError::Syntax(format!(
                "options of '{object}' must be written key = 'value', found {other} at {}",
                token.span.start
            )));
        }
    };
    while parser.consume_token(&Token::Period) {
        match parser.next_token().token {
            Token::Word(word) => {
                key.push('.');
                key.push_str(&word.value);
            }
            other => {
                return Err(SqlError::Syntax(format!(
                    "option key '{key}.' of '{object}' must go on with a name, found {other}"
                )));
            }
        }
    }
    Ok(key.to_lowercase())
}

fn parse_kind(parser: &mut Parser, verb: &str) -> Result<ShowKind> {
    let kinds = [
        (["SOURCES", "SOURCE"], ShowKind::Sources),
        (["TABLES", "TABLE"], ShowKind::Tables),
        (["VIEWS", "VIEW"], ShowKind::Views),
        (["SINKS", "SINK"], ShowKind::Sinks),
        (["QUERIES", "QUERY"], ShowKind::Queries),
    ];
    let token = parser.next_token();
    if let Token::Word(word) = &token.token {
        let upper = word.value.to_uppercase();
        for (names, kind) in kinds {
            if names.contains(&upper.as_str()) {
                return Ok(kind);
            }
        }
    }
    parser
        .expected(
            &format!("SOURCES, TABLES, VIEWS, SINKS or QUERIES after {verb}"),
            token,
        )
        .map_err(Into::into)
}

/// Consumes the next token if it is the (non-reserved) word `word`, case-insensitively.
fn parse_word(parser: &mut Parser, word: &str) -> bool {
    match &parser.peek_token_ref().token {
        Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word) => {
            parser.next_token();
            true
        }
        _ => false,
    }
}

fn parse_name(parser: &mut Parser) -> Result<String> {
    let name: ObjectName = parser.parse_object_name(false)?;
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| {
            part.as_ident()
                .map(normalize)
                .unwrap_or_else(|| part.to_string())
        })
        .collect();
    if parts.len() != 1 {
        return Err(SqlError::Syntax(format!(
            "'{name}': qualified names are not supported; use a plain name"
        )));
    }
    Ok(parts.into_iter().next().unwrap_or_default())
}

fn first_words(text: &str) -> String {
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use datafusion::arrow::datatypes::DataType;

    use super::*;

    #[test]
    fn option_keys_may_be_dotted_or_quoted() {
        let statements = parse_sql(
            "CREATE TABLE t (a INT) WITH (S3.Endpoint = 'http://h', 'azure.account_name' = 'acct', \
             connector = 'files')",
        )
        .unwrap();
        let [Statement::CreateTable { table, .. }] = statements.as_slice() else {
            panic!("unexpected {statements:?}");
        };
        let options: Vec<_> = table
            .options
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            options,
            [
                "azure.account_name=acct",
                "connector=files",
                "s3.endpoint=http://h"
            ]
        );
        let error = parse_sql("CREATE TABLE t (a INT) WITH (s3. = 'x')").unwrap_err();
        assert_eq!(
            error.to_string(),
            "syntax error: option key 's3.' of 't' must go on with a name, found ="
        );
        assert!(parse_sql("CREATE TABLE t (a INT) WITH ()").is_ok());
    }

    #[test]
    fn create_source_with_columns_watermark_and_options() {
        let statements = parse_sql(
            "CREATE SOURCE Bids (auction BIGINT, price BIGINT NOT NULL, date_time TIMESTAMP, \
             WATERMARK FOR date_time AS date_time - INTERVAL '5' SECOND) \
             WITH (connector = 'files', path = 'data/bids/', FORMAT = 'json', max_files_per_trigger = 3);",
        )
        .unwrap();
        let [
            Statement::CreateSource {
                source,
                or_replace: false,
                if_not_exists: false,
            },
        ] = statements.as_slice()
        else {
            panic!("unexpected {statements:?}");
        };
        assert_eq!(source.name, "bids");
        let schema = source.declared_schema.as_ref().unwrap();
        assert_eq!(schema.fields().len(), 3);
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        assert!(!schema.field(1).is_nullable());
        let watermark = source.watermark.as_ref().unwrap();
        assert_eq!(
            (watermark.column.as_str(), watermark.delay),
            ("date_time", Duration::from_secs(5))
        );
        let options: Vec<_> = source
            .options
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            options,
            [
                "connector=files",
                "format=json",
                "max_files_per_trigger=3",
                "path=data/bids/"
            ]
        );
    }

    #[test]
    fn create_sink_as_select_and_insert_into() {
        let statements = parse_sql(
            "CREATE SINK out WITH (connector = 'parquet', path = 'o/') AS SELECT a FROM s WHERE a > 1;\n\
             CREATE SINK other WITH (connector = 'console');\
             INSERT INTO other SELECT * FROM s",
        )
        .unwrap();
        assert!(
            matches!(&statements[0], Statement::CreateSink { sink, query: Some(q) }
            if sink.name == "out" && q.to_string() == "SELECT a FROM s WHERE a > 1")
        );
        assert!(matches!(
            &statements[1],
            Statement::CreateSink { query: None, .. }
        ));
        assert!(matches!(&statements[2], Statement::Insert { target, .. } if target == "other"));
    }

    #[test]
    fn management_statements() {
        let statements = parse_sql(
            "SHOW SOURCES; show queries; DESCRIBE bids; STOP QUERY out; DROP VIEW IF EXISTS v; \
             SHOW PROGRESS out; EXPLAIN ANALYZE out",
        )
        .unwrap();
        assert!(matches!(statements[0], Statement::Show(ShowKind::Sources)));
        assert!(matches!(statements[1], Statement::Show(ShowKind::Queries)));
        assert!(matches!(&statements[2], Statement::Describe(n) if n == "bids"));
        assert!(matches!(&statements[3], Statement::StopQuery(n) if n == "out"));
        assert!(matches!(&statements[4],
            Statement::Drop { kind: ShowKind::Views, name, if_exists: true } if name == "v"));
        assert!(matches!(&statements[5], Statement::ShowProgress(name) if name == "out"));
        assert!(matches!(&statements[6], Statement::ExplainAnalyze(name) if name == "out"));
    }

    #[test]
    fn errors_name_the_problem() {
        let err = parse_sql("CREATE SOURCE s (a INT) WITH (path = 'x', path = 'y')").unwrap_err();
        assert_eq!(
            err.to_string(),
            "syntax error: option 'path' of 's' is given twice"
        );
        let err = parse_sql("CREATE SOURCE s (a INT, WATERMARK FOR b AS b) WITH ()").unwrap_err();
        assert_eq!(
            err.to_string(),
            "watermark column 'b' is not a column of source 's'"
        );
        let err = parse_sql("CREATE FUNCTION f").unwrap_err().to_string();
        assert!(
            err.contains("Expected: SOURCE, SINK, TABLE or VIEW after CREATE"),
            "{err}"
        );
        let err = parse_sql("SELECT 1 SELECT 2").unwrap_err().to_string();
        assert!(
            err.contains("Expected: ';' or the end of the statement"),
            "{err}"
        );
        let err = parse_sql("UPDATE t SET a = 1").unwrap_err().to_string();
        assert!(
            err.starts_with("syntax error: unsupported statement: UPDATE t SET"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod script_text_tests {
    use super::parse_script;

    fn texts(sql: &str) -> Vec<String> {
        parse_script(sql)
            .expect("SQL")
            .into_iter()
            .map(|s| s.text)
            .collect()
    }

    #[test]
    fn each_statement_keeps_its_own_text() {
        assert_eq!(
            texts(
                "-- a comment first\r\nCREATE VIEW \"größe\" AS\r\n  SELECT 'é;' AS x; /* between */\n\
                 SHOW SOURCES ;;\nSELECT 1\n  -- trailing"
            ),
            [
                "CREATE VIEW \"größe\" AS\r\n  SELECT 'é;' AS x",
                "SHOW SOURCES",
                "SELECT 1",
            ]
        );
    }
}
