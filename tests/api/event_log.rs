//! The global event log and what operators read from it: the reader's commit-order promise,
//! `jobs-admin export` (NDJSON) and `jobs-admin history` (one job's audit trail), and
//! `jobs-admin migrate`.

use crate::backend_tests;
use crate::support::{stderr, succeeded, Backend, TestApp, TestStore};
use projections::log::{read_to_end, EventLog, LogCursor, LogFilter};
use serde_json::{json, Value};
use std::collections::HashMap;
use uuid::Uuid;

const INSERT_EVENT: &str = "INSERT INTO events \
     (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
     VALUES ('Job', $1, 1, 'JobCreated', '1.0', '{}', '{}')";

/// Appends a bare event in a transaction of its own that commits at once.
async fn append_now(store: &TestStore, aggregate_id: &str) {
    store
        .execute_sql(&INSERT_EVENT.replace("$1", &format!("'{aggregate_id}'")))
        .await;
}

/// The aggregate ids of every event after `after`, read one at a time until the reader has
/// caught up with everything committed (waiting, on PostgreSQL, for transactions anywhere in
/// the cluster that hold the horizon back), and the cursor it ended at.
async fn read_all(log: &dyn EventLog, after: LogCursor) -> (Vec<String>, LogCursor) {
    let mut seen = Vec::new();
    let end = read_to_end(
        log,
        after,
        &LogFilter::default(),
        1,
        |batch| {
            seen.extend(batch.iter().map(|event| event.aggregate_id.clone()));
            Ok::<_, projections::StoreError>(())
        },
        |_, _| {},
    )
    .await
    .expect("the log reads");
    (seen, end)
}

