//! A server with a state directory, killed with SIGKILL while its queries run and started
//! again: it re-creates its catalog and restarts each query that was running from its
//! checkpoint, so the sink holds every row exactly once. A query a user stopped stays
//! stopped; a graceful stop (SIGTERM) restarts like a crash does; a damaged catalog file is
//! refused with a message saying what to do.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, Field, Schema};
use serde_json::Value;

use super::Server;
use crate::crash::{oracle_over_json, rows_of, sink_batches};

const ROWS_PER_FILE: u64 = 200;
/// The query of the sink under test (through a view, so the view must come back too).
const VIEW: &str = "SELECT id, upper(name) AS name FROM events WHERE id % 3 <> 0";

/// Writes input file `index` atomically (a hidden name, then a rename).
fn write_input_file(dir: &Path, index: u64) {
    let mut text = String::new();
    for id in index * ROWS_PER_FILE..(index + 1) * ROWS_PER_FILE {
        let name = ["ann", "bo", "cy"][(id % 3) as usize];
        text += &format!("{{\"id\": {id}, \"name\": \"{name}\"}}\n");
    }
    let hidden = dir.join(format!(".{index:06}.tmp"));
    fs::write(&hidden, text).expect("writing an input file");
    fs::rename(&hidden, dir.join(format!("{index:06}.json"))).expect("publishing an input file");
}

fn state_args(state: &Path) -> Vec<OsString> {
    vec!["--state-dir".into(), state.into()]
}

async fn query_states(server: &Server) -> BTreeMap<String, String> {
    let (status, body) = server.get("/api/queries").await;
    assert_eq!(status, 200, "{body}");
    body["queries"]
        .as_array()
        .expect("queries")
        .iter()
        .map(|q| {
            (
                q["name"].as_str().expect("name").to_string(),
                q["state"].as_str().expect("state").to_string(),
            )
        })
        .collect()
}

/// Polls until the sink holds `expected` rows (or a minute passed); its rows.
fn wait_for_rows(out: &Path, expected: usize, server: &Server) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = rows_of(&sink_batches(out));
        if rows.len() >= expected || Instant::now() > deadline {
            assert_eq!(
                rows.len(),
                expected,
                "rows in the sink after restarts\n{}",
                server.log_tail()
            );
            return rows;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_server_restarts_its_queries_from_their_checkpoints_exactly_once() {
    let root = tempfile::tempdir().expect("temp dir");
    let (state, input, out, other) = (
        root.path().join("state"),
        root.path().join("in"),
        root.path().join("out"),
        root.path().join("other"),
    );
    fs::create_dir_all(&input).expect("input dir");
    let mut server = Server::spawn(state_args(&state));
    let (status, body) = server
        .sql(&format!(
            "CREATE SOURCE events (id BIGINT, name VARCHAR) WITH (connector = 'files', \
             path = '{}', format = 'json', max_files_per_trigger = '1');\n\
             CREATE VIEW kept AS {VIEW};\n\
             CREATE SINK out WITH (connector = 'parquet', path = '{}') AS SELECT * FROM kept;\n\
             CREATE SINK other WITH (connector = 'parquet', path = '{}') AS SELECT id FROM events;\n\
             STOP QUERY other",
            input.display(),
            out.display(),
            other.display()
        ))
        .await;
    assert_eq!(status, 200, "{body}");

    // Files keep arriving; the server is killed at seeded moments and started again.
    let mut files = 0;
    let seed: u64 = std::env::var("WEIR_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
        });
    eprintln!("WEIR_CRASH_SEED={seed}");
    let mut rng = seed;
    let mut next = |below: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % below
    };
    for kill in 0..5 {
        for _ in 0..4 {
            write_input_file(&input, files);
            files += 1;
        }
        tokio::time::sleep(Duration::from_millis(200 + next(1200))).await;
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaping weir serve");
        server = Server::spawn(state_args(&state));
        let states = query_states(&server).await;
        assert_eq!(
            states.get("out").map(String::as_str),
            Some("running"),
            "after kill {kill}: {states:?}\n{}",
            server.log_tail()
        );
        assert!(
            !states.contains_key("other"),
            "a stopped query was restarted: {states:?}"
        );
    }

    // A graceful stop keeps the query running across the restart as well.
    assert!(server.terminate().success());
    for _ in 0..3 {
        write_input_file(&input, files);
        files += 1;
    }
    let server = Server::spawn(state_args(&state));
    let states = query_states(&server).await;
    assert_eq!(states.get("out").map(String::as_str), Some("running"));

    // Every row exactly once, as DataFusion computes the view over all the input at once.
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]);
    let mut expected = tokio::task::spawn_blocking(move || oracle_over_json(&input, &schema, VIEW))
        .await
        .expect("the oracle");
    let mut rows = tokio::task::block_in_place(|| wait_for_rows(&out, expected.len(), &server));
    rows.sort();
    expected.sort();
    assert_eq!(rows, expected, "{}", server.log_tail());

    // The catalog came back: the source, the view, both sinks (the stopped one's query
    // not restarted).
    let (_, body) = server.sql("SHOW VIEWS; SHOW SINKS").await;
    let names = |result: &Value| -> Vec<String> {
        let rows = result["rows"].as_array().expect("rows");
        rows.iter()
            .map(|r| r["name"].as_str().expect("name").to_string())
            .collect()
    };
    assert_eq!(names(&body["results"][0]), ["kept"], "{body}");
    assert_eq!(names(&body["results"][1]), ["other", "out"], "{body}");
}

#[test]
fn a_damaged_catalog_is_refused_with_what_to_do() {
    let state = tempfile::tempdir().expect("temp dir");
    fs::write(
        state.path().join("catalog.json"),
        "{\"format\": 1, \"statem",
    )
    .expect("writing");
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state.path())
        .output()
        .expect("running weir serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "the catalog {} is damaged",
            state.path().join("catalog.json").display()
        )) && stderr.contains("move it aside to start with an empty catalog"),
        "{stderr}"
    );
}
