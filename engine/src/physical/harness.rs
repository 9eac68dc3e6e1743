//! [`OperatorHarness`] (tests only): drives the stateful operators of one query over one
//! in-memory source with scripted batches and watermarks, persisting and promoting their
//! state after each batch as the runner does, and restarting them from that state, without
//! sources, sinks or checkpoint logs, so an operator's rules are tested on their own (the way
//! RisingWave's executor tests and DataFusion's `physical-plan` tests drive one operator).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::execution::context::SessionContext;
use weir_connectors::{BatchId, StoreLocation};
use weir_sql::StreamingTable;
use weir_sql::logical::{StreamingOperator, streaming_operators};
use weir_sql::window::WindowInput;

use super::planner::StreamingQueryPlanner;
use crate::event_time::EventTime;
use crate::runtime::{
    BatchContext, BatchWatermarks, OperatorMetrics, OutputMode, QueryPlan, SourceRows,
};
use crate::state::QueryState;

/// Where a harness keeps its operators' state between batches and restarts.
const PARTITIONS: usize = 2;

/// One query's stateful operators over the source `s`, driven batch by batch.
pub(crate) struct OperatorHarness {
    ctx: SessionContext,
    plan: QueryPlan,
    operators: Vec<Arc<dyn StreamingOperator>>,
    mode: OutputMode,
    store: StoreLocation,
    state: Arc<QueryState>,
    next: BatchId,
    /// What each operator reported in the last batch.
    metrics: std::collections::BTreeMap<String, OperatorMetrics>,
}

impl OperatorHarness {
    /// Plans `select` over a source `s` of `schema` (with a watermark on `watermark`, if
    /// given), to emit in `mode`.
    pub async fn new(
        schema: SchemaRef,
        watermark: Option<&str>,
        select: &str,
        mode: OutputMode,
    ) -> Self {
        Self::with_sources(&[("s", schema, watermark)], select, mode).await
    }

    /// Plans `select` over sources `(name, schema, watermark column)`, to emit in `mode`.
    pub async fn with_sources(
        sources: &[(&str, SchemaRef, Option<&str>)],
        select: &str,
        mode: OutputMode,
    ) -> Self {
        let ctx = SessionContext::new();
        let inputs = weir_sql::window::register(&ctx);
        weir_sql::planner::register_dedup_function(&ctx, &inputs);
        for (name, schema, watermark) in sources {
            let provider = StreamingTable::new(*name, Arc::clone(schema))
                .with_watermark_column(watermark.map(str::to_string))
                .into_provider();
            ctx.register_table(*name, Arc::clone(&provider)).unwrap();
            inputs.write().unwrap().insert(
                name.to_string(),
                WindowInput {
                    provider,
                    watermark_columns: watermark.iter().map(|w| w.to_string()).collect(),
                },
            );
        }
        let mut statements = weir_sql::parse_sql(select).unwrap();
        let Some(weir_sql::Statement::Query(query)) = statements.pop() else {
            panic!("not a SELECT: {select}");
        };
        let planned = weir_sql::plan_streaming_query(&ctx.state(), &query)
            .await
            .unwrap();
        let operators = streaming_operators(&planned.logical_plan);
        let plan = QueryPlan::new(&ctx, planned.logical_plan).unwrap();
        let store = StoreLocation::in_memory("memory://harness");
        let state = Arc::new(QueryState::new(store.clone(), PARTITIONS));
        Self {
            ctx,
            plan,
            operators,
            mode,
            store,
            state,
            next: BatchId(0),
            metrics: Default::default(),
        }
    }

    /// Runs one batch of `rows` with these watermarks (ms): rows are late by `late_rows_ms`,
    /// state is evicted by `eviction_ms`. Returns what the batch emitted, after its state is
    /// persisted and promoted as a committed batch's.
    pub async fn batch(
        &mut self,
        rows: Vec<RecordBatch>,
        late_rows_ms: Option<i64>,
        eviction_ms: Option<i64>,
    ) -> Vec<RecordBatch> {
        self.batch_of(vec![("s", rows)], late_rows_ms, eviction_ms)
            .await
    }

    /// As [`batch`](Self::batch), with rows for each named source.
    pub async fn batch_of(
        &mut self,
        rows: Vec<(&str, Vec<RecordBatch>)>,
        late_rows_ms: Option<i64>,
        eviction_ms: Option<i64>,
    ) -> Vec<RecordBatch> {
        let context = Arc::new(BatchContext {
            batch: self.next.0,
            state: Arc::clone(&self.state),
            watermarks: BatchWatermarks {
                late_rows: late_rows_ms.map(EventTime::from_ms),
                eviction: eviction_ms.map(EventTime::from_ms),
            },
            mode: self.mode,
            metrics: Default::default(),
        });
        let planner = Arc::new(StreamingQueryPlanner::new(Arc::clone(&context)));
        let reported = Arc::clone(&context);
        let inputs: HashMap<String, SourceRows> = rows
            .into_iter()
            .map(|(name, batches)| {
                let rows = SourceRows {
                    batches,
                    columns: None,
                };
                (name.to_string(), rows)
            })
            .collect();
        let (output, _) = crate::runtime::execute_batch(
            &self.ctx,
            &self.plan,
            inputs,
            0,
            Some((planner, context)),
        )
        .await
        .unwrap();
        self.state.persist(self.next).await.unwrap();
        self.state.promote();
        self.metrics = reported
            .metrics
            .lock()
            .unwrap()
            .iter()
            .map(|(id, m)| (id.clone(), m.lock().unwrap().clone()))
            .collect();
        self.next = self.next.next();
        output
    }

