//! The `jobs-server` binary itself: it prints where it listens, serves, stops gracefully on
//! SIGTERM with exit status 0 (keeping every acknowledged write), and refuses to start with
//! a one-line reason when it cannot.

use crate::backend_tests;
use crate::support::{
    base_url, launch, request_token, server_command, start, succeeded, terminate,
    token_for_customer, Backend, TestStore, BINARY, PATIENCE,
};
use jobs_service::auth::Scope;
use serde_json::json;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// The one `jobs-server: …` line of a run that could not start.
#[track_caller]
fn failure_reason(output: &std::process::Output) -> String {
    assert!(!output.status.success(), "the server must not start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let reason: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("jobs-server:"))
        .collect();
    assert_eq!(reason.len(), 1, "one line of reason: {stderr}");
    reason[0].to_owned()
}

backend_tests! {
    async fn sigterm_stops_gracefully_and_keeps_every_write(store: TestStore) {
        let client = reqwest::Client::new();
        let (mut server, address) = start(&store).await;
        let (_, token) = token_for_customer(&store, &address, 5).await;
        let reply = client
            .post(format!("{address}/v1/jobs"))
            .bearer_auth(&token)
            .header("Customer-Id", "5")
            .json(&json!({"typeId": 1, "contactId": 2}))
            .send()
            .await
            .expect("create");
        assert_eq!(reply.status(), 201);
        let location = reply.headers()["location"].to_str().expect("location").to_owned();

        let status = terminate(&mut server).await;
        assert!(status.success(), "exit status 0 after a graceful shutdown: {status:?}");

        // Started again on the same store, the acknowledged job is there, and the token
        // issued before still works: the generated signing key was kept.
        let (mut server, address) = start(&store).await;
        let reply = client
            .get(format!("{address}{location}"))
            .bearer_auth(&token)
            .header("Customer-Id", "5")
            .send()
            .await
            .expect("get");
        assert_eq!(reply.status(), 200);
        assert!(terminate(&mut server).await.success());
    }

    async fn a_taken_port_is_a_one_line_failure(store: TestStore) {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let listen = taken.local_addr().expect("address").to_string();
        let output = server_command(&store, &listen).output().await.expect("runs");
        let reason = failure_reason(&output);
        assert!(reason.contains("cannot listen on"), "{reason}");
    }
}

#[tokio::test]
async fn an_unusable_database_is_a_one_line_failure() {
    for (url, expected) in [
        ("mysql://localhost/jobs", "unsupported database URL"),
        (
            "postgres://postgres@127.0.0.1:1/none",
            "cannot open the store",
        ),
    ] {
        let output = Command::new(BINARY)
            .args(["--listen", "127.0.0.1:0", "--database-url", url])
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .output()
            .await
            .expect("runs");
        let reason = failure_reason(&output);
        assert!(reason.contains(expected), "{url}: {reason}");
    }
}

#[tokio::test]
async fn a_bad_flag_is_a_one_line_failure_with_status_2() {
    for args in [&["--listen", "nope"][..], &["--no-such-flag"][..]] {
        let output = Command::new(BINARY)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("runs");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("jobs-server: "), "{stderr}");
    }
}

#[tokio::test]
async fn the_default_store_works_in_any_directory_name() {
    // `?` and `%` mean something in a URL; the data directory is a path, not a URL.
    let dir = std::env::temp_dir().join(format!("jobs odd?dir%41 {}", uuid::Uuid::now_v7()));
    let (mut child, line) = launch(
        Command::new(BINARY)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true),
    )
    .await;
    assert!(line.contains("store: sqlite"), "{line}");
    assert!(dir.join("jobs.db").exists(), "the database is in {dir:?}");
    assert!(terminate(&mut child).await.success());
    let _ = std::fs::remove_dir_all(&dir);
}

