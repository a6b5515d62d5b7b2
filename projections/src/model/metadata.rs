//! The metadata recorded with every event: who acted (the OAuth client, and the token it
//! used), for which customer, in which request. Stored as cqrs-es's string map; these are its
//! keys.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Who did it, with which token, for whom, in which request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventMetadata {
    /// The acting client: the token's subject. Projections show it as `actor`/`cancelledBy`.
    pub client_id: String,
    /// The token's id (`jti`): which of the client's tokens was used.
    pub token_id: String,
    pub customer_id: i64,
    pub request_id: String,
}

const CLIENT_ID: &str = "clientId";
const TOKEN_ID: &str = "tokenId";
const CUSTOMER_ID: &str = "customerId";
const REQUEST_ID: &str = "requestId";
/// What `clientId` was called before authentication existed (every caller was `anonymous`).
const LEGACY_ACTOR: &str = "actor";

impl EventMetadata {
    pub fn to_map(&self) -> HashMap<String, String> {
        HashMap::from([
            (CLIENT_ID.to_owned(), self.client_id.clone()),
            (TOKEN_ID.to_owned(), self.token_id.clone()),
            (CUSTOMER_ID.to_owned(), self.customer_id.to_string()),
            (REQUEST_ID.to_owned(), self.request_id.clone()),
        ])
    }

    /// Reads the metadata back from a stored event. Missing keys read as empty / 0 rather
    /// than failing: the projection must be derivable from any stored history.
    pub fn from_json(value: &serde_json::Value) -> Self {
        let text = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        Stored {
            client_id: text(CLIENT_ID),
            actor: text(LEGACY_ACTOR),
            token_id: text(TOKEN_ID),
            customer_id: text(CUSTOMER_ID),
            request_id: text(REQUEST_ID),
        }
        .into()
    }

    /// The same, from the stored JSON text: a typed parse, several times faster than going
    /// through a `serde_json::Value` (it is done once per event in a rebuild).
    pub fn from_json_text(text: &str) -> Self {
        match serde_json::from_str::<Stored>(text) {
            Ok(stored) => stored.into(),
            Err(_) => Self::from_json(&serde_json::from_str(text).unwrap_or_default()),
        }
    }
}

/// The metadata as stored: cqrs-es's map of strings.
#[derive(Deserialize)]
struct Stored {
    #[serde(rename = "clientId")]
    client_id: Option<String>,
    #[serde(rename = "actor")]
    actor: Option<String>,
    #[serde(rename = "tokenId")]
    token_id: Option<String>,
    #[serde(rename = "customerId")]
    customer_id: Option<String>,
    #[serde(rename = "requestId")]
    request_id: Option<String>,
}

impl From<Stored> for EventMetadata {
    fn from(stored: Stored) -> Self {
        EventMetadata {
            client_id: stored.client_id.or(stored.actor).unwrap_or_default(),
            token_id: stored.token_id.unwrap_or_default(),
            customer_id: stored
                .customer_id
                .and_then(|id| id.parse().ok())
                .unwrap_or_default(),
            request_id: stored.request_id.unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_of_an_unexpected_shape_reads_as_far_as_it_can() {
        let text = r#"{"clientId": "c", "customerId": 7, "extra": [1]}"#;
        let metadata = EventMetadata::from_json_text(text);
        assert_eq!(metadata.client_id, "c");
        assert_eq!(metadata.customer_id, 0);
        assert_eq!(EventMetadata::from_json_text("not json").client_id, "");
    }

    #[test]
    fn metadata_survives_the_round_trip_through_storage() {
        let metadata = EventMetadata {
            client_id: "0193a1b2-0000-7000-8000-000000000001".into(),
            token_id: "0193a1b2-0000-7000-8000-000000000002".into(),
            customer_id: 42,
            request_id: "req-1".into(),
        };
        let stored = serde_json::to_value(metadata.to_map()).unwrap();
        assert_eq!(EventMetadata::from_json(&stored), metadata);
        assert_eq!(EventMetadata::from_json_text(&stored.to_string()), metadata);
    }

    #[test]
    fn events_recorded_before_authentication_read_their_actor_as_the_client() {
        let stored = serde_json::json!({"actor": "anonymous", "customerId": "7", "requestId": "r"});
        let metadata = EventMetadata::from_json(&stored);
        assert_eq!(EventMetadata::from_json_text(&stored.to_string()), metadata);
        assert_eq!(metadata.client_id, "anonymous");
        assert_eq!(metadata.token_id, "");
        assert_eq!(metadata.customer_id, 7);
    }
}
