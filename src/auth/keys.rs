//! Token signing keys: a ring of HS256 keys, each with a key id (`kid`). The newest key
//! whose time has come signs new tokens; every key in the ring verifies the tokens that
//! name it, so a key can be rotated without logging anyone out.
//!
//! A key file holds one key per line, `KID SECRET [SIGNS_FROM]` (blank lines and `#`
//! comments ignored); a file of one bare secret — what earlier releases generated, or an
//! operator wrote — is a ring of that key, its id derived from it. `jobs-admin keys rotate`
//! adds a key that signs from a little later, so that every server sharing the file has
//! re-read it (see `TokenKeys`'s reload) before any token names the new key; `jobs-admin
//! keys retire` removes one once the tokens it signed have expired.
//!
//! A configured secret must be random bytes written as hex or base64, at least
//! [`MIN_KEY_BYTES`] of them, and not plainly patterned: a passphrase an attacker holding
//! one token could brute-force offline (hashcat mode 16500) is refused at start.

use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// HMAC-SHA256 keys shorter than its output add nothing but weakness (RFC 7518 §3.2).
pub const MIN_KEY_BYTES: usize = 32;

/// The file a generated key is kept in, inside the data directory.
pub const GENERATED_KEY_FILE: &str = "token-signing.key";

/// Random bytes in a generated key: twice what HS256 needs, at no cost.
const GENERATED_KEY_BYTES: usize = 64;

/// The longest a token lives (`--token-ttl`'s bound) plus the clock skew tolerated: a key
/// retired this long after it stopped signing ends no valid token.
const MAX_TOKEN_LIFETIME: chrono::Duration = chrono::Duration::seconds(86_400 + 30);

/// How long after `jobs-admin keys rotate` the new key starts signing: servers re-read the
/// key file every [`crate::auth::tokens::KEY_FILE_RELOAD`], so by then each verifies it.
pub const ROTATION_DELAY: std::time::Duration = std::time::Duration::from_secs(12);

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
    #[error(
        "the token signing key {origin} does not look random ({reason}); use {MIN_KEY_BYTES} \
         or more random bytes as hex or base64, e.g. `openssl rand -hex 32`"
    )]
    NotRandom {
        origin: String,
        reason: &'static str,
    },
    #[error("the token signing key file {origin} is malformed: {reason}")]
    Malformed { origin: String, reason: String },
    #[error("the token signing key cannot be used: {0}")]
    Unusable(#[from] jsonwebtoken::errors::Error),
}

/// One signing key: its id (the tokens' `kid`) and its secret (used as written).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub id: String,
    pub secret: Vec<u8>,
    /// When it starts signing (`None`: as soon as it is the newest).
    pub signs_from: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .field("signs_from", &self.signs_from)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Whether its time to sign has come by `now` (the newest such key of a ring signs).
    pub fn may_sign_at(&self, now: DateTime<Utc>) -> bool {
        self.signs_from.is_none_or(|from| from <= now)
    }

    /// A key whose id is derived from its secret (16 hex digits of its SHA-256: naming the
    /// key without revealing anything of it).
    pub fn derived(secret: Vec<u8>) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(&secret);
        SigningKey {
            id: digest[..8]
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect(),
            secret,
            signs_from: None,
        }
    }
}

/// The keys that verify tokens, newest first; see [`KeyRing::signing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRing {
    keys: Vec<SigningKey>,
}

impl KeyRing {
    /// A ring of one key.
    pub fn single(key: SigningKey) -> Self {
        KeyRing { keys: vec![key] }
    }

    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// The key that signs at `now`: the first (newest) whose `signs_from` has come.
    pub fn signing(&self, now: DateTime<Utc>) -> Option<&SigningKey> {
        self.keys.iter().find(|key| key.may_sign_at(now))
    }

