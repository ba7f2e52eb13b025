//! `github = { repository = "owner/name", permissions = { contents = "write" } }`: the GitHub
//! installation token an `http` or `command` action gets instead of countersign's JWT, narrowed
//! to one repository and these permissions (minted by `crate::execute::github_credential`).

use super::spec::SpecError;
use crate::support::github::{Access, Permissions, REPOSITORY_PERMISSIONS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    if crate::support::github::parse_repository(repository).is_none() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::github::Access;

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
