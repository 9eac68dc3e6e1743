//! [`ParquetSink`]: exactly-once Parquet output that any Parquet reader sees correctly.
//!
//! Batch `N` becomes the files `part-<N>-<k>.parquet` (k = 0, 1, ... when a batch is split by
//! `max_rows_per_file`), each written whole or not at all by [`StoreLocation::put`] (staged
//! and renamed on a local disk; a single put or a multipart upload on an object store, so no
//! rename is needed there), so a reader never sees a partial file. Re-running batch `N` after
//! a crash writes the same names again. When a query restarts, [`Sink::open`] deletes
//! leftovers and every part file of a batch after the last committed one, so an interrupted
//! attempt leaves nothing behind. Readers that skip names starting with `_` or `.` (DuckDB, pyarrow, Spark) see each
//! committed row exactly once. A new query (new checkpoint) refuses a directory that already
//! holds part files, rather than mixing its output with another query's or deleting it.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{ConnectorError, Result};
use crate::location::StoreLocation;
use crate::offset::BatchId;
use crate::options::{ConnectorOptions, OptionSpec};
use crate::sink::{OutputMode, Sink, SinkOpen};
use crate::storage::StorageOptions;

/// Options of the `parquet` sink.
pub const PARQUET_SINK_OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "path",
        help: "the output directory; required",
    },
    OptionSpec {
        key: "compression",
        help: "snappy (default), zstd, lz4, gzip or none",
    },
    OptionSpec {
        key: "max_rows_per_file",
        help: "split a batch's output into files of at most this many rows (default: one file per core for batches over 65536 rows, else one)",
    },
];

/// Above this many rows, a batch's output is split into one file per core, encoded in
/// parallel (unless `max_rows_per_file` says otherwise).
const PARALLEL_ROWS: usize = 65_536;

/// Writes each batch's output as Parquet files named after the batch id.
#[derive(Debug)]
pub struct ParquetSink {
    dir: StoreLocation,
    compression: Compression,
    max_rows_per_file: Option<usize>,
}

impl ParquetSink {
    /// The sink described by `options`.
    pub fn new(options: &ConnectorOptions) -> Result<Self> {
        let storage = StorageOptions::from_options(options)?;
        let dir = StoreLocation::open(options.required("path")?, &storage, true)?;
        let compression =
            match options.choice("compression", &["snappy", "zstd", "lz4", "gzip", "none"])? {
                None | Some("snappy") => Compression::SNAPPY,
                Some("zstd") => Compression::ZSTD(ZstdLevel::default()),
                Some("lz4") => Compression::LZ4_RAW,
                Some("gzip") => Compression::GZIP(Default::default()),
                Some(_) => Compression::UNCOMPRESSED,
            };
        let max_rows_per_file = options.positive("max_rows_per_file")?.map(|n| n as usize);
        Ok(Self {
            dir,
            compression,
            max_rows_per_file,
        })
    }

    /// The name of file `k` of batch `batch`.
    pub fn file_name(batch: BatchId, k: usize) -> String {
        format!("part-{:012}-{k:04}.parquet", batch.0)
    }

    fn batch_of(name: &str) -> Option<BatchId> {
        let rest = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
        let (batch, _) = rest.split_once('-')?;
        batch.parse().ok().map(BatchId)
    }

    /// Splits the batch's rows into the files to write: files of `max_rows_per_file` rows,
    /// or by default, for a batch of more than [`PARALLEL_ROWS`] rows, one file per core so
    /// they are encoded in parallel.
    fn split(&self, batches: Vec<RecordBatch>) -> Vec<Vec<RecordBatch>> {
        let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let limit = match self.max_rows_per_file {
            Some(limit) => limit,
            None if total > PARALLEL_ROWS && cores > 1 => total.div_ceil(cores),
            None => return vec![batches],
        };
        let mut files = vec![Vec::new()];
        let mut rows_in_file = 0;
        for batch in batches {
            let mut offset = 0;
            while offset < batch.num_rows() {
                if rows_in_file == limit {
                    files.push(Vec::new());
                    rows_in_file = 0;
                }
                let take = (limit - rows_in_file).min(batch.num_rows() - offset);
                if let Some(file) = files.last_mut() {
                    file.push(batch.slice(offset, take));
                }
                offset += take;
                rows_in_file += take;
            }
        }
        files
    }
}

