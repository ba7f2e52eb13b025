//! GitHub installation tokens as an action's credential. An action in `policies/actions.toml`
//! may declare `github = { repository = "owner/name", permissions = { contents = "write" } }`:
//! its `http` or `command` executor then gets a GitHub App installation token narrowed to
//! exactly that repository and those permissions instead of countersign's JWT. The
//! `github_workflow` executor mints its own (`actions: write` to dispatch, `actions: read` to
//! follow the run). Every such token is minted for one attempt, recorded in the ledger (a
//! `credential_issued` entry with `kind = "github_installation_token"`, the repository, the
//! permissions and the expiry — never the token) and revoked when the attempt ends.

use crate::forge::github::{GitHubClient, Permissions, Token};
use crate::store::Store;
use crate::store::credentials::NewGitHubCredential;
use crate::support::github::Access;
use crate::time;
use std::collections::BTreeMap;
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

/// The [`TokenMinter`] with the GitHub App: mints installation tokens for one attempt: narrowed by GitHub, recorded in the
/// ledger (`credential_issued`, `kind = "github_installation_token"`) before they are used,
/// revoked when the attempt is done.
pub struct GitHubMinter<'a> {
    pub client: &'a GitHubClient,
    pub store: &'a Store,
    pub request_id: &'a str,
    pub agent_id: &'a str,
}

#[async_trait::async_trait]
impl TokenMinter for GitHubMinter<'_> {
    async fn mint(
        &self,
        permissions: &Permissions,
        repository: &str,
    ) -> Result<MintedToken, String> {
        let issued = self
            .client
            .token_for(permissions, repository)
            .await
            .map_err(|e| format!("no GitHub token for {repository}: {e}"))?;
        let id = ulid::Ulid::new().to_string();
        let now = time::now_ms();
        let expires_at_ms = issued
            .expires_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(now, |d| d.as_millis() as i64);
        let granted: BTreeMap<String, String> = issued
            .permissions
            .iter()
            .map(|(name, access)| {
                let level = match access {
                    Access::Read => "read",
                    Access::Write => "write",
                };
                (name.clone(), level.to_owned())
            })
            .collect();
        let recorded = self
            .store
            .record_github_credential(&NewGitHubCredential {
                id: &id,
                request_id: self.request_id,
                agent_id: self.agent_id,
                repository,
                permissions: &granted,
                issued_at_ms: now,
                expires_at_ms,
            })
            .await;
        if let Err(e) = recorded {
            let _ = self.client.revoke(&issued.token).await;
            return Err(format!("could not record the GitHub token: {e}"));
        }
        tracing::info!(request.id = self.request_id, credential.id = %id, github.repository = repository, github.permissions = ?granted, credential.expires_at = %time::rfc3339(expires_at_ms), "GitHub installation token issued");
        Ok(MintedToken {
            token: issued.token,
            id,
            repository: repository.to_owned(),
            expires_at: issued.expires_at,
        })
    }

    async fn revoke(&self, token: &MintedToken) {
        match self.client.revoke(&token.token).await {
            Ok(()) => {
                tracing::debug!(request.id = self.request_id, credential.id = %token.id, "GitHub installation token revoked")
            }
            Err(e) => {
                tracing::warn!(request.id = self.request_id, credential.id = %token.id, error = %e, "could not revoke a GitHub installation token (it expires within the hour)")
            }
        }
    }
}
