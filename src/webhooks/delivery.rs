//! Delivering subscriptions: every server runs a [`Deliverer`]. Once a second it leases, in
//! the database, the active subscriptions that are due and that no other server holds (or
//! whose holder stopped renewing: a server that died), and renews the leases it holds; for
//! each it runs one task that reads the customer's events from the global log after the
//! subscription's checkpoint and sends them, one at a time, in log order — so each job's
//! events arrive in order — recording the checkpoint after each. A delivery is sent before
//! its checkpoint is recorded, so a server dying between the two makes the next holder send
//! it again: at least once, with a stable `webhook-id` for receivers to drop repeats.
//!
//! A failed attempt (no 2xx answer within the timeout) is recorded, the lease given up, and
//! the event tried again after an exponentially growing wait with jitter (1 s, 2 s, 4 s, …,
//! at most an hour). Later events wait behind it. Once the first failed attempt at an event
//! is the retry window old (24 h by default), the subscription is marked failing and rests
//! until its customer redelivers; nothing is skipped, so the receiver then gets everything,
//! in order.

use super::event::{event_id, FeedEvent};
use super::signing::signature_header;
use super::targets::{GuardedResolver, TargetPolicy};
use crate::service::CommitSignal;
use projections::log::{EventLog, LogCursor, LogFilter, LoggedEvent};
use projections::webhooks::{
    AfterFailure, FailedDelivery, Subscription, SubscriptionStatus, WebhookStore,
};
use rand::Rng;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How long a delivery may take before it counts as failed.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a lease lasts unrenewed: longer than a delivery may take, so a holder that is
/// alive always renews in time; after a server dies, another takes over within this.
pub const LEASE: Duration = Duration::from_secs(15);

/// [`LEASE`] as the store counts it.
const LEASE_MS: i64 = LEASE.as_millis() as i64;

/// How often the deliverer leases what is due and renews what it holds.
const CLAIM_EVERY: Duration = Duration::from_secs(1);

/// How often an idle subscription looks at the log when no commit of this server wakes it
/// (commits of other servers sharing the database).
const IDLE_POLL: Duration = Duration::from_millis(250);

/// How often each subscription's lag is measured for the metrics.
const LAG_EVERY: Duration = Duration::from_secs(10);

/// Lags are counted up to this.
pub const LAG_CAP: i64 = 100_000;

/// Events read from the log at a time.
const BATCH: i64 = 100;

/// The longest wait between two attempts at one event.
const LONGEST_RETRY_WAIT: Duration = Duration::from_secs(3600);

/// The wait before attempt `failed + 1`, after `failed` failed attempts: 1 s doubling up to
/// an hour, of which a random part (up to half) is taken off, so receivers coming back are
/// not met by every subscription at once.
pub fn retry_wait(failed: i32) -> Duration {
    let doublings = failed.clamp(1, 32) - 1;
    let full = Duration::from_secs(1u64 << doublings.min(12)).min(LONGEST_RETRY_WAIT);
    let jitter = rand::rng().random_range(0.0..0.5);
    full.mul_f64(1.0 - jitter)
}

/// What went wrong with one attempt.
struct AttemptFailed {
    status: Option<u16>,
    error: String,
}

/// Delivers the subscriptions this server holds (see the module doc).
pub struct Deliverer {
    store: Arc<dyn WebhookStore>,
    log: Arc<dyn EventLog>,
    commits: CommitSignal,
    /// Told when a customer creates or changes a subscription, so it is claimed (and its
    /// tasks see the change) at once rather than at the next tick.
    changes: Arc<Notify>,
    policy: TargetPolicy,
    /// For hosts `--webhook-allowed-hosts` exempts; resolves as the system does.
    exempt_client: reqwest::Client,
    /// For every other host: resolves through [`GuardedResolver`].
    guarded_client: reqwest::Client,
    /// This server, as a lease names it.
    owner: String,
    retry_window: Duration,
}

