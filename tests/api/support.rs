//! The test harness: the real application on port 0 with a fresh store per test, and
//! request helpers. `backend_tests!` runs each test body once on SQLite and once on
//! PostgreSQL (a uniquely named database, dropped afterwards).

use clap::Parser;
use jobs_service::auth::secrets::SecretHasher;
use jobs_service::auth::Scope;
use jobs_service::{Application, Settings};
use projections::{EventMetadata, JobView};
use reqwest::header::AUTHORIZATION;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;
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
    pub store: std::sync::Arc<TestStore>,
    /// A client and its access token per customer id, for the requests whose test did not
    /// bring a token of its own.
    tokens: tokio::sync::Mutex<HashMap<i64, (Uuid, String)>>,
}

/// A registered client and the secret it was given.
pub struct TestClient {
    pub id: Uuid,
    pub secret: String,
}

/// The token settings of every in-process test server: the defaults (a generated key, an
/// hour, `jobs-service` for `jobs-api`), whatever `JOBS_TOKEN_*` the shell exports.
pub fn test_token_options() -> jobs_service::config::TokenOptions {
    jobs_service::config::TokenOptions {
        token_key_file: None,
        token_key: None,
        token_ttl: 3600,
        token_issuer: "jobs-service".into(),
        token_audience: "jobs-api".into(),
    }
}

/// One password hasher for the whole test binary: making one costs a hash.
fn hasher() -> &'static SecretHasher {
    static HASHER: OnceLock<SecretHasher> = OnceLock::new();
    HASHER.get_or_init(|| SecretHasher::new().expect("a password hasher"))
}

/// A form-encoded body.
pub fn form(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).expect("encodable")
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
    /// The store opened by the test itself, to register clients.
    opened: tokio::sync::OnceCell<projections::JobStore>,
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
            opened: tokio::sync::OnceCell::new(),
            _cleanup: cleanup,
        }
    }

    pub async fn open(&self) -> &projections::JobStore {
        self.opened
            .get_or_init(|| async {
                projections::connect(&self.database_url)
                    .await
                    .expect("the test opens its store")
            })
            .await
    }

    /// Registers a client, as `jobs-admin clients create` does.
    pub async fn register_client(&self, scopes: &[Scope], customers: &[i64]) -> TestClient {
        let registry = self.open().await.clients();
        let created = jobs_service::auth::clients::create_client(
            registry.as_ref(),
            hasher(),
            "test client",
            scopes,
            customers,
        )
        .await
        .expect("the client is registered");
        TestClient {
            id: created.client.id,
            secret: created.secret,
        }
    }

    /// Runs SQL straight on the database, behind the application's back (to damage it on
    /// purpose, or to look at what no API shows).
    pub async fn execute_sql(&self, sql: &str) {
        if self.is_postgres() {
            run_raw_sql::<sqlx::PgConnection>(&self.database_url, sql).await;
        } else {
            run_raw_sql::<sqlx::SqliteConnection>(&self.database_url, sql).await;
        }
    }

    /// The names of the tables and indexes the database holds, sorted.
    pub async fn schema_names(&self) -> Vec<String> {
        use sqlx::Connection;
        let mut names: Vec<String> = if self.is_postgres() {
            let mut connection = sqlx::PgConnection::connect(&self.database_url)
                .await
                .expect("connect");
            sqlx::query_scalar(
                "SELECT relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')",
            )
            .fetch_all(&mut connection)
            .await
            .expect("the catalog")
        } else {
            let mut connection = sqlx::SqliteConnection::connect(&self.database_url)
                .await
                .expect("connect");
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")
                .fetch_all(&mut connection)
                .await
                .expect("the catalog")
        };
        names.sort();
        names
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres")
    }

    /// Every projection row (summaries and status history), in a stable order.
    pub async fn projection_rows(
        &self,
    ) -> (
        Vec<projections::verify::SummaryRow>,
        Vec<projections::verify::HistoryRow>,
    ) {
        let mut group = self
            .open()
            .await
            .checker()
            .verify_group("", i64::MAX)
            .await
            .expect("the projection reads");
        group.summaries.sort_by(|a, b| a.job_id.cmp(&b.job_id));
        group
            .history
            .sort_by(|a, b| (&a.job_id, a.sequence).cmp(&(&b.job_id, b.sequence)));
        (group.summaries, group.history)
    }

    /// Runs `jobs-admin` on this store with `args`.
    pub async fn admin(&self, args: &[&str]) -> std::process::Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_jobs-admin"))
            .arg("--database-url")
            .arg(&self.database_url)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("JOBS_DATA_DIR")
            .output()
            .await
            .expect("jobs-admin runs")
    }

    /// The key the server signs tokens with (generated into the data directory).
    pub fn signing_key(&self) -> Vec<u8> {
        jobs_service::auth::tokens::KeySource::Generated(&self.data_dir)
            .load()
            .expect("the server's signing key")
    }
}

