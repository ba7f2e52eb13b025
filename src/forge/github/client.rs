//! [`GitHubClient`]: the GitHub App's REST calls, typed and small. Authentication is handled
//! here (the app JWT for `/app/…`, a cached installation token narrowed to the GitOps repository
//! for everything else, refreshed five minutes before it expires), and every call goes through
//! the [`Rest`] layer (timeouts, rate limits, retries, metrics).

use super::GitHubConfig;
use super::auth::{
    AccessTokenRequest, AccessTokenResponse, AppKey, InstallationToken, Permissions, Token,
};
use super::rest::{Call, Reply, Rest, RetryPolicy, client_error};
use crate::forge::ForgeError;
use crate::telemetry::Metrics;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::{Mutex, OnceCell};

mod actions;
pub use actions::{DispatchAnswer, DispatchedRun, WorkflowRun};

/// The commit status countersign sets on its pull requests.
pub const STATUS_CONTEXT: &str = "countersign/approval";

/// A pull request, reduced to what countersign reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Pull {
    pub number: u64,
    pub html_url: String,
    /// `open` or `closed`.
    pub state: String,
    #[serde(default)]
    pub merged: Option<bool>,
    #[serde(default)]
    pub merged_at: Option<String>,
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
    pub head: PullHead,
    #[serde(default)]
    pub labels: Vec<Named>,
    #[serde(default)]
    pub user: Option<Login>,
    /// Who merged it, once merged.
    #[serde(default)]
    pub merged_by: Option<Login>,
}

impl Pull {
    pub fn is_open(&self) -> bool {
        self.state == "open"
    }

    pub fn is_merged(&self) -> bool {
        self.merged == Some(true) || self.merged_at.is_some()
    }

    pub fn has_label(&self, name: &str) -> bool {
        self.labels.iter().any(|l| l.name == name)
    }

    /// Who merged it, when someone did.
    pub fn merger(&self) -> Option<&str> {
        self.merged_by.as_ref().map(|l| l.login.as_str())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct PullHead {
    pub sha: String,
    #[serde(rename = "ref")]
    pub branch: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Named {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Login {
    pub login: String,
}

/// A pull request review, as listed by GitHub (for reconciliation).
#[derive(Debug, Clone, Deserialize)]
pub struct Review {
    pub id: u64,
    pub user: Option<Login>,
    /// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, `DISMISSED`, `PENDING`.
    pub state: String,
    pub commit_id: Option<String>,
    pub body: Option<String>,
    pub submitted_at: Option<String>,
}

/// An issue comment.
#[derive(Debug, Clone, Deserialize)]
pub struct Comment {
    pub id: u64,
    pub user: Option<Login>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    /// Differs from `created_at` once the comment was edited.
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// Commit status states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusState {
    Pending,
    Success,
    Failure,
    Error,
}

impl StatusState {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
        }
    }
}

/// The answer to a conditional read.
pub enum Conditional<T> {
    Changed { value: T, etag: Option<String> },
    NotModified,
}

pub struct GitHubClient {
    rest: Rest,
    key: Arc<AppKey>,
    owner: String,
    repo: String,
    base_branch: String,
    api_url: String,
    configured_installation: Option<u64>,
    installation: OnceCell<u64>,
    repository_id: OnceCell<u64>,
    token: Mutex<Option<InstallationToken>>,
    app_slug: OnceCell<String>,
}

impl std::fmt::Debug for GitHubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GitHubClient({}/{}, app {})",
            self.owner,
            self.repo,
            self.key.app_id()
        )
    }
}

