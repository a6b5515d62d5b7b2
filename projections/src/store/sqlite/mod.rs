//! The SQLite backend (the embedded default: nothing to install): one writer at a time, so
//! position order is commit order; a lock file leases a rebuild; a raw prepared statement
//! (`bulk.rs`, all of the crate's unsafe code) reads the log and writes a rebuild's rows.

mod bulk;

use super::backend::{Backend, Store};
use super::rows::{
    column_list, history_values, placeholders, summary_values, ProjectionTables, RowValue,
    HISTORY_COLUMNS, SUMMARY_COLUMNS,
};
use crate::error::StoreError;
use crate::log::{LogCursor, LogFilter, LoggedEvent, TransactionsAhead};
use crate::model::view::{StatusHistoryEntry, SummaryDocument};
use crate::rebuild::RebuildLease;
use async_trait::async_trait;
use bulk::Value;
use sqlx::sqlite::SqliteSynchronous;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::SqliteConnection;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a SQLite store keeps beside its pool.
#[derive(Clone)]
pub struct SqliteBackend {
    /// SQLite has one writer at a time. Queueing this process's write transactions here,
    /// in order, replaces the busy handler's growing sleeps (hundreds of milliseconds at
    /// the tail under load) with a plain wait for the writer ahead.
    writer: Arc<tokio::sync::Mutex<()>>,
    /// The file a rebuild locks so that two cannot run at once (none for in-memory stores).
    rebuild_lock: Option<PathBuf>,
    /// Set while a checkpoint started by a rebuild runs.
    checkpointing: Arc<AtomicBool>,
}

/// The embedded store.
pub type SqliteJobStore = Store<SqliteBackend>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// SQLite's own default: checkpoint when the WAL holds this many pages after a commit.
const DEFAULT_WAL_AUTOCHECKPOINT: u32 = 1000;

/// How far a rebuild lets the WAL grow (in pages; 64 MiB at the default page size).
const REBUILD_WAL_PAGES: i64 = 16_384;

/// How long a rebuild's WAL truncation waits for readers (writers wait for it meanwhile).
const TRUNCATE_PATIENCE: Duration = Duration::from_millis(50);

impl Store<SqliteBackend> {
    /// Opens (creating if missing) the database a `sqlite:` URL names, without touching the
    /// schema (see [`Self::migrate`]).
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
        let file = options.get_filename();
        let rebuild_lock = (!file.as_os_str().is_empty() && file != Path::new(":memory:"))
            .then(|| PathBuf::from(format!("{}.rebuild-lock", file.display())));
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            // No ping before each use (sqlx's default): the file does not go away between
            // queries, and the ping is a trip to the connection's worker thread each time.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        let events = sqlite_es::SqliteEventRepository::new(pool.clone());
        let backend = SqliteBackend {
            writer: Arc::new(tokio::sync::Mutex::new(())),
            rebuild_lock,
            checkpointing: Arc::default(),
        };
        Ok(Self::new(pool, events, backend))
    }
}

