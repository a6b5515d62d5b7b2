//! The update rules, spelled out: clearing, locked fields, and what counts as a change.

use super::*;

// ---------------------------------------------------------------------------------------------
// Update rules, spelled out
// ---------------------------------------------------------------------------------------------

fn update(changes: JobChanges) -> JobCommand {
    JobCommand::Update(changes)
}

#[test]
fn null_clears_reference_order_number_and_person_id_before_work_begins() {
    let changes = JobChanges {
        reference: Some(None),
        order_number: Some(None),
        person_id: Some(None),
        ..JobChanges::default()
    };
    then(history(JobStatus::Scheduled), update(changes.clone())).then_expect_events(vec![
        JobEvent::JobUpdated(JobUpdated {
            changes: changes.clone(),
            occurred_at: now(),
        }),
    ]);
    // And the cleared values are what later updates compare against: clearing again is a
    // change of nothing.
    let given = [
        history(JobStatus::Scheduled),
        vec![JobEvent::JobUpdated(JobUpdated {
            changes: changes.clone(),
            occurred_at: earlier(),
        })],
    ]
    .concat();
    then(given, update(changes)).then_expect_events(vec![]);
}

#[test]
fn null_clears_reference_and_order_number_after_work_has_begun() {
    for status in [
        JobStatus::Started,
        JobStatus::Suspended,
        JobStatus::CompletedOk,
        JobStatus::CompletedWithIssues,
    ] {
        let changes = JobChanges {
            reference: Some(None),
            order_number: Some(None),
            ..JobChanges::default()
        };
        assert_eq!(
            when(history(status), update(changes.clone())),
            Ok(vec![JobEvent::JobUpdated(JobUpdated {
                changes,
                occurred_at: now()
            })]),
            "clearing reference and orderNumber in `{}`",
            wire(status)
        );
    }
}

#[test]
fn clearing_person_id_after_work_has_begun_is_locked() {
    then(
        history(JobStatus::Started),
        update(JobChanges {
            person_id: Some(None),
            ..JobChanges::default()
        }),
    )
    .then_expect_error(JobError::FieldLocked {
        field: "personId",
        status: JobStatus::Started,
    });
}

#[test]
fn clearing_an_absent_person_id_after_work_has_begun_changes_nothing() {
    let given = [
        history(JobStatus::Scheduled),
        vec![
            JobEvent::JobUpdated(JobUpdated {
                changes: JobChanges {
                    person_id: Some(None),
                    ..JobChanges::default()
                },
                occurred_at: earlier(),
            }),
            e_started(),
        ],
    ]
    .concat();
    then(
        given,
        update(JobChanges {
            person_id: Some(None),
            ..JobChanges::default()
        }),
    )
    .then_expect_events(vec![]);
}

#[test]
fn locked_fields_compare_against_their_latest_values() {
    // Description changed before the job started: that new value is the current one.
    let given = [
        vec![
            e_created(),
            JobEvent::JobUpdated(JobUpdated {
                changes: JobChanges {
                    description: Some(description("Fix boiler and radiator")),
                    person_id: Some(Some(PERSON_B)),
                    ..JobChanges::default()
                },
                occurred_at: earlier(),
            }),
            e_scheduled(),
        ],
        vec![e_started()],
    ]
    .concat();
    then(
        given.clone(),
        update(JobChanges {
            description: Some(description("Fix boiler and radiator")),
            person_id: Some(Some(PERSON_B)),
            ..JobChanges::default()
        }),
    )
    .then_expect_events(vec![]);
    then(
        given.clone(),
        update(JobChanges {
            description: Some(description("Fix boiler")),
            ..JobChanges::default()
        }),
    )
    .then_expect_error(JobError::FieldLocked {
        field: "description",
        status: JobStatus::Started,
    });
    then(
        given,
        update(JobChanges {
            person_id: Some(Some(PERSON_A)),
            ..JobChanges::default()
        }),
    )
    .then_expect_error(JobError::FieldLocked {
        field: "personId",
        status: JobStatus::Started,
    });
}

#[test]
fn setting_a_description_where_there_was_none_is_a_change_and_locked() {
    let mut job = created();
    job.description = None;
    let given = vec![
        JobEvent::JobCreated(job),
        e_scheduled(),
        e_started(),
        e_suspended(),
    ];
    then(
        given,
        update(JobChanges {
            description: Some(description("")),
            ..JobChanges::default()
        }),
    )
    .then_expect_error(JobError::FieldLocked {
        field: "description",
        status: JobStatus::Suspended,
    });
}

#[test]
fn an_update_touching_a_locked_field_records_none_of_its_other_changes() {
    let result = when(
        history(JobStatus::CompletedOk),
        update(JobChanges {
            reference: Some(Some(reference("REF-9"))),
            description: Some(description("Something else")),
            ..JobChanges::default()
        }),
    );
    assert_eq!(
        result,
        Err(JobError::FieldLocked {
            field: "description",
            status: JobStatus::CompletedOk
        })
    );
}

#[test]
fn an_update_changing_both_locked_fields_names_one_of_them() {
    // SPEC does not say which field to name when both are changed; either is correct.
    let result = when(
        history(JobStatus::Started),
        update(JobChanges {
            description: Some(description("Something else")),
            person_id: Some(Some(PERSON_B)),
            ..JobChanges::default()
        }),
    );
    assert!(
        matches!(
            result,
            Err(JobError::FieldLocked {
                field: "description" | "personId",
                status: JobStatus::Started
            })
        ),
        "got {result:?}"
    );
}

#[test]
fn an_update_records_only_the_fields_that_really_change() {
    then(
        history(JobStatus::Accepted),
        update(JobChanges {
            type_id: Some(id(1)),                      // current
            contact_id: Some(id(8)),                   // new
            reference: Some(Some(reference("REF-1"))), // current
            order_number: Some(None),                  // clears
            ..JobChanges::default()
        }),
    )
    .then_expect_events(vec![JobEvent::JobUpdated(JobUpdated {
        changes: JobChanges {
            contact_id: Some(id(8)),
            order_number: Some(None),
            ..JobChanges::default()
        },
        occurred_at: now(),
    })]);
}

#[test]
fn a_planned_duration_given_when_scheduling_becomes_the_current_one() {
    let given = [
        history(JobStatus::New),
        vec![JobEvent::JobScheduled(JobScheduled {
            planned_duration: Some(minutes(120)),
            ..match e_scheduled() {
                JobEvent::JobScheduled(s) => s,
                _ => unreachable!(),
            }
        })],
    ]
    .concat();
    then(
        given.clone(),
        update(JobChanges {
            planned_duration: Some(minutes(120)),
            ..JobChanges::default()
        }),
    )
    .then_expect_events(vec![]);
    then(
        given,
        update(JobChanges {
            planned_duration: Some(minutes(60)),
            ..JobChanges::default()
        }),
    )
    .then_expect_events(vec![JobEvent::JobUpdated(JobUpdated {
        changes: JobChanges {
            planned_duration: Some(minutes(60)),
            ..JobChanges::default()
        },
        occurred_at: now(),
    })]);
}