impl GitHubClient {
    pub fn new(
        config: &GitHubConfig,
        metrics: Option<Arc<Metrics>>,
        policy: RetryPolicy,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            rest: Rest::new(&config.api_url, config.request_timeout, policy, metrics)?,
            key: config.app_key.clone(),
            owner: config.owner.clone(),
            repo: config.repo.clone(),
            base_branch: config.base_branch.clone(),
            api_url: config.api_url.trim_end_matches('/').to_owned(),
            configured_installation: config.installation_id,
            installation: OnceCell::new(),
            repository_id: OnceCell::new(),
            token: Mutex::new(None),
            app_slug: OnceCell::new(),
        })
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn repo(&self) -> &str {
        &self.repo
    }

    /// The API base URL (`[github] api_url`).
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The GitOps repository's base branch (`[github] base_branch`).
    pub fn base_branch(&self) -> &str {
        &self.base_branch
    }

    fn app_jwt(&self) -> Result<Token, ForgeError> {
        self.key
            .jwt(SystemTime::now())
            .map_err(|_| ForgeError::Permanent("cannot sign the GitHub App JWT".to_owned()))
    }

    /// `/repos/{owner}/{repo}` + `rest`.
    fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.owner, self.repo)
    }

    /// The installation id: configured, or found once with
    /// `GET /repos/{owner}/{repo}/installation`.
    pub async fn installation_id(&self) -> Result<u64, ForgeError> {
        if let Some(id) = self.configured_installation {
            return Ok(id);
        }
        self.installation
            .get_or_try_init(|| async {
                #[derive(Deserialize)]
                struct Installation {
                    id: u64,
                }
                let jwt = self.app_jwt()?;
                let call = Call::new(
                    Method::GET,
                    "/repos/{owner}/{repo}/installation",
                    self.repo_path("/installation"),
                    &jwt,
                );
                let reply = self.rest.send(&call).await?.ok(&call.label())?;
                Ok(reply.json::<Installation>(&call.label())?.id)
            })
            .await
            .copied()
    }

    /// The GitOps repository's numeric id, read once with `GET /repos/{owner}/{repo}`.
    /// Webhooks are matched against it: a name can come back after a rename or a deletion.
    pub async fn repository_id(&self) -> Result<u64, ForgeError> {
        self.repository_id
            .get_or_try_init(|| async {
                #[derive(Deserialize)]
                struct Repository {
                    id: u64,
                }
                self.send_json::<Repository>(
                    Method::GET,
                    "/repos/{owner}/{repo}",
                    self.repo_path(""),
                    None,
                )
                .await
                .map(|r| r.id)
            })
            .await
            .copied()
    }

    /// The repository id and installation id when both are known already (no call made).
    pub fn known_identity(&self) -> Option<(u64, u64)> {
        let installation = self
            .configured_installation
            .or_else(|| self.installation.get().copied())?;
        Some((*self.repository_id.get()?, installation))
    }

    /// The app's slug; its pushes and comments appear as `<slug>[bot]`.
    pub async fn app_slug(&self) -> Result<String, ForgeError> {
        self.app_slug
            .get_or_try_init(|| async {
                #[derive(Deserialize)]
                struct App {
                    slug: String,
                }
                let jwt = self.app_jwt()?;
                let call = Call::new(Method::GET, "/app", "/app".to_owned(), &jwt);
                let reply = self.rest.send(&call).await?.ok(&call.label())?;
                Ok(reply.json::<App>(&call.label())?.slug)
            })
            .await
            .cloned()
    }

    /// The login GitHub shows for the app's own actions: `<slug>[bot]`.
    pub async fn bot_login(&self) -> Result<String, ForgeError> {
        Ok(format!("{}[bot]", self.app_slug().await?))
    }

    async fn create_token(
        &self,
        repository: &str,
        permissions: Option<&Permissions>,
    ) -> Result<InstallationToken, ForgeError> {
        let installation = self.installation_id().await?;
        let jwt = self.app_jwt()?;
        let body = AccessTokenRequest {
            repositories: vec![repository],
            permissions,
        };
        let call = Call::new(
            Method::POST,
            "/app/installations/{installation_id}/access_tokens",
            format!("/app/installations/{installation}/access_tokens"),
            &jwt,
        )
        .json(serde_json::to_value(&body).expect("serialisable"));
        let reply = self.rest.send(&call).await?.ok(&call.label())?;
        let response: AccessTokenResponse = reply.json(&call.label())?;
        InstallationToken::from_response(response).map_err(ForgeError::Transient)
    }

    /// The installation token for the GitOps repository (all the app's permissions on it),
    /// cached and refreshed five minutes before it expires.
    pub async fn installation_token(&self) -> Result<InstallationToken, ForgeError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| t.fresh(SystemTime::now())) {
            return Ok(token.clone());
        }
        let token = self.create_token(&self.repo, None).await?;
        tracing::debug!(github.token_expires_at = %humantime::format_rfc3339_seconds(token.expires_at), "GitHub installation token refreshed");
        *cached = Some(token.clone());
        Ok(token)
    }

    /// Forgets the cached installation token (GitHub answered 401 with it).
    pub(super) async fn forget_token(&self) {
        *self.token.lock().await = None;
    }

    /// A fresh installation token limited to one repository (`name`, or `owner/name` with the
    /// configured owner) and to `permissions` — for one action, e.g. `contents: write` to merge
    /// or `actions: write` to dispatch a workflow. Never cached; GitHub refuses permissions the
    /// app does not have (a permanent error).
    pub async fn token_for(
        &self,
        permissions: &Permissions,
        repository: &str,
    ) -> Result<InstallationToken, ForgeError> {
        if permissions.is_empty() {
            return Err(ForgeError::Permanent(
                "a narrowed token needs at least one permission".to_owned(),
            ));
        }
        let name = match repository.split_once('/') {
            Some((owner, name)) if owner.eq_ignore_ascii_case(&self.owner) => name,
            Some(_) => {
                return Err(ForgeError::Permanent(format!(
                    "narrowed tokens are only issued for repositories of `{}`",
                    self.owner
                )));
            }
            None => repository,
        };
        if super::config::parse_repository(&format!("{}/{name}", self.owner)).is_none() {
            return Err(ForgeError::Permanent("not a repository name".to_owned()));
        }
        self.create_token(name, Some(permissions)).await
    }

    /// Revokes an installation token before it expires (`DELETE /installation/token`).
    pub async fn revoke(&self, token: &Token) -> Result<(), ForgeError> {
        let call = Call::new(
            Method::DELETE,
            "/installation/token",
            "/installation/token".to_owned(),
            token,
        );
        let reply = self.rest.send(&call).await?;
        if reply.status == StatusCode::UNAUTHORIZED {
            return Ok(()); // already expired or revoked
        }
        reply.ok(&call.label()).map(|_| ())
    }

    /// Sends a call authenticated with the installation token; a 401 (token revoked early)
    /// refreshes the token once.
    async fn send(
        &self,
        method: Method,
        route: &'static str,
        path: String,
        body: Option<serde_json::Value>,
    ) -> Result<Reply, ForgeError> {
        self.send_with(
            method,
            route,
            path,
            body,
            "application/vnd.github+json",
            None,
        )
        .await
    }

    async fn send_with(
        &self,
        method: Method,
        route: &'static str,
        path: String,
        body: Option<serde_json::Value>,
        accept: &'static str,
        if_none_match: Option<String>,
    ) -> Result<Reply, ForgeError> {
        for retry in [false, true] {
            let token = self.installation_token().await?;
            let mut call = Call::new(method.clone(), route, path.clone(), &token.token);
            call.body = body.clone();
            call.accept = accept;
            call.if_none_match = if_none_match.clone();
            let reply = self.rest.send(&call).await?;
            if reply.status == StatusCode::UNAUTHORIZED && !retry {
                self.forget_token().await;
                continue;
            }
            return Ok(reply);
        }
        unreachable!("the loop returns on its second pass")
    }

    /// Sends a call authenticated with `token` (a narrowed token minted for one operation);
    /// no refresh on 401: such a token is not replaced behind the caller's back.
    async fn send_as(
        &self,
        token: &Token,
        method: Method,
        route: &'static str,
        path: String,
        body: Option<serde_json::Value>,
    ) -> Result<Reply, ForgeError> {
        let mut call = Call::new(method, route, path, token);
        call.body = body;
        self.rest.send(&call).await
    }

    /// Sends with `token` when given, else with the cached installation token.
    async fn send_either(
        &self,
        token: Option<&Token>,
        method: Method,
        route: &'static str,
        path: String,
        body: Option<serde_json::Value>,
    ) -> Result<Reply, ForgeError> {
        match token {
            Some(token) => self.send_as(token, method, route, path, body).await,
            None => self.send(method, route, path, body).await,
        }
    }

    /// `send`, requiring a 2xx answer, decoded.
    async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        route: &'static str,
        path: String,
        body: Option<serde_json::Value>,
    ) -> Result<T, ForgeError> {
        let label = format!("{method} {route}");
        self.send(method, route, path, body)
            .await?
            .ok(&label)?
            .json(&label)
    }

    /// The pull request whose head is `branch` in the GitOps repository, open or closed.
    pub async fn find_pull(&self, branch: &str) -> Result<Option<Pull>, ForgeError> {
        let head = format!("{}:{branch}", self.owner);
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("head", &head)
            .append_pair("state", "all")
            .append_pair("per_page", "10")
            .finish();
        let pulls: Vec<Pull> = self
            .send_json(
                Method::GET,
                "/repos/{owner}/{repo}/pulls",
                self.repo_path(&format!("/pulls?{query}")),
                None,
            )
            .await?;
        Ok(pulls.into_iter().find(|p| p.head.branch == branch))
    }

    pub async fn get_pull(&self, number: u64) -> Result<Pull, ForgeError> {
        self.get_pull_with(None, number).await
    }

    async fn get_pull_with(&self, token: Option<&Token>, number: u64) -> Result<Pull, ForgeError> {
        let route = "/repos/{owner}/{repo}/pulls/{number}";
        let label = format!("GET {route}");
        self.send_either(
            token,
            Method::GET,
            route,
            self.repo_path(&format!("/pulls/{number}")),
            None,
        )
        .await?
        .ok(&label)?
        .json(&label)
    }

    /// Opens a pull request. If GitHub says one already exists for the branch (a concurrent or
    /// repeated call), that one is returned.
    pub async fn create_pull(
        &self,
        title: &str,
        branch: &str,
        base: &str,
        body: &str,
    ) -> Result<Pull, ForgeError> {
        let route = "/repos/{owner}/{repo}/pulls";
        let reply = self
            .send(
                Method::POST,
                route,
                self.repo_path("/pulls"),
                Some(json!({
                    "title": title,
                    "head": branch,
                    "base": base,
                    "body": body,
                    "maintainer_can_modify": false,
                })),
            )
            .await?;
        if reply.status == StatusCode::UNPROCESSABLE_ENTITY
            && let Some(existing) = self.find_pull(branch).await?
        {
            return Ok(existing);
        }
        let label = format!("POST {route}");
        reply.ok(&label)?.json(&label)
    }

    /// Adds labels (GitHub creates missing ones).
    pub async fn add_labels(&self, number: u64, labels: &[String]) -> Result<(), ForgeError> {
        let label = "POST /repos/{owner}/{repo}/issues/{number}/labels";
        self.send(
            Method::POST,
            "/repos/{owner}/{repo}/issues/{number}/labels",
            self.repo_path(&format!("/issues/{number}/labels")),
            Some(json!({ "labels": labels })),
        )
        .await?
        .ok(label)
        .map(|_| ())
    }

    /// Requests reviews from users and teams (team slugs of the repository's organisation).
    /// GitHub refuses (422) reviewers who are not collaborators; that is reported but does not
    /// fail: reviewers can still review, and the status says who must approve.
    pub async fn request_reviewers(
        &self,
        number: u64,
        users: &[String],
        teams: &[String],
    ) -> Result<(), ForgeError> {
        if users.is_empty() && teams.is_empty() {
            return Ok(());
        }
        let route = "/repos/{owner}/{repo}/pulls/{number}/requested_reviewers";
        let reply = self
            .send(
                Method::POST,
                route,
                self.repo_path(&format!("/pulls/{number}/requested_reviewers")),
                Some(json!({ "reviewers": users, "team_reviewers": teams })),
            )
            .await?;
        if reply.status == StatusCode::UNPROCESSABLE_ENTITY {
            tracing::warn!(
                github.pull = number,
                github.users = users.len(),
                github.teams = teams.len(),
                "GitHub refused some requested reviewers (not collaborators, or unknown teams)"
            );
            return Ok(());
        }
        reply.ok(&format!("POST {route}")).map(|_| ())
    }

    /// Sets the `countersign/approval` commit status on `sha`. The description is cut to
    /// GitHub's [`MAX_STATUS_CHARS`]; `target_url` (the status's "Details" link) leads to the
    /// full text.
    pub async fn set_status(
        &self,
        sha: &str,
        state: StatusState,
        description: &str,
        target_url: Option<&str>,
    ) -> Result<(), ForgeError> {
        let route = "/repos/{owner}/{repo}/statuses/{sha}";
        let mut body = json!({
            "state": state.as_str(),
            "description": truncate(description, MAX_STATUS_CHARS),
            "context": STATUS_CONTEXT,
        });
        if let Some(url) = target_url {
            body["target_url"] = json!(url);
        }
        self.send(
            Method::POST,
            route,
            self.repo_path(&format!("/statuses/{sha}")),
            Some(body),
        )
        .await?
        .ok(&format!("POST {route}"))
        .map(|_| ())
    }

    /// Posts a conversation comment. Callers bound their text (see [`bound`]); a body still
    /// over GitHub's [`MAX_BODY_CHARS`] is cut here rather than refused by GitHub forever.
    pub async fn comment(&self, number: u64, body: &str) -> Result<(), ForgeError> {
        let route = "/repos/{owner}/{repo}/issues/{number}/comments";
        if body.chars().count() > MAX_BODY_CHARS {
            tracing::warn!(
                github.pull = number,
                "a comment over GitHub's limit was cut"
            );
        }
        self.send(
            Method::POST,
            route,
            self.repo_path(&format!("/issues/{number}/comments")),
            Some(json!({ "body": truncate(body, MAX_BODY_CHARS) })),
        )
        .await?
        .ok(&format!("POST {route}"))
        .map(|_| ())
    }

    /// The first 100 comments of an issue or pull request.
    pub async fn comments(&self, number: u64) -> Result<Vec<Comment>, ForgeError> {
        self.send_json(
            Method::GET,
            "/repos/{owner}/{repo}/issues/{number}/comments",
            self.repo_path(&format!("/issues/{number}/comments?per_page=100")),
            None,
        )
        .await
    }

    /// The reviews of a pull request (up to 100 pages), for reconciliation.
    pub async fn reviews(&self, number: u64) -> Result<Vec<Review>, ForgeError> {
        let mut out = Vec::new();
        for page in 1..=100u32 {
            let reviews: Vec<Review> = self
                .send_json(
                    Method::GET,
                    "/repos/{owner}/{repo}/pulls/{number}/reviews",
                    self.repo_path(&format!("/pulls/{number}/reviews?per_page=100&page={page}")),
                    None,
                )
                .await?;
            let done = reviews.len() < 100;
            out.extend(reviews);
            if done {
                break;
            }
        }
        Ok(out)
    }

    pub async fn close_pull(&self, number: u64) -> Result<(), ForgeError> {
        let route = "/repos/{owner}/{repo}/pulls/{number}";
        self.send(
            Method::PATCH,
            route,
            self.repo_path(&format!("/pulls/{number}")),
            Some(json!({ "state": "closed" })),
        )
        .await?
        .ok(&format!("PATCH {route}"))
        .map(|_| ())
    }

    /// Squash-merges pull request `number` if its head is still `sha`; returns the merge
    /// commit. Idempotent: an already merged pull request returns its merge commit.
    pub async fn merge(&self, number: u64, sha: &str) -> Result<String, ForgeError> {
        self.merge_with(None, number, sha, None).await
    }

    /// [`GitHubClient::merge`] with a narrowed `token` (`contents: write`, `pull_requests:
    /// write`) when given, and `message` as the squash commit's message (GitHub's default
    /// otherwise). A pull request whose head is no longer `sha` is not merged (permanent
    /// error); one merged by someone else at another head is reported, not taken as ours.
    pub async fn merge_with(
        &self,
        token: Option<&Token>,
        number: u64,
        sha: &str,
        message: Option<&str>,
    ) -> Result<String, ForgeError> {
        #[derive(Deserialize)]
        struct Merged {
            sha: String,
        }
        let route = "/repos/{owner}/{repo}/pulls/{number}/merge";
        let label = format!("PUT {route}");
        let mut body = json!({ "merge_method": "squash", "sha": sha });
        if let Some(message) = message {
            body["commit_message"] = json!(message);
        }
        let reply = self
            .send_either(
                token,
                Method::PUT,
                route,
                self.repo_path(&format!("/pulls/{number}/merge")),
                Some(body),
            )
            .await?;
        match reply.status.as_u16() {
            200..=299 => Ok(reply.json::<Merged>(&label)?.sha),
            // Not mergeable: maybe because it already is merged.
            405 | 409 | 422 => {
                let pull = self.get_pull_with(token, number).await?;
                let bot = self.bot_login().await?;
                match (&pull.merge_commit_sha, pull.is_merged()) {
                    // Only countersign's own earlier merge (a retry after a crash) is taken as
                    // done; a person's merge was never countersign's execution.
                    (Some(commit), true)
                        if pull.head.sha == sha && pull.merger() == Some(bot.as_str()) =>
                    {
                        Ok(commit.clone())
                    }
                    (_, true) if pull.merger() != Some(bot.as_str()) => {
                        Err(ForgeError::Permanent(format!(
                            "the pull request was merged without countersign by @{}",
                            pull.merger().unwrap_or("someone")
                        )))
                    }
                    (_, true) => Err(ForgeError::Permanent(format!(
                        "the pull request was merged by someone else at another head than {}",
                        short(sha)
                    ))),
                    _ if reply.status == StatusCode::CONFLICT || pull.head.sha != sha => {
                        Err(ForgeError::Permanent(format!(
                            "the pull request changed after review (its head is {}, not {}); it was not merged",
                            short(&pull.head.sha),
                            short(sha)
                        )))
                    }
                    _ => Err(client_error(reply.status, &label)),
                }
            }
            _ => reply.ok(&label).map(|_| String::new()),
        }
    }

    /// The head commit of `branch`, as a conditional request: with the `etag` of the last
    /// answer, an unchanged branch costs no rate limit (`304 Not Modified`).
    pub async fn branch_head(
        &self,
        branch: &str,
        etag: Option<String>,
    ) -> Result<Conditional<String>, ForgeError> {
        #[derive(Deserialize)]
        struct Branch {
            commit: Sha,
        }
        #[derive(Deserialize)]
        struct Sha {
            sha: String,
        }
        let route = "/repos/{owner}/{repo}/branches/{branch}";
        let label = format!("GET {route}");
        let reply = self
            .send_with(
                Method::GET,
                route,
                self.repo_path(&format!("/branches/{branch}")),
                None,
                "application/vnd.github+json",
                etag,
            )
            .await?
            .ok(&label)?;
        if reply.status == StatusCode::NOT_MODIFIED {
            return Ok(Conditional::NotModified);
        }
        let etag = reply
            .headers
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Conditional::Changed {
            value: reply.json::<Branch>(&label)?.commit.sha,
            etag,
        })
    }

    /// Whether `user` is an active member of `org`'s team `team_slug` (for eligibility).
    pub async fn is_team_member(
        &self,
        org: &str,
        team_slug: &str,
        user: &str,
    ) -> Result<bool, ForgeError> {
        #[derive(Deserialize)]
        struct Membership {
            state: String,
        }
        let route = "/orgs/{org}/teams/{team_slug}/memberships/{username}";
        let label = format!("GET {route}");
        let reply = self
            .send(
                Method::GET,
                route,
                format!("/orgs/{org}/teams/{team_slug}/memberships/{user}"),
                None,
            )
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        Ok(reply.ok(&label)?.json::<Membership>(&label)?.state == "active")
    }
}

/// The first 12 characters of a commit id.
pub(super) fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// GitHub's limit on issue, pull request and comment bodies, in characters.
pub const MAX_BODY_CHARS: usize = 65_536;
/// GitHub's limit on a commit status description, in characters.
pub const MAX_STATUS_CHARS: usize = 140;

/// `text` within `max` characters: when too long, its start, `…`, and `more` (e.g. where the
/// full text is), which is always kept whole.
pub fn bound(text: &str, max: usize, more: &str) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let room = max.saturating_sub(more.chars().count());
    let mut out = truncate(text, room.max(1));
    out.push_str(more);
    out
}

/// At most `max` characters, with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}
