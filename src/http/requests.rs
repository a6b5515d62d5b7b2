//! Request bodies of the job endpoints and their validation into commands. A body that is
//! not of the documented shape was already refused with 400 by the extractor; here each
//! field rule that fails adds a message to the 422 `errors` map, and all are reported at once.

use crate::http::error::{ApiError, FieldErrors};
use crate::http::extract::JsonObject;
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

/// A JSON integer. JSON Schema (and so the OpenAPI document) counts `485.0` as the integer
/// 485, so it is accepted as one; a fraction or a value outside i64 is a malformed body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonInt(pub i64);

impl<'de> Deserialize<'de> for JsonInt {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = JsonInt;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer")
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<JsonInt, E> {
                Ok(JsonInt(v))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<JsonInt, E> {
                i64::try_from(v)
                    .map(JsonInt)
                    .map_err(|_| E::custom("integer out of range"))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<JsonInt, E> {
                // The i64 range is [-2^63, 2^63): both bounds are exact as f64.
                const I64_RANGE: std::ops::Range<f64> =
                    -9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0;
                if v.fract() == 0.0 && I64_RANGE.contains(&v) {
                    Ok(JsonInt(v as i64))
                } else {
                    Err(E::custom(format!("expected an integer, got {v}")))
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

fn positive_id(value: JsonInt) -> Result<PositiveId, domain::values::ValueError> {
    PositiveId::parse(value.0)
}

fn planned_duration(value: JsonInt) -> Result<PlannedDuration, domain::values::ValueError> {
    PlannedDuration::parse(value.0)
}

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
    domain::parse_timestamp(&raw).ok_or(
        "must be an RFC 3339 timestamp between years 0000 and 9999, e.g. 2026-12-01T08:30:00Z",
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomFieldInput {
    #[schema(value_type = i64, minimum = 1)]
    pub definition_id: JsonInt,
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub value: Option<String>,
}

fn parse_custom_fields(
    errors: &mut FieldErrors,
    inputs: Vec<JsonObject<CustomFieldInput>>,
) -> Option<CustomFields> {
    // Too many fields is one error: checking each of thousands would answer an `errors`
    // map of hundreds of kilobytes (review C7).
    if inputs.len() > CustomFields::MAX {
        errors.add(
            "customFields",
            domain::values::ValueError::TooMany {
                max: CustomFields::MAX,
            },
        );
        return None;
    }
    let mut fields = Vec::with_capacity(inputs.len());
    for (index, JsonObject(input)) in inputs.into_iter().enumerate() {
        let definition_id = errors.check(
            &format!("customFields[{index}].definitionId"),
            positive_id(input.definition_id),
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
    #[schema(value_type = i64, required = true, minimum = 1)]
    pub type_id: Option<JsonInt>,
    #[schema(value_type = i64, required = true, minimum = 1)]
    pub contact_id: Option<JsonInt>,
    /// Minutes.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 10080)]
    pub planned_duration: Option<JsonInt>,
    #[schema(max_length = 88)]
    pub reference: Option<String>,
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    #[schema(format = Uuid)]
    pub person_id: Option<String>,
    #[schema(max_length = 80)]
    pub order_number: Option<String>,
    /// Each definitionId at most once.
    #[schema(value_type = Option<Vec<CustomFieldInput>>, max_items = 100)]
    pub custom_fields: Option<Vec<JsonObject<CustomFieldInput>>>,
}

impl CreateJobRequest {
    pub fn into_command(self, customer_id: CustomerId) -> Result<JobCommand, ApiError> {
        let mut e = FieldErrors::default();
        let type_id = required(&mut e, "typeId", self.type_id)
            .and_then(|v| e.check("typeId", positive_id(v)));
        let contact_id = required(&mut e, "contactId", self.contact_id)
            .and_then(|v| e.check("contactId", positive_id(v)));
        let planned_duration = optional(
            &mut e,
            "plannedDuration",
            self.planned_duration,
            planned_duration,
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
    #[schema(value_type = i64, minimum = 1)]
    pub type_id: Option<Option<JsonInt>>,
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = i64, minimum = 1)]
    pub contact_id: Option<Option<JsonInt>>,
    /// Minutes.
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = i64, minimum = 1, maximum = 10080)]
    pub planned_duration: Option<Option<JsonInt>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<String>, max_length = 88)]
    pub reference: Option<Option<String>>,
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = String, max_length = 2000)]
    pub description: Option<Option<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub person_id: Option<Option<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<String>, max_length = 80)]
    pub order_number: Option<Option<String>>,
    /// Replaces all custom fields; each definitionId at most once.
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Vec<CustomFieldInput>, max_items = 100)]
    pub custom_fields: Option<Option<Vec<JsonObject<CustomFieldInput>>>>,
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
        let type_id = settable(&mut e, "typeId", self.type_id, positive_id);
        let contact_id = settable(&mut e, "contactId", self.contact_id, positive_id);
        let planned_duration = settable(
            &mut e,
            "plannedDuration",
            self.planned_duration,
            planned_duration,
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
    #[schema(value_type = i64, required = true, minimum = 1)]
    pub resource_id: Option<JsonInt>,
    #[schema(value_type = i64, required = true, minimum = 1)]
    pub vehicle_id: Option<JsonInt>,
    /// RFC 3339, e.g. `2026-12-01T08:30:00Z`.
    #[schema(value_type = String, required = true, format = DateTime)]
    pub planned_start: Option<String>,
    /// Minutes.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 10080)]
    pub planned_duration: Option<JsonInt>,
}

