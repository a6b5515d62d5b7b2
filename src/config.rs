//! Typed configuration. Defaults live here and only here; every setting is a flag with an
//! environment variable of the same meaning (SPEC §6). The store options are shared by
//! `jobs-server` and `jobs-admin`, so both find the same database.

use crate::auth::tokens::{KeySource, TokenPolicy};
use clap::{Args, Parser};
use projections::store::SessionBounds;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "jobs-server",
    version,
    about = "The jobs service: an event-sourced field-service job API"
)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "JOBS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub store: StoreOptions,

    #[command(flatten)]
    pub tokens: TokenOptions,

    #[command(flatten)]
    pub key_retention: KeyRetention,

    #[command(flatten)]
    pub connections: ConnectionOptions,

    /// How log lines are written: `text` for people, `json` (one object per line) for log
    /// shippers.
    #[arg(long, env = "JOBS_LOG_FORMAT", value_enum, default_value_t = crate::telemetry::LogFormat::Text)]
    pub log_format: crate::telemetry::LogFormat,

    /// Serve `/metrics` on this address alone (and not beside the public API), so that
    /// operators need not expose it. Default: on the public listener.
    #[arg(long, env = "JOBS_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Seconds one database statement may run before it is stopped (503 to its caller): on
    /// PostgreSQL every statement of the server, and a transaction may sit idle as long; on
    /// SQLite the job lists, whose cost the caller chooses. jobs-admin is not bounded.
    #[arg(long, env = "JOBS_STATEMENT_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub statement_timeout: u32,

    #[command(flatten)]
    pub rate_limits: RateLimitOptions,

    #[command(flatten)]
    pub webhooks: crate::webhooks::WebhookOptions,
}

/// How the server treats connections: the bounds that keep a few careless or hostile
/// clients from holding it (SPEC §6).
#[derive(Debug, Clone, Copy, Args)]
pub struct ConnectionOptions {
    /// Connections served at once. One more is answered 503 (problem+json, `Retry-After`)
    /// and closed. The server raises its open-file limit to fit (up to the hard limit, and
    /// warns when that is short).
    #[arg(long, env = "JOBS_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Seconds a client has to send a request's head, counted from when the server starts
    /// waiting for it: on a new connection, and after each answer on a kept-alive one, so
    /// this is also how long an idle connection is kept. Trickling clients are closed.
    #[arg(long, env = "JOBS_HEADER_READ_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub header_read_timeout: u32,

    /// Seconds an answer may wait for a client that stops reading it before the connection
    /// is closed.
    #[arg(long, env = "JOBS_WRITE_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub write_timeout: u32,

    /// Seconds in-flight requests get to finish after SIGTERM or SIGINT; connections still
    /// open then are closed and the server exits.
    #[arg(long, env = "JOBS_SHUTDOWN_TIMEOUT", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub shutdown_timeout: u32,
}

impl Settings {
    /// The bounds of the server's database sessions.
    pub fn session_bounds(&self) -> projections::store::SessionBounds {
        projections::store::SessionBounds {
            statement_timeout: Some(Duration::from_secs(self.statement_timeout.into())),
        }
    }
}

impl ConnectionOptions {
    pub fn limits(&self) -> crate::http::connections::ConnectionLimits {
        let seconds = |value: u32| Duration::from_secs(value.into());
        crate::http::connections::ConnectionLimits {
            max_connections: self.max_connections as usize,
            header_read_timeout: seconds(self.header_read_timeout),
            write_timeout: seconds(self.write_timeout),
            shutdown_timeout: seconds(self.shutdown_timeout),
        }
    }
}

/// Per-client request rates (SPEC §6); `0` turns a limit off.
#[derive(Debug, Clone, Copy, Args)]
pub struct RateLimitOptions {
    /// Requests per second each client (an access token's subject) may make to `/v1`,
    /// in bursts of as many. Over it: 429 with `Retry-After`.
    #[arg(long, env = "JOBS_RATE_LIMIT", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub rate_limit: u32,

    /// Token requests per second each client id, and each remote address, may make to
    /// `/auth/tokens`, in bursts of as many. Over it: 429 with `Retry-After`.
    #[arg(long, env = "JOBS_TOKEN_RATE_LIMIT", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub token_rate_limit: u32,
}

/// How long idempotency keys are kept.
#[derive(Debug, Clone, Copy, Args)]
pub struct KeyRetention {
    /// Hours an Idempotency-Key and its answer are kept (at least 24): the server purges
    /// older keys every hour, and `jobs-admin purge-keys` does so at once.
    #[arg(long = "idempotency-key-retention-hours", env = "JOBS_IDEMPOTENCY_KEY_RETENTION_HOURS",
          default_value_t = 24, value_parser = clap::value_parser!(u32).range(24..=8760))]
    pub hours: u32,
}

