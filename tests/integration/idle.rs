//! An idle query does not spin: with the default trigger and nothing new, it asks its sources
//! again after 10 ms (Spark's polling delay), then twice as long each time up to 250 ms, and
//! runs no batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use weir::Engine;
use weir_connectors::{Source, SourceOffset, SourceRead};

/// A source of three rows, counting how often it is asked for its latest offset.
#[derive(Debug, Default)]
struct ThreeRows {
    polls: Arc<AtomicU64>,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]))
}

#[async_trait]
impl Source for ThreeRows {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    async fn prepare_available_now(&self) -> weir_connectors::Result<()> {
        Ok(())
    }

    async fn latest_offset(
        &self,
        _start: Option<&SourceOffset>,
    ) -> weir_connectors::Result<Option<SourceOffset>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        Ok(Some(SourceOffset::from_count(3)))
    }

    async fn read(
        &self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
    ) -> weir_connectors::Result<SourceRead> {
        let (first, end) = (SourceOffset::count_or_zero(start)?, end.as_count()?);
        let n = Int64Array::from_iter_values((first..end).map(|n| n as i64));
        let batch = RecordBatch::try_new(schema(), vec![Arc::new(n)]).unwrap();
        Ok(SourceRead::rows(vec![batch]))
    }

    async fn commit(&self, _end: &SourceOffset) -> weir_connectors::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_idle_query_polls_with_a_bounded_backoff_and_runs_no_batch() {
    let source = Arc::new(ThreeRows::default());
    let polls = Arc::clone(&source.polls);
    let engine = Engine::builder().build().unwrap();
    crate::one_source::register(&engine, "three_rows", source);
    engine
        .execute("CREATE SOURCE s WITH (connector = 'three_rows')")
        .await
        .unwrap();
    let query = engine
        .start("CREATE SINK out WITH (connector = 'memory') AS SELECT n FROM s")
        .await
        .unwrap();
    query.process_all_available().await.unwrap();
    let before = polls.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_polls = polls.load(Ordering::SeqCst) - before;
    query.stop().await.unwrap();
    // Waits of 10, 20, 40, 80, 160 ms, then 250 ms: at most 13 polls in 2 s (a busy machine
    // only lengthens the waits). A fixed 100 ms poll would make 20, a spinning loop thousands.
    assert!(
        (3..=13).contains(&idle_polls),
        "{idle_polls} polls in 2 idle seconds"
    );
    assert_eq!(query.batches_run(), 1, "no batch runs without new data");
}
