//! The webhook sink against a real HTTP receiver (axum on 127.0.0.1): bodies, headers, keys,
//! retries, refusals and option errors.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use crate::offset::BatchId;
use crate::options::{ConnectorOptions, OptionSpec};
use crate::registry::ConnectorRegistry;
use crate::sink::{OutputMode, Sink, SinkOpen};

/// The keys the engine reads itself, as it passes them to `create_sink`.
const QUERY_OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "output_mode",
        help: "",
    },
    OptionSpec {
        key: "checkpoint",
        help: "",
    },
];

/// A request as the receiver saw it.
#[derive(Debug, Clone)]
struct Seen {
    key: String,
    content_type: String,
    authorization: Option<String>,
    body: String,
}

/// How the receiver answers its `n`th request (from 0): status, extra headers and body.
type Script = Arc<
    dyn Fn(usize) -> (StatusCode, Vec<(&'static str, &'static str)>, &'static str) + Send + Sync,
>;

#[derive(Clone)]
struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Script,
    /// How long the receiver waits before answering its `n`th request.
    delay: Arc<dyn Fn(usize) -> Duration + Send + Sync>,
}

impl Receiver {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn hook(
    State(receiver): State<Receiver>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, HeaderMap, &'static str) {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_string());
    let n = {
        let mut seen = receiver.seen.lock().unwrap();
        seen.push(Seen {
            key: header("idempotency-key").unwrap_or_default(),
            content_type: header("content-type").unwrap_or_default(),
            authorization: header("authorization"),
            body,
        });
        seen.len() - 1
    };
    tokio::time::sleep((receiver.delay)(n)).await;
    let (status, extra, body) = (receiver.script)(n);
    let mut out = HeaderMap::new();
    for (name, value) in extra {
        out.insert(name, value.parse().unwrap());
    }
    (status, out, body)
}

/// Starts a receiver on 127.0.0.1 answering as `script`; returns it and its hook URL.
async fn receiver(
    script: impl Fn(usize) -> (StatusCode, Vec<(&'static str, &'static str)>, &'static str)
    + Send
    + Sync
    + 'static,
) -> (Receiver, String) {
    receiver_with_delay(script, |_| Duration::ZERO).await
}

async fn receiver_with_delay(
    script: impl Fn(usize) -> (StatusCode, Vec<(&'static str, &'static str)>, &'static str)
    + Send
    + Sync
    + 'static,
    delay: impl Fn(usize) -> Duration + Send + Sync + 'static,
) -> (Receiver, String) {
    let receiver = Receiver {
        seen: Arc::default(),
        script: Arc::new(script),
        delay: Arc::new(delay),
    };
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (receiver, url)
}

fn ok(_: usize) -> (StatusCode, Vec<(&'static str, &'static str)>, &'static str) {
    (StatusCode::OK, Vec::new(), "")
}

fn options(pairs: &[(&str, &str)]) -> ConnectorOptions {
    let mut values: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    values.insert("connector".to_string(), "webhook".to_string());
    ConnectorOptions::new("alerts", values)
}

fn create(pairs: &[(&str, &str)]) -> crate::error::Result<Arc<dyn Sink>> {
    ConnectorRegistry::new().create_sink(&options(pairs), QUERY_OPTIONS)
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]))
}

fn batch(ids: &[i64], names: &[Option<&str>]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names.to_vec())),
        ],
    )
    .unwrap()
}

async fn open(pairs: &[(&str, &str)]) -> Arc<dyn Sink> {
    let sink = create(pairs).unwrap();
    sink.open(SinkOpen {
        schema: schema(),
        last_committed: None,
        new_query: true,
        output_mode: OutputMode::Append,
    })
    .await
    .unwrap();
    sink
}

/// Options for fast retries.
fn fast(url: &str) -> Vec<(&str, &str)> {
    vec![("url", url), ("max_retries", "2"), ("retry_backoff", "1ms")]
}

