//! The OpenAPI 3.1 document, generated from the handlers and types (utoipa), plus what
//! holds for every operation and so is added here rather than on each. The parameter and
//! response sets the handlers' annotations name live beside what they describe (the
//! extractors, the query parser, the handlers), so this module depends on the handlers and
//! not the reverse.

use crate::auth::Scope;
use crate::http::problem::{ProblemType, PROBLEM_JSON};
use crate::http::query::{HistorySortBy, JobSortBy, SortDirection};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Jobs service",
        description = "Field-service jobs through their lifecycle, event-sourced. Every error is \
            application/problem+json with a stable `type`; see the `x-problem-types` extension \
            for the catalogue.",
    ),
    paths(
        crate::http::jobs::create_job,
        crate::http::jobs::list_jobs,
        crate::http::jobs::get_job,
        crate::http::jobs::update_job,
        crate::http::jobs::schedule_job,
        crate::http::jobs::unschedule_job,
        crate::http::jobs::progress_job,
        crate::http::jobs::start_job,
        crate::http::jobs::suspend_job,
        crate::http::jobs::resume_job,
        crate::http::jobs::record_result,
        crate::http::jobs::cancel_job,
        crate::http::jobs::status_history,
        crate::http::jobs::job_events,
        crate::http::feed::change_feed,
        crate::http::webhooks::create_webhook,
        crate::http::webhooks::list_webhooks,
        crate::http::webhooks::get_webhook,
        crate::http::webhooks::update_webhook,
        crate::http::webhooks::delete_webhook,
        crate::http::webhooks::rotate_webhook_secret,
        crate::http::webhooks::failed_deliveries,
        crate::http::webhooks::redeliver,
        crate::http::tokens::issue_token,
        crate::http::health::live,
        crate::http::health::ready,
        crate::http::health::metrics,
    ),
    // Types named only in query-parameter tuples are not collected automatically.
    components(schemas(JobSortBy, HistorySortBy, SortDirection)),
    tags(
        (name = "jobs", description = "Jobs and their lifecycle. Every operation needs an access token \
            (`Authorization: Bearer …`, from `POST /auth/tokens`) with the operation's scope and the \
            `Customer-Id` among its customers."),
        (name = "webhooks", description = "A customer's webhook subscriptions: its events, signed \
            (Standard Webhooks), POSTed to its receivers as they commit. Every operation needs the \
            scope `webhooks:manage`."),
        (name = "auth", description = "OAuth 2.0 client credentials: access tokens for registered clients"),
        (name = "health", description = "Liveness, readiness and metrics"),
    ),
)]
struct ApiDoc;

/// The name of the security scheme every `/v1` operation requires.
const SECURITY_SCHEME: &str = "oauth2";

