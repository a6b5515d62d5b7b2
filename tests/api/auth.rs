//! Who may do what (SPEC §2): the token endpoint, every way a token is refused (401), every
//! way a valid token is not enough (403), the order of those checks, and revocation.

use crate::backend_tests;
use crate::support::{form, request_token, Backend, Reply, TestApp, TestClient};
use base64::Engine;
use jobs_service::auth::Scope;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const CUSTOMER: i64 = 61;
const OTHER_CUSTOMER: i64 = 62;

const READ: &[Scope] = &[Scope::JobsRead];
const WRITE: &[Scope] = &[Scope::JobsWrite];

/// A token request with a raw form body and optional extra header.
async fn token_request(app: &TestApp, body: &str, authorization: Option<&str>) -> Reply {
    let mut request = app
        .client
        .post(format!("{}/auth/tokens", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned());
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    app.send_as_is(request).await
}

async fn issue(app: &TestApp, client: &TestClient, scope: Option<&str>) -> Reply {
    let response = request_token(&app.client, &app.address, client, scope).await;
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.text().await.expect("a body"),
    }
}

/// A token for a new client with these scopes and customers.
async fn token(app: &TestApp, scopes: &[Scope], customers: &[i64]) -> String {
    let client = app.store.register_client(scopes, customers).await;
    let reply = issue(app, &client, None).await;
    reply.assert_status(200);
    reply.json()["access_token"]
        .as_str()
        .expect("a token")
        .to_owned()
}

/// `method path` with this bearer token (or none) and Customer-Id.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    customer: Option<i64>,
    body: Option<Value>,
) -> Reply {
    let mut request = app.build(method, path, customer, body.as_ref());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    app.send_as_is(request).await
}

/// Signs `claims` with `key`, as the server would (HS256).
fn sign(claims: &Value, key: &[u8]) -> String {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(key).expect("a key"),
    )
    .expect("signed")
}

/// Claims the server would accept from a client, `offset` seconds from now.
fn claims(client: Uuid, now_offset: i64) -> Value {
    let now = chrono::Utc::now().timestamp() + now_offset;
    json!({
        "iss": "jobs-service", "aud": "jobs-api", "sub": client.to_string(),
        "jti": Uuid::now_v7().to_string(), "iat": now, "nbf": now, "exp": now + 3600,
        "scope": "jobs:read jobs:write", "customers": [CUSTOMER],
    })
}

/// Every `/v1` operation on one job: method, path suffix, a body that would be accepted.
fn job_operations(id: Uuid) -> Vec<(Method, String, Option<Value>)> {
    let job = format!("/v1/jobs/{id}");
    vec![
        (Method::GET, job.clone(), None),
        (
            Method::PATCH,
            job.clone(),
            Some(json!({"description": "changed"})),
        ),
        (
            Method::PUT,
            format!("{job}/schedule"),
            Some(json!({"resourceId": 1, "vehicleId": 2, "plannedStart": "2026-12-01T08:00:00Z"})),
        ),
        (Method::PUT, format!("{job}/unschedule"), Some(json!({}))),
        (
            Method::PUT,
            format!("{job}/progress"),
            Some(json!({"status": "sent"})),
        ),
        (Method::PUT, format!("{job}/start"), Some(json!({}))),
        (Method::PUT, format!("{job}/suspend"), Some(json!({}))),
        (Method::PUT, format!("{job}/resume"), Some(json!({}))),
        (
            Method::PUT,
            format!("{job}/result"),
            Some(json!({"outcome": "completedOk"})),
        ),
        (
            Method::PUT,
            format!("{job}/cancel"),
            Some(json!({"reason": "not wanted"})),
        ),
        (Method::GET, format!("{job}/statusHistory"), None),
        (Method::GET, format!("{job}/events"), None),
    ]
}

/// The part of a problem that must not depend on which of several failures happened.
fn problem_shape(reply: &Reply) -> Value {
    let body = reply.json();
    json!([
        body["type"],
        body["title"],
        body["status"],
        body["detail"],
        body["error"]
    ])
}