backend_tests! {
    /// A transaction that appends early and commits late must not be passed over by a reader
    /// that ran meanwhile, even though later positions committed (and were visible) first.
    async fn the_log_reader_never_passes_a_transaction_that_commits_late(store: TestStore) {
        use sqlx::Connection;
        let log = store.open().await.log();
        let everything = LogFilter::default();
        append_now(&store, "before").await;
        let (first, cursor) = read_all(log.as_ref(), LogCursor::START).await;
        assert_eq!(first, ["before"]);

        // The long transaction appends, and stays open.
        let (late, sooner) = ("late", "sooner");
        let commit_late: Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()>> = if store.is_postgres() {
            let mut connection = sqlx::PgConnection::connect(&store.database_url).await.expect("connect");
            sqlx::query("BEGIN").execute(&mut connection).await.expect("begin");
            sqlx::query(INSERT_EVENT).bind(late).execute(&mut connection).await.expect("append");
            // Meanwhile another writer appends and commits a later position.
            append_now(&store, sooner).await;
            let end = log.log_end().await.expect("the end");
            assert_eq!(log.held_back(cursor, &everything, end).await.expect("count"), 1, "the later commit is visible");
            Box::new(move || Box::pin(async move {
                sqlx::query("COMMIT").execute(&mut connection).await.expect("commit");
            }))
        } else {
            // SQLite has one writer: nothing else can commit while the transaction is open.
            let mut connection = sqlx::SqliteConnection::connect(&store.database_url).await.expect("connect");
            sqlx::query("BEGIN IMMEDIATE").execute(&mut connection).await.expect("begin");
            sqlx::query(INSERT_EVENT).bind(late).execute(&mut connection).await.expect("append");
            Box::new(move || Box::pin(async move {
                sqlx::query("COMMIT").execute(&mut connection).await.expect("commit");
            }))
        };

        // The reader runs while the transaction is open: it returns nothing rather than
        // skip ahead of it.
        let meanwhile = log.read_after(cursor, &everything, 100).await.expect("read");
        assert_eq!(meanwhile, vec![], "nothing after an open transaction's events is final yet");

        commit_late().await;
        if !store.is_postgres() {
            append_now(&store, sooner).await;
        }
        let (seen, after) = read_all(log.as_ref(), cursor).await;
        assert_eq!(seen, [late, sooner], "the late commit is read, then what followed it");
        let end = log.log_end().await.expect("the end");
        assert_eq!(log.held_back(after, &everything, end).await.expect("count"), 0);
    }

    /// `export` writes the log in commit order as NDJSON, whole, for one customer, or after a
    /// position; `history` shows one job's audit trail, with who cancelled it and why.
    async fn operators_export_the_log_and_read_a_jobs_history(app: TestApp) {
        let first = app.create_job(1).await;
        let other = app.create_job(2).await;
        app.bring_to(1, first, "scheduled").await;
        app.command(1, first, "cancel", json!({"reason": "customer moved away"})).await.assert_status(204);
        app.bring_to(2, other, "scheduled").await;

        let output = app.store.admin(&["export"]).await;
        let lines: Vec<Value> = succeeded(&output)
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is JSON"))
            .collect();
        assert_eq!(lines.len(), 5, "every event: {lines:?}");
        assert!(stderr(&output).contains("exported 5 event(s)"), "{}", stderr(&output));
        // The API's view of each job's events is what the export says, in the same order.
        let mut by_job: HashMap<String, Vec<Value>> = HashMap::new();
        for line in &lines {
            by_job.entry(line["aggregateId"].as_str().expect("an id").to_owned()).or_default().push(line.clone());
            assert_eq!(line["aggregateType"], "Job");
            assert!(line["position"].as_i64().is_some_and(|p| p > 0), "{line}");
        }
        for (customer, id) in [(1, first), (2, other)] {
            let from_api = app.events(customer, id).await;
            let exported = &by_job[&id.to_string()];
            assert_eq!(exported.len(), from_api.len());
            for (exported, api) in exported.iter().zip(&from_api) {
                for field in ["sequence", "eventType", "eventVersion", "payload", "metadata"] {
                    assert_eq!(exported[field], api[field], "{field} of {exported}");
                }
            }
        }
        let positions: Vec<i64> = lines.iter().filter_map(|l| l["position"].as_i64()).collect();
        let mut unique = positions.clone();
        unique.dedup();
        assert_eq!(unique.len(), positions.len(), "positions are unique: {positions:?}");
        assert_eq!(lines[3]["payload"]["reason"], "customer moved away");

        // One customer's part.
        let only_two: Vec<Value> = succeeded(&app.store.admin(&["export", "--customer", "2"]).await)
            .lines()
            .map(|line| serde_json::from_str(line).expect("JSON"))
            .collect();
        assert_eq!(only_two, by_job[&other.to_string()], "customer 2's events, and only those");

        // Resuming after a position gives exactly the rest.
        let resume_after = positions[1].to_string();
        let rest: Vec<Value> = succeeded(&app.store.admin(&["export", "--from-position", &resume_after]).await)
            .lines()
            .map(|line| serde_json::from_str(line).expect("JSON"))
            .collect();
        assert_eq!(rest, lines[2..].to_vec());
        let output = app.store.admin(&["export", "--from-position", "999999"]).await;
        assert_eq!(output.status.code(), Some(1));
        assert!(stderr(&output).contains("no event has the position 999999"), "{}", stderr(&output));

        // The audit trail of the cancelled job: who, when, why.
        let (client, _) = app.default_client(1).await;
        let history: Value = serde_json::from_str(&succeeded(
            &app.store.admin(&["history", &first.to_string(), "--format", "json"]).await,
        )).expect("JSON");
        let entries = history.as_array().expect("a list");
        let types: Vec<&str> = entries.iter().filter_map(|e| e["eventType"].as_str()).collect();
        assert_eq!(types, ["JobCreated", "JobScheduled", "JobCancelled"]);
        let cancelled = &entries[2];
        assert_eq!(cancelled["sequence"], 3);
        assert_eq!(cancelled["payload"]["reason"], "customer moved away");
        assert_eq!(cancelled["clientId"], client.to_string());
        assert_eq!(cancelled["customerId"], 1);
        assert!(cancelled["requestId"].as_str().is_some_and(|id| !id.is_empty()), "{cancelled}");
        assert!(cancelled["tokenId"].as_str().is_some_and(|id| !id.is_empty()), "{cancelled}");
        assert!(cancelled["recordedAt"].as_str().is_some(), "{cancelled}");
        assert_eq!(cancelled["eventVersion"], by_job[&first.to_string()][2]["eventVersion"]);

        let table = succeeded(&app.store.admin(&["history", &first.to_string()]).await);
        let header = table.lines().next().expect("a header");
        for column in ["SEQ", "RECORDED", "EVENT", "VERSION", "CLIENT", "REQUEST", "PAYLOAD"] {
            assert!(header.contains(column), "{header}");
        }
        let cancel_line = table.lines().find(|l| l.contains("JobCancelled")).expect("the cancellation");
        assert!(cancel_line.contains("customer moved away") && cancel_line.contains(&client.to_string()), "{cancel_line}");

        let unknown = Uuid::now_v7().to_string();
        let output = app.store.admin(&["history", &unknown]).await;
        assert_eq!(output.status.code(), Some(1));
        assert!(stderr(&output).contains(&format!("no job has the id {unknown}")), "{}", stderr(&output));
    }

    /// `migrate` applies what a database has not seen, says so, and is then a no-op.
    async fn migrate_applies_and_reports_the_migrations(store: TestStore) {
        let applied = succeeded(&store.admin(&["migrate"]).await);
        let versions: Vec<&str> = applied.lines().filter_map(|l| l.strip_prefix("applied ")).collect();
        assert_eq!(versions.len(), 13, "{applied}");
        assert!(versions[0].starts_with("20261129000001 event store"), "{applied}");
        let names = store.schema_names().await;
        assert!(names.iter().any(|n| n == "job_summary") && names.iter().any(|n| n == "idempotency_keys"));
        let again = succeeded(&store.admin(&["migrate"]).await);
        assert_eq!(again.trim(), "nothing to apply: the schema is up to date");
    }
}

/// Servers starting together on a new database take turns at the migrations: the one that
/// waits does not block inside a statement, which an index built CONCURRENTLY would wait
/// for (a deadlock that left the index invalid). Every index ends valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_migrating_together_leave_every_index_valid() {
    let store = TestStore::new(Backend::Postgres).await;
    let (first, second, third) = tokio::join!(
        projections::connect(&store.database_url),
        projections::connect(&store.database_url),
        projections::connect(&store.database_url),
    );
    for migrated in [first, second, third] {
        migrated.expect("each migrates, or finds the migrations applied");
    }
    let invalid = "SELECT count(*) FROM pg_index WHERE NOT indisvalid";
    assert_eq!(store.count(invalid).await, 0);
    assert_eq!(
        store
            .count("SELECT count(*) FROM pg_indexes WHERE indexname = 'events_by_customer'")
            .await,
        1
    );
}

/// An index a migration left invalid (its build interrupted) is built again at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_left_invalid_is_built_again_at_start() {
    let store = TestStore::new(Backend::Postgres).await;
    store.open().await;
    store
        .execute_sql(
            "UPDATE pg_index SET indisvalid = false \
             WHERE indexrelid = 'events_by_customer'::regclass",
        )
        .await;
    let invalid = "SELECT count(*) FROM pg_index WHERE NOT indisvalid";
    assert_eq!(store.count(invalid).await, 1);
    projections::connect(&store.database_url)
        .await
        .expect("migrates");
    assert_eq!(store.count(invalid).await, 0);
}
