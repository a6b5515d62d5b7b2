//! Events as integrators see them, in the change feed and in webhooks: one shape, one id.

use chrono::{DateTime, Utc};
use projections::log::LoggedEvent;
use serde::Serialize;
use utoipa::ToSchema;

/// An event's stable id (a webhook's `webhook-id`): the same whichever server sends it,
/// however often.
pub fn event_id(job_id: &str, sequence: i64) -> String {
    format!("{job_id}:{sequence}")
}

/// One event as integrators see it: in the change feed (`GET /v1/events`), and as the
/// `data` of a webhook.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedEvent {
    /// The event's stable id, `{jobId}:{sequence}`: the same in the feed and in a
    /// webhook's `webhook-id`, however often it is sent.
    pub id: String,
    /// The job it happened to.
    pub job_id: String,
    /// Its place in the job's history (1, 2, …).
    pub sequence: i64,
    /// E.g. `JobCancelled`.
    pub event_type: String,
    pub event_version: String,
    pub recorded_at: DateTime<Utc>,
    /// The event's fields, e.g. `{"reason": "…", "occurredAt": "…"}` for `JobCancelled`.
    pub payload: serde_json::Value,
    /// The client that acted.
    pub client_id: String,
    /// The request it acted in (its `x-request-id`).
    pub request_id: String,
}

impl FeedEvent {
    pub fn from_logged(event: &LoggedEvent) -> Self {
        let who = event.who();
        FeedEvent {
            id: event_id(&event.aggregate_id, event.sequence),
            job_id: event.aggregate_id.clone(),
            sequence: event.sequence,
            event_type: event.event_type.clone(),
            event_version: event.event_version.clone(),
            recorded_at: event.recorded_at,
            payload: event.data(),
            client_id: who.client_id,
            request_id: who.request_id,
        }
    }
}
