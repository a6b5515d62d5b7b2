//! The global event log: every stored event, in commit order, read in batches after a cursor.
//! Export, rebuild and the catch-up that follows a rebuild all read the log through this one
//! reader, so they agree on what "in order" and "everything so far" mean.
//!
//! PostgreSQL hands out positions when rows are inserted, not when they commit: a long
//! transaction can commit position 5 after position 9 is already visible. A reader that went
//! by position alone would pass 5 and never see it. So the log is ordered by (writing
//! transaction, position), and a batch only contains events of transactions older than the
//! oldest one still running (`pg_snapshot_xmin(pg_current_snapshot())`): those are final, and
//! nothing can later commit before them. SQLite has one writer at a time, so its position
//! (rowid) order is commit order.
//!
//! Transaction ids are the PostgreSQL cluster's: a log restored into another cluster may
//! hold ids ahead of the ones it hands out ([`TransactionsAhead`]). The server then refuses
//! to start, and export, rebuild and verify to run, until `jobs-admin repair-log` shifts
//! the ids new events record past the restored ones.

use crate::error::StoreError;
use crate::model::fold::EventRow;
use crate::model::metadata::EventMetadata;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;

/// A place in the log: just after the event it was taken from. Ordered like the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogCursor {
    /// The writing transaction (PostgreSQL's `xid8`; always 0 on SQLite).
    pub transaction: i64,
    /// The event's global position.
    pub position: i64,
}

impl LogCursor {
    /// Before the first event.
    pub const START: LogCursor = LogCursor {
        transaction: 0,
        position: 0,
    };
}

/// One event as the log holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    pub cursor: LogCursor,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub recorded_at: DateTime<Utc>,
    /// The JSON text as stored by cqrs-es: `{"JobCancelled": {"reason": …}}`. Kept as text,
    /// so a reader parses only what it needs, into the types it needs.
    pub payload: String,
    /// The JSON text of who acted, for whom, in which request (see [`Self::who`]).
    pub metadata: String,
}

impl LoggedEvent {
    /// The global position: unique, but on PostgreSQL not always increasing in log order.
    pub fn position(&self) -> i64 {
        self.cursor.position
    }

    /// The event's own fields, without cqrs-es's `{"EventType": …}` wrapper.
    pub fn data(&self) -> serde_json::Value {
        unwrap_payload(json_or_text(&self.payload), &self.event_type)
    }

    /// The metadata as JSON.
    pub fn metadata_json(&self) -> serde_json::Value {
        json_or_text(&self.metadata)
    }

    /// Who acted, with which token, for whom, in which request.
    pub fn who(&self) -> EventMetadata {
        EventMetadata::from_json_text(&self.metadata)
    }

    /// The job event, if this is one the domain knows.
    pub fn job_event(&self) -> Result<domain::JobEvent, StoreError> {
        serde_json::from_str(&self.payload).map_err(|error| {
            StoreError::Corrupt(format!(
                "event {} ({} #{} of {}) cannot be read: {error}",
                self.position(),
                self.event_type,
                self.sequence,
                self.aggregate_id
            ))
        })
    }

    /// The record `jobs-admin export` writes, one per line.
    pub fn to_record(&self) -> serde_json::Value {
        json!({
            "position": self.position(),
            "aggregateType": self.aggregate_type,
            "aggregateId": self.aggregate_id,
            "sequence": self.sequence,
            "eventType": self.event_type,
            "eventVersion": self.event_version,
            "recordedAt": self.recorded_at,
            "payload": self.data(),
            "metadata": self.metadata_json(),
        })
    }
}

/// Stored JSON text as a value; text that is not JSON (which the stores do not hold) is
/// shown as the string it is rather than lost.
fn json_or_text(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

/// Which events a read returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// Only the events recorded for this customer (the `customerId` of their metadata).
    pub customer_id: Option<i64>,
}

/// Reads the global log. Implemented by both stores.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Up to `limit` events after `after`, in log order, that are final: no event that
    /// commits later can sort before them. Empty when the reader has caught up.
    async fn read_after(
        &self,
        after: LogCursor,
        filter: &LogFilter,
        limit: i64,
    ) -> Result<Vec<LoggedEvent>, StoreError>;

    /// Where the log ends now: events of transactions that began later are not part of
    /// it yet (a transaction id bound on PostgreSQL; 0, meaning "no bound", on SQLite).
    async fn log_end(&self) -> Result<i64, StoreError>;

    /// How many committed events after `after`, of transactions that began before `end`
    /// (see [`Self::log_end`]), a read cannot return yet because an older transaction is
    /// still open — possibly in another database of the same server. Counts up to 1000;
    /// always 0 on SQLite.
    async fn held_back(
        &self,
        after: LogCursor,
        filter: &LogFilter,
        end: i64,
    ) -> Result<i64, StoreError>;

    /// A cursor before every event that is not final yet and after all but a few final
    /// ones: where a reader that wants "what happens from now on" starts. It may see some
    /// events that committed just before (at least once, never fewer).
    async fn head(&self) -> Result<LogCursor, StoreError>;

    /// How many events after `after` the log holds, counting up to `cap`.
    async fn count_after(
        &self,
        after: LogCursor,
        filter: &LogFilter,
        cap: i64,
    ) -> Result<i64, StoreError>;

    /// The cursor just after the event at global `position`, if there is one, and whether
    /// that event is final yet (nothing can still commit before it).
    async fn cursor_after(&self, position: i64) -> Result<Option<(LogCursor, bool)>, StoreError>;

    /// Every event of one aggregate, in sequence order.
    async fn aggregate_events(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<LoggedEvent>, StoreError>;

    /// How many events the log holds.
    async fn event_count(&self) -> Result<i64, StoreError>;

    /// Whether stored transaction ids run ahead of the database's (after a restore).
    async fn transactions_ahead(&self) -> Result<Option<TransactionsAhead>, StoreError>;

    /// Makes the log's order right again after a restore: new events sort after every
    /// stored one. Returns what was ahead, if anything was.
    async fn repair_transaction_order(&self) -> Result<Option<TransactionsAhead>, StoreError>;
}

