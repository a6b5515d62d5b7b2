//! The PostgreSQL store (production).

use super::StoreError;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct PostgresJobStore {
    pool: PgPool,
    delegate: Arc<postgres_es::PostgresEventRepository>,
}

impl PostgresJobStore {
    pub async fn connect(database_url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect(database_url)
            .await?;
        Self::with_pool(pool).await
    }

    /// Uses an existing pool, applying pending migrations.
    pub async fn with_pool(pool: PgPool) -> Result<Self, StoreError> {
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(Self {
            delegate: Arc::new(postgres_es::PostgresEventRepository::new(pool.clone())),
            pool,
        })
    }

    /// PostgreSQL runs writers side by side; its row locks order them.
    async fn exclusive_writer(&self) -> Option<()> {
        None
    }
}

job_store!(PostgresJobStore, sqlx::Postgres);
client_registry!(PostgresJobStore, sqlx::Postgres);
