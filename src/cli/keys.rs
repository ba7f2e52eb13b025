//! Generating secrets: agent signing keys and reviewer tokens, written with 0600 permissions.

use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

/// A new agent key: 64 hex characters (256 bits of randomness); the key is the string's bytes.
pub fn new_agent_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A new reviewer token `csr_<64 hex>`.
pub fn new_reviewer_token() -> String {
    format!("csr_{}", new_agent_key())
}

/// The value to put in `token_sha256` for a token.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub use crate::vault::{read_or_create, write_secret};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_files_private() {
        let a = new_agent_key();
        assert_eq!(a.len(), 64);
        assert_ne!(a, new_agent_key());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/agent.key");
        write_secret(&path, &a).unwrap();
        assert!(write_secret(&path, &a).is_err(), "never overwrites");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_eq!(read_or_create(&path, || unreachable!()).unwrap(), a);
    }
}
