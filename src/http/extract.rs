//! Our own extractors. Each rejects with [`ApiError`], so every rejection is a problem with a
//! specific type, never axum's plain-text default. Beside `Customer` and `JobId` stand the
//! OpenAPI descriptions of what they read ([`CustomerIdHeader`], [`JobIdPath`]).

use crate::http::error::ApiError;
use crate::http::problem::{excerpt, ProblemType};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{header, request::Parts, HeaderMap};
use domain::values::CustomerId;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;
use uuid::Uuid;

/// The tenant of the request, from the `Customer-Id` header (an integer ≥ 1). Sent twice, it
/// is refused: a proxy in front that read the other one would disagree about the tenant.
#[derive(Debug, Clone, Copy)]
pub struct Customer(pub CustomerId);

impl<S: Send + Sync> FromRequestParts<S> for Customer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut sent = parts.headers.get_all("customer-id").iter();
        let raw = sent.next().ok_or_else(|| {
            ApiError::bad_request(
                ProblemType::InvalidCustomerId,
                "the Customer-Id header is required",
            )
        })?;
        if sent.next().is_some() {
            return Err(ApiError::bad_request(
                ProblemType::InvalidCustomerId,
                "the Customer-Id header must be sent once",
            ));
        }
        raw.to_str()
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok())
            .and_then(|id| CustomerId::parse(id).ok())
            .map(Customer)
            .ok_or_else(|| {
                ApiError::bad_request(
                    ProblemType::InvalidCustomerId,
                    "the Customer-Id header must be an integer of at least 1",
                )
            })
    }
}

/// The OpenAPI description of the `Customer-Id` header [`Customer`] reads.
#[derive(IntoParams)]
#[into_params(names("Customer-Id"), parameter_in = Header)]
#[allow(dead_code)] // documentation only: read by `Customer`
pub struct CustomerIdHeader(
    /// The customer identifier: an integer ≥ 1. Another customer's job answers 404.
    #[param(minimum = 1)]
    i64,
);

/// The `{jobId}` path segment, which must be a UUID.
#[derive(Debug, Clone, Copy)]
pub struct JobId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for JobId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| {
                ApiError::bad_request(ProblemType::InvalidJobId, "the job id is missing")
            })?;
        Uuid::parse_str(&raw).map(JobId).map_err(|_| {
            ApiError::bad_request(
                ProblemType::InvalidJobId,
                format!("{} is not a UUID", excerpt(&raw)),
            )
        })
    }
}

/// The `{webhookId}` path segment, which must be a UUID.
#[derive(Debug, Clone, Copy)]
pub struct WebhookId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for WebhookId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let invalid = |detail: String| ApiError::bad_request(ProblemType::InvalidWebhookId, detail);
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| invalid("the webhook subscription id is missing".into()))?;
        Uuid::parse_str(&raw)
            .map(WebhookId)
            .map_err(|_| invalid(format!("{} is not a UUID", excerpt(&raw))))
    }
}

/// The OpenAPI description of the `{webhookId}` segment [`WebhookId`] reads.
#[derive(IntoParams)]
#[into_params(names("webhookId"), parameter_in = Path)]
#[allow(dead_code)] // documentation only: read by `WebhookId`
pub struct WebhookIdPath(
    /// The subscription's id (a UUID); anything else answers 400.
    uuid::Uuid,
);

/// The OpenAPI description of the `{jobId}` segment [`JobId`] reads.
#[derive(IntoParams)]
#[into_params(names("jobId"), parameter_in = Path)]
#[allow(dead_code)] // documentation only: read by `JobId`
pub struct JobIdPath(
    /// The job id (a UUID); anything else answers 400.
    uuid::Uuid,
);

/// A JSON request body: `application/json` (else 415), within the body limit (else 413),
/// of the documented shape (else 400, naming what is wrong) — and the bytes it was read
/// from, which an idempotency key's fingerprint covers.
pub struct JsonBody<T>(pub T, pub RawBody);

/// Like [`JsonBody`], but an empty body (with or without a content type) or JSON `null`
/// reads as `{}`: for commands whose fields are all optional.
pub struct OptionalJsonBody<T>(pub T, pub RawBody);

/// A request body as it was sent.
#[derive(Debug, Clone, Default)]
pub struct RawBody(Bytes);

impl RawBody {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The media type of a request body without its parameters, lower-cased
/// (`application/json; charset=utf-8` → `application/json`).
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or_default();
    Some(essence.trim().to_ascii_lowercase())
}

fn is_json(essence: &str) -> bool {
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<(bool, Bytes), ApiError> {
    let has_json_type = media_type(request.headers()).is_some_and(|essence| is_json(&essence));
    let bytes = Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::bad_request(
                    ProblemType::MalformedBody,
                    "the request body could not be read",
                )
            }
        })?;
    Ok((has_json_type, bytes))
}

/// A value that must be written as a JSON object. serde's derived structs also read a JSON
/// array (fields by position), which is not a shape the API documents.
#[derive(Debug)]
pub struct JsonObject<T>(pub T);

impl<'de, T: DeserializeOwned> serde::Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        if !value.is_object() {
            return Err(D::Error::custom("expected a JSON object"));
        }
        T::deserialize(value)
            .map(JsonObject)
            .map_err(D::Error::custom)
    }
}

/// Parses a body that must be a JSON object (or, when `allow_null`, `null`).
fn parse_json<T: DeserializeOwned>(bytes: &[u8], allow_null: bool) -> Result<T, ApiError> {
    let malformed = |detail: String| ApiError::bad_request(ProblemType::MalformedBody, detail);
    // The top level is checked on the text, so the struct's own parse still sees the whole
    // body (and refuses duplicate fields, which a detour through a JSON value would hide).
    let first = bytes.iter().find(|b| !b" \t\r\n".contains(b)).copied();
    let is_null = first == Some(b'n') && allow_null;
    if first != Some(b'{') && !is_null {
        return Err(malformed("the body must be a JSON object".into()));
    }
    serde_json::from_slice(bytes).map_err(|error| malformed(json_error_detail(&error)))
}

/// serde_json's message quotes the offending member name or value whole (a 60 KB key comes
/// back as a 60 KB detail): a long message is cut, keeping where the error is.
fn json_error_detail(error: &serde_json::Error) -> String {
    const MAX_CHARS: usize = 160;
    let message = error.to_string();
    if message.chars().count() <= MAX_CHARS {
        return format!("invalid JSON body: {message}");
    }
    let head: String = message.chars().take(MAX_CHARS).collect();
    format!(
        "invalid JSON body: {head}… at line {} column {}",
        error.line(),
        error.column()
    )
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let (has_json_type, bytes) = read_body(request, state).await?;
        if !has_json_type {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse_json(&bytes, false).map(|body| JsonBody(body, RawBody(bytes)))
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let (has_json_type, bytes) = read_body(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default(), RawBody(bytes)));
        }
        if !has_json_type {
            return Err(ApiError::UnsupportedMediaType);
        }
        let body: Option<T> = parse_json(&bytes, true)?;
        Ok(OptionalJsonBody(body.unwrap_or_default(), RawBody(bytes)))
    }
}

/// The raw query string as ordered name/value pairs (names may repeat).
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(QueryPairs)
            .map_err(|_| {
                ApiError::bad_request(ProblemType::InvalidQuery, "the query string is malformed")
            })
    }
}