#[tokio::test]
async fn webhook_posts_rows_of_two_batches_in_order_with_keys_and_headers() {
    let (receiver, url) = receiver(ok).await;
    let sink = open(&[
        ("url", &url),
        ("headers", "Authorization: Bearer t0ken; X-Team: a"),
    ])
    .await;
    sink.write(BatchId(0), vec![batch(&[1, 2], &[Some("ann"), None])])
        .await
        .unwrap();
    // Two record batches make one batch; row indices run across them.
    sink.write(
        BatchId(1),
        vec![batch(&[3], &[Some("bo \"b\"")]), batch(&[4], &[Some("cy")])],
    )
    .await
    .unwrap();
    let seen = receiver.seen();
    let got: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.key.as_str(), s.body.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "alerts-0-0",
                r#"{"query":"alerts","batch_id":0,"row":0,"data":{"id":1,"name":"ann"}}"#
            ),
            (
                "alerts-0-1",
                r#"{"query":"alerts","batch_id":0,"row":1,"data":{"id":2,"name":null}}"#
            ),
            (
                "alerts-1-0",
                r#"{"query":"alerts","batch_id":1,"row":0,"data":{"id":3,"name":"bo \"b\""}}"#
            ),
            (
                "alerts-1-1",
                r#"{"query":"alerts","batch_id":1,"row":1,"data":{"id":4,"name":"cy"}}"#
            ),
        ]
    );
    for s in &seen {
        assert_eq!(s.content_type, "application/json");
        assert_eq!(s.authorization.as_deref(), Some("Bearer t0ken"));
    }
}

#[tokio::test]
async fn webhook_rerun_batch_in_another_row_order_gets_the_same_keys() {
    let (receiver, url) = receiver(ok).await;
    let sink = open(&[("url", &url)]).await;
    sink.write(BatchId(5), vec![batch(&[1, 2], &[Some("a"), Some("b")])])
        .await
        .unwrap();
    // The engine re-runs a batch with the same rows, not always in the same order.
    sink.write(
        BatchId(5),
        vec![batch(&[2], &[Some("b")]), batch(&[1], &[Some("a")])],
    )
    .await
    .unwrap();
    let seen = receiver.seen();
    assert_eq!(seen.len(), 4);
    for (first, rerun) in seen[..2].iter().zip(&seen[2..]) {
        assert_eq!((&first.key, &first.body), (&rerun.key, &rerun.body));
    }
}

#[tokio::test]
async fn webhook_batch_size_posts_arrays_keyed_by_their_first_row() {
    let (receiver, url) = receiver(ok).await;
    let sink = open(&[("url", &url), ("batch_size", "2")]).await;
    sink.write(
        BatchId(3),
        vec![batch(&[1, 2, 3], &[Some("a"), Some("b"), Some("c")])],
    )
    .await
    .unwrap();
    let seen = receiver.seen();
    let got: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.key.as_str(), s.body.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "alerts-3-0",
                r#"[{"query":"alerts","batch_id":3,"row":0,"data":{"id":1,"name":"a"}},{"query":"alerts","batch_id":3,"row":1,"data":{"id":2,"name":"b"}}]"#
            ),
            (
                "alerts-3-2",
                r#"[{"query":"alerts","batch_id":3,"row":2,"data":{"id":3,"name":"c"}}]"#
            ),
        ]
    );
}

#[tokio::test]
async fn webhook_retries_503_then_delivers_with_the_same_key() {
    let (receiver, url) = receiver(|n| {
        if n < 2 {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                vec![("retry-after", "0")],
                "busy",
            )
        } else {
            ok(n)
        }
    })
    .await;
    let sink = open(&fast(&url)).await;
    sink.write(BatchId(0), vec![batch(&[7], &[Some("x")])])
        .await
        .unwrap();
    let seen = receiver.seen();
    assert_eq!(seen.len(), 3, "two 503 answers, then 200");
    assert!(seen.iter().all(|s| s.key == "alerts-0-0"));
    assert!(seen.iter().all(|s| s.body == seen[0].body));
}

#[tokio::test]
async fn webhook_retries_a_request_that_times_out() {
    let (receiver, url) = receiver_with_delay(ok, |n| {
        if n == 0 {
            Duration::from_millis(800)
        } else {
            Duration::ZERO
        }
    })
    .await;
    let mut pairs = fast(&url);
    pairs.push(("timeout", "150ms"));
    let sink = open(&pairs).await;
    sink.write(BatchId(0), vec![batch(&[1], &[None])])
        .await
        .unwrap();
    let seen = receiver.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].key, seen[1].key);
}

#[tokio::test]
async fn webhook_fails_after_max_retries_when_the_receiver_answers_500() {
    let (receiver, url) =
        receiver(|_| (StatusCode::INTERNAL_SERVER_ERROR, Vec::new(), "db down")).await;
    let sink = open(&fast(&url)).await;
    let err = sink
        .write(BatchId(4), vec![batch(&[1], &[None])])
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(receiver.seen().len(), 3, "max_retries 2: three attempts");
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("gave up after 3 attempts"), "{err}");
    assert!(
        err.contains("last error: HTTP 500 Internal Server Error: db down"),
        "{err}"
    );
    assert!(err.contains("alerts-4-0"), "{err}");
}

