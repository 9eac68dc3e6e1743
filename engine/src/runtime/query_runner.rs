//! [`QueryRunner`]: the trigger loop of one continuous query, with recovery from its
//! checkpoint. See the ordering rule in [`crate::checkpoint`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use tokio::sync::{mpsc, oneshot, watch};
use weir_connectors::format::{BadRecord, BadRecords, OnError, write_dead_letters};
use weir_connectors::{
    BatchId, ConnectorOptions, ConnectorRegistry, Sink, SinkOpen, Source, SourceContext,
    SourceOffset, StorageOptions, StoreLocation, column_list,
};

use super::batch_context::{BatchContext, BatchWatermarks, PlannerFactory};
use super::idle::IdleBackoff;
use super::micro_batch::{QueryPlan, SourceRows, execute_batch};
use super::progress::{
    BatchProgress, OperatorProgress, PhaseDurations, QueryOutput, QueryStatus, SourceProgress,
};
use super::query_options::{OutputMode, Trigger};
use super::watermark::{WatermarkSpec, WatermarkTracker, watermark_text};
use crate::checkpoint::{
    Checkpoint, CheckpointLock, CommitEntry, OffsetsEntry, OperatorSignature, QueryMetadata,
    SourceRange, check_resume,
};
use crate::error::{Result, WeirError};
use crate::event_time::EventTime;
use crate::state::QueryState;

/// A source as the engine hands it to a query.
pub(crate) struct SourcePart {
    pub name: String,
    pub schema: SchemaRef,
    pub options: ConnectorOptions,
    pub watermark: Option<WatermarkSpec>,
}

/// Everything a query needs to start, gathered by the engine.
pub(crate) struct RunnerParts {
    pub name: String,
    pub sql: String,
    pub ctx: SessionContext,
    pub plan: LogicalPlan,
    pub sources: Vec<SourcePart>,
    pub sink: Arc<dyn Sink>,
    pub checkpoint: Checkpoint,
    pub trigger: Trigger,
    pub output_mode: OutputMode,
    pub flush_on_end: bool,
    /// Ids of the plan's stateful operators.
    pub stateful_operators: Vec<String>,
    /// What each of them keeps in state, for the checkpoint's metadata.
    pub state_signature: Vec<OperatorSignature>,
    /// Ids of all the state those operators keep (theirs, and their parts' such as
    /// distinct pairs), loaded when the query starts.
    pub state_ids: Vec<String>,
    /// State partitions for a new checkpoint (an existing one keeps its own).
    pub state_partitions: usize,
    pub registry: Arc<ConnectorRegistry>,
    /// Makes each batch's planner, with the streaming operators.
    pub planner: PlannerFactory,
}

/// A source opened for this query.
struct OpenSource {
    name: String,
    source: Arc<dyn Source>,
    /// The columns each batch reads (ascending indices into its schema), when the query
    /// uses fewer than all: those its scans project and its watermark's column.
    columns: Option<Vec<usize>>,
    /// What happens to a row whose event time is out of range.
    on_error: OnError,
    /// Where such rows go under `on_error = 'dead_letter'`.
    dead_letters: Option<StoreLocation>,
}

impl OpenSource {
    /// Applies the source's `on_error` to the rows of batch `batch` dropped for event times
    /// (ms; `None`: too far out for milliseconds) outside
    /// [`EVENT_TIMES`](super::watermark::EVENT_TIMES): an error under `fail`; else a warning,
    /// and under `dead_letter` the rows' times in `<source>-batch-<N>.bad.jsonl`.
    async fn reject_event_times(
        &self,
        batch: BatchId,
        outside: &[Option<EventTime>],
    ) -> Result<()> {
        if outside.is_empty() {
            return Ok(());
        }
        let text = |time: &Option<EventTime>| match time {
            Some(time) => time.to_string(),
            None => "(beyond what milliseconds can count)".to_string(),
        };
        let rejected: Vec<BadRecord> = outside
            .iter()
            .map(|time| {
                BadRecord::record(
                    format!("source '{}' batch {batch}", self.name),
                    format!(
                        "event time {} is outside the times a query can window (1678-01-01 \
                         to 2261-12-31)",
                        text(time)
                    ),
                    text(time),
                )
            })
            .collect();
        let mut bad = BadRecords::new(self.on_error.clone());
        bad.reject(rejected[0].clone())?;
        tracing::warn!(source = %self.name, rows = outside.len(), first = %text(&outside[0]),
            "dropped rows whose event time is outside 1678-01-01 to 2261-12-31 (on_error = '{}')",
            self.on_error.name());
        if let Some(dir) = &self.dead_letters {
            let name = format!("{}-batch-{batch}", self.name);
            write_dead_letters(dir, &name, &rejected).await?;
        }
        Ok(())
    }
}

