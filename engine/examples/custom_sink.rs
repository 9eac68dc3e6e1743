//! A custom sink connector: `jsonl`, one JSON-lines file per micro-batch in a directory.
//! Writing batch N always writes the file `batch-<N>.jsonl` (a rename makes it appear whole),
//! so re-running a batch after a crash replaces it: idempotent per batch id, as the `Sink`
//! contract asks, which is what makes the output exactly once.
//!
//! `cargo run -p weir --example custom_sink`

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use weir::Engine;
use weir_connectors::{
    BatchId, ConnectorError, ConnectorOptions, OptionSpec, Sink, SinkFactory, SinkOpen,
};

const OPTIONS: &[OptionSpec] = &[OptionSpec {
    key: "path",
    help: "the directory the files go to; required",
}];

#[derive(Debug)]
struct JsonLinesFactory;

impl SinkFactory for JsonLinesFactory {
    fn options(&self) -> &[OptionSpec] {
        OPTIONS
    }

    fn create(&self, options: &ConnectorOptions) -> weir_connectors::Result<Arc<dyn Sink>> {
        let dir = PathBuf::from(options.required("path")?);
        Ok(Arc::new(JsonLines { dir }))
    }
}

#[derive(Debug)]
struct JsonLines {
    dir: PathBuf,
}

fn io_error(e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Internal(e.to_string())
}

#[async_trait]
impl Sink for JsonLines {
    async fn open(&self, _open: SinkOpen) -> weir_connectors::Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(io_error)
    }

    async fn write(
        &self,
        batch_id: BatchId,
        batches: Vec<RecordBatch>,
    ) -> weir_connectors::Result<()> {
        let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
        for batch in &batches {
            writer.write(batch).map_err(io_error)?;
        }
        writer.finish().map_err(io_error)?;
        let staging = self.dir.join(format!(".batch-{}.jsonl.tmp", batch_id.0));
        std::fs::write(&staging, writer.into_inner()).map_err(io_error)?;
        std::fs::rename(
            &staging,
            self.dir.join(format!("batch-{}.jsonl", batch_id.0)),
        )
        .map_err(io_error)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = tempfile::tempdir()?;
    let engine = Engine::builder().build()?;
    engine
        .connectors()
        .register_sink("jsonl", Arc::new(JsonLinesFactory))?;
    engine
        .execute("CREATE SOURCE orders (id INT, amount DOUBLE) WITH (connector = 'memory')")
        .await?;
    engine
        .execute("INSERT INTO orders VALUES (1, 9.5), (2, 120.0), (3, 42.0)")
        .await?;
    let query = engine
        .start(&format!(
            "CREATE SINK big_orders WITH (connector = 'jsonl', path = '{}', trigger = 'available-now') \
             AS SELECT id, amount FROM orders WHERE amount > 10",
            out.path().display()
        ))
        .await?;
    query.await_termination().await?;
    let written = std::fs::read_to_string(out.path().join("batch-0.jsonl"))?;
    print!("{written}");
    assert_eq!(
        written,
        "{\"id\":2,\"amount\":120.0}\n{\"id\":3,\"amount\":42.0}\n"
    );
    Ok(())
}
