//! Process-wide observability set-up: the log subscriber and the Prometheus metrics recorder
//! (scraped at `GET /metrics`). What happens per request — request ids, the request log line,
//! per-route metrics — is HTTP middleware, in `http::middleware`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use tracing_appender::non_blocking::WorkerGuard;

/// Logs to stderr; `RUST_LOG` overrides the default level (info). Lines are formatted where
/// they are logged and written by a thread of their own, which writes all the lines waiting
/// at once: one `write` per batch instead of one per request (the request log line's write
/// was about 4% of a loaded server's CPU). No line is dropped: should stderr stop taking
/// them, loggers wait once 128 000 lines are queued, as they waited on each write before.
/// Keep the returned guard until the process ends: dropping it writes what is queued.
///
/// `format` is text for people, or one JSON object per line for log shippers, its event
/// fields (`message`, `method`, `path`, `status`, `request_id`, …) at the top level beside
/// `timestamp`, `level` and `target`.
#[must_use = "dropping the guard stops the log writer"]
pub fn init(format: LogFormat) -> WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("jobs-log-writer")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    guard
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Text for people (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Commands per group commit: one at rest, up to the group's bound (128) under load.
const GROUP_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// Seconds; from a fast lookup to the request timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's Prometheus recorder, installed on first use. The `metrics` facade has one
/// global recorder per process, so every application in it (tests run several) reports to
/// it. `None` only if something else installed a recorder first.
pub fn metrics() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full("jobs_group_commit_size".into()),
                    GROUP_SIZE_BUCKETS,
                )
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// How often histogram samples are folded into their buckets.
const METRICS_UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds the recorder's histogram samples into their buckets every few seconds. Until
/// folded, each sample is kept, and otherwise only a scrape of `/metrics` folds them: a
/// server nobody scrapes would grow by every request's duration (about 90 MB an hour at
/// 3 000 requests/s).
pub async fn keep_metrics_folded() {
    let Some(handle) = metrics() else { return };
    let mut ticks = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        handle.run_upkeep();
    }
}