/// The columns of a source that `plan` reads, with the watermark's column (by name in
/// `schema`); `None` for all of them.
fn columns_to_read(
    plan: &QueryPlan,
    name: &str,
    schema: &SchemaRef,
    watermark: Option<&WatermarkSpec>,
) -> Option<Vec<usize>> {
    let mut columns = plan.columns_read(name)?;
    if let Some(spec) = watermark {
        columns.insert(schema.index_of(&spec.column).ok()?);
    }
    (columns.len() < schema.fields().len()).then(|| columns.into_iter().collect())
}

/// Runs one continuous query until its trigger ends, it is stopped, or it fails.
pub(crate) struct QueryRunner {
    name: String,
    ctx: SessionContext,
    plan: QueryPlan,
    sources: Vec<OpenSource>,
    sink: Arc<dyn Sink>,
    checkpoint: Checkpoint,
    /// The checkpoint's writer lock (one writer per checkpoint), held until the query ends
    /// and checked before each write to the logs and the sink.
    lock: Option<CheckpointLock>,
    trigger: Trigger,
    output_mode: OutputMode,
    flush_on_end: bool,
    stateful_operators: Vec<String>,
    planner: PlannerFactory,
    state: Arc<QueryState>,
    watermarks: WatermarkTracker,
    /// The watermark in force for the last batch run (`None` before the first).
    last_batch_watermark: Option<Option<EventTime>>,
    status: Arc<QueryStatus>,
    stop: watch::Receiver<bool>,
    /// Requests to be told when every source is drained (`process_all_available`).
    drain_requests: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    /// When the previous batch started, for the input rate.
    previous_start: Option<Instant>,
    /// How late the next batch starts after it was due (see [`BatchProgress::trigger_lag`]).
    trigger_lag: Duration,
}

impl QueryRunner {
    /// Takes the checkpoint's writer lock, checks the checkpoint belongs to this query
    /// (creating it if new), opens the sink and the sources, and loads the state of the last
    /// committed batch. A query that cannot open hands the lock back at once.
    pub(crate) async fn open(
        parts: RunnerParts,
        status: Arc<QueryStatus>,
        stop: watch::Receiver<bool>,
        drain_requests: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    ) -> Result<Self> {
        // Before anything is touched: a second writer must not remove this one's output.
        let lock = parts.checkpoint.lock(&parts.name).await?;
        match Self::open_locked(parts, status, stop, drain_requests).await {
            Ok(mut runner) => {
                runner.lock = Some(lock);
                Ok(runner)
            }
            Err(e) => {
                lock.release().await;
                Err(e)
            }
        }
    }

