//! `GET /v1/events`, the change feed: a customer's events across its jobs in commit order,
//! each once when followed by cursor, never another customer's; `wait` answers as soon as
//! something commits.

use crate::backend_tests;
use crate::support::{Backend, TestApp, TestStore};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use uuid::Uuid;

const CUSTOMER: i64 = 71;
const OTHER_CUSTOMER: i64 = 72;

async fn feed(app: &TestApp, customer: i64, query: &str) -> Value {
    let reply = app.get(&format!("/v1/events?{query}"), customer).await;
    reply.assert_status(200);
    let page = reply.json();
    assert!(
        page["nextCursor"]
            .as_str()
            .is_some_and(|cursor| !cursor.is_empty()),
        "{page}"
    );
    page
}

/// The first `count` events of the customer's feed, following cursors `limit` at a time,
/// and the cursor after them. Each page may wait: on PostgreSQL an event is shown only once
/// nothing can still commit before it, so while another transaction of the cluster is
/// open (other tests' databases share it) a page can come back empty for a moment.
async fn follow(app: &TestApp, customer: i64, limit: u32, count: usize) -> (Vec<Value>, String) {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    while events.len() < count {
        let query = match &cursor {
            Some(cursor) => format!("limit={limit}&wait=20&cursor={cursor}"),
            None => format!("limit={limit}&wait=20"),
        };
        let page = feed(app, customer, &query).await;
        let items = page["items"].as_array().expect("items").clone();
        assert!(
            !items.is_empty(),
            "the events come within the wait: {events:?}"
        );
        assert!(items.len() <= limit as usize);
        events.extend(items);
        cursor = Some(page["nextCursor"].as_str().expect("a cursor").to_owned());
    }
    let cursor = cursor.expect("a cursor");
    let after = feed(app, customer, &format!("cursor={cursor}&wait=1")).await;
    assert_eq!(
        after["items"],
        json!([]),
        "nothing beyond the events expected"
    );
    (events, cursor)
}

backend_tests! {
    /// The feed holds exactly the customer's events — each once, in the order they were
    /// recorded, with who acted and in which request — and none of another customer's.
    async fn the_feed_holds_each_of_the_customers_events_once_in_order(app: TestApp) {
        let mut mine = Vec::new();
        for n in 0..3 {
            let id = app.create_job(CUSTOMER).await;
            app.create_job(OTHER_CUSTOMER).await;
            if n != 1 {
                app.command(CUSTOMER, id, "cancel", json!({"reason": format!("reason {n}")})).await.assert_status(204);
            }
            mine.push(id);
        }
        let (events, _) = follow(&app, CUSTOMER, 2, 5).await;
        let seen: Vec<(String, String)> = events
            .iter()
            .map(|event| (event["jobId"].as_str().unwrap_or_default().to_owned(), event["eventType"].as_str().unwrap_or_default().to_owned()))
            .collect();
        let expected: Vec<(String, String)> = vec![
            (mine[0].to_string(), "JobCreated".into()),
            (mine[0].to_string(), "JobCancelled".into()),
            (mine[1].to_string(), "JobCreated".into()),
            (mine[2].to_string(), "JobCreated".into()),
            (mine[2].to_string(), "JobCancelled".into()),
        ];
        assert_eq!(seen, expected);
        let (client, _) = app.default_client(CUSTOMER).await;
        for event in &events {
            assert_eq!(event["clientId"], client.to_string());
            assert!(event["requestId"].as_str().is_some_and(|id| !id.is_empty()));
            assert!(event["recordedAt"].is_string() && event["sequence"].as_i64().is_some());
        }
        assert_eq!(events[1]["payload"]["reason"], "reason 0");
        // The same whole feed in one page, and the other customer sees only its own.
        let whole = feed(&app, CUSTOMER, "limit=1000").await;
        assert_eq!(whole["items"].as_array().map(Vec::len), Some(5));
        let (theirs, _) = follow(&app, OTHER_CUSTOMER, 10, 3).await;
        assert_eq!(theirs.len(), 3);
        assert!(theirs.iter().all(|event| !mine.iter().any(|id| event["jobId"] == id.to_string())));
    }

    /// Caught up, a request with `wait` is answered as soon as an event commits — with that
    /// event — and one that finds nothing answers an empty page with the same cursor.
    async fn wait_answers_as_soon_as_something_commits(app: TestApp) {
        app.create_job(CUSTOMER).await;
        let (_, end) = follow(&app, CUSTOMER, 100, 1).await;
        let started = Instant::now();
        let empty = feed(&app, CUSTOMER, &format!("cursor={end}&wait=1")).await;
        assert!(started.elapsed() >= Duration::from_millis(900), "held for the wait");
        assert_eq!(empty["items"], json!([]));
        assert_eq!(empty["nextCursor"], end.as_str());

        let waiting = async {
            let started = Instant::now();
            let page = feed(&app, CUSTOMER, &format!("cursor={end}&wait=20")).await;
            (page, started.elapsed())
        };
        let creating = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            app.create_job(CUSTOMER).await
        };
        let ((page, took), created): ((Value, Duration), Uuid) = tokio::join!(waiting, creating);
        // Held past the commit's 0.5 s, and answered with the event (at the end of the wait
        // it would have been empty).
        assert!(took >= Duration::from_millis(400), "{took:?}");
        assert_eq!(page["items"][0]["jobId"], created.to_string());
        assert_eq!(page["items"][0]["eventType"], "JobCreated");
    }

    /// Bad paging is refused, and the feed needs `jobs:read` like every read.
    async fn bad_feed_requests_are_refused(app: TestApp) {
        for (query, problem_type) in [
            ("limit=0", "/problems/invalid-paging"),
            ("limit=1001", "/problems/invalid-paging"),
            ("wait=31", "/problems/invalid-query"),
            ("wait=-1", "/problems/invalid-query"),
            ("cursor=bm90LWEtZmVlZA", "/problems/invalid-paging"),
            ("cursor=", "/problems/invalid-paging"),
            ("since=1", "/problems/invalid-query"),
        ] {
            app.get(&format!("/v1/events?{query}"), CUSTOMER).await.assert_problem(400, problem_type);
        }
        let unauthenticated = app.send_as_is(app.build(reqwest::Method::GET, "/v1/events", Some(CUSTOMER), None).bearer_auth("not-a-token")).await;
        unauthenticated.assert_problem(401, "/problems/unauthorized");
    }
}

