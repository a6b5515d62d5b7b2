//! What one request carries between the middlewares and the handlers, in the request and
//! response extensions: its id ([`RequestId`]), the slot the authentication extractor fills
//! with the acting client ([`CallerSlot`]), and the cause of a failed answer
//! ([`ErrorReport`]), which the request logger writes and the client never sees. Kept apart
//! from both the writers and the readers, so neither has to import the other.

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

/// Where the authentication extractor leaves the acting client's id for the request log
/// line, which is written after the response, outside the handler.
#[derive(Debug, Clone, Default)]
pub struct CallerSlot(Arc<OnceLock<String>>);

impl CallerSlot {
    /// Records the client acting in this request (first call wins).
    pub fn fill(parts: &Parts, client_id: String) {
        if let Some(slot) = parts.extensions.get::<CallerSlot>() {
            let _ = slot.0.set(client_id);
        }
    }

    /// The client recorded, if the request got that far.
    pub fn caller(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// The cause chain of a failed answer (500, or a 503 with a known cause), handed to the
/// request logger through the response extensions.
#[derive(Clone, Debug)]
pub struct ErrorReport(pub String);