impl Store<SqliteBackend> {
    /// Refreshes the planner's statistics (`sqlite_stat1`), sampling at most a thousand
    /// rows per index; queued behind this process's writers, as it writes too.
    pub async fn analyze(&self) -> Result<(), StoreError> {
        let _writer = self.backend.exclusive_writer().await;
        sqlx::raw_sql("PRAGMA analysis_limit = 1000; ANALYZE")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    type Db = sqlx::Sqlite;
    type Events = sqlite_es::SqliteEventRepository;

    const NAME: &'static str = "sqlite";

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    /// One writer at a time commits, so position order is commit order: every committed
    /// event is final. (`$1`, the transaction, is not used.) Run through `bulk`:
    /// handing SQLite's rows one by one to the async side costs several times what reading
    /// them does.
    const READ_LOG: &'static str = "SELECT position, aggregate_type, aggregate_id, sequence, \
         event_type, event_version, recorded_at, payload, metadata FROM events \
         WHERE position > $2 AND $3 IS NULL ORDER BY position LIMIT $4";
    /// Through `events_by_customer`: the customer's events in rowid order.
    const READ_CUSTOMER_LOG: &'static str = "SELECT position, aggregate_type, aggregate_id, \
         sequence, event_type, event_version, recorded_at, payload, metadata FROM events \
         WHERE customer_id = $3 AND position > $2 ORDER BY position LIMIT $4";
    const READ_COMMITTED: &'static str = Self::READ_LOG;

    const LOG_END: &'static str = "SELECT CAST(0 AS BIGINT)";
    const HELD_BACK: &'static str = "SELECT CAST(0 AS BIGINT)";
    const CUSTOMER_HELD_BACK: &'static str = Self::HELD_BACK;
    const LOG_HEAD: &'static str =
        "SELECT CAST(0 AS BIGINT), coalesce(max(position), 0) FROM events";
    const COUNT_AFTER: &'static str =
        "SELECT count(*) FROM (SELECT 1 FROM events WHERE position > $2 AND $3 IS NULL LIMIT $4)";
    const CUSTOMER_COUNT_AFTER: &'static str = "SELECT count(*) FROM (SELECT 1 FROM events \
         WHERE customer_id = $3 AND position > $2 LIMIT $4)";
    const CURSOR_AT: &'static str =
        "SELECT CAST(0 AS BIGINT), position, TRUE FROM events WHERE position = $1";
    const TRANSACTION: &'static str = "CAST(0 AS BIGINT)";
    /// Takes the write lock first: a deferred transaction that reads and then writes can
    /// fail at once (not after the busy timeout) when another connection wrote in between.
    const COMMITTERS: usize = 1;
    const NOW_MS: &'static str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";
    const SUBSCRIPTION_CREATE_LOCK: Option<&'static str> = None;

    const WRITE_BEGIN: &'static str = "BEGIN IMMEDIATE";
    /// In WAL mode a read transaction sees one snapshot from its first read to its end.
    const SNAPSHOT_BEGIN: &'static str = "BEGIN";
    /// The snapshot starts here (a swap is one atomic change of the schema and the rows).
    const SNAPSHOT_FIRST: &'static str = "SELECT 1 FROM job_summary LIMIT 1";

    async fn exclusive_writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        Some(self.writer.lock().await)
    }

    /// Rowid order is commit order, on a copy of the file too.
    async fn transactions_ahead(
        _pool: &SqlitePool,
    ) -> Result<Option<TransactionsAhead>, StoreError> {
        Ok(None)
    }

    async fn repair_transaction_order(
        _pool: &SqlitePool,
    ) -> Result<Option<TransactionsAhead>, StoreError> {
        Ok(None)
    }

    async fn read_log(
        connection: &mut SqliteConnection,
        sql: &str,
        after: LogCursor,
        filter: &LogFilter,
        limit: i64,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        let customer = filter.customer_id.map(|id| id.to_string());
        let parameters = [
            Value::Integer(after.transaction),
            Value::Integer(after.position),
            customer.as_deref().into(),
            Value::Integer(limit),
        ];
        bulk::select_rows(connection, sql, &parameters, |row| {
            let position = row.integer(0)?;
            let recorded_at = chrono::DateTime::parse_from_rfc3339(row.text(6)?)
                .map_err(|e| StoreError::Corrupt(format!("event {position}: recorded_at: {e}")))?
                .with_timezone(&chrono::Utc);
            Ok(LoggedEvent {
                cursor: LogCursor {
                    transaction: 0,
                    position,
                },
                aggregate_type: row.text(1)?.to_owned(),
                aggregate_id: row.text(2)?.to_owned(),
                sequence: row.integer(3)?,
                event_type: row.text(4)?.to_owned(),
                event_version: row.text(5)?.to_owned(),
                recorded_at,
                payload: row.text(7)?.to_owned(),
                metadata: row.text(8)?.to_owned(),
            })
        })
        .await
    }

