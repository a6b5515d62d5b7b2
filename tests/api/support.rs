//! The test harness: the real application on port 0 with a fresh store per test, and
//! request helpers. `backend_tests!` runs each test body once on SQLite and once on
//! PostgreSQL (a uniquely named database, dropped afterwards).

use jobs_service::{Application, Settings};
use projections::{EventMetadata, JobView};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;
use uuid::Uuid;

/// Where the PostgreSQL tests create their databases. `scripts/test` sets it when it had to
/// start a server of its own.
pub fn postgres_admin_url() -> String {
    std::env::var("JOBS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Removes what a test's store left behind: the SQLite directory, or the PostgreSQL
/// database (dropped from a thread of its own, since `Drop` cannot await).
enum Cleanup {
    Directory(PathBuf),
    Database {
        admin_url: String,
        name: String,
        data_dir: PathBuf,
    },
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        match self {
            Cleanup::Directory(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Database {
                admin_url,
                name,
                data_dir,
            } => {
                let _ = std::fs::remove_dir_all(data_dir);
                let admin_url = admin_url.clone();
                let statement = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                let _ = std::thread::spawn(move || {
                    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    runtime.block_on(async {
                        use sqlx::Connection;
                        if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                            let _ = sqlx::query(&statement).execute(&mut admin).await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    store: std::sync::Arc<TestStore>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json answer of this status and type, and returns its body.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, problem_type: &str) -> Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "error bodies are problem+json"
        );
        let body = self.json();
        assert_eq!(body["type"], problem_type, "problem: {body}");
        assert_eq!(body["status"], status);
        assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(body["detail"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(body["instance"]
            .as_str()
            .is_some_and(|t| t.starts_with('/')));
        assert_eq!(
            body["requestId"].as_str(),
            self.header("x-request-id"),
            "the problem names the request id of the response"
        );
        body
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }
}

/// A fresh, empty store for one test (a SQLite file in a temporary directory, or a new
/// PostgreSQL database), removed when dropped.
pub struct TestStore {
    pub database_url: String,
    pub data_dir: PathBuf,
    _cleanup: Cleanup,
}

impl TestStore {
    pub async fn new(backend: Backend) -> TestStore {
        let unique = Uuid::now_v7().simple().to_string();
        let data_dir = std::env::temp_dir().join(format!("jobs-test-{unique}"));
        std::fs::create_dir_all(&data_dir).expect("temp dir");
        let (database_url, cleanup) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", data_dir.join("jobs.db").display()),
                Cleanup::Directory(data_dir.clone()),
            ),
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let name = format!("jobs_test_{unique}");
                create_database(&admin_url, &name).await;
                let url = match admin_url.rsplit_once('/') {
                    Some((server, _)) => format!("{server}/{name}"),
                    None => panic!("JOBS_TEST_POSTGRES_URL must end in /DATABASE"),
                };
                (
                    url,
                    Cleanup::Database {
                        admin_url,
                        name,
                        data_dir: data_dir.clone(),
                    },
                )
            }
        };
        TestStore {
            database_url,
            data_dir,
            _cleanup: cleanup,
        }
    }
}

/// What a `backend_tests!` body receives, made for one backend.
pub trait Fixture: Sized {
    fn for_backend(backend: Backend) -> impl std::future::Future<Output = Self>;
}

impl Fixture for TestStore {
    async fn for_backend(backend: Backend) -> Self {
        TestStore::new(backend).await
    }
}

impl Fixture for TestApp {
    async fn for_backend(backend: Backend) -> Self {
        TestApp::spawn(backend).await
    }
}

impl TestApp {
    /// The real application, in process, on a free port, over a fresh store.
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::serve(std::sync::Arc::new(TestStore::new(backend).await)).await
    }

    /// The PostgreSQL database behind this app, if it has one.
    pub fn database_name(&self) -> Option<String> {
        match &self.store._cleanup {
            Cleanup::Database { name, .. } => Some(name.clone()),
            Cleanup::Directory(_) => None,
        }
    }

    /// A second instance of the application on the same store, as when several servers
    /// share one database: their writers race, and only optimistic concurrency orders them.
    pub async fn another_instance(&self) -> TestApp {
        Self::serve(self.store.clone()).await
    }

    async fn serve(store: std::sync::Arc<TestStore>) -> TestApp {
        let settings = Settings {
            listen: "127.0.0.1:0".parse().expect("address"),
            database_url: Some(store.database_url.clone()),
            data_dir: store.data_dir.clone(),
        };
        let application = Application::build(&settings)
            .await
            .expect("the application starts");
        let address = format!(
            "http://{}",
            application.local_addr().expect("bound address")
        );
        tokio::spawn(application.run_until_stopped(std::future::pending()));
        TestApp {
            address,
            client: reqwest::Client::new(),
            store,
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        customer: Option<i64>,
        body: Option<&Value>,
    ) -> Reply {
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
        self.send(request).await
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the server answers");
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

async fn create_database(admin_url: &str, name: &str) {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| {
            panic!(
            "PostgreSQL is not reachable at {admin_url} ({e}). The PostgreSQL tests never skip: \
             start a server there, set JOBS_TEST_POSTGRES_URL, or run `scripts/test`, which \
             starts one when none answers."
        )
        });
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .expect("create the test database");
}

/// Reads an RFC 3339 timestamp the API returned.
pub fn timestamp(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|| panic!("an RFC 3339 timestamp: {value}"))
}

/// Folds the events the API returned into the job view, with the projection's own rules:
/// what the stored summary row must equal.
pub fn fold_events(job_id: Uuid, events: &[Value]) -> Option<JobView> {
    let mut view = None;
    for event in events {
        let event_type = event["eventType"].as_str().expect("eventType");
        let payload: domain::JobEvent =
            serde_json::from_value(json!({ event_type: event["payload"].clone() }))
                .expect("a known event");
        let metadata = EventMetadata::from_json(&event["metadata"]);
        let sequence = event["sequence"].as_i64().expect("sequence");
        view = projections::view::project(view, job_id, sequence, &payload, &metadata);
    }
    view
}

/// Runs each test body on both backends: `mod name { fn sqlite(); fn postgres(); }`. The
/// body's argument is any [`Fixture`]: a running `TestApp`, or just a `TestStore`.
#[macro_export]
macro_rules! backend_tests {
    ($(async fn $name:ident($arg:ident: $fixture:ty) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                use $crate::support::Fixture;

                async fn body($arg: $fixture) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    body(<$fixture>::for_backend(Backend::Sqlite).await).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    body(<$fixture>::for_backend(Backend::Postgres).await).await
                }
            }
        )*
    };
}
