//! The application service between HTTP and the stores: runs commands through the `Job`
//! aggregate (cqrs-es) with bounded retries on optimistic-concurrency conflicts, and answers
//! queries from the projection. Handlers only ever see the two narrow interfaces
//! [`JobCommands`] and [`JobQueries`], never which backend is behind them. Failures are
//! [`ServiceError`]s; what they look like to a client is the HTTP layer's business.

use async_trait::async_trait;
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{PersistedEventRepository, PersistedEventStore};
use cqrs_es::{Aggregate, AggregateContext, AggregateError, EventStore};
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
    /// The job's version is not one the request's condition admits (`If-Match`).
    #[error("the job's version is not the one the request was made for")]
    PreconditionFailed,
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

/// A job's version: the sequence number of its last event (what `ETag` carries).
pub type JobVersion = i64;

/// What a conditional write requires of the job's version (HTTP's `If-Match`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionCondition {
    /// Any version: the job must exist (`If-Match: *`).
    Any,
    /// One of these versions (possibly none, which no job satisfies).
    OneOf(Vec<JobVersion>),
}

impl VersionCondition {
    pub fn admits(&self, version: JobVersion) -> bool {
        match self {
            VersionCondition::Any => true,
            VersionCondition::OneOf(versions) => versions.contains(&version),
        }
    }
}

/// How a command ended, short of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandOutcome {
    /// Decided (and its events, if any, committed): the job's version after it.
    Done { version: JobVersion },
    /// The job's version was not one the condition admits: nothing was decided or written.
    Stale,
}

/// Runs one command against one job: load, check the condition, decide, append (with its
/// projection). The condition is checked against the version the command is decided on, and
/// the append succeeds only if that is still the last version, so check and write are one
/// decision.
#[async_trait]
pub trait JobCommands: Send + Sync {
    async fn execute(
        &self,
        job_id: Uuid,
        command: JobCommand,
        condition: Option<&VersionCondition>,
        metadata: HashMap<String, String>,
    ) -> Result<CommandOutcome, AggregateError<JobError>>;
}

/// cqrs-es's event store for jobs, with the clock and the other services commands use.
struct JobEventStore<R: PersistedEventRepository> {
    store: PersistedEventStore<R, Job>,
    services: JobServices,
}

#[async_trait]
impl<R> JobCommands for JobEventStore<R>
where
    R: PersistedEventRepository + 'static,
{
    async fn execute(
        &self,
        job_id: Uuid,
        command: JobCommand,
        condition: Option<&VersionCondition>,
        metadata: HashMap<String, String>,
    ) -> Result<CommandOutcome, AggregateError<JobError>> {
        let mut context = self.store.load_aggregate(&job_id.to_string()).await?;
        let loaded = to_version(context.current_sequence);
        if condition.is_some_and(|condition| !condition.admits(loaded)) {
            return Ok(CommandOutcome::Stale);
        }
        let sink = EventSink::default();
        context
            .aggregate()
            .handle(command, &self.services, &sink)
            .await
            .map_err(AggregateError::UserError)?;
        let committed = self
            .store
            .commit(sink.collect().await, context, metadata)
            .await?;
        let version = committed
            .last()
            .map_or(loaded, |event| to_version(event.sequence));
        Ok(CommandOutcome::Done { version })
    }
}

/// cqrs-es counts in `usize`, the stores and `ETag`s in `i64`; no job has 2^63 events.
fn to_version(sequence: usize) -> JobVersion {
    JobVersion::try_from(sequence).unwrap_or(JobVersion::MAX)
}

fn commands<R: PersistedEventRepository + 'static>(repository: R) -> Arc<dyn JobCommands> {
    Arc::new(JobEventStore {
        // Loading a job then costs its snapshot and the events since, not its whole history.
        store: PersistedEventStore::<R, Job>::new_snapshot_store(
            repository,
            projections::store::SNAPSHOT_EVERY,
        ),
        services: JobServices::system_clock(),
    })
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
            JobStore::Postgres(store) => commands(store.clone()),
            JobStore::Sqlite(store) => commands(store.clone()),
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

    /// Creates a job with a fresh (time-ordered) id; returns it and the job's version.
    pub async fn create(
        &self,
        command: JobCommand,
        metadata: &EventMetadata,
    ) -> Result<(Uuid, JobVersion), ServiceError> {
        let job_id = Uuid::now_v7();
        let version = self.run(job_id, command, None, metadata).await?;
        Ok((job_id, version))
    }

    /// Runs a command against a job, counting its outcome by kind (`jobs_commands_total`).
    /// The caller has checked, with [`JobService::require_job`], that the job is the
    /// customer's: the command itself carries no customer.
    /// With a `condition`, the command is decided only if the job's version satisfies it
    /// ([`ServiceError::PreconditionFailed`] otherwise). Returns the job's version after it.
    pub async fn run(
        &self,
        job_id: Uuid,
        command: JobCommand,
        condition: Option<&VersionCondition>,
        metadata: &EventMetadata,
    ) -> Result<JobVersion, ServiceError> {
        let name = command.name();
        let result = self
            .run_with_retries(job_id, command, condition, metadata)
            .await;
        let outcome = match &result {
            Ok(_) => "accepted",
            Err(ServiceError::Rule(_)) => "refused",
            Err(ServiceError::Conflict) => "conflict",
            Err(ServiceError::PreconditionFailed) => "precondition-failed",
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
        condition: Option<&VersionCondition>,
        metadata: &EventMetadata,
    ) -> Result<JobVersion, ServiceError> {
        let metadata = metadata.to_map();
        let _exclusive = self.locks.lock(job_id).await;
        let deadline = tokio::time::Instant::now() + RETRY_BUDGET;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .commands
                .execute(job_id, command.clone(), condition, metadata.clone())
                .await
            {
                Ok(CommandOutcome::Done { version }) => return Ok(version),
                Ok(CommandOutcome::Stale) => return Err(ServiceError::PreconditionFailed),
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
