//! Where events and projections live. A [`Store`] keeps both in one database, PostgreSQL or
//! SQLite, and shows them through narrow faces: [`CommandStore`] (the write side: a job's
//! snapshot and events, and `append`, which records a command's events, projection rows,
//! snapshot and idempotency answer in one transaction; event reads delegate to
//! postgres-es/sqlite-es), [`IdempotencyKeys`], [`JobQueries`] (the read side), the global
//! log, rebuild and verify, and the client registry.
//!
//! - `backend.rs`: the [`Backend`] trait, what differs between the two databases;
//!   `postgres.rs` and `sqlite/` implement it (`sqlite/bulk.rs` holds all unsafe FFI);
//! - `sql/`: the statements both run as written; `rows.rs`: the projection's columns;
//! - `write.rs`, `read.rs`, `upkeep.rs`: the write path, the read side, and the log, rebuild
//!   and verify implementations — ordinary code generic over the backend;
//! - `queries.rs`: the read side's interface ([`JobQueries`]);
//! - `keys.rs`: idempotency keys' claims (their answers are written by `write.rs`);
//! - `group.rs`: the queue that groups commits and lookups; `stash.rs`: the connections the
//!   hot paths keep, to skip sqlx's ping on each release;
//! - `clients.rs`: the OAuth client registry, and `webhooks.rs`: webhook subscriptions, kept
//!   here because they share the pool, the migrations and SQLite's writer queue.

mod backend;
mod clients;
mod group;
mod keys;
pub mod postgres;
mod queries;
mod read;
mod rows;
mod sql;
pub mod sqlite;
mod stash;
mod turns;
mod upkeep;
mod webhooks;
mod write;

use crate::idempotency::IdempotencyKeys;
use crate::log::EventLog;
use crate::rebuild::ProjectionRebuild;
use crate::verify::ProjectionCheck;
use crate::webhooks::WebhookStore;
use std::sync::Arc;

pub use crate::error::StoreError;
pub use backend::{Backend, CrateOnly, QueryGuard, SessionBounds, Store};
pub use clients::{ClientRecord, ClientRegistry};
pub use postgres::{PostgresBackend, PostgresJobStore};
pub use queries::{JobQueries, StoredEvent};
pub use rows::ProjectionTables;
pub use sql::{job_list_sql, MigrationApplied};
pub use sqlite::{SqliteBackend, SqliteJobStore};
pub use write::{AppendError, CommandStore, Commit, Held, JobSnapshot, StoredJob, SNAPSHOT_EVERY};

/// Every face of a store, so that one `match` on the backend serves them all.
trait StoreFaces:
    CommandStore
    + IdempotencyKeys
    + JobQueries
    + EventLog
    + ProjectionRebuild
    + ProjectionCheck
    + ClientRegistry
    + WebhookStore
{
}

impl<S> StoreFaces for S where
    S: CommandStore
        + IdempotencyKeys
        + JobQueries
        + EventLog
        + ProjectionRebuild
        + ProjectionCheck
        + ClientRegistry
        + WebhookStore
{
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
    open_bounded(database_url, SessionBounds::default()).await
}

/// The same, for a serving process: its sessions within `bounds`.
pub async fn open_bounded(
    database_url: &str,
    bounds: SessionBounds,
) -> Result<JobStore, StoreError> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        Ok(JobStore::Postgres(
            PostgresJobStore::connect_bounded(database_url, bounds).await?,
        ))
    } else if database_url.starts_with("sqlite:") {
        Ok(JobStore::Sqlite(
            SqliteJobStore::connect(database_url).await?.bounded(bounds),
        ))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}

impl JobStore {
    /// Brings the query planner's statistics up to date where the database does not keep
    /// them itself: SQLite. Without them, SQLite serves a filtered job list by the index of
    /// its order and reads every job of the customer. (PostgreSQL's autovacuum analyzes
    /// on its own.) Cheap: SQLite samples at most a thousand rows per index.
    pub async fn refresh_planner_statistics(&self) -> Result<(), StoreError> {
        match self {
            JobStore::Postgres(_) => Ok(()),
            JobStore::Sqlite(store) => store.analyze().await,
        }
    }

    /// The store behind every face.
    fn faces(&self) -> Arc<dyn StoreFaces> {
        match self {
            JobStore::Postgres(store) => Arc::new(store.clone()),
            JobStore::Sqlite(store) => Arc::new(store.clone()),
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            JobStore::Postgres(_) => PostgresBackend::NAME,
            JobStore::Sqlite(_) => SqliteBackend::NAME,
        }
    }

    /// Applies the migrations the store has not seen yet; returns those.
    pub async fn migrate(&self) -> Result<Vec<MigrationApplied>, StoreError> {
        match self {
            JobStore::Postgres(store) => store.migrate().await,
            JobStore::Sqlite(store) => store.migrate().await,
        }
    }

    /// The write side.
    pub fn commands(&self) -> Arc<dyn CommandStore> {
        self.faces()
    }

    pub fn idempotency_keys(&self) -> Arc<dyn IdempotencyKeys> {
        self.faces()
    }

    pub fn queries(&self) -> Arc<dyn JobQueries> {
        self.faces()
    }

    /// The global event log.
    pub fn log(&self) -> Arc<dyn EventLog> {
        self.faces()
    }

    /// What a projection rebuild needs of the store.
    pub fn rebuilder(&self) -> Arc<dyn ProjectionRebuild> {
        self.faces()
    }

    /// What `verify` needs of the store.
    pub fn checker(&self) -> Arc<dyn ProjectionCheck> {
        self.faces()
    }

    pub fn clients(&self) -> Arc<dyn ClientRegistry> {
        self.faces()
    }

    /// Webhook subscriptions and their delivery state.
    pub fn webhooks(&self) -> Arc<dyn WebhookStore> {
        self.faces()
    }
}
