//! The application service between HTTP and the stores: runs commands through the `Job`
//! aggregate (cqrs-es) with bounded retries on optimistic-concurrency conflicts, and answers
//! queries from the projection. Handlers only ever see the two narrow interfaces
//! [`JobCommands`] and [`JobQueries`], never which backend is behind them.

use crate::http::problem::ApiError;
use async_trait::async_trait;
use cqrs_es::persist::{PersistedEventRepository, PersistedEventStore};
use cqrs_es::{AggregateError, CqrsFramework};
use domain::values::CustomerId;
use domain::{Job, JobCommand, JobError, JobServices};
use projections::{EventMetadata, JobQueries, JobStore, JobView};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Runs one command against one job: load, decide, append (with its projection).
#[async_trait]
pub trait JobCommands: Send + Sync {
    async fn execute(
        &self,
        job_id: Uuid,
        command: JobCommand,
        metadata: HashMap<String, String>,
    ) -> Result<(), AggregateError<JobError>>;
}

#[async_trait]
impl<R> JobCommands for CqrsFramework<Job, PersistedEventStore<R, Job>>
where
    R: PersistedEventRepository + 'static,
{
    async fn execute(
        &self,
        job_id: Uuid,
        command: JobCommand,
        metadata: HashMap<String, String>,
    ) -> Result<(), AggregateError<JobError>> {
        self.execute_with_metadata(&job_id.to_string(), command, metadata)
            .await
    }
}

fn framework<R: PersistedEventRepository + 'static>(repository: R) -> Arc<dyn JobCommands> {
    Arc::new(CqrsFramework::new(
        PersistedEventStore::<R, Job>::new_event_store(repository),
        vec![],
        JobServices::system_clock(),
    ))
}

/// How many times a command is tried when other writers keep appending to the same job.
/// Each retry reloads the job, so a retry only fails again if yet another write won.
const MAX_ATTEMPTS: u32 = 12;

pub struct JobService {
    commands: Arc<dyn JobCommands>,
    queries: Arc<dyn JobQueries>,
}

impl JobService {
    pub fn new(store: &JobStore) -> Self {
        let commands = match store {
            JobStore::Postgres(store) => framework(store.clone()),
            JobStore::Sqlite(store) => framework(store.clone()),
        };
        Self {
            commands,
            queries: store.queries(),
        }
    }

    pub fn queries(&self) -> &dyn JobQueries {
        self.queries.as_ref()
    }

    /// The customer's job, or 404 — for another customer's job too.
    pub async fn require_job(
        &self,
        customer: CustomerId,
        job_id: Uuid,
    ) -> Result<JobView, ApiError> {
        self.queries
            .job(customer.get(), job_id)
            .await
            .map_err(ApiError::internal)?
            .ok_or(ApiError::JobNotFound)
    }

    /// Creates a job with a fresh (time-ordered) id.
    pub async fn create(
        &self,
        command: JobCommand,
        metadata: &EventMetadata,
    ) -> Result<Uuid, ApiError> {
        let job_id = Uuid::now_v7();
        self.run(job_id, command, metadata).await?;
        Ok(job_id)
    }

    /// Changes an existing job of the customer. Existence is checked before the command's
    /// own validation is looked at, so the order of answers is 404 before 422 (SPEC §2).
    pub async fn change(
        &self,
        customer: CustomerId,
        job_id: Uuid,
        command: Result<JobCommand, ApiError>,
        metadata: &EventMetadata,
    ) -> Result<(), ApiError> {
        self.require_job(customer, job_id).await?;
        self.run(job_id, command?, metadata).await
    }

    async fn run(
        &self,
        job_id: Uuid,
        command: JobCommand,
        metadata: &EventMetadata,
    ) -> Result<(), ApiError> {
        let metadata = metadata.to_map();
        for attempt in 1..=MAX_ATTEMPTS {
            match self
                .commands
                .execute(job_id, command.clone(), metadata.clone())
                .await
            {
                Ok(()) => return Ok(()),
                Err(AggregateError::UserError(error)) => return Err(ApiError::Rule(error)),
                Err(AggregateError::AggregateConflict) => {
                    tracing::debug!(%job_id, attempt, "concurrent write won; retrying command");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(AggregateError::DatabaseConnectionError(error)) => {
                    tracing::warn!(%job_id, error = %error, "store unreachable");
                    return Err(ApiError::Unavailable);
                }
                Err(AggregateError::DeserializationError(error))
                | Err(AggregateError::UnexpectedError(error)) => {
                    return Err(ApiError::Internal(error))
                }
            }
        }
        Err(ApiError::Conflict)
    }
}

/// A short, growing, jittered pause so racing writers do not collide again in lockstep.
fn backoff(attempt: u32) -> Duration {
    let base_ms = u64::from(attempt.min(6)) * 2;
    Duration::from_millis(base_ms + rand::random_range(0..=base_ms))
}
