//! Request bodies of the job endpoints and their validation into commands. A body that is
//! not of the documented shape was already refused with 400 by the extractor; here each
//! field rule that fails adds a message to the 422 `errors` map, and all are reported at once.

use crate::http::problem::{ApiError, FieldErrors};
use domain::values::{
    CancelReason, Comment, CustomField, CustomFieldValue, CustomFields, CustomerId, Description,
    OrderNumber, PlannedDuration, PositiveId, Reference, ResultNotes,
};
use domain::{
    present_or_null, CancelJob, CreateJob, JobChanges, JobCommand, Outcome, ProgressJob,
    ProgressStatus, RecordResult, ScheduleJob, StartJob, SuspendJob,
};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

const REQUIRED: &str = "is required";
const NOT_NULL: &str = "must not be null";

fn required<T>(errors: &mut FieldErrors, field: &str, value: Option<T>) -> Option<T> {
    if value.is_none() {
        errors.add(field, REQUIRED);
    }
    value
}

/// Parses an optional field: `None` stays `Some(None)`; a bad value records an error and
/// gives `None`.
fn optional<R, T, E: ToString>(
    errors: &mut FieldErrors,
    field: &str,
    value: Option<R>,
    parse: impl FnOnce(R) -> Result<T, E>,
) -> Option<Option<T>> {
    match value {
        None => Some(None),
        Some(raw) => errors.check(field, parse(raw)).map(Some),
    }
}

fn parse_uuid(raw: String) -> Result<Uuid, &'static str> {
    Uuid::parse_str(&raw).map_err(|_| "must be a UUID")
}

fn parse_timestamp(raw: String) -> Result<domain::Timestamp, &'static str> {
    chrono::DateTime::parse_from_rfc3339(&raw)
        .map(|t| domain::truncate_to_micros(t.with_timezone(&chrono::Utc)))
        .map_err(|_| "must be an RFC 3339 timestamp, e.g. 2026-12-01T08:30:00Z")
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomFieldInput {
    pub definition_id: i64,
    #[serde(default)]
    pub value: Option<String>,
}

fn parse_custom_fields(
    errors: &mut FieldErrors,
    inputs: Vec<CustomFieldInput>,
) -> Option<CustomFields> {
    let mut fields = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.into_iter().enumerate() {
        let definition_id = errors.check(
            &format!("customFields[{index}].definitionId"),
            PositiveId::parse(input.definition_id),
        );
        let value = optional(
            errors,
            &format!("customFields[{index}].value"),
            input.value,
            CustomFieldValue::parse,
        );
        if let (Some(definition_id), Some(value)) = (definition_id, value) {
            fields.push(CustomField {
                definition_id,
                value,
            });
        }
    }
    errors.check("customFields", CustomFields::new(fields))
}

/// A new job.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateJobRequest {
    /// Required; ≥ 1.
    pub type_id: Option<i64>,
    /// Required; ≥ 1.
    pub contact_id: Option<i64>,
    /// Minutes, 1…10080.
    pub planned_duration: Option<i64>,
    /// ≤ 88 characters.
    pub reference: Option<String>,
    /// ≤ 2000 characters.
    pub description: Option<String>,
    /// A UUID.
    pub person_id: Option<String>,
    /// ≤ 80 characters.
    pub order_number: Option<String>,
    /// ≤ 100 entries, each definitionId at most once.
    pub custom_fields: Option<Vec<CustomFieldInput>>,
}

impl CreateJobRequest {
    pub fn into_command(self, customer_id: CustomerId) -> Result<JobCommand, ApiError> {
        let mut e = FieldErrors::default();
        let type_id = required(&mut e, "typeId", self.type_id)
            .and_then(|v| e.check("typeId", PositiveId::parse(v)));
        let contact_id = required(&mut e, "contactId", self.contact_id)
            .and_then(|v| e.check("contactId", PositiveId::parse(v)));
        let planned_duration = optional(
            &mut e,
            "plannedDuration",
            self.planned_duration,
            PlannedDuration::parse,
        );
        let reference = optional(&mut e, "reference", self.reference, Reference::parse);
        let description = optional(&mut e, "description", self.description, Description::parse);
        let person_id = optional(&mut e, "personId", self.person_id, parse_uuid);
        let order_number = optional(&mut e, "orderNumber", self.order_number, OrderNumber::parse);
        let custom_fields = parse_custom_fields(&mut e, self.custom_fields.unwrap_or_default());
        e.into_result(|| {
            Some(JobCommand::Create(CreateJob {
                customer_id,
                type_id: type_id?,
                contact_id: contact_id?,
                planned_duration: planned_duration?,
                reference: reference?,
                description: description?,
                person_id: person_id?,
                order_number: order_number?,
                custom_fields: custom_fields?,
            }))
        })
    }
}

