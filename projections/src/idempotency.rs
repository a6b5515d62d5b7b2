//! Idempotency keys as the store keeps them: a request's key is claimed before the request
//! runs, and the claim either becomes the request's stored answer — written in the same
//! transaction as the request's events (see `store::CommandStore::append`) — or is released
//! when the request ends without one. What a key, a fingerprint and an answer look like on
//! the wire is the HTTP layer's business; here they are opaque.

use crate::error::StoreError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use uuid::Uuid;

/// A request that carries an idempotency key: whose key (customer and client), the key,
/// and the fingerprint of the request it was first sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedRequest {
    pub customer_id: i64,
    pub client_id: String,
    pub key: String,
    pub fingerprint: String,
}

/// The right to answer a key, held by one attempt while it runs. Only the holder of the
/// current claim can store an answer or release the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyClaim {
    pub customer_id: i64,
    pub client_id: String,
    pub key: String,
    pub token: Uuid,
}

/// The answer stored for a key, repeated to every retry: status, the headers that go with
/// it (`Location`, `ETag`), and the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The key is this attempt's to answer: it was new, or the attempt holding it stopped
    /// renewing its claim (its server died) and the claim ran out.
    Claimed(KeyClaim),
    /// The key was answered before: this is the answer.
    Answered(StoredAnswer),
    /// The key was first sent with another request.
    Reused,
    /// Another attempt with this key is running.
    InFlight,
}

#[async_trait]
pub trait IdempotencyKeys: Send + Sync {
    /// Claims `request`'s key for `lease` (timed by the database's clock, which every
    /// server sharing it reads alike), or says why not.
    async fn claim(
        &self,
        request: &KeyedRequest,
        lease: Duration,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Gives a claimed key up without an answer, so the next request with it runs afresh.
    /// Nothing happens if the claim is no longer current.
    async fn release(&self, claim: &KeyClaim) -> Result<(), StoreError>;

    /// Deletes the keys first seen more than `older_than` ago (by the database's clock,
    /// which also dated them); returns how many.
    async fn purge(&self, older_than: Duration) -> Result<u64, StoreError>;
}
