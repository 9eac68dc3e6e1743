//! [`Engine`]: the entry point for embedding Weir.

use std::path::PathBuf;
use std::sync::Arc;

use std::sync::atomic::AtomicU64;

use arrow::array::RecordBatch;
use datafusion::execution::context::SessionContext;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::SessionConfig;
use tokio::sync::Mutex;
use weir_connectors::ConnectorRegistry;
use weir_sql::{ScriptStatement, Statement, parse_script, parse_sql};

use super::allowed_paths::AllowedPaths;
use super::catalog::Catalog;
use super::persisted_catalog::{EndedQueries, Entry, Made, PersistedCatalog};
use super::streaming_query::StreamingQuery;
use crate::error::{Result, WeirError};
use crate::runtime::QueryListener;

/// State partitions of a new query unless the builder says otherwise.
const DEFAULT_STATE_PARTITIONS: usize = 4;

/// Builds an [`Engine`].
#[derive(Debug, Default)]
pub struct EngineBuilder {
    checkpoint_root: Option<PathBuf>,
    target_partitions: Option<usize>,
    state_partitions: Option<usize>,
    memory_limit: Option<usize>,
    listeners: Vec<Arc<dyn QueryListener>>,
    state_dir: Option<PathBuf>,
    allowed_paths: Vec<String>,
}

impl EngineBuilder {
    /// Where queries whose sink has no `checkpoint` option keep their checkpoint:
    /// `<root>/<sink name>`. Without a root, such queries get a scratch checkpoint removed
    /// when they end (console, memory and blackhole sinks) or are refused (parquet sinks).
    pub fn checkpoint_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.checkpoint_root = Some(root.into());
        self
    }

    /// How many partitions DataFusion splits each micro-batch into (default: the cores).
    pub fn target_partitions(mut self, partitions: usize) -> Self {
        self.target_partitions = Some(partitions.max(1));
        self
    }

    /// How many partitions a new query splits its operators' state into, by key hash (default
    /// 4). A query keeps the count its checkpoint was created with.
    pub fn state_partitions(mut self, partitions: usize) -> Self {
        self.state_partitions = Some(partitions.max(1));
        self
    }

    /// The most memory DataFusion's operators may hold for execution (sorts, joins, the
    /// aggregation's hash tables), in bytes; past it, a batch fails with a resources error
    /// naming the operator, instead of the process running out of memory. Default: no limit.
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// Keeps the catalog and the queries in `dir` (`catalog.json`), so that
    /// [`Engine::restore`] brings them back after a restart; queries' checkpoints go to
    /// `<dir>/checkpoints/<sink name>` unless a checkpoint root is set. Statements run with
    /// [`Engine::execute`] or [`Engine::execute_script_statement`] are kept; see
    /// [`Engine::restore`] for what comes back.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Confines the locations that statements name in their connector options (`path`,
    /// `checkpoint`, `dead_letter_path` and every other `…_path`) to `roots`: local
    /// directories, which must exist, or object-store prefixes such as `s3://bucket/prefix`.
    /// A `CREATE SOURCE`, `CREATE TABLE` or `CREATE SINK` naming a location outside them
    /// (symbolic links and `..` resolved) is refused before anything is created, so a client
    /// of a server reads and writes nowhere else. The engine's own checkpoint root and state
    /// directory are not confined: the embedder chose them. Repeated calls add roots; with
    /// none (the default), every location is allowed. What `weir serve --allow-path` sets.
    pub fn allowed_paths(mut self, roots: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.allowed_paths.extend(roots.into_iter().map(Into::into));
        self
    }

    /// Adds a listener told when queries start, commit a batch and end.
    pub fn listener(mut self, listener: Arc<dyn QueryListener>) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Builds the engine.
    pub fn build(self) -> Result<Engine> {
        let allowed_paths = AllowedPaths::new(&self.allowed_paths)?;
        let mut config = SessionConfig::new().with_information_schema(false);
        if let Some(partitions) = self.target_partitions {
            config = config.with_target_partitions(partitions);
        }
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(bytes) = self.memory_limit {
            runtime = runtime.with_memory_limit(bytes, 1.0);
        }
        let ctx = SessionContext::new_with_config_rt(config, runtime.build_arc()?);
        let window_inputs = weir_sql::window::register(&ctx);
        weir_sql::planner::register_dedup_function(&ctx, &window_inputs);
        let persisted = match &self.state_dir {
            Some(dir) => Some(Arc::new(PersistedCatalog::open(dir)?)),
            None => None,
        };
        let mut listeners = self.listeners;
        if let Some(persisted) = &persisted {
            listeners.push(Arc::new(EndedQueries(Arc::clone(persisted))));
        }
        let checkpoint_root = self
            .checkpoint_root
            .or_else(|| self.state_dir.map(|dir| dir.join("checkpoints")));
        let inner = EngineInner {
            ctx,
            registry: Arc::new(ConnectorRegistry::new()),
            catalog: Mutex::new(Catalog::default()),
            checkpoint_root,
            allowed_paths,
            persisted,
            state_partitions: self.state_partitions.unwrap_or(DEFAULT_STATE_PARTITIONS),
            window_inputs,
            listeners,
            watches: AtomicU64::new(0),
        };
        Ok(Engine {
            inner: Arc::new(inner),
        })
    }
}

