//! How each statement is carried out: DDL updates the catalog and DataFusion's session,
//! `CREATE SINK ... AS` and `INSERT INTO <sink>` start continuous queries.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::catalog::view::ViewTable;
use datafusion::common::Column;
use datafusion::logical_expr::{Expr, LogicalPlan, cast};
use sqlparser::ast::{self, Query};
use tokio::sync::{mpsc, watch};
use weir_connectors::{ConnectorOptions, memory::MemoryOutput};
use weir_sql::{ShowKind, SourceDesc, Statement, StreamingTable, plan_streaming_query};

use super::catalog::{Catalog, SinkEntry, SourceEntry, TableEntry};
use super::engine::{Engine, Outcome};
use super::memory_table::MemoryOutputTable;
use super::static_table::{StaticTable, reload_tables_of};
use super::streaming_query::StreamingQuery;
use crate::checkpoint::{Checkpoint, OperatorSignature};
use crate::error::{Result, WeirError};
use crate::physical::planner::StreamingQueryPlanner;
use crate::runtime::{
    QUERY_OPTIONS, QueryOptions, QueryRunner, QueryState, QueryStatus, RunnerParts, SourcePart,
    WatermarkSpec,
};
use weir_sql::logical::streaming_operators;
use weir_sql::planner::watermarked_columns;
use weir_sql::window::WindowInput;

/// An ad hoc query's snapshot of a stream stops after the trigger that reaches this many rows.
const PEEK_ROWS: usize = 1_000_000;

impl Engine {
    /// The schema of the rows `statement` answers, without running a query: a `SELECT` is
    /// planned only; `SHOW`, `DESCRIBE` and `EXPLAIN`, which only read the catalog, are run.
    /// None for a statement that answers no rows (DDL, `INSERT`, one that starts a query);
    /// an error for one that does not plan, or whose columns depend on a parameter's value.
    /// For clients that must know an answer's columns before asking for it (Flight SQL's
    /// prepared statements, JDBC's `ResultSetMetaData`).
    pub async fn result_schema(&self, statement: &Statement) -> Result<Option<SchemaRef>> {
        match statement {
            Statement::Query(query) => {
                let plan = self.plan_query(query).await?;
                // A parameter whose type nothing tells (`SELECT $1`) is typed by its value,
                // so the columns are not known until it is bound.
                let parameters = plan.get_parameter_types()?;
                let mut untyped: Vec<&String> = parameters
                    .iter()
                    .filter(|(_, t)| t.is_none())
                    .map(|(name, _)| name)
                    .collect();
                untyped.sort();
                if let Some(first) = untyped.first() {
                    return Err(WeirError::Plan(format!(
                        "the type of parameter {first} is known only when a value is bound"
                    )));
                }
                Ok(Some(Arc::clone(plan.schema().inner())))
            }
            other if other.returns_rows() => match self.run_statement(other.clone()).await? {
                Outcome::Rows(rows) => Ok(rows.first().map(RecordBatch::schema)),
                _ => Ok(None),
            },
            _ => Ok(None),
        }
    }

