//! Operations endpoints: liveness, readiness and Prometheus metrics.

use crate::http::error::ApiError;
use crate::http::problem::Problem;
use crate::http::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
}

/// Prometheus metrics (text exposition format): `jobs_http_requests_total` and
/// `jobs_http_request_duration_seconds` by method, route and status;
/// `jobs_commands_total` by command and outcome (accepted, refused, conflict, unavailable,
/// error); `jobs_command_retries_total` by command.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses(
        (status = 200, description = "The metrics", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 503, description = "No metrics recorder in this process", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn metrics() -> Result<Response, ApiError> {
    let handle = crate::telemetry::metrics().ok_or(ApiError::Unavailable(None))?;
    handle.run_upkeep();
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        handle.render() + &crate::webhooks::delivery::render_lags(),
    )
        .into_response())
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn live() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The store answers. (Projections are written in the same transaction as the events, so
/// they are always caught up.)
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "The store does not answer", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn ready(State(app): State<AppState>) -> Result<Json<Health>, ApiError> {
    app.service
        .queries()
        .ping()
        .await
        .map_err(|error| ApiError::Unavailable(Some(error.into())))?;
    Ok(Json(Health { status: "ok" }))
}
