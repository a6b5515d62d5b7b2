//! Idempotency keys: a create or command sent again with the same `Idempotency-Key` is
//! answered again — same status, headers and body, marked `Idempotent-Replayed: true` — and
//! changes nothing more; a key belongs to one request of one client for one customer; a
//! request that stores no answer leaves its key free; a key whose request is running answers
//! 409 until its claim runs out; keys outlive a server, are shared by servers on one
//! database, and are purged after their retention.

use crate::backend_tests;
use crate::support::{
    created_event, succeeded, token_for_customer, Backend, Reply, TestApp, TestStore,
};
use jobs_service::http::idempotency::fingerprint;
use projections::idempotency::{ClaimOutcome, KeyedRequest, StoredAnswer};
use projections::store::{AppendError, Commit};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

const CUSTOMER: i64 = 13;

/// A request of the default client of `customer` with `Idempotency-Key: key`.
async fn keyed(app: &TestApp, method: Method, path: &str, key: &str, body: &Value) -> Reply {
    app.keyed(method, path, CUSTOMER, key, body).await
}

async fn create(app: &TestApp, key: &str, body: &Value) -> Reply {
    keyed(app, Method::POST, "/v1/jobs", key, body).await
}

/// A keyed create sent to `server` with `token` (servers each have their own default client).
async fn create_with(server: &TestApp, token: &str, key: &str, body: &Value) -> Reply {
    let request = server
        .build(Method::POST, "/v1/jobs", Some(CUSTOMER), Some(body))
        .header("Idempotency-Key", key)
        .bearer_auth(token);
    server.send(request).await
}

fn new_job() -> Value {
    json!({"typeId": 1, "contactId": 2, "reference": "R-1"})
}

/// The customer's jobs, by id.
async fn job_ids(app: &TestApp) -> Vec<String> {
    let page = app.get("/v1/jobs?pageSize=100", CUSTOMER).await;
    page.assert_status(200);
    page.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|job| job["id"].as_str().expect("an id").to_owned())
        .collect()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Asserts that `replay` repeats `first`: status, the headers that go with the answer, body.
#[track_caller]
fn assert_replays(first: &Reply, replay: &Reply) {
    assert_eq!(
        first.header("idempotent-replayed"),
        None,
        "a first answer is not a replay"
    );
    assert_eq!(
        replay.header("idempotent-replayed"),
        Some("true"),
        "{}",
        replay.text
    );
    assert_eq!(replay.status, first.status);
    for header in ["location", "etag", "content-type"] {
        assert_eq!(replay.header(header), first.header(header), "{header}");
    }
    assert_eq!(replay.text, first.text);
}

