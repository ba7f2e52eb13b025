//! The JWT signing key ring: Ed25519 keys in `<data-dir>/keys/jwt/<kid>.key` (the 32-byte seed
//! as 64 hex digits, created 0600 by `support::secrets::write_secret`). The newest key signs; every key in
//! the ring verifies and is published in the JWKS, so tokens signed before a rotation stay
//! verifiable until their key is retired.

use super::MAX_TTL;
use crate::api::{Jwk, Jwks};
use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Prefix of every key id: `cs-<ULID>`, so ids sort by creation time.
const KID_PREFIX: &str = "cs-";

/// One Ed25519 key of the ring. Its seed is zeroized on drop and never shown by `Debug`.
pub struct SigningKey {
    kid: String,
    created_ms: i64,
    public: [u8; 32],
    /// The PKCS#8 form of the seed, as `jsonwebtoken` takes it. (The crate copies it into its
    /// `EncodingKey`, which does not zeroize; that copy lives as long as the key.)
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("public", &URL_SAFE_NO_PAD.encode(self.public))
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    fn from_seed(kid: String, created_ms: i64, seed: &Zeroizing<[u8; 32]>) -> Self {
        let public = ed25519_dalek::SigningKey::from_bytes(seed)
            .verifying_key()
            .to_bytes();
        // PKCS#8 v1 (RFC 8410) of an Ed25519 private key: a fixed prefix, then the seed.
        let mut der = Zeroizing::new(Vec::with_capacity(48));
        der.extend_from_slice(&[
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ]);
        der.extend_from_slice(&seed[..]);
        Self {
            kid,
            created_ms,
            public,
            encoding: EncodingKey::from_ed_der(&der),
            decoding: DecodingKey::from_ed_der(&public),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// When the key was created (unix milliseconds, from its ULID).
    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    pub(super) fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    pub(super) fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }

    /// The public JWK (RFC 8037).
    pub fn jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: URL_SAFE_NO_PAD.encode(self.public),
            kid: self.kid.clone(),
            alg: "EdDSA".to_owned(),
            use_: "sig".to_owned(),
        }
    }
}

/// The keys of one directory, oldest first. Never empty.
#[derive(Debug)]
pub struct KeyRing {
    dir: PathBuf,
    keys: Vec<SigningKey>,
}

/// `cs-<ULID>` → the ULID, if `kid` has that form.
fn parse_kid(kid: &str) -> Option<ulid::Ulid> {
    kid.strip_prefix(KID_PREFIX)
        .and_then(|u| ulid::Ulid::from_string(u).ok())
        .filter(|u| format!("{KID_PREFIX}{u}") == kid)
}

fn read_key(path: &Path, kid: String, ulid: ulid::Ulid) -> anyhow::Result<SigningKey> {
    let text = Zeroizing::new(
        crate::support::secrets::read_secret_file(path).map_err(anyhow::Error::msg)?,
    );
    let mut seed = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(&text[..], &mut seed[..])
        .map_err(|_| anyhow::anyhow!("{} must hold 64 hex digits", path.display()))?;
    Ok(SigningKey::from_seed(
        kid,
        ulid.timestamp_ms() as i64,
        &seed,
    ))
}