backend_tests! {
    async fn a_client_trades_its_credentials_for_a_token_that_works(app: TestApp) {
        let client = app.store.register_client(&Scope::ALL, &[CUSTOMER]).await;
        let reply = issue(&app, &client, None).await;
        reply.assert_status(200);
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        assert_eq!(reply.header("pragma"), Some("no-cache"));
        let body = reply.json();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600, "the default lifetime is an hour");
        assert_eq!(body["scope"], "jobs:read jobs:write webhooks:manage", "every scope the client holds");
        let token = body["access_token"].as_str().expect("a token");

        // The token carries what SPEC §2 lists.
        let key = app.store.signing_key();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_audience(&["jobs-api"]);
        let decoded = jsonwebtoken::decode::<Value>(
            token,
            &jsonwebtoken::DecodingKey::from_secret(&key).expect("key"),
            &validation,
        )
        .expect("signed with the server's key");
        let claims = decoded.claims;
        assert_eq!(claims["iss"], "jobs-service");
        assert_eq!(claims["aud"], "jobs-api");
        assert_eq!(claims["sub"], client.id.to_string());
        assert_eq!(claims["customers"], json!([CUSTOMER]));
        assert_eq!(claims["scope"], "jobs:read jobs:write webhooks:manage");
        let exp = claims["exp"].as_i64().expect("exp");
        let now = chrono::Utc::now().timestamp();
        assert!((now + 3500..=now + 3700).contains(&exp), "expires in an hour: {exp} vs {now}");

        // It creates, cancels and reads a job, and the audit trail names the client.
        let created = call(&app, Method::POST, "/v1/jobs", Some(token), Some(CUSTOMER), Some(json!({"typeId": 1, "contactId": 2}))).await;
        created.assert_status(201);
        let id = created.json()["id"].as_str().expect("id").to_owned();
        call(&app, Method::PUT, &format!("/v1/jobs/{id}/cancel"), Some(token), Some(CUSTOMER), Some(json!({"reason": "duplicate booking"})))
            .await
            .assert_status(204);
        let job = call(&app, Method::GET, &format!("/v1/jobs/{id}"), Some(token), Some(CUSTOMER), None).await;
        job.assert_status(200);
        assert_eq!(job.json()["cancellation"]["cancelledBy"], client.id.to_string());
        let events = call(&app, Method::GET, &format!("/v1/jobs/{id}/events"), Some(token), Some(CUSTOMER), None).await;
        let events = events.json()["items"].as_array().cloned().expect("events");
        let cancelled = events.last().expect("an event");
        assert_eq!(cancelled["eventType"], "JobCancelled");
        assert_eq!(cancelled["payload"]["reason"], "duplicate booking");
        assert_eq!(cancelled["metadata"]["clientId"], client.id.to_string());
        assert_eq!(cancelled["metadata"]["tokenId"], claims["jti"]);
    }

    async fn credentials_may_come_as_http_basic_and_scopes_may_be_narrowed(app: TestApp) {
        let client = app.store.register_client(&Scope::ALL, &[CUSTOMER]).await;
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", client.id, client.secret));
        let reply = token_request(
            &app,
            &form(&[("grant_type", "client_credentials"), ("scope", "jobs:read")]),
            Some(&format!("Basic {basic}")),
        )
        .await;
        reply.assert_status(200);
        assert_eq!(reply.json()["scope"], "jobs:read", "only what was asked for");
        let token = reply.json()["access_token"].as_str().expect("token").to_owned();
        call(&app, Method::GET, "/v1/jobs", Some(&token), Some(CUSTOMER), None).await.assert_status(200);
        let refused = call(&app, Method::POST, "/v1/jobs", Some(&token), Some(CUSTOMER), Some(json!({"typeId": 1, "contactId": 2}))).await;
        refused.assert_problem(403, "/problems/insufficient-scope");

        // With Basic, the body may name the same client again (RFC 6749 §2.3.1).
        let reply = token_request(
            &app,
            &form(&[("grant_type", "client_credentials"), ("client_id", &client.id.to_string())]),
            Some(&format!("Basic {basic}")),
        )
        .await;
        reply.assert_status(200);

        // An empty scope parameter asks for everything, like none.
        let reply = issue(&app, &client, Some("")).await;
        reply.assert_status(200);
        assert_eq!(reply.json()["scope"], "jobs:read jobs:write webhooks:manage");
        let reply = issue(&app, &client, Some("jobs:write jobs:read")).await;
        assert_eq!(reply.json()["scope"], "jobs:read jobs:write");
    }

    async fn unknown_client_wrong_secret_and_revoked_client_get_one_and_the_same_401(app: TestApp) {
        let client = app.store.register_client(&Scope::ALL, &[CUSTOMER]).await;
        let revoked = app.store.register_client(&Scope::ALL, &[CUSTOMER]).await;
        let registry = app.store.open().await.clients();
        jobs_service::auth::clients::revoke_client(registry.as_ref(), revoked.id, chrono::Utc::now())
            .await
            .expect("revoked");

        let attempts = [
            ("unknown client", TestClient { id: Uuid::now_v7(), secret: client.secret.clone() }),
            ("wrong secret", TestClient { id: client.id, secret: "0".repeat(64) }),
            ("revoked client", TestClient { id: revoked.id, secret: revoked.secret.clone() }),
        ];
        let mut shapes = Vec::new();
        for (case, attempt) in &attempts {
            let reply = issue(&app, attempt, None).await;
            let problem = reply.assert_problem(401, "/problems/invalid-client");
            assert_eq!(problem["error"], "invalid_client", "{case}");
            assert_eq!(reply.header("www-authenticate"), Some("Basic realm=\"jobs-service\""), "{case}");
            assert_eq!(reply.header("cache-control"), Some("no-store"), "{case}");
            shapes.push(problem_shape(&reply));
        }
        // Not a UUID, no secret at all, another auth scheme: the same answer.
        let reply = token_request(&app, &form(&[("grant_type", "client_credentials"), ("client_id", "nobody"), ("client_secret", "x")]), None).await;
        shapes.push(problem_shape(&reply));
        let reply = token_request(&app, &form(&[("grant_type", "client_credentials"), ("client_id", &client.id.to_string())]), None).await;
        shapes.push(problem_shape(&reply));
        let reply = token_request(&app, &form(&[("grant_type", "client_credentials")]), Some("Bearer something")).await;
        shapes.push(problem_shape(&reply));
        let reply = token_request(&app, "grant_type=client_credentials", Some("Basic %%%")).await;
        shapes.push(problem_shape(&reply));
        assert!(shapes.windows(2).all(|pair| pair[0] == pair[1]), "indistinguishable: {shapes:#?}");

        // The right secret still works: the failures changed nothing.
        issue(&app, &client, None).await.assert_status(200);
    }

    async fn malformed_token_requests_are_400_with_the_oauth_error(app: TestApp) {
        let client = app.store.register_client(&Scope::ALL, &[CUSTOMER]).await;
        let id = client.id.to_string();
        let good = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = vec![("grant_type", "client_credentials"), ("client_id", id.as_str()), ("client_secret", client.secret.as_str())];
            pairs.extend_from_slice(extra);
            pairs
        };
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", client.id, client.secret));
        let cases: Vec<(&str, Reply, &str, &str)> = vec![
            (
                "a JSON body",
                app.send_as_is(app.client.post(format!("{}/auth/tokens", app.address)).header("content-type", "application/json")
                    .body(json!({"grant_type": "client_credentials", "client_id": id, "client_secret": client.secret}).to_string())).await,
                "/problems/invalid-token-request", "invalid_request",
            ),
            ("no grant type", token_request(&app, &form(&good(&[])[1..]), None).await, "/problems/invalid-token-request", "invalid_request"),
            ("a repeated parameter", token_request(&app, &format!("{}&grant_type=client_credentials", form(&good(&[]))), None).await, "/problems/invalid-token-request", "invalid_request"),
            ("credentials sent two ways", token_request(&app, &form(&good(&[])), Some(&format!("Basic {basic}"))).await, "/problems/invalid-token-request", "invalid_request"),
            ("another client_id in the body than in Basic", token_request(&app, &form(&[("grant_type", "client_credentials"), ("client_id", &Uuid::now_v7().to_string())]), Some(&format!("Basic {basic}"))).await, "/problems/invalid-token-request", "invalid_request"),
            ("another grant type", token_request(&app, &form(&[("grant_type", "password"), ("client_id", &id), ("client_secret", &client.secret)]), None).await, "/problems/unsupported-grant-type", "unsupported_grant_type"),
        ];
        for (case, reply, problem_type, code) in cases {
            assert_eq!(reply.status, 400, "{case}: {}", reply.text);
            let problem = reply.assert_problem(400, problem_type);
            assert_eq!(problem["error"], code, "{case}");
        }
    }

    async fn a_scope_the_client_does_not_hold_is_invalid_scope_after_authentication(app: TestApp) {
        let reader = app.store.register_client(READ, &[CUSTOMER]).await;
        for scope in ["jobs:write", "jobs:read jobs:write", "jobs:admin", "JOBS:READ"] {
            let reply = issue(&app, &reader, Some(scope)).await;
            let problem = reply.assert_problem(400, "/problems/invalid-scope");
            assert_eq!(problem["error"], "invalid_scope", "{scope}");
        }
        // Without the right secret, the scope is not even looked at: nothing about the
        // client's scopes leaks to someone who cannot authenticate as it.
        let impostor = TestClient { id: reader.id, secret: "f".repeat(64) };
        issue(&app, &impostor, Some("jobs:write")).await.assert_problem(401, "/problems/invalid-client");
    }

    async fn every_kind_of_unacceptable_token_is_401_before_anything_else(app: TestApp) {
        let client = app.store.register_client(&Scope::ALL, &[CUSTOMER]).await;
        let key = app.store.signing_key();
        let now = chrono::Utc::now().timestamp();
        let with = |changes: Value| {
            let mut claims = claims(client.id, 0);
            for (name, value) in changes.as_object().expect("an object") {
                claims[name] = value.clone();
            }
            claims
        };
        let encode = |part: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(part.to_string());
        let unsigned = format!("{}.{}.", encode(&json!({"alg": "none", "typ": "JWT"})), encode(&claims(client.id, 0)));
        let mut tampered = sign(&claims(client.id, 0), &key);
        tampered.push('A');
        let cases: Vec<(&str, String)> = vec![
            ("garbage", "not-a-jwt".to_owned()),
            ("another key", sign(&claims(client.id, 0), b"a key that is not the server key!")),
            ("the server key with another algorithm", jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
                &claims(client.id, 0),
                &jsonwebtoken::EncodingKey::from_secret(&key).expect("a key"),
            ).expect("signed")),
            ("alg none", unsigned),
            ("a tampered signature", tampered),
            ("expired", sign(&with(json!({"exp": now - 3600, "iat": now - 7200, "nbf": now - 7200})), &key)),
            ("not yet valid", sign(&with(json!({"nbf": now + 3600})), &key)),
            ("another audience", sign(&with(json!({"aud": "billing-api"})), &key)),
            ("another issuer", sign(&with(json!({"iss": "someone-else"})), &key)),
            ("no expiry", {
                let mut claims = claims(client.id, 0);
                claims.as_object_mut().expect("object").remove("exp");
                sign(&claims, &key)
            }),
            ("an unregistered client", sign(&claims(Uuid::now_v7(), 0), &key)),
        ];
        let id = app.create_job(CUSTOMER).await;
        for (case, token) in &cases {
            for (method, path, body) in job_operations(id) {
                // No Customer-Id and a malformed body: authentication is checked first.
                let reply = call(&app, method.clone(), &path, Some(token), None, body.map(|_| json!([]))).await;
                reply.assert_problem(401, "/problems/unauthorized");
                let challenge = reply.header("www-authenticate").unwrap_or_default();
                assert!(challenge.starts_with("Bearer realm=\"jobs-service\""), "{case} {method} {path}: {challenge}");
                assert!(challenge.contains("error=\"invalid_token\""), "{case}: {challenge}");
            }
        }
        let expired = &cases.iter().find(|(case, _)| *case == "expired").expect("the expired case").1;
        let expired = call(&app, Method::GET, "/v1/jobs", Some(expired), Some(CUSTOMER), None).await;
        assert!(expired.json()["detail"].as_str().is_some_and(|d| d.contains("expired")), "{}", expired.text);

        // No token at all, or not a bearer token.
        for authorization in [None, Some("Basic dXNlcjpwYXNz"), Some("Bearer"), Some("Bearer   ")] {
            let mut request = app.client.get(format!("{}/v1/jobs", app.address)).header("Customer-Id", CUSTOMER.to_string());
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            let reply = app.send_as_is(request).await;
            reply.assert_problem(401, "/problems/unauthorized");
            let challenge = reply.header("www-authenticate").expect("a challenge");
            assert!(challenge.starts_with("Bearer"), "{challenge}");
            if authorization.is_some_and(|value| value.starts_with("Bearer")) {
                assert!(challenge.contains("error=\"invalid_request\""), "a bearer header without a token: {challenge}");
            } else {
                assert!(!challenge.contains("error="), "no error code without a bearer token (RFC 6750 §3.1): {challenge}");
            }
        }
        // A well-formed token of a real client is accepted: the cases above failed for their
        // one defect.
        call(&app, Method::GET, &format!("/v1/jobs/{id}"), Some(&sign(&claims(client.id, 0), &key)), Some(CUSTOMER), None)
            .await
            .assert_status(200);
        let job = app.job(CUSTOMER, id).await;
        assert_eq!(job["version"], 1, "none of the refused requests changed the job");
    }

    async fn a_valid_token_without_the_scope_or_the_customer_is_403(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        let reader = token(&app, READ, &[CUSTOMER]).await;
        let writer = token(&app, WRITE, &[CUSTOMER]).await;
        for (method, path, body) in job_operations(id) {
            let is_read = method == Method::GET;
            let (lacking, needed) = if is_read { (&writer, "jobs:read") } else { (&reader, "jobs:write") };
            // A body of the wrong shape: the scope is checked before it.
            let reply = call(&app, method.clone(), &path, Some(lacking), Some(CUSTOMER), body.map(|_| json!([]))).await;
            reply.assert_problem(403, "/problems/insufficient-scope");
            assert_eq!(
                reply.header("www-authenticate"),
                Some(&*format!("Bearer realm=\"jobs-service\", error=\"insufficient_scope\", scope=\"{needed}\"")),
                "{method} {path}"
            );
            // Customer-Id is checked before the scope.
            call(&app, method.clone(), &path, Some(lacking), None, None)
                .await
                .assert_problem(400, "/problems/invalid-customer-id");
        }
        let list = call(&app, Method::GET, "/v1/jobs", Some(&writer), Some(CUSTOMER), None).await;
        list.assert_problem(403, "/problems/insufficient-scope");
        let create = call(&app, Method::POST, "/v1/jobs", Some(&reader), Some(CUSTOMER), Some(json!({"typeId": 1, "contactId": 2}))).await;
        create.assert_problem(403, "/problems/insufficient-scope");

        // Both scopes, but another customer.
        let both = token(&app, &Scope::ALL, &[CUSTOMER]).await;
        for (method, path, body) in job_operations(id) {
            call(&app, method, &path, Some(&both), Some(OTHER_CUSTOMER), body)
                .await
                .assert_problem(403, "/problems/customer-not-allowed");
        }
        // A client may act for several customers.
        let several = token(&app, &Scope::ALL, &[OTHER_CUSTOMER, CUSTOMER]).await;
        call(&app, Method::GET, &format!("/v1/jobs/{id}"), Some(&several), Some(CUSTOMER), None).await.assert_status(200);
        call(&app, Method::GET, "/v1/jobs", Some(&several), Some(OTHER_CUSTOMER), None).await.assert_status(200);
        assert_eq!(app.job(CUSTOMER, id).await["version"], 1, "no refused request changed the job");
    }

    async fn a_revoked_clients_token_stops_working_within_a_second_on_every_server(app: TestApp) {
        let client = app.store.register_client(&Scope::ALL, &[CUSTOMER]).await;
        let reply = issue(&app, &client, None).await;
        let token = reply.json()["access_token"].as_str().expect("token").to_owned();
        // Both servers have just seen the client active (and may trust that for a while).
        let other = app.another_instance().await;
        for server in [&app, &other] {
            call(server, Method::GET, "/v1/jobs", Some(&token), Some(CUSTOMER), None).await.assert_status(200);
        }

        let registry = app.store.open().await.clients();
        jobs_service::auth::clients::revoke_client(registry.as_ref(), client.id, chrono::Utc::now())
            .await
            .expect("revoked");
        // No new token, at once.
        issue(&app, &client, None).await.assert_problem(401, "/problems/invalid-client");
        // What a server remembers of the registry is at most half a second old: from then
        // on, on every server, the token is refused.
        tokio::time::sleep(jobs_service::auth::recent::FRESH_FOR + std::time::Duration::from_millis(300)).await;
        for server in [&app, &other] {
            let reply = call(server, Method::GET, "/v1/jobs", Some(&token), Some(CUSTOMER), None).await;
            let problem = reply.assert_problem(401, "/problems/unauthorized");
            assert!(problem["detail"].as_str().is_some_and(|d| d.contains("revoked")), "{problem}");
            call(server, Method::POST, "/v1/jobs", Some(&token), Some(CUSTOMER), Some(json!({"typeId": 1, "contactId": 2})))
                .await
                .assert_problem(401, "/problems/unauthorized");
        }
    }

    /// A client of customer A tries every `/v1` operation on a job of customer B, with A's
    /// own Customer-Id (404, exactly as for a job that does not exist) and with B's (403).
    /// Never a 2xx, never a trace of B's job in a body, and B's job is unchanged.
    async fn a_client_of_one_customer_can_neither_see_nor_touch_another_customers_job(app: TestApp) {
        let secret_reference = "B-ONLY-REF-7731";
        let secret_text = "gate code 4471, for customer B's eyes only";
        let b_job = app
            .create_job_with(OTHER_CUSTOMER, json!({"typeId": 1, "contactId": 2, "reference": secret_reference, "description": secret_text}))
            .await;
        app.bring_to(OTHER_CUSTOMER, b_job, "scheduled").await;
        let before = app.job(OTHER_CUSTOMER, b_job).await;
        let events_before = app.events(OTHER_CUSTOMER, b_job).await;

        let a_token = token(&app, &Scope::ALL, &[CUSTOMER]).await;
        let missing = Uuid::now_v7();
        for (method, path, body) in job_operations(b_job) {
            let with_own_id = call(&app, method.clone(), &path, Some(&a_token), Some(CUSTOMER), body.clone()).await;
            with_own_id.assert_problem(404, "/problems/job-not-found");
            // Exactly what a job that does not exist answers.
            let absent_path = path.replace(&b_job.to_string(), &missing.to_string());
            let absent = call(&app, method.clone(), &absent_path, Some(&a_token), Some(CUSTOMER), body.clone()).await;
            assert_eq!(problem_shape(&with_own_id), problem_shape(&absent), "{method} {path}");

            let with_b_id = call(&app, method.clone(), &path, Some(&a_token), Some(OTHER_CUSTOMER), body).await;
            with_b_id.assert_problem(403, "/problems/customer-not-allowed");
            for reply in [&with_own_id, &with_b_id] {
                assert!(!(200..300).contains(&reply.status), "{method} {path}: {}", reply.status);
                assert!(!reply.text.contains(secret_reference) && !reply.text.contains(secret_text), "{method} {path} leaked: {}", reply.text);
            }
        }
        // Lists and creation: A's list never holds B's job; B's list and B's jobs are closed.
        let own_list = call(&app, Method::GET, &format!("/v1/jobs?reference={secret_reference}"), Some(&a_token), Some(CUSTOMER), None).await;
        own_list.assert_status(200);
        assert_eq!(own_list.json()["items"], json!([]));
        let all_of_a = call(&app, Method::GET, "/v1/jobs", Some(&a_token), Some(CUSTOMER), None).await;
        assert!(!all_of_a.text.contains(&b_job.to_string()), "{}", all_of_a.text);
        call(&app, Method::GET, "/v1/jobs", Some(&a_token), Some(OTHER_CUSTOMER), None)
            .await
            .assert_problem(403, "/problems/customer-not-allowed");
        call(&app, Method::POST, "/v1/jobs", Some(&a_token), Some(OTHER_CUSTOMER), Some(json!({"typeId": 1, "contactId": 2})))
            .await
            .assert_problem(403, "/problems/customer-not-allowed");

        assert_eq!(app.job(OTHER_CUSTOMER, b_job).await, before, "B's job is unchanged");
        assert_eq!(app.events(OTHER_CUSTOMER, b_job).await, events_before, "and has no new event");
    }
}

