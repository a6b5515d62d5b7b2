//! Commands: what a caller asks the `Job` aggregate to do. Imperative names; fields are
//! validated value types, so a command that exists is well-formed.

use crate::events::JobChanges;
use crate::status::{Outcome, ProgressStatus};
use crate::values::{
    CancelReason, Comment, CustomFields, CustomerId, Description, OrderNumber, PlannedDuration,
    PositiveId, Reference, ResultNotes,
};
use crate::Timestamp;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub enum JobCommand {
    Create(CreateJob),
    /// Change some of the job's details; `JobChanges` lists only the fields to change.
    Update(JobChanges),
    Schedule(ScheduleJob),
    Unschedule,
    Progress(ProgressJob),
    Start(StartJob),
    Suspend(SuspendJob),
    Resume,
    RecordResult(RecordResult),
    Cancel(CancelJob),
}

impl JobCommand {
    /// A short, stable name of the kind of command (for metrics and logs).
    pub fn name(&self) -> &'static str {
        match self {
            JobCommand::Create(_) => "create",
            JobCommand::Update(_) => "update",
            JobCommand::Schedule(_) => "schedule",
            JobCommand::Unschedule => "unschedule",
            JobCommand::Progress(_) => "progress",
            JobCommand::Start(_) => "start",
            JobCommand::Suspend(_) => "suspend",
            JobCommand::Resume => "resume",
            JobCommand::RecordResult(_) => "result",
            JobCommand::Cancel(_) => "cancel",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateJob {
    pub customer_id: CustomerId,
    pub type_id: PositiveId,
    pub contact_id: PositiveId,
    pub planned_duration: Option<PlannedDuration>,
    pub reference: Option<Reference>,
    pub description: Option<Description>,
    pub person_id: Option<Uuid>,
    pub order_number: Option<OrderNumber>,
    pub custom_fields: CustomFields,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleJob {
    pub resource_id: PositiveId,
    pub vehicle_id: PositiveId,
    pub planned_start: Timestamp,
    pub planned_duration: Option<PlannedDuration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProgressJob {
    pub status: ProgressStatus,
    pub comment: Option<Comment>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StartJob {
    pub comment: Option<Comment>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SuspendJob {
    pub reason: Option<Comment>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordResult {
    pub outcome: Outcome,
    pub notes: Option<ResultNotes>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CancelJob {
    pub reason: CancelReason,
}
