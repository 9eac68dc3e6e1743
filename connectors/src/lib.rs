//! `weir-connectors`: the [`Source`] and [`Sink`] contracts and their implementations.
//!
//! Transport and format are orthogonal: the `files` source moves bytes (from a directory, later
//! from object stores) and a [`format::Format`] turns them into Arrow record batches, so N
//! transports and M formats make N + M pieces of code, not N × M.
//!
//! | connector   | source | sink | notes                                              |
//! |-------------|--------|------|----------------------------------------------------|
//! | `files`     | yes    |      | a directory that keeps receiving json/csv/parquet  |
//! | `nexmark`   | yes    |      | deterministic Nexmark person/auction/bid generator |
//! | `memory`    | yes    | yes  | rows inserted by SQL or code; output kept in memory|
//! | `parquet`   |        | yes  | exactly-once Parquet files, one set per batch      |
//! | `console`   |        | yes  | pretty tables on standard output                   |
//! | `blackhole` |        | yes  | discards rows (benchmarks)                         |

pub mod blackhole;
pub mod console;
pub mod custom;
pub mod error;
pub mod file;
pub mod format;
pub mod location;
pub mod memory;
pub mod nexmark;
pub mod offset;
pub mod options;
pub mod registry;
pub mod sink;
pub mod source;

pub use custom::{SinkFactory, SourceFactory};
pub use error::{ConnectorError, Result};
pub use location::StoreLocation;
pub use offset::{BatchId, SourceOffset};
pub use options::{ConnectorOptions, OptionSpec};
pub use registry::ConnectorRegistry;
pub use sink::{Sink, SinkContext, SinkOpen};
pub use source::{Source, SourceContext, SourceRead};
