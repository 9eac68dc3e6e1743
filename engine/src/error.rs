//! The engine's error type. Each variant says whose fault it is: the user's SQL or options
//! ([`WeirError::Sql`], [`WeirError::Plan`]), input data or an external system
//! ([`WeirError::Connector`]), the checkpoint ([`WeirError::Checkpoint`]), a failed query
//! ([`WeirError::Execution`]) or Weir itself ([`WeirError::Internal`]). DataFusion errors are
//! converted here and nowhere else.

use datafusion::error::DataFusionError;
use weir_connectors::ConnectorError;
use weir_sql::SqlError;

/// Errors of the Weir engine.
#[derive(Debug, thiserror::Error)]
pub enum WeirError {
    /// The SQL could not be parsed or planned.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// A statement is valid SQL but cannot be carried out (unknown name, name taken, wrong
    /// option for the query).
    #[error("{0}")]
    Plan(String),
    /// A statement names a relation or query that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A statement takes a name already in use, or starts a query already running.
    #[error("{0}")]
    Conflict(String),
    /// A source, sink or format failed (bad option, malformed record, storage failure).
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// The checkpoint is missing, damaged or used by another query.
    #[error("checkpoint error: {0}")]
    Checkpoint(String),
    /// Running a micro-batch failed in DataFusion.
    #[error("query '{query}' failed in batch {batch}: {source}")]
    Execution {
        /// The query name.
        query: String,
        /// The batch id.
        batch: u64,
        /// The cause.
        #[source]
        source: DataFusionError,
    },
    /// DataFusion failed outside a streaming query (ad hoc query, DDL).
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// A bug in Weir.
    #[error("internal error (a bug in Weir): {0}")]
    Internal(String),
}

/// Result type of the engine.
pub type Result<T, E = WeirError> = std::result::Result<T, E>;
