//! Object-store paths against a real S3-compatible server (moto, see `services`): the store
//! operations exactly-once output relies on (create-only puts, read-back, multipart uploads),
//! then a `files` source, a static table, a `parquet` sink and the checkpoint all on `s3://`,
//! stopped and restarted; and the clean error for an unreachable endpoint (no server needed).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use weir::Engine;
use weir_connectors::{ConnectorOptions, StorageOptions, StoreLocation};

use crate::services;

/// The storage options reaching the test server.
pub(crate) fn s3_options(endpoint: &str) -> String {
    format!(
        "s3.endpoint = '{endpoint}', s3.region = 'us-east-1', s3.access_key_id = 'test', \
         s3.secret_access_key = 'test', s3.allow_http = 'true'"
    )
}

pub(crate) fn storage(endpoint: &str) -> StorageOptions {
    let values: BTreeMap<String, String> = [
        ("s3.endpoint", endpoint),
        ("s3.region", "us-east-1"),
        ("s3.access_key_id", "test"),
        ("s3.secret_access_key", "test"),
        ("s3.allow_http", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    StorageOptions::from_options(&ConnectorOptions::new("test", values)).unwrap()
}

/// Creates a bucket with a unique name (moto takes unsigned requests).
pub(crate) fn create_bucket(endpoint: &str, prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let bucket = format!("{prefix}-{}-{nanos}", std::process::id());
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(host).unwrap();
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    bucket
}

fn table(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

#[tokio::test]
async fn s3_store_operations_behave_as_exactly_once_needs() {
    let Some(endpoint) = services::s3("s3_store_operations_behave_as_exactly_once_needs") else {
        return;
    };
    let bucket = create_bucket(&endpoint, "ops");
    let dir =
        StoreLocation::open(&format!("s3://{bucket}/a/b"), &storage(&endpoint), true).unwrap();
    assert!(!dir.is_local());
    assert_eq!(dir.describe("x.json"), format!("s3://{bucket}/a/b/x.json"));

    dir.put("one.txt", Bytes::from_static(b"1")).await.unwrap();
    assert_eq!(
        dir.get("one.txt").await.unwrap().unwrap(),
        Bytes::from_static(b"1")
    );
    assert_eq!(dir.get("missing").await.unwrap(), None);

    // Create-only puts: the first wins; the same bytes again count as ours (a lost answer
    // retried); different bytes are another writer's.
    assert!(
        dir.put_if_absent("0.json", Bytes::from_static(b"{}"))
            .await
            .unwrap()
    );
    assert!(
        dir.put_if_absent("0.json", Bytes::from_static(b"{}"))
            .await
            .unwrap()
    );
    assert!(
        !dir.put_if_absent("0.json", Bytes::from_static(b"{\"x\":1}"))
            .await
            .unwrap()
    );
    assert_eq!(
        dir.get("0.json").await.unwrap().unwrap(),
        Bytes::from_static(b"{}")
    );

    // A compare-and-swap put (the writer lease's): it replaces only the version it read.
    let first = dir
        .create("lease", Bytes::from_static(b"a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        dir.create("lease", Bytes::from_static(b"b")).await.unwrap(),
        None
    );
    let (bytes, version) = dir.get_versioned("lease").await.unwrap().unwrap();
    assert_eq!((bytes, &version), (Bytes::from_static(b"a"), &first));
    let second = dir
        .replace("lease", Bytes::from_static(b"c"), &version)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        dir.replace("lease", Bytes::from_static(b"d"), &first)
            .await
            .unwrap(),
        None,
        "an old version is refused"
    );
    assert!(
        dir.replace("lease", Bytes::from_static(b"e"), &second)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        dir.get("lease").await.unwrap().unwrap(),
        Bytes::from_static(b"e")
    );
    dir.delete("lease").await.unwrap();

    // A file over the threshold goes up in parts, and arrives whole.
    let big: Vec<u8> = (0..weir_connectors::location::MULTIPART_THRESHOLD + 1000)
        .map(|i| (i % 251) as u8)
        .collect();
    dir.put("big.bin", Bytes::from(big.clone())).await.unwrap();
    assert_eq!(dir.get("big.bin").await.unwrap().unwrap(), Bytes::from(big));

    dir.child("sub")
        .put("deep.txt", Bytes::from_static(b"d"))
        .await
        .unwrap();
    assert_eq!(
        names(&dir).await,
        ["0.json", "big.bin", "one.txt"],
        "list is not recursive"
    );
    dir.delete("one.txt").await.unwrap();
    dir.delete("one.txt").await.unwrap();
    assert_eq!(dir.get("one.txt").await.unwrap(), None);
}

/// The names of the files directly in `dir`, sorted.
async fn names(dir: &StoreLocation) -> Vec<String> {
    let mut names: Vec<String> = dir
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    names.sort();
    names
}

/// Reads every visible parquet file under `dir`, sorted by name, as one table.
async fn read_parquet(dir: &StoreLocation) -> Vec<RecordBatch> {
    let visible = names(dir).await.into_iter();
    let mut batches = Vec::new();
    for name in visible.filter(|n| !n.starts_with('.') && !n.starts_with('_')) {
        let bytes = dir.get(&name).await.unwrap().unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        batches.extend(reader.map(Result::unwrap));
    }
    batches
}

async fn start(engine: &Engine, bucket: &str, options: &str) -> weir::StreamingQuery {
    engine
        .start(&format!(
            "CREATE SINK big_spenders WITH (connector = 'parquet', path = 's3://{bucket}/out', \
             checkpoint = 's3://{bucket}/checkpoint', trigger = 'available-now', {options}) AS \
             SELECT e.id, e.name, c.label FROM events e JOIN categories c ON e.kind = c.kind \
             WHERE e.amount > 10"
        ))
        .await
        .unwrap()
}

async fn engine_on(bucket: &str, options: &str) -> Engine {
    let engine = Engine::builder().target_partitions(2).build().unwrap();
    engine
        .execute(&format!(
            "CREATE SOURCE events (id INT, name VARCHAR, kind INT, amount INT) WITH (connector = \
             'files', path = 's3://{bucket}/in', format = 'json', {options})"
        ))
        .await
        .unwrap();
    engine
        .execute(&format!(
            "CREATE TABLE categories WITH (connector = 'files', path = \
             's3://{bucket}/static/categories.csv', format = 'csv', {options})"
        ))
        .await
        .unwrap();
    engine
}

#[tokio::test]
async fn files_source_table_parquet_sink_and_checkpoint_on_s3_restart_exactly_once() {
    let Some(endpoint) =
        services::s3("files_source_table_parquet_sink_and_checkpoint_on_s3_restart_exactly_once")
    else {
        return;
    };
    let bucket = create_bucket(&endpoint, "e2e");
    let store = storage(&endpoint);
    let root = |p: &str| StoreLocation::open(&format!("s3://{bucket}/{p}"), &store, true).unwrap();
    root("static")
        .put(
            "categories.csv",
            Bytes::from_static(b"kind,label\n1,books\n2,games\n"),
        )
        .await
        .unwrap();
    let input = root("in");
    input
        .put(
            "0.json",
            Bytes::from_static(
                b"{\"id\":1,\"name\":\"ann\",\"kind\":1,\"amount\":50}\n\
                  {\"id\":2,\"name\":\"bob\",\"kind\":2,\"amount\":5}\n\
                  {\"id\":3,\"name\":\"cy\",\"kind\":2,\"amount\":70}\n",
            ),
        )
        .await
        .unwrap();
    let options = s3_options(&endpoint);

    let engine = engine_on(&bucket, &options).await;
    let query = start(&engine, &bucket, &options).await;
    query.await_termination().await.unwrap();
    let out = root("out");
    assert_eq!(
        table(&read_parquet(&out).await),
        "+----+------+-------+\n| id | name | label |\n+----+------+-------+\n| 1  | ann  | books |\n| 3  | cy   | games |\n+----+------+-------+"
    );
    assert_eq!(names(&root("checkpoint/commits")).await, ["0.json"]);

    // More input; a new engine resumes from the checkpoint in the bucket.
    input
        .put(
            "1.json",
            Bytes::from_static(
                b"{\"id\":4,\"name\":\"dee\",\"kind\":1,\"amount\":11}\n\
                  {\"id\":5,\"name\":\"eve\",\"kind\":1,\"amount\":10}\n",
            ),
        )
        .await
        .unwrap();
    drop(engine);
    let engine = engine_on(&bucket, &options).await;
    let query = start(&engine, &bucket, &options).await;
    query.await_termination().await.unwrap();
    assert_eq!(
        table(&read_parquet(&out).await),
        "+----+------+-------+\n| id | name | label |\n+----+------+-------+\n| 1  | ann  | books |\n| 3  | cy   | games |\n| 4  | dee  | books |\n+----+------+-------+"
    );
    assert_eq!(
        names(&out).await,
        [
            "part-000000000000-0000.parquet",
            "part-000000000001-0000.parquet"
        ]
    );
}

/// A second query on a checkpoint in S3 is refused at start, naming the first, while the first
/// holds the checkpoint's lease; once the first stops, the next one starts at once.
#[tokio::test]
async fn a_second_writer_on_an_s3_checkpoint_is_refused_until_the_first_lets_go() {
    let test = "a_second_writer_on_an_s3_checkpoint_is_refused_until_the_first_lets_go";
    let Some(endpoint) = services::s3(test) else {
        return;
    };
    let bucket = create_bucket(&endpoint, "lease");
    let store = storage(&endpoint);
    let root = |p: &str| StoreLocation::open(&format!("s3://{bucket}/{p}"), &store, true).unwrap();
    root("static")
        .put(
            "categories.csv",
            Bytes::from_static(b"kind,label\n1,books\n"),
        )
        .await
        .unwrap();
    root("in")
        .put(
            "0.json",
            Bytes::from_static(b"{\"id\":1,\"name\":\"ann\",\"kind\":1,\"amount\":50}\n"),
        )
        .await
        .unwrap();
    let options = s3_options(&endpoint);
    let continuous = format!("{options}, trigger = '200ms'");
    let sql = |options: &str| {
        format!(
            "CREATE SINK big_spenders WITH (connector = 'parquet', path = 's3://{bucket}/out', \
             checkpoint = 's3://{bucket}/checkpoint', {options}) AS \
             SELECT e.id, e.name, c.label FROM events e JOIN categories c ON e.kind = c.kind"
        )
    };
    let first_engine = engine_on(&bucket, &options).await;
    // A query that fails to open (the parquet sink refuses update mode) hands the lease back
    // at once: it does not keep the next start out for the lease's 30 s.
    let refused = first_engine
        .start(&sql(&format!("{continuous}, output_mode = 'update'")))
        .await
        .unwrap_err()
        .to_string();
    assert!(!refused.contains("is in use"), "{refused}");
    let first = first_engine.start(&sql(&continuous)).await.unwrap();
    let second_engine = engine_on(&bucket, &options).await;
    let refused = second_engine
        .start(&sql(&continuous))
        .await
        .unwrap_err()
        .to_string();
    let pid = std::process::id();
    assert!(
        refused.contains(&format!(
            "s3://{bucket}/checkpoint is in use by query 'big_spenders' (process {pid} on "
        )) && refused.contains("only one query may write a checkpoint"),
        "{refused}"
    );
    first.stop().await.unwrap();
    let started = Instant::now();
    let next = second_engine
        .start(&sql(&format!("{options}, trigger = 'available-now'")))
        .await
        .unwrap();
    next.await_termination().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the stopped query handed its lease back"
    );
    assert_eq!(
        table(&read_parquet(&root("out")).await),
        "+----+------+-------+\n| id | name | label |\n+----+------+-------+\n| 1  | ann  | books |\n+----+------+-------+"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_retried_then_named_in_the_error() {
    let engine = Engine::builder().build().unwrap();
    let started = Instant::now();
    let error = engine
        .execute(
            "CREATE TABLE t (a INT) WITH (connector = 'files', path = 's3://nowhere/t/', \
             format = 'csv', s3.endpoint = 'http://127.0.0.1:9', s3.allow_http = 'true', \
             s3.region = 'us-east-1', s3.access_key_id = 'k', s3.secret_access_key = 's', \
             storage.retry_timeout = '2 seconds')",
        )
        .await
        .unwrap_err()
        .to_string();
    let took = started.elapsed();
    assert!(error.contains("s3://nowhere/t"), "{error}");
    assert!(error.contains("127.0.0.1:9"), "{error}");
    // It retried (backoff from 100 ms) for about the retry timeout, not forever.
    assert!(
        took >= Duration::from_millis(500),
        "gave up after {took:?}: {error}"
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

#[tokio::test]
async fn file_urls_name_local_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.csv"), "a\n1\n2\n").unwrap();
    let engine = Engine::builder().build().unwrap();
    engine
        .execute(&format!(
            "CREATE TABLE t (a INT) WITH (connector = 'files', path = 'file://{}/t.csv', format = 'csv')",
            dir.path().display()
        ))
        .await
        .unwrap();
    let rows = engine.sql("SELECT sum(a) AS s FROM t").await.unwrap();
    assert_eq!(table(&rows), "+---+\n| s |\n+---+\n| 3 |\n+---+");
}

#[tokio::test]
async fn storage_options_of_another_store_are_refused() {
    let engine = Engine::builder().build().unwrap();
    let error = engine
        .execute(
            "CREATE TABLE t (a INT) WITH (connector = 'files', path = 'gs://bucket/t/', \
             format = 'csv', s3.region = 'eu-west-1')",
        )
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "option 's3.region' applies to s3:// paths, but 'gs://bucket/t/' is not one; remove it"
    );
    let error = engine
        .execute(
            "CREATE TABLE t (a INT) WITH (connector = 'files', path = 'ftp://host/t/', \
             format = 'csv')",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("ftp:// is not a supported store"), "{error}");
}
