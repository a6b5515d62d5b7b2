//! SPEC §3's job lifecycle table, written out literally and independently of the code under
//! test, for the integration tests (`transitions.rs` and `properties.rs`) to check against.
//! Nothing here calls `Job::decide` or `Aggregate::apply`.

// Each test crate that includes this module uses only part of it.
#![allow(dead_code)]

use domain::{JobStatus, Outcome, ProgressStatus};

/// A column of the table: a kind of command (create is not in the table: it is only
/// accepted for a job that does not exist yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Schedule,
    Unschedule,
    Progress(ProgressStatus),
    Start,
    Suspend,
    Resume,
    Result(Outcome),
    Cancel,
    Update,
}

/// The cancel column: ✓, "✗ not cancellable", or the rule for a job already cancelled
/// ("same reason: 204, no new event; other reason: 422").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelRule {
    Allowed,
    NotCancellable,
    SameReasonNoEventOtherReasonRejected,
}

/// The update column: ✓, "✓ but description/personId locked", or ✗.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateRule {
    Allowed,
    DescriptionAndPersonIdLocked,
    Refused,
}

/// One row of the table (`from` is the current status).
#[derive(Debug)]
pub struct Row {
    pub from: JobStatus,
    pub schedule: bool,
    pub unschedule: bool,
    /// The progress steps allowed from `from`.
    pub progress: &'static [ProgressStatus],
    pub start: bool,
    pub suspend: bool,
    pub resume: bool,
    pub result: bool,
    pub cancel: CancelRule,
    pub update: UpdateRule,
}

const Y: bool = true;
const N: bool = false;

use CancelRule::{
    Allowed as CAN_CANCEL, NotCancellable as NOT_CANCELLABLE,
    SameReasonNoEventOtherReasonRejected as CANCELLED,
};
use JobStatus as S;
use ProgressStatus::{
    Accepted as ACCEPTED, OnTheWay as ON_THE_WAY, Read as READ, Refused as REFUSED, Sent as SENT,
};
use UpdateRule::{
    Allowed as CAN_UPDATE, DescriptionAndPersonIdLocked as LOCKED, Refused as NO_UPDATE,
};

/// SPEC §3, row by row (an empty cell is `N`: the command is refused from that status).
#[rustfmt::skip]
pub const SPEC_TABLE: [Row; 13] = [
    //                                schedule     unschedule     progress                                             start     suspend     resume     result     cancel                    update
    Row { from: S::New,                 schedule: Y, unschedule: N, progress: &[],                                     start: N, suspend: N, resume: N, result: N, cancel: CAN_CANCEL,      update: CAN_UPDATE },
    Row { from: S::Scheduled,           schedule: Y, unschedule: Y, progress: &[SENT],                                 start: Y, suspend: N, resume: N, result: N, cancel: CAN_CANCEL,      update: CAN_UPDATE },
    Row { from: S::Unscheduled,         schedule: Y, unschedule: N, progress: &[],                                     start: N, suspend: N, resume: N, result: N, cancel: CAN_CANCEL,      update: CAN_UPDATE },
    Row { from: S::Sent,                schedule: Y, unschedule: Y, progress: &[READ, ACCEPTED, REFUSED, ON_THE_WAY],  start: Y, suspend: N, resume: N, result: N, cancel: CAN_CANCEL,      update: CAN_UPDATE },
    Row { from: S::Read,                schedule: Y, unschedule: Y, progress: &[ACCEPTED, REFUSED, ON_THE_WAY],        start: Y, suspend: N, resume: N, result: N, cancel: CAN_CANCEL,      update: CAN_UPDATE },
    Row { from: S::Accepted,            schedule: Y, unschedule: Y, progress: &[ON_THE_WAY],                           start: Y, suspend: N, resume: N, result: N, cancel: CAN_CANCEL,      update: CAN_UPDATE },
    Row { from: S::Refused,             schedule: Y, unschedule: Y, progress: &[],                                     start: N, suspend: N, resume: N, result: N, cancel: CAN_CANCEL,      update: CAN_UPDATE },
    Row { from: S::OnTheWay,            schedule: N, unschedule: N, progress: &[],                                     start: Y, suspend: N, resume: N, result: N, cancel: CAN_CANCEL,      update: CAN_UPDATE },
    Row { from: S::Started,             schedule: N, unschedule: N, progress: &[],                                     start: N, suspend: Y, resume: N, result: Y, cancel: NOT_CANCELLABLE, update: LOCKED },
    Row { from: S::Suspended,           schedule: N, unschedule: N, progress: &[],                                     start: N, suspend: N, resume: Y, result: N, cancel: NOT_CANCELLABLE, update: LOCKED },
    Row { from: S::CompletedOk,         schedule: N, unschedule: N, progress: &[],                                     start: N, suspend: N, resume: N, result: N, cancel: NOT_CANCELLABLE, update: LOCKED },
    Row { from: S::CompletedWithIssues, schedule: N, unschedule: N, progress: &[],                                     start: N, suspend: N, resume: N, result: N, cancel: NOT_CANCELLABLE, update: LOCKED },
    Row { from: S::Cancelled,           schedule: N, unschedule: N, progress: &[],                                     start: N, suspend: N, resume: N, result: N, cancel: CANCELLED,       update: NO_UPDATE },
];

