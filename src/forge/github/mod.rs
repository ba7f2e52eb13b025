//! The GitHub forge: a review is a pull request from branch `countersign/<id>` in the GitOps
//! repository, opened by a GitHub App.
//!
//! - `config.rs`: the `[github]` section.
//! - `auth.rs`: the app JWT, installation tokens (refreshed before expiry) and narrowed tokens.
//! - `rest.rs`: timeouts, rate limits, retries with backoff and jitter, metrics.
//! - `client.rs`: [`GitHubClient`], the typed REST calls (including [`GitHubClient::token_for`]
//!   and [`GitHubClient::merge`] for execution); `client/actions.rs`: workflow dispatch and runs
//!   (with narrowed tokens, for the `github_workflow` executor).
//! - `merge.rs`: squash merges pinned to the head a review was opened on, with a narrowed token
//!   (`change` requests when they execute, `action` requests after they succeeded).
//! - `git.rs` + `transport.rs`: the local clone, review commits pushed over HTTPS with the
//!   installation token (git2 through a reqwest transport: one TLS stack).
//! - `reviewers.rs`: owners → requested reviewers, labels, status lines, decision comments.
//! - `webhook.rs`: `X-Hub-Signature-256` verification and the typed events; `events.rs`: those
//!   events (and the reviews and comments reconciliation lists) in the forge's common words.
//! - `review_host.rs`: [`GitHubReviews`], the engine's `ReviewHost` and `TeamDirectory`.
//!
//! git2 and GitHub's JSON stay inside this module.

mod auth;
mod client;
mod config;
mod events;
mod git;
mod merge;
mod rest;
mod review_host;
mod reviewers;
mod transport;
pub mod webhook;

pub use auth::{Access, InstallationToken, Permissions, Token};
pub use client::{
    DispatchAnswer, DispatchedRun, GitHubClient, Login, Pull, Review, STATUS_CONTEXT, StatusState,
    WorkflowRun,
};
pub use config::{GitHubConfig, GitHubFile, WebhookSecret, parse_repository};
pub use rest::RetryPolicy;
pub use review_host::GitHubReviews;
pub use webhook::{GitHubEvent, SignatureError, parse_event, verify_signature};

use super::content::ReviewContent;
use super::{Decision, Forge, ForgeError, ReviewRef, ReviewRequest};
use crate::request::RequestId;
use crate::telemetry::Metrics;
use client::Conditional;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The base branch's head is re-read at most this often (a conditional request: an unchanged
/// branch costs no rate limit). The policy poller and the notifier ask every second.
const BASE_COMMIT_TTL: Duration = Duration::from_secs(10);

pub struct GitHubForge {
    client: Arc<GitHubClient>,
    mirror: git::Mirror,
    base_branch: String,
    metrics: Option<Arc<Metrics>>,
    base: tokio::sync::Mutex<BaseHead>,
    /// countersign's own URL: texts cut to GitHub's limits link to the full masked request.
    public_url: Option<String>,
}

#[derive(Default)]
struct BaseHead {
    sha: Option<String>,
    etag: Option<String>,
    checked: Option<Instant>,
}

impl GitHubForge {
    /// Sets up the client and the local clone (`<data_dir>/github/<owner>/<name>.git` unless
    /// `clone_dir` is configured). No network call is made here.
    pub fn new(
        config: &GitHubConfig,
        data_dir: &Path,
        metrics: Option<Arc<Metrics>>,
    ) -> anyhow::Result<Self> {
        Self::with_retry_policy(config, data_dir, metrics, RetryPolicy::default())
    }

    /// [`GitHubForge::new`] with other retry timings (tests shorten them).
    pub fn with_retry_policy(
        config: &GitHubConfig,
        data_dir: &Path,
        metrics: Option<Arc<Metrics>>,
        policy: RetryPolicy,
    ) -> anyhow::Result<Self> {
        let clone_dir = config.clone_dir.clone().unwrap_or_else(|| {
            data_dir
                .join("github")
                .join(&config.owner)
                .join(format!("{}.git", config.repo))
        });
        Ok(Self {
            client: Arc::new(GitHubClient::new(config, metrics.clone(), policy)?),
            mirror: git::Mirror::open(
                &clone_dir,
                &config.git_url,
                &config.base_branch,
                config.request_timeout,
            )?,
            base_branch: config.base_branch.clone(),
            metrics,
            base: tokio::sync::Mutex::default(),
            public_url: None,
        })
    }

