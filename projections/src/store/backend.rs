//! What differs between PostgreSQL and SQLite, as one trait, and the [`Store`] generic over
//! it. The trait holds the SQL dialect where the two read differently (the log's order and
//! horizon, how a transaction takes its locks), the fastest bulk writes (`COPY`, a raw
//! prepared statement), and how each holds writers back, leases a rebuild and swaps tables
//! in. The shared write, read, rebuild and verify code in `write.rs`, `read.rs` and
//! `upkeep.rs` is generic over it, and the SQL both run as written is in `sql/`.

use super::group::GroupQueue;
use super::read::{lookup_queue, Lookup};
use super::rows::ProjectionTables;
use super::sql::{Connection, JobSql, MigrationApplied, Sql};
use super::stash::ConnectionStash;
use super::turns::CustomerTurns;
use super::write::{commit_queue, Waiting};
use crate::error::StoreError;
use crate::log::{LogCursor, LogFilter, LoggedEvent, TransactionsAhead};
use crate::model::view::{StatusHistoryEntry, SummaryDocument};
use crate::rebuild::RebuildLease;
use async_trait::async_trait;
use cqrs_es::persist::PersistedEventRepository;
use sqlx::Pool;
use std::sync::Arc;

/// One database backend. Its value is the state a store of that backend keeps beside its
/// pool (SQLite's writer queue and rebuild lock file; nothing for PostgreSQL).
#[async_trait]
pub trait Backend: Clone + Send + Sync + 'static {
    /// sqlx's database, on which the shared statements run.
    type Db: Sql;
    /// The cqrs-es repository of this database, to which event reads are delegated.
    type Events: PersistedEventRepository + Send + Sync + 'static;

    /// The name `JobStore::backend_name` reports.
    const NAME: &'static str;

    /// This database's migrations (`migrations/postgres` or `migrations/sqlite`).
    fn migrator() -> &'static sqlx::migrate::Migrator;

    // The global log. Log queries take the cursor `($1 transaction, $2 position)`, the
    // customer `$3`, and at most `$4` events, in log order. Each comes twice: for every
    // customer (`$3` NULL), and for the customer `$3` through its index.

    /// Final events after a cursor: none that commits later can sort before them.
    const READ_LOG: &'static str;
    const READ_CUSTOMER_LOG: &'static str;
    /// Every committed event after a cursor, for use while writers are held back.
    const READ_COMMITTED: &'static str;
    /// Where the log ends now: a transaction bound, or 0 for "no bound".
    const LOG_END: &'static str;
    /// How many committed events after the cursor, of transactions before `$4`, a read
    /// cannot return yet (up to 1000).
    const HELD_BACK: &'static str;
    const CUSTOMER_HELD_BACK: &'static str;
    /// The log's head (see `EventLog::head`), as `(transaction, position)`.
    const LOG_HEAD: &'static str;
    /// How many events after the cursor, of the customer if given, up to `$4`.
    const COUNT_AFTER: &'static str;
    const CUSTOMER_COUNT_AFTER: &'static str;
    /// The cursor of the event at position `$1`, and whether it is final.
    const CURSOR_AT: &'static str;
    /// The expression of a row's writing transaction, as a log cursor holds it.
    const TRANSACTION: &'static str;

    /// How many group commits may be written at once (see `write.rs`).
    const COMMITTERS: usize;

    /// The database's clock, in Unix milliseconds (an SQL expression).
    const NOW_MS: &'static str;

    /// Taken first in the transaction that creates a webhook subscription, with the
    /// customer as `$1`, so that creates of one customer count its subscriptions one after
    /// another; `None` where writers already go one at a time.
    const SUBSCRIPTION_CREATE_LOCK: Option<&'static str>;

    // Transactions.

    /// Begins a write transaction (taking the write lock at once where that matters).
    const WRITE_BEGIN: &'static str;
    /// Begins a read-only transaction that sees one snapshot…
    const SNAPSHOT_BEGIN: &'static str;
    /// …which starts with this statement.
    const SNAPSHOT_FIRST: &'static str;

    /// Held while this process writes, where the database has one writer at a time
    /// (queueing here replaces the busy handler's growing sleeps); `None` where writers
    /// run side by side.
    async fn exclusive_writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>>;

    /// Whether the log holds transaction ids ahead of those the database hands out now (it
    /// was restored into another cluster); never on SQLite, whose log order is its rowids'.
    async fn transactions_ahead(
        pool: &Pool<Self::Db>,
    ) -> Result<Option<TransactionsAhead>, StoreError>;

    /// Makes new events sort after every stored one again; returns what it found ahead
    /// (`None`: nothing was).
    async fn repair_transaction_order(
        pool: &Pool<Self::Db>,
    ) -> Result<Option<TransactionsAhead>, StoreError>;

    /// Runs a log query (`READ_LOG` or `READ_COMMITTED`).
    async fn read_log(
        connection: &mut Connection<Self::Db>,
        sql: &str,
        after: LogCursor,
        filter: &LogFilter,
        limit: i64,
    ) -> Result<Vec<LoggedEvent>, StoreError>;

    // Rebuild.

    /// One rebuild at a time per database: `StoreError::RebuildRunning` while another holds
    /// the lease.
    async fn rebuild_lease(&self, pool: &Pool<Self::Db>) -> Result<RebuildLease, StoreError>;

    /// Creates the (empty) rebuild tables, shaped like the live ones.
    async fn create_rebuild_tables(pool: &Pool<Self::Db>) -> Result<(), StoreError>;

    /// Gives the rebuild tables the indexes of the live ones they still lack.
    async fn add_missing_indexes(pool: &Pool<Self::Db>) -> Result<(), StoreError>;

    /// Turns the connection's durability down for a rebuild's batches (`relaxed`), or back
    /// to full.
    async fn relax_durability(
        connection: &mut Connection<Self::Db>,
        relaxed: bool,
    ) -> Result<(), StoreError>;

    /// Turns durability down for the current transaction only.
    async fn relax_transaction(connection: &mut Connection<Self::Db>) -> Result<(), StoreError>;

    /// Called after each rebuild batch is written (SQLite checkpoints beside the rebuild).
    fn rebuild_batch_written(&self, pool: &Pool<Self::Db>);

    /// Adds status-history rows to rebuild tables, which hold none of them yet.
    async fn bulk_insert_history(
        connection: &mut Connection<Self::Db>,
        tables: ProjectionTables,
        history: &[(&str, StatusHistoryEntry)],
    ) -> Result<(), StoreError>;

    /// Adds summaries to rebuild tables, which hold no row for them yet.
    async fn bulk_insert_summaries(
        connection: &mut Connection<Self::Db>,
        tables: ProjectionTables,
        summaries: &[SummaryDocument],
    ) -> Result<(), StoreError>;

    /// In the swap's transaction: keeps writers out until it commits (readers go on).
    async fn hold_back_writers(connection: &mut Connection<Self::Db>) -> Result<(), StoreError>;

    /// In the swap's transaction: puts the rebuild tables in place of the live ones, with
    /// the index names the migrations gave the live ones.
    async fn replace_live_tables(connection: &mut Connection<Self::Db>) -> Result<(), StoreError>;

    /// A guard that stops the next query on `connection` should its caller stop waiting
    /// for it, where the store needs one to (SQLite, whose statements would otherwise run
    /// to their end); PostgreSQL's own `statement_timeout` bounds its statements, and its
    /// guard does nothing.
    ///
    /// Only this crate can call it (see [`CrateOnly`]): the guard holds the connection's
    /// raw handle without borrowing it, and is sound only while the caller keeps the
    /// connection checked out for as long as the guard lives, which `read.rs` does.
    async fn abandonment_guard(
        _connection: &mut Connection<Self::Db>,
        _caller: CrateOnly,
    ) -> Result<QueryGuard, StoreError> {
        Ok(QueryGuard::none())
    }
}

