//! Liveness and readiness probes.

use crate::http::problem::{ApiError, Problem};
use crate::http::AppState;
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
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
