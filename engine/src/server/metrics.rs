//! Prometheus metrics of `weir serve`, served at `GET /metrics` in the text exposition format
//! (the `prometheus` crate's registry and encoder). A [`QueryListener`] fills them as queries
//! start, commit batches and end; a scrape only encodes what is there, so scraping costs the
//! queries nothing but the listener's few counter updates per batch.
//!
//! Per query (label `query`): input, output and batches counters; the last batch's input and
//! processed rows/s; a batch duration histogram and seconds per phase; the trigger lag; the
//! watermark and its delay behind the batch's wall-clock time; the sink's commit time
//! histogram; failures, restarts and whether it runs. Per stateful operator (labels `query`,
//! `operator`): state rows and bytes, late, evicted and emitted rows. Per source (labels
//! `query`, `source`): input rows, malformed records and bad files. The README lists them.
//!
//! A query's series stay after it ends (its last state, its failure) until its sink is
//! dropped: then every series labelled with it goes, so a long-lived server that runs many
//! short queries does not export them for ever.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use prometheus::core::{MetricVec, MetricVecBuilder};
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::runtime::{BatchProgress, QueryListener, QueryStarted, QueryTerminated};

/// Batch durations and sink commit times are bucketed in seconds from 1 ms to 2 min.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// The server's metrics and the registry that exposes them.
#[derive(Debug)]
pub struct ServerMetrics {
    registry: Registry,
    input_rows: IntCounterVec,
    output_rows: IntCounterVec,
    batches: IntCounterVec,
    input_rate: GaugeVec,
    processed_rate: GaugeVec,
    batch_duration: HistogramVec,
    phase_seconds: prometheus::CounterVec,
    trigger_lag: GaugeVec,
    watermark: GaugeVec,
    watermark_delay: GaugeVec,
    sink_commit: HistogramVec,
    failures: IntCounterVec,
    restarts: IntCounterVec,
    running: IntGaugeVec,
    state_rows: IntGaugeVec,
    state_bytes: IntGaugeVec,
    late_rows: IntCounterVec,
    evicted_rows: IntCounterVec,
    emitted_rows: IntCounterVec,
    source_rows: IntCounterVec,
    malformed: IntCounterVec,
    bad_files: IntCounterVec,
    /// Queries started in this process, so a second start of a name counts as a restart.
    started: Mutex<HashSet<String>>,
    /// The operators and sources each query has reported, whose series go with its sink.
    labelled: Mutex<HashMap<String, QueryLabels>>,
}

/// The second labels a query's operator and source series carry.
#[derive(Debug, Default)]
struct QueryLabels {
    operators: BTreeSet<String>,
    sources: BTreeSet<String>,
}

/// The batch phases, as the `phase` label names them.
const PHASES: [&str; 6] = [
    "latest_offset",
    "write_offsets",
    "read",
    "execute",
    "sink_write",
    "commit",
];

/// Removes the series of `vec` with these label values, if there is one.
fn forget<T: MetricVecBuilder>(vec: &MetricVec<T>, labels: &[&str]) {
    // An error only says there was no such series.
    let _ = vec.remove_label_values(labels);
}

