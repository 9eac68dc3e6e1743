//! `weir serve` as its users run it: the real binary on a free loopback port, driven over
//! HTTP by a real client ([`Server`]).

mod alerts;
mod api;
mod flight_sql;
mod metrics;
mod restart;
mod security;

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// A `weir serve` process on a free loopback port.
pub(crate) struct Server {
    pub child: Child,
    pub base: String,
    /// Its log (stderr) so far.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The token requests carry, if any.
    token: Option<String>,
    _checkpoints: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts `weir serve --listen 127.0.0.1:0` with a checkpoint root of its own.
    pub fn start() -> Self {
        let checkpoints = tempfile::tempdir().expect("temp dir");
        let mut server = Self::spawn([
            OsString::from("--checkpoint-root"),
            checkpoints.path().into(),
        ]);
        server._checkpoints = Some(checkpoints);
        server
    }

    /// Starts `weir serve --listen 127.0.0.1:0` with `args`, and reads the address it took
    /// from its log.
    pub fn spawn(args: impl IntoIterator<Item = OsString>) -> Self {
        Self::spawn_until(
            ["--listen".into(), "127.0.0.1:0".into()]
                .into_iter()
                .chain(args),
            |line| !line.contains("Flight SQL") && line.contains("address="),
        )
    }

    /// Starts `weir serve --no-http --flight-sql 127.0.0.1:0` with `args`: Flight SQL
    /// alone. `base` is empty; [`Server::flight_sql_address`] has the
    /// address.
    pub fn spawn_flight_sql_only(args: impl IntoIterator<Item = OsString>) -> Self {
        let mut server = Self::spawn_until(
            [
                "--no-http".into(),
                "--flight-sql".into(),
                "127.0.0.1:0".into(),
            ]
            .into_iter()
            .chain(args),
            |line| line.contains("Flight SQL listening"),
        );
        server.base = String::new();
        server
    }

    /// Starts `weir serve` with `args` and waits for the first log line that `ready`
    /// accepts, taking the address it names as `base`.
    fn spawn_until(
        args: impl IntoIterator<Item = OsString>,
        ready: impl Fn(&str) -> bool + Send + 'static,
    ) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("serve")
            .args(args)
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting weir serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if ready(&line)
                    && let Some((_, address)) = line.split_once("address=")
                {
                    let _ = tx.send(address.trim().to_string());
                }
                lines.lock().expect("log").push(line);
            }
        });
        let address = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("weir serve logs the address it listens on");
        Self {
            child,
            base: format!("http://{address}"),
            log,
            token: None,
            _checkpoints: None,
        }
    }

    /// The address its Flight SQL endpoint took, from its log (waits for the line).
    pub fn flight_sql_address(&self) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let found = self.log.lock().expect("log").iter().find_map(|line| {
                line.contains("Flight SQL listening")
                    .then(|| {
                        line.split_once("address=")
                            .map(|(_, a)| a.trim().to_string())
                    })
                    .flatten()
            });
            if let Some(address) = found {
                return address;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no Flight SQL address in the log:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends it SIGTERM and waits (30 s at most) for it to exit; its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let term = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(term.expect("kill").success());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("polling weir serve") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "weir serve did not exit on SIGTERM:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log.lock().expect("log");
        log[log.len().saturating_sub(30)..].join("\n")
    }

    /// From now on, requests carry `token`.
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = reqwest::Client::new().request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let request = self.request(reqwest::Method::POST, path).json(&body);
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON answer"))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let request = self.request(reqwest::Method::GET, path);
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON answer"))
    }

    pub async fn sql(&self, sql: &str) -> (u16, Value) {
        self.post("/api/sql", json!({ "sql": sql })).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
