//! Formats: bytes of one file to Arrow record batches of a given schema, and back.
//!
//! Decoding is strict and fast when the input is clean; when a file holds a malformed record,
//! the decoder finds each bad record (file and line for json/csv, row for parquet) and hands it
//! to the [`BadRecords`] policy (`on_error = 'fail' | 'skip' | 'dead_letter'`), then decodes
//! the good records. Nothing is dropped without being counted.

pub(crate) mod bad_records;
mod csv;
pub(crate) mod json;
mod parquet;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;

pub use self::csv::CsvOptions;
pub use bad_records::{BadRecord, BadRecords, Extent, OnError, Rejected, write_dead_letters};

use crate::error::{ConnectorError, Result};
use crate::options::{ConnectorOptions, OptionSpec};

/// Rows per decoded record batch.
pub const BATCH_SIZE: usize = 8192;

/// The keys formats read from connector options.
pub const FORMAT_OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "format",
        help: "json (newline-delimited), csv or parquet; required",
    },
    OptionSpec {
        key: "header",
        help: "csv: whether the first line names the columns (default true)",
    },
    OptionSpec {
        key: "delimiter",
        help: "csv: the one-character field delimiter (default ',')",
    },
];

/// A file format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// Newline-delimited JSON, one object per line.
    Json,
    /// Comma-separated values.
    Csv(CsvOptions),
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// Reads `format`, `header` and `delimiter` from connector options.
    pub fn from_options(options: &ConnectorOptions) -> Result<Self> {
        let format = match options.choice("format", &["json", "csv", "parquet"])? {
            Some(format) => format,
            None => {
                return Err(ConnectorError::Config(format!(
                    "option 'format' is required for '{}': one of json, csv, parquet",
                    options.object()
                )));
            }
        };
        let csv_only = ["header", "delimiter"];
        if format != "csv"
            && let Some(key) = csv_only.iter().find(|k| options.get(k).is_some())
        {
            return Err(ConnectorError::Config(format!(
                "option '{key}' of '{}' applies to format 'csv' only",
                options.object()
            )));
        }
        Ok(match format {
            "json" => Format::Json,
            "csv" => Format::Csv(CsvOptions::from_options(options)?),
            _ => Format::Parquet,
        })
    }

    /// The conventional file extension.
    pub fn extension(&self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv(_) => "csv",
            Format::Parquet => "parquet",
        }
    }

    /// Infers a schema from one file's bytes.
    pub fn infer_schema(&self, bytes: Bytes, location: &str) -> Result<SchemaRef> {
        match self {
            Format::Json => json::infer_schema(bytes, location),
            Format::Csv(options) => options.infer_schema(bytes, location),
            Format::Parquet => parquet::infer_schema(bytes, location),
        }
    }

    /// Decodes one file into record batches of `schema`; malformed records go to `bad`.
    pub fn decode(
        &self,
        bytes: Bytes,
        schema: &SchemaRef,
        location: &str,
        bad: &mut BadRecords,
    ) -> Result<Vec<RecordBatch>> {
        match self {
            Format::Json => json::decode(bytes, schema, location, bad),
            Format::Csv(options) => options.decode(bytes, schema, location, bad),
            Format::Parquet => parquet::decode(bytes, schema, location, bad),
        }
    }
}
