//! What every stateful operator does the same way around its own work: it computes a
//! micro-batch's whole output at once, on one output partition ([`output_once`]), and reports
//! what it did to DataFusion's metrics (`EXPLAIN ANALYZE`) and the batch's progress
//! ([`report`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

use crate::runtime::BatchContext;

/// The stream of an operator with one output partition whose batch output `run` computes.
pub(super) fn output_once(
    name: &str,
    partition: usize,
    schema: SchemaRef,
    run: impl Future<Output = Result<Vec<RecordBatch>>> + Send + 'static,
) -> Result<SendableRecordBatchStream> {
    if partition != 0 {
        return Err(DataFusionError::Internal(format!(
            "{name} has one partition, not {partition}"
        )));
    }
    let batches = futures::stream::once(run)
        .map(|result| match result {
            Ok(batches) => futures::stream::iter(batches.into_iter().map(Ok)).boxed(),
            Err(e) => futures::stream::iter(vec![Err(e)]).boxed(),
        })
        .flatten();
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
}

/// What an operator did in one batch.
#[derive(Debug, Default)]
pub(super) struct Done {
    /// Late input rows dropped.
    pub late: u64,
    /// Of those, by input (a join's `left` and `right`).
    pub late_by_input: BTreeMap<String, u64>,
    /// Rows that left state.
    pub evicted: u64,
    /// Rows emitted.
    pub emitted: u64,
}

/// Records `done` for operator `id`, which started at `started`, in its plan metrics and the
/// batch's progress.
pub(super) fn report(
    batch: &BatchContext,
    id: &str,
    plan_metrics: &ExecutionPlanMetricsSet,
    started: Instant,
    done: Done,
) {
    let baseline = BaselineMetrics::new(plan_metrics, 0);
    baseline.record_output(done.emitted as usize);
    baseline.elapsed_compute().add_duration(started.elapsed());
    let counter = |name: &'static str| MetricBuilder::new(plan_metrics).counter(name, 0);
    counter("late_rows").add(done.late as usize);
    counter("rows_evicted").add(done.evicted as usize);
    let metrics = batch.metrics_of(id);
    let mut metrics = metrics.lock().unwrap_or_else(|p| p.into_inner());
    metrics.late_rows += done.late;
    for (input, late) in done.late_by_input {
        *metrics.late_rows_by_input.entry(input).or_default() += late;
    }
    metrics.rows_evicted += done.evicted;
    metrics.rows_emitted += done.emitted;
    metrics.elapsed += started.elapsed();
}
