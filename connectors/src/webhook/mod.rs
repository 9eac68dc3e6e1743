//! The `webhook` sink: each output row POSTed as a JSON object to an HTTP(S) endpoint, at
//! least once.
//!
//! ```sql
//! CREATE SINK alerts WITH (connector = 'webhook', url = 'https://hooks.example.com/weir',
//!     headers = 'Authorization: Bearer s3cret; X-Team: payments', max_retries = '5',
//!     retry_backoff = '100ms', timeout = '10 seconds', output_mode = 'update') AS
//! SELECT user_id, count(*) AS n FROM clicks GROUP BY user_id;
//! ```
//!
//! # Requests
//! One request per row, `POST url` with `Content-Type: application/json` and the compact body
//! `{"query":"alerts","batch_id":7,"row":0,"data":{"user_id":1,"n":3}}`. `data`
//! holds every column as Arrow's JSON writer encodes it (nulls as `null`, dates and
//! timestamps as ISO 8601 strings, decimals as numbers). With `batch_size = 'N'` (N > 1) a
//! request carries a JSON array of up to N such objects instead.
//!
//! Each request has the header `Idempotency-Key: <query>-<batch_id>-<row>`, where `row` is
//! the index within the batch of the (first) row it carries. The key is the same on every
//! retry and when the engine re-runs the batch after a crash: the engine re-runs a batch with
//! the same rows, and the sink posts them in a canonical order (sorted by their JSON
//! encoding) because the engine does not promise the same order. A receiver that remembers
//! the keys it has accepted can therefore drop duplicates.
//!
//! # Delivery
//! At least once, in batch order, and in that canonical row order within a batch; one request
//! is in flight at a time. A 2xx answer acknowledges the request. A 5xx, 408 or 429 answer, a
//! connection error or a `timeout` is retried up to `max_retries` times, waiting
//! `retry_backoff` and then twice as long each time (at most 10 seconds between attempts),
//! or what a `Retry-After: <seconds>` header of a 429 or 503 answer asks (at most a minute).
//! Any other answer (a 4xx, or a redirect, which is not followed) fails the batch at once
//! with an error naming the URL, the status and the start of the response body: retrying a
//! request the receiver refuses cannot help. When the retries run out the error names the
//! URL, the attempts and the last failure. Either way the query stops, and restarting it
//! re-sends the uncommitted batch from its first row, as does a restart after a crash:
//! rows the receiver already acknowledged arrive again with their earlier keys.
//!
//! # Options
//! `url` (http or https) is required. `headers` adds request headers, written
//! `'Name: value; Name: value'` (a value cannot hold `;`); `Content-Type`, `Content-Length`,
//! `Host` and `Idempotency-Key` are the sink's own. Errors and logs never show header values,
//! which often are secrets, and delivery errors hide the password of a URL. Append and update mode are accepted (each
//! emitted row is posted); complete mode is refused, since every batch would re-post the
//! whole result.

mod delivery;
mod sink;
#[cfg(test)]
mod tests;

pub use sink::WebhookSink;

use crate::options::OptionSpec;

/// Options of the `webhook` sink.
pub const WEBHOOK_SINK_OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "url",
        help: "the http:// or https:// address every row is POSTed to; required",
    },
    OptionSpec {
        key: "headers",
        help: "extra request headers, as 'Name: value; Name: value' (default none)",
    },
    OptionSpec {
        key: "max_retries",
        help: "how many times a failed request is retried (5xx, 408, 429, connection errors, timeouts) before the query fails (default 5)",
    },
    OptionSpec {
        key: "retry_backoff",
        help: "the wait before the first retry, doubled for each next one up to 10 seconds (default '100ms')",
    },
    OptionSpec {
        key: "timeout",
        help: "how long one request may take, connecting included (default '10 seconds')",
    },
    OptionSpec {
        key: "batch_size",
        help: "rows per request: 1 posts one object per request, more posts a JSON array (default 1)",
    },
];
