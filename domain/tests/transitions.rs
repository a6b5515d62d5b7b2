//! Given/when/then tests of every cell of SPEC §3's job lifecycle table.
//!
//! For each of the 13 statuses there is a canonical event history that reaches it; for each
//! kind of command there is one (or a few) concrete commands ("probes"). The expected outcome
//! of every (status, probe) cell is derived from the literal table in `common/mod.rs` — never
//! from the code under test — and compared, by value, with what the aggregate does through
//! `cqrs_es::test::TestFramework` with a fixed clock. Each column is its own test; a failing
//! test lists every disagreeing cell by status and command.
//!
//! The named tests at the end spell out the cancel contract and the update rules.

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

// ---------------------------------------------------------------------------------------------
// Probes: the concrete commands tried in every status, and the events each should record
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UpdateProbe {
    /// typeId, contactId, plannedDuration, reference, orderNumber, customFields: never locked.
    OtherFields,
    /// `null` for reference and orderNumber.
    ClearReferenceAndOrderNumber,
    /// `null` for personId (a change of a locked field).
    ClearPersonId,
    ChangeDescription,
    ChangePersonId,
    /// description and personId "changed" to their current values, plus a new reference.
    LockedFieldsToCurrentValues,
    /// Every field given, each equal to its current value.
    EveryFieldToCurrentValue,
    /// No field given at all.
    Empty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelProbe {
    /// The reason the canonical `cancelled` history used.
    SameReason,
    /// That reason with surrounding whitespace (trims to the same reason).
    SameReasonPadded,
    /// Another reason.
    OtherReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Create,
    Update(UpdateProbe),
    Schedule,
    Unschedule,
    Progress(ProgressStatus),
    Start,
    Suspend,
    Resume,
    Result(Outcome),
    Cancel(CancelProbe),
}

const UPDATE_PROBES: [UpdateProbe; 8] = [
    UpdateProbe::OtherFields,
    UpdateProbe::ClearReferenceAndOrderNumber,
    UpdateProbe::ClearPersonId,
    UpdateProbe::ChangeDescription,
    UpdateProbe::ChangePersonId,
    UpdateProbe::LockedFieldsToCurrentValues,
    UpdateProbe::EveryFieldToCurrentValue,
    UpdateProbe::Empty,
];

const CANCEL_PROBES: [CancelProbe; 3] = [
    CancelProbe::SameReason,
    CancelProbe::SameReasonPadded,
    CancelProbe::OtherReason,
];

fn all_probes() -> Vec<Probe> {
    let mut probes = vec![Probe::Create];
    probes.extend(UPDATE_PROBES.map(Probe::Update));
    probes.extend([Probe::Schedule, Probe::Unschedule]);
    probes.extend(PROGRESS_STEPS.map(Probe::Progress));
    probes.extend([Probe::Start, Probe::Suspend, Probe::Resume]);
    probes.extend(OUTCOMES.map(Probe::Result));
    probes.extend(CANCEL_PROBES.map(Probe::Cancel));
    probes
}

fn schedule_command() -> ScheduleJob {
    ScheduleJob {
        resource_id: id(5),
        vehicle_id: id(6),
        planned_start: Utc.with_ymd_and_hms(2025, 3, 10, 8, 0, 0).unwrap(),
        planned_duration: Some(minutes(120)),
    }
}

fn create_command() -> CreateJob {
    CreateJob {
        customer_id: id(7),
        type_id: id(11),
        contact_id: id(12),
        planned_duration: Some(minutes(30)),
        reference: Some(reference("NEW-REF")),
        description: Some(description("Inspect roof")),
        person_id: Some(PERSON_B),
        order_number: None,
        custom_fields: custom_fields(&[(9, None)]),
    }
}

impl UpdateProbe {
    /// The update requested (the canonical job's details are those of `created()`).
    fn requested(self) -> JobChanges {
        match self {
            UpdateProbe::OtherFields => JobChanges {
                type_id: Some(id(3)),
                contact_id: Some(id(4)),
                planned_duration: Some(minutes(90)),
                reference: Some(Some(reference("REF-2"))),
                order_number: Some(Some(order_number("PO-2"))),
                custom_fields: Some(custom_fields(&[(1, Some("red")), (2, None)])),
                ..JobChanges::default()
            },
            UpdateProbe::ClearReferenceAndOrderNumber => JobChanges {
                reference: Some(None),
                order_number: Some(None),
                ..JobChanges::default()
            },
            UpdateProbe::ClearPersonId => JobChanges {
                person_id: Some(None),
                ..JobChanges::default()
            },
            UpdateProbe::ChangeDescription => JobChanges {
                description: Some(description("Replace boiler")),
                ..JobChanges::default()
            },
            UpdateProbe::ChangePersonId => JobChanges {
                person_id: Some(Some(PERSON_B)),
                ..JobChanges::default()
            },
            UpdateProbe::LockedFieldsToCurrentValues => JobChanges {
                description: Some(description("Fix boiler")),
                person_id: Some(Some(PERSON_A)),
                reference: Some(Some(reference("REF-2"))),
                ..JobChanges::default()
            },
            UpdateProbe::EveryFieldToCurrentValue => JobChanges {
                type_id: Some(id(1)),
                contact_id: Some(id(2)),
                planned_duration: Some(minutes(60)),
                reference: Some(Some(reference("REF-1"))),
                description: Some(description("Fix boiler")),
                person_id: Some(Some(PERSON_A)),
                order_number: Some(Some(order_number("PO-1"))),
                custom_fields: Some(custom_fields(&[(1, Some("blue"))])),
            },
            UpdateProbe::Empty => JobChanges::default(),
        }
    }

    /// The locked field this update really changes, if any.
    fn changes_locked_field(self) -> Option<&'static str> {
        match self {
            UpdateProbe::ChangeDescription => Some("description"),
            UpdateProbe::ClearPersonId | UpdateProbe::ChangePersonId => Some("personId"),
            _ => None,
        }
    }

    /// The changes recorded when the update is accepted: only what really changes; nothing at
    /// all when nothing changes.
    fn recorded(self) -> Option<JobChanges> {
        match self {
            UpdateProbe::LockedFieldsToCurrentValues => Some(JobChanges {
                reference: Some(Some(reference("REF-2"))),
                ..JobChanges::default()
            }),
            UpdateProbe::EveryFieldToCurrentValue | UpdateProbe::Empty => None,
            other => Some(other.requested()),
        }
    }
}

