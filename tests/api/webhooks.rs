//! Webhooks, against a local receiver (allowed with `--webhook-allowed-hosts`): every event
//! of the customer arrives signed (Standard Webhooks, checked here with an HMAC of the
//! test's own), in order per job; a receiver that is down gets everything afterwards; one
//! down past the retry window marks the subscription failing until redelivered; pausing,
//! rotating, the failed-attempt list, and the 422s that store nothing.

use crate::backend_tests;
use crate::support::{request_token, Backend, TestApp, TestStore};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

const CUSTOMER: i64 = 81;
const OTHER_CUSTOMER: i64 = 82;

/// A guard against a hung test, not a performance bound.
const PATIENCE: Duration = Duration::from_secs(40);

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Bytes,
}

impl Delivery {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// Whether one of the signatures is the HMAC-SHA256, under `secret`, of
    /// `{id}.{timestamp}.{body}`, computed here independently of the server's code.
    pub fn signed_with(&self, secret: &str) -> bool {
        let engine = base64::engine::general_purpose::STANDARD;
        let key = engine
            .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
            .expect("base64");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
        mac.update(format!("{}.{}.", self.id, self.timestamp).as_bytes());
        mac.update(&self.body);
        let expected = format!("v1,{}", engine.encode(mac.finalize().into_bytes()));
        self.signature.split(' ').any(|part| part == expected)
    }
}

