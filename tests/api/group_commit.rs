//! Work that reaches the store together is done together. Group commit: commands are
//! written in one transaction, yet each succeeds or fails on its own — a conflicting one,
//! one whose idempotency claim was taken over, or one the store cannot take never fails the
//! others, and each is acknowledged only once its own transaction has committed. Grouped
//! lookups: one query answers many, and each caller still sees only its customer's job.

use crate::backend_tests;
use crate::support::{created_event, Backend, TestApp, TestStore};
use futures::future::join_all;
use projections::idempotency::{KeyedRequest, StoredAnswer};
use projections::store::{AppendError, Commit};
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

const CUSTOMER: i64 = 17;
const CREATES: usize = 40;

fn creating(job_id: &str) -> Commit {
    Commit {
        job_id: job_id.to_owned(),
        events: vec![created_event(job_id, CUSTOMER)],
        snapshot: None,
        answer: None,
        held: None,
    }
}

backend_tests! {
    async fn commits_arriving_together_share_transactions_and_fail_alone(store: TestStore) {
        let opened = store.open().await;
        let (commands, queries) = (opened.commands(), opened.queries());

        // A job that exists already: creating it again conflicts.
        let existing = Uuid::now_v7().to_string();
        commands.append(creating(&existing)).await.unwrap();
        // A key whose claim ran out and was taken over: answering the old claim fails.
        let request = KeyedRequest {
            customer_id: CUSTOMER, client_id: "client".into(), key: "k".into(), fingerprint: "f".into(),
        };
        let (lost, _retry) = store.claim_taken_over(&request, Duration::from_secs(15)).await;
        let mut lost_claim = creating(&Uuid::now_v7().to_string());
        lost_claim.answer =
            Some((lost, StoredAnswer { status: 201, headers: vec![], body: None }));
        // An event the projection cannot read: the store fails it, not the commits beside it.
        let unreadable_id = Uuid::now_v7().to_string();
        let mut unreadable = creating(&unreadable_id);
        unreadable.events[0].payload = json!({"NoSuchEvent": {}});

        let created: Vec<String> = (0..CREATES).map(|_| Uuid::now_v7().to_string()).collect();
        let mut commits: Vec<Commit> = created.iter().map(|id| creating(id)).collect();
        // Among the others, so they land in the same groups.
        commits.insert(CREATES / 4, creating(&existing));
        commits.insert(CREATES / 2, lost_claim);
        commits.insert(3 * CREATES / 4, unreadable);
        // Decided twice on the same version (a second command on a job whose first one is
        // still waiting): one of the two is made, never both.
        commits.push(creating(&created[0]));
        let outcomes = join_all(commits.into_iter().map(|commit| commands.append(commit))).await;

        let conflicts = outcomes.iter().filter(|o| matches!(o, Err(AppendError::Conflict))).count();
        let lost = outcomes.iter().filter(|o| matches!(o, Err(AppendError::ClaimLost))).count();
        let failed = outcomes.iter().filter(|o| matches!(o, Err(AppendError::Store(_)))).count();
        let succeeded = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!((succeeded, conflicts, lost, failed), (CREATES, 2, 1, 1), "{outcomes:?}");

        // Every acknowledged commit is there, events and projection alike; nothing else is.
        for id in &created {
            let view = queries.job(CUSTOMER, id.parse().unwrap()).await.unwrap();
            assert!(view.is_some_and(|view| view.version == 1), "job {id} is projected");
        }
        assert_eq!(opened.log().event_count().await.unwrap(), CREATES as i64 + 1);
        let unreadable_rows = store
            .count(&format!("SELECT count(*) FROM events WHERE aggregate_id = '{unreadable_id}'"))
            .await;
        assert_eq!(unreadable_rows, 0, "the failed commit left nothing behind");

        // They went in as groups: a transaction stamps all its events with one time, and
        // commits made one by one would each have had their own.
        let transactions = store
            .count("SELECT count(DISTINCT recorded_at) FROM events")
            .await;
        assert!(
            transactions < (CREATES / 2) as i64,
            "{CREATES} commits arriving together took {transactions} transactions"
        );
    }

    async fn lookups_answered_together_each_see_only_their_customers_job(store: TestStore) {
        let opened = store.open().await;
        let (commands, queries) = (opened.commands(), opened.queries());
        let mine = Uuid::now_v7();
        let theirs = Uuid::now_v7();
        commands.append(creating(&mine.to_string())).await.unwrap();
        let mut other_customers = creating(&theirs.to_string());
        other_customers.events[0] = created_event(&theirs.to_string(), CUSTOMER + 1);
        commands.append(other_customers).await.unwrap();

        let asked = [
            (CUSTOMER, mine, true),
            (CUSTOMER + 1, mine, false),
            (CUSTOMER + 1, theirs, true),
            (CUSTOMER, theirs, false),
            (CUSTOMER, Uuid::now_v7(), false),
        ];
        let lookups = asked.iter().cycle().take(50);
        let answers = join_all(lookups.clone().map(|(customer, id, _)| queries.job(*customer, *id))).await;
        for ((customer, id, found), answer) in lookups.zip(answers) {
            let view = answer.unwrap();
            assert_eq!(view.is_some(), *found, "customer {customer} asking for {id}");
            if let Some(view) = view {
                assert_eq!((view.id, view.customer_id), (*id, *customer));
            }
        }
    }

    async fn a_summary_that_does_not_read_fails_only_its_own_lookups(store: TestStore) {
        let opened = store.open().await;
        let (commands, queries) = (opened.commands(), opened.queries());
        let (damaged, sound) = (Uuid::now_v7(), Uuid::now_v7());
        for id in [damaged, sound] {
            commands.append(creating(&id.to_string())).await.unwrap();
        }
        store
            .execute_sql(&format!(
                "UPDATE job_summary SET document = '{{\"not\": \"a job\"}}' WHERE job_id = '{damaged}'"
            ))
            .await;
        let asked: Vec<Uuid> = [damaged, sound].into_iter().cycle().take(20).collect();
        let answers = join_all(asked.iter().map(|id| queries.job(CUSTOMER, *id))).await;
        for (id, answer) in asked.iter().zip(answers) {
            if *id == damaged {
                assert!(answer.is_err(), "the damaged summary is an error, not a job");
            } else {
                assert_eq!(answer.unwrap().map(|view| view.id), Some(sound));
            }
        }
    }

    async fn racing_http_commands_each_get_their_own_answer(app: TestApp) {
        // Creates and cancels in flight together: each answered after its own commit.
        let ids: Vec<Uuid> = join_all((0..20).map(|_| app.create_job(CUSTOMER))).await;
        let cancels = ids.iter().map(|id| {
            app.command(CUSTOMER, *id, "cancel", json!({"reason": "moved"}))
        });
        let repeats = ids.iter().take(5).map(|id| {
            app.command(CUSTOMER, *id, "start", json!({}))
        });
        let (cancelled, started) = futures::join!(join_all(cancels), join_all(repeats));
        for reply in &cancelled {
            reply.assert_status(204);
        }
        for reply in &started {
            // Refused: a new job cannot start, cancelled or not; its refusal fails no cancel.
            reply.assert_status(422);
        }
        for id in ids {
            assert_eq!(app.job(CUSTOMER, id).await["status"], "cancelled");
        }
    }
}
