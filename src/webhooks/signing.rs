//! Standard Webhooks signing (<https://www.standardwebhooks.com>): a secret is `whsec_`
//! followed by the base64 of its bytes, and a message's signature is
//! `v1,` + base64(HMAC-SHA256(secret, "{webhook-id}.{webhook-timestamp}.{body}")). While a
//! rotated-out secret still signs, `webhook-signature` carries both signatures, separated by
//! a space, so a receiver holding either secret accepts the message.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::digest::InvalidLength;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

const SECRET_PREFIX: &str = "whsec_";

/// A new random signing secret: 32 bytes, as `whsec_…`.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The `webhook-signature` value of a message, signed with each of `secrets` (`whsec_…`;
/// one that is not is used as it is, as some providers' secrets are).
pub fn signature_header(
    secrets: &[&str],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, InvalidLength> {
    let signatures = secrets
        .iter()
        .map(|secret| Ok(format!("v1,{}", sign(secret, id, timestamp, body)?)))
        .collect::<Result<Vec<_>, InvalidLength>>()?;
    Ok(signatures.join(" "))
}

fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, InvalidLength> {
    let key = secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|encoded| STANDARD.decode(encoded).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    // HMAC takes a key of any length; the error exists for other MACs.
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification and its reference libraries.
    #[test]
    fn signs_the_specifications_example() {
        let header = signature_header(
            &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn every_secret_signs_and_each_part_of_the_message_counts() {
        let (old, new) = (new_secret(), new_secret());
        assert!(new.starts_with("whsec_") && new != old);
        let sign = |secret: &str, id: &str, timestamp: i64, body: &[u8]| {
            signature_header(&[secret], id, timestamp, body).unwrap()
        };
        let both = signature_header(&[&new, &old], "a:1", 10, b"{}").unwrap();
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&new, "a:1", 10, b"{}"));
        assert_eq!(parts[1], sign(&old, "a:1", 10, b"{}"));
        assert_ne!(parts[0], sign(&new, "a:2", 10, b"{}"));
        assert_ne!(parts[0], sign(&new, "a:1", 11, b"{}"));
        assert_ne!(parts[0], sign(&new, "a:1", 10, b"{ }"));
    }
}
