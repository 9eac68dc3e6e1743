//! Who may use the server, and how much: the bearer token, TLS, and the request body limit.
//!
//! - With a token (`--token` or `WEIR_TOKEN`), every endpoint but `/healthz` answers 401
//!   unless the request carries `Authorization: Bearer <token>` or the `weir_token` cookie
//!   holding it. A browser gets the cookie by opening `/?token=<token>` once (the UI's link);
//!   the cookie is `HttpOnly` and `SameSite=Strict`. Tokens are compared in constant time.
//! - A server that listens on anything but loopback must have a token. One without a token
//!   answers only requests whose `Host` is `localhost` or a loopback address (403 otherwise),
//!   so a web page whose name was rebound to 127.0.0.1 (DNS rebinding) cannot call it.
//! - With `--tls-cert` and `--tls-key` (PEM), the server speaks HTTPS only (rustls).
//! - Request bodies over the limit (`--max-request-bytes`, default 1 MiB) are refused with
//!   413 before they are read whole.

use std::path::Path;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::{Result, WeirError};

/// The cookie a browser keeps the token in.
const TOKEN_COOKIE: &str = "weir_token";

/// The default limit of a request body.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// The token every request must carry, if any.
#[derive(Debug, Clone, Default)]
pub struct Access {
    token: Option<String>,
}

impl Access {
    /// Requests must carry `token` (none: anyone on the network path may call).
    pub fn new(token: Option<String>) -> Result<Self> {
        if token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err(WeirError::Plan(
                "the token must be at least 16 characters long; make one with \
                 `openssl rand -hex 32`"
                    .to_string(),
            ));
        }
        Ok(Self { token })
    }

    /// Whether requests must carry a token.
    pub fn requires_token(&self) -> bool {
        self.token.is_some()
    }

    fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('='))
            .find(|given| same(given, token));
        bearer.is_some_and(|given| same(given, token)) || cookie.is_some()
    }
}

/// Compares without stopping at the first difference, so the time taken does not tell an
/// attacker how much of a guess was right.
pub(super) fn same(given: &str, token: &str) -> bool {
    let (a, b) = (given.as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware that checks the token (every route but `/healthz`).
pub(super) async fn require_token(
    State(access): State<Access>,
    request: Request,
    next: Next,
) -> Response {
    if access.token.is_none() {
        // Without a token, only this machine may call; a web page whose name was rebound to
        // 127.0.0.1 sends its own name as Host, and is refused.
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        if let Some(host) = host.filter(|h| !loopback_host(h)) {
            let message = format!(
                "this server has no token, so it answers only requests addressed to localhost \
                 or a loopback address, not to '{host}' (a guard against DNS rebinding); start \
                 it with --token to reach it by other names"
            );
            let body = json!({"error": {"status": 403, "message": message}});
            return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
        }
        return next.run(request).await;
    }
    if request.uri().path() == "/healthz" || access.allows(request.headers()) {
        return next.run(request).await;
    }
    // `/?token=…` from a browser: keep it in a cookie, then show the page without it.
    if request.uri().path() == "/"
        && let Some(given) = request.uri().query().and_then(token_parameter)
        && access
            .token
            .as_deref()
            .is_some_and(|token| same(&given, token))
    {
        let cookie = format!("{TOKEN_COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/");
        return (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, cookie),
                (header::LOCATION, "/".to_string()),
            ],
        )
            .into_response();
    }
    let body = json!({"error": {
        "status": 401,
        "message": "this server needs a token: send the header `Authorization: Bearer <token>` \
                    (the token the server was started with, --token or WEIR_TOKEN), or open \
                    /?token=<token> once in a browser",
    }});
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(body),
    )
        .into_response()
}

/// Whether a Host header names this machine: `localhost` or a loopback address, with or
/// without a port.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn token_parameter(query: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(|t| t.to_string())
}

/// Reads a PEM certificate chain and private key for HTTPS.
pub async fn tls_config(cert: &Path, key: &Path) -> Result<axum_server::tls_rustls::RustlsConfig> {
    // One process-wide provider; installing it twice is harmless (the second is refused).
    let _ = rustls::crypto::ring::default_provider().install_default();
    axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
        .await
        .map_err(|e| {
            WeirError::Plan(format!(
                "cannot use the TLS certificate {} and key {}: {e}; both must be PEM files \
                 (the key unencrypted)",
                cert.display(),
                key.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), value.parse().expect("a header value"));
        }
        map
    }

    #[test]
    fn a_token_is_taken_from_the_bearer_header_or_the_cookie_only() {
        let access = Access::new(Some("0123456789abcdef".to_string())).expect("a token");
        assert!(access.allows(&headers(&[(
            header::AUTHORIZATION,
            "Bearer 0123456789abcdef"
        )])));
        assert!(access.allows(&headers(&[(
            header::COOKIE,
            "theme=dark; weir_token=0123456789abcdef"
        )])));
        for refused in [
            headers(&[]),
            headers(&[(header::AUTHORIZATION, "Bearer 0123456789abcdeX")]),
            headers(&[(header::AUTHORIZATION, "Bearer 0123456789abcde")]),
            headers(&[(header::AUTHORIZATION, "Basic 0123456789abcdef")]),
            headers(&[(header::COOKIE, "other_token=0123456789abcdef")]),
        ] {
            assert!(!access.allows(&refused), "{refused:?}");
        }
        assert!(Access::default().allows(&headers(&[])));
        for host in [
            "localhost",
            "localhost:7117",
            "127.0.0.1:7117",
            "127.1.2.3",
            "[::1]:80",
            "[::1]",
        ] {
            assert!(loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:7117",
            "10.0.0.1:7117",
            "[2001:db8::1]:80",
            "localhost.evil.example",
        ] {
            assert!(!loopback_host(host), "{host}");
        }
        let short = Access::new(Some("short".to_string())).expect_err("too short");
        assert!(
            short.to_string().contains("at least 16 characters"),
            "{short}"
        );
    }
}
