//! The ledger's commit signatures: an Ed25519 SSH key, signatures in git's SSH format (SSHSIG,
//! namespace `git`, SHA-512, armored), and the allowed-signers file that `git verify-commit`
//! and `countersign ledger verify` check them against. ssh-key stays inside this module.

use anyhow::Context as _;
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};
use std::path::Path;

/// The SSHSIG namespace git uses for commit signatures.
pub const NAMESPACE: &str = "git";

/// The bot's signing key.
pub struct Signer {
    key: PrivateKey,
    principal: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("principal", &self.principal)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl Signer {
    /// A new random key (tests and first start).
    pub fn generate(principal: &str) -> Signer {
        let seed: [u8; 32] = rand::random();
        let pair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
        let mut key = PrivateKey::from(pair);
        key.set_comment(principal);
        Signer {
            key,
            principal: principal.to_owned(),
        }
    }

    /// Reads the OpenSSH private key at `path`, or creates one there (0600) on first start.
    pub fn load_or_create(path: &Path, principal: &str) -> anyhow::Result<Signer> {
        let text = crate::support::secrets::read_or_create(path, || {
            Signer::generate(principal).private_openssh()
        })?;
        let key = PrivateKey::from_openssh(text.trim_end().as_bytes())
            .with_context(|| format!("{} is not an OpenSSH private key", path.display()))?;
        anyhow::ensure!(
            key.algorithm() == ssh_key::Algorithm::Ed25519 && !key.is_encrypted(),
            "{} must be an unencrypted Ed25519 key",
            path.display()
        );
        Ok(Signer {
            key,
            principal: principal.to_owned(),
        })
    }

    fn private_openssh(&self) -> String {
        self.key
            .to_openssh(LineEnding::LF)
            .expect("an Ed25519 key always encodes")
            .trim_end()
            .to_owned()
    }

    /// Armored SSH signature of `payload` (the commit without its signature header).
    pub fn sign(&self, payload: &[u8]) -> anyhow::Result<String> {
        let sig = self
            .key
            .sign(NAMESPACE, HashAlg::Sha512, payload)
            .context("signing failed")?;
        sig.to_pem(LineEnding::LF).context("encoding the signature")
    }

    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        self.key
            .public_key()
            .fingerprint(HashAlg::Sha256)
            .to_string()
    }

    /// The public key in OpenSSH form (`ssh-ed25519 AAAA… comment`).
    pub fn public_openssh(&self) -> String {
        self.key
            .public_key()
            .to_openssh()
            .expect("an Ed25519 key always encodes")
    }

    /// This key's line in an allowed-signers file.
    pub fn allowed_signers_line(&self) -> String {
        let public = self.key.public_key();
        let mut bare = PublicKey::new(public.key_data().clone(), "");
        bare.set_comment("");
        format!(
            "{} namespaces=\"{NAMESPACE}\" {}",
            self.principal,
            bare.to_openssh()
                .expect("an Ed25519 key always encodes")
                .trim_end()
        )
    }
}

/// Keys trusted to sign ledger commits, from an allowed-signers file
/// (`principal [options] keytype base64 [comment]`, `#` comments).
#[derive(Debug, Clone, Default)]
pub struct AllowedSigners {
    keys: Vec<(String, PublicKey)>,
}

/// Why a commit signature is not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the signature is not an SSH signature")]
    Malformed,
    #[error("the signature is for namespace `{0}`, not `git`")]
    Namespace(String),
    #[error("signed by {0}, which is not an allowed signer")]
    UnknownKey(String),
    #[error("the signature does not match the commit")]
    Invalid,
}

impl AllowedSigners {
    pub fn parse(text: &str) -> anyhow::Result<AllowedSigners> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let principal = words.next().unwrap_or_default().to_owned();
            // Options (`namespaces="git"`, `valid-after=…`) come before the key type.
            let rest: Vec<&str> = words.collect();
            let at = rest
                .iter()
                .position(|w| w.starts_with("ssh-") || w.starts_with("ecdsa-"))
                .with_context(|| format!("allowed signers line {}: no key type", n + 1))?;
            let key_text = rest[at..].join(" ");
            let key = PublicKey::from_openssh(&key_text)
                .with_context(|| format!("allowed signers line {}: unreadable key", n + 1))?;
            keys.push((principal, key));
        }
        Ok(AllowedSigners { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks an armored signature over `payload`; returns the signer's principal.
    pub fn verify(&self, armored: &str, payload: &[u8]) -> Result<&str, SignatureError> {
        let sig = SshSig::from_pem(armored.trim()).map_err(|_| SignatureError::Malformed)?;
        if sig.namespace() != NAMESPACE {
            return Err(SignatureError::Namespace(sig.namespace().to_owned()));
        }
        let (principal, key) = self
            .keys
            .iter()
            .find(|(_, k)| k.key_data() == sig.public_key())
            .ok_or_else(|| {
                let fp = ssh_key::Fingerprint::new(HashAlg::Sha256, sig.public_key());
                SignatureError::UnknownKey(fp.to_string())
            })?;
        key.verify(NAMESPACE, payload, &sig)
            .map_err(|_| SignatureError::Invalid)?;
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_against_allowed_signers() {
        let signer = Signer::generate("countersign@localhost");
        let other = Signer::generate("mallory@localhost");
        let allowed =
            AllowedSigners::parse(&format!("# ledger\n{}\n", signer.allowed_signers_line()))
                .unwrap();
        let sig = signer.sign(b"tree 123\n\nmessage\n").unwrap();
        assert!(sig.starts_with("-----BEGIN SSH SIGNATURE-----"));
        assert_eq!(
            allowed.verify(&sig, b"tree 123\n\nmessage\n"),
            Ok("countersign@localhost")
        );
        assert_eq!(
            allowed.verify(&sig, b"tree 124\n\nmessage\n"),
            Err(SignatureError::Invalid)
        );
        let forged = other.sign(b"tree 123\n\nmessage\n").unwrap();
        assert!(matches!(
            allowed.verify(&forged, b"tree 123\n\nmessage\n"),
            Err(SignatureError::UnknownKey(_))
        ));
        assert_eq!(
            allowed.verify("garbage", b""),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/ledger_ed25519");
        let a = Signer::load_or_create(&path, "countersign@localhost").unwrap();
        let b = Signer::load_or_create(&path, "countersign@localhost").unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
