//! Honest answers while the store is away: every request that needs an unreachable store is
//! answered 503 `service-unavailable` with `Retry-After` — never 500, never 409 — and the
//! service recovers the moment the store is back. On PostgreSQL the outage is a TCP proxy
//! that cuts every connection (mid-query included) and refuses new ones; on SQLite it is
//! another process holding the write lock past the busy timeout. Writers that retry with
//! their `Idempotency-Key` get each of their jobs exactly once, and a commit whose answer
//! was lost says so and is then told by its key.

use crate::backend_tests;
use crate::support::{succeeded, Backend, Reply, TcpProxy, TestApp};
use reqwest::Method;
use serde_json::json;
use sqlx::Connection;
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

const CUSTOMER: i64 = 14;

/// How a test takes the store away from a server.
enum Outage {
    /// PostgreSQL: the server's connections run through this proxy.
    Proxy(TcpProxy),
    /// SQLite: a connection of another "process" that takes the write lock.
    Lock {
        url: String,
        holder: Option<sqlx::SqliteConnection>,
    },
}

impl Outage {
    /// The server under test (over `app`'s store) and the means to take its store away.
    async fn prepare(app: &TestApp) -> (Option<TestApp>, Outage) {
        if app.store.is_postgres() {
            let (server, proxy) = app.behind_proxy().await;
            (Some(server), Outage::Proxy(proxy))
        } else {
            let url = app.store.database_url.clone();
            (None, Outage::Lock { url, holder: None })
        }
    }

    async fn begin(&mut self) {
        match self {
            Outage::Proxy(proxy) => proxy.cut(),
            Outage::Lock { url, holder } => {
                let mut connection = sqlx::SqliteConnection::connect(url).await.expect("connect");
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut connection)
                    .await
                    .expect("the write lock");
                *holder = Some(connection);
            }
        }
    }

    async fn end(&mut self) {
        match self {
            Outage::Proxy(proxy) => proxy.restore(),
            Outage::Lock { holder, .. } => {
                if let Some(mut connection) = holder.take() {
                    sqlx::query("ROLLBACK")
                        .execute(&mut connection)
                        .await
                        .expect("unlock");
                }
            }
        }
    }

    /// How long the outage must last to be felt: SQLite writers wait out their busy
    /// timeout (10 s) before they give up.
    fn felt_after(&self) -> Duration {
        match self {
            Outage::Proxy(_) => Duration::from_millis(1500),
            Outage::Lock { .. } => Duration::from_secs(11),
        }
    }
}

/// Asserts the answer to a request that needed the store while it was away.
#[track_caller]
fn assert_unavailable(reply: &Reply) {
    reply.assert_problem(503, "/problems/service-unavailable");
    let retry_after: u64 = reply
        .header("retry-after")
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After in seconds: {:?}", reply.headers));
    assert!(retry_after >= 1);
}

async fn create(server: &TestApp, key: &str) -> Reply {
    let job = json!({"typeId": 1, "contactId": 2});
    server
        .keyed(Method::POST, "/v1/jobs", CUSTOMER, key, &job)
        .await
}

async fn job_count(app: &TestApp) -> usize {
    let page = app.get("/v1/jobs?pageSize=1000", CUSTOMER).await;
    page.assert_status(200);
    page.json()["items"].as_array().expect("items").len()
}

