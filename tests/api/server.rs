//! The `jobs-server` binary itself: it prints where it listens, serves, stops gracefully on
//! SIGTERM with exit status 0 (keeping every acknowledged write), and refuses to start with
//! a one-line reason when it cannot.

use crate::backend_tests;
use crate::support::{Backend, TestStore};
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BINARY: &str = env!("CARGO_BIN_EXE_jobs-server");
/// A guard against a hung process, not a performance bound.
const PATIENCE: Duration = Duration::from_secs(60);

fn server_command(store: &TestStore, listen: &str) -> Command {
    let mut command = Command::new(BINARY);
    command
        .arg("--listen")
        .arg(listen)
        .arg("--database-url")
        .arg(&store.database_url)
        .arg("--data-dir")
        .arg(&store.data_dir)
        .env_remove("DATABASE_URL")
        .env_remove("JOBS_LISTEN")
        .env_remove("JOBS_DATA_DIR")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Starts the binary on a free port and returns it with the base URL it printed.
async fn start(store: &TestStore) -> (Child, String) {
    let mut child = server_command(store, "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary runs");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("the server reports its address")
        .expect("readable stdout")
        .expect("a line");
    let address = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (child, address)
}

async fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().expect("a running process").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("the server stops")
        .expect("an exit status")
}

backend_tests! {
    async fn sigterm_stops_gracefully_and_keeps_every_write(store: TestStore) {
        let client = reqwest::Client::new();
        let (mut server, address) = start(&store).await;
        let reply = client
            .post(format!("{address}/v1/jobs"))
            .header("Customer-Id", "5")
            .json(&json!({"typeId": 1, "contactId": 2}))
            .send()
            .await
            .expect("create");
        assert_eq!(reply.status(), 201);
        let location = reply.headers()["location"].to_str().expect("location").to_owned();

        let status = terminate(&mut server).await;
        assert!(status.success(), "exit status 0 after a graceful shutdown: {status:?}");

        // Started again on the same store, the acknowledged job is there.
        let (mut server, address) = start(&store).await;
        let reply = client
            .get(format!("{address}{location}"))
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
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason: Vec<&str> = stderr.lines().filter(|l| l.starts_with("jobs-server:")).collect();
        assert_eq!(reason.len(), 1, "one line of reason: {stderr}");
        assert!(reason[0].contains("cannot listen on"), "{stderr}");
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
        assert!(!output.status.success(), "{url} must not start");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("jobs-server:"))
            .collect();
        assert_eq!(reason.len(), 1, "{stderr}");
        assert!(reason[0].contains(expected), "{url}: {stderr}");
    }
}