impl KeyRetention {
    pub fn duration(self) -> Duration {
        Duration::from_secs(u64::from(self.hours) * 3600)
    }
}

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct StoreOptions {
    /// Database URL: postgres://… or sqlite:… (default: a SQLite file in the data directory).
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Directory for the embedded database and the generated token signing key.
    #[arg(long, env = "JOBS_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
}

/// How access tokens are signed and what they say.
#[derive(Debug, Clone, Args)]
pub struct TokenOptions {
    /// File holding the token signing key (HS256; at least 32 bytes; trailing whitespace is
    /// ignored). Default: a key generated on first start into the data directory.
    #[arg(long, env = "JOBS_TOKEN_KEY_FILE", conflicts_with = "token_key")]
    pub token_key_file: Option<PathBuf>,

    /// The token signing key itself (at least 32 bytes). Prefer the environment variable or
    /// the key file: a flag's value is visible to other users of the machine.
    #[arg(long, env = "JOBS_TOKEN_KEY", hide_env_values = true)]
    pub token_key: Option<Redacted>,

    /// Lifetime of an access token, in seconds (60…86400).
    #[arg(long, env = "JOBS_TOKEN_TTL", default_value_t = 3600,
          value_parser = clap::value_parser!(u32).range(60..=86400))]
    pub token_ttl: u32,

    /// The `iss` claim of issued tokens; only tokens with this issuer are accepted.
    #[arg(long, env = "JOBS_TOKEN_ISSUER", default_value = "jobs-service")]
    pub token_issuer: String,

    /// The `aud` claim of issued tokens; only tokens for this audience are accepted.
    #[arg(long, env = "JOBS_TOKEN_AUDIENCE", default_value = "jobs-api")]
    pub token_audience: String,
}

/// A secret setting: its `Debug` never shows the value, so no log line can leak it.
#[derive(Clone)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::str::FromStr for Redacted {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Redacted(text.to_owned()))
    }
}

impl TokenOptions {
    /// The configured key, or the one generated in `data_dir`.
    pub fn key_source<'a>(&'a self, data_dir: &'a std::path::Path) -> KeySource<'a> {
        match (&self.token_key, &self.token_key_file) {
            (Some(key), _) => KeySource::Inline(&key.0),
            (None, Some(path)) => KeySource::File(path),
            (None, None) => KeySource::Generated(data_dir),
        }
    }

    pub fn policy(&self) -> TokenPolicy {
        TokenPolicy {
            issuer: self.token_issuer.clone(),
            audience: self.token_audience.clone(),
            lifetime: Duration::from_secs(self.token_ttl.into()),
        }
    }
}

impl StoreOptions {
    /// The data directory, created if missing.
    fn prepare_data_dir(&self) -> std::io::Result<&std::path::Path> {
        std::fs::create_dir_all(&self.data_dir)?;
        Ok(&self.data_dir)
    }

    /// Opens the store: the configured URL, or the SQLite file `jobs.db` in the data
    /// directory (created if missing), applying pending migrations. The file is named by
    /// path, not spliced into a URL, so any directory name works (`?` or `%` would mean
    /// something in a URL).
    pub async fn open(&self) -> Result<projections::JobStore, OpenError> {
        self.open_bounded(SessionBounds::default()).await
    }

    /// Opens the store as [`Self::open`] does, its sessions within `bounds` (the server's).
    pub async fn open_bounded(
        &self,
        bounds: SessionBounds,
    ) -> Result<projections::JobStore, OpenError> {
        let store = self.connect(bounds).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the store as [`Self::open`] does, without touching its schema.
    pub async fn open_unmigrated(&self) -> Result<projections::JobStore, OpenError> {
        self.connect(SessionBounds::default()).await
    }

    async fn connect(&self, bounds: SessionBounds) -> Result<projections::JobStore, OpenError> {
        match &self.database_url {
            Some(url) => Ok(projections::store::open_bounded(url, bounds).await?),
            None => {
                let dir = self.prepare_data_dir().map_err(OpenError::DataDir)?;
                Ok(
                    projections::store::SqliteJobStore::open_file(&dir.join("jobs.db"))
                        .await
                        .map(|store| projections::JobStore::Sqlite(store.bounded(bounds)))?,
                )
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot prepare the data directory: {0}")]
    DataDir(#[source] std::io::Error),
    #[error("cannot open the store: {0}")]
    Store(#[from] projections::StoreError),
}
