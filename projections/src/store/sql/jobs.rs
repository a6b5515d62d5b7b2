//! Statements on jobs: events appended, the projection written and read, and the schema
//! (migrations, and dropping a rebuild's tables).

use super::Connection;
use crate::error::StoreError;
use crate::model::paging::{Direction, JobFilter, JobKey, PageRequest, SequencePage};
use crate::model::view::{JobView, StatusHistoryEntry, SummaryDocument};
use crate::store::rows::{
    column_list, history_values, numbered, select_list, summary_upsert, summary_values,
    values_rows, ProjectionTables, RowValue, HISTORY_COLUMNS, SUMMARY_COLUMNS,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::persist::SerializedEvent;
use serde_json::value::RawValue;
use sqlx::database::HasStatementCache;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

/// The advisory lock servers take turns at migrations by ("jobs migrate" in ASCII).
const MIGRATION_TURN: i64 = 0x6a6f_6273_6d69_6772;

/// How often a server waiting for another's migrations tries for its turn.
const MIGRATION_TURN_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// Rows per multi-row statement: well below SQLite's 32766 bound parameters at ten columns.
const ROWS_PER_STATEMENT: usize = 500;

/// Whether statements whose text varies with their row count (multi-row inserts, `IN`
/// lists) are kept prepared. On PostgreSQL preparing costs a round trip and the prepared
/// statement lives in the server. On SQLite preparing is a local call, while each shape
/// kept holds its compiled program in this process, per connection — a 128-row insert's is
/// large, and group commit makes every size up to that: keeping them all cost a loaded
/// server about 17 MiB, so there they are prepared afresh.
fn keep_prepared<DB: Database>() -> bool {
    DB::NAME != "SQLite"
}

/// The statement of a job list with `filter` (and a keyset when `keyset`). Its parameters,
/// in order: the customer, each status, type, contact, reference, created from, created to
/// (each one the filter gives), the keyset's order value and job id (when `keyset`), the
/// limit and the offset. Public so that tests and operators can see its plans.
pub fn job_list_sql(filter: &JobFilter, keyset: bool) -> String {
    // The conditions, each with its placeholder, then the values in the same order.
    let mut sql = String::from("SELECT document FROM job_summary WHERE customer_id = $1");
    let mut parameters = 1;
    if !filter.statuses.is_empty() {
        let first = parameters + 1;
        parameters += filter.statuses.len();
        sql.push_str(&format!(
            " AND status IN ({})",
            numbered(first, filter.statuses.len())
        ));
    }
    let mut condition = |sql: &mut String, text: &str| {
        parameters += 1;
        sql.push_str(&format!("{text}${parameters}"));
    };
    if filter.type_id.is_some() {
        condition(&mut sql, " AND type_id = ");
    }
    if filter.contact_id.is_some() {
        condition(&mut sql, " AND contact_id = ");
    }
    if filter.reference.is_some() {
        condition(&mut sql, " AND reference = ");
    }
    if filter.created_from.is_some() {
        condition(&mut sql, " AND created_at >= ");
    }
    if filter.created_to.is_some() {
        condition(&mut sql, " AND created_at < ");
    }
    let column = filter.sort.column();
    if keyset {
        // A keyset: the index on (customer_id, column, job_id) starts right there.
        sql.push_str(&format!(
            " AND ({column}, job_id) {} (${}, ${})",
            filter.direction.after_sql(),
            parameters + 1,
            parameters + 2
        ));
        parameters += 2;
    }
    let direction = filter.direction.sql();
    sql.push_str(&format!(
        " ORDER BY {column} {direction}, job_id {direction} LIMIT ${} OFFSET ${}",
        parameters + 1,
        parameters + 2
    ));
    sql
}

/// A migration that `migrate` applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationApplied {
    pub version: i64,
    pub description: String,
}

