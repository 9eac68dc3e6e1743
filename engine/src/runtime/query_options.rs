//! The options of a sink that shape its query rather than its connector: `checkpoint`,
//! `trigger`, `output_mode` and `flush_on_end`.

use std::time::Duration;

use weir_connectors::options::parse_duration;
pub use weir_connectors::sink::OutputMode;
use weir_connectors::{ConnectorOptions, OptionSpec, StorageOptions};

use weir_sql::logical::StreamingAggregateNode;

use crate::error::{Result, WeirError};

/// Keys of [`QueryOptions`].
pub const QUERY_OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "checkpoint",
        help: "checkpoint directory of the query (default: <checkpoint root>/<sink name>)",
    },
    OptionSpec {
        key: "trigger",
        help: "'<interval>' such as '1 second' (default '0 seconds': as fast as possible), 'available-now' or 'once'",
    },
    OptionSpec {
        key: "output_mode",
        help: "append (default), update or complete",
    },
    OptionSpec {
        key: "flush_on_end",
        help: "with trigger 'available-now': 'true' treats the end of the input as the end of the stream, closing every window (default 'false')",
    },
];

/// When micro-batches run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A batch every interval (skipped when no new data arrived); zero means as soon as the
    /// previous batch ends.
    ProcessingTime(Duration),
    /// Process everything available at start, in as many batches as the sources' limits
    /// need, then stop.
    AvailableNow,
    /// Run one batch, then stop.
    Once,
}

impl Trigger {
    /// Parses `'1 second'`, `'available-now'`, `'once'`.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "available-now" | "availablenow" | "available_now" => Ok(Trigger::AvailableNow),
            "once" => Ok(Trigger::Once),
            other => parse_duration(other)
                .map(Trigger::ProcessingTime)
                .map_err(|e| format!("'available-now', 'once' or {e}")),
        }
    }
}

/// The query-shaping options of a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryOptions {
    /// Explicit checkpoint location.
    pub checkpoint: Option<String>,
    /// How to reach the checkpoint when it is in an object store.
    pub storage: StorageOptions,
    /// The trigger.
    pub trigger: Trigger,
    /// The output mode.
    pub output_mode: OutputMode,
    /// Close every window when an `available-now` run reaches the end of its input.
    pub flush_on_end: bool,
}

impl QueryOptions {
    /// Reads the query options out of a sink's options.
    pub fn from_options(options: &ConnectorOptions) -> Result<Self> {
        let trigger = match options.get("trigger") {
            None => Trigger::ProcessingTime(Duration::ZERO),
            Some(raw) => Trigger::parse(raw).map_err(|e| options.bad_value("trigger", raw, &e))?,
        };
        let output_mode = match options.choice("output_mode", &["append", "update", "complete"])? {
            None | Some("append") => OutputMode::Append,
            Some("update") => OutputMode::Update,
            Some(_) => OutputMode::Complete,
        };
        let flush_on_end = options.boolean("flush_on_end")?.unwrap_or(false);
        if flush_on_end && trigger != Trigger::AvailableNow {
            return Err(WeirError::Plan(format!(
                "sink '{}': flush_on_end needs trigger = 'available-now' (a run that ends)",
                options.object()
            )));
        }
        Ok(Self {
            checkpoint: options.get("checkpoint").map(str::to_string),
            storage: StorageOptions::from_options(options)?,
            trigger,
            output_mode,
            flush_on_end,
        })
    }

    /// Checks the output mode against the query's shape, with Spark's rules: `complete`
    /// needs an aggregation; `append` with an aggregation needs an event-time window with a
    /// watermark (so each window is emitted once, when closed); `update` always works.
    pub fn check_output_mode(
        &self,
        sink: &str,
        aggregate: Option<&StreamingAggregateNode>,
    ) -> Result<()> {
        if let Some(aggregate) = aggregate {
            if aggregate.session_start.is_some() {
                if aggregate.window_end.is_none() {
                    return Err(WeirError::Plan(format!(
                        "sink '{sink}': a session window must be grouped by both window_start and window_end"
                    )));
                }
                if self.output_mode == OutputMode::Update {
                    return Err(WeirError::Plan(format!(
                        "sink '{sink}': session windows support output_mode 'append' and 'complete', not \
                         'update' (a session's start and end change as it grows and merges)"
                    )));
                }
            }
            if self.output_mode == OutputMode::Append
                && !(aggregate.window_end.is_some() && aggregate.watermarked)
            {
                return Err(WeirError::Plan(format!(
                    "sink '{sink}': output_mode 'append' emits each row once, so an aggregation \
                     needs an event-time window closed by a watermark (GROUP BY window_start, \
                     window_end FROM TUMBLE(source, ts, size) over a source declaring WATERMARK \
                     FOR ts, or a view passing ts through unchanged), or to group by ts itself; \
                     set output_mode = 'update' (changed groups each batch) or 'complete' (the \
                     whole result each batch)"
                )));
            }
            return Ok(());
        }
        if self.output_mode == OutputMode::Complete {
            return Err(WeirError::Plan(format!(
                "sink '{sink}': output_mode 'complete' needs an aggregation in the query (it \
                 re-emits the whole result every batch); use 'append' for a query without one"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn triggers_parse() {
        assert_eq!(
            Trigger::parse("1 second"),
            Ok(Trigger::ProcessingTime(Duration::from_secs(1)))
        );
        assert_eq!(
            Trigger::parse("500ms"),
            Ok(Trigger::ProcessingTime(Duration::from_millis(500)))
        );
        assert_eq!(Trigger::parse("Available-Now"), Ok(Trigger::AvailableNow));
        assert_eq!(Trigger::parse("once"), Ok(Trigger::Once));
        assert!(
            Trigger::parse("sometimes")
                .unwrap_err()
                .starts_with("'available-now', 'once' or a duration")
        );
    }
}
