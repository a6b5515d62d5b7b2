//! The write side, generic over the backend: what the service needs to decide a command
//! on a job (its latest snapshot and the events after it) and to record the decision — the
//! command's events, the job's projection rows, its new snapshot, and the answer kept for
//! the request's idempotency key — in one transaction: either the command happened, every
//! read shows it and a retry of it gets its answer, or none of that.

use super::backend::{Backend, Store};
use super::rows::ProjectionTables;
use super::sql::{Connection, JobSql, KeySql};
use crate::error::{database_unavailable, StoreError};
use crate::idempotency::{KeyClaim, StoredAnswer};
use crate::model::fold::{fold_events, unseen_jobs, EventRow};
use crate::model::metadata::EventMetadata;
use crate::model::view::{JobView, SummaryDocument};
use async_trait::async_trait;
use cqrs_es::persist::{PersistedEventRepository, PersistenceError, SerializedEvent};
use std::collections::HashMap;

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

/// One decided command, to record atomically.
pub struct Commit<'a> {
    pub job_id: &'a str,
    /// The command's events, numbered on from the job's version it was decided on (none
    /// for a command that changed nothing).
    pub events: &'a [SerializedEvent],
    /// The job's state after the events, when it is time for a new snapshot.
    pub snapshot: Option<JobSnapshot>,
    /// The answer to keep for the request's idempotency key, which the claim must still
    /// hold.
    pub answer: Option<(&'a KeyClaim, &'a StoredAnswer)>,
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
    /// The job's latest snapshot, if it has one.
    async fn snapshot(&self, job_id: &str) -> Result<Option<JobSnapshot>, StoreError>;

    /// The job's events after `sequence`, in order.
    async fn events_after(
        &self,
        job_id: &str,
        sequence: i64,
    ) -> Result<Vec<SerializedEvent>, StoreError>;

    /// Records a decided command, all or nothing.
    async fn append(&self, commit: Commit<'_>) -> Result<(), AppendError>;
}

#[async_trait]
impl<B: Backend> CommandStore for Store<B> {
    /// The newest snapshot (one is kept per job; the newest wins should there be more).
    async fn snapshot(&self, job_id: &str) -> Result<Option<JobSnapshot>, StoreError> {
        let found = B::Db::select_snapshot(&self.pool, domain::AGGREGATE_TYPE, job_id).await?;
        Ok(found.map(|(last_sequence, number, state)| JobSnapshot {
            last_sequence,
            number,
            state,
        }))
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

    async fn append(&self, commit: Commit<'_>) -> Result<(), AppendError> {
        if commit.events.is_empty() && commit.answer.is_none() {
            return Ok(());
        }
        let _writer = self.backend.exclusive_writer().await;
        let mut tx = self.pool.begin().await.map_err(append_error)?;
        // Events first: on SQLite this takes the write lock before any read, so two writers
        // queue on the busy timeout instead of deadlocking on an upgrade.
        B::Db::insert_events(&mut tx, commit.events, domain::now())
            .await
            .map_err(append_error)?;
        if let Some(snapshot) = &commit.snapshot {
            B::Db::replace_snapshot(
                &mut tx,
                domain::AGGREGATE_TYPE,
                commit.job_id,
                snapshot.last_sequence,
                snapshot.number,
                &snapshot.state,
            )
            .await
            .map_err(append_error)?;
        }
        let rows = commit
            .events
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
            .map_err(|error| StoreError::Corrupt(format!("an event to append: {error}")))?;
        project_into::<B::Db>(&mut tx, ProjectionTables::LIVE, &rows)
            .await
            .map_err(|error| match error {
                StoreError::Database(error) => append_error(error),
                other => AppendError::Store(other),
            })?;
        if let Some((claim, answer)) = commit.answer {
            if !B::Db::answer_key(&mut tx, claim, answer)
                .await
                .map_err(append_error)?
            {
                return Err(AppendError::ClaimLost);
            }
        }
        tx.commit().await.map_err(|error| {
            if database_unavailable(&error) {
                AppendError::OutcomeUnknown(StoreError::Database(error))
            } else {
                append_error(error)
            }
        })
    }
}

/// Every how many events the service snapshots a job: loading a job then reads its
/// snapshot and fewer than this many events after it.
pub const SNAPSHOT_EVERY: usize = 100;

/// Applies job events to the projection `tables`: folds each job's summary from its current
/// row, adds a status-history row per status change, and writes each touched summary once.
/// Events the projection has already seen change nothing, so applying a batch twice is
/// harmless. The live write path and a rebuild's final catch-up share this, so both derive
/// identical rows.
pub(super) async fn project_into<DB: JobSql>(
    connection: &mut Connection<DB>,
    tables: ProjectionTables,
    events: &[EventRow<'_>],
) -> Result<(), StoreError> {
    let mut views: HashMap<String, Option<JobView>> = HashMap::new();
    let ids = unseen_jobs(&views, events);
    for view in DB::load_views(&mut *connection, tables, &ids).await? {
        views.insert(view.id.to_string(), Some(view));
    }
    let history = fold_events(&mut views, events)?;
    DB::insert_history(&mut *connection, tables, &history).await?;
    let summaries = views
        .into_values()
        .flatten()
        .map(SummaryDocument::new)
        .collect::<Result<Vec<_>, _>>()?;
    DB::upsert_summaries(connection, tables, &summaries).await
}

/// Sorts a database error of the write path before the commit. A unique violation on the
/// events key means another writer appended this sequence first (optimistic concurrency):
/// worth deciding again. Anything else is the store's error, sorted as every other (SQLite's
/// lock still taken after its busy timeout counts as the store being unavailable: what
/// holds it for that long is not a racing command).
fn append_error(error: sqlx::Error) -> AppendError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => AppendError::Conflict,
        _ => AppendError::Store(StoreError::Database(error)),
    }
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
