//! The HTTP API's handlers and its JSON shapes (see the module docs of `server`).

use arrow::array::RecordBatch;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Engine;
use crate::api::{Outcome, StreamingQuery};
use crate::error::WeirError;
use crate::runtime::QueryState;
use crate::runtime::spark_progress;

/// An error as the API answers it.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
    /// Where in the SQL a statement failed to parse: line and column, from 1.
    position: Option<(u64, u64)>,
}

impl ApiError {
    fn not_found(message: String) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message,
            position: None,
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
        let message = error.to_string();
        Self {
            status,
            position: matches!(error, WeirError::Sql(_))
                .then(|| position_in(&message))
                .flatten(),
            message,
        }
    }
}

/// The `Line: L, Column: C` the SQL parser puts in its messages.
fn position_in(message: &str) -> Option<(u64, u64)> {
    let rest = &message[message.find("Line: ")? + "Line: ".len()..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    Some((line.parse().ok()?, rest[..digits].parse().ok()?))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": {"status": self.status.as_u16(), "message": self.message}});
        if let Some((line, column)) = self.position {
            body["error"]["position"] = json!({"line": line, "column": column});
        }
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

/// The media type of Arrow's IPC stream format.
const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// `POST /api/sql`. With `Accept: application/vnd.apache.arrow.stream`, the body must be one
/// statement that returns rows, answered as an Arrow IPC stream (typed columns, no JSON).
pub(super) async fn run_sql(
    State(engine): State<Engine>,
    headers: HeaderMap,
    request: Result<Json<SqlRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    // A body too large, not JSON, or without `sql`: said in the API's error shape.
    let Json(request) = request.map_err(|rejection| ApiError {
        status: rejection.status(),
        position: None,
        message: format!(
            "{}; the body must be JSON like {{\"sql\": \"SHOW SOURCES\"}}",
            rejection.body_text()
        ),
    })?;
    let statements = weir_sql::parse_script(&request.sql).map_err(|e| {
        let mut error = ApiError::from(WeirError::from(e));
        if error.position.is_none() && error.message.contains("found: EOF") {
            // The statement ended too soon: where it ended.
            let lines: Vec<&str> = request.sql.trim_end().split('\n').collect();
            let column = lines.last().map_or(0, |l| l.chars().count()) + 1;
            error.position = Some((lines.len() as u64, column as u64));
        }
        error
    })?;
    let wants_arrow = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(ARROW_STREAM));
    if wants_arrow {
        return arrow_answer(&engine, statements).await;
    }
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
    Ok(Json(json!({ "results": results })).into_response())
}

/// One statement's rows as an Arrow IPC stream.
async fn arrow_answer(
    engine: &Engine,
    mut statements: Vec<weir_sql::ScriptStatement>,
) -> Result<Response, ApiError> {
    let refused = |message: String| ApiError {
        status: StatusCode::NOT_ACCEPTABLE,
        message,
        position: None,
    };
    if statements.len() != 1 {
        return Err(refused(format!(
            "an Arrow answer holds the rows of one statement, and the request has {}; send \
             them one by one, or ask for JSON",
            statements.len()
        )));
    }
    let statement = statements.remove(0);
    // Refused before it runs: a statement that changes something is not run for an answer
    // that cannot hold its outcome.
    let no_rows = || {
        refused(
            "the statement returns no rows to answer in Arrow, so it was not run; send it \
             asking for JSON"
                .to_string(),
        )
    };
    if !statement.statement.returns_rows() {
        return Err(no_rows());
    }
    let Outcome::Rows(batches) = engine.execute_script_statement(statement).await? else {
        return Err(no_rows());
    };
    let internal = |e: arrow::error::ArrowError| {
        ApiError::from(WeirError::Internal(format!(
            "encoding rows as Arrow IPC: {e}"
        )))
    };
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| std::sync::Arc::new(arrow::datatypes::Schema::empty()));
    let mut writer =
        arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &schema).map_err(internal)?;
    for batch in &batches {
        writer.write(batch).map_err(internal)?;
    }
    writer.finish().map_err(internal)?;
    let bytes = writer.into_inner().map_err(internal)?;
    Ok(([(header::CONTENT_TYPE, ARROW_STREAM)], bytes).into_response())
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
