//! [`DistinctFlagsExec`]: marks, in a streaming aggregation's input, the rows that bring a
//! `count(DISTINCT x)` a value its group has not counted before.
//!
//! For the aggregates of each `x` the operator keeps a [`PairSet`] of the `(group keys..., x)`
//! pairs counted so far (committed batches and the batch in flight), each marked with the
//! aggregates that counted it. Each input row with a non-null `x` that passes the `FILTER` of
//! at least one of them is looked up once; the row is flagged for each aggregate that had not
//! counted its pair, and the pair is added. The group keys of a batch are evaluated and
//! numbered once for all the aggregates ([`GroupNumbers`](super::GroupNumbers)). The
//! aggregation then counts the flagged rows with a plain `count(x) FILTER (WHERE flag)`,
//! whose state is one number per group, so a batch never re-merges a group's earlier values.
//! The flags are appended to the input's columns, as booleans named
//! `__weir_first_<aggregate>`, and then the row's group number ([`GROUP_NUMBER`]), by which
//! the partial aggregation groups.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::buffer::BooleanBuffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::physical_expr::aggregate::AggregateExprBuilder;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::aggregates::{AggregateExec, PhysicalGroupBy};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::udaf::AggregateFunctionExpr;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    SendableRecordBatchStream,
};
use futures::StreamExt;

use super::PairSet;
use crate::runtime::BatchContext;

/// The column [`DistinctFlagsExec`] appends last: each row's group's number in the
/// aggregation's [`GroupNumbers`](super::GroupNumbers). The partial aggregation
/// groups by it alone (one `u64`, not the group's key columns, which were hashed once
/// already to number it) and takes the keys back from the numbers.
pub(crate) const GROUP_NUMBER: &str = "__weir_group";

/// One `count(DISTINCT x)` counted from pairs.
#[derive(Debug, Clone)]
pub(crate) struct DistinctMember {
    /// The aggregate's position among the operator's aggregates.
    pub index: usize,
    /// The aggregate's `FILTER`, if any.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
}

impl DistinctMember {
    /// The name of the flag column this aggregate's rows get.
    pub fn flag_name(&self) -> String {
        format!("__weir_first_{}", self.index)
    }
}

/// The `count(DISTINCT x)` aggregates of one `x`, whose pairs are kept in one [`PairSet`].
#[derive(Debug, Clone)]
pub(crate) struct DistinctCounts {
    /// The aggregates, in the order of the set's members.
    pub members: Vec<DistinctMember>,
    /// `x`, over the aggregation's input.
    pub value: Arc<dyn PhysicalExpr>,
    /// The operator whose state holds the pairs, and the ids of its members' state.
    pub operator: String,
    pub ids: Vec<String>,
    /// The pairs' columns: the group keys, then `x`.
    pub schema: SchemaRef,
}

impl DistinctCounts {
    /// The set holding the pairs counted so far, found in the state of the batch `task` runs.
    pub fn pairs(&self, task: &TaskContext) -> Result<Arc<PairSet>> {
        let batch = BatchContext::of(task)?;
        super::pair_set(&batch.state, &self.operator, &self.ids)
            .map_err(|e| DataFusionError::External(Box::new(e)))
    }

    /// The sets of all of `counts`, in order.
    pub fn all_pairs(counts: &[Self], task: &TaskContext) -> Result<Vec<Arc<PairSet>>> {
        counts.iter().map(|count| count.pairs(task)).collect()
    }
}

/// The aggregates of all of `counts`, in the order of their flag columns.
pub(crate) fn flag_order(counts: &[DistinctCounts]) -> impl Iterator<Item = &DistinctMember> {
    counts.iter().flat_map(|c| &c.members)
}

