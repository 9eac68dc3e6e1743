//! A connector that hands every query the same source instance, for tests whose source
//! records what the engine asks of it.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use weir::Engine;
use weir_connectors::{ConnectorOptions, OptionSpec, Source, SourceContext, SourceFactory};

/// Opens `source` for every `CREATE SOURCE … WITH (connector = '<name>')`.
#[derive(Debug)]
struct OneSource(Arc<dyn Source>);

#[async_trait]
impl SourceFactory for OneSource {
    fn options(&self) -> &[OptionSpec] {
        &[]
    }

    async fn schema(
        &self,
        _declared: Option<SchemaRef>,
        _options: &ConnectorOptions,
    ) -> weir_connectors::Result<SchemaRef> {
        Ok(self.0.schema())
    }

    async fn open(
        &self,
        _schema: SchemaRef,
        _options: &ConnectorOptions,
        _context: SourceContext,
    ) -> weir_connectors::Result<Arc<dyn Source>> {
        Ok(Arc::clone(&self.0))
    }
}

/// Registers connector `name` on `engine`, opening `source` each time.
pub(crate) fn register(engine: &Engine, name: &str, source: Arc<dyn Source>) {
    engine
        .connectors()
        .register_source(name, Arc::new(OneSource(source)))
        .unwrap();
}