impl CancelProbe {
    fn raw_reason(self) -> &'static str {
        match self {
            CancelProbe::SameReason => "customer request",
            CancelProbe::SameReasonPadded => " \t customer request  \n",
            CancelProbe::OtherReason => "weather",
        }
    }

    /// The reason as recorded: trimmed.
    fn recorded_reason(self) -> &'static str {
        match self {
            CancelProbe::SameReason | CancelProbe::SameReasonPadded => "customer request",
            CancelProbe::OtherReason => "weather",
        }
    }
}

impl Probe {
    fn command(self) -> JobCommand {
        match self {
            Probe::Create => JobCommand::Create(create_command()),
            Probe::Update(update) => JobCommand::Update(update.requested()),
            Probe::Schedule => JobCommand::Schedule(schedule_command()),
            Probe::Unschedule => JobCommand::Unschedule,
            Probe::Progress(status) => JobCommand::Progress(ProgressJob {
                status,
                comment: Some(comment("ping")),
            }),
            Probe::Start => JobCommand::Start(StartJob {
                comment: Some(comment("arrived")),
            }),
            Probe::Suspend => JobCommand::Suspend(SuspendJob {
                reason: Some(comment("waiting for parts")),
            }),
            Probe::Resume => JobCommand::Resume,
            Probe::Result(outcome) => JobCommand::RecordResult(RecordResult {
                outcome,
                notes: Some(notes("all done")),
            }),
            Probe::Cancel(cancel) => JobCommand::Cancel(CancelJob {
                reason: reason(cancel.raw_reason()),
            }),
        }
    }

    /// The table column this probe belongs to (`None` for create, which is not in it).
    fn column(self) -> Option<Column> {
        Some(match self {
            Probe::Create => return None,
            Probe::Update(_) => Column::Update,
            Probe::Schedule => Column::Schedule,
            Probe::Unschedule => Column::Unschedule,
            Probe::Progress(step) => Column::Progress(step),
            Probe::Start => Column::Start,
            Probe::Suspend => Column::Suspend,
            Probe::Resume => Column::Resume,
            Probe::Result(outcome) => Column::Result(outcome),
            Probe::Cancel(_) => Column::Cancel,
        })
    }

