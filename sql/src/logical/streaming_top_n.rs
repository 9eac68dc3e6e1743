//! [`StreamingTopNNode`]: `ROW_NUMBER() OVER (PARTITION BY … ORDER BY …) <= N` over a stream,
//! a ranking Spark does not run on streams, so Weir follows Flink's Top-N:
//!
//! - **Window Top-N**: when the partition holds an event time the watermark closes (a window's
//!   `window_end` over a watermarked column, or that column itself), a partition's ranking is
//!   final once the watermark passes it: its first N rows are emitted then, once, with their
//!   row numbers, and the partition leaves state; rows for a partition the previous batch's
//!   watermark had closed are late. `append` mode (Flink's window Top-N).
//! - **Top-N over the whole stream**: otherwise the ranking changes as rows arrive; only the
//!   first N rows of each partition are kept (a row that falls out can never come back, as
//!   the input only grows). `complete` emits every partition's ranking each batch, `update`
//!   the whole ranking of each partition a batch changed; `append` is refused.
//!
//! Rows that tie on the ORDER BY columns rank by their other values (deterministic, so a re-run
//! batch ranks them as its first attempt did). The input must be
//! append-only: over an aggregation only a window Top-N of an append-mode windowed
//! aggregation runs (each window's groups arrive once, when it closes).

use std::cmp::Ordering;
use std::fmt;

use datafusion::common::{Column, DFSchemaRef, Result};
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};

use super::operator::{OutputModes, StreamingOperator};

/// One ORDER BY column of the ranking.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct RankOrder {
    /// The column.
    pub column: Column,
    /// Ascending.
    pub asc: bool,
    /// Nulls first.
    pub nulls_first: bool,
}

/// A Top-N ranking of a stream; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamingTopNNode {
    /// The rows ranked.
    pub input: LogicalPlan,
    /// PARTITION BY columns.
    pub partition_by: Vec<Column>,
    /// ORDER BY columns.
    pub order_by: Vec<RankOrder>,
    /// N: the rows kept per partition.
    pub limit: u64,
    /// The partition column the watermark closes (window Top-N), if any.
    pub closed_by: Option<Column>,
    /// Whether the input is an aggregation's output.
    pub over_aggregation: bool,
    /// The window's schema: the input's columns, then the row number.
    pub schema: DFSchemaRef,
    /// Stable id, `top-n-<n>`.
    pub operator_id: String,
}

impl StreamingOperator for StreamingTopNNode {
    fn operator_id(&self) -> &str {
        &self.operator_id
    }

    fn state_ids(&self) -> Vec<String> {
        vec![self.operator_id.clone()]
    }

    fn state_signature(&self) -> Vec<String> {
        let mut signature = vec![format!("top-n: {}", self.limit)];
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
        let windowed = self.closed_by.is_some();
        let append = if windowed {
            Ok(())
        } else {
            let first_row = if self.limit == 1 {
                "; to keep each key's first row instead, ORDER BY the source's watermarked \
                 event-time column, ascending"
            } else {
                ""
            };
            Err(format!(
                "a Top-N over the whole stream ({}) changes as rows arrive, so output_mode \
                 'append' cannot emit it; use 'update' or 'complete', or rank within an \
                 event-time window (PARTITION BY window_start, window_end) for 'append'\
                 {first_row}",
                self.operator_id
            ))
        };
        let over_updates = |mode: &str| {
            Err(format!(
                "a Top-N over an aggregation runs in output_mode 'append' only, ranking each \
                 window's groups once the window closes; in '{mode}' mode the aggregation's \
                 rows change ({})",
                self.operator_id
            ))
        };
        let window_only = |mode: &str| {
            Err(format!(
                "a window Top-N emits each window's ranking once, when the watermark closes \
                 it: use output_mode 'append', not '{mode}' ({})",
                self.operator_id
            ))
        };
        let (update, complete) = match (windowed, self.over_aggregation) {
            (_, true) => (over_updates("update"), over_updates("complete")),
            (true, false) => (window_only("update"), window_only("complete")),
            (false, false) => (Ok(()), Ok(())),
        };
        let summary = if windowed {
            "append (each window's first rows once, when the watermark closes it)"
        } else {
            "update (the ranking of each partition a batch changed), complete (every ranking)"
        };
        OutputModes {
            append,
            update,
            complete,
            summary: summary.to_string(),
        }
    }

    fn state_warning(&self) -> Option<String> {
        self.closed_by.is_none().then(|| {
            format!(
                "{} keeps the first {} rows of every partition it has seen, forever (no \
                 event-time window in the partition), so its state grows with the partitions",
                self.operator_id, self.limit
            )
        })
    }

    fn describe(&self) -> String {
        let order: Vec<String> = self
            .order_by
            .iter()
            .map(|o| {
                format!(
                    "{} {}",
                    o.column.flat_name(),
                    if o.asc { "ASC" } else { "DESC" }
                )
            })
            .collect();
        let partition: Vec<String> = self.partition_by.iter().map(Column::flat_name).collect();
        let kept = match &self.closed_by {
            Some(column) => format!("until {} <= watermark", column.flat_name()),
            None => "forever (no event-time window in the partition)".to_string(),
        };
        format!(
            "{}: first {} rows by [{}] per [{}]; keeps them {kept}",
            self.operator_id,
            self.limit,
            order.join(", "),
            partition.join(", ")
        )
    }
}

impl PartialOrd for StreamingTopNNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (&self.input, &self.limit, &self.operator_id).partial_cmp(&(
            &other.input,
            &other.limit,
            &other.operator_id,
        ))
    }
}

impl UserDefinedLogicalNodeCore for StreamingTopNNode {
    fn name(&self) -> &str {
        "StreamingTopN"
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
        write!(f, "StreamingTopN: {}", self.describe())
    }

    /// Every input column: all are output.
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
