//! `/v1/webhooks`: a customer's webhook subscriptions (scope `webhooks:manage`). Create,
//! list, read, change (URL, event types, pause and resume), delete, rotate the signing
//! secret, list failed delivery attempts and redeliver. Each subscription belongs to the
//! `Customer-Id` it was made for; another customer's answers 404. Delivery is
//! `crate::webhooks`'s.

use crate::http::access::{Authorized, ManageWebhooks};
use crate::http::error::{ApiError, FieldErrors};
use crate::http::extract::{CustomerIdHeader, JsonBody, WebhookId, WebhookIdPath};
use crate::http::idempotency::{answer_response, under_key, IdempotencyKeyHeader, RequestKey};
use crate::http::problem::{Problem, ProblemType};
use crate::http::AppState;
use crate::service::ServiceError;
use crate::webhooks::signing::new_secret;
use crate::webhooks::{time_of, MOST_SUBSCRIPTIONS, SECRET_GRACE};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use domain::JobEvent;
use projections::idempotency::StoredAnswer;
use projections::webhooks::{
    Creation, FailedDelivery, NewSubscription, Subscription, SubscriptionChanges,
    SubscriptionStatus, FAILED_DELIVERIES_KEPT,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoResponses, ToSchema};
use uuid::Uuid;

/// The most event types a subscription may name (there are fewer types; repeats count).
const MOST_EVENT_TYPES: usize = 50;

/// What an operation on one subscription can answer besides its success.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only: named in the handlers' `responses(...)`
pub enum OneWebhookResponses {
    /// Invalid Customer-Id or id (`/problems/invalid-customer-id`,
    /// `/problems/invalid-webhook-id`).
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No such subscription for this customer (`/problems/webhook-not-found`).
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// Unexpected error (`/problems/internal`); the body never carries internals.
    #[response(status = 500, content_type = "application/problem+json")]
    Internal(Problem),
}

/// A subscription to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where to send events: an absolute `https` URL of at most 2000 characters, whose host
    /// is not — and does not resolve to — a loopback, private or link-local address (hosts
    /// the server's `--webhook-allowed-hosts` names are exempt, and may use `http`).
    #[schema(value_type = String, required = true, max_length = 2000)]
    pub url: Option<String>,
    /// The event types to send (as in `GET /v1/events`, e.g. `JobCancelled`); empty or
    /// absent sends every type.
    #[schema(max_items = 50)]
    pub event_types: Option<Vec<String>>,
}

/// Changes to a subscription; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    /// As in a create.
    #[schema(max_length = 2000)]
    pub url: Option<String>,
    /// As in a create; `[]` sends every type.
    #[schema(max_items = 50)]
    pub event_types: Option<Vec<String>>,
    /// `paused` stops deliveries (events wait, none is lost); `active` resumes them from
    /// where they stopped — for a failing subscription too, as a redelivery does.
    #[schema(value_type = Option<SettableStatus>)]
    pub status: Option<String>,
}

/// The statuses a customer may set.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // documentation only: `status` is read as text to answer 422, not 400
pub enum SettableStatus {
    Active,
    Paused,
}

/// A subscription's status.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookStatus {
    /// Delivered as events come.
    Active,
    /// Paused by its customer: events wait.
    Paused,
    /// One event's deliveries failed for the whole retry window (24 h): nothing is sent
    /// until it is redelivered (or set active).
    Failing,
}

impl From<SubscriptionStatus> for WebhookStatus {
    fn from(status: SubscriptionStatus) -> Self {
        match status {
            SubscriptionStatus::Active => WebhookStatus::Active,
            SubscriptionStatus::Paused => WebhookStatus::Paused,
            SubscriptionStatus::Failing => WebhookStatus::Failing,
        }
    }
}

