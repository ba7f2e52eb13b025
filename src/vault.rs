//! Raw request data at rest: sealed with XChaCha20-Poly1305 under a deployment key, bound to
//! the request id (associated data), so the database never holds a raw payload in plain text
//! and a sealed value cannot be moved to another request. Only the engine opens it (for
//! masking, and later for the executor after approval).

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use std::fmt;
use std::io::Write as _;
use std::path::Path;
use zeroize::Zeroizing;

const PREFIX: &str = "xc1:";

/// The sealing key. `Debug` never shows it.
pub struct Vault {
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vault(<key redacted>)")
    }
}

impl Vault {
    /// From a key given as 64 hex digits (32 bytes).
    pub fn from_hex(hex_key: &str) -> anyhow::Result<Vault> {
        let bytes = Zeroizing::new(
            hex::decode(hex_key.trim()).context("the payload key must be 64 hex digits")?,
        );
        if bytes.len() != 32 {
            bail!(
                "the payload key must be 32 bytes (64 hex digits), not {}",
                bytes.len()
            );
        }
        Ok(Vault {
            cipher: XChaCha20Poly1305::new_from_slice(&bytes).expect("32-byte key"),
        })
    }

    /// A new random key, hex-encoded, for the key file.
    pub fn new_key_hex() -> String {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(key.as_mut());
        hex::encode(key.as_ref())
    }

    /// Seals `plaintext` for the record `context` (the request id).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("encryption cannot fail for in-memory data");
        format!("{PREFIX}{}:{}", B64.encode(nonce), B64.encode(sealed))
    }

    /// Opens a value sealed for `context`; fails if it was altered or belongs elsewhere.
    pub fn open(&self, context: &str, sealed: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        let rest = sealed.strip_prefix(PREFIX).context("not a sealed value")?;
        let (nonce, body) = rest.split_once(':').context("malformed sealed value")?;
        let nonce = B64.decode(nonce).context("malformed sealed value")?;
        let body = B64.decode(body).context("malformed sealed value")?;
        if nonce.len() != 24 {
            bail!("malformed sealed value");
        }
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &body,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow::anyhow!(
                    "sealed value failed authentication (wrong key, altered, or another request's)"
                )
            })?;
        Ok(Zeroizing::new(plain))
    }

    /// Loads the key from `path`, creating it (mode 0600, directory 0700) on first use.
    pub fn load_or_create(path: &std::path::Path) -> anyhow::Result<Vault> {
        let text = Zeroizing::new(read_or_create(path, Vault::new_key_hex)?);
        Vault::from_hex(&text).with_context(|| format!("payload key {}", path.display()))
    }

    /// Whether a stored value is sealed (older rows may hold plain JSON).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }
}

/// Writes a secret to a new file readable only by its owner (directory created 0700).
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
    fn round_trip_binds_the_context_and_detects_tampering() {
        let v = Vault::from_hex(&Vault::new_key_hex()).unwrap();
        let sealed = v.seal("cr_1", b"{\"password\":\"hunter2\"}");
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            &v.open("cr_1", &sealed).unwrap()[..],
            b"{\"password\":\"hunter2\"}"
        );
        assert!(v.open("cr_2", &sealed).is_err(), "bound to its request");
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(v.open("cr_1", &tampered).is_err());
        let other = Vault::from_hex(&Vault::new_key_hex()).unwrap();
        assert!(other.open("cr_1", &sealed).is_err());
        assert_ne!(
            v.seal("cr_1", b"x"),
            v.seal("cr_1", b"x"),
            "fresh nonce every time"
        );
        assert!(Vault::from_hex("abcd").is_err());
        assert!(!format!("{v:?}").contains(&sealed[4..10]));
    }
}