impl Deliverer {
    pub fn new(
        store: Arc<dyn WebhookStore>,
        log: Arc<dyn EventLog>,
        commits: CommitSignal,
        policy: TargetPolicy,
        retry_window: Duration,
    ) -> Result<Self, reqwest::Error> {
        // sqlx and reqwest both use rustls; the crypto provider is ring, which sqlx builds.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = || {
            reqwest::Client::builder()
                .timeout(DELIVERY_TIMEOUT)
                .connect_timeout(DELIVERY_TIMEOUT)
                // A redirect could lead anywhere, an internal address included.
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .user_agent(concat!("jobs-service-webhooks/", env!("CARGO_PKG_VERSION")))
        };
        Ok(Deliverer {
            store,
            log,
            commits,
            changes: Arc::new(Notify::new()),
            policy,
            exempt_client: client().build()?,
            guarded_client: client().dns_resolver(GuardedResolver).build()?,
            owner: Uuid::now_v7().to_string(),
            retry_window,
        })
    }

    /// What to tell when a subscription was created or changed (see `changes`).
    pub fn change_signal(&self) -> Arc<Notify> {
        self.changes.clone()
    }

    /// Runs until `stop` completes; then stops its tasks and gives up its leases, so
    /// another server takes over at once.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        let mut running: HashMap<Uuid, JoinHandle<()>> = HashMap::new();
        let mut ticks = tokio::time::interval(CLAIM_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Apart, so that however long counting takes, leases are renewed on time.
        let measuring = tokio::spawn(self.clone().measure_lags());
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = self.changes.notified() => self.claim(&mut running).await,
                _ = ticks.tick() => self.claim(&mut running).await,
            }
        }
        measuring.abort();
        lag_boards().remove(&self.owner);
        for (id, task) in running {
            task.abort();
            let _ = task.await;
            if let Err(error) = self.store.release(id, &self.owner).await {
                tracing::warn!(%error, subscription = %id, "could not give up a webhook lease; it runs out on its own");
            }
        }
    }

    /// Leases what is due (renewing what it holds), starts a task for each subscription it
    /// has no task for, and stops the tasks of those it no longer holds (paused, deleted,
    /// failing, or leased to another server), idle ones included.
    async fn claim(self: &Arc<Self>, running: &mut HashMap<Uuid, JoinHandle<()>>) {
        running.retain(|_, task| !task.is_finished());
        match self.store.claim_due(&self.owner, LEASE_MS).await {
            Ok(due) => {
                let held: std::collections::HashSet<Uuid> =
                    due.iter().map(|subscription| subscription.id).collect();
                running.retain(|id, task| {
                    let keep = held.contains(id);
                    if !keep {
                        task.abort();
                    }
                    keep
                });
                for subscription in due {
                    running
                        .entry(subscription.id)
                        .or_insert_with(|| tokio::spawn(self.clone().deliver(subscription)));
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not lease webhook subscriptions; trying again");
            }
        }
    }

    /// Sends a subscription's events for as long as this server holds it: it stops when
    /// its lease is lost, it is paused, deleted or failing, or an attempt failed.
    async fn deliver(self: Arc<Self>, mut subscription: Subscription) {
        let id = subscription.id;
        let filter = LogFilter {
            customer_id: Some(subscription.customer_id),
        };
        // As if it had waited: the settings it was claimed with may have changed since (a
        // pause right after a create), so they are read again before the first send.
        let mut idle = true;
        loop {
            // Taken before the read, so a commit between the read and the wait wakes it.
            let mut watch = self.commits.watch(subscription.customer_id);
            let events = match self
                .log
                .read_after(subscription.checkpoint, &filter, BATCH)
                .await
            {
                Ok(events) => events,
                Err(error) => {
                    tracing::warn!(%error, subscription = %id, "could not read the event log for a webhook; trying again");
                    tokio::time::sleep(CLAIM_EVERY).await;
                    continue;
                }
            };
            if events.is_empty() {
                idle = true;
                tokio::select! {
                    _ = watch.committed() => {},
                    _ = tokio::time::sleep(IDLE_POLL) => {},
                }
                continue;
            }
            if idle {
                // The settings may have changed while it waited (another server may have
                // served the change): read them again before sending anything.
                idle = false;
                match self.store.subscription(subscription.customer_id, id).await {
                    Ok(Some(now))
                        if now.status == SubscriptionStatus::Active
                            && now.lease_owner.as_deref() == Some(self.owner.as_str()) =>
                    {
                        subscription = now;
                    }
                    Ok(_) => return,
                    Err(error) => {
                        tracing::warn!(%error, subscription = %id, "could not read a webhook subscription; trying again");
                        tokio::time::sleep(CLAIM_EVERY).await;
                        continue;
                    }
                }
            }
            match self.send_batch(&mut subscription, &events).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => {
                    tracing::warn!(%error, subscription = %id, "could not record webhook progress; trying again");
                    tokio::time::sleep(CLAIM_EVERY).await;
                }
            }
        }
    }

    /// Sends the wanted events of a batch in order, recording each. `Ok(false)` when the
    /// task should stop.
    async fn send_batch(
        &self,
        subscription: &mut Subscription,
        events: &[LoggedEvent],
    ) -> Result<bool, projections::StoreError> {
        // Past events of types it does not want; recorded with the next delivery.
        let mut passed = subscription.checkpoint;
        for event in events {
            if !subscription.wants(&event.event_type) {
                passed = event.cursor;
                continue;
            }
            let started = Instant::now();
            let sent = self.send(subscription, event).await;
            metrics::histogram!("jobs_webhook_delivery_seconds")
                .record(started.elapsed().as_secs_f64());
            match sent {
                Ok(()) => {
                    metrics::counter!("jobs_webhook_deliveries_total", "outcome" => "delivered")
                        .increment(1);
                    if !self.advance(subscription, event.cursor, 1).await? {
                        return Ok(false);
                    }
                    passed = subscription.checkpoint;
                }
                Err(failed) => {
                    if passed != subscription.checkpoint {
                        // The failure is the next event's: record what was passed first.
                        match self
                            .store
                            .record_progress(subscription.id, &self.owner, passed, 0, LEASE_MS)
                            .await?
                        {
                            Some(now) => *subscription = now,
                            None => return Ok(false),
                        }
                    }
                    self.record_failure(subscription, event, failed).await?;
                    return Ok(false);
                }
            }
        }
        if passed != subscription.checkpoint && !self.advance(subscription, passed, 0).await? {
            return Ok(false);
        }
        Ok(true)
    }

    /// Records that everything up to `to` was handled (`delivered` of it sent) and takes
    /// the subscription as it now is; whether it is still this server's and active.
    async fn advance(
        &self,
        subscription: &mut Subscription,
        to: LogCursor,
        delivered: i64,
    ) -> Result<bool, projections::StoreError> {
        match self
            .store
            .record_progress(subscription.id, &self.owner, to, delivered, LEASE_MS)
            .await?
        {
            Some(now) if now.status == SubscriptionStatus::Active => {
                *subscription = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn record_failure(
        &self,
        subscription: &Subscription,
        event: &LoggedEvent,
        failed: AttemptFailed,
    ) -> Result<(), projections::StoreError> {
        let attempt = subscription.attempts.saturating_add(1);
        let failure = FailedDelivery {
            event_id: event_id(&event.aggregate_id, event.sequence),
            job_id: event.aggregate_id.clone(),
            sequence: event.sequence,
            event_type: event.event_type.clone(),
            attempt,
            attempted_at_ms: chrono::Utc::now().timestamp_millis(),
            response_status: failed.status.map(i32::from),
            error: failed.error,
        };
        let after = self
            .store
            .record_failure(
                subscription.id,
                &self.owner,
                &failure,
                retry_wait(attempt).as_millis() as i64,
                self.retry_window.as_millis() as i64,
            )
            .await?;
        let outcome = match after {
            AfterFailure::GaveUp => {
                tracing::warn!(subscription = %subscription.id, event = %failure.event_id, attempts = attempt, error = %failure.error,
                    "webhook deliveries failed for the whole retry window; the subscription is now failing");
                "gave_up"
            }
            AfterFailure::Retrying { .. } => {
                tracing::info!(subscription = %subscription.id, event = %failure.event_id, attempt, error = %failure.error,
                    "webhook delivery failed; it will be retried");
                "failed"
            }
            AfterFailure::NotOurs => "failed",
        };
        metrics::counter!("jobs_webhook_deliveries_total", "outcome" => outcome).increment(1);
        Ok(())
    }

    /// One attempt: the event, signed, to the subscription's URL — checked again first.
    async fn send(
        &self,
        subscription: &Subscription,
        event: &LoggedEvent,
    ) -> Result<(), AttemptFailed> {
        let refused = |error: String| AttemptFailed {
            status: None,
            error,
        };
        let url = self
            .policy
            .check(&subscription.url)
            .map_err(|error| refused(format!("the URL {error}")))?;
        let client = if self.policy.exempts(&url) {
            &self.exempt_client
        } else {
            &self.guarded_client
        };
        let feed_event = FeedEvent::from_logged(event);
        let id = feed_event.id.clone();
        let body = serde_json::to_vec(&serde_json::json!({
            "type": feed_event.event_type,
            "timestamp": feed_event.recorded_at,
            "data": feed_event,
        }))
        .map_err(|error| refused(format!("could not write the body: {error}")))?;
        let timestamp = chrono::Utc::now().timestamp();
        let mut secrets = vec![subscription.secret.as_str()];
        if let (Some(previous), Some(until)) = (
            subscription.previous_secret.as_deref(),
            subscription.previous_secret_until_ms,
        ) {
            if chrono::Utc::now().timestamp_millis() < until {
                secrets.push(previous);
            }
        }
        let signature = signature_header(&secrets, &id, timestamp, &body)
            .map_err(|error| refused(format!("could not sign: {error}")))?;
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|error| refused(describe(&error)))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(AttemptFailed {
                status: Some(status.as_u16()),
                error: format!("the receiver answered {status}"),
            })
        }
    }

    /// Every [`LAG_EVERY`]: measures every subscription's lag (events of its customer
    /// after its checkpoint, whatever their type, up to [`LAG_CAP`]) onto this server's
    /// board, which `/metrics` shows as `jobs_webhook_lag_events` (see [`render_lags`]),
    /// and counts subscriptions by status into `jobs_webhook_subscriptions`. Every server
    /// measures every subscription, held or not, so paused and failing ones show too.
    async fn measure_lags(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(LAG_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let subscriptions = match self.store.subscriptions(None).await {
                Ok(subscriptions) => subscriptions,
                Err(error) => {
                    tracing::warn!(%error, "could not read webhook subscriptions to measure their lag");
                    continue;
                }
            };
            let mut by_status: HashMap<&'static str, u32> = HashMap::new();
            let mut board = Vec::with_capacity(subscriptions.len());
            for subscription in &subscriptions {
                *by_status.entry(subscription.status.as_str()).or_default() += 1;
                match lag_of(self.log.as_ref(), subscription).await {
                    Ok(lag) => board.push((subscription.id, lag)),
                    Err(error) => {
                        tracing::warn!(%error, subscription = %subscription.id, "could not measure a webhook's lag")
                    }
                }
            }
            // Replaced whole, so a deleted subscription's series goes with it.
            lag_boards().insert(self.owner.clone(), board);
            for status in [
                SubscriptionStatus::Active,
                SubscriptionStatus::Paused,
                SubscriptionStatus::Failing,
            ] {
                let count = by_status.get(status.as_str()).copied().unwrap_or(0);
                metrics::gauge!("jobs_webhook_subscriptions", "status" => status.as_str())
                    .set(f64::from(count));
            }
        }
    }
}

