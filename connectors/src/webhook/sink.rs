//! [`WebhookSink`]: its options, the JSON bodies of a batch, and the [`Sink`] impl.

use std::sync::OnceLock;
use std::time::Duration;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Url};

use super::delivery::{Delivery, Request};
use crate::error::{ConnectorError, Result};
use crate::format::json::json_lines;
use crate::offset::BatchId;
use crate::options::ConnectorOptions;
use crate::sink::{OutputMode, Sink, SinkOpen};

/// Headers the sink sets itself, which `headers` may not override.
const RESERVED_HEADERS: &[&str] = &["content-type", "content-length", "host", "idempotency-key"];

/// POSTs every output row to an HTTP endpoint, at least once; see the [module doc](super).
pub struct WebhookSink {
    name: String,
    delivery: Delivery,
    headers: HeaderMap,
    batch_size: usize,
    /// Built by the first `open` (loading the system's root certificates reads files).
    client: OnceLock<Client>,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values are often credentials: show only the names.
        f.debug_struct("WebhookSink")
            .field("name", &self.name)
            .field("url", &self.delivery.shown_url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("batch_size", &self.batch_size)
            .field("max_retries", &self.delivery.max_retries)
            .field("retry_backoff", &self.delivery.retry_backoff)
            .field("timeout", &self.delivery.timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// The sink described by `options` (already checked for unknown keys), refusing complete
    /// mode when `output_mode` asks for it.
    pub fn new(options: &ConnectorOptions) -> Result<Self> {
        let name = options.object().to_string();
        if options
            .get("output_mode")
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("complete"))
        {
            return Err(complete_mode(&name));
        }
        // The key header carries the sink's name; fail now rather than at the first row.
        HeaderValue::from_str(&idempotency_key(&name, BatchId(0), 0)).map_err(|_| {
            ConnectorError::Config(format!(
                "webhook sink '{name}': its name cannot go into the Idempotency-Key header \
                 (only visible ASCII can); rename the sink"
            ))
        })?;
        let url = parse_url(options)?;
        let timeout = options
            .duration("timeout")?
            .unwrap_or(Duration::from_secs(10));
        if timeout.is_zero() {
            return Err(options.bad_value("timeout", "0", "a positive duration such as '10s'"));
        }
        Ok(Self {
            delivery: Delivery {
                shown_url: shown_url(&url),
                url,
                max_retries: options
                    .parse::<u32>("max_retries", "a whole number, 0 or more")?
                    .unwrap_or(5),
                retry_backoff: options
                    .duration("retry_backoff")?
                    .unwrap_or(Duration::from_millis(100)),
                timeout,
            },
            headers: parse_headers(options)?,
            batch_size: usize::try_from(options.positive("batch_size")?.unwrap_or(1))
                .unwrap_or(usize::MAX),
            client: OnceLock::new(),
            name,
        })
    }

    fn client(&self) -> Result<&Client> {
        self.client.get().ok_or_else(|| {
            ConnectorError::Internal(format!(
                "webhook sink '{}' was written before it was opened",
                self.name
            ))
        })
    }
}

#[async_trait]
impl Sink for WebhookSink {
    async fn open(&self, open: SinkOpen) -> Result<()> {
        if open.output_mode == OutputMode::Complete {
            return Err(complete_mode(&self.name));
        }
        if self.client.get().is_none() {
            let timeout = self.delivery.timeout;
            let client = tokio::task::spawn_blocking(move || {
                Client::builder()
                    .timeout(timeout)
                    // A redirected POST may turn into a GET without its body: refuse them.
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
            })
            .await
            .map_err(|e| ConnectorError::Internal(format!("building an http client: {e}")))?
            .map_err(|e| ConnectorError::io(self.delivery.shown_url.clone(), e))?;
            // A concurrent open may have set one first; either is as good.
            let _ = self.client.set(client);
        }
        Ok(())
    }