    /// Drops the operators' state in memory and loads it back from what the last batch
    /// persisted, as a restarted query does.
    pub async fn restart(&mut self) {
        self.state = Arc::new(QueryState::new(self.store.clone(), PARTITIONS));
        let ids: Vec<String> = self.operators.iter().flat_map(|o| o.state_ids()).collect();
        let committed = self.next.0.checked_sub(1).map(BatchId);
        self.state.load(&ids, committed).await.unwrap();
    }

    /// What operator `id` reported in the last batch.
    pub fn metrics(&self, id: &str) -> OperatorMetrics {
        self.metrics.get(id).cloned().unwrap_or_default()
    }

    /// Rows in the state of every operator.
    pub fn state_rows(&self) -> u64 {
        self.operators
            .iter()
            .map(|o| self.state.size_of(o.operator_id()).0)
            .sum()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use arrow::array::{Int64Array, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use arrow::util::pretty::pretty_format_batches;

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
        ]))
    }

    /// Rows `(k, ts seconds)`.
    fn rows(rows: &[(i64, i64)]) -> Vec<RecordBatch> {
        let keys = Int64Array::from_iter_values(rows.iter().map(|r| r.0));
        let times = TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.1 * 1000));
        vec![RecordBatch::try_new(schema(), vec![Arc::new(keys), Arc::new(times)]).unwrap()]
    }

    fn table(batches: &[RecordBatch]) -> String {
        pretty_format_batches(batches).unwrap().to_string()
    }

    const COUNT: &str = "SELECT k, window_start, count(*) AS n FROM TUMBLE(s, ts, INTERVAL \
                         '10' SECOND) GROUP BY k, window_start, window_end";

    /// Spark's rule: a window is emitted in append mode, once, by the first batch whose
    /// eviction watermark reaches its end; a row whose window the *previous* batch's watermark
    /// had closed is late. A restart between batches changes nothing.
    #[tokio::test]
    async fn a_tumbling_count_closes_by_the_watermark_and_survives_a_restart() {
        for restart in [false, true] {
            let mut harness =
                OperatorHarness::new(schema(), Some("ts"), COUNT, OutputMode::Append).await;
            let first = harness
                .batch(rows(&[(1, 1), (1, 9), (2, 12)]), None, None)
                .await;
            let emitted: usize = first.iter().map(RecordBatch::num_rows).sum();
            assert_eq!(emitted, 0, "no window closed yet");
            assert_eq!(harness.state_rows(), 2);
            if restart {
                harness.restart().await;
                assert_eq!(harness.state_rows(), 2);
            }
            // Watermark 10 s: window [0, 10) closes and is emitted; (1, 5) was not late by the
            // previous batch's watermark (none), so it counts in it.
            let second = harness
                .batch(rows(&[(1, 5), (2, 15)]), None, Some(10_000))
                .await;
            assert_eq!(
                table(&second),
                "+---+---------------------+---+\n\
                 | k | window_start        | n |\n\
                 +---+---------------------+---+\n\
                 | 1 | 1970-01-01T00:00:00 | 3 |\n\
                 +---+---------------------+---+"
            );
            if restart {
                harness.restart().await;
            }
            // (1, 7) falls in a window the previous batch's watermark closed: late, dropped.
            let third = harness
                .batch(rows(&[(1, 7), (2, 19)]), Some(10_000), Some(20_000))
                .await;
            assert_eq!(
                table(&third),
                "+---+---------------------+---+\n\
                 | k | window_start        | n |\n\
                 +---+---------------------+---+\n\
                 | 2 | 1970-01-01T00:00:10 | 3 |\n\
                 +---+---------------------+---+"
            );
            assert_eq!(harness.state_rows(), 0, "every window closed and evicted");
        }
    }

    /// Rows `(k, v, ts seconds)` of a source with a value column.
    fn valued(rows: &[(i64, i64, i64)]) -> Vec<RecordBatch> {
        let schema = valued_schema();
        let column =
            |f: fn(&(i64, i64, i64)) -> i64| Int64Array::from_iter_values(rows.iter().map(f));
        let times = TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.2 * 1000));
        let columns: Vec<arrow::array::ArrayRef> = vec![
            Arc::new(column(|r| r.0)),
            Arc::new(column(|r| r.1)),
            Arc::new(times),
        ];
        vec![RecordBatch::try_new(schema, columns).unwrap()]
    }

    fn valued_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
        ]))
    }

    /// A distinct count keeps the pairs it counted across batches and restarts: a value seen
    /// before a restart is not counted again after it, and the pairs of a closed window go.
    #[tokio::test]
    async fn a_distinct_count_remembers_its_pairs_across_a_restart() {
        let select = "SELECT k, window_start, count(DISTINCT v) AS d, count(*) AS n FROM \
                      TUMBLE(s, ts, INTERVAL '10' SECOND) GROUP BY k, window_start, window_end";
        for restart in [false, true] {
            let mut harness =
                OperatorHarness::new(valued_schema(), Some("ts"), select, OutputMode::Append).await;
            harness
                .batch(valued(&[(1, 7, 1), (1, 7, 2), (1, 8, 3)]), None, None)
                .await;
            if restart {
                harness.restart().await;
            }
            // 7 again (not new), 9 (new): distinct 3 of 5 rows when the window closes.
            let closed = harness
                .batch(valued(&[(1, 7, 4), (1, 9, 5)]), None, Some(10_000))
                .await;
            assert_eq!(
                table(&closed),
                "+---+---------------------+---+---+\n\
                 | k | window_start        | d | n |\n\
                 +---+---------------------+---+---+\n\
                 | 1 | 1970-01-01T00:00:00 | 3 | 5 |\n\
                 +---+---------------------+---+---+",
                "restart: {restart}"
            );
            assert_eq!(
                harness.state_rows(),
                0,
                "the window's group and pairs are gone"
            );
        }
    }
}
