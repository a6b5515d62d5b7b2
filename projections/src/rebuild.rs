//! Rebuilding the projection from the log while the service keeps serving.
//!
//! The rebuild fills fresh tables beside the live ones (`rebuild_job_summary`,
//! `rebuild_job_status_history`), reading the log in commit order with the one global-log
//! reader. When it has caught up, one short transaction holds writers back (readers go on),
//! applies the few events appended since, drops the live tables and renames the rebuilt ones
//! into their place. Until that commit the live tables are untouched, so an interrupted or
//! failed rebuild changes nothing a reader sees; the next run drops its leftovers first.

use crate::error::StoreError;
use crate::log::{pair_job_events, parse_job_events, ParsedJobEvent};
use crate::log::{EventLog, LogCursor, LogFilter, LoggedEvent};
use crate::model::fold::{fold_events, unseen_jobs, ViewSlots};
use crate::model::view::{JobView, StatusHistoryEntry, SummaryDocument};
use async_trait::async_trait;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Events per batch: one read and one write transaction each. Large enough that per-batch
/// costs vanish, small enough that memory stays a few megabytes and that a rebuild's write
/// transaction holds SQLite's single writer lock only briefly.
pub const REBUILD_BATCH: i64 = 2_000;

/// How a rebuild sizes its work; the defaults suit any store (tests shrink them to exercise
/// every path on a handful of events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildSettings {
    /// Events read and written per batch.
    pub batch: i64,
    /// Summaries held in memory; when there are this many, the least recently changed tenth
    /// is written back. About ten megabytes at the default.
    pub views_held: usize,
}

impl Default for RebuildSettings {
    fn default() -> Self {
        RebuildSettings {
            batch: REBUILD_BATCH,
            views_held: 10_000,
        }
    }
}

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

    /// In one transaction: adds status-history rows, adds the summaries of jobs the
    /// rebuild tables do not hold yet (`new`) and replaces those of jobs they do (`changed`).
    async fn write_rebuild(
        &self,
        history: &[(&str, StatusHistoryEntry)],
        new: &[SummaryDocument],
        changed: &[SummaryDocument],
    ) -> Result<(), StoreError>;

    /// Gives the rebuild tables the indexes of the live ones that they still lack (kept off
    /// while the bulk of the rows goes in, which is faster than maintaining them).
    async fn index_rebuild_tables(&self) -> Result<(), StoreError>;

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
/// dropped and the live projection is as it was. Dropping the future midway (as a crash
/// does) leaves the live projection untouched too; the next rebuild drops the leftovers.
pub async fn rebuild(
    store: &Arc<dyn ProjectionRebuild>,
    progress: &mut dyn RebuildProgress,
) -> Result<RebuildReport, StoreError> {
    let never = AtomicBool::new(false);
    rebuild_with(store, progress, RebuildSettings::default(), &never).await
}

