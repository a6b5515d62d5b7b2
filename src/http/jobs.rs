//! The `/v1/jobs` endpoints. Handlers are thin: extract (authorized caller and customer, id,
//! body) → build the command → run it through the service → 201/204, or read the projection.
//! The response sets their OpenAPI annotations share ([`ReadResponses`],
//! [`CommandResponses`]) are declared here too, beside the handlers they describe.

use crate::http::access::{Authorized, Read, Write};
use crate::http::conditional::{entity_tag, etag, IfMatch, IfMatchHeader};
use crate::http::context::RequestId;
use crate::http::cursors::{EventCursor, HistoryCursor, JobCursor};
use crate::http::error::ApiError;
use crate::http::extract::{
    CustomerIdHeader, JobId, JobIdPath, JsonBody, OptionalJsonBody, QueryPairs, RawBody,
};
use crate::http::idempotency::{answer_response, under_key, IdempotencyKeyHeader, RequestKey};
use crate::http::problem::Problem;
use crate::http::query::{
    EventPaging, HistorySortBy, JobSortBy, Paging, QueryParams, SortDirection,
};
use crate::http::requests::*;
use crate::http::AppState;
use crate::service::{Answering, JobVersion, VersionCondition};
use axum::extract::FromRequestParts;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use projections::idempotency::StoredAnswer;
use projections::{JobSort, JobView, Page, StatusHistoryEntry, StoredEvent};
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};
use uuid::Uuid;

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedJob {
    pub id: Uuid,
}

/// What a read of one job (or its history) can answer besides 200.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only: named in the handlers' `responses(...)`
pub enum ReadResponses {
    /// Invalid job id, Customer-Id, or query parameter (`/problems/invalid-job-id`,
    /// `/problems/invalid-customer-id`, `/problems/invalid-paging`, `/problems/invalid-query`).
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No such job for this customer (`/problems/job-not-found`).
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// Unexpected error (`/problems/internal`); the body never carries internals.
    #[response(status = 500, content_type = "application/problem+json")]
    Internal(Problem),
}

/// What a command on a job can answer.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only: named in the handlers' `responses(...)`
pub enum CommandResponses {
    /// Done, or nothing to do (e.g. a repeated identical cancel); `ETag` is the job's
    /// version after the command. A retry with the same `Idempotency-Key` gets this answer
    /// again, with `Idempotent-Replayed: true`.
    #[response(status = 204, headers(
        ("ETag" = String, description = "The job's version, quoted"),
        ("Idempotent-Replayed" = String, description = "`true` on an answer given again for an Idempotency-Key"),
    ))]
    Done,
    /// Invalid job id, Customer-Id, If-Match or Idempotency-Key, or a body that is not JSON
    /// of the documented shape (`/problems/invalid-job-id`, `/problems/invalid-customer-id`,
    /// `/problems/invalid-if-match`, `/problems/invalid-idempotency-key`,
    /// `/problems/malformed-body`).
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No such job for this customer (`/problems/job-not-found`).
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// The job kept changing concurrently after the server's retries (`/problems/conflict`),
    /// or a request with the same Idempotency-Key is still in progress
    /// (`/problems/idempotency-key-in-flight`, with `Retry-After`).
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// `If-Match` names no version the job is at (`/problems/precondition-failed`); nothing
    /// was recorded.
    #[response(status = 412, content_type = "application/problem+json")]
    PreconditionFailed(Problem),
    /// Body over 64 KiB (`/problems/payload-too-large`).
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// Body is not `application/json` (`/problems/unsupported-media-type`).
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
    /// A field rule (`/problems/validation`, with `errors`) or a lifecycle rule (a specific
    /// type, see the operation's description) refused the command, or its Idempotency-Key
    /// was first sent with another request (`/problems/idempotency-key-reused`).
    #[response(status = 422, content_type = "application/problem+json")]
    Unprocessable(Problem),
    /// Unexpected error (`/problems/internal`); the body never carries internals.
    #[response(status = 500, content_type = "application/problem+json")]
    Internal(Problem),
}

