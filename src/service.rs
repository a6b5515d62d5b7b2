//! The application service between HTTP and the stores. A command is one decision: load the
//! job (its snapshot and the events after it), check the request's `If-Match` condition,
//! decide with the `Job` aggregate (cqrs-es's `Aggregate::handle`), and append the events
//! with the projection rows, the next snapshot and the request's idempotency answer in one
//! transaction — retried, boundedly, when another writer appended first. The service also
//! claims idempotency keys and answers queries from the projection. It sees the store only
//! through narrow faces ([`CommandStore`], [`IdempotencyKeys`], [`JobQueries`]), never which
//! backend is behind them. Failures are [`ServiceError`]s; what they look like to a client
//! is the HTTP layer's business.

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::SerializedEvent;
use cqrs_es::{Aggregate, DomainEvent};
use domain::values::CustomerId;
use domain::{Job, JobCommand, JobError, JobEvent, JobServices};
use projections::idempotency::{
    ClaimOutcome, IdempotencyKeys, KeyClaim, KeyedRequest, StoredAnswer,
};
use projections::store::{AppendError, CommandStore, Commit, Held, JobSnapshot, SNAPSHOT_EVERY};
use projections::{EventMetadata, JobQueries, JobStore, JobView, StoreError};
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
    /// The request's idempotency key was first sent with another request.
    #[error("the idempotency key was used for another request")]
    KeyReused,
    /// Another attempt with the request's idempotency key is running.
    #[error("another request with the same idempotency key is in progress")]
    KeyInFlight,
    /// The store was lost while the command's transaction committed: it may or may not
    /// have been recorded.
    #[error("the outcome of the commit is unknown")]
    OutcomeUnknown(BoxError),
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

/// How one attempt at a command ended, short of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// Decided (and its events, if any, committed): the job's version after it.
    Done { version: JobVersion },
    /// The job's version was not one the condition admits: nothing was decided or written.
    Stale,
    /// Another writer appended to the job first: nothing was written; decide again.
    Raced,
}

/// A request's claimed idempotency key, and the answer the request gives for the job's id
/// and version after the command: the store keeps that answer with the command's events.
#[derive(Clone, Copy)]
pub struct Answering<'a> {
    pub claim: &'a KeyClaim,
    pub answer: &'a (dyn Fn(Uuid, JobVersion) -> StoredAnswer + Send + Sync),
}

/// What an idempotency key allows the request to do.
#[derive(Debug)]
pub enum KeyUse {
    /// Run: the key is this request's (pass the claim on with [`Answering`]).
    Run(KeyClaim),
    /// Answer again: the key was answered before, for the same request.
    Replay(StoredAnswer),
}

/// How long a claim on an idempotency key lasts. Should the server running the request die,
/// a retry runs it afresh once this has passed; until then a retry hears "in flight". A
/// request still running when its claim has run out and a retry has taken the key over
/// records nothing (the claim is checked in the transaction of its events), so it is safe
/// for this to be shorter than the request timeout.
pub const KEY_LEASE: Duration = Duration::from_secs(15);

/// Where a command's job comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loading {
    /// From the store: its snapshot and the events after it.
    Stored,
    /// Nowhere: the id was made for this command (a create), so the store has nothing of
    /// it and reading would cost two round trips for nothing. Should it somehow have
    /// something, the append meets it and the retry reads it.
    FreshId,
}

/// A job as a command is decided on.
struct LoadedJob {
    state: Job,
    version: JobVersion,
    /// How many snapshots the job has had.
    snapshots: i64,
}

/// How long a command keeps retrying while other writers keep winning the race for the same
/// job. Writers in this process queue on [`JobLocks`] and never race each other, so this
/// budget is only spent on writers in other processes sharing the store.
const RETRY_BUDGET: Duration = Duration::from_secs(5);

/// Per-job mutual exclusion for the writers of this process, striped so memory stays fixed:
/// two jobs may share a stripe (and briefly wait for each other), one job never has two.
/// Without it, N concurrent writers of one job would each lose up to N−1 races. A lock is
/// held from the load until the commit has an outcome, and travels with the commit: should
/// the request stop waiting (its client hung up, its timeout fired), the commit still holds
/// the job, so no second command on it is decided on the version that commit is about to
/// replace.
struct JobLocks {
    stripes: Vec<Arc<tokio::sync::Mutex<()>>>,
}

impl JobLocks {
    const STRIPES: usize = 256;

    fn new() -> Self {
        Self {
            stripes: (0..Self::STRIPES)
                .map(|_| Arc::new(tokio::sync::Mutex::new(())))
                .collect(),
        }
    }

