//! Property tests of the `Job` aggregate: random sequences of valid commands (create included)
//! run through `Job::decide` + `Aggregate::apply` from `Job::default()`, checked at every step
//! against SPEC §3's table (the literal encoding in `common/mod.rs`) and a small model of the
//! job's details kept by the test itself.
//!
//! Checked, at every step:
//! - (a) the status is one of the 13, and once terminal (completedOk, completedWithIssues,
//!   cancelled) it never changes again;
//! - (b) a refused command emits no events and leaves the job unchanged (both via `decide` and
//!   via `Aggregate::handle`);
//! - (d) a command `decide` accepts with events is one the table allows from the status at that
//!   moment, leads to the status the table's command leads to, and is stamped with the clock;
//!   conversely a command the table allows is not refused, and a refusal is the right typed error;
//! - every emitted event survives a JSON round trip unchanged;
//!
//! and at the end (c): replaying the emitted events as a store would (from their JSON, in
//! order, into a fresh `Job::default()`) gives exactly the aggregate that `Aggregate::handle`
//! left behind — a second job threaded only through `handle`, never through `apply` here.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use common::{allows, block_on, row, target, wire, CancelRule, Column, UpdateRule, TERMINAL};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use domain::values::{
    CancelReason, Comment, CustomField, CustomFields, Description, OrderNumber, PlannedDuration,
    PositiveId, Reference, ResultNotes, Text,
};
use domain::{
    CancelJob, CommandKind, CreateJob, Job, JobChanges, JobCommand, JobError, JobEvent,
    JobServices, JobStatus, Outcome, ProgressJob, ProgressStatus, RecordResult, ScheduleJob,
    StartJob, SuspendJob,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use std::collections::BTreeSet;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Generators: valid commands with values drawn partly from small pools, so that "the same value
// again" (no-op updates, repeated cancel reasons) happens often.
// ---------------------------------------------------------------------------------------------

fn text<const MAX: usize>(pool: &'static [&'static str]) -> impl Strategy<Value = Text<MAX>> {
    prop_oneof![
        3 => prop::sample::select(pool).prop_map(str::to_owned),
        // Any characters but NUL (which text refuses): control characters, quotes, astral
        // planes… for JSON.
        1 => prop::collection::vec(any::<char>().prop_filter("text holds no NUL", |c| *c != '\0'), 0..=12).prop_map(String::from_iter),
    ]
    .prop_map(|value| Text::<MAX>::parse(value).expect("generated text fits"))
}

fn positive_id() -> impl Strategy<Value = PositiveId> {
    prop_oneof![3 => 1..=3i64, 1 => 1..=i64::MAX].prop_map(|v| PositiveId::parse(v).unwrap())
}

fn planned_duration() -> impl Strategy<Value = PlannedDuration> {
    prop_oneof![
        3 => prop::sample::select(vec![60i64, 90]),
        1 => PlannedDuration::MIN..=PlannedDuration::MAX,
    ]
    .prop_map(|v| PlannedDuration::parse(v).unwrap())
}

fn reference() -> impl Strategy<Value = Reference> {
    text(&["REF-1", "REF-2", ""])
}
fn description() -> impl Strategy<Value = Description> {
    text(&["Fix boiler", "Replace boiler", ""])
}
fn order_number() -> impl Strategy<Value = OrderNumber> {
    text(&["PO-1", "PO-2"])
}
fn comment() -> impl Strategy<Value = Comment> {
    text(&["ok", "late", ""])
}
fn notes() -> impl Strategy<Value = ResultNotes> {
    text(&["done", "leak remains"])
}

fn person() -> impl Strategy<Value = Uuid> {
    prop_oneof![
        3 => prop::sample::select(vec![Uuid::from_u128(0xa), Uuid::from_u128(0xb)]),
        1 => any::<u128>().prop_map(Uuid::from_u128),
    ]
}

fn custom_fields() -> impl Strategy<Value = CustomFields> {
    prop::collection::btree_map(1..=4i64, prop::option::of(text::<2000>(&["x", "y"])), 0..3)
        .prop_map(|fields| {
            CustomFields::new(
                fields
                    .into_iter()
                    .map(|(definition, value)| CustomField {
                        definition_id: PositiveId::parse(definition).unwrap(),
                        value,
                    })
                    .collect(),
            )
            .unwrap()
        })
}

