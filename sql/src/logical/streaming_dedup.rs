//! [`StreamingDedupNode`]: deduplication of a stream, in two forms.
//!
//! - **`SELECT DISTINCT`** is Spark's `dropDuplicates` over all the columns
//!   (`StreamingDeduplicateExec`): a row is emitted the first time it is seen and its key kept
//!   in state; when the input carries a watermarked event-time column, rows at or before the
//!   previous batch's watermark are late and dropped; when that column is among the columns
//!   (so part of the key), a key leaves state once its time is at or before the watermark (no
//!   row to come can carry it), and otherwise keys are kept forever.
//! - **Keep the first row per key**, `ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts) = 1` (as
//!   Flink and RisingWave recognise it), where `ts` is the watermarked event time, ascending:
//!   the row of least `ts` per key, as a batch query gives it. A key's first row is only
//!   certain once the watermark reaches its time (a row to come may be earlier until then), so
//!   it is emitted then, once, with `rn = 1`; later rows of the key are dropped, and the key is
//!   kept in state forever (unless the key holds `ts` itself). Spark's `dropDuplicates`
//!   instead keeps whichever row arrives first, which a batch query cannot reproduce.
//!
//! - **`DROP_DUPLICATES_WITHIN_WATERMARK(source, key, ...)`** is Spark's
//!   `dropDuplicatesWithinWatermark` (`StreamingDeduplicateWithinWatermarkExec`): a key's
//!   first row as it arrives is emitted; the key stays in state until the watermark reaches
//!   that row's event time plus the source's watermark delay (`expiresAt`), late rows dropped.
//!
//! All emit each row once and never change it: `append` and `update` modes.

use std::cmp::Ordering;
use std::fmt;

use datafusion::common::{Column, DFSchemaRef, Result};
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};

use super::operator::{OutputModes, StreamingOperator};
use crate::planner::watermarked_columns;

/// Which rows of a key are kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub enum DedupKind {
    /// `SELECT DISTINCT`: each distinct row once, as first seen.
    Distinct,
    /// The row of least event time per key, with its row number (1) as the last column.
    KeepFirst,
    /// Spark's `dropDuplicatesWithinWatermark`: a key's first row as it arrives; the key is
    /// kept until the watermark reaches that row's event time plus `delay_ms`.
    WithinWatermark {
        /// The source's watermark delay, in milliseconds.
        delay_ms: i64,
    },
}

/// The operator id of a deduplication planned before ids are given out (by the table
/// function `DROP_DUPLICATES_WITHIN_WATERMARK`): incrementalization numbers it.
pub const PENDING_OPERATOR_ID: &str = "dedup-pending";

/// Deduplication of a stream; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamingDedupNode {
    /// The rows.
    pub input: LogicalPlan,
    /// Distinct rows or the first row per key.
    pub kind: DedupKind,
    /// The key columns (all of them for `DISTINCT`).
    pub keys: Vec<Column>,
    /// The input's watermarked event-time column: late rows are dropped by it; for keep-first
    /// it orders a key's rows.
    pub time: Option<Column>,
    /// Whether `time` is a key: keys leave state once it is at or before the watermark.
    pub evict_by_key: bool,
    /// The output schema: the input's, plus the row number for keep-first.
    pub schema: DFSchemaRef,
    /// Stable id, `dedup-<n>`.
    pub operator_id: String,
}

impl StreamingDedupNode {
    /// `SELECT DISTINCT` over `input`.
    pub fn distinct(input: LogicalPlan, operator_id: String) -> Self {
        let keys: Vec<Column> = input.schema().columns();
        let time = watermarked_column(&input);
        let evict_by_key = time.as_ref().is_some_and(|t| keys.contains(t));
        Self {
            schema: input.schema().clone(),
            input,
            kind: DedupKind::Distinct,
            keys,
            time,
            evict_by_key,
            operator_id,
        }
    }

