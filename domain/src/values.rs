//! Validated value types. Each can only be built through a `parse`/`new` that enforces its
//! rule, so a command that carries them is valid by construction ("parse, don't validate").
//! Deserialization does not re-check: stored events are facts, and rules may tighten later.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;

/// Why a value was refused. `Display` is the user-facing message of a 422 `errors` entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("must not be blank")]
    Blank,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("must be at least {min}")]
    TooSmall { min: i64 },
    #[error("must be between {min} and {max}")]
    OutOfRange { min: i64, max: i64 },
    #[error("must have at most {max} items")]
    TooMany { max: usize },
    #[error("definitionId {0} appears more than once")]
    DuplicateDefinitionId(i64),
    /// U+0000 is valid JSON but no text column can hold it (PostgreSQL refuses it).
    #[error("must not contain the NUL character (U+0000)")]
    NulCharacter,
}

fn check_length(value: &str, max: usize) -> Result<(), ValueError> {
    if value.contains('\0') {
        return Err(ValueError::NulCharacter);
    }
    // Characters, not bytes: a limit a user can count.
    if value.chars().count() > max {
        Err(ValueError::TooLong { max })
    } else {
        Ok(())
    }
}

/// Free text of at most `MAX` characters (may be empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Text<const MAX: usize>(String);

impl<const MAX: usize> Text<MAX> {
    pub fn parse(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = value.into();
        check_length(&value, MAX)?;
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Text that is not blank, trimmed, of at most `MAX` characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NonBlankText<const MAX: usize>(String);

impl<const MAX: usize> NonBlankText<MAX> {
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(ValueError::Blank);
        }
        check_length(trimmed, MAX)?;
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a job was cancelled: required, 1–500 characters after trimming.
pub type CancelReason = NonBlankText<500>;
/// A job's reference (≤ 88 characters).
pub type Reference = Text<88>;
/// A job's description (≤ 2000 characters).
pub type Description = Text<2000>;
/// A job's order number (≤ 80 characters).
pub type OrderNumber = Text<80>;
/// A comment on a progress step or start, or a suspension reason (≤ 500 characters).
pub type Comment = Text<500>;
/// Notes on a job's result (≤ 2000 characters).
pub type ResultNotes = Text<2000>;
/// The value of one custom field (≤ 2000 characters).
pub type CustomFieldValue = Text<2000>;

/// An identifier of another system's record (type, contact, resource, vehicle, custom-field
/// definition, customer): a positive 64-bit integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PositiveId(i64);

impl PositiveId {
    pub fn parse(value: i64) -> Result<Self, ValueError> {
        if value >= 1 {
            Ok(Self(value))
        } else {
            Err(ValueError::TooSmall { min: 1 })
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for PositiveId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The tenant a job belongs to.
pub type CustomerId = PositiveId;

/// Planned duration in minutes: 1 minute to one week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PlannedDuration(i64);

impl PlannedDuration {
    pub const MIN: i64 = 1;
    pub const MAX: i64 = 10_080;

    pub fn parse(minutes: i64) -> Result<Self, ValueError> {
        if (Self::MIN..=Self::MAX).contains(&minutes) {
            Ok(Self(minutes))
        } else {
            Err(ValueError::OutOfRange {
                min: Self::MIN,
                max: Self::MAX,
            })
        }
    }

    pub fn minutes(self) -> i64 {
        self.0
    }
}

/// One custom field value, keyed by the definition it fills in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomField {
    pub definition_id: PositiveId,
    pub value: Option<CustomFieldValue>,
}

/// At most 100 custom fields, each definition at most once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CustomFields(Vec<CustomField>);

impl CustomFields {
    pub const MAX: usize = 100;

    pub fn new(fields: Vec<CustomField>) -> Result<Self, ValueError> {
        if fields.len() > Self::MAX {
            return Err(ValueError::TooMany { max: Self::MAX });
        }
        let mut seen = HashSet::with_capacity(fields.len());
        for field in &fields {
            if !seen.insert(field.definition_id) {
                return Err(ValueError::DuplicateDefinitionId(field.definition_id.get()));
            }
        }
        Ok(Self(fields))
    }

    pub fn as_slice(&self) -> &[CustomField] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_reason_is_trimmed_and_bounded_in_characters() {
        assert_eq!(
            CancelReason::parse("  no access  ").unwrap().as_str(),
            "no access"
        );
        assert_eq!(CancelReason::parse(" \t\n "), Err(ValueError::Blank));
        assert!(CancelReason::parse(&"é".repeat(500)).is_ok());
        assert_eq!(
            CancelReason::parse(&"x".repeat(501)),
            Err(ValueError::TooLong { max: 500 })
        );
        // Padding does not count against the limit.
        assert!(CancelReason::parse(&format!("  {}  ", "x".repeat(500))).is_ok());
    }

    #[test]
    fn text_never_holds_nul() {
        assert_eq!(Reference::parse("a\0b"), Err(ValueError::NulCharacter));
        assert_eq!(
            CancelReason::parse("bad\0reason"),
            Err(ValueError::NulCharacter)
        );
    }

    #[test]
    fn bounded_text_counts_characters_not_bytes() {
        assert!(Reference::parse("ü".repeat(88)).is_ok());
        assert_eq!(
            Reference::parse("u".repeat(89)),
            Err(ValueError::TooLong { max: 88 })
        );
    }

    #[test]
    fn ids_and_durations_have_ranges() {
        assert_eq!(PositiveId::parse(0), Err(ValueError::TooSmall { min: 1 }));
        assert_eq!(
            ValueError::TooSmall { min: 1 }.to_string(),
            "must be at least 1"
        );
        assert!(PositiveId::parse(-5).is_err());
        assert_eq!(PositiveId::parse(7).unwrap().get(), 7);
        assert!(PlannedDuration::parse(0).is_err());
        assert!(PlannedDuration::parse(10_081).is_err());
        assert!(PlannedDuration::parse(10_080).is_ok());
    }

    #[test]
    fn custom_fields_are_unique_and_bounded() {
        let field = |id| CustomField {
            definition_id: PositiveId::parse(id).unwrap(),
            value: None,
        };
        assert_eq!(
            CustomFields::new(vec![field(1), field(2), field(1)]),
            Err(ValueError::DuplicateDefinitionId(1))
        );
        assert!(CustomFields::new((1..=100).map(field).collect()).is_ok());
        assert_eq!(
            CustomFields::new((1..=101).map(field).collect()),
            Err(ValueError::TooMany { max: 100 })
        );
    }
}
