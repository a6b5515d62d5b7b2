//! `POST /auth/tokens`: the OAuth 2.0 token endpoint, client credentials grant (RFC 6749
//! §4.4). The client authenticates with its id and secret, in the form body or as HTTP Basic
//! (§2.3.1), and gets a signed access token. Checks run in this order: the request's shape
//! (400 `invalid_request` / `unsupported_grant_type`) → the credentials (401
//! `invalid_client`, one answer for unknown client, wrong secret and revoked client) → the
//! scope asked for (400 `invalid_scope`).

use crate::auth::secrets::HashError;
use crate::auth::{AuthFailure, TokenRequest, TokenRequestError};
use crate::http::error::ApiError;
use crate::http::extract::media_type;
use crate::http::problem::{excerpt, Problem, ProblemType};
use crate::http::AppState;
use axum::body::Bytes;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde::Serialize;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use utoipa::ToSchema;

/// A token request (`application/x-www-form-urlencoded`). The client's credentials go
/// either here (`client_id`, `client_secret`) or in an `Authorization: Basic` header; with
/// Basic, the body may repeat the same `client_id` but not hold the secret. Unrecognised
/// parameters are ignored (RFC 6749 §3.2).
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only: the handler reads the form itself
pub struct TokenRequestForm {
    /// Must be `client_credentials`.
    #[schema(example = "client_credentials", pattern = "^client_credentials$")]
    grant_type: String,
    /// The client id `jobs-admin clients create` printed (a UUID).
    #[schema(format = Uuid)]
    client_id: Option<String>,
    /// The secret `jobs-admin clients create` printed (once): 64 hexadecimal digits.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    client_secret: Option<String>,
    /// Space-separated scopes to grant (`jobs:read`, `jobs:write`), each one the client
    /// holds. Omitted or empty: every scope the client holds.
    #[schema(pattern = "^ *(jobs:(read|write) *)*$")]
    scope: Option<String>,
}

/// An issued access token (RFC 6749 §5.1).
/// No `Debug`: a bearer token must not end up in a log line by accident.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// A signed JWT; send it as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// The granted scopes, space-separated.
    pub scope: String,
}

/// Issue an access token.
///
/// OAuth 2.0 client credentials (RFC 6749 §4.4). Errors are problems that also carry the
/// OAuth `error` code: 400 `invalid_request` (`/problems/invalid-token-request`: not
/// form-encoded, a repeated parameter, no `grant_type`, the secret sent two ways),
/// 400 `unsupported_grant_type` (`/problems/unsupported-grant-type`), 401 `invalid_client`
/// (`/problems/invalid-client`: unknown client, wrong or missing secret, unreadable or
/// unsupported `Authorization`, revoked client — one answer for all, after the same work), 400 `invalid_scope` (`/problems/invalid-scope`: a scope the client
/// does not hold, or that does not exist), 503 with `Retry-After` when too many requests
/// are being checked at once. Responses are never cached (`Cache-Control: no-store`).
#[utoipa::path(post, path = "/auth/tokens", tag = "auth",
    request_body(content = TokenRequestForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The access token", body = TokenResponse,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, description = "Malformed request, unsupported grant type or invalid scope", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Client authentication failed (`invalid_client`)", body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"jobs-service\"`: HTTP Basic is one way to send the credentials"))),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Unexpected error", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn issue_token(
    State(app): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    request: Request,
) -> Response {
    let peer = peer.map(|Extension(ConnectInfo(address))| address.ip());
    let result = issue(&app, peer, request).await;
    let outcome = match &result {
        Ok(_) => "issued",
        Err(ApiError::TooManyRequests(_)) => "rate_limited",
        Err(ApiError::TokenRequest { code, .. }) => code,
        Err(ApiError::Overloaded) => "overloaded",
        Err(_) => "error",
    };
    metrics::counter!("jobs_token_requests_total", "outcome" => outcome).increment(1);
    let mut response = match result {
        Ok(token) => Json(token).into_response(),
        Err(error) => error.into_response(),
    };
    // RFC 6749 §5.1: token responses must not be cached.
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Checks run cheapest first: the caller's address against its rate limit (before the body
/// is even read), the request's shape, the client id against its rate limit, and only then
/// the slow secret check.
async fn issue(
    app: &AppState,
    peer: Option<IpAddr>,
    request: Request,
) -> Result<TokenResponse, ApiError> {
    if let Some(quota) = peer.and_then(|address| app.limits.token_address(address)) {
        if quota.is_limited() {
            return Err(ApiError::TooManyRequests(quota));
        }
    }
    let headers = request.headers().clone();
    let headers = &headers;
    let body: Result<Bytes, BytesRejection> = Bytes::from_request(request, app).await;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            invalid_request("the request body could not be read")
        }
    })?;
    let request = parse_request(headers, &body)?;
    if let Some(quota) = app.limits.token_client_id(&request.client_id) {
        if quota.is_limited() {
            return Err(ApiError::TooManyRequests(quota));
        }
    }
    let (token, scopes) = app
        .auth
        .issue_token(request)
        .await
        .map_err(|error| match error {
            TokenRequestError::InvalidClient => invalid_client(),
            TokenRequestError::ScopeNotHeld(name) => invalid_scope(format!(
                "this client does not hold the scope {}",
                excerpt(&name)
            )),
            TokenRequestError::UnknownScope(name) => invalid_scope(format!(
                "{} is not a scope of this service (known: {})",
                excerpt(&name),
                crate::auth::Scope::join(&crate::auth::Scope::ALL)
            )),
            TokenRequestError::Failed(AuthFailure::Hash(HashError::Busy)) => ApiError::Overloaded,
            TokenRequestError::Failed(failure) => ApiError::store(failure),
        })?;
    Ok(TokenResponse {
        access_token: token.access_token,
        token_type: "Bearer",
        expires_in: token.expires_in,
        scope: crate::auth::Scope::join(&scopes),
    })
}