    /// An exclusive lock on a file beside the database; the operating system releases it
    /// when the process ends, however it ends.
    async fn rebuild_lease(&self, _pool: &SqlitePool) -> Result<RebuildLease, StoreError> {
        let Some(path) = &self.rebuild_lock else {
            return Ok(RebuildLease::new(()));
        };
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(StoreError::Lock)?;
        match file.try_lock() {
            Ok(()) => Ok(RebuildLease::new(file)),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::RebuildRunning),
            Err(std::fs::TryLockError::Error(error)) => Err(StoreError::Lock(error)),
        }
    }

    /// The live tables' own DDL under the rebuild names. Their secondary indexes are made
    /// at the swap, under the live names: SQLite cannot rename an index, and the names must
    /// stay what the migrations made them.
    async fn create_rebuild_tables(pool: &SqlitePool) -> Result<(), StoreError> {
        for (live, rebuild) in ProjectionTables::live_and_rebuild() {
            let ddl: String = sqlx::query_scalar(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = $1",
            )
            .bind(live)
            .fetch_one(pool)
            .await?;
            sqlx::query(&ddl.replacen(live, rebuild, 1))
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// A rebuild's own tables need no durability until the swap (a crash starts the
    /// rebuild over), so their batches skip the fsync; the swap's commit syncs everything.
    /// Nor do they checkpoint the WAL on commit, which would hold up the next batch for
    /// two fsyncs every few batches: `rebuild_batch_written` checkpoints beside them.
    async fn relax_durability(
        connection: &mut SqliteConnection,
        relaxed: bool,
    ) -> Result<(), StoreError> {
        let (level, checkpoint_pages) = match relaxed {
            true => ("NORMAL", 0),
            false => ("FULL", DEFAULT_WAL_AUTOCHECKPOINT),
        };
        sqlx::query(&format!(
            "PRAGMA synchronous = {level}; PRAGMA wal_autocheckpoint = {checkpoint_pages}"
        ))
        .execute(connection)
        .await?;
        Ok(())
    }

    /// Checkpoints the WAL on a connection of its own while the rebuild goes on with its
    /// next batches (a passive checkpoint waits for no reader or writer); skipped while the
    /// last one still runs. Best effort: what one leaves, the next one or the swap's commit
    /// (back at the default) checkpoints.
    ///
    /// The rebuild writes faster than a checkpoint that overlaps it lets the WAL start
    /// over, so the file would grow by everything the rebuild writes. Once it is past
    /// `REBUILD_WAL_PAGES` and a passive checkpoint has copied all of it, it is truncated:
    /// that holds writers back only to wait for readers, and for at most
    /// `TRUNCATE_PATIENCE` (a truncation that cannot have them by then is tried again
    /// after a later batch).
    fn rebuild_batch_written(&self, pool: &SqlitePool) {
        if self.checkpointing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (pool, checkpointing) = (pool.clone(), self.checkpointing.clone());
        tokio::spawn(async move {
            let passive: Result<(i64, i64, i64), _> =
                sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                    .fetch_one(&pool)
                    .await;
            if let Ok((_, pages, copied)) = passive {
                if pages > REBUILD_WAL_PAGES && copied == pages {
                    let _ = truncate_wal(&pool).await;
                }
            }
            checkpointing.store(false, Ordering::Release);
        });
    }

    /// A rebuild's status-history rows, a prepared statement stepped once per row (see
    /// `bulk`). The rebuild tables start empty and a replay adds each row once, so
    /// nothing can conflict.
    async fn bulk_insert_history(
        connection: &mut SqliteConnection,
        tables: ProjectionTables,
        history: &[(&str, StatusHistoryEntry)],
    ) -> Result<(), StoreError> {
        let rows = history
            .iter()
            .map(|(job_id, entry)| history_values(job_id, entry));
        insert_rows(connection, tables.history, &HISTORY_COLUMNS, rows).await
    }

    /// New summaries of a rebuild, as `bulk_insert_history` writes history.
    async fn bulk_insert_summaries(
        connection: &mut SqliteConnection,
        tables: ProjectionTables,
        summaries: &[SummaryDocument],
    ) -> Result<(), StoreError> {
        let rows = summaries.iter().map(summary_values);
        insert_rows(connection, tables.summary, &SUMMARY_COLUMNS, rows).await
    }

    /// Nothing to do before the swap: SQLite cannot rename an index, so the rebuilt tables
    /// get their secondary indexes, under the live names, in the swap itself.
    async fn add_missing_indexes(_pool: &SqlitePool) -> Result<(), StoreError> {
        Ok(())
    }

    /// Nothing per transaction: see `relax_durability`.
    async fn relax_transaction(_tx: &mut SqliteConnection) -> Result<(), StoreError> {
        Ok(())
    }

    /// `BEGIN IMMEDIATE` already holds the database's one write lock.
    async fn hold_back_writers(_tx: &mut SqliteConnection) -> Result<(), StoreError> {
        Ok(())
    }

    /// Renames the live tables away (dropping them here would hold writers back while
    /// their pages are freed; that happens after the commit) and the rebuilt ones in. Their
    /// secondary indexes are made here, under the live names, which dropping the old
    /// indexes first frees: SQLite cannot rename an index, and the names must stay what the
    /// migrations made them. The sorts for them run on two threads, the index builds being
    /// most of the time writers wait (set back after; left set only if the swap fails,
    /// which changes nothing but sorting speed).
    /// Statements run on sqlx's worker thread, which goes on stepping one whose caller went
    /// away: this guard interrupts it then (see `bulk::interrupt_guard`).
    async fn abandonment_guard(
        connection: &mut SqliteConnection,
        _caller: super::backend::CrateOnly,
    ) -> Result<crate::store::QueryGuard, StoreError> {
        bulk::interrupt_guard(connection).await
    }

    async fn replace_live_tables(tx: &mut SqliteConnection) -> Result<(), StoreError> {
        let live = ProjectionTables::LIVE;
        let indexes: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' \
             AND tbl_name IN ($1, $2) AND sql IS NOT NULL",
        )
        .bind(live.summary)
        .bind(live.history)
        .fetch_all(&mut *tx)
        .await?;
        for (name, _) in &indexes {
            sqlx::query(&format!("DROP INDEX \"{name}\""))
                .execute(&mut *tx)
                .await?;
        }
        let replaced = ProjectionTables::REPLACED.names();
        for ((live, rebuild), replaced) in ProjectionTables::live_and_rebuild()
            .into_iter()
            .zip(replaced)
        {
            sqlx::query(&format!("ALTER TABLE {live} RENAME TO {replaced}"))
                .execute(&mut *tx)
                .await?;
            sqlx::query(&format!("ALTER TABLE {rebuild} RENAME TO {live}"))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("PRAGMA threads = 2").execute(&mut *tx).await?;
        for (_, index) in indexes {
            sqlx::query(&index).execute(&mut *tx).await?;
        }
        sqlx::query("PRAGMA threads = 0").execute(&mut *tx).await?;
        Ok(())
    }
}

/// A time as sqlx writes a `DateTime<Utc>` into SQLite (RFC 3339 with `+00:00`), so rows
/// written around sqlx read and sort like the rest.
fn stored_time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

/// `wal_checkpoint(TRUNCATE)` on a connection of its own with a short busy timeout (a
/// pooled one waits up to 10 s, and the checkpoint keeps writers out while it waits).
async fn truncate_wal(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    use sqlx::ConnectOptions;
    let options = (*pool.connect_options())
        .clone()
        .busy_timeout(TRUNCATE_PATIENCE);
    let mut connection = options.connect().await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut connection)
        .await?;
    sqlx::Connection::close(connection).await
}