/// The token endpoint, the document and the probes need no token. A method a `/v1` route
/// does not have is 405 whoever asks: there is nothing to protect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probes_and_the_document_need_no_token() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for path in ["/health/live", "/openapi.json", "/metrics"] {
        app.send_as_is(app.client.get(format!("{}{path}", app.address)))
            .await
            .assert_status(200);
    }
    let reply = app
        .send_as_is(app.client.delete(format!("{}/v1/jobs", app.address)))
        .await;
    reply.assert_problem(405, "/problems/method-not-allowed");
}

backend_tests! {
    /// A token signed with the right key (a leaked key, say) that claims more than its
    /// client's registration gets only what the registration grants (review A2).
    async fn a_token_gets_no_more_than_its_clients_registration(app: TestApp) {
        let client = app.store.register_client(READ, &[CUSTOMER]).await;
        let mut boasting = claims(client.id, 0);
        boasting["customers"] = json!([CUSTOMER, OTHER_CUSTOMER]);
        let token = sign(&boasting, &app.store.signing_key());

        let owned = app.create_job(CUSTOMER).await;
        let path = format!("/v1/jobs/{owned}");
        call(&app, Method::GET, &path, Some(&token), Some(CUSTOMER), None).await.assert_status(200);
        call(&app, Method::GET, "/v1/jobs", Some(&token), Some(OTHER_CUSTOMER), None)
            .await
            .assert_problem(403, "/problems/customer-not-allowed");
        let cancel = json!({"reason": "claimed a scope it was never given"});
        call(&app, Method::PUT, &format!("{path}/cancel"), Some(&token), Some(CUSTOMER), Some(cancel))
            .await
            .assert_problem(403, "/problems/insufficient-scope");
        assert_eq!(app.job(CUSTOMER, owned).await["status"], "new", "nothing was done");
    }

    /// Narrowing a client's registration narrows the tokens it already holds, within the
    /// half second a server trusts what the registry said.
    async fn narrowing_a_client_narrows_its_live_tokens(app: TestApp) {
        let client = app.store.register_client(&Scope::ALL, &[CUSTOMER, OTHER_CUSTOMER]).await;
        let reply = issue(&app, &client, None).await;
        let token = reply.json()["access_token"].as_str().expect("a token").to_owned();
        let create = json!({"typeId": 1, "contactId": 2});
        call(&app, Method::POST, "/v1/jobs", Some(&token), Some(OTHER_CUSTOMER), Some(create.clone()))
            .await
            .assert_status(201);

        app.store
            .execute_sql(&format!(
                "UPDATE auth_clients SET scopes = '[\"jobs:read\"]', customer_ids = '[{CUSTOMER}]' \
                 WHERE client_id = '{}'",
                client.id
            ))
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;

        call(&app, Method::GET, "/v1/jobs", Some(&token), Some(OTHER_CUSTOMER), None)
            .await
            .assert_problem(403, "/problems/customer-not-allowed");
        call(&app, Method::POST, "/v1/jobs", Some(&token), Some(CUSTOMER), Some(create))
            .await
            .assert_problem(403, "/problems/insufficient-scope");
        call(&app, Method::GET, "/v1/jobs", Some(&token), Some(CUSTOMER), None).await.assert_status(200);
    }
}