/// Applies every migration before the events' customer column to the store, as a database
/// of an earlier release would have them.
async fn migrate_as_before_the_customer_column(store: &TestStore) {
    const FIRST_AFTER: i64 = 20261201000002;
    let backend = if store.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let earlier = store.data_dir.join("earlier-migrations");
    std::fs::create_dir_all(&earlier).expect("a directory");
    for entry in std::fs::read_dir(&source).expect("the migrations") {
        let path = entry.expect("an entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a name")
            .to_owned();
        let version: i64 = name
            .split('_')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("a version");
        if version < FIRST_AFTER {
            std::fs::copy(&path, earlier.join(&name)).expect("copied");
        }
    }
    let migrator = sqlx::migrate::Migrator::new(earlier.as_path())
        .await
        .expect("migrations");
    if store.is_postgres() {
        let pool = sqlx::PgPool::connect(&store.database_url)
            .await
            .expect("connects");
        migrator.run(&pool).await.expect("migrated");
        pool.close().await;
    } else {
        let options: sqlx::sqlite::SqliteConnectOptions =
            store.database_url.parse().expect("a SQLite URL");
        let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true))
            .await
            .expect("connects");
        migrator.run(&pool).await.expect("migrated");
        pool.close().await;
    }
}

backend_tests! {
    /// Events stored before the customer column existed are filled by the migration that
    /// adds it, so the feed (which reads through the column's index) shows them.
    async fn events_stored_before_the_customer_column_are_in_the_feed(store: TestStore) {
        migrate_as_before_the_customer_column(&store).await;
        let metadata = |customer: i64| {
            format!(r#"{{"customerId": "{customer}", "clientId": "c", "tokenId": "t", "requestId": "r"}}"#)
        };
        let payload = r#"{"JobCreated": {"customerId": 1, "typeId": 1, "contactId": 2, "occurredAt": "2026-11-30T00:00:00Z"}}"#;
        let mut jobs = Vec::new();
        for n in 0..30 {
            let customer = if n % 3 == 0 { CUSTOMER } else { OTHER_CUSTOMER };
            let job = Uuid::now_v7();
            if customer == CUSTOMER {
                jobs.push(job);
            }
            store
                .execute_sql(&format!(
                    "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                     event_version, payload, metadata) VALUES ('Job', '{job}', 1, 'JobCreated', \
                     '1.0', '{payload}', '{}')",
                    metadata(customer)
                ))
                .await;
        }
        let app = TestApp::with_settings(store, &[]).await;
        if app.store.is_postgres() {
            assert_eq!(app.store.count("SELECT count(*) FROM events WHERE customer_id IS NULL").await, 0);
        }
        let (events, _) = follow(&app, CUSTOMER, 4, jobs.len()).await;
        let shown: Vec<&str> = events.iter().filter_map(|e| e["jobId"].as_str()).collect();
        let expected: Vec<String> = jobs.iter().map(Uuid::to_string).collect();
        assert_eq!(shown, expected);
    }
}
