//! Every error answer is `application/problem+json` (RFC 9457). [`ApiError`] is the one error
//! type of the HTTP layer: handlers and extractors return it, and it renders itself. The
//! [`finish_problems`] middleware then adds what only the request knows (`instance`,
//! `requestId`) and turns any non-problem error axum produces itself (unknown route, wrong
//! method) into a problem too, so no client ever sees a `text/plain` error.

use crate::auth::Scope;
use crate::telemetry::RequestId;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::{CommandKind, JobError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// The body of every error response.
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

/// Field-level rule violations, collected so one answer lists all of them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn add(&mut self, field: impl Into<String>, message: impl ToString) {
        self.0
            .entry(field.into())
            .or_default()
            .push(message.to_string());
    }

    /// Records the error of a parse, if any, and passes the value on.
    pub fn check<T, E: ToString>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.add(field, error);
                None
            }
        }
    }

    /// `Ok(value)` when nothing was recorded, else the 422 error.
    pub fn into_result<T>(self, value: impl FnOnce() -> Option<T>) -> Result<T, ApiError> {
        if !self.0.is_empty() {
            return Err(ApiError::Validation(self));
        }
        value().ok_or_else(|| ApiError::Internal("validated value missing".into()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 with a specific problem type slug (e.g. `invalid-job-id`).
    #[error("{detail}")]
    BadRequest { slug: &'static str, detail: String },
    #[error("the job does not exist")]
    JobNotFound,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("validation failed")]
    Validation(FieldErrors),
    #[error(transparent)]
    Rule(#[from] JobError),
    /// 401 on `/v1`: no access token, or one that is not accepted. `error_code` is RFC 6750's
    /// (`invalid_token`, `invalid_request`), absent when no bearer token was sent at all.
    #[error("{detail}")]
    Unauthenticated {
        error_code: Option<&'static str>,
        detail: String,
    },
    /// 403: a valid token that may not do this (`missing_scope`, or another customer).
    #[error("{detail}")]
    Forbidden {
        slug: &'static str,
        detail: String,
        missing_scope: Option<Scope>,
    },
    /// A refusal of the token endpoint, with its OAuth 2.0 error code (RFC 6749 §5.2).
    #[error("{detail}")]
    TokenRequest {
        status: StatusCode,
        code: &'static str,
        slug: &'static str,
        detail: String,
    },
    /// Concurrent changes kept winning after every retry.
    #[error("conflict")]
    Conflict,
    /// The store cannot be reached (503); the cause, if known, goes to the log.
    #[error("store unavailable")]
    Unavailable(Option<Box<dyn std::error::Error + Send + Sync>>),
    /// Too much work queued (the token endpoint's password hashing): 503, retry shortly.
    #[error("overloaded")]
    Overloaded,
    /// Never shown to the client; logged once by the request logger.
    #[error("internal error: {0}")]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn bad_request(slug: &'static str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            slug,
            detail: detail.into(),
        }
    }

    pub fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        ApiError::Internal(error.into())
    }

    /// A failure of the store: 503 when it cannot be reached (so clients and load balancers
    /// can tell "try again" from a bug), 500 otherwise.
    pub fn store(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        let error = error.into();
        if projections::store_unavailable(error.as_ref()) {
            ApiError::Unavailable(Some(error))
        } else {
            ApiError::Internal(error)
        }
    }
}

/// The message and cause chain of an error, for the log. Many errors already print their
/// cause in their own message; a cause whose text is already there is not repeated.
fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut report = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !report.contains(&text) {
            report.push_str(": ");
            report.push_str(&text);
        }
        source = cause.source();
    }
    report
}

/// The error chain of a 500, handed to the request logger through the response extensions.
#[derive(Clone, Debug)]
pub struct InternalErrorReport(pub String);

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

/// The stable problem type slug for a refused domain rule.
pub fn rule_slug(error: &JobError) -> &'static str {
    match error {
        JobError::AlreadyExists => "job-already-exists",
        JobError::NotFound => "job-not-found",
        JobError::AlreadyCancelled => "job-already-cancelled",
        JobError::FieldLocked { .. } => "job-field-locked",
        JobError::Refused { command, .. } => match command {
            CommandKind::Update => "job-not-updatable",
            CommandKind::Schedule => "job-not-schedulable",
            CommandKind::Unschedule => "job-not-unschedulable",
            CommandKind::Progress(_) => "job-progress-not-allowed",
            CommandKind::Start => "job-not-startable",
            CommandKind::Suspend => "job-not-suspendable",
            CommandKind::Resume => "job-not-resumable",
            CommandKind::RecordResult => "job-result-not-allowed",
            CommandKind::Cancel => "job-not-cancellable",
        },
    }
}

