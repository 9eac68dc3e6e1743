//! Catalog descriptors: what a `CREATE SOURCE`, `CREATE TABLE`, `CREATE VIEW` or
//! `CREATE SINK` statement declared, kept verbatim so a query's checkpoint can record it.
//! Connector options stay uninterpreted strings here; the connector registry validates them.

use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;

/// `key = 'value'` options of a `WITH (...)` clause, keys lower-cased.
pub type Options = BTreeMap<String, String>;

/// An unbounded source declared with `CREATE SOURCE`.
#[derive(Debug, Clone)]
pub struct SourceDesc {
    /// Source name, as referenced in queries.
    pub name: String,
    /// Declared columns, or `None` when the connector supplies or infers the schema.
    pub declared_schema: Option<SchemaRef>,
    /// Event-time watermark declared with `WATERMARK FOR col AS col - INTERVAL ...`.
    pub watermark: Option<WatermarkDesc>,
    /// Connector options (`connector = 'files'`, `path = ...`).
    pub options: Options,
}

/// A watermark declaration: `WATERMARK FOR column AS column - INTERVAL 'delay'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkDesc {
    /// The event-time column.
    pub column: String,
    /// How far behind the maximum event time seen the watermark trails.
    pub delay: Duration,
}

/// A static table declared with `CREATE TABLE ... WITH (connector = 'files', ...)`.
#[derive(Debug, Clone)]
pub struct TableDesc {
    /// Table name.
    pub name: String,
    /// Declared columns, or `None` to infer them from the files.
    pub declared_schema: Option<SchemaRef>,
    /// Connector options.
    pub options: Options,
}

/// A view declared with `CREATE VIEW name AS query`.
#[derive(Debug, Clone)]
pub struct ViewDesc {
    /// View name.
    pub name: String,
    /// The defining query, as SQL text.
    pub query: String,
}

/// A sink declared with `CREATE SINK name WITH (...) [AS query]`.
#[derive(Debug, Clone)]
pub struct SinkDesc {
    /// Sink name; also the name of the continuous query writing to it.
    pub name: String,
    /// Sink and query options (`connector`, `path`, `checkpoint`, `trigger`, `output_mode`).
    pub options: Options,
}
