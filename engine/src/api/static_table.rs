//! [`StaticTable`]: a `CREATE TABLE` (files or PostgreSQL) as DataFusion sees it: the rows as
//! last read, read again when a continuous query that joins it starts ([`StaticTable::reload`])
//! and, with `refresh = '<interval>'`, whenever a batch plans and the rows are older than
//! that. A read that fails keeps the rows read before (with a warning naming the table), so a
//! database that is briefly down does not stop the queries joining it.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use weir_connectors::options::ConnectorOptions;
use weir_connectors::registry::ConnectorRegistry;

use crate::error::{Result, WeirError};

/// The rows of a static table and when they were read.
struct Contents {
    batches: Vec<RecordBatch>,
    read_at: Instant,
}

/// A static table; see the module docs.
pub(crate) struct StaticTable {
    name: String,
    schema: SchemaRef,
    declared: Option<SchemaRef>,
    options: ConnectorOptions,
    refresh: Option<Duration>,
    registry: Arc<ConnectorRegistry>,
    contents: RwLock<Contents>,
}

impl fmt::Debug for StaticTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticTable")
            .field("name", &self.name)
            .field("refresh", &self.refresh)
            .finish()
    }
}

impl StaticTable {
    /// Reads table `name` from `options` for the first time.
    pub(crate) async fn create(
        name: &str,
        declared: Option<SchemaRef>,
        options: ConnectorOptions,
        registry: Arc<ConnectorRegistry>,
    ) -> Result<Self> {
        let refresh = options.duration("refresh")?;
        let (schema, batches) = registry.create_table(declared.clone(), &options).await?;
        Ok(Self {
            name: name.to_string(),
            schema,
            declared,
            options,
            refresh,
            registry,
            contents: RwLock::new(Contents {
                batches,
                read_at: Instant::now(),
            }),
        })
    }

    /// The rows held now.
    pub(crate) fn rows(&self) -> u64 {
        let contents = self.contents.read().unwrap_or_else(|p| p.into_inner());
        contents.batches.iter().map(|b| b.num_rows() as u64).sum()
    }

    /// Reads the table again; on failure keeps the rows it had and says so.
    pub(crate) async fn reload(&self) {
        let read = self
            .registry
            .create_table(self.declared.clone(), &self.options)
            .await;
        let result = read.map_err(WeirError::from).and_then(|(schema, batches)| {
            if schema.fields() != self.schema.fields() {
                return Err(WeirError::Plan(format!(
                    "its columns changed to ({}); create the table again to take them",
                    schema
                        .fields()
                        .iter()
                        .map(|f| format!("{} {}", f.name(), f.data_type()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            Ok(batches)
        });
        let mut contents = self.contents.write().unwrap_or_else(|p| p.into_inner());
        contents.read_at = Instant::now();
        match result {
            Ok(batches) => contents.batches = batches,
            Err(e) => tracing::warn!(
                table = %self.name,
                "reading table {} again failed, so its earlier rows stay in use: {e}",
                self.name
            ),
        }
    }

    /// Whether the rows are older than the refresh interval.
    fn stale(&self) -> bool {
        let contents = self.contents.read().unwrap_or_else(|p| p.into_inner());
        self.refresh
            .is_some_and(|refresh| contents.read_at.elapsed() >= refresh)
    }
}

/// Reads again every static table `plan` scans (a continuous query starting).
pub(crate) async fn reload_tables_of(plan: &LogicalPlan) {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut tables: Vec<Arc<dyn TableProvider>> = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = datafusion::datasource::source_as_provider(&scan.source)
            && provider.as_ref().downcast_ref::<StaticTable>().is_some()
        {
            tables.push(provider);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    for provider in tables {
        if let Some(table) = provider.as_ref().downcast_ref::<StaticTable>() {
            table.reload().await;
        }
    }
}

#[async_trait]
impl TableProvider for StaticTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if self.stale() {
            self.reload().await;
        }
        let batches = self
            .contents
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .batches
            .clone();
        MemTable::try_new(Arc::clone(&self.schema), vec![batches])?
            .scan(state, projection, filters, limit)
            .await
    }
}
