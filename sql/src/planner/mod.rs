//! The streaming planner: plans a continuous query with DataFusion's SQL planner over
//! [`StreamingTable`]s and static tables, then checks that every operator can run on a
//! micro-batch at a time ([`check_incremental`]).

mod dedup_function;
mod event_time;
mod incremental;
mod row_number;
mod streaming_table;

use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use sqlparser::ast::{self, Query};

pub use dedup_function::register_dedup_function;
pub use event_time::watermarked_columns;
pub use incremental::{check_incremental, incrementalize};
pub use streaming_table::StreamingTable;

use crate::error::{Result, SqlError};
use crate::window::rewrite_spark_windows;

/// A continuous query ready for the engine: a DataFusion plan whose streaming sources are
/// [`StreamingTable`] scans the engine binds to each micro-batch's rows.
///
/// The plan is kept unoptimized: the engine optimizes it once when the query starts, or,
/// when it calls functions such as `now()`, each batch optimizes its bound copy, so that they
/// take that batch's timestamp rather than the time the query was planned.
#[derive(Debug, Clone)]
pub struct StreamingPlan {
    /// The logical plan (validated by a trial optimization, but not optimized).
    pub logical_plan: LogicalPlan,
    /// Names of the streaming sources the plan reads, each once, in plan order.
    pub sources: Vec<String>,
}

/// Plans `query` as a continuous query against the tables registered in `state`.
///
/// Fails when the query is not valid SQL for the catalog, reads no streaming source, or uses
/// an operator that cannot run incrementally (the error names the operator and why).
pub async fn plan_streaming_query(state: &SessionState, query: &Query) -> Result<StreamingPlan> {
    let mut query = query.clone();
    rewrite_spark_windows(&mut query)?;
    let statement = datafusion::sql::parser::Statement::Statement(Box::new(ast::Statement::Query(
        Box::new(query),
    )));
    let plan = incrementalize(state.statement_to_plan(statement).await?)?;
    let sources = check_incremental(&plan)?;
    if sources.is_empty() {
        return Err(SqlError::Invalid(
            "the query reads no streaming source; a continuous query needs at least one \
             CREATE SOURCE input (run it as an ad hoc SELECT instead)"
                .to_string(),
        ));
    }
    // Surfaces type errors (found by DataFusion's analyzer) now rather than at the first batch.
    state.optimize(&plan)?;
    let mut seen = std::collections::HashSet::new();
    for field in plan.schema().fields() {
        if !seen.insert(field.name().as_str()) {
            return Err(SqlError::Invalid(format!(
                "output column '{}' appears more than once; give the columns distinct names \
                 with AS",
                field.name()
            )));
        }
    }
    Ok(StreamingPlan {
        logical_plan: plan,
        sources,
    })
}
