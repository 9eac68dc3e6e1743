//! The `postgres` sink against the PostgreSQL server of `services`: upserts of an aggregation
//! in update mode, appends that stay exactly once when a batch the database already holds is
//! re-run (its commit log entry removed, as a crash between the two commits leaves it), the
//! refusal of a new query over an old sink's table, and the clean error for an unreachable
//! database (no server needed).

use std::path::Path;

use tokio_postgres::NoTls;
use weir::Engine;

use crate::services;

/// A table name no other test run uses.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// The rows of `sql` as text lines, values joined by `|`.
async fn rows(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    client
        .simple_query(sql)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect()
}

async fn engine_with_bids() -> Engine {
    let engine = Engine::builder().target_partitions(2).build().unwrap();
    engine
        .execute("CREATE SOURCE bids (auction BIGINT, price BIGINT, bidder VARCHAR) WITH (connector = 'memory')")
        .await
        .unwrap();
    engine
}

#[tokio::test]
async fn postgres_sink_upserts_an_aggregation_in_update_mode() {
    let Some(url) = services::postgres("postgres_sink_upserts_an_aggregation_in_update_mode")
    else {
        return;
    };
    let table = unique("weir_counts");
    let checkpoint = tempfile::tempdir().unwrap();
    let engine = engine_with_bids().await;
    let query = engine
        .start(&format!(
            "CREATE SINK counts WITH (connector = 'postgres', url = '{url}', table = '{table}', \
             key = 'auction', output_mode = 'update', checkpoint = '{}') AS \
             SELECT auction, count(*) AS bids, max(price) AS top FROM bids GROUP BY auction",
            checkpoint.path().display()
        ))
        .await
        .unwrap();
    engine
        .execute("INSERT INTO bids VALUES (1, 10, 'a'), (2, 5, 'b'), (1, 30, 'c')")
        .await
        .unwrap();
    query.process_all_available().await.unwrap();
    let db = client(&url).await;
    let select = format!("SELECT auction, bids, top FROM {table} ORDER BY auction");
    assert_eq!(rows(&db, &select).await, ["1|2|30", "2|1|5"]);

    engine
        .execute("INSERT INTO bids VALUES (2, 50, 'd'), (3, 7, 'e')")
        .await
        .unwrap();
    query.process_all_available().await.unwrap();
    assert_eq!(rows(&db, &select).await, ["1|2|30", "2|2|50", "3|1|7"]);
    // The table was created with the key as its primary key.
    let key = rows(
        &db,
        &format!(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid \
             AND a.attnum = ANY(i.indkey) WHERE i.indrelid = '{table}'::regclass AND i.indisprimary"
        ),
    )
    .await;
    assert_eq!(key, ["auction"]);
    let last = query.progress().unwrap().batch_id.0;
    assert_eq!(
        rows(
            &db,
            &format!("SELECT batch_id FROM weir_sink_progress WHERE sink = 'counts' AND target = '{table}'")
        )
        .await,
        [last.to_string()]
    );
    query.stop().await.unwrap();
    db.batch_execute(&format!(
        "DROP TABLE {table}; DELETE FROM weir_sink_progress WHERE target = '{table}'"
    ))
    .await
    .unwrap();
}

/// Removes the newest `commits/N.json`, as a crash after the sink's commit but before Weir's
/// leaves the checkpoint; returns N.
fn forget_last_commit(checkpoint: &Path) -> u64 {
    let commits = checkpoint.join("commits");
    let newest = std::fs::read_dir(&commits)
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_str()?
                .strip_suffix(".json")?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap();
    std::fs::remove_file(commits.join(format!("{newest}.json"))).unwrap();
    newest
}

#[tokio::test]
async fn a_batch_the_database_holds_is_not_written_again_and_new_queries_are_refused() {
    let Some(url) = services::postgres(
        "a_batch_the_database_holds_is_not_written_again_and_new_queries_are_refused",
    ) else {
        return;
    };
    let table = unique("weir_big_bids");
    let checkpoint = tempfile::tempdir().unwrap();
    let engine = engine_with_bids().await;
    let sink = format!(
        "CREATE SINK big_bids WITH (connector = 'postgres', url = '{url}', table = '{table}', \
         checkpoint = '{}') AS SELECT auction, price, bidder FROM bids WHERE price > 10",
        checkpoint.path().display()
    );
    let query = engine.start(&sink).await.unwrap();
    engine
        .execute("INSERT INTO bids VALUES (1, 11, 'a'), (1, 11, 'a'), (2, 5, 'b')")
        .await
        .unwrap();
    query.process_all_available().await.unwrap();
    engine
        .execute("INSERT INTO bids VALUES (3, 99, NULL)")
        .await
        .unwrap();
    query.process_all_available().await.unwrap();
    query.stop().await.unwrap();
    let db = client(&url).await;
    let select = format!("SELECT auction, price, bidder FROM {table} ORDER BY auction");
    let expected = ["1|11|a", "1|11|a", "3|99|NULL"];
    assert_eq!(rows(&db, &select).await, expected);

    // The last batch's commit is lost: the restarted query re-runs it, the sink skips it.
    let rerun = forget_last_commit(checkpoint.path());
    engine.execute("DROP SINK big_bids").await.unwrap();
    let query = engine.start(&sink).await.unwrap();
    query.process_all_available().await.unwrap();
    assert_eq!(query.progress().unwrap().batch_id.0, rerun);
    assert_eq!(
        rows(&db, &select).await,
        expected,
        "a re-run batch was written twice"
    );
    query.stop().await.unwrap();

    // A new query (new checkpoint) over the same sink and table is refused.
    engine.execute("DROP SINK big_bids").await.unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let error = engine
        .start(&sink.replace(
            &checkpoint.path().display().to_string(),
            &fresh.path().display().to_string(),
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&format!(
            "sink 'big_bids': {table} already holds output of an earlier query of this sink (batch {rerun}"
        )),
        "{error}"
    );
    db.batch_execute(&format!(
        "DROP TABLE {table}; DELETE FROM weir_sink_progress WHERE target = '{table}'"
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn postgres_sink_errors_name_the_problem() {
    let engine = engine_with_bids().await;
    let error = engine
        .start(
            "CREATE SINK c WITH (connector = 'postgres', url = 'postgres://weir@127.0.0.1:9/test', \
             table = 't') AS SELECT * FROM bids",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("sink 'c' needs option 'checkpoint'"),
        "{error}"
    );
    engine.execute("DROP SINK c").await.ok();
    let checkpoint = tempfile::tempdir().unwrap();
    let checkpoint = checkpoint.path().display();
    let error = engine
        .start(&format!(
            "CREATE SINK c WITH (connector = 'postgres', url = 'postgres://weir@127.0.0.1:9/test', \
             table = 't', output_mode = 'update', checkpoint = '{checkpoint}') AS \
             SELECT auction, count(*) AS n FROM bids GROUP BY auction",
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(
            "Update mode re-emits rows that change, so the postgres sink needs option 'key'"
        ),
        "{error}"
    );
    engine.execute("DROP SINK c").await.ok();
    let started = std::time::Instant::now();
    let error = engine
        .start(&format!(
            "CREATE SINK d WITH (connector = 'postgres', url = 'postgres://weir@127.0.0.1:9/test', \
             table = 't', retry_timeout = '1 second', checkpoint = '{checkpoint}') AS \
             SELECT * FROM bids",
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("postgres 127.0.0.1:9/test (connecting)"),
        "{error}"
    );
    assert!(error.contains("gave up after retrying"), "{error}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "no retries: {error}"
    );
}
