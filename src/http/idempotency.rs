//! Idempotency keys on writes, after the IETF draft "The Idempotency-Key HTTP Header
//! Field": a client that sends `Idempotency-Key` with a `POST /v1/jobs` or a command may
//! send the same request again — after a timeout, a dropped connection, a crash on either
//! side — and the job changes once. The first request's answer is stored with its events;
//! a retry gets it again, marked `Idempotent-Replayed: true`. A key is the client's, for one
//! customer, and belongs to one request: its method, path and canonical body (the
//! fingerprint). Only answered requests keep their key: a request that is refused or fails
//! (any 4xx or 5xx) releases it, so the client may correct the request and send it again
//! with the same key.

use crate::http::access::Authorized;
use crate::http::error::ApiError;
use crate::http::extract::RawBody;
use crate::http::problem::ProblemType;
use crate::service::{JobService, KeyUse};
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::{request::Parts, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use projections::idempotency::{KeyClaim, KeyedRequest, StoredAnswer};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::sync::Arc;
use utoipa::IntoParams;

pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The longest key accepted, in characters (the draft leaves the bound to the server).
pub const MAX_KEY_LENGTH: usize = 255;

/// How long a failed write's answer waits for its key to be released.
const INLINE_RELEASE: std::time::Duration = std::time::Duration::from_millis(500);

/// A request's `Idempotency-Key`, with the request line its fingerprint covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    key: String,
    method: Method,
    path: String,
}

impl IdempotencyKey {
    /// The key as the store keeps it: the caller's, for the customer, for this request.
    pub fn request<R>(&self, access: &Authorized<R>, body: &RawBody) -> KeyedRequest {
        KeyedRequest {
            customer_id: access.customer.get(),
            client_id: access.caller.client_id.to_string(),
            key: self.key.clone(),
            fingerprint: fingerprint(&self.method, &self.path, body.bytes()),
        }
    }
}

/// The request's `Idempotency-Key`, if it sent one; 400 `invalid-idempotency-key` if it is
/// not a key.
#[derive(Debug)]
pub struct RequestKey(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for RequestKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(&IDEMPOTENCY_KEY).iter();
        let Some(value) = values.next() else {
            return Ok(RequestKey(None));
        };
        let invalid = |detail: &str| {
            ApiError::bad_request(ProblemType::InvalidIdempotencyKey, detail.to_owned())
        };
        if values.next().is_some() {
            return Err(invalid("send one Idempotency-Key header, not several"));
        }
        let key = parse_key(value.as_bytes()).ok_or_else(|| {
            invalid(
                "Idempotency-Key must be 1 to 255 printable ASCII characters, bare or as a \
                 quoted string (\"…\"), such as a UUID",
            )
        })?;
        Ok(RequestKey(Some(IdempotencyKey {
            key,
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
        })))
    }
}

/// The OpenAPI description of the `Idempotency-Key` header [`RequestKey`] reads.
#[derive(IntoParams)]
#[into_params(names("Idempotency-Key"), parameter_in = Header)]
#[allow(dead_code)] // documentation only: read by `RequestKey`
pub struct IdempotencyKeyHeader(
    /// Makes the request safe to retry: 1–255 printable ASCII characters (a UUID is a good
    /// choice), bare or as a structured-field string (`"…"`). The first request's answer is
    /// kept for at least 24 hours; sending the same request (method, path and JSON body,
    /// whatever its key order and spacing) with the same key gets that answer again, with
    /// `Idempotent-Replayed: true`, and records nothing. The same key with another request
    /// answers 422 `/problems/idempotency-key-reused`; while the first is still running,
    /// 409 `/problems/idempotency-key-in-flight` with `Retry-After`. Keys are the client's,
    /// per customer. A request that is refused or fails keeps no answer: its key may be
    /// sent again with a corrected request.
    #[param(
        min_length = 1,
        max_length = 512,
        pattern = r#"^("([ !#-\[\]-~]|\\["\\]){1,255}"|[!#-~][ -~]{0,254})$"#
    )]
    Option<String>,
);

/// Reads a key: 1–255 printable ASCII characters (space included, not at either end),
/// either bare or as a structured-field string (RFC 8941 §3.3.3: quoted, with `\"` and
/// `\\` escapes), which is how the draft writes it. `"abc"` and `abc` are the same key.
/// `None` for anything else.
pub fn parse_key(value: &[u8]) -> Option<String> {
    let printable = |byte: &u8| (b' '..=b'~').contains(byte);
    let key = match value {
        [b'"', inner @ .., b'"'] => {
            let mut key = Vec::with_capacity(inner.len());
            let mut bytes = inner.iter();
            while let Some(&byte) = bytes.next() {
                match byte {
                    b'\\' => match bytes.next() {
                        Some(&escaped @ (b'"' | b'\\')) => key.push(escaped),
                        _ => return None,
                    },
                    b'"' => return None,
                    _ if printable(&byte) => key.push(byte),
                    _ => return None,
                }
            }
            key
        }
        _ if value.iter().all(printable) => value.trim_ascii().to_vec(),
        _ => return None,
    };
    if key.is_empty() || key.len() > MAX_KEY_LENGTH {
        return None;
    }
    String::from_utf8(key).ok()
}

/// What a key stands for: the SHA-256 of the method, the path and the canonical body.
pub fn fingerprint(method: &Method, path: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(method.as_str());
    hash.update(b"\n");
    hash.update(path);
    hash.update(b"\n");
    hash.update(canonical_body(body));
    hash.finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A JSON body with its insignificant differences — spacing, the order of object members —
/// taken out; any other body as it is.
fn canonical_body(body: &[u8]) -> Vec<u8> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Vec::new();
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => {
            let mut canonical = Vec::with_capacity(body.len());
            write_canonical(&value, &mut canonical);
            canonical
        }
        Err(_) => body.to_vec(),
    }
}

fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Array(items) => {
            out.push(b'[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            let mut members: Vec<_> = members.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (n, (name, member)) in members.into_iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_canonical(&Value::String(name.clone()), out);
                out.push(b':');
                write_canonical(member, out);
            }
            out.push(b'}');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

/// Runs a write under its idempotency key, if it has one: claims the key, and either
/// answers again what the key was answered before, or runs `write` with the claim (which
/// the write hands to the service, to store its answer with its events).
///
/// A keyed write runs in a task of its own, so it ends — committing and storing its answer,
/// or releasing the key — even when the client gives up or the request times out: the
/// client's retry then finds the answer or a free key, not a claim held by a write nobody
/// waits for. A write that ends without storing an answer releases the key; if the store
/// cannot be reached to do so, a background task keeps trying for as long as the claim
/// would last.
pub async fn under_key<F, Fut>(
    service: &Arc<JobService>,
    request: Option<KeyedRequest>,
    write: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(Option<KeyClaim>) -> Fut,
    Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
{
    let Some(request) = request else {
        return write(None).await;
    };
    let claim = match service.claim_key(&request).await? {
        KeyUse::Replay(answer) => {
            metrics::counter!("jobs_idempotent_replays_total").increment(1);
            return answer_response(&answer, true);
        }
        KeyUse::Run(claim) => claim,
    };
    let running = write(Some(claim.clone()));
    let service = service.clone();
    let finished = tokio::spawn(async move {
        let result = running.await;
        if result.is_err() {
            // Nothing to keep, unless the answer was committed and the failure came after
            // it: a release spares an answered key, so either way the key tells the truth.
            // Tried once before answering, briefly: a store that cannot be reached is
            // retried in the background rather than holding the answer back.
            let released = tokio::time::timeout(INLINE_RELEASE, service.release_key(&claim));
            if !released.await.unwrap_or(false) {
                tokio::spawn(async move { service.release_key_eventually(claim).await });
            }
        }
        result
    });
    finished.await.map_err(ApiError::internal)?
}

/// The response for an answer, given first or again (`replayed`).
pub fn answer_response(answer: &StoredAnswer, replayed: bool) -> Result<Response, ApiError> {
    let mut response = Response::builder()
        .status(StatusCode::from_u16(answer.status).map_err(ApiError::internal)?);
    for (name, value) in &answer.headers {
        response = response.header(name.as_str(), value.as_str());
    }
    if replayed {
        response = response.header(&IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    let body = answer.body.clone().map_or_else(Body::empty, Body::from);
    response.body(body).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_are_printable_ascii_bare_or_quoted() {
        assert_eq!(parse_key(b"abc-123").as_deref(), Some("abc-123"));
        assert_eq!(parse_key(b"\"abc-123\"").as_deref(), Some("abc-123"));
        assert_eq!(parse_key(br#""a\"b\\c""#).as_deref(), Some(r#"a"b\c"#));
        assert_eq!(parse_key(b"a b").as_deref(), Some("a b"));
        assert_eq!(parse_key(&[b'k'; 255]).map(|key| key.len()), Some(255));
        for bad in [
            &b""[..],
            b"\"\"",
            b"   ",
            b"caf\xc3\xa9",
            b"tab\there",
            b"\"a\"b\"",
            b"\"a\\b\"",
            &[b'k'; 256],
        ] {
            assert_eq!(parse_key(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_fingerprint_covers_method_path_and_body() {
        let post = |path: &str, body: &str| fingerprint(&Method::POST, path, body.as_bytes());
        let base = post("/v1/jobs", r#"{"a":1,"b":[1,{"c":2,"d":3}]}"#);
        assert_eq!(
            base,
            post("/v1/jobs", "{ \"b\": [1, {\"d\":3, \"c\":2}],\n \"a\": 1 }")
        );
        assert_ne!(base, post("/v1/jobs", r#"{"a":2,"b":[1,{"c":2,"d":3}]}"#));
        assert_ne!(base, post("/v1/jobs", r#"{"a":1,"b":[{"c":2,"d":3},1]}"#));
        assert_ne!(base, post("/v1/jobs/x", r#"{"a":1,"b":[1,{"c":2,"d":3}]}"#));
        assert_ne!(
            base,
            fingerprint(
                &Method::PUT,
                "/v1/jobs",
                br#"{"a":1,"b":[1,{"c":2,"d":3}]}"#
            )
        );
        assert_eq!(post("/v1/jobs", ""), post("/v1/jobs", " \n"));
        assert_ne!(post("/v1/jobs", ""), post("/v1/jobs", "{}"));
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-z\"\\\\é ]{0,6}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map("[a-c]{1,2}", inner, 0..4)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The canonical body reads back as the same JSON, and two bodies share a
        /// fingerprint exactly when they are the same JSON.
        #[test]
        fn canonical_bodies_are_equal_exactly_for_equal_json(a in json_value(), b in json_value()) {
            let canonical = canonical_body(a.to_string().as_bytes());
            let read_back: serde_json::Value = serde_json::from_slice(&canonical).unwrap();
            prop_assert_eq!(&read_back, &a);
            let pretty = serde_json::to_string_pretty(&a).unwrap();
            prop_assert_eq!(
                fingerprint(&Method::PATCH, "/p", pretty.as_bytes()),
                fingerprint(&Method::PATCH, "/p", a.to_string().as_bytes())
            );
            prop_assert_eq!(
                fingerprint(&Method::PATCH, "/p", a.to_string().as_bytes())
                    == fingerprint(&Method::PATCH, "/p", b.to_string().as_bytes()),
                a == b
            );
        }
    }
}
