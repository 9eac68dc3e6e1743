//! [`StreamingQuery`]: the handle of a running continuous query.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::{Result, WeirError};
use crate::runtime::{BatchProgress, QueryOutput, QueryState, QueryStatus};

/// A running (or ended) continuous query. Cloning gives another handle to the same query.
#[derive(Debug, Clone)]
pub struct StreamingQuery {
    inner: Arc<QueryInner>,
}

#[derive(Debug)]
struct QueryInner {
    name: String,
    sources: Vec<String>,
    status: Arc<QueryStatus>,
    stop: watch::Sender<bool>,
    drain: mpsc::UnboundedSender<oneshot::Sender<()>>,
    task: Mutex<Option<JoinHandle<Result<()>>>>,
    /// A checkpoint made for a query that was given none (console, memory, blackhole sinks),
    /// removed when the last handle goes.
    _scratch_checkpoint: Option<tempfile::TempDir>,
}

impl StreamingQuery {
    pub(crate) fn new(
        name: String,
        sources: Vec<String>,
        status: Arc<QueryStatus>,
        stop: watch::Sender<bool>,
        drain: mpsc::UnboundedSender<oneshot::Sender<()>>,
        task: JoinHandle<Result<()>>,
        scratch_checkpoint: Option<tempfile::TempDir>,
    ) -> Self {
        let inner = QueryInner {
            name,
            sources,
            status,
            stop,
            drain,
            task: Mutex::new(Some(task)),
            _scratch_checkpoint: scratch_checkpoint,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The query's name (its sink's name).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The streaming sources it reads.
    pub fn sources(&self) -> &[String] {
        &self.inner.sources
    }

    /// Progress of the last batch, if one ran.
    pub fn progress(&self) -> Option<BatchProgress> {
        self.inner.status.last()
    }

    /// How many batches it has run since it started (all of them, unlike
    /// [`recent_progress`](Self::recent_progress)).
    pub fn batches_run(&self) -> u64 {
        self.inner.status.batches_run()
    }

    /// Progress of up to the last 100 batches, oldest first.
    pub fn recent_progress(&self) -> Vec<BatchProgress> {
        self.inner.status.recent()
    }

    /// Running, stopped, or failed with an error message.
    pub fn state(&self) -> QueryState {
        self.inner.status.state()
    }

    /// Whether the query is still running.
    pub fn is_active(&self) -> bool {
        self.state() == QueryState::Running
    }

    /// Why the query failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        match self.state() {
            QueryState::Failed(message) => Some(message),
            _ => None,
        }
    }

    /// The physical plan of the last batch, with each operator's metrics (rows, time): what
    /// `EXPLAIN ANALYZE <query>` shows.
    pub fn last_plan(&self) -> Option<String> {
        self.inner.status.last_plan()
    }

    /// The rows of every batch committed from now on, as they are committed: for code that
    /// shows live results. The stream ends when the query ends. A subscriber that falls
    /// more than 64 batches behind misses the oldest of them (logged as a warning); the
    /// query itself never waits for subscribers.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use futures::StreamExt;
    /// let engine = weir::Engine::builder().build()?;
    /// engine.execute("CREATE SOURCE s (k INT) WITH (connector = 'memory')").await?;
    /// let query = engine.watch("SELECT k * 10 AS k10 FROM s").await?;
    /// let mut outputs = query.subscribe();
    /// engine.execute("INSERT INTO s VALUES (1), (2)").await?;
    /// let output = outputs.next().await.expect("a batch");
    /// assert_eq!(output.rows.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    /// query.stop().await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn subscribe(&self) -> BoxStream<'static, QueryOutput> {
        let Some(receiver) = self.inner.status.subscribe() else {
            return futures::stream::empty().boxed();
        };
        let name = self.inner.name.clone();
        futures::stream::unfold(receiver, move |mut receiver| {
            let name = name.clone();
            async move {
                loop {
                    match receiver.recv().await {
                        Ok(output) => return Some((output.as_ref().clone(), receiver)),
                        Err(RecvError::Lagged(missed)) => {
                            tracing::warn!(query = %name, missed, "a subscriber fell behind and missed batches");
                        }
                        Err(RecvError::Closed) => return None,
                    }
                }
            }
        })
        .boxed()
    }

    /// Waits until the query has processed everything its sources hold now (Spark's
    /// `processAllAvailable`): it runs batches, without waiting for its trigger interval,
    /// until a check of every source finds nothing new. For tests and interactive use; on a
    /// source that never runs dry it does not return. Fails if the query fails meanwhile.
    pub async fn process_all_available(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        if self.inner.drain.send(tx).is_ok() && rx.await.is_ok() {
            return Ok(());
        }
        // The query ended before it could answer.
        self.await_termination().await
    }

    /// Stops the query gracefully: the batch in flight finishes and is committed.
    pub async fn stop(&self) -> Result<()> {
        self.inner.stop.send_replace(true);
        self.await_termination().await
    }

    /// Waits until the query ends; returns its error if it failed. Cancellation-safe: a
    /// waiter dropped early (in a `select!`) leaves the query and other waiters unaffected.
    pub async fn await_termination(&self) -> Result<()> {
        let mut task = self.inner.task.lock().await;
        if let Some(handle) = task.as_mut() {
            let joined = handle.await;
            task.take();
            return joined
                .map_err(|e| WeirError::Internal(format!("query task ended abnormally: {e}")))?;
        }
        match self.state() {
            QueryState::Failed(message) => Err(WeirError::Plan(format!(
                "query '{}' failed: {message}",
                self.name()
            ))),
            _ => Ok(()),
        }
    }
}
