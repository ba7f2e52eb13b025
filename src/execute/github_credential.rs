//! GitHub installation tokens as an action's credential. An action in `policies/actions.toml`
//! may declare `github = { repository = "owner/name", permissions = { contents = "write" } }`:
//! its `http` or `command` executor then gets a GitHub App installation token narrowed to
//! exactly that repository and those permissions instead of countersign's JWT. The
//! `github_workflow` executor mints its own (`actions: write` to dispatch, `actions: read` to
//! follow the run). Every such token is minted for one attempt, recorded in the ledger (a
//! `credential_issued` entry with `kind = "github_installation_token"`, the repository, the
//! permissions and the expiry — never the token) and revoked when the attempt ends.

use crate::forge::github::{Permissions, Token};
use std::time::SystemTime;

pub use crate::actions::github::{GitHubCredentialSpec, check_permissions, check_repository};

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