    async fn lock(&self, job_id: Uuid) -> tokio::sync::OwnedMutexGuard<()> {
        // The low bits of a v7 id are random, so they spread jobs evenly over the stripes.
        let stripe = (job_id.as_u128() % Self::STRIPES as u128) as usize;
        self.stripes[stripe].clone().lock_owned().await
    }
}

/// Tells waiting readers of the log that a customer's events were committed by this
/// process. Readers of other customers are not woken into reading: each watches one
/// customer. (Commits of other servers sharing the database are not seen; readers also
/// poll, slowly, for those.)
#[derive(Clone)]
pub struct CommitSignal(tokio::sync::broadcast::Sender<i64>);

/// Commits a watcher may fall behind by before it just counts as woken.
const COMMIT_SIGNAL_BACKLOG: usize = 1024;

impl CommitSignal {
    fn new() -> Self {
        CommitSignal(tokio::sync::broadcast::channel(COMMIT_SIGNAL_BACKLOG).0)
    }

    fn committed(&self, customer: i64) {
        // No receiver is no error: nobody waits.
        let _ = self.0.send(customer);
    }

    /// Watches for the customer's commits from now on: take it before reading the log, so
    /// a commit between the read and the wait is not missed.
    pub fn watch(&self, customer: i64) -> CommitWatch {
        CommitWatch {
            commits: self.0.subscribe(),
            customer,
        }
    }
}

/// See [`CommitSignal::watch`].
pub struct CommitWatch {
    commits: tokio::sync::broadcast::Receiver<i64>,
    customer: i64,
}

impl CommitWatch {
    /// Completes once the customer has committed since the watch began (or when commits
    /// came too fast to tell, which is as good as woken).
    pub async fn committed(&mut self) {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match self.commits.recv().await {
                Ok(customer) if customer == self.customer => return,
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => std::future::pending().await,
            }
        }
    }
}

pub struct JobService {
    commands: Arc<dyn CommandStore>,
    keys: Arc<dyn IdempotencyKeys>,
    queries: Arc<dyn JobQueries>,
    log: Arc<dyn projections::log::EventLog>,
    services: JobServices,
    locks: JobLocks,
    /// Which customers' events this process commits, as it does: readers of the log (feed
    /// waiters, webhook deliverers) wait on it instead of polling hard.
    commits: CommitSignal,
}

impl JobService {
    pub fn new(store: &JobStore) -> Self {
        Self {
            commands: store.commands(),
            keys: store.idempotency_keys(),
            queries: store.queries(),
            log: store.log(),
            services: JobServices::system_clock(),
            locks: JobLocks::new(),
            commits: CommitSignal::new(),
        }
    }

    /// Told the customer of each command this process commits.
    pub fn commit_signal(&self) -> CommitSignal {
        self.commits.clone()
    }

    pub fn queries(&self) -> &dyn JobQueries {
        self.queries.as_ref()
    }

