//! Statements on webhook subscriptions (`webhook_subscriptions`) and their failed attempts
//! (`webhook_failed_deliveries`). Leases and retry times are read off the database's clock
//! (the `now` expression each backend gives), so servers whose clocks disagree still agree
//! on who delivers. Every change a deliverer makes names the lease it expects to hold.

use super::keys::RowsAffected;
use super::Connection;
use crate::error::StoreError;
use crate::log::LogCursor;
use crate::webhooks::{
    AfterFailure, FailedDelivery, NewSubscription, Subscription, SubscriptionChanges,
    SubscriptionStatus, FAILED_DELIVERIES_KEPT,
};
use async_trait::async_trait;
use serde_json::value::RawValue;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};
use uuid::Uuid;

const SUBSCRIPTION_COLUMNS: &str = "subscription_id, customer_id, url, event_types, status, \
     secret, previous_secret, previous_secret_until_ms, created_at_ms, updated_at_ms, \
     checkpoint_transaction, checkpoint_position, delivered, attempts, failing_since_ms, \
     next_attempt_ms, lease_owner, lease_until_ms";

const FAILURE_COLUMNS: &str = "event_id, job_id, sequence, event_type, attempt, \
     attempted_at_ms, response_status, error";

/// Statements on webhook subscriptions. `now` is the backend's clock expression
/// (`Backend::NOW_MS`).
#[async_trait]
pub trait WebhookSql: Database {
    /// Runs `lock` (a statement taking a lock for the customer `$1`, as text).
    async fn lock_customer(
        connection: &mut Connection<Self>,
        lock: &str,
        customer_id: i64,
    ) -> Result<(), StoreError>;

    /// Inserts the subscription unless its customer has `most`; `false` then.
    async fn insert_subscription(
        connection: &mut Connection<Self>,
        new: &NewSubscription,
        head: LogCursor,
        most: i64,
    ) -> Result<bool, StoreError>;

    /// Subscriptions by id (within a customer), by customer, or all.
    async fn select_subscriptions(
        pool: &Pool<Self>,
        customer_id: Option<i64>,
        id: Option<Uuid>,
    ) -> Result<Vec<Subscription>, StoreError>;

    async fn update_subscription(
        pool: &Pool<Self>,
        now: &str,
        customer_id: i64,
        id: Uuid,
        changes: &SubscriptionChanges,
    ) -> Result<Option<Subscription>, StoreError>;

    async fn redeliver_subscription(
        pool: &Pool<Self>,
        now: &str,
        customer_id: i64,
        id: Uuid,
    ) -> Result<Option<Subscription>, StoreError>;

    async fn rotate_subscription_secret(
        pool: &Pool<Self>,
        now: &str,
        customer_id: i64,
        id: Uuid,
        secret: &str,
        grace_ms: i64,
    ) -> Result<Option<Subscription>, StoreError>;

    async fn delete_subscription(
        pool: &Pool<Self>,
        customer_id: i64,
        id: Uuid,
    ) -> Result<bool, StoreError>;