/// What [`Engine::restore`] brought back.
#[derive(Debug, Default)]
pub struct RestoreReport {
    /// Sources, tables, views and sinks re-created (without a query).
    pub created: Vec<String>,
    /// Queries restarted from their checkpoints.
    pub restarted: Vec<String>,
    /// Statements that failed, by the name of what they make, with why.
    pub failed: Vec<(String, WeirError)>,
}

/// What a statement produced.
#[derive(Debug)]
pub enum Outcome {
    /// DDL or a management statement succeeded; the text says what was done.
    Done(String),
    /// Rows of a query, `SHOW`, `DESCRIBE` or `EXPLAIN`.
    Rows(Vec<RecordBatch>),
    /// A continuous query was started.
    Started(StreamingQuery),
}

/// The Weir engine: a catalog of sources, tables, views and sinks, and the continuous queries
/// running over them. Cheap to clone; clones share everything.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let engine = weir::Engine::builder().build()?;
/// engine.execute("CREATE SOURCE clicks (user_id INT, url VARCHAR) WITH (connector = 'memory')").await?;
/// engine.execute("INSERT INTO clicks VALUES (1, 'a'), (2, 'b'), (1, 'c')").await?;
/// let query = engine
///     .start("CREATE SINK user1 WITH (connector = 'memory', trigger = 'available-now') AS \
///             SELECT url FROM clicks WHERE user_id = 1")
///     .await?;
/// query.await_termination().await?;
/// let rows = engine.sql("SELECT count(*) AS n FROM user1").await?;
/// assert_eq!(arrow::util::pretty::pretty_format_batches(&rows)?.to_string(),
///            "+---+\n| n |\n+---+\n| 2 |\n+---+");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Engine {
    pub(super) inner: Arc<EngineInner>,
}

pub(super) struct EngineInner {
    pub ctx: SessionContext,
    pub registry: Arc<ConnectorRegistry>,
    pub catalog: Mutex<Catalog>,
    pub checkpoint_root: Option<PathBuf>,
    /// Where the locations in statements' connector options must lie.
    pub allowed_paths: AllowedPaths,
    /// The statements kept in the state directory, if there is one.
    pub persisted: Option<Arc<PersistedCatalog>>,
    /// State partitions of new queries.
    pub state_partitions: usize,
    /// What window table functions can read.
    pub window_inputs: weir_sql::window::WindowInputs,
    /// Told about every query's life.
    pub listeners: Vec<Arc<dyn QueryListener>>,
    /// Watches started, for their names.
    pub watches: AtomicU64,
}