    pub(super) async fn run_statement(&self, statement: Statement) -> Result<Outcome> {
        let mut catalog = self.inner.catalog.lock().await;
        match statement {
            Statement::CreateSource {
                source,
                or_replace,
                if_not_exists,
            } => {
                self.create_source(&mut catalog, source, or_replace, if_not_exists)
                    .await
            }
            Statement::CreateTable {
                table,
                or_replace,
                if_not_exists,
            } => {
                if if_not_exists && catalog.tables.contains_key(&table.name) {
                    return Ok(Outcome::Done(format!("table {} exists", table.name)));
                }
                check_name_free(&catalog, &table.name, or_replace.then_some("table"))?;
                self.inner
                    .allowed_paths
                    .check("table", &table.name, &table.options)?;
                let options = ConnectorOptions::new(&table.name, table.options.clone());
                let provider = StaticTable::create(
                    &table.name,
                    table.declared_schema.clone(),
                    options,
                    Arc::clone(&self.inner.registry),
                )
                .await?;
                let (rows, schema) = (provider.rows(), provider.schema());
                self.register(&table.name, Arc::new(provider), Vec::new())?;
                let name = table.name.clone();
                catalog.tables.insert(
                    name.clone(),
                    TableEntry {
                        desc: table,
                        schema,
                        rows,
                    },
                );
                Ok(Outcome::Done(format!("created table {name} ({rows} rows)")))
            }
            Statement::CreateView { view, or_replace } => {
                check_name_free(&catalog, &view.name, or_replace.then_some("view"))?;
                let query = weir_sql::parse_sql(&view.query)?;
                let [Statement::Query(query)] = query.as_slice() else {
                    return Err(WeirError::Internal(format!(
                        "view {} does not hold one query",
                        view.name
                    )));
                };
                let plan = self.plan_query(query).await?;
                let watermarked = watermarked_columns(&plan);
                let provider = ViewTable::new(plan, Some(view.query.clone()));
                self.register(&view.name, Arc::new(provider), watermarked)?;
                let name = view.name.clone();
                catalog.views.insert(name.clone(), view);
                Ok(Outcome::Done(format!("created view {name}")))
            }
            Statement::CreateSink { sink, query } => {
                check_name_free(&catalog, &sink.name, None)?;
                check_sink_name(&sink.name)?;
                self.inner
                    .allowed_paths
                    .check("sink", &sink.name, &sink.options)?;
                let options = ConnectorOptions::new(&sink.name, sink.options.clone());
                let query_options = QueryOptions::from_options(&options)?;
                let built = self.inner.registry.create_sink(&options, QUERY_OPTIONS)?;
                let name = sink.name.clone();
                catalog.sinks.insert(
                    name.clone(),
                    SinkEntry {
                        desc: sink,
                        sink: built,
                        options: query_options,
                    },
                );
                let Some(query) = query else {
                    return Ok(Outcome::Done(format!("created sink {name}")));
                };
                // A query that cannot start leaves no sink behind, so the statement can be
                // corrected and run again.
                match self.start_query(&mut catalog, &name, &query).await {
                    Ok(started) => Ok(Outcome::Started(started)),
                    Err(e) => {
                        catalog.sinks.remove(&name);
                        self.inner.registry.drop_sink(&name);
                        Err(e)
                    }
                }
            }
            Statement::Insert { target, query } => match catalog.kind_of(&target) {
                Some("sink") => self
                    .start_query(&mut catalog, &target, &query)
                    .await
                    .map(Outcome::Started),
                Some("source") if self.inner.registry.memory_stream(&target).is_some() => {
                    self.insert_rows(&target, &query).await
                }
                Some(kind) => Err(WeirError::Plan(format!(
                    "cannot INSERT INTO {kind} '{target}': only sinks (to start a query) and \
                     memory sources (to add rows) accept INSERT"
                ))),
                None => Err(unknown(&catalog, &target)),
            },
            Statement::Query(query) => {
                let sources = catalog.sources.clone();
                drop(catalog);
                let plan = self.plan_query(&query).await?;
                // A streaming operator a table function planned runs in continuous queries.
                if let Some(operator) = streaming_operators(&plan).first() {
                    return Err(WeirError::Plan(format!(
                        "{} runs in continuous queries only (CREATE SINK ... AS SELECT ...); an \
                         ad hoc query over a stream reads a snapshot of it, with no watermark",
                        operator.describe()
                    )));
                }
                let plan = self.bind_snapshots(plan, &sources).await?;
                let frame = self.inner.ctx.execute_logical_plan(plan).await?;
                let schema = Arc::clone(frame.schema().inner());
                let mut rows = frame.collect().await?;
                // No rows still have columns: the answer's schema is what a client shows.
                if rows.is_empty() {
                    rows.push(RecordBatch::new_empty(schema));
                }
                Ok(Outcome::Rows(rows))
            }
            Statement::Explain(query) => {
                let plan = plan_streaming_query(&self.inner.ctx.state(), &query).await?;
                Ok(Outcome::Rows(super::show::explain(&catalog, &plan)?))
            }
            Statement::Show(kind) => Ok(Outcome::Rows(super::show::show(&catalog, kind)?)),
            Statement::ShowProgress(name) => Ok(Outcome::Rows(super::show::progress(
                query_named(&catalog, &name)?,
            )?)),
            Statement::ExplainAnalyze(name) => Ok(Outcome::Rows(super::show::explain_analyze(
                query_named(&catalog, &name)?,
            )?)),
            Statement::Describe(name) => Ok(Outcome::Rows(super::show::describe(&catalog, &name)?)),
            Statement::StopQuery(name) => {
                let query = query_named(&catalog, &name)?.clone();
                drop(catalog);
                query.stop().await?;
                Ok(Outcome::Done(format!("stopped query {name}")))
            }
            Statement::Drop {
                kind,
                name,
                if_exists,
            } => self.drop_object(&mut catalog, kind, &name, if_exists),
        }
    }

