//! The read side's interface: every lookup the HTTP layer makes, scoped to a customer.
//! `read.rs` implements it for both stores.

use crate::error::StoreError;
use crate::log::LoggedEvent;
use crate::model::paging::{Direction, JobFilter, JobKey, Page, PageRequest, SequencePage};
use crate::model::view::{JobView, StatusHistoryEntry};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// One stored event as the audit endpoint shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub recorded_at: DateTime<Utc>,
    /// The event's fields, e.g. `{"reason": "…", "occurredAt": "…"}` for `JobCancelled`.
    pub payload: serde_json::Value,
    /// Who acted (`clientId`, with token `tokenId`), for which customer (`customerId`), in
    /// which request (`requestId`).
    pub metadata: serde_json::Value,
}

impl StoredEvent {
    /// The audit endpoint's view of an event read from the log.
    pub fn from_logged(event: &LoggedEvent) -> StoredEvent {
        StoredEvent {
            sequence: event.sequence,
            event_type: event.event_type.clone(),
            event_version: event.event_version.clone(),
            recorded_at: event.recorded_at,
            payload: event.data(),
            metadata: event.metadata_json(),
        }
    }
}

/// The read side. Every lookup is scoped to a customer: another customer's job is
/// indistinguishable from one that does not exist (`None`).
#[async_trait]
pub trait JobQueries: Send + Sync {
    async fn job(&self, customer_id: i64, job_id: Uuid) -> Result<Option<JobView>, StoreError>;

    /// A page of the customer's jobs: by page number, or after `after` (a cursor's key,
    /// for the filter's order) when given.
    async fn list_jobs(
        &self,
        customer_id: i64,
        filter: &JobFilter,
        page: PageRequest,
        after: Option<JobKey>,
    ) -> Result<Page<JobView>, StoreError>;

    async fn status_history(
        &self,
        customer_id: i64,
        job_id: Uuid,
        direction: Direction,
        page: SequencePage,
    ) -> Result<Option<Page<StatusHistoryEntry>>, StoreError>;

    /// A page of the job's events, bounded in count and in bytes.
    async fn events(
        &self,
        customer_id: i64,
        job_id: Uuid,
        page: SequencePage,
    ) -> Result<Option<Page<StoredEvent>>, StoreError>;

    /// Answers when the store does.
    async fn ping(&self) -> Result<(), StoreError>;
}
