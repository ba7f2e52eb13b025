//! GitHub installation tokens as an action's credential. An action in `policies/actions.toml`
//! may declare `github = { repository = "owner/name", permissions = { contents = "write" } }`:
//! its `http` or `command` executor then gets a GitHub App installation token narrowed to
//! exactly that repository and those permissions instead of countersign's JWT. The
//! `github_workflow` executor mints its own (`actions: write` to dispatch, `actions: read` to
//! follow the run). Every such token is minted for one attempt, recorded in the ledger (a
//! `credential_issued` entry with `kind = "github_installation_token"`, the repository, the
//! permissions and the expiry — never the token) and revoked when the attempt ends.

use crate::forge::github::{Access, Permissions, Token};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::SystemTime;

use super::spec::SpecError;

/// GitHub's repository permissions an installation token can be narrowed to (organisation
/// and account permissions make no sense for a token limited to one repository).
pub const REPOSITORY_PERMISSIONS: &[&str] = &[
    "actions",
    "administration",
    "attestations",
    "checks",
    "codespaces",
    "contents",
    "dependabot_secrets",
    "deployments",
    "discussions",
    "environments",
    "issues",
    "merge_queues",
    "metadata",
    "packages",
    "pages",
    "pull_requests",
    "repository_custom_properties",
    "repository_hooks",
    "repository_projects",
    "secret_scanning_alerts",
    "secrets",
    "security_events",
    "single_file",
    "statuses",
    "vulnerability_alerts",
    "workflows",
];

/// The `github` key of an action: which repository and permissions its token is narrowed to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GitHubCredentialSpec {
    /// `owner/name`; the GitOps repository when absent. The owner must be the account the
    /// GitHub App is installed on (checked when the token is minted).
    #[serde(default)]
    pub repository: Option<String>,
    /// GitHub's permission names → `read` or `write`.
    pub permissions: BTreeMap<String, Access>,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        message: message.into(),
    }
}

/// Checks a repository permission set: known names, `metadata` only `read`, at least one.
pub fn check_permissions(permissions: &BTreeMap<String, Access>) -> Result<(), SpecError> {
    if permissions.is_empty() {
        return Err(err("permissions", "must name at least one permission"));
    }
    for (name, access) in permissions {
        let field = format!("permissions.{name}");
        if !REPOSITORY_PERMISSIONS.contains(&name.as_str()) {
            return Err(err(
                field,
                "is not a GitHub repository permission (e.g. contents, pull_requests, actions, issues, statuses, deployments)",
            ));
        }
        if name == "metadata" && *access == Access::Write {
            return Err(err(field, "can only be `read`"));
        }
    }
    Ok(())
}

/// Checks `owner/name` with GitHub's character rules.
pub fn check_repository(field: &str, repository: &str) -> Result<(), SpecError> {
    if crate::forge::github::parse_repository(repository).is_none() {
        return Err(err(field, "must be a repository as `owner/name`"));
    }
    Ok(())
}

impl GitHubCredentialSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        if let Some(repository) = &self.repository {
            check_repository("repository", repository)?;
        }
        check_permissions(&self.permissions)
    }

    /// The permissions as asked of GitHub.
    pub fn permissions(&self) -> Permissions {
        to_permissions(&self.permissions)
    }
}

pub(crate) fn to_permissions(map: &BTreeMap<String, Access>) -> Permissions {
    map.iter().fold(Permissions::new(), |p, (name, access)| {
        p.with(name, *access)
            .expect("permission names are validated first")
    })
}

/// A narrowed installation token minted for one attempt. The token itself is zeroized on drop
/// and never printed; `id` is what the ledger and the outcome name it by.
#[derive(Debug, Clone)]
pub struct MintedToken {
    pub token: Token,
    /// countersign's id for this token (a ULID), recorded in the ledger.
    pub id: String,
    /// `owner/name`.
    pub repository: String,
    pub expires_at: SystemTime,
}

/// Mints narrowed installation tokens for one attempt (recording each in the ledger before it
/// is used) and revokes them. The engine implements it over the GitHub client and the store.
#[async_trait::async_trait]
pub trait TokenMinter: Send + Sync {
    /// A token for `repository` (`owner/name`) with exactly `permissions`. Errors are
    /// fit to store (no token, no request data).
    async fn mint(
        &self,
        permissions: &Permissions,
        repository: &str,
    ) -> Result<MintedToken, String>;

    /// Revokes a token before it expires (best effort: failures are logged).
    async fn revoke(&self, token: &MintedToken);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GitHubCredentialSpec, String> {
        #[derive(Deserialize)]
        struct Doc {
            github: GitHubCredentialSpec,
        }
        toml::from_str::<Doc>(text)
            .map(|d| d.github)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_credential_spec_names_repository_and_permissions() {
        let spec = parse(
            r#"github = { repository = "acme/service", permissions = { contents = "write", pull_requests = "read" } }"#,
        )
        .unwrap();
        spec.validate().unwrap();
        assert_eq!(spec.repository.as_deref(), Some("acme/service"));
        let perms = spec.permissions();
        assert_eq!(perms.get("contents"), Some(Access::Write));
        assert_eq!(perms.get("pull_requests"), Some(Access::Read));
        assert_eq!(perms.get("issues"), None);
        let default_repo = parse(r#"github = { permissions = { issues = "write" } }"#).unwrap();
        default_repo.validate().unwrap();
        assert_eq!(default_repo.repository, None);
    }

    #[test]
    fn mistakes_name_the_field() {
        let field = |text: &str| parse(text).unwrap().validate().unwrap_err().field;
        assert_eq!(
            field(r#"github = { permissions = { contnets = "write" } }"#),
            "permissions.contnets"
        );
        assert_eq!(
            field(r#"github = { permissions = { metadata = "write" } }"#),
            "permissions.metadata"
        );
        assert_eq!(
            field(r#"github = { permissions = { members = "read" } }"#),
            "permissions.members"
        );
        assert_eq!(field(r#"github = { permissions = {} }"#), "permissions");
        assert_eq!(
            field(r#"github = { repository = "no-slash", permissions = { issues = "read" } }"#),
            "repository"
        );
        let e = parse(r#"github = { permissions = { contents = "admin" } }"#).unwrap_err();
        assert!(e.contains("admin"), "{e}");
        let e =
            parse(r#"github = { permissions = { contents = "read" }, token = "x" }"#).unwrap_err();
        assert!(e.contains("token"), "{e}");
    }
}
