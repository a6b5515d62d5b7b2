//! Access tokens: HS256-signed JWTs naming the client (`sub`), the token (`jti`), the granted
//! scopes and the customers the client may act for, and in their header the key that
//! signed them (`kid`). The keys are a ring (see [`crate::auth::keys`]): the newest signs,
//! every one verifies, and a key file is re-read every [`KEY_FILE_RELOAD`], so keys rotate
//! without a restart.

use crate::auth::keys::{read_ring, KeyRing, SigningKey};
use crate::auth::Scope;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};
use uuid::Uuid;

pub use crate::auth::keys::{KeyError, KeySource, GENERATED_KEY_FILE, MIN_KEY_BYTES};

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

/// How often a key file is checked for changes (a rotation, a retired key).
pub const KEY_FILE_RELOAD: Duration = Duration::from_secs(5);

/// What a token says. Registered claims plus `scope` (space-separated, as in RFC 9068) and
/// `customers`, the customer ids the client may act for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub jti: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub scope: String,
    pub customers: Vec<i64>,
}

/// What the token endpoint hands out.
pub struct IssuedToken {
    pub access_token: String,
    pub token_id: Uuid,
    pub expires_in: u64,
}

/// The issuer, audience and lifetime stamped on tokens.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    pub issuer: String,
    pub audience: String,
    pub lifetime: Duration,
}

/// A key of the ring, ready to sign and verify.
struct PreparedKey {
    key: SigningKey,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The ring, prepared.
struct PreparedRing {
    keys: Vec<PreparedKey>,
}

impl PreparedRing {
    fn new(ring: &KeyRing) -> Result<Self, KeyError> {
        let keys = ring
            .keys()
            .iter()
            .map(|key: &SigningKey| {
                Ok(PreparedKey {
                    encoding: EncodingKey::from_secret(&key.secret)?,
                    decoding: DecodingKey::from_secret(&key.secret)?,
                    key: key.clone(),
                })
            })
            .collect::<Result<Vec<_>, KeyError>>()?;
        Ok(PreparedRing { keys })
    }

    fn signing(&self, now: DateTime<Utc>) -> Option<&PreparedKey> {
        self.keys
            .iter()
            .find(|prepared| prepared.key.may_sign_at(now))
    }
}

/// The key file a ring came from, and what it looked like when last read.
struct WatchedFile {
    path: PathBuf,
    seen: Mutex<Option<(SystemTime, u64)>>,
}

/// Signs and checks tokens with a ring of keys.
pub struct TokenKeys {
    ring: RwLock<Arc<PreparedRing>>,
    file: Option<WatchedFile>,
    validation: Validation,
    policy: TokenPolicy,
}

impl TokenKeys {
    /// Keys of one secret (its id derived from it), as tests and tools have them.
    pub fn new(key: &[u8], policy: TokenPolicy) -> Result<Self, KeyError> {
        Self::from_ring(
            &KeyRing::single(SigningKey::derived(key.to_vec())),
            None,
            policy,
        )
    }

    /// The ring, re-read from `file` (when it came from one) by [`Self::reload_if_changed`].
    pub fn from_ring(
        ring: &KeyRing,
        file: Option<PathBuf>,
        policy: TokenPolicy,
    ) -> Result<Self, KeyError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&policy.issuer]);
        validation.set_audience(&[&policy.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        let file = file.map(|path| WatchedFile {
            seen: Mutex::new(file_stamp(&path)),
            path,
        });
        Ok(Self {
            ring: RwLock::new(Arc::new(PreparedRing::new(ring)?)),
            file,
            validation,
            policy,
        })
    }

    fn current(&self) -> Arc<PreparedRing> {
        self.ring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the key file if it changed since last read. A file that no longer reads
    /// as a ring leaves the keys as they were (and says why): a half-done edit must not
    /// log everyone out. Returns whether the keys changed.
    pub fn reload_if_changed(&self) -> bool {
        let Some(file) = &self.file else {
            return false;
        };
        let stamp = file_stamp(&file.path);
        {
            let mut seen = file.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if *seen == stamp {
                return false;
            }
            *seen = stamp;
        }
        match read_ring(&file.path).and_then(|ring| PreparedRing::new(&ring)) {
            Ok(ring) => {
                let ids: Vec<&str> = ring
                    .keys
                    .iter()
                    .map(|prepared| prepared.key.id.as_str())
                    .collect();
                tracing::info!(keys = ?ids, "token signing keys re-read");
                *self.ring.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
                true
            }
            Err(error) => {
                tracing::warn!(%error, "the token signing key file changed but cannot be used; keeping the keys as they were");
                false
            }
        }
    }

    pub fn issue(
        &self,
        client_id: Uuid,
        scopes: &[Scope],
        customers: &[i64],
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let token_id = Uuid::now_v7();
        let lifetime = self.policy.lifetime.as_secs();
        let claims = Claims {
            iss: self.policy.issuer.clone(),
            aud: self.policy.audience.clone(),
            sub: client_id.to_string(),
            jti: token_id.to_string(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: now.timestamp().saturating_add_unsigned(lifetime),
            scope: Scope::join(scopes),
            customers: customers.to_vec(),
        };
        let ring = self.current();
        let key = ring
            .signing(now)
            .ok_or(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)?;
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.key.id.clone());
        let access_token = jsonwebtoken::encode(&header, &claims, &key.encoding)?;
        Ok(IssuedToken {
            access_token,
            token_id,
            expires_in: lifetime,
        })
    }

    /// The claims of a token a key of the ring signed, for this issuer and audience, valid
    /// now. Any other algorithm (`none` included) is refused. A token names its key
    /// (`kid`): an unknown one is refused; one without (issued before keys had ids) is
    /// checked against each key.
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        use jsonwebtoken::errors::ErrorKind;
        let header = jsonwebtoken::decode_header(token)?;
        let ring = self.current();
        let candidates = ring.keys.iter().filter(|prepared| {
            header
                .kid
                .as_ref()
                .is_none_or(|kid| *kid == prepared.key.id)
        });
        let mut failure: jsonwebtoken::errors::Error = ErrorKind::InvalidSignature.into();
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation) {
                Ok(data) => return Ok(data.claims),
                Err(error) if *error.kind() == ErrorKind::InvalidSignature => failure = error,
                Err(error) => return Err(error),
            }
        }
        Err(failure)
    }
}

