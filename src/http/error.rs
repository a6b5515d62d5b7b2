//! [`ApiError`], the one error type of the HTTP layer: handlers and extractors return it, and
//! it renders itself as a [`Problem`]. Each variant answers what the renderer needs —
//! [`ApiError::problem_type`], [`ApiError::status`], [`ApiError::detail`] and the few extras
//! some answers carry (field errors, an OAuth error code, a challenge, `Retry-After`) — so
//! the mapping reads as a set of small tables rather than one long match per answer.
//! [`FieldErrors`] collects the 422s of a request body so one answer lists all of them.

use crate::auth::Scope;
use crate::http::context::ErrorReport;
use crate::http::problem::{Problem, ProblemType};
use crate::http::rate_limits::Quota;
use crate::service::ServiceError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::JobError;
use projections::StoreError;
use std::collections::BTreeMap;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
    /// A specific problem type, answered with that type's status: mostly 400 (e.g.
    /// [`ProblemType::InvalidJobId`]), also 404 for [`ProblemType::WebhookNotFound`].
    #[error("{detail}")]
    BadRequest {
        problem: ProblemType,
        detail: String,
    },
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
        problem: ProblemType,
        detail: String,
        missing_scope: Option<Scope>,
    },
    /// A refusal of the token endpoint, with its OAuth 2.0 error code (RFC 6749 §5.2); the
    /// status is the problem type's (401 for `invalid_client`, else 400).
    #[error("{detail}")]
    TokenRequest {
        code: &'static str,
        problem: ProblemType,
        detail: String,
    },
    /// Concurrent changes kept winning after every retry.
    #[error("conflict")]
    Conflict,
    /// `If-Match` names no version the job has (412); nothing was recorded.
    #[error("precondition failed")]
    PreconditionFailed,
    /// The request's `Idempotency-Key` came first with another request (422).
    #[error("idempotency key reused")]
    KeyReused,
    /// Another request with the same `Idempotency-Key` is running (409, `Retry-After`).
    #[error("idempotency key in flight")]
    KeyInFlight,
    /// The store cannot be reached (503); the cause, if known, goes to the log.
    #[error("store unavailable")]
    Unavailable(Option<BoxError>),
    /// The store was lost during the commit (503): the change may or may not be recorded.
    #[error("commit outcome unknown")]
    OutcomeUnknown(BoxError),
    /// The client (or address) is over its rate limit (429, `Retry-After`, `RateLimit`).
    #[error("rate limited")]
    TooManyRequests(Quota),
    /// Too much work queued (the token endpoint's password hashing): 503, retry shortly.
    #[error("overloaded")]
    Overloaded,
    /// Never shown to the client; logged once by the request logger.
    #[error("internal error: {0}")]
    Internal(BoxError),
}

