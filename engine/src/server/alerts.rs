//! Health alerts of `weir serve` (`--alert-webhook URL`): rules on the server's own queries,
//! delivered through the `webhook` sink, so a receiver of alerts gets the same requests,
//! idempotency keys and retries as from `CREATE SINK … WITH (connector = 'webhook')`.
//!
//! Rules, each per query:
//! - `query_failed`: the query ended with an error (fires once; the message is the error);
//! - `batch_duration`: a batch took longer than `--alert-batch-duration` (default 30 s);
//! - `watermark_delay`: the watermark is further behind wall-clock time than
//!   `--alert-watermark-delay` (default 10 minutes) when a batch commits.
//!
//! The last two fire when a batch crosses the limit and resolve at the first batch back under
//! it (or when the query ends), as Alertmanager sends `firing` then `resolved`; a rule does
//! not fire again while it stays over. Alerts are posted one at a time, in the order they
//! were raised. Each alert is a row `{alert, state, query, value, limit, message, at}` posted
//! as the webhook sink posts rows: `{"query": "weir_health", "batch_id", "row", "data": …}`
//! with `Idempotency-Key: weir_health-<batch>-<row>`. The batch id is the alert's time in
//! milliseconds since the epoch (kept increasing), so keys stay unique across restarts.
//! Delivery is at least once while the server runs; an alert whose retries run out is logged
//! and dropped, since a health rule cannot stop the queries it watches. The same limits are
//! in the Prometheus alert rules of `deploy/prometheus/weir-alerts.yml`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use tokio::sync::mpsc;
use weir_connectors::sink::OutputMode;
use weir_connectors::webhook::WebhookSink;
use weir_connectors::{BatchId, ConnectorOptions, Sink, SinkOpen};

use crate::error::{Result, WeirError};
use crate::runtime::{BatchProgress, QueryListener, QueryTerminated};

/// The name alerts are posted under (the webhook body's `query`).
const ALERTS_NAME: &str = "weir_health";

/// The limits of the health rules.
#[derive(Debug, Clone, Copy)]
pub struct AlertLimits {
    /// A batch longer than this fires `batch_duration`.
    pub batch_duration: Duration,
    /// A watermark further behind wall-clock time fires `watermark_delay`.
    pub watermark_delay: Duration,
}

impl Default for AlertLimits {
    fn default() -> Self {
        Self {
            batch_duration: Duration::from_secs(30),
            watermark_delay: Duration::from_secs(600),
        }
    }
}

/// One alert, as a row.
#[derive(Debug, Clone)]
struct Alert {
    alert: &'static str,
    state: &'static str,
    query: String,
    value: Option<f64>,
    limit: Option<f64>,
    message: String,
    at_ms: i64,
}

/// The health rules: a [`QueryListener`] that hands alerts to a task posting them.
#[derive(Debug)]
pub struct HealthAlerts {
    limits: AlertLimits,
    /// Rules firing now, as (alert, query).
    firing: Mutex<HashSet<(&'static str, String)>>,
    alerts: mpsc::UnboundedSender<Alert>,
}

impl HealthAlerts {
    /// Rules with `limits` whose alerts are POSTed to `url` by a task of the current tokio
    /// runtime; `url` is checked as the webhook sink checks it.
    pub async fn start(url: &str, limits: AlertLimits) -> Result<Arc<Self>> {
        let options =
            ConnectorOptions::new(ALERTS_NAME, [("url".to_string(), url.to_string())].into());
        let sink = WebhookSink::new(&options)
            .map_err(|e| WeirError::Plan(format!("--alert-webhook: {e}")))?;
        let schema = alert_schema();
        sink.open(SinkOpen {
            schema: Arc::clone(&schema),
            last_committed: None,
            new_query: true,
            output_mode: OutputMode::Append,
        })
        .await
        .map_err(|e| WeirError::Plan(format!("--alert-webhook: {e}")))?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(deliver(sink, schema, rx));
        Ok(Arc::new(Self::new(limits, tx)))
    }