/// Statements on jobs (see the module doc).
#[async_trait]
pub trait JobSql: Database {
    /// Appends the events whose job and sequence are free, and returns which those were
    /// (job id, sequence): an event missing from the answer lost the race for its sequence
    /// to another writer. The store's own columns (position, transaction id) take defaults.
    async fn insert_events(
        connection: &mut Connection<Self>,
        events: &[&SerializedEvent],
        recorded_at: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>, sqlx::Error>;

    /// The summaries of the jobs `ids` that have a row in `tables`.
    async fn load_views(
        connection: &mut Connection<Self>,
        tables: ProjectionTables,
        ids: &[&str],
    ) -> Result<Vec<JobView>, StoreError>;

    /// Adds status-history rows (ones already there are kept as they are).
    async fn insert_history(
        connection: &mut Connection<Self>,
        tables: ProjectionTables,
        history: &[(&str, StatusHistoryEntry)],
    ) -> Result<(), StoreError>;

    /// Writes summaries, replacing the rows of the same jobs.
    async fn upsert_summaries(
        connection: &mut Connection<Self>,
        tables: ProjectionTables,
        summaries: &[SummaryDocument],
    ) -> Result<(), StoreError>;

    // The read side.

    /// One page of the customer's jobs that pass `filter`.
    /// Up to `page.fetch_limit()` of the customer's jobs: the page `page.number`, or the
    /// first page after `after` when given.
    async fn list_jobs(
        connection: &mut Connection<Self>,
        customer_id: i64,
        filter: &JobFilter,
        page: PageRequest,
        after: Option<JobKey>,
    ) -> Result<Vec<JobView>, StoreError>;

    /// One page of a job's status history.
    /// Up to `page.fetch_limit()` of the job's status changes in `direction`: the page
    /// `page.number`, or the first after the sequence a cursor named.
    async fn status_history(
        pool: &Pool<Self>,
        job_id: &str,
        direction: Direction,
        page: SequencePage,
    ) -> Result<Vec<StatusHistoryEntry>, StoreError>;

    async fn ping(pool: &Pool<Self>) -> Result<(), StoreError>;

    /// An aggregate as stored, in one round trip: its newest snapshot, if any, as
    /// `(last sequence, Some(number), state)`, then the events after it as
    /// `(sequence, None, payload)`, in order.
    async fn select_aggregate(
        connection: &mut Connection<Self>,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<(i64, Option<i64>, serde_json::Value)>, sqlx::Error>;

    /// Replaces an aggregate's snapshot with its state at `last_sequence`.
    async fn replace_snapshot(
        connection: &mut Connection<Self>,
        aggregate_type: &str,
        aggregate_id: &str,
        last_sequence: i64,
        current_snapshot: i64,
        state: &serde_json::Value,
    ) -> Result<(), sqlx::Error>;

    /// Applies `migrator`'s migrations the database has not seen yet; returns those.
    async fn migrate(
        pool: &Pool<Self>,
        migrator: &sqlx::migrate::Migrator,
    ) -> Result<Vec<MigrationApplied>, StoreError>;

    /// Drops `tables` where they exist.
    async fn drop_tables(pool: &Pool<Self>, tables: ProjectionTables) -> Result<(), StoreError>;
}

/// The columns an appended event fills.
const EVENT_COLUMNS: [&str; 8] = [
    "aggregate_type",
    "aggregate_id",
    "sequence",
    "event_type",
    "event_version",
    "payload",
    "metadata",
    "recorded_at",
];

/// Inserts projection rows (each `N` values in `columns` order) into `table`: one
/// multi-row statement per [`ROWS_PER_STATEMENT`] rows, each ending in `conflict` (what
/// becomes of a row that is already there).
async fn insert_rows<DB, const N: usize>(
    connection: &mut Connection<DB>,
    table: &str,
    columns: &[&str; N],
    rows: &[[RowValue<'_>; N]],
    conflict: &str,
) -> Result<(), sqlx::Error>
where
    DB: Database + HasStatementCache,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'q> Json<&'q RawValue>: Encode<'q, DB> + Type<DB>,
{
    for rows in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO {table} {} {}{conflict}",
            column_list(columns),
            values_rows(rows.len(), N)
        );
        let mut query = sqlx::query(&sql).persistent(keep_prepared::<DB>());
        for value in rows.iter().flatten() {
            query = match *value {
                RowValue::Integer(value) => query.bind(value),
                RowValue::Text(value) => query.bind(value),
                RowValue::OptionalText(value) => query.bind(value),
                RowValue::Time(value) => query.bind(value),
                RowValue::Json(value) => query.bind(Json(value)),
            };
        }
        query.execute(&mut *connection).await?;
    }
    Ok(())
}

#[async_trait]
impl<DB> JobSql for DB
where
    DB: Database + HasStatementCache,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    DB::Connection: sqlx::migrate::Migrate,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'q> Json<&'q RawValue>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q serde_json::Value: Encode<'q, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Option<String>: Decode<'r, DB> + Type<DB>,
    for<'r> DateTime<Utc>: Decode<'r, DB> + Type<DB>,
    for<'r> Json<JobView>: Decode<'r, DB> + Type<DB>,
    for<'r> serde_json::Value: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    async fn insert_events(
        connection: &mut Connection<Self>,
        events: &[&SerializedEvent],
        recorded_at: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let mut inserted = Vec::with_capacity(events.len());
        for events in events.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO events {} {} ON CONFLICT DO NOTHING RETURNING aggregate_id, sequence",
                column_list(&EVENT_COLUMNS),
                values_rows(events.len(), EVENT_COLUMNS.len())
            );
            let mut query = sqlx::query(&sql).persistent(keep_prepared::<DB>());
            for event in events {
                query = query
                    .bind(event.aggregate_type.as_str())
                    .bind(event.aggregate_id.as_str())
                    .bind(event.sequence as i64)
                    .bind(event.event_type.as_str())
                    .bind(event.event_version.as_str())
                    .bind(&event.payload)
                    .bind(&event.metadata)
                    .bind(recorded_at);
            }
            for row in query.fetch_all(&mut *connection).await? {
                inserted.push((row.try_get(0)?, row.try_get(1)?));
            }
        }
        Ok(inserted)
    }

    async fn load_views(
        connection: &mut Connection<Self>,
        tables: ProjectionTables,
        ids: &[&str],
    ) -> Result<Vec<JobView>, StoreError> {
        let mut views = Vec::with_capacity(ids.len());
        for ids in ids.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT document FROM {} WHERE job_id IN ({})",
                tables.summary,
                numbered(1, ids.len())
            );
            let mut query = sqlx::query_scalar(&sql).persistent(keep_prepared::<DB>());
            for id in ids {
                query = query.bind(*id);
            }
            let rows: Vec<Json<JobView>> = query.fetch_all(&mut *connection).await?;
            views.extend(rows.into_iter().map(|json| json.0));
        }
        Ok(views)
    }

    async fn insert_history(
        connection: &mut Connection<Self>,
        tables: ProjectionTables,
        history: &[(&str, StatusHistoryEntry)],
    ) -> Result<(), StoreError> {
        let rows: Vec<_> = history
            .iter()
            .map(|(job_id, entry)| history_values(job_id, entry))
            .collect();
        let conflict = " ON CONFLICT (job_id, sequence) DO NOTHING";
        insert_rows::<DB, _>(
            connection,
            tables.history,
            &HISTORY_COLUMNS,
            &rows,
            conflict,
        )
        .await?;
        Ok(())
    }

    async fn upsert_summaries(
        connection: &mut Connection<Self>,
        tables: ProjectionTables,
        summaries: &[SummaryDocument],
    ) -> Result<(), StoreError> {
        let rows: Vec<_> = summaries.iter().map(summary_values).collect();
        let conflict = summary_upsert();
        insert_rows::<DB, _>(
            connection,
            tables.summary,
            &SUMMARY_COLUMNS,
            &rows,
            &conflict,
        )
        .await?;
        Ok(())
    }

    async fn list_jobs(
        connection: &mut Connection<Self>,
        customer_id: i64,
        filter: &JobFilter,
        page: PageRequest,
        after: Option<JobKey>,
    ) -> Result<Vec<JobView>, StoreError> {
        let sql = job_list_sql(filter, after.is_some());
        let after_id = after.map(|key| key.job_id.to_string());
        let mut query = sqlx::query_scalar(&sql).bind(customer_id);
        for status in &filter.statuses {
            query = query.bind(status.as_str());
        }
        if let Some(type_id) = filter.type_id {
            query = query.bind(type_id);
        }
        if let Some(contact_id) = filter.contact_id {
            query = query.bind(contact_id);
        }
        if let Some(reference) = &filter.reference {
            query = query.bind(reference.as_str());
        }
        if let Some(from) = filter.created_from {
            query = query.bind(from);
        }
        if let Some(to) = filter.created_to {
            query = query.bind(to);
        }
        if let (Some(key), Some(id)) = (after, &after_id) {
            query = query.bind(key.at).bind(id.as_str());
        }
        let offset = if after.is_some() { 0 } else { page.offset() };
        let rows: Vec<Json<JobView>> = query
            .bind(page.fetch_limit())
            .bind(offset)
            .fetch_all(&mut *connection)
            .await?;
        Ok(rows.into_iter().map(|json| json.0).collect())
    }

    async fn status_history(
        pool: &Pool<Self>,
        job_id: &str,
        direction: Direction,
        page: SequencePage,
    ) -> Result<Vec<StatusHistoryEntry>, StoreError> {
        let after = match page.after_sequence {
            Some(_) => format!(" AND sequence {} $4", direction.after_sql()),
            None => String::new(),
        };
        let sql = format!(
            "SELECT {} FROM job_status_history \
             WHERE job_id = $1{after} ORDER BY sequence {} LIMIT $2 OFFSET $3",
            select_list(&HISTORY_COLUMNS[1..]),
            direction.sql()
        );
        let mut query = sqlx::query(&sql)
            .bind(job_id)
            .bind(page.page.fetch_limit())
            .bind(page.offset());
        if let Some(sequence) = page.after_sequence {
            query = query.bind(sequence);
        }
        let rows = query.fetch_all(pool).await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let status: String = row.try_get("status")?;
            entries.push(StatusHistoryEntry {
                sequence: row.try_get("sequence")?,
                status: domain::JobStatus::parse(&status).ok_or_else(|| {
                    StoreError::Corrupt(format!("unknown status {status:?} in job_status_history"))
                })?,
                occurred_at: row.try_get("occurred_at")?,
                comment: row.try_get("comment")?,
                actor: row.try_get("actor")?,
            });
        }
        Ok(entries)
    }

    async fn ping(pool: &Pool<Self>) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(pool).await?;
        Ok(())
    }

    async fn select_aggregate(
        connection: &mut Connection<Self>,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<(i64, Option<i64>, serde_json::Value)>, sqlx::Error> {
        // Every event's sequence is above its snapshot's, so one order serves both.
        sqlx::query_as(
            "WITH snapshot AS (\
               SELECT last_sequence, current_snapshot, payload FROM snapshots \
               WHERE aggregate_type = $1 AND aggregate_id = $2 \
               ORDER BY last_sequence DESC LIMIT 1) \
             SELECT last_sequence AS sequence, current_snapshot, payload FROM snapshot \
             UNION ALL \
             SELECT sequence, NULL, payload FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 \
               AND sequence > COALESCE((SELECT last_sequence FROM snapshot), 0) \
             ORDER BY sequence",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_all(&mut *connection)
        .await
    }

    async fn replace_snapshot(
        connection: &mut Connection<Self>,
        aggregate_type: &str,
        aggregate_id: &str,
        last_sequence: i64,
        current_snapshot: i64,
        state: &serde_json::Value,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM snapshots WHERE aggregate_type = $1 AND aggregate_id = $2")
            .bind(aggregate_type)
            .bind(aggregate_id)
            .execute(&mut *connection)
            .await?;
        sqlx::query(
            "INSERT INTO snapshots \
             (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(last_sequence)
        .bind(current_snapshot)
        .bind(state)
        .execute(connection)
        .await?;
        Ok(())
    }

    async fn migrate(
        pool: &Pool<Self>,
        migrator: &sqlx::migrate::Migrator,
    ) -> Result<Vec<MigrationApplied>, StoreError> {
        use sqlx::migrate::Migrate;
        let mut connection = pool.acquire().await?;
        // A serving process's sessions are time-bounded, but a migration (an index built
        // over a large table) must run as long as it needs: the bounds are lifted on this
        // connection, which is closed afterwards rather than handed back.
        connection.close_on_drop();
        let connection: &mut DB::Connection = &mut connection;
        if DB::NAME == "PostgreSQL" {
            for lift in [
                "SET statement_timeout = 0",
                "SET idle_in_transaction_session_timeout = 0",
            ] {
                sqlx::query(lift).execute(&mut *connection).await?;
            }
        }
        let postgres = DB::NAME == "PostgreSQL";
        if postgres {
            // sqlx's migrator waits for its advisory lock inside a statement. A server
            // waiting so while another builds an index CONCURRENTLY (which waits for every
            // open statement) deadlocks with it, leaving an invalid index. So servers take
            // turns by trying a lock of their own, between short statements, and the one
            // holding it meets no waiter on sqlx's lock.
            let mut waited = std::time::Duration::ZERO;
            loop {
                let locked: i64 = sqlx::query_scalar(
                    "SELECT CAST(CASE WHEN pg_try_advisory_lock($1) THEN 1 ELSE 0 END AS BIGINT)",
                )
                .bind(MIGRATION_TURN)
                .fetch_one(&mut *connection)
                .await?;
                if locked == 1 {
                    break;
                }
                if waited.as_millis().is_multiple_of(10_000) && !waited.is_zero() {
                    tracing::info!(
                        waited_s = waited.as_secs(),
                        "waiting for another server's migrations"
                    );
                }
                tokio::time::sleep(MIGRATION_TURN_POLL).await;
                waited += MIGRATION_TURN_POLL;
            }
        }
        connection.ensure_migrations_table().await?;
        let before: std::collections::HashSet<i64> = connection
            .list_applied_migrations()
            .await?
            .into_iter()
            .map(|migration| migration.version)
            .collect();
        migrator.run_direct(&mut *connection).await?;
        if postgres {
            // An index built CONCURRENTLY by a migration that failed half way (a server
            // killed meanwhile) stays, invalid: its `IF NOT EXISTS` then skips it, and
            // queries scan instead. Build such indexes again. (The turn is released when this
            // connection closes.)
            let invalid: Vec<String> = sqlx::query_scalar(
                "SELECT c.relname::text FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE NOT i.indisvalid AND n.nspname = current_schema()",
            )
            .fetch_all(&mut *connection)
            .await?;
            for index in invalid {
                tracing::warn!(%index, "an index was left invalid by an interrupted build; building it again");
                sqlx::query(&format!("REINDEX INDEX CONCURRENTLY \"{index}\""))
                    .execute(&mut *connection)
                    .await?;
            }
        }
        Ok(migrator
            .iter()
            .filter(|m| m.migration_type.is_up_migration() && !before.contains(&m.version))
            .map(|m| MigrationApplied {
                version: m.version,
                description: m.description.to_string(),
            })
            .collect())
    }

    async fn drop_tables(pool: &Pool<Self>, tables: ProjectionTables) -> Result<(), StoreError> {
        for table in tables.names() {
            sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
                .execute(pool)
                .await?;
        }
        Ok(())
    }
}
