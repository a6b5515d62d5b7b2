//! Restore safety. A PostgreSQL dump restored into another cluster keeps transaction ids
//! from the old one, which may lie ahead of the ids the new cluster hands out: new events
//! would then sort before restored ones in the log (and restored ones never count as
//! final). The server refuses to start on such a log, `verify` and the log's other readers
//! say what is wrong, and `jobs-admin repair-log` puts it right; export, rebuild and verify
//! then lose nothing. On SQLite a restore is a copy of the file, whose rowid order is kept:
//! there is nothing to repair.

use crate::backend_tests;
use crate::support::{
    server_command, start, stderr, succeeded, terminate, token_for_customer, Backend, TestStore,
};
use serde_json::{json, Value};
use std::collections::HashMap;

const CUSTOMER: i64 = 16;

/// Runs a server on the store for `work`, then stops it.
async fn with_server<T, F, Fut>(store: &TestStore, work: F) -> T
where
    F: FnOnce(reqwest::Client, String, String) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let (mut server, address) = start(store).await;
    let (_, token) = token_for_customer(store, &address, CUSTOMER).await;
    let done = work(reqwest::Client::new(), address, token).await;
    assert!(terminate(&mut server).await.success());
    done
}

/// Creates `count` jobs and cancels `also_cancel` (ids of earlier jobs); returns the new ids.
async fn write(
    client: &reqwest::Client,
    address: &str,
    token: &str,
    count: usize,
    also_cancel: &[String],
) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        let reply = client
            .post(format!("{address}/v1/jobs"))
            .bearer_auth(token)
            .header("Customer-Id", CUSTOMER.to_string())
            .json(&json!({"typeId": 1, "contactId": 2, "reference": format!("R-{n}")}))
            .send()
            .await
            .expect("create");
        assert_eq!(reply.status(), 201);
        let body: Value = reply.json().await.expect("JSON");
        ids.push(body["id"].as_str().expect("an id").to_owned());
    }
    for id in also_cancel {
        let reply = client
            .put(format!("{address}/v1/jobs/{id}/cancel"))
            .bearer_auth(token)
            .header("Customer-Id", CUSTOMER.to_string())
            .json(&json!({"reason": "restored and cancelled"}))
            .send()
            .await
            .expect("cancel");
        assert_eq!(reply.status(), 204);
    }
    ids
}

/// Restores the store from a backup of itself, as an operator would after losing a server.
/// PostgreSQL: the backup came from a cluster whose transaction ids ran far ahead of this
/// one's. SQLite: a copy of the file (`VACUUM INTO`) put in the original's place.
async fn restore(store: &mut TestStore) {
    if store.is_postgres() {
        store
            .execute_sql(
                "UPDATE events SET transaction_id = \
                 (transaction_id::text::bigint + 1000000000)::text::xid8",
            )
            .await;
    } else {
        let live = store.data_dir.join("jobs.db");
        let backup = store.data_dir.join("backup.db");
        store
            .execute_sql(&format!("VACUUM INTO '{}'", backup.display()))
            .await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", live.display()));
        }
        std::fs::rename(&backup, &live).expect("the backup in place");
        store.reopen();
    }
}

backend_tests! {
    async fn a_restored_log_is_found_out_repaired_and_then_loses_nothing(store: TestStore) {
        let old_jobs = with_server(&store, |client, address, token| async move {
            write(&client, &address, &token, 4, &[]).await
        }).await;
        let mut store = store;
        restore(&mut store).await;

        if store.is_postgres() {
            // Found out: the server does not start, verify and export refuse, all saying why.
            let output = server_command(&store, "127.0.0.1:0").output().await.expect("runs");
            assert!(!output.status.success());
            assert!(stderr(&output).contains("jobs-admin repair-log"), "{}", stderr(&output));
            for command in [&["verify"][..], &["export"]] {
                let output = store.admin(command).await;
                assert_eq!(output.status.code(), Some(1), "{command:?}");
                assert!(stderr(&output).contains("ahead of the next"), "{}", stderr(&output));
            }
            let repaired = succeeded(&store.admin(&["repair-log"]).await);
            assert!(repaired.starts_with("repaired"), "{repaired}");
        }
        let again = succeeded(&store.admin(&["repair-log"]).await);
        assert!(again.starts_with("nothing to repair"), "{again}");

        // Written after the restore: new jobs, and new events of restored jobs.
        let cancel = old_jobs[..2].to_vec();
        let new_jobs = with_server(&store, |client, address, token| async move {
            write(&client, &address, &token, 3, &cancel).await
        }).await;

        // The export holds every event once, the restored ones first, each job's in order.
        let output = store.admin(&["export"]).await;
        let lines: Vec<Value> = succeeded(&output)
            .lines()
            .map(|line| serde_json::from_str(line).expect("NDJSON"))
            .collect();
        assert_eq!(lines.len(), 4 + 3 + 2, "{lines:?}");
        let restored = &lines[..4];
        assert!(restored.iter().all(|event| old_jobs.contains(&event["aggregateId"].as_str().unwrap().to_owned())));
        let mut last_sequence: HashMap<String, i64> = HashMap::new();
        for event in &lines {
            let job = event["aggregateId"].as_str().expect("a job").to_owned();
            let sequence = event["sequence"].as_i64().expect("a sequence");
            assert_eq!(last_sequence.insert(job, sequence).unwrap_or(0), sequence - 1, "{event}");
        }
        assert_eq!(last_sequence.len(), old_jobs.len() + new_jobs.len());

        succeeded(&store.admin(&["rebuild"]).await);
        let verified = succeeded(&store.admin(&["verify"]).await);
        assert!(verified.contains("7 job(s) checked"), "{verified}");
    }
}