    async fn create_source(
        &self,
        catalog: &mut Catalog,
        source: SourceDesc,
        or_replace: bool,
        if_not_exists: bool,
    ) -> Result<Outcome> {
        if if_not_exists && catalog.sources.contains_key(&source.name) {
            return Ok(Outcome::Done(format!("source {} exists", source.name)));
        }
        check_name_free(catalog, &source.name, or_replace.then_some("source"))?;
        if let Some(reader) = catalog.queries_reading(&source.name).first() {
            return Err(WeirError::Plan(format!(
                "source '{}' is read by running query '{reader}'; stop it before replacing the source",
                source.name
            )));
        }
        self.inner
            .allowed_paths
            .check("source", &source.name, &source.options)?;
        let options = ConnectorOptions::new(&source.name, source.options.clone());
        let schema = self
            .inner
            .registry
            .create_source(source.declared_schema.clone(), &options)
            .await?;
        if let Some(watermark) = &source.watermark {
            match schema
                .field_with_name(&watermark.column)
                .map(|f| f.data_type())
            {
                Ok(DataType::Timestamp(..)) => {}
                Ok(other) => {
                    return Err(WeirError::Plan(format!(
                        "watermark column '{}' of source '{}' is {other}; it must be a TIMESTAMP",
                        watermark.column, source.name
                    )));
                }
                Err(_) => {
                    return Err(WeirError::Plan(format!(
                        "watermark column '{}' is not a column of source '{}'",
                        watermark.column, source.name
                    )));
                }
            }
        }
        let watermark: Option<String> = source.watermark.as_ref().map(|w| w.column.clone());
        let table = StreamingTable::new(source.name.clone(), Arc::clone(&schema))
            .with_watermark_column(watermark.clone())
            .with_watermark_delay(source.watermark.as_ref().map(|w| w.delay));
        self.register(
            &source.name,
            table.into_provider(),
            watermark.into_iter().collect(),
        )?;
        let name = source.name.clone();
        catalog.sources.insert(
            name.clone(),
            SourceEntry {
                desc: source,
                schema,
            },
        );
        Ok(Outcome::Done(format!("created source {name}")))
    }

    /// Plans an ad hoc (batch) query.
    async fn plan_query(&self, query: &Query) -> Result<LogicalPlan> {
        let statement = datafusion::sql::parser::Statement::Statement(Box::new(
            ast::Statement::Query(Box::new(query.clone())),
        ));
        Ok(self.inner.ctx.state().statement_to_plan(statement).await?)
    }