    pub fn find(&self, id: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|key| key.id == id)
    }

    /// Reads a key file's text (see the module doc); `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, KeyError> {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .collect();
        let malformed = |reason: String| KeyError::Malformed {
            origin: origin.to_owned(),
            reason,
        };
        if let [bare] = lines.as_slice() {
            if !bare.contains(char::is_whitespace) {
                check_strength(bare, origin)?;
                return Ok(KeyRing::single(SigningKey::derived(
                    bare.as_bytes().to_vec(),
                )));
            }
        }
        let mut keys: Vec<SigningKey> = Vec::with_capacity(lines.len());
        for (number, line) in lines.iter().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (id, secret, signs_from) = match fields.as_slice() {
                [id, secret] => (*id, *secret, None),
                [id, secret, from] => {
                    let from = DateTime::parse_from_rfc3339(from).map_err(|_| {
                        malformed(format!("key {number}'s SIGNS_FROM is not an RFC 3339 time"))
                    })?;
                    (*id, *secret, Some(from.with_timezone(&Utc)))
                }
                _ => {
                    return Err(malformed(format!(
                        "key {} is not `KID SECRET [SIGNS_FROM]`",
                        number + 1
                    )))
                }
            };
            if id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(malformed(format!(
                    "key {}'s id must be 1-64 letters, digits, '-', '_' or '.'",
                    number + 1
                )));
            }
            if keys.iter().any(|key| key.id == id) {
                return Err(malformed(format!("the key id {id} appears twice")));
            }
            check_strength(secret, &format!("{id} in {origin}"))?;
            keys.push(SigningKey {
                id: id.to_owned(),
                secret: secret.as_bytes().to_vec(),
                signs_from,
            });
        }
        if keys.is_empty() {
            return Err(malformed("it holds no key".into()));
        }
        let ring = KeyRing { keys };
        if ring.signing(Utc::now()).is_none() {
            return Err(malformed(
                "no key signs yet: every SIGNS_FROM is still to come".into(),
            ));
        }
        Ok(ring)
    }

    /// The ring as a key file's text.
    pub fn to_file_text(&self) -> String {
        let mut text = String::from(
            "# Token signing keys, newest first: KID SECRET [SIGNS_FROM]. The first whose\n\
             # SIGNS_FROM has come signs new tokens; every key verifies the tokens naming it.\n",
        );
        for key in &self.keys {
            text.push_str(&key.id);
            text.push(' ');
            text.push_str(&String::from_utf8_lossy(&key.secret));
            if let Some(from) = key.signs_from {
                text.push(' ');
                text.push_str(&from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            }
            text.push('\n');
        }
        text
    }

    /// The ring with a new random key in front, signing from `signs_from` (to the whole
    /// second, as the file writes it).
    pub fn rotated(&self, signs_from: DateTime<Utc>) -> Self {
        use chrono::Timelike;
        let signs_from = signs_from.with_nanosecond(0).unwrap_or(signs_from);
        let mut keys = Vec::with_capacity(self.keys.len() + 1);
        keys.push(SigningKey {
            id: format!(
                "{}-{}",
                signs_from.format("%Y%m%d"),
                &Uuid::now_v7().simple().to_string()[24..]
            ),
            secret: crate::auth::secrets::random_hex(GENERATED_KEY_BYTES).into_bytes(),
            signs_from: Some(signs_from),
        });
        keys.extend(self.keys.iter().cloned());
        KeyRing { keys }
    }

    /// The ring without the key `id`. Refused when that key signs now (tokens would stop
    /// being issued), and — unless `force` — while tokens it signed may still be valid: until
    /// the longest token lifetime has passed since the key signing now took over (or
    /// always, when that is not known).
    pub fn without(&self, id: &str, now: DateTime<Utc>, force: bool) -> Result<Self, String> {
        let Some(position) = self.keys.iter().position(|key| key.id == id) else {
            return Err(format!("no key has the id {id}"));
        };
        let signing = self.signing(now);
        if signing.is_some_and(|key| key.id == id) {
            return Err(format!(
                "the key {id} signs new tokens now; rotate first, and retire it once the \
                 tokens it signed have expired"
            ));
        }
        let signing_position = signing
            .and_then(|key| self.keys.iter().position(|other| other.id == key.id))
            .unwrap_or(0);
        let replaced_at = signing.and_then(|key| key.signs_from);
        let safe_from = replaced_at.map(|at| at + MAX_TOKEN_LIFETIME);
        let may_still_verify =
            position > signing_position && safe_from.is_none_or(|from| now < from);
        if may_still_verify && !force {
            return Err(match safe_from {
                Some(from) => format!(
                    "tokens the key {id} signed may be valid until {}; retire it then, or \
                     with --force once the server's --token-ttl has passed since the rotation",
                    from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
                None => format!(
                    "when the key {id} last signed is not known; retire it with --force once \
                     the server's --token-ttl has passed since the rotation"
                ),
            });
        }
        let keys: Vec<SigningKey> = self
            .keys
            .iter()
            .filter(|key| key.id != id)
            .cloned()
            .collect();
        Ok(KeyRing { keys })
    }
}

/// Refuses a secret that is short, not hex or base64, or plainly patterned (see the
/// module doc). Its bytes are used as written; decoding only measures them.
fn check_strength(secret: &str, origin: &str) -> Result<(), KeyError> {
    use base64::Engine;
    let not_random = |reason| KeyError::NotRandom {
        origin: origin.to_owned(),
        reason,
    };
    let is_hex = secret.len().is_multiple_of(2) && secret.bytes().all(|b| b.is_ascii_hexdigit());
    let decoded = if is_hex {
        Some(secret.len() / 2)
    } else {
        let engines = [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        engines
            .iter()
            .find_map(|engine| engine.decode(secret).ok())
            .map(|bytes| bytes.len())
    };
    let Some(length) = decoded else {
        if secret.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort {
                origin: origin.to_owned(),
                length: secret.len(),
            });
        }
        return Err(not_random("it is neither hex nor base64"));
    };
    if length < MIN_KEY_BYTES {
        return Err(KeyError::TooShort {
            origin: origin.to_owned(),
            length,
        });
    }
    // Random text uses its alphabet evenly; a word repeated, a run of one character or a
    // keyboard walk does not. The bound is well below what random keys reach.
    let alphabet: f64 = if is_hex { 16.0 } else { 64.0 };
    let ideal = alphabet.min(secret.len() as f64).log2();
    if shannon_bits_per_char(secret) < 0.7 * ideal {
        return Err(not_random("its characters repeat too much"));
    }
    Ok(())
}