backend_tests! {
    async fn sigterm_lets_a_request_in_flight_finish(store: TestStore) {
        let (mut server, line) =
            launch(server_command(&store, "127.0.0.1:0").stderr(Stdio::piped())).await;
        let url = base_url(&line);
        let address = url.trim_start_matches("http://");
        let (_, token) = token_for_customer(&store, &url, 3).await;
        let mut stderr = BufReader::new(server.stderr.take().expect("stderr")).lines();

        // Half a request: the headers, asking to be told when the body is wanted. The
        // server's `100 Continue` proves the request is in its hands (a request whose bytes
        // merely sit in a socket buffer is not yet in flight, and shutdown may drop it).
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = r#"{"typeId": 1, "contactId": 2}"#;
        let mut connection = tokio::net::TcpStream::connect(&address).await.expect("connects");
        let head = format!(
            "POST /v1/jobs HTTP/1.1\r\nHost: {address}\r\nCustomer-Id: 3\r\n\
             Authorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\
             Connection: close\r\n\r\n",
            body.len()
        );
        connection.write_all(head.as_bytes()).await.expect("writes");
        let mut interim = Vec::new();
        while !interim.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            let read = tokio::time::timeout(PATIENCE, connection.read(&mut byte))
                .await
                .expect("the server answers the headers")
                .expect("reads");
            assert_eq!(read, 1, "the connection stays open");
            interim.push(byte[0]);
        }
        assert!(interim.starts_with(b"HTTP/1.1 100"), "{}", String::from_utf8_lossy(&interim));

        let pid = server.id().expect("running").to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
        // Wait for the server to say it is draining, then finish the request.
        let drained = tokio::time::timeout(PATIENCE, async {
            while let Ok(Some(line)) = stderr.next_line().await {
                if line.contains("shutdown signal received") {
                    return true;
                }
            }
            false
        })
        .await
        .expect("the server logs the signal");
        assert!(drained);
        connection.write_all(body.as_bytes()).await.expect("writes the body");
        let mut answer = String::new();
        connection.read_to_string(&mut answer).await.expect("reads");
        assert!(answer.starts_with("HTTP/1.1 201"), "the request in flight completes: {answer}");

        let status = tokio::time::timeout(PATIENCE, server.wait()).await.expect("stops").expect("status");
        assert!(status.success(), "{status:?}");
    }
}

/// PostgreSQL only: a SQLite file cannot be taken away from a process that has it open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_answers_503() {
    let app = crate::support::TestApp::spawn(Backend::Postgres).await;
    let id = app.create_job(3).await;
    let database = app.database_name().expect("a PostgreSQL database");
    {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&crate::support::postgres_admin_url())
            .await
            .expect("admin connection");
        sqlx::query(&format!("DROP DATABASE \"{database}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .expect("drop");
    }
    app.get(&format!("/v1/jobs/{id}"), 3)
        .await
        .assert_problem(503, "/problems/service-unavailable");
    app.command(3, id, "cancel", json!({"reason": "store gone"}))
        .await
        .assert_problem(503, "/problems/service-unavailable");
    let ready = app
        .request(reqwest::Method::GET, "/health/ready", None, None)
        .await;
    ready.assert_problem(503, "/problems/service-unavailable");
    let live = app
        .request(reqwest::Method::GET, "/health/live", None, None)
        .await;
    live.assert_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_signing_key_and_token_lifetime_are_used() {
    let store = TestStore::new(Backend::Sqlite).await;
    let key = "3c9e1f7a5b2d8046e1c3a5b7d9f02468ace13579bdf02468a1c3e5f7092b4d6f";
    let key_file = store.data_dir.join("configured.key");
    std::fs::write(&key_file, format!("{key}\n")).expect("key file");
    let (mut server, line) = launch(
        server_command(&store, "127.0.0.1:0")
            .arg("--token-key-file")
            .arg(&key_file)
            .arg("--token-ttl")
            .arg("120")
            .stderr(Stdio::null()),
    )
    .await;
    let address = base_url(&line);
    let client = store.register_client(&Scope::ALL, &[5]).await;
    let response = request_token(&reqwest::Client::new(), &address, &client, None).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["expires_in"], 120);
    let keys = jobs_service::auth::tokens::TokenKeys::new(
        key.as_bytes(),
        crate::support::test_token_options().policy(),
    )
    .expect("keys");
    let claims = keys
        .verify(body["access_token"].as_str().expect("token"))
        .expect("signed with the configured key (the trailing newline is not part of it)");
    assert_eq!(claims.exp - claims.iat, 120);
    assert!(
        !store.data_dir.join("token-signing.key").exists(),
        "no key is generated when one is configured"
    );
    assert!(terminate(&mut server).await.success());
}

