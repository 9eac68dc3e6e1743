//! `weir serve`: a long-running engine behind an HTTP API (axum), a thin layer over the public
//! [`Engine`] API, beside `cli/`.
//!
//! Endpoints (JSON in and out):
//! - `GET /healthz`: `ok` while the server runs.
//! - `GET /metrics`: Prometheus metrics in the text exposition format (see `metrics`).
//! - `GET /` and `GET /ui/{file}`: the web UI (see `ui`).
//! - `GET /api/openapi.json`: the OpenAPI document of these endpoints.
//! - `POST /api/sql` with `{"sql": "..."}`: runs the statements in order, as `weir run` and
//!   the shell do, and answers one result per statement: `done` (DDL, `STOP QUERY`: what was
//!   done), `rows` (an ad hoc `SELECT`, `SHOW`, `DESCRIBE`, `EXPLAIN`: the columns and the rows
//!   as JSON objects) or `started` (`CREATE SINK ... AS`, `INSERT INTO sink`: the query's name).
//!   The first statement that fails ends the request with its error; the ones before it took
//!   effect.
//! - `GET /api/queries`: every query with its state, sources, batches run, last error and last
//!   batch's progress (shaped like Spark's `StreamingQueryProgress`).
//! - `GET /api/queries/{name}`: one query, with its recent progress and its incremental plan.
//! - `POST /api/queries/{name}/stop`: stops it gracefully (its current batch commits first).
//!
//! Errors are `{"error": {"status": …, "message": …}}` with the status that fits: 400 for a
//! statement that does not parse or plan, 404 for an unknown query or relation, 409 for a name
//! in use or a query already running, 500 for a failure inside the engine. The server binds
//! to loopback unless told otherwise, and stops gracefully on SIGTERM or Ctrl-C: it stops
//! every query (each commits the batch it is in) before it exits.

mod api;
mod metrics;
mod progress_json;
mod ui;

pub use metrics::ServerMetrics;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::Engine;
use crate::error::{Result, WeirError};

/// The default address of `weir serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7117";

/// The HTTP API over `engine` (see the module docs), with `metrics` at `/metrics`.
pub fn router(engine: Engine, metrics: Arc<ServerMetrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || async move {
                (
                    [(axum::http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
                    metrics.encode(),
                )
            }),
        )
        .route("/", get(ui::index))
        .route("/ui/{file}", get(ui::file))
        .route("/api/openapi.json", get(openapi))
        .route("/api/sql", post(api::run_sql))
        .route("/api/queries", get(api::list_queries))
        .route("/api/queries/{name}", get(api::describe_query))
        .route("/api/queries/{name}/stop", post(api::stop_query))
        .with_state(engine)
}

/// The API's OpenAPI document, kept beside the code (a test checks it lists every route).
const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

/// Serves the API over `engine` on `listener` until `shutdown` completes, then stops every
/// query gracefully ([`Engine::shutdown`]: with a state directory, they restart with it).
pub async fn serve(
    engine: Engine,
    metrics: Arc<ServerMetrics>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let address = listener
        .local_addr()
        .map_err(|e| WeirError::Plan(format!("the server's socket has no address: {e}")))?;
    tracing::info!(%address, "weir serve: listening");
    axum::serve(listener, router(engine.clone(), metrics))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| WeirError::Plan(format!("the HTTP server on {address} failed: {e}")))?;
    tracing::info!("weir serve: stopping every query");
    engine.shutdown().await
}

/// Binds `address`, refusing with a clear message when it cannot.
pub async fn bind(address: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|e| {
        WeirError::Plan(format!(
            "cannot listen on {address}: {e}; pick another address with --listen"
        ))
    })
}
