//! The `kafka` source and sink end to end, against a real Kafka-protocol broker (tansu, found
//! by [`services::kafka`]; skipped visibly without one): JSON records through a tumbling
//! window into a topic, metadata columns and raw records, restarts and a crash between the
//! sink's write and the commit (nothing lost, nothing duplicated), with and without Kafka
//! transactions, and the errors for a missing topic.
//!
//! Every test uses topics of its own, named after the test and the process.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use arrow::util::pretty::pretty_format_batches;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use weir::Engine;

use crate::services;

/// A topic name unique to this test run.
fn topic(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("weir-{test}-{}-{nanos}", std::process::id())
}

async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
}

/// Writes `(partition, key, value)` records (timestamps 1000, 1001, ...), one request each:
/// tansu 0.6 reports a partition's end as the first offset of its last written batch plus
/// one, so a batch of several records would hide all but its first from a new reader.
fn produce(brokers: &str, topic: &str, records: &[(i32, Option<&str>, &str)]) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    for (i, (partition, key, value)) in records.iter().enumerate() {
        let mut record: BaseRecord<'_, str, str> = BaseRecord::to(topic)
            .partition(*partition)
            .payload(*value)
            .timestamp(1000 + i as i64);
        if let Some(key) = key {
            record = record.key(*key);
        }
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
    }
}

/// A record read back: its value and its `weir.query` and `weir.batch` headers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Written {
    batch: String,
    value: String,
    query: String,
}

/// Every committed record of `topic`, read from the start until none arrives for a while
/// (the end tansu reports can fall short of the last records; see [`produce`]).
fn consume(brokers: &str, topic: &str) -> Vec<Written> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "weir-tests-check")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics()[0].partitions() {
        assignment
            .add_partition_offset(topic, partition.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut written = Vec::new();
    let mut last_record = std::time::Instant::now();
    while last_record.elapsed() < Duration::from_millis(1500) {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.unwrap();
        last_record = std::time::Instant::now();
        let header = |key: &str| {
            message
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == key).and_then(|h| h.value))
                .map(|v| String::from_utf8(v.to_vec()).unwrap())
                .unwrap_or_default()
        };
        written.push(Written {
            batch: header("weir.batch"),
            value: String::from_utf8(message.payload().unwrap_or_default().to_vec()).unwrap(),
            query: header("weir.query"),
        });
    }
    written.sort();
    written
}

fn values(written: &[Written]) -> Vec<&str> {
    let mut values: Vec<&str> = written.iter().map(|w| w.value.as_str()).collect();
    values.sort_unstable();
    values
}