    /// Binds each streaming source an ad hoc query reads to a bounded snapshot: what the
    /// source holds now from its beginning, trigger by trigger, up to the first trigger that
    /// reaches 1 000 000 rows (an endless generator stops there), so `SELECT * FROM bids
    /// LIMIT 10` peeks into a stream. Nothing is kept: each peek reads from the beginning.
    async fn bind_snapshots(
        &self,
        plan: LogicalPlan,
        sources: &std::collections::BTreeMap<String, SourceEntry>,
    ) -> Result<LogicalPlan> {
        let streams = crate::runtime::streaming_scans(&plan);
        if streams.is_empty() {
            return Ok(plan);
        }
        let scratch = tempfile::Builder::new()
            .prefix("weir-peek-")
            .tempdir()
            .map_err(|e| WeirError::Internal(format!("cannot create a scratch directory: {e}")))?;
        let mut inputs = std::collections::HashMap::new();
        for (index, name) in streams.iter().enumerate() {
            let entry = sources
                .get(name)
                .ok_or_else(|| WeirError::Internal(format!("no source named '{name}'")))?;
            let state = scratch.path().join(index.to_string());
            let context = weir_connectors::SourceContext {
                state: weir_connectors::StoreLocation::parse(&state.to_string_lossy(), true)?,
            };
            let options = ConnectorOptions::new(name, entry.desc.options.clone());
            let source = self
                .inner
                .registry
                .open_source(Arc::clone(&entry.schema), &options, context)
                .await?;
            let mut rows = Vec::new();
            let (mut start, mut count) = (None, 0);
            while count < PEEK_ROWS {
                let Some(end) = source.latest_offset(start.as_ref()).await? else {
                    break;
                };
                if start.as_ref() == Some(&end) {
                    break;
                }
                let batches = source.read(start.as_ref(), &end).await?.batches;
                count += batches.iter().map(|b| b.num_rows()).sum::<usize>();
                rows.extend(batches);
                start = Some(end);
            }
            if count == 0 {
                tracing::warn!(source = %name, "{}", why_empty(name, &entry.desc.options));
            }
            let rows = crate::runtime::SourceRows {
                batches: rows,
                columns: None,
            };
            inputs.insert(name.clone(), rows);
        }
        let partitions = self.inner.ctx.state().config().target_partitions();
        Ok(crate::runtime::bind_inputs(&plan, inputs, partitions)?)
    }