/// Create a job.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs",
    params(CustomerIdHeader, IdempotencyKeyHeader),
    request_body(content = CreateJobRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `Location` names the new job. A retry with the same `Idempotency-Key` gets this answer again (the same job), with `Idempotent-Replayed: true`", body = CreatedJob,
            headers(("Location" = String, description = "/v1/jobs/{id}"),
                ("ETag" = String, description = "The new job's version, quoted"),
                ("Idempotent-Replayed" = String, description = "`true` on an answer given again for an Idempotency-Key"))),
        (status = 400, description = "Malformed body, missing/invalid Customer-Id or invalid Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with the same Idempotency-Key is still in progress (`/problems/idempotency-key-in-flight`, with `Retry-After`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Field rules violated (`/problems/validation`, with `errors`), or the Idempotency-Key was first sent with another request (`/problems/idempotency-key-reused`)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Unexpected error", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_job(
    State(app): State<AppState>,
    access: Authorized<Write>,
    request_id: RequestId,
    RequestKey(key): RequestKey,
    JsonBody(body, raw): JsonBody<CreateJobRequest>,
) -> Result<Response, ApiError> {
    let keyed = key.map(|key| key.request(&access, &raw));
    let service = app.service.clone();
    under_key(&service, keyed, |claim| async move {
        let command = body.into_command(access.customer)?;
        let answering = claim.as_ref().map(|claim| Answering {
            claim,
            answer: &created,
        });
        let (id, version) = app
            .service
            .create(command, &access.metadata(&request_id), answering)
            .await?;
        answer_response(&created(id, version), false)
    })
    .await
}

/// The answer to a create: 201, where the job is, its version, and its id.
fn created(id: Uuid, version: JobVersion) -> StoredAnswer {
    StoredAnswer {
        status: StatusCode::CREATED.as_u16(),
        headers: vec![
            (header::LOCATION.to_string(), format!("/v1/jobs/{id}")),
            (header::ETAG.to_string(), entity_tag(version)),
            (header::CONTENT_TYPE.to_string(), "application/json".into()),
        ],
        body: Some(serde_json::json!(CreatedJob { id }).to_string()),
    }
}

/// The answer to a command: 204 and the job's version after it.
fn changed(_id: Uuid, version: JobVersion) -> StoredAnswer {
    StoredAnswer {
        status: StatusCode::NO_CONTENT.as_u16(),
        headers: vec![(header::ETAG.to_string(), entity_tag(version))],
        body: None,
    }
}

/// List the customer's jobs.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs",
    params(
        CustomerIdHeader,
        ("status" = Option<Vec<domain::JobStatus>>, Query, description = "Only jobs in one of these statuses (repeat the parameter)", explode = true),
        ("typeId" = Option<i64>, Query, description = "Only jobs of this type", minimum = 1),
        ("contactId" = Option<i64>, Query, description = "Only jobs for this contact", minimum = 1),
        ("reference" = Option<String>, Query, description = "Only jobs with exactly this reference"),
        ("createdFrom" = Option<String>, Query, format = DateTime, description = "Only jobs created at or after this RFC 3339 time"),
        ("createdTo" = Option<String>, Query, format = DateTime, description = "Only jobs created before this RFC 3339 time"),
        ("sortBy" = Option<JobSortBy>, Query, description = "The order of the list (default createdAt)"),
        ("direction" = Option<SortDirection>, Query, description = "Default ascending"),
        Paging,
    ),
    responses(
        (status = 200, description = "A page of jobs", body = Page<JobView>),
        (status = 400, description = "Invalid Customer-Id, filter, sort or paging", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Unexpected error", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_jobs(
    State(app): State<AppState>,
    access: Authorized<Read>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Page<JobView>>, ApiError> {
    let mut params = QueryParams::new(pairs);
    let filter = params.job_filter()?;
    let (page, after) = params.job_paging(&filter)?;
    params.finish()?;
    let mut jobs = app
        .service
        .queries()
        .list_jobs(access.customer.get(), &filter, page, after)
        .await?;
    if jobs.has_more {
        jobs.next_cursor = jobs.items.last().map(|job| JobCursor::after(&filter, job));
    }
    Ok(Json(jobs))
}

/// Get one job.
#[utoipa::path(get, path = "/v1/jobs/{jobId}", tag = "jobs",
    params(CustomerIdHeader, JobIdPath),
    responses(
        (status = 200, description = "The job; `ETag` is its version", body = JobView,
            headers(("ETag" = String, description = "The job's version, quoted"))),
        (status = 400, description = "Invalid job id or Customer-Id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job for this customer", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Unexpected error", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_job(
    State(app): State<AppState>,
    access: Authorized<Read>,
    JobId(job_id): JobId,
) -> Result<Response, ApiError> {
    let job = app.service.require_job(access.customer, job_id).await?;
    Ok(([(header::ETAG, etag(job.version)?)], Json(job)).into_response())
}

/// A write to one existing job: who asks (with `jobs:write`), in which request, for which
/// job, on what condition (`If-Match`), under which idempotency key. Read in SPEC §2's
/// order — token, customer and scope, then the job id, then `If-Match` and
/// `Idempotency-Key` — before the body is.
pub struct JobWrite {
    access: Authorized<Write>,
    request_id: RequestId,
    job_id: Uuid,
    condition: Option<VersionCondition>,
    key: RequestKey,
}

impl FromRequestParts<AppState> for JobWrite {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let access = Authorized::<Write>::from_request_parts(parts, state).await?;
        let JobId(job_id) = JobId::from_request_parts(parts, state).await?;
        let IfMatch(condition) = IfMatch::from_request_parts(parts, state).await?;
        let key = RequestKey::from_request_parts(parts, state).await?;
        let Ok(request_id) = RequestId::from_request_parts(parts, state).await;
        Ok(JobWrite {
            access,
            request_id,
            job_id,
            condition,
            key,
        })
    }
}

/// Runs a command for an existing job of the customer and answers 204 with the job's new
/// `ETag`. SPEC §2 orders the answers 404, then 412, then 422: the job must be the
/// customer's, and preconditions are evaluated before the request's content (RFC 9110
/// §13.2.2), so the handler hands the command over with its validation result still held.
/// The early `If-Match` check reads the projection; the service checks again against the
/// version it decides on, which is what makes a race answer 412 rather than overwrite.
/// An idempotency key is claimed before any of that: a retry of an answered request gets
/// its answer whatever the job has become since.
async fn change(
    app: &AppState,
    write: JobWrite,
    body: RawBody,
    command: Result<domain::JobCommand, ApiError>,
) -> Result<Response, ApiError> {
    let JobWrite {
        access,
        request_id,
        job_id,
        condition,
        key: RequestKey(key),
    } = write;
    let keyed = key.map(|key| key.request(&access, &body));
    let app = app.clone();
    under_key(&app.service.clone(), keyed, |claim| async move {
        let job = app.service.require_job(access.customer, job_id).await?;
        if condition
            .as_ref()
            .is_some_and(|condition| !condition.admits(job.version))
        {
            return Err(ApiError::PreconditionFailed);
        }
        let command = command?;
        let metadata = access.metadata(&request_id);
        let answering = claim.as_ref().map(|claim| Answering {
            claim,
            answer: &changed,
        });
        let version = app
            .service
            .run(job_id, command, condition.as_ref(), &metadata, answering)
            .await?;
        answer_response(&changed(job_id, version), false)
    })
    .await
}

/// Update a job.
///
/// 422 problem types: `/problems/validation` (with `errors`), `/problems/job-not-updatable`
/// (the job is cancelled), `/problems/job-field-locked` (description or personId of a job
/// that is started, suspended or completed). An update that changes nothing records nothing.
#[utoipa::path(patch, path = "/v1/jobs/{jobId}", tag = "jobs",
    params(CustomerIdHeader, JobIdPath, IfMatchHeader, IdempotencyKeyHeader),
    request_body(content = UpdateJobRequest, content_type = "application/json"),
    responses(CommandResponses))]
pub async fn update_job(
    State(app): State<AppState>,
    write: JobWrite,
    JsonBody(body, raw): JsonBody<UpdateJobRequest>,
) -> Result<Response, ApiError> {
    change(&app, write, raw, body.into_command()).await
}

/// Schedule or reschedule a job.
///
/// Allowed from new, scheduled, unscheduled, sent, read, accepted and refused; else 422
/// `/problems/job-not-schedulable`. Field rules: `/problems/validation`.
#[utoipa::path(put, path = "/v1/jobs/{jobId}/schedule", tag = "jobs",
    params(CustomerIdHeader, JobIdPath, IfMatchHeader, IdempotencyKeyHeader),
    request_body(content = ScheduleJobRequest, content_type = "application/json"),
    responses(CommandResponses))]
