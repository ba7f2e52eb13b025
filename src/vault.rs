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
use std::path::Path;
use zeroize::Zeroizing;

/// Sealed before keys had ids: opened by trying each configured key.
const PREFIX_V1: &str = "xc1:";
/// `xc2:<key id>:<nonce>:<ciphertext>`.
const PREFIX: &str = "xc2:";
/// Where earlier payload keys go when the key is rotated (`countersign keys rotate-payload`).
pub const PREVIOUS_KEYS_DIR: &str = "payload-previous";

struct Key {
    /// The first 16 hex digits of SHA-256 over a label and the key: names the key in sealed
    /// values without revealing anything about it.
    id: String,
    cipher: XChaCha20Poly1305,
}

/// The sealing key, and earlier keys that still open what they sealed. `Debug` shows only
/// key ids.
pub struct Vault {
    current: Key,
    previous: Vec<Key>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let previous: Vec<&str> = self.previous.iter().map(|k| k.id.as_str()).collect();
        write!(f, "Vault(key {}, previous {previous:?})", self.current.id)
    }
}

fn key_from_hex(hex_key: &str) -> anyhow::Result<Key> {
    let bytes = Zeroizing::new(
        hex::decode(hex_key.trim()).context("the payload key must be 64 hex digits")?,
    );
    if bytes.len() != 32 {
        bail!(
            "the payload key must be 32 bytes (64 hex digits), not {}",
            bytes.len()
        );
    }
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    sha2::Digest::update(&mut h, b"countersign payload key id\0");
    sha2::Digest::update(&mut h, &bytes[..]);
    let id = hex::encode(&sha2::Digest::finalize(h)[..8]);
    Ok(Key {
        id,
        cipher: XChaCha20Poly1305::new_from_slice(&bytes).expect("32-byte key"),
    })
}

impl Vault {
    /// From a key given as 64 hex digits (32 bytes).
    pub fn from_hex(hex_key: &str) -> anyhow::Result<Vault> {
        Ok(Vault {
            current: key_from_hex(hex_key)?,
            previous: vec![],
        })
    }

    /// Adds earlier keys (64 hex digits each): values they sealed stay readable.
    pub fn with_previous(mut self, keys: &[String]) -> anyhow::Result<Vault> {
        for (i, k) in keys.iter().enumerate() {
            let key = key_from_hex(k).with_context(|| format!("previous payload key {}", i + 1))?;
            if key.id != self.current.id && !self.previous.iter().any(|p| p.id == key.id) {
                self.previous.push(key);
            }
        }
        Ok(self)
    }

    /// The id of the key that seals.
    pub fn key_id(&self) -> &str {
        &self.current.id
    }

    /// The ids of the previous keys, sorted.
    pub fn previous_key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.previous.iter().map(|k| k.id.clone()).collect();
        ids.sort();
        ids
    }

    /// A new random key, hex-encoded, for the key file.
    pub fn new_key_hex() -> String {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(key.as_mut());
        hex::encode(key.as_ref())
    }

    /// Seals `plaintext` for the record `context` (the request id) with the current key.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .current
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("encryption cannot fail for in-memory data");
        format!(
            "{PREFIX}{}:{}:{}",
            self.current.id,
            B64.encode(nonce),
            B64.encode(sealed)
        )
    }

    /// Opens a value sealed for `context` with the current or an earlier key; fails if it was
    /// altered, belongs elsewhere, or its key is not configured.
    pub fn open(&self, context: &str, sealed: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        let (keys, rest): (Vec<&Key>, &str) = if let Some(rest) = sealed.strip_prefix(PREFIX) {
            let (id, rest) = rest.split_once(':').context("malformed sealed value")?;
            let key = std::iter::once(&self.current)
                .chain(&self.previous)
                .find(|k| k.id == id)
                .with_context(|| {
                    format!("sealed with payload key {id}, which is not configured (a previous key is missing)")
                })?;
            (vec![key], rest)
        } else if let Some(rest) = sealed.strip_prefix(PREFIX_V1) {
            (
                std::iter::once(&self.current)
                    .chain(&self.previous)
                    .collect(),
                rest,
            )
        } else {
            bail!("not a sealed value");
        };
        let (nonce, body) = rest.split_once(':').context("malformed sealed value")?;
        let nonce = B64.decode(nonce).context("malformed sealed value")?;
        let body = B64.decode(body).context("malformed sealed value")?;
        if nonce.len() != 24 {
            bail!("malformed sealed value");
        }
        for key in keys {
            let opened = key.cipher.decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &body,
                    aad: context.as_bytes(),
                },
            );
            if let Ok(plain) = opened {
                return Ok(Zeroizing::new(plain));
            }
        }
        bail!("sealed value failed authentication (wrong key, altered, or another request's)")
    }

    /// Loads the key from `path`, creating it (mode 0600, directory 0700) on first use, with
    /// the earlier keys kept next to it in [`PREVIOUS_KEYS_DIR`].
    pub fn load_or_create(path: &std::path::Path) -> anyhow::Result<Vault> {
        let text = Zeroizing::new(read_or_create(path, Vault::new_key_hex)?);
        let vault =
            Vault::from_hex(&text).with_context(|| format!("payload key {}", path.display()))?;
        let previous = read_previous(path)?;
        vault.with_previous(&previous)
    }

    /// Whether a stored value has the form of a sealed value ([`Vault::open`] refuses any other).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX) || stored.starts_with(PREFIX_V1)
    }
}

