//! Conditional writes: every job answer carries the job's version as its `ETag`, and a
//! write that names a stale version in `If-Match` is refused with 412 and records nothing —
//! also when two servers race with the same tag.

use crate::backend_tests;
use crate::support::{Backend, Reply, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const CUSTOMER: i64 = 11;

/// A write to the job with `If-Match` set to each of `if_match`.
async fn conditional(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Value,
    if_match: &[&str],
) -> Reply {
    let mut request = app.build(method, path, Some(CUSTOMER), Some(&body));
    for value in if_match {
        request = request.header("If-Match", *value);
    }
    app.send(request).await
}

async fn cancel_if(app: &TestApp, id: Uuid, reason: &str, if_match: &[&str]) -> Reply {
    let path = format!("/v1/jobs/{id}/cancel");
    conditional(app, Method::PUT, &path, json!({"reason": reason}), if_match).await
}

async fn rename_if(app: &TestApp, id: Uuid, reference: &str, if_match: &[&str]) -> Reply {
    let path = format!("/v1/jobs/{id}");
    conditional(
        app,
        Method::PATCH,
        &path,
        json!({"reference": reference}),
        if_match,
    )
    .await
}

async fn event_count(app: &TestApp, id: Uuid) -> usize {
    app.events(CUSTOMER, id).await.len()
}

backend_tests! {
    async fn every_job_answer_carries_the_version_it_leaves_the_job_at(app: TestApp) {
        let created = app.post("/v1/jobs", CUSTOMER, json!({"typeId": 1, "contactId": 2})).await;
        created.assert_status(201);
        assert_eq!(created.header("etag"), Some("\"1\""));
        let id: Uuid = created.json()["id"].as_str().and_then(|id| id.parse().ok()).expect("an id");

        let scheduled = app.command(CUSTOMER, id, "schedule",
            json!({"resourceId": 5, "vehicleId": 6, "plannedStart": "2026-12-01T08:30:00Z"})).await;
        scheduled.assert_status(204);
        assert_eq!(scheduled.header("etag"), Some("\"2\""));
        assert_eq!(app.get(&format!("/v1/jobs/{id}"), CUSTOMER).await.header("etag"), Some("\"2\""));

        // A write that records nothing leaves the version as it was.
        let cancelled = cancel_if(&app, id, "moved", &[]).await;
        assert_eq!(cancelled.header("etag"), Some("\"3\""));
        let again = cancel_if(&app, id, "moved", &[]).await;
        again.assert_status(204);
        assert_eq!(again.header("etag"), Some("\"3\""));
        assert_eq!(event_count(&app, id).await, 3);
    }

    async fn a_current_tag_lets_the_write_through_and_a_stale_one_records_nothing(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        let first = rename_if(&app, id, "A-1", &["\"1\""]).await;
        first.assert_status(204);
        assert_eq!(first.header("etag"), Some("\"2\""));

        // A colleague's PATCH based on the same (now stale) read.
        let stale = rename_if(&app, id, "B-1", &["\"1\""]).await;
        let problem = stale.assert_problem(412, "/problems/precondition-failed");
        assert_eq!(problem["status"], 412);
        assert_eq!(event_count(&app, id).await, 2, "nothing recorded");
        assert_eq!(app.job(CUSTOMER, id).await["reference"], "A-1");

        // Any tag in a list, and `*`, match; a weak tag never does on a write.
        rename_if(&app, id, "C-1", &["\"7\", \"2\""]).await.assert_status(204);
        rename_if(&app, id, "D-1", &["\"9\"", "\"3\""]).await.assert_status(204);
        rename_if(&app, id, "E-1", &["*"]).await.assert_status(204);
        rename_if(&app, id, "F-1", &["W/\"5\""]).await.assert_problem(412, "/problems/precondition-failed");
        assert_eq!(app.job(CUSTOMER, id).await["reference"], "E-1");
        assert_eq!(event_count(&app, id).await, 5);
    }

    async fn if_match_that_is_not_an_entity_tag_is_refused_before_anything_happens(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        for value in ["1", "\"1", "\"1\" \"2\"", "W/1", "", "*, \"1\""] {
            let reply = cancel_if(&app, id, "no", &[value]).await;
            reply.assert_problem(400, "/problems/invalid-if-match");
        }
        assert_eq!(event_count(&app, id).await, 1);
        assert_eq!(app.job(CUSTOMER, id).await["status"], "new");
    }

    async fn not_found_comes_before_the_precondition_and_the_precondition_before_the_body(app: TestApp) {
        let unknown = Uuid::now_v7();
        cancel_if(&app, unknown, "no", &["\"1\""]).await.assert_problem(404, "/problems/job-not-found");
        // Another customer's job is not found either, whatever the tag says.
        let foreign = app.create_job(CUSTOMER + 1).await;
        cancel_if(&app, foreign, "no", &["*"]).await.assert_problem(404, "/problems/job-not-found");

        let id = app.create_job(CUSTOMER).await;
        // A stale tag is reported before the body's field rules (RFC 9110 §13.2.2)…
        cancel_if(&app, id, "  ", &["\"9\""]).await.assert_problem(412, "/problems/precondition-failed");
        // …and with a current tag the field rules answer as usual.
        cancel_if(&app, id, "  ", &["\"1\""]).await.assert_problem(422, "/problems/validation");
        // A lifecycle rule is checked on the job the tag names.
        app.command(CUSTOMER, id, "resume", json!({})).await
            .assert_problem(422, "/problems/job-not-resumable");
        let resume = conditional(&app, Method::PUT, &format!("/v1/jobs/{id}/resume"), json!({}), &["\"1\""]).await;
        resume.assert_problem(422, "/problems/job-not-resumable");
        assert_eq!(event_count(&app, id).await, 1);
    }

    async fn two_servers_racing_with_the_same_tag_record_one_write(app: TestApp) {
        let other = app.another_instance().await;
        for round in 0..5 {
            let id = app.create_job(CUSTOMER).await;
            let (left_name, right_name) = (format!("left {round}"), format!("right {round}"));
            let (left, right) = tokio::join!(
                rename_if(&app, id, &left_name, &["\"1\""]),
                rename_if(&other, id, &right_name, &["\"1\""]),
            );
            let mut statuses = [left.status, right.status];
            statuses.sort();
            assert_eq!(statuses, [204, 412], "one wins, one is told its read is stale: {} / {}", left.text, right.text);
            let winner = if left.status == 204 { left_name } else { right_name };
            assert_eq!(app.job(CUSTOMER, id).await["reference"], winner);
            assert_eq!(event_count(&app, id).await, 2, "exactly one write recorded");
        }
    }
}