/// The columns of the pairs of a `count(DISTINCT value)` grouped by `groups`.
pub(crate) fn pair_schema(
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

/// The aggregates and filters of the partial aggregation, and its input schema, when the
/// `count(DISTINCT x)` aggregates at the positions in `distinct` (in classes of one `x`, each
/// with its pair set) are counted from pairs: each becomes
/// `count(x) FILTER (WHERE __weir_first_<position>)` over the input plus the flags
/// `DistinctFlagsExec` appends.
#[allow(clippy::type_complexity)]
pub(crate) fn count_distinct_by_pairs(
    input: &SchemaRef,
    group_by: &PhysicalGroupBy,
    partial: &AggregateExec,
    mut filter_expr: Vec<Option<Arc<dyn PhysicalExpr>>>,
    operator: &str,
    distinct: Vec<(Vec<usize>, Vec<String>)>,
) -> Result<(
    Vec<Arc<AggregateFunctionExpr>>,
    Vec<Option<Arc<dyn PhysicalExpr>>>,
    Vec<DistinctCounts>,
    SchemaRef,
)> {
    let mut aggr_expr = partial.aggr_expr().to_vec();
    let mut counts = Vec::with_capacity(distinct.len());
    for (indices, ids) in distinct {
        let mut value = None;
        for &index in &indices {
            let aggregate = aggr_expr.get(index).ok_or_else(|| {
                DataFusionError::Internal(format!("no aggregate {index} to count distinct"))
            })?;
            match (aggregate.expressions().as_slice(), &value) {
                ([x], None) if aggregate.fun().name() == "count" && aggregate.is_distinct() => {
                    value = Some(Arc::clone(x));
                }
                ([x], Some(first))
                    if aggregate.fun().name() == "count"
                        && aggregate.is_distinct()
                        && x.as_ref() == first.as_ref() => {}
                _ => {
                    return Err(DataFusionError::Internal(format!(
                        "{} is not a count(DISTINCT x) of the value of its class",
                        aggregate.name()
                    )));
                }
            }
        }
        let value = value.ok_or_else(|| {
            DataFusionError::Internal("a class of distinct counts with no count".to_string())
        })?;
        if ids.len() != indices.len() {
            return Err(DataFusionError::Internal(format!(
                "{} distinct counts share a pair set of {}",
                indices.len(),
                ids.len()
            )));
        }
        counts.push(DistinctCounts {
            members: indices
                .iter()
                .map(|&index| DistinctMember {
                    index,
                    filter: filter_expr[index].clone(),
                })
                .collect(),
            schema: pair_schema(group_by.expr(), &value, input)?,
            value,
            operator: operator.to_string(),
            ids,
        });
    }
    let flagged = flagged_schema(input, &counts);
    for (k, member) in flag_order(&counts).enumerate() {
        let original = &aggr_expr[member.index];
        let value = original.expressions().first().cloned().ok_or_else(|| {
            DataFusionError::Internal(format!("{} has no argument", original.name()))
        })?;
        let by_pairs = AggregateExprBuilder::new(count_udaf(), vec![value])
            .schema(Arc::clone(&flagged))
            .alias(original.name())
            .human_display(original.human_display().unwrap_or(original.name()))
            .build()?;
        aggr_expr[member.index] = Arc::new(by_pairs);
        let flag: Arc<dyn PhysicalExpr> =
            Arc::new(Column::new(&member.flag_name(), input.fields().len() + k));
        filter_expr[member.index] = Some(flag);
    }
    Ok((aggr_expr, filter_expr, counts, flagged))
}

/// Appends each [`DistinctMember`]'s flag to the input rows; see the module docs.
#[derive(Debug, Clone)]
pub(crate) struct DistinctFlagsExec {
    input: Arc<dyn ExecutionPlan>,
    groups: Vec<Arc<dyn PhysicalExpr>>,
    counts: Vec<DistinctCounts>,
    properties: Arc<PlanProperties>,
}

impl DistinctFlagsExec {
    pub(crate) fn new(
        input: Arc<dyn ExecutionPlan>,
        groups: Vec<Arc<dyn PhysicalExpr>>,
        counts: Vec<DistinctCounts>,
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

    fn flag(&self, batch: RecordBatch, pairs: &[Arc<PairSet>]) -> Result<RecordBatch> {
        let Some(first) = pairs.first() else {
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
            .numbers()
            .number(&converter, keys, rows)
            .map_err(weir_error)?;
        let mut columns = batch.columns().to_vec();
        for (count, pairs) in self.counts.iter().zip(pairs) {
            let value = count.value.evaluate(&batch)?.into_array(rows)?;
            // Rows with a value that pass each member's filter (a null result does not pass).
            let with_value = match value.logical_nulls() {
                Some(valid) => valid.into_inner(),
                None => BooleanBuffer::new_set(rows),
            };
            let candidates = count
                .members
                .iter()
                .map(|member| {
                    let Some(filter) = &member.filter else {
                        return Ok(with_value.clone());
                    };
                    let passes = filter.evaluate(&batch)?.into_array(rows)?;
                    let passes =
                        passes
                            .as_any()
                            .downcast_ref::<BooleanArray>()
                            .ok_or_else(|| {
                                DataFusionError::Internal(
                                    "an aggregate FILTER is not boolean".into(),
                                )
                            })?;
                    let mut candidate = &with_value & passes.values();
                    if let Some(valid) = passes.nulls() {
                        candidate = &candidate & valid.inner();
                    }
                    Ok(candidate)
                })
                .collect::<Result<Vec<_>>>()?;
            let new = pairs
                .insert(&count.schema, &groups, &value, &candidates)
                .map_err(weir_error)?;
            columns.extend(
                new.into_iter()
                    .map(|n| Arc::new(BooleanArray::from(n)) as ArrayRef),
            );
        }
        columns.push(Arc::new(groups.numbers()));
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

/// The input's schema plus each count's flag, then the row's group number (see
/// [`GROUP_NUMBER`]).
pub(crate) fn flagged_schema(input: &SchemaRef, counts: &[DistinctCounts]) -> SchemaRef {
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(
        flag_order(counts).map(|member| Field::new(member.flag_name(), DataType::Boolean, false)),
    );
    fields.push(Field::new(GROUP_NUMBER, DataType::UInt64, false));
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
                let names: Vec<String> = c.members.iter().map(|m| m.flag_name()).collect();
                format!(
                    "{} = new ({}) with {} = {}",
                    names.join(" / "),
                    pair.join(", "),
                    pair[pair.len() - 1],
                    c.value
                )
            })
            .collect();
        write!(
            f,
            "DistinctFlagsExec: {}, {GROUP_NUMBER} = number of the group",
            flags.join(", ")
        )
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
        let counts = self.counts.iter().flat_map(|c| {
            std::iter::once(&c.value).chain(c.members.iter().flat_map(|m| &m.filter))
        });
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
        let pairs = DistinctCounts::all_pairs(&self.counts, &context)?;
        let rows = self.input.execute(partition, context)?;
        let flagged = rows.map(move |batch| this.flag(batch?, &pairs));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            flagged,
        )))
    }
}
