//! What one request carries between the middlewares and the handlers, in the request and
//! response extensions: its id ([`RequestId`]), the slot the authentication extractor fills
//! with the acting client and its quota ([`CallerSlot`]), and the cause of a failed answer
//! ([`ErrorReport`]), which the request logger writes and the client never sees. Kept apart
//! from both the writers and the readers, so neither has to import the other.

use crate::http::rate_limits::Quota;
use axum::extract::{FromRequestParts, Request};
use axum::http::{request::Parts, HeaderName};
use std::convert::Infallible;
use std::sync::{Arc, OnceLock};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    /// The id `assign_request_id` gave this request (empty outside that middleware).
    pub fn of(request: &Request) -> String {
        request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.0.clone())
            .unwrap_or_default()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(uuid::Uuid::now_v7().to_string())))
    }
}

/// Where the authentication extractor leaves what the answer's outer layers need and the
/// handler does not return: the acting client's id, for the request log line, and its rate
/// limit's quota, for the `RateLimit` fields. One slot per request, made by the request
/// logger, which writes both after the response.
#[derive(Debug, Clone, Default)]
pub struct CallerSlot(Arc<CallerRecord>);

#[derive(Debug, Default)]
struct CallerRecord {
    client_id: OnceLock<String>,
    quota: OnceLock<Quota>,
}

impl CallerSlot {
    /// Records the client acting in this request (first call wins).
    pub fn fill(parts: &Parts, client_id: String) {
        if let Some(slot) = parts.extensions.get::<CallerSlot>() {
            let _ = slot.0.client_id.set(client_id);
        }
    }

    /// Records the client's quota after this request (first call wins).
    pub fn fill_quota(parts: &Parts, quota: Quota) {
        if let Some(slot) = parts.extensions.get::<CallerSlot>() {
            let _ = slot.0.quota.set(quota);
        }
    }

    /// The client recorded, if the request got that far.
    pub fn caller(&self) -> Option<&str> {
        self.0.client_id.get().map(String::as_str)
    }

    /// The client's quota, if a rate limit applied.
    pub fn quota(&self) -> Option<&Quota> {
        self.0.quota.get()
    }
}

/// The cause chain of a failed answer (500, or a 503 with a known cause), handed to the
/// request logger through the response extensions.
#[derive(Clone, Debug)]
pub struct ErrorReport(pub String);
