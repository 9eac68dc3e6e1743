//! The Kafka source and sink against librdkafka's in-process mock cluster: offset ranges and
//! their replay, batch limits, metadata columns, partitions that appear later, bad records,
//! unreachable brokers and unknown topics; the transactional sink's skip of batches already
//! written, and the idempotent sink's resume of a partly written batch.
//!
//! The mock cluster has no transaction markers (it does not filter aborted records) and no
//! admin API; the end-to-end tests against a real broker cover those.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::pretty::pretty_format_batches;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use super::encode::{SinkColumns, SinkFormat, assign_partitions, encode};
use super::tail::{Sequence, headers};
use super::{KafkaSink, KafkaSource};
use crate::location::StoreLocation;
use crate::offset::{BatchId, SourceOffset};
use crate::options::ConnectorOptions;
use crate::sink::{OutputMode, Sink, SinkOpen};
use crate::source::{Source, SourceContext};

fn cluster(topic: &str, partitions: i32) -> MockCluster<'static, DefaultProducerContext> {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(topic, partitions, 1).unwrap();
    cluster
}

fn options(name: &str, pairs: &[(&str, &str)]) -> ConnectorOptions {
    ConnectorOptions::new(
        name,
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn producer(brokers: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap()
}

/// Writes `(partition, key, value)` records with timestamps 1000, 1001, ...
fn produce(brokers: &str, topic: &str, records: &[(i32, Option<&str>, &str)]) {
    let producer = producer(brokers);
    for (i, (partition, key, value)) in records.iter().enumerate() {
        let mut record: BaseRecord<'_, str, str> = BaseRecord::to(topic)
            .partition(*partition)
            .payload(*value)
            .timestamp(1000 + i as i64);
        if let Some(key) = key {
            record = record.key(*key);
        }
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
    Arc::new(Schema::new(
        fields
            .iter()
            .map(|(n, t)| Field::new(*n, t.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

async fn source(
    brokers: &str,
    topic: &str,
    schema: SchemaRef,
    state: &std::path::Path,
    extra: &[(&str, &str)],
) -> KafkaSource {
    let mut pairs = vec![("brokers", brokers), ("topic", topic), ("format", "json")];
    pairs.extend_from_slice(extra);
    let options = options("src", &pairs);
    let schema = KafkaSource::schema(Some(schema), &options).unwrap();
    let context = SourceContext {
        state: StoreLocation::parse(&state.display().to_string(), true).unwrap(),
    };
    KafkaSource::open(schema, &options, context).await.unwrap()
}

async fn read(source: &KafkaSource, start: Option<&SourceOffset>, end: &SourceOffset) -> String {
    let read = source.read(start, end).await.unwrap();
    pretty_format_batches(&read.batches).unwrap().to_string()
}

fn id_schema() -> SchemaRef {
    schema(&[
        ("id", DataType::Int64),
        ("_partition", DataType::Int32),
        ("_offset", DataType::Int64),
    ])
}

#[tokio::test]
async fn source_reads_offset_ranges_and_replays_them_after_a_restart() {
    let cluster = cluster("orders", 2);
    let brokers = cluster.bootstrap_servers();
    produce(
        &brokers,
        "orders",
        &[
            (0, None, r#"{"id": 1}"#),
            (1, None, r#"{"id": 2}"#),
            (0, None, r#"{"id": 3}"#),
        ],
    );
    let state = tempfile::tempdir().unwrap();
    let source = source(
        &brokers,
        "orders",
        id_schema(),
        state.path(),
        &[("starting_offsets", "earliest")],
    )
    .await;
    let end = source.latest_offset(None).await.unwrap().unwrap();
    assert_eq!(
        end.0.to_string(),
        r#"{"partitions":{"0":2,"1":1},"topic":"orders"}"#
    );
    let first = read(&source, None, &end).await;
    assert_eq!(
        first,
        "+----+------------+---------+\n| id | _partition | _offset |\n+----+------------+---------+\n| 1  | 0          | 0       |\n| 3  | 0          | 1       |\n| 2  | 1          | 0       |\n+----+------------+---------+"
    );
    assert_eq!(read(&source, None, &end).await, first);
    // Nothing new: the offset stays.
    assert_eq!(
        source.latest_offset(Some(&end)).await.unwrap(),
        Some(end.clone())
    );

    produce(&brokers, "orders", &[(1, None, r#"{"id": 4}"#)]);
    let next = source.latest_offset(Some(&end)).await.unwrap().unwrap();
    assert_eq!(
        next.0.to_string(),
        r#"{"partitions":{"0":2,"1":2},"topic":"orders"}"#
    );
    assert_eq!(
        read(&source, Some(&end), &next).await,
        "+----+------------+---------+\n| id | _partition | _offset |\n+----+------------+---------+\n| 4  | 1          | 1       |\n+----+------------+---------+"
    );

    // A restarted source (same checkpoint directory, more records since) re-reads the first
    // batch exactly: its start was written down, not recomputed.
    produce(&brokers, "orders", &[(0, None, r#"{"id": 5}"#)]);
    drop(source);
    let restarted = super::KafkaSource::open(
        id_schema(),
        &options(
            "src",
            &[
                ("brokers", &brokers),
                ("topic", "orders"),
                ("format", "json"),
                ("starting_offsets", "latest"),
            ],
        ),
        SourceContext {
            state: StoreLocation::parse(&state.path().display().to_string(), true).unwrap(),
        },
    )
    .await
    .unwrap();
    assert_eq!(read(&restarted, None, &end).await, first);
}

#[tokio::test]
async fn latest_starts_after_what_is_there_and_a_limit_splits_batches_fairly() {
    let cluster = cluster("clicks", 3);
    let brokers = cluster.bootstrap_servers();
    produce(&brokers, "clicks", &[(0, None, r#"{"id": 0}"#)]);
    let state = tempfile::tempdir().unwrap();
    let source = source(
        &brokers,
        "clicks",
        id_schema(),
        state.path(),
        &[("max_records_per_trigger", "4")],
    )
    .await;
    // 'latest': the record already there is not read, and there is no batch yet.
    assert_eq!(source.latest_offset(None).await.unwrap(), None);
    let records: Vec<(i32, Option<&str>, String)> = (1..=8)
        .map(|i| {
            (
                if i <= 6 { 0 } else { i - 6 },
                None,
                format!("{{\"id\": {i}}}"),
            )
        })
        .collect();
    let records: Vec<(i32, Option<&str>, &str)> = records
        .iter()
        .map(|(p, k, v)| (*p, *k, v.as_str()))
        .collect();
    produce(&brokers, "clicks", &records);
    // Backlogs 6, 1, 1 with a limit of 4: the quiet partitions take 1 each, the busy one 2.
    let end = source.latest_offset(None).await.unwrap().unwrap();
    assert_eq!(
        end.0.to_string(),
        r#"{"partitions":{"0":3,"1":1,"2":1},"topic":"clicks"}"#
    );
    assert_eq!(
        read(&source, None, &end).await,
        "+----+------------+---------+\n| id | _partition | _offset |\n+----+------------+---------+\n| 1  | 0          | 1       |\n| 2  | 0          | 2       |\n| 7  | 1          | 0       |\n| 8  | 2          | 0       |\n+----+------------+---------+"
    );
    let next = source.latest_offset(Some(&end)).await.unwrap().unwrap();
    assert_eq!(
        next.0.to_string(),
        r#"{"partitions":{"0":7,"1":1,"2":1},"topic":"clicks"}"#
    );
    assert_eq!(
        source.read(Some(&end), &next).await.unwrap().batches[0].num_rows(),
        4
    );
}

#[tokio::test]
async fn metadata_columns_come_from_the_record_and_partitions_missing_from_the_start_are_read_whole()
 {
    let cluster = cluster("events", 2);
    let brokers = cluster.bootstrap_servers();
    produce(
        &brokers,
        "events",
        &[(0, Some("k0"), r#"{"v": "a"}"#), (1, None, r#"{"v": "b"}"#)],
    );
    let declared = schema(&[
        ("_topic", DataType::Utf8View),
        ("_partition", DataType::Int32),
        ("_offset", DataType::Int64),
        (
            "_timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, None),
        ),
        ("_key", DataType::Utf8View),
        ("v", DataType::Utf8View),
    ]);
    let state = tempfile::tempdir().unwrap();
    let source = source(&brokers, "events", declared, state.path(), &[]).await;
    // An offset from before partition 1 existed: partition 1 is new, read from its start.
    let start = SourceOffset(serde_json::json!({"topic": "events", "partitions": {"0": 0}}));
    let end = source.latest_offset(Some(&start)).await.unwrap().unwrap();
    assert_eq!(
        end.0.to_string(),
        r#"{"partitions":{"0":1,"1":1},"topic":"events"}"#
    );
    assert_eq!(
        read(&source, Some(&start), &end).await,
        "+--------+------------+---------+-------------------------+------+---+\n\
         | _topic | _partition | _offset | _timestamp              | _key | v |\n\
         +--------+------------+---------+-------------------------+------+---+\n\
         | events | 0          | 0       | 1970-01-01T00:00:01     | k0   | a |\n\
         | events | 1          | 0       | 1970-01-01T00:00:01.001 |      | b |\n\
         +--------+------------+---------+-------------------------+------+---+"
    );
}

#[tokio::test]
async fn bad_records_follow_on_error_with_their_offset_and_go_to_dead_letters() {
    let cluster = cluster("dirty", 1);
    let brokers = cluster.bootstrap_servers();
    produce(
        &brokers,
        "dirty",
        &[
            (0, None, r#"{"id": 1}"#),
            (0, None, r#"{"id": "#),
            (0, None, r#"{"id": 3}"#),
        ],
    );
    let state = tempfile::tempdir().unwrap();
    let failing = source(
        &brokers,
        "dirty",
        id_schema(),
        state.path(),
        &[("starting_offsets", "earliest")],
    )
    .await;
    let end = failing.latest_offset(None).await.unwrap().unwrap();
    let err = failing.read(None, &end).await.unwrap_err().to_string();
    assert!(err.starts_with("bad record at dirty/0@1: "), "{err}");

    let dead = tempfile::tempdir().unwrap();
    let dead_path = dead.path().display().to_string();
    let state = tempfile::tempdir().unwrap();
    let skipping = source(
        &brokers,
        "dirty",
        id_schema(),
        state.path(),
        &[
            ("starting_offsets", "earliest"),
            ("on_error", "dead_letter"),
            ("dead_letter_path", &dead_path),
        ],
    )
    .await;
    let end = skipping.latest_offset(None).await.unwrap().unwrap();
    let read = skipping.read(None, &end).await.unwrap();
    assert_eq!(read.bad_records, 1);
    assert_eq!(
        pretty_format_batches(&read.batches).unwrap().to_string(),
        "+----+------------+---------+\n| id | _partition | _offset |\n+----+------------+---------+\n| 1  | 0          | 0       |\n| 3  | 0          | 2       |\n+----+------------+---------+"
    );
    let letters = std::fs::read_to_string(dead.path().join("dirty-0-0.bad.jsonl")).unwrap();
    let letter: serde_json::Value = serde_json::from_str(letters.trim()).unwrap();
    assert_eq!(letter["location"], "dirty/0@1");
    assert_eq!(letter["record"], r#"{"id": "#);
}

#[tokio::test]
async fn unreachable_brokers_and_unknown_topics_give_clear_errors() {
    let state = tempfile::tempdir().unwrap();
    let context = || SourceContext {
        state: StoreLocation::parse(&state.path().display().to_string(), true).unwrap(),
    };
    let unreachable = options(
        "src",
        &[
            ("brokers", "127.0.0.1:1"),
            ("topic", "orders"),
            ("format", "json"),
            ("timeout", "300ms"),
        ],
    );
    let started = std::time::Instant::now();
    let err = KafkaSource::open(id_schema(), &unreachable, context())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("i/o error on kafka topic 'orders' on brokers '127.0.0.1:1': fetching the topic's metadata failed 3 times, each with a timeout of 300ms: "),
        "{err}"
    );
    assert!(
        err.contains("check that the brokers are running and reachable"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    let cluster = cluster("orders", 1);
    let known = options(
        "src",
        &[
            ("brokers", &cluster.bootstrap_servers()),
            ("topic", "nope"),
            ("format", "json"),
        ],
    );
    let err = KafkaSource::open(id_schema(), &known, context())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "kafka topic 'nope' does not exist on brokers '{}': create it first",
            cluster.bootstrap_servers()
        )),
        "{err}"
    );

    let bad = options(
        "src",
        &[("brokers", "b:1"), ("topic", "t"), ("format", "parquet")],
    );
    assert!(
        KafkaSource::schema(Some(id_schema()), &bad)
            .unwrap_err()
            .to_string()
            .contains("cannot read format 'parquet'")
    );
}

/// Every record of `topic`: (partition, key, value, weir.batch header).
fn consume_all(brokers: &str, topic: &str) -> Vec<(i32, Option<String>, String, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "check")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .unwrap();
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut out = Vec::new();
    for p in partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(5))
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let mut seen = 0;
        while seen < high {
            let Some(message) = consumer.poll(Duration::from_secs(5)) else {
                panic!("partition {p} of {topic} ended before offset {high}");
            };
            let message = message.unwrap();
            seen = message.offset() + 1;
            let batch = message
                .headers()
                .and_then(|h| {
                    h.iter()
                        .find(|h| h.key == "weir.batch")
                        .and_then(|h| h.value)
                })
                .map(|v| String::from_utf8(v.to_vec()).unwrap())
                .unwrap_or_default();
            out.push((
                p,
                message
                    .key()
                    .map(|k| String::from_utf8(k.to_vec()).unwrap()),
                String::from_utf8(message.payload().unwrap_or_default().to_vec()).unwrap(),
                batch,
            ));
        }
    }
    out
}

fn rows(ids: &[i64], names: &[&str]) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids.to_vec())) as _),
        ("name", Arc::new(StringArray::from(names.to_vec())) as _),
    ])
    .unwrap()
}

fn sink_open(schema: SchemaRef, last_committed: Option<u64>, mode: OutputMode) -> SinkOpen {
    SinkOpen {
        schema,
        last_committed: last_committed.map(BatchId),
        new_query: last_committed.is_none(),
        output_mode: mode,
    }
}

#[tokio::test]
async fn transactional_sink_writes_batches_once_and_skips_what_a_crashed_run_committed() {
    let cluster = cluster("out", 2);
    let brokers = cluster.bootstrap_servers();
    let sink_options = options(
        "totals",
        &[
            ("brokers", &brokers),
            ("topic", "out"),
            ("format", "json"),
            ("key", "name"),
            ("transactions", "true"),
        ],
    );
    let batch = rows(&[1, 2], &["a", "b"]);
    let sink = KafkaSink::new(&sink_options).unwrap();
    sink.open(sink_open(batch.schema(), None, OutputMode::Update))
        .await
        .unwrap();
    sink.write(BatchId(0), vec![batch.clone()]).await.unwrap();
    sink.write(BatchId(1), vec![rows(&[3], &["c"])])
        .await
        .unwrap();
    // A crash after batch 1 reached Kafka but before Weir committed it: the restarted sink
    // finds batch 1 in the topic and does not write it again.
    drop(sink);
    let restarted = KafkaSink::new(&sink_options).unwrap();
    restarted
        .open(sink_open(batch.schema(), Some(0), OutputMode::Update))
        .await
        .unwrap();
    restarted
        .write(BatchId(1), vec![rows(&[3], &["c"])])
        .await
        .unwrap();
    restarted
        .write(BatchId(2), vec![rows(&[4], &["a"])])
        .await
        .unwrap();

    let mut written = consume_all(&brokers, "out");
    written.sort_by(|a, b| (&a.3, &a.2).cmp(&(&b.3, &b.2)));
    let written: Vec<(Option<&str>, &str, &str)> = written
        .iter()
        .map(|(_, k, v, b)| (k.as_deref(), v.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        written,
        [
            (Some("a"), r#"{"id":1,"name":"a"}"#, "0"),
            (Some("b"), r#"{"id":2,"name":"b"}"#, "0"),
            (Some("c"), r#"{"id":3,"name":"c"}"#, "1"),
            (Some("a"), r#"{"id":4,"name":"a"}"#, "2"),
        ]
    );
    // Both records keyed 'a' are in one partition (murmur2 of the key), as compaction needs.
    let by_key: BTreeMap<String, Vec<i32>> =
        consume_all(&brokers, "out")
            .into_iter()
            .fold(BTreeMap::new(), |mut m, (p, k, _, _)| {
                m.entry(k.unwrap()).or_default().push(p);
                m
            });
    assert_eq!(by_key["a"].len(), 2);
    assert_eq!(by_key["a"][0], by_key["a"][1]);

    let no_key = KafkaSink::new(&options(
        "s",
        &[("brokers", &brokers), ("topic", "out"), ("format", "json")],
    ))
    .unwrap();
    let err = no_key
        .open(sink_open(batch.schema(), None, OutputMode::Complete))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("takes output_mode 'complete' only with option 'key'"),
        "{err}"
    );
    let missing = KafkaSink::new(&options(
        "s",
        &[
            ("brokers", &brokers),
            ("topic", "absent"),
            ("format", "json"),
        ],
    ))
    .unwrap();
    let err = missing
        .open(sink_open(batch.schema(), None, OutputMode::Append))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("kafka topic 'absent' does not exist"),
        "{err}"
    );
}

#[tokio::test]
async fn idempotent_sink_completes_a_partly_written_batch_without_duplicates() {
    complete_a_partly_written_batch("false").await;
}

/// A broker that shows records of aborted transactions (the mock cluster, tansu 0.6) leaves
/// the records of an interrupted transaction visible: the transactional sink completes the
/// batch too, rather than skipping it or writing it twice.
#[tokio::test]
async fn transactional_sink_completes_a_visible_partly_written_batch() {
    complete_a_partly_written_batch("true").await;
}

async fn complete_a_partly_written_batch(transactions: &str) {
    let cluster = cluster("lines", 2);
    let brokers = cluster.bootstrap_servers();
    let sink_options = options(
        "copy",
        &[
            ("brokers", &brokers),
            ("topic", "lines"),
            ("format", "raw"),
            ("transactions", transactions),
        ],
    );
    let schema = schema(&[("line", DataType::Utf8)]);
    let batch = |lines: &[&str]| {
        RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(StringArray::from(lines.to_vec()))],
        )
        .unwrap()
    };
    let sink = KafkaSink::new(&sink_options).unwrap();
    sink.open(sink_open(Arc::clone(&schema), None, OutputMode::Append))
        .await
        .unwrap();
    sink.write(BatchId(0), vec![batch(&["a", "b"])])
        .await
        .unwrap();
    drop(sink);

    // Batch 1 was interrupted after its first record in each partition: write exactly what
    // the sink would have (same order, placement and headers).
    let batch_1 = batch(&["e", "d", "c", "f", "g"]);
    let columns = SinkColumns::try_new(&schema, SinkFormat::Raw, None, "copy").unwrap();
    let mut records = encode(&columns, std::slice::from_ref(&batch_1)).unwrap();
    records.sort_unstable();
    let partitions = assign_partitions(&records, 1, 2);
    let producer = producer(&brokers);
    for p in [0, 1] {
        let count = partitions.iter().filter(|q| **q == p).count() as u64;
        let first = partitions.iter().position(|q| *q == p).unwrap();
        let value = records[first].value.clone().unwrap();
        let record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to("lines")
            .partition(p)
            .payload(value.as_slice())
            .headers(headers(
                "copy",
                1,
                Sequence {
                    seq: 0,
                    count,
                    total: 5,
                    partitions: 2,
                },
            ));
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(5)).unwrap();

    let restarted = KafkaSink::new(&sink_options).unwrap();
    restarted
        .open(sink_open(Arc::clone(&schema), Some(0), OutputMode::Append))
        .await
        .unwrap();
    // The engine re-runs batch 1; its rows may come in another order.
    restarted
        .write(BatchId(1), vec![batch(&["g", "f", "e", "d", "c"])])
        .await
        .unwrap();
    restarted
        .write(BatchId(2), vec![batch(&["h"])])
        .await
        .unwrap();

    let mut written: Vec<(String, String)> = consume_all(&brokers, "lines")
        .into_iter()
        .map(|(_, _, v, b)| (b, v))
        .collect();
    written.sort();
    let expected: Vec<(String, String)> = [
        ("0", "a"),
        ("0", "b"),
        ("1", "c"),
        ("1", "d"),
        ("1", "e"),
        ("1", "f"),
        ("1", "g"),
        ("2", "h"),
    ]
    .iter()
    .map(|(b, v)| (b.to_string(), v.to_string()))
    .collect();
    assert_eq!(written, expected);
}