impl std::fmt::Debug for EngineInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineInner")
            .field("checkpoint_root", &self.checkpoint_root)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A builder with defaults.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// Runs every statement of `sql` in order, stopping at the first error.
    pub async fn execute(&self, sql: &str) -> Result<Vec<Outcome>> {
        let mut outcomes = Vec::new();
        for statement in parse_script(sql)? {
            outcomes.push(self.execute_script_statement(statement).await?);
        }
        Ok(outcomes)
    }

    /// Runs one parsed statement with its text (from [`weir_sql::parse_script`]); with a
    /// state directory, what it changed in the catalog is kept there.
    pub async fn execute_script_statement(&self, statement: ScriptStatement) -> Result<Outcome> {
        let Some(persisted) = &self.inner.persisted else {
            return self.run_statement(statement.statement).await;
        };
        let changes_catalog = matches!(
            statement.statement,
            Statement::CreateSource { .. }
                | Statement::CreateTable { .. }
                | Statement::CreateView { .. }
                | Statement::CreateSink { .. }
                | Statement::Insert { .. }
                | Statement::Drop { .. }
        );
        if !changes_catalog {
            return self.run_statement(statement.statement).await;
        }
        // One at a time, so the file records them in the order they ran.
        let _turn = persisted.turn.lock().await;
        let outcome = self.run_statement(statement.statement.clone()).await?;
        let started = match &outcome {
            Outcome::Started(query) => Some(query),
            _ => None,
        };
        persisted.record(&statement.statement, &statement.text, started)?;
        Ok(outcome)
    }

    /// Runs one parsed statement. It is not kept in the state directory, having no text:
    /// use [`Engine::execute_script_statement`] for that.
    pub async fn execute_statement(&self, statement: Statement) -> Result<Outcome> {
        self.run_statement(statement).await
    }

    /// Brings back what the state directory keeps: re-creates the sources, tables, views and
    /// sinks in the order they were made, and restarts each query that was running when the
    /// engine last stopped (not those that ended or were stopped), from its checkpoint, so it
    /// goes on exactly where its last committed batch ended. A statement that fails now (a
    /// directory gone, a service down) is reported and kept for the next restore; the others
    /// go on. Call it once, before running other statements. Without a state directory it
    /// does nothing.
    pub async fn restore(&self) -> Result<RestoreReport> {
        let mut report = RestoreReport::default();
        let Some(persisted) = &self.inner.persisted else {
            return Ok(report);
        };
        let mut pending: Vec<_> = persisted
            .entries()
            .into_iter()
            .filter(|e| !(e.ended && e.made == Made::Insert))
            .collect();
        // An object re-created after what was made from it comes later in the file: what
        // failed is tried again while each pass brings something back.
        loop {
            let mut failed = Vec::new();
            let before = pending.len();
            for entry in pending {
                match self.restore_entry(&entry).await {
                    Ok(Outcome::Started(query)) => report.restarted.push(query.name().to_string()),
                    Ok(_) => report.created.push(entry.name.clone()),
                    Err(e) => failed.push((entry, e)),
                }
            }
            if failed.is_empty() || failed.len() == before {
                for (entry, error) in failed {
                    tracing::error!(name = %entry.name, "could not restore: {error}");
                    report.failed.push((entry.name, error));
                }
                return Ok(report);
            }
            pending = failed.into_iter().map(|(entry, _)| entry).collect();
        }
    }

    /// Runs one kept statement again; an ended query's sink comes back without its query.
    async fn restore_entry(&self, entry: &Entry) -> Result<Outcome> {
        let mut statements = parse_sql(&entry.sql)?;
        let Some(mut statement) = statements.pop().filter(|_| statements.is_empty()) else {
            return Err(WeirError::Checkpoint(format!(
                "the catalog keeps a text for {} that is not one statement",
                entry.name
            )));
        };
        if entry.ended
            && let Statement::CreateSink { query, .. } = &mut statement
        {
            *query = None;
        }
        self.run_statement(statement).await
    }

    /// Stops every running query gracefully, as [`Engine::stop_all`] does, but keeps them
    /// running in the state directory, so that the next [`Engine::restore`] restarts them.
    /// What `weir serve` does on SIGTERM.
    pub async fn shutdown(&self) -> Result<()> {
        if let Some(persisted) = &self.inner.persisted {
            persisted.shutting_down();
        }
        self.stop_all().await
    }

    /// Runs one `CREATE SINK ... AS SELECT` or `INSERT INTO <sink> SELECT` statement and
    /// returns the handle of the query it started.
    pub async fn start(&self, sql: &str) -> Result<StreamingQuery> {
        let starts = |s: &Statement| {
            matches!(
                s,
                Statement::CreateSink { query: Some(_), .. } | Statement::Insert { .. }
            )
        };
        match self.single(sql, starts).await? {
            Outcome::Started(query) => Ok(query),
            _ => Err(WeirError::Plan(
                "start() takes CREATE SINK ... AS SELECT or INSERT INTO <sink> SELECT".to_string(),
            )),
        }
    }

    /// Runs one ad hoc query (or SHOW / DESCRIBE / EXPLAIN) and returns its rows.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        match self.single(sql, Statement::returns_rows).await? {
            Outcome::Rows(rows) => Ok(rows),
            _ => Err(WeirError::Plan(
                "sql() takes a query; use execute() for other statements".to_string(),
            )),
        }
    }

    /// Runs `sql`, which must be one statement that `accepted` allows; anything else is
    /// refused before it runs, so a refused call changes nothing.
    async fn single(&self, sql: &str, accepted: impl Fn(&Statement) -> bool) -> Result<Outcome> {
        let mut statements = parse_sql(sql)?;
        if statements.len() != 1 {
            return Err(WeirError::Plan(format!(
                "expected one statement, found {}",
                statements.len()
            )));
        }
        let statement = statements.remove(0);
        if !accepted(&statement) {
            return Err(WeirError::Plan(format!(
                "this call does not take {}; use execute()",
                statement_kind(&statement)
            )));
        }
        self.run_statement(statement).await
    }

    /// Starts `select` as a continuous query whose rows go only to
    /// [`StreamingQuery::subscribe`]: nothing is written and its checkpoint is temporary. In
    /// append mode, or update mode for an aggregation that append mode cannot take. Its name
    /// is `watch_<n>`; stop it when done. What the shell's `WATCH SELECT …` runs.
    pub async fn watch(&self, select: &str) -> Result<StreamingQuery> {
        self.start_watch(select).await
    }

    /// A running or ended query by name.
    pub async fn query(&self, name: &str) -> Option<StreamingQuery> {
        self.inner.catalog.lock().await.queries.get(name).cloned()
    }

    /// Every query started by this engine.
    pub async fn queries(&self) -> Vec<StreamingQuery> {
        self.inner
            .catalog
            .lock()
            .await
            .queries
            .values()
            .cloned()
            .collect()
    }

    /// Stops every running query gracefully.
    pub async fn stop_all(&self) -> Result<()> {
        let mut first_error = None;
        for query in self.queries().await {
            if let Err(e) = query.stop().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Registers a scalar function (a DataFusion UDF) for every statement and query run
    /// after it.
    pub fn register_udf(&self, function: ScalarUDF) {
        self.inner.ctx.register_udf(function);
    }

    /// Registers an aggregate function (a DataFusion UDAF). A streaming aggregation keeps its
    /// `Accumulator::state` between batches and combines it with `merge_batch`, so the UDAF
    /// needs mergeable state, as for DataFusion's own multi-stage aggregation.
    pub fn register_udaf(&self, function: AggregateUDF) {
        self.inner.ctx.register_udaf(function);
    }

    /// The DataFusion session underneath, for anything else DataFusion offers (window UDFs,
    /// table functions, configuration).
    pub fn session_context(&self) -> &SessionContext {
        &self.inner.ctx
    }

    /// The connector registry (for example to append rows to a `memory` source from code).
    pub fn connectors(&self) -> &ConnectorRegistry {
        &self.inner.registry
    }
}

fn statement_kind(statement: &Statement) -> &'static str {
    match statement {
        Statement::CreateSource { .. } => "CREATE SOURCE",
        Statement::CreateTable { .. } => "CREATE TABLE",
        Statement::CreateView { .. } => "CREATE VIEW",
        Statement::CreateSink { .. } => "CREATE SINK",
        Statement::Insert { .. } => "INSERT",
        Statement::Query(_) => "a query",
        Statement::Explain(_) => "EXPLAIN",
        Statement::Show(_) => "SHOW",
        Statement::ShowProgress(_) => "SHOW PROGRESS",
        Statement::ExplainAnalyze(_) => "EXPLAIN ANALYZE",
        Statement::Describe(_) => "DESCRIBE",
        Statement::StopQuery(_) => "STOP QUERY",
        Statement::Drop { .. } => "DROP",
    }
}