impl ApiError {
    pub fn bad_request(problem: ProblemType, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            problem,
            detail: detail.into(),
        }
    }

    /// A problem of `problem`'s type and status.
    pub fn problem(problem: ProblemType, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            problem,
            detail: detail.into(),
        }
    }

    pub fn internal(error: impl Into<BoxError>) -> Self {
        ApiError::Internal(error.into())
    }

    /// A failure of the store: 503 when it cannot be reached (so clients and load balancers
    /// can tell "try again" from a bug), 500 otherwise — sorted as the service sorts it.
    pub fn store(error: impl Into<BoxError>) -> Self {
        ServiceError::store(error).into()
    }

    pub fn problem_type(&self) -> ProblemType {
        match self {
            ApiError::BadRequest { problem, .. }
            | ApiError::Forbidden { problem, .. }
            | ApiError::TokenRequest { problem, .. } => *problem,
            ApiError::JobNotFound => ProblemType::JobNotFound,
            ApiError::UnsupportedMediaType => ProblemType::UnsupportedMediaType,
            ApiError::PayloadTooLarge => ProblemType::PayloadTooLarge,
            ApiError::Validation(_) => ProblemType::Validation,
            ApiError::Rule(error) => ProblemType::of_rule(error),
            ApiError::Unauthenticated { .. } => ProblemType::Unauthorized,
            ApiError::Conflict => ProblemType::Conflict,
            ApiError::PreconditionFailed => ProblemType::PreconditionFailed,
            ApiError::KeyReused => ProblemType::IdempotencyKeyReused,
            ApiError::KeyInFlight => ProblemType::IdempotencyKeyInFlight,
            ApiError::TooManyRequests(_) => ProblemType::TooManyRequests,
            ApiError::Unavailable(_) | ApiError::OutcomeUnknown(_) | ApiError::Overloaded => {
                ProblemType::ServiceUnavailable
            }
            ApiError::Internal(_) => ProblemType::Internal,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.problem_type().status()
    }

    /// What the client is told. Never the cause of a 500 or 503: that goes to the log.
    pub fn detail(&self) -> String {
        match self {
            ApiError::BadRequest { detail, .. }
            | ApiError::Unauthenticated { detail, .. }
            | ApiError::Forbidden { detail, .. }
            | ApiError::TokenRequest { detail, .. } => detail.clone(),
            ApiError::Rule(error) => error.to_string(),
            ApiError::JobNotFound => "no job with this id exists for this customer".into(),
            ApiError::UnsupportedMediaType => "request bodies must be application/json".into(),
            ApiError::PayloadTooLarge => format!(
                "request bodies are limited to {} bytes",
                crate::http::MAX_BODY_BYTES
            ),
            ApiError::Validation(_) => "one or more fields are invalid; see errors".into(),
            ApiError::Conflict => "the job kept changing concurrently; retry the request".into(),
            ApiError::PreconditionFailed => "the job is not at the version If-Match names \
                (it has changed since); nothing was recorded: read it again and decide anew"
                .into(),
            ApiError::KeyReused => "this Idempotency-Key was first sent with another request \
                (method, path or body differ); use a new key for a new request"
                .into(),
            ApiError::KeyInFlight => "a request with this Idempotency-Key is still in \
                progress; retry after it has been answered"
                .into(),
            ApiError::TooManyRequests(quota) => format!(
                "more than {} requests per second ({} limit); retry in {} s",
                quota.per_second,
                quota.policy,
                quota.retry_after_seconds()
            ),
            ApiError::Unavailable(_) => "the store is not reachable; retry later".into(),
            ApiError::OutcomeUnknown(_) => "the store was lost while the change was being \
                committed, so it may or may not have been recorded: retry with the same \
                Idempotency-Key to learn which (without one, read the job before retrying)"
                .into(),
            ApiError::Overloaded => {
                "too many token requests are being checked right now; retry shortly".into()
            }
            ApiError::Internal(_) => {
                "an unexpected error occurred; quote the requestId when reporting it".into()
            }
        }
    }

    /// The `WWW-Authenticate` challenge of a 401, and of a 403 for a missing scope.
    fn challenge(&self) -> Option<String> {
        match self {
            // RFC 6750 §3.1: no error code when the request carried no bearer token.
            ApiError::Unauthenticated {
                error_code: Some(code),
                detail,
            } => Some(challenge(
                "Bearer",
                &[("error", code), ("error_description", detail)],
            )),
            ApiError::Unauthenticated {
                error_code: None, ..
            } => Some(challenge("Bearer", &[])),
            ApiError::Forbidden {
                missing_scope: Some(scope),
                ..
            } => Some(challenge(
                "Bearer",
                &[("error", "insufficient_scope"), ("scope", scope.as_str())],
            )),
            // Every 401 names a scheme that would work: HTTP Basic is one (RFC 6749 §2.3.1).
            ApiError::TokenRequest { .. } if self.status() == StatusCode::UNAUTHORIZED => {
                Some(challenge("Basic", &[]))
            }
            _ => None,
        }
    }

    /// When to retry, in whole seconds: every 503 we raise ourselves is worth retrying
    /// soon, and so is a key whose first request is still running (it usually ends in
    /// moments; one whose server died frees its key within the claim's 15 s, and asking
    /// again each second meanwhile is cheap).
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::KeyInFlight => Some(1),
            _ if self.status() == StatusCode::SERVICE_UNAVAILABLE => Some(1),
            _ => None,
        }
    }

    /// The cause chain for the request log, for answers that hide it from the client.
    fn report(&self) -> Option<String> {
        match self {
            ApiError::Unavailable(Some(cause))
            | ApiError::OutcomeUnknown(cause)
            | ApiError::Internal(cause) => Some(report(cause.as_ref())),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut problem = Problem::new(self.problem_type(), self.status(), self.detail());
        if let ApiError::Validation(FieldErrors(errors)) = &self {
            problem.errors = Some(errors.clone());
        }
        if let ApiError::TokenRequest { code, .. } = &self {
            problem.error = Some((*code).to_owned());
        }
        let mut response = problem.into_response();
        let headers = response.headers_mut();
        if let Some(value) = self
            .challenge()
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if let ApiError::TooManyRequests(quota) = &self {
            quota.write_headers(headers);
        }
        if let Some(seconds) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(report) = self.report() {
            response.extensions_mut().insert(ErrorReport(report));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ServiceError::from(error).into()
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::NotFound => ApiError::JobNotFound,
            ServiceError::Rule(error) => ApiError::Rule(error),
            ServiceError::Conflict => ApiError::Conflict,
            ServiceError::PreconditionFailed => ApiError::PreconditionFailed,
            ServiceError::KeyReused => ApiError::KeyReused,
            ServiceError::KeyInFlight => ApiError::KeyInFlight,
            ServiceError::Unavailable(cause) => ApiError::Unavailable(Some(cause)),
            ServiceError::OutcomeUnknown(cause) => ApiError::OutcomeUnknown(cause),
            ServiceError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

/// The realm named in every `WWW-Authenticate` challenge.
const REALM: &str = "jobs-service";

/// A `WWW-Authenticate` challenge (RFC 6750 §3 for Bearer). Quotes in the parameters are
/// dropped, since each sits inside a quoted string.
fn challenge(scheme: &str, params: &[(&str, &str)]) -> String {
    let mut value = format!("{scheme} realm=\"{REALM}\"");
    for (name, text) in params {
        value.push_str(&format!(", {name}=\"{}\"", text.replace(['"', '\\'], "")));
    }
    value
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
    fn a_report_names_each_cause_once() {
        assert_eq!(report(&Outer(Inner)), "outer: inner detail");
        assert_eq!(report(&Wrapper(Inner)), "wrapper: inner detail");
    }
}
