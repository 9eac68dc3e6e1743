//! The HTTP API driven by a real client: statements in, rows and queries out, the error
//! statuses, stopping a query, a graceful stop on SIGTERM, and the command-line client.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use super::Server;

#[tokio::test]
async fn the_http_api_runs_statements_and_manages_queries() {
    let server = Server::start();
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .expect("healthz");
    assert_eq!(health.text().await.expect("body"), "ok");

    // DDL, a continuous query into a memory sink, and rows read back.
    let (status, body) = server
        .sql(
            "CREATE SOURCE clicks (user_id INT, url VARCHAR) WITH (connector = 'memory'); \
             INSERT INTO clicks VALUES (1, 'a'), (2, 'b'), (1, 'c'); \
             CREATE SINK user1 WITH (connector = 'memory') AS \
             SELECT url FROM clicks WHERE user_id = 1",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 3, "{body}");
    assert_eq!(results[0]["kind"], "done");
    assert_eq!(results[2], json!({"kind": "started", "query": "user1"}));

    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let (status, body) = server.sql("SELECT url FROM user1 ORDER BY url").await;
        assert_eq!(status, 200, "{body}");
        let rows = body["results"][0]["rows"].clone();
        if rows.as_array().is_some_and(|r| r.len() == 2) || Instant::now() > deadline {
            assert_eq!(body["results"][0]["columns"], json!(["url"]));
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rows, json!([{"url": "a"}, {"url": "c"}]));

    // The query, listed and described with its progress and plan.
    let (status, body) = server.get("/api/queries").await;
    assert_eq!(status, 200);
    let queries = body["queries"].as_array().expect("queries");
    assert_eq!(queries.len(), 1, "{body}");
    assert_eq!(queries[0]["name"], "user1");
    assert_eq!(queries[0]["state"], "running");
    assert_eq!(queries[0]["sources"], json!(["clicks"]));
    let (status, one) = server.get("/api/queries/user1").await;
    assert_eq!(status, 200);
    let input: u64 = one["recent_progress"]
        .as_array()
        .expect("recent progress")
        .iter()
        .map(|p| p["numInputRows"].as_u64().expect("input rows"))
        .sum();
    assert_eq!(input, 3, "{one}");
    assert!(one["plan"].as_str().is_some_and(|p| !p.is_empty()), "{one}");

    // Errors carry the status that fits.
    let (status, body) = server.sql("SELEC 1").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["status"], 400);
    let (status, body) = server
        .sql("CREATE SOURCE clicks (a INT) WITH (connector = 'memory')")
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("'clicks' already exists as a source")),
        "{body}"
    );
    let (status, body) = server.get("/api/queries/nope").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["error"]["message"],
        "no query named 'nope'; GET /api/queries lists them"
    );
    let (status, body) = server.sql("DROP SOURCE nope").await;
    assert_eq!(status, 404, "{body}");

    // Stopping the query.
    let (status, body) = server.post("/api/queries/user1/stop", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "stopped");

    // The OpenAPI document lists each endpoint, and each it lists answers.
    let (status, document) = server.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    let paths = document["paths"].as_object().expect("paths");
    let mut listed: Vec<&str> = paths.keys().map(String::as_str).collect();
    listed.sort_unstable();
    assert_eq!(
        listed,
        [
            "/api/openapi.json",
            "/api/queries",
            "/api/queries/{name}",
            "/api/queries/{name}/stop",
            "/api/sql",
            "/healthz",
            "/metrics"
        ]
    );
    let client = reqwest::Client::new();
    for (path, methods) in paths {
        let url = format!("{}{}", server.base, path.replace("{name}", "user1"));
        for method in methods.as_object().expect("methods").keys() {
            let request = match method.as_str() {
                "get" => client.get(&url),
                "post" => client.post(&url).json(&json!({"sql": "SHOW SOURCES"})),
                other => panic!("unexpected method {other} for {path}"),
            };
            let status = request.send().await.expect("request").status().as_u16();
            assert_eq!(status, 200, "{method} {path}");
        }
    }
}