    /// countersign's public URL: statuses link to `{url}/v1/requests/{id}/review`, and texts
    /// cut to fit GitHub's limits say the whole masked text is there.
    pub fn with_public_url(mut self, url: &str) -> Self {
        self.public_url = Some(url.trim_end_matches('/').to_owned());
        self
    }

    /// Where the full masked request `id` (with its decisions) can be read.
    fn full_text_url(&self, id: &RequestId) -> Option<String> {
        let base = self.public_url.as_deref()?;
        Some(format!("{base}/v1/requests/{id}/review"))
    }

    /// The REST client: narrowed tokens ([`GitHubClient::token_for`]), merging
    /// ([`GitHubClient::merge`]), reviews and team membership for reconciliation.
    pub fn client(&self) -> &Arc<GitHubClient> {
        &self.client
    }

    /// The local clone (bare). The ledger branch is written here.
    pub fn repo_path(&self) -> &Path {
        self.mirror.path()
    }

    async fn git_token(&self) -> Result<Option<Token>, ForgeError> {
        if !self.mirror.needs_token() {
            return Ok(None);
        }
        Ok(Some(self.client.installation_token().await?.token))
    }

    /// Runs a git operation with the installation token; when git is refused with 401 (the
    /// token was revoked or expired early), once more with a fresh token.
    async fn with_git_token<T, F, Fut>(&self, op: F) -> Result<T, ForgeError>
    where
        F: Fn(Option<Token>) -> Fut,
        Fut: Future<Output = Result<T, ForgeError>>,
    {
        match op(self.git_token().await?).await {
            Err(ForgeError::Transient(m)) if m.contains(git::UNAUTHORIZED) => {
                self.client.forget_token().await;
                op(self.git_token().await?).await
            }
            other => other,
        }
    }

    async fn open(&self, request: &ReviewRequest<'_>) -> Result<ReviewRef, ForgeError> {
        let content = ReviewContent::prepare(request, "github");
        let branch = content.branch.clone();
        let pushed = self
            .with_git_token(|token| self.mirror.push_review(token, content.clone()))
            .await?;
        // A branch that was on GitHub already means an earlier attempt got this far (then
        // crashed): its pull request may exist, and is reused instead of opening a second one.
        // A branch pushed just now cannot have one, which saves the look-up.
        let existing = match pushed.existed {
            true => self.client.find_pull(&branch).await?,
            false => None,
        };
        let (pull, fresh) = match existing {
            Some(pull) => (pull, false),
            None => {
                let title = client::truncate(
                    &format!(
                        "{}: {} on {} ({})",
                        request.agent, request.action, request.resource, request.environment
                    ),
                    256,
                );
                let body = pull_body(&pushed.description);
                let pull = self
                    .client
                    .create_pull(&title, &branch, &self.base_branch, &body)
                    .await?;
                if pull.head.sha != pushed.head.to_string() {
                    tracing::warn!(request.id = %request.id, github.pull = pull.number, "the pull request's head is not the commit countersign pushed");
                }
                (pull, true)
            }
        };
        let exclusions = reviewers::exclusions_or_default(
            request.exclusions,
            request.agent.as_str(),
            request.evaluation,
        );
        let labels = reviewers::labels(request.evaluation);
        // Labels go on last among the one-time steps, so a pull request found with its labels
        // already had its reviewers requested (re-requesting would ping reviewers again).
        let labelled = labels.iter().all(|l| pull.has_label(l));
        if fresh || !labelled {
            let wanted = reviewers::reviewers(request.evaluation, self.client.owner(), &exclusions);
            self.client
                .request_reviewers(pull.number, &wanted.users, &wanted.teams)
                .await?;
            self.client.add_labels(pull.number, &labels).await?;
        }
        if pull.is_open() {
            self.client
                .set_status(
                    &pull.head.sha,
                    StatusState::Pending,
                    &reviewers::pending_description(request.evaluation, &exclusions),
                    self.full_text_url(request.id).as_deref(),
                )
                .await?;
        }
        Ok(ReviewRef {
            reference: pull.number.to_string(),
            head: pull.head.sha,
            url: pull.html_url,
        })
    }
}