backend_tests! {
    async fn requests_that_need_an_unreachable_store_answer_503_and_recover_at_once(app: TestApp) {
        let (proxied, mut outage) = Outage::prepare(&app).await;
        let server = proxied.as_ref().unwrap_or(&app);
        let id = server.create_job(CUSTOMER).await;
        server.default_client(CUSTOMER).await; // its token, while it can be had

        outage.begin().await;
        assert_unavailable(&create(server, "during").await);
        if let Outage::Proxy(_) = outage {
            assert_unavailable(&server.command(CUSTOMER, id, "cancel", json!({"reason": "x"})).await);
            assert_unavailable(&server.get(&format!("/v1/jobs/{id}"), CUSTOMER).await);
            assert_unavailable(&server.get("/v1/jobs", CUSTOMER).await);
            server.get("/health/ready", CUSTOMER).await.assert_status(503);
        } else {
            // SQLite's readers do not wait for the writer.
            server.get(&format!("/v1/jobs/{id}"), CUSTOMER).await.assert_status(200);
        }
        outage.end().await;

        // At once: the request that failed runs now (it recorded nothing, its key is free).
        let created = create(server, "during").await;
        created.assert_status(201);
        assert_eq!(created.header("idempotent-replayed"), None);
        server.command(CUSTOMER, id, "cancel", json!({"reason": "x"})).await.assert_status(204);
        assert_eq!(job_count(&app).await, 2);
    }

    async fn writers_that_retry_with_their_keys_get_each_job_exactly_once_across_an_outage(app: TestApp) {
        let (proxied, mut outage) = Outage::prepare(&app).await;
        let server = proxied.as_ref().unwrap_or(&app);
        server.default_client(CUSTOMER).await;
        const WRITERS: usize = 6;
        const JOBS_EACH: usize = 5;
        let unavailable = std::sync::atomic::AtomicUsize::new(0);
        let acknowledged = std::sync::atomic::AtomicUsize::new(0);

        let writer = |writer: usize| {
            let (unavailable, acknowledged) = (&unavailable, &acknowledged);
            async move {
                let mut created = BTreeMap::new();
                for job in 0..JOBS_EACH {
                    let key = format!("writer-{writer}-job-{job}");
                    let id = loop {
                        let reply = create(server, &key).await;
                        match reply.status {
                            201 => break reply.json()["id"].as_str().expect("an id").to_owned(),
                            503 => {
                                assert_unavailable(&reply);
                                unavailable.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            }
                            409 => {
                                reply.assert_problem(409, "/problems/idempotency-key-in-flight");
                                assert!(reply.header("retry-after").is_some());
                            }
                            status => panic!("{key}: {status} {}", reply.text),
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    };
                    created.insert(key, id);
                    acknowledged.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                created
            }
        };
        let outage_window = async {
            // Mid-load: some jobs are in, most are still to come.
            while acknowledged.load(std::sync::atomic::Ordering::SeqCst) < WRITERS {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            outage.begin().await;
            tokio::time::sleep(outage.felt_after()).await;
            outage.end().await;
        };
        let (created, ()) = tokio::join!(
            futures::future::join_all((0..WRITERS).map(writer)),
            outage_window,
        );

        assert!(unavailable.load(std::sync::atomic::Ordering::SeqCst) > 0, "the outage was felt");
        let ids: std::collections::BTreeSet<&String> =
            created.iter().flat_map(|writer| writer.values()).collect();
        assert_eq!(ids.len(), WRITERS * JOBS_EACH, "one job per key");
        assert_eq!(job_count(&app).await, WRITERS * JOBS_EACH, "and no other job");
        succeeded(&app.store.admin(&["verify"]).await);
    }
}

/// PostgreSQL only: an embedded SQLite cannot lose a commit's answer on the way back.
#[tokio::test]
async fn postgres_a_commit_whose_answer_is_lost_says_so_and_its_key_tells_what_happened() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let (server, proxy) = app.behind_proxy_in_clear().await;
    server.default_client(CUSTOMER).await;
    server.create_job(CUSTOMER).await;

    proxy.lose_next_commit();
    let lost = create(&server, "lost-answer").await;
    assert!(
        proxy.commit_was_lost(),
        "the create's COMMIT went through the proxy: {lost:?}"
    );
    assert_unavailable(&lost);
    let detail = lost.json()["detail"].as_str().expect("a detail").to_owned();
    assert!(
        detail.contains("may or may not have been recorded"),
        "{detail}"
    );

    // It was recorded: the key says so, with the answer the client never got.
    let told = create(&server, "lost-answer").await;
    told.assert_status(201);
    assert_eq!(told.header("idempotent-replayed"), Some("true"));
    let id: Uuid = told.json()["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("an id");
    assert_eq!(server.job(CUSTOMER, id).await["status"], "new");
    assert_eq!(job_count(&app).await, 2);
}