    async fn open_locked(
        parts: RunnerParts,
        status: Arc<QueryStatus>,
        stop: watch::Receiver<bool>,
        drain_requests: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    ) -> Result<Self> {
        let output_schema: SchemaRef = Arc::new(parts.plan.schema().as_arrow().clone());
        let metadata = QueryMetadata {
            name: parts.name.clone(),
            sql: parts.sql.clone(),
            sources: parts.sources.iter().map(|s| s.name.clone()).collect(),
            output_columns: column_list(&output_schema),
            state_partitions: parts.state_partitions.max(1),
            stateful_operators: Some(parts.state_signature.clone()),
        };
        let existing = parts.checkpoint.metadata().await?;
        parts.checkpoint.verify(existing.is_some()).await?;
        // A changed query that cannot resume is refused before the sink or the checkpoint
        // is touched.
        if let Some(existing) = &existing {
            let place = parts.checkpoint.describe();
            check_resume(
                &place,
                existing,
                &metadata,
                parts.sink.as_ref(),
                &output_schema,
            )?;
            if existing.sql != metadata.sql {
                tracing::info!(query = %parts.name, "resuming the checkpoint with a changed query text (same sources, stateful operators and output)");
            }
        }
        parts.checkpoint.remove_interrupted_writes().await?;
        let last_commit = parts.checkpoint.latest_commit().await?;
        let last_committed = last_commit.as_ref().map(|c| c.batch_id);
        let partitions = existing
            .as_ref()
            .map_or(metadata.state_partitions, |m| m.state_partitions);
        let state = Arc::new(QueryState::new(parts.checkpoint.state_dir(), partitions));
        state.load(&parts.state_ids, last_committed).await?;
        let mut watermarks =
            WatermarkTracker::new(parts.sources.iter().map(|s| s.watermark.clone()).collect());
        if let Some(commit) = &last_commit {
            watermarks.restore(commit.watermark_ms, &commit.max_event_time_ms);
        }
        let plan = QueryPlan::new(&parts.ctx, parts.plan)?;
        let mut sources = Vec::new();
        for (index, part) in parts.sources.into_iter().enumerate() {
            let columns = columns_to_read(&plan, &part.name, &part.schema, part.watermark.as_ref());
            let context = SourceContext {
                state: parts.checkpoint.source_dir(index),
            };
            let source = parts
                .registry
                .open_source(part.schema, &part.options, context)
                .await?;
            let on_error = OnError::from_options(&part.options)?;
            sources.push(OpenSource {
                name: part.name,
                source,
                columns,
                dead_letters: match &on_error {
                    OnError::DeadLetter(path) => {
                        let storage = StorageOptions::from_options(&part.options)?;
                        Some(StoreLocation::open(path, &storage, true)?)
                    }
                    _ => None,
                },
                on_error,
            });
        }
        // The sink, which removes what an unfinished batch left, is opened only once the
        // logs, the state and the sources' own logs have all been read and found whole; and
        // before a new checkpoint is created, so a sink that refuses (output of another query
        // in the way, an output mode it cannot store) leaves no checkpoint (only its unlocked
        // `writer.lock`).
        let open = SinkOpen {
            schema: Arc::clone(&output_schema),
            last_committed,
            new_query: existing.is_none(),
            output_mode: parts.output_mode,
        };
        parts.sink.open(open).await?;
        if existing.is_none() {
            parts.checkpoint.write_metadata(&metadata).await?;
        }
        Ok(Self {
            name: parts.name,
            ctx: parts.ctx,
            plan,
            sources,
            sink: parts.sink,
            checkpoint: parts.checkpoint,
            lock: None,
            trigger: parts.trigger,
            output_mode: parts.output_mode,
            flush_on_end: parts.flush_on_end,
            stateful_operators: parts.stateful_operators,
            planner: parts.planner,
            state,
            watermarks,
            last_batch_watermark: None,
            status,
            stop,
            drain_requests,
            previous_start: None,
            trigger_lag: Duration::ZERO,
        })
    }

    /// Recovers, then runs batches until the trigger ends or a stop is requested.
    pub(crate) async fn run(mut self) -> Result<()> {
        let result = self.run_batches().await;
        if let Some(lock) = self.lock.take() {
            lock.release().await;
        }
        result
    }

    /// Fails if the checkpoint's writer lock was lost (an object-store lease not renewed).
    fn check_lock(&self) -> Result<()> {
        self.lock.as_ref().map_or(Ok(()), CheckpointLock::check)
    }

