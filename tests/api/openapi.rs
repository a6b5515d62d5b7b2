//! The OpenAPI document describes the whole `/v1` surface of SPEC §4 with its security
//! (OAuth 2.0 client credentials, a scope per operation) and the token endpoint, the docs page
//! is served from the binary, and errors the router produces itself are problems too.

use crate::backend_tests;
use crate::support::{Backend, TestApp};
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeSet;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// `POST /v1/jobs`: 201 with the new id.
    Create,
    /// A change of an existing job: 204.
    Command,
    /// A read: 200.
    Read,
    /// A change of a webhook subscription that answers it: 200 (PATCH).
    Change,
    /// A deletion: 204.
    Delete,
    /// A POST without a body on a subscription (rotate, redeliver): 2xx with JSON.
    Action,
}

/// Every `/v1` operation of SPEC §4: method, path, kind, and its query parameters.
const OPERATIONS: &[(&str, &str, Kind, &[&str])] = &[
    ("post", "/v1/jobs", Kind::Create, &[]),
    (
        "get",
        "/v1/jobs",
        Kind::Read,
        &[
            "status",
            "typeId",
            "contactId",
            "reference",
            "createdFrom",
            "createdTo",
            "sortBy",
            "direction",
            "pageNumber",
            "pageSize",
            "cursor",
        ],
    ),
    ("get", "/v1/jobs/{jobId}", Kind::Read, &[]),
    ("patch", "/v1/jobs/{jobId}", Kind::Command, &[]),
    ("put", "/v1/jobs/{jobId}/schedule", Kind::Command, &[]),
    ("put", "/v1/jobs/{jobId}/unschedule", Kind::Command, &[]),
    ("put", "/v1/jobs/{jobId}/progress", Kind::Command, &[]),
    ("put", "/v1/jobs/{jobId}/start", Kind::Command, &[]),
    ("put", "/v1/jobs/{jobId}/suspend", Kind::Command, &[]),
    ("put", "/v1/jobs/{jobId}/resume", Kind::Command, &[]),
    ("put", "/v1/jobs/{jobId}/result", Kind::Command, &[]),
    ("put", "/v1/jobs/{jobId}/cancel", Kind::Command, &[]),
    (
        "get",
        "/v1/jobs/{jobId}/statusHistory",
        Kind::Read,
        &["sortBy", "direction", "pageNumber", "pageSize", "cursor"],
    ),
    (
        "get",
        "/v1/jobs/{jobId}/events",
        Kind::Read,
        &["pageNumber", "pageSize", "cursor"],
    ),
    (
        "get",
        "/v1/events",
        Kind::Read,
        &["cursor", "limit", "wait"],
    ),
    ("post", "/v1/webhooks", Kind::Create, &[]),
    ("get", "/v1/webhooks", Kind::Read, &[]),
    ("get", "/v1/webhooks/{webhookId}", Kind::Read, &[]),
    ("patch", "/v1/webhooks/{webhookId}", Kind::Change, &[]),
    ("delete", "/v1/webhooks/{webhookId}", Kind::Delete, &[]),
    ("post", "/v1/webhooks/{webhookId}/secret", Kind::Action, &[]),
    (
        "get",
        "/v1/webhooks/{webhookId}/failedDeliveries",
        Kind::Read,
        &[],
    ),
    (
        "post",
        "/v1/webhooks/{webhookId}/redeliver",
        Kind::Action,
        &[],
    ),
];

/// The keys of an OpenAPI path item that name operations.
const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "patch", "delete", "head", "options", "trace",
];

async fn document(app: &TestApp) -> Value {
    let reply = app.request(Method::GET, "/openapi.json", None, None).await;
    reply.assert_status(200);
    assert!(reply.header("x-request-id").is_some());
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        reply.header("content-type")
    );
    reply.json()
}

/// Follows a local `$ref` (`#/components/...`) until it reaches a value that is not one.
fn resolve<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    for _ in 0..10 {
        let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
            return value;
        };
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("a local reference: {reference}"));
        value = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("a reference that resolves: {reference}"));
    }
    panic!("a reference cycle at {value}");
}