fn parse_request(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest, ApiError> {
    if media_type(headers).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(invalid_request(
            "a token request must be application/x-www-form-urlencoded",
        ));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| invalid_request("the form body is malformed"))?;
    let mut form = HashMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        if form.contains_key(&name) {
            // RFC 6749 §3.2: parameters must not repeat.
            return Err(invalid_request(format!(
                "the parameter {} appears more than once",
                excerpt(&name)
            )));
        }
        form.insert(name, value);
    }
    match form.get("grant_type").map(String::as_str) {
        None | Some("") => return Err(invalid_request("grant_type is required")),
        Some("client_credentials") => {}
        Some(other) => {
            return Err(ApiError::TokenRequest {
                code: "unsupported_grant_type",
                problem: ProblemType::UnsupportedGrantType,
                detail: format!(
                    "the grant type {} is not supported; use client_credentials",
                    excerpt(other)
                ),
            })
        }
    }
    let scope = form.get("scope").and_then(|scope| {
        let names: Vec<String> = scope
            .split(' ')
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect();
        (!names.is_empty()).then_some(names)
    });
    // Credentials that are missing or cannot be read are not a malformed request but a
    // failed authentication (RFC 6749 §5.2): they go on as empty, and fail after the same
    // hashing work as a wrong secret.
    let body_id = form.remove("client_id");
    let body_secret = form.remove("client_secret");
    let (client_id, client_secret) = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            if body_secret.is_some() {
                return Err(invalid_request(
                    "send the client secret in the Authorization header or in the body, not both",
                ));
            }
            match basic_credentials(value) {
                Some((id, secret)) => {
                    // §2.3.1 lets a client name itself in the body too; it must be the same.
                    if body_id.as_ref().is_some_and(|body_id| *body_id != id) {
                        return Err(invalid_request(
                            "client_id in the body differs from the one in the Authorization header",
                        ));
                    }
                    (id, secret)
                }
                None => Default::default(),
            }
        }
        None => (body_id.unwrap_or_default(), body_secret.unwrap_or_default()),
    };
    Ok(TokenRequest {
        client_id,
        client_secret,
        scope,
    })
}

/// HTTP Basic client credentials: base64 of `id:secret`, each form-urlencoded first
/// (RFC 6749 §2.3.1). `None` for another scheme or a header that does not decode.
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    use base64::Engine;
    let (scheme, encoded) = value.to_str().ok()?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |text: &str| {
        percent_encoding::percent_decode_str(&text.replace('+', " "))
            .decode_utf8()
            .ok()
            .map(|text| text.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

fn invalid_request(detail: impl Into<String>) -> ApiError {
    ApiError::TokenRequest {
        code: "invalid_request",
        problem: ProblemType::InvalidTokenRequest,
        detail: detail.into(),
    }
}

fn invalid_scope(detail: String) -> ApiError {
    ApiError::TokenRequest {
        code: "invalid_scope",
        problem: ProblemType::InvalidScope,
        detail,
    }
}

fn invalid_client() -> ApiError {
    ApiError::TokenRequest {
        code: "invalid_client",
        problem: ProblemType::InvalidClient,
        detail: "client authentication failed: unknown client, wrong secret or revoked client"
            .into(),
    }
}
