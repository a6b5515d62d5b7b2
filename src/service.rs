//! The application service between HTTP and the stores: runs commands through the `Job`
//! aggregate (cqrs-es) with bounded retries on optimistic-concurrency conflicts, and answers
//! queries from the projection. Handlers only ever see the two narrow interfaces
//! [`JobCommands`] and [`JobQueries`], never which backend is behind them. Failures are
//! [`ServiceError`]s; what they look like to a client is the HTTP layer's business.

use async_trait::async_trait;
use cqrs_es::persist::{PersistedEventRepository, PersistedEventStore};
use cqrs_es::{AggregateError, CqrsFramework};
use domain::values::CustomerId;
use domain::{Job, JobCommand, JobError, JobServices};
use projections::{EventMetadata, JobQueries, JobStore, JobView, StoreError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why the service could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No such job for this customer (another customer's job included).
    #[error("the job does not exist")]
    NotFound,
    /// The aggregate refused the command.
    #[error(transparent)]
    Rule(#[from] JobError),
    /// Concurrent changes kept winning after every retry.
    #[error("conflict")]
    Conflict,
    /// The store cannot be reached right now: worth retrying.
    #[error("store unavailable")]
    Unavailable(BoxError),
    /// Any other failure of the store or the event framework: a bug or corrupt data.
    #[error("internal error: {0}")]
    Internal(BoxError),
}

impl ServiceError {
    /// Sorts a failure of the store by whether it is worth retrying. Errors may come boxed
    /// (cqrs-es, authentication), so the classification, which lives in `projections`,
    /// walks the cause chain.
    pub fn store(error: impl Into<BoxError>) -> Self {
        let error = error.into();
        if projections::store_unavailable(error.as_ref()) {
            ServiceError::Unavailable(error)
        } else {
            ServiceError::Internal(error)
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        ServiceError::store(error)
    }
}

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

/// How long a command keeps retrying while other writers keep winning the race for the same
/// job. Writers in this process queue on [`JobLocks`] and never race each other, so this
/// budget is only spent on writers in other processes sharing the store.
const RETRY_BUDGET: Duration = Duration::from_secs(5);

/// Per-job mutual exclusion for the writers of this process, striped so memory stays fixed:
/// two jobs may share a stripe (and briefly wait for each other), one job never has two.
/// Without it, N concurrent writers of one job would each lose up to N−1 races.
struct JobLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl JobLocks {
    const STRIPES: usize = 256;

    fn new() -> Self {
        Self {
            stripes: (0..Self::STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    async fn lock(&self, job_id: Uuid) -> tokio::sync::MutexGuard<'_, ()> {
        // The low bits of a v7 id are random, so they spread jobs evenly over the stripes.
        let stripe = (job_id.as_u128() % Self::STRIPES as u128) as usize;
        self.stripes[stripe].lock().await
    }
}

pub struct JobService {
    commands: Arc<dyn JobCommands>,
    queries: Arc<dyn JobQueries>,
    locks: JobLocks,
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
            locks: JobLocks::new(),
        }
    }

    pub fn queries(&self) -> &dyn JobQueries {
        self.queries.as_ref()
    }

    /// The customer's job; [`ServiceError::NotFound`] for another customer's job too.
    pub async fn require_job(
        &self,
        customer: CustomerId,
        job_id: Uuid,
    ) -> Result<JobView, ServiceError> {
        self.queries
            .job(customer.get(), job_id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// Creates a job with a fresh (time-ordered) id.
    pub async fn create(
        &self,
        command: JobCommand,
        metadata: &EventMetadata,
    ) -> Result<Uuid, ServiceError> {
        let job_id = Uuid::now_v7();
        self.run(job_id, command, metadata).await?;
        Ok(job_id)
    }

    /// Runs a command against a job, counting its outcome by kind (`jobs_commands_total`).
    /// The caller has checked, with [`JobService::require_job`], that the job is the
    /// customer's: the command itself carries no customer.
    pub async fn run(
        &self,
        job_id: Uuid,
        command: JobCommand,
        metadata: &EventMetadata,
    ) -> Result<(), ServiceError> {
        let name = command.name();
        let result = self.run_with_retries(job_id, command, metadata).await;
        let outcome = match &result {
            Ok(()) => "accepted",
            Err(ServiceError::Rule(_)) => "refused",
            Err(ServiceError::Conflict) => "conflict",
            Err(ServiceError::Unavailable(_)) => "unavailable",
            Err(_) => "error",
        };
        metrics::counter!("jobs_commands_total", "command" => name, "outcome" => outcome)
            .increment(1);
        result
    }

    async fn run_with_retries(
        &self,
        job_id: Uuid,
        command: JobCommand,
        metadata: &EventMetadata,
    ) -> Result<(), ServiceError> {
        let metadata = metadata.to_map();
        let _exclusive = self.locks.lock(job_id).await;
        let deadline = tokio::time::Instant::now() + RETRY_BUDGET;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .commands
                .execute(job_id, command.clone(), metadata.clone())
                .await
            {
                Ok(()) => return Ok(()),
                Err(AggregateError::UserError(error)) => return Err(ServiceError::Rule(error)),
                Err(AggregateError::AggregateConflict) => {
                    let pause = backoff(attempt);
                    if tokio::time::Instant::now() + pause > deadline {
                        return Err(ServiceError::Conflict);
                    }
                    tracing::debug!(%job_id, attempt, "concurrent write won; retrying command");
                    metrics::counter!("jobs_command_retries_total", "command" => command.name())
                        .increment(1);
                    tokio::time::sleep(pause).await;
                }
                Err(AggregateError::DatabaseConnectionError(error))
                | Err(AggregateError::DeserializationError(error))
                | Err(AggregateError::UnexpectedError(error)) => {
                    return Err(ServiceError::store(error))
                }
            }
        }
    }
}

/// Capped exponential backoff with full jitter, so racing writers spread out instead of
/// colliding again in lockstep.
fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = 2u64.saturating_pow(attempt.min(8)); // 2 ms … 256 ms
    Duration::from_millis(rand::random_range(1..=ceiling_ms))
}