/// Every problem type the service answers with, and its title: the catalogue the OpenAPI
/// document lists.
pub const PROBLEM_TYPES: &[(&str, &str)] = &[
    ("malformed-body", "Malformed request body"),
    ("invalid-job-id", "Invalid job id"),
    (
        "invalid-customer-id",
        "Missing or invalid Customer-Id header",
    ),
    ("invalid-paging", "Invalid paging parameters"),
    ("invalid-query", "Invalid query parameter"),
    ("not-found", "Not found"),
    ("method-not-allowed", "Method not allowed"),
    ("job-not-found", "Job not found"),
    ("unsupported-media-type", "Unsupported media type"),
    ("payload-too-large", "Request body too large"),
    ("validation", "Validation failed"),
    ("job-already-exists", "Job already exists"),
    (
        "job-already-cancelled",
        "Job already cancelled with another reason",
    ),
    ("job-field-locked", "Field locked once work has begun"),
    ("job-not-updatable", "Job cannot be updated"),
    ("job-not-schedulable", "Job cannot be scheduled"),
    ("job-not-unschedulable", "Job cannot be unscheduled"),
    ("job-progress-not-allowed", "Progress step not allowed"),
    ("job-not-startable", "Job cannot be started"),
    ("job-not-suspendable", "Job cannot be suspended"),
    ("job-not-resumable", "Job cannot be resumed"),
    ("job-result-not-allowed", "Result cannot be recorded"),
    ("job-not-cancellable", "Job cannot be cancelled"),
    ("unauthorized", "Missing or invalid access token"),
    (
        "insufficient-scope",
        "Access token lacks the required scope",
    ),
    (
        "customer-not-allowed",
        "Access token may not act for this customer",
    ),
    ("invalid-client", "Client authentication failed"),
    ("invalid-token-request", "Malformed token request"),
    ("unsupported-grant-type", "Unsupported grant type"),
    ("invalid-scope", "Invalid scope"),
    ("conflict", "Concurrent modification"),
    ("service-unavailable", "Service unavailable"),
    ("internal", "Internal server error"),
];

fn title_of(slug: &str) -> &'static str {
    PROBLEM_TYPES
        .iter()
        .find(|(s, _)| *s == slug)
        .map(|(_, title)| *title)
        .unwrap_or("Error")
}

fn problem_response(
    status: StatusCode,
    slug: &str,
    detail: String,
    errors: Option<BTreeMap<String, Vec<String>>>,
) -> Response {
    let mut problem = problem_of(status, slug, detail);
    problem.errors = errors;
    respond(status, &problem)
}

fn problem_of(status: StatusCode, slug: &str, detail: String) -> Problem {
    Problem {
        problem_type: format!("/problems/{slug}"),
        title: title_of(slug).to_owned(),
        status: status.as_u16(),
        detail,
        instance: String::new(),
        request_id: String::new(),
        errors: None,
        error: None,
    }
}

/// The realm named in every `WWW-Authenticate` challenge.
const REALM: &str = "jobs-service";

/// Adds a `WWW-Authenticate` challenge (RFC 6750 §3 for Bearer). Quotes in the description
/// are dropped, since it sits inside a quoted string.
fn challenge(response: &mut Response, scheme: &str, params: &[(&str, &str)]) {
    let mut value = format!("{scheme} realm=\"{REALM}\"");
    for (name, text) in params {
        value.push_str(&format!(", {name}=\"{}\"", text.replace(['"', '\\'], "")));
    }
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
}

