//! Every error answer is `application/problem+json` (RFC 9457). This module holds what such
//! an answer is made of: the catalogue of [`ProblemType`]s (slug, title, status — the one
//! list both the answers and the OpenAPI `x-problem-types` extension are made from) and the
//! [`Problem`] body. Which error becomes which problem is [`super::error::ApiError`]'s
//! business; completing a problem with `instance` and `requestId` is the
//! `finish_problems` middleware's.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::{CommandKind, JobError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Declares [`ProblemType`] from one table, so the enum, its [`ProblemType::ALL`] list and
/// its slug, title and status can never disagree or miss an entry.
macro_rules! problem_types {
    ($($variant:ident => ($slug:literal, $title:literal, $status:ident),)+) => {
        /// A stable problem type: the `type` of a problem is `/problems/{slug}`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ProblemType {
            $($variant,)+
        }

        impl ProblemType {
            /// Every problem type the service answers with: the catalogue the OpenAPI
            /// document lists.
            pub const ALL: &'static [ProblemType] = &[$(ProblemType::$variant,)+];

            pub fn slug(self) -> &'static str {
                match self {
                    $(ProblemType::$variant => $slug,)+
                }
            }

            pub fn title(self) -> &'static str {
                match self {
                    $(ProblemType::$variant => $title,)+
                }
            }

            /// The status this type is answered with when the service itself raises it.
            pub fn status(self) -> StatusCode {
                match self {
                    $(ProblemType::$variant => StatusCode::$status,)+
                }
            }
        }
    };
}

problem_types! {
    MalformedBody => ("malformed-body", "Malformed request body", BAD_REQUEST),
    InvalidJobId => ("invalid-job-id", "Invalid job id", BAD_REQUEST),
    InvalidCustomerId => ("invalid-customer-id", "Missing or invalid Customer-Id header", BAD_REQUEST),
    InvalidPaging => ("invalid-paging", "Invalid paging parameters", BAD_REQUEST),
    InvalidQuery => ("invalid-query", "Invalid query parameter", BAD_REQUEST),
    InvalidIfMatch => ("invalid-if-match", "Invalid If-Match header", BAD_REQUEST),
    InvalidIdempotencyKey => ("invalid-idempotency-key", "Invalid Idempotency-Key header", BAD_REQUEST),
    NotFound => ("not-found", "Not found", NOT_FOUND),
    MethodNotAllowed => ("method-not-allowed", "Method not allowed", METHOD_NOT_ALLOWED),
    JobNotFound => ("job-not-found", "Job not found", NOT_FOUND),
    InvalidWebhookId => ("invalid-webhook-id", "Invalid webhook subscription id", BAD_REQUEST),
    WebhookNotFound => ("webhook-not-found", "Webhook subscription not found", NOT_FOUND),
    UnsupportedMediaType => ("unsupported-media-type", "Unsupported media type", UNSUPPORTED_MEDIA_TYPE),
    PayloadTooLarge => ("payload-too-large", "Request body too large", PAYLOAD_TOO_LARGE),
    HeadersTooLarge => ("headers-too-large", "Request headers too large", REQUEST_HEADER_FIELDS_TOO_LARGE),
    Validation => ("validation", "Validation failed", UNPROCESSABLE_ENTITY),
    JobAlreadyExists => ("job-already-exists", "Job already exists", UNPROCESSABLE_ENTITY),
    JobAlreadyCancelled => ("job-already-cancelled", "Job already cancelled with another reason", UNPROCESSABLE_ENTITY),
    JobFieldLocked => ("job-field-locked", "Field locked once work has begun", UNPROCESSABLE_ENTITY),
    JobNotUpdatable => ("job-not-updatable", "Job cannot be updated", UNPROCESSABLE_ENTITY),
    JobNotSchedulable => ("job-not-schedulable", "Job cannot be scheduled", UNPROCESSABLE_ENTITY),
    JobNotUnschedulable => ("job-not-unschedulable", "Job cannot be unscheduled", UNPROCESSABLE_ENTITY),
    JobProgressNotAllowed => ("job-progress-not-allowed", "Progress step not allowed", UNPROCESSABLE_ENTITY),
    JobNotStartable => ("job-not-startable", "Job cannot be started", UNPROCESSABLE_ENTITY),
    JobNotSuspendable => ("job-not-suspendable", "Job cannot be suspended", UNPROCESSABLE_ENTITY),
    JobNotResumable => ("job-not-resumable", "Job cannot be resumed", UNPROCESSABLE_ENTITY),
    JobResultNotAllowed => ("job-result-not-allowed", "Result cannot be recorded", UNPROCESSABLE_ENTITY),
    JobNotCancellable => ("job-not-cancellable", "Job cannot be cancelled", UNPROCESSABLE_ENTITY),
    Unauthorized => ("unauthorized", "Missing or invalid access token", UNAUTHORIZED),
    InsufficientScope => ("insufficient-scope", "Access token lacks the required scope", FORBIDDEN),
    CustomerNotAllowed => ("customer-not-allowed", "Access token may not act for this customer", FORBIDDEN),
    InvalidClient => ("invalid-client", "Client authentication failed", UNAUTHORIZED),
    InvalidTokenRequest => ("invalid-token-request", "Malformed token request", BAD_REQUEST),
    UnsupportedGrantType => ("unsupported-grant-type", "Unsupported grant type", BAD_REQUEST),
    InvalidScope => ("invalid-scope", "Invalid scope", BAD_REQUEST),
    Conflict => ("conflict", "Concurrent modification", CONFLICT),
    PreconditionFailed => ("precondition-failed", "Precondition failed", PRECONDITION_FAILED),
    IdempotencyKeyReused => ("idempotency-key-reused", "Idempotency key used for another request", UNPROCESSABLE_ENTITY),
    IdempotencyKeyInFlight => ("idempotency-key-in-flight", "A request with this idempotency key is in progress", CONFLICT),
    TooManyRequests => ("too-many-requests", "Too many requests", TOO_MANY_REQUESTS),
    ServiceUnavailable => ("service-unavailable", "Service unavailable", SERVICE_UNAVAILABLE),
    Internal => ("internal", "Internal server error", INTERNAL_SERVER_ERROR),
}