    fn new(limits: AlertLimits, alerts: mpsc::UnboundedSender<Alert>) -> Self {
        Self {
            limits,
            firing: Mutex::new(HashSet::new()),
            alerts,
        }
    }

    fn send(&self, alert: Alert) {
        tracing::warn!(
            alert = alert.alert,
            state = alert.state,
            query = %alert.query,
            "{}",
            alert.message
        );
        // The delivery task ends only with the runtime.
        let _ = self.alerts.send(alert);
    }

    /// Fires `alert` for `query` when `over` and it is not firing; resolves it when not
    /// `over` and it is.
    fn rule(&self, alert: &'static str, query: &str, over: bool, value: f64, limit: f64) {
        let key = (alert, query.to_string());
        let changed = {
            let mut firing = self.firing.lock().unwrap_or_else(|p| p.into_inner());
            if over {
                firing.insert(key)
            } else {
                firing.remove(&key)
            }
        };
        if !changed {
            return;
        }
        let what = match alert {
            "batch_duration" => "a batch took",
            _ => "the watermark is behind wall-clock time by",
        };
        let message = if over {
            format!("query {query}: {what} {value:.1} s, over the limit of {limit:.1} s")
        } else {
            format!("query {query}: back under the limit of {limit:.1} s ({value:.1} s)")
        };
        self.send(Alert {
            alert,
            state: if over { "firing" } else { "resolved" },
            query: query.to_string(),
            value: Some(value),
            limit: Some(limit),
            message,
            at_ms: chrono::Utc::now().timestamp_millis(),
        });
    }
}

impl QueryListener for HealthAlerts {
    fn on_query_progress(&self, name: &str, progress: &BatchProgress) {
        let limit = self.limits.batch_duration.as_secs_f64();
        let took = progress.durations.total.as_secs_f64();
        self.rule("batch_duration", name, took > limit, took, limit);
        if let Some(watermark) = progress.watermark_ms {
            let limit = self.limits.watermark_delay.as_secs_f64();
            let now = chrono::Utc::now().timestamp_millis();
            let delay = now.saturating_sub(watermark).max(0) as f64 / 1000.0;
            self.rule("watermark_delay", name, delay > limit, delay, limit);
        }
    }

    fn on_query_terminated(&self, event: &QueryTerminated) {
        // A query that ended is no longer over any limit: its firing rules resolve.
        let ended: Vec<&'static str> = {
            let mut firing = self.firing.lock().unwrap_or_else(|p| p.into_inner());
            let ended = firing
                .iter()
                .filter(|(_, query)| *query == event.name)
                .map(|(alert, _)| *alert)
                .collect::<Vec<_>>();
            firing.retain(|(_, query)| *query != event.name);
            ended
        };
        for alert in ended {
            self.send(Alert {
                alert,
                state: "resolved",
                query: event.name.clone(),
                value: None,
                limit: None,
                message: format!("query {}: ended", event.name),
                at_ms: chrono::Utc::now().timestamp_millis(),
            });
        }
        if let Some(error) = &event.error {
            self.send(Alert {
                alert: "query_failed",
                state: "firing",
                query: event.name.clone(),
                value: None,
                limit: None,
                message: format!("query {} failed: {error}", event.name),
                at_ms: chrono::Utc::now().timestamp_millis(),
            });
        }
    }
}

fn alert_schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    let number = |name: &str| Field::new(name, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        text("alert"),
        text("state"),
        text("query"),
        number("value"),
        number("limit"),
        text("message"),
        text("at"),
    ]))
}

/// Posts the alerts one by one, in the order they were raised (the webhook sink orders the
/// rows of one batch by their JSON, so each alert is a batch of its own).
async fn deliver(sink: WebhookSink, schema: SchemaRef, mut alerts: mpsc::UnboundedReceiver<Alert>) {
    let mut last_batch = 0u64;
    while let Some(alert) = alerts.recv().await {
        let at = u64::try_from(alert.at_ms).unwrap_or_default();
        last_batch = at.max(last_batch + 1);
        let rows = match alert_rows(&schema, std::slice::from_ref(&alert)) {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!("encoding an alert: {e}");
                continue;
            }
        };
        if let Err(e) = sink.write(BatchId(last_batch), vec![rows]).await {
            tracing::error!(alert = alert.alert, query = %alert.query, "delivering an alert failed, dropped: {e}");
        }
    }
}