impl ServerMetrics {
    /// A registry holding every metric, all at zero.
    pub fn new() -> Self {
        let registry = Registry::new();
        let query = &["query"];
        let operator = &["query", "operator"];
        let source = &["query", "source"];
        macro_rules! register {
            ($metric:expr) => {{
                let metric = $metric.expect("a valid metric definition");
                registry
                    .register(Box::new(metric.clone()))
                    .expect("metric names are unique");
                metric
            }};
        }
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let int_gauge = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels)
        };
        let gauge = |name: &str, help: &str| GaugeVec::new(Opts::new(name, help), query);
        let histogram = |name: &str, help: &str| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(SECONDS_BUCKETS.to_vec()),
                query,
            )
        };
        Self {
            input_rows: register!(counter(
                "weir_query_input_rows_total",
                "Rows read from the query's sources.",
                query
            )),
            output_rows: register!(counter(
                "weir_query_output_rows_total",
                "Rows written to the query's sink.",
                query
            )),
            batches: register!(counter(
                "weir_query_batches_total",
                "Batches committed.",
                query
            )),
            input_rate: register!(gauge(
                "weir_query_input_rows_per_second",
                "Input rows per second of wall-clock time, over the last batch."
            )),
            processed_rate: register!(gauge(
                "weir_query_processed_rows_per_second",
                "Input rows per second of the last batch's own duration."
            )),
            batch_duration: register!(histogram(
                "weir_query_batch_duration_seconds",
                "How long each batch took, from its trigger to its commit."
            )),
            phase_seconds: register!(prometheus::CounterVec::new(
                Opts::new(
                    "weir_query_phase_seconds_total",
                    "Time spent per phase of a batch: latest_offset, write_offsets, read, \
                     execute, sink_write, commit."
                ),
                &["query", "phase"]
            )),
            trigger_lag: register!(gauge(
                "weir_query_trigger_lag_seconds",
                "How late the last batch started after its trigger interval said it was due."
            )),
            watermark: register!(gauge(
                "weir_query_watermark_seconds",
                "The event-time watermark of the last batch, in seconds since the epoch."
            )),
            watermark_delay: register!(gauge(
                "weir_query_watermark_delay_seconds",
                "How far the watermark is behind wall-clock time when the last batch committed."
            )),
            sink_commit: register!(histogram(
                "weir_query_sink_commit_seconds",
                "The sink's write of a batch and the commit of the batch to the checkpoint."
            )),
            failures: register!(counter(
                "weir_query_failures_total",
                "Times the query ended with an error.",
                query
            )),
            restarts: register!(counter(
                "weir_query_restarts_total",
                "Times the query was started again (by the server's restore or by a user).",
                query
            )),
            running: register!(int_gauge(
                "weir_query_running",
                "1 while the query runs, 0 once it ended.",
                query
            )),
            state_rows: register!(int_gauge(
                "weir_operator_state_rows",
                "Rows in a stateful operator's state after the last batch.",
                operator
            )),
            state_bytes: register!(int_gauge(
                "weir_operator_state_bytes",
                "Memory held by a stateful operator's state after the last batch.",
                operator
            )),
            late_rows: register!(counter(
                "weir_operator_late_rows_total",
                "Late input a stateful operator dropped (Spark's numRowsDroppedByWatermark).",
                operator
            )),
            evicted_rows: register!(counter(
                "weir_operator_evicted_rows_total",
                "Rows a stateful operator removed from its state as the watermark passed them.",
                operator
            )),
            emitted_rows: register!(counter(
                "weir_operator_emitted_rows_total",
                "Rows a stateful operator emitted.",
                operator
            )),
            source_rows: register!(counter(
                "weir_source_input_rows_total",
                "Rows read from a source.",
                source
            )),
            malformed: register!(counter(
                "weir_source_malformed_records_total",
                "Malformed records skipped or dead-lettered.",
                source
            )),
            bad_files: register!(counter(
                "weir_source_bad_files_total",
                "Files that could not be read whole.",
                source
            )),
            started: Mutex::new(HashSet::new()),
            labelled: Mutex::new(HashMap::new()),
            registry,
        }
    }

    /// Every metric in the text exposition format.
    pub fn encode(&self) -> String {
        let mut text = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut text) {
            tracing::error!("encoding the metrics: {e}");
        }
        String::from_utf8_lossy(&text).into_owned()
    }

    /// Counts a restart of `query` that the server's restore made.
    pub fn restored(&self, query: &str) {
        self.restarts.with_label_values(&[query]).inc();
        self.started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(query.to_string());
    }
}