    /// The first row per `keys` of `input` by its watermarked event time; `schema` is the
    /// window's (the input's columns, then the row number). Refuses (with the reason) an order
    /// that is not that time, ascending.
    pub fn keep_first(
        input: LogicalPlan,
        keys: Vec<Column>,
        order: &Column,
        schema: DFSchemaRef,
        operator_id: String,
    ) -> std::result::Result<Self, String> {
        let time = watermarked_column(&input);
        if time.as_ref() != Some(order) {
            return Err(format!(
                "ROW_NUMBER() ... = 1 over a stream keeps each key's first row by event time, so \
                 it must be ordered by the source's watermarked event-time column, ascending \
                 (ORDER BY {} here is not one); declare WATERMARK FOR the column, or order by \
                 the one that has it",
                order.flat_name()
            ));
        }
        let evict_by_key = keys.contains(order);
        Ok(Self {
            input,
            kind: DedupKind::KeepFirst,
            keys,
            time,
            evict_by_key,
            schema,
            operator_id,
        })
    }
}

/// The first watermarked event-time column of `plan`'s output, qualified.
pub(crate) fn watermarked_column(plan: &LogicalPlan) -> Option<Column> {
    let name = watermarked_columns(plan).into_iter().next()?;
    let (qualifier, field) = plan
        .schema()
        .qualified_field_with_unqualified_name(&name)
        .ok()?;
    Some(Column::new(qualifier.cloned(), field.name()))
}

impl StreamingOperator for StreamingDedupNode {
    fn operator_id(&self) -> &str {
        &self.operator_id
    }

    fn state_ids(&self) -> Vec<String> {
        vec![self.operator_id.clone()]
    }

    fn state_signature(&self) -> Vec<String> {
        let mut signature = vec![format!("dedup: {:?}", self.kind)];
        signature.extend(
            self.input
                .schema()
                .fields()
                .iter()
                .map(|f| format!("{}: {}", f.name(), f.data_type())),
        );
        signature
    }

    fn output_modes(&self) -> OutputModes {
        OutputModes {
            append: Ok(()),
            update: Ok(()),
            complete: Err(
                "output_mode 'complete' re-emits a whole result, which deduplication does not \
                 keep (only its keys); use 'append'"
                    .to_string(),
            ),
            summary: "append and update (each row once, never changed)".to_string(),
        }
    }

    fn state_warning(&self) -> Option<String> {
        let bounded = self.evict_by_key || matches!(self.kind, DedupKind::WithinWatermark { .. });
        (!bounded).then(|| {
            format!(
                "{} keeps every key it has seen in state forever (the key holds no event time \
                 with a watermark), so its state grows with the number of distinct keys",
                self.operator_id
            )
        })
    }

    fn describe(&self) -> String {
        let what = match self.kind {
            DedupKind::Distinct => "distinct rows".to_string(),
            DedupKind::WithinWatermark { delay_ms } => {
                format!("first row per key within the watermark ({delay_ms} ms)")
            }
            DedupKind::KeepFirst => format!(
                "first row by {} per key",
                self.time
                    .as_ref()
                    .map(Column::flat_name)
                    .unwrap_or_default()
            ),
        };
        let keys: Vec<String> = self.keys.iter().map(Column::flat_name).collect();
        let kept = match (&self.time, self.evict_by_key, &self.kind) {
            (Some(time), _, DedupKind::WithinWatermark { delay_ms }) => {
                format!("until {} <= watermark - {delay_ms} ms", time.flat_name())
            }
            (Some(time), true, _) => format!("until {} <= watermark", time.flat_name()),
            _ => "forever (no event time in the key: state grows with the keys)".to_string(),
        };
        format!(
            "{}: {what} on [{}]; keeps keys {kept}",
            self.operator_id,
            keys.join(", ")
        )
    }
}

impl PartialOrd for StreamingDedupNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (&self.input, &self.kind, &self.operator_id).partial_cmp(&(
            &other.input,
            &other.kind,
            &other.operator_id,
        ))
    }
}

impl UserDefinedLogicalNodeCore for StreamingDedupNode {
    fn name(&self) -> &str {
        "StreamingDedup"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "StreamingDedup: {}", self.describe())
    }

    /// Every input column: all are output (and keys, for `DISTINCT`).
    fn necessary_children_exprs(&self, _output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        Some(vec![(0..self.input.schema().fields().len()).collect()])
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        let input = inputs.swap_remove(0);
        Ok(Self {
            input,
            ..self.clone()
        })
    }
}
