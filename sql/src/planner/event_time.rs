//! [`watermarked_columns`]: which columns of a plan carry a source's watermarked event time.

use datafusion::logical_expr::{Expr, LogicalPlan};

use super::StreamingTable;
use crate::logical::{StreamingAggregateNode, unaliased};

/// The output columns of `plan` that carry the watermark column of a stream it reads
/// unchanged (as Spark keeps an event-time column's watermark through projections and
/// filters): through projections (plain or renamed column references), filters, aliases
/// (views are inlined as aliased subqueries), sorts, limits and distincts, and both sides of a
/// join (Spark keeps each side's watermark in the join's output; operators above a
/// stream-stream join work with a watermark behind the query's, see `input_watermark_lag_ms`),
/// and through deduplications and Top-Ns, which pass rows on unchanged. A computed column is
/// not watermarked, nor is a column out of a union or an aggregation.
pub fn watermarked_columns(plan: &LogicalPlan) -> Vec<String> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let Ok(provider) = datafusion::datasource::source_as_provider(&scan.source) else {
                return Vec::new();
            };
            provider
                .as_ref()
                .downcast_ref::<StreamingTable>()
                .and_then(StreamingTable::watermark_column)
                .filter(|c| scan.projected_schema.has_column_with_unqualified_name(c))
                .map(|c| vec![c.to_string()])
                .unwrap_or_default()
        }
        LogicalPlan::Projection(projection) => {
            let below = watermarked_columns(&projection.input);
            projection
                .expr
                .iter()
                .zip(projection.schema.fields())
                .filter(|(expr, _)| {
                    matches!(unaliased(expr), Expr::Column(c) if below.contains(&c.name))
                })
                .map(|(_, field)| field.name().clone())
                .collect()
        }
        LogicalPlan::Filter(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Distinct(_) => plan
            .inputs()
            .first()
            .map(|input| watermarked_columns(input))
            .unwrap_or_default(),
        LogicalPlan::Join(_) => from_inputs(plan),
        LogicalPlan::Extension(extension)
            if !extension.node.as_any().is::<StreamingAggregateNode>() =>
        {
            from_inputs(plan)
        }
        _ => Vec::new(),
    }
}

/// The watermarked columns of `plan`'s inputs that are in its output.
fn from_inputs(plan: &LogicalPlan) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for input in plan.inputs() {
        for column in watermarked_columns(input) {
            if !columns.contains(&column) && plan.schema().has_column_with_unqualified_name(&column)
            {
                columns.push(column);
            }
        }
    }
    columns
}
