//! Connectors written outside Weir: a [`SourceFactory`] or [`SinkFactory`] registered under a
//! connector name with [`ConnectorRegistry::register_source`] /
//! [`ConnectorRegistry::register_sink`](crate::ConnectorRegistry::register_sink) is then
//! usable as `CREATE SOURCE … WITH (connector = '<name>', …)` (or `CREATE SINK`), with the
//! same option checking, checkpointing and exactly-once rules as the built-in ones.
//!
//! [`ConnectorRegistry::register_source`]: crate::ConnectorRegistry::register_source

use std::fmt::Debug;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;

use crate::error::Result;
use crate::options::{ConnectorOptions, OptionSpec};
use crate::sink::Sink;
use crate::source::{Source, SourceContext};

/// Builds sources of one custom connector.
#[async_trait]
pub trait SourceFactory: Send + Sync + Debug {
    /// The option keys it takes besides `connector` (an unknown key is refused, listing
    /// these).
    fn options(&self) -> &[OptionSpec];

    /// At `CREATE SOURCE`: validates the options and gives the source's columns, from the
    /// declared ones (`None` when the statement declares none) or its own.
    async fn schema(
        &self,
        declared: Option<SchemaRef>,
        options: &ConnectorOptions,
    ) -> Result<SchemaRef>;

    /// Opens the source for one query; it keeps what it must replay under
    /// `context.state` (see [`Source`]).
    async fn open(
        &self,
        schema: SchemaRef,
        options: &ConnectorOptions,
        context: SourceContext,
    ) -> Result<Arc<dyn Source>>;
}

/// Builds sinks of one custom connector.
pub trait SinkFactory: Send + Sync + Debug {
    /// The option keys it takes besides `connector` and the query options (`checkpoint`,
    /// `trigger`, `output_mode`, `flush_on_end`).
    fn options(&self) -> &[OptionSpec];

    /// At `CREATE SINK`: validates the options and builds the sink.
    fn create(&self, options: &ConnectorOptions) -> Result<Arc<dyn Sink>>;
}