#[async_trait]
impl Sink for ParquetSink {
    /// Files of two schemas in one directory break readers (DuckDB refuses the glob, others
    /// read nulls or fail), so the output columns may not change.
    fn check_schema_change(&self, previous: &[String], schema: &SchemaRef) -> Result<()> {
        Err(ConnectorError::Config(format!(
            "{} holds parquet files with the columns [{}], but the changed query writes [{}]; \
             files of two schemas in one directory break readers: write the changed query to \
             a new sink (a new name, path and checkpoint)",
            self.dir.describe(""),
            previous.join(", "),
            crate::sink::column_list(schema).join(", ")
        )))
    }

    async fn open(&self, open: SinkOpen) -> Result<()> {
        if open.output_mode != OutputMode::Append {
            return Err(ConnectorError::Config(format!(
                "the parquet sink takes output_mode 'append' only (files are immutable; {:?} \
                 mode re-emits rows that change): use 'append' with a windowed aggregation and \
                 a watermark, or a memory or console sink",
                open.output_mode
            )));
        }
        self.dir.remove_interrupted_writes().await?;
        let files = self.dir.list().await?;
        if open.new_query
            && let Some(foreign) = files.iter().find(|f| Self::batch_of(&f.name).is_some())
        {
            return Err(ConnectorError::Config(format!(
                "{} already holds output of another query ({}) but this query's checkpoint is \
                 new; write to an empty directory, or resume with the checkpoint that wrote it",
                self.dir.describe(""),
                foreign.name
            )));
        }
        let last_committed = open.last_committed;
        for file in files {
            let leftover = file.name.starts_with(".part-");
            let uncommitted =
                Self::batch_of(&file.name).is_some_and(|b| last_committed.is_none_or(|c| b > c));
            if leftover || uncommitted {
                tracing::info!(file = %self.dir.describe(&file.name), "removing output of an unfinished batch");
                self.dir.delete(&file.name).await?;
            }
        }
        Ok(())
    }

    async fn write(&self, batch_id: BatchId, batches: Vec<RecordBatch>) -> Result<()> {
        let Some(schema) = batches.first().map(|b| b.schema()) else {
            return Ok(());
        };
        let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        if batches.is_empty() {
            return Ok(());
        }
        let encodings = self.split(batches).into_iter().map(|file| {
            let (schema, compression) = (Arc::clone(&schema), self.compression);
            tokio::task::spawn_blocking(move || encode(schema, &file, compression))
        });
        let encoded = futures::future::try_join_all(encodings)
            .await
            .map_err(|e| ConnectorError::Internal(format!("parquet encoding task failed: {e}")))?;
        for (k, bytes) in encoded.into_iter().enumerate() {
            let bytes = bytes?;
            self.dir.put(&Self::file_name(batch_id, k), bytes).await?;
        }
        Ok(())
    }
}

/// Encodes `batches` as one Parquet file.
fn encode(schema: SchemaRef, batches: &[RecordBatch], compression: Compression) -> Result<Bytes> {
    let props = WriterProperties::builder()
        .set_compression(compression)
        .build();
    let mut buffer = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buffer, schema, Some(props))
        .map_err(|e| ConnectorError::Internal(format!("creating a parquet writer: {e}")))?;
    for batch in batches {
        writer
            .write(batch)
            .map_err(|e| ConnectorError::Internal(format!("encoding parquet: {e}")))?;
    }
    writer
        .close()
        .map_err(|e| ConnectorError::Internal(format!("finishing parquet: {e}")))?;
    Ok(Bytes::from(buffer))
}
