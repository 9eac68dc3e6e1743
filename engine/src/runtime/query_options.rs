//! The options of a sink that shape its query rather than its connector: `checkpoint`,
//! `trigger`, `output_mode` and `flush_on_end`.

use std::time::Duration;

use weir_connectors::options::parse_duration;
pub use weir_connectors::sink::OutputMode;
use weir_connectors::{ConnectorOptions, OptionSpec, StorageOptions};

use datafusion::logical_expr::LogicalPlan;
use weir_sql::logical::{Mode, check_output_mode};

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

    /// Checks the output mode against the query's stateful operators (the `sql` crate's
    /// rules: `weir_sql::logical::check_output_mode`).
    pub fn check_output_mode(&self, sink: &str, plan: &LogicalPlan) -> Result<()> {
        let mode = match self.output_mode {
            OutputMode::Append => Mode::Append,
            OutputMode::Update => Mode::Update,
            OutputMode::Complete => Mode::Complete,
        };
        check_output_mode(plan, mode)
            .map_err(|why| WeirError::Plan(format!("sink '{sink}': {why}")))
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
