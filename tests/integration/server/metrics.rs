//! `GET /metrics` scraped while queries run and parsed with a Prometheus text-format parser:
//! the values match what the queries did (rows in, malformed records, batches, state), and
//! every metric the Grafana dashboard and the alert rules in `deploy/` name is one the server
//! exports.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::time::{Duration, Instant};

use prometheus_parse::{Sample, Scrape, Value};

use super::Server;

async fn scrape_once(server: &Server) -> Scrape {
    let response = reqwest::get(format!("{}/metrics", server.base))
        .await
        .expect("scraping /metrics");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"].to_str().expect("text");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.expect("the body");
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("the text exposition format")
}

/// The value of the sample `name` whose labels include `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matches = |s: &&Sample| {
        s.metric == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(k).is_some_and(|l| l == *v))
    };
    scrape.samples.iter().find(matches).map(|s| match &s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
        Value::Summary(_) => f64::NAN,
    })
}

/// Polls the metrics until `ready` holds (or 60 s passed).
async fn scrape_until(server: &Server, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let scrape = scrape_once(server).await;
        if ready(&scrape) {
            return scrape;
        }
        assert!(
            Instant::now() < deadline,
            "the metrics never got there: {:?}\n{}",
            scrape
                .samples
                .iter()
                .map(|s| &s.metric)
                .collect::<BTreeSet<_>>(),
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn metrics_follow_the_queries_and_cover_the_dashboard_and_alert_rules() {
    let server = Server::start();
    let input = tempfile::tempdir().expect("temp dir");
    fs::write(
        input.path().join("a.json"),
        "{\"id\": 1}\n{\"id\": 2}\nnot json\n{\"id\": 3}\n",
    )
    .expect("an input file");
    let (status, body) = server
        .sql(&format!(
            "CREATE SOURCE lines (id BIGINT) WITH (connector = 'files', path = '{}', \
             format = 'json', on_error = 'skip');\n\
             CREATE SINK clean WITH (connector = 'memory') AS SELECT id FROM lines;\n\
             CREATE SOURCE bids (WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND) \
             WITH (connector = 'nexmark', table = 'bid', events_per_second = '2000');\n\
             CREATE SINK per_window WITH (connector = 'memory') AS \
             SELECT window_start, count(*) AS n FROM TUMBLE(bids, date_time, INTERVAL '1' SECOND) \
             GROUP BY window_start, window_end",
            input.path().display()
        ))
        .await;
    assert_eq!(status, 200, "{body}");

    let clean = [("query", "clean")];
    let window = [("query", "per_window")];
    let aggregate = [("query", "per_window"), ("operator", "aggregate-0")];
    let scrape = scrape_until(&server, |s| {
        value(s, "weir_query_input_rows_total", &clean) == Some(3.0)
            && value(s, "weir_query_output_rows_total", &window).is_some_and(|v| v > 0.0)
    })
    .await;
    // The files query: three good rows, one malformed record skipped, in one batch.
    let source = [("query", "clean"), ("source", "lines")];
    assert_eq!(
        value(&scrape, "weir_source_input_rows_total", &source),
        Some(3.0)
    );
    assert_eq!(
        value(&scrape, "weir_source_malformed_records_total", &source),
        Some(1.0)
    );
    assert_eq!(
        value(&scrape, "weir_source_bad_files_total", &source),
        Some(0.0)
    );
    assert_eq!(
        value(&scrape, "weir_query_output_rows_total", &clean),
        Some(3.0)
    );
    assert_eq!(
        value(&scrape, "weir_query_batches_total", &clean),
        Some(1.0)
    );
    assert_eq!(
        value(&scrape, "weir_query_batch_duration_seconds", &clean),
        Some(1.0)
    );
    assert_eq!(value(&scrape, "weir_query_running", &clean), Some(1.0));
    assert_eq!(
        value(&scrape, "weir_query_failures_total", &clean),
        Some(0.0)
    );
    assert_eq!(
        value(&scrape, "weir_query_restarts_total", &clean),
        Some(0.0)
    );
    // The windowed aggregation: a watermark, state, and as many batch durations as batches.
    let batches = value(&scrape, "weir_query_batches_total", &window).expect("batches");
    assert_eq!(
        value(&scrape, "weir_query_batch_duration_seconds", &window),
        Some(batches)
    );
    let watermark = value(&scrape, "weir_query_watermark_seconds", &window).expect("watermark");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let delay = value(&scrape, "weir_query_watermark_delay_seconds", &window).expect("delay");
    assert!(
        delay >= 0.0 && watermark <= now,
        "watermark {watermark}, delay {delay}"
    );
    assert!(value(&scrape, "weir_operator_state_bytes", &aggregate).is_some_and(|b| b > 0.0));
    assert!(
        value(&scrape, "weir_operator_emitted_rows_total", &aggregate).is_some_and(|r| r > 0.0)
    );

    // Stopping a query shows.
    let (status, _) = server
        .post("/api/queries/clean/stop", serde_json::json!({}))
        .await;
    assert_eq!(status, 200);
    let scrape = scrape_once(&server).await;
    assert_eq!(value(&scrape, "weir_query_running", &clean), Some(0.0));
    let of_clean = |scrape: &Scrape| {
        scrape
            .samples
            .iter()
            .filter(|s| s.labels.get("query") == Some("clean"))
            .map(|s| s.metric.clone())
            .collect::<BTreeSet<_>>()
    };
    let before = of_clean(&scrape);
    assert!(
        before.contains("weir_source_input_rows_total")
            && before.contains("weir_query_phase_seconds_total"),
        "{before:?}"
    );

    // Dropping its sink takes every series of the ended query away; the others stay.
    let (status, body) = server.sql("DROP SINK clean").await;
    assert_eq!(status, 200, "{body}");
    let after = scrape_once(&server).await;
    assert_eq!(of_clean(&after), BTreeSet::new());
    assert!(value(&after, "weir_query_running", &aggregate[..1]).is_some());

    // Every metric the dashboard and the alert rules name is exported.
    let exported: BTreeSet<String> = scrape
        .samples
        .iter()
        .map(|s| s.metric.clone())
        .chain(scrape.docs.keys().cloned())
        .collect();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
    let dashboard: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(format!("{root}/grafana/weir-dashboard.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut expressions = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            expressions.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    expressions.extend(
        variables
            .iter()
            .filter_map(|v| v["query"].as_str().map(String::from)),
    );
    let rules = fs::read_to_string(format!("{root}/prometheus/weir-alerts.yml")).expect("rules");
    let rule_expressions: Vec<String> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:").map(|e| e.trim().to_string()))
        .collect();
    assert_eq!(rule_expressions.len(), 6, "{rules}");
    let mut named: HashMap<String, Vec<String>> = HashMap::new();
    for expression in expressions.iter().chain(&rule_expressions) {
        for name in metric_names(expression) {
            named.entry(name).or_default().push(expression.clone());
        }
    }
    assert!(named.len() >= 15, "{named:?}");
    let missing: Vec<_> = named
        .iter()
        .filter(|(name, _)| {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            !exported.contains(*name) && !exported.contains(base)
        })
        .collect();
    assert!(missing.is_empty(), "named but not exported: {missing:?}");
}

/// The `weir_…` metric names in a PromQL expression.
fn metric_names(expression: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expression;
    while let Some(start) = rest.find("weir_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}