pub async fn schedule_job(
    State(app): State<AppState>,
    write: JobWrite,
    JsonBody(body, raw): JsonBody<ScheduleJobRequest>,
) -> Result<Response, ApiError> {
    change(&app, write, raw, body.into_command()).await
}

/// Unschedule a job (releases its resource, vehicle and start).
///
/// Body: empty or `{}`. Allowed from scheduled, sent, read, accepted and refused; else 422
/// `/problems/job-not-unschedulable`.
#[utoipa::path(put, path = "/v1/jobs/{jobId}/unschedule", tag = "jobs",
    params(CustomerIdHeader, JobIdPath, IfMatchHeader, IdempotencyKeyHeader),
    request_body(content = Option<EmptyRequest>, content_type = "application/json"),
    responses(CommandResponses))]
pub async fn unschedule_job(
    State(app): State<AppState>,
    write: JobWrite,
    OptionalJsonBody(EmptyRequest {}, raw): OptionalJsonBody<EmptyRequest>,
) -> Result<Response, ApiError> {
    let command = Ok(domain::JobCommand::Unschedule);
    change(&app, write, raw, command).await
}

/// Report a progress step (sent, read, accepted, refused, onTheWay).
///
/// Allowed steps: scheduled → sent; sent → read, accepted, refused, onTheWay; read →
/// accepted, refused, onTheWay; accepted → onTheWay. Else 422
/// `/problems/job-progress-not-allowed`.
#[utoipa::path(put, path = "/v1/jobs/{jobId}/progress", tag = "jobs",
    params(CustomerIdHeader, JobIdPath, IfMatchHeader, IdempotencyKeyHeader),
    request_body(content = ProgressJobRequest, content_type = "application/json"),
    responses(CommandResponses))]
