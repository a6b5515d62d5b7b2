//! The one fold: a batch of job events applied to the summaries that hold them, yielding
//! the status-history rows they add. The write path folds one command's events into a
//! plain map, a rebuild folds the whole log into its bounded cache, and `verify` folds each
//! job to compare it with its rows; all three go through [`fold_events`], so they cannot
//! disagree about what an event does.

use super::metadata::EventMetadata;
use super::view::{apply_event, JobView, StatusHistoryEntry};
use std::collections::{HashMap, HashSet};

/// One job event on its way into the projection, read and parsed.
pub struct EventRow<'a> {
    pub job_id: &'a str,
    pub sequence: i64,
    pub event: domain::JobEvent,
    pub metadata: EventMetadata,
}

/// Where a fold finds and keeps the summaries it works on: a plain map for one command, the
/// rebuild's bounded cache for a replay.
pub trait ViewSlots {
    /// Whether the job's summary (or its absence) is already held.
    fn holds(&self, job_id: &str) -> bool;
    /// The job's summary, held from now on (`None` until its creation is folded).
    fn slot(&mut self, job_id: &str) -> &mut Option<JobView>;
}

impl ViewSlots for HashMap<String, Option<JobView>> {
    fn holds(&self, job_id: &str) -> bool {
        self.contains_key(job_id)
    }

    fn slot(&mut self, job_id: &str) -> &mut Option<JobView> {
        self.entry(job_id.to_owned()).or_default()
    }
}

/// An event whose job id is not a UUID: the store holds something this service never wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job id {job_id:?} is not a UUID: {reason}")]
pub struct NotAJobId {
    pub job_id: String,
    pub reason: String,
}

/// The jobs of `events` that `views` does not hold yet, each once, in order of appearance.
pub fn unseen_jobs<'e>(views: &impl ViewSlots, events: &[EventRow<'e>]) -> Vec<&'e str> {
    let mut seen = HashSet::new();
    events
        .iter()
        .map(|event| event.job_id)
        .filter(|id| !views.holds(id) && seen.insert(*id))
        .collect()
}

/// Folds `events` into `views` (a job not held yet starts with no summary) and returns the
/// status-history rows they add.
pub fn fold_events<'e>(
    views: &mut impl ViewSlots,
    events: &[EventRow<'e>],
) -> Result<Vec<(&'e str, StatusHistoryEntry)>, NotAJobId> {
    let mut history = Vec::new();
    for event in events {
        let job_id = uuid::Uuid::parse_str(event.job_id).map_err(|e| NotAJobId {
            job_id: event.job_id.to_owned(),
            reason: e.to_string(),
        })?;
        let view = views.slot(event.job_id);
        if let Some(entry) =
            apply_event(view, job_id, event.sequence, &event.event, &event.metadata)
        {
            history.push((event.job_id, entry));
        }
    }
    Ok(history)
}
