//! A paced generator (`events_per_second`) has been producing since its `CREATE SOURCE`: a
//! peek shows the events due so far, and an `available-now` query reads what is due when it
//! starts, then ends.

use std::time::{Duration, Instant};

use weir::Engine;

#[tokio::test]
async fn a_peek_and_an_available_now_run_read_the_events_due_so_far() {
    let engine = Engine::builder().build().unwrap();
    let created = Instant::now();
    engine
        .execute(
            "CREATE SOURCE bids WITH (connector = 'nexmark', table = 'bid', events_per_second = '2000')",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let peek = engine
        .sql("SELECT auction, price FROM bids LIMIT 3")
        .await
        .unwrap();
    assert_eq!(peek.iter().map(|b| b.num_rows()).sum::<usize>(), 3);

    let query = engine
        .start(
            "CREATE SINK due WITH (connector = 'memory', trigger = 'available-now') AS \
             SELECT auction FROM bids",
        )
        .await
        .unwrap();
    query.await_termination().await.unwrap();
    let read = query
        .recent_progress()
        .iter()
        .map(|p| p.input_rows)
        .sum::<u64>();
    // 2 000 events a second for at least 200 ms, of which 46 in 50 are bids; no more than
    // were due when the run ended.
    let most = (created.elapsed().as_secs_f64() * 2000.0) as u64;
    assert!(
        read >= 300 && read <= most,
        "{read} bids read, at most {most} due"
    );
    let rows = engine.sql("SELECT count(*) AS n FROM due").await.unwrap();
    let n = rows[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(n as u64, read);
}
