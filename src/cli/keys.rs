//! Generating secrets: agent signing keys and reviewer tokens, written with 0600 permissions.

use anyhow::Context as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use std::io::Write as _;
use std::path::Path;

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

/// Writes a secret to a new file readable only by its owner.
pub fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::store::create_private_dir(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(())
}

/// Reads a secret file if it exists, or creates it with `make()`.
pub fn read_or_create(path: &Path, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    if path.exists() {
        let bytes = crate::config::read_secret_file(path).map_err(anyhow::Error::msg)?;
        return String::from_utf8(bytes)
            .with_context(|| format!("{} is not UTF-8", path.display()));
    }
    let secret = make();
    write_secret(path, &secret)?;
    Ok(secret)
}

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
