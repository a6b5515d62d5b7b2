//! The statements both stores run as written: `$N` placeholders and `ON CONFLICT` upserts
//! read the same on PostgreSQL and SQLite, so this SQL exists once, generic over sqlx's
//! database. [`Sql`] is implemented once, for every database sqlx can run these statements
//! on; the bounds of that one impl are the whole of what they need from sqlx, and
//! [`Backend`](super::backend::Backend) requires it of its database, so generic store code
//! calls these without repeating a bound. What differs between the backends is not here but
//! in `Backend`.

use super::clients::{parse_client_id, ClientRecord};
use super::rows::{
    column_list, history_values, select_list, summary_upsert, summary_values, ProjectionTables,
    RowValue, HISTORY_COLUMNS, SUMMARY_COLUMNS,
};
use crate::error::StoreError;
use crate::log::{LogCursor, LogFilter, LoggedEvent};
use crate::model::paging::{Direction, JobFilter, PageRequest};
use crate::model::view::{JobView, StatusHistoryEntry, SummaryDocument};
use crate::verify::{HistoryRow, SummaryRow, VerifyGroup};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::persist::SerializedEvent;
use serde_json::value::RawValue;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool};
use sqlx::{Row, Type};

/// Rows per multi-row statement: well below SQLite's 32766 bound parameters at ten columns.
const ROWS_PER_STATEMENT: usize = 500;

/// The connection type of a database.
pub type Connection<DB> = <DB as Database>::Connection;

/// A migration that `migrate` applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationApplied {
    pub version: i64,
    pub description: String,
}

/// Statements shared by both stores (see the module doc).
#[async_trait]
pub trait Sql: Database {
    // The write path.

    /// Appends events; the store's own columns (position, transaction id) take defaults.
    async fn insert_events(
        connection: &mut Connection<Self>,
        events: &[SerializedEvent],
        recorded_at: DateTime<Utc>,
    ) -> Result<(), sqlx::Error>;

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

    /// A job's summary, if the customer has that job.
    async fn job(
        pool: &Pool<Self>,
        customer_id: i64,
        job_id: &str,
    ) -> Result<Option<JobView>, StoreError>;

    /// One page of the customer's jobs that pass `filter`.
    async fn list_jobs(
        pool: &Pool<Self>,
        customer_id: i64,
        filter: &JobFilter,
        page: PageRequest,
    ) -> Result<Vec<JobView>, StoreError>;

    /// One page of a job's status history.
    async fn status_history(
        pool: &Pool<Self>,
        job_id: &str,
        direction: Direction,
        page: PageRequest,
    ) -> Result<Vec<StatusHistoryEntry>, StoreError>;

    async fn ping(pool: &Pool<Self>) -> Result<(), StoreError>;

    // The global log. `transaction` is the backend's expression of a row's writing
    // transaction; the other SQL is the backend's too (see `Backend`).

    /// Decodes one row of a log query: the event columns plus `"transaction"`.
    fn logged_event(row: &Self::Row) -> Result<LoggedEvent, sqlx::Error>;

    /// Runs a log query whose parameters are the cursor, the customer and the limit.
    async fn read_log_rows(
        connection: &mut Connection<Self>,
        sql: &str,
        after: LogCursor,
        filter: &LogFilter,
        limit: i64,
    ) -> Result<Vec<LoggedEvent>, StoreError>;

    async fn log_end(pool: &Pool<Self>, sql: &str) -> Result<i64, StoreError>;

    async fn held_back(
        pool: &Pool<Self>,
        sql: &str,
        after: LogCursor,
        filter: &LogFilter,
        end: i64,
    ) -> Result<i64, StoreError>;

    async fn cursor_at(
        pool: &Pool<Self>,
        sql: &str,
        position: i64,
    ) -> Result<Option<(LogCursor, bool)>, StoreError>;

    /// An aggregate's events in sequence order: at most `limit`, after skipping `offset`.
    async fn aggregate_events(
        pool: &Pool<Self>,
        transaction: &str,
        aggregate: [&str; 2],
        limit: i64,
        offset: i64,
    ) -> Result<Vec<LoggedEvent>, StoreError>;