/// A value only this crate can make: taken by trait methods that are public only because
/// the trait is, and must not be called from outside.
pub struct CrateOnly(());

impl CrateOnly {
    pub(crate) fn new() -> Self {
        CrateOnly(())
    }
}

/// Stops a query that its caller stopped waiting for (it timed out, or the request that
/// wanted it went away): dropped before [`QueryGuard::finished`], it runs its stop.
pub struct QueryGuard {
    stop: Option<Box<dyn FnOnce() + Send>>,
}

impl QueryGuard {
    /// A guard with nothing to stop.
    pub fn none() -> Self {
        QueryGuard { stop: None }
    }

    /// A guard that runs `stop` if dropped before the query finished.
    pub fn stopping(stop: impl FnOnce() + Send + 'static) -> Self {
        QueryGuard {
            stop: Some(Box::new(stop)),
        }
    }

    /// Whether dropping it would stop something.
    pub fn is_armed(&self) -> bool {
        self.stop.is_some()
    }

    /// The query finished: nothing to stop.
    pub fn finished(mut self) {
        self.stop = None;
    }
}

impl Drop for QueryGuard {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

/// Time bounds on a serving process's database sessions: none by default, since
/// jobs-admin's rebuilds, index builds and migrations must run as long as they need.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionBounds {
    /// How long one statement may run (on PostgreSQL every statement, and a transaction may
    /// sit idle as long; on SQLite the job lists).
    pub statement_timeout: Option<std::time::Duration>,
}

