//! The store under test: one fresh, empty store per test (a SQLite file in a temporary
//! directory, or a uniquely named PostgreSQL database), its removal, client registration,
//! and raw SQL and `jobs-admin` runs behind the application's back.

use jobs_service::auth::secrets::SecretHasher;
use jobs_service::auth::Scope;
use projections::idempotency::{ClaimOutcome, KeyClaim, KeyedRequest};
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
pub(super) enum Cleanup {
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

/// A registered client and the secret it was given.
pub struct TestClient {
    pub id: Uuid,
    pub secret: String,
}

/// One password hasher for the whole test binary: making one costs a hash.
fn hasher() -> &'static SecretHasher {
    static HASHER: OnceLock<SecretHasher> = OnceLock::new();
    HASHER.get_or_init(|| SecretHasher::new().expect("a password hasher"))
}

/// A fresh, empty store for one test (a SQLite file in a temporary directory, or a new
/// PostgreSQL database), removed when dropped.
pub struct TestStore {
    pub database_url: String,
    pub data_dir: PathBuf,
    /// The store opened by the test itself, to register clients.
    opened: tokio::sync::OnceCell<projections::JobStore>,
    pub(super) _cleanup: Cleanup,
}

impl TestStore {
    pub async fn new(backend: Backend) -> TestStore {
        // reqwest is built with rustls and no crypto provider of its own (as the server's
        // webhook client is): a test's client needs the process's provider installed, which
        // the server does when it starts — but a test may make its client first.
        let _ = rustls::crypto::ring::default_provider().install_default();
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

    /// Forgets the test's own connection to the store, for a test that replaced the
    /// database behind it (a SQLite file restored from a copy).
    pub fn reopen(&mut self) {
        self.opened = tokio::sync::OnceCell::new();
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

    /// The one integer a query such as `SELECT count(*) …` answers, read behind the
    /// application's back.
    pub async fn count(&self, sql: &str) -> i64 {
        if self.is_postgres() {
            count_raw::<sqlx::PgConnection>(&self.database_url, sql).await
        } else {
            count_raw::<sqlx::SqliteConnection>(&self.database_url, sql).await
        }
    }

    /// A claim on `request`'s idempotency key that ran out and was taken over by a retry:
    /// `(the lost claim, the retry's)`, each for `lease`.
    pub async fn claim_taken_over(
        &self,
        request: &KeyedRequest,
        lease: std::time::Duration,
    ) -> (KeyClaim, KeyClaim) {
        let keys = self.open().await.idempotency_keys();
        let ClaimOutcome::Claimed(lost) = keys.claim(request, lease).await.unwrap() else {
            panic!("a new key is claimed");
        };
        // Its claim runs out (its server is slow, or its clock was); a retry takes over.
        self.execute_sql("UPDATE idempotency_keys SET claimed_until_ms = 0")
            .await;
        let ClaimOutcome::Claimed(retry) = keys.claim(request, lease).await.unwrap() else {
            panic!("a claim that ran out is taken over");
        };
        (lost, retry)
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

    /// The snapshots kept of a job: (sequence, number) of each, oldest first.
    pub async fn snapshots_of(&self, job_id: uuid::Uuid) -> Vec<(i64, i64)> {
        use sqlx::Connection;
        let sql = "SELECT last_sequence, current_snapshot FROM snapshots \
                   WHERE aggregate_id = $1 ORDER BY last_sequence";
        if self.is_postgres() {
            let mut connection = sqlx::PgConnection::connect(&self.database_url)
                .await
                .expect("connect");
            sqlx::query_as(sql)
                .bind(job_id.to_string())
                .fetch_all(&mut connection)
                .await
                .expect("the snapshots")
        } else {
            let mut connection = sqlx::SqliteConnection::connect(&self.database_url)
                .await
                .expect("connect");
            sqlx::query_as(sql)
                .bind(job_id.to_string())
                .fetch_all(&mut connection)
                .await
                .expect("the snapshots")
        }
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
            .keys()[0]
            .secret
            .clone()
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

async fn count_raw<C>(url: &str, sql: &str) -> i64
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    for<'q> <C::Database as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, C::Database>,
    for<'r> (i64,): sqlx::FromRow<'r, <C::Database as sqlx::Database>::Row>,
{
    let mut connection = C::connect(url).await.expect("connect");
    let (count,): (i64,) = sqlx::query_as(sql)
        .fetch_one(&mut connection)
        .await
        .expect("a count");
    count
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

/// The event that creates job `job_id` for `customer`, as the service would store it: for
/// tests that append to the store directly.
pub fn created_event(job_id: &str, customer: i64) -> cqrs_es::persist::SerializedEvent {
    let payload = serde_json::json!({"JobCreated": {
        "customerId": customer, "typeId": 1, "contactId": 2, "customFields": [],
        "occurredAt": "2026-11-29T10:00:00Z",
    }});
    let event: domain::JobEvent = serde_json::from_value(payload.clone()).expect("a job event");
    cqrs_es::persist::SerializedEvent {
        aggregate_id: job_id.to_owned(),
        sequence: 1,
        aggregate_type: domain::AGGREGATE_TYPE.to_owned(),
        event_type: cqrs_es::DomainEvent::event_type(&event),
        event_version: "1.0".into(),
        payload,
        metadata: serde_json::json!({}),
    }
}
