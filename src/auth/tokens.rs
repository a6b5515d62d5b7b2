//! Access tokens: HS256-signed JWTs naming the client (`sub`), the token (`jti`), the granted
//! scopes and the customers the client may act for. The signing key comes from
//! configuration, or is generated once into the data directory and reused.

use crate::auth::Scope;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use uuid::Uuid;

/// HMAC-SHA256 keys shorter than its output add nothing but weakness (RFC 7518 §3.2).
pub const MIN_KEY_BYTES: usize = 32;

/// The file a generated key is kept in, inside the data directory.
pub const GENERATED_KEY_FILE: &str = "token-signing.key";

/// Random bytes in a generated key: twice what HS256 needs, at no cost.
const GENERATED_KEY_BYTES: usize = 64;

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the token signing key file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the token signing key file {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the token signing key {origin} is {length} bytes; at least {MIN_KEY_BYTES} are needed"
    )]
    TooShort { origin: String, length: usize },
    #[error("the token signing key cannot be used: {0}")]
    Unusable(#[from] jsonwebtoken::errors::Error),
}

/// Where the signing key comes from.
pub enum KeySource<'a> {
    /// The key itself (its bytes, as given).
    Inline(&'a str),
    /// A file whose content (less trailing whitespace) is the key.
    File(&'a Path),
    /// `token-signing.key` in this directory, generated on first use.
    Generated(&'a Path),
}

impl KeySource<'_> {
    pub fn load(&self) -> Result<Vec<u8>, KeyError> {
        let (origin, key) = match self {
            KeySource::Inline(key) => ("given".to_owned(), key.as_bytes().to_vec()),
            KeySource::File(path) => (format!("in {}", path.display()), read_key_file(path)?),
            KeySource::Generated(dir) => {
                let path = dir.join(GENERATED_KEY_FILE);
                std::fs::create_dir_all(dir).map_err(|source| KeyError::Create {
                    path: path.clone(),
                    source,
                })?;
                (format!("in {}", path.display()), load_or_generate(&path)?)
            }
        };
        if key.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort {
                origin,
                length: key.len(),
            });
        }
        Ok(key)
    }
}

fn read_key_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    warn_if_readable_by_others(path);
    let mut key = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    while key.last().is_some_and(u8::is_ascii_whitespace) {
        key.pop();
    }
    Ok(key)
}

/// Anyone who can read the key can mint tokens for every client: say so when others can.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = std::fs::metadata(path) {
            let mode = metadata.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "the token signing key is readable by other users; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Reads the key at `path`, or makes one there. Several processes may start at once on one
/// data directory: each writes its candidate to a private temporary file and links it into
/// place, which fails if another got there first; then everyone reads the winner. Nobody
/// ever reads a half-written key. On a file system without hard links, the key is written
/// in place instead (exclusive create, so still only one wins).
fn load_or_generate(path: &Path) -> Result<Vec<u8>, KeyError> {
    if path.exists() {
        return read_key_file(path);
    }
    let create_error = |source| KeyError::Create {
        path: path.to_owned(),
        source,
    };
    let key = crate::auth::secrets::random_hex(GENERATED_KEY_BYTES);
    let candidate = path.with_extension(format!("tmp-{}", Uuid::now_v7().simple()));
    let written = write_private(&candidate, &key);
    let linked = written.and_then(|()| std::fs::hard_link(&candidate, path));
    let _ = std::fs::remove_file(&candidate);
    let placed = match linked {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => {
            write_private(path, &key)
        }
        other => other,
    };
    match placed {
        Ok(()) => sync_directory(path).map_err(create_error)?,
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(create_error(error)),
    }
    read_key_file(path)
}

/// Makes a new directory entry durable: without it, a crash could lose the key file, and
/// every token issued with it would stop working after the restart.
fn sync_directory(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        std::fs::File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writes a new file readable by its owner only (mode 0600 on Unix), durably.
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(content.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

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

/// Signs and checks tokens with one key.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    policy: TokenPolicy,
}

impl TokenKeys {
    pub fn new(key: &[u8], policy: TokenPolicy) -> Result<Self, KeyError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&policy.issuer]);
        validation.set_audience(&[&policy.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        Ok(Self {
            encoding: EncodingKey::from_secret(key)?,
            decoding: DecodingKey::from_secret(key)?,
            validation,
            policy,
        })
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
        let access_token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(IssuedToken {
            access_token,
            token_id,
            expires_in: lifetime,
        })
    }

    /// The claims of a token this key signed, for this issuer and audience, valid now. Any
    /// other algorithm (`none` included) is refused.
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
    }
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
    fn a_generated_key_is_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("jobs-key-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = KeySource::Generated(&dir).load().unwrap();
        let second = KeySource::Generated(&dir).load().unwrap();
        assert_eq!(first, second);
        assert!(first.len() >= MIN_KEY_BYTES);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(GENERATED_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files remain");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn processes_starting_together_agree_on_one_key() {
        let dir = std::env::temp_dir().join(format!("jobs-key-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let keys: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| KeySource::Generated(&dir).load().unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.windows(2).all(|pair| pair[0] == pair[1]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
