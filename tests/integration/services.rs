//! Where the external services of the connector tests are: a Kafka-protocol broker (tansu),
//! an S3-compatible server (moto) and PostgreSQL, each on 127.0.0.1.
//!
//! A test asks for its service with [`kafka`], [`s3`] or [`postgres`]. When the service does
//! not answer, the test prints a visible `SKIPPED` line and returns early, so `cargo test` passes
//! on a machine without them, unless `WEIR_REQUIRE_SERVICES=1` (set by `.ci/run`, which starts
//! them), in which case it fails. Addresses can be moved with `WEIR_TEST_KAFKA` (brokers),
//! `WEIR_TEST_S3` (endpoint URL) and `WEIR_TEST_POSTGRES` (connection URL).

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The broker list of the Kafka-protocol broker, or `None` (after saying so) if it is down.
pub fn kafka(test: &str) -> Option<String> {
    let brokers = std::env::var("WEIR_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:19092".into());
    let first = brokers.split(',').next().unwrap_or_default().to_string();
    reachable(test, "Kafka broker", &first, "WEIR_TEST_KAFKA").then_some(brokers)
}

/// The endpoint URL of the S3-compatible server, or `None` (after saying so) if it is down.
pub fn s3(test: &str) -> Option<String> {
    let endpoint = std::env::var("WEIR_TEST_S3").unwrap_or_else(|_| "http://127.0.0.1:5000".into());
    let address = endpoint
        .split_once("://")
        .map_or(endpoint.as_str(), |(_, rest)| rest)
        .trim_end_matches('/')
        .to_string();
    reachable(test, "S3 server", &address, "WEIR_TEST_S3").then_some(endpoint)
}

/// The connection URL of PostgreSQL, or `None` (after saying so) if it is down.
pub fn postgres(test: &str) -> Option<String> {
    let url = std::env::var("WEIR_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let address = url
        .rsplit_once('@')
        .map_or(url.as_str(), |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    reachable(test, "PostgreSQL", &address, "WEIR_TEST_POSTGRES").then_some(url)
}

/// Whether `address` accepts a TCP connection; otherwise skips (or, when services are
/// required, fails) `test` with a message naming the service.
fn reachable(test: &str, service: &str, address: &str, variable: &str) -> bool {
    let addresses: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map(|a| a.collect())
        .unwrap_or_default();
    let up = addresses
        .iter()
        .any(|a| TcpStream::connect_timeout(a, Duration::from_millis(500)).is_ok());
    if up {
        return true;
    }
    let message = format!(
        "{test}: no {service} at {address} (start it as .ci/run does, or point {variable} at one)"
    );
    if std::env::var("WEIR_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        panic!("{message}; WEIR_REQUIRE_SERVICES=1 makes this a failure");
    }
    eprintln!("SKIPPED {message}");
    false
}
