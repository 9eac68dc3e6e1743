//! The Flight SQL endpoint (`weir serve --flight-sql`) driven by arrow-flight's own Flight SQL
//! client: statements that create a source and start a query, an ad hoc query read back as
//! Arrow, the catalog calls, and the token.

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::pretty::pretty_format_batches;
use arrow_flight::FlightInfo;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables, SqlInfo};
use futures::TryStreamExt;
use tonic::transport::Channel;

use super::Server;

const TOKEN: &str = "a-long-enough-flight-token-42";

async fn client(address: &str, token: Option<&str>) -> FlightSqlServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{address}"))
        .expect("a URI")
        .connect()
        .await
        .expect("connecting to Flight SQL");
    let mut client = FlightSqlServiceClient::new(channel);
    if let Some(token) = token {
        client.set_token(token.to_string());
    }
    client
}

/// Every batch of every endpoint of `info`, as a table.
async fn fetch(client: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> String {
    let mut batches: Vec<RecordBatch> = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("a ticket");
        let stream = client.do_get(ticket).await.expect("do_get");
        batches.extend(stream.try_collect::<Vec<_>>().await.expect("batches"));
    }
    pretty_format_batches(&batches)
        .expect("printable")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn flight_sql_runs_statements_and_lists_the_catalog() {
    let server = Server::spawn([
        "--flight-sql".into(),
        "127.0.0.1:0".into(),
        "--token".into(),
        TOKEN.into(),
        "--checkpoint-root".into(),
        tempfile::tempdir().expect("temp dir").keep().into(),
    ]);
    let address = server.flight_sql_address();

    // Without the token: refused, saying why.
    let mut anonymous = client(&address, None).await;
    let refused = anonymous
        .execute("SHOW SOURCES".to_string(), None)
        .await
        .expect_err("no token");
    assert!(
        refused.to_string().contains("this server needs a token"),
        "{refused}"
    );

    let mut client = client(&address, Some(TOKEN)).await;
    for (statement, answer) in [
        (
            "CREATE SOURCE clicks (user_id INT, url VARCHAR) WITH (connector = 'memory')",
            "created source clicks",
        ),
        (
            "INSERT INTO clicks VALUES (1, 'a'), (2, 'b'), (1, 'c')",
            "inserted 3 rows into clicks",
        ),
        (
            "CREATE SINK by_user WITH (connector = 'memory', trigger = 'available-now') AS \
             SELECT user_id, url FROM clicks",
            "started query by_user",
        ),
    ] {
        let info = client
            .execute(statement.to_string(), None)
            .await
            .expect("a statement");
        let table = fetch(&mut client, info).await;
        assert!(table.contains(answer), "{statement}: {table}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let rows = loop {
        let info = client
            .execute(
                "SELECT user_id, url FROM by_user ORDER BY url".to_string(),
                None,
            )
            .await
            .expect("a query");
        let table = fetch(&mut client, info).await;
        if table.contains("| c ") || std::time::Instant::now() > deadline {
            break table;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        rows,
        "+---------+-----+\n\
         | user_id | url |\n\
         +---------+-----+\n\
         | 1       | a   |\n\
         | 2       | b   |\n\
         | 1       | c   |\n\
         +---------+-----+"
    );
    // A prepared statement with a bound parameter, as ADBC's DB-API runs every statement.
    let mut prepared = client
        .prepare(
            "SELECT url FROM by_user WHERE user_id = $1 ORDER BY url".to_string(),
            None,
        )
        .await
        .expect("prepared");
    let parameters = RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(vec![Field::new("$1", DataType::Int64, false)])),
        vec![std::sync::Arc::new(Int64Array::from(vec![1]))],
    )
    .expect("a row of parameters");
    prepared.set_parameters(parameters).expect("bound");
    let info = prepared.execute().await.expect("executed");
    assert_eq!(
        fetch(&mut client, info).await,
        "+-----+\n| url |\n+-----+\n| a   |\n| c   |\n+-----+"
    );
    prepared.close().await.expect("closed");
    let mut ddl = client
        .prepare(
            "CREATE VIEW ones AS SELECT url FROM by_user WHERE user_id = 1".to_string(),
            None,
        )
        .await
        .expect("prepared");
    let info = ddl.execute().await.expect("executed");
    assert!(fetch(&mut client, info).await.contains("created view ones"));

    let bad = client
        .execute("SELEC 1".to_string(), None)
        .await
        .expect_err("bad SQL");
    assert!(bad.to_string().contains("syntax error"), "{bad}");

    // The catalog calls.
    let info = client.get_catalogs().await.expect("catalogs");
    assert!(fetch(&mut client, info).await.contains("| weir "));
    let info = client
        .get_db_schemas(CommandGetDbSchemas::default())
        .await
        .expect("schemas");
    assert!(
        fetch(&mut client, info)
            .await
            .contains("| weir         | public ")
    );
    let info = client
        .get_tables(CommandGetTables {
            include_schema: false,
            ..Default::default()
        })
        .await
        .expect("tables");
    let tables = fetch(&mut client, info).await;
    assert!(
        tables.contains("| weir         | public         | clicks     | SOURCE     |")
            && tables.contains("| weir         | public         | by_user    | SINK       |"),
        "{tables}"
    );
    let info = client
        .get_sql_info(vec![SqlInfo::FlightSqlServerName])
        .await
        .expect("sql info");
    assert!(fetch(&mut client, info).await.contains("Weir"));
}

#[tokio::test(flavor = "multi_thread")]
async fn flight_sql_speaks_tls_with_the_given_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("a self-signed certificate");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("key");
    let server = Server::spawn([
        "--flight-sql".into(),
        "127.0.0.1:0".into(),
        "--tls-cert".into(),
        cert.into(),
        "--tls-key".into(),
        key.into(),
    ]);
    let address = server.flight_sql_address();
    let port = address.rsplit(':').next().expect("a port");
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(
            certified.cert.pem(),
        ))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://localhost:{port}"))
        .expect("a URI")
        .tls_config(tls)
        .expect("TLS")
        .connect()
        .await
        .expect("a TLS connection");
    let mut client = FlightSqlServiceClient::new(channel);
    let info = client
        .execute(
            "CREATE SOURCE secret (a INT) WITH (connector = 'memory')".to_string(),
            None,
        )
        .await
        .expect("a statement over TLS");
    assert_eq!(
        fetch(&mut client, info).await,
        "+-----------------------+\n\
         | result                |\n\
         +-----------------------+\n\
         | created source secret |\n\
         +-----------------------+"
    );
    // A client without TLS gets no answer.
    let plain = Channel::from_shared(format!("http://{address}"))
        .expect("a URI")
        .connect()
        .await;
    if let Ok(plain) = plain {
        let mut plain = FlightSqlServiceClient::new(plain);
        assert!(
            plain
                .execute("SHOW SOURCES".to_string(), None)
                .await
                .is_err()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn flight_sql_alone_announces_result_schemas_and_lists_types() {
    let mut server = Server::spawn_flight_sql_only([
        "--checkpoint-root".into(),
        tempfile::tempdir().expect("temp dir").keep().into(),
    ]);
    let address = server.flight_sql_address();
    let mut client = client(&address, None).await;
    let info = client
        .execute(
            "CREATE SOURCE clicks (user_id INT, url VARCHAR) WITH (connector = 'memory')"
                .to_string(),
            None,
        )
        .await
        .expect("a statement");
    fetch(&mut client, info).await;

    // A prepared query announces its columns before it runs, parameters and all; DDL
    // announces its one `result` column.
    let field = |name: &str, data_type| Field::new(name, data_type, true);
    let expected = Schema::new(vec![
        field("user_id", DataType::Int32),
        field("url", DataType::Utf8View),
    ]);
    for sql in [
        "SELECT user_id, url FROM clicks",
        "SELECT user_id, url FROM clicks WHERE user_id = $1",
    ] {
        let prepared = client.prepare(sql.to_string(), None).await.expect(sql);
        assert_eq!(prepared.dataset_schema().expect(sql), &expected, "{sql}");
    }
    // `$1` alone takes its type from its value: no columns are announced, and the bound
    // statement answers its own.
    let mut untyped = client
        .prepare("SELECT $1 AS v".to_string(), None)
        .await
        .expect("prepared");
    assert_eq!(
        untyped.dataset_schema().expect("a schema"),
        &Schema::empty()
    );
    untyped
        .set_parameters(
            RecordBatch::try_new(
                std::sync::Arc::new(Schema::new(vec![Field::new("$1", DataType::Int64, false)])),
                vec![std::sync::Arc::new(Int64Array::from(vec![7]))],
            )
            .expect("a row"),
        )
        .expect("bound");
    let info = untyped.execute().await.expect("executed");
    assert_eq!(
        fetch(&mut client, info).await,
        "+---+\n| v |\n+---+\n| 7 |\n+---+"
    );
    let ddl = client
        .prepare("CREATE VIEW v AS SELECT url FROM clicks".to_string(), None)
        .await
        .expect("prepared DDL");
    assert_eq!(
        ddl.dataset_schema().expect("a schema"),
        &Schema::new(vec![Field::new("result", DataType::Utf8, false)])
    );

    // No rows still answer their columns.
    let info = client
        .execute("SELECT url FROM clicks WHERE user_id = 7".to_string(), None)
        .await
        .expect("a query");
    assert_eq!(
        info.clone().try_decode_schema().expect("a schema"),
        Schema::new(vec![field("url", DataType::Utf8View)])
    );
    let ticket = info.endpoint[0].ticket.clone().expect("a ticket");
    let mut stream = client.do_get(ticket).await.expect("do_get");
    let mut rows = 0;
    while let Some(batch) = stream.try_next().await.expect("a batch") {
        rows += batch.num_rows();
    }
    assert_eq!(rows, 0);
    assert_eq!(
        stream.schema().map(|s| s.as_ref().clone()),
        Some(Schema::new(vec![field("url", DataType::Utf8View)])),
        "the stream carries the columns"
    );

    // Ordered by type, as Flight SQL asks.
    let info = client.get_table_types().await.expect("table types");
    assert_eq!(
        fetch(&mut client, info).await,
        "+------------+\n\
         | table_type |\n\
         +------------+\n\
         | SINK       |\n\
         | SOURCE     |\n\
         | TABLE      |\n\
         | VIEW       |\n\
         +------------+"
    );
    let info = client
        .get_xdbc_type_info(arrow_flight::sql::CommandGetXdbcTypeInfo {
            data_type: Some(arrow_flight::sql::XdbcDataType::XdbcBigint as i32),
        })
        .await
        .expect("type info");
    let types = fetch(&mut client, info).await;
    assert!(
        types.contains("| BIGINT    | -5        | 19          |"),
        "{types}"
    );
    assert!(!types.contains("VARCHAR"), "filtered to BIGINT: {types}");

    // No HTTP server was started, and SIGTERM stops it gracefully.
    assert!(
        !server.log_tail().contains("weir serve: listening"),
        "{}",
        server.log_tail()
    );
    let status = server.terminate();
    assert!(status.success(), "{status}\n{}", server.log_tail());
}
