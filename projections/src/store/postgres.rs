//! The PostgreSQL backend (production): log order by writing transaction (shifted past a
//! restored log's ids when needed), advisory-lock leases, `COPY` for a rebuild's rows, and
//! index renames in the swap.

use super::backend::{Backend, SessionBounds, Store};
use super::rows::{
    column_list, history_values, summary_values, ProjectionTables, RowValue, HISTORY_COLUMNS,
    SUMMARY_COLUMNS,
};
use super::sql::LogSql;
use crate::error::StoreError;
use crate::log::{LogCursor, LogFilter, LoggedEvent, TransactionsAhead};
use crate::model::view::{StatusHistoryEntry, SummaryDocument};
use crate::rebuild::RebuildLease;
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::PgConnection;
use std::str::FromStr;
use std::time::Duration;

/// The PostgreSQL backend; it keeps no state beside the pool.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresBackend;

/// The production store.
pub type PostgresJobStore = Store<PostgresBackend>;

impl Store<PostgresBackend> {
    /// Connects without touching the schema (see [`Self::migrate`]).
    pub async fn connect(database_url: &str) -> Result<Self, StoreError> {
        Self::connect_bounded(database_url, SessionBounds::default()).await
    }

    /// The same, every session within `bounds`: the server cancels a statement that runs
    /// longer than the statement timeout (57014), closes a session left idle in a
    /// transaction as long (either is a 503 to callers), and stops a query within a second
    /// of its connection being closed (a job list whose caller gave up). Sent at connection start-up, so they cost no
    /// round trip; migrations lift them on the connection they run on.
    pub async fn connect_bounded(
        database_url: &str,
        bounds: SessionBounds,
    ) -> Result<Self, StoreError> {
        let mut options = PgConnectOptions::from_str(database_url)?;
        if let Some(timeout) = bounds.statement_timeout {
            let milliseconds = timeout.as_millis().to_string();
            options = options.options([
                ("statement_timeout", milliseconds.as_str()),
                ("idle_in_transaction_session_timeout", milliseconds.as_str()),
                // How often a running query checks that its client is still there: a query
                // whose caller gave up has its connection closed, and stops within this.
                ("client_connection_check_interval", "1000"),
            ]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            // sqlx pings a pooled connection before each use by default: a round trip per
            // query. A connection that died meanwhile fails its query instead (503, and the
            // pool drops it), which a ping could not prevent either — it can die just after.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        let events = postgres_es::PostgresEventRepository::new(pool.clone());
        Ok(Self::new(pool, events, PostgresBackend).bounded(bounds))
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Log queries: after the cursor `($1 transaction, $2 position)`, of every customer (`$3`
/// is then NULL) or of the customer `$3` — two statements, so that the second is planned
/// on the customer's index (`events_by_customer`) — at most `$4` events, in (transaction,
/// position) order.
macro_rules! log_query {
    ($horizon:literal, $customer:expr) => {
        concat!(
            "SELECT transaction_id::text::bigint AS \"transaction\", position, aggregate_type, \
             aggregate_id, sequence, event_type, event_version, recorded_at, \
             payload::text AS payload, metadata::text AS metadata \
             FROM events WHERE (transaction_id, position) > ($1::bigint::text::xid8, $2) ",
            $horizon,
            " ",
            $customer,
            " ORDER BY transaction_id, position LIMIT $4"
        )
    };
}

/// The customer conditions of log queries: every customer's events, or `$3`'s.
macro_rules! every_customer {
    () => {
        "AND $3::text IS NULL"
    };
}
macro_rules! one_customer {
    () => {
        "AND customer_id = $3"
    };
}

/// A count of log events after the cursor, with a further condition and a bound.
macro_rules! log_count {
    ($condition:literal, $customer:expr, $bound:literal) => {
        concat!(
            "SELECT count(*) FROM (SELECT 1 FROM events \
             WHERE (transaction_id, position) > ($1::bigint::text::xid8, $2) ",
            $condition,
            " ",
            $customer,
            " LIMIT ",
            $bound,
            ") AS counted"
        )
    };
}

async fn transactions_ahead(
    connection: &mut PgConnection,
) -> Result<Option<TransactionsAhead>, StoreError> {
    let (highest, next): (Option<i64>, i64) =
        sqlx::query_as("SELECT (SELECT max(transaction_id)::text::bigint FROM events), log_end()")
            .fetch_one(connection)
            .await?;
    Ok(highest
        .filter(|highest| *highest >= next)
        .map(|highest_stored| TransactionsAhead {
            highest_stored,
            next,
        }))
}

/// The advisory lock one rebuild at a time holds on a database ("jobs rebuild" in ASCII).
const REBUILD_LOCK: i64 = 0x6a6f_6273_7265_6275;

#[async_trait]
impl Backend for PostgresBackend {
    type Db = sqlx::Postgres;
    type Events = postgres_es::PostgresEventRepository;

    const NAME: &'static str = "postgres";

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    /// Only events of transactions older than every running one: nothing can commit before
    /// them any more.
    const READ_LOG: &'static str =
        log_query!("AND transaction_id < log_horizon()", every_customer!());
    const READ_CUSTOMER_LOG: &'static str =
        log_query!("AND transaction_id < log_horizon()", one_customer!());
    const READ_COMMITTED: &'static str = log_query!("", every_customer!());
    /// Transactions from this id on began after the call.
    const LOG_END: &'static str = "SELECT log_end()";
    const HELD_BACK: &'static str = log_count!(
        "AND transaction_id < $4::bigint::text::xid8",
        every_customer!(),
        "1000"
    );
    const CUSTOMER_HELD_BACK: &'static str = log_count!(
        "AND transaction_id < $4::bigint::text::xid8",
        one_customer!(),
        "1000"
    );
    /// Transactions below the horizon are final; those from it on may still commit.
    const LOG_HEAD: &'static str = "SELECT log_horizon()::text::bigint, CAST(0 AS BIGINT)";
    const COUNT_AFTER: &'static str = log_count!("", every_customer!(), "$4");
    const CUSTOMER_COUNT_AFTER: &'static str = log_count!("", one_customer!(), "$4");
    const CURSOR_AT: &'static str = "SELECT transaction_id::text::bigint, position, \
         transaction_id < log_horizon() FROM events WHERE position = $1";
    const TRANSACTION: &'static str = "transaction_id::text::bigint";

    const COMMITTERS: usize = 2;
    const NOW_MS: &'static str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";
    /// Two-key form, so it shares no key with the single-key locks of rebuild and
    /// migrations ("hook" in ASCII, and the customer).
    const SUBSCRIPTION_CREATE_LOCK: Option<&'static str> = Some(
        "SELECT 1 FROM (SELECT pg_advisory_xact_lock(1752133483, hashtext($1::text))) AS locked",
    );

    const WRITE_BEGIN: &'static str = "BEGIN";
    const SNAPSHOT_BEGIN: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    /// Taken before the snapshot: a rebuild's swap renames new tables into the projection's
    /// names, and a snapshot older than the swap would see them without the rows it added.
    const SNAPSHOT_FIRST: &'static str =
        "LOCK TABLE job_summary, job_status_history IN ACCESS SHARE MODE";

    async fn exclusive_writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        // PostgreSQL runs writers side by side; its row locks order them.
        None
    }

    /// The highest stored id against `log_end()`, the lowest a new transaction records.
    async fn transactions_ahead(pool: &PgPool) -> Result<Option<TransactionsAhead>, StoreError> {
        transactions_ahead(&mut *pool.acquire().await?).await
    }

    /// Raises the offset new events add to their transaction ids (see the migration
    /// `restore_safe_log_order`) so they record ids past every stored one, and the horizon
    /// past the restored events. Writers are held back meanwhile, so no event is inserted
    /// with the old offset after it.
    async fn repair_transaction_order(
        pool: &PgPool,
    ) -> Result<Option<TransactionsAhead>, StoreError> {
        let mut tx = pool.begin().await?;
        sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        sqlx::query("SELECT transaction_offset FROM log_clock FOR UPDATE")
            .execute(&mut *tx)
            .await?;
        let ahead = transactions_ahead(&mut tx).await?;
        if let Some(ahead) = &ahead {
            // Every transaction still to write began at or after the oldest running one.
            sqlx::query(
                "UPDATE log_clock SET transaction_offset = $1 + 1 \
                 - pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
            )
            .bind(ahead.highest_stored)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(ahead)
    }

    async fn read_log(
        connection: &mut PgConnection,
        sql: &str,
        after: LogCursor,
        filter: &LogFilter,
        limit: i64,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        sqlx::Postgres::read_log_rows(connection, sql, after, filter, limit).await
    }

    /// A session advisory lock on a connection of its own, released when the connection
    /// closes (also when the process dies). It waits a moment for the lock: a rebuild that
    /// has just ended may not have been seen to disconnect yet.
    async fn rebuild_lease(&self, pool: &PgPool) -> Result<RebuildLease, StoreError> {
        let mut connection = pool.acquire().await?.detach();
        sqlx::query("SET lock_timeout = '2s'")
            .execute(&mut connection)
            .await?;
        match sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(REBUILD_LOCK)
            .execute(&mut connection)
            .await
        {
            Ok(_) => Ok(RebuildLease::new(std::sync::Mutex::new(connection))),
            Err(error) => match StoreError::from(error) {
                // The lock was not had in time: another rebuild holds it.
                error if error.is_lock_timeout() => Err(StoreError::RebuildRunning),
                error => Err(error),
            },
        }
    }

    /// `LIKE … INCLUDING ALL` copies columns, defaults, constraints and indexes, so the
    /// rebuilt tables are what the migrations made the live ones. The indexes no constraint
    /// needs are dropped again until the rows are in (`add_missing_indexes`).
    async fn create_rebuild_tables(pool: &PgPool) -> Result<(), StoreError> {
        let mut connection = pool.acquire().await?;
        for (live, rebuild) in ProjectionTables::live_and_rebuild() {
            sqlx::query(&format!(
                "CREATE TABLE {rebuild} (LIKE {live} INCLUDING ALL)"
            ))
            .execute(&mut *connection)
            .await?;
            let optional: Vec<String> = sqlx::query_scalar(
                "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 WHERE i.indrelid = $1::regclass \
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
            )
            .bind(rebuild)
            .fetch_all(&mut *connection)
            .await?;
            for index in optional {
                sqlx::query(&format!("DROP INDEX \"{index}\""))
                    .execute(&mut *connection)
                    .await?;
            }
        }
        Ok(())
    }

    /// Builds on the rebuild tables every index the live ones have and they lack (the swap
    /// gives them the live names).
    async fn add_missing_indexes(pool: &PgPool) -> Result<(), StoreError> {
        let mut connection = pool.acquire().await?;
        for (live, rebuild) in ProjectionTables::live_and_rebuild() {
            let present: std::collections::HashSet<(bool, String)> =
                index_shapes(&mut connection, rebuild)
                    .await?
                    .into_iter()
                    .map(|(_, shape)| shape)
                    .collect();
            for (_, (unique, definition)) in index_shapes(&mut connection, live).await? {
                if present.contains(&(unique, definition.clone())) {
                    continue;
                }
                let unique = if unique { "UNIQUE " } else { "" };
                sqlx::query(&format!(
                    "CREATE {unique}INDEX ON {rebuild} USING {definition}"
                ))
                .execute(&mut *connection)
                .await?;
            }
            // Statistics now, or the planner guesses until autovacuum comes by.
            sqlx::query(&format!("ANALYZE {rebuild}"))
                .execute(&mut *connection)
                .await?;
        }
        Ok(())
    }

    /// Nothing per connection: see `relax_transaction`.
    async fn relax_durability(
        _connection: &mut PgConnection,
        _relaxed: bool,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// Nothing after a batch: the server checkpoints on its own.
    fn rebuild_batch_written(&self, _pool: &PgPool) {}

    /// A rebuild's own tables need no durability until the swap (a crash starts the
    /// rebuild over), so their batches do not wait for the WAL flush. `LOCAL`: it ends
    /// with the transaction, however that ends.
    async fn relax_transaction(tx: &mut PgConnection) -> Result<(), StoreError> {
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(tx)
            .await?;
        Ok(())
    }

    /// A rebuild's status-history rows through `COPY`, several times faster than INSERT
    /// statements. The rebuild tables start empty and a replay adds each row once, so
    /// nothing can conflict.
    async fn bulk_insert_history(
        connection: &mut PgConnection,
        tables: ProjectionTables,
        history: &[(&str, StatusHistoryEntry)],
    ) -> Result<(), StoreError> {
        if history.is_empty() {
            return Ok(());
        }
        let mut data = String::with_capacity(history.len() * 160);
        for (job_id, entry) in history {
            copy_row(&mut data, &history_values(job_id, entry));
        }
        let columns = column_list(&HISTORY_COLUMNS);
        let statement = format!("COPY {} {columns} FROM STDIN", tables.history);
        copy_in(connection, &statement, data).await
    }

    /// New summaries of a rebuild through `COPY`: the rebuild tables hold no row for them.
    async fn bulk_insert_summaries(
        connection: &mut PgConnection,
        tables: ProjectionTables,
        summaries: &[SummaryDocument],
    ) -> Result<(), StoreError> {
        if summaries.is_empty() {
            return Ok(());
        }
        let mut data = String::with_capacity(summaries.len() * 1024);
        for summary in summaries {
            copy_row(&mut data, &summary_values(summary));
        }
        let columns = column_list(&SUMMARY_COLUMNS);
        let statement = format!("COPY {} {columns} FROM STDIN", tables.summary);
        copy_in(connection, &statement, data).await
    }

    /// Writers insert into `events` first; this lock waits for those in flight and holds
    /// new ones back until the swap commits. Readers are not blocked.
    /// No lock is waited for longer than 5 s while writers are held back: a long reader
    /// makes the swap fail (and be tried again), not stall the service.
    async fn hold_back_writers(tx: &mut PgConnection) -> Result<(), StoreError> {
        sqlx::query("SET LOCAL lock_timeout = '5s'")
            .execute(&mut *tx)
            .await?;
        sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE")
            .execute(tx)
            .await?;
        Ok(())
    }

    /// Drops the live tables and renames the rebuilt ones into their place, giving their
    /// indexes (and the constraints behind them) the names the live ones had, so later
    /// migrations find them.
    async fn replace_live_tables(tx: &mut PgConnection) -> Result<(), StoreError> {
        let live = ProjectionTables::LIVE;
        let mut names = std::collections::HashMap::new();
        for table in live.names() {
            for (name, shape) in index_shapes(tx, table).await? {
                names.insert((table, shape), name);
            }
        }
        sqlx::query(&format!("DROP TABLE {}, {}", live.summary, live.history))
            .execute(&mut *tx)
            .await?;
        for (live, rebuild) in ProjectionTables::live_and_rebuild() {
            sqlx::query(&format!("ALTER TABLE {rebuild} RENAME TO {live}"))
                .execute(&mut *tx)
                .await?;
            for (name, shape) in index_shapes(tx, live).await? {
                match names.get(&(live, shape)) {
                    Some(old) if *old != name => {
                        sqlx::query(&format!("ALTER INDEX \"{name}\" RENAME TO \"{old}\""))
                            .execute(&mut *tx)
                            .await?;
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// Appends one row in `COPY`'s text format: fields separated by tabs, `\N` for NULL, and
/// backslash, tab, newline and carriage return escaped in the text.
fn copy_row(data: &mut String, values: &[RowValue<'_>]) {
    for (index, value) in values.iter().enumerate() {
        if index > 0 {
            data.push('\t');
        }
        match *value {
            RowValue::Integer(number) => data.push_str(&number.to_string()),
            RowValue::Time(at) => data.push_str(&copy_time(at)),
            RowValue::OptionalText(None) => data.push_str("\\N"),
            RowValue::Text(text) | RowValue::OptionalText(Some(text)) => copy_text(data, text),
            RowValue::Json(document) => copy_text(data, document.get()),
        }
    }
    data.push('\n');
}

/// Appends `text` with `COPY`'s escapes.
fn copy_text(data: &mut String, text: &str) {
    for character in text.chars() {
        match character {
            '\\' => data.push_str("\\\\"),
            '\t' => data.push_str("\\t"),
            '\n' => data.push_str("\\n"),
            '\r' => data.push_str("\\r"),
            other => data.push(other),
        }
    }
}

/// A time as `COPY` reads it into `timestamptz`.
fn copy_time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Runs one `COPY … FROM STDIN` with `data`.
async fn copy_in(
    connection: &mut PgConnection,
    statement: &str,
    data: String,
) -> Result<(), StoreError> {
    let mut copy = connection.copy_in_raw(statement).await?;
    copy.send(data.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// The indexes of `table`: name and shape (uniqueness and definition without the names).
async fn index_shapes(
    tx: &mut PgConnection,
    table: &str,
) -> Result<Vec<(String, (bool, String))>, StoreError> {
    let rows: Vec<(String, bool, String)> = sqlx::query_as(
        "SELECT c.relname::text, i.indisunique, \
         split_part(pg_get_indexdef(i.indexrelid), ' USING ', 2) \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE i.indrelid = $1::regclass",
    )
    .bind(table)
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, unique, definition)| (name, (unique, definition)))
        .collect())
}