#[tokio::test]
async fn sigterm_stops_the_server_and_its_queries_gracefully() {
    let mut server = Server::start();
    let (status, body) = server
        .sql(
            "CREATE SOURCE bids WITH (connector = 'nexmark', table = 'bid', \
             events_per_second = '1000'); \
             CREATE SINK counted WITH (connector = 'blackhole') AS SELECT auction FROM bids",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let status = server.terminate();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn rows_come_as_arrow_ipc_when_asked_and_parse_errors_say_where() {
    let server = Server::start();
    let (status, body) = server
        .sql(
            "CREATE SOURCE prices (item VARCHAR, cents BIGINT) WITH (connector = 'memory'); \
             INSERT INTO prices VALUES ('tea', 250), ('cake', 400)",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let arrow = |sql: &str| {
        reqwest::Client::new()
            .post(format!("{}/api/sql", server.base))
            .header("accept", "application/vnd.apache.arrow.stream")
            .json(&json!({ "sql": sql }))
            .send()
    };
    let response = arrow("SELECT item, cents * 2 AS doubled FROM prices ORDER BY item")
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.apache.arrow.stream"
    );
    let bytes = response.bytes().await.expect("the body");
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .expect("an Arrow IPC stream");
    let batches: Vec<_> = reader.map(|b| b.expect("a batch")).collect();
    assert_eq!(
        arrow::util::pretty::pretty_format_batches(&batches)
            .expect("printable")
            .to_string(),
        "+------+---------+\n| item | doubled |\n+------+---------+\n| cake | 800     |\n\
         | tea  | 500     |\n+------+---------+"
    );
    let response = arrow("SHOW TABLES; SHOW SOURCES").await.expect("request");
    assert_eq!(response.status().as_u16(), 406);
    // A statement without rows is refused before it runs.
    let response = arrow("CREATE SOURCE more (a INT) WITH (connector = 'memory')")
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 406);
    let (_, body) = server.sql("SHOW SOURCES").await;
    assert_eq!(
        body["results"][0]["rows"].as_array().map(Vec::len),
        Some(1),
        "{body}"
    );

    // A statement that does not parse: 400, with the line and column.
    let (status, body) = server
        .sql("SHOW TABLES;\nSELECT item FROM prices WHERE )")
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["position"],
        json!({"line": 2, "column": 31}),
        "{body}"
    );
    let (status, body) = server
        .sql("SHOW TABLES;\nSELECT item FROM prices WHERE")
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["position"],
        json!({"line": 2, "column": 30}),
        "{body}"
    );
    // A body that is not the API's JSON: said in the same error shape.
    let response = reqwest::Client::new()
        .post(format!("{}/api/sql", server.base))
        .header("content-type", "application/json")
        .body("{\"query\": 1}")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 422);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("missing field `sql`")),
        "{body}"
    );
}

/// `weir submit`, `weir queries` and `weir stop` against a running server.
#[tokio::test]
async fn the_cli_submits_lists_and_stops_queries_on_a_server() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let job = dir.path().join("job.sql");
    std::fs::write(
        &job,
        "CREATE SOURCE clicks (user_id INT, url VARCHAR) WITH (connector = 'memory');\n\
         CREATE SINK everything WITH (connector = 'memory') AS SELECT url FROM clicks;\n",
    )
    .expect("writing the job");
    let weir = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .env("WEIR_SERVER", &server.base)
            .output()
            .expect("running weir");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    let job = job.display().to_string();
    let (ok, stdout, stderr) = weir(&["submit", &job]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("started query everything"), "{stdout}");

    let (ok, stdout, stderr) = weir(&["queries"]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "name\tstate\tbatches\tlast error");
    assert!(lines[1].starts_with("everything\trunning\t"), "{stdout}");

    let (ok, stdout, stderr) = weir(&["stop", "everything"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "everything: stopped");

    // A second submit of the same job names the conflict; an unknown query, its absence.
    let (ok, _, stderr) = weir(&["submit", &job]);
    assert!(!ok);
    assert!(
        stderr.contains("error: 'clicks' already exists as a source"),
        "{stderr}"
    );
    let (ok, _, stderr) = weir(&["stop", "nope"]);
    assert!(!ok);
    assert_eq!(
        stderr.trim(),
        "error: no query named 'nope'; GET /api/queries lists them"
    );
    // No server there: said so.
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["queries", "--server", "http://127.0.0.1:9"])
        .output()
        .expect("running weir");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot reach the server at http://127.0.0.1:9")
            && stderr.contains("is `weir serve` running?"),
        "{stderr}"
    );
}
