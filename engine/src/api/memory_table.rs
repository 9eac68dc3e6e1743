//! [`MemoryOutputTable`]: the output of a `memory` sink as a table ad hoc queries can read.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use weir_connectors::memory::MemoryOutput;

/// Reads the committed output of a `memory` sink at the time of the scan.
#[derive(Debug)]
pub(crate) struct MemoryOutputTable {
    pub output: Arc<MemoryOutput>,
    pub schema: SchemaRef,
}

#[async_trait]
impl TableProvider for MemoryOutputTable {
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
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows = self
            .output
            .rows()
            .into_iter()
            .map(|b| b.with_schema(Arc::clone(&self.schema)))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        MemTable::try_new(Arc::clone(&self.schema), vec![rows])?
            .scan(state, projection, filters, limit)
            .await
    }
}