/// A timestamp at microsecond precision (what the stores keep) within a few decades.
fn timestamp() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..2_000_000_000, 0u32..1_000_000)
        .prop_map(|(seconds, micros)| Utc.timestamp_opt(seconds, micros * 1_000).unwrap())
}

fn cancel_reason() -> impl Strategy<Value = CancelReason> {
    prop_oneof![
        3 => prop::sample::select(vec!["no access", "  no access\t", "weather", "No access"])
            .prop_map(str::to_owned),
        1 => "[ \\t]{0,2}\\PC{0,2}[a-z][ \\t]{0,2}",
    ]
    .prop_map(|raw| CancelReason::parse(&raw).expect("generated reason is not blank"))
}

fn create() -> impl Strategy<Value = JobCommand> {
    (
        (positive_id(), positive_id(), positive_id()),
        prop::option::of(planned_duration()),
        prop::option::of(reference()),
        prop::option::of(description()),
        prop::option::of(person()),
        prop::option::of(order_number()),
        custom_fields(),
    )
        .prop_map(
            |(
                (customer_id, type_id, contact_id),
                planned_duration,
                reference,
                description,
                person_id,
                order_number,
                custom_fields,
            )| {
                JobCommand::Create(CreateJob {
                    customer_id,
                    type_id,
                    contact_id,
                    planned_duration,
                    reference,
                    description,
                    person_id,
                    order_number,
                    custom_fields,
                })
            },
        )
}

fn changes() -> impl Strategy<Value = JobChanges> {
    use prop::option::of;
    (
        (of(positive_id()), of(positive_id()), of(planned_duration())),
        of(of(reference())),
        of(description()),
        of(of(person())),
        of(of(order_number())),
        of(custom_fields()),
    )
        .prop_map(
            |(
                (type_id, contact_id, planned_duration),
                reference,
                description,
                person_id,
                order_number,
                custom_fields,
            )| JobChanges {
                type_id,
                contact_id,
                planned_duration,
                reference,
                description,
                person_id,
                order_number,
                custom_fields,
            },
        )
}

fn command() -> impl Strategy<Value = JobCommand> {
    use prop::option::of;
    prop_oneof![
        1 => create(),
        3 => changes().prop_map(JobCommand::Update),
        3 => (positive_id(), positive_id(), timestamp(), of(planned_duration())).prop_map(
            |(resource_id, vehicle_id, planned_start, planned_duration)| {
                JobCommand::Schedule(ScheduleJob {
                    resource_id,
                    vehicle_id,
                    planned_start,
                    planned_duration,
                })
            }
        ),
        2 => Just(JobCommand::Unschedule),
        5 => (prop::sample::select(ProgressStatus::ALL.to_vec()), of(comment()))
            .prop_map(|(status, comment)| JobCommand::Progress(ProgressJob { status, comment })),
        3 => of(comment()).prop_map(|comment| JobCommand::Start(StartJob { comment })),
        2 => of(comment()).prop_map(|reason| JobCommand::Suspend(SuspendJob { reason })),
        2 => Just(JobCommand::Resume),
        2 => (
            prop::sample::select(vec![Outcome::CompletedOk, Outcome::CompletedWithIssues]),
            of(notes()),
        )
            .prop_map(|(outcome, notes)| JobCommand::RecordResult(RecordResult { outcome, notes })),
        2 => cancel_reason().prop_map(|reason| JobCommand::Cancel(CancelJob { reason })),
    ]
}

/// Up to ~40 commands, uniformly random; most sequences start by creating the job, some never
/// create it. Random commands seldom get far down the lifecycle (most are refused), hence also:
fn random_commands() -> impl Strategy<Value = Vec<JobCommand>> {
    (
        prop::bool::weighted(0.9),
        create(),
        prop::collection::vec(command(), 0..=40),
    )
        .prop_map(|(create_first, create, mut rest)| {
            if create_first {
                rest.insert(0, create);
            }
            rest
        })
}

/// A step of the lifecycle's longest path, usually kept, followed by up to two random commands
/// (which may well derail the rest of the path — also worth testing).
fn step(command: impl Strategy<Value = JobCommand>) -> impl Strategy<Value = Vec<JobCommand>> {
    (
        prop::option::weighted(0.85, command),
        prop::collection::vec(self::command(), 0..=2),
    )
        .prop_map(|(step, noise)| step.into_iter().chain(noise).collect())
}

fn progress_to(status: ProgressStatus) -> impl Strategy<Value = JobCommand> {
    prop::option::of(comment())
        .prop_map(move |comment| JobCommand::Progress(ProgressJob { status, comment }))
}

