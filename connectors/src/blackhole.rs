//! The `blackhole` sink: counts rows and discards them, for benchmarks.

use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::RecordBatch;
use async_trait::async_trait;

use crate::error::Result;
use crate::offset::BatchId;
use crate::sink::{Sink, SinkOpen};

/// Discards every row.
#[derive(Debug, Default)]
pub struct BlackholeSink {
    rows: AtomicU64,
}

impl BlackholeSink {
    /// Rows discarded so far.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Sink for BlackholeSink {
    async fn open(&self, _open: SinkOpen) -> Result<()> {
        Ok(())
    }

    async fn write(&self, _batch_id: BatchId, batches: Vec<RecordBatch>) -> Result<()> {
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
        Ok(())
    }
}
