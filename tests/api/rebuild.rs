//! `jobs-admin rebuild` and `jobs-admin verify`: the projection derived afresh from the
//! events, beside a live service, and checked against them.

use crate::backend_tests;
use crate::support::{stderr, stdout, succeeded, Backend, TestApp};
use projections::rebuild::{rebuild, rebuild_with, RebuildProgress, RebuildSettings};
use projections::StoreError;
use reqwest::Method;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use uuid::Uuid;

const EVERY_STATUS: [&str; 13] = [
    "new",
    "scheduled",
    "unscheduled",
    "sent",
    "read",
    "accepted",
    "refused",
    "onTheWay",
    "started",
    "suspended",
    "completedOk",
    "completedWithIssues",
    "cancelled",
];

/// A job in every status, for two customers; returns the ids with their customer.
async fn jobs_in_every_status(app: &TestApp) -> Vec<(i64, Uuid)> {
    let mut jobs = Vec::new();
    for customer in [1, 2] {
        for status in EVERY_STATUS {
            let id = app.create_job(customer).await;
            app.bring_to(customer, id, status).await;
            jobs.push((customer, id));
        }
    }
    jobs
}

/// Reports nothing; the tests look at the result.
struct Quiet;

impl RebuildProgress for Quiet {
    fn started(&mut self, _total: u64) {}
    fn advanced(&mut self, _replayed: u64) {}
    fn swapping(&mut self) {}
}

/// Says when the rebuild has begun to replay, so a test can stop it there.
struct StopWhenStarted(Option<tokio::sync::oneshot::Sender<()>>);

impl RebuildProgress for StopWhenStarted {
    fn started(&mut self, _total: u64) {
        if let Some(started) = self.0.take() {
            let _ = started.send(());
        }
    }
    fn advanced(&mut self, _replayed: u64) {}
    fn swapping(&mut self) {}
}

/// Asks the rebuild to stop once it has replayed a batch, as Ctrl-C does.
struct StopAfterABatch<'a>(&'a AtomicBool);

impl RebuildProgress for StopAfterABatch<'_> {
    fn started(&mut self, _total: u64) {}
    fn advanced(&mut self, _replayed: u64) {
        self.0.store(true, Ordering::Relaxed);
    }
    fn swapping(&mut self) {
        panic!("a stopped rebuild must not swap");
    }
}