    /// The kind a `Refused` error names for this probe.
    fn kind(self) -> CommandKind {
        match self {
            Probe::Create => unreachable!("create is never refused by status"),
            Probe::Update(_) => CommandKind::Update,
            Probe::Schedule => CommandKind::Schedule,
            Probe::Unschedule => CommandKind::Unschedule,
            Probe::Progress(step) => CommandKind::Progress(step),
            Probe::Start => CommandKind::Start,
            Probe::Suspend => CommandKind::Suspend,
            Probe::Resume => CommandKind::Resume,
            Probe::Result(_) => CommandKind::RecordResult,
            Probe::Cancel(_) => CommandKind::Cancel,
        }
    }

    /// The events an accepted probe records, each at the fixed clock's time.
    fn accepted_events(self) -> Vec<JobEvent> {
        let at = now();
        let event = match self {
            Probe::Create => {
                let c = create_command();
                JobEvent::JobCreated(JobCreated {
                    customer_id: c.customer_id,
                    type_id: c.type_id,
                    contact_id: c.contact_id,
                    planned_duration: c.planned_duration,
                    reference: c.reference,
                    description: c.description,
                    person_id: c.person_id,
                    order_number: c.order_number,
                    custom_fields: c.custom_fields,
                    occurred_at: at,
                })
            }
            Probe::Update(update) => match update.recorded() {
                Some(changes) => JobEvent::JobUpdated(JobUpdated {
                    changes,
                    occurred_at: at,
                }),
                None => return vec![],
            },
            Probe::Schedule => JobEvent::JobScheduled(JobScheduled {
                resource_id: id(5),
                vehicle_id: id(6),
                planned_start: Utc.with_ymd_and_hms(2025, 3, 10, 8, 0, 0).unwrap(),
                planned_duration: Some(minutes(120)),
                occurred_at: at,
            }),
            Probe::Unschedule => JobEvent::JobUnscheduled(JobUnscheduled { occurred_at: at }),
            Probe::Progress(status) => JobEvent::JobProgressed(JobProgressed {
                status,
                comment: Some(comment("ping")),
                occurred_at: at,
            }),
            Probe::Start => JobEvent::JobStarted(JobStarted {
                comment: Some(comment("arrived")),
                occurred_at: at,
            }),
            Probe::Suspend => JobEvent::JobSuspended(JobSuspended {
                reason: Some(comment("waiting for parts")),
                occurred_at: at,
            }),
            Probe::Resume => JobEvent::JobResumed(JobResumed { occurred_at: at }),
            Probe::Result(outcome) => JobEvent::JobCompleted(JobCompleted {
                outcome,
                notes: Some(notes("all done")),
                occurred_at: at,
            }),
            Probe::Cancel(cancel) => JobEvent::JobCancelled(JobCancelled {
                reason: reason(cancel.recorded_reason()),
                occurred_at: at,
            }),
        };
        vec![event]
    }

    fn describe(self) -> String {
        match self {
            Probe::Create => "create".into(),
            Probe::Update(update) => format!("update ({update:?})"),
            Probe::Schedule => "schedule".into(),
            Probe::Unschedule => "unschedule".into(),
            Probe::Progress(step) => format!("progress to {}", wire(common::progress_status(step))),
            Probe::Start => "start".into(),
            Probe::Suspend => "suspend".into(),
            Probe::Resume => "resume".into(),
            Probe::Result(outcome) => format!("result {}", wire(common::outcome_status(outcome))),
            Probe::Cancel(cancel) => format!("cancel with reason {:?}", cancel.raw_reason()),
        }
    }
}