/// Changes to a job. Every field is optional: an omitted field keeps its value; `null`
/// clears `reference`, `orderNumber` and `personId` (and is refused for the other fields).
/// `description` and `personId` cannot change once the job is started, suspended or completed.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateJobRequest {
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<i64>)]
    pub type_id: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<i64>)]
    pub contact_id: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<i64>)]
    pub planned_duration: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<String>)]
    pub reference: Option<Option<String>>,
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<String>)]
    pub person_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<String>)]
    pub order_number: Option<Option<String>>,
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<Vec<CustomFieldInput>>)]
    pub custom_fields: Option<Option<Vec<CustomFieldInput>>>,
}

/// A field that may be set but not cleared: `null` is an error.
fn settable<R, T, E: ToString>(
    errors: &mut FieldErrors,
    field: &str,
    value: Option<Option<R>>,
    parse: impl FnOnce(R) -> Result<T, E>,
) -> Option<Option<T>> {
    match value {
        Some(None) => {
            errors.add(field, NOT_NULL);
            None
        }
        Some(Some(raw)) => errors.check(field, parse(raw)).map(Some),
        None => Some(None),
    }
}

/// A field that may be set or cleared with `null`.
fn clearable<R, T, E: ToString>(
    errors: &mut FieldErrors,
    field: &str,
    value: Option<Option<R>>,
    parse: impl FnOnce(R) -> Result<T, E>,
) -> Option<Option<Option<T>>> {
    match value {
        None => Some(None),
        Some(None) => Some(Some(None)),
        Some(Some(raw)) => errors.check(field, parse(raw)).map(|v| Some(Some(v))),
    }
}

impl UpdateJobRequest {
    pub fn into_command(self) -> Result<JobCommand, ApiError> {
        let mut e = FieldErrors::default();
        let type_id = settable(&mut e, "typeId", self.type_id, PositiveId::parse);
        let contact_id = settable(&mut e, "contactId", self.contact_id, PositiveId::parse);
        let planned_duration = settable(
            &mut e,
            "plannedDuration",
            self.planned_duration,
            PlannedDuration::parse,
        );
        let reference = clearable(&mut e, "reference", self.reference, Reference::parse);
        let description = settable(&mut e, "description", self.description, Description::parse);
        let person_id = clearable(&mut e, "personId", self.person_id, parse_uuid);
        let order_number = clearable(&mut e, "orderNumber", self.order_number, OrderNumber::parse);
        let custom_fields = match self.custom_fields {
            None => Some(None),
            Some(None) => {
                e.add("customFields", NOT_NULL);
                None
            }
            Some(Some(inputs)) => parse_custom_fields(&mut e, inputs).map(Some),
        };
        e.into_result(|| {
            Some(JobCommand::Update(JobChanges {
                type_id: type_id?,
                contact_id: contact_id?,
                planned_duration: planned_duration?,
                reference: reference?,
                description: description?,
                person_id: person_id?,
                order_number: order_number?,
                custom_fields: custom_fields?,
            }))
        })
    }
}

/// Where and when the job is to be done. `resourceId`, `vehicleId` and `plannedStart` are
/// required; `plannedDuration` (minutes, 1…10080) optionally replaces the job's.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleJobRequest {
    pub resource_id: Option<i64>,
    pub vehicle_id: Option<i64>,
    /// RFC 3339, e.g. `2026-12-01T08:30:00Z`.
    pub planned_start: Option<String>,
    pub planned_duration: Option<i64>,
}

