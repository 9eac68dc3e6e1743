//! `DROP_DUPLICATES_WITHIN_WATERMARK(source, key, ...)` in `FROM`: Spark's
//! `dropDuplicatesWithinWatermark`, as a table function (Spark has it in its DataFrame API
//! only). Each key's first row (as it arrives) is emitted at once; later rows with the key are
//! dropped while the key is in state, that is until the watermark reaches the first row's event
//! time plus the source's watermark delay (Spark's `expiresAt`). It suits duplicates that
//! arrive within the delay of each other (a producer's retries), with state bounded by the
//! watermark, whatever the key. The source must declare a watermark; the key need not hold its
//! event time.

use std::sync::Arc;

use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::Column;
use datafusion::datasource::provider_as_source;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, LogicalPlanBuilder};

use super::StreamingTable;
use crate::logical::{DedupKind, PENDING_OPERATOR_ID, StreamingDedupNode};
use crate::window::{WindowInputs, register_table_function};

const USAGE: &str = "DROP_DUPLICATES_WITHIN_WATERMARK(source, key_column [, key_column ...])";

/// The table function; see the module docs.
#[derive(Debug)]
struct DropDuplicatesWithinWatermark {
    inputs: WindowInputs,
}

/// Registers `DROP_DUPLICATES_WITHIN_WATERMARK` on `ctx`, over the relations the window
/// functions read (`inputs`, from [`crate::window::register`]).
pub fn register_dedup_function(
    ctx: &datafusion::execution::context::SessionContext,
    inputs: &WindowInputs,
) {
    let function = Arc::new(DropDuplicatesWithinWatermark {
        inputs: Arc::clone(inputs),
    });
    register_table_function(ctx, "drop_duplicates_within_watermark", function);
}

fn plan_error<T>(message: String) -> Result<T> {
    Err(DataFusionError::Plan(format!("{USAGE}: {message}")))
}

impl TableFunctionImpl for DropDuplicatesWithinWatermark {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let [relation, keys @ ..] = args.exprs() else {
            return plan_error("it takes a source and at least one key column".to_string());
        };
        if keys.is_empty() {
            return plan_error("it takes a source and at least one key column".to_string());
        }
        let Expr::Column(relation) = relation else {
            return plan_error(format!(
                "the first argument must name a source, found {relation}"
            ));
        };
        let relation = relation.name.clone();
        let input = self
            .inputs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&relation)
            .cloned()
            .ok_or_else(|| {
                DataFusionError::Plan(format!("{USAGE}: no source named '{relation}'"))
            })?;
        let table = input.provider.as_ref().downcast_ref::<StreamingTable>();
        let (Some(time), Some(delay)) = (
            table.and_then(StreamingTable::watermark_column),
            table.and_then(StreamingTable::watermark_delay),
        ) else {
            return plan_error(format!(
                "'{relation}' must be a source declaring a watermark (WATERMARK FOR ts AS ts - \
                 INTERVAL ...): its delay is how long a key's first row is kept"
            ));
        };
        let scan = LogicalPlanBuilder::scan(
            relation.as_str(),
            provider_as_source(Arc::clone(&input.provider)),
            None,
        )?
        .build()?;
        let key_columns = keys
            .iter()
            .map(|key| {
                let Expr::Column(column) = key else {
                    return plan_error(format!("key columns must be column names, found {key}"));
                };
                scan.schema()
                    .qualified_field_with_unqualified_name(&column.name)
                    .map(|(qualifier, field)| Column::new(qualifier.cloned(), field.name()))
                    .map_err(|_| {
                        DataFusionError::Plan(format!(
                            "{USAGE}: '{relation}' has no column '{}'",
                            column.name
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let time = Column::new(Some(relation.as_str()), time);
        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        let node = StreamingDedupNode {
            schema: scan.schema().clone(),
            input: scan,
            kind: DedupKind::WithinWatermark { delay_ms },
            keys: key_columns,
            time: Some(time),
            evict_by_key: false,
            operator_id: PENDING_OPERATOR_ID.to_string(),
        };
        let plan = LogicalPlan::Extension(Extension {
            node: Arc::new(node),
        });
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}