    async fn write(&self, batch_id: BatchId, batches: Vec<RecordBatch>) -> Result<()> {
        let client = self.client()?;
        let rows = json_rows(&batches)?;
        for (chunk_index, chunk) in rows.chunks(self.batch_size).enumerate() {
            let first = chunk_index * self.batch_size;
            let body = body(&self.name, batch_id, first, chunk, self.batch_size > 1);
            let key = idempotency_key(&self.name, batch_id, first);
            let request = Request {
                key: HeaderValue::from_str(&key).map_err(|e| {
                    ConnectorError::Internal(format!("idempotency key '{key}': {e}"))
                })?,
                headers: &self.headers,
                body: Bytes::from(body),
                batch: batch_id,
                row: first,
            };
            self.delivery.send(client, request).await?;
        }
        Ok(())
    }
}

fn complete_mode(name: &str) -> ConnectorError {
    ConnectorError::Config(format!(
        "webhook sink '{name}' cannot take output_mode 'complete': every batch would re-post \
         the whole result; use 'update' (each changed row is posted once per batch) or 'append'"
    ))
}

/// `<query>-<batch_id>-<row>`: the same for every attempt at a request, and for the request
/// of a re-run batch that carries the same row.
fn idempotency_key(query: &str, batch: BatchId, row: usize) -> String {
    format!("{query}-{}-{row}", batch.0)
}

/// The value of `url`, which must be an absolute http or https URL with a host.
fn parse_url(options: &ConnectorOptions) -> Result<Url> {
    const EXPECTED: &str = "an http:// or https:// URL such as 'http://127.0.0.1:9000/hook'";
    let raw = options.required("url")?;
    let url = Url::parse(raw.trim())
        .map_err(|e| options.bad_value("url", raw, &format!("{EXPECTED} ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        let why = format!("{EXPECTED} (the scheme is '{}')", url.scheme());
        return Err(options.bad_value("url", raw, &why));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(options.bad_value("url", raw, &format!("{EXPECTED} (it has no host)")));
    }
    Ok(url)
}

/// `url` as messages show it: any password replaced by `***`.
fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Cannot fail: a URL with a password has a host.
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// The `headers` option, `'Name: value; Name: value'`. Messages name entries and header
/// names, never values, which are often secrets.
fn parse_headers(options: &ConnectorOptions) -> Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    let Some(raw) = options.get("headers") else {
        return Ok(headers);
    };
    let object = options.object();
    let bad = |why: String| {
        ConnectorError::Config(format!(
            "option 'headers' of '{object}': {why}; expected 'Name: value; Name: value' (values \
             are not shown here, they may be secrets)"
        ))
    };
    let entries = raw.split(';').map(str::trim).filter(|e| !e.is_empty());
    for (index, entry) in entries.enumerate() {
        let Some((name, value)) = entry.split_once(':') else {
            return Err(bad(format!("entry {} has no ':'", index + 1)));
        };
        let name = name.trim();
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad(format!("'{name}' is not a valid header name")))?;
        if RESERVED_HEADERS.contains(&header.as_str()) {
            return Err(bad(format!("'{name}' is set by the sink itself")));
        }
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| bad(format!("the value of '{name}' is not valid in a header")))?;
        headers.append(header, value);
    }
    Ok(headers)
}

/// Each row of `batches` as a JSON object (every column, nulls as `null`), in a canonical
/// order: sorted by that encoding.
fn json_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<u8>>> {
    let mut rows = Vec::new();
    for batch in batches.iter().filter(|b| b.num_rows() > 0) {
        rows.extend(json_lines(batch, "a webhook")?);
    }
    // INVARIANT: a re-run batch has the same rows, perhaps in another order; sorting gives
    // each row the index (and so the idempotency key) it had in the earlier attempt.
    rows.sort_unstable();
    Ok(rows)
}

/// The body of the request carrying `rows`, the first of which has index `first`: one
/// object, or (`as_array`) an array of one object per row.
fn body(query: &str, batch: BatchId, first: usize, rows: &[Vec<u8>], as_array: bool) -> Vec<u8> {
    // Serializing a string cannot fail.
    let query = serde_json::to_string(query).unwrap_or_default();
    let mut out = Vec::new();
    if as_array {
        out.push(b'[');
    }
    for (i, data) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(
            format!(
                "{{\"query\":{query},\"batch_id\":{},\"row\":{},\"data\":",
                batch.0,
                first + i
            )
            .as_bytes(),
        );
        out.extend_from_slice(data);
        out.push(b'}');
    }
    if as_array {
        out.push(b']');
    }
    out
}