/// Asserts that the response documents a problem+json body whose schema is the problem shape.
#[track_caller]
fn assert_problem_response(doc: &Value, operation: &str, responses: &Value, status: &str) {
    let response = resolve(doc, &responses[status]);
    let schema = response
        .pointer("/content/application~1problem+json/schema")
        .unwrap_or_else(|| {
            panic!("{operation}: {status} documents a problem+json body: {response}")
        });
    let schema = resolve(doc, schema);
    let properties = schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{operation}: {status}: an object schema: {schema}"));
    for property in [
        "type",
        "title",
        "status",
        "detail",
        "instance",
        "requestId",
        "errors",
    ] {
        assert!(
            properties.contains_key(property),
            "{operation}: {status}: the problem schema has {property}: {schema}"
        );
    }
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for property in ["type", "title", "status", "detail"] {
        assert!(
            required.contains(&property),
            "{operation}: {property} is required: {schema}"
        );
    }
}

#[track_caller]
fn assert_json_response(doc: &Value, operation: &str, responses: &Value, status: &str) {
    let response = resolve(doc, &responses[status]);
    let schema = response
        .pointer("/content/application~1json/schema")
        .unwrap_or_else(|| panic!("{operation}: {status} documents a JSON body: {response}"));
    let schema = resolve(doc, schema);
    assert!(schema.is_object(), "{operation}: {status}: a schema");
}

