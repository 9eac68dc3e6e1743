//! The `console` sink: each batch's rows as a table on standard output, as Spark's console
//! sink prints them.

use std::io::Write;

use arrow::array::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use async_trait::async_trait;

use crate::error::{ConnectorError, Result};
use crate::offset::BatchId;
use crate::options::{ConnectorOptions, OptionSpec};
use crate::sink::{Sink, SinkOpen};

/// Options of the `console` sink.
pub const CONSOLE_SINK_OPTIONS: &[OptionSpec] = &[OptionSpec {
    key: "max_rows",
    help: "rows shown per batch (default 20); the rest are counted",
}];

/// Prints batches to standard output. Not exactly-once: a re-run batch is printed again.
#[derive(Debug)]
pub struct ConsoleSink {
    name: String,
    max_rows: usize,
}

impl ConsoleSink {
    /// The sink described by `options`.
    pub fn new(options: &ConnectorOptions) -> Result<Self> {
        let max_rows = options.positive("max_rows")?.unwrap_or(20) as usize;
        Ok(Self {
            name: options.object().to_string(),
            max_rows,
        })
    }
}

#[async_trait]
impl Sink for ConsoleSink {
    async fn open(&self, _open: SinkOpen) -> Result<()> {
        Ok(())
    }

    async fn write(&self, batch_id: BatchId, batches: Vec<RecordBatch>) -> Result<()> {
        let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let mut shown = Vec::new();
        let mut remaining = self.max_rows;
        for batch in &batches {
            if remaining == 0 {
                break;
            }
            let take = remaining.min(batch.num_rows());
            shown.push(batch.slice(0, take));
            remaining -= take;
        }
        let table = pretty_format_batches(&shown)
            .map_err(|e| ConnectorError::arrow("formatting a batch", e))?;
        let rule = "-".repeat(43);
        let mut text = format!("{rule}\n{}: batch {batch_id}\n{rule}\n{table}\n", self.name);
        if total > self.max_rows {
            text.push_str(&format!(
                "only showing the first {} of {total} rows\n",
                self.max_rows
            ));
        }
        std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| ConnectorError::io("standard output", e))
    }
}
