//! The one typed configuration. Values come from CLI flags, then `COUNTERSIGN_*` environment
//! variables (clap reads both), then `countersign.toml`, then defaults. Everything is validated
//! here, at start-up, with errors that name the offending field; nothing else reads the
//! environment or configuration files.
//!
//! This module aggregates: `countersign.toml`'s top-level fields and `[ledger]` are resolved
//! here, `[[agents]]`/`[[reviewers]]`/`[[token_clients]]` in `identities.rs`, `[masking]` in
//! `masking.rs`, and every other section by the module that owns it (`notify::NotifyFile`,
//! `execute::ExecutionFile`, `forge::github::GitHubFile`).

use anyhow::Context as _;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod identities;
mod masking;

pub use identities::{AgentEntry, ReviewerEntry, TokenClientEntry};
use identities::{load_agents, load_reviewers, load_token_clients};
pub use masking::{Masking, MaskingFile, check_mask_detector, load_masking};

/// Name of the configuration file read from the working directory when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "countersign.toml";

/// `countersign.toml`, exactly as written. Unknown fields are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub repo: Option<PathBuf>,
    pub base_branch: Option<String>,
    pub public_url: Option<String>,
    pub max_body_bytes: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    pub timestamp_skew: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub request_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub sweep_interval: Option<Duration>,
    pub sqlite_synchronous: Option<String>,
    /// PostgreSQL instead of SQLite (`postgres://…`).
    pub database_url: Option<String>,
    /// This replica's name [default: host name and process id].
    pub replica_name: Option<String>,
    /// PostgreSQL: how long leadership and claims outlive a replica that stopped answering
    /// [default: 30s].
    #[serde(default, with = "humantime_serde")]
    pub lease_ttl: Option<Duration>,
    /// The directory of the JWT signing keys [default: <data_dir>/keys/jwt]. Replicas sharing
    /// a database must share it (each must verify the others' tokens).
    pub jwt_keys_dir: Option<PathBuf>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    #[serde(default)]
    pub agents: Vec<AgentEntry>,
    #[serde(default)]
    pub reviewers: Vec<ReviewerEntry>,
    /// Services allowed to call `POST /v1/tokens/introspect`.
    #[serde(default)]
    pub token_clients: Vec<TokenClientEntry>,
    #[serde(default)]
    pub client: ClientFile,
    /// Key sealing raw payloads at rest (64 hex digits). Default: `<data_dir>/keys/payload.key`,
    /// created on first run.
    pub payload_key: Option<KeySource>,
    /// Earlier payload keys: what they sealed stays readable after a rotation.
    #[serde(default)]
    pub previous_payload_keys: Vec<KeySource>,
    #[serde(default)]
    pub masking: MaskingFile,
    #[serde(default)]
    pub ledger: LedgerFile,
    #[serde(default)]
    pub notify: crate::notify::NotifyFile,
    #[serde(default)]
    pub execution: crate::execute::ExecutionFile,
    /// With this section, reviews are GitHub pull requests; without it, the local forge.
    pub github: Option<crate::forge::github::GitHubFile>,
}

/// `[ledger]`: where the audit ledger goes and which key signs it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerFile {
    /// The ledger branch of the GitOps repository [default: countersign/ledger].
    pub branch: Option<String>,
    /// The OpenSSH Ed25519 key signing ledger commits [default: <data_dir>/keys/ledger_ed25519,
    /// created on first run].
    pub key_file: Option<PathBuf>,
    /// The committer e-mail and allowed-signers principal [default: countersign@localhost].
    pub signer: Option<String>,
}

/// `[client]`: defaults for `submit`, `status` and `review`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    pub server: Option<String>,
    pub agent: Option<String>,
    pub key_file: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
}

/// Reads the configuration file: the explicit path (which must exist) or `countersign.toml` in
/// the working directory if there is one.
pub use crate::store::Synchronous;
pub(crate) use crate::support::secrets::bad;
pub use crate::support::secrets::{ConfigError, KeySource, read_secret, read_secret_file};
pub use crate::telemetry::LogFormat;