#[tokio::test]
async fn an_unusable_signing_key_is_a_one_line_failure() {
    let store = TestStore::new(Backend::Sqlite).await;
    let missing = store.data_dir.join("no-such.key");
    let short = server_command(&store, "127.0.0.1:0")
        .env("JOBS_TOKEN_KEY", "too short")
        .output()
        .await
        .expect("runs");
    let absent = server_command(&store, "127.0.0.1:0")
        .arg("--token-key-file")
        .arg(&missing)
        .output()
        .await
        .expect("runs");
    let phrase = server_command(&store, "127.0.0.1:0")
        .env("JOBS_TOKEN_KEY", "a configured key, long enough for HS256")
        .output()
        .await
        .expect("runs");
    let patterned = server_command(&store, "127.0.0.1:0")
        .env("JOBS_TOKEN_KEY", "abab1212".repeat(8))
        .output()
        .await
        .expect("runs");
    let malformed_file = store.data_dir.join("malformed.key");
    std::fs::write(&malformed_file, "k1 one two three four\n").expect("writes");
    let malformed = server_command(&store, "127.0.0.1:0")
        .arg("--token-key-file")
        .arg(&malformed_file)
        .output()
        .await
        .expect("runs");
    for (output, expected) in [
        (short, "at least 32"),
        (absent, "no-such.key"),
        (phrase, "does not look random"),
        (patterned, "does not look random"),
        (malformed, "KID SECRET"),
    ] {
        let reason = failure_reason(&output);
        assert!(reason.contains(expected), "{reason}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains("too short")
                && !stderr.contains("long enough")
                && !stderr.contains("abab"),
            "the key itself is never printed: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_log_names_the_client_but_never_its_token() {
    let store = TestStore::new(Backend::Sqlite).await;
    let (mut server, line) =
        launch(server_command(&store, "127.0.0.1:0").stderr(Stdio::piped())).await;
    let address = base_url(&line);
    let mut stderr = BufReader::new(server.stderr.take().expect("stderr")).lines();
    let (client_id, token) = token_for_customer(&store, &address, 5).await;
    let reply = reqwest::Client::new()
        .get(format!("{address}/v1/jobs"))
        .bearer_auth(&token)
        .header("Customer-Id", "5")
        .send()
        .await
        .expect("list");
    assert_eq!(reply.status(), 200);
    assert!(terminate(&mut server).await.success());
    let mut log = Vec::new();
    while let Ok(Some(line)) = stderr.next_line().await {
        log.push(line);
    }
    let list_line = log
        .iter()
        .find(|line| line.contains("/v1/jobs") && line.contains("status=200"))
        .unwrap_or_else(|| panic!("a line for the list request: {log:#?}"));
    assert!(
        list_line.contains(&format!("client=\"{client_id}\"")),
        "{list_line}"
    );
    let token_line = log
        .iter()
        .find(|line| line.contains("/auth/tokens"))
        .unwrap_or_else(|| panic!("a line for the token request: {log:#?}"));
    assert!(token_line.contains("client=\"-\""), "{token_line}");
    let secret_part = token.rsplit('.').next().expect("a signature");
    assert!(
        log.iter().all(|line| !line.contains(secret_part)),
        "no token in the log: {log:#?}"
    );
}

/// The `kid` in a token's header.
fn key_id(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("a JWT")
        .kid
        .expect("tokens name their key")
}

backend_tests! {
    /// `jobs-admin keys rotate` while the server runs: tokens signed before keep working,
    /// new ones are signed with the new key once its time comes, and retiring the old key
    /// ends only the tokens it signed. Nobody is logged out by a rotation, and no restart
    /// is needed.
    async fn signing_keys_rotate_without_a_restart(store: TestStore) {
        let (mut server, url) = start(&store).await;
        let client = store.register_client(&Scope::ALL, &[9]).await;
        let http = reqwest::Client::new();
        let token = || async {
            let response = request_token(&http, &url, &client, None).await;
            assert_eq!(response.status(), 200);
            let body: serde_json::Value = response.json().await.expect("JSON");
            body["access_token"].as_str().expect("a token").to_owned()
        };
        let status_with = |token: String| {
            let http = http.clone();
            let url = url.clone();
            async move {
                http.get(format!("{url}/v1/jobs"))
                    .bearer_auth(token)
                    .header("Customer-Id", "9")
                    .send()
                    .await
                    .expect("answers")
                    .status()
                    .as_u16()
            }
        };
        let before = token().await;
        let old_key = key_id(&before);

        let rotated = succeeded(&store.admin(&["keys", "rotate"]).await);
        let new_key = rotated
            .split_whitespace()
            .nth(2)
            .expect("the new key's id")
            .trim_end_matches(':')
            .to_owned();
        assert_ne!(new_key, old_key);
        assert_eq!(key_id(&token().await), old_key, "the old key signs until the new one's time");
        let listed = succeeded(&store.admin(&["keys", "list"]).await);
        assert!(listed.contains(&format!("{old_key}\tsigns")) && listed.contains(&new_key), "{listed}");

        // The new key signs once its time has come and the server has re-read the file.
        let deadline = std::time::Instant::now() + PATIENCE;
        let after = loop {
            let fresh = token().await;
            if key_id(&fresh) == new_key {
                break fresh;
            }
            assert!(std::time::Instant::now() < deadline, "the new key never signed");
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        };
        assert_eq!(status_with(before.clone()).await, 200, "tokens of the old key still work");
        assert_eq!(status_with(after.clone()).await, 200);

        let refused = store.admin(&["keys", "retire", &new_key]).await;
        assert!(!refused.status.success(), "the signing key cannot be retired");
        let early = store.admin(&["keys", "retire", &old_key]).await;
        assert!(!early.status.success(), "not while its tokens may be valid, unless forced");
        succeeded(&store.admin(&["keys", "retire", "--force", &old_key]).await);
        let deadline = std::time::Instant::now() + PATIENCE;
        while status_with(before.clone()).await != 401 {
            assert!(std::time::Instant::now() < deadline, "the retired key's tokens still work");
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        assert_eq!(status_with(after).await, 200, "only the retired key's tokens end");
        assert!(terminate(&mut server).await.success());
    }
}

/// `--log-format json`: every log line is one JSON object, the request line's fields at
/// its top level, for log shippers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_can_be_json_lines() {
    let store = TestStore::new(Backend::Sqlite).await;
    let mut command = server_command(&store, "127.0.0.1:0");
    command
        .args(["--log-format", "json"])
        .stderr(Stdio::piped());
    let (mut server, line) = launch(&mut command).await;
    let url = base_url(&line);
    let live = reqwest::get(format!("{url}/health/live"))
        .await
        .expect("answers");
    assert_eq!(live.status(), 200);
    let mut stderr = server.stderr.take().expect("stderr");
    assert!(terminate(&mut server).await.success());
    let mut text = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text)
        .await
        .expect("reads");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("a JSON line: {line}")))
        .collect();
    let request = lines
        .iter()
        .find(|line| line["message"] == "request" && line["path"] == "/health/live")
        .unwrap_or_else(|| panic!("the request line: {text}"));
    assert_eq!(request["status"], 200);
    assert_eq!(request["level"], "INFO");
    assert!(
        request["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{request}"
    );
    assert!(request["timestamp"].is_string());
}

