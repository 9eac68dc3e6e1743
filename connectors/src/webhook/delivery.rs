//! [`Delivery`]: one POST, retried with exponential backoff until it is acknowledged, refused,
//! or out of attempts.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Client, Response, StatusCode, Url};

use crate::error::{ConnectorError, Result};
use crate::offset::BatchId;

/// The longest wait between two attempts that the backoff reaches by doubling.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The longest wait a `Retry-After` header gets.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// How much of a response body an error quotes, in bytes read and characters shown.
const EXCERPT_BYTES: usize = 1024;
const EXCERPT_CHARS: usize = 200;

/// Where and how requests are sent.
#[derive(Debug, Clone)]
pub(super) struct Delivery {
    pub(super) url: Url,
    /// `url` without its password, for messages.
    pub(super) shown_url: String,
    pub(super) max_retries: u32,
    pub(super) retry_backoff: Duration,
    pub(super) timeout: Duration,
}

/// One request: its body and what identifies it.
#[derive(Debug)]
pub(super) struct Request<'a> {
    pub(super) key: HeaderValue,
    pub(super) headers: &'a HeaderMap,
    pub(super) body: Bytes,
    pub(super) batch: BatchId,
    /// The index within the batch of the first row carried.
    pub(super) row: usize,
}

/// What one attempt came to.
enum Attempt {
    Acknowledged,
    /// Worth another try; `wait` is what a `Retry-After` header asked for.
    Failed {
        reason: String,
        wait: Option<Duration>,
    },
    /// The receiver refuses the request itself: trying again cannot help.
    Refused(String),
}

impl Delivery {
    /// Sends `request` until a 2xx answer, a refusal, or `max_retries` retries.
    pub(super) async fn send(&self, client: &Client, request: Request<'_>) -> Result<()> {
        let mut backoff = self.retry_backoff;
        let attempts = self.max_retries.saturating_add(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            match self.attempt(client, &request).await {
                Attempt::Acknowledged => return Ok(()),
                Attempt::Refused(reason) => {
                    return Err(self.failure(
                        &request,
                        format!(
                            "{reason}; not retried (the receiver refuses the request itself, \
                             retrying cannot help); once the receiver or the query is fixed, \
                             restarting the query re-sends the batch"
                        ),
                    ));
                }
                Attempt::Failed { reason, wait } => {
                    if attempt < attempts {
                        let wait = wait.map_or(backoff, |w| w.min(MAX_RETRY_AFTER).max(backoff));
                        tracing::warn!(url = %self.shown_url, batch = %request.batch, row = request.row, attempt, error = %reason, ?wait, "webhook request failed; retrying");
                        tokio::time::sleep(wait).await;
                        backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
                    }
                    last = reason;
                }
            }
        }
        Err(self.failure(
            &request,
            format!(
                "gave up after {attempts} attempts (max_retries = {}); last error: {last}; \
                 restarting the query re-sends the batch",
                self.max_retries
            ),
        ))
    }

    async fn attempt(&self, client: &Client, request: &Request<'_>) -> Attempt {
        let sent = client
            .post(self.url.clone())
            .headers(request.headers.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("idempotency-key", request.key.clone())
            .body(request.body.clone())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => {
                return Attempt::Failed {
                    reason: request_error(e, self.timeout),
                    wait: None,
                };
            }
        };
        let status = response.status();
        if status.is_success() {
            // Read the answer so the connection can serve the next request.
            let _ = excerpt(&mut response).await;
            return Attempt::Acknowledged;
        }
        let wait = retry_after(&response);
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        let body = excerpt(&mut response).await;
        let mut reason = format!("HTTP {status}");
        if !body.is_empty() {
            reason.push_str(&format!(": {body}"));
        }
        if status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
        {
            Attempt::Failed { reason, wait }
        } else {
            if status.is_redirection() {
                reason.push_str(&format!(
                    " (a redirect to {}, which the sink does not follow; set 'url' to the final \
                     address)",
                    location.as_deref().unwrap_or("an unnamed location")
                ));
            }
            Attempt::Refused(reason)
        }
    }

    fn failure(&self, request: &Request<'_>, reason: String) -> ConnectorError {
        let key = String::from_utf8_lossy(request.key.as_bytes()).into_owned();
        ConnectorError::io(
            self.shown_url.clone(),
            std::io::Error::other(format!(
                "webhook POST of batch {} row {} (Idempotency-Key {key}) failed: {reason}",
                request.batch, request.row
            )),
        )
    }
}

/// A failed request (connecting, sending, a timeout) with its causes, without the URL (the
/// caller names it, without its password).
fn request_error(error: reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!(
            "no answer within the timeout of {}",
            humantime::format_duration(timeout)
        );
    }
    let error = error.without_url();
    let mut text = error.to_string();
    // reqwest's own message is terse ("error sending request"); its causes say why.
    let mut cause = std::error::Error::source(&error);
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}

/// The seconds of a `Retry-After` header of a 429 or 503 answer (an HTTP date is ignored).
fn retry_after(response: &Response) -> Option<Duration> {
    if !matches!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        return None;
    }
    let seconds = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    seconds.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The start of the response body, as text on one line, shortened to a few hundred
/// characters; empty if there is none or it cannot be read.
async fn excerpt(response: &mut Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}
