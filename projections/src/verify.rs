//! Checking the projection against the events: every job is folded from its own events with
//! the fold the stores use, and the result is compared with its summary row and its status
//! history rows. Jobs are checked in id order, a few hundred at a time, each group's events
//! and rows read in one snapshot, so the check runs beside a live service, sees no
//! half-written command, and keeps memory flat.

use crate::error::StoreError;
use crate::log::{job_rows, LoggedEvent};
use crate::model::fold::fold_events;
use crate::model::view::{JobView, StatusHistoryEntry};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Jobs per group: one snapshot read each.
pub const VERIFY_BATCH: i64 = 500;

/// A summary row as stored, columns and document.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    pub job_id: String,
    pub customer_id: i64,
    pub status: String,
    pub type_id: i64,
    pub contact_id: i64,
    pub reference: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    pub document: Value,
}

/// A status-history row as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub job_id: String,
    pub sequence: i64,
    pub status: String,
    pub occurred_at: DateTime<Utc>,
    pub comment: Option<String>,
    pub actor: String,
}

/// One group of jobs, read in one snapshot: the jobs whose ids follow the previous group's
/// last id, up to `last_id` (the end of the table when `None`).
#[derive(Debug, Default)]
pub struct VerifyGroup {
    pub last_id: Option<String>,
    /// The jobs' events, by job id then sequence.
    pub events: Vec<LoggedEvent>,
    pub summaries: Vec<SummaryRow>,
    pub history: Vec<HistoryRow>,
}

/// The store side of `verify`. Implemented by both stores.
#[async_trait]
pub trait ProjectionCheck: Send + Sync {
    /// The next group of at most `jobs` jobs with ids after `after` ("" for the first).
    async fn verify_group(&self, after: &str, jobs: i64) -> Result<VerifyGroup, StoreError>;
}

/// One way a job's projection disagrees with its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub job_id: String,
    pub detail: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "job {}: {}", self.job_id, self.detail)
    }
}

/// What `verify` found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub jobs: u64,
    pub differences: u64,
}

/// Compares every job's projection with its events, calling `found` for each difference.
pub async fn verify(
    store: &dyn ProjectionCheck,
    mut found: impl FnMut(&Difference),
) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    let mut after = String::new();
    loop {
        let group = store.verify_group(&after, VERIFY_BATCH).await?;
        for difference in compare_group(&group, &mut report.jobs)? {
            report.differences += 1;
            found(&difference);
        }
        match group.last_id {
            Some(last) => after = last,
            None => return Ok(report),
        }
    }
}

/// The differences within one group; counts the jobs it saw into `jobs`.
fn compare_group(group: &VerifyGroup, jobs: &mut u64) -> Result<Vec<Difference>, StoreError> {
    // The events fold exactly as the stores fold them.
    let rows = job_rows(&group.events)?;
    let mut views: HashMap<String, Option<JobView>> = HashMap::new();
    let mut entries: BTreeMap<&str, Vec<StatusHistoryEntry>> = BTreeMap::new();
    for (job_id, entry) in fold_events(&mut views, &rows)? {
        entries.entry(job_id).or_default().push(entry);
    }
    let summaries: BTreeMap<&str, &SummaryRow> = group
        .summaries
        .iter()
        .map(|row| (row.job_id.as_str(), row))
        .collect();
    let mut history: BTreeMap<&str, Vec<&HistoryRow>> = BTreeMap::new();
    for row in &group.history {
        history.entry(&row.job_id).or_default().push(row);
    }
    let ids: BTreeSet<&str> = views
        .keys()
        .map(String::as_str)
        .chain(summaries.keys().copied())
        .chain(history.keys().copied())
        .collect();

    let mut differences = Vec::new();
    for id in ids {
        *jobs += 1;
        let mut report = |detail: String| {
            differences.push(Difference {
                job_id: id.to_owned(),
                detail,
            })
        };
        let view = views.get(id).and_then(Option::as_ref);
        compare_summary(view, summaries.get(id).copied(), &mut report);
        compare_history(
            entries.get(id).map(Vec::as_slice).unwrap_or_default(),
            history.get(id).map(Vec::as_slice).unwrap_or_default(),
            &mut report,
        );
    }
    Ok(differences)
}

