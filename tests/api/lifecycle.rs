//! The success path of every command endpoint and what GET /v1/jobs/{jobId} shows after it,
//! the transitions §3 refuses (each with its own problem type), and the field rules of a new
//! job.

use crate::backend_tests;
use crate::support::{Backend, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const CUSTOMER: i64 = 11;
const OTHER_CUSTOMER: i64 = 12;
const PERSON: &str = "0192d6a0-0000-7000-8000-000000000001";
const OTHER_PERSON: &str = "0192d6a0-0000-7000-8000-000000000002";

/// A create body with every field set.
fn full_body() -> Value {
    json!({
        "typeId": 3,
        "contactId": 4,
        "plannedDuration": 90,
        "reference": "REF-1",
        "description": "Replace the boiler",
        "personId": PERSON,
        "orderNumber": "PO-77",
        "customFields": [
            {"definitionId": 1, "value": "blue"},
            {"definitionId": 2, "value": null},
            {"definitionId": 5, "value": ""}
        ]
    })
}

/// `PUT /v1/jobs/{id}/{action}` with no body and no content type at all.
async fn bodiless(app: &TestApp, id: Uuid, action: &str) -> crate::support::Reply {
    app.request(
        Method::PUT,
        &format!("/v1/jobs/{id}/{action}"),
        Some(CUSTOMER),
        None,
    )
    .await
}

/// The keys of a 422's `errors` map.
fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_object()
        .map(|errors| errors.keys().cloned().collect())
        .unwrap_or_default()
}

