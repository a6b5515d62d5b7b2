//! Events: what happened to a job. Past-tense names that never change once stored; a change
//! of shape gets a new [`EVENT_VERSION`] and an upcaster. Serialized with cqrs-es's usual
//! external tagging: `{"JobCancelled": {"reason": "…", "occurredAt": "…"}}`.

use crate::status::{JobStatus, Outcome, ProgressStatus};
use crate::values::{
    CancelReason, Comment, CustomFields, CustomerId, Description, OrderNumber, PlannedDuration,
    PositiveId, Reference, ResultNotes,
};
use crate::Timestamp;
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The version every event type is written with today.
pub const EVENT_VERSION: &str = "1.0";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JobEvent {
    JobCreated(JobCreated),
    JobUpdated(JobUpdated),
    JobScheduled(JobScheduled),
    JobUnscheduled(JobUnscheduled),
    JobProgressed(JobProgressed),
    JobStarted(JobStarted),
    JobSuspended(JobSuspended),
    JobResumed(JobResumed),
    JobCompleted(JobCompleted),
    JobCancelled(JobCancelled),
}

impl JobEvent {
    /// Every event type's name (see [`Self::type_name`]).
    pub const TYPE_NAMES: [&'static str; 10] = [
        "JobCreated",
        "JobUpdated",
        "JobScheduled",
        "JobUnscheduled",
        "JobProgressed",
        "JobStarted",
        "JobSuspended",
        "JobResumed",
        "JobCompleted",
        "JobCancelled",
    ];

    /// When it happened (the server's clock when the command was handled).
    pub fn occurred_at(&self) -> Timestamp {
        match self {
            JobEvent::JobCreated(e) => e.occurred_at,
            JobEvent::JobUpdated(e) => e.occurred_at,
            JobEvent::JobScheduled(e) => e.occurred_at,
            JobEvent::JobUnscheduled(e) => e.occurred_at,
            JobEvent::JobProgressed(e) => e.occurred_at,
            JobEvent::JobStarted(e) => e.occurred_at,
            JobEvent::JobSuspended(e) => e.occurred_at,
            JobEvent::JobResumed(e) => e.occurred_at,
            JobEvent::JobCompleted(e) => e.occurred_at,
            JobEvent::JobCancelled(e) => e.occurred_at,
        }
    }

    /// The status the job has after this event, if the event sets one: the one answer the
    /// aggregate's fold and the read projection's status history both use.
    pub fn status_after(&self) -> Option<JobStatus> {
        match self {
            JobEvent::JobCreated(_) => Some(JobStatus::New),
            JobEvent::JobUpdated(_) => None,
            JobEvent::JobScheduled(_) => Some(JobStatus::Scheduled),
            JobEvent::JobUnscheduled(_) => Some(JobStatus::Unscheduled),
            JobEvent::JobProgressed(e) => Some(e.status.status()),
            JobEvent::JobStarted(_) | JobEvent::JobResumed(_) => Some(JobStatus::Started),
            JobEvent::JobSuspended(_) => Some(JobStatus::Suspended),
            JobEvent::JobCompleted(e) => Some(e.outcome.status()),
            JobEvent::JobCancelled(_) => Some(JobStatus::Cancelled),
        }
    }

    /// The stable type name, e.g. `JobCancelled`.
    pub fn type_name(&self) -> &'static str {
        match self {
            JobEvent::JobCreated(_) => "JobCreated",
            JobEvent::JobUpdated(_) => "JobUpdated",
            JobEvent::JobScheduled(_) => "JobScheduled",
            JobEvent::JobUnscheduled(_) => "JobUnscheduled",
            JobEvent::JobProgressed(_) => "JobProgressed",
            JobEvent::JobStarted(_) => "JobStarted",
            JobEvent::JobSuspended(_) => "JobSuspended",
            JobEvent::JobResumed(_) => "JobResumed",
            JobEvent::JobCompleted(_) => "JobCompleted",
            JobEvent::JobCancelled(_) => "JobCancelled",
        }
    }
}