pub async fn progress_job(
    State(app): State<AppState>,
    write: JobWrite,
    JsonBody(body, raw): JsonBody<ProgressJobRequest>,
) -> Result<Response, ApiError> {
    change(&app, write, raw, body.into_command()).await
}

/// Start a job.
///
/// Body optional. Allowed from scheduled, sent, read, accepted and onTheWay; else 422
/// `/problems/job-not-startable`.
#[utoipa::path(put, path = "/v1/jobs/{jobId}/start", tag = "jobs",
    params(CustomerIdHeader, JobIdPath, IfMatchHeader, IdempotencyKeyHeader),
    request_body(content = Option<StartJobRequest>, content_type = "application/json"),
    responses(CommandResponses))]
pub async fn start_job(
    State(app): State<AppState>,
    write: JobWrite,
    OptionalJsonBody(body, raw): OptionalJsonBody<StartJobRequest>,
) -> Result<Response, ApiError> {
    change(&app, write, raw, body.into_command()).await
}

/// Suspend a started job.
///
/// Body optional. Else 422 `/problems/job-not-suspendable`.
#[utoipa::path(put, path = "/v1/jobs/{jobId}/suspend", tag = "jobs",
    params(CustomerIdHeader, JobIdPath, IfMatchHeader, IdempotencyKeyHeader),
    request_body(content = Option<SuspendJobRequest>, content_type = "application/json"),
    responses(CommandResponses))]
pub async fn suspend_job(
    State(app): State<AppState>,
    write: JobWrite,
    OptionalJsonBody(body, raw): OptionalJsonBody<SuspendJobRequest>,
) -> Result<Response, ApiError> {
    change(&app, write, raw, body.into_command()).await
}

/// Resume a suspended job (it is started again).
///
/// Body: empty or `{}`. Else 422 `/problems/job-not-resumable`.
#[utoipa::path(put, path = "/v1/jobs/{jobId}/resume", tag = "jobs",
    params(CustomerIdHeader, JobIdPath, IfMatchHeader, IdempotencyKeyHeader),
    request_body(content = Option<EmptyRequest>, content_type = "application/json"),
    responses(CommandResponses))]
pub async fn resume_job(
    State(app): State<AppState>,
    write: JobWrite,
    OptionalJsonBody(EmptyRequest {}, raw): OptionalJsonBody<EmptyRequest>,
) -> Result<Response, ApiError> {
    let command = Ok(domain::JobCommand::Resume);
    change(&app, write, raw, command).await
}

