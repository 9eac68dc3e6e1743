//! The server's security model: a token on every endpoint but `/healthz` (header or browser
//! cookie), the refusal of a non-loopback address without one, HTTPS with a certificate,
//! the request body limit, and paths in submitted SQL confined to `--allow-path` roots.

use std::ffi::OsString;
use std::process::Command;

use serde_json::Value;

use super::Server;

const TOKEN: &str = "a-long-enough-test-token-0123";

#[tokio::test]
async fn a_token_guards_every_endpoint_but_healthz() {
    let server = Server::spawn(["--token".into(), TOKEN.into()]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let health = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    for path in [
        "/api/queries",
        "/metrics",
        "/",
        "/ui/app.js",
        "/api/openapi.json",
    ] {
        let response = client
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 401, "{path}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: Value = response.json().await.expect("JSON");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("this server needs a token")),
            "{body}"
        );
    }
    let (status, _) = server.sql("SHOW SOURCES").await;
    assert_eq!(status, 401);
    let wrong = client
        .get(format!("{}/api/queries", server.base))
        .bearer_auth("a-long-enough-test-token-0124")
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status().as_u16(), 401);

    let server = server.with_token(TOKEN);
    let (status, body) = server.sql("SHOW SOURCES").await;
    assert_eq!(status, 200, "{body}");

    // A browser: `/?token=` once sets a cookie, which then opens every page.
    let login = client
        .get(format!("{}/?token={TOKEN}", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(login.status().as_u16(), 303);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .expect("text")
        .to_string();
    assert_eq!(
        cookie,
        format!("weir_token={TOKEN}; HttpOnly; SameSite=Strict; Path=/")
    );
    let page = client
        .get(format!("{}/", server.base))
        .header("cookie", format!("weir_token={TOKEN}"))
        .send()
        .await
        .expect("request");
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.text()
            .await
            .expect("html")
            .contains("<title>Weir</title>")
    );

    // The command-line client sends it from WEIR_TOKEN.
    let weir = |token: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
        command.args(["queries", "--server", &server.base]);
        command.env_remove("WEIR_TOKEN");
        if let Some(token) = token {
            command.env("WEIR_TOKEN", token);
        }
        command.output().expect("running weir queries")
    };
    assert!(weir(Some(TOKEN)).status.success());
    let refused = weir(None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("error: this server needs a token"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[tokio::test]
async fn another_address_than_loopback_needs_a_token() {
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env_remove("WEIR_TOKEN")
        .output()
        .expect("running weir serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "--listen 0.0.0.0:0: a server reachable from other machines needs a token (--token \
             or WEIR_TOKEN"
        ),
        "{stderr}"
    );
    let short = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--token", "short"])
        .output()
        .expect("running weir serve");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 16 characters"));

    // With a token it listens on every address, and answers with the token only.
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--listen", "0.0.0.0:0", "--token", TOKEN])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("weir serve");
    let stderr = child.stderr.take().expect("stderr");
    let line = std::io::BufRead::lines(std::io::BufReader::new(stderr))
        .map_while(Result::ok)
        .find(|l| l.contains("address="))
        .expect("the address it listens on");
    let port = line.rsplit(':').next().expect("a port").trim();
    let url = format!("http://127.0.0.1:{port}/api/queries");
    let client = reqwest::Client::new();
    let without = client.get(&url).send().await.expect("request");
    assert_eq!(without.status().as_u16(), 401);
    let with = client
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(with.status().as_u16(), 200);
    child.kill().expect("kill");
    let _ = child.wait();
}

#[tokio::test]
async fn tls_serves_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("a self-signed certificate");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("key");
    let server = Server::spawn([
        OsString::from("--tls-cert"),
        cert.clone().into(),
        "--tls-key".into(),
        key.into(),
    ]);
    let https = server.base.replacen("http://", "https://", 1);
    let trusted = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).expect("PEM"),
        )
        .build()
        .expect("a client");
    let health = trusted
        .get(format!("{https}/healthz"))
        .send()
        .await
        .expect("an HTTPS request");
    assert_eq!(health.text().await.expect("body"), "ok");
    // Plain HTTP is not answered; a client that does not trust the certificate refuses it.
    assert!(
        reqwest::get(format!("{}/healthz", server.base))
            .await
            .is_err()
    );
    assert!(reqwest::get(format!("{https}/healthz")).await.is_err());
    // The command-line client trusts it with --ca-cert.
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["queries", "--server", &https, "--ca-cert"])
        .arg(&cert)
        .output()
        .expect("weir queries");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(dir.path().join("missing.pem"))
        .arg("--tls-key")
        .arg(dir.path().join("key.pem"))
        .output()
        .expect("weir serve");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("cannot use the TLS certificate"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[tokio::test]
async fn bodies_over_the_limit_and_other_hosts_are_refused() {
    let server = Server::spawn(["--max-request-bytes".into(), "1000".into()]);
    let (status, _) = server.sql("SHOW SOURCES").await;
    assert_eq!(status, 200);
    // Without a token, a request addressed to another name (DNS rebinding) is refused.
    let rebound = reqwest::Client::new()
        .get(format!("{}/api/queries", server.base))
        .header("host", "evil.example:7117")
        .send()
        .await
        .expect("request");
    assert_eq!(rebound.status().as_u16(), 403);
    let body: Value = rebound.json().await.expect("JSON");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not to 'evil.example:7117'")),
        "{body}"
    );
    let long = format!("SELECT '{}' AS x", "y".repeat(2000));
    let (status, body) = server.sql(&long).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["status"], 413);
}

#[tokio::test]
async fn submitted_sql_reaches_only_the_allowed_paths() {
    let root = tempfile::tempdir().expect("temp dir");
    let (allowed, elsewhere) = (root.path().join("allowed"), root.path().join("elsewhere"));
    std::fs::create_dir_all(allowed.join("in")).expect("dir");
    std::fs::create_dir_all(&elsewhere).expect("dir");
    let server = Server::spawn([
        OsString::from("--allow-path"),
        allowed.clone().into(),
        "--checkpoint-root".into(),
        root.path().join("checkpoints").into(),
    ]);
    let canonical = allowed.canonicalize().expect("canonical");
    let (status, body) = server
        .sql(&format!(
            "CREATE SOURCE inside (id BIGINT) WITH (connector = 'files', path = '{}', \
             format = 'json')",
            allowed.join("in").display()
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    for (what, path) in [
        ("elsewhere", elsewhere.display().to_string()),
        ("an escape", format!("{}/../elsewhere", allowed.display())),
    ] {
        let (status, body) = server
            .sql(&format!(
                "CREATE SOURCE outside (id BIGINT) WITH (connector = 'files', path = '{path}', \
                 format = 'json')"
            ))
            .await;
        assert_eq!(status, 400, "{what}: {body}");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(
            message.contains("option 'path' of source 'outside'")
                && message.contains(&format!(
                    "outside the paths this engine may use ({}",
                    canonical.display()
                ))
                && message.contains("--allow-path"),
            "{what}: {message}"
        );
    }
    let (status, body) = server
        .sql(&format!(
            "CREATE SINK copy WITH (connector = 'parquet', path = '{}') AS SELECT id FROM inside",
            elsewhere.display()
        ))
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = server.sql("SHOW SOURCES").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["results"][0]["rows"].as_array().map(Vec::len),
        Some(1),
        "{body}"
    );
}