    async fn claim_due_subscriptions(
        pool: &Pool<Self>,
        now: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Vec<Subscription>, StoreError>;

    async fn record_subscription_progress(
        pool: &Pool<Self>,
        now: &str,
        id: Uuid,
        owner: &str,
        checkpoint: LogCursor,
        delivered: i64,
        lease_ms: i64,
    ) -> Result<Option<Subscription>, StoreError>;

    async fn record_subscription_failure(
        pool: &Pool<Self>,
        now: &str,
        id: Uuid,
        owner: &str,
        failure: &FailedDelivery,
        retry_in_ms: i64,
        give_up_after_ms: i64,
    ) -> Result<AfterFailure, StoreError>;

    async fn release_subscription(
        pool: &Pool<Self>,
        id: Uuid,
        owner: &str,
    ) -> Result<(), StoreError>;

    async fn select_failed_deliveries(
        pool: &Pool<Self>,
        id: Uuid,
        limit: i64,
    ) -> Result<Vec<FailedDelivery>, StoreError>;
}

fn json_array(values: &[String]) -> Result<Box<RawValue>, StoreError> {
    serde_json::value::to_raw_value(values)
        .map_err(|e| StoreError::Corrupt(format!("subscription event types: {e}")))
}

#[async_trait]
impl<DB> WebhookSql for DB
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    <DB as Database>::QueryResult: RowsAffected,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i32>: Encode<'q, DB> + Type<DB>,
    for<'q> Json<&'q RawValue>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Json<&'q RawValue>>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Option<String>: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> i32: Decode<'r, DB> + Type<DB>,
    for<'r> Option<i64>: Decode<'r, DB> + Type<DB>,
    for<'r> Option<i32>: Decode<'r, DB> + Type<DB>,
    for<'r> Json<Vec<String>>: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    async fn lock_customer(
        connection: &mut Connection<Self>,
        lock: &str,
        customer_id: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(lock)
            .bind(customer_id.to_string())
            .execute(connection)
            .await?;
        Ok(())
    }

    async fn insert_subscription(
        connection: &mut Connection<Self>,
        new: &NewSubscription,
        head: LogCursor,
        most: i64,
    ) -> Result<bool, StoreError> {
        let event_types = json_array(&new.event_types)?;
        // The count and the insert are one statement; creates of one customer are
        // serialized by the caller (`Backend::SUBSCRIPTION_CREATE_LOCK`), so the bound holds.
        let sql =
            "INSERT INTO webhook_subscriptions (subscription_id, customer_id, url, event_types, \
             status, secret, created_at_ms, updated_at_ms, checkpoint_transaction, \
             checkpoint_position) \
             SELECT $1, $2, $3, $4, 'active', $5, $9, $9, $6, $7 \
             WHERE (SELECT count(*) FROM webhook_subscriptions WHERE customer_id = $2) < $8";
        let done = sqlx::query(sql)
            .bind(new.id.to_string())
            .bind(new.customer_id)
            .bind(new.url.as_str())
            .bind(Json(&*event_types))
            .bind(new.secret.as_str())
            .bind(head.transaction)
            .bind(head.position)
            .bind(most)
            .bind(new.created_at_ms)
            .execute(connection)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn select_subscriptions(
        pool: &Pool<Self>,
        customer_id: Option<i64>,
        id: Option<Uuid>,
    ) -> Result<Vec<Subscription>, StoreError> {
        let rows = match (customer_id, id) {
            (Some(customer_id), Some(id)) => {
                sqlx::query(&format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions \
                     WHERE subscription_id = $1 AND customer_id = $2"
                ))
                .bind(id.to_string())
                .bind(customer_id)
                .fetch_all(pool)
                .await?
            }
            (Some(customer_id), None) => {
                sqlx::query(&format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions \
                     WHERE customer_id = $1 ORDER BY created_at_ms, subscription_id"
                ))
                .bind(customer_id)
                .fetch_all(pool)
                .await?
            }
            (None, Some(id)) => {
                sqlx::query(&format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions \
                     WHERE subscription_id = $1"
                ))
                .bind(id.to_string())
                .fetch_all(pool)
                .await?
            }
            (None, None) => {
                sqlx::query(&format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions \
                     ORDER BY customer_id, created_at_ms, subscription_id"
                ))
                .fetch_all(pool)
                .await?
            }
        };
        rows.iter().map(subscription_from_row::<DB>).collect()
    }

    async fn update_subscription(
        pool: &Pool<Self>,
        now: &str,
        customer_id: i64,
        id: Uuid,
        changes: &SubscriptionChanges,
    ) -> Result<Option<Subscription>, StoreError> {
        let event_types = changes.event_types.as_deref().map(json_array).transpose()?;
        // Setting a paused or failing subscription active clears the retry wait: it is
        // delivered (again) from its checkpoint at once. A change that leaves an active one
        // active keeps its retry state.
        let sql = format!(
            "UPDATE webhook_subscriptions SET url = coalesce($3, url), \
             event_types = coalesce($4, event_types), status = coalesce($5, status), \
             updated_at_ms = {now}, \
             attempts = CASE WHEN {resumed} THEN 0 ELSE attempts END, \
             failing_since_ms = CASE WHEN {resumed} THEN NULL ELSE failing_since_ms END, \
             next_attempt_ms = CASE WHEN {resumed} THEN NULL ELSE next_attempt_ms END \
             WHERE subscription_id = $1 AND customer_id = $2 RETURNING {SUBSCRIPTION_COLUMNS}",
            resumed = "($5 = 'active' AND status <> 'active')"
        );
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(customer_id)
            .bind(changes.url.as_deref())
            .bind(event_types.as_deref().map(Json))
            .bind(changes.status.map(SubscriptionStatus::as_str))
            .fetch_optional(pool)
            .await?;
        row.as_ref().map(subscription_from_row::<DB>).transpose()
    }

    async fn redeliver_subscription(
        pool: &Pool<Self>,
        now: &str,
        customer_id: i64,
        id: Uuid,
    ) -> Result<Option<Subscription>, StoreError> {
        let sql = format!(
            "UPDATE webhook_subscriptions SET status = 'active', updated_at_ms = {now}, \
             attempts = 0, failing_since_ms = NULL, next_attempt_ms = NULL \
             WHERE subscription_id = $1 AND customer_id = $2 RETURNING {SUBSCRIPTION_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(customer_id)
            .fetch_optional(pool)
            .await?;
        row.as_ref().map(subscription_from_row::<DB>).transpose()
    }

    async fn rotate_subscription_secret(
        pool: &Pool<Self>,
        now: &str,
        customer_id: i64,
        id: Uuid,
        secret: &str,
        grace_ms: i64,
    ) -> Result<Option<Subscription>, StoreError> {
        let sql = format!(
            "UPDATE webhook_subscriptions SET previous_secret = secret, \
             previous_secret_until_ms = {now} + $4, secret = $3, updated_at_ms = {now} \
             WHERE subscription_id = $1 AND customer_id = $2 RETURNING {SUBSCRIPTION_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(customer_id)
            .bind(secret)
            .bind(grace_ms)
            .fetch_optional(pool)
            .await?;
        row.as_ref().map(subscription_from_row::<DB>).transpose()
    }

    async fn delete_subscription(
        pool: &Pool<Self>,
        customer_id: i64,
        id: Uuid,
    ) -> Result<bool, StoreError> {
        // One transaction, so no failed attempt is left without its subscription.
        let mut transaction = pool.begin().await?;
        let deleted = sqlx::query(
            "DELETE FROM webhook_subscriptions WHERE subscription_id = $1 AND customer_id = $2",
        )
        .bind(id.to_string())
        .bind(customer_id)
        .execute(&mut *transaction)
        .await?;
        if deleted.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM webhook_failed_deliveries WHERE subscription_id = $1")
            .bind(id.to_string())
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(true)
    }

    async fn claim_due_subscriptions(
        pool: &Pool<Self>,
        now: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Vec<Subscription>, StoreError> {
        // On PostgreSQL, two servers claiming at once queue on the row lock, and the second
        // re-checks the condition against the first's lease: one of them gets each row.
        let sql = format!(
            "UPDATE webhook_subscriptions SET lease_owner = $1, lease_until_ms = {now} + $2 \
             WHERE status = 'active' \
             AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until_ms < {now}) \
             AND (next_attempt_ms IS NULL OR next_attempt_ms <= {now}) \
             RETURNING {SUBSCRIPTION_COLUMNS}"
        );
        let rows = sqlx::query(&sql)
            .bind(owner)
            .bind(lease_ms)
            .fetch_all(pool)
            .await?;
        rows.iter().map(subscription_from_row::<DB>).collect()
    }

    async fn record_subscription_progress(
        pool: &Pool<Self>,
        now: &str,
        id: Uuid,
        owner: &str,
        checkpoint: LogCursor,
        delivered: i64,
        lease_ms: i64,
    ) -> Result<Option<Subscription>, StoreError> {
        let sql = format!(
            "UPDATE webhook_subscriptions SET checkpoint_transaction = $3, \
             checkpoint_position = $4, delivered = delivered + $5, \
             attempts = CASE WHEN $5 > 0 THEN 0 ELSE attempts END, \
             failing_since_ms = CASE WHEN $5 > 0 THEN NULL ELSE failing_since_ms END, \
             lease_until_ms = {now} + $6 \
             WHERE subscription_id = $1 AND lease_owner = $2 RETURNING {SUBSCRIPTION_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(owner)
            .bind(checkpoint.transaction)
            .bind(checkpoint.position)
            .bind(delivered)
            .bind(lease_ms)
            .fetch_optional(pool)
            .await?;
        row.as_ref().map(subscription_from_row::<DB>).transpose()
    }

    async fn record_subscription_failure(
        pool: &Pool<Self>,
        now: &str,
        id: Uuid,
        owner: &str,
        failure: &FailedDelivery,
        retry_in_ms: i64,
        give_up_after_ms: i64,
    ) -> Result<AfterFailure, StoreError> {
        let sql = format!(
            "UPDATE webhook_subscriptions SET attempts = attempts + 1, \
             failing_since_ms = coalesce(failing_since_ms, {now}), \
             next_attempt_ms = {now} + $3, \
             status = CASE WHEN failing_since_ms IS NOT NULL AND {now} - failing_since_ms >= $4 \
                      THEN 'failing' ELSE status END, \
             lease_owner = NULL, lease_until_ms = NULL \
             WHERE subscription_id = $1 AND lease_owner = $2 AND status = 'active' \
             RETURNING status, next_attempt_ms"
        );
        let Some(row) = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(owner)
            .bind(retry_in_ms)
            .bind(give_up_after_ms)
            .fetch_optional(pool)
            .await?
        else {
            return Ok(AfterFailure::NotOurs);
        };
        let status: String = row.try_get("status")?;
        let next_attempt_ms: Option<i64> = row.try_get("next_attempt_ms")?;
        let after = if status == SubscriptionStatus::Failing.as_str() {
            AfterFailure::GaveUp
        } else {
            AfterFailure::Retrying {
                next_attempt_ms: next_attempt_ms.unwrap_or_default(),
            }
        };
        // Only while the subscription exists: one deleted meanwhile keeps no attempts.
        let insert = format!(
            "INSERT INTO webhook_failed_deliveries (subscription_id, {FAILURE_COLUMNS}) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE EXISTS \
             (SELECT 1 FROM webhook_subscriptions WHERE subscription_id = $1)"
        );
        sqlx::query(&insert)
            .bind(id.to_string())
            .bind(failure.event_id.as_str())
            .bind(failure.job_id.as_str())
            .bind(failure.sequence)
            .bind(failure.event_type.as_str())
            .bind(failure.attempt)
            .bind(failure.attempted_at_ms)
            .bind(failure.response_status)
            .bind(failure.error.as_str())
            .execute(pool)
            .await?;
        sqlx::query(
            "DELETE FROM webhook_failed_deliveries WHERE subscription_id = $1 AND attempt_id <= \
             (SELECT attempt_id FROM webhook_failed_deliveries WHERE subscription_id = $1 \
              ORDER BY attempt_id DESC LIMIT 1 OFFSET $2)",
        )
        .bind(id.to_string())
        .bind(FAILED_DELIVERIES_KEPT)
        .execute(pool)
        .await?;
        Ok(after)
    }

    async fn release_subscription(
        pool: &Pool<Self>,
        id: Uuid,
        owner: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_subscriptions SET lease_owner = NULL, lease_until_ms = NULL \
             WHERE subscription_id = $1 AND lease_owner = $2",
        )
        .bind(id.to_string())
        .bind(owner)
        .execute(pool)
        .await?;
        Ok(())
    }

    async fn select_failed_deliveries(
        pool: &Pool<Self>,
        id: Uuid,
        limit: i64,
    ) -> Result<Vec<FailedDelivery>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {FAILURE_COLUMNS} FROM webhook_failed_deliveries \
             WHERE subscription_id = $1 ORDER BY attempt_id DESC LIMIT $2"
        ))
        .bind(id.to_string())
        .bind(limit)
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(FailedDelivery {
                    event_id: row.try_get("event_id")?,
                    job_id: row.try_get("job_id")?,
                    sequence: row.try_get("sequence")?,
                    event_type: row.try_get("event_type")?,
                    attempt: row.try_get("attempt")?,
                    attempted_at_ms: row.try_get("attempted_at_ms")?,
                    response_status: row.try_get("response_status")?,
                    error: row.try_get("error")?,
                })
            })
            .collect()
    }
}

