//! The write path, generic over the backend: a command's events are appended and applied to
//! the projection in one transaction, so either the command happened and every read shows
//! it, or neither. cqrs-es sees this as a `PersistedEventRepository` whose reads delegate to
//! postgres-es/sqlite-es.

use super::backend::{Backend, Store};
use super::rows::ProjectionTables;
use super::sql::{Connection, JobSql};
use crate::error::{database_unavailable, sqlite_busy, StoreError};
use crate::model::fold::{fold_events, unseen_jobs, EventRow};
use crate::model::metadata::EventMetadata;
use crate::model::view::{JobView, SummaryDocument};
use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use std::collections::HashMap;

impl<B: Backend> Store<B> {
    /// Appends a command's events and applies them to the projection, in one transaction,
    /// with the aggregate's new snapshot when cqrs-es takes one.
    async fn append_and_project(
        &self,
        events: &[SerializedEvent],
        snapshot: Option<(String, serde_json::Value, usize)>,
    ) -> Result<(), PersistenceError> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        let _writer = self.backend.exclusive_writer().await;
        let mut tx = self.pool.begin().await.map_err(persistence_error)?;
        // Events first: on SQLite this takes the write lock before any read, so two writers
        // queue on the busy timeout instead of deadlocking on an upgrade.
        B::Db::insert_events(&mut tx, events, domain::now())
            .await
            .map_err(persistence_error)?;
        if let (Some((aggregate_id, state, number)), Some(last)) = (snapshot, events.last()) {
            let at = snapshot_sequence(last.sequence);
            B::Db::replace_snapshot(
                &mut tx,
                &first.aggregate_type,
                &aggregate_id,
                sequence_number(at)?,
                sequence_number(number)?,
                &state,
            )
            .await
            .map_err(persistence_error)?;
        }
        if first.aggregate_type == domain::AGGREGATE_TYPE {
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
                .collect::<Result<Vec<_>, serde_json::Error>>()?;
            project_into::<B::Db>(&mut tx, ProjectionTables::LIVE, &rows)
                .await
                .map_err(store_to_persistence_error)?;
        }
        tx.commit().await.map_err(persistence_error)
    }
}

/// Every how many events cqrs-es snapshots an aggregate (the service's event store is made
/// with it), so loading a job reads its snapshot and fewer than this many events after it.
pub const SNAPSHOT_EVERY: usize = 100;

/// The sequence a snapshot taken in a commit ending at `last_sequence` is at. cqrs-es hands
/// `persist` the aggregate's state and the snapshot's number, not its sequence: it takes
/// snapshots at multiples of [`SNAPSHOT_EVERY`], the last such boundary the commit reached.
fn snapshot_sequence(last_sequence: usize) -> usize {
    last_sequence / SNAPSHOT_EVERY * SNAPSHOT_EVERY
}

/// A cqrs-es counter as the stores keep it.
fn sequence_number(value: usize) -> Result<i64, PersistenceError> {
    i64::try_from(value).map_err(|_| PersistenceError::UnknownError("a counter past i64".into()))
}

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

/// Maps a database error on the write path to cqrs-es's terms. A unique violation on the
/// events key means another writer appended this sequence first (optimistic concurrency);
/// SQLite's "database is locked" is likewise a lost race. Both are safe to retry.
fn persistence_error(error: sqlx::Error) -> PersistenceError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            PersistenceError::OptimisticLockError
        }
        sqlx::Error::Database(db) if sqlite_busy(db.as_ref()) => {
            PersistenceError::OptimisticLockError
        }
        _ if database_unavailable(&error) => PersistenceError::ConnectionError(Box::new(error)),
        _ => PersistenceError::UnknownError(Box::new(error)),
    }
}

/// The same, for errors of the projection step of a write.
fn store_to_persistence_error(error: StoreError) -> PersistenceError {
    match error {
        StoreError::Database(error) => persistence_error(error),
        other => PersistenceError::UnknownError(Box::new(other)),
    }
}

impl<B: Backend> PersistedEventRepository for Store<B> {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.events.get_events::<A>(aggregate_id).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.events
            .get_last_events::<A>(aggregate_id, last_sequence)
            .await
    }

    /// The newest snapshot (one is kept per aggregate; the newest wins should there be
    /// more, e.g. after a snapshot that no longer deserialises was written over).
    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        let found = B::Db::select_snapshot(&self.pool, A::TYPE, aggregate_id)
            .await
            .map_err(persistence_error)?;
        let Some((last_sequence, number, state)) = found else {
            return Ok(None);
        };
        let counter = |value: i64| {
            usize::try_from(value).map_err(|_| {
                PersistenceError::UnknownError(
                    format!("snapshot of {aggregate_id}: a negative counter").into(),
                )
            })
        };
        Ok(Some(SerializedSnapshot {
            aggregate_id: aggregate_id.to_owned(),
            aggregate: state,
            current_sequence: counter(last_sequence)?,
            current_snapshot: counter(number)?,
        }))
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, serde_json::Value, usize)>,
    ) -> Result<(), PersistenceError> {
        self.append_and_project(events, snapshot_update).await
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        self.events.stream_events::<A>(aggregate_id).await
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        self.events.stream_all_events::<A>().await
    }
}