fn previous_dir(key_path: &Path) -> std::path::PathBuf {
    key_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(PREVIOUS_KEYS_DIR)
}

fn read_previous(key_path: &Path) -> anyhow::Result<Vec<String>> {
    let dir = previous_dir(key_path);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(vec![]);
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "key") {
            let bytes =
                crate::support::secrets::read_secret_file(&path).map_err(anyhow::Error::msg)?;
            out.push(
                String::from_utf8(bytes)
                    .with_context(|| format!("{} is not UTF-8", path.display()))?,
            );
        }
    }
    Ok(out)
}

/// Rotates the payload key file: the current key moves to [`PREVIOUS_KEYS_DIR`] (so what it
/// sealed stays readable) and a new key takes its place. Returns the new key's id. Takes
/// effect at the next start.
pub fn rotate_payload_key(key_path: &Path) -> anyhow::Result<String> {
    let old = Vault::load_or_create(key_path)?;
    let old_text =
        crate::support::secrets::read_secret_file(key_path).map_err(anyhow::Error::msg)?;
    let old_text = Zeroizing::new(String::from_utf8(old_text).context("key file is not UTF-8")?);
    let kept = previous_dir(key_path).join(format!("{}.key", old.key_id()));
    if !kept.exists() {
        write_secret(&kept, &old_text)?;
    }
    let new_key = Zeroizing::new(Vault::new_key_hex());
    let tmp = key_path.with_extension("key.new");
    let _ = std::fs::remove_file(&tmp);
    write_secret(&tmp, &new_key)?;
    std::fs::rename(&tmp, key_path)
        .with_context(|| format!("cannot replace {}", key_path.display()))?;
    Ok(Vault::from_hex(&new_key)?.key_id().to_owned())
}

pub use crate::support::secrets::{read_or_create, write_secret};

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
        assert!(!format!("{v:?}").contains(&sealed[25..35]));
    }

    #[test]
    fn rotation_keeps_what_earlier_keys_sealed_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/payload.key");
        let first = Vault::load_or_create(&path).unwrap();
        let old = first.seal("cr_1", b"old payload");
        let new_id = rotate_payload_key(&path).unwrap();
        let second = Vault::load_or_create(&path).unwrap();
        assert_eq!(second.key_id(), new_id);
        assert_ne!(second.key_id(), first.key_id());
        assert_eq!(&second.open("cr_1", &old).unwrap()[..], b"old payload");
        let new = second.seal("cr_2", b"new payload");
        assert!(new.starts_with(&format!("xc2:{new_id}:")));
        assert!(
            first
                .open("cr_2", &new)
                .unwrap_err()
                .to_string()
                .contains("not configured")
        );
        // Without the previous key, what it sealed is refused with a clear error.
        std::fs::remove_dir_all(dir.path().join("keys").join(PREVIOUS_KEYS_DIR)).unwrap();
        let third = Vault::load_or_create(&path).unwrap();
        let e = third.open("cr_1", &old).unwrap_err().to_string();
        assert!(e.contains("is not configured"), "{e}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn values_sealed_before_key_ids_still_open() {
        let v = Vault::from_hex(&Vault::new_key_hex()).unwrap();
        let sealed = v.seal("cr_1", b"x");
        // The older format: the same fields without the key id.
        let (_, rest) = sealed
            .strip_prefix(PREFIX)
            .unwrap()
            .split_once(':')
            .unwrap();
        let v1 = format!("{PREFIX_V1}{rest}");
        assert!(Vault::is_sealed(&v1));
        assert_eq!(&v.open("cr_1", &v1).unwrap()[..], b"x");
    }
}
