//! The HTTP middlewares, outermost first as the router stacks them: [`assign_request_id`]
//! (every response carries `x-request-id`: the caller's, when it sent a sane one, else a
//! fresh UUID v7), [`log_request`] (one line per request, with its id, and a failure's cause
//! chain — the only place errors are logged), [`finish_problems`] (every error answer is a
//! complete problem), [`refuse_oversized_headers`] (431) and, per route, [`record_metrics`].

use crate::http::context::{CallerSlot, ErrorReport, RequestId, X_REQUEST_ID};
use crate::http::problem::{Problem, ProblemType, PROBLEM_JSON};
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

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

/// The longest header value accepted: room for a bearer token naming some two thousand
/// customers; nothing else the service reads comes close.
pub const MAX_HEADER_VALUE_BYTES: usize = 16 * 1024;

/// The most header bytes (names and values) a request may carry.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Answers 431 with a problem when one header value, or all of them together, are longer
/// than the service can have a use for, before anything reads them. (hyper itself refuses
/// heads past its 400 KiB buffer with a bare 431, which no middleware sees.)
pub async fn refuse_oversized_headers(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let longest = headers.values().map(HeaderValue::len).max().unwrap_or(0);
    let total: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if longest > MAX_HEADER_VALUE_BYTES || total > MAX_HEADER_BYTES {
        let problem = Problem::new(
            ProblemType::HeadersTooLarge,
            axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "a header value may hold at most {MAX_HEADER_VALUE_BYTES} bytes, and all \
                 headers together {MAX_HEADER_BYTES}"
            ),
        );
        return axum::response::IntoResponse::into_response(problem);
    }
    next.run(request).await
}

/// The target of the request log line. It is the module that wrote it before the
/// middlewares moved here, kept so that `RUST_LOG` filters naming it go on working.
const REQUEST_LOG_TARGET: &str = "jobs_service::telemetry";

/// One line per request: method, path, status, duration, request id, the acting client when
/// authenticated (and a failure's cause). Also adds the client's `RateLimit` fields, which
/// the authentication extractor left in the same slot.
pub async fn log_request(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let request_id = RequestId::of(&request);
    let caller = CallerSlot::default();
    request.extensions_mut().insert(caller.clone());
    let mut response = next.run(request).await;
    // The caller's rate limit, told on every answer after authentication (the slot saves
    // a middleware and an allocation of its own per request).
    if let Some(quota) = caller.quota() {
        quota.write_headers(response.headers_mut());
    }
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let client = caller.caller().unwrap_or("-");
    match response.extensions().get::<ErrorReport>() {
        Some(ErrorReport(cause)) => tracing::error!(
            target: REQUEST_LOG_TARGET,
            %method, %path, status, elapsed_ms, request_id, client, cause, "request failed"
        ),
        None => {
            tracing::info!(target: REQUEST_LOG_TARGET, %method, %path, status, elapsed_ms, request_id, client, "request")
        }
    }
    response
}

/// Completes every error response as a problem with `instance` and `requestId`. Our own
/// problems arrive as a typed [`Problem`] in the response extensions; any other error (one
/// axum or tower produced: unknown route, wrong method, timeout, panic) becomes a generic
/// problem of its status, so no client ever sees a `text/plain` error.
pub async fn finish_problems(request: Request, next: Next) -> Response {
    let instance = request.uri().path().to_owned();
    let request_id = RequestId::of(&request);
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, _body) = response.into_parts();
    let mut problem = parts
        .extensions
        .remove::<Problem>()
        .unwrap_or_else(|| Problem::generic(status));
    problem.instance = instance;
    problem.request_id = request_id;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    Response::from_parts(parts, Body::from(problem.to_body()))
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