impl DomainEvent for JobEvent {
    fn event_type(&self) -> String {
        self.type_name().to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobCreated {
    pub customer_id: CustomerId,
    pub type_id: PositiveId,
    pub contact_id: PositiveId,
    pub planned_duration: Option<PlannedDuration>,
    pub reference: Option<Reference>,
    pub description: Option<Description>,
    pub person_id: Option<Uuid>,
    pub order_number: Option<OrderNumber>,
    pub custom_fields: CustomFields,
    pub occurred_at: Timestamp,
}

/// Changes to a job's details. A field that is absent is unchanged; for the clearable
/// fields, `Some(None)` (JSON `null`) clears the value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_id: Option<PositiveId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<PositiveId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_duration: Option<PlannedDuration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_or_null"
    )]
    pub reference: Option<Option<Reference>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Description>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_or_null"
    )]
    pub person_id: Option<Option<Uuid>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_or_null"
    )]
    pub order_number: Option<Option<OrderNumber>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<CustomFields>,
}

impl JobChanges {
    pub fn is_empty(&self) -> bool {
        *self == JobChanges::default()
    }
}

/// Keeps "present and null" (`Some(None)`) apart from "absent" (`None`, via `default`):
/// use with `#[serde(default, deserialize_with = "present_or_null")]`.
pub fn present_or_null<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobUpdated {
    pub changes: JobChanges,
    pub occurred_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobScheduled {
    pub resource_id: PositiveId,
    pub vehicle_id: PositiveId,
    pub planned_start: Timestamp,
    pub planned_duration: Option<PlannedDuration>,
    pub occurred_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobUnscheduled {
    pub occurred_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobProgressed {
    pub status: ProgressStatus,
    pub comment: Option<Comment>,
    pub occurred_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStarted {
    pub comment: Option<Comment>,
    pub occurred_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSuspended {
    pub reason: Option<Comment>,
    pub occurred_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobResumed {
    pub occurred_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobCompleted {
    pub outcome: Outcome,
    pub notes: Option<ResultNotes>,
    pub occurred_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobCancelled {
    pub reason: CancelReason,
    pub occurred_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_keep_absent_apart_from_null() {
        let changes: JobChanges =
            serde_json::from_str(r#"{"reference": null, "orderNumber": "A-1"}"#).unwrap();
        assert_eq!(changes.reference, Some(None));
        assert_eq!(changes.person_id, None);
        assert_eq!(
            changes.order_number.clone().flatten().unwrap().as_str(),
            "A-1"
        );
        let round_trip: JobChanges =
            serde_json::from_value(serde_json::to_value(&changes).unwrap()).unwrap();
        assert_eq!(round_trip, changes);
    }

    #[test]
    fn events_are_externally_tagged_with_stable_names() {
        let event = JobEvent::JobCancelled(JobCancelled {
            reason: CancelReason::parse("no access").unwrap(),
            occurred_at: crate::now(),
        });
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["JobCancelled"]["reason"], "no access");
        assert_eq!(event.event_type(), "JobCancelled");
        assert_eq!(event.event_version(), "1.0");
    }

    #[test]
    fn type_names_are_the_variants_names_once_each() {
        let mut names = JobEvent::TYPE_NAMES.to_vec();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), JobEvent::TYPE_NAMES.len());
        // serde names each variant by its type name: every listed name reads as a variant
        // (the body is wrong for all of them, so the error names the variant's fields).
        for name in JobEvent::TYPE_NAMES {
            let error = serde_json::from_str::<JobEvent>(&format!(r#"{{"{name}": 1}}"#))
                .unwrap_err()
                .to_string();
            assert!(!error.contains("unknown variant"), "{name}: {error}");
        }
        // And the list is whole: serde's refusal of an unknown name lists every variant.
        let error = serde_json::from_str::<JobEvent>(r#"{"Nope": 1}"#)
            .unwrap_err()
            .to_string();
        let listed = error.matches('`').count() / 2 - 1;
        assert_eq!(listed, JobEvent::TYPE_NAMES.len(), "{error}");
    }
}