/// Events and projections in one database of backend `B`.
pub struct Store<B: Backend> {
    pub(super) pool: sqlx::Pool<B::Db>,
    /// cqrs-es's own repository on the same pool, for event reads.
    pub(super) events: Arc<B::Events>,
    pub(super) backend: B,
    /// Commits waiting to be written as a group (see `group.rs`).
    pub(super) commits: Arc<GroupQueue<Waiting>>,
    /// Job lookups waiting to be answered as a group.
    pub(super) lookups: Arc<GroupQueue<Lookup>>,
    /// Connections the hot paths keep at hand (see `stash.rs`).
    pub(super) connections: Arc<ConnectionStash<B::Db>>,
    /// How long a query a caller chose the cost of may run (`None`: unbounded, as for
    /// jobs-admin); see [`Store::bound_statements`].
    pub(super) statement_bound: Option<std::time::Duration>,
    /// Each customer's turns at such queries (see `turns.rs`).
    pub(super) list_turns: Arc<CustomerTurns>,
}

impl<B: Backend> Clone for Store<B> {
    fn clone(&self) -> Self {
        Store {
            pool: self.pool.clone(),
            events: self.events.clone(),
            backend: self.backend.clone(),
            commits: self.commits.clone(),
            lookups: self.lookups.clone(),
            connections: self.connections.clone(),
            statement_bound: self.statement_bound,
            list_turns: self.list_turns.clone(),
        }
    }
}

impl<B: Backend> Store<B> {
    pub(super) fn new(pool: sqlx::Pool<B::Db>, events: B::Events, backend: B) -> Self {
        let connections = Arc::new(ConnectionStash::new(&pool));
        let list_turns = Arc::new(CustomerTurns::for_pool(
            pool.options().get_max_connections() as usize,
        ));
        Store {
            pool,
            events: Arc::new(events),
            backend,
            commits: Arc::new(commit_queue::<B>()),
            lookups: Arc::new(lookup_queue()),
            connections,
            statement_bound: None,
            list_turns,
        }
    }

    /// Applies `bounds` on this side: the queries whose cost callers choose (job lists) are
    /// stopped when they run past the statement bound, or when their caller stops waiting.
    /// SQLite interrupts them; PostgreSQL does so itself, as its connections were opened
    /// with the same bounds (see `PostgresJobStore::connect_bounded`).
    pub fn bounded(mut self, bounds: SessionBounds) -> Self {
        self.statement_bound = bounds.statement_timeout;
        self
    }

    /// Applies the migrations the database has not seen yet; returns those.
    pub async fn migrate(&self) -> Result<Vec<MigrationApplied>, StoreError> {
        <B::Db as JobSql>::migrate(&self.pool, B::migrator()).await
    }
}
