//! The job summary and status-history read models, and how each event changes them. Pure
//! functions of the event stream, so the stores, a rebuild and the tests share one fold.

use super::metadata::EventMetadata;
use chrono::{DateTime, Utc};
use domain::{values::CustomFields, JobEvent, JobStatus, Outcome};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A job as the API returns it: the latest state folded from its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub id: Uuid,
    pub customer_id: i64,
    pub type_id: i64,
    pub contact_id: i64,
    pub status: JobStatus,
    pub reference: Option<String>,
    pub description: Option<String>,
    pub order_number: Option<String>,
    pub person_id: Option<Uuid>,
    /// Minutes.
    pub planned_duration: Option<i64>,
    pub planned_start: Option<DateTime<Utc>>,
    pub resource_id: Option<i64>,
    pub vehicle_id: Option<i64>,
    pub custom_fields: Vec<CustomFieldView>,
    pub cancellation: Option<Cancellation>,
    pub result: Option<JobResult>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The sequence number of the job's latest event; also the `ETag` of a GET.
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomFieldView {
    pub definition_id: i64,
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cancellation {
    pub reason: String,
    pub cancelled_at: DateTime<Utc>,
    /// The client that cancelled the job.
    pub cancelled_by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobResult {
    pub outcome: Outcome,
    pub notes: Option<String>,
    pub completed_at: DateTime<Utc>,
}

/// A summary with its JSON document, serialised once, as the writers store it: a rebuild
/// makes it while the replay folds rather than while the database's single writer waits.
pub struct SummaryDocument {
    /// The job's id as the projection keys it.
    pub job_id: String,
    pub view: JobView,
    pub document: Box<serde_json::value::RawValue>,
}

/// A summary that cannot be serialised (which no summary the fold makes should be).
#[derive(Debug, thiserror::Error)]
#[error("job {job_id}: {source}")]
pub struct UnserialisableSummary {
    pub job_id: Uuid,
    pub source: serde_json::Error,
}

impl SummaryDocument {
    pub fn new(view: JobView) -> Result<SummaryDocument, UnserialisableSummary> {
        let document =
            serde_json::value::to_raw_value(&view).map_err(|source| UnserialisableSummary {
                job_id: view.id,
                source,
            })?;
        Ok(SummaryDocument {
            job_id: view.id.to_string(),
            view,
            document,
        })
    }
}

/// One change of a job's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusHistoryEntry {
    /// The sequence number of the event that changed the status.
    pub sequence: i64,
    pub status: JobStatus,
    pub occurred_at: DateTime<Utc>,
    /// The comment, reason or notes given with the change, if any.
    pub comment: Option<String>,
    /// The client that made the change.
    pub actor: String,
}

fn custom_fields_view(fields: &CustomFields) -> Vec<CustomFieldView> {
    fields
        .as_slice()
        .iter()
        .map(|f| CustomFieldView {
            definition_id: f.definition_id.get(),
            value: f.value.as_ref().map(|v| v.as_str().to_owned()),
        })
        .collect()
}

/// Applies one event (the job's `sequence`-th) to its summary, if any. Idempotent: an event
/// the view has already seen changes nothing. Returns `None` only for events of a job that
/// was never created, which a consistent store does not hold.
pub fn project(
    view: Option<JobView>,
    job_id: Uuid,
    sequence: i64,
    event: &JobEvent,
    metadata: &EventMetadata,
) -> Option<JobView> {
    match (view, event) {
        (Some(view), _) if sequence <= view.version => Some(view),
        (None, JobEvent::JobCreated(created)) => Some(JobView {
            id: job_id,
            customer_id: created.customer_id.get(),
            type_id: created.type_id.get(),
            contact_id: created.contact_id.get(),
            status: JobStatus::New,
            reference: created.reference.as_ref().map(|v| v.as_str().to_owned()),
            description: created.description.as_ref().map(|v| v.as_str().to_owned()),
            order_number: created.order_number.as_ref().map(|v| v.as_str().to_owned()),
            person_id: created.person_id,
            planned_duration: created.planned_duration.map(|d| d.minutes()),
            planned_start: None,
            resource_id: None,
            vehicle_id: None,
            custom_fields: custom_fields_view(&created.custom_fields),
            cancellation: None,
            result: None,
            created_at: created.occurred_at,
            updated_at: created.occurred_at,
            version: sequence,
        }),
        (None, _) => None,
        (Some(mut view), event) => {
            view.apply(event, metadata);
            view.version = sequence;
            view.updated_at = event.occurred_at();
            Some(view)
        }
    }
}

impl JobView {
    fn apply(&mut self, event: &JobEvent, metadata: &EventMetadata) {
        if let Some(status) = event.status_after() {
            self.status = status;
        }
        match event {
            JobEvent::JobCreated(_) => {}
            JobEvent::JobUpdated(updated) => {
                let changes = &updated.changes;
                if let Some(v) = changes.type_id {
                    self.type_id = v.get();
                }
                if let Some(v) = changes.contact_id {
                    self.contact_id = v.get();
                }
                if let Some(v) = changes.planned_duration {
                    self.planned_duration = Some(v.minutes());
                }
                if let Some(v) = &changes.reference {
                    self.reference = v.as_ref().map(|v| v.as_str().to_owned());
                }
                if let Some(v) = &changes.description {
                    self.description = Some(v.as_str().to_owned());
                }
                if let Some(v) = changes.person_id {
                    self.person_id = v;
                }
                if let Some(v) = &changes.order_number {
                    self.order_number = v.as_ref().map(|v| v.as_str().to_owned());
                }
                if let Some(v) = &changes.custom_fields {
                    self.custom_fields = custom_fields_view(v);
                }
            }
            JobEvent::JobScheduled(scheduled) => {
                self.resource_id = Some(scheduled.resource_id.get());
                self.vehicle_id = Some(scheduled.vehicle_id.get());
                self.planned_start = Some(scheduled.planned_start);
                if let Some(duration) = scheduled.planned_duration {
                    self.planned_duration = Some(duration.minutes());
                }
            }
            // An unscheduled job has no slot: the resource, vehicle and start are released.
            JobEvent::JobUnscheduled(_) => {
                self.resource_id = None;
                self.vehicle_id = None;
                self.planned_start = None;
            }
            JobEvent::JobProgressed(_)
            | JobEvent::JobStarted(_)
            | JobEvent::JobSuspended(_)
            | JobEvent::JobResumed(_) => {}
            JobEvent::JobCompleted(completed) => {
                self.result = Some(JobResult {
                    outcome: completed.outcome,
                    notes: completed.notes.as_ref().map(|n| n.as_str().to_owned()),
                    completed_at: completed.occurred_at,
                });
            }
            JobEvent::JobCancelled(cancelled) => {
                self.cancellation = Some(Cancellation {
                    reason: cancelled.reason.as_str().to_owned(),
                    cancelled_at: cancelled.occurred_at,
                    cancelled_by: metadata.client_id.clone(),
                });
            }
        }
    }
}

/// One step of the fold both the stores and `verify` run: applies the job's `sequence`-th
/// event to its summary and returns the status-history entry it adds, if any. An event the
/// summary has already seen changes nothing and adds no entry.
pub fn apply_event(
    view: &mut Option<JobView>,
    job_id: Uuid,
    sequence: i64,
    event: &JobEvent,
    metadata: &EventMetadata,
) -> Option<StatusHistoryEntry> {
    let already_seen = view.as_ref().is_some_and(|v| sequence <= v.version);
    *view = project(view.take(), job_id, sequence, event, metadata);
    if already_seen || view.is_none() {
        return None;
    }
    status_entry(event, sequence, metadata)
}

/// The status-history entry an event adds, if it changes (or re-affirms, for a reschedule)
/// the job's status.
pub fn status_entry(
    event: &JobEvent,
    sequence: i64,
    metadata: &EventMetadata,
) -> Option<StatusHistoryEntry> {
    let status = event.status_after()?;
    let comment = match event {
        JobEvent::JobProgressed(e) => e.comment.as_ref().map(|c| c.as_str()),
        JobEvent::JobStarted(e) => e.comment.as_ref().map(|c| c.as_str()),
        JobEvent::JobSuspended(e) => e.reason.as_ref().map(|c| c.as_str()),
        JobEvent::JobCompleted(e) => e.notes.as_ref().map(|c| c.as_str()),
        JobEvent::JobCancelled(e) => Some(e.reason.as_str()),
        _ => None,
    };
    Some(StatusHistoryEntry {
        sequence,
        status,
        occurred_at: event.occurred_at(),
        comment: comment.map(str::to_owned),
        actor: metadata.client_id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::values::{CancelReason, PositiveId};
    use domain::{JobCancelled, JobCreated, JobStatus};

    fn metadata() -> EventMetadata {
        EventMetadata {
            client_id: "client-1".into(),
            token_id: "token-1".into(),
            customer_id: 9,
            request_id: "req-1".into(),
        }
    }

    fn created() -> JobEvent {
        JobEvent::JobCreated(JobCreated {
            customer_id: PositiveId::parse(9).unwrap(),
            type_id: PositiveId::parse(1).unwrap(),
            contact_id: PositiveId::parse(2).unwrap(),
            planned_duration: None,
            reference: None,
            description: None,
            person_id: None,
            order_number: None,
            custom_fields: Default::default(),
            occurred_at: domain::now(),
        })
    }

    fn cancelled() -> JobEvent {
        JobEvent::JobCancelled(JobCancelled {
            reason: CancelReason::parse("gone").unwrap(),
            occurred_at: domain::now(),
        })
    }

    #[test]
    fn an_event_already_seen_changes_nothing() {
        let id = Uuid::now_v7();
        let view = project(None, id, 1, &created(), &metadata());
        let view = project(view, id, 2, &cancelled(), &metadata()).unwrap();
        assert_eq!(view.status, JobStatus::Cancelled);
        assert_eq!(view.version, 2);
        let replayed = project(Some(view.clone()), id, 2, &cancelled(), &metadata());
        assert_eq!(replayed, Some(view.clone()));
        let older = project(Some(view.clone()), id, 1, &created(), &metadata());
        assert_eq!(older, Some(view));
    }

    #[test]
    fn the_cancellation_names_who_and_why() {
        let id = Uuid::now_v7();
        let view = project(None, id, 1, &created(), &metadata());
        let view = project(view, id, 2, &cancelled(), &metadata()).unwrap();
        let cancellation = view.cancellation.unwrap();
        assert_eq!(cancellation.reason, "gone");
        assert_eq!(cancellation.cancelled_by, "client-1");
        assert_eq!(view.updated_at, cancellation.cancelled_at);
    }

    #[test]
    fn events_of_a_job_never_created_make_no_row() {
        assert_eq!(
            project(None, Uuid::now_v7(), 1, &cancelled(), &metadata()),
            None
        );
    }

    #[test]
    fn status_entries_carry_the_reason_and_actor() {
        let entry = status_entry(&cancelled(), 4, &metadata()).unwrap();
        assert_eq!(entry.status, JobStatus::Cancelled);
        assert_eq!(entry.comment.as_deref(), Some("gone"));
        assert_eq!(entry.actor, "client-1");
        assert_eq!(entry.sequence, 4);
    }
}
