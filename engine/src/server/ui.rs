//! The web UI: static files embedded in the binary (no build step), served at `/` and
//! `/ui/{file}`. The page reads the same JSON API as any client (`/api/queries`,
//! `/api/queries/{name}`, `/api/sql`) and draws the queries table, each query's live charts
//! (the charts of Spark's Structured Streaming tab), its plan with per-operator figures, its
//! last errors, and a SQL box.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The UI's files: name, content type, content.
const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("ui/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("ui/style.css"),
    ),
];

/// `GET /`: the UI's page.
pub(super) async fn index() -> Response {
    serve("index.html")
}

/// `GET /ui/{file}`.
pub(super) async fn file(Path(name): Path<String>) -> Response {
    serve(&name)
}

fn serve(name: &str) -> Response {
    match FILES.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, body)) => {
            ([(header::CONTENT_TYPE, *content_type)], *body).into_response()
        }
        None => (StatusCode::NOT_FOUND, format!("no UI file named '{name}'")).into_response(),
    }
}
