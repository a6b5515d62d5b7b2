//! The opaque cursors of paged answers: base64url of a tagged text, so that clients cannot
//! build cursors of their own and what one holds may change between releases. Each kind
//! names where the next page starts — after an event's or a status change's sequence, after
//! a job's place in a list's order (with a fingerprint of that list), at a place in the
//! global log — and reads back only a cursor of its own kind.

use crate::http::error::ApiError;
use crate::http::problem::ProblemType;
use projections::{Direction, JobFilter, JobKey};

/// The 400 for a cursor that is not one of `list`'s.
pub(crate) fn invalid_cursor(list: &str) -> ApiError {
    ApiError::bad_request(
        ProblemType::InvalidPaging,
        format!("cursor must be the nextCursor of an earlier page of {list}"),
    )
}

/// Cursors are opaque: base64url of a tagged text. The wrapping keeps clients from
/// building cursors of their own, so what one holds may change between releases.
fn wrap_cursor(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

/// The text of a cursor, if it is one of ours with the tag `prefix`.
fn unwrap_cursor(cursor: &str, prefix: &str) -> Option<String> {
    use base64::Engine;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    Some(
        String::from_utf8(text)
            .ok()?
            .strip_prefix(prefix)?
            .to_owned(),
    )
}

/// The cursor of the change feed: a place in the global log.
pub struct FeedCursor;

impl FeedCursor {
    const PREFIX: &'static str = "feed:";

    pub fn at(cursor: projections::log::LogCursor) -> String {
        wrap_cursor(&format!(
            "{}{}:{}",
            Self::PREFIX,
            cursor.transaction,
            cursor.position
        ))
    }

    pub(crate) fn read(cursor: &str) -> Option<projections::log::LogCursor> {
        let text = unwrap_cursor(cursor, Self::PREFIX)?;
        let (transaction, position) = text.split_once(':')?;
        let cursor = projections::log::LogCursor {
            transaction: transaction.parse().ok()?,
            position: position.parse().ok()?,
        };
        (cursor.transaction >= 0 && cursor.position >= 0).then_some(cursor)
    }
}

/// The `nextCursor` of a page of a job's events: the sequence of its last event.
pub struct EventCursor;

impl EventCursor {
    const PREFIX: &'static str = "events-after:";

    /// The cursor of the page after the event `sequence`.
    pub fn after(sequence: i64) -> String {
        wrap_cursor(&format!("{}{sequence}", Self::PREFIX))
    }

    /// The sequence a cursor continues after.
    pub(crate) fn read(cursor: &str) -> Option<i64> {
        unwrap_cursor(cursor, Self::PREFIX)?
            .parse()
            .ok()
            .filter(|sequence| *sequence >= 0)
    }
}

/// The `nextCursor` of a page of a job's status history: its direction and the sequence
/// of its last entry.
pub struct HistoryCursor;

impl HistoryCursor {
    const PREFIX: &'static str = "history:";

    pub fn after(direction: Direction, sequence: i64) -> String {
        wrap_cursor(&format!("{}{}:{sequence}", Self::PREFIX, direction.sql()))
    }

    pub(crate) fn read(cursor: &str, direction: Direction) -> Option<i64> {
        let text = unwrap_cursor(cursor, Self::PREFIX)?;
        let (written_for, sequence) = text.split_once(':')?;
        (written_for == direction.sql())
            .then(|| sequence.parse().ok())
            .flatten()
            .filter(|sequence: &i64| *sequence >= 0)
    }
}

/// The `nextCursor` of a page of a job list: the order, direction and filters it was made
/// for (as a fingerprint, so the cursor stays short), and the last job's place in that
/// order (the value it is ordered by, in microseconds, and its id).
pub struct JobCursor;

impl JobCursor {
    const PREFIX: &'static str = "jobs:";

    pub fn after(filter: &JobFilter, job: &projections::JobView) -> String {
        let key = filter.sort.key_of(job);
        wrap_cursor(&format!(
            "{}{}:{}:{}",
            Self::PREFIX,
            Self::fingerprint(filter),
            key.at.timestamp_micros(),
            key.job_id
        ))
    }

    pub(crate) fn read(cursor: &str, filter: &JobFilter) -> Option<JobKey> {
        let text = unwrap_cursor(cursor, Self::PREFIX)?;
        let mut parts = text.split(':');
        let (fingerprint, micros, job_id) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || fingerprint != Self::fingerprint(filter) {
            return None;
        }
        Some(JobKey {
            at: chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            job_id: uuid::Uuid::parse_str(job_id).ok()?,
        })
    }

    /// What a list's order, direction and filters come to, in 16 hexadecimal digits: a
    /// cursor continues only the list it came from.
    fn fingerprint(filter: &JobFilter) -> String {
        use sha2::{Digest, Sha256};
        let micros = |at: Option<domain::Timestamp>| {
            at.map(|at| at.timestamp_micros().to_string())
                .unwrap_or_default()
        };
        let mut statuses: Vec<&str> = filter
            .statuses
            .iter()
            .map(|status| status.as_str())
            .collect();
        statuses.sort_unstable();
        statuses.dedup();
        let canonical = format!(
            "{}|{}|{}|{:?}|{:?}|{:?}|{}|{}",
            filter.sort.column(),
            filter.direction.sql(),
            statuses.join(","),
            filter.type_id,
            filter.contact_id,
            filter.reference,
            micros(filter.created_from),
            micros(filter.created_to),
        );
        let digest = Sha256::digest(canonical.as_bytes());
        digest[..8]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use projections::log::LogCursor;

    #[test]
    fn each_cursor_reads_back_only_as_its_own_kind() {
        let event = EventCursor::after(5);
        assert_eq!(EventCursor::read(&event), Some(5));
        assert_eq!(HistoryCursor::read(&event, Direction::Ascending), None);
        assert_eq!(FeedCursor::read(&event), None);

        let history = HistoryCursor::after(Direction::Descending, 7);
        assert_eq!(
            HistoryCursor::read(&history, Direction::Descending),
            Some(7)
        );
        assert_eq!(
            HistoryCursor::read(&history, Direction::Ascending),
            None,
            "its direction only"
        );

        let place = LogCursor {
            transaction: 12,
            position: 34,
        };
        assert_eq!(FeedCursor::read(&FeedCursor::at(place)), Some(place));
        assert_eq!(EventCursor::read(&FeedCursor::at(place)), None);
    }

    #[test]
    fn a_job_cursor_continues_only_the_list_it_came_from() {
        let job: projections::JobView = serde_json::from_value(serde_json::json!({
            "id": uuid::Uuid::now_v7(), "customerId": 1, "typeId": 1, "contactId": 2,
            "status": "new", "customFields": [], "createdAt": "2026-11-30T01:02:03.456789Z",
            "updatedAt": "2026-11-30T01:02:04Z", "version": 1
        }))
        .expect("a job");
        let filter = JobFilter {
            type_id: Some(3),
            ..Default::default()
        };
        let cursor = JobCursor::after(&filter, &job);
        let key = JobCursor::read(&cursor, &filter).expect("its own list");
        assert_eq!(key, filter.sort.key_of(&job), "to the microsecond");
        let other = JobFilter {
            type_id: Some(4),
            ..Default::default()
        };
        assert_eq!(JobCursor::read(&cursor, &other), None);
        let reversed = JobFilter {
            direction: Direction::Descending,
            ..filter.clone()
        };
        assert_eq!(JobCursor::read(&cursor, &reversed), None);
        assert_eq!(JobCursor::read("not-a-cursor", &filter), None);
    }
}