/// A webhook subscription.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    /// The event types sent; empty means every type.
    pub event_types: Vec<String>,
    pub status: WebhookStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// How many events were delivered.
    pub delivered: i64,
    /// Failed attempts at the next event, if its delivery is failing.
    pub failed_attempts: i32,
    /// When the first of those attempts was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<DateTime<Utc>>,
    /// When the next attempt is due, while attempts are failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl From<&Subscription> for Webhook {
    fn from(subscription: &Subscription) -> Self {
        let failing = subscription.attempts > 0;
        Webhook {
            id: subscription.id,
            url: subscription.url.clone(),
            event_types: subscription.event_types.clone(),
            status: subscription.status.into(),
            created_at: time_of(subscription.created_at_ms),
            updated_at: time_of(subscription.updated_at_ms),
            delivered: subscription.delivered,
            failed_attempts: subscription.attempts,
            failing_since: subscription
                .failing_since_ms
                .filter(|_| failing)
                .map(time_of),
            next_attempt_at: subscription
                .next_attempt_ms
                .filter(|_| failing && subscription.status == SubscriptionStatus::Active)
                .map(time_of),
        }
    }
}

/// A new subscription, with its signing secret: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The Standard Webhooks secret (`whsec_` + base64) that signs every delivery's
    /// `webhook-signature`. Keep it: it is not shown again (rotate it to get a new one).
    pub secret: String,
}

/// A new signing secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedSecret {
    /// The new secret. The previous one also signs (a second `v1,…` in
    /// `webhook-signature`) until `previousSecretExpiresAt`, so receivers can switch over.
    pub secret: String,
    pub previous_secret_expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookList {
    /// The customer's subscriptions, oldest first (at most 25).
    pub items: Vec<Webhook>,
}

/// One failed attempt to deliver an event.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedDeliveryAttempt {
    /// The event's id (its `webhook-id`, as in `GET /v1/events`).
    pub event_id: String,
    pub job_id: String,
    pub sequence: i64,
    pub event_type: String,
    /// 1 for the first attempt at this event, 2 for the next, …
    pub attempt: i32,
    pub attempted_at: DateTime<Utc>,
    /// The receiver's status code, if it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<i32>,
    /// What went wrong.
    pub error: String,
}