/// Record the result of a started job (completedOk or completedWithIssues).
///
/// Else 422 `/problems/job-result-not-allowed`.
#[utoipa::path(put, path = "/v1/jobs/{jobId}/result", tag = "jobs",
    params(CustomerIdHeader, JobIdPath, IfMatchHeader, IdempotencyKeyHeader),
    request_body(content = RecordResultRequest, content_type = "application/json"),
    responses(CommandResponses))]
pub async fn record_result(
    State(app): State<AppState>,
    write: JobWrite,
    JsonBody(body, raw): JsonBody<RecordResultRequest>,
) -> Result<Response, ApiError> {
    change(&app, write, raw, body.into_command()).await
}

/// Cancel a job.
///
/// Cancels a specific job. The job cannot be cancelled if it has already been started,
/// suspended or completed (422 `/problems/job-not-cancellable`). Cancelling a cancelled job
/// again with the same reason is a no-op (204, no new event); with another reason, 422
/// `/problems/job-already-cancelled`. A blank or over-long reason: 422 `/problems/validation`
/// with `errors.reason`.
#[utoipa::path(put, path = "/v1/jobs/{jobId}/cancel", tag = "jobs",
    params(CustomerIdHeader, JobIdPath, IfMatchHeader, IdempotencyKeyHeader),
    request_body(content = CancelJobRequest, content_type = "application/json"),
    responses(CommandResponses))]
pub async fn cancel_job(
    State(app): State<AppState>,
    write: JobWrite,
    JsonBody(body, raw): JsonBody<CancelJobRequest>,
) -> Result<Response, ApiError> {
    change(&app, write, raw, body.into_command()).await
}

/// A job's status changes, oldest first by default.
#[utoipa::path(get, path = "/v1/jobs/{jobId}/statusHistory", tag = "jobs",
    params(
        CustomerIdHeader, JobIdPath,
        ("sortBy" = Option<HistorySortBy>, Query, description = "createdAt (the only order)"),
        ("direction" = Option<SortDirection>, Query, description = "Default ascending"),
        Paging,
    ),
    responses(
        (status = 200, description = "A page of status changes", body = Page<StatusHistoryEntry>),
        ReadResponses,
    ))]
pub async fn status_history(
    State(app): State<AppState>,
    access: Authorized<Read>,
    JobId(job_id): JobId,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Page<StatusHistoryEntry>>, ApiError> {
    let mut params = QueryParams::new(pairs);
    params.sort(&[("createdAt", JobSort::CreatedAt)])?;
    let direction = params.direction()?;
    let page = params.history_paging(direction)?;
    params.finish()?;
    let mut history = app
        .service
        .queries()
        .status_history(access.customer.get(), job_id, direction, page)
        .await?
        .ok_or(ApiError::JobNotFound)?;
    if history.has_more {
        history.next_cursor = history
            .items
            .last()
            .map(|entry| HistoryCursor::after(direction, entry.sequence));
    }
    Ok(Json(history))
}

/// A job's raw event history from the event store, in sequence order: the audit trail of
/// who did what, when and why.
///
/// A page holds at most `pageSize` events and stops before they pass 1 MiB (at least one
/// event, however large), so it may hold fewer than `pageSize` while more follow
/// (`hasMore`). Follow `nextCursor` (pass it as `cursor`) to read every event once.
#[utoipa::path(get, path = "/v1/jobs/{jobId}/events", tag = "jobs",
    params(CustomerIdHeader, JobIdPath, EventPaging),
    responses(
        (status = 200, description = "A page of stored events", body = Page<StoredEvent>),
        ReadResponses,
    ))]
pub async fn job_events(
    State(app): State<AppState>,
    access: Authorized<Read>,
    JobId(job_id): JobId,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Page<StoredEvent>>, ApiError> {
    let mut params = QueryParams::new(pairs);
    let page = params.event_paging()?;
    params.finish()?;
    let mut events = app
        .service
        .queries()
        .events(access.customer.get(), job_id, page)
        .await?
        .ok_or(ApiError::JobNotFound)?;
    if events.has_more {
        events.next_cursor = events
            .items
            .last()
            .map(|event| EventCursor::after(event.sequence));
    }
    Ok(Json(events))
}