/// The 13 statuses, in the table's order.
pub const STATUSES: [JobStatus; 13] = [
    S::New,
    S::Scheduled,
    S::Unscheduled,
    S::Sent,
    S::Read,
    S::Accepted,
    S::Refused,
    S::OnTheWay,
    S::Started,
    S::Suspended,
    S::CompletedOk,
    S::CompletedWithIssues,
    S::Cancelled,
];

pub const PROGRESS_STEPS: [ProgressStatus; 5] = [SENT, READ, ACCEPTED, REFUSED, ON_THE_WAY];
pub const OUTCOMES: [Outcome; 2] = [Outcome::CompletedOk, Outcome::CompletedWithIssues];

/// The statuses after which nothing changes the status any more.
pub const TERMINAL: [JobStatus; 3] = [S::CompletedOk, S::CompletedWithIssues, S::Cancelled];

/// The table's row for `status`.
pub fn row(status: JobStatus) -> &'static Row {
    SPEC_TABLE
        .iter()
        .find(|row| row.from == status)
        .unwrap_or_else(|| panic!("SPEC_TABLE has no row for {status:?}"))
}

/// Whether the table has a ✓ (of any kind) in this cell. For cancel on a cancelled job this is
/// `false`: it never records an event (same reason: no-op; other reason: rejected). For update
/// in a locked status it is `true` (only some changes are refused).
pub fn allows(status: JobStatus, column: Column) -> bool {
    let row = row(status);
    match column {
        Column::Schedule => row.schedule,
        Column::Unschedule => row.unschedule,
        Column::Progress(step) => row.progress.contains(&step),
        Column::Start => row.start,
        Column::Suspend => row.suspend,
        Column::Resume => row.resume,
        Column::Result(_) => row.result,
        Column::Cancel => row.cancel == CancelRule::Allowed,
        Column::Update => row.update != UpdateRule::Refused,
    }
}

/// The status a job is in after an allowed command of this column, by the meaning of each
/// command (progress to X → X; resume → started; a result → its outcome; update keeps it).
pub fn target(from: JobStatus, column: Column) -> JobStatus {
    match column {
        Column::Schedule => S::Scheduled,
        Column::Unschedule => S::Unscheduled,
        Column::Progress(step) => progress_status(step),
        Column::Start => S::Started,
        Column::Suspend => S::Suspended,
        Column::Resume => S::Started,
        Column::Result(outcome) => outcome_status(outcome),
        Column::Cancel => S::Cancelled,
        Column::Update => from,
    }
}

/// The job status a progress step names (written out here rather than taken from the crate).
pub fn progress_status(step: ProgressStatus) -> JobStatus {
    match step {
        SENT => S::Sent,
        READ => S::Read,
        ACCEPTED => S::Accepted,
        REFUSED => S::Refused,
        ON_THE_WAY => S::OnTheWay,
    }
}

/// The job status an outcome names.
pub fn outcome_status(outcome: Outcome) -> JobStatus {
    match outcome {
        Outcome::CompletedOk => S::CompletedOk,
        Outcome::CompletedWithIssues => S::CompletedWithIssues,
    }
}

/// The wire name of a status, for failure messages.
pub fn wire(status: JobStatus) -> &'static str {
    match status {
        S::New => "new",
        S::Scheduled => "scheduled",
        S::Unscheduled => "unscheduled",
        S::Sent => "sent",
        S::Read => "read",
        S::Accepted => "accepted",
        S::Refused => "refused",
        S::OnTheWay => "onTheWay",
        S::Started => "started",
        S::Suspended => "suspended",
        S::CompletedOk => "completedOk",
        S::CompletedWithIssues => "completedWithIssues",
        S::Cancelled => "cancelled",
    }
}

/// Polls a future to completion without a runtime. cqrs-es's aggregate futures here never
/// wait on anything, so a no-op waker suffices (and `when_async` needs no tokio).
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..1_000 {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
    panic!("the future did not complete");
}
