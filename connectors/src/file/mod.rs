//! The `files` connector: a directory that keeps receiving files ([`FileSource`]), static
//! tables read from files ([`read_table`]), and the exactly-once [`ParquetSink`].

mod file_log;
mod parquet_sink;
mod source;
mod table;

pub use parquet_sink::{PARQUET_SINK_OPTIONS, ParquetSink};
pub use source::{FILE_SOURCE_OPTIONS, FileSource};
pub use table::{FILE_TABLE_OPTIONS, read_table, table_schema};