fn order(id: i64, amount: i64, second: u32) -> String {
    format!(r#"{{"id": {id}, "amount": {amount}, "ts": "2024-01-01T00:00:{second:02}"}}"#)
}

fn window_script(
    brokers: &str,
    input: &str,
    output: &str,
    checkpoint: &Path,
    transactions: &str,
) -> String {
    format!(
        "CREATE SOURCE orders (id BIGINT, amount BIGINT, ts TIMESTAMP, \
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) \
         WITH (connector = 'kafka', brokers = '{brokers}', topic = '{input}', format = 'json', \
           starting_offsets = 'earliest', max_records_per_trigger = '2');\
         CREATE SINK totals WITH (connector = 'kafka', brokers = '{brokers}', topic = '{output}', \
           format = 'json', transactions = '{transactions}', checkpoint = '{}', \
           trigger = 'available-now') AS \
         SELECT window_start, window_end, count(*) AS n, sum(amount) AS total \
         FROM TUMBLE(orders, ts, INTERVAL '10' SECOND) GROUP BY window_start, window_end;",
        checkpoint.display()
    )
}

async fn run_to_end(script: &str, sink: &str) -> Engine {
    let engine = Engine::builder().build().unwrap();
    engine.execute(script).await.unwrap();
    let query = engine.query(sink).await.unwrap();
    query.await_termination().await.unwrap();
    assert_eq!(query.last_error(), None);
    engine
}

/// JSON orders through a tumbling window into a topic; a restart with more input emits only
/// the windows the new records close, each once.
async fn windows_into_a_topic(test: &str, transactions: &str) {
    let Some(brokers) = services::kafka(test) else {
        return;
    };
    let (input, output) = (topic(&format!("{test}-in")), topic(&format!("{test}-out")));
    create_topic(&brokers, &input, 2).await;
    create_topic(&brokers, &output, 2).await;
    produce(
        &brokers,
        &input,
        &[
            (0, None, &order(1, 10, 1)),
            (1, None, &order(2, 20, 5)),
            (0, None, &order(3, 5, 12)),
            (1, None, &order(4, 1, 14)),
            (0, None, &order(5, 7, 25)),
        ],
    );
    let checkpoint = tempfile::tempdir().unwrap();
    let script = window_script(&brokers, &input, &output, checkpoint.path(), transactions);
    run_to_end(&script, "totals").await;
    // The watermark (25 s - 1 s) closed the first two windows; the third stays open.
    let first = consume(&brokers, &output);
    assert_eq!(
        values(&first),
        [
            r#"{"window_start":"2024-01-01T00:00:00","window_end":"2024-01-01T00:00:10","n":2,"total":30}"#,
            r#"{"window_start":"2024-01-01T00:00:10","window_end":"2024-01-01T00:00:20","n":2,"total":6}"#,
        ]
    );
    assert!(
        first
            .iter()
            .all(|w| w.query == "totals" && !w.batch.is_empty()),
        "{first:?}"
    );

    produce(
        &brokers,
        &input,
        &[(1, None, &order(6, 100, 28)), (1, None, &order(7, 3, 41))],
    );
    run_to_end(&script, "totals").await;
    let second = consume(&brokers, &output);
    assert_eq!(second.len(), 3, "{second:?}");
    assert_eq!(
        values(&second)[2],
        r#"{"window_start":"2024-01-01T00:00:20","window_end":"2024-01-01T00:00:30","n":2,"total":107}"#
    );
}

#[tokio::test]
async fn kafka_windows_into_a_topic_with_transactions() {
    windows_into_a_topic("kafka-windows-txn", "true").await;
}

#[tokio::test]
async fn kafka_windows_into_a_topic_with_an_idempotent_producer() {
    windows_into_a_topic("kafka-windows-idem", "false").await;
}

/// A crash after the sink wrote a batch but before its commit reached the checkpoint: the
/// re-run batch (same offsets) must not write its rows again, and new records go through once.
async fn crash_before_commit(test: &str, transactions: &str) {
    let Some(brokers) = services::kafka(test) else {
        return;
    };
    let (input, output) = (topic(&format!("{test}-in")), topic(&format!("{test}-out")));
    create_topic(&brokers, &input, 3).await;
    create_topic(&brokers, &output, 2).await;
    let records: Vec<(i32, Option<String>, String)> = (0..9)
        .map(|i| {
            (
                i % 3,
                Some(format!("k{i}")),
                format!(r#"{{"id": {i}, "tag": "t{}"}}"#, i % 2),
            )
        })
        .collect();
    let produce_records = |records: &[(i32, Option<String>, String)]| {
        let records: Vec<(i32, Option<&str>, &str)> = records
            .iter()
            .map(|(p, k, v)| (*p, k.as_deref(), v.as_str()))
            .collect();
        produce(&brokers, &input, &records);
    };
    produce_records(&records[..6]);
    let checkpoint = tempfile::tempdir().unwrap();
    let script = format!(
        "CREATE SOURCE events (id BIGINT, tag VARCHAR, _key VARCHAR, _partition INT, _offset BIGINT) \
         WITH (connector = 'kafka', brokers = '{brokers}', topic = '{input}', format = 'json', \
           starting_offsets = 'earliest', max_records_per_trigger = '4');\
         CREATE SINK copied WITH (connector = 'kafka', brokers = '{brokers}', topic = '{output}', \
           format = 'json', key = '_key', transactions = '{transactions}', checkpoint = '{}', \
           trigger = 'available-now') AS \
         SELECT id, _key, _partition, _offset FROM events WHERE tag = 't0';",
        checkpoint.path().display()
    );
    let engine = run_to_end(&script, "copied").await;
    let batches: Vec<(u64, u64)> = engine
        .query("copied")
        .await
        .unwrap()
        .recent_progress()
        .iter()
        .map(|p| (p.batch_id.0, p.input_rows))
        .collect();
    assert_eq!(batches, [(0, 4), (1, 2)]);
    drop(engine);
    // Forget that batch 1 was committed: the restart re-runs it with the same offsets.
    std::fs::remove_file(checkpoint.path().join("commits/1.json")).unwrap();
    produce_records(&records[6..]);
    let engine = run_to_end(&script, "copied").await;
    let rerun: Vec<(u64, u64)> = engine
        .query("copied")
        .await
        .unwrap()
        .recent_progress()
        .iter()
        .map(|p| (p.batch_id.0, p.input_rows))
        .collect();
    assert_eq!(rerun, [(1, 2), (2, 3)]);

    let written = consume(&brokers, &output);
    let by_id: BTreeMap<i64, (String, usize)> = written.iter().fold(BTreeMap::new(), |mut m, w| {
        let row: serde_json::Value = serde_json::from_str(&w.value).unwrap();
        let entry = m
            .entry(row["id"].as_i64().unwrap())
            .or_insert_with(|| (row["_key"].as_str().unwrap().to_string(), 0));
        entry.1 += 1;
        m
    });
    // Every even id exactly once, with its key; partition and offset from the source record.
    let expected: BTreeMap<i64, (String, usize)> = [0, 2, 4, 6, 8]
        .iter()
        .map(|i| (*i, (format!("k{i}"), 1)))
        .collect();
    assert_eq!(by_id, expected);
    let id_4: serde_json::Value = serde_json::from_str(
        &written
            .iter()
            .find(|w| w.value.contains(r#""id":4"#))
            .unwrap()
            .value,
    )
    .unwrap();
    assert_eq!(
        (id_4["_partition"].as_i64(), id_4["_offset"].as_i64()),
        (Some(1), Some(1))
    );
}

#[tokio::test]
async fn kafka_crash_before_commit_with_transactions() {
    crash_before_commit("kafka-crash-txn", "true").await;
}

#[tokio::test]
async fn kafka_crash_before_commit_with_an_idempotent_producer() {
    crash_before_commit("kafka-crash-idem", "false").await;
}

#[tokio::test]
async fn kafka_raw_records_with_metadata_and_clear_errors() {
    let Some(brokers) = services::kafka("kafka_raw_records_with_metadata_and_clear_errors") else {
        return;
    };
    let input = topic("kafka-raw");
    create_topic(&brokers, &input, 1).await;
    produce(
        &brokers,
        &input,
        &[(0, Some("a"), "first line"), (0, None, "second line")],
    );
    let engine = Engine::builder().build().unwrap();
    engine
        .execute(&format!(
            "CREATE SOURCE lines (line VARCHAR, _key VARCHAR, _offset BIGINT, _timestamp TIMESTAMP, _topic VARCHAR) \
             WITH (connector = 'kafka', brokers = '{brokers}', topic = '{input}', format = 'raw', \
             starting_offsets = 'earliest')"
        ))
        .await
        .unwrap();
    let query = engine
        .start("CREATE SINK seen WITH (connector = 'memory', trigger = 'available-now') AS SELECT line, _key, _offset, _timestamp, _topic = 'x' AS other FROM lines")
        .await
        .unwrap();
    query.await_termination().await.unwrap();
    let rows = engine
        .sql("SELECT * FROM seen ORDER BY _offset")
        .await
        .unwrap();
    assert_eq!(
        pretty_format_batches(&rows).unwrap().to_string(),
        "+-------------+------+---------+-------------------------+-------+\n\
         | line        | _key | _offset | _timestamp              | other |\n\
         +-------------+------+---------+-------------------------+-------+\n\
         | first line  | a    | 0       | 1970-01-01T00:00:01     | false |\n\
         | second line |      | 1       | 1970-01-01T00:00:01.001 | false |\n\
         +-------------+------+---------+-------------------------+-------+"
    );

    let missing = topic("kafka-missing");
    engine
        .execute(&format!(
            "CREATE SOURCE ghost (v VARCHAR) WITH (connector = 'kafka', brokers = '{brokers}', topic = '{missing}', format = 'raw')"
        ))
        .await
        .unwrap();
    let err = engine
        .start("CREATE SINK g WITH (connector = 'memory') AS SELECT v FROM ghost")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains(&format!(
            "kafka topic '{missing}' does not exist on brokers '{brokers}'"
        )),
        "{err}"
    );
    let err = engine
        .execute(&format!(
            "CREATE SINK no_checkpoint WITH (connector = 'kafka', brokers = '{brokers}', topic = '{input}', format = 'json') AS SELECT line FROM lines"
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("sink 'no_checkpoint' needs option 'checkpoint'"),
        "{err}"
    );
    let checkpoint = tempfile::tempdir().unwrap();
    let err = engine
        .execute(&format!(
            "CREATE SINK out WITH (connector = 'kafka', brokers = '{brokers}', topic = '{input}', format = 'json', output_mode = 'update', checkpoint = '{}') AS SELECT line, count(*) AS n FROM lines GROUP BY line",
            checkpoint.path().display()
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("takes output_mode 'update' only with option 'key'"),
        "{err}"
    );
}