/// The Shannon entropy of the text's character frequencies, in bits per character.
fn shannon_bits_per_char(text: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for byte in text.bytes() {
        *counts.entry(byte).or_insert(0usize) += 1;
    }
    let total = text.len() as f64;
    counts
        .values()
        .map(|&count| {
            let share = count as f64 / total;
            -share * share.log2()
        })
        .sum()
}

/// Where the signing keys come from.
pub enum KeySource<'a> {
    /// One key itself, as given.
    Inline(&'a str),
    /// A key file (see the module doc).
    File(&'a Path),
    /// `token-signing.key` in this directory, generated on first use.
    Generated(&'a Path),
}

impl KeySource<'_> {
    /// The key file to watch for rotations, if the keys come from one.
    pub fn file(&self) -> Option<PathBuf> {
        match self {
            KeySource::Inline(_) => None,
            KeySource::File(path) => Some(path.to_path_buf()),
            KeySource::Generated(dir) => Some(dir.join(GENERATED_KEY_FILE)),
        }
    }

    pub fn load(&self) -> Result<KeyRing, KeyError> {
        match self {
            KeySource::Inline(key) => {
                check_strength(key, "given")?;
                Ok(KeyRing::single(SigningKey::derived(
                    key.as_bytes().to_vec(),
                )))
            }
            KeySource::File(path) => read_ring(path),
            KeySource::Generated(dir) => {
                let path = dir.join(GENERATED_KEY_FILE);
                std::fs::create_dir_all(dir).map_err(|source| KeyError::Create {
                    path: path.clone(),
                    source,
                })?;
                generate_if_missing(&path)?;
                read_ring(&path)
            }
        }
    }
}

/// Reads the ring in the key file at `path`.
pub fn read_ring(path: &Path) -> Result<KeyRing, KeyError> {
    warn_if_readable_by_others(path);
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    KeyRing::parse(&text, &format!("in {}", path.display()))
}

/// Replaces the key file at `path` with `ring`, atomically (a new private file renamed
/// over it), so a server re-reading it never sees half of it.
pub fn write_ring(path: &Path, ring: &KeyRing) -> Result<(), KeyError> {
    let create_error = |source| KeyError::Create {
        path: path.to_owned(),
        source,
    };
    let candidate = path.with_extension(format!("tmp-{}", Uuid::now_v7().simple()));
    let written = write_private(&candidate, &ring.to_file_text())
        .and_then(|()| std::fs::rename(&candidate, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&candidate);
    }
    written.map_err(create_error)?;
    sync_directory(path).map_err(create_error)
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

/// Makes a key at `path` unless there is one. Several processes may start at once on one
/// data directory: each writes its candidate to a private temporary file and links it into
/// place, which fails if another got there first; then everyone reads the winner. Nobody
/// ever reads a half-written key. On a file system without hard links, the key is written
/// in place instead (exclusive create, so still only one wins).
fn generate_if_missing(path: &Path) -> Result<(), KeyError> {
    if path.exists() {
        return Ok(());
    }
    let create_error = |source| KeyError::Create {
        path: path.to_owned(),
        source,
    };
    let key = crate::auth::secrets::random_hex(GENERATED_KEY_BYTES);
    let candidate = path.with_extension(format!("tmp-{}", Uuid::now_v7().simple()));
    let written = write_private(&candidate, &format!("{key}\n"));
    let linked = written.and_then(|()| std::fs::hard_link(&candidate, path));
    let _ = std::fs::remove_file(&candidate);
    let placed = match linked {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => {
            write_private(path, &format!("{key}\n"))
        }
        other => other,
    };
    match placed {
        Ok(()) => sync_directory(path).map_err(create_error),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(create_error(error)),
    }
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
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "8f3a9c27d1e64b05a7c2e9f13d8b6a40c5e7f2a91b3d4c6e8f0a2b4c6d8e0f13";

    #[test]
    fn random_hex_and_base64_keys_pass() {
        check_strength(HEX, "test").unwrap();
        check_strength("q0Jm7ZxP4vR9tYcW2nLs8KdFh6GbE3aU1oIiQeXwVzM", "test").unwrap();
        for _ in 0..200 {
            check_strength(&crate::auth::secrets::random_hex(32), "test").unwrap();
        }
    }

    #[test]
    fn short_patterned_or_unencoded_keys_are_refused() {
        let refused = |secret: &str| check_strength(secret, "test").unwrap_err();
        assert!(matches!(
            refused("short"),
            KeyError::TooShort { length: 5, .. }
        ));
        assert!(matches!(
            refused(&"ab".repeat(20)),
            KeyError::TooShort { length: 20, .. }
        ));
        assert!(matches!(
            refused(&"0".repeat(64)),
            KeyError::NotRandom { .. }
        ));
        assert!(matches!(
            refused(&"abab1212".repeat(8)),
            KeyError::NotRandom { .. }
        ));
        assert!(matches!(
            refused(&"password".repeat(6)),
            KeyError::NotRandom { .. }
        ));
        let phrase = "a configured key, long enough for HS256";
        assert!(
            matches!(refused(phrase), KeyError::NotRandom { .. }),
            "{}",
            refused(phrase)
        );
    }

    #[test]
    fn a_bare_secret_is_a_ring_of_one_key_with_a_derived_id() {
        let ring = KeyRing::parse(&format!("{HEX}\n"), "test").unwrap();
        let key = ring.signing(Utc::now()).unwrap();
        assert_eq!(key.secret, HEX.as_bytes());
        assert_eq!(key.id.len(), 16);
        assert_eq!(key.id, SigningKey::derived(HEX.as_bytes().to_vec()).id);
    }

    #[test]
    fn rotation_adds_a_key_that_signs_later_and_retiring_removes_one() {
        let now = Utc::now();
        let ring = KeyRing::parse(HEX, "test").unwrap();
        let old = ring.signing(now).unwrap().id.clone();
        let rotated = ring.rotated(now + chrono::Duration::seconds(12));
        assert_eq!(rotated.keys().len(), 2);
        assert_eq!(
            rotated.signing(now).unwrap().id,
            old,
            "the old key signs until then"
        );
        let new = rotated.keys()[0].id.clone();
        assert_eq!(
            rotated
                .signing(now + chrono::Duration::seconds(13))
                .unwrap()
                .id,
            new
        );
        let reread = KeyRing::parse(&rotated.to_file_text(), "test").unwrap();
        assert_eq!(reread, rotated, "the file text reads back as the same ring");
        let later = now + chrono::Duration::seconds(13);
        assert!(
            reread.without(&new, later, true).is_err(),
            "the signing key stays, even forced"
        );
        let refused = reread.without(&old, later, false).unwrap_err();
        assert!(refused.contains("may be valid until"), "{refused}");
        let a_day_on = later + chrono::Duration::days(1) + chrono::Duration::seconds(31);
        assert_eq!(
            reread.without(&old, a_day_on, false).unwrap().keys().len(),
            1
        );
        let retired = reread.without(&old, later, true).unwrap();
        assert_eq!(retired.keys().len(), 1);
        assert!(retired.find(&old).is_none());
    }

    #[test]
    fn malformed_key_files_say_what_is_wrong() {
        for (text, expected) in [
            ("", "no key"),
            (
                &format!("k1 {HEX} 2999-01-01T00:00:00Z"),
                "no key signs yet",
            ),
            ("k1 a b c d", "KID SECRET"),
            (&format!("k1 {HEX}\nk1 {HEX}"), "twice"),
            (&format!("k/1 {HEX}"), "id must be"),
            (&format!("k1 {HEX} yesterday"), "RFC 3339"),
        ] {
            let error = KeyRing::parse(text, "test").unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn a_generated_key_is_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("jobs-key-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = KeySource::Generated(&dir).load().unwrap();
        let second = KeySource::Generated(&dir).load().unwrap();
        assert_eq!(first, second);
        assert!(first.keys()[0].secret.len() >= MIN_KEY_BYTES);
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
        let rings: Vec<KeyRing> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| KeySource::Generated(&dir).load().unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(rings.windows(2).all(|pair| pair[0] == pair[1]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
