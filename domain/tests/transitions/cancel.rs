//! The cancel contract, spelled out case by case.

use super::*;

// ---------------------------------------------------------------------------------------------
// The cancel contract, spelled out
// ---------------------------------------------------------------------------------------------

fn cancel(why: &str) -> JobCommand {
    JobCommand::Cancel(CancelJob {
        reason: reason(why),
    })
}

#[test]
fn cancel_before_work_begins_records_the_trimmed_reason_at_the_clock_time() {
    for status in [
        JobStatus::New,
        JobStatus::Scheduled,
        JobStatus::Unscheduled,
        JobStatus::Sent,
        JobStatus::Read,
        JobStatus::Accepted,
        JobStatus::Refused,
        JobStatus::OnTheWay,
    ] {
        let events = when(history(status), cancel("  no access to site  "));
        assert_eq!(
            events,
            Ok(vec![JobEvent::JobCancelled(JobCancelled {
                reason: reason("no access to site"),
                occurred_at: now(),
            })]),
            "cancel from `{}`",
            wire(status)
        );
        let JobEvent::JobCancelled(cancelled) = &events.unwrap()[0] else {
            unreachable!()
        };
        assert_eq!(cancelled.reason.as_str(), "no access to site");
    }
}

#[test]
fn cancel_from_started_is_refused_as_not_cancellable() {
    then(history(JobStatus::Started), cancel("too late")).then_expect_error(JobError::Refused {
        command: CommandKind::Cancel,
        status: JobStatus::Started,
    });
}

#[test]
fn cancel_from_suspended_is_refused_as_not_cancellable() {
    then(history(JobStatus::Suspended), cancel("too late")).then_expect_error(JobError::Refused {
        command: CommandKind::Cancel,
        status: JobStatus::Suspended,
    });
}

#[test]
fn cancel_from_completed_ok_is_refused_as_not_cancellable() {
    then(history(JobStatus::CompletedOk), cancel("too late")).then_expect_error(
        JobError::Refused {
            command: CommandKind::Cancel,
            status: JobStatus::CompletedOk,
        },
    );
}

#[test]
fn cancel_from_completed_with_issues_is_refused_as_not_cancellable() {
    then(history(JobStatus::CompletedWithIssues), cancel("too late")).then_expect_error(
        JobError::Refused {
            command: CommandKind::Cancel,
            status: JobStatus::CompletedWithIssues,
        },
    );
}

#[test]
fn cancelling_a_cancelled_job_again_with_the_same_reason_records_nothing() {
    then(history(JobStatus::Cancelled), cancel(CANCELLED_REASON)).then_expect_events(vec![]);
}

#[test]
fn cancelling_again_with_the_same_reason_padded_with_whitespace_records_nothing() {
    then(
        history(JobStatus::Cancelled),
        cancel("\n  customer request \t "),
    )
    .then_expect_events(vec![]);
}

#[test]
fn cancelling_again_with_another_reason_is_already_cancelled() {
    then(history(JobStatus::Cancelled), cancel("weather"))
        .then_expect_error(JobError::AlreadyCancelled);
}

#[test]
fn cancelling_again_compares_reasons_exactly_after_trimming() {
    // "Same reason" is read as the same text after trimming: case and inner spacing count.
    then(history(JobStatus::Cancelled), cancel("Customer Request"))
        .then_expect_error(JobError::AlreadyCancelled);
    then(history(JobStatus::Cancelled), cancel("customer  request"))
        .then_expect_error(JobError::AlreadyCancelled);
}

#[test]
fn a_job_cancelled_with_a_padded_reason_accepts_the_bare_reason_again() {
    let given = vec![e_created(), e_cancelled("   flooded   ")];
    then(given.clone(), cancel("flooded")).then_expect_events(vec![]);
    then(given, cancel("flood")).then_expect_error(JobError::AlreadyCancelled);
}

#[test]
fn cancelling_a_job_never_created_is_not_found() {
    then(vec![], cancel("whatever")).then_expect_error(JobError::NotFound);
}

#[test]
fn update_on_a_cancelled_job_is_refused_even_when_it_changes_nothing() {
    for changes in [
        JobChanges::default(),
        UpdateProbe::OtherFields.requested(),
        UpdateProbe::EveryFieldToCurrentValue.requested(),
    ] {
        then(history(JobStatus::Cancelled), JobCommand::Update(changes)).then_expect_error(
            JobError::Refused {
                command: CommandKind::Update,
                status: JobStatus::Cancelled,
            },
        );
    }
}
