//! `jobs-admin history` and `jobs-admin export`: the audit trail of one job, and the whole
//! log as NDJSON, straight from the event store (never from the projection).

use super::table::{short_time, write_table};
use super::{AdminError, Format};
use projections::log::{read_to_end, EventLog, LogCursor, LogFilter, LoggedEvent, WAIT_POLL};
use serde_json::json;
use std::io::Write;
use std::time::Duration;
use uuid::Uuid;

/// Events per read of an export.
const EXPORT_BATCH: i64 = 1_000;

pub async fn history(
    log: &dyn EventLog,
    job_id: Uuid,
    format: Format,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    let events = log
        .aggregate_events(domain::AGGREGATE_TYPE, &job_id.to_string())
        .await?;
    if events.is_empty() {
        return Err(AdminError::UnknownJob(job_id));
    }
    match format {
        Format::Json => {
            let entries: Vec<_> = events.iter().map(history_entry).collect();
            writeln!(out, "{:#}", json!(entries))?;
        }
        Format::Table => {
            let rows: Vec<[String; 7]> = events
                .iter()
                .map(|event| {
                    let who = event.who();
                    [
                        event.sequence.to_string(),
                        short_time(event.recorded_at),
                        event.event_type.clone(),
                        event.event_version.clone(),
                        who.client_id,
                        who.request_id,
                        event.data().to_string(),
                    ]
                })
                .collect();
            let header = [
                "SEQ", "RECORDED", "EVENT", "VERSION", "CLIENT", "REQUEST", "PAYLOAD",
            ];
            write_table(out, header, &rows)?;
        }
    }
    Ok(())
}

/// One event of `history --format json`: what happened, and who, for whom, in which request.
fn history_entry(event: &LoggedEvent) -> serde_json::Value {
    let who = event.who();
    json!({
        "position": event.position(),
        "sequence": event.sequence,
        "recordedAt": event.recorded_at,
        "eventType": event.event_type,
        "eventVersion": event.event_version,
        "clientId": who.client_id,
        "tokenId": who.token_id,
        "customerId": who.customer_id,
        "requestId": who.request_id,
        "payload": event.data(),
    })
}

/// Streams the log to `out`, one JSON object per line; a summary (and any wait for an open
/// transaction) goes to standard error, so `out` stays pure NDJSON.
pub async fn export(
    log: &dyn EventLog,
    from_position: Option<i64>,
    customer: Option<i64>,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    let after = match from_position {
        None => LogCursor::START,
        Some(position) => final_cursor_after(log, position).await?,
    };
    let filter = LogFilter {
        customer_id: customer,
    };
    let mut out = std::io::BufWriter::new(out);
    let mut exported = 0u64;
    let mut last_position = None;
    let mut notices = WaitNotices::default();
    read_to_end(
        log,
        after,
        &filter,
        EXPORT_BATCH,
        |batch| {
            for event in batch {
                serde_json::to_writer(&mut out, &event.to_record())
                    .map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
            }
            exported += batch.len() as u64;
            last_position = batch.last().map(LoggedEvent::position);
            Ok::<_, AdminError>(())
        },
        |waited, held_back| {
            if notices.due(waited) {
                eprintln!(
                    "jobs-admin: waiting for an older transaction to finish (it may be in \
                     another database of the server): {held_back} committed event(s) come \
                     after it in the log ({}s so far)",
                    waited.as_secs()
                );
            }
        },
    )
    .await?;
    out.flush()?;
    match last_position {
        Some(position) => eprintln!(
            "exported {exported} event(s); the last has position {position} \
             (continue with --from-position {position})"
        ),
        None => eprintln!("exported 0 events"),
    }
    Ok(())
}

/// The cursor after the event at `position`, once that event is final: a position read
/// moments after it was written may still have older transactions commit before it, and
/// continuing from it too early would skip their events.
async fn final_cursor_after(log: &dyn EventLog, position: i64) -> Result<LogCursor, AdminError> {
    let started = std::time::Instant::now();
    let mut notices = WaitNotices::default();
    loop {
        match log.cursor_after(position).await? {
            None => return Err(AdminError::UnknownPosition(position)),
            Some((cursor, true)) => return Ok(cursor),
            Some((_, false)) => {
                if notices.due(started.elapsed()) {
                    eprintln!(
                        "jobs-admin: waiting for the transactions older than position \
                         {position} to finish ({}s so far)",
                        started.elapsed().as_secs()
                    );
                }
                tokio::time::sleep(WAIT_POLL).await;
            }
        }
    }
}

/// When a wait is worth a line on standard error: after 2 s, then every 10 s.
struct WaitNotices {
    next: Duration,
}

impl Default for WaitNotices {
    fn default() -> Self {
        WaitNotices {
            next: Duration::from_secs(2),
        }
    }
}

impl WaitNotices {
    /// Whether to tell the operator, `waited` into the wait.
    fn due(&mut self, waited: Duration) -> bool {
        if waited < self.next {
            return false;
        }
        self.next += Duration::from_secs(10);
        true
    }
}
