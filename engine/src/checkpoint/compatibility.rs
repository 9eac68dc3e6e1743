//! What a changed query may keep resuming its checkpoint with, checked when it starts,
//! before anything in the checkpoint or the sink is touched.
//!
//! The rules follow Spark's ("Recovery Semantics after Changes in a Streaming Query"):
//! - the input sources must be the same ones, in the same order;
//! - stateful operations may not change: the same operators, each keeping the same keys,
//!   aggregates and state layout; a filter or projection before them may change. Spark
//!   compares the state schema's types and ignores the names; Weir compares the keys' and
//!   aggregates' names too (`sum(s.id)`), so renaming a key or the table alias an
//!   aggregate reads is refused as well;
//! - a stateless part (filter, projection) may change freely while the output columns stay
//!   the same; when they change, the sink decides ([`Sink::check_schema_change`]): Parquet
//!   and memory sinks refuse (one directory or table holds one schema), record-at-a-time
//!   sinks (Kafka, console) take it, and PostgreSQL checks its table has the columns.

use std::collections::BTreeSet;

use arrow::datatypes::SchemaRef;
use weir_connectors::Sink;

use super::{OperatorSignature, QueryMetadata};
use crate::error::{Result, WeirError};

/// Refuses resuming the checkpoint `place` (recorded as `existing`) with the query `new`
/// writing `schema` to `sink`, when the change is one the checkpoint or the sink cannot
/// carry; the message names what changed and what to do.
pub(crate) fn check_resume(
    place: &str,
    existing: &QueryMetadata,
    new: &QueryMetadata,
    sink: &dyn Sink,
    schema: &SchemaRef,
) -> Result<()> {
    let refuse = |why: String| {
        WeirError::Checkpoint(format!("query '{}' cannot resume {place}: {why}", new.name))
    };
    if existing.sources != new.sources {
        return Err(refuse(format!(
            "it was created for a query reading {:?}, and this one reads {:?}; use a new \
             checkpoint for a query with other inputs",
            existing.sources, new.sources
        )));
    }
    if let (Some(before), Some(now)) = (&existing.stateful_operators, &new.stateful_operators)
        && let Some(change) = operator_change(before, now)
    {
        return Err(refuse(format!(
            "{change}; state cannot be carried across a changed aggregation or window (as \
             in Spark): start the changed query under a new sink name, or with a new \
             checkpoint and output location"
        )));
    }
    if existing.output_columns != new.output_columns {
        sink.check_schema_change(&existing.output_columns, schema)
            .map_err(|e| refuse(e.to_string()))?;
    }
    Ok(())
}

/// What differs between the operators a checkpoint keeps state for and a query's.
fn operator_change(before: &[OperatorSignature], now: &[OperatorSignature]) -> Option<String> {
    let ids = |ops: &[OperatorSignature]| ops.iter().map(|o| o.id.clone()).collect::<Vec<_>>();
    if ids(before) != ids(now) {
        let named = |ops: &[OperatorSignature]| match ids(ops) {
            ids if ids.is_empty() => "no stateful operator".to_string(),
            ids => format!("the stateful operators [{}]", ids.join(", ")),
        };
        return Some(format!(
            "its checkpoint keeps state for {}, and the query now has {}",
            named(before),
            named(now)
        ));
    }
    let (old, new) = before
        .iter()
        .zip(now)
        .find(|(old, new)| old.state != new.state)?;
    let (was, is): (BTreeSet<&String>, BTreeSet<&String>) =
        (old.state.iter().collect(), new.state.iter().collect());
    let listed = |lines: Vec<&&String>| {
        lines
            .into_iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let gone = listed(was.difference(&is).collect());
    let added = listed(is.difference(&was).collect());
    Some(match (gone.is_empty(), added.is_empty()) {
        (false, false) => format!("operator {} kept [{gone}] and now keeps [{added}]", old.id),
        (false, true) => format!("operator {} no longer keeps [{gone}]", old.id),
        (true, false) => format!("operator {} now also keeps [{added}]", old.id),
        (true, true) => format!("operator {} keeps its state in another order", old.id),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn op(id: &str, state: &[&str]) -> OperatorSignature {
        OperatorSignature {
            id: id.to_string(),
            state: state.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_changed_operator_is_named_with_what_it_kept_and_keeps() {
        let before = [op(
            "aggregate-0",
            &["key k: Utf8", "aggregate count(*): Int64"],
        )];
        let now = [op(
            "aggregate-0",
            &["key k: Utf8", "aggregate sum(v): Int64"],
        )];
        assert_eq!(
            operator_change(&before, &now).unwrap(),
            "operator aggregate-0 kept [aggregate count(*): Int64] and now keeps \
             [aggregate sum(v): Int64]"
        );
        assert_eq!(operator_change(&before, &before), None);
        assert_eq!(
            operator_change(&[], &now).unwrap(),
            "its checkpoint keeps state for no stateful operator, and the query now has the \
             stateful operators [aggregate-0]"
        );
    }
}