    /// `INSERT INTO <memory source> query`: the query's rows, cast by position to the
    /// source's columns, become visible to readers all at once.
    async fn insert_rows(&self, target: &str, query: &Query) -> Result<Outcome> {
        let stream = self.inner.registry.memory_stream(target).ok_or_else(|| {
            WeirError::Internal(format!("memory source '{target}' has no stream"))
        })?;
        let schema = stream.schema();
        let frame = self
            .inner
            .ctx
            .execute_logical_plan(self.plan_query(query).await?)
            .await?;
        if frame.schema().fields().len() != schema.fields().len() {
            return Err(WeirError::Plan(format!(
                "INSERT INTO {target}: the query gives {} columns but '{target}' has {}",
                frame.schema().fields().len(),
                schema.fields().len()
            )));
        }
        let casts: Vec<Expr> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let column = Column::from(frame.schema().qualified_field(i));
                cast(Expr::Column(column), field.data_type().clone()).alias(field.name())
            })
            .collect();
        let batches = frame.select(casts)?.collect().await?;
        let loose = batches
            .first()
            .map_or_else(|| Arc::clone(&schema), |b| b.schema());
        let rows = concat_batches(&loose, &batches)
            .map_err(|e| WeirError::Plan(format!("INSERT INTO {target}: {e}")))?;
        let count = rows.num_rows();
        stream.append(rows)?;
        Ok(Outcome::Done(format!(
            "inserted {count} rows into {target}"
        )))
    }

    /// Plans `query` as a continuous query into sink `sink_name` and starts it.
    async fn start_query(
        &self,
        catalog: &mut Catalog,
        sink_name: &str,
        query: &Query,
    ) -> Result<StreamingQuery> {
        if catalog
            .queries
            .get(sink_name)
            .is_some_and(StreamingQuery::is_active)
        {
            return Err(WeirError::Conflict(format!(
                "query '{sink_name}' is already running; STOP QUERY {sink_name} first"
            )));
        }
        let entry = catalog
            .sinks
            .get(sink_name)
            .cloned()
            .ok_or_else(|| unknown(catalog, sink_name))?;
        self.launch(catalog, &entry, query, false).await
    }

    /// Starts `select` into a sink that keeps nothing, in append mode (update mode for an
    /// aggregation append mode cannot take), with a scratch checkpoint: the rows are for
    /// [`StreamingQuery::subscribe`].
    pub(super) async fn start_watch(&self, select: &str) -> Result<StreamingQuery> {
        let mut statements = weir_sql::parse_sql(select)?;
        let (1, Some(Statement::Query(query))) = (statements.len(), statements.pop()) else {
            return Err(WeirError::Plan(
                "WATCH takes one SELECT, for example WATCH SELECT * FROM bids".to_string(),
            ));
        };
        let plan = plan_streaming_query(&self.inner.ctx.state(), &query).await?;
        let appends = streaming_operators(&plan.logical_plan)
            .iter()
            .all(|o| o.output_modes().append.is_ok());
        let mode = if appends { "append" } else { "update" };
        let number = self.inner.watches.fetch_add(1, Ordering::Relaxed) + 1;
        let name = format!("watch_{number}");
        let options: weir_sql::catalog::Options =
            [("connector", "blackhole"), ("output_mode", mode)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let connector_options = ConnectorOptions::new(&name, options.clone());
        let entry = SinkEntry {
            desc: weir_sql::SinkDesc { name, options },
            sink: self
                .inner
                .registry
                .create_sink(&connector_options, QUERY_OPTIONS)?,
            options: QueryOptions::from_options(&connector_options)?,
        };
        let mut catalog = self.inner.catalog.lock().await;
        self.launch(&mut catalog, &entry, &query, true).await
    }

    /// Starts `query` into the sink of `entry` and lists it in the catalog's queries; with
    /// `scratch`, its checkpoint is a temporary directory whatever the engine's root.
    async fn launch(
        &self,
        catalog: &mut Catalog,
        entry: &SinkEntry,
        query: &Query,
        scratch: bool,
    ) -> Result<StreamingQuery> {
        let sink_name = entry.desc.name.as_str();
        let plan = plan_streaming_query(&self.inner.ctx.state(), query).await?;
        let operators = streaming_operators(&plan.logical_plan);
        entry
            .options
            .check_output_mode(sink_name, &plan.logical_plan)?;
        // The static tables it joins are read as they are now.
        reload_tables_of(&plan.logical_plan).await;
        for warning in operators.iter().filter_map(|o| o.state_warning()) {
            tracing::warn!(query = sink_name, "{warning}");
        }
        let (checkpoint, scratch) = if scratch {
            scratch_checkpoint()?
        } else {
            self.checkpoint_for(entry)?
        };
        let mut sources = Vec::new();
        for name in &plan.sources {
            let source = catalog
                .sources
                .get(name)
                .ok_or_else(|| unknown(catalog, name))?;
            sources.push(SourcePart {
                name: name.clone(),
                schema: Arc::clone(&source.schema),
                options: ConnectorOptions::new(name, source.desc.options.clone()),
                watermark: source.desc.watermark.as_ref().map(|w| WatermarkSpec {
                    column: w.column.clone(),
                    delay: w.delay,
                }),
            });
        }
        let parts = RunnerParts {
            name: sink_name.to_string(),
            sql: query.to_string(),
            ctx: self.inner.ctx.clone(),
            plan: plan.logical_plan.clone(),
            sources,
            sink: Arc::clone(&entry.sink),
            output_mode: entry.options.output_mode,
            flush_on_end: entry.options.flush_on_end,
            state_partitions: self.inner.state_partitions,
            stateful_operators: operators
                .iter()
                .map(|o| o.operator_id().to_string())
                .collect(),
            state_signature: operators
                .iter()
                .map(|o| OperatorSignature {
                    id: o.operator_id().to_string(),
                    state: o.state_signature(),
                })
                .collect(),
            state_ids: operators.iter().flat_map(|o| o.state_ids()).collect(),
            checkpoint,
            trigger: entry.options.trigger,
            registry: Arc::clone(&self.inner.registry),
            planner: Arc::new(|context| Arc::new(StreamingQueryPlanner::new(context))),
        };
        let status = Arc::new(QueryStatus::new(sink_name, self.inner.listeners.clone()));
        let (stop_tx, stop_rx) = watch::channel(false);
        let (drain_tx, drain_rx) = mpsc::unbounded_channel();
        let runner = QueryRunner::open(parts, Arc::clone(&status), stop_rx, drain_rx).await?;
        if let Some(output) = self.inner.registry.memory_output(sink_name) {
            self.register_memory_output(sink_name, output, &plan.logical_plan)?;
        }
        status.started(&query.to_string());
        let task_status = Arc::clone(&status);
        let query_name = sink_name.to_string();
        let task = tokio::spawn(async move {
            let result = runner.run().await;
            match &result {
                Ok(()) => task_status.set_state(QueryState::Stopped),
                Err(e) => {
                    tracing::error!(query = %query_name, error = %e, "query failed");
                    task_status.set_state(QueryState::Failed(e.to_string()));
                }
            }
            result
        });
        let handle = StreamingQuery::new(
            sink_name.to_string(),
            plan.sources.clone(),
            status,
            stop_tx,
            drain_tx,
            task,
            scratch,
        );
        catalog
            .queries
            .insert(sink_name.to_string(), handle.clone());
        Ok(handle)
    }

    fn checkpoint_for(&self, sink: &SinkEntry) -> Result<(Checkpoint, Option<tempfile::TempDir>)> {
        check_sink_name(&sink.desc.name)?;
        if let Some(location) = &sink.options.checkpoint {
            return Ok((Checkpoint::open(location, &sink.options.storage)?, None));
        }
        if let Some(root) = &self.inner.checkpoint_root {
            let location = root.join(&sink.desc.name);
            return Ok((
                Checkpoint::open(&location.to_string_lossy(), &sink.options.storage)?,
                None,
            ));
        }
        let connector = sink.desc.options.get("connector").map(String::as_str);
        if matches!(connector, Some("parquet" | "kafka" | "postgres")) {
            return Err(WeirError::Plan(format!(
                "sink '{}' needs option 'checkpoint': its exactly-once output depends on it (or \
                 give the engine a checkpoint root, `weir run --checkpoint-root DIR`)",
                sink.desc.name
            )));
        }
        if connector == Some("webhook") {
            return Err(WeirError::Plan(format!(
                "sink '{}' needs option 'checkpoint': its at-least-once delivery re-sends the \
                 batch a restart finds uncommitted, which only a kept checkpoint records (or \
                 give the engine a checkpoint root, `weir run --checkpoint-root DIR`)",
                sink.desc.name
            )));
        }
        scratch_checkpoint()
    }

    fn register_memory_output(
        &self,
        name: &str,
        output: Arc<MemoryOutput>,
        plan: &LogicalPlan,
    ) -> Result<()> {
        let schema = Arc::new(plan.schema().as_arrow().clone());
        self.register(
            name,
            Arc::new(MemoryOutputTable { output, schema }),
            Vec::new(),
        )
    }

    /// Makes `provider` the table `name` for queries and window functions; `watermarked`
    /// are its columns that carry a source's watermarked event time.
    fn register(
        &self,
        name: &str,
        provider: Arc<dyn TableProvider>,
        watermarked: Vec<String>,
    ) -> Result<()> {
        self.inner.ctx.deregister_table(name)?;
        self.inner.ctx.register_table(name, Arc::clone(&provider))?;
        let input = WindowInput {
            provider,
            watermark_columns: watermarked,
        };
        self.inner
            .window_inputs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), input);
        Ok(())
    }

    fn deregister(&self, name: &str) -> Result<()> {
        self.inner.ctx.deregister_table(name)?;
        self.inner
            .window_inputs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        Ok(())
    }

    fn drop_object(
        &self,
        catalog: &mut Catalog,
        kind: ShowKind,
        name: &str,
        if_exists: bool,
    ) -> Result<Outcome> {
        let readers = catalog.queries_reading(name);
        let running = catalog
            .queries
            .get(name)
            .is_some_and(StreamingQuery::is_active);
        let (exists, label) = match kind {
            ShowKind::Sources => (catalog.sources.contains_key(name), "source"),
            ShowKind::Tables => (catalog.tables.contains_key(name), "table"),
            ShowKind::Views => (catalog.views.contains_key(name), "view"),
            ShowKind::Sinks | ShowKind::Queries => (catalog.sinks.contains_key(name), "sink"),
        };
        if !exists {
            return if if_exists {
                Ok(Outcome::Done(format!("no {label} {name}")))
            } else {
                Err(unknown(catalog, name))
            };
        }
        if let Some(reader) = readers.first() {
            return Err(WeirError::Plan(format!(
                "{label} '{name}' is read by running query '{reader}'; stop it first"
            )));
        }
        if running {
            return Err(WeirError::Plan(format!(
                "sink '{name}' has a running query; STOP QUERY {name} first"
            )));
        }
        match kind {
            ShowKind::Sources => {
                catalog.sources.remove(name);
                self.inner.registry.drop_source(name);
            }
            ShowKind::Tables => {
                catalog.tables.remove(name);
            }
            ShowKind::Views => {
                catalog.views.remove(name);
            }
            ShowKind::Sinks | ShowKind::Queries => {
                catalog.sinks.remove(name);
                catalog.queries.remove(name);
                self.inner.registry.drop_sink(name);
                for listener in &self.inner.listeners {
                    listener.on_sink_dropped(name);
                }
            }
        }
        self.deregister(name)?;
        Ok(Outcome::Done(format!("dropped {label} {name}")))
    }
}

