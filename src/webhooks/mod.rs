//! Webhooks: a customer's subscriptions to its events, and their delivery.
//!
//! - `targets.rs`: where a webhook may be sent (https; no internal addresses unless
//!   `--webhook-allowed-hosts` exempts the host), checked at create and at every delivery;
//! - `event.rs`: the event as integrators see it, in the feed and in webhooks;
//! - `signing.rs`: Standard Webhooks secrets and signatures;
//! - `delivery.rs`: the [`Deliverer`] every server runs: leases, the log read after each
//!   subscription's checkpoint, retries with backoff, and the metrics.
//!
//! The subscriptions and their delivery state are stored beside the events
//! (`projections::webhooks`); the HTTP face is `http/webhooks.rs`.

pub mod delivery;
pub mod event;
pub mod signing;
pub mod targets;

pub use delivery::Deliverer;
pub use targets::{AllowedHost, TargetPolicy};

use chrono::{DateTime, Utc};
use std::time::Duration;

/// The most subscriptions one customer may have.
pub const MOST_SUBSCRIPTIONS: i64 = 25;

/// How long a rotated-out secret keeps signing beside the new one.
pub const SECRET_GRACE: Duration = Duration::from_secs(24 * 3600);

/// A time the store keeps as Unix milliseconds (subscriptions' and attempts' times).
pub fn time_of(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The settings of webhook delivery (`--webhook-…`).
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookOptions {
    /// Hosts webhooks may be sent to although they are internal or not https:
    /// comma-separated `host` (every port) or `host:port`. For receivers on a private
    /// network, and tests.
    #[arg(long, env = "JOBS_WEBHOOK_ALLOWED_HOSTS", value_delimiter = ',')]
    pub webhook_allowed_hosts: Vec<AllowedHost>,

    /// Seconds a webhook event is retried (with growing waits) before its subscription is
    /// marked failing and rests until its customer redelivers.
    #[arg(long, env = "JOBS_WEBHOOK_RETRY_WINDOW", default_value_t = 86_400,
          value_parser = clap::value_parser!(u32).range(1..=2_592_000))]
    pub webhook_retry_window: u32,
}

impl WebhookOptions {
    pub fn policy(&self) -> TargetPolicy {
        TargetPolicy::new(self.webhook_allowed_hosts.clone())
    }

    pub fn retry_window(&self) -> Duration {
        Duration::from_secs(self.webhook_retry_window.into())
    }
}
