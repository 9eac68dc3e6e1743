//! Static tables (`CREATE TABLE`) in stream-static joins: read when created, again when a
//! query joining them starts, and on `refresh`; a failed read keeps the rows read before; a
//! PostgreSQL table read with its column types (against the PostgreSQL of `services`).

use std::time::Duration;

use weir::Engine;

use crate::property::sorted_lines;
use crate::services;

async fn engine_with_ids() -> Engine {
    let engine = Engine::builder().build().unwrap();
    engine
        .execute("CREATE SOURCE s (id BIGINT) WITH (connector = 'memory')")
        .await
        .unwrap();
    engine
}

async fn rows(engine: &Engine, sql: &str) -> Vec<String> {
    sorted_lines(&engine.sql(sql).await.unwrap())
}

#[tokio::test]
async fn a_files_table_is_read_when_a_query_starts_and_again_on_its_refresh_interval() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("labels.csv");
    std::fs::write(&csv, "id,label\n1,one\n2,two\n").unwrap();
    let engine = engine_with_ids().await;
    engine
        .execute(&format!(
            "CREATE TABLE labels WITH (connector = 'files', path = '{}', format = 'csv', \
             refresh = '300ms')",
            csv.display()
        ))
        .await
        .unwrap();
    // Changed after CREATE TABLE: the query starting reads it again.
    std::fs::write(&csv, "id,label\n1,uno\n2,dos\n").unwrap();
    let query = engine
        .start(
            "CREATE SINK out WITH (connector = 'memory') AS \
             SELECT s.id, labels.label FROM s JOIN labels ON s.id = labels.id",
        )
        .await
        .unwrap();
    engine.execute("INSERT INTO s VALUES (1)").await.unwrap();
    query.process_all_available().await.unwrap();
    assert_eq!(rows(&engine, "SELECT * FROM out").await, ["1|uno"]);

    // Changed again: within the refresh interval the rows read stay in use...
    std::fs::write(&csv, "id,label\n1,eins\n2,zwei\n").unwrap();
    engine.execute("INSERT INTO s VALUES (2)").await.unwrap();
    query.process_all_available().await.unwrap();
    // ...and once it has passed, a batch reads the table again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    engine.execute("INSERT INTO s VALUES (1)").await.unwrap();
    query.process_all_available().await.unwrap();
    assert_eq!(
        rows(&engine, "SELECT * FROM out").await,
        ["1|eins", "1|uno", "2|dos"]
    );

    // A read that fails keeps the rows read before.
    std::fs::remove_file(&csv).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    engine.execute("INSERT INTO s VALUES (2)").await.unwrap();
    query.process_all_available().await.unwrap();
    assert_eq!(
        rows(&engine, "SELECT * FROM out WHERE id = 2").await,
        ["2|dos", "2|zwei"]
    );
    query.stop().await.unwrap();
}

#[tokio::test]
async fn a_bad_refresh_interval_is_refused_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "id\n1\n").unwrap();
    let engine = engine_with_ids().await;
    let error = engine
        .execute(&format!(
            "CREATE TABLE t WITH (connector = 'files', path = '{}', format = 'csv', refresh = 'often')",
            csv.display()
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("refresh"), "{error}");
}

async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn a_postgres_table_is_read_with_its_column_types_and_joined_with_a_stream() {
    let Some(url) = services::postgres(
        "a_postgres_table_is_read_with_its_column_types_and_joined_with_a_stream",
    ) else {
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let table = format!("weir_dim_{}_{nanos}", std::process::id());
    let db = pg_client(&url).await;
    db.batch_execute(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, name text, rank int, score numeric(6,2), \
         active boolean, since date, seen timestamptz); \
         INSERT INTO {table} VALUES (1, 'one', 10, 1.50, true, '2024-01-02', '2024-01-02 03:04:05+00'), \
         (2, NULL, NULL, NULL, NULL, NULL, NULL)"
    ))
    .await
    .unwrap();
    let engine = engine_with_ids().await;
    engine
        .execute(&format!(
            "CREATE TABLE dim WITH (connector = 'postgres', url = '{url}', table = '{table}', \
             refresh = '200ms')"
        ))
        .await
        .unwrap();
    assert_eq!(
        rows(&engine, "SELECT * FROM dim").await,
        [
            "1|one|10|1.50|true|2024-01-02|2024-01-02T03:04:05Z",
            "2|NULL|NULL|NULL|NULL|NULL|NULL"
        ]
    );
    let types = rows(
        &engine,
        "SELECT arrow_typeof(id), arrow_typeof(rank), arrow_typeof(score), arrow_typeof(since), \
         arrow_typeof(seen) FROM dim LIMIT 1",
    )
    .await;
    assert_eq!(types, ["Int64|Int32|Utf8|Date32|Timestamp(µs, \"UTC\")"]);
    // Declared columns pick and type them: numeric read as a number.
    engine
        .execute(&format!(
            "CREATE TABLE scores (id BIGINT, score DOUBLE) WITH (connector = 'postgres', \
             url = '{url}', table = '{table}')"
        ))
        .await
        .unwrap();
    assert_eq!(
        rows(&engine, "SELECT * FROM scores").await,
        ["1|1.5", "2|NULL"]
    );

    let query = engine
        .start(
            "CREATE SINK out WITH (connector = 'memory') AS \
             SELECT s.id, dim.name FROM s LEFT JOIN dim ON s.id = dim.id",
        )
        .await
        .unwrap();
    engine
        .execute("INSERT INTO s VALUES (1), (3)")
        .await
        .unwrap();
    query.process_all_available().await.unwrap();
    db.batch_execute(&format!("UPDATE {table} SET name = 'uno' WHERE id = 1"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    engine.execute("INSERT INTO s VALUES (1)").await.unwrap();
    query.process_all_available().await.unwrap();
    assert_eq!(
        rows(&engine, "SELECT * FROM out").await,
        ["1|one", "1|uno", "3|NULL"]
    );
    query.stop().await.unwrap();
    db.batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_postgres_table_is_a_clear_error() {
    let engine = engine_with_ids().await;
    let error = engine
        .execute(
            "CREATE TABLE dim WITH (connector = 'postgres', \
             url = 'postgres://nobody@127.0.0.1:1/none', table = 'dim', timeout = '5 seconds')",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("postgres table 'dim' of table 'dim' (connecting)"),
        "{error}"
    );
}