/// A webhook receiver on 127.0.0.1 that records what it gets and answers with the status
/// the test sets (200 at first).
pub struct Receiver {
    address: SocketAddr,
    received: Arc<Mutex<Vec<Delivery>>>,
    answer: Arc<AtomicU16>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let received: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let answer = Arc::new(AtomicU16::new(200));
        let (record, status) = (received.clone(), answer.clone());
        let router = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (record, status) = (record.clone(), status.clone());
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|value| value.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let answer =
                        StatusCode::from_u16(status.load(Ordering::SeqCst)).expect("a status");
                    if answer.is_success() {
                        record.lock().unwrap().push(Delivery {
                            id: header("webhook-id"),
                            timestamp: header("webhook-timestamp"),
                            signature: header("webhook-signature"),
                            body,
                        });
                    }
                    answer
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let address = listener.local_addr().expect("an address");
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver {
            address,
            received,
            answer,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.address)
    }

    /// The server setting that lets webhooks reach this receiver.
    pub fn allowance(&self) -> String {
        format!("--webhook-allowed-hosts=127.0.0.1:{}", self.address.port())
    }

    pub fn answer(&self, status: u16) {
        self.answer.store(status, Ordering::SeqCst);
    }

    /// What it accepted so far.
    pub fn received(&self) -> Vec<Delivery> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until it has accepted deliveries of at least `ids` (each at least once).
    pub async fn wait_for(&self, ids: &[String]) -> Vec<Delivery> {
        let started = Instant::now();
        loop {
            let received = self.received();
            if ids.iter().all(|id| received.iter().any(|d| &d.id == id)) {
                return received;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "still missing some of {ids:?}; got {:?}",
                received.iter().map(|d| &d.id).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The app over `store`, allowed to reach `receiver`, with `extra` settings.
async fn app_for(store: TestStore, receiver: &Receiver, extra: &[&str]) -> TestApp {
    let allowance = receiver.allowance();
    let mut settings = vec![allowance.as_str()];
    settings.extend_from_slice(extra);
    TestApp::with_settings(store, &settings).await
}

/// Subscribes the customer; returns the subscription's id and secret.
async fn subscribe(app: &TestApp, customer: i64, body: Value) -> (String, String) {
    let reply = app.post("/v1/webhooks", customer, body).await;
    reply.assert_status(201);
    let created = reply.json();
    let id = created["id"].as_str().expect("an id").to_owned();
    assert_eq!(
        reply.header("location"),
        Some(format!("/v1/webhooks/{id}").as_str())
    );
    let secret = created["secret"].as_str().expect("a secret").to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (id, secret)
}

/// The subscription as soon as `done` holds of it (a guard against a hung test aside).
async fn subscription_once(app: &TestApp, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let subscription = app
            .get(&format!("/v1/webhooks/{id}"), CUSTOMER)
            .await
            .json();
        if done(&subscription) {
            return subscription;
        }
        assert!(started.elapsed() < PATIENCE, "{subscription}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The subscription's failed attempts (newest first) as soon as there are `at_least`.
async fn failed_attempts(app: &TestApp, id: &str, at_least: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let failures = app
            .get(&format!("/v1/webhooks/{id}/failedDeliveries"), CUSTOMER)
            .await
            .json();
        let items = failures["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= at_least {
            return items;
        }
        assert!(started.elapsed() < PATIENCE, "{failures}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The ids of a job's events `from..=to`.
fn event_ids(job: Uuid, sequences: std::ops::RangeInclusive<i64>) -> Vec<String> {
    sequences
        .map(|sequence| format!("{job}:{sequence}"))
        .collect()
}

/// Checks that each job's deliveries, first arrivals taken, come in sequence order.
fn assert_in_order_per_job(deliveries: &[Delivery]) {
    let mut seen: Vec<String> = Vec::new();
    let mut last: std::collections::HashMap<String, i64> = Default::default();
    for delivery in deliveries {
        if seen.contains(&delivery.id) {
            continue;
        }
        seen.push(delivery.id.clone());
        let (job, sequence) = delivery.id.split_once(':').expect("job:sequence");
        let sequence: i64 = sequence.parse().expect("a sequence");
        let previous = last.insert(job.to_owned(), sequence).unwrap_or(0);
        assert_eq!(sequence, previous + 1, "out of order: {seen:?}");
    }
}

backend_tests! {
    /// Every event of the customer arrives, signed, in order, with the feed's shape and id;
    /// another customer's never do.
    async fn every_event_arrives_signed_and_in_order(store: TestStore) {
        let receiver = Receiver::start().await;
        let app = app_for(store, &receiver, &[]).await;
        let (id, secret) = subscribe(&app, CUSTOMER, json!({"url": receiver.url()})).await;
        let first = app.create_job(CUSTOMER).await;
        let second = app.create_job(CUSTOMER).await;
        let foreign = app.create_job(OTHER_CUSTOMER).await;
        app.command(CUSTOMER, first, "cancel", json!({"reason": "customer moved"}))
            .await
            .assert_status(204);
        let mut expected = event_ids(first, 1..=2);
        expected.extend(event_ids(second, 1..=1));
        let received = receiver.wait_for(&expected).await;
        assert_in_order_per_job(&received);
        for delivery in &received {
            assert!(delivery.signed_with(&secret), "{delivery:?}");
            let timestamp: i64 = delivery.timestamp.parse().expect("seconds");
            assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);
            let body = delivery.json();
            assert_eq!(body["data"]["id"], delivery.id);
            assert_eq!(body["type"], body["data"]["eventType"]);
            assert!(!delivery.id.starts_with(&foreign.to_string()));
        }
        let cancelled = received
            .iter()
            .find(|d| d.id == format!("{first}:2"))
            .expect("the cancel")
            .json();
        assert_eq!(cancelled["type"], "JobCancelled");
        assert_eq!(cancelled["data"]["payload"]["reason"], "customer moved");
        // The feed shows the same events under the same ids.
        let feed = app.get("/v1/events?limit=10", CUSTOMER).await.json();
        let feed_ids: Vec<&str> = feed["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|event| event["id"].as_str())
            .collect();
        for id in &expected {
            assert!(feed_ids.contains(&id.as_str()), "{id} in {feed_ids:?}");
        }
        // The server records a delivery once the receiver has answered: it may lag the
        // receiver's record by a moment.
        let subscription = subscription_once(&app, &id, |s| s["delivered"] == 3).await;
        assert_eq!(subscription["status"], "active");
        assert!(subscription.get("secret").is_none(), "the secret is shown only once");
    }

    /// A subscription to some event types gets only those.
    async fn only_the_subscribed_types_arrive(store: TestStore) {
        let receiver = Receiver::start().await;
        let app = app_for(store, &receiver, &[]).await;
        subscribe(
            &app,
            CUSTOMER,
            json!({"url": receiver.url(), "eventTypes": ["JobCancelled", "JobCancelled"]}),
        )
        .await;
        let kept = app.create_job(CUSTOMER).await;
        let cancelled = app.create_job(CUSTOMER).await;
        app.command(CUSTOMER, cancelled, "cancel", json!({"reason": "duplicate"}))
            .await
            .assert_status(204);
        let received = receiver.wait_for(&[format!("{cancelled}:2")]).await;
        // A later event of another type is passed over, and the next cancel still comes.
        app.command(CUSTOMER, kept, "cancel", json!({"reason": "late"}))
            .await
            .assert_status(204);
        let received_later = receiver.wait_for(&[format!("{kept}:2")]).await;
        assert!(received.len() <= received_later.len());
        for delivery in received_later {
            assert_eq!(delivery.json()["type"], "JobCancelled", "{delivery:?}");
        }
    }

    /// A receiver that answers errors gets the events again, with growing waits; the
    /// attempts are listed; once it answers, everything arrives, in order.
    async fn a_receiver_that_was_down_gets_everything_in_order(store: TestStore) {
        let receiver = Receiver::start().await;
        receiver.answer(503);
        let app = app_for(store, &receiver, &[]).await;
        let (id, _) = subscribe(&app, CUSTOMER, json!({"url": receiver.url()})).await;
        let job = app.create_job(CUSTOMER).await;
        app.bring_to(CUSTOMER, job, "started").await;
        let events = app.events(CUSTOMER, job).await.len() as i64;
        let failures = failed_attempts(&app, &id, 2).await;
        let newest = &failures[0];
        assert_eq!(newest["eventId"], format!("{job}:1"));
        assert_eq!(newest["responseStatus"], 503);
        assert_eq!(newest["attempt"], 2);
        assert_eq!(failures[1]["attempt"], 1);
        let subscription = app.get(&format!("/v1/webhooks/{id}"), CUSTOMER).await.json();
        assert_eq!(subscription["status"], "active");
        assert!(subscription["failedAttempts"].as_i64() >= Some(2), "{subscription}");
        assert!(subscription["failingSince"].is_string(), "{subscription}");
        // A change that leaves it active keeps its retry state (and its window).
        let changed = app
            .patch(&format!("/v1/webhooks/{id}"), CUSTOMER, json!({"eventTypes": []}))
            .await;
        changed.assert_status(200);
        assert_eq!(changed.json()["failingSince"], subscription["failingSince"]);
        assert!(receiver.received().is_empty());
        receiver.answer(200);
        let received = receiver.wait_for(&event_ids(job, 1..=events)).await;
        assert_in_order_per_job(&received);
        subscription_once(&app, &id, |s| s["failedAttempts"] == 0).await;
    }

    /// Past the retry window the subscription is failing and sends nothing more; a
    /// redelivery sends the failed event and everything after it, in order.
    async fn failing_past_the_retry_window_until_redelivered(store: TestStore) {
        let receiver = Receiver::start().await;
        receiver.answer(500);
        let app = app_for(store, &receiver, &["--webhook-retry-window=2"]).await;
        let (id, _) = subscribe(&app, CUSTOMER, json!({"url": receiver.url()})).await;
        let first = app.create_job(CUSTOMER).await;
        let started = Instant::now();
        loop {
            let subscription = app.get(&format!("/v1/webhooks/{id}"), CUSTOMER).await.json();
            if subscription["status"] == "failing" {
                break;
            }
            assert!(started.elapsed() < PATIENCE, "{subscription}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        receiver.answer(200);
        let second = app.create_job(CUSTOMER).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(receiver.received().is_empty(), "a failing subscription rests");
        let reply = app
            .request(reqwest::Method::POST, &format!("/v1/webhooks/{id}/redeliver"), Some(CUSTOMER), None)
            .await;
        reply.assert_status(202);
        assert_eq!(reply.json()["status"], "active");
        let received = receiver
            .wait_for(&[format!("{first}:1"), format!("{second}:1")])
            .await;
        let position = |id: String| received.iter().position(|d| d.id == id);
        assert!(position(format!("{first}:1")) < position(format!("{second}:1")));
    }

    /// Paused, nothing is sent; resumed, what waited arrives.
    async fn paused_subscriptions_wait_and_resume(store: TestStore) {
        let receiver = Receiver::start().await;
        let app = app_for(store, &receiver, &[]).await;
        let (id, _) = subscribe(&app, CUSTOMER, json!({"url": receiver.url()})).await;
        let path = format!("/v1/webhooks/{id}");
        let paused = app.patch(&path, CUSTOMER, json!({"status": "paused"})).await;
        paused.assert_status(200);
        assert_eq!(paused.json()["status"], "paused");
        let job = app.create_job(CUSTOMER).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(receiver.received().is_empty());
        app.patch(&path, CUSTOMER, json!({"status": "active"}))
            .await
            .assert_status(200);
        receiver.wait_for(&event_ids(job, 1..=1)).await;
    }

    /// Create, list, read, change and delete, within the customer; a rotated secret signs
    /// beside the old one.
    async fn subscriptions_are_managed_per_customer(store: TestStore) {
        let receiver = Receiver::start().await;
        let app = app_for(store, &receiver, &[]).await;
        let (id, old_secret) = subscribe(&app, CUSTOMER, json!({"url": receiver.url()})).await;
        let path = format!("/v1/webhooks/{id}");
        let list = app.get("/v1/webhooks", CUSTOMER).await.json();
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(list["items"][0]["eventTypes"], json!([]));
        assert_eq!(app.get("/v1/webhooks", OTHER_CUSTOMER).await.json()["items"], json!([]));
        app.get(&path, OTHER_CUSTOMER).await.assert_problem(404, "/problems/webhook-not-found");
        app.patch(&path, OTHER_CUSTOMER, json!({"status": "paused"}))
            .await
            .assert_problem(404, "/problems/webhook-not-found");
        app.get("/v1/webhooks/nope", CUSTOMER).await.assert_problem(400, "/problems/invalid-webhook-id");
        let changed = app
            .patch(&path, CUSTOMER, json!({"eventTypes": ["JobCreated"]}))
            .await;
        changed.assert_status(200);
        assert_eq!(changed.json()["eventTypes"], json!(["JobCreated"]));
        assert_eq!(changed.json()["url"], receiver.url());
        let rotated = app
            .request(reqwest::Method::POST, &format!("{path}/secret"), Some(CUSTOMER), None)
            .await;
        rotated.assert_status(200);
        let new_secret = rotated.json()["secret"].as_str().expect("a secret").to_owned();
        assert_ne!(new_secret, old_secret);
        let job = app.create_job(CUSTOMER).await;
        let received = receiver.wait_for(&event_ids(job, 1..=1)).await;
        let delivery = &received[0];
        assert!(delivery.signed_with(&new_secret) && delivery.signed_with(&old_secret));
        assert_eq!(delivery.signature.split(' ').count(), 2);
        app.request(reqwest::Method::DELETE, &path, Some(OTHER_CUSTOMER), None)
            .await
            .assert_problem(404, "/problems/webhook-not-found");
        app.request(reqwest::Method::DELETE, &path, Some(CUSTOMER), None)
            .await
            .assert_status(204);
        app.get(&path, CUSTOMER).await.assert_problem(404, "/problems/webhook-not-found");
        let after = app.create_job(CUSTOMER).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!receiver.received().iter().any(|d| d.id.starts_with(&after.to_string())));
    }

    /// Invalid URLs, disallowed targets, unknown or too many event types, and one
    /// subscription too many: 422 with `errors`, and nothing stored.
    async fn bad_subscriptions_are_refused_and_store_nothing(app: TestApp) {
        let long = format!("https://example.com/{}", "a".repeat(2000));
        for (body, field) in [
            (json!({}), "url"),
            (json!({"url": "not a url"}), "url"),
            (json!({"url": "ftp://example.com/x"}), "url"),
            (json!({"url": "http://example.com/hook"}), "url"),
            (json!({"url": "https://127.0.0.1/hook"}), "url"),
            (json!({"url": "https://10.0.0.7/hook"}), "url"),
            (json!({"url": "https://[::1]/hook"}), "url"),
            (json!({"url": "https://169.254.169.254/latest"}), "url"),
            (json!({"url": "https://localhost:8443/"}), "url"),
            (json!({"url": "https://user:pw@example.com/"}), "url"),
            (json!({"url": long}), "url"),
            (json!({"url": "https://93.184.216.34/", "eventTypes": ["JobExploded"]}), "eventTypes"),
            (json!({"url": "https://93.184.216.34/", "eventTypes": vec!["JobCreated"; 51]}), "eventTypes"),
        ] {
            let reply = app.post("/v1/webhooks", CUSTOMER, body.clone()).await;
            let problem = reply.assert_problem(422, "/problems/validation");
            assert!(problem["errors"][field].is_array(), "{body}: {problem}");
        }
        app.post("/v1/webhooks", CUSTOMER, json!({"url": 7}))
            .await
            .assert_problem(400, "/problems/malformed-body");
        app.post("/v1/webhooks", CUSTOMER, json!({"url": "https://93.184.216.34/", "secret": "mine"}))
            .await
            .assert_problem(400, "/problems/malformed-body");
        assert_eq!(app.get("/v1/webhooks", CUSTOMER).await.json()["items"], json!([]));
        // A customer may have 25; the 26th is refused.
        let mut ids = Vec::new();
        for n in 0..25 {
            let (id, _) = subscribe(&app, CUSTOMER, json!({"url": format!("https://93.184.216.34/{n}")})).await;
            ids.push(id);
        }
        let problem = app
            .post("/v1/webhooks", CUSTOMER, json!({"url": "https://93.184.216.34/26"}))
            .await
            .assert_problem(422, "/problems/validation");
        assert!(problem["errors"]["subscriptions"].is_array(), "{problem}");
        assert_eq!(
            app.get("/v1/webhooks", CUSTOMER).await.json()["items"].as_array().map(Vec::len),
            Some(25)
        );
        // A change to a disallowed target or status changes nothing.
        let path = format!("/v1/webhooks/{}", ids[0]);
        for body in [
            json!({"url": "https://192.168.0.1/"}),
            json!({"status": "failing"}),
            json!({"eventTypes": ["Nope"], "status": "paused"}),
        ] {
            app.patch(&path, CUSTOMER, body).await.assert_problem(422, "/problems/validation");
        }
        let unchanged = app.get(&path, CUSTOMER).await.json();
        assert_eq!(unchanged["url"], "https://93.184.216.34/0");
        assert_eq!(unchanged["status"], "active");
    }

    /// The webhook endpoints need the `webhooks:manage` scope.
    async fn managing_webhooks_needs_its_scope(app: TestApp) {
        let client = app
            .store
            .register_client(
                &[jobs_service::auth::Scope::JobsRead, jobs_service::auth::Scope::JobsWrite],
                &[CUSTOMER],
            )
            .await;
        let response = request_token(&reqwest::Client::new(), &app.address, &client, None).await;
        let token: Value = response.json().await.expect("a token response");
        let token = token["access_token"].as_str().expect("a token").to_owned();
        let reply = app
            .send(
                app.build(reqwest::Method::GET, "/v1/webhooks", Some(CUSTOMER), None)
                    .bearer_auth(token),
            )
            .await;
        reply.assert_problem(403, "/problems/insufficient-scope");
    }
}

backend_tests! {
    /// `jobs-admin webhooks list` shows each subscription's lag and deliveries, and the
    /// metrics count deliveries and each subscription's lag.
    async fn operators_see_lag_and_deliveries(store: TestStore) {
        let receiver = Receiver::start().await;
        let app = app_for(store, &receiver, &[]).await;
        let (id, _) = subscribe(&app, CUSTOMER, json!({"url": receiver.url()})).await;
        let path = format!("/v1/webhooks/{id}");
        app.patch(&path, CUSTOMER, json!({"status": "paused"}))
            .await
            .assert_status(200);
        let jobs = [app.create_job(CUSTOMER).await, app.create_job(CUSTOMER).await];
        app.create_job(OTHER_CUSTOMER).await;
        let listed = |output: std::process::Output| -> Value {
            let list: Value = serde_json::from_str(&crate::support::succeeded(&output))
                .expect("JSON");
            list.as_array()
                .and_then(|list| list.iter().find(|s| s["id"] == id.as_str()))
                .cloned()
                .expect("the subscription is listed")
        };
        let paused = listed(app.store.admin(&["webhooks", "list", "--format", "json"]).await);
        assert_eq!(paused["status"], "paused");
        assert_eq!(paused["lag"], 2, "{paused}");
        assert_eq!(paused["customerId"], CUSTOMER);
        let table = crate::support::succeeded(&app.store.admin(&["webhooks", "list"]).await);
        assert!(table.contains(&id) && table.contains("paused"), "{table}");
        app.patch(&path, CUSTOMER, json!({"status": "active"}))
            .await
            .assert_status(200);
        let mut ids = event_ids(jobs[0], 1..=1);
        ids.extend(event_ids(jobs[1], 1..=1));
        receiver.wait_for(&ids).await;
        let started = Instant::now();
        loop {
            let caught_up = listed(
                app.store
                    .admin(&["webhooks", "list", "--customer", &CUSTOMER.to_string(), "--format", "json"])
                    .await,
            );
            if caught_up["lag"] == 0 && caught_up["delivered"] == 2 {
                break;
            }
            assert!(started.elapsed() < PATIENCE, "{caught_up}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The lag is measured every 10 s.
        let gauge = format!("jobs_webhook_lag_events{{subscription=\"{id}\"}} 0");
        let started = Instant::now();
        loop {
            let metrics = app.request(reqwest::Method::GET, "/metrics", None, None).await.text;
            if metrics.contains(&gauge) {
                assert!(
                    metrics.contains("jobs_webhook_deliveries_total{outcome=\"delivered\"}"),
                    "{metrics}"
                );
                break;
            }
            assert!(started.elapsed() < PATIENCE, "no {gauge} in {metrics}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A stored URL that no longer passes the rules (as a name rebound to an internal
    /// address would not) is checked again at delivery: nothing is sent, the attempt fails.
    async fn deliveries_check_the_target_again(store: TestStore) {
        let receiver = Receiver::start().await;
        let app = app_for(store, &receiver, &[]).await;
        let (id, _) = subscribe(&app, CUSTOMER, json!({"url": receiver.url()})).await;
        let internal = receiver.url().replace("http://127.0.0.1", "https://localhost");
        app.store
            .execute_sql(&format!(
                "UPDATE webhook_subscriptions SET url = '{internal}' WHERE subscription_id = '{id}'"
            ))
            .await;
        let job = app.create_job(CUSTOMER).await;
        let failures = failed_attempts(&app, &id, 1).await;
        let failure = failures.last().expect("an attempt");
        assert_eq!(failure["eventId"], format!("{job}:1"));
        assert!(failure["error"].as_str().is_some_and(|e| e.contains("internal")), "{failure}");
        assert!(failure.get("responseStatus").is_none());
        assert!(receiver.received().is_empty());
    }
}

/// Servers sharing one PostgreSQL: the subscription's deliverer is killed with SIGKILL
/// while events stream in, and the other server takes its lease over once it runs out:
/// every event arrives, each job's in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_servers_subscriptions_are_taken_over_without_loss() {
    use crate::support::{base_url, kill, launch, server_command, token_for_customer};
    let store = TestStore::new(Backend::Postgres).await;
    let receiver = Receiver::start().await;
    let allowance = receiver.allowance();
    let start_server = || async {
        let mut command = server_command(&store, "127.0.0.1:0");
        command
            .arg(&allowance)
            .arg("--rate-limit=0")
            .stderr(std::process::Stdio::null());
        let (child, line) = launch(&mut command).await;
        (child, base_url(&line))
    };
    let client = reqwest::Client::new();
    let (mut first, first_address) = start_server().await;
    let (_, token) = token_for_customer(&store, &first_address, CUSTOMER).await;
    let created: Value = client
        .post(format!("{first_address}/v1/webhooks"))
        .bearer_auth(&token)
        .header("Customer-Id", CUSTOMER.to_string())
        .json(&json!({"url": receiver.url()}))
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("JSON");
    assert!(created["id"].is_string(), "{created}");
    let create_job = |address: String| created_and_cancelled(&client, address, &token);
    // The first server is the only one: it holds the subscription.
    let mut jobs = vec![create_job(first_address.clone()).await];
    receiver.wait_for(&event_ids(jobs[0], 1..=2)).await;
    let (mut second, second_address) = start_server().await;
    for n in 0..30 {
        if n == 10 {
            kill(&mut first).await;
        }
        jobs.push(create_job(second_address.clone()).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expected: Vec<String> = jobs.iter().flat_map(|job| event_ids(*job, 1..=2)).collect();
    let received = receiver.wait_for(&expected).await;
    assert_in_order_per_job(&received);
    kill(&mut second).await;
}

/// A job created and cancelled through the server at `address` (two events).
async fn created_and_cancelled(client: &reqwest::Client, address: String, token: &str) -> Uuid {
    let reply = client
        .post(format!("{address}/v1/jobs"))
        .bearer_auth(token)
        .header("Customer-Id", CUSTOMER.to_string())
        .json(&json!({"typeId": 1, "contactId": 2}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(reply.status(), 201);
    let job: Value = reply.json().await.expect("JSON");
    let id: Uuid = job["id"].as_str().expect("an id").parse().expect("a UUID");
    let cancel = client
        .put(format!("{address}/v1/jobs/{id}/cancel"))
        .bearer_auth(token)
        .header("Customer-Id", CUSTOMER.to_string())
        .json(&json!({"reason": "test"}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(cancel.status(), 204);
    id
}

backend_tests! {
    /// An https target is reached over TLS (rustls): a receiver that is no TLS server fails
    /// the handshake, and the attempt is recorded with the error, not sent in clear.
    async fn https_targets_are_reached_over_tls(store: TestStore) {
        // A TCP server that reads what comes and answers with something that is not TLS.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let port = listener.local_addr().expect("an address").port();
        let saw_client_hello = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let saw = saw_client_hello.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut first = [0u8; 1];
                if socket.read_exact(&mut first).await.is_ok() && first[0] == 0x16 {
                    // 0x16: a TLS handshake record.
                    saw.store(true, Ordering::SeqCst);
                }
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
            }
        });
        let allowance = format!("--webhook-allowed-hosts=127.0.0.1:{port}");
        let app = TestApp::with_settings(store, &[allowance.as_str()]).await;
        let (id, _) = subscribe(&app, CUSTOMER, json!({"url": format!("https://127.0.0.1:{port}/hook")})).await;
        let job = app.create_job(CUSTOMER).await;
        let failures = failed_attempts(&app, &id, 1).await;
        let failure = failures.last().expect("an attempt");
        assert_eq!(failure["eventId"], format!("{job}:1"));
        assert!(failure.get("responseStatus").is_none(), "{failure}");
        assert!(saw_client_hello.load(Ordering::SeqCst), "a TLS ClientHello came first");
    }
}

backend_tests! {
    /// A create sent again with its Idempotency-Key answers the first 201 again — the same
    /// subscription and secret — and makes no second one; the key with another body is
    /// refused; a refused create keeps no answer, so the corrected one may use the key.
    async fn a_retried_create_with_its_key_makes_one_subscription(app: TestApp) {
        let keyed = |key: &str, body: Value| {
            app.build(reqwest::Method::POST, "/v1/webhooks", Some(CUSTOMER), Some(&body))
                .header("Idempotency-Key", key.to_owned())
        };
        let body = json!({"url": "https://93.184.216.34/hook", "eventTypes": ["JobCancelled"]});
        let first = app.send(keyed("hook-1", body.clone())).await;
        first.assert_status(201);
        let again = app.send(keyed("hook-1", body.clone())).await;
        again.assert_status(201);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.json(), first.json());
        assert_eq!(again.header("location"), first.header("location"));
        let listed = app.get("/v1/webhooks", CUSTOMER).await.json();
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(1), "{listed}");
        app.send(keyed("hook-1", json!({"url": "https://93.184.216.34/other"})))
            .await
            .assert_problem(422, "/problems/idempotency-key-reused");
        app.send(keyed("hook-2", json!({"url": "http://example.com/"})))
            .await
            .assert_problem(422, "/problems/validation");
        app.send(keyed("hook-2", json!({"url": "https://93.184.216.34/second"})))
            .await
            .assert_status(201);
        let listed = app.get("/v1/webhooks", CUSTOMER).await.json();
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(2), "{listed}");
    }
}

backend_tests! {
    /// Creates racing for a customer's last places make exactly as many as it may have.
    async fn the_subscription_cap_holds_under_racing_creates(app: TestApp) {
        let creates = (0..40).map(|n| {
            app.post("/v1/webhooks", CUSTOMER, json!({"url": format!("https://93.184.216.34/{n}")}))
        });
        let replies = futures::future::join_all(creates).await;
        let created = replies.iter().filter(|reply| reply.status == 201).count();
        assert_eq!(created, 25);
        for reply in replies.iter().filter(|reply| reply.status != 201) {
            reply.assert_problem(422, "/problems/validation");
        }
        let listed = app.get("/v1/webhooks", CUSTOMER).await.json();
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(25));
    }
}