fn compare_summary(
    expected: Option<&JobView>,
    stored: Option<&SummaryRow>,
    report: &mut impl FnMut(String),
) {
    let (expected, stored) = match (expected, stored) {
        (None, None) => return,
        (Some(view), None) => {
            return report(format!(
                "no summary row; the events make it {} at version {}",
                view.status.as_str(),
                view.version
            ))
        }
        (None, Some(_)) => return report("a summary row, but no events create this job".into()),
        (Some(expected), Some(stored)) => (expected, stored),
    };
    let columns = [
        (
            "customer_id",
            json!(stored.customer_id),
            json!(expected.customer_id),
        ),
        (
            "status",
            json!(stored.status),
            json!(expected.status.as_str()),
        ),
        ("type_id", json!(stored.type_id), json!(expected.type_id)),
        (
            "contact_id",
            json!(stored.contact_id),
            json!(expected.contact_id),
        ),
        (
            "reference",
            json!(stored.reference),
            json!(expected.reference),
        ),
        (
            "created_at",
            json!(stored.created_at),
            json!(expected.created_at),
        ),
        (
            "updated_at",
            json!(stored.updated_at),
            json!(expected.updated_at),
        ),
        ("version", json!(stored.version), json!(expected.version)),
    ];
    for (column, stored, expected) in columns {
        if stored != expected {
            report(format!(
                "summary column {column} is {stored}, the events say {expected}"
            ));
        }
    }
    let expected = serde_json::to_value(expected).unwrap_or_default();
    let fields: BTreeSet<&String> = object_keys(&expected)
        .chain(object_keys(&stored.document))
        .collect();
    for field in fields {
        let (stored, expected) = (&stored.document[field], &expected[field]);
        if stored != expected {
            report(format!(
                "summary document field {field} is {stored}, the events say {expected}"
            ));
        }
    }
}

fn object_keys(value: &Value) -> impl Iterator<Item = &String> {
    value.as_object().into_iter().flat_map(|map| map.keys())
}

fn compare_history(
    expected: &[StatusHistoryEntry],
    stored: &[&HistoryRow],
    report: &mut impl FnMut(String),
) {
    let expected: BTreeMap<i64, &StatusHistoryEntry> = expected
        .iter()
        .map(|entry| (entry.sequence, entry))
        .collect();
    let stored: BTreeMap<i64, &HistoryRow> =
        stored.iter().map(|row| (row.sequence, *row)).collect();
    let sequences: BTreeSet<i64> = expected.keys().chain(stored.keys()).copied().collect();
    for sequence in sequences {
        match (expected.get(&sequence), stored.get(&sequence)) {
            (Some(entry), None) => report(format!(
                "no status history row for event #{sequence} ({})",
                entry.status.as_str()
            )),
            (None, Some(row)) => report(format!(
                "a status history row for event #{sequence} ({}) that no event explains",
                row.status
            )),
            (Some(entry), Some(row)) => {
                let as_stored = HistoryRow {
                    job_id: row.job_id.clone(),
                    sequence,
                    status: entry.status.as_str().to_owned(),
                    occurred_at: entry.occurred_at,
                    comment: entry.comment.clone(),
                    actor: entry.actor.clone(),
                };
                if **row != as_stored {
                    report(format!(
                        "status history row #{sequence} is {}, the events say {}",
                        history_json(row),
                        history_json(&as_stored)
                    ));
                }
            }
            (None, None) => {}
        }
    }
}

fn history_json(row: &HistoryRow) -> Value {
    json!({
        "status": row.status,
        "occurredAt": row.occurred_at,
        "comment": row.comment,
        "actor": row.actor,
    })
}