backend_tests! {
    /// Rebuilding a projection that is right changes not a single row, nor the schema.
    async fn a_rebuild_gives_back_the_rows_it_replaced(app: TestApp) {
        let jobs = jobs_in_every_status(&app).await;
        let rows_before = app.store.projection_rows().await;
        let schema_before = app.store.schema_names().await;
        assert_eq!(rows_before.0.len(), jobs.len());

        let events = app.store.open().await.log().event_count().await.expect("count");
        let output = succeeded(&app.store.admin(&["rebuild"]).await);
        assert!(output.contains(&format!("rebuilt the projection from {events} event(s)")), "{output}");
        assert!(output.contains("events/s"), "{output}");

        assert_eq!(app.store.projection_rows().await, rows_before);
        assert_eq!(app.store.schema_names().await, schema_before, "same tables and index names, nothing left over");
        let verified = succeeded(&app.store.admin(&["verify"]).await);
        assert_eq!(verified.trim(), format!("{} job(s) checked: the projection matches the events", jobs.len()));

        // The service goes on over the rebuilt tables.
        let (customer, id) = jobs[0];
        app.command(customer, id, "cancel", json!({"reason": "after the rebuild"})).await.assert_status(204);
        assert_eq!(app.job(customer, id).await["cancellation"]["reason"], "after the rebuild");
        let listed = app.get("/v1/jobs?status=cancelled", 1).await.assert_status(200).json();
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(2));
        succeeded(&app.store.admin(&["verify"]).await);
    }

    /// Jobs whose events interleave, replayed a few events at a time with room for fewer
    /// summaries than there are jobs: summaries are written back, read again and replaced,
    /// and text that needs escaping on its way in (tabs, newlines, backslashes) arrives intact.
    async fn a_rebuild_in_small_steps_gives_the_same_rows(app: TestApp) {
        let mut jobs = Vec::new();
        for _ in 0..6 {
            jobs.push(app.create_job(1).await);
        }
        let awkward = "waiting\tfor \\ parts\nand \\N then \"more\"\r";
        let steps = [
            ("schedule", json!({"resourceId": 7, "vehicleId": 8, "plannedStart": "2026-12-01T08:30:00Z"})),
            ("start", json!({"comment": "on site\tnow"})),
            ("suspend", json!({"reason": awkward})),
            ("resume", json!({})),
            ("result", json!({"outcome": "completedWithIssues", "notes": "C:\\temp\nleft"})),
        ];
        for (action, body) in steps {
            for id in &jobs {
                app.command(1, *id, action, body.clone()).await.assert_status(204);
            }
        }
        let rows_before = app.store.projection_rows().await;
        assert!(rows_before.1.iter().any(|row| row.comment.as_deref() == Some(awkward)));

        let store = app.store.open().await.rebuilder();
        let settings = RebuildSettings { batch: 4, views_held: 4 };
        let report = rebuild_with(&store, &mut Quiet, settings, &AtomicBool::new(false)).await.expect("the rebuild runs");
        assert_eq!(report.events, 36);
        assert_eq!(app.store.projection_rows().await, rows_before);
        succeeded(&app.store.admin(&["verify"]).await);
        assert_eq!(app.job(1, jobs[2]).await["status"], "completedWithIssues");
    }

    /// While a rebuild runs, writers keep writing and readers keep reading: no request fails,
    /// no existing job is ever missing, and the result matches the events.
    async fn a_rebuild_under_load_fails_no_request(app: TestApp) {
        let app = Arc::new(app);
        let seeded: Vec<(i64, Uuid)> = jobs_in_every_status(&app).await;
        let known = Arc::new(tokio::sync::Mutex::new(seeded));
        let stop = Arc::new(AtomicBool::new(false));

        let writer = {
            let (app, known, stop) = (app.clone(), known.clone(), stop.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                let mut commands = 0;
                while !stop.load(Ordering::Relaxed) {
                    let reply = app.post("/v1/jobs", 1, json!({"typeId": 1, "contactId": 2})).await;
                    commands += 1;
                    let Some(id) = reply.header("location").and_then(|l| l.rsplit('/').next()).and_then(|id| id.parse::<Uuid>().ok()) else {
                        failures.push(format!("create: {}", reply.status));
                        continue;
                    };
                    known.lock().await.push((1, id));
                    for (action, body) in [
                        ("schedule", json!({"resourceId": 7, "vehicleId": 8, "plannedStart": "2026-12-01T08:30:00Z"})),
                        ("cancel", json!({"reason": "changed plans"})),
                    ] {
                        let reply = app.command(1, id, action, body).await;
                        commands += 1;
                        if reply.status != 204 {
                            failures.push(format!("{action}: {} {}", reply.status, reply.text));
                        }
                    }
                }
                (commands, failures)
            })
        };
        let reader = {
            let (app, known, stop) = (app.clone(), known.clone(), stop.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                let mut reads = 0;
                let mut next = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let (customer, id) = {
                        let known = known.lock().await;
                        next = (next + 7) % known.len();
                        known[next]
                    };
                    let reply = app.send(app.build(Method::GET, &format!("/v1/jobs/{id}"), Some(customer), None)).await;
                    reads += 1;
                    if reply.status != 200 {
                        failures.push(format!("GET {id}: {} {}", reply.status, reply.text));
                    }
                    let list = app.get("/v1/jobs?pageSize=5", customer).await;
                    reads += 1;
                    if list.status != 200 {
                        failures.push(format!("list: {} {}", list.status, list.text));
                    }
                }
                (reads, failures)
            })
        };

        for _ in 0..4 {
            let output = app.store.admin(&["rebuild"]).await;
            assert!(output.status.success(), "{}", stderr(&output));
        }
        stop.store(true, Ordering::Relaxed);
        let (commands, write_failures) = writer.await.expect("the writer ran");
        let (reads, read_failures) = reader.await.expect("the reader ran");
        assert_eq!(write_failures, Vec::<String>::new(), "no command failed");
        assert_eq!(read_failures, Vec::<String>::new(), "no read failed");
        assert!(commands > 0 && reads > 0, "the load ran ({commands} commands, {reads} reads)");

        let verified = app.store.admin(&["verify"]).await;
        assert!(verified.status.success(), "{}", stdout(&verified));
        let jobs = known.lock().await.len();
        assert!(stdout(&verified).contains(&format!("{jobs} job(s) checked")), "{}", stdout(&verified));
    }

    /// A damaged projection: `verify` names each difference and fails; `rebuild` repairs it.
    async fn verify_finds_damage_and_rebuild_repairs_it(app: TestApp) {
        let cancelled = app.create_job(1).await;
        app.bring_to(1, cancelled, "cancelled").await;
        let suspended = app.create_job(1).await;
        app.bring_to(1, suspended, "suspended").await;
        let intact = app.create_job(2).await;
        let lost = app.create_job(2).await;
        let rows_before = app.store.projection_rows().await;

        app.store.execute_sql(&format!(
            "UPDATE job_summary SET status = 'new' WHERE job_id = '{cancelled}'; \
             DELETE FROM job_status_history WHERE job_id = '{suspended}' AND sequence = 2; \
             DELETE FROM job_summary WHERE job_id = '{lost}'; \
             INSERT INTO job_summary SELECT '{}', customer_id, status, type_id, contact_id, \
                 reference, created_at, updated_at, version, document \
                 FROM job_summary WHERE job_id = '{intact}'",
            Uuid::nil()
        )).await;
        assert_eq!(app.get("/v1/jobs?status=cancelled", 1).await.json()["items"], json!([]), "the damage shows");

        let output = app.store.admin(&["verify"]).await;
        assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
        let report = stdout(&output);
        let line_about = |id: Uuid, words: &str| {
            report.lines().any(|l| l.starts_with(&format!("job {id}: ")) && l.contains(words))
        };
        assert!(line_about(cancelled, r#"summary column status is "new", the events say "cancelled""#), "{report}");
        assert!(line_about(suspended, "no status history row for event #2 (scheduled)"), "{report}");
        assert!(line_about(lost, "no summary row; the events make it new at version 1"), "{report}");
        assert!(line_about(Uuid::nil(), "a summary row, but no events create this job"), "{report}");
        assert!(!report.contains(&intact.to_string()), "the intact job is not reported: {report}");
        assert!(report.lines().last().is_some_and(|l| l.contains("difference(s) in 5 job(s) checked")), "{report}");
        assert!(stderr(&output).contains("difference(s) between the projection and the events"), "{}", stderr(&output));

        succeeded(&app.store.admin(&["rebuild"]).await);
        assert_eq!(app.store.projection_rows().await, rows_before, "repaired to what the events say");
        succeeded(&app.store.admin(&["verify"]).await);
        assert_eq!(app.job(1, cancelled).await["status"], "cancelled");
        app.get(&format!("/v1/jobs/{lost}"), 2).await.assert_status(200);
    }

    /// A rebuild stopped midway (Ctrl-C drops it; a crash leaves its tables) changes nothing
    /// live, and the next one starts clean. Two rebuilds never run at once.
    async fn an_interrupted_rebuild_changes_nothing_and_the_next_starts_clean(app: TestApp) {
        jobs_in_every_status(&app).await;
        let rows_before = app.store.projection_rows().await;
        let schema_before = app.store.schema_names().await;
        let store = app.store.open().await.rebuilder();

        // A crash: the rebuild is dropped midway, with its own connections (closing them
        // is what the end of a process does to its transactions and locks).
        let crashing = projections::connect(&app.store.database_url).await.expect("a store").rebuilder();
        let (started, at_start) = tokio::sync::oneshot::channel();
        let mut progress = StopWhenStarted(Some(started));
        tokio::select! {
            _ = rebuild(&crashing, &mut progress) => panic!("the rebuild was to be stopped"),
            _ = at_start => {}
        }
        drop(crashing);
        // What a crash leaves: the half-built tables, here with a bogus row in them.
        assert!(app.store.schema_names().await.iter().any(|n| n == "rebuild_job_summary"));
        app.store.execute_sql(&format!(
            "INSERT INTO rebuild_job_summary SELECT '{}', customer_id, status, type_id, contact_id, \
                 reference, created_at, updated_at, version, document FROM job_summary",
            Uuid::nil()
        ).replace("FROM job_summary", "FROM job_summary LIMIT 1")).await;
        // And what a crash just after an earlier swap's commit leaves: a table it replaced.
        app.store.execute_sql("CREATE TABLE replaced_job_summary AS SELECT * FROM job_summary").await;
        assert_eq!(app.store.projection_rows().await, rows_before, "the live projection is untouched");
        app.get("/v1/jobs", 1).await.assert_status(200);

        // One rebuild at a time.
        let lease = store.begin_rebuild().await.expect("the lease");
        assert!(matches!(store.begin_rebuild().await, Err(StoreError::RebuildRunning)));
        let output = app.store.admin(&["rebuild"]).await;
        assert_eq!(output.status.code(), Some(1));
        assert!(stderr(&output).contains("another rebuild of the projection is running"), "{}", stderr(&output));
        drop(lease);

        let report = rebuild(&store, &mut Quiet).await.expect("the next rebuild runs");
        assert!(report.events > 0);
        assert_eq!(app.store.projection_rows().await, rows_before);
        assert_eq!(app.store.schema_names().await, schema_before, "no leftovers");
        succeeded(&app.store.admin(&["verify"]).await);

        // Stopped on request (Ctrl-C) between batches: it drops what it built itself.
        let stop = AtomicBool::new(false);
        let small = RebuildSettings { batch: 3, views_held: 4 };
        let outcome = rebuild_with(&store, &mut StopAfterABatch(&stop), small, &stop).await;
        assert!(matches!(outcome, Err(StoreError::Interrupted)), "{outcome:?}");
        assert_eq!(app.store.schema_names().await, schema_before, "nothing left over");
        assert_eq!(app.store.projection_rows().await, rows_before);
    }
}
