//! Conditional writes (RFC 9110 §13): every job answer carries the job's version as a strong
//! `ETag`, and a write may name, in `If-Match`, the versions it was made for. The header is
//! read into the service's [`VersionCondition`]; the service checks it against the version
//! the command is decided on, so a stale tag answers 412 and records nothing.

use crate::http::error::ApiError;
use crate::http::problem::ProblemType;
use crate::service::{JobVersion, VersionCondition};
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderValue};
use utoipa::IntoParams;

/// The entity tag of a job at `version`: the version, quoted (a strong entity tag).
pub fn entity_tag(version: JobVersion) -> String {
    format!("\"{version}\"")
}

/// The `ETag` header value of a job at `version`.
pub fn etag(version: JobVersion) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(&entity_tag(version)).map_err(ApiError::internal)
}

/// The request's `If-Match`, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfMatch(pub Option<VersionCondition>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(header::IF_MATCH).iter().peekable();
        if values.peek().is_none() {
            return Ok(IfMatch(None));
        }
        // Several header lines are one comma-separated list (RFC 9110 §5.3).
        let joined: Vec<u8> = values
            .map(HeaderValue::as_bytes)
            .collect::<Vec<_>>()
            .join(&b","[..]);
        let condition = parse_if_match(&joined).ok_or_else(|| {
            ApiError::bad_request(
                ProblemType::InvalidIfMatch,
                "If-Match must be * or a list of entity tags, such as \"3\" (a job's ETag)",
            )
        })?;
        Ok(IfMatch(Some(condition)))
    }
}

/// The OpenAPI description of the `If-Match` header [`IfMatch`] reads.
#[derive(IntoParams)]
#[into_params(names("If-Match"), parameter_in = Header)]
#[allow(dead_code)] // documentation only: read by `IfMatch`
pub struct IfMatchHeader(
    /// Record the command only if the job is still at this version: its `ETag`, e.g. `"3"`,
    /// a comma-separated list of such tags, or `*` (any version). A stale tag answers 412
    /// `/problems/precondition-failed` and records nothing; a weak tag (`W/"3"`) never
    /// matches on a write; a value that is not an entity tag answers 400
    /// `/problems/invalid-if-match`.
    #[param(pattern = r#"^[ \t]*(\*|(W/)?"[!#-~]*"([ \t]*,[ \t]*(W/)?"[!#-~]*")*)[ \t]*$"#)]
    Option<String>,
);

/// Reads an `If-Match` value: `*`, or one or more entity tags (`"…"` or `W/"…"`) separated
/// by commas and optional whitespace. Strong tags that are versions become the versions the
/// write admits; weak tags and other strong tags can never match a version (writes compare
/// strongly), so they admit nothing. `None` when the value is not of that form.
pub fn parse_if_match(value: &[u8]) -> Option<VersionCondition> {
    if value.trim_ascii() == b"*" {
        return Some(VersionCondition::Any);
    }
    let mut versions = Vec::new();
    let mut tags = 0;
    let mut rest = value;
    loop {
        // Empty list elements are allowed (RFC 9110 §5.6.1.2).
        rest = rest.trim_ascii_start();
        while let Some(after) = rest.strip_prefix(b",") {
            rest = after.trim_ascii_start();
        }
        if rest.is_empty() {
            break;
        }
        let (weak, quoted) = match rest.strip_prefix(b"W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let opaque = quoted.strip_prefix(b"\"")?;
        let end = opaque.iter().position(|&byte| byte == b'"')?;
        let (tag, after) = (&opaque[..end], &opaque[end + 1..]);
        // etagc: %x21 / %x23-7E / obs-text — visible characters but the quote, no spaces.
        if !tag
            .iter()
            .all(|&byte| byte == 0x21 || (byte >= 0x23 && byte != 0x7f))
        {
            return None;
        }
        tags += 1;
        if !weak {
            // Compared as written: `"03"` or `"+3"` is not the tag of version 3.
            if let Some(version) = std::str::from_utf8(tag).ok().and_then(|text| {
                text.parse::<JobVersion>()
                    .ok()
                    .filter(|version| version.to_string() == text)
            }) {
                versions.push(version);
            }
        }
        rest = after.trim_ascii_start();
        if !rest.is_empty() && !rest.starts_with(b",") {
            return None;
        }
    }
    (tags > 0).then_some(VersionCondition::OneOf(versions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one_of(versions: &[JobVersion]) -> Option<VersionCondition> {
        Some(VersionCondition::OneOf(versions.to_vec()))
    }

    #[test]
    fn a_star_admits_any_version() {
        assert_eq!(parse_if_match(b"*"), Some(VersionCondition::Any));
        assert_eq!(parse_if_match(b"  * "), Some(VersionCondition::Any));
    }

    #[test]
    fn strong_tags_name_versions_and_lists_may_have_gaps() {
        assert_eq!(parse_if_match(b"\"3\""), one_of(&[3]));
        assert_eq!(parse_if_match(b"\"3\", \"7\""), one_of(&[3, 7]));
        assert_eq!(parse_if_match(b" ,\"3\" ,, \"7\","), one_of(&[3, 7]));
    }

    #[test]
    fn weak_and_foreign_tags_are_well_formed_but_match_nothing() {
        assert_eq!(parse_if_match(b"W/\"3\""), one_of(&[]));
        assert_eq!(parse_if_match(b"\"abc\", W/\"4\", \"5\""), one_of(&[5]));
        assert_eq!(parse_if_match(b"\"\""), one_of(&[]));
        assert_eq!(parse_if_match(b"\"a,b\""), one_of(&[]));
        assert_eq!(parse_if_match(b"\"03\", \"+3\", \"3\""), one_of(&[3]));
    }

    #[test]
    fn anything_else_is_not_an_if_match() {
        for value in [
            &b""[..],
            b" , ",
            b"3",
            b"\"3",
            b"\"3\" \"4\"",
            b"\"3\"x",
            b"w/\"3\"",
            b"W/3",
            b"\"a b\"",
            b"\"a\x7fb\"",
            b"*, \"3\"",
            b"**",
        ] {
            assert_eq!(
                parse_if_match(value),
                None,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
    }

    proptest! {
        /// Whatever the lists look like, a list of quoted versions admits exactly them.
        #[test]
        fn a_written_list_reads_back(versions in proptest::collection::vec(0i64..1_000_000, 1..6),
                                     weak in proptest::collection::vec(any::<bool>(), 6),
                                     gaps in proptest::collection::vec(0usize..3, 6)) {
            let mut value = String::new();
            let mut expected = Vec::new();
            for (index, version) in versions.iter().enumerate() {
                value.push_str(&", ".repeat(gaps[index]));
                if index > 0 { value.push_str(", "); }
                if weak[index] { value.push_str("W/"); } else { expected.push(*version); }
                value.push_str(&format!("\"{version}\""));
            }
            prop_assert_eq!(parse_if_match(value.as_bytes()), one_of(&expected));
        }

        /// No input makes the parser panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse_if_match(&bytes);
        }
    }
}