/// A subscription's lag: the events of its customer after its checkpoint, whatever their
/// type, counted up to [`LAG_CAP`].
pub async fn lag_of(
    log: &dyn EventLog,
    subscription: &Subscription,
) -> Result<i64, projections::StoreError> {
    let filter = LogFilter {
        customer_id: Some(subscription.customer_id),
    };
    log.count_after(subscription.checkpoint, &filter, LAG_CAP)
        .await
}

/// Each deliverer's last lag measurements, by its owner id. A gauge of the metrics
/// recorder would keep a deleted subscription's series for ever; these are replaced whole.
type LagBoards = std::collections::BTreeMap<String, Vec<(Uuid, i64)>>;

fn lag_boards() -> std::sync::MutexGuard<'static, LagBoards> {
    static BOARDS: std::sync::Mutex<LagBoards> = std::sync::Mutex::new(LagBoards::new());
    BOARDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `jobs_webhook_lag_events{subscription}` in Prometheus' text format, for `/metrics`.
pub fn render_lags() -> String {
    use std::fmt::Write;
    let lags: std::collections::BTreeMap<Uuid, i64> =
        lag_boards().values().flatten().copied().collect();
    if lags.is_empty() {
        return String::new();
    }
    let mut text = String::from(
        "# HELP jobs_webhook_lag_events Events of the subscription's customer after its checkpoint (at most 100000)\n\
         # TYPE jobs_webhook_lag_events gauge\n",
    );
    for (id, lag) in lags {
        let _ = writeln!(
            text,
            "jobs_webhook_lag_events{{subscription=\"{id}\"}} {lag}"
        );
    }
    text
}

/// A failed request in a line, with its causes (reqwest's own message is often just
/// "error sending request").
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        format!("no answer within {} s", DELIVERY_TIMEOUT.as_secs())
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_waits_double_up_to_an_hour_with_at_most_half_taken_off() {
        for failed in 1..=40 {
            let full = Duration::from_secs(1 << (failed - 1).min(12)).min(LONGEST_RETRY_WAIT);
            for _ in 0..20 {
                let wait = retry_wait(failed);
                assert!(wait <= full && wait >= full / 2, "{failed}: {wait:?}");
            }
        }
        // Enough attempts fit in a day that a receiver down for hours is reached again
        // within an hour of coming back.
        let mut day = Duration::ZERO;
        let mut attempts = 0;
        while day < Duration::from_secs(86_400) {
            attempts += 1;
            day += Duration::from_secs(1 << (attempts - 1).min(12)).min(LONGEST_RETRY_WAIT);
        }
        assert!(attempts > 24, "{attempts}");
    }
}
