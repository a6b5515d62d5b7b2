//! `GET /metrics`: Prometheus counters of requests, command outcomes, token requests and
//! authentication refusals. The recorder is
//! process-wide and tests run in parallel, so assertions are on increases, never on exact
//! totals.

use crate::backend_tests;
use crate::support::{Backend, TestApp};
use reqwest::Method;
use serde_json::json;

const CUSTOMER: i64 = 21;

/// The value of the sample of `name` whose labels include all of `labels`, if any.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| {
            labels
                .iter()
                .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Asserts that each counter grew by at least one between the two scrapes.
#[track_caller]
fn assert_each_grew(before: &str, after: &str, counters: &[(&str, &[(&str, &str)])]) {
    let count =
        |text: &str, name: &str, labels: &[(&str, &str)]| sample(text, name, labels).unwrap_or(0.0);
    for (name, labels) in counters {
        assert!(
            count(after, name, labels) >= count(before, name, labels) + 1.0,
            "{name} {labels:?} grew:\n{after}"
        );
    }
}

async fn scrape(app: &TestApp) -> String {
    let reply = app.request(Method::GET, "/metrics", None, None).await;
    reply.assert_status(200);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        reply.header("content-type")
    );
    reply.text
}

backend_tests! {
    async fn requests_and_command_outcomes_are_counted(app: TestApp) {
        let cancels = [("command", "cancel"), ("outcome", "accepted")];
        let refused_starts = [("command", "start"), ("outcome", "refused")];
        let creates = [("method", "POST"), ("route", "/v1/jobs"), ("status", "201")];
        let before = scrape(&app).await;

        let id = app.create_job(CUSTOMER).await;
        app.command(CUSTOMER, id, "start", json!({})).await.assert_status(422);
        app.command(CUSTOMER, id, "cancel", json!({"reason": "measured"})).await.assert_status(204);
        app.get("/v1/no/such/route", CUSTOMER).await.assert_status(404);

        let after = scrape(&app).await;
        assert_each_grew(&before, &after, &[
            ("jobs_http_requests_total", &creates[..]),
            ("jobs_commands_total", &cancels[..]),
            ("jobs_commands_total", &refused_starts[..]),
            // The create and the cancel were each committed in a group (of one, or more
            // with other tests' commands); its sizes have buckets of their own.
            ("jobs_group_commit_size_bucket", &[("le", "+Inf")][..]),
            ("jobs_group_commit_size_bucket", &[("le", "128")][..]),
        ]);
        let latency = [("route", "/v1/jobs/{jobId}/cancel"), ("le", "+Inf")];
        assert!(sample(&after, "jobs_http_request_duration_seconds_bucket", &latency).unwrap_or(0.0) >= 1.0, "{after}");
        // Unmatched paths are not labels: a scan of random URLs cannot grow the series.
        assert!(!after.contains("/v1/no/such/route"));
    }

    async fn token_requests_and_auth_rejections_are_counted(app: TestApp) {
        let issued = [("outcome", "issued")];
        let invalid_client = [("outcome", "invalid_client")];
        let missing = [("reason", "missing_token")];
        let foreign = [("reason", "customer_not_allowed")];
        let before = scrape(&app).await;

        let client = app.store.register_client(&jobs_service::auth::Scope::ALL, &[CUSTOMER]).await;
        let token = crate::support::request_token(&app.client, &app.address, &client, None).await;
        assert_eq!(token.status(), 200);
        let impostor = crate::support::TestClient { id: client.id, secret: "wrong".into() };
        let refused = crate::support::request_token(&app.client, &app.address, &impostor, None).await;
        assert_eq!(refused.status(), 401);
        app.send_as_is(app.build(Method::GET, "/v1/jobs", Some(CUSTOMER), None)).await.assert_status(401);
        app.get("/v1/jobs", CUSTOMER).await.assert_status(200);
        let (_, other_token) = app.default_client(CUSTOMER + 1).await;
        app.send_as_is(app.build(Method::GET, "/v1/jobs", Some(CUSTOMER), None).bearer_auth(other_token))
            .await
            .assert_status(403);

        let after = scrape(&app).await;
        assert_each_grew(&before, &after, &[
            ("jobs_token_requests_total", &issued[..]),
            ("jobs_token_requests_total", &invalid_client[..]),
            ("jobs_auth_rejections_total", &missing[..]),
            ("jobs_auth_rejections_total", &foreign[..]),
        ]);
    }
}