impl From<FailedDelivery> for FailedDeliveryAttempt {
    fn from(failure: FailedDelivery) -> Self {
        FailedDeliveryAttempt {
            event_id: failure.event_id,
            job_id: failure.job_id,
            sequence: failure.sequence,
            event_type: failure.event_type,
            attempt: failure.attempt,
            attempted_at: time_of(failure.attempted_at_ms),
            response_status: failure.response_status,
            error: failure.error,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedDeliveryList {
    /// The newest failed attempts (at most 100), newest first.
    pub items: Vec<FailedDeliveryAttempt>,
}

/// Checks a URL against the server's target rules into `errors`.
async fn checked_url(app: &AppState, errors: &mut FieldErrors, url: &str) -> Option<String> {
    match app.webhook_targets.check_resolved(url).await {
        Ok(url) => Some(url.to_string()),
        Err(error) => {
            errors.add("url", error);
            None
        }
    }
}

/// Checks event type names into `errors`; repeats are dropped.
fn checked_event_types(errors: &mut FieldErrors, names: Vec<String>) -> Option<Vec<String>> {
    if names.len() > MOST_EVENT_TYPES {
        errors.add(
            "eventTypes",
            format!("at most {MOST_EVENT_TYPES} event types may be named"),
        );
        return None;
    }
    let mut types: Vec<String> = Vec::with_capacity(names.len());
    let mut valid = true;
    for name in names {
        if !JobEvent::TYPE_NAMES.contains(&name.as_str()) {
            errors.add(
                "eventTypes",
                format!(
                    "{} is not an event type (they are {})",
                    crate::http::problem::excerpt(&name),
                    JobEvent::TYPE_NAMES.join(", ")
                ),
            );
            valid = false;
        } else if !types.contains(&name) {
            types.push(name);
        }
    }
    valid.then_some(types)
}

/// Creates a subscription.
///
/// Events of the customer that commit from now on are sent to `url`, in commit order, at
/// least once, each as a POST of `{"type", "timestamp", "data"}` (`data` is the event as
/// `GET /v1/events` shows it) with the Standard Webhooks headers `webhook-id` (the event's
/// stable id), `webhook-timestamp` and `webhook-signature` (`v1,` + base64 of the
/// HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` under the secret). Any 2xx
/// within 10 s is success; anything else is retried with growing waits (1 s doubling to an
/// hour, with jitter), later events waiting behind, for 24 h; then the subscription is
/// marked failing until redelivered. A customer may have 25 subscriptions. With an
/// `Idempotency-Key`, a retried create answers the first create's 201 again (with the same
/// secret) instead of making a second subscription.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks",
    params(CustomerIdHeader, IdempotencyKeyHeader),
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "Created; the secret is shown this once", body = CreatedWebhook,
            headers(("Location" = String, description = "The subscription's URL"))),
        (status = 400, description = "Invalid Customer-Id or malformed body (`/problems/invalid-customer-id`, `/problems/malformed-body`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB (`/problems/payload-too-large`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another request with the same `Idempotency-Key` is running (`/problems/idempotency-key-in-flight`, `Retry-After`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid or disallowed URL, an unknown event type, too many event types, or the customer already has 25 subscriptions (`/problems/validation`, with `errors`); or the `Idempotency-Key` was used for another request (`/problems/idempotency-key-reused`); nothing was stored", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Unexpected error", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_webhook(
    State(app): State<AppState>,
    access: Authorized<ManageWebhooks>,
    RequestKey(key): RequestKey,
    JsonBody(body, raw): JsonBody<CreateWebhookRequest>,
) -> Result<Response, ApiError> {
    let keyed = key.map(|key| key.request(&access, &raw));
    let service = app.service.clone();
    under_key(&service, keyed, |claim| async move {
        let mut errors = FieldErrors::default();
        let url = match body.url {
            Some(url) => checked_url(&app, &mut errors, &url).await,
            None => {
                errors.add("url", "is required");
                None
            }
        };
        let event_types = checked_event_types(&mut errors, body.event_types.unwrap_or_default());
        let (url, event_types) = errors.into_result(|| Some((url?, event_types?)))?;
        let new = NewSubscription {
            id: Uuid::now_v7(),
            created_at_ms: Utc::now().timestamp_millis(),
            customer_id: access.customer.get(),
            url,
            event_types,
            secret: new_secret(),
        };
        let answer = created(&new)?;
        let answering = claim.as_ref().map(|claim| (claim, &answer));
        match app
            .webhooks
            .create_subscription(&new, MOST_SUBSCRIPTIONS, answering)
            .await?
        {
            Creation::Created(_) => {
                app.webhook_changes.notify_one();
                answer_response(&answer, false)
            }
            Creation::OverLimit => {
                let mut errors = FieldErrors::default();
                errors.add(
                    "subscriptions",
                    format!(
                        "a customer may have at most {MOST_SUBSCRIPTIONS} webhook subscriptions"
                    ),
                );
                Err(ApiError::Validation(errors))
            }
            Creation::KeyTakenOver => Err(ServiceError::KeyInFlight.into()),
        }
    })
    .await
}

/// The answer to a create: 201, where the subscription is, and it with its secret. Made
/// before the subscription is stored, so that an idempotency key's answer is stored with it.
fn created(new: &NewSubscription) -> Result<StoredAnswer, ApiError> {
    let created_at = time_of(new.created_at_ms);
    let body = CreatedWebhook {
        webhook: Webhook {
            id: new.id,
            url: new.url.clone(),
            event_types: new.event_types.clone(),
            status: WebhookStatus::Active,
            created_at,
            updated_at: created_at,
            delivered: 0,
            failed_attempts: 0,
            failing_since: None,
            next_attempt_at: None,
        },
        secret: new.secret.clone(),
    };
    Ok(StoredAnswer {
        status: StatusCode::CREATED.as_u16(),
        headers: vec![
            (
                header::LOCATION.to_string(),
                format!("/v1/webhooks/{}", new.id),
            ),
            (header::CONTENT_TYPE.to_string(), "application/json".into()),
        ],
        body: Some(serde_json::to_string(&body).map_err(ApiError::internal)?),
    })
}

/// The customer's subscriptions.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    params(CustomerIdHeader),
    responses(
        (status = 200, description = "The customer's subscriptions", body = WebhookList),
        (status = 400, description = "Invalid Customer-Id (`/problems/invalid-customer-id`)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Unexpected error", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_webhooks(
    State(app): State<AppState>,
    access: Authorized<ManageWebhooks>,
) -> Result<Json<WebhookList>, ApiError> {
    let subscriptions = app
        .webhooks
        .subscriptions(Some(access.customer.get()))
        .await?;
    Ok(Json(WebhookList {
        items: subscriptions.iter().map(Webhook::from).collect(),
    }))
}

fn not_found() -> ApiError {
    ApiError::problem(
        ProblemType::WebhookNotFound,
        "no webhook subscription with this id exists for this customer",
    )
}

/// One subscription.
#[utoipa::path(get, path = "/v1/webhooks/{webhookId}", tag = "webhooks",
    params(CustomerIdHeader, WebhookIdPath),
    responses(
        (status = 200, description = "The subscription", body = Webhook),
        OneWebhookResponses,
    ))]
pub async fn get_webhook(
    State(app): State<AppState>,
    access: Authorized<ManageWebhooks>,
    WebhookId(id): WebhookId,
) -> Result<Json<Webhook>, ApiError> {
    let subscription = app
        .webhooks
        .subscription(access.customer.get(), id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(Webhook::from(&subscription)))
}

/// Changes a subscription: its URL, its event types, or its status (pause, resume).
#[utoipa::path(patch, path = "/v1/webhooks/{webhookId}", tag = "webhooks",
    params(CustomerIdHeader, WebhookIdPath),
    request_body = UpdateWebhookRequest,
    responses(
        (status = 200, description = "The subscription as changed", body = Webhook),
        (status = 400, description = "Invalid Customer-Id, id or malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription for this customer (`/problems/webhook-not-found`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB (`/problems/payload-too-large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid or disallowed URL, an unknown event type, or a status other than active or paused (`/problems/validation`, with `errors`); nothing was changed", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Unexpected error", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_webhook(
    State(app): State<AppState>,
    access: Authorized<ManageWebhooks>,
    WebhookId(id): WebhookId,
    JsonBody(body, _): JsonBody<UpdateWebhookRequest>,
) -> Result<Json<Webhook>, ApiError> {
    let customer = access.customer.get();
    // 404 before 422, as for jobs.
    app.webhooks
        .subscription(customer, id)
        .await?
        .ok_or_else(not_found)?;
    let mut errors = FieldErrors::default();
    let url = match body.url {
        Some(url) => checked_url(&app, &mut errors, &url).await.map(Some),
        None => Some(None),
    };
    let event_types = match body.event_types {
        Some(names) => checked_event_types(&mut errors, names).map(Some),
        None => Some(None),
    };
    let status = match body.status.as_deref() {
        None => Some(None),
        Some("active") => Some(Some(SubscriptionStatus::Active)),
        Some("paused") => Some(Some(SubscriptionStatus::Paused)),
        Some(_) => {
            errors.add("status", "must be active or paused");
            None
        }
    };
    let changes = errors.into_result(|| {
        Some(SubscriptionChanges {
            url: url?,
            event_types: event_types?,
            status: status?,
        })
    })?;
    let updated = app
        .webhooks
        .update_subscription(customer, id, &changes)
        .await?
        .ok_or_else(not_found)?;
    app.webhook_changes.notify_one();
    Ok(Json(Webhook::from(&updated)))
}

/// Deletes a subscription: nothing more is sent to it.
#[utoipa::path(delete, path = "/v1/webhooks/{webhookId}", tag = "webhooks",
    params(CustomerIdHeader, WebhookIdPath),
    responses(
        (status = 204, description = "Deleted"),
        OneWebhookResponses,
    ))]
pub async fn delete_webhook(
    State(app): State<AppState>,
    access: Authorized<ManageWebhooks>,
    WebhookId(id): WebhookId,
) -> Result<StatusCode, ApiError> {
    if app
        .webhooks
        .delete_subscription(access.customer.get(), id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

/// Rotates the signing secret.
///
/// The new secret signs from now on; the previous one keeps signing beside it for 24 h
/// (`webhook-signature` then carries two signatures), so a receiver can switch without
/// refusing a delivery.
#[utoipa::path(post, path = "/v1/webhooks/{webhookId}/secret", tag = "webhooks",
    params(CustomerIdHeader, WebhookIdPath),
    responses(
        (status = 200, description = "The new secret, shown this once", body = RotatedSecret),
        OneWebhookResponses,
    ))]
pub async fn rotate_webhook_secret(
    State(app): State<AppState>,
    access: Authorized<ManageWebhooks>,
    WebhookId(id): WebhookId,
) -> Result<Json<RotatedSecret>, ApiError> {
    let rotated = app
        .webhooks
        .rotate_secret(
            access.customer.get(),
            id,
            &new_secret(),
            SECRET_GRACE.as_millis() as i64,
        )
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(RotatedSecret {
        secret: rotated.secret,
        previous_secret_expires_at: time_of(rotated.previous_secret_until_ms.unwrap_or_default()),
    }))
}

