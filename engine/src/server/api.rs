//! The HTTP API's handlers and its JSON shapes (see the module docs of `server`).

use arrow::array::RecordBatch;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::progress_json::spark_progress;
use crate::Engine;
use crate::api::{Outcome, StreamingQuery};
use crate::error::WeirError;
use crate::runtime::QueryState;

/// An error as the API answers it.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn not_found(message: String) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message,
        }
    }
}

impl From<WeirError> for ApiError {
    fn from(error: WeirError) -> Self {
        let status = match &error {
            WeirError::Sql(_) | WeirError::Plan(_) | WeirError::Connector(_) => {
                StatusCode::BAD_REQUEST
            }
            WeirError::NotFound(_) => StatusCode::NOT_FOUND,
            WeirError::Conflict(_) => StatusCode::CONFLICT,
            WeirError::Checkpoint(_)
            | WeirError::Execution { .. }
            | WeirError::DataFusion(_)
            | WeirError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            message: error.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"status": self.status.as_u16(), "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

/// The body of `POST /api/sql`.
#[derive(Debug, Deserialize)]
pub(super) struct SqlRequest {
    sql: String,
}

/// What one statement did.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StatementResult {
    Done {
        message: String,
    },
    Rows {
        columns: Vec<String>,
        rows: Vec<Value>,
    },
    Started {
        query: String,
    },
}

/// `POST /api/sql`.
pub(super) async fn run_sql(
    State(engine): State<Engine>,
    Json(request): Json<SqlRequest>,
) -> Result<Json<Value>, ApiError> {
    let statements = weir_sql::parse_script(&request.sql).map_err(WeirError::from)?;
    let mut results = Vec::with_capacity(statements.len());
    for statement in statements {
        results.push(match engine.execute_script_statement(statement).await? {
            Outcome::Done(message) => StatementResult::Done { message },
            Outcome::Rows(batches) => rows_of(&batches)?,
            Outcome::Started(query) => StatementResult::Started {
                query: query.name().to_string(),
            },
        });
    }
    Ok(Json(json!({ "results": results })))
}

/// Record batches as column names and rows of JSON objects.
fn rows_of(batches: &[RecordBatch]) -> Result<StatementResult, ApiError> {
    let columns = batches
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        })
        .unwrap_or_default();
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    let internal = |e: arrow::error::ArrowError| {
        ApiError::from(WeirError::Internal(format!("encoding rows as JSON: {e}")))
    };
    for batch in batches {
        writer.write(batch).map_err(internal)?;
    }
    writer.finish().map_err(internal)?;
    let bytes = writer.into_inner();
    let rows = if bytes.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::from(WeirError::Internal(format!(
                "reading rows back as JSON: {e}"
            )))
        })?
    };
    Ok(StatementResult::Rows { columns, rows })
}

/// A query as the API describes it.
#[derive(Debug, Serialize)]
struct QueryInfo {
    name: String,
    /// `running`, `stopped` or `failed`.
    state: &'static str,
    sources: Vec<String>,
    batches_run: u64,
    last_error: Option<String>,
    /// The last batch's progress, shaped like Spark's `StreamingQueryProgress`.
    last_progress: Option<Value>,
    /// Recent batches' progress, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    recent_progress: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<String>,
}

fn info(query: &StreamingQuery, detailed: bool) -> QueryInfo {
    QueryInfo {
        name: query.name().to_string(),
        state: match query.state() {
            QueryState::Running => "running",
            QueryState::Stopped => "stopped",
            QueryState::Failed(_) => "failed",
        },
        sources: query.sources().to_vec(),
        batches_run: query.batches_run(),
        last_error: query.last_error(),
        last_progress: query.progress().map(|p| spark_progress(query.name(), &p)),
        recent_progress: detailed.then(|| {
            query
                .recent_progress()
                .iter()
                .map(|p| spark_progress(query.name(), p))
                .collect()
        }),
        plan: detailed.then(|| query.last_plan()).flatten(),
    }
}

/// `GET /api/queries`.
pub(super) async fn list_queries(State(engine): State<Engine>) -> Json<Value> {
    let mut queries: Vec<QueryInfo> = engine
        .queries()
        .await
        .iter()
        .map(|q| info(q, false))
        .collect();
    queries.sort_by(|a, b| a.name.cmp(&b.name));
    Json(json!({ "queries": queries }))
}

async fn query_named(engine: &Engine, name: &str) -> Result<StreamingQuery, ApiError> {
    engine.query(name).await.ok_or_else(|| {
        ApiError::not_found(format!(
            "no query named '{name}'; GET /api/queries lists them"
        ))
    })
}

/// `GET /api/queries/{name}`.
pub(super) async fn describe_query(
    State(engine): State<Engine>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let query = query_named(&engine, &name).await?;
    Ok(Json(json!(info(&query, true))))
}

/// `POST /api/queries/{name}/stop`.
pub(super) async fn stop_query(
    State(engine): State<Engine>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let query = query_named(&engine, &name).await?;
    query.stop().await?;
    Ok(Json(json!(info(&query, false))))
}
