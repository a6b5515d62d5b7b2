//! [`IdempotencyKeys`] for both stores. A claim is a lease: a row inserted (or taken over)
//! with a token and an expiry on the database's clock, in its own short statement, so it is
//! visible to every server sharing the database while the request runs. The answer replaces the claim in the
//! transaction of the request's events (`write.rs`).

use super::backend::{Backend, Store};
use super::sql::KeySql;
use crate::error::StoreError;
use crate::idempotency::{ClaimOutcome, IdempotencyKeys, KeyClaim, KeyedRequest};
use async_trait::async_trait;
use std::time::Duration;
use uuid::Uuid;

/// How many times a claim reads and writes again when another attempt changes the key
/// between its read and its write. Each lost round means someone else made progress.
const CLAIM_ROUNDS: usize = 4;

/// Keys deleted per statement when purging.
const PURGE_BATCH: i64 = 5_000;

#[async_trait]
impl<B: Backend> IdempotencyKeys for Store<B> {
    async fn claim(
        &self,
        request: &KeyedRequest,
        lease: Duration,
    ) -> Result<ClaimOutcome, StoreError> {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        let token = Uuid::now_v7();
        let claimed = || {
            ClaimOutcome::Claimed(KeyClaim {
                customer_id: request.customer_id,
                client_id: request.client_id.clone(),
                key: request.key.clone(),
                token,
            })
        };
        let token_text = token.to_string();
        for _ in 0..CLAIM_ROUNDS {
            {
                let _writer = self.backend.exclusive_writer().await;
                if B::Db::insert_key(&self.pool, request, &token_text, B::NOW_MS, lease_ms).await? {
                    return Ok(claimed());
                }
            }
            let Some(row) = B::Db::select_key(&self.pool, request, B::NOW_MS).await? else {
                continue; // purged between the two statements
            };
            let same_request = row.fingerprint == request.fingerprint;
            if let Some(answer) = row.answer {
                return Ok(match same_request {
                    true => ClaimOutcome::Answered(answer),
                    false => ClaimOutcome::Reused,
                });
            }
            let claimed_until_ms = row.claimed_until_ms.unwrap_or(0);
            if claimed_until_ms > row.now_ms {
                if !same_request {
                    return Ok(ClaimOutcome::Reused);
                }
                return Ok(ClaimOutcome::InFlight);
            }
            // A claim that ran out without an answer is as good as no claim: the key is
            // free, for this request or (corrected) another.
            let _writer = self.backend.exclusive_writer().await;
            if B::Db::take_over_key(&self.pool, request, &token_text, B::NOW_MS, lease_ms).await? {
                return Ok(claimed());
            }
        }
        // The key kept changing hands: someone is working on it.
        Ok(ClaimOutcome::InFlight)
    }

    async fn release(&self, claim: &KeyClaim) -> Result<(), StoreError> {
        let _writer = self.backend.exclusive_writer().await;
        B::Db::delete_claimed_key(&self.pool, claim).await
    }

    /// In batches of [`PURGE_BATCH`], each its own statement (and, on SQLite, its own turn
    /// at the write lock): after a long backlog one DELETE of everything could run past the
    /// server's statement timeout, fail every hour and let the backlog grow.
    async fn purge(&self, older_than: Duration) -> Result<u64, StoreError> {
        let age_ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX / 2);
        let mut purged = 0;
        loop {
            let deleted = {
                let _writer = self.backend.exclusive_writer().await;
                B::Db::purge_keys(&self.pool, B::NOW_MS, age_ms, PURGE_BATCH).await?
            };
            purged += deleted;
            if deleted < PURGE_BATCH as u64 {
                return Ok(purged);
            }
        }
    }
}
