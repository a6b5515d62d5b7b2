//! The `Job` aggregate of the jobs service: its statuses, commands, events, validated value
//! types and typed business errors. Pure: no I/O, no HTTP, no storage — everything here can
//! be exercised with `cqrs_es::test::TestFramework`.

mod aggregate;
mod commands;
mod errors;
mod events;
mod status;
pub mod values;

pub use aggregate::{Job, JobServices};
pub use commands::{
    CancelJob, CreateJob, JobCommand, ProgressJob, RecordResult, ScheduleJob, StartJob, SuspendJob,
};
pub use errors::{CommandKind, JobError};
pub use events::{
    present_or_null, JobCancelled, JobChanges, JobCompleted, JobCreated, JobEvent, JobProgressed,
    JobResumed, JobScheduled, JobStarted, JobSuspended, JobUnscheduled, JobUpdated, EVENT_VERSION,
};
pub use status::{JobStatus, Outcome, ProgressStatus};

/// The aggregate type name stored with every event. Stable forever.
pub const AGGREGATE_TYPE: &str = "Job";

/// Timestamps are kept at microsecond precision: that is what PostgreSQL stores, so a value
/// read back from either store equals the one that was written.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// The current time, truncated to whole microseconds (see [`Timestamp`]).
pub fn now() -> Timestamp {
    truncate_to_micros(chrono::Utc::now())
}

/// Parses an RFC 3339 timestamp into UTC at microsecond precision. `None` for anything else,
/// including instants whose UTC year falls outside 0000–9999: RFC 3339 cannot write those,
/// and the stores would order them differently.
pub fn parse_timestamp(text: &str) -> Option<Timestamp> {
    use chrono::Datelike;
    let at = chrono::DateTime::parse_from_rfc3339(text)
        .ok()?
        .with_timezone(&chrono::Utc);
    (0..=9999)
        .contains(&at.year())
        .then(|| truncate_to_micros(at))
}

/// Drops sub-microsecond precision so the value survives a round trip through any store.
pub fn truncate_to_micros(at: Timestamp) -> Timestamp {
    use chrono::SubsecRound;
    at.trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_micros_within_four_digit_years() {
        let at = parse_timestamp("2026-12-01T08:30:00.123456789+02:00").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-12-01T06:30:00.123456+00:00");
        assert!(parse_timestamp("9999-12-31T23:59:59Z").is_some());
        assert!(parse_timestamp("0000-01-01T00:00:00Z").is_some());
        assert_eq!(parse_timestamp("9999-12-31T23:59:59-23:59"), None);
        assert_eq!(parse_timestamp("0000-01-01T00:00:00+23:59"), None);
        assert_eq!(parse_timestamp("2026-12-01"), None);
        assert_eq!(parse_timestamp(""), None);
    }
}