/// The document served at `/openapi.json`: the generated one, plus what holds for every
/// operation and so is added here rather than repeated on each: the `x-request-id` header of
/// every response, the 503 that any request touching the store can answer (store
/// unreachable, or the request timed out), the 429 of the rate limits with their
/// `RateLimit` fields, the security requirement of every `/v1`
/// operation with its 401 and 403, and the problem-type catalogue.
pub fn document() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::security::SecurityRequirement;
    use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr, ResponseBuilder};

    let mut doc = ApiDoc::openapi();
    add_security_scheme(&mut doc);
    let problem = |description: &str| {
        ResponseBuilder::new().description(description).content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
    };
    let challenge = HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some(
            "`Bearer realm=\"jobs-service\"`, with `error=\"invalid_token\"` (or \
             `invalid_request` for a bearer header without a token) when a bearer token was sent \
             (RFC 6750 §3)",
        ))
        .build();
    let unauthorized = problem(
        "No access token, or one that is malformed, expired, not yet valid, wrongly signed, \
         for another audience, or of a revoked client (`/problems/unauthorized`)",
    )
    .header("WWW-Authenticate", challenge)
    .build();
    let scope_challenge = HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some(
            "On a missing scope: `Bearer realm=\"jobs-service\", error=\"insufficient_scope\", \
             scope=\"…\"` (RFC 6750 §3.1)",
        ))
        .build();
    let forbidden = problem(
        "The token lacks the operation's scope (`/problems/insufficient-scope`) or may not act \
         for the `Customer-Id` (`/problems/customer-not-allowed`)",
    )
    .header("WWW-Authenticate", scope_challenge)
    .build();
    let request_id = HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some(
            "The request's id: the caller's own when it sent a usable one, else generated",
        ))
        .build();
    let retry_after = HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
        .description(Some("Seconds to wait before retrying"))
        .build();
    let unavailable = problem(
        "The store is unreachable, a database statement ran past its time bound, or the \
         request timed out (`/problems/service-unavailable`); nothing was recorded, retry after `Retry-After`. \
         Should the store have been lost during the commit itself, the `detail` says the \
         change may or may not have been recorded: a retry with the same `Idempotency-Key` \
         tells which",
    )
    .header("Retry-After", retry_after.clone())
    .build();
    let string_header = |description: &str| {
        HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .description(Some(description.to_owned()))
            .build()
    };
    let quota_policy = string_header(
        "The rate limit that applies (IETF draft-ietf-httpapi-ratelimit-headers), e.g.          `\"per-client\";q=200;w=1`: its name, its quota `q` of requests per window of `w`          seconds",
    );
    let quota_state = string_header(
        "What is left of the quota, e.g. `\"per-client\";r=150;t=1`: `r` more requests fit          now, and the quota is whole again in `t` seconds",
    );
    let too_many = problem(
        "Over the client's rate limit (`/problems/too-many-requests`); nothing was done.          On `/v1`, each client (a token's subject) has its limit; on `/auth/tokens`, each          client id and each remote address. Retry after `Retry-After`",
    )
    .header("Retry-After", retry_after.clone())
    .header("RateLimit-Policy", quota_policy.clone())
    .header("RateLimit", quota_state.clone())
    .build();
    let headers_too_large = problem(
        "A header value over 16 KiB, or headers over 64 KiB in all \
         (`/problems/headers-too-large`); nothing was done",
    )
    .build();
    for (path, item) in doc.paths.paths.iter_mut() {
        let (read, write) = if path.starts_with("/v1/webhooks") {
            (Scope::WebhooksManage, Scope::WebhooksManage)
        } else {
            (Scope::JobsRead, Scope::JobsWrite)
        };
        let operations = [
            (read, &mut item.get),
            (write, &mut item.put),
            (write, &mut item.post),
            (write, &mut item.patch),
            (write, &mut item.delete),
        ];
        for (scope, operation) in operations {
            let Some(operation) = operation else { continue };
            let protected = path.starts_with("/v1/");
            if protected {
                operation.security = Some(vec![SecurityRequirement::new(
                    SECURITY_SCHEME,
                    [scope.as_str()],
                )]);
            }
            let responses = &mut operation.responses.responses;
            if protected {
                responses
                    .entry("401".to_owned())
                    .or_insert_with(|| RefOr::T(unauthorized.clone()));
                responses
                    .entry("403".to_owned())
                    .or_insert_with(|| RefOr::T(forbidden.clone()));
            }
            if protected || path.starts_with("/auth/") {
                responses
                    .entry("503".to_owned())
                    .or_insert_with(|| RefOr::T(unavailable.clone()));
                responses
                    .entry("429".to_owned())
                    .or_insert_with(|| RefOr::T(too_many.clone()));
                responses
                    .entry("431".to_owned())
                    .or_insert_with(|| RefOr::T(headers_too_large.clone()));
            }
            if protected {
                // Every answer after authentication tells the client its quota.
                for (status, response) in responses.iter_mut() {
                    if let (false, RefOr::T(response)) = (status == "401", response) {
                        for (name, header) in [
                            ("RateLimit-Policy", &quota_policy),
                            ("RateLimit", &quota_state),
                        ] {
                            response
                                .headers
                                .entry(name.to_owned())
                                .or_insert_with(|| RefOr::T(header.clone()));
                        }
                    }
                }
            }
            for response in responses.values_mut() {
                if let RefOr::T(response) = response {
                    response
                        .headers
                        .insert("x-request-id".to_owned(), RefOr::T(request_id.clone()));
                }
            }
        }
    }
    add_links_from_create(&mut doc);
    let catalogue: serde_json::Map<String, serde_json::Value> = ProblemType::ALL
        .iter()
        .map(|kind| (kind.uri(), serde_json::Value::from(kind.title())))
        .collect();
    doc.extensions.get_or_insert_with(Default::default).insert(
        "x-problem-types".to_owned(),
        serde_json::Value::Object(catalogue),
    );
    doc
}

/// Links from the 201 of `POST /v1/jobs` to every operation on the job it made, passing the
/// new job's id and the same `Customer-Id`: a client generator (or a stateful fuzzer) then
/// knows which id each operation wants, and can walk a job through its lifecycle.
fn add_links_from_create(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::link::LinkBuilder;
    use utoipa::openapi::RefOr;
    let mut links = Vec::new();
    for (path, item) in &doc.paths.paths {
        if !path.starts_with("/v1/jobs/{jobId}") {
            continue;
        }
        let operations = [&item.get, &item.put, &item.post, &item.patch, &item.delete];
        for operation in operations.into_iter().flatten() {
            let Some(id) = &operation.operation_id else {
                continue;
            };
            let link = LinkBuilder::new()
                .operation_id(id.clone())
                .parameter("path.jobId", "$response.body#/id")
                .parameter("header.Customer-Id", "$request.header.Customer-Id")
                .description(format!("The new job's {path}"))
                .build();
            links.push((id.clone(), link));
        }
    }
    let created = doc
        .paths
        .paths
        .get_mut("/v1/jobs")
        .and_then(|item| item.post.as_mut())
        .and_then(|create| create.responses.responses.get_mut("201"));
    if let Some(RefOr::T(created)) = created {
        for (id, link) in links {
            created.links.insert(id, RefOr::T(link));
        }
    }
}

/// OAuth 2.0 client credentials against our own token endpoint, with the service's scopes.
/// Swagger UI at `/docs` uses it for its "Authorize" button.
fn add_security_scheme(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{ClientCredentials, Flow, OAuth2, Scopes, SecurityScheme};
    let scopes = Scopes::from_iter([
        (
            Scope::JobsRead.as_str(),
            "Read jobs, their status history and events",
        ),
        (Scope::JobsWrite.as_str(), "Create and change jobs"),
        (
            Scope::WebhooksManage.as_str(),
            "Manage the customer's webhook subscriptions",
        ),
    ]);
    let flow = Flow::ClientCredentials(ClientCredentials::new("/auth/tokens", scopes));
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            SECURITY_SCHEME,
            SecurityScheme::OAuth2(OAuth2::with_description(
                [flow],
                "Register a client with `jobs-admin clients create`, then trade its id and \
                 secret for a token at `POST /auth/tokens`.",
            )),
        );
}
