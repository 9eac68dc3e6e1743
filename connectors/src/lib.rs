//! `weir-connectors`: the [`Source`] and [`Sink`] contracts and their implementations.
//!
//! Transport and format are orthogonal: the `files` source moves bytes (from a local directory
//! or an object store, see [`location`] and [`storage`]) and a [`format::Format`] turns them
//! into Arrow record batches, so N transports and M formats make N + M pieces of code, not
//! N × M.
//!
//! | connector   | source | sink | notes                                              |
//! |-------------|--------|------|----------------------------------------------------|
//! | `files`     | yes    |      | a directory that keeps receiving json/csv/parquet  |
//! | `kafka`     | yes    | yes  | a topic, exactly once (json/csv/raw records)       |
//! | `nexmark`   | yes    |      | deterministic Nexmark person/auction/bid generator |
//! | `memory`    | yes    | yes  | rows inserted by SQL or code; output kept in memory|
//! | `parquet`   |        | yes  | exactly-once Parquet files, one set per batch      |
//! | `postgres`  |        | yes  | upserts, exactly once with the batch id in the db  |
//! | `console`   |        | yes  | pretty tables on standard output                   |
//! | `webhook`   |        | yes  | one JSON POST per row, at least once, with retries |
//! | `blackhole` |        | yes  | discards rows (benchmarks)                         |

pub mod blackhole;
pub mod console;
pub mod custom;
pub mod error;
pub mod file;
pub mod format;
pub mod kafka;
pub mod location;
pub mod memory;
pub mod nexmark;
pub mod offset;
pub mod options;
pub mod postgres;
pub mod postgres_table;
pub mod registry;
pub mod sink;
pub mod source;
pub mod storage;
pub mod webhook;

pub use custom::{SinkFactory, SourceFactory};
pub use error::{ConnectorError, Result};
pub use location::{ObjectVersion, StoreLocation};
pub use offset::{BatchId, SourceOffset};
pub use options::{ConnectorOptions, OptionSpec};
pub use registry::ConnectorRegistry;
pub use sink::{Sink, SinkContext, SinkOpen, column_list};
pub use source::{Source, SourceContext, SourceRead};
pub use storage::{STORAGE_OPTIONS, StorageOptions};