/// `--metrics-listen`: `/metrics` is served there and no longer beside the public API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_served_on_a_listener_of_their_own() {
    let store = TestStore::new(Backend::Sqlite).await;
    let mut command = server_command(&store, "127.0.0.1:0");
    command
        .args(["--metrics-listen", "127.0.0.1:0"])
        .stderr(Stdio::null());
    let (mut server, line) = launch(&mut command).await;
    let public = base_url(&line);
    let metrics = line
        .split_whitespace()
        .map(|word| word.trim_end_matches(')'))
        .find(|word| word.starts_with("http://") && word.ends_with("/metrics"))
        .unwrap_or_else(|| panic!("the metrics address in {line:?}"))
        .to_owned();
    let get = |url: String| async move { reqwest::get(url).await.expect("answers") };
    assert_eq!(get(format!("{public}/health/live")).await.status(), 200);
    assert_eq!(
        get(format!("{public}/metrics")).await.status(),
        404,
        "not on the public listener"
    );
    let scraped = get(metrics.clone()).await;
    assert_eq!(scraped.status(), 200);
    let body = scraped.text().await.expect("text");
    assert!(body.contains("jobs_http_requests_total"), "{body}");
    let elsewhere = get(metrics.replace("/metrics", "/health/live")).await;
    assert_eq!(elsewhere.status(), 404, "only /metrics there");
    assert!(terminate(&mut server).await.success());
}