/// Create, schedule, sent, read, accepted, onTheWay, start, suspend, resume, result — with
/// steps dropped and random commands mixed in (at most 40 commands).
fn guided_commands() -> impl Strategy<Value = Vec<JobCommand>> {
    use prop::option::of;
    (
        step(create()),
        step(
            (
                positive_id(),
                positive_id(),
                timestamp(),
                of(planned_duration()),
            )
                .prop_map(
                    |(resource_id, vehicle_id, planned_start, planned_duration)| {
                        JobCommand::Schedule(ScheduleJob {
                            resource_id,
                            vehicle_id,
                            planned_start,
                            planned_duration,
                        })
                    },
                ),
        ),
        step(progress_to(ProgressStatus::Sent)),
        step(progress_to(ProgressStatus::Read)),
        step(progress_to(ProgressStatus::Accepted)),
        step(progress_to(ProgressStatus::OnTheWay)),
        step(of(comment()).prop_map(|comment| JobCommand::Start(StartJob { comment }))),
        step(of(comment()).prop_map(|reason| JobCommand::Suspend(SuspendJob { reason }))),
        step(Just(JobCommand::Resume)),
        step(
            (
                prop::sample::select(vec![Outcome::CompletedOk, Outcome::CompletedWithIssues]),
                of(notes()),
            )
                .prop_map(|(outcome, notes)| {
                    JobCommand::RecordResult(RecordResult { outcome, notes })
                }),
        ),
    )
        .prop_map(|(a, b, c, d, e, f, g, h, i, j)| [a, b, c, d, e, f, g, h, i, j].concat())
}

/// Sequences of up to ~40 valid commands: half uniformly random, half along the lifecycle.
fn commands() -> impl Strategy<Value = Vec<JobCommand>> {
    prop_oneof![random_commands(), guided_commands()]
}

// ---------------------------------------------------------------------------------------------
// The test's own model of a job (only what the rules look at), and SPEC §3's verdict
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Model {
    status: JobStatus,
    type_id: PositiveId,
    contact_id: PositiveId,
    planned_duration: Option<PlannedDuration>,
    reference: Option<Reference>,
    description: Option<Description>,
    person_id: Option<Uuid>,
    order_number: Option<OrderNumber>,
    custom_fields: CustomFields,
    cancel_reason: Option<String>,
}

impl Model {
    /// The names of the fields an update would really change.
    fn changed_fields(&self, changes: &JobChanges) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let mut note = |name, differs: bool| {
            if differs {
                changed.push(name);
            }
        };
        note("typeId", changes.type_id.is_some_and(|v| v != self.type_id));
        note(
            "contactId",
            changes.contact_id.is_some_and(|v| v != self.contact_id),
        );
        note(
            "plannedDuration",
            changes
                .planned_duration
                .is_some_and(|v| Some(v) != self.planned_duration),
        );
        note(
            "reference",
            changes
                .reference
                .as_ref()
                .is_some_and(|v| *v != self.reference),
        );
        note(
            "description",
            changes
                .description
                .as_ref()
                .is_some_and(|v| Some(v) != self.description.as_ref()),
        );
        note(
            "personId",
            changes.person_id.is_some_and(|v| v != self.person_id),
        );
        note(
            "orderNumber",
            changes
                .order_number
                .as_ref()
                .is_some_and(|v| *v != self.order_number),
        );
        note(
            "customFields",
            changes
                .custom_fields
                .as_ref()
                .is_some_and(|v| *v != self.custom_fields),
        );
        changed
    }

    fn apply_changes(&mut self, changes: &JobChanges) {
        let c = changes.clone();
        if let Some(v) = c.type_id {
            self.type_id = v;
        }
        if let Some(v) = c.contact_id {
            self.contact_id = v;
        }
        if let Some(v) = c.planned_duration {
            self.planned_duration = Some(v);
        }
        if let Some(v) = c.reference {
            self.reference = v;
        }
        if let Some(v) = c.description {
            self.description = Some(v);
        }
        if let Some(v) = c.person_id {
            self.person_id = v;
        }
        if let Some(v) = c.order_number {
            self.order_number = v;
        }
        if let Some(v) = c.custom_fields {
            self.custom_fields = v;
        }
    }
}