/// SPEC §3's verdict on `probe` from `status` (`None`: a job never created), derived only from
/// the literal table.
fn expected(status: Option<JobStatus>, probe: Probe) -> Result<Vec<JobEvent>, JobError> {
    let Some(status) = status else {
        return match probe {
            Probe::Create => Ok(probe.accepted_events()),
            _ => Err(JobError::NotFound),
        };
    };
    let refused = || {
        Err(JobError::Refused {
            command: probe.kind(),
            status,
        })
    };
    let row = row(status);
    match probe {
        Probe::Create => Err(JobError::AlreadyExists),
        Probe::Update(update) => match row.update {
            UpdateRule::Refused => refused(),
            UpdateRule::Allowed => Ok(probe.accepted_events()),
            UpdateRule::DescriptionAndPersonIdLocked => match update.changes_locked_field() {
                Some(field) => Err(JobError::FieldLocked { field, status }),
                None => Ok(probe.accepted_events()),
            },
        },
        Probe::Cancel(cancel) => match row.cancel {
            CancelRule::Allowed => Ok(probe.accepted_events()),
            CancelRule::NotCancellable => refused(),
            CancelRule::SameReasonNoEventOtherReasonRejected => match cancel {
                CancelProbe::SameReason | CancelProbe::SameReasonPadded => Ok(vec![]),
                CancelProbe::OtherReason => Err(JobError::AlreadyCancelled),
            },
        },
        _ => {
            if common::allows(status, probe.column().unwrap()) {
                Ok(probe.accepted_events())
            } else {
                refused()
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running cells
// ---------------------------------------------------------------------------------------------

/// Checks cells one by one and reports every disagreement (not only the first) at the end.
#[derive(Default)]
struct Cells {
    checked: usize,
    failures: Vec<String>,
}

impl Cells {
    fn check(&mut self, from: Option<JobStatus>, probe: Probe) {
        self.checked += 1;
        let cell = format!(
            "from `{}`, command `{}`",
            from.map_or("<job never created>", wire),
            probe.describe()
        );
        let given = from.map(history).unwrap_or_default();
        let expected = expected(from, probe);
        let actual = when(given.clone(), probe.command());
        if actual != expected {
            self.failures.push(format!(
                "{cell}:\n    expected {expected:?}\n    got      {actual:?}"
            ));
            return;
        }
        // An accepted command that records events leads where the table's command leads.
        if let Ok(events) = actual {
            if events.is_empty() {
                return;
            }
            let expected_status = match (from, probe.column()) {
                (None, _) => JobStatus::New,
                (Some(from), Some(column)) => target(from, column),
                (Some(_), None) => unreachable!("create is only accepted for a new job"),
            };
            let after = fold(&[given, events].concat()).status();
            if after != Some(expected_status) {
                self.failures.push(format!(
                    "{cell}: the job should then be `{}`, but is {after:?}",
                    wire(expected_status)
                ));
            }
        }
    }

    /// Every status of the table (and a job never created) against each probe.
    fn check_column(probes: &[Probe]) -> Self {
        let mut cells = Cells::default();
        for &probe in probes {
            cells.check(None, probe);
            for status in STATUSES {
                cells.check(Some(status), probe);
            }
        }
        cells
    }

    fn assert_all_pass(self, expected_cells: usize) {
        assert!(
            self.failures.is_empty(),
            "{} of {} cells disagree with SPEC §3:\n{}",
            self.failures.len(),
            self.checked,
            self.failures.join("\n")
        );
        assert_eq!(self.checked, expected_cells, "number of cells checked");
    }
}

// ---------------------------------------------------------------------------------------------
// Preconditions
// ---------------------------------------------------------------------------------------------

#[test]
fn the_table_has_one_row_per_status() {
    for status in STATUSES {
        assert_eq!(
            common::SPEC_TABLE
                .iter()
                .filter(|row| row.from == status)
                .count(),
            1,
            "rows for `{}`",
            wire(status)
        );
    }
    assert_eq!(STATUSES.len(), JobStatus::ALL.len());
    for status in JobStatus::ALL {
        assert!(
            STATUSES.contains(&status),
            "{status:?} missing from the test's statuses"
        );
    }
}

#[test]
fn each_canonical_history_reaches_its_status() {
    for status in STATUSES {
        let job = fold(&history(status));
        assert_eq!(job.status(), Some(status), "history for `{}`", wire(status));
    }
    assert_eq!(
        fold(&history(JobStatus::Cancelled))
            .cancel_reason()
            .map(|r| r.as_str()),
        Some(CANCELLED_REASON)
    );
}

// ---------------------------------------------------------------------------------------------
// The table, column by column (each: a job never created + the 13 statuses, per probe)
// ---------------------------------------------------------------------------------------------

#[test]
fn column_create() {
    let cells = Cells::check_column(&[Probe::Create]);
    cells.assert_all_pass(14);
}

#[test]
fn column_update() {
    let probes = UPDATE_PROBES.map(Probe::Update);
    Cells::check_column(&probes).assert_all_pass(14 * 8);
}

#[test]
fn column_schedule() {
    Cells::check_column(&[Probe::Schedule]).assert_all_pass(14);
}

#[test]
fn column_unschedule() {
    Cells::check_column(&[Probe::Unschedule]).assert_all_pass(14);
}

#[test]
fn column_progress_to_each_step() {
    let probes = PROGRESS_STEPS.map(Probe::Progress);
    Cells::check_column(&probes).assert_all_pass(14 * 5);
}

#[test]
fn column_start() {
    Cells::check_column(&[Probe::Start]).assert_all_pass(14);
}

#[test]
fn column_suspend() {
    Cells::check_column(&[Probe::Suspend]).assert_all_pass(14);
}

#[test]
fn column_resume() {
    Cells::check_column(&[Probe::Resume]).assert_all_pass(14);
}

#[test]
fn column_result_with_each_outcome() {
    let probes = OUTCOMES.map(Probe::Result);
    Cells::check_column(&probes).assert_all_pass(14 * 2);
}

#[test]
fn column_cancel() {
    let probes = CANCEL_PROBES.map(Probe::Cancel);
    Cells::check_column(&probes).assert_all_pass(14 * 3);
}

#[test]
fn every_probe_is_in_some_column_test() {
    // 1 create + 8 update + schedule + unschedule + 5 progress + start + suspend + resume
    // + 2 results + 3 cancels.
    assert_eq!(all_probes().len(), 24);
    let mut cells = Cells::default();
    for probe in all_probes() {
        cells.check(None, probe);
    }
    cells.assert_all_pass(24);
}

// ---------------------------------------------------------------------------------------------
// The cancel contract, spelled out
// ---------------------------------------------------------------------------------------------

fn cancel(why: &str) -> JobCommand {
    JobCommand::Cancel(CancelJob {
        reason: reason(why),
    })
}

#[test]
fn cancel_before_work_begins_records_the_trimmed_reason_at_the_clock_time() {
    for status in [
        JobStatus::New,
        JobStatus::Scheduled,
        JobStatus::Unscheduled,
        JobStatus::Sent,
        JobStatus::Read,
        JobStatus::Accepted,
        JobStatus::Refused,
        JobStatus::OnTheWay,
    ] {
        let events = when(history(status), cancel("  no access to site  "));
        assert_eq!(
            events,
            Ok(vec![JobEvent::JobCancelled(JobCancelled {
                reason: reason("no access to site"),
                occurred_at: now(),
            })]),
            "cancel from `{}`",
            wire(status)
        );
        let JobEvent::JobCancelled(cancelled) = &events.unwrap()[0] else {
            unreachable!()
        };
        assert_eq!(cancelled.reason.as_str(), "no access to site");
    }
}

#[test]
fn cancel_from_started_is_refused_as_not_cancellable() {
    then(history(JobStatus::Started), cancel("too late")).then_expect_error(JobError::Refused {
        command: CommandKind::Cancel,
        status: JobStatus::Started,
    });
}

#[test]
fn cancel_from_suspended_is_refused_as_not_cancellable() {
    then(history(JobStatus::Suspended), cancel("too late")).then_expect_error(JobError::Refused {
        command: CommandKind::Cancel,
        status: JobStatus::Suspended,
    });
}

#[test]
fn cancel_from_completed_ok_is_refused_as_not_cancellable() {
    then(history(JobStatus::CompletedOk), cancel("too late")).then_expect_error(
        JobError::Refused {
            command: CommandKind::Cancel,
            status: JobStatus::CompletedOk,
        },
    );
}

#[test]
fn cancel_from_completed_with_issues_is_refused_as_not_cancellable() {
    then(history(JobStatus::CompletedWithIssues), cancel("too late")).then_expect_error(
        JobError::Refused {
            command: CommandKind::Cancel,
            status: JobStatus::CompletedWithIssues,
        },
    );
}

#[test]
fn cancelling_a_cancelled_job_again_with_the_same_reason_records_nothing() {
    then(history(JobStatus::Cancelled), cancel(CANCELLED_REASON)).then_expect_events(vec![]);
}

#[test]
fn cancelling_again_with_the_same_reason_padded_with_whitespace_records_nothing() {
    then(
        history(JobStatus::Cancelled),
        cancel("\n  customer request \t "),
    )
    .then_expect_events(vec![]);
}

#[test]
fn cancelling_again_with_another_reason_is_already_cancelled() {
    then(history(JobStatus::Cancelled), cancel("weather"))
        .then_expect_error(JobError::AlreadyCancelled);
}

#[test]
fn cancelling_again_compares_reasons_exactly_after_trimming() {
    // "Same reason" is read as the same text after trimming: case and inner spacing count.
    then(history(JobStatus::Cancelled), cancel("Customer Request"))
        .then_expect_error(JobError::AlreadyCancelled);
    then(history(JobStatus::Cancelled), cancel("customer  request"))
        .then_expect_error(JobError::AlreadyCancelled);
}

#[test]
fn a_job_cancelled_with_a_padded_reason_accepts_the_bare_reason_again() {
    let given = vec![e_created(), e_cancelled("   flooded   ")];
    then(given.clone(), cancel("flooded")).then_expect_events(vec![]);
    then(given, cancel("flood")).then_expect_error(JobError::AlreadyCancelled);
}

#[test]
fn cancelling_a_job_never_created_is_not_found() {
    then(vec![], cancel("whatever")).then_expect_error(JobError::NotFound);
}

#[test]
fn update_on_a_cancelled_job_is_refused_even_when_it_changes_nothing() {
    for changes in [
        JobChanges::default(),
        UpdateProbe::OtherFields.requested(),
        UpdateProbe::EveryFieldToCurrentValue.requested(),
    ] {
        then(history(JobStatus::Cancelled), JobCommand::Update(changes)).then_expect_error(
            JobError::Refused {
                command: CommandKind::Update,
                status: JobStatus::Cancelled,
            },
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Update rules, spelled out
// ---------------------------------------------------------------------------------------------

fn update(changes: JobChanges) -> JobCommand {
    JobCommand::Update(changes)
}

#[test]
fn null_clears_reference_order_number_and_person_id_before_work_begins() {
    let changes = JobChanges {
        reference: Some(None),
        order_number: Some(None),
        person_id: Some(None),
        ..JobChanges::default()
    };
    then(history(JobStatus::Scheduled), update(changes.clone())).then_expect_events(vec![
        JobEvent::JobUpdated(JobUpdated {
            changes: changes.clone(),
            occurred_at: now(),
        }),
    ]);
    // And the cleared values are what later updates compare against: clearing again is a
    // change of nothing.
    let given = [
        history(JobStatus::Scheduled),
        vec![JobEvent::JobUpdated(JobUpdated {
            changes: changes.clone(),
            occurred_at: earlier(),
        })],
    ]
    .concat();
    then(given, update(changes)).then_expect_events(vec![]);
}

#[test]
fn null_clears_reference_and_order_number_after_work_has_begun() {
    for status in [
        JobStatus::Started,
        JobStatus::Suspended,
        JobStatus::CompletedOk,
        JobStatus::CompletedWithIssues,
    ] {
        let changes = JobChanges {
            reference: Some(None),
            order_number: Some(None),
            ..JobChanges::default()
        };
        assert_eq!(
            when(history(status), update(changes.clone())),
            Ok(vec![JobEvent::JobUpdated(JobUpdated {
                changes,
                occurred_at: now()
            })]),
            "clearing reference and orderNumber in `{}`",
            wire(status)
        );
    }
}

#[test]
fn clearing_person_id_after_work_has_begun_is_locked() {
    then(
        history(JobStatus::Started),
        update(JobChanges {
            person_id: Some(None),
            ..JobChanges::default()
        }),
    )
    .then_expect_error(JobError::FieldLocked {
        field: "personId",
        status: JobStatus::Started,
    });
}

#[test]
fn clearing_an_absent_person_id_after_work_has_begun_changes_nothing() {
    let given = [
        history(JobStatus::Scheduled),
        vec![
            JobEvent::JobUpdated(JobUpdated {
                changes: JobChanges {
                    person_id: Some(None),
                    ..JobChanges::default()
                },
                occurred_at: earlier(),
            }),
            e_started(),
        ],
    ]
    .concat();
    then(
        given,
        update(JobChanges {
            person_id: Some(None),
            ..JobChanges::default()
        }),
    )
    .then_expect_events(vec![]);
}

#[test]
fn locked_fields_compare_against_their_latest_values() {
    // Description changed before the job started: that new value is the current one.
    let given = [
        vec![
            e_created(),
            JobEvent::JobUpdated(JobUpdated {
                changes: JobChanges {
                    description: Some(description("Fix boiler and radiator")),
                    person_id: Some(Some(PERSON_B)),
                    ..JobChanges::default()
                },
                occurred_at: earlier(),
            }),
            e_scheduled(),
        ],
        vec![e_started()],
    ]
    .concat();
    then(
        given.clone(),
        update(JobChanges {
            description: Some(description("Fix boiler and radiator")),
            person_id: Some(Some(PERSON_B)),
            ..JobChanges::default()
        }),
    )
    .then_expect_events(vec![]);
    then(
        given.clone(),
        update(JobChanges {
            description: Some(description("Fix boiler")),
            ..JobChanges::default()
        }),
    )
    .then_expect_error(JobError::FieldLocked {
        field: "description",
        status: JobStatus::Started,
    });
    then(
        given,
        update(JobChanges {
            person_id: Some(Some(PERSON_A)),
            ..JobChanges::default()
        }),
    )
    .then_expect_error(JobError::FieldLocked {
        field: "personId",
        status: JobStatus::Started,
    });
}

#[test]
fn setting_a_description_where_there_was_none_is_a_change_and_locked() {
    let mut job = created();
    job.description = None;
    let given = vec![
        JobEvent::JobCreated(job),
        e_scheduled(),
        e_started(),
        e_suspended(),
    ];
    then(
        given,
        update(JobChanges {
            description: Some(description("")),
            ..JobChanges::default()
        }),
    )
    .then_expect_error(JobError::FieldLocked {
        field: "description",
        status: JobStatus::Suspended,
    });
}

#[test]
fn an_update_touching_a_locked_field_records_none_of_its_other_changes() {
    let result = when(
        history(JobStatus::CompletedOk),
        update(JobChanges {
            reference: Some(Some(reference("REF-9"))),
            description: Some(description("Something else")),
            ..JobChanges::default()
        }),
    );
    assert_eq!(
        result,
        Err(JobError::FieldLocked {
            field: "description",
            status: JobStatus::CompletedOk
        })
    );
}

#[test]
fn an_update_changing_both_locked_fields_names_one_of_them() {
    // SPEC does not say which field to name when both are changed; either is correct.
    let result = when(
        history(JobStatus::Started),
        update(JobChanges {
            description: Some(description("Something else")),
            person_id: Some(Some(PERSON_B)),
            ..JobChanges::default()
        }),
    );
    assert!(
        matches!(
            result,
            Err(JobError::FieldLocked {
                field: "description" | "personId",
                status: JobStatus::Started
            })
        ),
        "got {result:?}"
    );
}

#[test]
fn an_update_records_only_the_fields_that_really_change() {
    then(
        history(JobStatus::Accepted),
        update(JobChanges {
            type_id: Some(id(1)),                      // current
            contact_id: Some(id(8)),                   // new
            reference: Some(Some(reference("REF-1"))), // current
            order_number: Some(None),                  // clears
            ..JobChanges::default()
        }),
    )
    .then_expect_events(vec![JobEvent::JobUpdated(JobUpdated {
        changes: JobChanges {
            contact_id: Some(id(8)),
            order_number: Some(None),
            ..JobChanges::default()
        },
        occurred_at: now(),
    })]);
}

#[test]
fn a_planned_duration_given_when_scheduling_becomes_the_current_one() {
    let given = [
        history(JobStatus::New),
        vec![JobEvent::JobScheduled(JobScheduled {
            planned_duration: Some(minutes(120)),
            ..match e_scheduled() {
                JobEvent::JobScheduled(s) => s,
                _ => unreachable!(),
            }
        })],
    ]
    .concat();
    then(
        given.clone(),
        update(JobChanges {
            planned_duration: Some(minutes(120)),
            ..JobChanges::default()
        }),
    )
    .then_expect_events(vec![]);
    then(
        given,
        update(JobChanges {
            planned_duration: Some(minutes(60)),
            ..JobChanges::default()
        }),
    )
    .then_expect_events(vec![JobEvent::JobUpdated(JobUpdated {
        changes: JobChanges {
            planned_duration: Some(minutes(60)),
            ..JobChanges::default()
        },
        occurred_at: now(),
    })]);
}

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