backend_tests! {
    async fn the_document_is_openapi_3_1_and_describes_every_operation(app: TestApp) {
        let doc = document(&app).await;
        let version = doc["openapi"].as_str().expect("an openapi version");
        assert!(version.starts_with("3.1."), "OpenAPI 3.1.x, got {version}");
        assert!(doc["info"]["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(doc["info"]["version"].as_str().is_some_and(|v| !v.is_empty()));

        // Exactly the operations of §4 under /v1: none missing, none undocumented.
        let paths = doc["paths"].as_object().expect("paths");
        let documented: BTreeSet<(String, String)> = paths
            .iter()
            .filter(|(path, _)| path.starts_with("/v1"))
            .flat_map(|(path, item)| {
                item.as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(method, _)| HTTP_METHODS.contains(&method.as_str()))
                    .map(move |(method, _)| (method.clone(), path.clone()))
            })
            .collect();
        let expected: BTreeSet<(String, String)> = OPERATIONS
            .iter()
            .map(|(method, path, _, _)| ((*method).to_owned(), (*path).to_owned()))
            .collect();
        assert_eq!(documented, expected);

        for (method, path, kind, query) in OPERATIONS {
            let name = format!("{} {path}", method.to_uppercase());
            let operation = &doc["paths"][*path][*method];
            assert!(operation.is_object(), "{name} is documented");
            assert!(
                operation["summary"].as_str().or(operation["description"].as_str()).is_some_and(|s| !s.is_empty()),
                "{name} says what it does"
            );

            let parameters: Vec<&Value> = operation["parameters"]
                .as_array()
                .map(|ps| ps.iter().map(|p| resolve(&doc, p)).collect())
                .unwrap_or_default();
            let find = |name: &str, location: &str| {
                parameters.iter().find(|p| p["name"] == name && p["in"] == location).copied()
            };
            let customer = find("Customer-Id", "header").unwrap_or_else(|| panic!("{name} declares Customer-Id"));
            assert_eq!(customer["required"], true, "{name}: Customer-Id is required");
            assert!(
                resolve(&doc, &customer["schema"])["type"] == "integer",
                "{name}: Customer-Id is an integer: {customer}"
            );
            if path.contains("{jobId}") {
                let job_id = find("jobId", "path").unwrap_or_else(|| panic!("{name} declares jobId"));
                assert_eq!(job_id["required"], true);
                assert_eq!(resolve(&doc, &job_id["schema"])["format"], "uuid", "{name}: jobId is a UUID");
            } else {
                assert!(find("jobId", "path").is_none(), "{name} has no jobId");
            }
            if path.contains("{webhookId}") {
                let id = find("webhookId", "path").unwrap_or_else(|| panic!("{name} declares webhookId"));
                assert_eq!(id["required"], true);
                assert_eq!(resolve(&doc, &id["schema"])["format"], "uuid", "{name}: webhookId is a UUID");
            }
            let names_one = path.contains("{jobId}") || path.contains("{webhookId}");
            for parameter in *query {
                let declared = find(parameter, "query").unwrap_or_else(|| panic!("{name} declares ?{parameter}"));
                assert_ne!(declared["required"], true, "{name}: ?{parameter} is optional");
            }
            let query_count = parameters.iter().filter(|p| p["in"] == "query").count();
            assert_eq!(query_count, query.len(), "{name}: no undocumented query parameters");

            let responses = &operation["responses"];
            assert_problem_response(&doc, &name, responses, "400");
            assert_problem_response(&doc, &name, responses, "401");
            assert_problem_response(&doc, &name, responses, "403");
            assert_problem_response(&doc, &name, responses, "500");
            let scope = if path.starts_with("/v1/webhooks") {
                "webhooks:manage"
            } else if *kind == Kind::Read {
                "jobs:read"
            } else {
                "jobs:write"
            };
            assert_eq!(
                operation["security"],
                serde_json::json!([{"oauth2": [scope]}]),
                "{name} requires a token with {scope}"
            );
            assert!(
                resolve(&doc, &responses["401"])["headers"]["WWW-Authenticate"].is_object(),
                "{name}: 401 documents its challenge"
            );
            match kind {
                Kind::Create => {
                    assert_json_response(&doc, &name, responses, "201");
                    let created = resolve(&doc, &responses["201"]);
                    assert!(created["headers"]["Location"].is_object(), "{name}: 201 documents Location");
                    assert_problem_response(&doc, &name, responses, "422");
                    assert_problem_response(&doc, &name, responses, "413");
                    assert_problem_response(&doc, &name, responses, "415");
                    assert!(operation["requestBody"].pointer("/content/application~1json").is_some(), "{name}: JSON body");
                }
                Kind::Command => {
                    let done = resolve(&doc, &responses["204"]);
                    assert!(done.is_object(), "{name} documents 204");
                    assert!(done.get("content").is_none(), "{name}: 204 has no body");
                    assert_problem_response(&doc, &name, responses, "404");
                    assert_problem_response(&doc, &name, responses, "422");
                    assert_problem_response(&doc, &name, responses, "413");
                    assert_problem_response(&doc, &name, responses, "415");
                    assert!(operation["requestBody"].pointer("/content/application~1json").is_some(), "{name}: JSON body");
                }
                Kind::Read => {
                    assert_json_response(&doc, &name, responses, "200");
                    if names_one {
                        assert_problem_response(&doc, &name, responses, "404");
                    }
                    assert!(operation.get("requestBody").is_none(), "{name}: reads take no body");
                }
                Kind::Change => {
                    assert_json_response(&doc, &name, responses, "200");
                    for status in ["404", "413", "415", "422"] {
                        assert_problem_response(&doc, &name, responses, status);
                    }
                    assert!(operation["requestBody"].pointer("/content/application~1json").is_some(), "{name}: JSON body");
                }
                Kind::Delete => {
                    let done = resolve(&doc, &responses["204"]);
                    assert!(done.is_object() && done.get("content").is_none(), "{name}: 204 without a body");
                    assert_problem_response(&doc, &name, responses, "404");
                }
                Kind::Action => {
                    let status = if path.ends_with("/redeliver") { "202" } else { "200" };
                    assert_json_response(&doc, &name, responses, status);
                    assert_problem_response(&doc, &name, responses, "404");
                    assert!(operation.get("requestBody").is_none(), "{name}: takes no body");
                }
            }
        }

        // The job as GET returns it (SPEC §4), and the paged shape (SPEC §1).
        let job = resolve(&doc, &doc["paths"]["/v1/jobs/{jobId}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]);
        for property in [
            "id", "customerId", "typeId", "contactId", "status", "reference", "description",
            "orderNumber", "personId", "plannedDuration", "plannedStart", "resourceId", "vehicleId",
            "customFields", "cancellation", "result", "createdAt", "updatedAt", "version",
        ] {
            assert!(job["properties"].get(property).is_some(), "the job schema has {property}");
        }
        let page = resolve(&doc, &doc["paths"]["/v1/jobs"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]);
        for property in ["items", "pageNumber", "pageSize", "pageItemCount", "hasMore"] {
            assert!(page["properties"].get(property).is_some(), "the page schema has {property}: {page}");
        }
        // The security scheme: client credentials at our own token endpoint, both scopes.
        let scheme = &doc["components"]["securitySchemes"]["oauth2"];
        assert_eq!(scheme["type"], "oauth2", "{scheme}");
        let flow = &scheme["flows"]["clientCredentials"];
        assert_eq!(flow["tokenUrl"], "/auth/tokens");
        for scope in ["jobs:read", "jobs:write", "webhooks:manage"] {
            assert!(flow["scopes"][scope].is_string(), "{scope} is described: {flow}");
        }
        // The token endpoint: a form body, a token or a problem.
        let token = &doc["paths"]["/auth/tokens"]["post"];
        assert!(token["requestBody"].pointer("/content/application~1x-www-form-urlencoded").is_some(), "{token}");
        assert!(token.get("security").is_none(), "the token endpoint takes client credentials, not a token");
        assert_json_response(&doc, "POST /auth/tokens", &token["responses"], "200");
        for status in ["400", "401", "500"] {
            assert_problem_response(&doc, "POST /auth/tokens", &token["responses"], status);
        }
        let issued = resolve(&doc, &token["responses"]["200"]["content"]["application/json"]["schema"]);
        for property in ["access_token", "token_type", "expires_in", "scope"] {
            assert!(issued["properties"].get(property).is_some(), "the token response has {property}");
        }
        // The health probes are documented too.
        assert!(doc["paths"]["/health/live"]["get"].is_object());
        assert!(doc["paths"]["/health/ready"]["get"]["responses"]["503"].is_object());
    }

    async fn every_reference_resolves_and_sorting_is_enumerated(app: TestApp) {
        let doc = document(&app).await;
        fn walk(doc: &Value, value: &Value, seen: &mut usize) {
            match value {
                Value::Object(map) => {
                    if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                        *seen += 1;
                        let pointer = reference.strip_prefix('#').unwrap_or(reference);
                        assert!(doc.pointer(pointer).is_some(), "dangling reference {reference}");
                    }
                    map.values().for_each(|v| walk(doc, v, seen));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(doc, v, seen)),
                _ => {}
            }
        }
        let mut seen = 0;
        walk(&doc, &doc, &mut seen);
        assert!(seen > 10, "the document uses references ({seen})");

        let parameter = |path: &str, name: &str| -> Value {
            let parameters = doc["paths"][path]["get"]["parameters"].as_array().cloned().unwrap_or_default();
            let found = parameters.into_iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{path} {name}"));
            resolve(&doc, &found["schema"]).clone()
        };
        assert_eq!(parameter("/v1/jobs", "sortBy")["enum"], serde_json::json!(["createdAt", "updatedAt"]));
        assert_eq!(parameter("/v1/jobs", "direction")["enum"], serde_json::json!(["ascending", "descending"]));
        assert_eq!(parameter("/v1/jobs/{jobId}/statusHistory", "sortBy")["enum"], serde_json::json!(["createdAt"]));

        // What every answer has: an x-request-id header; and every /v1 request may meet an
        // unreachable store or the request timeout.
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                let responses = operation["responses"].as_object().expect("responses");
                for (status, response) in responses {
                    assert!(
                        resolve(&doc, response)["headers"]["x-request-id"].is_object(),
                        "{method} {path} {status} documents x-request-id"
                    );
                }
                if path.starts_with("/v1/") {
                    assert!(responses.contains_key("503"), "{method} {path} documents 503");
                }
            }
        }
    }

    async fn the_problem_catalogue_lists_every_type(app: TestApp) {
        let doc = document(&app).await;
        let catalogue = doc["x-problem-types"].as_object().expect("an x-problem-types object");
        for problem_type in [
            "/problems/job-not-cancellable",
            "/problems/validation",
            "/problems/job-already-cancelled",
            "/problems/job-not-found",
            "/problems/job-field-locked",
            "/problems/job-not-updatable",
            "/problems/job-not-schedulable",
            "/problems/job-not-unschedulable",
            "/problems/job-progress-not-allowed",
            "/problems/job-not-startable",
            "/problems/job-not-suspendable",
            "/problems/job-not-resumable",
            "/problems/job-result-not-allowed",
            "/problems/malformed-body",
            "/problems/invalid-job-id",
            "/problems/invalid-customer-id",
            "/problems/invalid-paging",
            "/problems/invalid-query",
            "/problems/unsupported-media-type",
            "/problems/payload-too-large",
            "/problems/not-found",
            "/problems/method-not-allowed",
            "/problems/internal",
            "/problems/unauthorized",
            "/problems/insufficient-scope",
            "/problems/customer-not-allowed",
            "/problems/invalid-client",
            "/problems/invalid-token-request",
            "/problems/unsupported-grant-type",
            "/problems/invalid-scope",
        ] {
            assert!(
                catalogue.get(problem_type).and_then(Value::as_str).is_some_and(|t| !t.is_empty()),
                "the catalogue lists {problem_type} with a title"
            );
        }
        assert!(catalogue.keys().all(|k| k.starts_with("/problems/")), "{catalogue:?}");

        // The titles the API answers with are the catalogue's.
        let problem = app
            .get(&format!("/v1/jobs/{}", Uuid::now_v7()), 1)
            .await
            .assert_problem(404, "/problems/job-not-found");
        assert_eq!(problem["title"], catalogue["/problems/job-not-found"]);
    }

    async fn the_docs_page_is_served_from_the_binary(app: TestApp) {
        let reply = app.request(Method::GET, "/docs/", None, None).await;
        reply.assert_status(200);
        assert!(reply.header("content-type").is_some_and(|t| t.starts_with("text/html")));
        assert!(reply.text.contains("swagger-ui"), "{}", reply.text);
        // Its assets come from the server itself, not a CDN.
        assert!(!reply.text.contains("https://") && !reply.text.contains("http://"), "{}", reply.text);
        for asset in ["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js", "/docs/swagger-initializer.js"] {
            app.request(Method::GET, asset, None, None).await.assert_status(200);
        }
        let initializer = app.request(Method::GET, "/docs/swagger-initializer.js", None, None).await;
        assert!(initializer.text.contains("/openapi.json"), "the page renders this document");
        // `/docs` without the slash leads to the same page.
        let reply = app.request(Method::GET, "/docs", None, None).await;
        reply.assert_status(200);
        assert!(reply.header("content-type").is_some_and(|t| t.starts_with("text/html")));
    }

    async fn router_errors_are_problems_too(app: TestApp) {
        let id = app.create_job(1).await;
        for path in ["/nope", "/v1", "/v1/job", &format!("/v1/jobs/{id}/archive"), "/v2/jobs"] {
            let problem = app.get(path, 1).await.assert_problem(404, "/problems/not-found");
            assert_eq!(problem["instance"], path);
        }
        for (method, path) in [
            (Method::DELETE, "/v1/jobs".to_owned()),
            (Method::PUT, "/v1/jobs".to_owned()),
            (Method::DELETE, format!("/v1/jobs/{id}")),
            (Method::POST, format!("/v1/jobs/{id}")),
            (Method::GET, format!("/v1/jobs/{id}/cancel")),
            (Method::POST, format!("/v1/jobs/{id}/cancel")),
            (Method::PUT, format!("/v1/jobs/{id}/events")),
            (Method::POST, "/openapi.json".to_owned()),
        ] {
            let reply = app.request(method.clone(), &path, Some(1), None).await;
            let problem = reply.assert_problem(405, "/problems/method-not-allowed");
            assert_eq!(problem["instance"], path.as_str());
            assert!(reply.header("allow").is_some_and(|a| !a.is_empty()), "{method} {path}: Allow is kept");
        }
        assert_eq!(app.job(1, id).await["status"], "new", "nothing changed");
    }
}