    /// The global event log, which the change feed reads.
    pub fn log(&self) -> &dyn projections::log::EventLog {
        self.log.as_ref()
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

    /// Claims a request's idempotency key: run the request, or give the key's stored
    /// answer again. [`ServiceError::KeyReused`] if the key came with another request,
    /// [`ServiceError::KeyInFlight`] while another attempt with it runs.
    pub async fn claim_key(&self, request: &KeyedRequest) -> Result<KeyUse, ServiceError> {
        let outcome = self.keys.claim(request, KEY_LEASE).await?;
        match outcome {
            ClaimOutcome::Claimed(claim) => Ok(KeyUse::Run(claim)),
            ClaimOutcome::Answered(answer) => Ok(KeyUse::Replay(answer)),
            ClaimOutcome::Reused => Err(ServiceError::KeyReused),
            ClaimOutcome::InFlight => Err(ServiceError::KeyInFlight),
        }
    }

    /// Gives up a claimed key after a request that stored no answer (it was refused or
    /// failed), so that a retry runs afresh. A claim that has an answer stays as it is.
    /// Returns whether the store could be told.
    pub async fn release_key(&self, claim: &KeyClaim) -> bool {
        match self.keys.release(claim).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(key = %claim.key, %error, "could not release an idempotency key yet");
                false
            }
        }
    }

    /// Keeps trying to release a claimed key while its claim lasts (after that, a retry
    /// takes the key over anyway).
    pub async fn release_key_eventually(&self, claim: KeyClaim) {
        let deadline = tokio::time::Instant::now() + KEY_LEASE;
        let mut attempt = 0;
        while tokio::time::Instant::now() < deadline {
            attempt += 1;
            tokio::time::sleep(backoff(attempt)).await;
            if self.release_key(&claim).await {
                return;
            }
        }
    }

    /// Deletes the idempotency keys first seen more than `retention` ago; returns how many.
    pub async fn purge_keys(&self, retention: Duration) -> Result<u64, ServiceError> {
        Ok(self.keys.purge(retention).await?)
    }

    /// Creates a job with a fresh (time-ordered) id; returns it and the job's version.
    pub async fn create(
        &self,
        command: JobCommand,
        metadata: &EventMetadata,
        answering: Option<Answering<'_>>,
    ) -> Result<(Uuid, JobVersion), ServiceError> {
        let job_id = Uuid::now_v7();
        let version = self
            .counted(job_id, command, None, metadata, answering, Loading::FreshId)
            .await?;
        Ok((job_id, version))
    }

    /// Runs a command against a job, counting its outcome by kind (`jobs_commands_total`).
    /// The caller has checked, with [`JobService::require_job`], that the job is the
    /// customer's: the command itself carries no customer.
    /// With a `condition`, the command is decided only if the job's version satisfies it
    /// ([`ServiceError::PreconditionFailed`] otherwise). With `answering`, the request's
    /// answer is stored for its idempotency key in the transaction of the command's events.
    /// Returns the job's version after it.
    pub async fn run(
        &self,
        job_id: Uuid,
        command: JobCommand,
        condition: Option<&VersionCondition>,
        metadata: &EventMetadata,
        answering: Option<Answering<'_>>,
    ) -> Result<JobVersion, ServiceError> {
        self.counted(
            job_id,
            command,
            condition,
            metadata,
            answering,
            Loading::Stored,
        )
        .await
    }

    async fn counted(
        &self,
        job_id: Uuid,
        command: JobCommand,
        condition: Option<&VersionCondition>,
        metadata: &EventMetadata,
        answering: Option<Answering<'_>>,
        loading: Loading,
    ) -> Result<JobVersion, ServiceError> {
        let name = command.name();
        let result = self
            .run_with_retries(job_id, command, condition, metadata, answering, loading)
            .await;
        let outcome = match &result {
            Ok(_) => "accepted",
            Err(ServiceError::Rule(_)) => "refused",
            Err(ServiceError::Conflict) => "conflict",
            Err(ServiceError::PreconditionFailed) => "precondition-failed",
            Err(ServiceError::KeyInFlight) => "key-taken-over",
            Err(ServiceError::Unavailable(_)) => "unavailable",
            Err(ServiceError::OutcomeUnknown(_)) => "outcome-unknown",
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
        answering: Option<Answering<'_>>,
        mut loading: Loading,
    ) -> Result<JobVersion, ServiceError> {
        let customer = metadata.customer_id;
        let metadata = serde_json::to_value(metadata.to_map())
            .map_err(|error| ServiceError::Internal(Box::new(error)))?;
        let deadline = tokio::time::Instant::now() + RETRY_BUDGET;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self
                .attempt(
                    job_id,
                    command.clone(),
                    condition,
                    &metadata,
                    answering,
                    loading,
                )
                .await?;
            // Whatever raced this attempt is in the store now: read it.
            loading = Loading::Stored;
            match outcome {
                Attempt::Done { version } => {
                    self.commits.committed(customer);
                    return Ok(version);
                }
                Attempt::Stale => return Err(ServiceError::PreconditionFailed),
                Attempt::Raced => {
                    let pause = backoff(attempt);
                    if tokio::time::Instant::now() + pause > deadline {
                        return Err(ServiceError::Conflict);
                    }
                    tracing::debug!(%job_id, attempt, "concurrent write won; retrying command");
                    metrics::counter!("jobs_command_retries_total", "command" => command.name())
                        .increment(1);
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// One attempt: load the job, check the condition against the version loaded, decide
    /// (cqrs-es's `Aggregate::handle`), and append — which succeeds only if that version is
    /// still the job's last, so check and write are one decision. All under the job's lock in
    /// this process.
    async fn attempt(
        &self,
        job_id: Uuid,
        command: JobCommand,
        condition: Option<&VersionCondition>,
        metadata: &serde_json::Value,
        answering: Option<Answering<'_>>,
        loading: Loading,
    ) -> Result<Attempt, ServiceError> {
        // Held until the commit has an outcome (it travels with the commit).
        let exclusive = self.locks.lock(job_id).await;
        let id = job_id.to_string();
        let LoadedJob {
            mut state,
            version,
            snapshots,
        } = match loading {
            Loading::Stored => self.load(&id).await?,
            Loading::FreshId => LoadedJob {
                state: Job::default(),
                version: 0,
                snapshots: 0,
            },
        };
        if condition.is_some_and(|condition| !condition.admits(version)) {
            return Ok(Attempt::Stale);
        }
        let sink = EventSink::default();
        // The sink applies each event to `state` as it is written: `state` is the job after
        // the command.
        state.handle(command, &self.services, &sink).await?;
        let events = sink.collect().await;
        let new_version = version + JobVersion::try_from(events.len()).unwrap_or(0);
        let serialized = events
            .iter()
            .zip(version + 1..)
            .map(|(event, sequence)| serialize_event(&id, sequence, event, metadata))
            .collect::<Result<Vec<_>, _>>()?;
        // A snapshot whenever the version passes a multiple of SNAPSHOT_EVERY: loading
        // then reads fewer than that many events after it.
        let every = SNAPSHOT_EVERY as JobVersion;
        let snapshot = if new_version / every > version / every {
            Some(JobSnapshot {
                last_sequence: new_version,
                number: snapshots + 1,
                state: serde_json::to_value(&state)
                    .map_err(|error| ServiceError::Internal(Box::new(error)))?,
            })
        } else {
            None
        };
        let answer = answering.map(|answering| {
            (
                answering.claim.clone(),
                (answering.answer)(job_id, new_version),
            )
        });
        let commit = Commit {
            job_id: id,
            events: serialized,
            snapshot,
            answer,
            held: Some(Held::new(exclusive)),
        };
        match self.commands.append(commit).await {
            Ok(()) => Ok(Attempt::Done {
                version: new_version,
            }),
            Err(AppendError::Conflict) => Ok(Attempt::Raced),
            Err(AppendError::ClaimLost) => Err(ServiceError::KeyInFlight),
            Err(AppendError::OutcomeUnknown(error)) => {
                Err(ServiceError::OutcomeUnknown(Box::new(error)))
            }
            Err(AppendError::Store(error)) => Err(error.into()),
        }
    }

    /// The job from its latest snapshot and the events after it. A snapshot that no longer
    /// reads as a job (an older release's shape) is replayed around, never trusted; the next
    /// snapshot replaces it.
    async fn load(&self, job_id: &str) -> Result<LoadedJob, ServiceError> {
        let stored = self.commands.load(job_id).await?;
        let (mut state, mut version, snapshots, events) = match stored.snapshot {
            Some(snapshot) => match serde_json::from_value::<Job>(snapshot.state) {
                Ok(state) => (
                    state,
                    snapshot.last_sequence,
                    snapshot.number,
                    stored.events,
                ),
                Err(error) => {
                    tracing::warn!(%job_id, %error, "a snapshot that no longer reads; replaying the job's events");
                    let events = self
                        .commands
                        .events_after(job_id, 0)
                        .await?
                        .into_iter()
                        .map(|event| (event.sequence as i64, event.payload))
                        .collect();
                    (Job::default(), 0, snapshot.number, events)
                }
            },
            None => (Job::default(), 0, 0, stored.events),
        };
        for (sequence, payload) in events {
            let payload: JobEvent = serde_json::from_value(payload).map_err(|error| {
                ServiceError::Internal(
                    format!("event {sequence} of job {job_id} does not read: {error}").into(),
                )
            })?;
            state.apply(payload);
            version = sequence;
        }
        Ok(LoadedJob {
            state,
            version,
            snapshots,
        })
    }
}

/// An event as the store records it: the job's id, its sequence, its type and version (for
/// upcasting one day), its payload and the request's metadata.
fn serialize_event(
    job_id: &str,
    sequence: JobVersion,
    event: &JobEvent,
    metadata: &serde_json::Value,
) -> Result<SerializedEvent, ServiceError> {
    Ok(SerializedEvent {
        aggregate_id: job_id.to_owned(),
        sequence: usize::try_from(sequence)
            .map_err(|error| ServiceError::Internal(Box::new(error)))?,
        aggregate_type: domain::AGGREGATE_TYPE.to_owned(),
        event_type: event.event_type(),
        event_version: event.event_version(),
        payload: serde_json::to_value(event)
            .map_err(|error| ServiceError::Internal(Box::new(error)))?,
        metadata: metadata.clone(),
    })
}

/// Capped exponential backoff with full jitter, so racing writers spread out instead of
/// colliding again in lockstep.
fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = 2u64.saturating_pow(attempt.min(8)); // 2 ms … 256 ms
    Duration::from_millis(rand::random_range(1..=ceiling_ms))
}
