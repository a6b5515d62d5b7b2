//! Many writers on one job: optimistic concurrency, retried server-side, must never lose or
//! duplicate a write, answer 5xx, or let the projection drift from the events.

use crate::backend_tests;
use crate::support::{fold_events, Backend, TestApp};
use projections::JobView;
use serde_json::json;
use uuid::Uuid;

const CUSTOMER: i64 = 7;
const REQUESTS: usize = 50;

backend_tests! {
    async fn fifty_racing_cancels_and_starts_have_exactly_one_winner(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        app.bring_to(CUSTOMER, id, "scheduled").await;
        let app = std::sync::Arc::new(app);

        let mut tasks = Vec::new();
        for n in 0..REQUESTS {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                // Distinct reasons, so a losing cancel is refused rather than a no-op.
                let (action, body) = if n % 2 == 0 {
                    ("cancel", json!({"reason": format!("reason {n}")}))
                } else {
                    ("start", json!({"comment": format!("start {n}")}))
                };
                let reply = app.command(CUSTOMER, id, action, body).await;
                (action, reply)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (action, reply) = task.await.expect("request task");
            assert!(reply.status < 500, "no 5xx: {} {}", reply.status, reply.text);
            match reply.status {
                204 => winners.push(action),
                422 => {
                    let problem = reply.json();
                    let allowed = [
                        "/problems/job-not-cancellable",
                        "/problems/job-already-cancelled",
                        "/problems/job-not-startable",
                    ];
                    assert!(allowed.contains(&problem["type"].as_str().unwrap_or_default()), "{problem}");
                }
                other => panic!("unexpected status {other}: {}", reply.text),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one command wins: {winners:?}");

        let events = app.events(CUSTOMER, id).await;
        let sequences: Vec<i64> = events.iter().map(|e| e["sequence"].as_i64().unwrap_or(-1)).collect();
        assert_eq!(sequences, (1..=3).collect::<Vec<_>>(), "no gaps, no duplicates");
        let expected_type = if winners[0] == "cancel" { "JobCancelled" } else { "JobStarted" };
        assert_eq!(events[2]["eventType"], expected_type);

        let stored: JobView = serde_json::from_value(app.job(CUSTOMER, id).await).expect("a job view");
        let folded = fold_events(id, &events).expect("a created job");
        assert_eq!(stored, folded, "the projection equals the fold of the events");
    }

    async fn fifty_concurrent_changes_to_one_job_all_succeed(app: TestApp) {
        // Every write changes something, so none may be refused; the server must queue or
        // retry them, never answer 409 for a race it could have resolved.
        let id = app.create_job(CUSTOMER).await;
        every_concurrent_change_is_kept(vec![app], id).await;
    }

    async fn two_instances_on_one_store_resolve_their_races(app: TestApp) {
        // Writers in different processes are not queued by the in-process lock: they race,
        // lose on the events key, reload and retry. None may see a 409 or a 5xx.
        let id = app.create_job(CUSTOMER).await;
        let instances = vec![app.another_instance().await, app.another_instance().await];
        every_concurrent_change_is_kept(instances, id).await;
    }

    async fn concurrent_updates_on_many_jobs_are_all_kept(app: TestApp) {
        // Every acknowledged write survives: 10 jobs × 5 racing reference changes each.
        let app = std::sync::Arc::new(app);
        let mut ids = Vec::new();
        for _ in 0..10 {
            ids.push(app.create_job(CUSTOMER).await);
        }
        let mut tasks = Vec::new();
        for id in &ids {
            for n in 0..5 {
                let app = app.clone();
                let id = *id;
                tasks.push(tokio::spawn(async move {
                    app.patch(&format!("/v1/jobs/{id}"), CUSTOMER, json!({"reference": format!("ref-{n}")}))
                        .await
                        .status
                }));
            }
        }
        for task in tasks {
            assert_eq!(task.await.expect("task"), 204);
        }
        for id in ids {
            let events = app.events(CUSTOMER, id).await;
            assert_eq!(events.len(), 6, "1 create + 5 distinct updates");
            let stored: JobView = serde_json::from_value(app.job(CUSTOMER, id).await).expect("view");
            assert_eq!(Some(stored), fold_events(id, &events));
        }
    }
}

/// Sends `REQUESTS` simultaneous PATCHes to one job, spread over `instances` (apps sharing
/// one store), each changing the reference; asserts each was accepted and recorded exactly
/// once, in sequence, and that the projection equals the fold of the events.
async fn every_concurrent_change_is_kept(instances: Vec<TestApp>, id: Uuid) {
    let instances = std::sync::Arc::new(instances);
    let mut tasks = Vec::new();
    for n in 0..REQUESTS {
        let instances = instances.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"reference": format!("r{n}")});
            instances[n % instances.len()]
                .patch(&format!("/v1/jobs/{id}"), CUSTOMER, body)
                .await
        }));
    }
    for task in tasks {
        let reply = task.await.expect("task");
        assert_eq!(reply.status, 204, "{}", reply.text);
    }
    let app = &instances[0];
    let events = app.events(CUSTOMER, id).await;
    let sequences: Vec<i64> = events
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(sequences, (1..=1 + REQUESTS as i64).collect::<Vec<_>>());
    let stored: JobView = serde_json::from_value(app.job(CUSTOMER, id).await).expect("view");
    assert_eq!(Some(stored), fold_events(id, &events));
}
