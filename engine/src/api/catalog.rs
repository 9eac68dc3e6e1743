//! The engine's catalog: what each name refers to, with what DataFusion needs to plan it.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use weir_connectors::Sink;
use weir_sql::{SinkDesc, SourceDesc, TableDesc, ViewDesc};

use super::streaming_query::StreamingQuery;
use crate::runtime::QueryOptions;

/// A created source and its resolved schema.
#[derive(Debug, Clone)]
pub(crate) struct SourceEntry {
    pub desc: SourceDesc,
    pub schema: SchemaRef,
}

/// A created static table.
#[derive(Debug, Clone)]
pub(crate) struct TableEntry {
    pub desc: TableDesc,
    pub schema: SchemaRef,
    pub rows: u64,
}

/// A created sink.
#[derive(Debug, Clone)]
pub(crate) struct SinkEntry {
    pub desc: SinkDesc,
    pub sink: Arc<dyn Sink>,
    pub options: QueryOptions,
}

/// Every named object, by kind. Names are unique across kinds.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    pub sources: BTreeMap<String, SourceEntry>,
    pub tables: BTreeMap<String, TableEntry>,
    pub views: BTreeMap<String, ViewDesc>,
    pub sinks: BTreeMap<String, SinkEntry>,
    pub queries: BTreeMap<String, StreamingQuery>,
}

impl Catalog {
    /// What kind of object `name` is, if it exists.
    pub fn kind_of(&self, name: &str) -> Option<&'static str> {
        if self.sources.contains_key(name) {
            Some("source")
        } else if self.tables.contains_key(name) {
            Some("table")
        } else if self.views.contains_key(name) {
            Some("view")
        } else if self.sinks.contains_key(name) {
            Some("sink")
        } else {
            None
        }
    }

    /// The running queries that read source `name`.
    pub fn queries_reading(&self, name: &str) -> Vec<String> {
        self.queries
            .values()
            .filter(|q| q.is_active() && q.sources().iter().any(|s| s == name))
            .map(|q| q.name().to_string())
            .collect()
    }
}
