//! The SQLite store (the embedded default: nothing to install).

use super::StoreError;
use sqlx::sqlite::SqliteSynchronous;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct SqliteJobStore {
    pool: SqlitePool,
    delegate: Arc<sqlite_es::SqliteEventRepository>,
    /// SQLite has one writer at a time. Queueing this process's write transactions here,
    /// in order, replaces the busy handler's growing sleeps (hundreds of milliseconds at
    /// the tail under load) with a plain wait for the writer ahead.
    writer: Arc<tokio::sync::Mutex<()>>,
}

impl SqliteJobStore {
    /// Opens (creating if missing) the database a `sqlite:` URL names.
    pub async fn connect(database_url: &str) -> Result<Self, StoreError> {
        Self::open(SqliteConnectOptions::from_str(database_url)?).await
    }

    /// Opens the database file at `path` (created if missing).
    pub async fn open_file(path: &Path) -> Result<Self, StoreError> {
        Self::open(SqliteConnectOptions::new().filename(path)).await
    }

    /// WAL lets readers run beside the one writer; `synchronous = FULL` makes an acknowledged
    /// commit survive a power cut; the busy timeout makes concurrent writers queue instead
    /// of failing.
    async fn open(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        Ok(Self {
            delegate: Arc::new(sqlite_es::SqliteEventRepository::new(pool.clone())),
            pool,
            writer: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    async fn exclusive_writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        Some(self.writer.lock().await)
    }
}

job_store!(SqliteJobStore, sqlx::Sqlite);
client_registry!(SqliteJobStore, sqlx::Sqlite);
