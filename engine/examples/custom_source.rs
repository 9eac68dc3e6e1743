//! A custom source connector: `counter`, an endless stream of numbered rows, `rows_per_trigger`
//! at a time. Its offsets are row counts, so any range it handed out can be read again after a
//! restart (the `Source` contract), which is what makes the query exactly once.
//!
//! `cargo run -p weir --example custom_source`

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use weir::Engine;
use weir_connectors::{
    ConnectorError, ConnectorOptions, OptionSpec, Source, SourceContext, SourceFactory,
    SourceOffset, SourceRead,
};

const OPTIONS: &[OptionSpec] = &[OptionSpec {
    key: "rows_per_trigger",
    help: "rows per micro-batch (default 5)",
}];

#[derive(Debug)]
struct CounterFactory;

#[async_trait]
impl SourceFactory for CounterFactory {
    fn options(&self) -> &[OptionSpec] {
        OPTIONS
    }

    async fn schema(
        &self,
        declared: Option<SchemaRef>,
        _options: &ConnectorOptions,
    ) -> weir_connectors::Result<SchemaRef> {
        if declared.is_some() {
            return Err(ConnectorError::Config(
                "the counter source has one column, n BIGINT; leave out the column list".into(),
            ));
        }
        Ok(Arc::new(Schema::new(vec![Field::new(
            "n",
            DataType::Int64,
            false,
        )])))
    }

    async fn open(
        &self,
        schema: SchemaRef,
        options: &ConnectorOptions,
        _context: SourceContext,
    ) -> weir_connectors::Result<Arc<dyn Source>> {
        let per_trigger = options.positive("rows_per_trigger")?.unwrap_or(5);
        Ok(Arc::new(Counter {
            schema,
            per_trigger,
        }))
    }
}

#[derive(Debug)]
struct Counter {
    schema: SchemaRef,
    per_trigger: u64,
}

#[async_trait]
impl Source for Counter {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    async fn prepare_available_now(&self) -> weir_connectors::Result<()> {
        Err(ConnectorError::Config(
            "the counter source never ends".into(),
        ))
    }

    async fn latest_offset(
        &self,
        start: Option<&SourceOffset>,
    ) -> weir_connectors::Result<Option<SourceOffset>> {
        let next = SourceOffset::count_or_zero(start)? + self.per_trigger;
        Ok(Some(SourceOffset::from_count(next)))
    }

    async fn read(
        &self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
    ) -> weir_connectors::Result<SourceRead> {
        let (first, end) = (SourceOffset::count_or_zero(start)?, end.as_count()?);
        let numbers = Int64Array::from_iter_values((first..end).map(|n| n as i64));
        let batch = RecordBatch::try_new(self.schema(), vec![Arc::new(numbers)])
            .map_err(|e| ConnectorError::Internal(e.to_string()))?;
        Ok(SourceRead::rows(vec![batch]))
    }

    async fn commit(&self, _end: &SourceOffset) -> weir_connectors::Result<()> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::builder().build()?;
    engine
        .connectors()
        .register_source("counter", Arc::new(CounterFactory))?;
    engine
        .execute("CREATE SOURCE numbers WITH (connector = 'counter', rows_per_trigger = '4')")
        .await?;
    let query = engine
        .start(
            "CREATE SINK evens WITH (connector = 'memory', output_mode = 'complete') AS \
             SELECT count(*) AS evens, sum(n) AS total FROM numbers WHERE n % 2 = 0",
        )
        .await?;
    // After batch k the source has given rows 0 to 4k + 3.
    let mut batches = query.subscribe();
    while let Some(output) = futures::StreamExt::next(&mut batches).await {
        if output.batch_id.0 >= 2 {
            let table = arrow::util::pretty::pretty_format_batches(&output.rows)?.to_string();
            println!("after batch {}:\n{table}", output.batch_id);
            let rows = 4 * (output.batch_id.0 as i64 + 1);
            let evens = rows / 2;
            let total: i64 = (0..rows).filter(|n| n % 2 == 0).sum();
            assert!(
                table.contains(&format!("| {evens:<5} | {total:<5} |")),
                "{table}"
            );
            break;
        }
    }
    query.stop().await?;
    Ok(())
}
