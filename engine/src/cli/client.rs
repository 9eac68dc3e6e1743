//! The commands that talk to a running `weir serve` over its HTTP API, as `spark-submit`
//! talks to a cluster: `weir submit job.sql`, `weir queries`, `weir stop NAME`. The server is
//! `--server URL`, else `WEIR_SERVER`, else `http://127.0.0.1:7117`; its token `--token`, else
//! `WEIR_TOKEN`; a certificate to trust for https `--ca-cert`, else `WEIR_CA_CERT`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::{Value, json};

/// Where the server is.
#[derive(Debug, Args)]
pub struct ServerArg {
    /// The server's URL.
    #[arg(long, env = "WEIR_SERVER", default_value = "http://127.0.0.1:7117")]
    server: String,
    /// The server's token, sent as `Authorization: Bearer <token>`.
    #[arg(long, env = "WEIR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A PEM certificate to trust for an https server (one with a self-signed certificate).
    #[arg(long, env = "WEIR_CA_CERT")]
    ca_cert: Option<PathBuf>,
}

/// Arguments of `weir submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The SQL script to run on the server (sources, tables, views, sinks and their queries).
    file: PathBuf,
    #[command(flatten)]
    server: ServerArg,
}

/// Arguments of `weir stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// The query to stop.
    name: String,
    #[command(flatten)]
    server: ServerArg,
}

/// `weir submit`: sends the script; prints what each statement did.
pub async fn submit(args: SubmitArgs) -> ExitCode {
    let sql = match std::fs::read_to_string(&args.file) {
        Ok(sql) => sql,
        Err(e) => return fail(&format!("cannot read {}: {e}", args.file.display())),
    };
    let body = json!({ "sql": sql });
    match call(&args.server, "POST", "/api/sql", Some(body)).await {
        Ok(answer) => {
            for result in answer["results"].as_array().into_iter().flatten() {
                match result["kind"].as_str() {
                    Some("started") => println!("started query {}", text(&result["query"])),
                    Some("rows") => println!("{}", result["rows"]),
                    _ => println!("{}", text(&result["message"])),
                }
            }
            ExitCode::SUCCESS
        }
        Err(message) => fail(&message),
    }
}

/// `weir queries`: one line per query.
pub async fn queries(args: ServerArg) -> ExitCode {
    match call(&args, "GET", "/api/queries", None).await {
        Ok(answer) => {
            println!("name\tstate\tbatches\tlast error");
            for query in answer["queries"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}\t{}",
                    text(&query["name"]),
                    text(&query["state"]),
                    query["batches_run"],
                    query["last_error"].as_str().unwrap_or("-"),
                );
            }
            ExitCode::SUCCESS
        }
        Err(message) => fail(&message),
    }
}

/// `weir stop NAME`.
pub async fn stop(args: StopArgs) -> ExitCode {
    let path = format!("/api/queries/{}/stop", args.name);
    match call(&args.server, "POST", &path, Some(json!({}))).await {
        Ok(answer) => {
            println!("{}: {}", text(&answer["name"]), text(&answer["state"]));
            ExitCode::SUCCESS
        }
        Err(message) => fail(&message),
    }
}

/// One request to the server; its JSON answer, or the message to show.
async fn call(
    target: &ServerArg,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let server = &target.server;
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let mut client = reqwest::Client::builder();
    if let Some(file) = &target.ca_cert {
        let pem = std::fs::read(file)
            .map_err(|e| format!("cannot read --ca-cert {}: {e}", file.display()))?;
        let certificate = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("--ca-cert {} is not a PEM certificate: {e}", file.display()))?;
        client = client.add_root_certificate(certificate);
    }
    let client = client
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    let mut request = match (method, body) {
        ("POST", Some(body)) => client.post(&url).json(&body),
        _ => client.get(&url),
    };
    if let Some(token) = &target.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| {
        format!("cannot reach the server at {server} ({e}); is `weir serve` running? (--server or WEIR_SERVER)")
    })?;
    let status = response.status();
    let answer: Value = response
        .json()
        .await
        .map_err(|e| format!("the server at {server} answered {status} with no JSON: {e}"))?;
    if status.is_success() {
        Ok(answer)
    } else {
        Err(answer["error"]["message"].as_str().map_or_else(
            || format!("the server answered {status}: {answer}"),
            str::to_string,
        ))
    }
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string)
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
