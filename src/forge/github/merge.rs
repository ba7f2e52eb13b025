//! Merging pull requests: a `change` request's when it executes ([`Forge::merge_review`]), an
//! `action` request's after it succeeded (so the base branch keeps its record). Always a squash
//! merge pinned to the head countersign opened the review on — a pull request pushed to after
//! review is not merged — with an installation token narrowed to the GitOps repository and
//! `contents: write` + `pull_requests: write`, revoked afterwards. The squash commit names the
//! request in a `Countersign-Request:` trailer.
//!
//! [`Forge::merge_review`]: crate::forge::Forge::merge_review

use super::client::short;
use super::{Access, GitHubForge, Permissions, StatusState};
use crate::forge::ForgeError;
use crate::request::RequestId;

/// The permissions of a merge token.
pub(super) fn merge_permissions() -> Permissions {
    Permissions::new()
        .with("contents", Access::Write)
        .and_then(|p| p.with("pull_requests", Access::Write))
        .expect("valid permission names")
}

impl GitHubForge {
    /// The commit countersign opened the review of `id` on: its review branch as built here
    /// (`refs/heads/countersign/<id>` in the local clone), or, when the clone was re-created
    /// after a crash, the branch as fetched when the review was opened again. Never the pull
    /// request's current head, which anyone with push access can move.
    pub(super) async fn opened_head(&self, id: &RequestId) -> Result<String, ForgeError> {
        let path = self.mirror.path().to_path_buf();
        let branch = format!("countersign/{id}");
        tokio::task::spawn_blocking(move || {
            let repo = git2::Repository::open_bare(&path)
                .map_err(|e| ForgeError::Transient(format!("git: {}", e.message())))?;
            for name in [
                format!("refs/heads/{branch}"),
                format!("refs/remotes/origin/{branch}"),
            ] {
                if let Ok(reference) = repo.find_reference(&name)
                    && let Ok(commit) = reference.peel_to_commit()
                {
                    return Ok(commit.id().to_string());
                }
            }
            Err(ForgeError::Permanent(
                "the commit this review was opened on is not in the local clone; not merging"
                    .to_owned(),
            ))
        })
        .await
        .map_err(|e| ForgeError::Transient(format!("git task failed: {e}")))?
    }

    /// Squash-merges pull request `number` of request `id` at its opened head; returns the
    /// merge commit (an earlier merge's when it is merged already).
    pub(super) async fn squash(&self, number: u64, id: &RequestId) -> Result<String, ForgeError> {
        let head = self.opened_head(id).await?;
        // The approval status first (best effort): a branch protection requiring it would
        // otherwise race the decision being published.
        if let Err(e) = self
            .client
            .set_status(
                &head,
                StatusState::Success,
                "approved; merging",
                self.full_text_url(id).as_deref(),
            )
            .await
        {
            tracing::warn!(request.id = %id, github.pull = number, error = %e, "could not set the approval status before merging");
        }
        let token = self
            .client
            .token_for(&merge_permissions(), self.client.repo())
            .await?;
        let message = format!("{}\n", crate::forge::local_merge::trailer(id.as_str()));
        let merged = self
            .client
            .merge_with(Some(&token.token), number, &head, Some(&message))
            .await;
        if let Err(e) = self.client.revoke(&token.token).await {
            tracing::warn!(request.id = %id, error = %e, "could not revoke the merge token (it expires within the hour)");
        }
        if let Ok(commit) = &merged {
            tracing::info!(request.id = %id, github.pull = number, review.head = short(&head), github.merge_commit = short(commit), "pull request squash-merged");
        }
        merged
    }

    /// After an `action` request succeeded: merge its (still open) pull request so the base
    /// branch keeps the record. When that cannot be done (the pull request changed after
    /// review, a conflict), the reason is commented once and the pull request closed: the
    /// ledger holds the record either way.
    pub(super) async fn merge_after_success(
        &self,
        number: u64,
        id: &RequestId,
    ) -> Result<(), ForgeError> {
        match self.squash(number, id).await {
            Ok(_) => Ok(()),
            Err(ForgeError::Permanent(reason)) => {
                tracing::warn!(request.id = %id, github.pull = number, reason, "the executed request's pull request was not merged");
                let marker = format!("<!-- countersign:{id}:not-merged -->");
                let posted = self
                    .client
                    .comments(number)
                    .await?
                    .iter()
                    .any(|c| c.body.as_deref().is_some_and(|b| b.contains(&marker)));
                if !posted {
                    let text = format!(
                        "**countersign: executed**, but this pull request was not merged: {reason}.\n\nRequest `{id}`; the audit ledger holds its record.\n{marker}"
                    );
                    self.client.comment(number, &text).await?;
                }
                self.client.close_pull(number).await
            }
            Err(e) => Err(e),
        }
    }
}