impl ScheduleJobRequest {
    pub fn into_command(self) -> Result<JobCommand, ApiError> {
        let mut e = FieldErrors::default();
        let resource_id = required(&mut e, "resourceId", self.resource_id)
            .and_then(|v| e.check("resourceId", PositiveId::parse(v)));
        let vehicle_id = required(&mut e, "vehicleId", self.vehicle_id)
            .and_then(|v| e.check("vehicleId", PositiveId::parse(v)));
        let planned_start = required(&mut e, "plannedStart", self.planned_start)
            .and_then(|v| e.check("plannedStart", parse_timestamp(v)));
        let planned_duration = optional(
            &mut e,
            "plannedDuration",
            self.planned_duration,
            PlannedDuration::parse,
        );
        e.into_result(|| {
            Some(JobCommand::Schedule(ScheduleJob {
                resource_id: resource_id?,
                vehicle_id: vehicle_id?,
                planned_start: planned_start?,
                planned_duration: planned_duration?,
            }))
        })
    }
}

/// A body that must be empty or `{}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyRequest {}

/// A progress step reported by the driver's device.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProgressJobRequest {
    /// One of sent, read, accepted, refused, onTheWay.
    #[schema(value_type = Option<ProgressStatus>)]
    pub status: Option<String>,
    /// ≤ 500 characters.
    pub comment: Option<String>,
}

impl ProgressJobRequest {
    pub fn into_command(self) -> Result<JobCommand, ApiError> {
        let mut e = FieldErrors::default();
        let status = required(&mut e, "status", self.status).and_then(|raw| {
            e.check(
                "status",
                ProgressStatus::parse(&raw)
                    .ok_or("must be one of sent, read, accepted, refused, onTheWay"),
            )
        });
        let comment = optional(&mut e, "comment", self.comment, Comment::parse);
        e.into_result(|| {
            Some(JobCommand::Progress(ProgressJob {
                status: status?,
                comment: comment?,
            }))
        })
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartJobRequest {
    /// ≤ 500 characters.
    pub comment: Option<String>,
}

impl StartJobRequest {
    pub fn into_command(self) -> Result<JobCommand, ApiError> {
        let mut e = FieldErrors::default();
        let comment = optional(&mut e, "comment", self.comment, Comment::parse);
        e.into_result(|| Some(JobCommand::Start(StartJob { comment: comment? })))
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuspendJobRequest {
    /// ≤ 500 characters.
    pub reason: Option<String>,
}

impl SuspendJobRequest {
    pub fn into_command(self) -> Result<JobCommand, ApiError> {
        let mut e = FieldErrors::default();
        let reason = optional(&mut e, "reason", self.reason, Comment::parse);
        e.into_result(|| Some(JobCommand::Suspend(SuspendJob { reason: reason? })))
    }
}

/// How the job ended.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordResultRequest {
    /// completedOk or completedWithIssues.
    #[schema(value_type = Option<Outcome>)]
    pub outcome: Option<String>,
    /// ≤ 2000 characters.
    pub notes: Option<String>,
}

impl RecordResultRequest {
    pub fn into_command(self) -> Result<JobCommand, ApiError> {
        let mut e = FieldErrors::default();
        let outcome = required(&mut e, "outcome", self.outcome).and_then(|raw| {
            e.check(
                "outcome",
                Outcome::parse(&raw).ok_or("must be completedOk or completedWithIssues"),
            )
        });
        let notes = optional(&mut e, "notes", self.notes, ResultNotes::parse);
        e.into_result(|| {
            Some(JobCommand::RecordResult(RecordResult {
                outcome: outcome?,
                notes: notes?,
            }))
        })
    }
}

/// Why the job is cancelled.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelJobRequest {
    /// Required; not blank; at most 500 characters after trimming surrounding whitespace.
    pub reason: Option<String>,
}

impl CancelJobRequest {
    pub fn into_command(self) -> Result<JobCommand, ApiError> {
        let mut e = FieldErrors::default();
        let reason = required(&mut e, "reason", self.reason)
            .and_then(|raw| e.check("reason", CancelReason::parse(&raw)));
        e.into_result(|| Some(JobCommand::Cancel(CancelJob { reason: reason? })))
    }
}