fn respond(status: StatusCode, problem: &Problem) -> Response {
    let body = serde_json::to_vec(problem).unwrap_or_default();
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
        body,
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadRequest { slug, detail } => {
                problem_response(StatusCode::BAD_REQUEST, slug, detail, None)
            }
            ApiError::JobNotFound => problem_response(
                StatusCode::NOT_FOUND,
                "job-not-found",
                "no job with this id exists for this customer".into(),
                None,
            ),
            ApiError::UnsupportedMediaType => problem_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "request bodies must be application/json".into(),
                None,
            ),
            ApiError::PayloadTooLarge => problem_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                format!(
                    "request bodies are limited to {} bytes",
                    crate::http::MAX_BODY_BYTES
                ),
                None,
            ),
            ApiError::Validation(FieldErrors(errors)) => problem_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "one or more fields are invalid; see errors".into(),
                Some(errors),
            ),
            ApiError::Rule(error) => problem_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                rule_slug(&error),
                error.to_string(),
                None,
            ),
            ApiError::Unauthenticated { error_code, detail } => {
                let mut response = problem_response(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    detail.clone(),
                    None,
                );
                // RFC 6750 §3.1: no error code when the request carried no bearer token.
                match error_code {
                    Some(code) => {
                        let params = [("error", code), ("error_description", &*detail)];
                        challenge(&mut response, "Bearer", &params);
                    }
                    None => challenge(&mut response, "Bearer", &[]),
                }
                response
            }
            ApiError::Forbidden {
                slug,
                detail,
                missing_scope,
            } => {
                let mut response = problem_response(StatusCode::FORBIDDEN, slug, detail, None);
                if let Some(scope) = missing_scope {
                    let params = [("error", "insufficient_scope"), ("scope", scope.as_str())];
                    challenge(&mut response, "Bearer", &params);
                }
                response
            }
            ApiError::TokenRequest {
                status,
                code,
                slug,
                detail,
            } => {
                let mut problem = problem_of(status, slug, detail);
                problem.error = Some(code.to_owned());
                let mut response = respond(status, &problem);
                // Every 401 names a scheme that would work: HTTP Basic is one (§2.3.1).
                if status == StatusCode::UNAUTHORIZED {
                    challenge(&mut response, "Basic", &[]);
                }
                response
            }
            ApiError::Conflict => problem_response(
                StatusCode::CONFLICT,
                "conflict",
                "the job kept changing concurrently; retry the request".into(),
                None,
            ),
            ApiError::Unavailable(cause) => {
                let mut response = problem_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service-unavailable",
                    "the store is not reachable; retry later".into(),
                    None,
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                if let Some(cause) = cause {
                    response
                        .extensions_mut()
                        .insert(InternalErrorReport(report(cause.as_ref())));
                }
                response
            }
            ApiError::Overloaded => {
                let mut response = problem_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service-unavailable",
                    "too many token requests are being checked right now; retry shortly".into(),
                    None,
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            ApiError::Internal(error) => {
                let report = report(error.as_ref());
                let mut response = problem_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "an unexpected error occurred; quote the requestId when reporting it".into(),
                    None,
                );
                response
                    .extensions_mut()
                    .insert(InternalErrorReport(report));
                response
            }
        }
    }
}

/// Upper bound on a problem body we re-read to add `instance` and `requestId`.
const MAX_PROBLEM_BYTES: usize = 64 * 1024;

/// Completes every error response as a problem with `instance` and `requestId`.
pub async fn finish_problems(request: Request, next: Next) -> Response {
    let instance = request.uri().path().to_owned();
    let request_id = RequestId::of(&request);
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    let (mut parts, body) = response.into_parts();
    let problem = if is_problem {
        axum::body::to_bytes(body, MAX_PROBLEM_BYTES)
            .await
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Problem>(&bytes).ok())
    } else {
        None
    };
    let mut problem = problem.unwrap_or_else(|| generic_problem(status));
    problem.instance = instance;
    problem.request_id = request_id;
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    Response::from_parts(parts, Body::from(body))
}

/// A problem for an error axum or tower produced without our help.
fn generic_problem(status: StatusCode) -> Problem {
    let (slug, detail) = match status {
        StatusCode::NOT_FOUND => ("not-found", "no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            "this resource does not support the method",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload-too-large", "request body too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported-media-type",
            "request bodies must be application/json",
        ),
        StatusCode::SERVICE_UNAVAILABLE => (
            "service-unavailable",
            "the request could not be completed in time; retry it",
        ),
        s if s.is_server_error() => ("internal", "an unexpected error occurred"),
        _ => ("malformed-body", "the request could not be understood"),
    };
    problem_of(status, slug, detail.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner detail")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapper")]
    struct Wrapper(#[source] Inner);

    #[test]
    fn excerpts_quote_short_input_whole_and_cut_long_input() {
        assert_eq!(excerpt("abc"), "\"abc\"");
        let long = "x".repeat(10_000);
        let shown = excerpt(&long);
        assert!(shown.chars().count() < 100, "{shown}");
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn a_report_names_each_cause_once() {
        assert_eq!(report(&Outer(Inner)), "outer: inner detail");
        assert_eq!(report(&Wrapper(Inner)), "wrapper: inner detail");
    }
}