backend_tests! {
    async fn a_job_created_with_every_field_shows_them_all(app: TestApp) {
        let reply = app.post("/v1/jobs", CUSTOMER, full_body()).await;
        reply.assert_status(201);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let id: Uuid = reply.json()["id"].as_str().and_then(|s| s.parse().ok()).expect("a UUID id");
        assert_eq!(id.get_version_num(), 7, "ids are UUID v7");
        assert_eq!(reply.header("location"), Some(&*format!("/v1/jobs/{id}")));

        let reply = app.get(&format!("/v1/jobs/{id}"), CUSTOMER).await;
        reply.assert_status(200);
        assert_eq!(reply.header("etag"), Some("\"1\""));
        let job = reply.json();
        assert_eq!(job["id"], id.to_string());
        assert_eq!(job["customerId"], CUSTOMER);
        assert_eq!(job["typeId"], 3);
        assert_eq!(job["contactId"], 4);
        assert_eq!(job["status"], "new");
        assert_eq!(job["plannedDuration"], 90);
        assert_eq!(job["reference"], "REF-1");
        assert_eq!(job["description"], "Replace the boiler");
        assert_eq!(job["personId"], PERSON);
        assert_eq!(job["orderNumber"], "PO-77");
        assert_eq!(
            job["customFields"],
            json!([
                {"definitionId": 1, "value": "blue"},
                {"definitionId": 2, "value": null},
                {"definitionId": 5, "value": ""}
            ])
        );
        assert_eq!(job["plannedStart"], Value::Null);
        assert_eq!(job["resourceId"], Value::Null);
        assert_eq!(job["vehicleId"], Value::Null);
        assert_eq!(job["cancellation"], Value::Null);
        assert_eq!(job["result"], Value::Null);
        assert_eq!(job["version"], 1);
        assert!(job["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')), "UTC: {job}");
        assert_eq!(job["createdAt"], job["updatedAt"]);

        // The minimal job: optional fields are null (custom fields an empty list).
        let minimal = app.create_job(CUSTOMER).await;
        let job = app.job(CUSTOMER, minimal).await;
        for field in ["plannedDuration", "reference", "description", "personId", "orderNumber"] {
            assert_eq!(job[field], Value::Null, "{field}");
        }
        assert_eq!(job["customFields"], json!([]));
    }

    async fn patch_changes_only_what_it_names(app: TestApp) {
        let id = app.create_job_with(CUSTOMER, full_body()).await;
        let created = app.job(CUSTOMER, id).await;

        app.patch(&format!("/v1/jobs/{id}"), CUSTOMER, json!({
            "description": "Service the boiler",
            "plannedDuration": 120,
            "contactId": 40,
            "customFields": [{"definitionId": 9, "value": "new"}]
        }))
        .await
        .assert_status(204);
        let reply = app.get(&format!("/v1/jobs/{id}"), CUSTOMER).await;
        assert_eq!(reply.header("etag"), Some("\"2\""));
        let job = reply.json();
        assert_eq!(job["description"], "Service the boiler");
        assert_eq!(job["plannedDuration"], 120);
        assert_eq!(job["contactId"], 40);
        assert_eq!(job["customFields"], json!([{"definitionId": 9, "value": "new"}]));
        // Omitted fields keep their values.
        assert_eq!(job["typeId"], 3);
        assert_eq!(job["reference"], "REF-1");
        assert_eq!(job["personId"], PERSON);
        assert_eq!(job["orderNumber"], "PO-77");
        assert_eq!(job["status"], "new");
        assert_eq!(job["version"], 2);
        assert_eq!(job["createdAt"], created["createdAt"]);
        assert_ne!(job["updatedAt"], created["updatedAt"]);

        // null clears reference, orderNumber and personId.
        app.patch(&format!("/v1/jobs/{id}"), CUSTOMER, json!({
            "reference": null, "orderNumber": null, "personId": null
        }))
        .await
        .assert_status(204);
        let job = app.job(CUSTOMER, id).await;
        assert_eq!(job["reference"], Value::Null);
        assert_eq!(job["orderNumber"], Value::Null);
        assert_eq!(job["personId"], Value::Null);
        assert_eq!(job["description"], "Service the boiler");
        assert_eq!(job["version"], 3);

        // …and they can be set again.
        app.patch(&format!("/v1/jobs/{id}"), CUSTOMER, json!({"reference": "REF-2", "personId": OTHER_PERSON}))
            .await
            .assert_status(204);
        let job = app.job(CUSTOMER, id).await;
        assert_eq!(job["reference"], "REF-2");
        assert_eq!(job["personId"], OTHER_PERSON);

        let events = app.events(CUSTOMER, id).await;
        assert_eq!(events.len(), 4);
        assert!(events[1..].iter().all(|e| e["eventType"] == "JobUpdated"));

        // null is refused for the fields that cannot be cleared.
        for field in ["typeId", "contactId", "plannedDuration", "description", "customFields"] {
            let problem = app
                .patch(&format!("/v1/jobs/{id}"), CUSTOMER, json!({ field: null }))
                .await
                .assert_problem(422, "/problems/validation");
            assert_eq!(error_fields(&problem), vec![field.to_owned()], "{problem}");
        }
        // Field rules apply to updates as on create.
        let problem = app
            .patch(&format!("/v1/jobs/{id}"), CUSTOMER, json!({"typeId": 0, "reference": "x".repeat(89)}))
            .await
            .assert_problem(422, "/problems/validation");
        assert_eq!(error_fields(&problem), vec!["reference".to_owned(), "typeId".to_owned()]);
        assert_eq!(app.events(CUSTOMER, id).await.len(), 4, "refused updates record nothing");
        assert_eq!(app.job(CUSTOMER, id).await["typeId"], 3);
    }

    async fn patch_that_changes_nothing_records_nothing(app: TestApp) {
        let id = app.create_job_with(CUSTOMER, full_body()).await;
        let before = app.job(CUSTOMER, id).await;
        for body in [
            json!({}),
            json!({"typeId": 3, "reference": "REF-1", "personId": PERSON}),
            full_body(),
        ] {
            app.patch(&format!("/v1/jobs/{id}"), CUSTOMER, body.clone())
                .await
                .assert_status(204);
            assert_eq!(app.events(CUSTOMER, id).await.len(), 1, "no event for {body}");
            assert_eq!(app.job(CUSTOMER, id).await, before, "nothing changed for {body}");
        }
        // Clearing what is already absent changes nothing either.
        let bare = app.create_job(CUSTOMER).await;
        app.patch(&format!("/v1/jobs/{bare}"), CUSTOMER, json!({"reference": null, "orderNumber": null}))
            .await
            .assert_status(204);
        assert_eq!(app.events(CUSTOMER, bare).await.len(), 1);
    }

    async fn description_and_person_are_locked_once_work_has_begun(app: TestApp) {
        let id = app.create_job_with(CUSTOMER, full_body()).await;
        app.bring_to(CUSTOMER, id, "started").await;
        let events = app.events(CUSTOMER, id).await.len();

        for (body, field) in [
            (json!({"description": "something else"}), "description"),
            (json!({"personId": OTHER_PERSON}), "personId"),
            (json!({"personId": null}), "personId"),
        ] {
            let problem = app
                .patch(&format!("/v1/jobs/{id}"), CUSTOMER, body.clone())
                .await
                .assert_problem(422, "/problems/job-field-locked");
            let detail = problem["detail"].as_str().unwrap_or_default();
            assert!(detail.contains(field) && detail.contains("started"), "{problem}");
        }
        assert_eq!(app.events(CUSTOMER, id).await.len(), events, "no event");
        let job = app.job(CUSTOMER, id).await;
        assert_eq!(job["description"], "Replace the boiler");
        assert_eq!(job["personId"], PERSON);

        // Re-sending the current (locked) value is not a change.
        app.patch(&format!("/v1/jobs/{id}"), CUSTOMER, json!({"description": "Replace the boiler"}))
            .await
            .assert_status(204);
        assert_eq!(app.events(CUSTOMER, id).await.len(), events);

        // Other fields stay editable.
        app.patch(&format!("/v1/jobs/{id}"), CUSTOMER, json!({"reference": "REF-9", "orderNumber": null}))
            .await
            .assert_status(204);
        let job = app.job(CUSTOMER, id).await;
        assert_eq!(job["reference"], "REF-9");
        assert_eq!(job["orderNumber"], Value::Null);
        assert_eq!(job["status"], "started", "an update does not change the status");

        // Suspended and completed jobs lock the same fields, and only those.
        for status in ["suspended", "completedOk", "completedWithIssues"] {
            let id = app.create_job_with(CUSTOMER, full_body()).await;
            app.bring_to(CUSTOMER, id, status).await;
            let problem = app
                .patch(&format!("/v1/jobs/{id}"), CUSTOMER, json!({"description": "late edit"}))
                .await
                .assert_problem(422, "/problems/job-field-locked");
            assert!(problem["detail"].as_str().unwrap_or_default().contains(status), "{problem}");
            app.patch(&format!("/v1/jobs/{id}"), CUSTOMER, json!({"personId": OTHER_PERSON}))
                .await
                .assert_problem(422, "/problems/job-field-locked");
            app.patch(&format!("/v1/jobs/{id}"), CUSTOMER, json!({"reference": "closed", "typeId": 8}))
                .await
                .assert_status(204);
            let job = app.job(CUSTOMER, id).await;
            assert_eq!((job["reference"].clone(), job["typeId"].clone()), (json!("closed"), json!(8)));
            assert_eq!(job["status"], status);
        }
    }

    async fn a_cancelled_job_cannot_be_updated(app: TestApp) {
        let id = app.create_job_with(CUSTOMER, full_body()).await;
        app.bring_to(CUSTOMER, id, "cancelled").await;
        let events = app.events(CUSTOMER, id).await.len();
        let problem = app
            .patch(&format!("/v1/jobs/{id}"), CUSTOMER, json!({"reference": "REF-2"}))
            .await
            .assert_problem(422, "/problems/job-not-updatable");
        assert!(problem["detail"].as_str().unwrap_or_default().contains("cancelled"), "{problem}");
        assert_eq!(app.events(CUSTOMER, id).await.len(), events);
        assert_eq!(app.job(CUSTOMER, id).await["reference"], "REF-1");
    }

    async fn scheduling_sets_the_slot_and_rescheduling_replaces_it(app: TestApp) {
        let id = app.create_job_with(CUSTOMER, json!({"typeId": 1, "contactId": 2, "plannedDuration": 60})).await;
        app.command(CUSTOMER, id, "schedule", json!({
            "resourceId": 7, "vehicleId": 8, "plannedStart": "2026-12-01T10:30:00+02:00"
        }))
        .await
        .assert_status(204);
        let job = app.job(CUSTOMER, id).await;
        assert_eq!(job["status"], "scheduled");
        assert_eq!(job["resourceId"], 7);
        assert_eq!(job["vehicleId"], 8);
        assert_eq!(job["plannedStart"], "2026-12-01T08:30:00Z", "normalised to UTC");
        assert_eq!(job["plannedDuration"], 60, "kept when not given");
        assert_eq!(job["version"], 2);

        // Reschedule: everything replaced, including the duration when given.
        app.command(CUSTOMER, id, "schedule", json!({
            "resourceId": 9, "vehicleId": 10, "plannedStart": "2026-12-02T09:15:00Z", "plannedDuration": 45
        }))
        .await
        .assert_status(204);
        let job = app.job(CUSTOMER, id).await;
        assert_eq!(job["status"], "scheduled");
        assert_eq!(job["resourceId"], 9);
        assert_eq!(job["vehicleId"], 10);
        assert_eq!(job["plannedStart"], "2026-12-02T09:15:00Z");
        assert_eq!(job["plannedDuration"], 45);
        assert_eq!(job["version"], 3);

        let events = app.events(CUSTOMER, id).await;
        let types: Vec<&str> = events.iter().filter_map(|e| e["eventType"].as_str()).collect();
        assert_eq!(types, ["JobCreated", "JobScheduled", "JobScheduled"]);
        assert_eq!(events[2]["payload"]["resourceId"], 9);

        // The rules see the duration the schedule set: going back to the created one is a
        // change, and repeating the scheduled one is not.
        app.patch(&format!("/v1/jobs/{id}"), CUSTOMER, json!({"plannedDuration": 45}))
            .await
            .assert_status(204);
        assert_eq!(app.events(CUSTOMER, id).await.len(), 3);
        app.patch(&format!("/v1/jobs/{id}"), CUSTOMER, json!({"plannedDuration": 60}))
            .await
            .assert_status(204);
        assert_eq!(app.events(CUSTOMER, id).await.len(), 4);
        assert_eq!(app.job(CUSTOMER, id).await["plannedDuration"], 60);

        // All three of resource, vehicle and start are required, and checked.
        let problem = app
            .command(CUSTOMER, id, "schedule", json!({}))
            .await
            .assert_problem(422, "/problems/validation");
        assert_eq!(error_fields(&problem), ["plannedStart", "resourceId", "vehicleId"]);
        let problem = app
            .command(CUSTOMER, id, "schedule", json!({
                "resourceId": 0, "vehicleId": 1, "plannedStart": "tomorrow", "plannedDuration": 10081
            }))
            .await
            .assert_problem(422, "/problems/validation");
        assert_eq!(error_fields(&problem), ["plannedDuration", "plannedStart", "resourceId"]);
        assert_eq!(app.events(CUSTOMER, id).await.len(), 4);
    }

    async fn unscheduling_accepts_an_empty_body_or_an_empty_object(app: TestApp) {
        let without_body = app.create_job_with(CUSTOMER, json!({"typeId": 1, "contactId": 2, "plannedDuration": 30})).await;
        let with_object = app.create_job(CUSTOMER).await;
        app.bring_to(CUSTOMER, without_body, "scheduled").await;
        app.bring_to(CUSTOMER, with_object, "sent").await;

        bodiless(&app, without_body, "unschedule").await.assert_status(204);
        app.command(CUSTOMER, with_object, "unschedule", json!({})).await.assert_status(204);
        for id in [without_body, with_object] {
            let job = app.job(CUSTOMER, id).await;
            assert_eq!(job["status"], "unscheduled");
            assert_eq!(job["resourceId"], Value::Null);
            assert_eq!(job["vehicleId"], Value::Null);
            assert_eq!(job["plannedStart"], Value::Null);
            assert_eq!(app.events(CUSTOMER, id).await.last().map(|e| e["eventType"].clone()), Some(json!("JobUnscheduled")));
        }
        assert_eq!(app.job(CUSTOMER, without_body).await["plannedDuration"], 30, "the duration stays");

        // The body must be empty: anything else is malformed.
        app.command(CUSTOMER, with_object, "unschedule", json!({"reason": "x"}))
            .await
            .assert_problem(400, "/problems/malformed-body");

        // An unscheduled job can be scheduled again.
        app.bring_to(CUSTOMER, without_body, "scheduled").await;
    }

    async fn progress_walks_from_sent_to_on_the_way(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        app.bring_to(CUSTOMER, id, "scheduled").await;
        for (step, comment) in [("sent", Some("to the van")), ("read", None), ("accepted", Some("ok")), ("onTheWay", None)] {
            let mut body = json!({"status": step});
            if let Some(comment) = comment {
                body["comment"] = json!(comment);
            }
            app.command(CUSTOMER, id, "progress", body).await.assert_status(204);
            let job = app.job(CUSTOMER, id).await;
            assert_eq!(job["status"], step);
            let last = app.events(CUSTOMER, id).await.pop().expect("events");
            assert_eq!(last["eventType"], "JobProgressed");
            assert_eq!(last["payload"]["status"], step);
            assert_eq!(last["payload"]["comment"], json!(comment));
        }
        assert_eq!(app.job(CUSTOMER, id).await["version"], 6);
        assert_eq!(app.job(CUSTOMER, id).await["resourceId"], 7, "progress keeps the slot");

        // Refused may still be reported from read; an unknown step is a validation error.
        let refused = app.create_job(CUSTOMER).await;
        app.bring_to(CUSTOMER, refused, "read").await;
        app.command(CUSTOMER, refused, "progress", json!({"status": "refused"})).await.assert_status(204);
        assert_eq!(app.job(CUSTOMER, refused).await["status"], "refused");
        for body in [json!({"status": "started"}), json!({}), json!({"status": "sent", "comment": "x".repeat(501)})] {
            let problem = app
                .command(CUSTOMER, refused, "progress", body.clone())
                .await
                .assert_problem(422, "/problems/validation");
            assert_eq!(error_fields(&problem).len(), 1, "{body}: {problem}");
        }
    }

    async fn start_works_with_and_without_a_body(app: TestApp) {
        let with_comment = app.create_job(CUSTOMER).await;
        let without_body = app.create_job(CUSTOMER).await;
        let from_on_the_way = app.create_job(CUSTOMER).await;
        app.bring_to(CUSTOMER, with_comment, "scheduled").await;
        app.bring_to(CUSTOMER, without_body, "accepted").await;
        app.bring_to(CUSTOMER, from_on_the_way, "onTheWay").await;

        app.command(CUSTOMER, with_comment, "start", json!({"comment": "on site"})).await.assert_status(204);
        bodiless(&app, without_body, "start").await.assert_status(204);
        app.command(CUSTOMER, from_on_the_way, "start", json!({})).await.assert_status(204);
        for (id, comment) in [(with_comment, json!("on site")), (without_body, Value::Null), (from_on_the_way, Value::Null)] {
            assert_eq!(app.job(CUSTOMER, id).await["status"], "started");
            let last = app.events(CUSTOMER, id).await.pop().expect("events");
            assert_eq!(last["eventType"], "JobStarted");
            assert_eq!(last["payload"]["comment"], comment);
        }
    }

    async fn suspend_and_resume_go_back_and_forth(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        app.bring_to(CUSTOMER, id, "started").await;

        app.command(CUSTOMER, id, "suspend", json!({"reason": "waiting for parts"})).await.assert_status(204);
        assert_eq!(app.job(CUSTOMER, id).await["status"], "suspended");
        let last = app.events(CUSTOMER, id).await.pop().expect("events");
        assert_eq!(last["eventType"], "JobSuspended");
        assert_eq!(last["payload"]["reason"], "waiting for parts");

        bodiless(&app, id, "resume").await.assert_status(204);
        assert_eq!(app.job(CUSTOMER, id).await["status"], "started", "resumed means started again");

        // Again, with the other body shapes.
        bodiless(&app, id, "suspend").await.assert_status(204);
        assert_eq!(app.job(CUSTOMER, id).await["status"], "suspended");
        app.command(CUSTOMER, id, "resume", json!({})).await.assert_status(204);
        let job = app.job(CUSTOMER, id).await;
        assert_eq!(job["status"], "started");
        assert_eq!(job["version"], 7);
        let types: Vec<String> = app.events(CUSTOMER, id).await.iter()
            .filter_map(|e| e["eventType"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(types[3..], ["JobSuspended", "JobResumed", "JobSuspended", "JobResumed"]);

        // A started job can then be completed.
        app.command(CUSTOMER, id, "result", json!({"outcome": "completedOk"})).await.assert_status(204);
        assert_eq!(app.job(CUSTOMER, id).await["status"], "completedOk");
    }

    async fn recording_a_result_completes_the_job(app: TestApp) {
        let ok = app.create_job(CUSTOMER).await;
        let issues = app.create_job(CUSTOMER).await;
        app.bring_to(CUSTOMER, ok, "started").await;
        app.bring_to(CUSTOMER, issues, "started").await;

        app.command(CUSTOMER, ok, "result", json!({"outcome": "completedOk", "notes": "boiler replaced"}))
            .await
            .assert_status(204);
        app.command(CUSTOMER, issues, "result", json!({"outcome": "completedWithIssues"}))
            .await
            .assert_status(204);

        let job = app.job(CUSTOMER, ok).await;
        assert_eq!(job["status"], "completedOk");
        assert_eq!(job["result"]["outcome"], "completedOk");
        assert_eq!(job["result"]["notes"], "boiler replaced");
        assert_eq!(job["result"]["completedAt"], job["updatedAt"]);
        assert_eq!(job["cancellation"], Value::Null);

        let job = app.job(CUSTOMER, issues).await;
        assert_eq!(job["status"], "completedWithIssues");
        assert_eq!(job["result"]["outcome"], "completedWithIssues");
        assert_eq!(job["result"]["notes"], Value::Null);
        assert!(job["result"]["completedAt"].is_string());

        let last = app.events(CUSTOMER, ok).await.pop().expect("events");
        assert_eq!(last["eventType"], "JobCompleted");
        assert_eq!(last["payload"]["outcome"], "completedOk");

        // The outcome is required and must be one of the two.
        let open = app.create_job(CUSTOMER).await;
        app.bring_to(CUSTOMER, open, "started").await;
        for body in [json!({}), json!({"outcome": "cancelled"}), json!({"outcome": "completedOk", "notes": "x".repeat(2001)})] {
            let problem = app.command(CUSTOMER, open, "result", body.clone()).await.assert_problem(422, "/problems/validation");
            assert_eq!(error_fields(&problem).len(), 1, "{body}: {problem}");
        }
        assert_eq!(app.job(CUSTOMER, open).await["status"], "started");
    }

    async fn refused_transitions_name_the_rule_and_the_current_status(app: TestApp) {
        let schedule = json!({"resourceId": 1, "vehicleId": 2, "plannedStart": "2026-12-03T07:00:00Z"});
        let cases: Vec<(&str, &str, Value, &str)> = vec![
            ("new", "start", json!({}), "/problems/job-not-startable"),
            ("refused", "start", json!({}), "/problems/job-not-startable"),
            ("completedOk", "start", json!({}), "/problems/job-not-startable"),
            ("started", "resume", json!({}), "/problems/job-not-resumable"),
            ("new", "suspend", json!({}), "/problems/job-not-suspendable"),
            ("suspended", "suspend", json!({}), "/problems/job-not-suspendable"),
            ("new", "unschedule", json!({}), "/problems/job-not-unschedulable"),
            ("unscheduled", "unschedule", json!({}), "/problems/job-not-unschedulable"),
            ("onTheWay", "unschedule", json!({}), "/problems/job-not-unschedulable"),
            ("scheduled", "progress", json!({"status": "read"}), "/problems/job-progress-not-allowed"),
            ("new", "progress", json!({"status": "sent"}), "/problems/job-progress-not-allowed"),
            ("accepted", "progress", json!({"status": "refused"}), "/problems/job-progress-not-allowed"),
            ("onTheWay", "progress", json!({"status": "onTheWay"}), "/problems/job-progress-not-allowed"),
            ("onTheWay", "schedule", schedule.clone(), "/problems/job-not-schedulable"),
            ("started", "schedule", schedule.clone(), "/problems/job-not-schedulable"),
            ("cancelled", "schedule", schedule.clone(), "/problems/job-not-schedulable"),
            ("scheduled", "result", json!({"outcome": "completedOk"}), "/problems/job-result-not-allowed"),
            ("suspended", "result", json!({"outcome": "completedOk"}), "/problems/job-result-not-allowed"),
            ("completedOk", "result", json!({"outcome": "completedWithIssues"}), "/problems/job-result-not-allowed"),
        ];
        for (status, action, body, problem_type) in cases {
            let id = app.create_job(CUSTOMER).await;
            app.bring_to(CUSTOMER, id, status).await;
            let before = app.job(CUSTOMER, id).await;
            let events = app.events(CUSTOMER, id).await.len();
            let problem = app
                .command(CUSTOMER, id, action, body)
                .await
                .assert_problem(422, problem_type);
            assert!(
                problem["detail"].as_str().unwrap_or_default().contains(status),
                "{action} from {status}: the detail names the current status: {problem}"
            );
            assert_eq!(problem["instance"], format!("/v1/jobs/{id}/{action}"));
            assert_eq!(problem.get("errors"), None, "rule problems carry no field errors");
            assert_eq!(app.events(CUSTOMER, id).await.len(), events, "{action} from {status}: no event");
            assert_eq!(app.job(CUSTOMER, id).await, before, "{action} from {status}: nothing changed");
        }
    }

    async fn commands_on_unknown_or_foreign_jobs_are_404(app: TestApp) {
        let id = app.create_job(CUSTOMER).await;
        let schedule = json!({"resourceId": 1, "vehicleId": 2, "plannedStart": "2026-12-03T07:00:00Z"});
        for (action, body) in [
            ("schedule", schedule),
            ("unschedule", json!({})),
            ("progress", json!({"status": "sent"})),
            ("start", json!({})),
            ("suspend", json!({})),
            ("resume", json!({})),
            ("result", json!({"outcome": "completedOk"})),
        ] {
            app.command(OTHER_CUSTOMER, id, action, body.clone())
                .await
                .assert_problem(404, "/problems/job-not-found");
            app.command(CUSTOMER, Uuid::now_v7(), action, body)
                .await
                .assert_problem(404, "/problems/job-not-found");
        }
        app.patch(&format!("/v1/jobs/{id}"), OTHER_CUSTOMER, json!({"reference": "x"}))
            .await
            .assert_problem(404, "/problems/job-not-found");
        app.get(&format!("/v1/jobs/{id}"), OTHER_CUSTOMER)
            .await
            .assert_problem(404, "/problems/job-not-found");
        app.get(&format!("/v1/jobs/{}", Uuid::now_v7()), CUSTOMER)
            .await
            .assert_problem(404, "/problems/job-not-found");
        app.get("/v1/jobs/12345", CUSTOMER)
            .await
            .assert_problem(400, "/problems/invalid-job-id");
        app.request(Method::GET, &format!("/v1/jobs/{id}"), None, None)
            .await
            .assert_problem(400, "/problems/invalid-customer-id");
        assert_eq!(app.events(CUSTOMER, id).await.len(), 1, "untouched");
    }

    async fn create_refuses_invalid_fields_naming_each(app: TestApp) {
        let problem = app.post("/v1/jobs", CUSTOMER, json!({})).await.assert_problem(422, "/problems/validation");
        assert_eq!(problem["errors"]["typeId"], json!(["is required"]));
        assert_eq!(problem["errors"]["contactId"], json!(["is required"]));
        assert_eq!(error_fields(&problem), ["contactId", "typeId"]);
        let problem = app
            .post("/v1/jobs", CUSTOMER, json!({"typeId": null, "contactId": null}))
            .await
            .assert_problem(422, "/problems/validation");
        assert_eq!(error_fields(&problem), ["contactId", "typeId"]);

        let with = |field: &str, value: Value| {
            let mut body = json!({"typeId": 1, "contactId": 2});
            body[field] = value;
            body
        };
        let many_fields = |n: i64| Value::Array((1..=n).map(|i| json!({"definitionId": i, "value": "v"})).collect());
        let cases: Vec<(Value, &str)> = vec![
            (with("typeId", json!(0)), "typeId"),
            (with("typeId", json!(-3)), "typeId"),
            (with("contactId", json!(0)), "contactId"),
            (with("plannedDuration", json!(0)), "plannedDuration"),
            (with("plannedDuration", json!(10081)), "plannedDuration"),
            (with("reference", json!("r".repeat(89))), "reference"),
            (with("description", json!("d".repeat(2001))), "description"),
            (with("orderNumber", json!("o".repeat(81))), "orderNumber"),
            (with("personId", json!("nope")), "personId"),
            (with("customFields", many_fields(101)), "customFields"),
            (with("customFields", json!([{"definitionId": 4, "value": "a"}, {"definitionId": 4, "value": "b"}])), "customFields"),
            (with("customFields", json!([{"definitionId": 0, "value": "a"}])), "customFields[0].definitionId"),
            (with("customFields", json!([{"definitionId": 1}, {"definitionId": 2, "value": "v".repeat(2001)}])), "customFields[1].value"),
        ];
        for (body, field) in cases {
            let problem = app
                .post("/v1/jobs", CUSTOMER, body.clone())
                .await
                .assert_problem(422, "/problems/validation");
            assert_eq!(error_fields(&problem), vec![field.to_owned()], "{problem}");
            assert!(
                problem["errors"][field].as_array().is_some_and(|m| !m.is_empty() && m.iter().all(Value::is_string)),
                "{problem}"
            );
        }

        // The limits themselves are accepted (characters, not bytes).
        let accepted = [
            with("plannedDuration", json!(1)),
            with("plannedDuration", json!(10080)),
            with("reference", json!("ü".repeat(88))),
            with("orderNumber", json!("o".repeat(80))),
            with("description", json!("d".repeat(2000))),
            with("customFields", many_fields(100)),
        ];
        for body in &accepted {
            app.create_job_with(CUSTOMER, body.clone()).await;
        }

        // Wrong JSON types and unknown fields are not of the documented shape: 400.
        for body in [
            json!({"typeId": "abc", "contactId": 2}),
            json!({"typeId": 1.5, "contactId": 2}),
            json!({"typeId": 1, "contactId": 2, "customFields": {"definitionId": 1}}),
            json!({"typeId": 1, "contactId": 2, "colour": "red"}),
            json!([1, 2]),
        ] {
            app.post("/v1/jobs", CUSTOMER, body).await.assert_problem(400, "/problems/malformed-body");
        }
        // No (or a bad) Customer-Id: 400.
        app.request(Method::POST, "/v1/jobs", None, Some(&json!({"typeId": 1, "contactId": 2})))
            .await
            .assert_problem(400, "/problems/invalid-customer-id");
        app.send(
            app.client
                .post(format!("{}/v1/jobs", app.address))
                .header("Customer-Id", "0")
                .header("content-type", "application/json")
                .body(r#"{"typeId": 1, "contactId": 2}"#),
        )
        .await
        .assert_problem(400, "/problems/invalid-customer-id");

        // Only the accepted jobs exist.
        let list = app.get("/v1/jobs", CUSTOMER).await;
        list.assert_status(200);
        assert_eq!(list.json()["pageItemCount"], accepted.len());
    }
}