    async fn event_count(pool: &Pool<Self>) -> Result<i64, StoreError>;

    // Upkeep: schema, rebuild and verify.

    /// Applies `migrator`'s migrations the database has not seen yet; returns those.
    async fn migrate(
        pool: &Pool<Self>,
        migrator: &sqlx::migrate::Migrator,
    ) -> Result<Vec<MigrationApplied>, StoreError>;

    /// Drops `tables` where they exist.
    async fn drop_tables(pool: &Pool<Self>, tables: ProjectionTables) -> Result<(), StoreError>;

    /// The next group of at most `jobs` jobs after `after`, in one snapshot that
    /// `snapshot_begin` opens and `snapshot_first` starts.
    async fn verify_group(
        pool: &Pool<Self>,
        snapshot: [&'static str; 2],
        transaction: &str,
        after: &str,
        jobs: i64,
    ) -> Result<VerifyGroup, StoreError>;

    // The OAuth client registry.

    async fn insert_client(pool: &Pool<Self>, client: &ClientRecord) -> Result<(), StoreError>;

    async fn select_clients(
        pool: &Pool<Self>,
        id: Option<uuid::Uuid>,
    ) -> Result<Vec<ClientRecord>, StoreError>;

    async fn revoke_client(
        pool: &Pool<Self>,
        id: uuid::Uuid,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// The event columns every log query selects after the transaction expression.
pub(crate) const EVENT_COLUMNS: &str = "position, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, recorded_at, CAST(payload AS TEXT) AS payload, \
     CAST(metadata AS TEXT) AS metadata";

const INSERT_EVENT: &str = "INSERT INTO events \
     (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

const SELECT_CLIENTS: &str = "SELECT client_id, name, scopes, customer_ids, \
     secret_hash, created_at, revoked_at FROM auth_clients";

/// A statement of ours with its arguments so far.
type Query<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// Binds one projection value.
fn bind_value<'q, DB>(query: Query<'q, DB>, value: RowValue<'q>) -> Query<'q, DB>
where
    DB: Database,
    i64: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    Json<&'q RawValue>: Encode<'q, DB> + Type<DB>,
{
    match value {
        RowValue::Integer(value) => query.bind(value),
        RowValue::Text(value) => query.bind(value),
        RowValue::OptionalText(value) => query.bind(value),
        RowValue::Time(value) => query.bind(value),
        RowValue::Json(value) => query.bind(Json(value)),
    }
}

/// `$first, …` for `count` parameters, numbered from `first`: a multi-row statement's or an
/// `IN` list's placeholders (sqlx's query builder ties its arguments' lifetime to itself,
/// which generic code over the database cannot shorten, so statements number their own).
fn numbered(first: usize, count: usize) -> String {
    let numbers: Vec<String> = (first..first + count).map(|n| format!("${n}")).collect();
    numbers.join(", ")
}

/// `VALUES ($1, …), ($N+1, …), …` for `rows` rows of `columns` columns.
fn values_rows(rows: usize, columns: usize) -> String {
    let rows: Vec<String> = (0..rows)
        .map(|row| format!("({})", numbered(row * columns + 1, columns)))
        .collect();
    format!("VALUES {}", rows.join(", "))
}

#[async_trait]
impl<DB> Sql for DB
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    DB::Connection: sqlx::migrate::Migrate,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<DateTime<Utc>>: Encode<'q, DB> + Type<DB>,
    for<'q> Json<&'q RawValue>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q serde_json::Value: Encode<'q, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> bool: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB>,
    for<'r> Option<String>: Decode<'r, DB>,
    for<'r> DateTime<Utc>: Decode<'r, DB>,
    for<'r> Option<DateTime<Utc>>: Decode<'r, DB>,
    for<'r> serde_json::Value: Decode<'r, DB> + Type<DB>,
    for<'r> Json<JobView>: Decode<'r, DB> + Type<DB>,
    for<'r> Json<Vec<String>>: Decode<'r, DB> + Type<DB>,
    for<'r> Json<Vec<i64>>: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    async fn insert_events(
        connection: &mut Connection<Self>,
        events: &[SerializedEvent],
        recorded_at: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        for event in events {
            sqlx::query(INSERT_EVENT)
                .bind(event.aggregate_type.as_str())
                .bind(event.aggregate_id.as_str())
                .bind(event.sequence as i64)
                .bind(event.event_type.as_str())
                .bind(event.event_version.as_str())
                .bind(&event.payload)
                .bind(&event.metadata)
                .bind(recorded_at)
                .execute(&mut *connection)
                .await?;
        }
        Ok(())
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
            let mut query = sqlx::query_scalar(&sql);
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
        for rows in history.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO {} {} {} ON CONFLICT (job_id, sequence) DO NOTHING",
                tables.history,
                column_list(&HISTORY_COLUMNS),
                values_rows(rows.len(), HISTORY_COLUMNS.len())
            );
            let mut query = sqlx::query(&sql);
            for (job_id, entry) in rows {
                for value in history_values(job_id, entry) {
                    query = bind_value(query, value);
                }
            }
            query.execute(&mut *connection).await?;
        }
        Ok(())
    }

    async fn upsert_summaries(
        connection: &mut Connection<Self>,
        tables: ProjectionTables,
        summaries: &[SummaryDocument],
    ) -> Result<(), StoreError> {
        let upsert = summary_upsert();
        for rows in summaries.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO {} {} {}{upsert}",
                tables.summary,
                column_list(&SUMMARY_COLUMNS),
                values_rows(rows.len(), SUMMARY_COLUMNS.len())
            );
            let mut query = sqlx::query(&sql);
            for summary in rows {
                for value in summary_values(summary) {
                    query = bind_value(query, value);
                }
            }
            query.execute(&mut *connection).await?;
        }
        Ok(())
    }

    async fn job(
        pool: &Pool<Self>,
        customer_id: i64,
        job_id: &str,
    ) -> Result<Option<JobView>, StoreError> {
        let document: Option<Json<JobView>> = sqlx::query_scalar(
            "SELECT document FROM job_summary WHERE job_id = $1 AND customer_id = $2",
        )
        .bind(job_id)
        .bind(customer_id)
        .fetch_optional(pool)
        .await?;
        Ok(document.map(|json| json.0))
    }

    async fn list_jobs(
        pool: &Pool<Self>,
        customer_id: i64,
        filter: &JobFilter,
        page: PageRequest,
    ) -> Result<Vec<JobView>, StoreError> {
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
        let direction = filter.direction.sql();
        sql.push_str(&format!(
            " ORDER BY {column} {direction}, job_id {direction} LIMIT ${} OFFSET ${}",
            parameters + 1,
            parameters + 2
        ));
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
        let rows: Vec<Json<JobView>> = query
            .bind(page.fetch_limit())
            .bind(page.offset())
            .fetch_all(pool)
            .await?;
        Ok(rows.into_iter().map(|json| json.0).collect())
    }

    async fn status_history(
        pool: &Pool<Self>,
        job_id: &str,
        direction: Direction,
        page: PageRequest,
    ) -> Result<Vec<StatusHistoryEntry>, StoreError> {
        let sql = format!(
            "SELECT {} FROM job_status_history \
             WHERE job_id = $1 ORDER BY sequence {} LIMIT $2 OFFSET $3",
            select_list(&HISTORY_COLUMNS[1..]),
            direction.sql()
        );
        let rows = sqlx::query(&sql)
            .bind(job_id)
            .bind(page.fetch_limit())
            .bind(page.offset())
            .fetch_all(pool)
            .await?;
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

    fn logged_event(row: &Self::Row) -> Result<LoggedEvent, sqlx::Error> {
        Ok(LoggedEvent {
            cursor: LogCursor {
                transaction: row.try_get("transaction")?,
                position: row.try_get("position")?,
            },
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            recorded_at: row.try_get("recorded_at")?,
            payload: row.try_get("payload")?,
            metadata: row.try_get("metadata")?,
        })
    }

    async fn read_log_rows(
        connection: &mut Connection<Self>,
        sql: &str,
        after: LogCursor,
        filter: &LogFilter,
        limit: i64,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        let rows = sqlx::query(sql)
            .bind(after.transaction)
            .bind(after.position)
            .bind(filter.customer_id.map(|id| id.to_string()))
            .bind(limit)
            .fetch_all(connection)
            .await?;
        Ok(rows
            .iter()
            .map(Self::logged_event)
            .collect::<Result<_, _>>()?)
    }

    async fn log_end(pool: &Pool<Self>, sql: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
    }

    async fn held_back(
        pool: &Pool<Self>,
        sql: &str,
        after: LogCursor,
        filter: &LogFilter,
        end: i64,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(sql)
            .bind(after.transaction)
            .bind(after.position)
            .bind(filter.customer_id.map(|id| id.to_string()))
            .bind(end)
            .fetch_one(pool)
            .await?)
    }

    async fn cursor_at(
        pool: &Pool<Self>,
        sql: &str,
        position: i64,
    ) -> Result<Option<(LogCursor, bool)>, StoreError> {
        let found: Option<(i64, i64, bool)> = sqlx::query_as(sql)
            .bind(position)
            .fetch_optional(pool)
            .await?;
        Ok(found.map(|(transaction, position, is_final)| {
            let cursor = LogCursor {
                transaction,
                position,
            };
            (cursor, is_final)
        }))
    }

    async fn aggregate_events(
        pool: &Pool<Self>,
        transaction: &str,
        [aggregate_type, aggregate_id]: [&str; 2],
        limit: i64,
        offset: i64,
    ) -> Result<Vec<LoggedEvent>, StoreError> {
        let sql = format!(
            "SELECT {transaction} AS \"transaction\", {EVENT_COLUMNS} FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence LIMIT $3 OFFSET $4"
        );
        let rows = sqlx::query(&sql)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
        Ok(rows
            .iter()
            .map(Self::logged_event)
            .collect::<Result<_, _>>()?)
    }

    async fn event_count(pool: &Pool<Self>) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(pool)
            .await?)
    }

    async fn migrate(
        pool: &Pool<Self>,
        migrator: &sqlx::migrate::Migrator,
    ) -> Result<Vec<MigrationApplied>, StoreError> {
        use sqlx::migrate::Migrate;
        let mut connection = pool.acquire().await?;
        let connection: &mut DB::Connection = &mut connection;
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

    async fn drop_tables(pool: &Pool<Self>, tables: ProjectionTables) -> Result<(), StoreError> {
        for table in tables.names() {
            sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    async fn verify_group(
        pool: &Pool<Self>,
        [snapshot_begin, snapshot_first]: [&'static str; 2],
        transaction: &str,
        after: &str,
        jobs: i64,
    ) -> Result<VerifyGroup, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT aggregate_id FROM events \
             WHERE aggregate_type = $1 AND aggregate_id > $2 \
             ORDER BY aggregate_id LIMIT $3",
        )
        .bind(domain::AGGREGATE_TYPE)
        .bind(after)
        .bind(jobs)
        .fetch_all(pool)
        .await?;
        let last_id = ids.last().filter(|_| ids.len() as i64 == jobs).cloned();

        let mut tx = pool.begin_with(snapshot_begin).await?;
        sqlx::query(snapshot_first).execute(&mut *tx).await?;
        let events_sql = format!(
            "SELECT {transaction} AS \"transaction\", {EVENT_COLUMNS} FROM events \
             WHERE aggregate_type = $1 AND aggregate_id > $2 \
             AND (CAST($3 AS TEXT) IS NULL OR aggregate_id <= $3) \
             ORDER BY aggregate_id, sequence"
        );
        let rows = sqlx::query(&events_sql)
            .bind(domain::AGGREGATE_TYPE)
            .bind(after)
            .bind(last_id.as_deref())
            .fetch_all(&mut *tx)
            .await?;
        let events = rows
            .iter()
            .map(Self::logged_event)
            .collect::<Result<_, _>>()?;

        // The group's summary rows and history rows, in the same snapshot.
        let in_group = |table: &str, columns: &[&str]| {
            format!(
                "SELECT {} FROM {table} \
                 WHERE job_id > $1 AND (CAST($2 AS TEXT) IS NULL OR job_id <= $2)",
                select_list(columns)
            )
        };
        let (summary_sql, history_sql) = (
            in_group("job_summary", &SUMMARY_COLUMNS),
            in_group("job_status_history", &HISTORY_COLUMNS),
        );
        let summary_rows = sqlx::query(&summary_sql)
            .bind(after)
            .bind(last_id.as_deref())
            .fetch_all(&mut *tx)
            .await?;
        let history_rows = sqlx::query(&history_sql)
            .bind(after)
            .bind(last_id.as_deref())
            .fetch_all(&mut *tx)
            .await?;
        let mut summaries = Vec::with_capacity(summary_rows.len());
        for row in summary_rows {
            summaries.push(SummaryRow {
                job_id: row.try_get("job_id")?,
                customer_id: row.try_get("customer_id")?,
                status: row.try_get("status")?,
                type_id: row.try_get("type_id")?,
                contact_id: row.try_get("contact_id")?,
                reference: row.try_get("reference")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
                version: row.try_get("version")?,
                document: row.try_get("document")?,
            });
        }
        let mut history = Vec::with_capacity(history_rows.len());
        for row in history_rows {
            history.push(HistoryRow {
                job_id: row.try_get("job_id")?,
                sequence: row.try_get("sequence")?,
                status: row.try_get("status")?,
                occurred_at: row.try_get("occurred_at")?,
                comment: row.try_get("comment")?,
                actor: row.try_get("actor")?,
            });
        }
        tx.commit().await?;
        Ok(VerifyGroup {
            last_id,
            events,
            summaries,
            history,
        })
    }

    async fn insert_client(pool: &Pool<Self>, client: &ClientRecord) -> Result<(), StoreError> {
        let scopes = serde_json::value::to_raw_value(&client.scopes)
            .map_err(|e| StoreError::Corrupt(format!("client scopes: {e}")))?;
        let customers = serde_json::value::to_raw_value(&client.customer_ids)
            .map_err(|e| StoreError::Corrupt(format!("client customers: {e}")))?;
        sqlx::query(
            "INSERT INTO auth_clients \
             (client_id, name, scopes, customer_ids, secret_hash, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(client.id.to_string())
        .bind(client.name.as_str())
        .bind(Json(&*scopes))
        .bind(Json(&*customers))
        .bind(client.secret_hash.as_str())
        .bind(client.created_at)
        .bind(client.revoked_at)
        .execute(pool)
        .await?;
        Ok(())
    }

    async fn select_clients(
        pool: &Pool<Self>,
        id: Option<uuid::Uuid>,
    ) -> Result<Vec<ClientRecord>, StoreError> {
        let rows = match id {
            Some(id) => {
                sqlx::query(&format!("{SELECT_CLIENTS} WHERE client_id = $1"))
                    .bind(id.to_string())
                    .fetch_all(pool)
                    .await?
            }
            None => {
                sqlx::query(&format!("{SELECT_CLIENTS} ORDER BY created_at, client_id"))
                    .fetch_all(pool)
                    .await?
            }
        };
        let mut clients = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("client_id")?;
            let scopes: Json<Vec<String>> = row.try_get("scopes")?;
            let customer_ids: Json<Vec<i64>> = row.try_get("customer_ids")?;
            clients.push(ClientRecord {
                id: parse_client_id(&id)?,
                name: row.try_get("name")?,
                scopes: scopes.0,
                customer_ids: customer_ids.0,
                secret_hash: row.try_get("secret_hash")?,
                created_at: row.try_get("created_at")?,
                revoked_at: row.try_get("revoked_at")?,
            });
        }
        Ok(clients)
    }

    async fn revoke_client(
        pool: &Pool<Self>,
        id: uuid::Uuid,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE auth_clients SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL",
        )
        .bind(id.to_string())
        .bind(at)
        .execute(pool)
        .await?;
        Ok(())
    }
}
