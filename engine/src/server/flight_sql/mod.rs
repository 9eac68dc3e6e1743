//! The Arrow Flight SQL endpoint of `weir serve --flight-sql ADDR` (arrow-flight's
//! `FlightSqlService` on tonic), over the public [`Engine`] API, so that ADBC, JDBC and ODBC
//! Flight SQL drivers reach Weir.
//!
//! - A statement (`CommandStatementQuery`) runs when its flight info is asked for: an ad hoc
//!   `SELECT` over tables, views, sinks and stream snapshots, `SHOW`, `DESCRIBE`, `EXPLAIN`
//!   answer their rows; DDL and `CREATE SINK … AS` (which starts a query) answer one row with
//!   one column, `result`, saying what was done. The answer waits under a one-use ticket until
//!   the client fetches it (`DoGet`); tickets not fetched within a minute are dropped.
//! - `DoPut` of a `CommandStatementUpdate` runs a statement and answers -1 rows (the count is
//!   unknown for streaming DDL).
//! - Catalog calls: one catalog, `weir`, with one schema, `public`, holding the sources
//!   (`SOURCE`), tables (`TABLE`), views (`VIEW`) and sinks (`SINK`), with their Arrow schemas
//!   when asked; `GetTableTypes` lists those types, `GetXdbcTypeInfo` the SQL types
//!   (`type_info`); `GetSqlInfo` names the server.
//! - With a token, every call must carry `authorization: Bearer <token>` (as the HTTP API).
//!
//! - Prepared statements (what ADBC's DB-API runs every statement as): the text is kept under
//!   a handle; parameters bound with `DoPut` (one row) replace the placeholders `$1`, `$2`, …
//!   as SQL literals (see `parameters`); the statement runs when its flight info is asked for,
//!   as above. Preparing announces the answer's columns ([`Engine::result_schema`]: a query
//!   is planned, not run), or `result` for a statement without rows; one that cannot be
//!   planned before its parameters are bound announces none.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfoData};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandStatementQuery, CommandStatementUpdate,
    DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, IpcMessage, SchemaAsIpc, Ticket,
};
use futures::{Stream, TryStreamExt};
use prost::Message as _;
use tonic::{Request, Response, Status};

use crate::Engine;
use crate::api::Outcome;
use crate::error::WeirError;

mod parameters;
mod type_info;

/// The catalog and schema every object of the engine is listed under.
const CATALOG: &str = "weir";
const SCHEMA: &str = "public";
/// The table types of `GetTables`, as `GetTableTypes` lists them.
const TABLE_TYPES: [&str; 4] = ["SOURCE", "TABLE", "VIEW", "SINK"];
/// How long an answer waits for its `DoGet`.
const ANSWER_TTL: Duration = Duration::from_secs(60);

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

/// An answer waiting for its ticket.
struct Answer {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    made: Instant,
}

/// A prepared statement: its text and the parameters bound to it.
struct Prepared {
    sql: String,
    parameters: Option<RecordBatch>,
}

/// The Flight SQL service over an engine.
pub struct WeirFlightSql {
    engine: Engine,
    answers: Mutex<HashMap<Vec<u8>, Answer>>,
    prepared: Mutex<HashMap<Vec<u8>, Prepared>>,
    next_handle: std::sync::atomic::AtomicU64,
    sql_info: SqlInfoData,
    type_info: XdbcTypeInfoData,
}

impl std::fmt::Debug for WeirFlightSql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeirFlightSql").finish_non_exhaustive()
    }
}

impl WeirFlightSql {
    /// The service over `engine`.
    pub fn new(engine: Engine) -> crate::error::Result<Self> {
        let mut info = SqlInfoDataBuilder::new();
        info.append(SqlInfo::FlightSqlServerName, "Weir");
        info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        info.append(SqlInfo::FlightSqlServerArrowVersion, "59");
        info.append(SqlInfo::FlightSqlServerReadOnly, false);
        info.append(SqlInfo::FlightSqlServerTransaction, 0i32);
        let sql_info = info
            .build()
            .map_err(|e| WeirError::Internal(format!("Flight SQL server info: {e}")))?;
        Ok(Self {
            engine,
            answers: Mutex::new(HashMap::new()),
            prepared: Mutex::new(HashMap::new()),
            next_handle: std::sync::atomic::AtomicU64::new(0),
            sql_info,
            type_info: type_info::weir_types()?,
        })
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Answer>> {
        self.answers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one statement; its answer as batches with their schema.
    async fn run(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), Status> {
        let mut statements =
            weir_sql::parse_script(sql).map_err(|e| status_of(&WeirError::from(e)))?;
        if statements.len() != 1 {
            return Err(Status::invalid_argument(format!(
                "a Flight SQL statement must be one statement, and this holds {}",
                statements.len()
            )));
        }
        let outcome = self
            .engine
            .execute_script_statement(statements.remove(0))
            .await
            .map_err(|e| status_of(&e))?;
        let message = match outcome {
            Outcome::Rows(batches) => {
                let schema = batches
                    .first()
                    .map(RecordBatch::schema)
                    .unwrap_or_else(|| Arc::new(Schema::empty()));
                return Ok((schema, batches));
            }
            Outcome::Done(message) => message,
            Outcome::Started(query) => format!("started query {}", query.name()),
        };
        let schema = result_schema();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(StringArray::from(vec![message]))],
        )
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok((schema, vec![batch]))
    }

