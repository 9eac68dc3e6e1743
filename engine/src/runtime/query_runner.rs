//! [`QueryRunner`]: the trigger loop of one continuous query, with recovery from its
//! checkpoint. See the ordering rule in [`crate::checkpoint`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::LogicalPlan;
use tokio::sync::{mpsc, oneshot, watch};
use weir_connectors::{
    BatchId, ConnectorOptions, ConnectorRegistry, Sink, SinkOpen, Source, SourceContext,
    SourceOffset,
};

use super::micro_batch::execute_batch;
use super::progress::{BatchProgress, PhaseDurations, QueryStatus, SourceProgress};
use super::query_options::Trigger;
use crate::checkpoint::{Checkpoint, CommitEntry, OffsetsEntry, QueryMetadata, SourceRange};
use crate::error::{Result, WeirError};

/// How long a query with an as-fast-as-possible trigger waits when no source has new data.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Everything a query needs to start, gathered by the engine.
pub(crate) struct RunnerParts {
    pub name: String,
    pub sql: String,
    pub ctx: SessionContext,
    pub plan: LogicalPlan,
    /// Each source read, with its schema and options.
    pub sources: Vec<(String, SchemaRef, ConnectorOptions)>,
    pub sink: Arc<dyn Sink>,
    pub checkpoint: Checkpoint,
    pub trigger: Trigger,
    pub registry: Arc<ConnectorRegistry>,
}

/// A source opened for this query.
struct OpenSource {
    name: String,
    source: Arc<dyn Source>,
}

/// Runs one continuous query until its trigger ends, it is stopped, or it fails.
pub(crate) struct QueryRunner {
    name: String,
    ctx: SessionContext,
    plan: LogicalPlan,
    sources: Vec<OpenSource>,
    sink: Arc<dyn Sink>,
    checkpoint: Checkpoint,
    trigger: Trigger,
    status: Arc<QueryStatus>,
    stop: watch::Receiver<bool>,
    /// Requests to be told when every source is drained (`process_all_available`).
    drain_requests: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    /// When the previous batch started, for the input rate.
    previous_start: Option<Instant>,
}

impl QueryRunner {
    /// Checks the checkpoint belongs to this query (creating it if new) and opens the sources.
    pub(crate) async fn open(
        parts: RunnerParts,
        status: Arc<QueryStatus>,
        stop: watch::Receiver<bool>,
        drain_requests: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    ) -> Result<Self> {
        let metadata = QueryMetadata {
            name: parts.name.clone(),
            sql: parts.sql.clone(),
            sources: parts
                .sources
                .iter()
                .map(|(name, ..)| name.clone())
                .collect(),
            output_columns: parts
                .plan
                .schema()
                .fields()
                .iter()
                .map(|f| format!("{}: {}", f.name(), f.data_type()))
                .collect(),
        };
        parts.checkpoint.remove_interrupted_writes().await?;
        let existing = parts.checkpoint.metadata().await?;
        // The sink is opened before a new checkpoint is created: a sink that refuses (output
        // of another query in the way) leaves no checkpoint behind.
        let last_committed = parts.checkpoint.latest_commit().await?.map(|c| c.batch_id);
        let output_schema: SchemaRef = Arc::new(parts.plan.schema().as_arrow().clone());
        let new_query = existing.is_none();
        parts
            .sink
            .open(SinkOpen {
                schema: output_schema,
                last_committed,
                new_query,
            })
            .await?;
        match existing {
            None => parts.checkpoint.write_metadata(&metadata).await?,
            Some(existing) if existing.sources != metadata.sources => {
                return Err(WeirError::Checkpoint(format!(
                    "{} belongs to a query reading {:?}, but query '{}' reads {:?}; use a new \
                     checkpoint for a query with other inputs",
                    parts.checkpoint.describe(),
                    existing.sources,
                    parts.name,
                    metadata.sources
                )));
            }
            Some(existing) if existing.sql != metadata.sql => {
                tracing::warn!(query = %parts.name, "the query text differs from the one its checkpoint was created with; resuming from the checkpoint");
            }
            Some(_) => {}
        }
        let mut sources = Vec::new();
        for (index, (name, schema, options)) in parts.sources.into_iter().enumerate() {
            let context = SourceContext {
                state: parts.checkpoint.source_dir(index),
            };
            let source = parts
                .registry
                .open_source(schema, &options, context)
                .await?;
            sources.push(OpenSource { name, source });
        }
        Ok(Self {
            name: parts.name,
            ctx: parts.ctx,
            plan: parts.plan,
            sources,
            sink: parts.sink,
            checkpoint: parts.checkpoint,
            trigger: parts.trigger,
            status,
            stop,
            drain_requests,
            previous_start: None,
        })
    }