/// A log whose stored transaction ids run ahead of those the database hands out: new events
/// would sort before restored ones, and restored ones would never count as final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionsAhead {
    /// The highest transaction id stored.
    pub highest_stored: i64,
    /// The lowest id a transaction beginning now records.
    pub next: i64,
}

impl std::fmt::Display for TransactionsAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the event log holds transaction ids up to {}, ahead of the next this PostgreSQL \
             server hands out ({}): it was restored from another cluster, and new events \
             would sort before restored ones; run `jobs-admin repair-log` once to put that \
             right",
            self.highest_stored, self.next
        )
    }
}

/// How often a reader waiting for an open transaction looks again.
pub const WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(25);

/// Reads every event after `after` that had committed when the read began (and maybe some
/// that committed since), handing each batch to `visit` in log order. When such events are
/// held back by an open transaction it waits for that transaction, calling `waiting` now
/// and then, so nothing that committed before the start is left out; transactions that
/// began after the start cannot keep it waiting. Memory holds one batch.
pub async fn read_to_end<E>(
    log: &dyn EventLog,
    mut after: LogCursor,
    filter: &LogFilter,
    batch_size: i64,
    mut visit: impl FnMut(&[LoggedEvent]) -> Result<(), E>,
    mut waiting: impl FnMut(std::time::Duration, i64),
) -> Result<LogCursor, E>
where
    E: From<StoreError>,
{
    let end = log.log_end().await?;
    let mut waiting_since = None;
    loop {
        let batch = log.read_after(after, filter, batch_size).await?;
        if let Some(last) = batch.last() {
            after = last.cursor;
            waiting_since = None;
            visit(&batch)?;
            continue;
        }
        let held_back = log.held_back(after, filter, end).await?;
        if held_back == 0 {
            return Ok(after);
        }
        let since = *waiting_since.get_or_insert_with(std::time::Instant::now);
        waiting(since.elapsed(), held_back);
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// The payload of a stored event without cqrs-es's `{"EventType": …}` wrapper.
pub(crate) fn unwrap_payload(payload: serde_json::Value, event_type: &str) -> serde_json::Value {
    match payload {
        serde_json::Value::Object(mut map) if map.len() == 1 && map.contains_key(event_type) => {
            map.remove(event_type).unwrap_or_default()
        }
        other => other,
    }
}

/// The job events among logged events, parsed, as the fold takes them.
pub(crate) fn job_rows(events: &[LoggedEvent]) -> Result<Vec<EventRow<'_>>, StoreError> {
    Ok(pair_job_events(events, parse_job_events(events)?))
}

/// A job event and its metadata, parsed from a logged event's text.
pub(crate) type ParsedJobEvent = (domain::JobEvent, EventMetadata);

/// The first half of `job_rows`: the job events among `events`, parsed. Separate from the
/// second so that a rebuild can parse one batch while it folds another.
pub(crate) fn parse_job_events(events: &[LoggedEvent]) -> Result<Vec<ParsedJobEvent>, StoreError> {
    job_events(events)
        .map(|event| Ok((event.job_event()?, event.who())))
        .collect()
}

/// The second half of `job_rows`: each of `parsed` (made from `events`) with its event's
/// job and sequence.
pub(crate) fn pair_job_events(
    events: &[LoggedEvent],
    parsed: Vec<ParsedJobEvent>,
) -> Vec<EventRow<'_>> {
    debug_assert_eq!(job_events(events).count(), parsed.len());
    job_events(events)
        .zip(parsed)
        .map(|(event, (job_event, metadata))| EventRow {
            job_id: &event.aggregate_id,
            sequence: event.sequence,
            event: job_event,
            metadata,
        })
        .collect()
}

fn job_events(events: &[LoggedEvent]) -> impl Iterator<Item = &LoggedEvent> {
    events
        .iter()
        .filter(|event| event.aggregate_type == domain::AGGREGATE_TYPE)
}
