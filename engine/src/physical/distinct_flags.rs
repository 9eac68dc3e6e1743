//! [`DistinctFlagsExec`]: marks, in a streaming aggregation's input, the rows that bring a
//! `count(DISTINCT x)` a value its group has not counted before.
//!
//! For each such aggregate the operator keeps a [`PairSet`] of the `(group keys..., x)` pairs
//! counted so far (committed batches and the batch in flight). Each input row that passes the
//! aggregate's `FILTER` and has a non-null `x` is looked up; the row is flagged when its pair
//! is new, and the pair is added. The group keys of a batch are evaluated and numbered once
//! for all the aggregates ([`GroupNumbers`](crate::state::GroupNumbers)). The aggregation
//! then counts the flagged rows with a plain `count(x) FILTER (WHERE flag)`, whose state is
//! one number per group, so a batch never re-merges a group's earlier values. The flags are
//! appended to the input's columns, as booleans named `__weir_first_<aggregate>`.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::buffer::BooleanBuffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    SendableRecordBatchStream,
};
use futures::StreamExt;

use crate::state::PairSet;

/// One `count(DISTINCT x)` whose pairs are kept in a [`PairSet`].
#[derive(Debug, Clone)]
pub(super) struct DistinctCount {
    /// The aggregate's position among the operator's aggregates.
    pub index: usize,
    /// `x`, over the aggregation's input.
    pub value: Arc<dyn PhysicalExpr>,
    /// The aggregate's `FILTER`, if any.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// The pairs counted so far.
    pub pairs: Arc<PairSet>,
    /// The pairs' columns: the group keys, then `x`.
    pub schema: SchemaRef,
}

impl DistinctCount {
    /// The name of the flag column this aggregate's rows get.
    pub fn flag_name(&self) -> String {
        format!("__weir_first_{}", self.index)
    }
}

/// The columns of the pairs of a `count(DISTINCT value)` grouped by `groups`.
pub(super) fn pair_schema(
    groups: &[(Arc<dyn PhysicalExpr>, String)],
    value: &Arc<dyn PhysicalExpr>,
    input: &Schema,
) -> Result<SchemaRef> {
    let mut fields = groups
        .iter()
        .map(|(expr, name)| Ok(Field::new(name, expr.data_type(input)?, true)))
        .collect::<Result<Vec<_>>>()?;
    fields.push(Field::new("__weir_value", value.data_type(input)?, true));
    Ok(Arc::new(Schema::new(fields)))
}

/// Appends each [`DistinctCount`]'s flag to the input rows; see the module docs.
#[derive(Debug, Clone)]
pub(super) struct DistinctFlagsExec {
    input: Arc<dyn ExecutionPlan>,
    groups: Vec<Arc<dyn PhysicalExpr>>,
    counts: Vec<DistinctCount>,
    properties: Arc<PlanProperties>,
}

impl DistinctFlagsExec {
    pub(super) fn new(
        input: Arc<dyn ExecutionPlan>,
        groups: Vec<Arc<dyn PhysicalExpr>>,
        counts: Vec<DistinctCount>,
    ) -> Self {
        let schema = flagged_schema(&input.schema(), &counts);
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            input.output_partitioning().clone(),
            input.pipeline_behavior(),
            input.boundedness(),
        ));
        Self {
            input,
            groups,
            counts,
            properties,
        }
    }

    fn flag(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let Some(first) = self.counts.first() else {
            return Ok(batch);
        };
        let rows = batch.num_rows();
        let keys = self
            .groups
            .iter()
            .map(|expr| expr.evaluate(&batch)?.into_array(rows))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let weir_error = |e| DataFusionError::External(Box::new(e));
        let converter = self.group_converter(&batch)?;
        let groups = first
            .pairs
            .numbers()
            .number(&converter, keys, rows)
            .map_err(weir_error)?;
        let mut columns = batch.columns().to_vec();
        for count in &self.counts {
            let value = count.value.evaluate(&batch)?.into_array(rows)?;
            let passes = match &count.filter {
                Some(filter) => Some(filter.evaluate(&batch)?.into_array(rows)?),
                None => None,
            };
            let passes = passes
                .as_ref()
                .map(|p| {
                    p.as_any().downcast_ref::<BooleanArray>().ok_or_else(|| {
                        DataFusionError::Internal("an aggregate FILTER is not boolean".into())
                    })
                })
                .transpose()?;
            // Rows with a value that pass the filter (a null filter result does not pass).
            let mut candidate = match value.logical_nulls() {
                Some(valid) => valid.into_inner(),
                None => BooleanBuffer::new_set(rows),
            };
            if let Some(passes) = passes {
                candidate = &candidate & passes.values();
                if let Some(valid) = passes.nulls() {
                    candidate = &candidate & valid.inner();
                }
            }
            let new = count
                .pairs
                .insert(&count.schema, &groups, &value, &candidate)
                .map_err(weir_error)?;
            columns.push(Arc::new(BooleanArray::from(new)));
        }
        Ok(RecordBatch::try_new(self.schema(), columns)?)
    }

    /// A row converter for the group keys, of the types they have over `batch`.
    fn group_converter(&self, batch: &RecordBatch) -> Result<RowConverter> {
        let fields = self
            .groups
            .iter()
            .map(|expr| Ok(SortField::new(expr.data_type(&batch.schema())?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(RowConverter::new(fields)?)
    }
}

/// The input's schema plus each count's flag.
pub(super) fn flagged_schema(input: &SchemaRef, counts: &[DistinctCount]) -> SchemaRef {
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(
        counts
            .iter()
            .map(|c| Field::new(c.flag_name(), DataType::Boolean, false)),
    );
    Arc::new(Schema::new_with_metadata(fields, input.metadata().clone()))
}

impl DisplayAs for DistinctFlagsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let flags: Vec<String> = self
            .counts
            .iter()
            .map(|c| {
                let pair: Vec<String> =
                    c.schema.fields().iter().map(|f| f.name().clone()).collect();
                format!(
                    "{} = new ({}) with {} = {}",
                    c.flag_name(),
                    pair.join(", "),
                    pair[pair.len() - 1],
                    c.value
                )
            })
            .collect();
        write!(f, "DistinctFlagsExec: {}", flags.join(", "))
    }
}

impl ExecutionPlan for DistinctFlagsExec {
    fn name(&self) -> &str {
        "DistinctFlagsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let counts = self
            .counts
            .iter()
            .flat_map(|c| std::iter::once(&c.value).chain(&c.filter));
        for expr in self.groups.iter().chain(counts) {
            if f(expr)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self::new(
            children.swap_remove(0),
            self.groups.clone(),
            self.counts.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let this = self.clone();
        let rows = self.input.execute(partition, context)?;
        let flagged = rows.map(move |batch| this.flag(batch?));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            flagged,
        )))
    }
}
