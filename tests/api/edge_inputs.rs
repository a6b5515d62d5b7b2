//! Inputs at the edges of the contract, each of which once got past validation: bodies
//! that are JSON but not objects, NUL characters, instants RFC 3339 cannot write, and inputs
//! so large that echoing them made the problem too big to finish.
//! Each must be refused with a clear problem and change nothing.

use crate::backend_tests;
use crate::support::{Backend, TestApp};
use serde_json::json;

const CUSTOMER: i64 = 11;

backend_tests! {
    async fn bodies_must_be_json_objects(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        let put = |path: String, body: &'static str| {
            app.client
                .put(format!("{}{path}", app.address))
                .header("Customer-Id", CUSTOMER.to_string())
                .header("content-type", "application/json")
                .body(body)
        };
        // serde would read these arrays as structs, field by field.
        let cases = [
            (app.client.post(format!("{}/v1/jobs", app.address)).header("Customer-Id", CUSTOMER.to_string())
                .header("content-type", "application/json").body(r#"[1, 2, null, "REF"]"#), "POST /v1/jobs"),
            (put(format!("/v1/jobs/{id}/cancel"), r#"["array reason"]"#), "cancel"),
            (put(format!("/v1/jobs/{id}/unschedule"), "[]"), "unschedule"),
            (put(format!("/v1/jobs/{id}/start"), r#""text""#), "start"),
            (put(format!("/v1/jobs/{id}/cancel"), "null"), "cancel null"),
        ];
        for (request, what) in cases {
            let problem = app.send(request).await.assert_problem(400, "/problems/malformed-body");
            assert!(problem["detail"].as_str().unwrap_or_default().contains("object"), "{what}: {problem}");
        }
        let nested = app
            .post("/v1/jobs", CUSTOMER, json!({"typeId": 1, "contactId": 2, "customFields": [[3, "x"]]}))
            .await;
        nested.assert_problem(400, "/problems/malformed-body");
        // `null` is "no body" where every field is optional.
        app.command(CUSTOMER, id, "start", serde_json::Value::Null).await.assert_status(422);
        assert_eq!(app.job(CUSTOMER, id).await["status"], "new");
        assert_eq!(app.events(CUSTOMER, id).await.len(), 1, "nothing was recorded");
    }

    async fn nul_characters_are_refused_everywhere(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        let problem = app
            .post("/v1/jobs", CUSTOMER, json!({"typeId": 1, "contactId": 2, "description": "a\u{0}b"}))
            .await
            .assert_problem(422, "/problems/validation");
        assert_eq!(problem["errors"]["description"], json!(["must not contain the NUL character (U+0000)"]));
        app.command(CUSTOMER, id, "cancel", json!({"reason": "bad\u{0}reason"}))
            .await
            .assert_problem(422, "/problems/validation");
        app.patch(&format!("/v1/jobs/{id}"), CUSTOMER, json!({"customFields": [{"definitionId": 1, "value": "\u{0}"}]}))
            .await
            .assert_problem(422, "/problems/validation");
        app.get("/v1/jobs?reference=a%00b", CUSTOMER)
            .await
            .assert_problem(400, "/problems/invalid-query");
        assert_eq!(app.job(CUSTOMER, id).await["status"], "new");
    }

    async fn instants_outside_four_digit_years_are_refused(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        for start in ["9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00+23:59", "2026-12-01"] {
            let problem = app
                .command(CUSTOMER, id, "schedule", json!({"resourceId": 1, "vehicleId": 2, "plannedStart": start}))
                .await
                .assert_problem(422, "/problems/validation");
            assert!(problem["errors"]["plannedStart"].is_array(), "{start}: {problem}");
        }
        app.get("/v1/jobs?createdTo=9999-12-31T23:59:59-23:59", CUSTOMER)
            .await
            .assert_problem(400, "/problems/invalid-query");
        // The last instant with a four-digit year works, and both stores agree it is after now.
        let page = app.get("/v1/jobs?createdTo=9999-12-31T23:59:59.999999Z", CUSTOMER).await;
        page.assert_status(200);
        assert_eq!(page.json()["items"].as_array().map(Vec::len), Some(1));
        app.command(CUSTOMER, id, "schedule", json!({"resourceId": 1, "vehicleId": 2, "plannedStart": "9999-12-31T23:59:59Z"}))
            .await
            .assert_status(204);
        assert_eq!(app.job(CUSTOMER, id).await["plannedStart"], "9999-12-31T23:59:59Z");
    }

    async fn huge_inputs_are_named_in_a_problem_not_copied_into_it(app: TestApp) {
        // URLs stop at 64 KiB in the client; bodies can carry more.
        let huge = "9".repeat(20_000);
        let cases = [
            (format!("/v1/jobs?typeId={huge}"), "/problems/invalid-query"),
            (format!("/v1/jobs?{huge}=1"), "/problems/invalid-query"),
            (format!("/v1/jobs?status={huge}"), "/problems/invalid-query"),
            (format!("/v1/jobs/{huge}"), "/problems/invalid-job-id"),
        ];
        for (path, problem_type) in cases {
            let reply = app.get(&path, CUSTOMER).await;
            let problem = reply.assert_problem(400, problem_type);
            let detail = problem["detail"].as_str().unwrap_or_default();
            assert!(detail.len() < 200 && detail.contains('…'), "the input is excerpted: {detail}");
        }
        let token_request = app
            .send_as_is(
                app.client
                    .post(format!("{}/auth/tokens", app.address))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!("grant_type={}", "x".repeat(60_000))),
            )
            .await;
        token_request.assert_problem(400, "/problems/unsupported-grant-type");
        assert!(token_request.text.len() < 2_000);
        // Past the 64 KiB bound, a token request is refused unread.
        let oversized = app
            .send_as_is(
                app.client
                    .post(format!("{}/auth/tokens", app.address))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!("grant_type={}", "x".repeat(70_000))),
            )
            .await;
        oversized.assert_problem(413, "/problems/payload-too-large");
    }
}

backend_tests! {
    /// Hostile shapes of otherwise ordinary requests (issue 13's sweep): each a 4xx
    /// problem, never a 5xx, and nothing written.
    async fn hostile_inputs_are_refused_with_a_problem_and_change_nothing(app: TestApp) {
        let job = app.create_job(CUSTOMER).await;
        let (_, token) = app.default_client(CUSTOMER).await;
        let cancel = format!("{}/v1/jobs/{job}/cancel", app.address);
        let send = |request: reqwest::RequestBuilder| {
            app.send_as_is(request.bearer_auth(&token).header("content-type", "application/json"))
        };

        // Customer-Id twice: the same value or two, either order.
        for (first, second) in [(CUSTOMER, CUSTOMER), (CUSTOMER, 12), (12, CUSTOMER)] {
            let request = app
                .client
                .put(&cancel)
                .header("customer-id", first.to_string())
                .header("customer-id", second.to_string())
                .body(r#"{"reason": "two tenants at once"}"#);
            let problem = send(request).await.assert_problem(400, "/problems/invalid-customer-id");
            assert!(problem["detail"].as_str().is_some_and(|detail| detail.contains("once")), "{problem}");
        }

        let body_cases: Vec<(&str, Vec<u8>)> = vec![
            // A 60 KB member name, unknown to the schema.
            ("a 60 KB key", format!(r#"{{"reason": "x", "{}": 1}}"#, "k".repeat(60_000)).into_bytes()),
            // Nesting deeper than the parser's recursion limit.
            ("deep nesting", format!(r#"{{"reason": {}1{}}}"#, "[".repeat(5_000), "]".repeat(5_000)).into_bytes()),
            // Bytes that are not UTF-8, inside a string.
            ("invalid UTF-8", b"{\"reason\": \"caf\xe9\"}".to_vec()),
            // A 60 KB string where an object belongs.
            ("a 60 KB string", format!(r#""{}""#, "s".repeat(60_000)).into_bytes()),
        ];
        for (case, body) in body_cases {
            let reply = send(app.client.put(&cancel).header("customer-id", CUSTOMER.to_string()).body(body)).await;
            assert!((400..500).contains(&reply.status), "{case}: {} {}", reply.status, reply.text);
            let problem = reply.json();
            assert!(problem["type"].as_str().is_some_and(|kind| kind.starts_with("/problems/")), "{case}: {problem}");
            let detail = problem["detail"].as_str().unwrap_or_default();
            assert!(detail.len() < 300, "{case}: the input is not copied back: {} bytes", detail.len());
        }

        // Thousands of invalid custom fields: one error, not one per field (review C7).
        let fields: Vec<serde_json::Value> = (0..3000).map(|_| json!({"definitionId": 0})).collect();
        let body = json!({"typeId": 1, "contactId": 2, "customFields": fields}).to_string();
        let reply = send(app.client.post(format!("{}/v1/jobs", app.address)).header("customer-id", CUSTOMER.to_string()).body(body)).await;
        let problem = reply.assert_problem(422, "/problems/validation");
        assert_eq!(problem["errors"].as_object().map(|errors| errors.len()), Some(1), "{problem}");
        assert!(reply.text.len() < 2_000, "{} bytes", reply.text.len());

        // Over-long header values, one or many.
        let long = "v".repeat(17 * 1024);
        let request = app.client.put(&cancel).header("customer-id", CUSTOMER.to_string()).header("x-note", long.as_str());
        let problem = send(request.body(r#"{"reason": "headers"}"#)).await.assert_problem(431, "/problems/headers-too-large");
        assert!(problem["requestId"].as_str().is_some_and(|id| !id.is_empty()), "{problem}");
        let mut many = app.client.put(&cancel).header("customer-id", CUSTOMER.to_string());
        for n in 0..8 {
            many = many.header(format!("x-note-{n}"), "w".repeat(9 * 1024));
        }
        send(many.body(r#"{"reason": "headers"}"#)).await.assert_problem(431, "/problems/headers-too-large");

        assert_eq!(app.job(CUSTOMER, job).await["status"], "new", "nothing was cancelled");
        assert_eq!(app.events(CUSTOMER, job).await.len(), 1, "only the creation was recorded");
    }
}
