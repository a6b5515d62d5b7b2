//! Bounded loading: a job is loaded from its latest snapshot (taken every
//! `projections::store::SNAPSHOT_EVERY` events, in the transaction of the events that reach
//! it) and the events after it, not from its whole history; a snapshot that no longer reads
//! is replayed around, never trusted.

use crate::backend_tests;
use crate::support::{Backend, TestApp};
use projections::store::SNAPSHOT_EVERY;
use serde_json::json;
use uuid::Uuid;

const CUSTOMER: i64 = 12;

/// Gives the job `count` more events: updates of its reference.
async fn rename(app: &TestApp, id: Uuid, count: usize) {
    for n in 0..count {
        let reply = app
            .patch(
                &format!("/v1/jobs/{id}"),
                CUSTOMER,
                json!({"reference": format!("R-{n}")}),
            )
            .await;
        reply.assert_status(204);
    }
}

backend_tests! {
    async fn a_job_is_loaded_from_its_snapshot_and_the_events_after_it(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        rename(&app, id, 2 * SNAPSHOT_EVERY + 29).await;
        let every = SNAPSHOT_EVERY as i64;
        assert_eq!(app.store.snapshots_of(id).await, vec![(2 * every, 2)], "one snapshot, the latest");

        // With the events the snapshot covers gone, the job is still whole: the snapshot
        // and the events after it are all a command reads. (Without the snapshot there
        // would be no creation event, and no job.)
        app.store.execute_sql(&format!(
            "DELETE FROM events WHERE aggregate_id = '{id}' AND sequence <= {}", 2 * every
        )).await;
        app.command(CUSTOMER, id, "cancel", json!({"reason": "moved"})).await.assert_status(204);
        app.command(CUSTOMER, id, "start", json!({})).await
            .assert_problem(422, "/problems/job-not-startable");
        let job = app.job(CUSTOMER, id).await;
        assert_eq!(job["status"], "cancelled");
        assert_eq!(job["version"], 2 * every + 31);
    }

    async fn a_snapshot_that_no_longer_reads_is_replayed_around_and_replaced(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        rename(&app, id, SNAPSHOT_EVERY + 4).await;
        let every = SNAPSHOT_EVERY as i64;
        assert_eq!(app.store.snapshots_of(id).await, vec![(every, 1)]);
        // A snapshot of another shape, as an older release might have left.
        app.store.execute_sql(&format!(
            "UPDATE snapshots SET payload = '{{\"state\": null, \"shape\": \"old\"}}' \
             WHERE aggregate_id = '{id}'"
        )).await;

        // Read from the events instead: the job exists and its rules hold.
        app.command(CUSTOMER, id, "resume", json!({})).await
            .assert_problem(422, "/problems/job-not-resumable");
        rename(&app, id, SNAPSHOT_EVERY).await;
        assert_eq!(app.job(CUSTOMER, id).await["reference"], format!("R-{}", SNAPSHOT_EVERY - 1));
        // The next boundary wrote a snapshot that reads again, in place of the broken one.
        let snapshots = app.store.snapshots_of(id).await;
        assert_eq!(snapshots.len(), 1, "{snapshots:?}");
        assert_eq!(snapshots[0].0, 2 * every);
        app.store.execute_sql(&format!(
            "DELETE FROM events WHERE aggregate_id = '{id}' AND sequence <= {}", 2 * every
        )).await;
        rename(&app, id, 1).await;
    }
}
