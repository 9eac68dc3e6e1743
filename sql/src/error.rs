//! The error type of the SQL front end. Every variant is the user's to fix (bad SQL, an
//! unknown name, a query that cannot run incrementally) unless it says otherwise.

use datafusion::error::DataFusionError;

/// Errors raised while parsing or planning SQL.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The text is not valid SQL for Weir's dialect.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// The statement is well formed but refers to something wrong (unknown name, bad
    /// watermark, wrong column).
    #[error("{0}")]
    Invalid(String),
    /// The query cannot run as a continuous, incremental query (yet).
    #[error("query cannot run as a streaming query: {0}")]
    NotIncremental(String),
    /// DataFusion refused to plan the query; its message is kept whole.
    #[error("{0}")]
    Plan(#[from] DataFusionError),
}

impl From<sqlparser::parser::ParserError> for SqlError {
    fn from(err: sqlparser::parser::ParserError) -> Self {
        SqlError::Syntax(
            err.to_string()
                .trim_start_matches("sql parser error: ")
                .to_string(),
        )
    }
}

/// Result type of this crate.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;