    async fn run_batches(&mut self) -> Result<()> {
        let committed = self.checkpoint.latest_commit().await?.map(|c| c.batch_id);
        let mut starts: Vec<Option<SourceOffset>> = match committed {
            Some(batch) => {
                let entry = self.recorded(batch).await?;
                self.last_batch_watermark = Some(entry.watermark_ms);
                entry.sources.into_iter().map(|r| r.end).collect()
            }
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
        let mut idle = IdleBackoff::default();
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
            let watermark = self.watermarks.current();
            // As in Spark, a batch without new data runs when the watermark has moved, so a
            // stateful query emits and evicts the windows it closed.
            let watermark_moved = !self.stateful_operators.is_empty()
                && self
                    .last_batch_watermark
                    .is_some_and(|last| last != watermark);
            if has_data || watermark_moved {
                // As in Spark (≥ 3.4), input is late against the watermark of the previous
                // batch, and the first batch against its own.
                let late_watermark = self.last_batch_watermark.unwrap_or(watermark);
                let entry = OffsetsEntry {
                    batch_id: next,
                    sources: ranges,
                    batch_timestamp_ms: now_ms(),
                    watermark_ms: watermark,
                    late_watermark_ms: Some(late_watermark),
                };
                let write_started = Instant::now();
                self.check_lock()?;
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
                let flush = self.trigger == Trigger::AvailableNow
                    && self.flush_on_end
                    && !self.stateful_operators.is_empty()
                    && watermark != Some(EventTime::END_OF_TIME);
                if flush {
                    // The next iteration runs one more batch, which closes every window.
                    self.watermarks.end_of_input();
                    continue;
                }
                if matches!(self.trigger, Trigger::Once | Trigger::AvailableNow) {
                    break;
                }
            }
            let wait = match self.trigger {
                // Someone waits for the sources to be drained: don't wait for the interval.
                _ if !drain_waiters.is_empty() => Duration::ZERO,
                Trigger::ProcessingTime(interval) if !interval.is_zero() => {
                    // The next batch is due an interval after this one started; past that,
                    // it starts late by the overrun.
                    self.trigger_lag = started.elapsed().saturating_sub(interval);
                    interval.saturating_sub(started.elapsed())
                }
                Trigger::ProcessingTime(_) if !has_data && !watermark_moved => idle.idle(),
                _ => {
                    idle.reset();
                    Duration::ZERO
                }
            };
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.stop.changed() => {}
                    Some(waiter) = self.drain_requests.recv() => drain_waiters.push(waiter),
                }
            }
        }
        self.state.finish_snapshots().await;
        Ok(())
    }

    /// The offsets recorded for committed batch `batch`.
    async fn recorded(&self, batch: BatchId) -> Result<OffsetsEntry> {
        let entry = self.checkpoint.offsets(batch).await?.ok_or_else(|| {
            WeirError::Checkpoint(format!(
                "{} has a commit for batch {batch} but no offsets for it: the log is damaged",
                self.checkpoint.describe()
            ))
        })?;
        self.check_ranges(&entry)?;
        Ok(entry)
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
        for (index, (open, range)) in self.sources.iter().zip(&entry.sources).enumerate() {
            let start = range.start.as_ref();
            let mut read = match (&range.end, &open.columns) {
                (Some(end), None) if range.end != range.start => {
                    open.source.read(start, end).await?
                }
                (Some(end), Some(columns)) if range.end != range.start => {
                    open.source.read_columns(start, end, columns).await?
                }
                _ => Default::default(),
            };
            let (batches, outside) = self.watermarks.outside_event_times(index, read.batches)?;
            open.reject_event_times(entry.batch_id, &outside).await?;
            read.batches = batches;
            read.bad_records += outside.len() as u64;
            self.watermarks.observe(index, &read.batches)?;
            let rows: u64 = read.batches.iter().map(|b| b.num_rows() as u64).sum();
            source_progress.push(SourceProgress {
                name: open.name.clone(),
                start_offset: range.start.clone(),
                end_offset: range.end.clone(),
                input_rows: rows,
                bad_records: read.bad_records,
                bad_files: read.bad_files,
            });
            let rows = SourceRows {
                batches: read.batches,
                columns: open.columns.clone(),
            };
            inputs.insert(open.name.clone(), rows);
        }
        durations.read = read_started.elapsed();

        let execute_started = Instant::now();
        let context = Arc::new(BatchContext {
            batch: entry.batch_id.0,
            state: Arc::clone(&self.state),
            watermarks: BatchWatermarks {
                late_rows: entry.late_watermark(),
                eviction: entry.watermark_ms,
            },
            mode: self.output_mode,
            metrics: Default::default(),
        });
        let planner = if self.stateful_operators.is_empty() {
            None
        } else {
            Some(((self.planner)(Arc::clone(&context)), Arc::clone(&context)))
        };
        let (output, physical_plan) = execute_batch(
            &self.ctx,
            &self.plan,
            inputs,
            entry.batch_timestamp_ms,
            planner,
        )
        .await
        .map_err(|source| WeirError::Execution {
            query: self.name.clone(),
            batch: entry.batch_id.0,
            source,
        })?;
        durations.execute = execute_started.elapsed();
        self.status.set_last_plan(
            DisplayableExecutionPlan::with_metrics(physical_plan.as_ref())
                .indent(true)
                .to_string(),
        );

        let output_rows: u64 = output.iter().map(|b| b.num_rows() as u64).sum();
        let published = self
            .status
            .has_subscribers()
            .then(|| (physical_plan.schema(), output.clone()));
        let sink_started = Instant::now();
        self.check_lock()?;
        self.sink.write(entry.batch_id, output).await?;
        durations.sink_write = sink_started.elapsed();

        let commit_started = Instant::now();
        self.state.persist(entry.batch_id).await?;
        let watermark_ms = self.watermarks.advance();
        let commit = CommitEntry {
            batch_id: entry.batch_id,
            output_rows,
            watermark_ms,
            max_event_time_ms: self.watermarks.max_event().to_vec(),
        };
        self.check_lock()?;
        self.checkpoint.write_commit(&commit).await?;
        self.state.promote();
        self.last_batch_watermark = Some(entry.watermark_ms);
        for (open, range) in self.sources.iter().zip(&entry.sources) {
            if let Some(end) = &range.end {
                open.source.commit(end).await?;
            }
        }
        durations.commit = commit_started.elapsed();
        durations.total = started.elapsed();
        let operators = self.operator_progress(&context);
        self.report(
            entry,
            started,
            source_progress,
            output_rows,
            durations,
            operators,
        );
        // Published after the progress is recorded, so that a subscriber that has seen a batch's
        // rows also finds the batch in `SHOW PROGRESS` and the listeners' events.
        if let Some((schema, rows)) = published {
            self.status.publish(QueryOutput {
                batch_id: entry.batch_id,
                schema,
                rows,
            });
        }
        Ok(())
    }

    fn operator_progress(&self, context: &BatchContext) -> Vec<OperatorProgress> {
        let metrics = context.metrics.lock().unwrap_or_else(|p| p.into_inner());
        self.stateful_operators
            .iter()
            .map(|id| {
                let (state_rows, state_bytes) = self.state.size_of(id);
                let done = metrics
                    .get(id)
                    .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()).clone())
                    .unwrap_or_default();
                OperatorProgress {
                    operator_id: id.clone(),
                    state_rows,
                    state_bytes,
                    late_rows: done.late_rows,
                    late_rows_by_input: done.late_rows_by_input.clone(),
                    rows_evicted: done.rows_evicted,
                    rows_emitted: done.rows_emitted,
                    time: done.elapsed,
                }
            })
            .collect()
    }

    fn report(
        &mut self,
        entry: &OffsetsEntry,
        started: Instant,
        sources: Vec<SourceProgress>,
        output_rows: u64,
        durations: PhaseDurations,
        operators: Vec<OperatorProgress>,
    ) {
        let input_rows: u64 = sources.iter().map(|s| s.input_rows).sum();
        let bad_records: u64 = sources.iter().map(|s| s.bad_records).sum();
        let bad_files: u64 = sources.iter().map(|s| s.bad_files).sum();
        let late_rows: u64 = operators.iter().map(|o| o.late_rows).sum();
        let state_rows: u64 = operators.iter().map(|o| o.state_rows).sum();
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
            batch_id: entry.batch_id,
            timestamp_ms: entry.batch_timestamp_ms,
            trigger_lag: self.trigger_lag,
            input_rows,
            output_rows,
            input_rows_per_second: rate(since_previous),
            processed_rows_per_second: rate(durations.total),
            durations,
            sources,
            watermark_ms: entry.watermark_ms.map(EventTime::ms),
            operators,
        };
        tracing::info!(
            query = %self.name,
            batch = %entry.batch_id,
            input_rows,
            output_rows,
            bad_records,
            bad_files,
            late_rows,
            state_rows,
            watermark = %watermark_text(entry.watermark_ms),
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