/// When the file last changed, and its length: what tells a rewrite (rename included).
fn file_stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::errors::ErrorKind;

    fn policy() -> TokenPolicy {
        TokenPolicy {
            issuer: "jobs-service".into(),
            audience: "jobs-api".into(),
            lifetime: Duration::from_secs(3600),
        }
    }

    fn keys(key: &[u8]) -> TokenKeys {
        TokenKeys::new(key, policy()).unwrap()
    }

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn an_issued_token_verifies_and_carries_what_was_granted() {
        let keys = keys(KEY);
        let client = Uuid::now_v7();
        let issued = keys
            .issue(client, &[Scope::JobsRead], &[42, 43], Utc::now())
            .unwrap();
        let claims = keys.verify(&issued.access_token).unwrap();
        assert_eq!(claims.sub, client.to_string());
        assert_eq!(claims.jti, issued.token_id.to_string());
        assert_eq!(claims.scope, "jobs:read");
        assert_eq!(claims.customers, vec![42, 43]);
        assert_eq!(claims.exp - claims.iat, 3600);
        assert_eq!(issued.expires_in, 3600);
    }

    #[test]
    fn another_key_or_audience_or_an_expired_token_is_refused() {
        let issued = keys(KEY)
            .issue(Uuid::now_v7(), &[Scope::JobsRead], &[1], Utc::now())
            .unwrap();
        let other = keys(b"another key of thirty-two bytes!");
        assert_eq!(
            other.verify(&issued.access_token).unwrap_err().kind(),
            &ErrorKind::InvalidSignature
        );
        let elsewhere = TokenKeys::new(
            KEY,
            TokenPolicy {
                audience: "another-api".into(),
                ..policy()
            },
        )
        .unwrap();
        assert_eq!(
            elsewhere.verify(&issued.access_token).unwrap_err().kind(),
            &ErrorKind::InvalidAudience
        );
        let old = keys(KEY)
            .issue(
                Uuid::now_v7(),
                &[Scope::JobsRead],
                &[1],
                Utc::now() - chrono::Duration::hours(2),
            )
            .unwrap();
        assert_eq!(
            keys(KEY).verify(&old.access_token).unwrap_err().kind(),
            &ErrorKind::ExpiredSignature
        );
    }

    #[test]
    fn short_keys_are_refused() {
        let error = KeySource::Inline("short").load().unwrap_err();
        assert!(
            matches!(error, KeyError::TooShort { length: 5, .. }),
            "{error}"
        );
    }

    #[test]
    fn a_token_names_its_key_and_each_key_of_the_ring_verifies_its_own() {
        let now = Utc::now();
        let ring = KeyRing::single(SigningKey::derived(KEY.to_vec()));
        let rotated = ring.rotated(now);
        let old = TokenKeys::from_ring(&ring, None, policy()).unwrap();
        let new = TokenKeys::from_ring(&rotated, None, policy()).unwrap();
        let before = old
            .issue(Uuid::now_v7(), &[Scope::JobsRead], &[1], now)
            .unwrap();
        let after = new
            .issue(Uuid::now_v7(), &[Scope::JobsRead], &[1], now)
            .unwrap();
        let kid = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
        assert_eq!(kid(&before.access_token), ring.keys()[0].id);
        assert_eq!(kid(&after.access_token), rotated.keys()[0].id);
        assert!(
            new.verify(&before.access_token).is_ok(),
            "the old key still verifies"
        );
        assert!(new.verify(&after.access_token).is_ok());
        assert_eq!(
            old.verify(&after.access_token).unwrap_err().kind(),
            &ErrorKind::InvalidSignature,
            "a key the ring lacks verifies nothing"
        );
    }
}
