//! Webhook subscriptions as the store keeps them: a customer's receivers of its events, each
//! with its delivery state — the log cursor it has been delivered up to (its checkpoint),
//! its failed attempts at the next event, and which server delivers it (a lease timed by
//! the database's clock). The delivering itself is the service's (`webhooks` in the server
//! crate); this is what it, the HTTP handlers and `jobs-admin` need of a store.

use crate::error::StoreError;
use crate::idempotency::{KeyClaim, StoredAnswer};
use crate::log::LogCursor;
use async_trait::async_trait;
use uuid::Uuid;

/// Whether a subscription is being delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionStatus {
    /// Delivered as events come (after any retry wait).
    Active,
    /// Paused by the customer: events wait in the log, from the checkpoint on.
    Paused,
    /// One event's deliveries failed for the whole retry window: nothing more is sent
    /// until the customer redelivers (or sets the subscription active again).
    Failing,
}

impl SubscriptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::Paused => "paused",
            SubscriptionStatus::Failing => "failing",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Active, Self::Paused, Self::Failing]
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

/// A subscription as stored. Times are Unix milliseconds of the database's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: Uuid,
    pub customer_id: i64,
    pub url: String,
    /// The event types delivered; empty means every type.
    pub event_types: Vec<String>,
    pub status: SubscriptionStatus,
    /// The signing secret (`whsec_…`).
    pub secret: String,
    /// The secret before the last rotation, which also signs until `previous_secret_until_ms`.
    pub previous_secret: Option<String>,
    pub previous_secret_until_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Just after the last event handled (delivered, or not of a subscribed type).
    pub checkpoint: LogCursor,
    /// How many events were delivered.
    pub delivered: i64,
    /// Failed attempts at the event after the checkpoint.
    pub attempts: i32,
    /// When the first of those attempts was.
    pub failing_since_ms: Option<i64>,
    /// When to try again.
    pub next_attempt_ms: Option<i64>,
    /// The server delivering it, and until when.
    pub lease_owner: Option<String>,
    pub lease_until_ms: Option<i64>,
}

impl Subscription {
    /// Whether events of `event_type` are delivered.
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|wanted| wanted == event_type)
    }
}

/// What a create stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    pub id: Uuid,
    /// When it is made (Unix milliseconds): the caller's clock, so that an answer stored
    /// for an idempotency key can say it before the subscription is written.
    pub created_at_ms: i64,
    pub customer_id: i64,
    pub url: String,
    pub event_types: Vec<String>,
    pub secret: String,
}

/// A change of what a subscription's customer sets; `None` leaves a part as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionChanges {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub status: Option<SubscriptionStatus>,
}

/// How a create ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Creation {
    Created(Box<Subscription>),
    /// The customer has as many subscriptions as it may: nothing was stored.
    OverLimit,
    /// The request's idempotency key was taken over by a retry: nothing was stored.
    KeyTakenOver,
}

/// One failed attempt to deliver an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedDelivery {
    /// The event's id (`webhook-id`).
    pub event_id: String,
    pub job_id: String,
    pub sequence: i64,
    pub event_type: String,
    /// 1 for the first attempt at this event, 2 for the next, …
    pub attempt: i32,
    pub attempted_at_ms: i64,
    /// The receiver's status code, if it answered.
    pub response_status: Option<i32>,
    /// What went wrong, in a line.
    pub error: String,
}

/// How a failed attempt left the subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// It will be tried again at `next_attempt_ms`.
    Retrying { next_attempt_ms: i64 },
    /// The retry window has passed: the subscription is now failing.
    GaveUp,
    /// The lease was lost or the subscription changed meanwhile: nothing was recorded.
    NotOurs,
}

/// The failed attempts kept per subscription (the newest).
pub const FAILED_DELIVERIES_KEPT: i64 = 100;

/// Webhook subscriptions and their delivery state. Implemented by both stores.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a subscription that starts at the log's head (see
    /// [`crate::log::EventLog::head`]), unless its customer already has `most`. With
    /// `answering`, the request's answer is stored for its idempotency key in the same
    /// transaction, if the claim still holds the key.
    async fn create_subscription(
        &self,
        new: &NewSubscription,
        most: i64,
        answering: Option<(&KeyClaim, &StoredAnswer)>,
    ) -> Result<Creation, StoreError>;

    /// One subscription of a customer.
    async fn subscription(
        &self,
        customer_id: i64,
        id: Uuid,
    ) -> Result<Option<Subscription>, StoreError>;

    /// A customer's subscriptions (every customer's with `None`), oldest first.
    async fn subscriptions(
        &self,
        customer_id: Option<i64>,
    ) -> Result<Vec<Subscription>, StoreError>;

    /// Changes what the customer sets, in one statement (so concurrent changes of other
    /// parts, and the deliverer's, are kept). Setting a paused or failing subscription
    /// active clears its retry wait, so it is delivered again at once, from its checkpoint.
    async fn update_subscription(
        &self,
        customer_id: i64,
        id: Uuid,
        changes: &SubscriptionChanges,
    ) -> Result<Option<Subscription>, StoreError>;

    /// Sets the subscription active with no retry wait and no failed attempts counted: it
    /// is delivered from its checkpoint at once (a redelivery).
    async fn redeliver(
        &self,
        customer_id: i64,
        id: Uuid,
    ) -> Result<Option<Subscription>, StoreError>;

    /// Makes `secret` the signing secret; the one before signs too for `grace_ms`.
    async fn rotate_secret(
        &self,
        customer_id: i64,
        id: Uuid,
        secret: &str,
        grace_ms: i64,
    ) -> Result<Option<Subscription>, StoreError>;

    /// Deletes a subscription and its failed attempts; `false` if there was none.
    async fn delete_subscription(&self, customer_id: i64, id: Uuid) -> Result<bool, StoreError>;

    /// Leases to `owner`, for `lease_ms`, every active subscription that is due (its retry
    /// wait over) and not leased to another server; returns them, with those `owner`
    /// already held (whose leases this renews).
    async fn claim_due(&self, owner: &str, lease_ms: i64) -> Result<Vec<Subscription>, StoreError>;

    /// Records that everything up to `checkpoint` was handled, `delivered` of it sent, and
    /// renews the lease — if `owner` still holds it. Returns the subscription as it now is
    /// (its settings may have changed meanwhile), or `None` when the lease is lost.
    async fn record_progress(
        &self,
        id: Uuid,
        owner: &str,
        checkpoint: LogCursor,
        delivered: i64,
        lease_ms: i64,
    ) -> Result<Option<Subscription>, StoreError>;

    /// Records a failed attempt at the event after the checkpoint and gives the lease up:
    /// the next attempt is `retry_in_ms` from now — unless the first failed attempt at
    /// that event was `give_up_after_ms` ago or more, which makes the subscription failing.
    async fn record_failure(
        &self,
        id: Uuid,
        owner: &str,
        failure: &FailedDelivery,
        retry_in_ms: i64,
        give_up_after_ms: i64,
    ) -> Result<AfterFailure, StoreError>;

    /// Gives the lease up (a server stopping), so another server takes over at once.
    async fn release(&self, id: Uuid, owner: &str) -> Result<(), StoreError>;

    /// The newest failed attempts of a subscription, newest first.
    async fn failed_deliveries(
        &self,
        id: Uuid,
        limit: i64,
    ) -> Result<Vec<FailedDelivery>, StoreError>;
}
