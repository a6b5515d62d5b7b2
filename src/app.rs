//! The application: build it (connect the store, bind the listener), then run it until a
//! shutdown signal. Binaries and tests both go through here.

use crate::auth::secrets::{HashError, SecretHasher};
use crate::auth::tokens::{KeyError, TokenKeys};
use crate::auth::Authenticator;
use crate::config::{OpenError, Settings};
use crate::http::connections::{self, ConnectionLimits};
use crate::http::rate_limits::RateLimits;
use crate::http::{router, AppState};
use crate::service::JobService;
use crate::webhooks::Deliverer;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] OpenError),
    #[error(transparent)]
    SigningKey(#[from] KeyError),
    #[error("cannot prepare password hashing: {0}")]
    Hasher(#[from] HashError),
    #[error("cannot check the event log: {0}")]
    LogCheck(#[source] projections::StoreError),
    /// A restored log whose order new events would break (see `jobs-admin repair-log`).
    #[error("{0}")]
    LogAhead(projections::log::TransactionsAhead),
    #[error("cannot prepare the webhook client: {0}")]
    WebhookClient(#[source] reqwest::Error),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    backend: &'static str,
    /// `/metrics` on a listener of its own (`--metrics-listen`).
    metrics_listener: Option<TcpListener>,
    service: Arc<JobService>,
    store: projections::JobStore,
    auth: Arc<Authenticator>,
    key_retention: Duration,
    connection_limits: ConnectionLimits,
    deliverer: Arc<Deliverer>,
}

/// How often the server purges idempotency keys past their retention and refreshes the
/// query planner's statistics.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(3600);

impl Application {
    /// Connects the store (applying migrations), loads or makes the token signing key, and
    /// binds the listener; port 0 picks a free port (see [`Application::local_addr`]).
    pub async fn build(settings: &Settings) -> Result<Self, StartError> {
        let store = settings
            .store
            .open_bounded(settings.session_bounds())
            .await?;
        // A log restored from another PostgreSQL cluster must be repaired before anything
        // is written to it, or new events would sort before restored ones.
        if let Some(ahead) = store
            .log()
            .transactions_ahead()
            .await
            .map_err(StartError::LogCheck)?
        {
            return Err(StartError::LogAhead(ahead));
        }
        let key_source = settings.tokens.key_source(&settings.store.data_dir);
        let keys = TokenKeys::from_ring(
            &key_source.load()?,
            key_source.file(),
            settings.tokens.policy(),
        )?;
        let hasher = tokio::task::spawn_blocking(SecretHasher::new)
            .await
            .map_err(HashError::from)??;
        connections::make_room_for(settings.connections.limits().max_connections);
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| StartError::Listen {
                    address: settings.listen,
                    source,
                })?;
        let metrics_listener = match settings.metrics_listen {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .map_err(|source| StartError::Listen { address, source })?,
            ),
            None => None,
        };
        // Installed before the first request, so no early measurement is dropped.
        crate::telemetry::metrics();
        let service = Arc::new(JobService::new(&store));
        let auth = Arc::new(Authenticator::new(keys, Arc::new(hasher), store.clients()));
        let webhook_targets = settings.webhooks.policy();
        let deliverer = Deliverer::new(
            store.webhooks(),
            store.log(),
            service.commit_signal(),
            webhook_targets.clone(),
            settings.webhooks.retry_window(),
        )
        .map_err(StartError::WebhookClient)?;
        let state = AppState {
            service: service.clone(),
            auth: auth.clone(),
            limits: Arc::new(RateLimits::new(&settings.rate_limits)),
            webhooks: store.webhooks(),
            webhook_targets: Arc::new(webhook_targets),
            webhook_changes: deliverer.change_signal(),
        };
        Ok(Self {
            listener,
            router: router(state, metrics_listener.is_some()),
            metrics_listener,
            backend: store.backend_name(),
            service,
            store,
            auth,
            key_retention: settings.key_retention.duration(),
            connection_limits: settings.connections.limits(),
            deliverer: Arc::new(deliverer),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Where `/metrics` is served apart, if it is (`--metrics-listen`).
    pub fn metrics_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.metrics_listener.as_ref().map(TcpListener::local_addr)
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (within the
    /// shutdown timeout; see [`connections::serve`]). Meanwhile, at start and every hour,
    /// purges idempotency keys past their retention and refreshes the planner's statistics
    /// (SQLite), and keeps the metrics' histograms folded.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let purging = tokio::spawn(upkeep(self.service, self.store, self.key_retention));
        let folding = tokio::spawn(crate::telemetry::keep_metrics_folded());
        let rereading = tokio::spawn(reread_keys(self.auth));
        let (stop_delivering, delivering_stopped) = tokio::sync::oneshot::channel::<()>();
        let delivering = tokio::spawn(self.deliverer.run(async {
            let _ = delivering_stopped.await;
        }));
        let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics = self.metrics_listener.map(|listener| {
            tokio::spawn(connections::serve(
                listener,
                crate::http::metrics_router(),
                self.connection_limits,
                async {
                    let _ = metrics_stopped.await;
                },
            ))
        });
        let served =
            connections::serve(self.listener, self.router, self.connection_limits, shutdown).await;
        purging.abort();
        folding.abort();
        rereading.abort();
        // Deliveries stop after the requests: the deliverer gives its leases up, so another
        // server takes over at once.
        drop(stop_delivering);
        let _ = delivering.await;
        drop(stop_metrics);
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        served
    }
}

/// Every [`UPKEEP_INTERVAL`]: deletes idempotency keys older than `retention` (servers
/// sharing a database each do so; the deletes are idempotent), and refreshes the planner's
/// statistics, so that a filtered list keeps being served by its filter's index as the
/// store grows.
async fn upkeep(service: Arc<JobService>, store: projections::JobStore, retention: Duration) {
    let mut ticks = tokio::time::interval(UPKEEP_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = store.refresh_planner_statistics().await {
            tracing::warn!(%error, "could not refresh the planner's statistics; trying again later");
        }
        match service.purge_keys(retention).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged idempotency keys past their retention"),
            Err(error) => {
                tracing::warn!(%error, "could not purge idempotency keys; trying again later")
            }
        }
    }
}

/// Re-reads the token signing key file whenever it changes (checked every
/// [`crate::auth::tokens::KEY_FILE_RELOAD`]): a key rotated in, or retired, takes effect
/// without a restart.
async fn reread_keys(auth: Arc<Authenticator>) {
    let mut ticks = tokio::time::interval(crate::auth::tokens::KEY_FILE_RELOAD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        auth.keys().reload_if_changed();
    }
}

/// A future that completes on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when
/// this is called, not when the future is first polled: call it before announcing that the
/// server listens, or a signal sent right after the announcement kills the process instead
/// of stopping it gracefully.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (mut interrupt, mut terminate) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let interrupted = async {
                match interrupt.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            let terminated = async {
                match terminate.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = interrupted => {},
                _ = terminated => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received; finishing in-flight requests");
    }
}