/// A token made by hand: `header` and `payload` as written (so they can say what
/// `jsonwebtoken::encode` never would), signed with `key` by HS256.
fn hand_made(header: &str, payload: &str, key: &[u8]) -> String {
    let encode = |part: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(part);
    let message = format!("{}.{}", encode(header), encode(payload));
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(key).expect("a key"),
        jsonwebtoken::Algorithm::HS256,
    )
    .expect("signed");
    format!("{message}.{signature}")
}

backend_tests! {
    /// JWT header and claim tricks on tokens signed with the right key (review, test 15):
    /// the ones that change what a token means are 401 (a `kid` must name one of the
    /// server's keys), the header members we do not use are ignored, and none is ever a
    /// 5xx.
    async fn jwt_header_and_claim_tricks_are_refused_or_ignored(app: TestApp) {
        let client = app.store.register_client(&Scope::ALL, &[CUSTOMER]).await;
        let key = app.store.signing_key();
        let good = claims(client.id, 0);
        let payload = good.to_string();
        let refused: Vec<(&str, String)> = vec![
            ("lower-case alg", hand_made(r#"{"alg":"hs256","typ":"JWT"}"#, &payload, &key)),
            ("a claim given twice", {
                let twice = payload.replacen('{', &format!(r#"{{"customers":[{OTHER_CUSTOMER}],"#), 1);
                hand_made(r#"{"alg":"HS256","typ":"JWT"}"#, &twice, &key)
            }),
            ("customers as a string", {
                let mut claims = good.clone();
                claims["customers"] = json!(CUSTOMER.to_string());
                hand_made(r#"{"alg":"HS256","typ":"JWT"}"#, &claims.to_string(), &key)
            }),
            ("exp as a string", {
                let mut claims = good.clone();
                claims["exp"] = json!(claims["exp"].to_string());
                hand_made(r#"{"alg":"HS256","typ":"JWT"}"#, &claims.to_string(), &key)
            }),
            ("a critical extension", hand_made(r#"{"alg":"HS256","typ":"JWT","crit":["exp"]}"#, &payload, &key)),
            ("a key id the server does not have", hand_made(r#"{"alg":"HS256","typ":"JWT","kid":"../../etc/passwd"}"#, &payload, &key)),

        ];
        for (case, token) in &refused {
            let reply = call(&app, Method::GET, "/v1/jobs", Some(token), Some(CUSTOMER), None).await;
            assert_eq!(reply.status, 401, "{case}: {}", excerpt_of(&reply.text));
            reply.assert_problem(401, "/problems/unauthorized");
        }
        // A token far longer than any real one is refused before it is read.
        let huge = "x".repeat(300_000);
        call(&app, Method::GET, "/v1/jobs", Some(&huge), Some(CUSTOMER), None)
            .await
            .assert_problem(431, "/problems/headers-too-large");
        let ignored = [
            r#"{"alg":"HS256","typ":"JWT","jku":"https://attacker.example/keys.json"}"#,
            r#"{"alg":"HS256","typ":"JWT","x5u":"https://attacker.example/cert.pem"}"#,
            r#"{"alg":"HS256","typ":"JWT","jwk":{"kty":"oct","k":"AAAA"}}"#,
        ];
        for header in ignored {
            let token = hand_made(header, &payload, &key);
            let reply = call(&app, Method::GET, "/v1/jobs", Some(&token), Some(CUSTOMER), None).await;
            assert_eq!(reply.status, 200, "{header}: {}", excerpt_of(&reply.text));
        }
    }
}

fn excerpt_of(text: &str) -> String {
    text.chars().take(300).collect()
}
