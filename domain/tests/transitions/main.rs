//! Given/when/then tests of every cell of SPEC §3's job lifecycle table.
//!
//! For each of the 13 statuses there is a canonical event history that reaches it; for each
//! kind of command there is one (or a few) concrete commands ("probes"). The expected outcome
//! of every (status, probe) cell is derived from the literal table in `common/mod.rs` — never
//! from the code under test — and compared, by value, with what the aggregate does through
//! `cqrs_es::test::TestFramework` with a fixed clock. Each column is its own test; a failing
//! test lists every disagreeing cell by status and command.
//!
//! This file holds the fixtures and canonical histories; `table` runs the cells, and
//! `cancel` and `update` spell out the cancel contract and the update rules.

#[path = "../common/mod.rs"]
mod common;

use chrono::{DateTime, TimeZone, Utc};
use common::{
    row, target, wire, CancelRule, Column, UpdateRule, OUTCOMES, PROGRESS_STEPS, STATUSES,
};
use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use domain::values::{
    CancelReason, Comment, CustomField, CustomFields, Description, OrderNumber, PlannedDuration,
    PositiveId, Reference, ResultNotes,
};
use domain::{
    CancelJob, CommandKind, CreateJob, Job, JobCancelled, JobChanges, JobCommand, JobCompleted,
    JobCreated, JobError, JobEvent, JobProgressed, JobResumed, JobScheduled, JobServices,
    JobStarted, JobStatus, JobSuspended, JobUnscheduled, JobUpdated, Outcome, ProgressJob,
    ProgressStatus, RecordResult, ScheduleJob, StartJob, SuspendJob,
};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// The fixed clock every command is handled at.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 4, 5, 6, 7).unwrap() + chrono::Duration::microseconds(123_456)
}

/// When the events of the canonical histories happened (before `now`).
fn earlier() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap()
}

fn id(value: i64) -> PositiveId {
    PositiveId::parse(value).unwrap()
}
fn minutes(value: i64) -> PlannedDuration {
    PlannedDuration::parse(value).unwrap()
}
fn reference(value: &str) -> Reference {
    Reference::parse(value).unwrap()
}
fn description(value: &str) -> Description {
    Description::parse(value).unwrap()
}
fn order_number(value: &str) -> OrderNumber {
    OrderNumber::parse(value).unwrap()
}
fn comment(value: &str) -> Comment {
    Comment::parse(value).unwrap()
}
fn notes(value: &str) -> ResultNotes {
    ResultNotes::parse(value).unwrap()
}
fn reason(value: &str) -> CancelReason {
    CancelReason::parse(value).unwrap()
}
fn custom_fields(fields: &[(i64, Option<&str>)]) -> CustomFields {
    CustomFields::new(
        fields
            .iter()
            .map(|(definition, value)| CustomField {
                definition_id: id(*definition),
                value: value.map(|v| domain::values::CustomFieldValue::parse(v).unwrap()),
            })
            .collect(),
    )
    .unwrap()
}

const PERSON_A: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_000a);
const PERSON_B: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_000b);

/// The reason the canonical `cancelled` history was cancelled with.
const CANCELLED_REASON: &str = "customer request";

/// The canonical job: every detail set, so clearing and locking can be observed.
fn created() -> JobCreated {
    JobCreated {
        customer_id: id(42),
        type_id: id(1),
        contact_id: id(2),
        planned_duration: Some(minutes(60)),
        reference: Some(reference("REF-1")),
        description: Some(description("Fix boiler")),
        person_id: Some(PERSON_A),
        order_number: Some(order_number("PO-1")),
        custom_fields: custom_fields(&[(1, Some("blue"))]),
        occurred_at: earlier(),
    }
}

// Events of the canonical histories (at `earlier()`).
fn e_created() -> JobEvent {
    JobEvent::JobCreated(created())
}
fn e_scheduled() -> JobEvent {
    // No planned duration here, so the job keeps the 60 minutes it was created with.
    JobEvent::JobScheduled(JobScheduled {
        resource_id: id(3),
        vehicle_id: id(4),
        planned_start: Utc.with_ymd_and_hms(2025, 1, 10, 9, 0, 0).unwrap(),
        planned_duration: None,
        occurred_at: earlier(),
    })
}
fn e_unscheduled() -> JobEvent {
    JobEvent::JobUnscheduled(JobUnscheduled {
        occurred_at: earlier(),
    })
}
fn e_progressed(status: ProgressStatus) -> JobEvent {
    JobEvent::JobProgressed(JobProgressed {
        status,
        comment: None,
        occurred_at: earlier(),
    })
}
fn e_started() -> JobEvent {
    JobEvent::JobStarted(JobStarted {
        comment: None,
        occurred_at: earlier(),
    })
}
fn e_suspended() -> JobEvent {
    JobEvent::JobSuspended(JobSuspended {
        reason: None,
        occurred_at: earlier(),
    })
}
fn e_resumed() -> JobEvent {
    JobEvent::JobResumed(JobResumed {
        occurred_at: earlier(),
    })
}
fn e_completed(outcome: Outcome) -> JobEvent {
    JobEvent::JobCompleted(JobCompleted {
        outcome,
        notes: None,
        occurred_at: earlier(),
    })
}
fn e_cancelled(why: &str) -> JobEvent {
    JobEvent::JobCancelled(JobCancelled {
        reason: reason(why),
        occurred_at: earlier(),
    })
}

