//! Secrets and settings shared by every layer: where a secret comes from (`KeySource`), reading
//! it, the error naming a bad setting (`ConfigError`), and private directories for key files.

use anyhow::Context as _;
use serde::Deserialize;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Where a secret comes from: exactly one of `env` or `file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySource {
    pub env: Option<String>,
    pub file: Option<PathBuf>,
}

/// An invalid setting, naming the field.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: `{field}`: {problem}")]
pub struct ConfigError {
    pub field: String,
    pub problem: String,
}

pub(crate) fn bad(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Reads a secret from the environment or a file; trailing newlines of files are dropped.
pub fn read_secret(src: &KeySource, field: &str) -> Result<Vec<u8>, ConfigError> {
    match (&src.env, &src.file) {
        (Some(var), None) => std::env::var(var)
            .map(String::into_bytes)
            .map_err(|_| bad(field, format!("environment variable {var} is not set"))),
        (None, Some(path)) => read_secret_file(path).map_err(|e| bad(field, e)),
        _ => Err(bad(field, "give exactly one of `env` or `file`")),
    }
}

/// Reads a key or token file, trimming trailing whitespace.
pub fn read_secret_file(path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes =
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
        bytes.pop();
    }
    Ok(bytes)
}

/// Creates a directory (and missing parents) readable only by its owner: the data directory
/// holds the database with raw payloads and, in the embedded default, key files. Existing
/// directories keep their permissions.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))
}

/// Writes a secret to a new file readable only by its owner (directory created 0700).
pub fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
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
        let bytes = read_secret_file(path).map_err(anyhow::Error::msg)?;
        return String::from_utf8(bytes)
            .with_context(|| format!("{} is not UTF-8", path.display()));
    }
    let secret = make();
    write_secret(path, &secret)?;
    Ok(secret)
}
