//! `countersign keys`: generating secrets (agent signing keys and reviewer tokens, written with
//! 0600 permissions) and rotating the JWT and payload keys.

use super::args::{KeysArgs, KeysKind};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;
use std::process::ExitCode;

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

/// `countersign keys …`: rotate the JWT or payload key, or make an agent key or a reviewer token.
/// `file_jwt_keys_dir` is `jwt_keys_dir` from the configuration file (replicas share it).
pub fn run(
    args: KeysArgs,
    file_data_dir: Option<PathBuf>,
    file_jwt_keys_dir: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    match args.kind {
        KeysKind::RotateJwt { data_dir } => {
            let dir = match (data_dir, file_jwt_keys_dir) {
                (Some(data_dir), _) => data_dir.join("keys").join("jwt"),
                (None, Some(shared)) => shared,
                (None, None) => file_data_dir
                    .unwrap_or_else(|| PathBuf::from(".countersign"))
                    .join("keys")
                    .join("jwt"),
            };
            let had_keys = std::fs::read_dir(&dir).is_ok_and(|mut entries| {
                entries.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "key")))
            });
            let mut ring = crate::credentials::KeyRing::load_or_create(&dir)?;
            // A directory without keys got its first one from `load_or_create`.
            let kid = if had_keys {
                ring.rotate()?
            } else {
                ring.current().kid().to_owned()
            };
            println!("{kid}");
            eprintln!(
                "wrote a new JWT signing key to {} (mode 0600); it signs from the next start of \
                 countersign, and the {} older key(s) stay published",
                dir.join(format!("{kid}.key")).display(),
                ring.keys().len() - 1
            );
        }
        KeysKind::RotatePayload { data_dir } => {
            let data_dir = data_dir
                .or(file_data_dir)
                .unwrap_or_else(|| PathBuf::from(".countersign"));
            let path = data_dir.join("keys").join("payload.key");
            let id = crate::vault::rotate_payload_key(&path)?;
            println!("{id}");
            eprintln!(
                "wrote a new payload key to {} (mode 0600); it seals from the next start of                  countersign, and earlier keys in {} keep opening what they sealed",
                path.display(),
                data_dir
                    .join("keys")
                    .join(crate::vault::PREVIOUS_KEYS_DIR)
                    .display()
            );
        }
        KeysKind::Agent { id, out } => {
            let key = new_agent_key();
            let source = match &out {
                Some(path) => {
                    write_secret(path, &key)?;
                    eprintln!("wrote a new agent key to {} (mode 0600)", path.display());
                    format!("{{ file = {:?} }}", path.display().to_string())
                }
                None => {
                    println!("{key}");
                    let var = format!(
                        "COUNTERSIGN_KEY_{}",
                        id.to_uppercase().replace(['-', '.'], "_")
                    );
                    eprintln!("store it in the environment as {var}");
                    format!("{{ env = \"{var}\" }}")
                }
            };
            eprintln!(
                "\nadd to countersign.toml:\n\n[[agents]]\nid = \"{id}\"\nowners = []\nkeys = [{source}]"
            );
        }
        KeysKind::Reviewer { name, out } => {
            let token = new_reviewer_token();
            match &out {
                Some(path) => {
                    write_secret(path, &token)?;
                    eprintln!(
                        "wrote a new reviewer token to {} (mode 0600)",
                        path.display()
                    );
                }
                None => println!("{token}"),
            }
            eprintln!(
                "\nadd to countersign.toml (only the hash is configured):\n\n[[reviewers]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"",
                token_sha256(&token)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
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