/// A canonical event history that reaches `status`.
fn history(status: JobStatus) -> Vec<JobEvent> {
    use ProgressStatus as P;
    let to_on_the_way = || {
        vec![
            e_created(),
            e_scheduled(),
            e_progressed(P::Sent),
            e_progressed(P::Read),
            e_progressed(P::Accepted),
            e_progressed(P::OnTheWay),
        ]
    };
    let started = || [to_on_the_way(), vec![e_started()]].concat();
    match status {
        JobStatus::New => vec![e_created()],
        JobStatus::Scheduled => vec![e_created(), e_scheduled()],
        JobStatus::Unscheduled => vec![e_created(), e_scheduled(), e_unscheduled()],
        JobStatus::Sent => vec![e_created(), e_scheduled(), e_progressed(P::Sent)],
        JobStatus::Read => vec![
            e_created(),
            e_scheduled(),
            e_progressed(P::Sent),
            e_progressed(P::Read),
        ],
        JobStatus::Accepted => vec![
            e_created(),
            e_scheduled(),
            e_progressed(P::Sent),
            e_progressed(P::Read),
            e_progressed(P::Accepted),
        ],
        JobStatus::Refused => vec![
            e_created(),
            e_scheduled(),
            e_progressed(P::Sent),
            e_progressed(P::Refused),
        ],
        JobStatus::OnTheWay => to_on_the_way(),
        JobStatus::Started => started(),
        JobStatus::Suspended => [started(), vec![e_suspended()]].concat(),
        // Through a suspension and resumption, so `JobResumed` is folded somewhere too.
        JobStatus::CompletedOk => [
            started(),
            vec![
                e_suspended(),
                e_resumed(),
                e_completed(Outcome::CompletedOk),
            ],
        ]
        .concat(),
        JobStatus::CompletedWithIssues => {
            [started(), vec![e_completed(Outcome::CompletedWithIssues)]].concat()
        }
        JobStatus::Cancelled => vec![e_created(), e_scheduled(), e_cancelled(CANCELLED_REASON)],
    }
}

fn fold(events: &[JobEvent]) -> Job {
    let mut job = Job::default();
    for event in events {
        job.apply(event.clone());
    }
    job
}

/// Runs one command against a history with the fixed clock, through cqrs-es's test framework.
/// (`when` runs the async handler on its own current-thread runtime, so it is used from plain
/// `#[test]`s; `then_expect_*` are used in the named tests, `inspect_result` in the table.)
fn when(given: Vec<JobEvent>, command: JobCommand) -> Result<Vec<JobEvent>, JobError> {
    TestFramework::<Job>::with(JobServices::fixed_clock(now()))
        .given(given)
        .when(command)
        .inspect_result()
}

fn then(given: Vec<JobEvent>, command: JobCommand) -> cqrs_es::test::AggregateResultValidator<Job> {
    TestFramework::<Job>::with(JobServices::fixed_clock(now()))
        .given(given)
        .when(command)
}

mod cancel;
mod snapshot;
mod table;
mod update;

use table::*;

#[test]
fn create_twice_is_already_exists_and_create_first_records_job_created() {
    then(vec![], Probe::Create.command()).then_expect_events(Probe::Create.accepted_events());
    then(history(JobStatus::New), Probe::Create.command())
        .then_expect_error(JobError::AlreadyExists);
}

#[test]
fn sync_and_async_when_agree() {
    for status in STATUSES {
        for probe in all_probes() {
            let async_result = common::block_on(
                TestFramework::<Job>::with(JobServices::fixed_clock(now()))
                    .given(history(status))
                    .when_async(probe.command()),
            )
            .inspect_result();
            assert_eq!(
                async_result,
                when(history(status), probe.command()),
                "from `{}`, command `{}`",
                wire(status),
                probe.describe()
            );
        }
    }
}