    /// Recovers, then runs batches until the trigger ends or a stop is requested.
    pub(crate) async fn run(mut self) -> Result<()> {
        let committed = self.checkpoint.latest_commit().await?.map(|c| c.batch_id);

        let mut starts: Vec<Option<SourceOffset>> = match committed {
            Some(batch) => self.recorded_ends(batch).await?,
            None => vec![None; self.sources.len()],
        };
        let mut next = committed.map_or(BatchId(0), BatchId::next);
        if let Some(pending) = self.checkpoint.latest_offsets().await?
            && pending.batch_id >= next
        {
            if pending.batch_id != next {
                return Err(WeirError::Checkpoint(format!(
                    "{} has offsets for batch {} but commits only up to {:?}: the log is damaged",
                    self.checkpoint.describe(),
                    pending.batch_id,
                    committed
                )));
            }
            self.check_ranges(&pending)?;
            tracing::info!(query = %self.name, batch = %pending.batch_id, "re-running the batch a crash interrupted");
            self.run_batch(&pending, Instant::now(), PhaseDurations::default())
                .await?;
            starts = pending.sources.iter().map(|r| r.end.clone()).collect();
            next = next.next();
        }
        if self.trigger == Trigger::AvailableNow {
            for open in &self.sources {
                open.source.prepare_available_now().await?;
            }
        }
        let mut drain_waiters: Vec<oneshot::Sender<()>> = Vec::new();
        loop {
            if *self.stop.borrow() {
                break;
            }
            while let Ok(waiter) = self.drain_requests.try_recv() {
                drain_waiters.push(waiter);
            }
            let started = Instant::now();
            let mut ranges = Vec::with_capacity(self.sources.len());
            let mut has_data = false;
            for (open, start) in self.sources.iter().zip(&starts) {
                let end = open.source.latest_offset(start.as_ref()).await?;
                has_data |= end != *start;
                ranges.push(SourceRange {
                    source: open.name.clone(),
                    start: start.clone(),
                    end,
                });
            }
            let mut durations = PhaseDurations {
                latest_offset: started.elapsed(),
                ..Default::default()
            };
            if has_data {
                let entry = OffsetsEntry {
                    batch_id: next,
                    sources: ranges,
                    batch_timestamp_ms: now_ms(),
                };
                let write_started = Instant::now();
                self.checkpoint.write_offsets(&entry).await?;
                durations.write_offsets = write_started.elapsed();
                self.run_batch(&entry, started, durations).await?;
                starts = entry.sources.iter().map(|r| r.end.clone()).collect();
                next = next.next();
                if self.trigger == Trigger::Once {
                    break;
                }
            } else {
                // Every source is drained: answer whoever asked.
                for waiter in drain_waiters.drain(..) {
                    let _ = waiter.send(());
                }
                if matches!(self.trigger, Trigger::Once | Trigger::AvailableNow) {
                    break;
                }
            }
            let wait = match self.trigger {
                // Someone waits for the sources to be drained: don't wait for the interval.
                _ if !drain_waiters.is_empty() => Duration::ZERO,
                Trigger::ProcessingTime(interval) if !interval.is_zero() => {
                    interval.saturating_sub(started.elapsed())
                }
                Trigger::ProcessingTime(_) if !has_data => IDLE_POLL,
                _ => Duration::ZERO,
            };
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.stop.changed() => {}
                    Some(waiter) = self.drain_requests.recv() => drain_waiters.push(waiter),
                }
            }
        }
        Ok(())
    }

    /// The end offsets recorded for committed batch `batch`.
    async fn recorded_ends(&self, batch: BatchId) -> Result<Vec<Option<SourceOffset>>> {
        let entry = self.checkpoint.offsets(batch).await?.ok_or_else(|| {
            WeirError::Checkpoint(format!(
                "{} has a commit for batch {batch} but no offsets for it: the log is damaged",
                self.checkpoint.describe()
            ))
        })?;
        self.check_ranges(&entry)?;
        Ok(entry.sources.into_iter().map(|r| r.end).collect())
    }

    fn check_ranges(&self, entry: &OffsetsEntry) -> Result<()> {
        let recorded: Vec<&str> = entry.sources.iter().map(|r| r.source.as_str()).collect();
        let ours: Vec<&str> = self.sources.iter().map(|s| s.name.as_str()).collect();
        if recorded != ours {
            return Err(WeirError::Checkpoint(format!(
                "batch {} of {} read sources {recorded:?}, but the query reads {ours:?}",
                entry.batch_id,
                self.checkpoint.describe()
            )));
        }
        Ok(())
    }

    /// Reads, executes, writes and commits the batch `entry` describes.
    async fn run_batch(
        &mut self,
        entry: &OffsetsEntry,
        started: Instant,
        mut durations: PhaseDurations,
    ) -> Result<()> {
        let read_started = Instant::now();
        let mut inputs = HashMap::new();
        let mut source_progress = Vec::with_capacity(self.sources.len());
        for (open, range) in self.sources.iter().zip(&entry.sources) {
            let read = match &range.end {
                Some(end) if range.end != range.start => {
                    open.source.read(range.start.as_ref(), end).await?
                }
                _ => Default::default(),
            };
            let rows: u64 = read.batches.iter().map(|b| b.num_rows() as u64).sum();
            source_progress.push(SourceProgress {
                name: open.name.clone(),
                start_offset: range.start.clone(),
                end_offset: range.end.clone(),
                input_rows: rows,
                bad_records: read.bad_records,
            });
            inputs.insert(open.name.clone(), read.batches);
        }
        durations.read = read_started.elapsed();

        let execute_started = Instant::now();
        let output = execute_batch(&self.ctx, &self.plan, inputs, entry.batch_timestamp_ms)
            .await
            .map_err(|source| WeirError::Execution {
                query: self.name.clone(),
                batch: entry.batch_id.0,
                source,
            })?;
        durations.execute = execute_started.elapsed();

        let output_rows: u64 = output.iter().map(|b| b.num_rows() as u64).sum();
        let sink_started = Instant::now();
        self.sink.write(entry.batch_id, output).await?;
        durations.sink_write = sink_started.elapsed();

        let commit_started = Instant::now();
        self.checkpoint
            .write_commit(&CommitEntry {
                batch_id: entry.batch_id,
                output_rows,
            })
            .await?;
        for (open, range) in self.sources.iter().zip(&entry.sources) {
            if let Some(end) = &range.end {
                open.source.commit(end).await?;
            }
        }
        durations.commit = commit_started.elapsed();
        durations.total = started.elapsed();
        self.report(
            entry.batch_id,
            started,
            source_progress,
            output_rows,
            durations,
        );
        Ok(())
    }

    fn report(
        &mut self,
        batch_id: BatchId,
        started: Instant,
        sources: Vec<SourceProgress>,
        output_rows: u64,
        durations: PhaseDurations,
    ) {
        let input_rows: u64 = sources.iter().map(|s| s.input_rows).sum();
        let bad_records: u64 = sources.iter().map(|s| s.bad_records).sum();
        let since_previous = self
            .previous_start
            .replace(started)
            .map_or(durations.total, |t| started - t);
        let rate = |d: Duration| {
            if d.is_zero() {
                0.0
            } else {
                input_rows as f64 / d.as_secs_f64()
            }
        };
        let progress = BatchProgress {
            batch_id,
            input_rows,
            output_rows,
            input_rows_per_second: rate(since_previous),
            processed_rows_per_second: rate(durations.total),
            durations,
            sources,
        };
        tracing::info!(
            query = %self.name,
            batch = %batch_id,
            input_rows,
            output_rows,
            bad_records,
            rows_per_second = progress.processed_rows_per_second.round(),
            duration_ms = progress.durations.total.as_millis() as u64,
            read_ms = progress.durations.read.as_millis() as u64,
            execute_ms = progress.durations.execute.as_millis() as u64,
            sink_ms = progress.durations.sink_write.as_millis() as u64,
            log_ms = (progress.durations.write_offsets + progress.durations.commit).as_millis() as u64,
            "batch committed"
        );
        self.status.record(progress);
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
