//! Statements on idempotency keys (`idempotency_keys`). Every change names the claim it
//! expects, so two servers racing for one key never both win it. Claims are timed by the
//! database's clock (the `now` expression each backend gives), so servers whose clocks
//! disagree still agree on when a claim runs out.

use super::Connection;
use crate::error::StoreError;
use crate::idempotency::{KeyClaim, KeyedRequest, StoredAnswer};
use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

/// How many rows a statement changed. sqlx has no trait for it; both databases' results
/// have the method.
pub trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

/// A key's row as a claim reads it.
#[derive(Debug)]
pub struct KeyRow {
    pub fingerprint: String,
    pub claimed_until_ms: Option<i64>,
    /// The database's clock when the row was read.
    pub now_ms: i64,
    pub answer: Option<StoredAnswer>,
}

/// The key columns' condition, `$1`–`$3`.
const THE_KEY: &str = "customer_id = $1 AND client_id = $2 AND idempotency_key = $3";

#[async_trait]
pub trait KeySql: Database {
    /// Records a new key claimed by `token` for `lease_ms` from the database's `now`
    /// (an SQL expression of the time in Unix milliseconds); `false` if the key exists.
    async fn insert_key(
        pool: &Pool<Self>,
        request: &KeyedRequest,
        token: &str,
        now: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError>;

    /// The key's row, with the database's `now` beside it.
    async fn select_key(
        pool: &Pool<Self>,
        request: &KeyedRequest,
        now: &str,
    ) -> Result<Option<KeyRow>, StoreError>;

    /// Claims an unanswered key whose claim has run out, for `request` (which may differ
    /// from the one that claimed it before), for `lease_ms`; `false` if there is no such
    /// claim.
    async fn take_over_key(
        pool: &Pool<Self>,
        request: &KeyedRequest,
        token: &str,
        now: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Deletes the key if `claim` still holds it unanswered.
    async fn delete_claimed_key(pool: &Pool<Self>, claim: &KeyClaim) -> Result<(), StoreError>;

    /// Stores the key's answer if `claim` still holds it; `false` if it does not.
    async fn answer_key(
        connection: &mut Connection<Self>,
        claim: &KeyClaim,
        answer: &StoredAnswer,
    ) -> Result<bool, sqlx::Error>;

    /// Deletes up to `batch` of the keys created more than `age_ms` before the database's
    /// `now`; returns how many.
    async fn purge_keys(
        pool: &Pool<Self>,
        now: &str,
        age_ms: i64,
        batch: i64,
    ) -> Result<u64, StoreError>;
}

#[async_trait]
impl<DB> KeySql for DB
where
    DB: Database,
    DB::QueryResult: RowsAffected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Option<String>: Decode<'r, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'r> Option<i64>: Decode<'r, DB> + Type<DB>,
    for<'r> Option<i32>: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    async fn insert_key(
        pool: &Pool<Self>,
        request: &KeyedRequest,
        token: &str,
        now: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!(
            "INSERT INTO idempotency_keys (customer_id, client_id, idempotency_key, \
             fingerprint, created_at_ms, claim_token, claimed_until_ms) \
             VALUES ($1, $2, $3, $4, {now}, $5, {now} + $6) ON CONFLICT DO NOTHING",
        ))
        .bind(request.customer_id)
        .bind(request.client_id.as_str())
        .bind(request.key.as_str())
        .bind(request.fingerprint.as_str())
        .bind(token)
        .bind(lease_ms)
        .execute(pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn select_key(
        pool: &Pool<Self>,
        request: &KeyedRequest,
        now: &str,
    ) -> Result<Option<KeyRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT fingerprint, claimed_until_ms, status, headers, body, {now} AS now_ms \
             FROM idempotency_keys WHERE {THE_KEY}"
        ))
        .bind(request.customer_id)
        .bind(request.client_id.as_str())
        .bind(request.key.as_str())
        .fetch_optional(pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let status: Option<i32> = row.try_get("status")?;
        let answer = match status {
            None => None,
            Some(status) => {
                let headers: Option<String> = row.try_get("headers")?;
                let corrupt = |what: &str| {
                    StoreError::Corrupt(format!("idempotency key {:?}: {what}", request.key))
                };
                Some(StoredAnswer {
                    status: u16::try_from(status).map_err(|_| corrupt("status out of range"))?,
                    headers: serde_json::from_str(headers.as_deref().unwrap_or("[]"))
                        .map_err(|_| corrupt("headers are not a JSON list of pairs"))?,
                    body: row.try_get("body")?,
                })
            }
        };
        Ok(Some(KeyRow {
            fingerprint: row.try_get("fingerprint")?,
            claimed_until_ms: row.try_get("claimed_until_ms")?,
            now_ms: row.try_get("now_ms")?,
            answer,
        }))
    }

    async fn take_over_key(
        pool: &Pool<Self>,
        request: &KeyedRequest,
        token: &str,
        now: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE idempotency_keys SET claim_token = $4, claimed_until_ms = {now} + $5, \
             created_at_ms = {now}, fingerprint = $6 \
             WHERE {THE_KEY} AND status IS NULL AND claimed_until_ms <= {now}"
        ))
        .bind(request.customer_id)
        .bind(request.client_id.as_str())
        .bind(request.key.as_str())
        .bind(token)
        .bind(lease_ms)
        .bind(request.fingerprint.as_str())
        .execute(pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_claimed_key(pool: &Pool<Self>, claim: &KeyClaim) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "DELETE FROM idempotency_keys WHERE {THE_KEY} AND claim_token = $4 AND status IS NULL"
        ))
        .bind(claim.customer_id)
        .bind(claim.client_id.as_str())
        .bind(claim.key.as_str())
        .bind(claim.token.to_string().as_str())
        .execute(pool)
        .await?;
        Ok(())
    }

    async fn answer_key(
        connection: &mut Connection<Self>,
        claim: &KeyClaim,
        answer: &StoredAnswer,
    ) -> Result<bool, sqlx::Error> {
        let headers = serde_json::to_string(&answer.headers)
            .map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
        let done = sqlx::query(&format!(
            "UPDATE idempotency_keys SET status = $5, headers = $6, body = $7, \
             claim_token = NULL, claimed_until_ms = NULL \
             WHERE {THE_KEY} AND claim_token = $4"
        ))
        .bind(claim.customer_id)
        .bind(claim.client_id.as_str())
        .bind(claim.key.as_str())
        .bind(claim.token.to_string().as_str())
        .bind(i32::from(answer.status))
        .bind(headers.as_str())
        .bind(answer.body.as_deref())
        .execute(&mut *connection)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn purge_keys(
        pool: &Pool<Self>,
        now: &str,
        age_ms: i64,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(&format!(
            "DELETE FROM idempotency_keys \
             WHERE (customer_id, client_id, idempotency_key) IN (\
               SELECT customer_id, client_id, idempotency_key FROM idempotency_keys \
               WHERE created_at_ms < {now} - $1 LIMIT $2)"
        ))
        .bind(age_ms)
        .bind(batch)
        .execute(pool)
        .await?;
        Ok(done.rows_affected())
    }
}
