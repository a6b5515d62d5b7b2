//! Client secrets: generated strong and random, stored only as argon2id hashes, and checked
//! with the same work whether the client exists or not, so a caller cannot tell an unknown
//! client from a wrong secret by the answer's timing.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Random bytes in a generated secret (shown as 64 hexadecimal characters).
const SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
    #[error("the hashing task stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("the hashing queue is closed")]
    Closed,
    /// Every hashing slot stayed taken for [`QUEUE_PATIENCE`]: the caller should retry.
    #[error("too many secrets are being checked at once")]
    Busy,
}

/// How long a request waits for a hashing slot before it is told to come back later. A
/// flood of token requests then costs the flood its own answers, not everyone else's.
const QUEUE_PATIENCE: Duration = Duration::from_secs(2);

/// Hashes and verifies secrets off the async runtime, a bounded number at a time. Each
/// argon2id run takes about 19 MiB and tens of milliseconds of one core: without the bound,
/// a burst of token requests (anyone may send them) would occupy every blocking thread, a
/// great deal of memory and every core. Half the cores at most hash, so `/v1` traffic keeps
/// the rest.
pub struct SecretHasher {
    permits: Arc<Semaphore>,
    /// How long to wait for a slot: [`QUEUE_PATIENCE`].
    patience: Duration,
    /// The hash an unknown client's secret is checked against, made with the same parameters
    /// as real ones so the work is the same.
    decoy_hash: String,
}

impl SecretHasher {
    /// Prepares the hasher; makes one hash (the decoy), so call it once at start-up.
    pub fn new() -> Result<Self, HashError> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self {
            permits: Arc::new(Semaphore::new((cores / 2).max(1))),
            patience: QUEUE_PATIENCE,
            decoy_hash: hash_now(&generate_secret())?,
        })
    }

    pub async fn hash(&self, secret: String) -> Result<String, HashError> {
        self.run(move || hash_now(&secret)).await?
    }

    /// Whether `secret` matches `hash`. With no hash (no such client) the secret is checked
    /// against the decoy and the answer is `false`, after the same work.
    pub async fn verify(&self, secret: String, hash: Option<String>) -> Result<bool, HashError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.decoy_hash.clone());
        let matches = self.run(move || verify_now(&secret, &hash)).await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = tokio::time::timeout(self.patience, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| HashError::Busy)?
            .map_err(|_| HashError::Closed)?;
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await?;
        Ok(result)
    }
}

/// A new client secret: 256 random bits from the operating system, as hexadecimal.
pub fn generate_secret() -> String {
    random_hex(SECRET_BYTES)
}

/// `bytes` random bytes from the operating system, as hexadecimal text.
pub fn random_hex(bytes: usize) -> String {
    use argon2::password_hash::rand_core::RngCore;
    let mut random = vec![0u8; bytes];
    OsRng.fill_bytes(&mut random);
    random.iter().map(|b| format!("{b:02x}")).collect()
}

/// argon2id with the crate's defaults (OWASP's recommendation: 19 MiB, 2 passes, 1 lane)
/// and a random salt, as a PHC string.
fn hash_now(secret: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(HashError::Hash)
}

/// Verification reads the parameters from the stored hash itself. A hash that does not parse
/// matches nothing.
fn verify_now(secret: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &parsed)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_secret_matches_its_own_hash_only() {
        let hasher = SecretHasher::new().unwrap();
        let secret = generate_secret();
        let hash = hasher.hash(secret.clone()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains(&secret));
        assert!(hasher
            .verify(secret.clone(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!hasher.verify(generate_secret(), Some(hash)).await.unwrap());
    }

    #[tokio::test]
    async fn an_unknown_client_never_matches_not_even_the_decoys_own_secret() {
        let hasher = SecretHasher::new().unwrap();
        assert!(!hasher.verify(String::new(), None).await.unwrap());
        assert!(!hasher.verify(generate_secret(), None).await.unwrap());
    }

    /// The decoy costs what a real check costs only while both use the same parameters.
    #[test]
    fn the_decoy_uses_the_parameters_of_real_hashes() {
        let hasher = SecretHasher::new().unwrap();
        let real = hash_now("some secret").unwrap();
        let params = |hash: &str| {
            let parsed = PasswordHash::new(hash).unwrap();
            (
                parsed.algorithm.to_string(),
                parsed.version,
                parsed.params.to_string(),
            )
        };
        assert_eq!(params(&hasher.decoy_hash), params(&real));
    }

    #[tokio::test]
    async fn a_request_that_waits_too_long_for_a_slot_is_told_to_come_back() {
        let mut hasher = SecretHasher::new().unwrap();
        hasher.patience = Duration::from_millis(20);
        let taken: Vec<_> = (0..hasher.permits.available_permits())
            .map(|_| hasher.permits.clone().try_acquire_owned().unwrap())
            .collect();
        let error = hasher.verify("secret".into(), None).await.unwrap_err();
        assert!(matches!(error, HashError::Busy), "{error}");
        drop(taken);
        assert!(!hasher.verify("secret".into(), None).await.unwrap());
    }

    #[test]
    fn secrets_are_long_random_and_distinct() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_eq!(a.len(), 2 * SECRET_BYTES);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn a_malformed_stored_hash_matches_nothing() {
        assert!(!verify_now("secret", "not a PHC string"));
    }
}