impl Default for ServerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl QueryListener for ServerMetrics {
    fn on_query_started(&self, event: &QueryStarted) {
        let name = event.name.as_str();
        let again = !self
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string());
        if again {
            self.restarts.with_label_values(&[name]).inc();
        }
        self.running.with_label_values(&[name]).set(1);
        // Every series of the query exists from its start, at zero.
        self.failures.with_label_values(&[name]);
        self.restarts.with_label_values(&[name]);
        for counter in [&self.input_rows, &self.output_rows, &self.batches] {
            counter.with_label_values(&[name]);
        }
    }

    fn on_query_progress(&self, name: &str, progress: &BatchProgress) {
        let q = &[name];
        let d = &progress.durations;
        self.input_rows
            .with_label_values(q)
            .inc_by(progress.input_rows);
        self.output_rows
            .with_label_values(q)
            .inc_by(progress.output_rows);
        self.batches.with_label_values(q).inc();
        self.input_rate
            .with_label_values(q)
            .set(progress.input_rows_per_second);
        self.processed_rate
            .with_label_values(q)
            .set(progress.processed_rows_per_second);
        self.batch_duration
            .with_label_values(q)
            .observe(d.total.as_secs_f64());
        let times = [
            d.latest_offset,
            d.write_offsets,
            d.read,
            d.execute,
            d.sink_write,
            d.commit,
        ];
        for (phase, time) in PHASES.into_iter().zip(times) {
            self.phase_seconds
                .with_label_values(&[name, phase])
                .inc_by(time.as_secs_f64());
        }
        self.trigger_lag
            .with_label_values(q)
            .set(progress.trigger_lag.as_secs_f64());
        if let Some(watermark) = progress.watermark_ms {
            self.watermark
                .with_label_values(q)
                .set(watermark as f64 / 1000.0);
            let now = chrono::Utc::now().timestamp_millis();
            self.watermark_delay
                .with_label_values(q)
                .set(now.saturating_sub(watermark).max(0) as f64 / 1000.0);
        }
        self.sink_commit
            .with_label_values(q)
            .observe((d.sink_write + d.commit).as_secs_f64());
        {
            let mut labelled = self.labelled.lock().unwrap_or_else(|p| p.into_inner());
            let labels = labelled.entry(name.to_string()).or_default();
            for o in &progress.operators {
                if !labels.operators.contains(&o.operator_id) {
                    labels.operators.insert(o.operator_id.clone());
                }
            }
            for s in &progress.sources {
                if !labels.sources.contains(&s.name) {
                    labels.sources.insert(s.name.clone());
                }
            }
        }
        for o in &progress.operators {
            let labels = &[name, o.operator_id.as_str()];
            self.state_rows
                .with_label_values(labels)
                .set(i64::try_from(o.state_rows).unwrap_or(i64::MAX));
            self.state_bytes
                .with_label_values(labels)
                .set(i64::try_from(o.state_bytes).unwrap_or(i64::MAX));
            self.late_rows.with_label_values(labels).inc_by(o.late_rows);
            self.evicted_rows
                .with_label_values(labels)
                .inc_by(o.rows_evicted);
            self.emitted_rows
                .with_label_values(labels)
                .inc_by(o.rows_emitted);
        }
        for s in &progress.sources {
            let labels = &[name, s.name.as_str()];
            self.source_rows
                .with_label_values(labels)
                .inc_by(s.input_rows);
            self.malformed
                .with_label_values(labels)
                .inc_by(s.bad_records);
            self.bad_files.with_label_values(labels).inc_by(s.bad_files);
        }
    }

    fn on_sink_dropped(&self, name: &str) {
        let q = &[name];
        for vec in [&self.input_rows, &self.output_rows, &self.batches] {
            forget(vec, q);
        }
        for vec in [&self.failures, &self.restarts] {
            forget(vec, q);
        }
        for vec in [
            &self.input_rate,
            &self.processed_rate,
            &self.trigger_lag,
            &self.watermark,
            &self.watermark_delay,
        ] {
            forget(vec, q);
        }
        forget(&self.batch_duration, q);
        forget(&self.sink_commit, q);
        forget(&self.running, q);
        for phase in PHASES {
            forget(&self.phase_seconds, &[name, phase]);
        }
        let labels = self
            .labelled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
            .unwrap_or_default();
        for operator in &labels.operators {
            let labels = &[name, operator.as_str()];
            forget(&self.state_rows, labels);
            forget(&self.state_bytes, labels);
            forget(&self.late_rows, labels);
            forget(&self.evicted_rows, labels);
            forget(&self.emitted_rows, labels);
        }
        for source in &labels.sources {
            let labels = &[name, source.as_str()];
            forget(&self.source_rows, labels);
            forget(&self.malformed, labels);
            forget(&self.bad_files, labels);
        }
        // A sink created again under this name runs a new query, not a restart of this one.
        self.started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    fn on_query_terminated(&self, event: &QueryTerminated) {
        let name = event.name.as_str();
        self.running.with_label_values(&[name]).set(0);
        if event.error.is_some() {
            self.failures.with_label_values(&[name]).inc();
        }
    }
}
