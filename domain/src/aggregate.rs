//! The `Job` aggregate: the lifecycle rules of SPEC §3. `decide` is the whole of the
//! business logic (command + state → events or error); `apply` folds events into state.

use crate::commands::JobCommand;
use crate::errors::{CommandKind, JobError};
use crate::events::*;
use crate::status::{JobStatus, ProgressStatus};
use crate::values::{
    CancelReason, CustomFields, CustomerId, Description, OrderNumber, PlannedDuration, PositiveId,
    Reference,
};
use crate::{Timestamp, AGGREGATE_TYPE};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What the aggregate needs from outside: only the clock, so tests can fix it.
pub struct JobServices {
    clock: Box<dyn Fn() -> Timestamp + Send + Sync>,
}

impl JobServices {
    /// The system clock (microsecond precision).
    pub fn system_clock() -> Self {
        Self {
            clock: Box::new(crate::now),
        }
    }

    /// A clock that always answers `at`.
    pub fn fixed_clock(at: Timestamp) -> Self {
        Self {
            clock: Box::new(move || at),
        }
    }

    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }
}

/// A job as the rules see it. `Default` is a job that does not exist yet.
///
/// Its serde form is the stores' snapshot of a job, read back instead of replaying the
/// events before it. So reading is strict: an unknown field or a missing `state` is an
/// error, and a snapshot that does not read is ignored (the job is replayed from its
/// events) rather than taken for something else. A change to these fields must keep old
/// snapshots meaning the same, or rename the field so that they no longer read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    // `deserialize_with` makes the field required: serde would read a missing `Option` as
    // `None`, i.e. as a job that does not exist.
    #[serde(deserialize_with = "Option::deserialize")]
    state: Option<JobState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobState {
    status: JobStatus,
    customer_id: CustomerId,
    type_id: PositiveId,
    contact_id: PositiveId,
    planned_duration: Option<PlannedDuration>,
    reference: Option<Reference>,
    description: Option<Description>,
    person_id: Option<Uuid>,
    order_number: Option<OrderNumber>,
    custom_fields: CustomFields,
    cancel_reason: Option<CancelReason>,
}

impl Job {
    /// The current status, or `None` when the job has not been created.
    pub fn status(&self) -> Option<JobStatus> {
        self.state.as_ref().map(|s| s.status)
    }

    pub fn cancel_reason(&self) -> Option<&CancelReason> {
        self.state.as_ref().and_then(|s| s.cancel_reason.as_ref())
    }

    /// Decides what a command does to this job: the events to record (possibly none, for a
    /// command that changes nothing) or the rule it breaks.
    pub fn decide(&self, command: JobCommand, at: Timestamp) -> Result<Vec<JobEvent>, JobError> {
        let Some(state) = &self.state else {
            return match command {
                JobCommand::Create(create) => Ok(vec![JobEvent::JobCreated(JobCreated {
                    customer_id: create.customer_id,
                    type_id: create.type_id,
                    contact_id: create.contact_id,
                    planned_duration: create.planned_duration,
                    reference: create.reference,
                    description: create.description,
                    person_id: create.person_id,
                    order_number: create.order_number,
                    custom_fields: create.custom_fields,
                    occurred_at: at,
                })]),
                _ => Err(JobError::NotFound),
            };
        };
        let status = state.status;
        let refuse = |command| Err(JobError::Refused { command, status });
        use JobStatus::*;
        match command {
            JobCommand::Create(_) => Err(JobError::AlreadyExists),
            JobCommand::Update(requested) => {
                if status == Cancelled {
                    return refuse(CommandKind::Update);
                }
                let changes = state.effective_changes(requested);
                if status.work_has_begun() {
                    if changes.description.is_some() {
                        return Err(JobError::FieldLocked {
                            field: "description",
                            status,
                        });
                    }
                    if changes.person_id.is_some() {
                        return Err(JobError::FieldLocked {
                            field: "personId",
                            status,
                        });
                    }
                }
                if changes.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![JobEvent::JobUpdated(JobUpdated {
                    changes,
                    occurred_at: at,
                })])
            }
            JobCommand::Schedule(schedule) => match status {
                New | Scheduled | Unscheduled | Sent | Read | Accepted | Refused => {
                    Ok(vec![JobEvent::JobScheduled(JobScheduled {
                        resource_id: schedule.resource_id,
                        vehicle_id: schedule.vehicle_id,
                        planned_start: schedule.planned_start,
                        planned_duration: schedule.planned_duration,
                        occurred_at: at,
                    })])
                }
                _ => refuse(CommandKind::Schedule),
            },
            JobCommand::Unschedule => match status {
                Scheduled | Sent | Read | Accepted | Refused => {
                    Ok(vec![JobEvent::JobUnscheduled(JobUnscheduled {
                        occurred_at: at,
                    })])
                }
                _ => refuse(CommandKind::Unschedule),
            },
            JobCommand::Progress(progress) => {
                use ProgressStatus as P;
                let allowed = matches!(
                    (status, progress.status),
                    (Scheduled, P::Sent)
                        | (Sent, P::Read | P::Accepted | P::Refused | P::OnTheWay)
                        | (Read, P::Accepted | P::Refused | P::OnTheWay)
                        | (Accepted, P::OnTheWay)
                );
                if !allowed {
                    return refuse(CommandKind::Progress(progress.status));
                }
                Ok(vec![JobEvent::JobProgressed(JobProgressed {
                    status: progress.status,
                    comment: progress.comment,
                    occurred_at: at,
                })])
            }
            JobCommand::Start(start) => match status {
                Scheduled | Sent | Read | Accepted | OnTheWay => {
                    Ok(vec![JobEvent::JobStarted(JobStarted {
                        comment: start.comment,
                        occurred_at: at,
                    })])
                }
                _ => refuse(CommandKind::Start),
            },
            JobCommand::Suspend(suspend) => match status {
                Started => Ok(vec![JobEvent::JobSuspended(JobSuspended {
                    reason: suspend.reason,
                    occurred_at: at,
                })]),
                _ => refuse(CommandKind::Suspend),
            },
            JobCommand::Resume => match status {
                Suspended => Ok(vec![JobEvent::JobResumed(JobResumed { occurred_at: at })]),
                _ => refuse(CommandKind::Resume),
            },
            JobCommand::RecordResult(result) => match status {
                Started => Ok(vec![JobEvent::JobCompleted(JobCompleted {
                    outcome: result.outcome,
                    notes: result.notes,
                    occurred_at: at,
                })]),
                _ => refuse(CommandKind::RecordResult),
            },
            JobCommand::Cancel(cancel) => match status {
                // Repeating a cancel is safe (a client retrying after a timeout), but only
                // the same reason: a different one would silently rewrite the audit trail.
                Cancelled if state.cancel_reason.as_ref() == Some(&cancel.reason) => Ok(vec![]),
                Cancelled => Err(JobError::AlreadyCancelled),
                _ if status.work_has_begun() => refuse(CommandKind::Cancel),
                _ => Ok(vec![JobEvent::JobCancelled(JobCancelled {
                    reason: cancel.reason,
                    occurred_at: at,
                })]),
            },
        }
    }
}

