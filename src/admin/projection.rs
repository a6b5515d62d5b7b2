//! `jobs-admin migrate | rebuild | verify`: the schema and the read projection.

use super::AdminError;
use indicatif::{ProgressBar, ProgressStyle};
use projections::rebuild::{rebuild_with, RebuildProgress, RebuildSettings};
use projections::verify::verify as verify_projection;
use projections::{JobStore, StoreError};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn migrate(store: &JobStore, out: &mut impl Write) -> Result<(), AdminError> {
    let applied = store.migrate().await?;
    if applied.is_empty() {
        writeln!(out, "nothing to apply: the schema is up to date")?;
    }
    for migration in &applied {
        writeln!(
            out,
            "applied {} {}",
            migration.version, migration.description
        )?;
    }
    Ok(())
}

/// Rebuilds beside the live tables and swaps them in. Ctrl-C stops it before the swap and
/// drops what it built, leaving the live projection as it was; a second Ctrl-C quits at
/// once (the next rebuild drops the leftovers).
pub async fn rebuild(store: &JobStore, out: &mut impl Write) -> Result<(), AdminError> {
    let rebuilder = store.rebuilder();
    let mut progress = ProgressReport::new();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::Relaxed);
                eprintln!("jobs-admin: stopping the rebuild (Ctrl-C again to quit at once)");
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        })
    };
    let outcome = rebuild_with(&rebuilder, &mut progress, RebuildSettings::default(), &stop).await;
    watcher.abort();
    let report = match outcome {
        Ok(report) => report,
        Err(error) => {
            progress.abandon();
            return Err(match error {
                StoreError::Interrupted => AdminError::Interrupted,
                other => other.into(),
            });
        }
    };
    progress.finish();
    writeln!(
        out,
        "rebuilt the projection from {} event(s) in {:.1} s ({:.0} events/s)",
        report.events,
        report.elapsed.as_secs_f64(),
        report.events_per_second()
    )?;
    Ok(())
}

pub async fn verify(store: &JobStore, out: &mut impl Write) -> Result<(), AdminError> {
    let mut write_error = None;
    let report = verify_projection(store.checker().as_ref(), |difference| {
        if write_error.is_none() {
            write_error = writeln!(out, "{difference}").err();
        }
    })
    .await?;
    if let Some(error) = write_error {
        return Err(error.into());
    }
    if report.differences > 0 {
        writeln!(
            out,
            "{} difference(s) in {} job(s) checked; `jobs-admin rebuild` derives the \
             projection afresh from the events",
            report.differences, report.jobs
        )?;
        return Err(AdminError::Differences(report.differences));
    }
    writeln!(
        out,
        "{} job(s) checked: the projection matches the events",
        report.jobs
    )?;
    Ok(())
}

/// A progress bar with events/s and ETA on a terminal; a plain line every few seconds
/// otherwise (logs, CI), so the output stays readable.
struct ProgressReport {
    bar: Option<ProgressBar>,
    total: u64,
    started: Instant,
    next_line: Instant,
}

/// How often the plain progress line is written.
const LINE_INTERVAL: Duration = Duration::from_secs(5);

impl ProgressReport {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            if let Ok(style) = ProgressStyle::with_template(
                "rebuild [{bar:40}] {human_pos}/{human_len} events  {per_sec}  ETA {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        ProgressReport {
            bar,
            total: 0,
            started: Instant::now(),
            next_line: Instant::now() + LINE_INTERVAL,
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn abandon(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }
}

impl RebuildProgress for ProgressReport {
    fn started(&mut self, total: u64) {
        self.total = total;
        self.started = Instant::now();
        match &self.bar {
            Some(bar) => bar.set_length(total),
            None => eprintln!("rebuild: replaying {total} event(s)"),
        }
    }

    fn advanced(&mut self, replayed: u64) {
        if replayed > self.total {
            // Events appended during the rebuild.
            self.total = replayed;
            if let Some(bar) = &self.bar {
                bar.set_length(replayed);
            }
        }
        if let Some(bar) = &self.bar {
            bar.set_position(replayed);
            return;
        }
        let now = Instant::now();
        if now < self.next_line {
            return;
        }
        self.next_line = now + LINE_INTERVAL;
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = replayed as f64 / elapsed.max(1e-9);
        let left = self.total.saturating_sub(replayed) as f64 / rate.max(1e-9);
        eprintln!(
            "rebuild: {replayed}/{} events ({:.0}%), {rate:.0} events/s, ETA {left:.0} s",
            self.total,
            100.0 * replayed as f64 / self.total.max(1) as f64
        );
    }

    fn swapping(&mut self) {
        match &self.bar {
            Some(bar) => bar.set_message("swapping"),
            None => eprintln!("rebuild: caught up; swapping the rebuilt tables in"),
        }
    }
}
