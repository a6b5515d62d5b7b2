//! The registry of OAuth 2.0 clients (SPEC §2): who may ask for tokens, with which scopes,
//! for which customers. It lives beside the events in the same database, so the server and
//! the admin binary see one registry; `client_registry!` implements it for both stores from
//! one body, like `job_store!`.

use super::StoreError;
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

pub(super) const INSERT_CLIENT: &str = "INSERT INTO auth_clients \
     (client_id, name, scopes, customer_ids, secret_hash, created_at, revoked_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub(super) const SELECT_CLIENTS: &str = "SELECT client_id, name, scopes, customer_ids, \
     secret_hash, created_at, revoked_at FROM auth_clients";

pub(super) const REVOKE_CLIENT: &str =
    "UPDATE auth_clients SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL";

/// A stored client id that is not a UUID: the row was not written by this service.
pub(super) fn parse_client_id(id: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(id).map_err(|_| StoreError::Corrupt(format!("client id {id:?} is not a UUID")))
}

macro_rules! client_registry {
    ($store:ty, $db:ty) => {
        impl $store {
            fn client_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> Result<$crate::store::ClientRecord, $crate::store::StoreError> {
                use sqlx::Row;
                let id: String = row.try_get("client_id")?;
                let scopes: sqlx::types::Json<Vec<String>> = row.try_get("scopes")?;
                let customer_ids: sqlx::types::Json<Vec<i64>> = row.try_get("customer_ids")?;
                Ok($crate::store::ClientRecord {
                    id: super::clients::parse_client_id(&id)?,
                    name: row.try_get("name")?,
                    scopes: scopes.0,
                    customer_ids: customer_ids.0,
                    secret_hash: row.try_get("secret_hash")?,
                    created_at: row.try_get("created_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::ClientRegistry for $store {
            async fn register(
                &self,
                client: &$crate::store::ClientRecord,
            ) -> Result<(), $crate::store::StoreError> {
                let _writer = self.exclusive_writer().await;
                sqlx::query(super::clients::INSERT_CLIENT)
                    .bind(client.id.to_string())
                    .bind(&client.name)
                    .bind(sqlx::types::Json(&client.scopes))
                    .bind(sqlx::types::Json(&client.customer_ids))
                    .bind(&client.secret_hash)
                    .bind(client.created_at)
                    .bind(client.revoked_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn client(
                &self,
                id: uuid::Uuid,
            ) -> Result<Option<$crate::store::ClientRecord>, $crate::store::StoreError> {
                let sql = format!("{} WHERE client_id = $1", super::clients::SELECT_CLIENTS);
                let row = sqlx::query(&sql)
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::client_from_row).transpose()
            }

            async fn clients(
                &self,
            ) -> Result<Vec<$crate::store::ClientRecord>, $crate::store::StoreError> {
                let sql = format!(
                    "{} ORDER BY created_at, client_id",
                    super::clients::SELECT_CLIENTS
                );
                let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
                rows.iter().map(Self::client_from_row).collect()
            }

            async fn revoke(
                &self,
                id: uuid::Uuid,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<Option<$crate::store::ClientRecord>, $crate::store::StoreError> {
                {
                    let _writer = self.exclusive_writer().await;
                    sqlx::query(super::clients::REVOKE_CLIENT)
                        .bind(id.to_string())
                        .bind(at)
                        .execute(&self.pool)
                        .await?;
                }
                $crate::store::ClientRegistry::client(self, id).await
            }
        }
    };
}
