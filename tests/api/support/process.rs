//! The `jobs-server` binary as a process of its own: the command for a [`TestStore`],
//! launching it and reading where it listens, stopping it with SIGTERM or killing it with
//! SIGKILL.

use super::store::TestStore;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const BINARY: &str = env!("CARGO_BIN_EXE_jobs-server");
/// A guard against a hung process, not a performance bound.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn server_command(store: &TestStore, listen: &str) -> Command {
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
        .env_remove("JOBS_TOKEN_KEY")
        .env_remove("JOBS_TOKEN_KEY_FILE")
        .env_remove("JOBS_TOKEN_TTL")
        .env_remove("JOBS_TOKEN_ISSUER")
        .env_remove("JOBS_TOKEN_AUDIENCE")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Spawns the binary and waits for the line it prints once it accepts connections.
pub async fn launch(command: &mut Command) -> (Child, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::time::timeout(PATIENCE, BufReader::new(stdout).lines().next_line())
        .await
        .expect("the server announces itself")
        .expect("readable stdout")
        .expect("a line");
    (child, line)
}

/// The base URL (`http://host:port`) in the server's announcement.
pub fn base_url(announcement: &str) -> String {
    announcement
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {announcement:?}"))
        .to_owned()
}

/// Starts the binary on a free port and returns it with its base URL.
pub async fn start(store: &TestStore) -> (Child, String) {
    let (child, line) = launch(server_command(store, "127.0.0.1:0").stderr(Stdio::null())).await;
    (child, base_url(&line))
}

pub async fn terminate(child: &mut Child) -> std::process::ExitStatus {
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

/// Kills the server at once (SIGKILL): no shutdown, no flush, no goodbye.
pub async fn kill(child: &mut Child) {
    child.start_kill().expect("SIGKILL is sent");
    tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("the server dies")
        .expect("an exit status");
}
