//! The history endpoints — `GET /v1/jobs/{jobId}/statusHistory` and the raw audit trail
//! `GET /v1/jobs/{jobId}/events` — and the health probes.

use crate::backend_tests;
use crate::support::{timestamp, Backend, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const CUSTOMER: i64 = 31;
const OTHER_CUSTOMER: i64 = 32;

/// The statuses of the full lifecycle [`drive_lifecycle`] walks, one per event.
const LIFECYCLE: [&str; 7] = [
    "new",
    "scheduled",
    "sent",
    "started",
    "suspended",
    "started",
    "completedOk",
];

/// Creates a job and walks it through create, schedule, sent, start, suspend, resume and
/// result. Returns the id and the `x-request-id` of each of the seven requests.
async fn drive_lifecycle(app: &TestApp) -> (Uuid, Vec<String>) {
    let reply = app
        .post(
            "/v1/jobs",
            CUSTOMER,
            json!({"typeId": 5, "contactId": 6, "reference": "AUD-1"}),
        )
        .await;
    reply.assert_status(201);
    let id: Uuid = reply.json()["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("an id");
    let mut request_ids = vec![request_id(&reply)];
    for (action, body) in [
        (
            "schedule",
            json!({"resourceId": 7, "vehicleId": 8, "plannedStart": "2026-12-01T08:30:00Z"}),
        ),
        (
            "progress",
            json!({"status": "sent", "comment": "dispatched"}),
        ),
        ("start", json!({})),
        ("suspend", json!({"reason": "waiting for parts"})),
        ("resume", json!({})),
        (
            "result",
            json!({"outcome": "completedOk", "notes": "boiler replaced"}),
        ),
    ] {
        let reply = app.command(CUSTOMER, id, action, body).await;
        reply.assert_status(204);
        request_ids.push(request_id(&reply));
    }
    (id, request_ids)
}

fn request_id(reply: &crate::support::Reply) -> String {
    reply
        .header("x-request-id")
        .filter(|id| !id.is_empty())
        .expect("every response carries x-request-id")
        .to_owned()
}

async fn page(app: &TestApp, customer: i64, path: &str) -> Value {
    let reply = app.get(path, customer).await;
    reply.assert_status(200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let page = reply.json();
    let count = page["items"].as_array().expect("items").len();
    assert_eq!(page["pageItemCount"], count, "{page}");
    page
}

/// One field of every item of a page, in order.
fn field(page: &Value, name: &str) -> Vec<Value> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item[name].clone())
        .collect()
}

backend_tests! {
    async fn status_history_follows_the_lifecycle(app: TestApp) {
        let (id, _) = drive_lifecycle(&app).await;
        let history = page(&app, CUSTOMER, &format!("/v1/jobs/{id}/statusHistory")).await;
        assert_eq!(history["pageNumber"], 1);
        assert_eq!(history["pageSize"], 100);
        assert_eq!(history["pageItemCount"], 7);
        assert_eq!(history["hasMore"], false);
        assert_eq!(field(&history, "sequence"), (1..=7).map(|n| json!(n)).collect::<Vec<_>>());
        assert_eq!(field(&history, "status"), LIFECYCLE.iter().map(|s| json!(s)).collect::<Vec<_>>());
        assert_eq!(
            field(&history, "comment"),
            [json!(null), json!(null), json!("dispatched"), json!(null), json!("waiting for parts"), json!(null), json!("boiler replaced")]
        );
        let (client_id, _) = app.default_client(CUSTOMER).await;
        assert!(field(&history, "actor").iter().all(|a| *a == client_id.to_string()), "{history}");
        let times: Vec<_> = field(&history, "occurredAt").iter().map(timestamp).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "occurredAt never goes back: {times:?}");

        // Each entry is the event of the same sequence; the last is the job's latest change.
        let events = app.events(CUSTOMER, id).await;
        for (entry, event) in history["items"].as_array().expect("items").iter().zip(&events) {
            assert_eq!(entry["sequence"], event["sequence"]);
            assert_eq!(entry["occurredAt"], event["payload"]["occurredAt"]);
        }
        let job = app.job(CUSTOMER, id).await;
        assert_eq!(history["items"][6]["occurredAt"], job["updatedAt"]);
        assert_eq!(history["items"][0]["occurredAt"], job["createdAt"]);
        assert_eq!(job["result"]["completedAt"], job["updatedAt"]);
    }

    async fn updates_are_not_status_changes_but_reschedules_and_cancels_are(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        app.patch(&format!("/v1/jobs/{id}"), CUSTOMER, json!({"reference": "x"})).await.assert_status(204);
        app.bring_to(CUSTOMER, id, "scheduled").await;
        app.bring_to(CUSTOMER, id, "scheduled").await;
        app.command(CUSTOMER, id, "start", json!({"comment": "arrived"})).await.assert_status(204);
        let history = page(&app, CUSTOMER, &format!("/v1/jobs/{id}/statusHistory")).await;
        assert_eq!(field(&history, "sequence"), [json!(1), json!(3), json!(4), json!(5)]);
        assert_eq!(field(&history, "status"), [json!("new"), json!("scheduled"), json!("scheduled"), json!("started")]);
        assert_eq!(history["items"][3]["comment"], "arrived");

        let cancelled = app.create_job(CUSTOMER).await;
        app.command(CUSTOMER, cancelled, "cancel", json!({"reason": " gone "})).await.assert_status(204);
        let history = page(&app, CUSTOMER, &format!("/v1/jobs/{cancelled}/statusHistory")).await;
        assert_eq!(history["items"][1]["status"], "cancelled");
        assert_eq!(history["items"][1]["comment"], "gone");
    }

    async fn status_history_reverses_and_pages(app: TestApp) {
        let (id, _) = drive_lifecycle(&app).await;
        let path = format!("/v1/jobs/{id}/statusHistory");
        let ascending = page(&app, CUSTOMER, &path).await;
        assert_eq!(page(&app, CUSTOMER, &format!("{path}?direction=ascending")).await, ascending);
        assert_eq!(page(&app, CUSTOMER, &format!("{path}?sortBy=createdAt&direction=ascending")).await, ascending);

        let descending = page(&app, CUSTOMER, &format!("{path}?direction=descending")).await;
        let mut reversed = ascending["items"].as_array().expect("items").clone();
        reversed.reverse();
        assert_eq!(descending["items"], Value::Array(reversed.clone()));
        assert_eq!(
            page(&app, CUSTOMER, &format!("{path}?sortBy=createdAt&direction=descending")).await["items"],
            Value::Array(reversed)
        );

        // Pages of 3: 3 + 3 + 1, then nothing.
        let mut walked = Vec::new();
        for (number, count, more) in [(1, 3, true), (2, 3, true), (3, 1, false), (4, 0, false)] {
            let p = page(&app, CUSTOMER, &format!("{path}?pageSize=3&pageNumber={number}")).await;
            assert_eq!(p["pageNumber"], number);
            assert_eq!(p["pageSize"], 3);
            assert_eq!(p["pageItemCount"], count, "page {number}");
            assert_eq!(p["hasMore"], more, "page {number}");
            walked.extend(p["items"].as_array().expect("items").iter().cloned());
        }
        assert_eq!(Value::Array(walked), ascending["items"]);
        let first_descending = page(&app, CUSTOMER, &format!("{path}?direction=descending&pageSize=3")).await;
        assert_eq!(field(&first_descending, "sequence"), [json!(7), json!(6), json!(5)]);
        assert_eq!(first_descending["hasMore"], true);
        let seven = page(&app, CUSTOMER, &format!("{path}?pageSize=7")).await;
        assert_eq!(seven["hasMore"], false);

        for (query, problem_type) in [
            ("sortBy=updatedAt", "/problems/invalid-query"),
            ("sortBy=status", "/problems/invalid-query"),
            ("direction=backwards", "/problems/invalid-query"),
            ("status=new", "/problems/invalid-query"),
            ("pageSize=0", "/problems/invalid-paging"),
            ("pageSize=1001", "/problems/invalid-paging"),
            ("pageNumber=0", "/problems/invalid-paging"),
            ("pageNumber=10001", "/problems/invalid-paging"),
            ("pageNumber=12&pageSize=1000", "/problems/invalid-paging"),
            ("cursor=bm90LW91cnM", "/problems/invalid-paging"),
        ] {
            app.get(&format!("{path}?{query}"), CUSTOMER).await.assert_problem(400, problem_type);
        }
        let far = page(&app, CUSTOMER, &format!("{path}?pageNumber=11&pageSize=1000")).await;
        assert_eq!(far["items"], json!([]));
    }

    async fn status_history_is_private_to_the_customer(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        let foreign = app
            .get(&format!("/v1/jobs/{id}/statusHistory"), OTHER_CUSTOMER)
            .await
            .assert_problem(404, "/problems/job-not-found");
        let missing = app
            .get(&format!("/v1/jobs/{}/statusHistory", Uuid::now_v7()), CUSTOMER)
            .await
            .assert_problem(404, "/problems/job-not-found");
        assert_eq!(foreign["detail"], missing["detail"], "existence never leaks");
        assert_eq!(foreign["title"], missing["title"]);
        app.get("/v1/jobs/not-a-uuid/statusHistory", CUSTOMER)
            .await
            .assert_problem(400, "/problems/invalid-job-id");
        app.request(Method::GET, &format!("/v1/jobs/{id}/statusHistory"), None, None)
            .await
            .assert_problem(400, "/problems/invalid-customer-id");
    }

    async fn events_are_the_audit_trail_of_who_did_what(app: TestApp) {
        let (id, request_ids) = drive_lifecycle(&app).await;
        // One more change, with the caller's own request id.
        let reply = app
            .send(
                app.client
                    .patch(format!("{}/v1/jobs/{id}", app.address))
                    .header("Customer-Id", CUSTOMER.to_string())
                    .header("content-type", "application/json")
                    .header("x-request-id", "audit-trace-7")
                    .body(r#"{"orderNumber": "PO-1", "reference": null}"#),
            )
            .await;
        reply.assert_status(204);
        assert_eq!(reply.header("x-request-id"), Some("audit-trace-7"));
        let mut request_ids = request_ids;
        request_ids.push("audit-trace-7".to_owned());

        let events = page(&app, CUSTOMER, &format!("/v1/jobs/{id}/events")).await;
        assert_eq!(events["pageNumber"], 1);
        assert_eq!(events["pageSize"], 100);
        assert_eq!(events["hasMore"], false);
        let items = events["items"].as_array().expect("items");
        let types: Vec<&str> = items.iter().filter_map(|e| e["eventType"].as_str()).collect();
        assert_eq!(types, [
            "JobCreated", "JobScheduled", "JobProgressed", "JobStarted",
            "JobSuspended", "JobResumed", "JobCompleted", "JobUpdated",
        ]);
        let (client_id, token) = app.default_client(CUSTOMER).await;
        let token_id = app.token_id(&token);
        let mut recorded = Vec::new();
        for (index, event) in items.iter().enumerate() {
            assert_eq!(event["sequence"], index + 1, "{event}");
            assert_eq!(event["eventVersion"], "1.0");
            recorded.push(timestamp(&event["recordedAt"]));
            timestamp(&event["payload"]["occurredAt"]);
            assert_eq!(event["metadata"]["clientId"], client_id.to_string(), "who acted");
            assert_eq!(event["metadata"]["tokenId"], token_id, "with which token");
            assert_eq!(event["metadata"]["customerId"], CUSTOMER.to_string());
            assert_eq!(
                event["metadata"]["requestId"], request_ids[index],
                "event {} names the request that caused it", index + 1
            );
        }
        assert!(recorded.windows(2).all(|w| w[0] <= w[1]), "recordedAt in order: {recorded:?}");

        let payload = |n: usize| &items[n]["payload"];
        assert_eq!(payload(0)["customerId"], CUSTOMER);
        assert_eq!(payload(0)["typeId"], 5);
        assert_eq!(payload(0)["contactId"], 6);
        assert_eq!(payload(0)["reference"], "AUD-1");
        assert_eq!(payload(1)["resourceId"], 7);
        assert_eq!(payload(1)["vehicleId"], 8);
        assert_eq!(payload(1)["plannedStart"], "2026-12-01T08:30:00Z");
        assert_eq!(payload(2)["status"], "sent");
        assert_eq!(payload(2)["comment"], "dispatched");
        assert_eq!(payload(4)["reason"], "waiting for parts");
        assert_eq!(payload(6)["outcome"], "completedOk");
        assert_eq!(payload(6)["notes"], "boiler replaced");
        assert_eq!(payload(7)["changes"]["orderNumber"], "PO-1");
        assert_eq!(payload(7)["changes"]["reference"], Value::Null);
        // The payload is the event itself, not wrapped in its type name.
        assert!(payload(1).get("JobScheduled").is_none(), "{}", payload(1));

        // The event history and the job agree.
        let job = app.job(CUSTOMER, id).await;
        assert_eq!(job["version"], 8);
        assert_eq!(job["updatedAt"], payload(7)["occurredAt"]);
        assert_eq!(job["orderNumber"], "PO-1");
        assert_eq!(job["reference"], Value::Null);

        // Refused commands and no-op updates leave no trace.
        app.command(CUSTOMER, id, "start", json!({})).await.assert_problem(422, "/problems/job-not-startable");
        app.patch(&format!("/v1/jobs/{id}"), CUSTOMER, json!({"orderNumber": "PO-1"})).await.assert_status(204);
        assert_eq!(app.events(CUSTOMER, id).await.len(), 8);
    }

    async fn events_page_and_stay_private(app: TestApp) {
        let (id, _) = drive_lifecycle(&app).await;
        let path = format!("/v1/jobs/{id}/events");
        let all = page(&app, CUSTOMER, &path).await;
        let mut walked = Vec::new();
        for (number, count, more) in [(1, 2, true), (2, 2, true), (3, 2, true), (4, 1, false), (5, 0, false)] {
            let p = page(&app, CUSTOMER, &format!("{path}?pageSize=2&pageNumber={number}")).await;
            assert_eq!(p["pageNumber"], number);
            assert_eq!(p["pageSize"], 2);
            assert_eq!(p["pageItemCount"], count, "page {number}");
            assert_eq!(p["hasMore"], more, "page {number}");
            walked.extend(p["items"].as_array().expect("items").iter().cloned());
        }
        assert_eq!(Value::Array(walked), all["items"]);
        assert_eq!(page(&app, CUSTOMER, &format!("{path}?pageSize=7")).await["hasMore"], false);
        assert_eq!(page(&app, CUSTOMER, &format!("{path}?pageSize=6")).await["hasMore"], true);

        for (query, problem_type) in [
            ("pageSize=0", "/problems/invalid-paging"),
            ("pageSize=1001", "/problems/invalid-paging"),
            ("pageNumber=0", "/problems/invalid-paging"),
            ("pageNumber=x", "/problems/invalid-paging"),
            ("eventType=JobCreated", "/problems/invalid-query"),
        ] {
            app.get(&format!("{path}?{query}"), CUSTOMER).await.assert_problem(400, problem_type);
        }

        let foreign = app
            .get(&path, OTHER_CUSTOMER)
            .await
            .assert_problem(404, "/problems/job-not-found");
        let missing = app
            .get(&format!("/v1/jobs/{}/events", Uuid::now_v7()), CUSTOMER)
            .await
            .assert_problem(404, "/problems/job-not-found");
        assert_eq!(foreign["detail"], missing["detail"], "existence never leaks");
        app.get("/v1/jobs/123/events", CUSTOMER)
            .await
            .assert_problem(400, "/problems/invalid-job-id");
        app.request(Method::GET, &path, None, None)
            .await
            .assert_problem(400, "/problems/invalid-customer-id");
    }

    async fn event_pages_are_bounded_in_bytes_and_cursors_read_each_event_once(app: TestApp) {
        // 24 updates of ~58 KB each: about 1.4 MB of history, more than one page holds.
        let id = app.create_job(CUSTOMER).await;
        for n in 0..24 {
            let fields: Vec<Value> = (1..=30)
                .map(|field| json!({"definitionId": field, "value": format!("{n:02}").repeat(950)}))
                .collect();
            app.patch(&format!("/v1/jobs/{id}"), CUSTOMER, json!({"customFields": fields}))
                .await
                .assert_status(204);
        }
        let path = format!("/v1/jobs/{id}/events");
        let first = app.get(&format!("{path}?pageSize=1000"), CUSTOMER).await;
        first.assert_status(200);
        assert!(first.text.len() < 1_100_000, "a page stays near 1 MiB: {}", first.text.len());
        let first = first.json();
        assert_eq!(first["hasMore"], true, "cut short by bytes, not by count");
        assert!(first["pageItemCount"].as_u64().unwrap() < 25);

        // Following the cursors reads every event exactly once, in order.
        let mut sequences = field(&first, "sequence");
        let mut cursor = first["nextCursor"].as_str().expect("a cursor").to_owned();
        loop {
            let next = app.get(&format!("{path}?pageSize=1000&cursor={cursor}"), CUSTOMER).await;
            next.assert_status(200);
            assert!(next.text.len() < 1_100_000);
            let next = next.json();
            sequences.extend(field(&next, "sequence"));
            match next["nextCursor"].as_str() {
                Some(more) => cursor = more.to_owned(),
                None => {
                    assert_eq!(next["hasMore"], false);
                    break;
                }
            }
        }
        assert_eq!(sequences, (1..=25).map(Value::from).collect::<Vec<_>>());

        // Small pages by count, by cursor; and what a cursor cannot be.
        let two = page(&app, CUSTOMER, &format!("{path}?pageSize=2")).await;
        let cursor = two["nextCursor"].as_str().expect("a cursor");
        let after = page(&app, CUSTOMER, &format!("{path}?pageSize=2&cursor={cursor}")).await;
        assert_eq!(field(&after, "sequence"), vec![json!(3), json!(4)]);
        for query in [format!("cursor={cursor}&pageNumber=2"), "cursor=nonsense".into(), "cursor=".into()] {
            app.get(&format!("{path}?{query}"), CUSTOMER).await
                .assert_problem(400, "/problems/invalid-paging");
        }
    }

    async fn health_probes_answer_ok(app: TestApp) {
        for path in ["/health/live", "/health/ready"] {
            // No Customer-Id needed.
            let reply = app.request(Method::GET, path, None, None).await;
            reply.assert_status(200);
            assert_eq!(reply.header("content-type"), Some("application/json"));
            assert_eq!(reply.json(), json!({"status": "ok"}));
            assert!(reply.header("x-request-id").is_some());
        }
    }
}

backend_tests! {
    /// A job's status history and its events page by cursor too, in either direction,
    /// each entry once.
    async fn status_history_and_events_page_by_cursor(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        for _ in 0..4 {
            app.bring_to(CUSTOMER, id, "scheduled").await;
            app.command(CUSTOMER, id, "unschedule", json!({})).await.assert_status(204);
        }
        for (path, field) in [
            (format!("/v1/jobs/{id}/statusHistory?direction=ascending"), "sequence"),
            (format!("/v1/jobs/{id}/statusHistory?direction=descending"), "sequence"),
            (format!("/v1/jobs/{id}/events?pageNumber=1"), "sequence"),
        ] {
            let whole: Vec<Value> = page(&app, CUSTOMER, &format!("{path}&pageSize=1000")).await["items"]
                .as_array().expect("items").iter().map(|item| item[field].clone()).collect();
            assert!(whole.len() >= 9, "{path}: {whole:?}");
            let base = path.replace("pageNumber=1", "").replace("?&", "?");
            let mut seen = Vec::new();
            let mut query = format!("{base}&pageSize=2");
            loop {
                let current = page(&app, CUSTOMER, &query.replace("?&", "?")).await;
                seen.extend(current["items"].as_array().expect("items").iter().map(|item| item[field].clone()));
                match current["nextCursor"].as_str() {
                    Some(cursor) => query = format!("{base}&pageSize=2&cursor={cursor}"),
                    None => break,
                }
            }
            assert_eq!(seen, whole, "{path}");
        }
        // A history cursor continues its own direction only.
        let first = page(&app, CUSTOMER, &format!("/v1/jobs/{id}/statusHistory?pageSize=1")).await;
        let cursor = first["nextCursor"].as_str().expect("a cursor");
        app.get(&format!("/v1/jobs/{id}/statusHistory?direction=descending&cursor={cursor}"), CUSTOMER)
            .await
            .assert_problem(400, "/problems/invalid-paging");
        app.get(&format!("/v1/jobs/{id}/events?pageNumber=12&pageSize=1000"), CUSTOMER)
            .await
            .assert_problem(400, "/problems/invalid-paging");
    }
}
