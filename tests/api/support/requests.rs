//! Requests to a [`TestApp`]: building and sending them (with a default token for `/v1`
//! requests that bring none), the HTTP verbs, and the job helpers built on them (create,
//! read, events, drive to a status).

use super::app::TestApp;
use super::reply::Reply;
use reqwest::header::AUTHORIZATION;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

impl TestApp {
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        customer: Option<i64>,
        body: Option<&Value>,
    ) -> Reply {
        self.send(self.build(method, path, customer, body)).await
    }

    /// A request with an optional `Customer-Id` and JSON body, not yet sent.
    pub fn build(
        &self,
        method: Method,
        path: &str,
        customer: Option<i64>,
        body: Option<&Value>,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(customer) = customer {
            request = request.header("Customer-Id", customer.to_string());
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        request
    }

    /// Sends a request. A `/v1` request without an `Authorization` header gets a token with
    /// every scope for its `Customer-Id` (customer 1 when the header is missing or invalid):
    /// most tests are about something else, and the auth tests bring their own.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let mut request = request.build().expect("a valid request");
        if request.url().path().starts_with("/v1/")
            && !request.headers().contains_key(AUTHORIZATION)
        {
            let customer = request
                .headers()
                .get("customer-id")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<i64>().ok())
                .filter(|&customer| customer >= 1)
                .unwrap_or(1);
            let (_, token) = self.default_client(customer).await;
            let value = format!("Bearer {token}").parse().expect("a header value");
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        self.execute(request).await
    }

    /// Sends a request exactly as built: no token is added.
    pub async fn send_as_is(&self, request: reqwest::RequestBuilder) -> Reply {
        self.execute(request.build().expect("a valid request"))
            .await
    }

    async fn execute(&self, request: reqwest::Request) -> Reply {
        let response = self
            .client
            .execute(request)
            .await
            .expect("the server answers");
        Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.expect("a readable body"),
        }
    }

    pub async fn get(&self, path: &str, customer: i64) -> Reply {
        self.request(Method::GET, path, Some(customer), None).await
    }

    pub async fn post(&self, path: &str, customer: i64, body: Value) -> Reply {
        self.request(Method::POST, path, Some(customer), Some(&body))
            .await
    }

    pub async fn patch(&self, path: &str, customer: i64, body: Value) -> Reply {
        self.request(Method::PATCH, path, Some(customer), Some(&body))
            .await
    }

    /// A request with a JSON body and `Idempotency-Key: key`.
    pub async fn keyed(
        &self,
        method: Method,
        path: &str,
        customer: i64,
        key: &str,
        body: &Value,
    ) -> Reply {
        let request = self
            .build(method, path, Some(customer), Some(body))
            .header("Idempotency-Key", key);
        self.send(request).await
    }

    /// `PUT /v1/jobs/{id}/{action}` with a JSON body.
    pub async fn command(&self, customer: i64, id: Uuid, action: &str, body: Value) -> Reply {
        self.request(
            Method::PUT,
            &format!("/v1/jobs/{id}/{action}"),
            Some(customer),
            Some(&body),
        )
        .await
    }

    /// Creates a job with the minimum body and returns its id.
    pub async fn create_job(&self, customer: i64) -> Uuid {
        self.create_job_with(customer, json!({"typeId": 1, "contactId": 2}))
            .await
    }

    pub async fn create_job_with(&self, customer: i64, body: Value) -> Uuid {
        let reply = self.post("/v1/jobs", customer, body).await;
        reply.assert_status(201);
        let id: Uuid = reply.json()["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("a UUID id");
        assert_eq!(reply.header("location"), Some(&*format!("/v1/jobs/{id}")));
        id
    }

    /// The job as GET returns it (asserting 200).
    pub async fn job(&self, customer: i64, id: Uuid) -> Value {
        let reply = self.get(&format!("/v1/jobs/{id}"), customer).await;
        reply.assert_status(200);
        reply.json()
    }

    /// Every stored event of the job (one large page).
    pub async fn events(&self, customer: i64, id: Uuid) -> Vec<Value> {
        let reply = self
            .get(&format!("/v1/jobs/{id}/events?pageSize=1000"), customer)
            .await;
        reply.assert_status(200);
        reply.json()["items"]
            .as_array()
            .cloned()
            .expect("an items array")
    }

    /// Drives a new job through the API to `status`, along the shortest legal path.
    pub async fn bring_to(&self, customer: i64, id: Uuid, status: &str) {
        let schedule =
            json!({"resourceId": 7, "vehicleId": 8, "plannedStart": "2026-12-01T08:30:00Z"});
        let steps: Vec<(&str, Value)> = match status {
            "new" => vec![],
            "scheduled" => vec![("schedule", schedule)],
            "unscheduled" => vec![("schedule", schedule), ("unschedule", json!({}))],
            "sent" | "read" | "accepted" | "refused" | "onTheWay" => {
                let mut steps = vec![
                    ("schedule", schedule),
                    ("progress", json!({"status": "sent"})),
                ];
                if status != "sent" {
                    steps.push(("progress", json!({"status": status})));
                }
                steps
            }
            "started" => vec![("schedule", schedule), ("start", json!({}))],
            "suspended" => vec![
                ("schedule", schedule),
                ("start", json!({})),
                ("suspend", json!({"reason": "waiting for parts"})),
            ],
            "completedOk" | "completedWithIssues" => vec![
                ("schedule", schedule),
                ("start", json!({})),
                ("result", json!({"outcome": status})),
            ],
            "cancelled" => vec![("cancel", json!({"reason": "no longer needed"}))],
            other => panic!("no path to status {other}"),
        };
        for (action, body) in steps {
            self.command(customer, id, action, body)
                .await
                .assert_status(204);
        }
        assert_eq!(self.job(customer, id).await["status"], status);
    }
}
