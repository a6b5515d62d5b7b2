//! Statements on the OAuth client registry.

use crate::error::StoreError;
use crate::store::clients::{parse_client_id, ClientRecord};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

/// The registry's columns, in the order an insert binds them.
const CLIENT_COLUMNS: &str =
    "client_id, name, scopes, customer_ids, secret_hash, created_at, revoked_at";

/// Statements on the client registry.
#[async_trait]
pub trait ClientSql: Database {
    async fn insert_client(pool: &Pool<Self>, client: &ClientRecord) -> Result<(), StoreError>;

    async fn select_clients(
        pool: &Pool<Self>,
        id: Option<uuid::Uuid>,
    ) -> Result<Vec<ClientRecord>, StoreError>;

    async fn revoke_client(
        pool: &Pool<Self>,
        id: uuid::Uuid,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

#[async_trait]
impl<DB> ClientSql for DB
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<DateTime<Utc>>: Encode<'q, DB> + Type<DB>,
    for<'q> Json<&'q RawValue>: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> DateTime<Utc>: Decode<'r, DB> + Type<DB>,
    for<'r> Option<DateTime<Utc>>: Decode<'r, DB> + Type<DB>,
    for<'r> Json<Vec<String>>: Decode<'r, DB> + Type<DB>,
    for<'r> Json<Vec<i64>>: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    async fn insert_client(pool: &Pool<Self>, client: &ClientRecord) -> Result<(), StoreError> {
        let scopes = serde_json::value::to_raw_value(&client.scopes)
            .map_err(|e| StoreError::Corrupt(format!("client scopes: {e}")))?;
        let customers = serde_json::value::to_raw_value(&client.customer_ids)
            .map_err(|e| StoreError::Corrupt(format!("client customers: {e}")))?;
        let sql = format!(
            "INSERT INTO auth_clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        );
        sqlx::query(&sql)
            .bind(client.id.to_string())
            .bind(client.name.as_str())
            .bind(Json(&*scopes))
            .bind(Json(&*customers))
            .bind(client.secret_hash.as_str())
            .bind(client.created_at)
            .bind(client.revoked_at)
            .execute(pool)
            .await?;
        Ok(())
    }

    async fn select_clients(
        pool: &Pool<Self>,
        id: Option<uuid::Uuid>,
    ) -> Result<Vec<ClientRecord>, StoreError> {
        let rows = match id {
            Some(id) => {
                sqlx::query(&format!(
                    "SELECT {CLIENT_COLUMNS} FROM auth_clients WHERE client_id = $1"
                ))
                .bind(id.to_string())
                .fetch_all(pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {CLIENT_COLUMNS} FROM auth_clients ORDER BY created_at, client_id"
                ))
                .fetch_all(pool)
                .await?
            }
        };
        let mut clients = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("client_id")?;
            let scopes: Json<Vec<String>> = row.try_get("scopes")?;
            let customer_ids: Json<Vec<i64>> = row.try_get("customer_ids")?;
            clients.push(ClientRecord {
                id: parse_client_id(&id)?,
                name: row.try_get("name")?,
                scopes: scopes.0,
                customer_ids: customer_ids.0,
                secret_hash: row.try_get("secret_hash")?,
                created_at: row.try_get("created_at")?,
                revoked_at: row.try_get("revoked_at")?,
            });
        }
        Ok(clients)
    }

    async fn revoke_client(
        pool: &Pool<Self>,
        id: uuid::Uuid,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE auth_clients SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL",
        )
        .bind(id.to_string())
        .bind(at)
        .execute(pool)
        .await?;
        Ok(())
    }
}