backend_tests! {
    /// The race a claim's lease opens: a write still running when its claim runs out and
    /// another attempt takes the key over records nothing, and cannot free the key.
    async fn a_write_whose_claim_was_taken_over_records_nothing(store: TestStore) {
        let opened = store.open().await;
        let (keys, commands) = (opened.idempotency_keys(), opened.commands());
        let request = KeyedRequest {
            customer_id: CUSTOMER, client_id: "client".into(), key: "slow".into(), fingerprint: "f".into(),
        };
        let lease = Duration::from_secs(15);
        // Its claim runs out (its server is slow, or its clock was); a retry takes over.
        let (slow, retry) = store.claim_taken_over(&request, lease).await;
        assert_ne!(slow.token, retry.token);

        let answer = StoredAnswer { status: 201, headers: vec![], body: Some("{}".into()) };
        let job = Uuid::now_v7().to_string();
        let late = commands.append(Commit {
            job_id: job.clone(), events: vec![created_event(&job, CUSTOMER)], snapshot: None,
            answer: Some((slow.clone(), answer.clone())), held: None,
        }).await;
        assert!(matches!(late, Err(AppendError::ClaimLost)), "{late:?}");
        assert_eq!(opened.log().event_count().await.unwrap(), 0, "nothing recorded");
        keys.release(&slow).await.unwrap();
        let busy = keys.claim(&request, lease).await.unwrap();
        assert!(busy == ClaimOutcome::InFlight, "the retry still holds it: {busy:?}");

        commands.append(Commit {
            job_id: job.clone(), events: vec![created_event(&job, CUSTOMER)], snapshot: None,
            answer: Some((retry, answer.clone())), held: None,
        }).await.unwrap();
        let replay = keys.claim(&request, lease).await.unwrap();
        assert_eq!(replay, ClaimOutcome::Answered(answer));
        assert_eq!(opened.log().event_count().await.unwrap(), 1);
    }

    async fn a_retried_create_makes_one_job_and_gets_the_same_answer(app: TestApp) {
        let first = create(&app, "create-1", &new_job()).await;
        first.assert_status(201);
        // The same request, however its JSON is spaced and ordered.
        let reordered = app
            .build(Method::POST, "/v1/jobs", Some(CUSTOMER), None)
            .header("content-type", "application/json")
            .header("Idempotency-Key", "\"create-1\"") // the draft's quoted form
            .body("{ \"reference\": \"R-1\",\n  \"contactId\": 2, \"typeId\": 1 }");
        for replay in [create(&app, "create-1", &new_job()).await, app.send(reordered).await] {
            assert_replays(&first, &replay);
        }
        assert_eq!(job_ids(&app).await, vec![first.json()["id"].as_str().unwrap().to_owned()]);
    }

    async fn a_key_sent_with_another_request_is_refused_and_changes_nothing(app: TestApp) {
        let first = create(&app, "shared", &new_job()).await;
        first.assert_status(201);
        let id = first.json()["id"].as_str().unwrap().to_owned();
        let other_body = create(&app, "shared", &json!({"typeId": 1, "contactId": 3})).await;
        other_body.assert_problem(422, "/problems/idempotency-key-reused");
        let other_path = keyed(&app, Method::PATCH, &format!("/v1/jobs/{id}"), "shared", &new_job()).await;
        other_path.assert_problem(422, "/problems/idempotency-key-reused");
        assert_eq!(job_ids(&app).await, vec![id.clone()]);
        assert_eq!(app.events(CUSTOMER, id.parse().unwrap()).await.len(), 1);
        // The key still answers its own request.
        assert_replays(&first, &create(&app, "shared", &new_job()).await);
    }

    async fn a_key_is_the_clients_own_for_one_customer(app: TestApp) {
        let first = create(&app, "mine", &new_job()).await;
        first.assert_status(201);
        // Another client of the same customer, same key and request: its own job.
        let (_, token) = token_for_customer(&app.store, &app.address, CUSTOMER).await;
        let request = app
            .build(Method::POST, "/v1/jobs", Some(CUSTOMER), Some(&new_job()))
            .header("Idempotency-Key", "mine")
            .bearer_auth(token);
        let other_client = app.send(request).await;
        other_client.assert_status(201);
        assert_eq!(other_client.header("idempotent-replayed"), None);
        assert_ne!(other_client.json()["id"], first.json()["id"]);
        // Another customer, same key and request: its own job too.
        let request = app
            .build(Method::POST, "/v1/jobs", Some(CUSTOMER + 1), Some(&new_job()))
            .header("Idempotency-Key", "mine");
        let other_customer = app.send(request).await;
        other_customer.assert_status(201);
        assert_eq!(other_customer.header("idempotent-replayed"), None);
        assert_eq!(job_ids(&app).await.len(), 2);
    }

    async fn a_retried_command_is_recorded_once_whatever_the_job_became(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        let path = format!("/v1/jobs/{id}");
        let rename = json!({"reference": "first"});
        let first = keyed(&app, Method::PATCH, &path, "rename-1", &rename).await;
        first.assert_status(204);
        assert_eq!(first.header("etag"), Some("\"2\""));
        app.patch(&path, CUSTOMER, json!({"reference": "second"})).await.assert_status(204);

        // The retry is answered as the first request was; it does not undo "second",
        // and its stale If-Match does not matter: the request was already answered.
        let retry = app
            .build(Method::PATCH, &path, Some(CUSTOMER), Some(&rename))
            .header("Idempotency-Key", "rename-1")
            .header("If-Match", "\"1\"");
        assert_replays(&first, &app.send(retry).await);
        assert_eq!(app.job(CUSTOMER, id).await["reference"], "second");
        assert_eq!(app.events(CUSTOMER, id).await.len(), 3);

        // A command that changes nothing keeps its answer too.
        let cancel = json!({"reason": "customer called"});
        let cancelled = keyed(&app, Method::PUT, &format!("{path}/cancel"), "cancel-1", &cancel).await;
        cancelled.assert_status(204);
        let again = keyed(&app, Method::PUT, &format!("{path}/cancel"), "cancel-2", &cancel).await;
        again.assert_status(204); // a repeated identical cancel: no new event
        assert_replays(&again, &keyed(&app, Method::PUT, &format!("{path}/cancel"), "cancel-2", &cancel).await);
        assert_eq!(app.events(CUSTOMER, id).await.len(), 4);
    }

    async fn a_request_that_stores_no_answer_leaves_its_key_free(app: TestApp) {
        // Refused by a field rule: the corrected request may use the same key.
        let invalid = create(&app, "fix-me", &json!({"typeId": 0, "contactId": 2})).await;
        invalid.assert_problem(422, "/problems/validation");
        let corrected = create(&app, "fix-me", &new_job()).await;
        corrected.assert_status(201);
        assert_eq!(corrected.header("idempotent-replayed"), None);

        // Refused by a lifecycle rule, then by a missing job, then by a stale If-Match.
        let id = app.create_job(CUSTOMER).await;
        app.bring_to(CUSTOMER, id, "started").await;
        let cancel = format!("/v1/jobs/{id}/cancel");
        keyed(&app, Method::PUT, &cancel, "k", &json!({"reason": "late"})).await
            .assert_problem(422, "/problems/job-not-cancellable");
        let missing = format!("/v1/jobs/{}/cancel", Uuid::now_v7());
        keyed(&app, Method::PUT, &missing, "k", &json!({"reason": "late"})).await
            .assert_problem(404, "/problems/job-not-found");
        let stale = app
            .build(Method::PUT, &format!("/v1/jobs/{id}/suspend"), Some(CUSTOMER), Some(&json!({})))
            .header("Idempotency-Key", "k")
            .header("If-Match", "\"1\"");
        app.send(stale).await.assert_problem(412, "/problems/precondition-failed");
        let suspended = keyed(&app, Method::PUT, &format!("/v1/jobs/{id}/suspend"), "k", &json!({})).await;
        suspended.assert_status(204);
        assert_eq!(app.job(CUSTOMER, id).await["status"], "suspended");
    }

    async fn malformed_keys_are_refused_before_anything_is_recorded(app: TestApp) {
        let long = "k".repeat(256);
        for key in ["", "   ", "\"\"", "\"a\"b\"", long.as_str()] {
            create(&app, key, &new_job()).await
                .assert_problem(400, "/problems/invalid-idempotency-key");
        }
        let non_ascii = app
            .build(Method::POST, "/v1/jobs", Some(CUSTOMER), Some(&new_job()))
            .header("Idempotency-Key", reqwest::header::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        app.send(non_ascii).await.assert_problem(400, "/problems/invalid-idempotency-key");
        let twice = app
            .build(Method::POST, "/v1/jobs", Some(CUSTOMER), Some(&new_job()))
            .header("Idempotency-Key", "a")
            .header("Idempotency-Key", "b");
        app.send(twice).await.assert_problem(400, "/problems/invalid-idempotency-key");
        assert!(job_ids(&app).await.is_empty());
        create(&app, &"k".repeat(255), &new_job()).await.assert_status(201);
    }

    async fn a_key_whose_request_runs_answers_409_until_its_claim_runs_out(app: TestApp) {
        // A server took the key and died before its transaction committed: the claim is
        // all that is left of the request.
        let body = new_job();
        let (client, _) = app.default_client(CUSTOMER).await;
        let print = fingerprint(&axum::http::Method::POST, "/v1/jobs", body.to_string().as_bytes());
        app.store.execute_sql(&format!(
            "INSERT INTO idempotency_keys (customer_id, client_id, idempotency_key, fingerprint, \
             created_at_ms, claim_token, claimed_until_ms) \
             VALUES ({CUSTOMER}, '{client}', 'crashed', '{print}', {now}, 'gone', {until})",
            now = now_ms(), until = now_ms() + 60_000,
        )).await;

        let busy = create(&app, "crashed", &body).await;
        busy.assert_problem(409, "/problems/idempotency-key-in-flight");
        let retry_after: u64 = busy.header("retry-after").expect("Retry-After").parse().expect("seconds");
        assert_eq!(retry_after, 1, "soon: the request holding the key usually ends in moments");
        // Another request with the key is still told it is another request.
        create(&app, "crashed", &json!({"typeId": 9, "contactId": 9})).await
            .assert_problem(422, "/problems/idempotency-key-reused");
        assert!(job_ids(&app).await.is_empty());

        // A claim that ran out frees its key, for a corrected request too.
        app.store.execute_sql(&format!(
            "INSERT INTO idempotency_keys (customer_id, client_id, idempotency_key, fingerprint, \
             created_at_ms, claim_token, claimed_until_ms) \
             VALUES ({CUSTOMER}, '{client}', 'dead', 'another request', {now}, 'gone', {now})",
            now = now_ms() - 1,
        )).await;
        create(&app, "dead", &body).await.assert_status(201);
        assert_eq!(job_ids(&app).await.len(), 1);

        // Once the claim has run out, a retry runs the request, once.
        app.store.execute_sql("UPDATE idempotency_keys SET claimed_until_ms = 0").await;
        let ran = create(&app, "crashed", &body).await;
        ran.assert_status(201);
        assert_eq!(ran.header("idempotent-replayed"), None);
        assert_replays(&ran, &create(&app, "crashed", &body).await);
        assert_eq!(job_ids(&app).await.len(), 2);
    }

    async fn servers_sharing_a_database_share_keys(app: TestApp) {
        let other = app.another_instance().await;
        let (_, token) = app.default_client(CUSTOMER).await;
        let first = create_with(&app, &token, "across", &new_job()).await;
        first.assert_status(201);
        assert_replays(&first, &create_with(&other, &token, "across", &new_job()).await);

        // Many retries at once, on both servers: one job; every answer is that job, or
        // "still in flight".
        let body = json!({"typeId": 1, "contactId": 2, "reference": "raced"});
        let attempts = (0..8).map(|n| {
            let server = if n % 2 == 0 { &app } else { &other };
            create_with(server, &token, "raced", &body)
        });
        let replies = futures::future::join_all(attempts).await;
        let mut created = std::collections::BTreeSet::new();
        for reply in &replies {
            match reply.status {
                201 => { created.insert(reply.json()["id"].as_str().unwrap().to_owned()); }
                409 => { reply.assert_problem(409, "/problems/idempotency-key-in-flight"); }
                other => panic!("unexpected {other}: {}", reply.text),
            }
        }
        assert_eq!(created.len(), 1, "{replies:?}");
        assert_eq!(job_ids(&app).await.len(), 2);
    }

    async fn keys_are_purged_after_their_retention_and_not_before(app: TestApp) {
        let old = create(&app, "old", &new_job()).await;
        old.assert_status(201);
        create(&app, "recent", &new_job()).await.assert_status(201);
        let hour = 3_600_000;
        app.store.execute_sql(&format!(
            "UPDATE idempotency_keys SET created_at_ms = {} WHERE idempotency_key = 'old'",
            now_ms() - 25 * hour
        )).await;
        app.store.execute_sql(&format!(
            "UPDATE idempotency_keys SET created_at_ms = {} WHERE idempotency_key = 'recent'",
            now_ms() - 23 * hour
        )).await;

        let output = app.store.admin(&["purge-keys"]).await;
        assert!(succeeded(&output).contains("purged 1 idempotency key"), "{output:?}");
        // Gone: the same request with the old key is a new request now.
        let again = create(&app, "old", &new_job()).await;
        again.assert_status(201);
        assert_eq!(again.header("idempotent-replayed"), None);
        assert_ne!(again.json()["id"], old.json()["id"]);
        assert_eq!(create(&app, "recent", &new_job()).await.header("idempotent-replayed"), Some("true"));
        // The retention cannot be set below a day.
        let output = app.store.admin(&["purge-keys", "--idempotency-key-retention-hours", "23"]).await;
        assert!(!output.status.success());
    }
}

backend_tests! {
    /// A backlog larger than one purge batch is purged whole, batch by batch, and keys
    /// still within their retention stay.
    async fn a_large_backlog_of_keys_is_purged_in_batches(app: TestApp) {
        create(&app, "seed", &new_job()).await.assert_status(201);
        create(&app, "recent", &new_job()).await.assert_status(201);
        let old = now_ms() - 25 * 3_600_000;
        let copies = if app.store.is_postgres() {
            format!(
                "INSERT INTO idempotency_keys (customer_id, client_id, idempotency_key, fingerprint, created_at_ms) \
                 SELECT customer_id, client_id, 'old-' || n, fingerprint, {old} \
                 FROM idempotency_keys, generate_series(1, 12000) AS n WHERE idempotency_key = 'seed'"
            )
        } else {
            format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12000) \
                 INSERT INTO idempotency_keys (customer_id, client_id, idempotency_key, fingerprint, created_at_ms) \
                 SELECT customer_id, client_id, 'old-' || i, fingerprint, {old} \
                 FROM idempotency_keys, n WHERE idempotency_key = 'seed'"
            )
        };
        app.store.execute_sql(&copies).await;
        let output = app.store.admin(&["purge-keys"]).await;
        assert!(succeeded(&output).contains("purged 12000 idempotency key"), "{output:?}");
        assert_eq!(app.store.count("SELECT count(*) FROM idempotency_keys").await, 2);
    }
}
