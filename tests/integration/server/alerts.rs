//! Alerts from a running server, received by a real HTTP receiver: an alert written as a
//! continuous query into a `webhook` sink, and the server's own health rules
//! (`--alert-webhook`) for a failed query, a long batch and a watermark far behind.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};

use super::Server;

/// What the receiver got: (path, idempotency key, body).
type Received = Arc<Mutex<Vec<(String, String, Value)>>>;

/// An HTTP receiver on a free loopback port; its base URL and what it received.
async fn receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let app = Router::new()
        .route(
            "/{path}",
            post(
                |State(received): State<Received>,
                 Path(path): Path<String>,
                 headers: HeaderMap,
                 body: axum::Json<Value>| async move {
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|k| k.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    if path == "slow" {
                        // A receiver slow enough that a kill lands while a batch is posted.
                        tokio::time::sleep(Duration::from_millis(4)).await;
                    }
                    received.lock().expect("lock").push((path, key, body.0));
                },
            ),
        )
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the receiver");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, received)
}

/// Waits until `ready` holds for what `path` received (or 60 s); those requests.
async fn wait_for(
    received: &Received,
    path: &str,
    server: &Server,
    ready: impl Fn(&[(String, Value)]) -> bool,
) -> Vec<(String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: Vec<(String, Value)> = received
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, key, body)| (key.clone(), body.clone()))
            .collect();
        if ready(&got) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{path} received only {got:?}\n{}",
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn alert<'a>(got: &'a [(String, Value)], name: &str, query: &str) -> Option<&'a Value> {
    got.iter()
        .map(|(_, body)| &body["data"])
        .find(|data| data["alert"] == name && data["query"] == query)
}

#[tokio::test(flavor = "multi_thread")]
async fn alert_queries_and_health_rules_reach_a_webhook() {
    let (hooks, received) = receiver().await;
    let checkpoints = tempfile::tempdir().expect("temp dir");
    let input = tempfile::tempdir().expect("temp dir");
    let broken = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        input.path().join("a.json"),
        "{\"id\": 1, \"amount\": 5}\n{\"id\": 2, \"amount\": 50}\n{\"id\": 3, \"amount\": 70}\n",
    )
    .expect("input");
    std::fs::write(broken.path().join("bad.json"), "{\"id\": 1}\nnot json\n").expect("input");
    let server = Server::spawn([
        "--checkpoint-root".into(),
        checkpoints.path().into(),
        "--alert-webhook".into(),
        format!("{hooks}/health").into(),
        "--alert-batch-duration".into(),
        "1us".into(),
        "--alert-watermark-delay".into(),
        "1h".into(),
    ]);
    let (status, body) = server
        .sql(&format!(
            "CREATE SOURCE payments (id BIGINT, amount BIGINT) WITH (connector = 'files', \
             path = '{}', format = 'json');\n\
             CREATE SINK big_payments WITH (connector = 'webhook', url = '{hooks}/rows') AS \
             SELECT id, amount FROM payments WHERE amount > 10;\n\
             CREATE SOURCE lines (id BIGINT) WITH (connector = 'files', path = '{}', \
             format = 'json');\n\
             CREATE SINK broken WITH (connector = 'memory') AS SELECT id FROM lines;\n\
             CREATE SOURCE bids (WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND) \
             WITH (connector = 'nexmark', table = 'bid', events_per_second = '1000');\n\
             CREATE SINK per_window WITH (connector = 'memory') AS \
             SELECT window_start, count(*) AS n FROM TUMBLE(bids, date_time, INTERVAL '1' SECOND) \
             GROUP BY window_start, window_end",
            input.path().display(),
            broken.path().display()
        ))
        .await;
    assert_eq!(status, 200, "{body}");

    // The alert query: each row POSTed once, keyed by query, batch and row.
    let rows = wait_for(&received, "rows", &server, |got| got.len() >= 2).await;
    assert_eq!(
        rows,
        [
            (
                "big_payments-0-0".to_string(),
                json!({"query": "big_payments", "batch_id": 0, "row": 0,
                       "data": {"id": 2, "amount": 50}})
            ),
            (
                "big_payments-0-1".to_string(),
                json!({"query": "big_payments", "batch_id": 0, "row": 1,
                       "data": {"id": 3, "amount": 70}})
            ),
        ]
    );

    // The health rules.
    let health = wait_for(&received, "health", &server, |got| {
        alert(got, "query_failed", "broken").is_some()
            && alert(got, "batch_duration", "big_payments").is_some()
            && alert(got, "watermark_delay", "per_window").is_some()
    })
    .await;
    let failed = alert(&health, "query_failed", "broken").expect("query_failed");
    assert_eq!(failed["state"], "firing");
    let message = failed["message"].as_str().expect("message");
    assert!(
        message.starts_with("query broken failed: ") && message.contains("bad.json"),
        "{message}"
    );
    let slow = alert(&health, "batch_duration", "big_payments").expect("batch_duration");
    assert_eq!(slow["state"], "firing");
    assert_eq!(slow["limit"], 0.000001);
    assert!(
        slow["value"].as_f64().is_some_and(|v| v > 0.000001),
        "{slow}"
    );
    let behind = alert(&health, "watermark_delay", "per_window").expect("watermark_delay");
    assert_eq!(behind["limit"], 3600.0);
    // The generator's event time starts in 2024: far behind wall-clock time.
    assert!(
        behind["value"].as_f64().is_some_and(|v| v > 3600.0),
        "{behind}"
    );
    // A rule fires once while it stays over its limit, whatever the batches after.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let health = wait_for(&received, "health", &server, |_| true).await;
    let firings = |name: &str, query: &str| {
        health
            .iter()
            .filter(|(_, b)| b["data"]["alert"] == name && b["data"]["query"] == query)
            .count()
    };
    assert_eq!(firings("watermark_delay", "per_window"), 1, "{health:?}");
    let keys: Vec<&String> = health.iter().map(|(k, _)| k).collect();
    assert!(
        keys.iter().all(|k| k.starts_with("weir_health-")),
        "{keys:?}"
    );
}

