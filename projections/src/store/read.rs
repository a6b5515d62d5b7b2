//! The read side and the client registry (its writes too, which queue like the write
//! path's), generic over the backend: each lookup is one of
//! the shared statements in `sql/`, scoped to the caller's customer.

use super::backend::{Backend, Store};
use super::clients::{ClientRecord, ClientRegistry};
use super::queries::{JobQueries, StoredEvent};
use super::sql::{ClientSql, JobSql, LogSql};
use crate::error::StoreError;
use crate::model::paging::{Direction, EventPageRequest, JobFilter, Page, PageRequest};
use crate::model::view::{JobView, StatusHistoryEntry};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[async_trait]
impl<B: Backend> JobQueries for Store<B> {
    async fn job(&self, customer_id: i64, job_id: Uuid) -> Result<Option<JobView>, StoreError> {
        B::Db::job(&self.pool, customer_id, &job_id.to_string()).await
    }

    async fn list_jobs(
        &self,
        customer_id: i64,
        filter: &JobFilter,
        page: PageRequest,
    ) -> Result<Page<JobView>, StoreError> {
        let rows = B::Db::list_jobs(&self.pool, customer_id, filter, page).await?;
        Ok(page.into_page(rows))
    }

    async fn status_history(
        &self,
        customer_id: i64,
        job_id: Uuid,
        direction: Direction,
        page: PageRequest,
    ) -> Result<Option<Page<StatusHistoryEntry>>, StoreError> {
        if self.job(customer_id, job_id).await?.is_none() {
            return Ok(None);
        }
        let entries =
            B::Db::status_history(&self.pool, &job_id.to_string(), direction, page).await?;
        Ok(Some(page.into_page(entries)))
    }

    async fn events(
        &self,
        customer_id: i64,
        job_id: Uuid,
        page: EventPageRequest,
    ) -> Result<Option<Page<StoredEvent>>, StoreError> {
        if self.job(customer_id, job_id).await?.is_none() {
            return Ok(None);
        }
        let (events, cut) = B::Db::aggregate_events(
            &self.pool,
            B::TRANSACTION,
            domain::AGGREGATE_TYPE,
            &job_id.to_string(),
            page.after(),
            page.page.fetch_limit(),
            page.offset(),
            EventPageRequest::MAX_BYTES,
        )
        .await?;
        let events = events.iter().map(StoredEvent::from_logged).collect();
        Ok(Some(page.into_page(events, cut)))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        B::Db::ping(&self.pool).await
    }
}

#[async_trait]
impl<B: Backend> ClientRegistry for Store<B> {
    async fn register(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let _writer = self.backend.exclusive_writer().await;
        B::Db::insert_client(&self.pool, client).await
    }

    async fn client(&self, id: Uuid) -> Result<Option<ClientRecord>, StoreError> {
        Ok(B::Db::select_clients(&self.pool, Some(id))
            .await?
            .into_iter()
            .next())
    }

    async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        B::Db::select_clients(&self.pool, None).await
    }

    async fn revoke(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Option<ClientRecord>, StoreError> {
        {
            let _writer = self.backend.exclusive_writer().await;
            B::Db::revoke_client(&self.pool, id, at).await?;
        }
        self.client(id).await
    }
}
