//! Forges host the human review of a request: the local git repository (the embedded default)
//! or a GitHub repository (pull requests, reviews, webhooks). The engine talks to them only
//! through traits: [`Forge`] (open, decide and merge reviews, read the base branch) and, for a
//! forge where people decide on the forge itself, [`ReviewHost`] and [`TeamDirectory`] with
//! forge-neutral [`ReviewEvent`]s (`review_events.rs`).

mod content;
pub mod github;
mod local;
mod local_merge;
pub mod review_events;

pub use github::GitHubForge;
pub use local::{LocalForge, remove_own_stale_locks};
pub use review_events::{
    Foreign, Origin, ReviewAction, ReviewEvent, ReviewHost, ReviewState, ReviewStatus,
    TeamDirectory,
};

use crate::policy::Evaluation;
use crate::request::State;
use crate::request::{AgentId, Digest, FileChange, Kind, RequestId};
use serde_json::Value;
use std::collections::BTreeMap;

/// Everything a forge needs to open a review, already masked by the engine: forges publish
/// what they are given and never see a raw payload. Only `changes` (the proposed files of a
/// `change` request) are as submitted: they are the diff under review.
pub struct ReviewRequest<'a> {
    pub id: &'a RequestId,
    pub agent: &'a AgentId,
    pub kind: Kind,
    pub action: &'a str,
    pub resource: &'a str,
    pub environment: &'a str,
    /// Masked.
    pub justification: &'a str,
    /// Masked.
    pub payload: &'a Value,
    /// "2 emails, 1 secret field masked".
    pub masking: &'a str,
    pub changes: &'a [FileChange],
    pub digest: &'a Digest,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    /// The policy evaluation: who must approve, shown to reviewers.
    pub evaluation: Option<&'a Evaluation>,
    /// Who can never approve this request (the engine's eligibility rules), so reviewers are
    /// only asked of, and listed as, people whose approval can count. `None`: only the
    /// evaluation's agent owners are known.
    pub exclusions: Option<&'a crate::policy::approval::Exclusions>,
}

/// Where a review lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRef {
    /// Forge-specific reference (a branch for the local forge, a pull request number on GitHub).
    pub reference: String,
    /// The commit under review.
    pub head: String,
    /// Where a human goes to review it.
    pub url: String,
}

/// A decision to show on the review.
pub struct Decision<'a> {
    pub id: &'a RequestId,
    pub state: State,
    pub actor: &'a str,
    pub reason: Option<&'a str>,
    pub digest: &'a Digest,
}

/// Forge failures. Messages never carry request data.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// Worth retrying later (I/O, rate limits, the forge being down).
    #[error("forge temporarily unavailable: {0}")]
    Transient(String),
    /// Will not succeed on retry without an operator fixing something.
    #[error("forge refused the operation: {0}")]
    Permanent(String),
}

#[async_trait::async_trait]
pub trait Forge: Send + Sync + 'static {
    /// Short name for logs and status output.
    fn name(&self) -> &'static str;

    /// Opens the review for a request. Must be idempotent: after a crash the engine calls it
    /// again for the same request and expects the same review back.
    async fn open_review(&self, request: &ReviewRequest<'_>) -> Result<ReviewRef, ForgeError>;

    /// Shows a decision (approval, denial, expiry, cancellation) on the review. Idempotent.
    async fn publish_decision(
        &self,
        review: &str,
        decision: &Decision<'_>,
    ) -> Result<(), ForgeError>;

    /// Merges the review of an executed `change` request into the base branch as one squash
    /// commit and returns that commit. Idempotent: a review merged before returns its commit.
    async fn merge_review(&self, review: &str, id: &RequestId) -> Result<String, ForgeError> {
        let _ = (review, id);
        Err(ForgeError::Permanent(format!(
            "the {} forge cannot merge reviews",
            self.name()
        )))
    }

    /// The commit at the tip of the base branch.
    async fn base_commit(&self) -> Result<String, ForgeError>;

    /// Text files under `dir` (recursively) at `commit`, keyed by their path from the root.
    /// Policy is always read this way: from the base branch at a pinned commit.
    async fn read_files(
        &self,
        commit: &str,
        dir: &str,
    ) -> Result<BTreeMap<String, String>, ForgeError>;

    /// Whether the forge is reachable (for `/readyz`).
    async fn health(&self) -> Result<(), ForgeError>;
}
