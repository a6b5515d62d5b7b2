//! What comes back, and how the tests read it: [`Reply`] with its status and problem+json
//! assertions, the output of commands (`stdout`, `stderr`, `succeeded`), and readers of
//! returned values (`timestamp`, `fold_events`).

use projections::{EventMetadata, JobView};
use serde_json::{json, Value};
use uuid::Uuid;

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json answer of this status and type, and returns its body.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, problem_type: &str) -> Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "error bodies are problem+json"
        );
        let body = self.json();
        assert_eq!(body["type"], problem_type, "problem: {body}");
        assert_eq!(body["status"], status);
        assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(body["detail"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(body["instance"]
            .as_str()
            .is_some_and(|t| t.starts_with('/')));
        assert_eq!(
            body["requestId"].as_str(),
            self.header("x-request-id"),
            "the problem names the request id of the response"
        );
        body
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }
}

/// What a command wrote to standard output.
pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What a command wrote to standard error.
pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The standard output of a command that must have succeeded.
#[track_caller]
pub fn succeeded(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "the command failed: {}",
        stderr(output)
    );
    stdout(output)
}

/// Reads an RFC 3339 timestamp the API returned.
pub fn timestamp(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|| panic!("an RFC 3339 timestamp: {value}"))
}

/// Folds the events the API returned into the job view, with the projection's own rules:
/// what the stored summary row must equal.
pub fn fold_events(job_id: Uuid, events: &[Value]) -> Option<JobView> {
    let mut view = None;
    for event in events {
        let event_type = event["eventType"].as_str().expect("eventType");
        let payload: domain::JobEvent =
            serde_json::from_value(json!({ event_type: event["payload"].clone() }))
                .expect("a known event");
        let metadata = EventMetadata::from_json(&event["metadata"]);
        let sequence = event["sequence"].as_i64().expect("sequence");
        view = projections::view::project(view, job_id, sequence, &payload, &metadata);
    }
    view
}