    fn prepared(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Prepared>> {
        self.prepared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_handle(&self) -> Vec<u8> {
        self.next_handle
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_string()
            .into_bytes()
    }

    /// Runs `sql` and keeps its answer; the flight info that fetches it.
    async fn answer(
        &self,
        sql: &str,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let (schema, batches) = self.run(sql).await?;
        let handle = self.keep(Arc::clone(&schema), batches);
        let ticket = TicketStatementQuery {
            statement_handle: handle.into(),
        };
        flight_info(&schema, ticket.as_any().encode_to_vec(), descriptor)
    }

    /// Keeps an answer for its `DoGet`; the ticket that fetches it.
    fn keep(&self, schema: SchemaRef, batches: Vec<RecordBatch>) -> Vec<u8> {
        let handle = self.new_handle();
        let mut answers = self.answers();
        answers.retain(|_, a| a.made.elapsed() < ANSWER_TTL);
        answers.insert(
            handle.clone(),
            Answer {
                schema,
                batches,
                made: Instant::now(),
            },
        );
        handle
    }

    /// The objects of the catalog as (name, table type), in the order `SHOW` lists them.
    async fn objects(&self) -> Result<Vec<(String, &'static str)>, Status> {
        let mut objects = Vec::new();
        for (show, kind) in [
            ("SHOW SOURCES", "SOURCE"),
            ("SHOW TABLES", "TABLE"),
            ("SHOW VIEWS", "VIEW"),
            ("SHOW SINKS", "SINK"),
        ] {
            let batches = self.engine.sql(show).await.map_err(|e| status_of(&e))?;
            for batch in &batches {
                let names = batch
                    .column_by_name("name")
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                    .ok_or_else(|| Status::internal(format!("{show} has no name column")))?;
                objects.extend(names.iter().flatten().map(|n| (n.to_string(), kind)));
            }
        }
        Ok(objects)
    }
}

/// The one column of the answer to a statement that answers no rows: what it did.
fn result_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "result",
        DataType::Utf8,
        false,
    )]))
}

/// `schema` as Flight SQL sends a schema in a message: an IPC schema message.
fn ipc_schema(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let message: IpcMessage = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(message.0)
}

fn unknown_prepared() -> Status {
    Status::not_found("no prepared statement has this handle: it was closed, or never made")
}

/// A Weir error as a gRPC status.
fn status_of(error: &WeirError) -> Status {
    let message = error.to_string();
    match error {
        WeirError::Sql(_) | WeirError::Plan(_) | WeirError::Connector(_) => {
            Status::invalid_argument(message)
        }
        WeirError::NotFound(_) => Status::not_found(message),
        WeirError::Conflict(_) => Status::already_exists(message),
        _ => Status::internal(message),
    }
}

/// A flight info answering `command` with `schema`, fetched with `ticket`.
fn flight_info(
    schema: &Schema,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket));
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(e.to_string()))?
        .with_endpoint(endpoint)
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// The flight info of a metadata command, fetched with the command itself as ticket.
fn command_info(
    schema: &Schema,
    command: &impl ProstMessageExt,
    request: Request<FlightDescriptor>,
) -> Result<Response<FlightInfo>, Status> {
    flight_info(
        schema,
        command.as_any().encode_to_vec(),
        request.into_inner(),
    )
}

/// A metadata builder's one batch as a `DoGet` answer.
fn one_batch(
    schema: SchemaRef,
    batch: Result<RecordBatch, impl std::fmt::Display>,
) -> Result<Response<DoGetStream>, Status> {
    let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
    Ok(stream(schema, vec![batch]))
}

/// `batches` as a `DoGet` answer.
fn stream(schema: SchemaRef, batches: Vec<RecordBatch>) -> Response<DoGetStream> {
    let batches = futures::stream::iter(batches.into_iter().map(Ok));
    let encoded = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(batches)
        .map_err(Status::from);
    Response::new(Box::pin(encoded))
}