fn alert_rows(schema: &SchemaRef, alerts: &[Alert]) -> arrow::error::Result<RecordBatch> {
    let text = |f: fn(&Alert) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(alerts.iter().map(f)))
    };
    let number = |f: fn(&Alert) -> Option<f64>| -> ArrayRef {
        Arc::new(Float64Array::from_iter(alerts.iter().map(f)))
    };
    RecordBatch::try_new(
        Arc::clone(schema),
        vec![
            text(|a| a.alert.to_string()),
            text(|a| a.state.to_string()),
            text(|a| a.query.clone()),
            number(|a| a.value),
            number(|a| a.limit),
            text(|a| a.message.clone()),
            text(|a| {
                chrono::DateTime::from_timestamp_millis(a.at_ms)
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                    .unwrap_or_default()
            }),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::PhaseDurations;

    fn batch(took_ms: u64, watermark_ms: Option<i64>) -> BatchProgress {
        BatchProgress {
            batch_id: BatchId(0),
            timestamp_ms: 0,
            trigger_lag: Duration::ZERO,
            input_rows: 0,
            output_rows: 0,
            input_rows_per_second: 0.0,
            processed_rows_per_second: 0.0,
            durations: PhaseDurations {
                total: Duration::from_millis(took_ms),
                ..Default::default()
            },
            sources: Vec::new(),
            watermark_ms,
            operators: Vec::new(),
        }
    }

    #[test]
    fn a_rule_fires_when_crossing_its_limit_once_and_resolves_when_back_under() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let limits = AlertLimits {
            batch_duration: Duration::from_secs(1),
            watermark_delay: Duration::from_secs(60),
        };
        let rules = HealthAlerts::new(limits, tx);
        let now = chrono::Utc::now().timestamp_millis();
        for (took_ms, behind_ms) in [(500, 1_000), (1_500, 1_000), (2_000, 120_000), (900, 1_000)] {
            rules.on_query_progress("q", &batch(took_ms, Some(now - behind_ms)));
        }
        rules.on_query_progress("other", &batch(100, None));
        rules.on_query_progress("other", &batch(5_000, None));
        rules.on_query_terminated(&QueryTerminated {
            name: "other".to_string(),
            error: None,
        });
        rules.on_query_terminated(&QueryTerminated {
            name: "q".to_string(),
            error: Some("the disk is full".to_string()),
        });
        let mut sent = Vec::new();
        while let Ok(alert) = rx.try_recv() {
            sent.push((alert.alert, alert.state, alert.query, alert.message));
        }
        let q = || "q".to_string();
        assert_eq!(
            sent,
            [
                (
                    "batch_duration",
                    "firing",
                    q(),
                    "query q: a batch took 1.5 s, over the limit of 1.0 s".to_string()
                ),
                ("watermark_delay", "firing", q(), sent[1].3.clone()),
                (
                    "batch_duration",
                    "resolved",
                    q(),
                    "query q: back under the limit of 1.0 s (0.9 s)".to_string()
                ),
                ("watermark_delay", "resolved", q(), sent[3].3.clone()),
                (
                    "batch_duration",
                    "firing",
                    "other".to_string(),
                    "query other: a batch took 5.0 s, over the limit of 1.0 s".to_string()
                ),
                (
                    "batch_duration",
                    "resolved",
                    "other".to_string(),
                    "query other: ended".to_string()
                ),
                (
                    "query_failed",
                    "firing",
                    q(),
                    "query q failed: the disk is full".to_string()
                ),
            ]
        );
        assert!(
            sent[1]
                .3
                .starts_with("query q: the watermark is behind wall-clock time by 120."),
            "{}",
            sent[1].3
        );
    }
}
