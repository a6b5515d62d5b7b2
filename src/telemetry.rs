//! Request ids, request logging and metrics. Every response carries `x-request-id` (the
//! caller's, when it sent a sane one, else a fresh UUID v7); every request is logged once,
//! with its id, and a 500's cause chain is logged there — the only place errors are logged.
//! Metrics go to a process-wide Prometheus recorder, scraped at `GET /metrics`.

use crate::http::problem::InternalErrorReport;
use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::{request::Parts, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

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

/// A caller's id is kept if it is short, printable ASCII: it ends up in logs and in the
/// audit metadata, so nothing else is trusted.
fn acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=128).contains(&bytes.len()) && bytes.iter().all(|b| b.is_ascii_graphic())
}

pub async fn assign_request_id(mut request: Request, next: Next) -> Response {
    let id = match request.headers().get(&X_REQUEST_ID) {
        Some(value) if acceptable(value) => value.to_str().unwrap_or_default().to_owned(),
        _ => uuid::Uuid::now_v7().to_string(),
    };
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    response
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
}

/// One line per request: method, path, status, duration, request id, the acting client when
/// authenticated (and a 500's cause).
pub async fn log_request(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let request_id = RequestId::of(&request);
    let caller = CallerSlot::default();
    request.extensions_mut().insert(caller.clone());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let client = caller.0.get().map(String::as_str).unwrap_or("-");
    match response.extensions().get::<InternalErrorReport>() {
        Some(InternalErrorReport(cause)) => tracing::error!(
            %method, %path, status, elapsed_ms, request_id, client, cause, "request failed"
        ),
        None => tracing::info!(%method, %path, status, elapsed_ms, request_id, client, "request"),
    }
    response
}

/// Logs to stderr; `RUST_LOG` overrides the default level (info).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Seconds; from a fast lookup to the request timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's Prometheus recorder, installed on first use. The `metrics` facade has one
/// global recorder per process, so every application in it (tests run several) reports to
/// it. `None` only if something else installed a recorder first.
pub fn metrics() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// Counts and times each routed request by method, route template and status. A route
/// layer, so the route is known (and unmatched paths cannot explode the label set).
pub async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_default();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("jobs_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("jobs_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
