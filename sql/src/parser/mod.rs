//! Weir's SQL dialect: DataFusion's SQL plus the streaming DDL of DESIGN.md.
//!
//! Statements sqlparser does not know (`CREATE SOURCE`, `CREATE SINK`, `SHOW QUERIES`,
//! `STOP QUERY`, the `WATERMARK FOR` column clause) are parsed here with sqlparser's public
//! [`Parser`](sqlparser::parser::Parser) building blocks; queries are left to sqlparser whole.

mod columns;
mod limits;
mod statement;

pub use columns::columns_to_schema;
pub use limits::{MAX_EXPRESSION_DEPTH, MAX_OPERATORS, MAX_PARENTHESES};
pub use statement::{
    PARSE_TIME_LIMIT, ScriptStatement, ShowKind, Statement, parse_script, parse_sql,
};