impl ScheduleJobRequest {
    pub fn into_command(self) -> Result<JobCommand, ApiError> {
        let mut e = FieldErrors::default();
        let resource_id = required(&mut e, "resourceId", self.resource_id)
            .and_then(|v| e.check("resourceId", positive_id(v)));
        let vehicle_id = required(&mut e, "vehicleId", self.vehicle_id)
            .and_then(|v| e.check("vehicleId", positive_id(v)));
        let planned_start = required(&mut e, "plannedStart", self.planned_start)
            .and_then(|v| e.check("plannedStart", parse_timestamp(v)));
        let planned_duration = optional(
            &mut e,
            "plannedDuration",
            self.planned_duration,
            planned_duration,
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
    #[schema(value_type = ProgressStatus, required = true)]
    pub status: Option<String>,
    #[schema(max_length = 500)]
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
    #[schema(max_length = 500)]
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
    #[schema(max_length = 500)]
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
    #[schema(value_type = Outcome, required = true)]
    pub outcome: Option<String>,
    #[schema(max_length = 2000)]
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
    /// Required and not blank; at most 500 characters once surrounding whitespace is
    /// trimmed (the stored reason is the trimmed text).
    #[schema(value_type = String, required = true, min_length = 1, max_length = 500, pattern = r"\S")]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn int(json: &str) -> Result<JsonInt, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn json_integers_include_integral_floats_only() {
        assert_eq!(int("485").unwrap(), JsonInt(485));
        assert_eq!(int("485.0").unwrap(), JsonInt(485));
        assert_eq!(int("-3e2").unwrap(), JsonInt(-300));
        assert_eq!(int("9223372036854775807").unwrap(), JsonInt(i64::MAX));
        assert!(int("485.5").is_err());
        assert!(int("9223372036854775808").is_err());
        assert!(int("1e19").is_err());
        assert!(int("\"5\"").is_err());
        assert!(int("null").is_err());
    }

    #[test]
    fn a_cancel_reason_is_trimmed_into_the_command() {
        let command = CancelJobRequest {
            reason: Some("  gone  ".into()),
        }
        .into_command()
        .unwrap();
        assert_eq!(
            command,
            JobCommand::Cancel(CancelJob {
                reason: CancelReason::parse("gone").unwrap()
            })
        );
    }
}
