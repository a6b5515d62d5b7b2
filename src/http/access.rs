//! [`Authorized`]: the extractor every `/v1` handler takes first. It applies SPEC §2's order
//! of checks, so every handler gets it right by construction: an accepted access token (else
//! 401) → the client's rate limit (else 429) → the `Customer-Id` header (else 400) → the
//! token's scope and customers (else 403).
//! Path, query and body come after, in the handler's later arguments.

use crate::auth::{AuthenticationError, Caller, Scope};
use crate::http::context::{CallerSlot, RequestId};
use crate::http::error::ApiError;
use crate::http::extract::Customer;
use crate::http::problem::ProblemType;
use crate::http::AppState;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderMap};
use domain::values::CustomerId;
use projections::EventMetadata;
use std::marker::PhantomData;

/// The scope an endpoint needs, as a type: `Authorized<Read>` or `Authorized<Write>`.
pub trait RequiredScope: Send + Sync + 'static {
    const SCOPE: Scope;
}

/// `jobs:read`: every GET under `/v1/jobs`.
pub struct Read;

impl RequiredScope for Read {
    const SCOPE: Scope = Scope::JobsRead;
}

/// `jobs:write`: every change under `/v1/jobs`.
pub struct Write;

impl RequiredScope for Write {
    const SCOPE: Scope = Scope::JobsWrite;
}

/// `webhooks:manage`: everything under `/v1/webhooks`.
pub struct ManageWebhooks;

impl RequiredScope for ManageWebhooks {
    const SCOPE: Scope = Scope::WebhooksManage;
}

/// A caller whose token holds scope `R` and may act for `customer`.
pub struct Authorized<R> {
    pub customer: CustomerId,
    pub caller: Caller,
    scope: PhantomData<R>,
}

impl<R> Authorized<R> {
    /// What the events of this request record: who, with which token, for whom, when asked.
    pub fn metadata(&self, request_id: &RequestId) -> EventMetadata {
        EventMetadata {
            client_id: self.caller.client_id.to_string(),
            token_id: self.caller.token_id.clone(),
            customer_id: self.customer.get(),
            request_id: request_id.0.clone(),
        }
    }
}

impl<R: RequiredScope> FromRequestParts<AppState> for Authorized<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers)?;
        let caller = state
            .auth
            .authenticate(token)
            .await
            .map_err(|error| match error {
                AuthenticationError::Rejected(rejection) => rejected(
                    rejection.label(),
                    ApiError::Unauthenticated {
                        error_code: Some("invalid_token"),
                        detail: rejection.to_string(),
                    },
                ),
                AuthenticationError::Failed(failure) => ApiError::store(failure),
            })?;
        CallerSlot::fill(parts, caller.client_id.to_string());
        if let Some(quota) = state.limits.client(caller.client_id) {
            CallerSlot::fill_quota(parts, quota);
            if quota.is_limited() {
                return Err(rejected("rate_limited", ApiError::TooManyRequests(quota)));
            }
        }
        let Customer(customer) = Customer::from_request_parts(parts, state).await?;
        if !caller.has_scope(R::SCOPE) {
            return Err(rejected(
                "insufficient_scope",
                ApiError::Forbidden {
                    problem: ProblemType::InsufficientScope,
                    detail: format!("this operation needs the scope {}", R::SCOPE),
                    missing_scope: Some(R::SCOPE),
                },
            ));
        }
        if !caller.may_act_for(customer.get()) {
            return Err(rejected(
                "customer_not_allowed",
                ApiError::Forbidden {
                    problem: ProblemType::CustomerNotAllowed,
                    detail: format!(
                        "the access token may not act for customer {}",
                        customer.get()
                    ),
                    missing_scope: None,
                },
            ));
        }
        Ok(Authorized {
            customer,
            caller,
            scope: PhantomData,
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
/// Another scheme counts as no bearer token at all (RFC 6750 §3.1: no error code); a bearer
/// header without a token is `invalid_request`.
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let missing = || {
        rejected(
            "missing_token",
            ApiError::Unauthenticated {
                error_code: None,
                detail: "this request needs an access token: send `Authorization: Bearer \
                         <token>` (POST /auth/tokens issues one)"
                    .into(),
            },
        )
    };
    let value = headers.get(header::AUTHORIZATION).ok_or_else(missing)?;
    let malformed = || {
        rejected(
            "malformed_token",
            ApiError::Unauthenticated {
                error_code: Some("invalid_request"),
                detail: "the Authorization header must be `Bearer <token>`".into(),
            },
        )
    };
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(missing());
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(malformed());
    }
    Ok(token)
}

/// Counts a refused request by why (`jobs_auth_rejections_total`): a rise in `invalid_token`
/// or `customer_not_allowed` is worth an operator's look.
fn rejected(reason: &'static str, error: ApiError) -> ApiError {
    metrics::counter!("jobs_auth_rejections_total", "reason" => reason).increment(1);
    error
}