impl KeyRing {
    /// Reads every `<kid>.key` of `dir`, or creates the first key there (0600, in a 0700
    /// directory) when there is none. Other files are ignored; a `.key` file whose name is not
    /// a key id is an error.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        crate::support::secrets::create_private_dir(dir)?;
        let mut keys = Vec::new();
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("key") {
                continue;
            }
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let ulid = parse_kid(stem).with_context(|| {
                format!(
                    "{}: a JWT key file must be named cs-<ULID>.key",
                    path.display()
                )
            })?;
            keys.push(read_key(&path, stem.to_owned(), ulid)?);
        }
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        let mut ring = Self {
            dir: dir.to_path_buf(),
            keys,
        };
        if ring.keys.is_empty() {
            ring.rotate()?;
        }
        Ok(ring)
    }

    /// Creates a new key, which signs from now on; older keys keep verifying. Returns its id.
    pub fn rotate(&mut self) -> anyhow::Result<String> {
        let mut ulid = ulid::Ulid::new();
        if let Some(newest) = self.keys.last().and_then(|k| parse_kid(&k.kid))
            && ulid <= newest
        {
            ulid = newest.increment().context("key id space exhausted")?;
        }
        let kid = format!("{KID_PREFIX}{ulid}");
        let seed = Zeroizing::new(rand::random::<[u8; 32]>());
        let hex_seed = Zeroizing::new(hex::encode(&seed[..]));
        crate::support::secrets::write_secret(&self.path_of(&kid), &hex_seed)?;
        self.keys.push(SigningKey::from_seed(
            kid.clone(),
            ulid.timestamp_ms() as i64,
            &seed,
        ));
        Ok(kid)
    }

    /// Retires (forgets and deletes) every key replaced by a newer one at or before `cutoff_ms`.
    /// The cutoff is capped at `now − 1 h` (the longest token lifetime), so no token that can
    /// still be valid loses its key; the newest key is never retired. Returns the retired ids.
    pub fn retire_before(&mut self, cutoff_ms: i64) -> anyhow::Result<Vec<String>> {
        let limit = crate::time::now_ms() - MAX_TTL.as_millis() as i64;
        let cutoff = cutoff_ms.min(limit);
        let mut retired = Vec::new();
        // keys[i] was replaced when keys[i + 1] was created.
        while self.keys.len() > 1 && self.keys[1].created_ms <= cutoff {
            let old = self.keys.remove(0);
            let path = self.path_of(&old.kid);
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot delete {}", path.display()))?;
            retired.push(old.kid.clone());
        }
        Ok(retired)
    }

    fn path_of(&self, kid: &str) -> PathBuf {
        self.dir.join(format!("{kid}.key"))
    }

    /// The key that signs new tokens.
    pub fn current(&self) -> &SigningKey {
        self.keys.last().expect("a key ring is never empty")
    }

    pub fn find(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// The JWK Set (RFC 7517) of every key, newest first.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self.keys.iter().rev().map(SigningKey::jwk).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_0600_reloaded_and_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let jwt = dir.path().join("keys/jwt");
        let mut ring = KeyRing::load_or_create(&jwt).unwrap();
        let first = ring.current().kid().to_owned();
        assert!(first.starts_with("cs-"), "{first}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&jwt.join(format!("{first}.key"))), 0o600);
            assert_eq!(mode(&jwt), 0o700);
        }
        let second = ring.rotate().unwrap();
        assert!(second > first, "ids sort by age");
        assert_eq!(ring.current().kid(), second);
        let again = KeyRing::load_or_create(&jwt).unwrap();
        assert_eq!(again.keys().len(), 2);
        assert_eq!(again.current().kid(), second);
        assert_eq!(
            again.find(&first).unwrap().public_key(),
            ring.find(&first).unwrap().public_key()
        );
        let jwks = again.jwks();
        assert_eq!(jwks.keys[0].kid, second);
        assert_eq!(jwks.keys[1].kid, first);
        assert_eq!(jwks.keys[0].kty, "OKP");
    }

    #[test]
    fn debug_never_shows_the_seed_and_retirement_keeps_recent_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut ring = KeyRing::load_or_create(dir.path()).unwrap();
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let seed = std::fs::read_to_string(file.path()).unwrap();
        let shown = format!("{ring:?}");
        assert!(!shown.contains(seed.trim()), "{shown}");
        ring.rotate().unwrap();
        // Replaced a moment ago: tokens may still be valid, so nothing is retired.
        assert!(ring.retire_before(i64::MAX).unwrap().is_empty());
        assert_eq!(ring.keys().len(), 2);
    }

    #[test]
    fn stray_key_files_are_refused_and_bad_content_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("other.key"), "00").unwrap();
        let e = KeyRing::load_or_create(dir.path()).unwrap_err();
        assert!(format!("{e:#}").contains("cs-<ULID>.key"), "{e:#}");
        std::fs::remove_file(dir.path().join("other.key")).unwrap();
        let kid = format!("cs-{}", ulid::Ulid::new());
        std::fs::write(dir.path().join(format!("{kid}.key")), "not hex").unwrap();
        let e = KeyRing::load_or_create(dir.path()).unwrap_err();
        assert!(format!("{e:#}").contains("64 hex digits"), "{e:#}");
    }
}