/// Why a peek into source `name` found no rows, for the user: what the source is waiting for.
fn why_empty(name: &str, options: &std::collections::BTreeMap<String, String>) -> String {
    let option = |key: &str| options.get(key).map(String::as_str).unwrap_or_default();
    let why = match option("connector") {
        "nexmark" if !option("events_per_second").is_empty() => format!(
            "it produces {} events a second from its CREATE SOURCE, and none of this table's \
             were due yet; peek again in a moment",
            option("events_per_second")
        ),
        "files" => format!(
            "no file in '{}' yet (names starting with '_' or '.' are skipped)",
            option("path")
        ),
        "kafka" => format!(
            "topic '{}' has no records after its starting offsets ('{}')",
            option("topic"),
            options
                .get("starting_offsets")
                .map_or("latest", String::as_str)
        ),
        "memory" => format!("nothing was inserted yet (INSERT INTO {name} VALUES …)"),
        _ => "the source has nothing to read yet".to_string(),
    };
    format!("source '{name}' holds no rows: {why}")
}

/// Fails if `name` is taken, unless it is taken by the kind `replacing` (OR REPLACE).
fn check_name_free(catalog: &Catalog, name: &str, replacing: Option<&str>) -> Result<()> {
    match catalog.kind_of(name) {
        Some(kind) if Some(kind) != replacing => Err(WeirError::Conflict(format!(
            "'{name}' already exists as a {kind}; pick another name{}",
            if kind == "sink" {
                ""
            } else {
                " or use CREATE OR REPLACE"
            }
        ))),
        _ => Ok(()),
    }
}

