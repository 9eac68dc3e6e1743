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

mod alerts;
mod api;
mod flight_sql;
mod metrics;
mod security;
mod ui;

pub use alerts::{AlertLimits, HealthAlerts};
pub use flight_sql::{WeirFlightSql, serve_flight_sql};
pub use metrics::ServerMetrics;
pub use security::{Access, DEFAULT_MAX_REQUEST_BYTES, tls_config};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::Engine;
use crate::error::{Result, WeirError};

/// The default address of `weir serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7117";

/// Who may call the server and how much they may send.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The token requests must carry, if any.
    pub access: Access,
    /// The largest request body accepted.
    pub max_request_bytes: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            access: Access::default(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        }
    }
}

/// The HTTP API over `engine` (see the module docs), with `metrics` at `/metrics`.
pub fn router(engine: Engine, metrics: Arc<ServerMetrics>, options: &ServerOptions) -> Router {
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
        .layer(DefaultBodyLimit::max(options.max_request_bytes))
        .layer(axum::middleware::from_fn_with_state(
            options.access.clone(),
            security::require_token,
        ))
}

/// The API's OpenAPI document, kept beside the code (a test checks it lists every route).
const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

/// Serves the API over `engine` on `listener` (HTTPS with `tls`) until `shutdown`
/// completes, then stops every query gracefully ([`Engine::shutdown`]: with a state
/// directory, they restart with it).
pub async fn serve(
    engine: Engine,
    metrics: Arc<ServerMetrics>,
    options: &ServerOptions,
    listener: TcpListener,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let address = listener
        .local_addr()
        .map_err(|e| WeirError::Plan(format!("the server's socket has no address: {e}")))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%scheme, %address, "weir serve: listening");
    let app = router(engine.clone(), metrics, options);
    let failed =
        |e: std::io::Error| WeirError::Plan(format!("the HTTP server on {address} failed: {e}"));
    match tls {
        None => axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(failed)?,
        Some(config) => {
            let handle = axum_server::Handle::new();
            let stopping = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                stopping.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
            });
            let listener = listener.into_std().map_err(failed)?;
            axum_server::from_tcp_rustls(listener, config)
                .map_err(failed)?
                .handle(handle)
                .serve(app.into_make_service())
                .await
                .map_err(failed)?;
        }
    }
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
