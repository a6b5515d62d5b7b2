//! Every cell of SPEC §3's table: each probe command from each status (and from a job never
//! created), against the expected events or typed error.

use super::*;

// ---------------------------------------------------------------------------------------------
// Probes: the concrete commands tried in every status, and the events each should record
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpdateProbe {
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
pub(crate) enum CancelProbe {
    /// The reason the canonical `cancelled` history used.
    SameReason,
    /// That reason with surrounding whitespace (trims to the same reason).
    SameReasonPadded,
    /// Another reason.
    OtherReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
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

pub(crate) const UPDATE_PROBES: [UpdateProbe; 8] = [
    UpdateProbe::OtherFields,
    UpdateProbe::ClearReferenceAndOrderNumber,
    UpdateProbe::ClearPersonId,
    UpdateProbe::ChangeDescription,
    UpdateProbe::ChangePersonId,
    UpdateProbe::LockedFieldsToCurrentValues,
    UpdateProbe::EveryFieldToCurrentValue,
    UpdateProbe::Empty,
];

pub(crate) const CANCEL_PROBES: [CancelProbe; 3] = [
    CancelProbe::SameReason,
    CancelProbe::SameReasonPadded,
    CancelProbe::OtherReason,
];

pub(crate) fn all_probes() -> Vec<Probe> {
    let mut probes = vec![Probe::Create];
    probes.extend(UPDATE_PROBES.map(Probe::Update));
    probes.extend([Probe::Schedule, Probe::Unschedule]);
    probes.extend(PROGRESS_STEPS.map(Probe::Progress));
    probes.extend([Probe::Start, Probe::Suspend, Probe::Resume]);
    probes.extend(OUTCOMES.map(Probe::Result));
    probes.extend(CANCEL_PROBES.map(Probe::Cancel));
    probes
}

pub(crate) fn schedule_command() -> ScheduleJob {
    ScheduleJob {
        resource_id: id(5),
        vehicle_id: id(6),
        planned_start: Utc.with_ymd_and_hms(2025, 3, 10, 8, 0, 0).unwrap(),
        planned_duration: Some(minutes(120)),
    }
}

pub(crate) fn create_command() -> CreateJob {
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
    pub(crate) fn requested(self) -> JobChanges {
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
    pub(crate) fn changes_locked_field(self) -> Option<&'static str> {
        match self {
            UpdateProbe::ChangeDescription => Some("description"),
            UpdateProbe::ClearPersonId | UpdateProbe::ChangePersonId => Some("personId"),
            _ => None,
        }
    }

    /// The changes recorded when the update is accepted: only what really changes; nothing at
    /// all when nothing changes.
    pub(crate) fn recorded(self) -> Option<JobChanges> {
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
    pub(crate) fn raw_reason(self) -> &'static str {
        match self {
            CancelProbe::SameReason => "customer request",
            CancelProbe::SameReasonPadded => " \t customer request  \n",
            CancelProbe::OtherReason => "weather",
        }
    }

    /// The reason as recorded: trimmed.
    pub(crate) fn recorded_reason(self) -> &'static str {
        match self {
            CancelProbe::SameReason | CancelProbe::SameReasonPadded => "customer request",
            CancelProbe::OtherReason => "weather",
        }
    }
}

impl Probe {
    pub(crate) fn command(self) -> JobCommand {
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
    pub(crate) fn column(self) -> Option<Column> {
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
    pub(crate) fn kind(self) -> CommandKind {
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
    pub(crate) fn accepted_events(self) -> Vec<JobEvent> {
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

    pub(crate) fn describe(self) -> String {
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
pub(crate) fn expected(status: Option<JobStatus>, probe: Probe) -> Result<Vec<JobEvent>, JobError> {
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
pub(crate) struct Cells {
    checked: usize,
    failures: Vec<String>,
}

impl Cells {
    pub(crate) fn check(&mut self, from: Option<JobStatus>, probe: Probe) {
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
    pub(crate) fn check_column(probes: &[Probe]) -> Self {
        let mut cells = Cells::default();
        for &probe in probes {
            cells.check(None, probe);
            for status in STATUSES {
                cells.check(Some(status), probe);
            }
        }
        cells
    }

    pub(crate) fn assert_all_pass(self, expected_cells: usize) {
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
pub(crate) fn the_table_has_one_row_per_status() {
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
pub(crate) fn each_canonical_history_reaches_its_status() {
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
pub(crate) fn column_create() {
    let cells = Cells::check_column(&[Probe::Create]);
    cells.assert_all_pass(14);
}

#[test]
pub(crate) fn column_update() {
    let probes = UPDATE_PROBES.map(Probe::Update);
    Cells::check_column(&probes).assert_all_pass(14 * 8);
}

#[test]
pub(crate) fn column_schedule() {
    Cells::check_column(&[Probe::Schedule]).assert_all_pass(14);
}

#[test]
pub(crate) fn column_unschedule() {
    Cells::check_column(&[Probe::Unschedule]).assert_all_pass(14);
}

#[test]
pub(crate) fn column_progress_to_each_step() {
    let probes = PROGRESS_STEPS.map(Probe::Progress);
    Cells::check_column(&probes).assert_all_pass(14 * 5);
}

#[test]
pub(crate) fn column_start() {
    Cells::check_column(&[Probe::Start]).assert_all_pass(14);
}

#[test]
pub(crate) fn column_suspend() {
    Cells::check_column(&[Probe::Suspend]).assert_all_pass(14);
}

#[test]
pub(crate) fn column_resume() {
    Cells::check_column(&[Probe::Resume]).assert_all_pass(14);
}

#[test]
pub(crate) fn column_result_with_each_outcome() {
    let probes = OUTCOMES.map(Probe::Result);
    Cells::check_column(&probes).assert_all_pass(14 * 2);
}

#[test]
pub(crate) fn column_cancel() {
    let probes = CANCEL_PROBES.map(Probe::Cancel);
    Cells::check_column(&probes).assert_all_pass(14 * 3);
}

#[test]
pub(crate) fn every_probe_is_in_some_column_test() {
    // 1 create + 8 update + schedule + unschedule + 5 progress + start + suspend + resume
    // + 2 results + 3 cancels.
    assert_eq!(all_probes().len(), 24);
    let mut cells = Cells::default();
    for probe in all_probes() {
        cells.check(None, probe);
    }
    cells.assert_all_pass(24);
}
