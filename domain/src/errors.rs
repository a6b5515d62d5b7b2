//! Typed business errors. `Display` is safe to show to API users.

use crate::status::{JobStatus, ProgressStatus};
use std::fmt;

/// The kind of command a rule refused, so errors can name it without carrying its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    Update,
    Schedule,
    Unschedule,
    Progress(ProgressStatus),
    Start,
    Suspend,
    Resume,
    RecordResult,
    Cancel,
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandKind::Update => f.write_str("update"),
            CommandKind::Schedule => f.write_str("schedule"),
            CommandKind::Unschedule => f.write_str("unschedule"),
            CommandKind::Progress(step) => write!(f, "mark as {}", step.status()),
            CommandKind::Start => f.write_str("start"),
            CommandKind::Suspend => f.write_str("suspend"),
            CommandKind::Resume => f.write_str("resume"),
            CommandKind::RecordResult => f.write_str("record the result of"),
            CommandKind::Cancel => f.write_str("cancel"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("the job already exists")]
    AlreadyExists,
    #[error("the job does not exist")]
    NotFound,
    /// The command is not allowed from the job's current status (SPEC §3).
    #[error("cannot {command} a job whose status is {status}")]
    Refused {
        command: CommandKind,
        status: JobStatus,
    },
    /// Cancelling a cancelled job again is only a no-op with the same reason.
    #[error("the job is already cancelled with a different reason")]
    AlreadyCancelled,
    /// Some details cannot change once work has begun.
    #[error("{field} cannot be changed once work has begun (status {status})")]
    FieldLocked {
        field: &'static str,
        status: JobStatus,
    },
}