/// Inserts `rows` (each a row's values in `columns` order) into `table` through one
/// prepared statement, stepped once per row (see `bulk`). The rebuild tables start empty
/// and a replay adds each row once, so nothing can conflict.
async fn insert_rows<'a, const N: usize>(
    connection: &mut SqliteConnection,
    table: &str,
    columns: &[&str; N],
    rows: impl ExactSizeIterator<Item = [RowValue<'a>; N]>,
) -> Result<(), StoreError> {
    if rows.len() == 0 {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO {table} {} VALUES {}",
        column_list(columns),
        placeholders(N)
    );
    // SQLite keeps times as text: formatted here as sqlx formats them, so rows written
    // around sqlx read and sort like the rest. Formatted first, since text is bound in place.
    let rows: Vec<[RowValue<'a>; N]> = rows.collect();
    let times: Vec<[Option<String>; N]> = rows
        .iter()
        .map(|row| {
            row.map(|value| match value {
                RowValue::Time(at) => Some(stored_time(at)),
                _ => None,
            })
        })
        .collect();
    let rows = rows.iter().zip(&times).map(|(row, times)| {
        let values: [Value<'_>; N] = std::array::from_fn(|column| match row[column] {
            RowValue::Integer(number) => Value::Integer(number),
            RowValue::Text(text) => Value::Text(text),
            RowValue::Json(document) => Value::Text(document.get()),
            RowValue::OptionalText(text) => text.into(),
            RowValue::Time(_) => times[column].as_deref().into(),
        });
        values
    });
    bulk::insert_rows(connection, &sql, rows).await
}