/// Runs `sql` on a connection of its own to the database at `url`.
async fn run_raw_sql<C>(url: &str, sql: &str)
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
{
    let mut connection = C::connect(url).await.expect("connect");
    sqlx::raw_sql(sql)
        .execute(&mut connection)
        .await
        .expect("the SQL runs");
}

/// What a command wrote to standard output.
pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What a command wrote to standard error.
pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The standard output of a command that must have succeeded.
#[track_caller]
pub fn succeeded(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "the command failed: {}",
        stderr(output)
    );
    stdout(output)
}

/// Asks the token endpoint at `address` for a token for `client`.
pub async fn request_token(
    http: &reqwest::Client,
    address: &str,
    client: &TestClient,
    scope: Option<&str>,
) -> reqwest::Response {
    let id = client.id.to_string();
    let mut pairs = vec![
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", client.secret.as_str()),
    ];
    if let Some(scope) = scope {
        pairs.push(("scope", scope));
    }
    http.post(format!("{address}/auth/tokens"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&pairs))
        .send()
        .await
        .expect("the token endpoint answers")
}

/// A new client with every scope, acting for `customer`, and a token for it from the server
/// at `address` over `store`.
pub async fn token_for_customer(store: &TestStore, address: &str, customer: i64) -> (Uuid, String) {
    let client = store.register_client(&Scope::ALL, &[customer]).await;
    let response = request_token(&reqwest::Client::new(), address, &client, None).await;
    assert_eq!(response.status(), 200, "a token is issued");
    let body: Value = response.json().await.expect("a JSON token response");
    let token = body["access_token"].as_str().expect("an access token");
    (client.id, token.to_owned())
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
        let args: [std::ffi::OsString; 7] = [
            "jobs-server".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--database-url".into(),
            store.database_url.clone().into(),
            "--data-dir".into(),
            store.data_dir.clone().into(),
        ];
        let mut settings = Settings::try_parse_from(args).expect("valid settings");
        settings.tokens = test_token_options();
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
            tokens: Default::default(),
        }
    }

    /// The client (and its token, with every scope) that acts for `customer` in requests
    /// that bring no token of their own: one per customer, made on first use.
    pub async fn default_client(&self, customer: i64) -> (Uuid, String) {
        let mut tokens = self.tokens.lock().await;
        if let Some(entry) = tokens.get(&customer) {
            return entry.clone();
        }
        let entry = token_for_customer(&self.store, &self.address, customer).await;
        tokens.insert(customer, entry.clone());
        entry
    }

    /// The id (`jti`) of a token this app issued.
    pub fn token_id(&self, token: &str) -> String {
        let keys = jobs_service::auth::tokens::TokenKeys::new(
            &self.store.signing_key(),
            test_token_options().policy(),
        )
        .expect("usable keys");
        keys.verify(token).expect("a valid token").jti
    }

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
    ($($(#[$doc:meta])* async fn $name:ident($arg:ident: $fixture:ty) $body:block)*) => {
        $(
            $(#[$doc])*
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
