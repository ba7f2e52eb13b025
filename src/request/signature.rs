//! The agent signing scheme: `X-Countersign-Signature: sha256=<hex>` where the hex is
//! HMAC-SHA256 with the agent's key over `v1:<timestamp>:<METHOD>:<path with query>:<body>`.
//! Verification is constant-time and accepts any of an agent's current keys (rotation).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use zeroize::Zeroizing;

pub const HEADER_AGENT: &str = "x-countersign-agent";
pub const HEADER_TIMESTAMP: &str = "x-countersign-timestamp";
pub const HEADER_SIGNATURE: &str = "x-countersign-signature";

/// Keys shorter than this are refused at start-up.
pub const MIN_KEY_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// An agent's shared signing key. Never printed: `Debug` shows only its length.
#[derive(Clone)]
pub struct AgentKey(Zeroizing<Vec<u8>>);

impl AgentKey {
    /// The key is the exact bytes of the configured secret (trailing newlines from key files are
    /// trimmed by the loader, not here).
    pub fn new(bytes: Vec<u8>) -> Result<Self, KeyTooShort> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyTooShort(bytes.len()));
        }
        Ok(Self(Zeroizing::new(bytes)))
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }
}

impl fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentKey(<{} bytes redacted>)", self.0.len())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("key is {0} bytes long; at least {MIN_KEY_BYTES} bytes are required")]
pub struct KeyTooShort(pub usize);

fn signed_message(
    mac: &mut HmacSha256,
    timestamp: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) {
    mac.update(b"v1:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(method.as_bytes());
    mac.update(b":");
    mac.update(path_and_query.as_bytes());
    mac.update(b":");
    mac.update(body);
}

/// Computes the header value `sha256=<hex>` for a call.
pub fn sign(
    key: &AgentKey,
    timestamp: i64,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    let mut mac = key.mac();
    signed_message(
        &mut mac,
        &timestamp.to_string(),
        method,
        path_and_query,
        body,
    );
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header must look like `sha256=<64 hex digits>`")]
    Malformed,
    #[error("the signature does not match any of the agent's keys")]
    Mismatch,
}

/// Checks `header` (`sha256=<hex>`) against every key, in constant time per key.
/// Returns the index of the key that matched.
pub fn verify(
    keys: &[AgentKey],
    header: &str,
    timestamp: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Result<usize, SignatureError> {
    let hex_part = header
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    if hex_part.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    let expected = hex::decode(hex_part).map_err(|_| SignatureError::Malformed)?;
    let mut matched = None;
    for (i, key) in keys.iter().enumerate() {
        let mut mac = key.mac();
        signed_message(&mut mac, timestamp, method, path_and_query, body);
        // `verify_slice` compares in constant time.
        if mac.verify_slice(&expected).is_ok() && matched.is_none() {
            matched = Some(i);
        }
    }
    matched.ok_or(SignatureError::Mismatch)
}

/// Parses the timestamp header (unix seconds, decimal digits only).
pub fn parse_timestamp(value: &str) -> Option<i64> {
    if value.is_empty() || value.len() > 12 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> AgentKey {
        AgentKey::new(vec![b; 32]).unwrap()
    }

    #[test]
    fn sign_then_verify_and_rotation() {
        let sig = sign(&key(2), 1_700_000_000, "POST", "/v1/requests", b"{}");
        assert_eq!(
            verify(
                &[key(1), key(2)],
                &sig,
                "1700000000",
                "POST",
                "/v1/requests",
                b"{}"
            ),
            Ok(1)
        );
        assert_eq!(
            verify(&[key(1)], &sig, "1700000000", "POST", "/v1/requests", b"{}"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn every_signed_part_matters() {
        let k = [key(7)];
        let sig = sign(&k[0], 10, "POST", "/v1/requests?x=1", b"body");
        assert!(verify(&k, &sig, "10", "POST", "/v1/requests?x=1", b"body").is_ok());
        assert!(verify(&k, &sig, "11", "POST", "/v1/requests?x=1", b"body").is_err());
        assert!(verify(&k, &sig, "10", "GET", "/v1/requests?x=1", b"body").is_err());
        assert!(verify(&k, &sig, "10", "POST", "/v1/requests?x=2", b"body").is_err());
        assert!(verify(&k, &sig, "10", "POST", "/v1/requests?x=1", b"bodY").is_err());
    }

    #[test]
    fn known_answer_matches_openssl() {
        // printf 'v1:1700000000:POST:/v1/requests:{}' |
        //   openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef
        let k = AgentKey::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
        let sig = sign(&k, 1_700_000_000, "POST", "/v1/requests", b"{}");
        assert_eq!(
            sig,
            "sha256=c9750b045ffe00f27ddef7b5864ed478ed0370b43e056f357a83c88ee8aa2f98"
        );
    }

    #[test]
    fn malformed_headers_and_short_keys_are_refused() {
        let k = [key(1)];
        assert_eq!(
            verify(&k, "md5=abc", "1", "GET", "/", b""),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(&k, "sha256=zz", "1", "GET", "/", b""),
            Err(SignatureError::Malformed)
        );
        assert!(AgentKey::new(vec![0; 31]).is_err());
        assert_eq!(parse_timestamp("17e8"), None);
        assert_eq!(parse_timestamp("-5"), None);
        assert_eq!(parse_timestamp("1700000000"), Some(1_700_000_000));
    }
}