fn subscription_from_row<DB>(row: &DB::Row) -> Result<Subscription, StoreError>
where
    DB: Database,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Option<String>: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> i32: Decode<'r, DB> + Type<DB>,
    for<'r> Option<i64>: Decode<'r, DB> + Type<DB>,
    for<'r> Json<Vec<String>>: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    let id: String = row.try_get("subscription_id")?;
    let status: String = row.try_get("status")?;
    let event_types: Json<Vec<String>> = row.try_get("event_types")?;
    Ok(Subscription {
        id: Uuid::parse_str(&id)
            .map_err(|_| StoreError::Corrupt(format!("subscription id {id:?} is not a UUID")))?,
        customer_id: row.try_get("customer_id")?,
        url: row.try_get("url")?,
        event_types: event_types.0,
        status: SubscriptionStatus::parse(&status).ok_or_else(|| {
            StoreError::Corrupt(format!("subscription {id}: unknown status {status:?}"))
        })?,
        secret: row.try_get("secret")?,
        previous_secret: row.try_get("previous_secret")?,
        previous_secret_until_ms: row.try_get("previous_secret_until_ms")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
        checkpoint: LogCursor {
            transaction: row.try_get("checkpoint_transaction")?,
            position: row.try_get("checkpoint_position")?,
        },
        delivered: row.try_get("delivered")?,
        attempts: row.try_get("attempts")?,
        failing_since_ms: row.try_get("failing_since_ms")?,
        next_attempt_ms: row.try_get("next_attempt_ms")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_until_ms: row.try_get("lease_until_ms")?,
    })
}
