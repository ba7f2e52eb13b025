//! `[github]` in `countersign.toml`: the GitHub App (id, private key, installation), the GitOps
//! repository and its base branch, webhook secrets (several, for rotation), where the API and
//! git live (GitHub Enterprise Server, the tests' fake) and how patient to be. Secrets come from
//! env or files only; `Debug` never shows them.

use super::auth::AppKey;
use crate::support::secrets::{ConfigError, KeySource, bad, read_secret};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

pub const DEFAULT_API_URL: &str = "https://api.github.com";
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(300);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `[github]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitHubFile {
    pub app_id: Option<u64>,
    /// The app's private key (PEM, as GitHub generated it).
    pub private_key: Option<KeySource>,
    /// Found with `GET /repos/{owner}/{repo}/installation` when not given.
    pub installation_id: Option<u64>,
    /// Every secret is tried; several allow rotating without dropping deliveries.
    #[serde(default)]
    pub webhook_secrets: Vec<KeySource>,
    /// The GitOps repository, `owner/name`.
    pub repository: Option<String>,
    /// [default: the top-level `base_branch`, else main]
    pub base_branch: Option<String>,
    /// [default: https://api.github.com]; `https://<host>/api/v3` for GitHub Enterprise Server.
    pub api_url: Option<String>,
    /// Where git pushes and fetches [default: derived from `api_url`:
    /// `https://github.com/<owner>/<name>.git`, or the GHES host].
    pub git_url: Option<String>,
    /// How often open pull requests are re-read to catch missed webhooks [default: 5m].
    #[serde(default, with = "humantime_serde")]
    pub reconcile_interval: Option<Duration>,
    /// Bound on every API call [default: 30s].
    #[serde(default, with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
    /// Where the local clone is kept [default: <data_dir>/github/<owner>/<name>.git].
    pub clone_dir: Option<PathBuf>,
}

/// A webhook secret (zeroized; `Debug` shows nothing).
#[derive(Clone)]
pub struct WebhookSecret(Arc<Zeroizing<Vec<u8>>>);

impl WebhookSecret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Arc::new(Zeroizing::new(bytes)))
    }
}

impl AsRef<[u8]> for WebhookSecret {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// The validated `[github]` section.
#[derive(Debug, Clone)]
pub struct GitHubConfig {
    pub app_id: u64,
    /// The parsed private key (redacted in `Debug`).
    pub app_key: Arc<AppKey>,
    pub installation_id: Option<u64>,
    pub webhook_secrets: Vec<WebhookSecret>,
    pub owner: String,
    pub repo: String,
    pub base_branch: String,
    /// Without a trailing slash.
    pub api_url: String,
    pub git_url: String,
    pub reconcile_interval: Duration,
    pub request_timeout: Duration,
    pub clone_dir: Option<PathBuf>,
}

impl GitHubConfig {
    /// `owner/name`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }
}

impl GitHubFile {
    /// Validates the section; `default_base_branch` is the top-level `base_branch`.
    pub fn resolve(&self, default_base_branch: &str) -> Result<GitHubConfig, ConfigError> {
        let app_id = self
            .app_id
            .filter(|id| *id > 0)
            .ok_or_else(|| bad("github.app_id", "is required (the GitHub App's numeric id)"))?;
        let key_source = self.private_key.as_ref().ok_or_else(|| {
            bad(
                "github.private_key",
                "is required: { file = \"app.pem\" } or { env = \"VAR\" }",
            )
        })?;
        let pem = Zeroizing::new(read_secret(key_source, "github.private_key")?);
        let app_key = AppKey::from_pem(app_id, &pem).map_err(|e| bad("github.private_key", e))?;
        if self.installation_id == Some(0) {
            return Err(bad("github.installation_id", "must be a positive number"));
        }
        if self.webhook_secrets.is_empty() {
            return Err(bad(
                "github.webhook_secrets",
                "at least one secret is required (webhooks are always verified)",
            ));
        }
        let mut webhook_secrets = Vec::new();
        for (i, src) in self.webhook_secrets.iter().enumerate() {
            let field = format!("github.webhook_secrets[{i}]");
            let secret = read_secret(src, &field)?;
            if secret.is_empty() {
                return Err(bad(field, "must not be empty"));
            }
            webhook_secrets.push(WebhookSecret::new(secret));
        }
        let repository = self
            .repository
            .as_deref()
            .ok_or_else(|| bad("github.repository", "is required (`owner/name`)"))?;
        let (owner, repo) = parse_repository(repository)
            .ok_or_else(|| bad("github.repository", "must be `owner/name`"))?;
        let base_branch = self
            .base_branch
            .clone()
            .unwrap_or_else(|| default_base_branch.to_owned());
        if !crate::ledger::git::is_valid_branch(&base_branch) {
            return Err(bad("github.base_branch", "must be a valid branch name"));
        }
        let api_url = self
            .api_url
            .as_deref()
            .unwrap_or(DEFAULT_API_URL)
            .trim_end_matches('/')
            .to_owned();
        let parsed = reqwest::Url::parse(&api_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| bad("github.api_url", "must be an http(s) URL"))?;
        if parsed.query().is_some() || !parsed.username().is_empty() || parsed.password().is_some()
        {
            return Err(bad(
                "github.api_url",
                "must not carry credentials or a query",
            ));
        }
        let git_url = match &self.git_url {
            Some(url) => {
                check_git_url(url)?;
                url.trim_end_matches('/').to_owned()
            }
            None => derive_git_url(&parsed, &owner, &repo),
        };
        let reconcile_interval = self
            .reconcile_interval
            .unwrap_or(DEFAULT_RECONCILE_INTERVAL);
        if reconcile_interval < Duration::from_secs(1) {
            return Err(bad("github.reconcile_interval", "must be at least 1s"));
        }
        let request_timeout = self.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        if request_timeout < Duration::from_millis(100)
            || request_timeout > Duration::from_secs(600)
        {
            return Err(bad(
                "github.request_timeout",
                "must be between 100ms and 10m",
            ));
        }
        Ok(GitHubConfig {
            app_id,
            app_key: Arc::new(app_key),
            installation_id: self.installation_id,
            webhook_secrets,
            owner,
            repo,
            base_branch,
            api_url,
            git_url,
            reconcile_interval,
            request_timeout,
            clone_dir: self.clone_dir.clone(),
        })
    }
}

pub use crate::support::github::parse_repository;

fn check_git_url(url: &str) -> Result<(), ConfigError> {
    if let Some(path) = url.strip_prefix("file://") {
        return if path.starts_with('/') {
            Ok(())
        } else {
            Err(bad(
                "github.git_url",
                "a file:// URL needs an absolute path",
            ))
        };
    }
    let parsed = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| bad("github.git_url", "must be an http(s) or file:// URL"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "github.git_url",
            "must not carry credentials (the installation token is used)",
        ));
    }
    Ok(())
}

