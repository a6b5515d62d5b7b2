//! A crash: `jobs-server` killed with SIGKILL while writers create jobs with idempotency
//! keys. Started again on the same store, the server answers every request that got no
//! answer — retried with its key — without making any job twice: each key stands for one
//! job, the projection agrees with the events, and no acknowledged job is lost.

use crate::backend_tests;
use crate::support::{kill, start, succeeded, terminate, token_for_customer, Backend, TestStore};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const CUSTOMER: i64 = 15;
const WRITERS: usize = 8;
const KEYS_EACH: usize = 40;

/// What became of one keyed create.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Created(String),
    /// The connection broke before an answer came.
    Unanswered,
}

async fn create(
    client: &reqwest::Client,
    address: &str,
    token: &str,
    key: &str,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{address}/v1/jobs"))
        .bearer_auth(token)
        .header("Customer-Id", CUSTOMER.to_string())
        .header("Idempotency-Key", key)
        .json(&json!({"typeId": 1, "contactId": 2, "reference": key}))
        .send()
        .await
}

/// Sends `key`'s create until it is answered 201 (a 409 means the dead server's claim on
/// the key has not run out yet); returns the job's id and whether the answer was a replay.
async fn retry_until_created(
    client: &reqwest::Client,
    address: &str,
    token: &str,
    key: &str,
) -> (String, bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let reply = create(client, address, token, key)
            .await
            .expect("the restarted server answers");
        let status = reply.status().as_u16();
        let replayed = reply.headers().contains_key("idempotent-replayed");
        let body: serde_json::Value = reply.json().await.expect("a JSON body");
        match status {
            201 => return (body["id"].as_str().expect("an id").to_owned(), replayed),
            409 => assert_eq!(body["type"], "/problems/idempotency-key-in-flight"),
            other => panic!("{key}: {other} {body}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key} stays in flight"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

backend_tests! {
    async fn a_server_killed_mid_write_loses_nothing_and_makes_nothing_twice(store: TestStore) {
        let client = reqwest::Client::new();
        let (mut server, address) = start(&store).await;
        let (_, token) = token_for_customer(&store, &address, CUSTOMER).await;

        let answered = std::sync::atomic::AtomicUsize::new(0);
        let writer = |writer: usize| {
            let (client, address, token, answered) = (&client, &address, &token, &answered);
            async move {
                let mut outcomes = BTreeMap::new();
                for n in 0..KEYS_EACH {
                    let key = format!("crash-{writer}-{n}");
                    let outcome = match create(client, address, token, &key).await {
                        Ok(reply) => {
                            assert_eq!(reply.status(), 201, "{key}");
                            let body: serde_json::Value = reply.json().await.expect("JSON");
                            answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            Outcome::Created(body["id"].as_str().expect("an id").to_owned())
                        }
                        Err(_) => Outcome::Unanswered,
                    };
                    let gone = outcome == Outcome::Unanswered;
                    outcomes.insert(key, outcome);
                    if gone {
                        break; // the server is dead: this writer's later keys were never sent
                    }
                }
                outcomes
            }
        };
        let killer = async {
            while answered.load(std::sync::atomic::Ordering::SeqCst) < 30 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            kill(&mut server).await;
        };
        let (outcomes, ()) = tokio::join!(futures::future::join_all((0..WRITERS).map(writer)), killer);
        let outcomes: BTreeMap<String, Outcome> = outcomes.into_iter().flatten().collect();
        let unanswered = outcomes.values().filter(|outcome| **outcome == Outcome::Unanswered).count();
        assert!(unanswered > 0, "the kill caught requests in flight: {outcomes:?}");

        // Back on the same store: every key, answered or not, now names exactly one job.
        let (mut server, address) = start(&store).await;
        let mut jobs = std::collections::BTreeSet::new();
        for (key, outcome) in &outcomes {
            let (id, replayed) = retry_until_created(&client, &address, &token, key).await;
            if let Outcome::Created(acknowledged) = outcome {
                assert_eq!(&id, acknowledged, "{key}: the acknowledged job, again");
                assert!(replayed, "{key}");
            }
            assert!(jobs.insert(id), "{key}: a job of its own");
        }
        let listed = client
            .get(format!("{address}/v1/jobs?pageSize=1000"))
            .bearer_auth(&token)
            .header("Customer-Id", CUSTOMER.to_string())
            .send()
            .await
            .expect("a list");
        let listed: serde_json::Value = listed.json().await.expect("JSON");
        assert_eq!(listed["items"].as_array().expect("items").len(), outcomes.len(), "no other job");
        assert!(terminate(&mut server).await.success());
        succeeded(&store.admin(&["verify"]).await);
    }
}
