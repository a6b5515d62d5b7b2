//! Rebuilding the projection from the log while the service keeps serving.
//!
//! The rebuild fills fresh tables beside the live ones (`rebuild_job_summary`,
//! `rebuild_job_status_history`), reading the log in commit order with the one global-log
//! reader. When it has caught up, one short transaction holds writers back (readers go on),
//! applies the few events appended since, drops the live tables and renames the rebuilt ones
//! into their place. Until that commit the live tables are untouched, so an interrupted or
//! failed rebuild changes nothing a reader sees; the next run drops its leftovers first.

use crate::log::{EventLog, LogCursor, LogFilter};
use crate::store::{fold_events, job_rows, unseen_jobs, StoreError};
use crate::view::{JobView, StatusHistoryEntry};
use async_trait::async_trait;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Events per batch: one read and one write transaction each. Large enough that per-batch
/// costs vanish, small enough that memory stays a few megabytes and that a rebuild's write
/// transaction holds SQLite's single writer lock only briefly.
pub const REBUILD_BATCH: i64 = 2_000;

/// Summaries a rebuild holds before writing them back: about ten megabytes.
const VIEWS_HELD: usize = 10_000;

/// Held while a rebuild runs; dropping it lets the next one start.
pub struct RebuildLease(#[allow(dead_code)] Box<dyn Send + Sync>);

impl RebuildLease {
    pub(crate) fn new(guard: impl Send + Sync + 'static) -> Self {
        RebuildLease(Box::new(guard))
    }
}

/// The store side of a rebuild. Implemented by both stores.
#[async_trait]
pub trait ProjectionRebuild: EventLog {
    /// Takes the store's rebuild lease (one rebuild at a time; `StoreError::RebuildRunning`
    /// otherwise), drops what an interrupted rebuild left behind and creates empty rebuild
    /// tables shaped like the live ones.
    async fn begin_rebuild(&self) -> Result<RebuildLease, StoreError>;

    /// The summaries in the rebuild tables of the jobs `ids` (those that have one).
    async fn load_rebuild_views(&self, ids: &[&str]) -> Result<Vec<JobView>, StoreError>;

    /// Adds status-history rows and writes summaries to the rebuild tables, in one
    /// transaction.
    async fn write_rebuild(
        &self,
        history: &[(&str, StatusHistoryEntry)],
        summaries: &[&JobView],
    ) -> Result<(), StoreError>;

    /// In one transaction that holds writers back: applies every event committed after
    /// `after`, then puts the rebuild tables in place of the live ones. Returns how many
    /// events it applied.
    async fn swap_in_rebuild(&self, after: LogCursor) -> Result<u64, StoreError>;

    /// Drops the rebuild tables, if any.
    async fn discard_rebuild(&self) -> Result<(), StoreError>;
}

/// What a rebuild reports while it runs.
pub trait RebuildProgress: Send {
    /// The log held `total` events when the rebuild began.
    fn started(&mut self, total: u64);
    /// `replayed` events are in the rebuild tables so far.
    fn advanced(&mut self, replayed: u64);
    /// Caught up: the final catch-up and the swap begin.
    fn swapping(&mut self);
}

/// How a finished rebuild went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RebuildReport {
    pub events: u64,
    pub elapsed: Duration,
}

impl RebuildReport {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Rebuilds the projection of `store` from its log. On failure the rebuild tables are
/// dropped and the live projection is as it was. Cancelling the future (Ctrl-C) leaves the
/// live projection untouched too; the caller should then [`ProjectionRebuild::discard_rebuild`].
pub async fn rebuild(
    store: &dyn ProjectionRebuild,
    progress: &mut dyn RebuildProgress,
) -> Result<RebuildReport, StoreError> {
    let started = Instant::now();
    let lease = store.begin_rebuild().await?;
    let outcome = replay_and_swap(store, progress).await;
    if outcome.is_err() {
        // Best effort: the next run drops the leftovers anyway.
        let _ = store.discard_rebuild().await;
    }
    drop(lease);
    let events = outcome?;
    Ok(RebuildReport {
        events,
        elapsed: started.elapsed(),
    })
}

async fn replay_and_swap(
    store: &dyn ProjectionRebuild,
    progress: &mut dyn RebuildProgress,
) -> Result<u64, StoreError> {
    progress.started(u64::try_from(store.event_count().await?).unwrap_or_default());
    let everything = LogFilter::default();
    // The summaries folded so far, written back only when there are many of them (and at
    // the end): a job's events lie far apart in the log, and writing its row once instead
    // of once per batch is most of a rebuild's speed. Bounded, so memory stays flat.
    let mut views: HashMap<String, Option<JobView>> = HashMap::new();
    let mut replayed = 0u64;
    let mut after = LogCursor::START;
    let mut batch = store.read_after(after, &everything, REBUILD_BATCH).await?;
    while let Some(last) = batch.last() {
        after = last.cursor;
        let rows = job_rows(&batch)?;
        let unseen = unseen_jobs(&views, &rows);
        for view in store.load_rebuild_views(&unseen).await? {
            views.insert(view.id.to_string(), Some(view));
        }
        let history = fold_events(&mut views, &rows)?;
        let write_back = views.len() >= VIEWS_HELD;
        let summaries: Vec<&JobView> = match write_back {
            true => views.values().flatten().collect(),
            false => Vec::new(),
        };
        // Read the next batch while this one is written: the two cores work side by side.
        let (next, written) = tokio::join!(
            store.read_after(after, &everything, REBUILD_BATCH),
            store.write_rebuild(&history, &summaries)
        );
        written?;
        replayed += batch.len() as u64;
        progress.advanced(replayed);
        drop((history, summaries, rows));
        if write_back {
            views.clear();
        }
        batch = next?;
    }
    let summaries: Vec<&JobView> = views.values().flatten().collect();
    store.write_rebuild(&[], &summaries).await?;
    drop(summaries);
    progress.swapping();
    replayed += store.swap_in_rebuild(after).await?;
    progress.advanced(replayed);
    Ok(replayed)
}