/// [`rebuild`] with other settings, stopping with [`StoreError::Interrupted`] (and the
/// rebuild tables dropped) when `stop` is set before the swap begins.
pub async fn rebuild_with(
    store: &Arc<dyn ProjectionRebuild>,
    progress: &mut dyn RebuildProgress,
    settings: RebuildSettings,
    stop: &AtomicBool,
) -> Result<RebuildReport, StoreError> {
    let started = Instant::now();
    let lease = store.begin_rebuild().await?;
    let outcome = replay_and_swap(store, progress, settings, stop).await;
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
    store: &Arc<dyn ProjectionRebuild>,
    progress: &mut dyn RebuildProgress,
    settings: RebuildSettings,
    stop: &AtomicBool,
) -> Result<u64, StoreError> {
    progress.started(u64::try_from(store.event_count().await?).unwrap_or_default());
    let mut held = HeldViews::default();
    // The write of the previous batch runs on its own task while this one is folded (and
    // the next one read), and the summaries it writes back are kept here until it is done,
    // so a job that comes back in the meantime is taken from memory rather than read
    // before it is written.
    let mut writing: Option<Task<()>> = None;
    let mut in_flight = Arc::new(WriteBack::default());
    let mut replayed = 0u64;
    let mut after = LogCursor::START;
    let mut batch = ReadBatch::read(store.as_ref(), after, settings.batch).await?;
    while let Some(last) = batch.events.last() {
        after = last.cursor;
        // The next batch is read (and parsed) on its own task while this one is folded.
        let reading = start_reading(store.clone(), after, settings.batch);
        held.batch += 1;
        let rows = pair_job_events(&batch.events, std::mem::take(&mut batch.parsed));
        let mut unseen = unseen_jobs(&held, &rows);
        unseen.retain(|id| match in_flight.view(id) {
            Some(view) => {
                held.stored(view.clone());
                false
            }
            None => true,
        });
        for view in store.load_rebuild_views(&unseen).await? {
            held.stored(view);
        }
        let history: Vec<(String, StatusHistoryEntry)> = fold_events(&mut held, &rows)?
            .into_iter()
            .map(|(job_id, entry)| (job_id.to_owned(), entry))
            .collect();
        let written_back = match held.views.len() >= settings.views_held {
            true => held.evict_oldest(held.views.len() - settings.views_held * 9 / 10)?,
            false => WriteBack::default(),
        };
        drop(rows);
        if let Some(write) = writing.take() {
            write.finish().await?;
        }
        in_flight = Arc::new(written_back);
        writing = Some(start_writing(store.clone(), history, in_flight.clone()));
        replayed += batch.events.len() as u64;
        progress.advanced(replayed);
        batch = reading.finish().await?;
        if stop.load(Ordering::Relaxed) {
            return Err(StoreError::Interrupted);
        }
        if batch.events.is_empty() {
            batch =
                ReadBatch::parse(wait_for_the_tail(store.as_ref(), after, settings.batch).await?)?;
        }
    }
    if let Some(write) = writing.take() {
        write.finish().await?;
    }
    let rest = held.evict_oldest(held.views.len())?;
    store
        .write_rebuild(&[], rest.new_rows(), rest.changed())
        .await?;
    store.index_rebuild_tables().await?;
    progress.swapping();
    replayed += swap_in(store.as_ref(), after).await?;
    progress.advanced(replayed);
    Ok(replayed)
}

/// A batch of the log and its job events, parsed.
struct ReadBatch {
    events: Vec<LoggedEvent>,
    parsed: Vec<ParsedJobEvent>,
}

impl ReadBatch {
    async fn read(
        store: &dyn ProjectionRebuild,
        after: LogCursor,
        batch: i64,
    ) -> Result<ReadBatch, StoreError> {
        ReadBatch::parse(
            store
                .read_after(after, &LogFilter::default(), batch)
                .await?,
        )
    }

    fn parse(events: Vec<LoggedEvent>) -> Result<ReadBatch, StoreError> {
        let parsed = parse_job_events(&events)?;
        Ok(ReadBatch { events, parsed })
    }
}

/// A task of the rebuild (the next batch's read, or the last batch's write), aborted if the
/// rebuild stops before it is awaited.
struct Task<T>(tokio::task::JoinHandle<Result<T, StoreError>>);