/// `https://github.com/<owner>/<name>.git` for api.github.com; for GitHub Enterprise Server
/// (`https://<host>/api/v3`) the same host without `/api/v3`.
fn derive_git_url(api: &reqwest::Url, owner: &str, repo: &str) -> String {
    if api.host_str() == Some("api.github.com") {
        return format!("https://github.com/{owner}/{repo}.git");
    }
    let mut base = api.clone();
    let path = base.path().trim_end_matches('/');
    let path = path.strip_suffix("/api/v3").unwrap_or(path).to_owned();
    base.set_path(&path);
    format!("{}/{owner}/{repo}.git", base.as_str().trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/github/test-app-key.pem"
    );

    fn resolve(extra: &str) -> Result<GitHubConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let text = format!(
            "app_id = 42\nprivate_key = {{ file = {KEY:?} }}\nrepository = \"acme/gitops\"\nwebhook_secrets = [{{ file = {secret:?} }}]\n{extra}"
        );
        let file: GitHubFile = toml::from_str(&text).map_err(|e| e.to_string())?;
        file.resolve("main").map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let c = resolve("").unwrap();
        assert_eq!(c.api_url, "https://api.github.com");
        assert_eq!(c.git_url, "https://github.com/acme/gitops.git");
        assert_eq!(c.base_branch, "main");
        assert_eq!(c.reconcile_interval, Duration::from_secs(300));
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.installation_id, None);
        assert_eq!(c.repository(), "acme/gitops");
    }

    #[test]
    fn enterprise_server_and_fake_urls_derive_the_git_url() {
        let c = resolve("api_url = \"https://ghe.example.com/api/v3/\"").unwrap();
        assert_eq!(c.api_url, "https://ghe.example.com/api/v3");
        assert_eq!(c.git_url, "https://ghe.example.com/acme/gitops.git");
        let c = resolve("api_url = \"http://127.0.0.1:9000\"").unwrap();
        assert_eq!(c.git_url, "http://127.0.0.1:9000/acme/gitops.git");
        let c = resolve("git_url = \"file:///srv/gitops.git\"").unwrap();
        assert_eq!(c.git_url, "file:///srv/gitops.git");
    }

    fn resolve_text(text: &str) -> String {
        let file: GitHubFile = toml::from_str(text).unwrap();
        file.resolve("main").unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_field() {
        for (extra, field) in [
            ("api_url = \"ftp://x\"", "github.api_url"),
            (
                "git_url = \"https://user:pw@github.com/a/b.git\"",
                "github.git_url",
            ),
            ("base_branch = \"a..b\"", "github.base_branch"),
            ("reconcile_interval = \"0s\"", "github.reconcile_interval"),
            ("request_timeout = \"1h\"", "github.request_timeout"),
            ("installation_id = 0", "github.installation_id"),
        ] {
            let e = resolve(extra).unwrap_err();
            assert!(e.contains(field), "{extra}: {e}");
        }
        let key = format!("private_key = {{ file = {KEY:?} }}");
        let e = resolve_text(&format!(
            "app_id = 1\n{key}\nrepository = \"nope\"\nwebhook_secrets = [{{ env = \"PATH\" }}]"
        ));
        assert!(e.contains("github.repository"), "{e}");
        assert!(resolve_text("app_id = 1").contains("github.private_key"));
        assert!(resolve_text("private_key = { env = \"PATH\" }").contains("github.app_id"));
        let e = resolve_text(&format!("app_id = 1\n{key}\nrepository = \"a/b\""));
        assert!(e.contains("github.webhook_secrets"), "{e}");
    }

    #[test]
    fn a_key_that_is_not_an_rsa_pem_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(&key, "not a key").unwrap();
        let file: GitHubFile = toml::from_str(&format!(
            "app_id = 1\nprivate_key = {{ file = {key:?} }}\nrepository = \"a/b\"\nwebhook_secrets = [{{ env = \"PATH\" }}]"
        ))
        .unwrap();
        let e = file.resolve("main").unwrap_err().to_string();
        assert!(e.contains("github.private_key"), "{e}");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let c = resolve("").unwrap();
        let text = format!("{c:?}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(text.contains("WebhookSecret(***)"), "{text}");
    }

    #[test]
    fn repository_names() {
        assert!(parse_repository("acme/gitops").is_some());
        assert!(parse_repository("acme/git.ops-1_x").is_some());
        for bad in [
            "acme", "/x", "a/", "a/b/c", "-a/b", "a/..", "a/b.git", "a b/c",
        ] {
            assert!(parse_repository(bad).is_none(), "{bad}");
        }
    }
}