#[cfg(test)]
mod tests {
    use super::{stored_time, Backend, SqliteBackend};
    use crate::store::upkeep::RelaxedConnection;
    use sqlx::Connection;

    /// The rebuild's writes relax a pooled connection that the server's writes use next:
    /// it must come back syncing every commit and checkpointing on its own.
    #[tokio::test]
    async fn a_relaxed_connection_is_restored_to_full_durability() {
        let mut connection = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        let settings = async |connection: &mut sqlx::SqliteConnection| -> (i64, i64) {
            let synchronous = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *connection)
                .await
                .unwrap();
            let checkpoint = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
                .fetch_one(&mut *connection)
                .await
                .unwrap();
            (synchronous, checkpoint)
        };
        SqliteBackend::relax_durability(&mut connection, true)
            .await
            .unwrap();
        assert_eq!(
            settings(&mut connection).await,
            (1, 0),
            "NORMAL, no checkpoints"
        );
        SqliteBackend::relax_durability(&mut connection, false)
            .await
            .unwrap();
        assert_eq!(
            settings(&mut connection).await,
            (2, 1000),
            "FULL, SQLite's default"
        );
    }

    /// A write that never restored its connection (it failed, or its task was aborted)
    /// must not hand it back to the pool relaxed.
    #[tokio::test]
    async fn a_connection_left_relaxed_is_closed_not_pooled() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        let synchronous = async |pool: &sqlx::SqlitePool| -> i64 {
            sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(pool)
                .await
                .unwrap()
        };
        let full = synchronous(&pool).await;
        let mut relaxed = RelaxedConnection::new(pool.acquire().await.unwrap());
        SqliteBackend::relax_durability(&mut relaxed.connection, true)
            .await
            .unwrap();
        drop(relaxed);
        assert_eq!(synchronous(&pool).await, full, "a fresh connection");

        let mut restored = RelaxedConnection::new(pool.acquire().await.unwrap());
        sqlx::query("PRAGMA synchronous = OFF")
            .execute(&mut *restored.connection)
            .await
            .unwrap();
        restored.restored = true;
        drop(restored);
        assert_eq!(synchronous(&pool).await, 0, "the same connection, kept");
    }

    #[tokio::test]
    async fn times_written_by_hand_are_written_as_sqlx_writes_them() {
        let mut connection = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        for at in [
            "2026-11-29T06:59:07.987104Z",
            "2026-11-29T06:59:07Z",
            "0001-01-01T00:00:00.5Z",
        ] {
            let at = chrono::DateTime::parse_from_rfc3339(at)
                .unwrap()
                .with_timezone(&chrono::Utc);
            let through_sqlx: String = sqlx::query_scalar("SELECT CAST($1 AS TEXT)")
                .bind(at)
                .fetch_one(&mut connection)
                .await
                .unwrap();
            assert_eq!(stored_time(at), through_sqlx);
        }
    }
}