/// The description as the pull request body, cut to GitHub's limit.
fn pull_body(description: &str) -> String {
    client::bound(
        description,
        client::MAX_BODY_CHARS,
        "\n\n*(cut to fit a pull request body: the full description is on the branch)*",
    )
}

fn pull_number(review: &str) -> Result<u64, ForgeError> {
    review.parse().map_err(|_| {
        ForgeError::Permanent("the review reference is not a pull request number".to_owned())
    })
}

#[async_trait::async_trait]
impl Forge for GitHubForge {
    fn name(&self) -> &'static str {
        "github"
    }

    async fn open_review(&self, request: &ReviewRequest<'_>) -> Result<ReviewRef, ForgeError> {
        let (result, calls) = rest::count_calls(self.open(request)).await;
        if let Some(m) = &self.metrics {
            m.observe_github_review_open(calls);
        }
        tracing::debug!(request.id = %request.id, github.calls = calls, success = result.is_ok(), "GitHub review opening");
        result
    }

    async fn publish_decision(
        &self,
        review: &str,
        decision: &Decision<'_>,
    ) -> Result<(), ForgeError> {
        let number = pull_number(review)?;
        let pull = self.client.get_pull(number).await?;
        let link = self.full_text_url(decision.id);
        let view = reviewers::decision_view(decision, link.as_deref());
        // An executed `action` request's pull request is still open (a `change` request's was
        // merged when it ran): merging it keeps the record on the base branch. Before the
        // status, so the status shows the outcome last.
        if decision.state == crate::request::State::Succeeded && pull.is_open() && !pull.is_merged()
        {
            self.merge_after_success(number, decision.id).await?;
        }
        self.client
            .set_status(
                &pull.head.sha,
                view.status,
                &view.description,
                link.as_deref(),
            )
            .await?;
        if let Some(text) = view.close_with
            && pull.is_open()
        {
            // Comment first, then close: a crash in between repeats the comment unless the
            // marker shows it is there already.
            let marker = reviewers::decision_marker(decision);
            let posted = self
                .client
                .comments(number)
                .await?
                .iter()
                .any(|c| c.body.as_deref().is_some_and(|b| b.contains(&marker)));
            if !posted {
                self.client.comment(number, &text).await?;
            }
            self.client.close_pull(number).await?;
        }
        Ok(())
    }

    /// Squash-merges the request's pull request at the head the review was opened on, with a
    /// narrowed token; see `merge.rs`.
    async fn merge_review(&self, review: &str, id: &RequestId) -> Result<String, ForgeError> {
        self.squash(pull_number(review)?, id).await
    }

    async fn base_commit(&self) -> Result<String, ForgeError> {
        let mut base = self.base.lock().await;
        if let (Some(sha), Some(checked)) = (&base.sha, base.checked)
            && checked.elapsed() < BASE_COMMIT_TTL
        {
            return Ok(sha.clone());
        }
        let etag = base.sha.as_ref().and(base.etag.clone());
        match self.client.branch_head(&self.base_branch, etag).await? {
            Conditional::Changed { value, etag } => {
                base.sha = Some(value);
                base.etag = etag;
            }
            Conditional::NotModified => {}
        }
        base.checked = Some(Instant::now());
        Ok(base.sha.clone().expect("set above or before"))
    }

    /// Read from the local clone: one incremental fetch brings every file of the pinned commit
    /// (the contents API would cost a call per file or directory), and a commit's files never
    /// change, so later reads cost nothing.
    async fn read_files(
        &self,
        commit: &str,
        dir: &str,
    ) -> Result<BTreeMap<String, String>, ForgeError> {
        self.with_git_token(|token| self.mirror.read_files(token, commit, dir))
            .await
    }

    async fn health(&self) -> Result<(), ForgeError> {
        self.base_commit().await.map(|_| ())
    }
}