backend_tests! {
    /// The 201 of `POST /v1/jobs` links to every operation on the job it made, passing its
    /// id and the same `Customer-Id`, and each link names an operation that exists: what
    /// lets a generator (and the stateful fuzzing in scripts/fuzz) walk a job's lifecycle.
    async fn creating_a_job_links_to_every_operation_on_it(app: TestApp) {
        let doc = document(&app).await;
        let links = doc["paths"]["/v1/jobs"]["post"]["responses"]["201"]["links"]
            .as_object()
            .expect("the 201 has links");
        let mut expected = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            if !path.starts_with("/v1/jobs/{jobId}") {
                continue;
            }
            for (method, operation) in item.as_object().expect("a path item") {
                if HTTP_METHODS.contains(&method.as_str()) {
                    expected.push(operation["operationId"].as_str().expect("an operationId").to_owned());
                }
            }
        }
        expected.sort();
        let mut linked: Vec<String> = links.keys().cloned().collect();
        linked.sort();
        assert_eq!(linked, expected, "a link per operation on the job");
        for (name, link) in links {
            assert_eq!(link["operationId"], name.as_str());
            assert_eq!(link["parameters"]["path.jobId"], "$response.body#/id");
            assert_eq!(link["parameters"]["header.Customer-Id"], "$request.header.Customer-Id");
        }
        assert!(expected.len() >= 12, "{expected:?}");
    }
}
