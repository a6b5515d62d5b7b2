//! The application under test: the real server in process on port 0 over a
//! [`TestStore`], the [`Fixture`]s a `backend_tests!` body receives, and the token and
//! client helpers (a default client per customer, token requests, token ids).

use super::proxy::TcpProxy;
use super::store::{Backend, Cleanup, TestClient, TestStore};
use clap::Parser;
use jobs_service::auth::Scope;
use jobs_service::{Application, Settings};
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub store: std::sync::Arc<TestStore>,
    /// A client and its access token per customer id, for the requests whose test did not
    /// bring a token of its own.
    tokens: tokio::sync::Mutex<HashMap<i64, (Uuid, String)>>,
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

/// A form-encoded body.
pub fn form(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).expect("encodable")
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

    /// Another instance on the same PostgreSQL store that reaches its database through a
    /// [`TcpProxy`] the test controls, negotiating TLS as it would without one.
    pub async fn behind_proxy(&self) -> (TestApp, TcpProxy) {
        self.proxied("prefer").await
    }

    /// The same, in clear text, so that the proxy can see (and lose) a `COMMIT`.
    pub async fn behind_proxy_in_clear(&self) -> (TestApp, TcpProxy) {
        self.proxied("disable").await
    }

    async fn proxied(&self, sslmode: &str) -> (TestApp, TcpProxy) {
        let url = &self.store.database_url;
        let (scheme_and_user, rest) = url.split_once('@').expect("a postgres URL with a user");
        let (host_port, database) = rest
            .split_once('/')
            .expect("a postgres URL with a database");
        let upstream = tokio::net::lookup_host(host_port)
            .await
            .ok()
            .and_then(|mut addresses| addresses.next())
            .expect("the PostgreSQL server's address");
        let proxy = TcpProxy::start(upstream).await;
        let separator = if database.contains('?') { '&' } else { '?' };
        let proxied = format!(
            "{scheme_and_user}@{}/{database}{separator}sslmode={sslmode}",
            proxy.address
        );
        (Self::serve_from(self.store.clone(), &proxied).await, proxy)
    }

    async fn serve(store: std::sync::Arc<TestStore>) -> TestApp {
        let url = store.database_url.clone();
        Self::serve_from(store, &url).await
    }

    /// The real application over `store`, with `settings` (flags, as on the command line)
    /// on top of the tests' own.
    pub async fn with_settings(store: TestStore, settings: &[&str]) -> TestApp {
        let url = store.database_url.clone();
        Self::serve_with(std::sync::Arc::new(store), &url, settings).await
    }

    /// The application over `store`, connecting to it at `database_url`.
    async fn serve_from(store: std::sync::Arc<TestStore>, database_url: &str) -> TestApp {
        Self::serve_with(store, database_url, &[]).await
    }

    /// The same with `extra` settings. Rate limits are off unless `extra` sets them: tests
    /// send bursts from one address and one client that the defaults would refuse.
    async fn serve_with(
        store: std::sync::Arc<TestStore>,
        database_url: &str,
        extra: &[&str],
    ) -> TestApp {
        let mut args: Vec<std::ffi::OsString> = vec![
            "jobs-server".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--database-url".into(),
            database_url.into(),
            "--data-dir".into(),
            store.data_dir.clone().into(),
        ];
        args.extend(extra.iter().map(Into::into));
        let mut settings = Settings::try_parse_from(args).expect("valid settings");
        let sets = |flag: &str| extra.iter().any(|arg| arg.starts_with(flag));
        if !sets("--rate-limit") {
            settings.rate_limits.rate_limit = 0;
        }
        if !sets("--token-rate-limit") {
            settings.rate_limits.token_rate_limit = 0;
        }
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
}
