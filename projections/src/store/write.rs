//! The write side, generic over the backend: what the service needs to decide a command
//! on a job (its latest snapshot and the events after it) and to record the decision — the
//! command's events, the job's projection rows, its new snapshot, and the answer kept for
//! the request's idempotency key — in one transaction: either the command happened, every
//! read shows it and a retry of it gets its answer, or none of that. Commands that arrive
//! together share that transaction (group commit, see `group.rs`): each is still decided
//! alone and succeeds or fails alone — one whose job moved on, or whose key was taken over,
//! is left out of the group, which is written again without it.

use super::backend::{Backend, Store};
use super::group::GroupQueue;
use super::rows::ProjectionTables;
use super::sql::{Connection, JobSql, KeySql};
use crate::error::StoreError;
use crate::idempotency::{KeyClaim, StoredAnswer};
use crate::model::fold::{fold_events, unseen_jobs, EventRow};
use crate::model::metadata::EventMetadata;
use crate::model::view::{JobView, SummaryDocument};
use async_trait::async_trait;
use cqrs_es::persist::{PersistedEventRepository, PersistenceError, SerializedEvent};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::oneshot;

/// A job's state as of one of its events, stored so that loading the job reads it and the
/// events after it instead of its whole history.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSnapshot {
    /// The sequence of the last event the state includes.
    pub last_sequence: i64,
    /// How many snapshots the job has had, this one included.
    pub number: i64,
    pub state: serde_json::Value,
}

/// A job as stored: its latest snapshot, if any, and its events after it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredJob {
    pub snapshot: Option<JobSnapshot>,
    /// Each event's sequence and payload, in order.
    pub events: Vec<(i64, serde_json::Value)>,
}

/// One decided command, to record atomically.
#[derive(Debug)]
pub struct Commit {
    pub job_id: String,
    /// The command's events, numbered on from the job's version it was decided on (none
    /// for a command that changed nothing).
    pub events: Vec<SerializedEvent>,
    /// The job's state after the events, when it is time for a new snapshot.
    pub snapshot: Option<JobSnapshot>,
    /// The answer to keep for the request's idempotency key, which the claim must still
    /// hold.
    pub answer: Option<(KeyClaim, StoredAnswer)>,
    /// What the caller holds until the commit has an outcome (its lock on the job), kept
    /// with the commit so that a caller that stops waiting does not let it go early.
    pub held: Option<Held>,
}

/// Something held while a commit waits and is written, released once it has an outcome.
pub struct Held(#[allow(dead_code)] Box<dyn Send + Sync>);

impl Held {
    pub fn new(value: impl Send + Sync + 'static) -> Self {
        Held(Box::new(value))
    }
}

impl std::fmt::Debug for Held {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Held")
    }
}

impl Commit {
    fn writes_nothing(&self) -> bool {
        self.events.is_empty() && self.answer.is_none()
    }
}

