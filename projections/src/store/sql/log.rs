//! Statements on the global log — the backend supplies the log queries' own SQL and the
//! expression of a row's writing transaction (see `Backend`) — and verify's reads of a group
//! of jobs in one snapshot.

use super::Connection;
use crate::error::StoreError;
use crate::log::{LogCursor, LogFilter, LoggedEvent};
use crate::store::rows::{select_list, HISTORY_COLUMNS, SUMMARY_COLUMNS};
use crate::verify::{HistoryRow, SummaryRow, VerifyGroup};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

/// The event columns every log query selects after the transaction expression.
const EVENT_COLUMNS: &str = "position, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, recorded_at, CAST(payload AS TEXT) AS payload, \
     CAST(metadata AS TEXT) AS metadata";

/// Statements on the log (see the module doc).
#[async_trait]
pub trait LogSql: Database {
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

    /// Runs a count on the log whose parameters are the cursor, the customer and a bound
    /// (`HELD_BACK`'s transaction bound, or `COUNT_AFTER`'s cap).
    async fn count_log(
        pool: &Pool<Self>,
        sql: &str,
        after: LogCursor,
        filter: &LogFilter,
        bound: i64,
    ) -> Result<i64, StoreError>;

    /// The cursor a query with no parameters selects (`LOG_HEAD`).
    async fn log_cursor(pool: &Pool<Self>, sql: &str) -> Result<LogCursor, StoreError>;

    async fn cursor_at(
        pool: &Pool<Self>,
        sql: &str,
        position: i64,
    ) -> Result<Option<(LogCursor, bool)>, StoreError>;

    /// Up to `limit` events of one aggregate with sequences above `after`, skipping
    /// `offset`, in sequence order — and no more than fit in `max_bytes` of payload and
    /// metadata (at least one). The rows are read one by one, so memory holds the page,
    /// never more. Returns the events and whether the byte bound cut the read short.
    #[allow(clippy::too_many_arguments)]
    async fn aggregate_events(
        pool: &Pool<Self>,
        transaction: &str,
        aggregate_type: &str,
        aggregate_id: &str,
        after: i64,
        limit: i64,
        offset: i64,
        max_bytes: usize,
    ) -> Result<(Vec<LoggedEvent>, bool), StoreError>;

    async fn event_count(pool: &Pool<Self>) -> Result<i64, StoreError>;

    /// The next group of at most `jobs` jobs after `after`, in one snapshot that
    /// `snapshot_begin` opens and `snapshot_first` starts.
    async fn verify_group(
        pool: &Pool<Self>,
        snapshot_begin: &'static str,
        snapshot_first: &'static str,
        transaction: &str,
        after: &str,
        jobs: i64,
    ) -> Result<VerifyGroup, StoreError>;
}

#[async_trait]
impl<DB> LogSql for DB
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> bool: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Option<String>: Decode<'r, DB> + Type<DB>,
    for<'r> DateTime<Utc>: Decode<'r, DB> + Type<DB>,
    for<'r> serde_json::Value: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
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

    async fn count_log(
        pool: &Pool<Self>,
        sql: &str,
        after: LogCursor,
        filter: &LogFilter,
        bound: i64,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(sql)
            .bind(after.transaction)
            .bind(after.position)
            .bind(filter.customer_id.map(|id| id.to_string()))
            .bind(bound)
            .fetch_one(pool)
            .await?)
    }

    async fn log_cursor(pool: &Pool<Self>, sql: &str) -> Result<LogCursor, StoreError> {
        let (transaction, position): (i64, i64) = sqlx::query_as(sql).fetch_one(pool).await?;
        Ok(LogCursor {
            transaction,
            position,
        })
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
        aggregate_type: &str,
        aggregate_id: &str,
        after: i64,
        limit: i64,
        offset: i64,
        max_bytes: usize,
    ) -> Result<(Vec<LoggedEvent>, bool), StoreError> {
        let sql = format!(
            "SELECT {transaction} AS \"transaction\", {EVENT_COLUMNS} FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 \
             ORDER BY sequence LIMIT $4 OFFSET $5"
        );
        let mut rows = sqlx::query(&sql)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .bind(after)
            .bind(limit)
            .bind(offset)
            .fetch(pool);
        let (mut events, mut bytes) = (Vec::new(), 0);
        while let Some(row) = rows.try_next().await? {
            let event = Self::logged_event(&row)?;
            let size = event.payload.len() + event.metadata.len();
            if !events.is_empty() && bytes + size > max_bytes {
                return Ok((events, true));
            }
            bytes += size;
            events.push(event);
        }
        Ok((events, false))
    }

    async fn event_count(pool: &Pool<Self>) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(pool)
            .await?)
    }

    async fn verify_group(
        pool: &Pool<Self>,
        snapshot_begin: &'static str,
        snapshot_first: &'static str,
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
}
