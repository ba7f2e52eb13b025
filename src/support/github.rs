//! GitHub's names, shared by the action registry, the executors and the GitHub forge: the
//! permissions an installation token can be narrowed to, and the `owner/name` rules of a
//! repository. Pure values; no I/O.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

/// `read` or `write` for one permission of a narrowed token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
}

/// Permissions asked for a narrowed token, by GitHub's names (`contents`, `pull_requests`,
/// `actions`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Permissions(BTreeMap<String, Access>);

impl Permissions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a permission; names are GitHub's (lowercase letters and `_`).
    pub fn with(mut self, name: &str, access: Access) -> Result<Self, String> {
        if name.is_empty()
            || name.len() > 64
            || !name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        {
            return Err(format!("`{name}` is not a GitHub permission name"));
        }
        self.0.insert(name.to_owned(), access);
        Ok(self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<Access> {
        self.0.get(name).copied()
    }
}

/// `owner/name` with GitHub's character rules.
pub fn parse_repository(text: &str) -> Option<(String, String)> {
    let (owner, name) = text.split_once('/')?;
    let owner_ok = (1..=39).contains(&owner.len())
        && owner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !owner.starts_with('-');
    let name_ok = (1..=100).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && name != "."
        && name != ".."
        && !name.ends_with(".git");
    (owner_ok && name_ok).then(|| (owner.to_owned(), name.to_owned()))
}
