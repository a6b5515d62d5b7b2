//! Webhook subscriptions as the store implements them (the trait is `crate::webhooks`'s):
//! the statements are in `sql/webhooks.rs`; this adds SQLite's writer queue and the log's
//! head a new subscription starts from.

use super::backend::{Backend, Store};
use super::sql::{KeySql, WebhookSql};
use crate::error::StoreError;
use crate::idempotency::{KeyClaim, StoredAnswer};
use crate::log::{EventLog, LogCursor};
use crate::webhooks::{
    AfterFailure, Creation, FailedDelivery, NewSubscription, Subscription, SubscriptionChanges,
    WebhookStore,
};
use async_trait::async_trait;
use uuid::Uuid;

#[async_trait]
impl<B: Backend> WebhookStore for Store<B> {
    async fn create_subscription(
        &self,
        new: &NewSubscription,
        most: i64,
        answering: Option<(&KeyClaim, &StoredAnswer)>,
    ) -> Result<Creation, StoreError> {
        let head = self.head().await?;
        {
            let _writer = self.backend.exclusive_writer().await;
            // Dropped without a commit, the transaction rolls back: nothing is stored.
            let mut transaction = self.pool.begin().await?;
            if let Some(lock) = B::SUBSCRIPTION_CREATE_LOCK {
                B::Db::lock_customer(&mut transaction, lock, new.customer_id).await?;
            }
            if !B::Db::insert_subscription(&mut transaction, new, head, most).await? {
                return Ok(Creation::OverLimit);
            }
            if let Some((claim, answer)) = answering {
                if !B::Db::answer_key(&mut transaction, claim, answer).await? {
                    return Ok(Creation::KeyTakenOver);
                }
            }
            transaction.commit().await?;
        }
        match self.subscription(new.customer_id, new.id).await? {
            Some(subscription) => Ok(Creation::Created(Box::new(subscription))),
            None => Err(StoreError::Corrupt(format!(
                "subscription {} is gone right after it was made",
                new.id
            ))),
        }
    }

    async fn subscription(
        &self,
        customer_id: i64,
        id: Uuid,
    ) -> Result<Option<Subscription>, StoreError> {
        Ok(
            B::Db::select_subscriptions(&self.pool, Some(customer_id), Some(id))
                .await?
                .pop(),
        )
    }

    async fn subscriptions(
        &self,
        customer_id: Option<i64>,
    ) -> Result<Vec<Subscription>, StoreError> {
        B::Db::select_subscriptions(&self.pool, customer_id, None).await
    }

    async fn update_subscription(
        &self,
        customer_id: i64,
        id: Uuid,
        changes: &SubscriptionChanges,
    ) -> Result<Option<Subscription>, StoreError> {
        let _writer = self.backend.exclusive_writer().await;
        B::Db::update_subscription(&self.pool, B::NOW_MS, customer_id, id, changes).await
    }

    async fn redeliver(
        &self,
        customer_id: i64,
        id: Uuid,
    ) -> Result<Option<Subscription>, StoreError> {
        let _writer = self.backend.exclusive_writer().await;
        B::Db::redeliver_subscription(&self.pool, B::NOW_MS, customer_id, id).await
    }

    async fn rotate_secret(
        &self,
        customer_id: i64,
        id: Uuid,
        secret: &str,
        grace_ms: i64,
    ) -> Result<Option<Subscription>, StoreError> {
        let _writer = self.backend.exclusive_writer().await;
        B::Db::rotate_subscription_secret(&self.pool, B::NOW_MS, customer_id, id, secret, grace_ms)
            .await
    }

    async fn delete_subscription(&self, customer_id: i64, id: Uuid) -> Result<bool, StoreError> {
        let _writer = self.backend.exclusive_writer().await;
        B::Db::delete_subscription(&self.pool, customer_id, id).await
    }

    async fn claim_due(&self, owner: &str, lease_ms: i64) -> Result<Vec<Subscription>, StoreError> {
        let _writer = self.backend.exclusive_writer().await;
        B::Db::claim_due_subscriptions(&self.pool, B::NOW_MS, owner, lease_ms).await
    }

    async fn record_progress(
        &self,
        id: Uuid,
        owner: &str,
        checkpoint: LogCursor,
        delivered: i64,
        lease_ms: i64,
    ) -> Result<Option<Subscription>, StoreError> {
        let _writer = self.backend.exclusive_writer().await;
        B::Db::record_subscription_progress(
            &self.pool,
            B::NOW_MS,
            id,
            owner,
            checkpoint,
            delivered,
            lease_ms,
        )
        .await
    }

    async fn record_failure(
        &self,
        id: Uuid,
        owner: &str,
        failure: &FailedDelivery,
        retry_in_ms: i64,
        give_up_after_ms: i64,
    ) -> Result<AfterFailure, StoreError> {
        let _writer = self.backend.exclusive_writer().await;
        B::Db::record_subscription_failure(
            &self.pool,
            B::NOW_MS,
            id,
            owner,
            failure,
            retry_in_ms,
            give_up_after_ms,
        )
        .await
    }

    async fn release(&self, id: Uuid, owner: &str) -> Result<(), StoreError> {
        let _writer = self.backend.exclusive_writer().await;
        B::Db::release_subscription(&self.pool, id, owner).await
    }

    async fn failed_deliveries(
        &self,
        id: Uuid,
        limit: i64,
    ) -> Result<Vec<FailedDelivery>, StoreError> {
        B::Db::select_failed_deliveries(&self.pool, id, limit).await
    }
}
