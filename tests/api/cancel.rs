//! The cancel contract, the heart of the API: `PUT /v1/jobs/{jobId}/cancel`.

use crate::backend_tests;
use crate::support::{Backend, TestApp};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

const CUSTOMER: i64 = 42;
const OTHER_CUSTOMER: i64 = 43;

backend_tests! {
    async fn cancelling_a_scheduled_job_records_the_reason(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        app.bring_to(CUSTOMER, id, "scheduled").await;

        let reply = app
            .command(CUSTOMER, id, "cancel", json!({"reason": "  customer moved house  "}))
            .await;
        reply.assert_status(204);
        assert!(reply.text.is_empty(), "204 has no body");
        assert!(reply.header("x-request-id").is_some());

        let job = app.job(CUSTOMER, id).await;
        assert_eq!(job["status"], "cancelled");
        assert_eq!(job["cancellation"]["reason"], "customer moved house");
        let (client_id, _) = app.default_client(CUSTOMER).await;
        assert_eq!(job["cancellation"]["cancelledBy"], client_id.to_string());
        assert!(job["cancellation"]["cancelledAt"].is_string());

        let events = app.events(CUSTOMER, id).await;
        let last = events.last().expect("events");
        assert_eq!(last["eventType"], "JobCancelled");
        assert_eq!(last["payload"]["reason"], "customer moved house");
        assert_eq!(
            last["metadata"]["requestId"].as_str(),
            reply.header("x-request-id"),
            "the audit trail names the request that cancelled"
        );
        assert_eq!(last["metadata"]["customerId"], "42");
        assert_eq!(last["metadata"]["clientId"], client_id.to_string(), "the audit trail names who cancelled");
    }

    async fn every_cancellable_status_can_be_cancelled(app: TestApp) {
        for status in ["new", "scheduled", "unscheduled", "sent", "read", "accepted", "refused", "onTheWay"] {
            let id = app.create_job(CUSTOMER).await;
            app.bring_to(CUSTOMER, id, status).await;
            app.command(CUSTOMER, id, "cancel", json!({"reason": "not needed"}))
                .await
                .assert_status(204);
            assert_eq!(app.job(CUSTOMER, id).await["status"], "cancelled", "from {status}");
        }
    }

    async fn work_that_has_begun_cannot_be_cancelled(app: TestApp) {
        for status in ["started", "suspended", "completedOk", "completedWithIssues"] {
            let id = app.create_job(CUSTOMER).await;
            app.bring_to(CUSTOMER, id, status).await;
            let events_before = app.events(CUSTOMER, id).await.len();
            let problem = app
                .command(CUSTOMER, id, "cancel", json!({"reason": "too late"}))
                .await
                .assert_problem(422, "/problems/job-not-cancellable");
            assert!(
                problem["detail"].as_str().unwrap_or_default().contains(status),
                "the detail names the current status: {problem}"
            );
            assert_eq!(app.job(CUSTOMER, id).await["status"], status, "nothing changed");
            assert_eq!(app.events(CUSTOMER, id).await.len(), events_before, "no event");
        }
    }

    async fn repeating_the_same_cancel_is_a_no_op(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        app.command(CUSTOMER, id, "cancel", json!({"reason": "duplicate order"}))
            .await
            .assert_status(204);
        let events = app.events(CUSTOMER, id).await.len();
        // The same reason (after trimming) again: 204, and no second event.
        app.command(CUSTOMER, id, "cancel", json!({"reason": " duplicate order "}))
            .await
            .assert_status(204);
        assert_eq!(app.events(CUSTOMER, id).await.len(), events);
        // Another reason would rewrite history: refused.
        app.command(CUSTOMER, id, "cancel", json!({"reason": "something else"}))
            .await
            .assert_problem(422, "/problems/job-already-cancelled");
        assert_eq!(app.events(CUSTOMER, id).await.len(), events);
        assert_eq!(app.job(CUSTOMER, id).await["cancellation"]["reason"], "duplicate order");
    }

    async fn the_reason_is_required_not_blank_and_at_most_500_characters(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        for (body, message) in [
            (json!({"reason": ""}), "must not be blank"),
            (json!({"reason": " \t\n "}), "must not be blank"),
            (json!({"reason": "x".repeat(501)}), "must be at most 500 characters"),
            (json!({}), "is required"),
            (json!({"reason": null}), "is required"),
        ] {
            let problem = app
                .command(CUSTOMER, id, "cancel", body.clone())
                .await
                .assert_problem(422, "/problems/validation");
            assert_eq!(problem["errors"]["reason"], json!([message]), "body {body}");
        }
        assert_eq!(app.job(CUSTOMER, id).await["status"], "new", "nothing changed");
        assert_eq!(app.events(CUSTOMER, id).await.len(), 1);
        // Exactly 500 characters (multi-byte ones count once) is fine.
        app.command(CUSTOMER, id, "cancel", json!({"reason": "é".repeat(500)}))
            .await
            .assert_status(204);
    }

    async fn malformed_requests_are_400_and_change_nothing(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        let path = format!("/v1/jobs/{id}/cancel");
        let raw = |body: &'static str, content_type: &'static str, customer: Option<&'static str>| {
            let mut request = app
                .client
                .put(format!("{}{path}", app.address))
                .header("content-type", content_type)
                .body(body);
            if let Some(customer) = customer {
                request = request.header("Customer-Id", customer);
            }
            request
        };
        app.send(raw("{\"reason\": ", "application/json", Some("42")))
            .await
            .assert_problem(400, "/problems/malformed-body");
        app.send(raw("{\"reason\": 5}", "application/json", Some("42")))
            .await
            .assert_problem(400, "/problems/malformed-body");
        app.send(raw("{\"reason\": \"x\", \"extra\": 1}", "application/json", Some("42")))
            .await
            .assert_problem(400, "/problems/malformed-body");
        app.send(raw("{\"reason\": \"x\"}", "application/json", None))
            .await
            .assert_problem(400, "/problems/invalid-customer-id");
        for bad in ["0", "-1", "abc", "1.5", "99999999999999999999"] {
            app.send(raw("{\"reason\": \"x\"}", "application/json", Some(bad)))
                .await
                .assert_problem(400, "/problems/invalid-customer-id");
        }
        app.send(raw("reason=x", "text/plain", Some("42")))
            .await
            .assert_problem(415, "/problems/unsupported-media-type");
        let huge = format!("{{\"reason\": \"{}\"}}", "x".repeat(70 * 1024));
        app.send(
            app.client
                .put(format!("{}{path}", app.address))
                .header("content-type", "application/json")
                .header("Customer-Id", "42")
                .body(huge),
        )
        .await
        .assert_problem(413, "/problems/payload-too-large");
        app.request(Method::PUT, "/v1/jobs/not-a-uuid/cancel", Some(CUSTOMER), Some(&json!({"reason": "x"})))
            .await
            .assert_problem(400, "/problems/invalid-job-id");
        assert_eq!(app.job(CUSTOMER, id).await["status"], "new");
        assert_eq!(app.events(CUSTOMER, id).await.len(), 1);
    }

    async fn unknown_and_foreign_jobs_are_404(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        app.command(CUSTOMER, Uuid::now_v7(), "cancel", json!({"reason": "x"}))
            .await
            .assert_problem(404, "/problems/job-not-found");
        // Another customer's job answers exactly like a missing one, even with a bad body.
        let foreign = app
            .command(OTHER_CUSTOMER, id, "cancel", json!({"reason": "x"}))
            .await
            .assert_problem(404, "/problems/job-not-found");
        let missing = app
            .command(OTHER_CUSTOMER, Uuid::now_v7(), "cancel", json!({"reason": ""}))
            .await
            .assert_problem(404, "/problems/job-not-found");
        assert_eq!(foreign["detail"], missing["detail"]);
        // Existence is checked before the body's rules: a foreign job with a blank reason is
        // 404, not 422 — the rule answer would confirm the job exists.
        app.command(OTHER_CUSTOMER, id, "cancel", json!({"reason": ""}))
            .await
            .assert_problem(404, "/problems/job-not-found");
        assert_eq!(app.job(CUSTOMER, id).await["status"], "new", "untouched");
    }

    async fn the_request_id_of_the_caller_is_kept(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        let reply = app
            .send(
                app.client
                    .put(format!("{}/v1/jobs/{id}/cancel", app.address))
                    .header("content-type", "application/json")
                    .header("Customer-Id", "42")
                    .header("x-request-id", "trace-abc-123")
                    .body(r#"{"reason": "test"}"#),
            )
            .await;
        reply.assert_status(204);
        assert_eq!(reply.header("x-request-id"), Some("trace-abc-123"));
        let events = app.events(CUSTOMER, id).await;
        assert_eq!(events.last().map(|e| e["metadata"]["requestId"].clone()), Some(json!("trace-abc-123")));
    }
}
