//! [`StreamingTable`]: how a streaming source looks to DataFusion's planner.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

/// A streaming source at planning time: its name and schema, no data. The engine finds these
/// scans in a planned query and binds each micro-batch's rows to them; scanning one directly
/// (an ad hoc query over a stream) is refused with a message that says what to do instead.
#[derive(Debug)]
pub struct StreamingTable {
    name: String,
    schema: SchemaRef,
    watermark_column: Option<String>,
    watermark_delay: Option<std::time::Duration>,
}

impl StreamingTable {
    /// A streaming table named `name` with `schema`, without a watermark.
    pub fn new(name: impl Into<String>, schema: SchemaRef) -> Self {
        Self {
            name: name.into(),
            schema,
            watermark_column: None,
            watermark_delay: None,
        }
    }

    /// The table with a watermark declared on its event-time column `column`.
    pub fn with_watermark_column(mut self, column: Option<String>) -> Self {
        self.watermark_column = column;
        self
    }

    /// The table with its watermark's delay (how far behind the latest event time it is).
    pub fn with_watermark_delay(mut self, delay: Option<std::time::Duration>) -> Self {
        self.watermark_delay = delay;
        self
    }

    /// The watermark's delay, if the source declares a watermark.
    pub fn watermark_delay(&self) -> Option<std::time::Duration> {
        self.watermark_delay
    }

    /// The source name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The event-time column the source declares a watermark on, if any.
    pub fn watermark_column(&self) -> Option<&str> {
        self.watermark_column.as_deref()
    }

    /// Wraps the table for registration in a DataFusion catalog.
    pub fn into_provider(self) -> Arc<dyn TableProvider> {
        Arc::new(self)
    }
}

#[async_trait]
impl TableProvider for StreamingTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Plan(format!(
            "'{}' is a streaming source and cannot be read by an ad hoc query; read it with a \
             continuous query: CREATE SINK <name> WITH (connector = 'console') AS SELECT ... \
             FROM {}",
            self.name, self.name
        )))
    }
}