impl<T: Send + 'static> Task<T> {
    fn spawn(
        work: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Self {
        Task(tokio::spawn(work))
    }

    async fn finish(mut self) -> Result<T, StoreError> {
        let outcome = (&mut self.0).await;
        outcome.map_err(|error| StoreError::Task(error.to_string()))?
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads (and parses) the batch after `after` on a task of its own.
fn start_reading(
    store: Arc<dyn ProjectionRebuild>,
    after: LogCursor,
    batch: i64,
) -> Task<ReadBatch> {
    Task::spawn(async move { ReadBatch::read(store.as_ref(), after, batch).await })
}

/// Writes one batch's history rows and written-back summaries on a task of its own.
fn start_writing(
    store: Arc<dyn ProjectionRebuild>,
    history: Vec<(String, StatusHistoryEntry)>,
    written_back: Arc<WriteBack>,
) -> Task<()> {
    Task::spawn(async move {
        let (job_ids, entries): (Vec<String>, Vec<StatusHistoryEntry>) =
            history.into_iter().unzip();
        let history: Vec<(&str, StatusHistoryEntry)> =
            job_ids.iter().map(String::as_str).zip(entries).collect();
        store
            .write_rebuild(&history, written_back.new_rows(), written_back.changed())
            .await
    })
}

/// What a reader that has caught up may still find: on PostgreSQL an older transaction
/// (of any database on the server) can hold back events that committed after it. The swap
/// replays whatever is left while writers wait, so that must be little: while more than a
/// batch is held back, wait for it (up to a minute; after that the swap takes the rest).
async fn wait_for_the_tail(
    store: &dyn ProjectionRebuild,
    after: LogCursor,
    batch_size: i64,
) -> Result<Vec<LoggedEvent>, StoreError> {
    let everything = LogFilter::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let end = store.log_end().await?;
    while store.held_back(after, &everything, end).await? > batch_size && Instant::now() < deadline
    {
        tokio::time::sleep(crate::log::WAIT_POLL).await;
        let batch = store.read_after(after, &everything, batch_size).await?;
        if !batch.is_empty() {
            return Ok(batch);
        }
    }
    Ok(Vec::new())
}

/// The swap, tried again a few times when it could not get its locks in time (a long
/// reader, or a long writer on SQLite): giving up holds writers back no longer.
async fn swap_in(store: &dyn ProjectionRebuild, after: LogCursor) -> Result<u64, StoreError> {
    let mut attempt = 1;
    loop {
        match store.swap_in_rebuild(after).await {
            Err(error) if error.is_lock_timeout() && attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            outcome => return outcome,
        }
    }
}

/// The summaries a replay works on, between the log and the rebuild tables: a job's events
/// lie far apart in the log, and writing its row once, when it has not changed for a
/// while, instead of once per batch, is most of a rebuild's speed.
#[derive(Default)]
struct HeldViews {
    /// Looked up several times per event: hashbrown's map hashes with foldhash, several
    /// times faster than the standard library's SipHash on ids (which come from the store,
    /// not from users), and `entry_ref` copies an id only for a job not held yet.
    views: hashbrown::HashMap<String, Held>,
    /// The number of the batch being folded.
    batch: u64,
}

#[derive(Default)]
struct Held {
    view: Option<JobView>,
    /// The last batch that touched it.
    touched: u64,
    /// Whether the rebuild tables have a row for it.
    stored: bool,
    /// Whether it changed since it was loaded or written.
    dirty: bool,
}

impl HeldViews {
    /// Holds a summary read back from the rebuild tables.
    fn stored(&mut self, view: JobView) {
        let id = view.id.to_string();
        let held = Held {
            view: Some(view),
            touched: self.batch,
            stored: true,
            dirty: false,
        };
        self.views.insert(id, held);
    }

    /// Lets go of the `count` summaries touched least recently; returns those to write.
    fn evict_oldest(&mut self, count: usize) -> Result<WriteBack, StoreError> {
        let mut ages: Vec<(u64, &String)> = self
            .views
            .iter()
            .map(|(id, held)| (held.touched, id))
            .collect();
        let count = count.min(ages.len());
        if count < ages.len() {
            ages.select_nth_unstable(count);
        }
        let oldest: Vec<String> = ages[..count].iter().map(|(_, id)| (*id).clone()).collect();
        let (mut new, mut changed) = (Vec::new(), Vec::new());
        for id in oldest {
            let Some(held) = self.views.remove(&id) else {
                continue;
            };
            match (held.view, held.dirty, held.stored) {
                (Some(view), true, false) => new.push(SummaryDocument::new(view)?),
                (Some(view), true, true) => changed.push(SummaryDocument::new(view)?),
                _ => {}
            }
        }
        Ok(WriteBack::new(new, changed))
    }
}

impl ViewSlots for HeldViews {
    fn holds(&self, job_id: &str) -> bool {
        self.views.contains_key(job_id)
    }

    fn slot(&mut self, job_id: &str) -> &mut Option<JobView> {
        let held = self.views.entry_ref(job_id).or_default();
        held.touched = self.batch;
        held.dirty = true;
        &mut held.view
    }
}

/// Evicted summaries that changed: new to the rebuild tables, or replacing a row there.
/// While they are being written, the replay takes a job that comes back from here.
#[derive(Default)]
struct WriteBack {
    /// The new rows, then the changed ones.
    rows: Vec<SummaryDocument>,
    new: usize,
    by_id: hashbrown::HashMap<Uuid, usize>,
}

impl WriteBack {
    fn new(new: Vec<SummaryDocument>, changed: Vec<SummaryDocument>) -> WriteBack {
        let new_count = new.len();
        let mut rows = new;
        rows.extend(changed);
        let by_id = rows
            .iter()
            .enumerate()
            .map(|(index, row)| (row.view.id, index))
            .collect();
        WriteBack {
            rows,
            new: new_count,
            by_id,
        }
    }

    fn new_rows(&self) -> &[SummaryDocument] {
        &self.rows[..self.new]
    }

    fn changed(&self) -> &[SummaryDocument] {
        &self.rows[self.new..]
    }

    /// The summary of `job_id`, if it is among these.
    fn view(&self, job_id: &str) -> Option<&JobView> {
        let id = Uuid::parse_str(job_id).ok()?;
        self.by_id.get(&id).map(|&index| &self.rows[index].view)
    }
}
