//! The registry of OAuth 2.0 clients (SPEC §2): who may ask for tokens, with which scopes,
//! for which customers. It lives beside the events in the same database, so the server and
//! the admin binary see one registry. Its statements are in `sql/clients.rs`, its implementation in
//! `read.rs`.

use crate::error::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One registered client. `secret_hash` is a PHC string (argon2id); the secret itself is
/// never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub id: Uuid,
    pub name: String,
    pub scopes: Vec<String>,
    pub customer_ids: Vec<i64>,
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ClientRecord {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

#[async_trait]
pub trait ClientRegistry: Send + Sync {
    async fn register(&self, client: &ClientRecord) -> Result<(), StoreError>;

    async fn client(&self, id: Uuid) -> Result<Option<ClientRecord>, StoreError>;

    /// Every client, oldest first.
    async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError>;

    /// Marks the client revoked at `at`; a client already revoked keeps its first time.
    /// `None` when no such client exists.
    async fn revoke(&self, id: Uuid, at: DateTime<Utc>)
        -> Result<Option<ClientRecord>, StoreError>;
}

/// A stored client id that is not a UUID: the row was not written by this service.
pub(super) fn parse_client_id(id: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(id).map_err(|_| StoreError::Corrupt(format!("client id {id:?} is not a UUID")))
}
