//! The metadata recorded with every event: who acted, for which customer, in which request.
//! Stored as cqrs-es's string map; these are its keys.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Who did it, for whom, in which request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventMetadata {
    /// The acting client (token subject); `anonymous` before authentication exists.
    pub actor: String,
    pub customer_id: i64,
    pub request_id: String,
}

const ACTOR: &str = "actor";
const CUSTOMER_ID: &str = "customerId";
const REQUEST_ID: &str = "requestId";

impl EventMetadata {
    pub fn to_map(&self) -> HashMap<String, String> {
        HashMap::from([
            (ACTOR.to_owned(), self.actor.clone()),
            (CUSTOMER_ID.to_owned(), self.customer_id.to_string()),
            (REQUEST_ID.to_owned(), self.request_id.clone()),
        ])
    }

    /// Reads the metadata back from a stored event. Missing keys read as empty / 0 rather
    /// than failing: the projection must be derivable from any stored history.
    pub fn from_json(value: &serde_json::Value) -> Self {
        let text = |key: &str| {
            value
                .get(key)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        Self {
            actor: text(ACTOR),
            customer_id: text(CUSTOMER_ID).parse().unwrap_or_default(),
            request_id: text(REQUEST_ID),
        }
    }
}
