//! Job statuses and the sub-sets of them that commands name (progress steps, outcomes).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a job is in its lifecycle. The serialized names are the wire values of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum JobStatus {
    New,
    Scheduled,
    Unscheduled,
    Sent,
    Read,
    Accepted,
    Refused,
    OnTheWay,
    Started,
    Suspended,
    CompletedOk,
    CompletedWithIssues,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 13] = [
        JobStatus::New,
        JobStatus::Scheduled,
        JobStatus::Unscheduled,
        JobStatus::Sent,
        JobStatus::Read,
        JobStatus::Accepted,
        JobStatus::Refused,
        JobStatus::OnTheWay,
        JobStatus::Started,
        JobStatus::Suspended,
        JobStatus::CompletedOk,
        JobStatus::CompletedWithIssues,
        JobStatus::Cancelled,
    ];

    /// The wire value, e.g. `onTheWay`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::New => "new",
            JobStatus::Scheduled => "scheduled",
            JobStatus::Unscheduled => "unscheduled",
            JobStatus::Sent => "sent",
            JobStatus::Read => "read",
            JobStatus::Accepted => "accepted",
            JobStatus::Refused => "refused",
            JobStatus::OnTheWay => "onTheWay",
            JobStatus::Started => "started",
            JobStatus::Suspended => "suspended",
            JobStatus::CompletedOk => "completedOk",
            JobStatus::CompletedWithIssues => "completedWithIssues",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a wire value; `None` for anything else.
    pub fn parse(value: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Work has begun (started, suspended or completed): the job can no longer be cancelled
    /// and its description and assigned person are locked.
    pub fn work_has_begun(self) -> bool {
        matches!(
            self,
            JobStatus::Started
                | JobStatus::Suspended
                | JobStatus::CompletedOk
                | JobStatus::CompletedWithIssues
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The driver-side progress steps a job goes through before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum ProgressStatus {
    Sent,
    Read,
    Accepted,
    Refused,
    OnTheWay,
}

impl ProgressStatus {
    pub const ALL: [ProgressStatus; 5] = [
        ProgressStatus::Sent,
        ProgressStatus::Read,
        ProgressStatus::Accepted,
        ProgressStatus::Refused,
        ProgressStatus::OnTheWay,
    ];

    pub fn status(self) -> JobStatus {
        match self {
            ProgressStatus::Sent => JobStatus::Sent,
            ProgressStatus::Read => JobStatus::Read,
            ProgressStatus::Accepted => JobStatus::Accepted,
            ProgressStatus::Refused => JobStatus::Refused,
            ProgressStatus::OnTheWay => JobStatus::OnTheWay,
        }
    }

    pub fn parse(value: &str) -> Option<ProgressStatus> {
        ProgressStatus::ALL
            .into_iter()
            .find(|p| p.status().as_str() == value)
    }
}

/// How a started job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    CompletedOk,
    CompletedWithIssues,
}

impl Outcome {
    pub fn status(self) -> JobStatus {
        match self {
            Outcome::CompletedOk => JobStatus::CompletedOk,
            Outcome::CompletedWithIssues => JobStatus::CompletedWithIssues,
        }
    }

    pub fn parse(value: &str) -> Option<Outcome> {
        [Outcome::CompletedOk, Outcome::CompletedWithIssues]
            .into_iter()
            .find(|o| o.status().as_str() == value)
    }
}
