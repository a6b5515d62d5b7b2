//! The projection's rows, defined once: the tables a write goes to, their columns in order,
//! and each row's values in that order. Every path that writes or reads these rows — sqlx
//! statements, PostgreSQL's `COPY`, SQLite's prepared bulk statement, `verify` — takes its
//! column list and values from here, so a new column is one change.

use crate::model::view::{StatusHistoryEntry, SummaryDocument};
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;

/// The projection tables a write goes to: the live ones, or the ones a rebuild fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectionTables {
    pub summary: &'static str,
    pub history: &'static str,
}

impl ProjectionTables {
    pub const LIVE: ProjectionTables = ProjectionTables {
        summary: "job_summary",
        history: "job_status_history",
    };
    pub const REBUILD: ProjectionTables = ProjectionTables {
        summary: "rebuild_job_summary",
        history: "rebuild_job_status_history",
    };
    /// The live tables a SQLite swap has just replaced, until they are dropped after its
    /// commit: freeing their pages takes a while, and need not hold writers back.
    pub const REPLACED: ProjectionTables = ProjectionTables {
        summary: "replaced_job_summary",
        history: "replaced_job_status_history",
    };

    /// Both tables' names.
    pub fn names(self) -> [&'static str; 2] {
        [self.summary, self.history]
    }

    /// Each live table with the rebuild table that takes its place.
    pub fn live_and_rebuild() -> [(&'static str, &'static str); 2] {
        let (live, rebuild) = (Self::LIVE, Self::REBUILD);
        [
            (live.summary, rebuild.summary),
            (live.history, rebuild.history),
        ]
    }
}

/// The summary table's columns, in the order [`summary_values`] gives a row's values.
pub(crate) const SUMMARY_COLUMNS: [&str; 10] = [
    "job_id",
    "customer_id",
    "status",
    "type_id",
    "contact_id",
    "reference",
    "created_at",
    "updated_at",
    "version",
    "document",
];

/// The status-history table's columns, in the order [`history_values`] gives a row's values.
pub(crate) const HISTORY_COLUMNS: [&str; 6] = [
    "job_id",
    "sequence",
    "status",
    "occurred_at",
    "comment",
    "actor",
];

/// One column value of a projection row, as each write path binds or formats it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RowValue<'a> {
    Integer(i64),
    Text(&'a str),
    OptionalText(Option<&'a str>),
    Time(DateTime<Utc>),
    /// A JSON document, already serialised.
    Json(&'a RawValue),
}

/// A summary row's values: the job's id, the columns the lists filter and sort on, and the
/// whole view as its JSON `document`.
pub(crate) fn summary_values(summary: &SummaryDocument) -> [RowValue<'_>; 10] {
    use RowValue::*;
    let view = &summary.view;
    [
        Text(&summary.job_id),
        Integer(view.customer_id),
        Text(view.status.as_str()),
        Integer(view.type_id),
        Integer(view.contact_id),
        OptionalText(view.reference.as_deref()),
        Time(view.created_at),
        Time(view.updated_at),
        Integer(view.version),
        Json(&summary.document),
    ]
}

/// A status-history row's values.
pub(crate) fn history_values<'a>(
    job_id: &'a str,
    entry: &'a StatusHistoryEntry,
) -> [RowValue<'a>; 6] {
    use RowValue::*;
    [
        Text(job_id),
        Integer(entry.sequence),
        Text(entry.status.as_str()),
        Time(entry.occurred_at),
        OptionalText(entry.comment.as_deref()),
        Text(&entry.actor),
    ]
}

/// `(a, b, c)`: a column list for an INSERT or COPY.
pub(crate) fn column_list(columns: &[&str]) -> String {
    format!("({})", columns.join(", "))
}

/// `a, b, c`: the columns of a SELECT.
pub(crate) fn select_list(columns: &[&str]) -> String {
    columns.join(", ")
}

/// `$first, …` for `count` parameters, numbered from `first`. Statements number their own
/// placeholders: sqlx's query builder ties its arguments' lifetime to itself, which generic
/// code over the database cannot shorten.
pub(crate) fn numbered(first: usize, count: usize) -> String {
    let numbers: Vec<String> = (first..first + count).map(|n| format!("${n}")).collect();
    numbers.join(", ")
}

/// `($1, $2, …)`: the placeholders of a one-row INSERT of `count` columns.
pub(crate) fn placeholders(count: usize) -> String {
    format!("({})", numbered(1, count))
}

/// `VALUES ($1, …), ($N+1, …), …` for `rows` rows of `columns` columns.
pub(crate) fn values_rows(rows: usize, columns: usize) -> String {
    let rows: Vec<String> = (0..rows)
        .map(|row| format!("({})", numbered(row * columns + 1, columns)))
        .collect();
    format!("VALUES {}", rows.join(", "))
}

/// The upsert clause that replaces a summary row with the new one's values.
pub(crate) fn summary_upsert() -> String {
    let assignments: Vec<String> = SUMMARY_COLUMNS[1..]
        .iter()
        .map(|column| format!("{column} = excluded.{column}"))
        .collect();
    format!(
        " ON CONFLICT (job_id) DO UPDATE SET {}",
        assignments.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_name_every_column_once_in_order() {
        assert_eq!(
            column_list(&HISTORY_COLUMNS),
            "(job_id, sequence, status, occurred_at, comment, actor)"
        );
        assert_eq!(placeholders(3), "($1, $2, $3)");
        let upsert = summary_upsert();
        assert!(upsert.starts_with(
            " ON CONFLICT (job_id) DO UPDATE SET customer_id = excluded.customer_id, "
        ));
        assert!(upsert.ends_with("document = excluded.document"));
        assert!(!upsert.contains("job_id = excluded.job_id"));
    }
}