pub fn load_file(explicit: Option<&Path>) -> anyhow::Result<(FileConfig, Option<PathBuf>)> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None if Path::new(DEFAULT_CONFIG_FILE).is_file() => PathBuf::from(DEFAULT_CONFIG_FILE),
        None => return Ok((FileConfig::default(), None)),
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read configuration file {}", path.display()))?;
    let file: FileConfig = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("invalid configuration in {}: {e}", path.display()))?;
    Ok((file, Some(path)))
}

pub use crate::request::identity::{Agent, Reviewer, TokenClient};

/// Settings given on the command line or in the environment for `serve` (and `demo`).
#[derive(Debug, Default, Clone)]
pub struct ServeOverrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub repo: Option<PathBuf>,
    pub base_branch: Option<String>,
    pub public_url: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub timestamp_skew: Option<Duration>,
    pub request_ttl: Option<Duration>,
    pub sweep_interval: Option<Duration>,
    pub sqlite_synchronous: Option<String>,
    pub ledger_branch: Option<String>,
    pub database_url: Option<String>,
    pub replica_name: Option<String>,
    pub lease_ttl: Option<Duration>,
}

/// The validated server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// An existing repository to use as the GitOps repository; `None` means
    /// `<data_dir>/repo`, created on first run.
    pub repo: Option<PathBuf>,
    pub base_branch: String,
    /// Base URL used in links; defaults to `http://<listen>`.
    pub public_url: Option<String>,
    pub max_body_bytes: usize,
    pub timestamp_skew: Duration,
    pub request_ttl: Duration,
    pub sweep_interval: Duration,
    pub synchronous: Synchronous,
    /// PostgreSQL (`postgres://…`); `None` = SQLite in the data directory.
    pub database_url: Option<DatabaseUrl>,
    /// This replica's name; `None` = host name and process id.
    pub replica_name: Option<String>,
    /// How long the leader lease and queue claims last without renewal (PostgreSQL).
    pub lease_ttl: Duration,
    /// `None` = `<data_dir>/keys/jwt`.
    pub jwt_keys_dir: Option<PathBuf>,
    pub agents: Vec<Agent>,
    pub reviewers: Vec<Reviewer>,
    /// Services that may introspect tokens (none by default: introspection answers 401).
    pub token_clients: Vec<TokenClient>,
    /// Payload sealing key (hex); `None` = the key file in the data directory.
    pub payload_key: Option<String>,
    /// Earlier payload keys (hex), still opening what they sealed.
    pub previous_payload_keys: Vec<String>,
    /// Secret key names for masking; `None` = built-in list.
    pub mask_hints: Option<Vec<String>>,
    /// `[masking] phone_regions` and `name_keys` (`None` = built-in).
    pub mask_phone_regions: Option<Vec<String>>,
    pub mask_name_keys: Option<Vec<String>>,
    pub pseudonym_key: Option<Vec<u8>>,
    pub ledger_branch: String,
    /// `None` = `<data_dir>/keys/ledger_ed25519`.
    pub ledger_key_file: Option<PathBuf>,
    pub ledger_signer: String,
    /// Slack and Teams destinations (none by default).
    pub notify: crate::notify::NotifyConfig,
    /// How approved requests are run (`[execution]`).
    pub execution: crate::execute::ExecutionConfig,
    /// The GitHub forge; `None` = the local git repository.
    pub github: Option<crate::forge::github::GitHubConfig>,
}