#[tonic::async_trait]
impl FlightSqlService for WeirFlightSql {
    type FlightService = WeirFlightSql;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.answer(&query.query, request.into_inner()).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let mut statements =
            weir_sql::parse_script(&query.query).map_err(|e| status_of(&WeirError::from(e)))?;
        // The columns the answer will have, for clients that show them before running it. A
        // statement that does not plan yet (a parameter whose type only its value tells)
        // announces none, and says what is wrong when it runs.
        let dataset_schema = match statements.len() {
            1 => match self
                .engine
                .result_schema(&statements.remove(0).statement)
                .await
            {
                Ok(Some(schema)) => ipc_schema(&schema)?,
                Ok(None) => ipc_schema(&result_schema())?,
                Err(_) => Default::default(),
            },
            _ => Default::default(),
        };
        let handle = self.new_handle();
        self.prepared().insert(
            handle.clone(),
            Prepared {
                sql: query.query,
                parameters: None,
            },
        );
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema,
            ..Default::default()
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let batches: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(
            request.into_inner().map_err(FlightError::from),
        )
        .try_collect()
        .await
        .map_err(|e| Status::invalid_argument(format!("reading the bound parameters: {e}")))?;
        let Some(schema) = batches.first().map(RecordBatch::schema) else {
            return Err(Status::invalid_argument("no parameters were sent"));
        };
        let parameters = arrow::compute::concat_batches(&schema, &batches)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let handle = query.prepared_statement_handle.to_vec();
        let mut prepared = self.prepared();
        let statement = prepared.get_mut(&handle).ok_or_else(unknown_prepared)?;
        statement.parameters = Some(parameters);
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle.into()),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let sql = {
            let prepared = self.prepared();
            let statement = prepared
                .get(query.prepared_statement_handle.as_ref())
                .ok_or_else(unknown_prepared)?;
            match &statement.parameters {
                Some(bound) => {
                    parameters::bind(&statement.sql, bound).map_err(Status::invalid_argument)?
                }
                None => statement.sql.clone(),
            }
        };
        self.answer(&sql, request.into_inner()).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        self.prepared()
            .remove(query.prepared_statement_handle.as_ref())
            .map(|_| ())
            .ok_or_else(unknown_prepared)
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let answer = self
            .answers()
            .remove(ticket.statement_handle.as_ref())
            .ok_or_else(|| {
                Status::not_found(
                    "no answer waits under this ticket: it was fetched already, or not within \
                     a minute; run the statement again",
                )
            })?;
        Ok(stream(answer.schema, answer.batches))
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.run(&command.query).await?;
        Ok(-1)
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        command_info(&schema, &query, request)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        builder.append(CATALOG);
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        command_info(&schema, &query, request)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        builder.append(CATALOG, SCHEMA);
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        command_info(&schema, &query, request)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let objects = self.objects().await?;
        let mut builder = query.into_builder();
        for (name, kind) in objects {
            let schema = match self
                .engine
                .session_context()
                .table_provider(name.as_str())
                .await
            {
                Ok(provider) => provider.schema(),
                Err(_) => Arc::new(Schema::empty()),
            };
            builder
                .append(CATALOG, SCHEMA, &name, kind, &schema)
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.sql_info).schema();
        command_info(&schema, &query, request)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let builder = query.into_builder(&self.sql_info);
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        command_info(&schema, &query, request)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        for kind in TABLE_TYPES {
            builder.append(kind);
        }
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder(&self.type_info).schema();
        command_info(&schema, &query, request)
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let builder = query.into_builder(&self.type_info);
        one_batch(builder.schema(), builder.build())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// The check of the bearer token on every call, as a tonic interceptor.
pub fn token_interceptor(
    token: Option<String>,
) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |request: Request<()>| {
        let Some(token) = &token else {
            return Ok(request);
        };
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given.is_some_and(|g| super::security::same(g, token)) {
            Ok(request)
        } else {
            Err(Status::unauthenticated(
                "this server needs a token: send the header `authorization: Bearer <token>` \
                 (the token the server was started with, --token or WEIR_TOKEN)",
            ))
        }
    }
}

/// Serves Flight SQL over `engine` on `listener` (TLS with the PEM `tls` certificate and key)
/// until `shutdown` completes; calls must carry `token` when there is one.
pub async fn serve_flight_sql(
    engine: Engine,
    token: Option<String>,
    listener: tokio::net::TcpListener,
    tls: Option<(Vec<u8>, Vec<u8>)>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> crate::error::Result<()> {
    let address = listener
        .local_addr()
        .map_err(|e| WeirError::Plan(format!("the Flight SQL socket has no address: {e}")))?;
    let service = arrow_flight::flight_service_server::FlightServiceServer::with_interceptor(
        WeirFlightSql::new(engine)?,
        token_interceptor(token),
    );
    let mut server = tonic::transport::Server::builder();
    if let Some((cert, key)) = tls {
        let identity = tonic::transport::Identity::from_pem(cert, key);
        server = server
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| WeirError::Plan(format!("Flight SQL TLS: {e}")))?;
    }
    tracing::info!(%address, "weir serve: Flight SQL listening");
    server
        .add_service(service)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await
        .map_err(|e| WeirError::Plan(format!("the Flight SQL server on {address} failed: {e}")))
}
