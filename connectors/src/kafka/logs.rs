//! [`KafkaLogs`]: librdkafka's own log lines and error callbacks, routed through `tracing` at
//! levels that fit Weir's logs.
//!
//! rdkafka's default context logs every global error at ERROR: with a broker down, that is a
//! line per attempt (`AllBrokersDown`, `BrokerTransportFailure`) while Weir is still retrying
//! and will itself report, once, what failed the query. So the errors librdkafka retries on
//! its own go to DEBUG, and others to WARN; its log lines keep their syslog level, an
//! `Error` line taken as WARN (librdkafka goes on after them), except a broker connection's
//! failure (facility `FAIL`), which it retries: DEBUG. The target is `librdkafka`,
//! which the CLI's default filter shows from WARN up (`WEIR_LOG=librdkafka=debug` shows all).

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// A client context that only routes librdkafka's logs (see the module doc).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct KafkaLogs;

impl ClientContext for KafkaLogs {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        report(&error, reason);
    }
}

impl ConsumerContext for KafkaLogs {}

/// The `tracing` level of a librdkafka log line of `facility`.
pub(crate) fn level_of(level: RDKafkaLogLevel, facility: &str) -> tracing::Level {
    match level {
        _ if facility == "FAIL" => tracing::Level::DEBUG,
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
            tracing::Level::ERROR
        }
        RDKafkaLogLevel::Error | RDKafkaLogLevel::Warning => tracing::Level::WARN,
        RDKafkaLogLevel::Notice => tracing::Level::INFO,
        RDKafkaLogLevel::Info | RDKafkaLogLevel::Debug => tracing::Level::DEBUG,
    }
}

/// Logs one librdkafka log line.
pub(crate) fn log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level_of(level, facility) {
        tracing::Level::ERROR => tracing::error!(target: "librdkafka", facility, "{message}"),
        tracing::Level::WARN => tracing::warn!(target: "librdkafka", facility, "{message}"),
        tracing::Level::INFO => tracing::info!(target: "librdkafka", facility, "{message}"),
        _ => tracing::debug!(target: "librdkafka", facility, "{message}"),
    }
}

/// Whether librdkafka retries after `error` by itself (a broker unreachable for now).
pub(crate) fn retried(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::BrokerNotAvailable
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::OperationTimedOut
        )
    )
}

/// Logs one error librdkafka reported outside any call.
pub(crate) fn report(error: &KafkaError, reason: &str) {
    if retried(error) {
        tracing::debug!(target: "librdkafka", %error, "{reason}");
    } else {
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_fit_weirs_logs() {
        let levels: Vec<_> = [
            RDKafkaLogLevel::Critical,
            RDKafkaLogLevel::Error,
            RDKafkaLogLevel::Warning,
            RDKafkaLogLevel::Notice,
            RDKafkaLogLevel::Info,
            RDKafkaLogLevel::Debug,
        ]
        .into_iter()
        .map(|level| level_of(level, "REQTMOUT"))
        .collect();
        use tracing::Level;
        assert_eq!(
            levels,
            [
                Level::ERROR,
                Level::WARN,
                Level::WARN,
                Level::INFO,
                Level::DEBUG,
                Level::DEBUG
            ]
        );
        assert_eq!(
            level_of(RDKafkaLogLevel::Error, "FAIL"),
            Level::DEBUG,
            "a broker connection failure is retried"
        );
        let down = KafkaError::Global(RDKafkaErrorCode::AllBrokersDown);
        let fatal = KafkaError::Global(RDKafkaErrorCode::Fatal);
        assert!(retried(&down) && !retried(&fatal));
    }
}