/// Why a commit recorded nothing.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another writer appended to the job first: decide again on the new version.
    #[error("another writer changed the job first")]
    Conflict,
    /// The idempotency key's claim ran out and another attempt took the key over.
    #[error("another attempt took over the request's idempotency key")]
    ClaimLost,
    /// The database was lost while committing: the commit may or may not have happened.
    #[error("the outcome of the commit is unknown: {0}")]
    OutcomeUnknown(#[source] StoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the command side needs of a store.
#[async_trait]
pub trait CommandStore: Send + Sync {
    /// The job's latest snapshot and the events after it, in one round trip.
    async fn load(&self, job_id: &str) -> Result<StoredJob, StoreError>;

    /// The job's events after `sequence`, in order (to replay around a snapshot that no
    /// longer reads).
    async fn events_after(
        &self,
        job_id: &str,
        sequence: i64,
    ) -> Result<Vec<SerializedEvent>, StoreError>;

    /// Records a decided command, all or nothing, and returns once it is durable. Commits
    /// that arrive together share a transaction (group commit); each still succeeds or
    /// fails on its own.
    async fn append(&self, commit: Commit) -> Result<(), AppendError>;
}

#[async_trait]
impl<B: Backend> CommandStore for Store<B> {
    /// From the newest snapshot (one is kept per job; the newest wins should there be more).
    async fn load(&self, job_id: &str) -> Result<StoredJob, StoreError> {
        let mut connection = self.connections.take(&self.pool).await?;
        let rows = B::Db::select_aggregate(&mut connection, domain::AGGREGATE_TYPE, job_id).await?;
        self.connections.keep(connection);
        let mut job = StoredJob::default();
        for (sequence, snapshot_number, payload) in rows {
            match snapshot_number {
                Some(number) => {
                    job.snapshot = Some(JobSnapshot {
                        last_sequence: sequence,
                        number,
                        state: payload,
                    })
                }
                None => job.events.push((sequence, payload)),
            }
        }
        Ok(job)
    }

    async fn events_after(
        &self,
        job_id: &str,
        sequence: i64,
    ) -> Result<Vec<SerializedEvent>, StoreError> {
        let after = usize::try_from(sequence)
            .map_err(|_| StoreError::Corrupt(format!("job {job_id}: a negative sequence")))?;
        self.events
            .get_last_events::<domain::Job>(job_id, after)
            .await
            .map_err(from_persistence)
    }

    async fn append(&self, commit: Commit) -> Result<(), AppendError> {
        if commit.writes_nothing() {
            return Ok(());
        }
        let (outcome, receiver) = oneshot::channel();
        let store = self.clone();
        self.commits
            .submit(Waiting { commit, outcome }, move |group| {
                let store = store.clone();
                async move { store.commit_group(group).await }
            });
        receiver.await.unwrap_or_else(|_| {
            Err(AppendError::OutcomeUnknown(StoreError::Task(
                "the task committing the command stopped".into(),
            )))
        })
    }
}

/// A commit waiting for its group, and where its outcome goes.
pub(super) struct Waiting {
    commit: Commit,
    outcome: oneshot::Sender<Result<(), AppendError>>,
}

/// Group commit's queue: one committer where the database has one writer at a time, more
/// where a second group's statements can run while the first one's commit waits for the
/// disk; at most 128 commits a transaction, enough to amortise it and well within the
/// databases' parameter limits.
pub(super) fn commit_queue<B: Backend>() -> GroupQueue<Waiting> {
    GroupQueue::new(B::COMMITTERS, 128)
}

/// How writing one group's transaction ended, short of a failure.
enum GroupWritten {
    Committed,
    /// Nothing was committed: these commits cannot be (their job moved on, or their key's
    /// claim was taken over); the others can be tried again without them.
    Refused(Vec<(usize, AppendError)>),
}

/// Why a group's transaction failed, and whether it had got as far as committing.
enum GroupFailed {
    BeforeCommit(StoreError),
    AtCommit(StoreError),
}

impl GroupFailed {
    /// The error each commit of the group hears: the outcome is unknown when the database
    /// was lost while committing.
    fn for_each_commit(self) -> impl Fn() -> AppendError {
        let (error, at_commit) = match self {
            GroupFailed::BeforeCommit(error) => (error, false),
            GroupFailed::AtCommit(error) => (error, true),
        };
        let unknown = at_commit && error.is_unavailable();
        let error = Arc::new(error);
        move || {
            let error = StoreError::Shared(error.clone());
            if unknown {
                AppendError::OutcomeUnknown(error)
            } else {
                AppendError::Store(error)
            }
        }
    }
}

impl<B: Backend> Store<B> {
    /// Writes a group and tells each commit its own outcome. Commits that cannot be made
    /// (a conflict, a lost claim) are left out and the rest written again. Should the group
    /// fail for another reason, it is split in halves and each written on its own, down to
    /// the one commit that fails — so one bad commit fails only itself, and the others
    /// still share transactions. A database that is unavailable fails them all at once.
    async fn commit_group(&self, group: Vec<Waiting>) {
        let (commits, outcomes): (Vec<Commit>, Vec<_>) = group
            .into_iter()
            .map(|waiting| (waiting.commit, waiting.outcome))
            .unzip();
        metrics::histogram!("jobs_group_commit_size").record(commits.len() as f64);
        let mut results: Vec<Option<Result<(), AppendError>>> =
            commits.iter().map(|_| None).collect();
        // Two commits decided on the same version of a job cannot both be made: the later
        // one is refused before anything is written (one multi-row insert would silently
        // keep only the first of two rows with the same key).
        let mut taken = HashSet::new();
        let mut writable = Vec::with_capacity(commits.len());
        for (index, commit) in commits.iter().enumerate() {
            let keys: Vec<(&str, usize)> = commit
                .events
                .iter()
                .map(|event| (event.aggregate_id.as_str(), event.sequence))
                .collect();
            if keys.iter().any(|key| taken.contains(key)) {
                results[index] = Some(Err(AppendError::Conflict));
            } else {
                taken.extend(keys);
                writable.push(index);
            }
        }
        let mut groups = vec![writable];
        while let Some(mut pending) = groups.pop() {
            while !pending.is_empty() {
                match self.write_group(&commits, &pending).await {
                    Ok(GroupWritten::Committed) => {
                        for index in pending.drain(..) {
                            results[index] = Some(Ok(()));
                        }
                    }
                    Ok(GroupWritten::Refused(refused)) => {
                        for (index, error) in refused {
                            pending.retain(|&pending| pending != index);
                            results[index] = Some(Err(error));
                        }
                    }
                    Err(GroupFailed::BeforeCommit(error))
                        if pending.len() > 1 && !error.is_unavailable() =>
                    {
                        tracing::warn!(%error, commits = pending.len(), "a group commit failed; writing it in halves");
                        let second = pending.split_off(pending.len() / 2);
                        groups.push(second);
                        groups.push(std::mem::take(&mut pending));
                    }
                    Err(failed) => {
                        let error = failed.for_each_commit();
                        for index in pending.drain(..) {
                            results[index] = Some(Err(error()));
                        }
                    }
                }
            }
        }
        for (outcome, result) in outcomes.into_iter().zip(results) {
            // A request that stopped waiting (its client left) hears nothing; the commit
            // stands as it is.
            let _ = outcome.send(result.unwrap_or_else(|| {
                Err(AppendError::OutcomeUnknown(StoreError::Task(
                    "a commit of the group was given no outcome".into(),
                )))
            }));
        }
    }

    /// One transaction for the commits `indexes` of `commits` (no two of them for the same
    /// job version): their events (each only where its sequence is still free), the answers
    /// for their keys (each only where its claim still holds), their snapshots and their
    /// projection rows. A commit whose event or answer could not be written refuses the whole
    /// transaction before it commits.
    async fn write_group(
        &self,
        commits: &[Commit],
        indexes: &[usize],
    ) -> Result<GroupWritten, GroupFailed> {
        use GroupFailed::BeforeCommit;
        let group = || indexes.iter().map(|&index| (index, &commits[index]));
        let _writer = self.backend.exclusive_writer().await;
        let mut connection = self
            .connections
            .take(&self.pool)
            .await
            .map_err(|e| BeforeCommit(e.into()))?;
        let mut tx = sqlx::Acquire::begin(&mut *connection)
            .await
            .map_err(|e| BeforeCommit(e.into()))?;
        // Events first: on SQLite this takes the write lock before any read, so two writers
        // queue on the busy timeout instead of deadlocking on an upgrade. In key order, as
        // every row the group writes, so that two servers' groups take their row locks in
        // the same order and cannot deadlock.
        let mut events: Vec<&SerializedEvent> =
            group().flat_map(|(_, commit)| &commit.events).collect();
        events.sort_by(|a, b| (&a.aggregate_id, a.sequence).cmp(&(&b.aggregate_id, b.sequence)));
        let inserted = B::Db::insert_events(&mut tx, &events, domain::now())
            .await
            .map_err(|e| BeforeCommit(e.into()))?;
        let inserted: HashSet<(&str, i64)> = inserted
            .iter()
            .map(|(job_id, sequence)| (job_id.as_str(), *sequence))
            .collect();
        let mut refused = Vec::new();
        for (index, commit) in group() {
            let raced = commit.events.iter().any(|event| {
                !inserted.contains(&(event.aggregate_id.as_str(), event.sequence as i64))
            });
            if raced {
                refused.push((index, AppendError::Conflict));
            } else if let Some((claim, answer)) = &commit.answer {
                let answered = B::Db::answer_key(&mut tx, claim, answer)
                    .await
                    .map_err(|e| BeforeCommit(e.into()))?;
                if !answered {
                    refused.push((index, AppendError::ClaimLost));
                }
            }
        }
        if !refused.is_empty() {
            // Dropping the transaction rolls it back.
            return Ok(GroupWritten::Refused(refused));
        }
        for (_, commit) in group() {
            if let Some(snapshot) = &commit.snapshot {
                B::Db::replace_snapshot(
                    &mut tx,
                    domain::AGGREGATE_TYPE,
                    &commit.job_id,
                    snapshot.last_sequence,
                    snapshot.number,
                    &snapshot.state,
                )
                .await
                .map_err(|e| BeforeCommit(e.into()))?;
            }
        }
        let rows = events
            .iter()
            .map(|event| {
                Ok(EventRow {
                    job_id: &event.aggregate_id,
                    sequence: event.sequence as i64,
                    event: serde::Deserialize::deserialize(&event.payload)?,
                    metadata: EventMetadata::from_json(&event.metadata),
                })
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()
            .map_err(|error| {
                BeforeCommit(StoreError::Corrupt(format!("an event to append: {error}")))
            })?;
        // A job whose first event was just appended has no projection rows to read.
        let new_jobs: HashSet<&str> = rows
            .iter()
            .filter(|row| row.sequence == 1)
            .map(|row| row.job_id)
            .collect();
        project_into::<B::Db>(&mut tx, ProjectionTables::LIVE, &rows, &new_jobs)
            .await
            .map_err(BeforeCommit)?;
        tx.commit()
            .await
            .map_err(|error| GroupFailed::AtCommit(error.into()))?;
        self.connections.keep(connection);
        Ok(GroupWritten::Committed)
    }
}

/// Every how many events the service snapshots a job: loading a job then reads its
/// snapshot and fewer than this many events after it.
pub const SNAPSHOT_EVERY: usize = 100;

/// Applies job events to the projection `tables`: folds each job's summary from its current
/// row, adds a status-history row per status change, and writes each touched summary once.
/// Events the projection has already seen change nothing, so applying a batch twice is
/// harmless. Jobs in `new_jobs` are known to have no rows yet (their creation is among the
/// events), so none are read for them. The live write path and a rebuild's final catch-up share this, so both derive
/// identical rows.
pub(super) async fn project_into<DB: JobSql>(
    connection: &mut Connection<DB>,
    tables: ProjectionTables,
    events: &[EventRow<'_>],
    new_jobs: &HashSet<&str>,
) -> Result<(), StoreError> {
    let mut views: HashMap<String, Option<JobView>> = HashMap::new();
    for job_id in new_jobs {
        views.insert((*job_id).to_owned(), None);
    }
    let ids = unseen_jobs(&views, events);
    for view in DB::load_views(&mut *connection, tables, &ids).await? {
        views.insert(view.id.to_string(), Some(view));
    }
    let mut history = fold_events(&mut views, events)?;
    // Rows in key order (see `write_group`).
    history.sort_by(|(a, x), (b, y)| (a, x.sequence).cmp(&(b, y.sequence)));
    DB::insert_history(&mut *connection, tables, &history).await?;
    let mut views: Vec<JobView> = views.into_values().flatten().collect();
    views.sort_by_key(|view| view.id);
    let summaries = views
        .into_iter()
        .map(SummaryDocument::new)
        .collect::<Result<Vec<_>, _>>()?;
    DB::upsert_summaries(connection, tables, &summaries).await
}

/// cqrs-es's repositories box the sqlx error they met; unbox it, so it is classified like
/// every other database error.
fn from_persistence(error: PersistenceError) -> StoreError {
    match error {
        PersistenceError::ConnectionError(error)
        | PersistenceError::DeserializationError(error)
        | PersistenceError::UnknownError(error) => match error.downcast::<sqlx::Error>() {
            Ok(error) => StoreError::Database(*error),
            Err(error) => StoreError::Corrupt(error.to_string()),
        },
        PersistenceError::OptimisticLockError => {
            StoreError::Corrupt("an optimistic lock error on a read".into())
        }
    }
}