#[test]
fn a_bad_alert_webhook_is_refused_at_start() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--alert-webhook",
            "ftp://x",
        ])
        .output()
        .expect("running weir serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--alert-webhook: "), "{stderr}");
}

/// The webhook sink's promise across a crash: every row arrives at least once, and a row
/// sent again after SIGKILL (its batch re-run) carries the key and body it had before.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_server_resends_webhook_rows_with_their_earlier_keys() {
    let (hooks, received) = receiver().await;
    let root = tempfile::tempdir().expect("temp dir");
    let (state, input) = (root.path().join("state"), root.path().join("in"));
    std::fs::create_dir_all(&input).expect("input dir");
    let write = |index: u64| {
        let rows: String = (index * 50..(index + 1) * 50)
            .map(|id| format!("{{\"id\": {id}}}\n"))
            .collect();
        let hidden = input.join(format!(".{index:04}.tmp"));
        std::fs::write(&hidden, rows).expect("input");
        std::fs::rename(&hidden, input.join(format!("{index:04}.json"))).expect("publish");
    };
    let spawn = || Server::spawn(["--state-dir".into(), state.clone().into()]);
    let mut server = spawn();
    let (status, body) = server
        .sql(&format!(
            "CREATE SOURCE ids (id BIGINT) WITH (connector = 'files', path = '{}', \
             format = 'json', max_files_per_trigger = '1');\n\
             CREATE SINK hook WITH (connector = 'webhook', url = '{hooks}/slow') AS \
             SELECT id FROM ids",
            input.display()
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut files = 0;
    for pause in [150, 330, 240] {
        for _ in 0..4 {
            write(files);
            files += 1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaping");
        server = spawn();
    }
    let expected = (files * 50) as usize;
    let got = wait_for(&received, "slow", &server, |got| {
        got.iter()
            .map(|(key, _)| key)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= expected
    })
    .await;
    let mut by_key: std::collections::BTreeMap<&str, &Value> = Default::default();
    for (key, body) in &got {
        if let Some(earlier) = by_key.insert(key, body) {
            assert_eq!(earlier, body, "key {key} was sent with two bodies");
        }
    }
    let mut ids: Vec<i64> = by_key
        .values()
        .map(|b| b["data"]["id"].as_i64().expect("an id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..expected as i64).collect::<Vec<_>>(),
        "each row once per key"
    );
    eprintln!(
        "{} requests for {} rows ({} sent again after kills)",
        got.len(),
        expected,
        got.len() - expected
    );
}
