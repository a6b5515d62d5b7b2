//! The `jobs-admin` binary: `clients create | list | revoke` against the server's own store,
//! and what a client made with it can then do through the API.

use crate::backend_tests;
use crate::support::{request_token, stderr, succeeded, Backend, TestApp, TestClient};
use reqwest::Method;
use serde_json::Value;
use std::process::Output;
use uuid::Uuid;

async fn admin(app: &TestApp, args: &[&str]) -> Output {
    app.store.admin(args).await
}

backend_tests! {
    async fn an_operator_registers_lists_and_revokes_clients(app: TestApp) {
        let created = admin(&app, &[
            "clients", "create", "--name", "  Acme dispatch  ", "--scope", "jobs:read",
            "--scope", "jobs:write", "--customer", "42", "--customer", "43", "--customer", "42",
            "--format", "json",
        ]).await;
        let created: Value = serde_json::from_str(&succeeded(&created)).expect("JSON");
        let id: Uuid = created["clientId"].as_str().and_then(|s| s.parse().ok()).expect("a UUID id");
        let secret = created["clientSecret"].as_str().expect("a secret").to_owned();
        assert!(secret.len() >= 43, "a strong secret: {secret}");
        assert_eq!(created["name"], "Acme dispatch");
        assert_eq!(created["scopes"], serde_json::json!(["jobs:read", "jobs:write"]));
        assert_eq!(created["customerIds"], serde_json::json!([42, 43]));

        // Only a slow hash of the secret is stored.
        let stored = app.store.open().await.clients().client(id).await.expect("read").expect("stored");
        assert!(stored.secret_hash.starts_with("$argon2id$"), "{}", stored.secret_hash);
        assert!(!stored.secret_hash.contains(&secret));

        // The text form, for people, shows the secret once too.
        let text = succeeded(&admin(&app, &[
            "clients", "create", "--name", "Reader", "--scope", "jobs:read", "--customer", "42",
        ]).await);
        assert!(text.lines().any(|l| l.starts_with("client_id:")), "{text}");
        let reader_secret = text
            .lines()
            .find_map(|l| l.strip_prefix("client_secret:"))
            .map(str::trim)
            .expect("a client_secret line")
            .to_owned();

        // The list never shows a secret.
        let listed = succeeded(&admin(&app, &["clients", "list", "--format", "json"]).await);
        assert!(!listed.contains(&secret) && !listed.contains(&reader_secret), "{listed}");
        assert!(!listed.contains("argon2"), "not even the hash: {listed}");
        let listed: Value = serde_json::from_str(&listed).expect("JSON");
        let names: Vec<&str> = listed.as_array().expect("a list").iter().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(names, ["Acme dispatch", "Reader"], "oldest first");
        assert_eq!(listed[0]["revokedAt"], Value::Null);
        let table = succeeded(&admin(&app, &["clients", "list"]).await);
        assert!(table.lines().next().is_some_and(|h| h.starts_with("CLIENT ID")), "{table}");
        assert!(table.contains(&id.to_string()) && table.contains("Acme dispatch"), "{table}");

        // The client gets a token from the running server and uses it.
        let client = TestClient { id, secret };
        let response = request_token(&app.client, &app.address, &client, None).await;
        assert_eq!(response.status(), 200);
        let token: Value = response.json().await.expect("JSON");
        let token = token["access_token"].as_str().expect("token").to_owned();
        let list_jobs = || {
            app.send_as_is(app.build(Method::GET, "/v1/jobs", Some(43), None).bearer_auth(&token))
        };
        list_jobs().await.assert_status(200);

        // Revoked: the token stops working (once what the server remembers of the
        // registry, at most half a second old, is gone), no new one is issued, the list
        // says so.
        let revoked = succeeded(&admin(&app, &["clients", "revoke", &id.to_string()]).await);
        assert!(revoked.contains("revoked"), "{revoked}");
        tokio::time::sleep(jobs_service::auth::recent::FRESH_FOR + std::time::Duration::from_millis(300)).await;
        list_jobs().await.assert_problem(401, "/problems/unauthorized");
        let response = request_token(&app.client, &app.address, &client, None).await;
        assert_eq!(response.status(), 401);
        let listed: Value = serde_json::from_str(&succeeded(&admin(&app, &["clients", "list", "--format", "json"]).await)).expect("JSON");
        let revoked_at = listed[0]["revokedAt"].as_str().expect("a revocation time").to_owned();
        // Revoking again changes nothing.
        succeeded(&admin(&app, &["clients", "revoke", &id.to_string()]).await);
        let listed: Value = serde_json::from_str(&succeeded(&admin(&app, &["clients", "list", "--format", "json"]).await)).expect("JSON");
        assert_eq!(listed[0]["revokedAt"], revoked_at.as_str());
        assert_eq!(listed[1]["revokedAt"], Value::Null, "the other client is untouched");
    }

    async fn bad_admin_input_is_a_clear_failure_that_changes_nothing(app: TestApp) {
        let unknown = Uuid::now_v7().to_string();
        let output = admin(&app, &["clients", "revoke", &unknown]).await;
        assert_eq!(output.status.code(), Some(1));
        assert!(stderr(&output).contains(&format!("no client has the id {unknown}")), "{}", stderr(&output));

        for (args, complaint) in [
            (vec!["clients", "create", "--name", "   ", "--scope", "jobs:read", "--customer", "1"], "must not be blank"),
            (vec!["clients", "create", "--name", "x", "--scope", "jobs:admin", "--customer", "1"], "jobs:admin"),
            (vec!["clients", "create", "--name", "x", "--scope", "jobs:read", "--customer", "0"], "invalid value '0' for '--customer"),
            (vec!["clients", "create", "--name", "x", "--customer", "1"], "--scope"),
            (vec!["clients", "create", "--name", "x", "--scope", "jobs:read"], "--customer"),
            (vec!["clients", "revoke", "not-a-uuid"], "not-a-uuid"),
        ] {
            let output = admin(&app, &args).await;
            assert!(!output.status.success(), "{args:?} must fail");
            assert!(stderr(&output).contains(complaint), "{args:?}: {}", stderr(&output));
        }
        let listed = succeeded(&admin(&app, &["clients", "list", "--format", "json"]).await);
        assert_eq!(serde_json::from_str::<Value>(&listed).expect("JSON"), serde_json::json!([]), "nothing was registered");
    }
}
