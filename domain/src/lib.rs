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

/// Drops sub-microsecond precision so the value survives a round trip through any store.
pub fn truncate_to_micros(at: Timestamp) -> Timestamp {
    use chrono::SubsecRound;
    at.trunc_subsecs(6)
}
