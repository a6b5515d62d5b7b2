//! Managing the client registry: what `jobs-admin clients create | list | revoke` does. The
//! secret of a new client is returned once, here, and only its hash is stored.

use crate::auth::secrets::{generate_secret, HashError, SecretHasher};
use crate::auth::Scope;
use chrono::{DateTime, Utc};
use domain::values::CustomerId;
use projections::{ClientRecord, ClientRegistry, StoreError};
use uuid::Uuid;

/// Longest client name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum ClientAdminError {
    #[error("the client name must not be blank")]
    BlankName,
    #[error("the client name must be at most {MAX_NAME_CHARS} characters")]
    NameTooLong,
    #[error("the client name must not contain control characters")]
    NameControlCharacters,
    #[error("a client needs at least one scope")]
    NoScopes,
    #[error("a client needs at least one customer")]
    NoCustomers,
    #[error("customer ids are integers of at least 1; {0} is not")]
    InvalidCustomer(i64),
    #[error("no client has the id {0}")]
    NotFound(Uuid),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// A client just registered, with the secret that is shown this once.
pub struct CreatedClient {
    pub client: ClientRecord,
    pub secret: String,
}

/// Registers a client that may hold `scopes` and act for `customers` (both deduplicated).
pub async fn create_client(
    registry: &dyn ClientRegistry,
    hasher: &SecretHasher,
    name: &str,
    scopes: &[Scope],
    customers: &[i64],
) -> Result<CreatedClient, ClientAdminError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ClientAdminError::BlankName);
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ClientAdminError::NameTooLong);
    }
    if name.chars().any(char::is_control) {
        return Err(ClientAdminError::NameControlCharacters);
    }
    if scopes.is_empty() {
        return Err(ClientAdminError::NoScopes);
    }
    if customers.is_empty() {
        return Err(ClientAdminError::NoCustomers);
    }
    let mut customer_ids = Vec::with_capacity(customers.len());
    for &customer in customers {
        let id =
            CustomerId::parse(customer).map_err(|_| ClientAdminError::InvalidCustomer(customer))?;
        if !customer_ids.contains(&id.get()) {
            customer_ids.push(id.get());
        }
    }
    let scopes: Vec<String> = Scope::canonical(scopes)
        .iter()
        .map(|scope| scope.as_str().to_owned())
        .collect();
    let secret = generate_secret();
    let client = ClientRecord {
        id: Uuid::now_v7(),
        name: name.to_owned(),
        scopes,
        customer_ids,
        secret_hash: hasher.hash(secret.clone()).await?,
        created_at: domain::now(),
        revoked_at: None,
    };
    registry.register(&client).await?;
    Ok(CreatedClient { client, secret })
}

/// Revokes a client: its tokens stop working on their next use, and it gets no new ones.
/// Revoking twice keeps the first time. Returns the client as it now is.
pub async fn revoke_client(
    registry: &dyn ClientRegistry,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<ClientRecord, ClientAdminError> {
    registry
        .revoke(id, at)
        .await?
        .ok_or(ClientAdminError::NotFound(id))
}