#[tokio::test]
async fn webhook_fails_at_once_on_400_quoting_the_body() {
    let (receiver, url) = receiver(|_| {
        (
            StatusCode::BAD_REQUEST,
            Vec::new(),
            "field 'name' must not be null\n",
        )
    })
    .await;
    let sink = open(&fast(&url)).await;
    let err = sink
        .write(BatchId(0), vec![batch(&[1, 2], &[None, None])])
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(receiver.seen().len(), 1, "a 400 is not retried: {err}");
    assert!(err.contains(&url), "{err}");
    assert!(
        err.contains("HTTP 400 Bad Request: field 'name' must not be null; not retried"),
        "{err}"
    );
}

#[tokio::test]
async fn webhook_does_not_follow_a_redirect() {
    let (receiver, url) = receiver(|_| {
        (
            StatusCode::FOUND,
            vec![("location", "http://elsewhere/hook")],
            "",
        )
    })
    .await;
    let sink = open(&fast(&url)).await;
    let err = sink
        .write(BatchId(0), vec![batch(&[1], &[None])])
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(receiver.seen().len(), 1, "{err}");
    assert!(
        err.contains(
            "HTTP 302 Found (a redirect to http://elsewhere/hook, which the sink does not follow"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn webhook_unreachable_url_fails_after_retries() {
    // A port that was just free and is now closed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    drop(listener);
    let sink = open(&fast(&url)).await;
    let err = sink
        .write(BatchId(0), vec![batch(&[1], &[None])])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("gave up after 3 attempts"), "{err}");
    assert!(err.to_lowercase().contains("connection refused"), "{err}");
}

#[tokio::test]
async fn webhook_options_are_checked_at_create_sink() {
    let err = |pairs: &[(&str, &str)]| create(pairs).unwrap_err().to_string();
    assert_eq!(err(&[]), "option 'url' is required for 'alerts'");
    assert_eq!(
        err(&[("url", "localhost:9000/hook")]),
        "option 'url' of 'alerts' has the invalid value 'localhost:9000/hook': expected an \
         http:// or https:// URL such as 'http://127.0.0.1:9000/hook' (the scheme is \
         'localhost')"
    );
    assert!(
        err(&[("url", "ftp://h/x")]).contains("the scheme is 'ftp'"),
        "{}",
        err(&[("url", "ftp://h/x")])
    );
    assert!(err(&[("url", "not a url")]).contains("invalid value 'not a url'"));
    let unknown = err(&[("url", "http://h/x"), ("retries", "3")]);
    assert!(
        unknown.starts_with("unknown option 'retries' for 'alerts'; valid options are:"),
        "{unknown}"
    );
    assert!(unknown.contains("max_retries"), "{unknown}");
    assert_eq!(
        err(&[("url", "http://h/x"), ("output_mode", "Complete")]),
        "webhook sink 'alerts' cannot take output_mode 'complete': every batch would re-post \
         the whole result; use 'update' (each changed row is posted once per batch) or 'append'"
    );
    assert!(
        err(&[("url", "http://h/x"), ("retry_backoff", "soon")])
            .contains("option 'retry_backoff' of 'alerts' has the invalid value 'soon'")
    );
    assert!(err(&[("url", "http://h/x"), ("batch_size", "0")]).contains("positive"));
    // Header values may be secrets: errors name the entry or header, not the value.
    let headers = err(&[("url", "http://h/x"), ("headers", "Bearer s3cret")]);
    assert!(headers.contains("entry 1 has no ':'"), "{headers}");
    assert!(!headers.contains("s3cret"), "{headers}");
    let reserved = err(&[("url", "http://h/x"), ("headers", "Idempotency-Key: x")]);
    assert!(reserved.contains("is set by the sink itself"), "{reserved}");
    assert!(create(&[("url", "https://h/x"), ("output_mode", "update")]).is_ok());
}

#[tokio::test]
async fn webhook_refuses_complete_mode_when_opened() {
    let sink = create(&[("url", "http://127.0.0.1:1/hook")]).unwrap();
    let err = sink
        .open(SinkOpen {
            schema: schema(),
            last_committed: None,
            new_query: true,
            output_mode: OutputMode::Complete,
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot take output_mode 'complete'"), "{err}");
}

#[test]
fn webhook_debug_and_errors_hide_secrets() {
    let sink = create(&[
        ("url", "http://user:pw@127.0.0.1:1/hook"),
        ("headers", "Authorization: Bearer s3cret"),
    ])
    .unwrap();
    let debug = format!("{sink:?}");
    assert!(
        !debug.contains("s3cret") && !debug.contains(":pw@"),
        "{debug}"
    );
    assert!(debug.contains("user:***@127.0.0.1"), "{debug}");
}