impl JobState {
    /// Keeps only the requested changes that differ from the current details, so an update
    /// that changes nothing records nothing (and does not trip a locked field).
    fn effective_changes(&self, requested: JobChanges) -> JobChanges {
        fn differs<T: PartialEq>(new: Option<T>, current: &T) -> Option<T> {
            new.filter(|value| value != current)
        }
        JobChanges {
            type_id: differs(requested.type_id, &self.type_id),
            contact_id: differs(requested.contact_id, &self.contact_id),
            planned_duration: requested
                .planned_duration
                .filter(|d| Some(*d) != self.planned_duration),
            reference: differs(requested.reference, &self.reference),
            description: requested
                .description
                .filter(|d| Some(d) != self.description.as_ref()),
            person_id: differs(requested.person_id, &self.person_id),
            order_number: differs(requested.order_number, &self.order_number),
            custom_fields: differs(requested.custom_fields, &self.custom_fields),
        }
    }

    fn apply_changes(&mut self, changes: JobChanges) {
        let JobChanges {
            type_id,
            contact_id,
            planned_duration,
            reference,
            description,
            person_id,
            order_number,
            custom_fields,
        } = changes;
        if let Some(v) = type_id {
            self.type_id = v;
        }
        if let Some(v) = contact_id {
            self.contact_id = v;
        }
        if let Some(v) = planned_duration {
            self.planned_duration = Some(v);
        }
        if let Some(v) = reference {
            self.reference = v;
        }
        if let Some(v) = description {
            self.description = Some(v);
        }
        if let Some(v) = person_id {
            self.person_id = v;
        }
        if let Some(v) = order_number {
            self.order_number = v;
        }
        if let Some(v) = custom_fields {
            self.custom_fields = v;
        }
    }
}

impl Aggregate for Job {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = JobCommand;
    type Event = JobEvent;
    type Error = JobError;
    type Services = JobServices;

    async fn handle(
        &mut self,
        command: JobCommand,
        services: &JobServices,
        sink: &EventSink<Self>,
    ) -> Result<(), JobError> {
        for event in self.decide(command, services.now())? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: JobEvent) {
        if let JobEvent::JobCreated(created) = &event {
            self.state = Some(JobState {
                status: JobStatus::New,
                customer_id: created.customer_id,
                type_id: created.type_id,
                contact_id: created.contact_id,
                planned_duration: created.planned_duration,
                reference: created.reference.clone(),
                description: created.description.clone(),
                person_id: created.person_id,
                order_number: created.order_number.clone(),
                custom_fields: created.custom_fields.clone(),
                cancel_reason: None,
            });
            return;
        }
        // Events of a job that was never created cannot exist in a consistent store; folding
        // ignores them rather than inventing a job.
        let Some(state) = self.state.as_mut() else {
            return;
        };
        if let Some(status) = event.status_after() {
            state.status = status;
        }
        match event {
            JobEvent::JobUpdated(updated) => state.apply_changes(updated.changes),
            JobEvent::JobScheduled(scheduled) if scheduled.planned_duration.is_some() => {
                state.planned_duration = scheduled.planned_duration;
            }
            JobEvent::JobCancelled(cancelled) => state.cancel_reason = Some(cancelled.reason),
            _ => {}
        }
    }
}
