//! Where events and projections live. Both backends implement the same two faces:
//! cqrs-es's `PersistedEventRepository` (the write side: `persist` appends a command's events
//! and updates the projection in one transaction; reads delegate to postgres-es/sqlite-es)
//! and [`JobQueries`] (the read side). The code of both is generated from one body by
//! `job_store!` in `shared.rs`, because the SQL is the same text on both.

#[macro_use]
mod shared;
#[macro_use]
mod clients;
#[macro_use]
mod maintenance;
pub mod postgres;
pub mod sqlite;
mod sqlite_bulk;

use crate::paging::{Direction, JobFilter, Page, PageRequest};
use crate::view::{JobView, StatusHistoryEntry};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

pub use crate::error::StoreError;

pub use clients::{ClientRecord, ClientRegistry};
pub(crate) use maintenance::{job_rows, pair_job_events, parse_job_events, ParsedJobEvent};
pub use postgres::PostgresJobStore;
pub use shared::ProjectionTables;
pub(crate) use shared::{fold_events, unseen_jobs, unwrap_payload, ViewSlots};
pub use sqlite::SqliteJobStore;

/// One stored event as the audit endpoint shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub recorded_at: DateTime<Utc>,
    /// The event's fields, e.g. `{"reason": "…", "occurredAt": "…"}` for `JobCancelled`.
    pub payload: serde_json::Value,
    /// Who acted (`clientId`, with token `tokenId`), for which customer (`customerId`), in
    /// which request (`requestId`).
    pub metadata: serde_json::Value,
}

/// The read side. Every lookup is scoped to a customer: another customer's job is
/// indistinguishable from one that does not exist (`None`).
#[async_trait]
pub trait JobQueries: Send + Sync {
    async fn job(&self, customer_id: i64, job_id: Uuid) -> Result<Option<JobView>, StoreError>;

    async fn list_jobs(
        &self,
        customer_id: i64,
        filter: &JobFilter,
        page: PageRequest,
    ) -> Result<Page<JobView>, StoreError>;

    async fn status_history(
        &self,
        customer_id: i64,
        job_id: Uuid,
        direction: Direction,
        page: PageRequest,
    ) -> Result<Option<Page<StatusHistoryEntry>>, StoreError>;

    async fn events(
        &self,
        customer_id: i64,
        job_id: Uuid,
        page: PageRequest,
    ) -> Result<Option<Page<StoredEvent>>, StoreError>;

    /// Answers when the store does.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// The store chosen by the database URL.
#[derive(Clone)]
pub enum JobStore {
    Postgres(PostgresJobStore),
    Sqlite(SqliteJobStore),
}

/// Connects to the store a URL names (`postgres://…`, `postgresql://…` or `sqlite:…`) and
/// applies the migrations it has not seen yet.
pub async fn connect(database_url: &str) -> Result<JobStore, StoreError> {
    let store = open(database_url).await?;
    store.migrate().await?;
    Ok(store)
}

/// Connects to the store a URL names without touching its schema.
pub async fn open(database_url: &str) -> Result<JobStore, StoreError> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        Ok(JobStore::Postgres(
            PostgresJobStore::connect(database_url).await?,
        ))
    } else if database_url.starts_with("sqlite:") {
        Ok(JobStore::Sqlite(
            SqliteJobStore::connect(database_url).await?,
        ))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}

/// A migration that `migrate` applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationApplied {
    pub version: i64,
    pub description: String,
}

/// Runs `migrator` on `connection` and tells which of its migrations were new.
async fn apply_migrations<C: sqlx::migrate::Migrate>(
    connection: &mut C,
    migrator: &sqlx::migrate::Migrator,
) -> Result<Vec<MigrationApplied>, StoreError> {
    connection.ensure_migrations_table().await?;
    let before: std::collections::HashSet<i64> = connection
        .list_applied_migrations()
        .await?
        .into_iter()
        .map(|migration| migration.version)
        .collect();
    migrator.run_direct(connection).await?;
    Ok(migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !before.contains(&m.version))
        .map(|m| MigrationApplied {
            version: m.version,
            description: m.description.to_string(),
        })
        .collect())
}

impl JobStore {
    pub fn backend_name(&self) -> &'static str {
        match self {
            JobStore::Postgres(_) => "postgres",
            JobStore::Sqlite(_) => "sqlite",
        }
    }

    pub fn queries(&self) -> std::sync::Arc<dyn JobQueries> {
        match self {
            JobStore::Postgres(store) => std::sync::Arc::new(store.clone()),
            JobStore::Sqlite(store) => std::sync::Arc::new(store.clone()),
        }
    }

    /// Applies the migrations the store has not seen yet; returns those.
    pub async fn migrate(&self) -> Result<Vec<MigrationApplied>, StoreError> {
        match self {
            JobStore::Postgres(store) => store.migrate().await,
            JobStore::Sqlite(store) => store.migrate().await,
        }
    }

    /// The global event log.
    pub fn log(&self) -> std::sync::Arc<dyn crate::log::EventLog> {
        match self {
            JobStore::Postgres(store) => std::sync::Arc::new(store.clone()),
            JobStore::Sqlite(store) => std::sync::Arc::new(store.clone()),
        }
    }

    /// What a projection rebuild needs of the store.
    pub fn rebuilder(&self) -> std::sync::Arc<dyn crate::rebuild::ProjectionRebuild> {
        match self {
            JobStore::Postgres(store) => std::sync::Arc::new(store.clone()),
            JobStore::Sqlite(store) => std::sync::Arc::new(store.clone()),
        }
    }

    /// What `verify` needs of the store.
    pub fn checker(&self) -> std::sync::Arc<dyn crate::verify::ProjectionCheck> {
        match self {
            JobStore::Postgres(store) => std::sync::Arc::new(store.clone()),
            JobStore::Sqlite(store) => std::sync::Arc::new(store.clone()),
        }
    }

    pub fn clients(&self) -> std::sync::Arc<dyn ClientRegistry> {
        match self {
            JobStore::Postgres(store) => std::sync::Arc::new(store.clone()),
            JobStore::Sqlite(store) => std::sync::Arc::new(store.clone()),
        }
    }
}

/// Maps a database error on the write path to cqrs-es's terms. A unique violation on the
/// events key means another writer appended this sequence first (optimistic concurrency);
/// SQLite's "database is locked" is likewise a lost race. Both are safe to retry.
fn persistence_error(error: sqlx::Error) -> cqrs_es::persist::PersistenceError {
    use cqrs_es::persist::PersistenceError;
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            PersistenceError::OptimisticLockError
        }
        sqlx::Error::Database(db) if crate::error::sqlite_busy(db.as_ref()) => {
            PersistenceError::OptimisticLockError
        }
        _ if crate::error::database_unavailable(&error) => {
            PersistenceError::ConnectionError(Box::new(error))
        }
        _ => PersistenceError::UnknownError(Box::new(error)),
    }
}

/// The same, for errors of the projection step of a write.
fn store_to_persistence_error(error: StoreError) -> cqrs_es::persist::PersistenceError {
    match error {
        StoreError::Database(error) => persistence_error(error),
        other => cqrs_es::persist::PersistenceError::UnknownError(Box::new(other)),
    }
}
