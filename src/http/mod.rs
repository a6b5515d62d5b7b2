//! The HTTP layer: the router, its middleware stack and shared state.

pub mod access;
pub mod conditional;
pub mod connections;
pub mod context;
pub mod cursors;
pub mod error;
pub mod extract;
pub mod feed;
pub mod health;
pub mod idempotency;
pub mod jobs;
pub mod middleware;
pub mod openapi;
pub mod problem;
pub mod query;
pub mod rate_limits;
pub mod requests;
pub mod tokens;
pub mod webhooks;

use crate::auth::Authenticator;
use crate::service::JobService;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa_swagger_ui::SwaggerUi;
use webhooks::*;

/// Request bodies above this answer 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request that takes longer than this is answered 503 (the work may still commit).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct AppState {
    pub service: Arc<JobService>,
    pub auth: Arc<Authenticator>,
    pub limits: Arc<rate_limits::RateLimits>,
    /// Webhook subscriptions, and where they may point.
    pub webhooks: Arc<dyn projections::webhooks::WebhookStore>,
    pub webhook_targets: Arc<crate::webhooks::TargetPolicy>,
    /// Told after a subscription is created or changed, so delivery starts at once.
    pub webhook_changes: Arc<tokio::sync::Notify>,
}

/// The service's routes. `/metrics` is among them unless `metrics_apart` (it is then served
/// on a listener of its own, by [`metrics_router`]).
pub fn router(state: AppState, metrics_apart: bool) -> Router {
    use jobs::*;
    let mut api = Router::new()
        .route("/v1/jobs", get(list_jobs).post(create_job))
        .route("/v1/jobs/{jobId}", get(get_job).patch(update_job))
        .route("/v1/jobs/{jobId}/schedule", put(schedule_job))
        .route("/v1/jobs/{jobId}/unschedule", put(unschedule_job))
        .route("/v1/jobs/{jobId}/progress", put(progress_job))
        .route("/v1/jobs/{jobId}/start", put(start_job))
        .route("/v1/jobs/{jobId}/suspend", put(suspend_job))
        .route("/v1/jobs/{jobId}/resume", put(resume_job))
        .route("/v1/jobs/{jobId}/result", put(record_result))
        .route("/v1/jobs/{jobId}/cancel", put(cancel_job))
        .route("/v1/jobs/{jobId}/statusHistory", get(status_history))
        .route("/v1/jobs/{jobId}/events", get(job_events))
        .route("/v1/events", get(feed::change_feed))
        .route("/v1/webhooks", get(list_webhooks).post(create_webhook))
        .route(
            "/v1/webhooks/{webhookId}",
            get(get_webhook)
                .patch(update_webhook)
                .delete(delete_webhook),
        )
        .route(
            "/v1/webhooks/{webhookId}/secret",
            post(rotate_webhook_secret),
        )
        .route(
            "/v1/webhooks/{webhookId}/failedDeliveries",
            get(failed_deliveries),
        )
        .route("/v1/webhooks/{webhookId}/redeliver", post(redeliver))
        .route("/auth/tokens", post(tokens::issue_token))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready));
    if !metrics_apart {
        api = api.route("/metrics", get(health::metrics));
    }
    let api = api
        .route_layer(axum::middleware::from_fn(middleware::record_metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    with_common_layers(
        Router::new()
            .merge(api)
            .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi::document())),
    )
}

/// `/metrics` alone, for `--metrics-listen`.
pub fn metrics_router() -> Router {
    with_common_layers(Router::new().route("/metrics", get(health::metrics)))
}

/// What every answer goes through, on any listener.
fn with_common_layers(routes: Router) -> Router {
    routes
        // Outermost first: request id → request log → problem finishing → header sizes →
        // panics → timeout.
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        // A panic is a bug, but it answers a 500 problem like any other, not a dropped
        // connection.
        .layer(CatchPanicLayer::new())
        .layer(axum::middleware::from_fn(
            middleware::refuse_oversized_headers,
        ))
        .layer(axum::middleware::from_fn(middleware::finish_problems))
        .layer(axum::middleware::from_fn(middleware::log_request))
        .layer(axum::middleware::from_fn(middleware::assign_request_id))
}