fn unknown(catalog: &Catalog, name: &str) -> WeirError {
    let mut known: Vec<&String> = catalog
        .sources
        .keys()
        .chain(catalog.tables.keys())
        .chain(catalog.views.keys())
        .chain(catalog.sinks.keys())
        .collect();
    known.sort();
    let list = known
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    WeirError::NotFound(format!(
        "no source, table, view or sink named '{name}' (known: {})",
        if list.is_empty() { "none" } else { &list }
    ))
}

/// A checkpoint in a temporary directory, removed when the query's last handle goes.
fn scratch_checkpoint() -> Result<(Checkpoint, Option<tempfile::TempDir>)> {
    let scratch = tempfile::Builder::new()
        .prefix("weir-checkpoint-")
        .tempdir()
        .map_err(|e| WeirError::Checkpoint(format!("cannot create a scratch checkpoint: {e}")))?;
    Ok((
        Checkpoint::open(&scratch.path().to_string_lossy(), &Default::default())?,
        Some(scratch),
    ))
}

/// The query named `name`, or an error saying how to list them.
fn query_named<'a>(catalog: &'a Catalog, name: &str) -> Result<&'a StreamingQuery> {
    catalog
        .queries
        .get(name)
        .ok_or_else(|| WeirError::Plan(format!("no query named '{name}'; SHOW QUERIES lists them")))
}

/// A sink's name names its checkpoint below the engine's checkpoint root, so it must be one
/// plain path component: a quoted name like `"../x"` or `"/tmp/x"` would put the checkpoint
/// elsewhere.
fn check_sink_name(name: &str) -> Result<()> {
    let plain =
        !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
    if plain {
        return Ok(());
    }
    Err(WeirError::Plan(format!(
        "sink name '{name}' cannot name a checkpoint directory: a sink's name may not be empty, \
         '.' or '..', nor hold '/', '\\' or NUL"
    )))
}
