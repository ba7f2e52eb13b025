//! GitHub webhook events handed over by `POST /webhooks/github` (signature verified, event
//! parsed).

use super::Engine;
use crate::forge::github::GitHubEvent;

impl Engine {
    /// A verified and parsed GitHub delivery; `delivery` is its `X-GitHub-Delivery` id.
    ///
    /// wired by the engine integration: apply reviews (approved on the current head by an
    /// eligible reviewer, changes requested, dismissed), pushes (stale approvals, a foreign push
    /// denies), closes (cancelled), reopens and `/deny <reason>` comments — idempotently per
    /// delivery and one request at a time. Until then deliveries are only logged.
    pub async fn github_event(&self, delivery: &str, event: GitHubEvent) -> anyhow::Result<()> {
        let (kind, pull) = match &event {
            GitHubEvent::Review(r) => ("pull_request_review", Some(r.pull.number)),
            GitHubEvent::PullRequest(p) => ("pull_request", Some(p.pull.number)),
            GitHubEvent::Comment(c) => ("issue_comment", Some(c.issue)),
            GitHubEvent::Ping => ("ping", None),
            GitHubEvent::Unknown { .. } => ("unknown", None),
        };
        tracing::debug!(
            github.delivery = delivery,
            github.event = kind,
            github.pull = pull,
            "GitHub webhook received (not applied yet)"
        );
        Ok(())
    }
}