impl ServerConfig {
    /// Defaults for the embedded mode, with no agents or reviewers.
    pub fn embedded(data_dir: PathBuf) -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("static address"),
            data_dir,
            repo: None,
            base_branch: "main".into(),
            public_url: None,
            max_body_bytes: 1024 * 1024,
            timestamp_skew: Duration::from_secs(300),
            request_ttl: Duration::from_secs(24 * 3600),
            sweep_interval: Duration::from_secs(5),
            synchronous: Synchronous::Normal,
            database_url: None,
            replica_name: None,
            lease_ttl: Duration::from_secs(30),
            jwt_keys_dir: None,
            agents: vec![],
            reviewers: vec![],
            token_clients: vec![],
            payload_key: None,
            previous_payload_keys: vec![],
            mask_hints: None,
            mask_phone_regions: None,
            mask_name_keys: None,
            pseudonym_key: None,
            ledger_branch: crate::ledger::DEFAULT_BRANCH.into(),
            ledger_key_file: None,
            ledger_signer: "countersign@localhost".into(),
            notify: crate::notify::NotifyConfig::default(),
            execution: crate::execute::ExecutionConfig::default(),
            github: None,
        }
    }

    /// Merges flags/env over the file over defaults and validates everything.
    pub fn resolve(file: FileConfig, over: ServeOverrides) -> Result<Self, ConfigError> {
        let mut c = Self::embedded(
            over.data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(".countersign")),
        );
        if let Some(listen) = over.listen.or(file.listen) {
            c.listen = listen
                .parse()
                .map_err(|_| bad("listen", "must be an address like 127.0.0.1:8080"))?;
        }
        c.repo = over.repo.or(file.repo);
        if let Some(b) = over.base_branch.or(file.base_branch) {
            c.base_branch = b;
        }
        if !valid_branch(&c.base_branch) {
            return Err(bad("base_branch", "must be a valid branch name"));
        }
        if let Some(b) = over.ledger_branch.or(file.ledger.branch) {
            c.ledger_branch = b;
        }
        if !valid_branch(&c.ledger_branch) {
            return Err(bad("ledger.branch", "must be a valid branch name"));
        }
        if c.ledger_branch == c.base_branch {
            return Err(bad("ledger.branch", "must differ from the base branch"));
        }
        c.ledger_key_file = file.ledger.key_file;
        if let Some(signer) = file.ledger.signer {
            if signer.is_empty() || signer.contains(char::is_whitespace) {
                return Err(bad(
                    "ledger.signer",
                    "must be one word, such as an e-mail address",
                ));
            }
            c.ledger_signer = signer;
        }
        if let Some(url) = over.public_url.or(file.public_url) {
            let parsed =
                reqwest::Url::parse(&url).map_err(|_| bad("public_url", "must be a URL"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(bad("public_url", "must be an http(s) URL"));
            }
            c.public_url = Some(url.trim_end_matches('/').to_owned());
        }
        if let Some(n) = over.max_body_bytes.or(file.max_body_bytes) {
            if !(1024..=64 * 1024 * 1024).contains(&n) {
                return Err(bad("max_body_bytes", "must be between 1024 and 67108864"));
            }
            c.max_body_bytes = n;
        }
        if let Some(d) = over.timestamp_skew.or(file.timestamp_skew) {
            if d.is_zero() || d > Duration::from_secs(3600) {
                return Err(bad("timestamp_skew", "must be between 1s and 1h"));
            }
            c.timestamp_skew = d;
        }
        if let Some(d) = over.request_ttl.or(file.request_ttl) {
            if d.is_zero() {
                return Err(bad("request_ttl", "must be positive"));
            }
            c.request_ttl = d;
        }
        if let Some(d) = over.sweep_interval.or(file.sweep_interval) {
            if d < Duration::from_millis(10) {
                return Err(bad("sweep_interval", "must be at least 10ms"));
            }
            c.sweep_interval = d;
        }
        if let Some(s) = over.sqlite_synchronous.or(file.sqlite_synchronous) {
            c.synchronous = match s.as_str() {
                "normal" => Synchronous::Normal,
                "full" => Synchronous::Full,
                _ => return Err(bad("sqlite_synchronous", "must be \"normal\" or \"full\"")),
            };
        }
        if let Some(url) = over.database_url.or(file.database_url) {
            c.database_url = Some(DatabaseUrl::parse(url)?);
        }
        if let Some(name) = over.replica_name.or(file.replica_name) {
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
            {
                return Err(bad(
                    "replica_name",
                    "must be 1-64 letters, digits, '.', '_' or '-'",
                ));
            }
            c.replica_name = Some(name);
        }
        if let Some(d) = over.lease_ttl.or(file.lease_ttl) {
            if d < Duration::from_secs(1) || d > Duration::from_secs(600) {
                return Err(bad("lease_ttl", "must be between 1s and 10m"));
            }
            c.lease_ttl = d;
        }
        c.jwt_keys_dir = file.jwt_keys_dir.clone();
        if let Some(src) = &file.payload_key {
            let key = read_secret(src, "payload_key")?;
            let hex_key =
                String::from_utf8(key).map_err(|_| bad("payload_key", "must be 64 hex digits"))?;
            crate::vault::Vault::from_hex(&hex_key)
                .map_err(|e| bad("payload_key", e.to_string()))?;
            c.payload_key = Some(hex_key);
        }
        for (i, src) in file.previous_payload_keys.iter().enumerate() {
            let field = format!("previous_payload_keys[{i}]");
            let key = read_secret(src, &field)?;
            let hex_key =
                String::from_utf8(key).map_err(|_| bad(field.clone(), "must be 64 hex digits"))?;
            crate::vault::Vault::from_hex(&hex_key)
                .map_err(|e| bad(field.clone(), e.to_string()))?;
            c.previous_payload_keys.push(hex_key);
        }
        (c.mask_hints, c.pseudonym_key) = load_masking(&file.masking)?;
        check_mask_detector(&file.masking)?;
        c.mask_phone_regions = file.masking.phone_regions.clone();
        c.mask_name_keys = file.masking.name_keys.clone();
        c.notify = file.notify.resolve()?;
        c.execution = file.execution.resolve()?;
        c.github = file
            .github
            .as_ref()
            .map(|g| g.resolve(&c.base_branch))
            .transpose()?;
        c.agents = load_agents(&file.agents)?;
        c.reviewers = load_reviewers(&file.reviewers)?;
        c.token_clients = load_token_clients(&file.token_clients)?;
        for (i, r) in c.reviewers.iter().enumerate() {
            if c.agents.iter().any(|a| a.id.as_str() == r.name) {
                return Err(bad(
                    format!("reviewers[{i}].name"),
                    "is also an agent id; agents can never review",
                ));
            }
        }
        Ok(c)
    }

    /// The GitOps repository path (given, or the embedded one in the data directory).
    pub fn repo_path(&self) -> PathBuf {
        self.repo
            .clone()
            .unwrap_or_else(|| self.data_dir.join("repo.git"))
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("countersign.db")
    }

    /// The directory of the JWT signing keys (`jwt_keys_dir`, or `<data_dir>/keys/jwt`).
    pub fn jwt_keys_dir(&self) -> PathBuf {
        self.jwt_keys_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys").join("jwt"))
    }

    /// The key signing ledger commits.
    pub fn ledger_key_path(&self) -> PathBuf {
        self.ledger_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys").join("ledger_ed25519"))
    }
}

/// A `postgres://` URL. It may hold a password, so it is never printed: `Debug` shows only
/// that it is set.
#[derive(Clone)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn parse(url: String) -> Result<Self, ConfigError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(bad(
                "database_url",
                "must be a postgres:// URL (leave it unset for SQLite in the data directory)",
            ));
        }
        Ok(Self(url))
    }

    /// The URL, to connect with (never to print).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(<redacted>)")
    }
}

fn valid_branch(name: &str) -> bool {
    crate::ledger::git::is_valid_branch(name)
}

impl From<&ServerConfig> for crate::engine::Settings {
    fn from(c: &ServerConfig) -> Self {
        Self {
            agents: c.agents.clone(),
            reviewers: c.reviewers.clone(),
            request_ttl: c.request_ttl,
            timestamp_skew: c.timestamp_skew,
            sweep_interval: c.sweep_interval,
            execution: c.execution.clone(),
            clock: std::sync::Arc::new(crate::support::clock::SystemClock),
        }
    }
}

#[cfg(test)]
mod tests;