/// What SPEC §3 says a command does to the modelled job.
#[derive(Debug)]
enum Verdict {
    /// Accepted: records one event, after which the job has this status.
    Records(JobStatus),
    /// Accepted, but changes nothing: no event.
    Nothing,
    /// Refused with one of these errors.
    Rejects(Vec<JobError>),
}

fn column(command: &JobCommand) -> Option<(Column, CommandKind)> {
    Some(match command {
        JobCommand::Create(_) => return None,
        JobCommand::Update(_) => (Column::Update, CommandKind::Update),
        JobCommand::Schedule(_) => (Column::Schedule, CommandKind::Schedule),
        JobCommand::Unschedule => (Column::Unschedule, CommandKind::Unschedule),
        JobCommand::Progress(p) => (Column::Progress(p.status), CommandKind::Progress(p.status)),
        JobCommand::Start(_) => (Column::Start, CommandKind::Start),
        JobCommand::Suspend(_) => (Column::Suspend, CommandKind::Suspend),
        JobCommand::Resume => (Column::Resume, CommandKind::Resume),
        JobCommand::RecordResult(r) => (Column::Result(r.outcome), CommandKind::RecordResult),
        JobCommand::Cancel(_) => (Column::Cancel, CommandKind::Cancel),
    })
}

fn verdict(model: Option<&Model>, command: &JobCommand) -> Verdict {
    let Some(model) = model else {
        return match command {
            JobCommand::Create(_) => Verdict::Records(JobStatus::New),
            _ => Verdict::Rejects(vec![JobError::NotFound]),
        };
    };
    let status = model.status;
    let Some((column, kind)) = column(command) else {
        return Verdict::Rejects(vec![JobError::AlreadyExists]);
    };
    let refused = || {
        Verdict::Rejects(vec![JobError::Refused {
            command: kind,
            status,
        }])
    };
    match command {
        JobCommand::Update(changes) => {
            let rule = row(status).update;
            if rule == UpdateRule::Refused {
                return refused();
            }
            let changed = model.changed_fields(changes);
            if rule == UpdateRule::DescriptionAndPersonIdLocked {
                let locked: Vec<JobError> = changed
                    .iter()
                    .filter(|field| matches!(**field, "description" | "personId"))
                    .map(|&field| JobError::FieldLocked { field, status })
                    .collect();
                if !locked.is_empty() {
                    return Verdict::Rejects(locked);
                }
            }
            if changed.is_empty() {
                Verdict::Nothing
            } else {
                Verdict::Records(status)
            }
        }
        JobCommand::Cancel(cancel) => match row(status).cancel {
            CancelRule::Allowed => Verdict::Records(JobStatus::Cancelled),
            CancelRule::NotCancellable => refused(),
            CancelRule::SameReasonNoEventOtherReasonRejected => {
                if model.cancel_reason.as_deref() == Some(cancel.reason.as_str()) {
                    Verdict::Nothing
                } else {
                    Verdict::Rejects(vec![JobError::AlreadyCancelled])
                }
            }
        },
        _ if allows(status, column) => Verdict::Records(target(status, column)),
        _ => refused(),
    }
}

/// The model after a command the table accepted (from the command, not from the events).
fn next_model(model: Option<Model>, command: &JobCommand, status: JobStatus) -> Model {
    match (model, command) {
        (None, JobCommand::Create(c)) => Model {
            status,
            type_id: c.type_id,
            contact_id: c.contact_id,
            planned_duration: c.planned_duration,
            reference: c.reference.clone(),
            description: c.description.clone(),
            person_id: c.person_id,
            order_number: c.order_number.clone(),
            custom_fields: c.custom_fields.clone(),
            cancel_reason: None,
        },
        (Some(mut model), command) => {
            model.status = status;
            match command {
                JobCommand::Update(changes) => model.apply_changes(changes),
                JobCommand::Schedule(schedule) if schedule.planned_duration.is_some() => {
                    model.planned_duration = schedule.planned_duration;
                }
                JobCommand::Cancel(cancel) => {
                    model.cancel_reason = Some(cancel.reason.as_str().to_owned())
                }
                _ => {}
            }
            model
        }
        (None, other) => unreachable!("{other:?} accepted for a job never created"),
    }
}