/// The subscription's failed delivery attempts, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{webhookId}/failedDeliveries", tag = "webhooks",
    params(CustomerIdHeader, WebhookIdPath),
    responses(
        (status = 200, description = "The newest failed attempts (at most 100)", body = FailedDeliveryList),
        OneWebhookResponses,
    ))]
pub async fn failed_deliveries(
    State(app): State<AppState>,
    access: Authorized<ManageWebhooks>,
    WebhookId(id): WebhookId,
) -> Result<Json<FailedDeliveryList>, ApiError> {
    app.webhooks
        .subscription(access.customer.get(), id)
        .await?
        .ok_or_else(not_found)?;
    let failures = app
        .webhooks
        .failed_deliveries(id, FAILED_DELIVERIES_KEPT)
        .await?;
    Ok(Json(FailedDeliveryList {
        items: failures.into_iter().map(Into::into).collect(),
    }))
}

/// Redelivers now: the event whose deliveries failed, and everything after it, in order.
///
/// Sets the subscription active (a failing or paused one too) and ends any wait before the
/// next attempt. Events are never skipped, so this is how a receiver that was down for
/// longer than the retry window gets everything it missed.
#[utoipa::path(post, path = "/v1/webhooks/{webhookId}/redeliver", tag = "webhooks",
    params(CustomerIdHeader, WebhookIdPath),
    responses(
        (status = 202, description = "Delivery resumes at once", body = Webhook),
        OneWebhookResponses,
    ))]
pub async fn redeliver(
    State(app): State<AppState>,
    access: Authorized<ManageWebhooks>,
    WebhookId(id): WebhookId,
) -> Result<(StatusCode, Json<Webhook>), ApiError> {
    let updated = app
        .webhooks
        .redeliver(access.customer.get(), id)
        .await?
        .ok_or_else(not_found)?;
    app.webhook_changes.notify_one();
    Ok((StatusCode::ACCEPTED, Json(Webhook::from(&updated))))
}