impl ProblemType {
    /// The `type` member: a relative URI, stable across releases.
    pub fn uri(self) -> String {
        format!("/problems/{}", self.slug())
    }

    /// The type of a refused domain rule.
    pub fn of_rule(error: &JobError) -> Self {
        match error {
            JobError::AlreadyExists => ProblemType::JobAlreadyExists,
            JobError::NotFound => ProblemType::JobNotFound,
            JobError::AlreadyCancelled => ProblemType::JobAlreadyCancelled,
            JobError::FieldLocked { .. } => ProblemType::JobFieldLocked,
            JobError::Refused { command, .. } => match command {
                CommandKind::Update => ProblemType::JobNotUpdatable,
                CommandKind::Schedule => ProblemType::JobNotSchedulable,
                CommandKind::Unschedule => ProblemType::JobNotUnschedulable,
                CommandKind::Progress(_) => ProblemType::JobProgressNotAllowed,
                CommandKind::Start => ProblemType::JobNotStartable,
                CommandKind::Suspend => ProblemType::JobNotSuspendable,
                CommandKind::Resume => ProblemType::JobNotResumable,
                CommandKind::RecordResult => ProblemType::JobResultNotAllowed,
                CommandKind::Cancel => ProblemType::JobNotCancellable,
            },
        }
    }
}

/// The body of every error response.
// The `serde(default)`s are part of the published shape: utoipa reads them and lists
// `instance` and `requestId` as optional in the OpenAPI schema.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// Stable URI of the rule or condition, e.g. `/problems/job-not-cancellable`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request path.
    #[serde(default)]
    pub instance: String,
    #[serde(default)]
    pub request_id: String,
    /// On 422 validation problems: property name → messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, Vec<String>>>,
    /// On token endpoint errors: the OAuth 2.0 error code (RFC 6749 §5.2), e.g.
    /// `invalid_client`, for OAuth client libraries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Problem {
    /// A problem of `kind`, answered with `status` (the type's own, except for errors axum
    /// produced, whose status is kept). `instance` and `requestId` are filled in later, by
    /// the `finish_problems` middleware, which knows the request.
    pub fn new(kind: ProblemType, status: StatusCode, detail: impl Into<String>) -> Self {
        Problem {
            problem_type: kind.uri(),
            title: kind.title().to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            instance: String::new(),
            request_id: String::new(),
            errors: None,
            error: None,
        }
    }

    /// A problem for an error axum or tower produced without our help (unknown route, wrong
    /// method, timeout, panic, …).
    pub fn generic(status: StatusCode) -> Self {
        let (kind, detail) = match status {
            StatusCode::NOT_FOUND => (ProblemType::NotFound, "no such resource"),
            StatusCode::METHOD_NOT_ALLOWED => (
                ProblemType::MethodNotAllowed,
                "this resource does not support the method",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => {
                (ProblemType::PayloadTooLarge, "request body too large")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                ProblemType::UnsupportedMediaType,
                "request bodies must be application/json",
            ),
            StatusCode::SERVICE_UNAVAILABLE => (
                ProblemType::ServiceUnavailable,
                "the request could not be completed in time; retry it",
            ),
            s if s.is_server_error() => (ProblemType::Internal, "an unexpected error occurred"),
            _ => (
                ProblemType::MalformedBody,
                "the request could not be understood",
            ),
        };
        Problem::new(kind, status, detail)
    }

    /// The problem as JSON; empty only if serialisation failed, which plain strings and
    /// numbers cannot make it do.
    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The answer carrying a problem. The problem also travels in the response's extensions, so
/// `finish_problems` completes it as a value instead of re-reading the body it wrote.
impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = self.to_body();
        let mut response = (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
            body,
        )
            .into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// Caller input quoted for a problem's `detail`, cut to a readable length: a detail says
/// what was wrong, it does not copy back an arbitrarily large input.
pub fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 64;
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(MAX_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_quote_short_input_whole_and_cut_long_input() {
        assert_eq!(excerpt("abc"), "\"abc\"");
        let long = "x".repeat(10_000);
        let shown = excerpt(&long);
        assert!(shown.chars().count() < 100, "{shown}");
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn slugs_are_unique() {
        let mut slugs: Vec<_> = ProblemType::ALL.iter().map(|t| t.slug()).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), ProblemType::ALL.len());
    }
}