/// Whether `event` is the kind of event `command` records.
fn event_matches(command: &JobCommand, event: &JobEvent) -> bool {
    matches!(
        (command, event),
        (JobCommand::Create(_), JobEvent::JobCreated(_))
            | (JobCommand::Update(_), JobEvent::JobUpdated(_))
            | (JobCommand::Schedule(_), JobEvent::JobScheduled(_))
            | (JobCommand::Unschedule, JobEvent::JobUnscheduled(_))
            | (JobCommand::Progress(_), JobEvent::JobProgressed(_))
            | (JobCommand::Start(_), JobEvent::JobStarted(_))
            | (JobCommand::Suspend(_), JobEvent::JobSuspended(_))
            | (JobCommand::Resume, JobEvent::JobResumed(_))
            | (JobCommand::RecordResult(_), JobEvent::JobCompleted(_))
            | (JobCommand::Cancel(_), JobEvent::JobCancelled(_))
    )
}

fn status_name(status: Option<JobStatus>) -> &'static str {
    status.map_or("<not created>", wire)
}

// ---------------------------------------------------------------------------------------------
// Running a sequence
// ---------------------------------------------------------------------------------------------

/// Runs `command` through `Aggregate::handle` on a copy of `job` with a fixed clock.
fn handle(
    job: &Job,
    command: JobCommand,
    at: DateTime<Utc>,
) -> (Job, Result<Vec<JobEvent>, JobError>) {
    let mut job = job.clone();
    let sink = EventSink::<Job>::default();
    let result = block_on(job.handle(command, &JobServices::fixed_clock(at), &sink));
    let events = block_on(sink.collect());
    (job, result.map(|()| events))
}

/// What a run saw, for the generator coverage check.
#[derive(Default)]
struct Seen {
    statuses: BTreeSet<&'static str>,
    accepted: BTreeSet<(&'static str, String)>,
}

fn run(commands: &[JobCommand], seen: &mut Seen) -> Result<(), TestCaseError> {
    let start = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap();
    let mut job = Job::default();
    let mut model: Option<Model> = None;
    let mut emitted: Vec<String> = Vec::new();
    // The job as cqrs-es evolves it: only ever through `Aggregate::handle`.
    let mut live = Job::default();
    let mut terminal: Option<JobStatus> = None;

    for (step, command) in commands.iter().enumerate() {
        let at = start
            + chrono::Duration::seconds(step as i64)
            + chrono::Duration::microseconds(step as i64 * 7);
        let before = job.clone();
        let from = job.status();
        let cell = format!("step {step}: {command:?} from `{}`", status_name(from));
        prop_assert_eq!(
            from,
            model.as_ref().map(|m| m.status),
            "{}: model and job disagree",
            cell
        );

        let expected = verdict(model.as_ref(), command);
        let result = job.decide(command.clone(), at);

        // The same command through `Aggregate::handle` does exactly what decide + apply does.
        let (handled, handled_result) = handle(&live, command.clone(), at);
        prop_assert_eq!(
            &handled_result,
            &result,
            "{}: handle and decide disagree",
            cell
        );

        match result {
            Err(error) => {
                // (b) refused: no events, job unchanged.
                prop_assert_eq!(&job, &before, "{}: refused, yet the job changed", cell);
                prop_assert_eq!(
                    &handled,
                    &before,
                    "{}: refused, yet handle changed the job",
                    cell
                );
                match &expected {
                    Verdict::Rejects(errors) => prop_assert!(
                        errors.contains(&error),
                        "{}: refused with {:?}, SPEC §3 expects one of {:?}",
                        cell,
                        error,
                        errors
                    ),
                    other => prop_assert!(
                        false,
                        "{}: refused with {:?}, but SPEC §3 allows it ({:?})",
                        cell,
                        error,
                        other
                    ),
                }
            }
            Ok(events) => {
                for event in &events {
                    // Every event survives JSON unchanged.
                    let json = serde_json::to_string(event).unwrap();
                    let back: JobEvent = serde_json::from_str(&json).unwrap();
                    let json = json.clone();
                    prop_assert_eq!(&back, event, "{}: JSON round trip of {}", cell, json);
                    prop_assert_eq!(
                        event.occurred_at(),
                        at,
                        "{}: event not stamped with the clock",
                        cell
                    );
                    prop_assert!(
                        event_matches(command, event),
                        "{}: recorded {:?}",
                        cell,
                        event
                    );
                    job.apply(event.clone());
                    emitted.push(json);
                }
                prop_assert_eq!(
                    &handled,
                    &job,
                    "{}: handle and decide + apply disagree",
                    cell
                );
                match expected {
                    // (d) accepted with an event: the table allows it, and it leads where the
                    // table's command leads.
                    Verdict::Records(next) => {
                        prop_assert_eq!(events.len(), 1, "{}: expected one event", cell);
                        prop_assert_eq!(job.status(), Some(next), "{}: wrong status after", cell);
                        if let Some((column, _)) = column(command) {
                            seen.accepted
                                .insert((status_name(from), format!("{column:?}")));
                        }
                        model = Some(next_model(model.take(), command, next));
                    }
                    Verdict::Nothing => prop_assert!(
                        events.is_empty(),
                        "{}: SPEC §3 expects no event, got {:?}",
                        cell,
                        events
                    ),
                    Verdict::Rejects(errors) => prop_assert!(
                        false,
                        "{}: accepted ({:?}), but SPEC §3 does not allow it from `{}` (expects {:?})",
                        cell,
                        events,
                        status_name(from),
                        errors
                    ),
                }
            }
        }

        live = handled;

        // (a) a terminal status never changes again.
        let now = job.status();
        if let Some(status) = now {
            seen.statuses.insert(wire(status));
        }
        if let Some(terminal) = terminal {
            prop_assert_eq!(now, Some(terminal), "{}: left terminal status", cell);
        }
        if let Some(status) = now.filter(|s| TERMINAL.contains(s)) {
            terminal = Some(status);
        }
        prop_assert_eq!(
            job.cancel_reason().map(|r| r.as_str().to_owned()),
            model.as_ref().and_then(|m| m.cancel_reason.clone()),
            "{}: cancel reason",
            cell
        );
    }

    // (c) replaying the stored events into a fresh job gives what `handle` left behind.
    let mut replayed = Job::default();
    for json in &emitted {
        replayed.apply(serde_json::from_str(json).unwrap());
    }
    prop_assert_eq!(
        &replayed,
        &live,
        "replaying the {} emitted events",
        emitted.len()
    );

    // And the aggregate itself (a snapshot) survives JSON.
    let snapshot: Job = serde_json::from_value(serde_json::to_value(&job).unwrap()).unwrap();
    prop_assert_eq!(&snapshot, &job, "aggregate JSON round trip");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn random_command_sequences_follow_the_spec_table(commands in commands()) {
        run(&commands, &mut Seen::default())?;
    }

    #[test]
    fn every_event_round_trips_through_json(commands in commands()) {
        // Also through `serde_json::Value` (what the stores' JSON columns hold).
        let mut job = Job::default();
        let at = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        for command in commands {
            if let Ok(events) = job.decide(command, at) {
                for event in events {
                    let value = serde_json::to_value(&event).unwrap();
                    let back: JobEvent = serde_json::from_value(value.clone()).unwrap();
                    prop_assert_eq!(&back, &event, "{}", value);
                    prop_assert_eq!(value.as_object().map(|o| o.len()), Some(1), "externally tagged");
                    prop_assert!(value.get(event.type_name()).is_some(), "tagged with its type name");
                    job.apply(event);
                }
            }
        }
    }
}

/// The generator is only useful if it reaches every status and exercises most of the table:
/// check that a fixed-seed batch of sequences does.
#[test]
fn generated_sequences_reach_every_status_and_most_allowed_cells() {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let strategy = commands();
    let mut seen = Seen::default();
    for _ in 0..1_000 {
        let commands = strategy.new_tree(&mut runner).unwrap().current();
        run(&commands, &mut seen).unwrap();
    }
    let missing: Vec<_> = common::STATUSES
        .iter()
        .map(|s| wire(*s))
        .filter(|s| !seen.statuses.contains(s))
        .collect();
    assert!(missing.is_empty(), "statuses never reached: {missing:?}");

    // Every ✓ of the table (except create, outside it) is taken at least once.
    let mut not_taken = Vec::new();
    for status in common::STATUSES {
        let mut columns = vec![
            Column::Schedule,
            Column::Unschedule,
            Column::Start,
            Column::Suspend,
            Column::Resume,
            Column::Cancel,
            Column::Update,
        ];
        columns.extend(common::PROGRESS_STEPS.map(Column::Progress));
        columns.extend(common::OUTCOMES.map(Column::Result));
        for column in columns {
            if allows(status, column)
                && !seen
                    .accepted
                    .contains(&(wire(status), format!("{column:?}")))
            {
                not_taken.push(format!("{} × {column:?}", wire(status)));
            }
        }
    }
    assert!(
        not_taken.is_empty(),
        "allowed cells never taken: {not_taken:?}"
    );
}
