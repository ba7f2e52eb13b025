//! Decisions made on GitHub. `POST /webhooks/github` hands each verified delivery to
//! [`Engine::github_event`], which only queues it (once per `X-GitHub-Delivery`, free text
//! masked); the GitHub loop applies the queue in order, one delivery at a time, so concurrent
//! webhooks cannot race. Reconciliation (at start-up and every `reconcile_interval`) re-reads
//! the open pull requests, their reviews and `/deny` comments and applies whatever a lost
//! webhook missed.
//!
//! Only deliveries about countersign's repository (matched by its numeric id) from its own
//! installation act: a GitHub App has one webhook URL for all its installations and
//! repositories, so a `/deny` on another repository's pull request #10 is not about request
//! #10's. Others are acknowledged and ignored.
//!
//! The rules: an `APPROVED` review counts only on the commit countersign pushed, while that is
//! still the pull request's head, from a reviewer eligible under the pinned policy (`@org/team`
//! owners checked through GitHub's API, cached briefly); `CHANGES_REQUESTED` or a
//! `/deny <reason>` comment from someone who may deny denies; a dismissed review withdraws the
//! approval; a push by anyone but countersign denies (the content must not change under
//! review); closing the pull request cancels; a merge by anyone but countersign before the
//! request executed denies it ("merged without approval by @login": the change reached the
//! base branch unapproved, and is never counted as an execution); reopening a decided one shows
//! the decision again.

use super::review::{ReviewDecision, ReviewError, ReviewerIdentity};
use super::{Engine, State};
use crate::forge::ForgeError;
use crate::forge::github::webhook::{
    CommentAction, PullRequestAction, ReviewAction, ReviewEvent, ReviewState, Source,
};
use crate::forge::github::{GitHubClient, GitHubEvent};
use crate::policy::approval;
use crate::store::{NewReview, RequestRow, TransitionError};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long a team membership answer is trusted.
const TEAM_CACHE: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long a webhook answer may wait for countersign's repository and installation ids.
const IDENTITY_TIMEOUT: Duration = Duration::from_secs(5);
/// The start of the reason a request is denied with when a person merged its pull request.
pub const MERGED_WITHOUT_APPROVAL: &str = "merged without approval by @";

/// What became of a webhook delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued, to be applied in order.
    Queued,
    /// Seen before (GitHub's redelivery): not queued again.
    Duplicate,
    /// Nothing countersign acts on (`ping`, other events and actions).
    Ignored,
    /// About another repository or installation of the App: never acted on.
    Foreign(Foreign),
}

/// Why a delivery is not countersign's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Foreign {
    Repository,
    Installation,
}

impl Foreign {
    pub fn as_str(self) -> &'static str {
        match self {
            Foreign::Repository => "foreign_repository",
            Foreign::Installation => "foreign_installation",
        }
    }
}

/// Whether `source` is countersign's repository (by id) and installation.
fn check_origin(source: &Source, (repository, installation): (u64, u64)) -> Result<(), Foreign> {
    if source.repository_id != Some(repository) {
        return Err(Foreign::Repository);
    }
    if source.installation_id != Some(installation) {
        return Err(Foreign::Installation);
    }
    Ok(())
}

/// The GitHub side of the engine: the client, a wake-up for the loop, caches.
pub struct GitHubReviews {
    client: Arc<GitHubClient>,
    pub(crate) reconcile_interval: Duration,
    /// Signalled when a delivery was queued.
    pub(crate) wake: Notify,
    teams: Mutex<HashMap<(String, String), (bool, Instant)>>,
    bot: Mutex<Option<String>>,
}

impl GitHubReviews {
    pub fn client(&self) -> &Arc<GitHubClient> {
        &self.client
    }

    /// countersign's repository id and installation id, asked of GitHub once.
    pub(crate) async fn identity(&self) -> Result<(u64, u64), ForgeError> {
        Ok((
            self.client.repository_id().await?,
            self.client.installation_id().await?,
        ))
    }

    pub fn new(client: Arc<GitHubClient>, reconcile_interval: Duration) -> Self {
        Self {
            client,
            reconcile_interval,
            wake: Notify::new(),
            teams: Mutex::default(),
            bot: Mutex::default(),
        }
    }
}

/// Why a delivery could not be applied now.
pub(crate) enum Retry {
    /// GitHub could not be asked (down, rate limited): keep the delivery, try later.
    Later(String),
}

impl From<ForgeError> for Retry {
    fn from(e: ForgeError) -> Self {
        Retry::Later(e.to_string())
    }
}

impl From<anyhow::Error> for Retry {
    fn from(e: anyhow::Error) -> Self {
        Retry::Later(format!("{e:#}"))
    }
}

type Applied = Result<String, Retry>;

impl Engine {
    /// A verified and parsed GitHub delivery; `delivery` is its `X-GitHub-Delivery` id. Queued
    /// once; a repeated delivery id is acknowledged and ignored, and so is a delivery about
    /// another repository or installation (nothing is stored for it). When countersign's ids
    /// cannot be learnt now, the delivery is queued and checked when it is applied.
    pub async fn github_event(
        &self,
        delivery: &str,
        event: GitHubEvent,
    ) -> anyhow::Result<Delivery> {
        let pull = match &event {
            GitHubEvent::Review(r) => r.pull.number,
            GitHubEvent::PullRequest(p) => p.pull.number,
            GitHubEvent::Comment(c) if c.is_pull_request => c.issue,
            GitHubEvent::Comment(_) | GitHubEvent::Ping | GitHubEvent::Unknown { .. } => {
                tracing::debug!(github.delivery = delivery, "GitHub delivery ignored");
                return Ok(Delivery::Ignored);
            }
        };
        let Some(github) = self.github.get() else {
            return Ok(Delivery::Ignored);
        };
        let identity = match github.client.known_identity() {
            Some(known) => Some(known),
            None => tokio::time::timeout(IDENTITY_TIMEOUT, github.identity())
                .await
                .ok()
                .and_then(Result::ok),
        };
        if let (Some(identity), Some(source)) = (identity, event.source())
            && let Err(foreign) = check_origin(source, identity)
        {
            tracing::debug!(
                github.delivery = delivery,
                github.repository_id = source.repository_id,
                github.installation_id = source.installation_id,
                reason = foreign.as_str(),
                "GitHub delivery about another repository or installation ignored"
            );
            return Ok(Delivery::Foreign(foreign));
        }
        let event = self.masked(event);
        let fresh = self
            .store
            .github_enqueue(
                delivery,
                &serde_json::to_string(&event)?,
                Some(pull),
                self.clock.now_ms(),
            )
            .await?;
        if fresh {
            github.wake.notify_one();
            Ok(Delivery::Queued)
        } else {
            tracing::info!(
                github.delivery = delivery,
                "duplicate GitHub delivery ignored"
            );
            Ok(Delivery::Duplicate)
        }
    }

    /// Free text people typed on GitHub is stored masked, like every review reason.
    fn masked(&self, event: GitHubEvent) -> GitHubEvent {
        match event {
            GitHubEvent::Review(mut r) => {
                r.body = r.body.map(|b| self.masker.text(&b));
                GitHubEvent::Review(r)
            }
            GitHubEvent::Comment(mut c) => {
                c.body = self.masker.text(&c.body);
                GitHubEvent::Comment(c)
            }
            other => other,
        }
    }

    pub(crate) async fn apply_inbox(&self, github: &GitHubReviews) -> Result<(), Retry> {
        loop {
            let rows = self.store.github_pending(32).await?;
            if rows.is_empty() {
                return Ok(());
            }
            for row in rows {
                let outcome = match serde_json::from_str::<GitHubEvent>(&row.event) {
                    Ok(event) => self.apply(github, &event).await?,
                    Err(_) => "unreadable stored event".to_owned(),
                };
                tracing::info!(github.delivery = %row.delivery_id, outcome = %outcome, "GitHub delivery applied");
                self.store
                    .github_processed(row.seq, &outcome, self.clock.now_ms())
                    .await?;
            }
        }
    }

    async fn apply(&self, github: &GitHubReviews, event: &GitHubEvent) -> Applied {
        let (number, kind) = match event {
            GitHubEvent::Review(r) => (r.pull.number, "review"),
            GitHubEvent::PullRequest(p) => (p.pull.number, "pull request"),
            GitHubEvent::Comment(c) => (c.issue, "comment"),
            _ => return Ok("ignored".into()),
        };
        if let Some(source) = event.source()
            && let Err(foreign) = check_origin(source, github.identity().await?)
        {
            tracing::debug!(
                reason = foreign.as_str(),
                "GitHub delivery about another repository or installation ignored"
            );
            return Ok(format!("{kind} on #{number}: {}", foreign.as_str()));
        }
        let Some(row) = self.store.request_by_review(&number.to_string()).await? else {
            return Ok(format!("{kind} on #{number}: not a countersign review"));
        };
        let bot = self.bot_login(github).await?;
        match event {
            GitHubEvent::Review(r) => self.apply_review(github, &row, r, &bot).await,
            GitHubEvent::PullRequest(p) => {
                let sender = p.source.sender.as_str();
                match p.action {
                    PullRequestAction::Synchronize if sender == bot => {
                        self.withdraw(&row, None, "new commits make earlier approvals stale", &bot)
                            .await
                    }
                    PullRequestAction::Synchronize => {
                        let reason = format!(
                            "@{sender} pushed to the pull request; the content under review must not change"
                        );
                        self.system_deny(&row, &reason).await
                    }
                    PullRequestAction::Closed { merged: true } => {
                        let by = p.pull.merged_by.as_deref().unwrap_or(sender);
                        if by == bot {
                            Ok("merged by countersign".into())
                        } else {
                            self.merged_by_someone_else(&row, by).await
                        }
                    }
                    PullRequestAction::Closed { .. } if sender == bot => {
                        Ok("closed by countersign".into())
                    }
                    PullRequestAction::Closed { .. } => self.cancel(&row, sender).await,
                    PullRequestAction::Reopened => {
                        if row.state().is_final() {
                            self.store.republish(&row.request_id()).await?;
                            self.wake.notify_one();
                            Ok(format!("reopened, but the request is {}", row.state))
                        } else {
                            Ok("reopened".into())
                        }
                    }
                }
            }
            GitHubEvent::Comment(c) => {
                if c.action == CommentAction::Edited {
                    return Ok("edited comment ignored".into());
                }
                let Some(reason) = deny_command(&c.body) else {
                    return Ok("comment".into());
                };
                self.human_decision(github, &row, &c.author, ReviewDecision::Deny, Some(reason))
                    .await
            }
            _ => Ok("ignored".into()),
        }
    }

    async fn apply_review(
        &self,
        github: &GitHubReviews,
        row: &RequestRow,
        r: &ReviewEvent,
        bot: &str,
    ) -> Applied {
        match (r.action, r.state) {
            (ReviewAction::Dismissed, _) | (_, ReviewState::Dismissed) => {
                self.withdraw(
                    row,
                    Some(&r.reviewer),
                    "the review was dismissed on GitHub",
                    bot,
                )
                .await
            }
            (_, ReviewState::Approved) => {
                self.github_approval(github, row, &r.reviewer, r.commit_id.as_deref(), bot)
                    .await
            }
            (_, ReviewState::ChangesRequested) => {
                let reason = r
                    .body
                    .as_deref()
                    .map(str::trim)
                    .filter(|b| !b.is_empty())
                    .unwrap_or("changes requested on GitHub");
                self.human_decision(github, row, &r.reviewer, ReviewDecision::Deny, Some(reason))
                    .await
            }
            _ => Ok("review without a decision".into()),
        }
    }

    /// An `APPROVED` review: counted only on the head countersign pushed, still current.
    async fn github_approval(
        &self,
        github: &GitHubReviews,
        row: &RequestRow,
        login: &str,
        commit: Option<&str>,
        bot: &str,
    ) -> Applied {
        let id = row.request_id();
        if row.state() != State::PendingReview {
            return Ok(format!(
                "approval by @{login} after the request was {}",
                row.state
            ));
        }
        if login == bot {
            self.refuse_approval(row, login, "is countersign itself")
                .await?;
            return Ok("countersign's own approval ignored".into());
        }
        let expected = row.review_head.as_deref().unwrap_or("");
        let number: u64 = row.review_ref.as_deref().unwrap_or("").parse().unwrap_or(0);
        let pull = github.client.get_pull(number).await?;
        if pull.is_merged() && pull.merger() != Some(bot) {
            // The merge's webhook was lost or is still queued behind this one.
            let by = pull.merger().unwrap_or("someone").to_owned();
            return self.merged_by_someone_else(row, &by).await;
        }
        let head = pull.head.sha;
        if commit != Some(expected) || head != expected {
            let on = commit
                .map(|c| &c[..c.len().min(12)])
                .unwrap_or("a vanished commit");
            self.refuse_approval(
                row,
                login,
                &format!("approved commit {on}, not the commit under review"),
            )
            .await?;
            tracing::warn!(request.id = %id, reviewer.name = login, "approval on another commit not counted");
            return Ok(format!(
                "approval by @{login} on another commit not counted"
            ));
        }
        self.human_decision(github, row, login, ReviewDecision::Approve, None)
            .await
    }

    /// Records a human's decision with the teams GitHub says they are in.
    async fn human_decision(
        &self,
        github: &GitHubReviews,
        row: &RequestRow,
        login: &str,
        decision: ReviewDecision,
        reason: Option<&str>,
    ) -> Applied {
        let teams = self.teams_of(github, row, login).await?;
        let who = ReviewerIdentity {
            name: login,
            email: None,
            teams: &teams,
        };
        let what = decision.as_str();
        Ok(
            match self
                .review_as(&row.request_id(), &who, decision, reason)
                .await
            {
                Ok(state) => format!("{what} by @{login} recorded; request {state}"),
                Err(ReviewError::Store(e)) => return Err(Retry::Later(format!("{e:#}"))),
                Err(e) => format!("{what} by @{login} not counted: {e}"),
            },
        )
    }

    /// The `org/team` owners of the request's requirements, and the agent's owner teams
    /// known only to GitHub, that `login` is an active member of, asked of GitHub (answers
    /// cached for a minute).
    async fn teams_of(
        &self,
        github: &GitHubReviews,
        row: &RequestRow,
        login: &str,
    ) -> Result<Vec<String>, Retry> {
        let Some(eval) = row.evaluation()? else {
            return Ok(vec![]);
        };
        let mut wanted: Vec<String> = eval
            .requirements
            .iter()
            .flat_map(|r| {
                approval::team_owners(r)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        wanted.extend(self.exclusions(&row.agent_id, &eval).forge_teams());
        Ok(self.forge_team_membership(github, login, wanted).await?)
    }

    /// Which of `teams` (`org/team`) `login` is an active member of, asked of GitHub (answers
    /// cached for a minute).
    pub(super) async fn forge_team_membership(
        &self,
        github: &GitHubReviews,
        login: &str,
        mut wanted: Vec<String>,
    ) -> Result<Vec<String>, ForgeError> {
        wanted.sort_by_key(|t| t.to_lowercase());
        wanted.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        let mut member_of = Vec::new();
        for team in wanted {
            let Some((org, slug)) = team.split_once('/') else {
                continue;
            };
            let key = (team.to_lowercase(), login.to_lowercase());
            let cached = github
                .teams
                .lock()
                .expect("team cache")
                .get(&key)
                .filter(|(_, at)| at.elapsed() < TEAM_CACHE)
                .map(|(m, _)| *m);
            let member = match cached {
                Some(m) => m,
                None => {
                    let m = github.client.is_team_member(org, slug, login).await?;
                    github
                        .teams
                        .lock()
                        .expect("team cache")
                        .insert(key, (m, Instant::now()));
                    m
                }
            };
            if member {
                member_of.push(team);
            }
        }
        Ok(member_of)
    }

    async fn bot_login(&self, github: &GitHubReviews) -> Result<String, Retry> {
        if let Some(b) = github.bot.lock().expect("bot login").clone() {
            return Ok(b);
        }
        let login = github.client.bot_login().await?;
        *github.bot.lock().expect("bot login") = Some(login.clone());
        Ok(login)
    }

    async fn refuse_approval(&self, row: &RequestRow, login: &str, why: &str) -> Result<(), Retry> {
        self.store
            .record_refusal(&row.request_id(), login, why, self.clock.now_ms())
            .await?;
        Ok(())
    }

    async fn withdraw(
        &self,
        row: &RequestRow,
        reviewer: Option<&str>,
        why: &str,
        actor: &str,
    ) -> Applied {
        let id = row.request_id();
        match self
            .store
            .withdraw_approvals(&id, reviewer, why, actor, self.clock.now_ms())
            .await
        {
            Ok(n) => Ok(format!("{n} approval(s) withdrawn: {why}")),
            Err(TransitionError::Store(e)) => Err(e.into()),
            Err(e) => Ok(format!("nothing withdrawn: {e}")),
        }
    }

    /// A denial countersign itself decides (the content changed under review).
    async fn system_deny(&self, row: &RequestRow, reason: &str) -> Applied {
        let denied = self
            .deny_as_countersign(row, reason, json!({ "source": "github" }))
            .await?;
        if denied.is_ok() {
            tracing::warn!(request.id = %row.id, reason, "request denied: its pull request changed");
        }
        Ok(denied.unwrap_or_else(|e| format!("not denied: {e}")))
    }

    /// Records countersign's own denial of a request under review, with `detail` in its event;
    /// `Err` carries why it was not denied (it was no longer pending).
    async fn deny_as_countersign(
        &self,
        row: &RequestRow,
        reason: &str,
        detail: Value,
    ) -> Result<Result<String, TransitionError>, Retry> {
        let review = NewReview {
            reviewer: approval::BOT_IDENTITY,
            teams: &[],
            decision: "deny",
            reason: Some(reason),
            digest: &row.digest,
            detail: Some(&detail),
        };
        match self
            .store
            .record_review(&row.request_id(), review, self.clock.now_ms(), |_| {
                Some(State::Denied)
            })
            .await
        {
            Ok(_) => {
                self.wake.notify_one();
                Ok(Ok(format!("denied: {reason}")))
            }
            Err(TransitionError::Store(e)) => Err(e.into()),
            Err(e) => Ok(Err(e)),
        }
    }

    /// A person merged the request's pull request: the change reached the base branch without
    /// countersign. A request still under review is denied (recorded with who merged, and
    /// never executed); one approved already is left to its execution, which refuses to take
    /// a merge it did not make as its own.
    async fn merged_by_someone_else(&self, row: &RequestRow, by: &str) -> Applied {
        let reason = format!("{MERGED_WITHOUT_APPROVAL}{by}");
        tracing::error!(request.id = %row.id, github.user = by, "the request's pull request was merged without countersign");
        let detail = json!({ "source": "github", "merged_by": by });
        let denied = self.deny_as_countersign(row, &reason, detail).await?;
        Ok(denied.unwrap_or_else(|e| format!("merged by @{by}; not denied: {e}")))
    }

    async fn cancel(&self, row: &RequestRow, by: &str) -> Applied {
        let id = row.request_id();
        let detail = json!({ "reason": format!("the pull request was closed by @{by}") });
        match self
            .store
            .cancel(&id, by, &detail, self.clock.now_ms())
            .await
        {
            Ok(()) => {
                tracing::info!(request.id = %id, github.user = by, "request cancelled: its pull request was closed");
                self.wake.notify_one();
                Ok("cancelled".into())
            }
            Err(TransitionError::Store(e)) => Err(e.into()),
            Err(e) => Ok(format!("not cancelled: {e}")),
        }
    }

    /// Applies what lost webhooks would have: closed pull requests, foreign pushes, the latest
    /// review of each reviewer and `/deny` comments. Returns how many requests were pending.
    pub(crate) async fn reconcile(&self, github: &GitHubReviews) -> Result<usize, Retry> {
        let pending = self.store.pending_reviews().await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let bot = self.bot_login(github).await?;
        // Only countersign's own pull requests are read, one by one: never every open pull
        // request of a busy repository.
        for row in &pending {
            let Ok(number) = row.review_ref.as_deref().unwrap_or("").parse::<u64>() else {
                continue;
            };
            let pull = github.client.get_pull(number).await?;
            if pull.is_merged() {
                if pull.merger() != Some(bot.as_str()) {
                    let by = pull.merger().unwrap_or("someone").to_owned();
                    let outcome = self.merged_by_someone_else(row, &by).await?;
                    tracing::info!(request.id = %row.id, outcome = %outcome, "reconciled a merge from GitHub");
                }
                continue;
            }
            if !pull.is_open() {
                self.cancel(row, "github").await?;
                continue;
            }
            if row
                .review_head
                .as_deref()
                .is_some_and(|head| head != pull.head.sha)
            {
                let reason = "the pull request's head moved after countersign opened it; the content under review must not change";
                self.system_deny(row, reason).await?;
                continue;
            }
            let events = self.store.events(&row.request_id()).await?;
            let recorded = self.store.reviews(&row.request_id()).await?;
            // GitHub's rule: a reviewer's latest approving or blocking review is their decision.
            let mut latest: HashMap<String, &crate::forge::github::Review> = HashMap::new();
            let reviews = github.client.reviews(number).await?;
            for r in &reviews {
                let Some(login) = r.user.as_ref().map(|u| u.login.clone()) else {
                    continue;
                };
                if matches!(
                    r.state.as_str(),
                    "APPROVED" | "CHANGES_REQUESTED" | "DISMISSED"
                ) {
                    latest.insert(login, r);
                }
            }
            for (login, r) in latest {
                let seen = recorded.iter().any(|x| x.reviewer == login)
                    || events
                        .iter()
                        .any(|e| e.kind == "approval_refused" && e.actor == login);
                let outcome = match r.state.as_str() {
                    "APPROVED" if !seen => {
                        self.github_approval(github, row, &login, r.commit_id.as_deref(), &bot)
                            .await?
                    }
                    "CHANGES_REQUESTED" => {
                        let reason = r
                            .body
                            .as_deref()
                            .map(|b| self.masker.text(b.trim()))
                            .filter(|b| !b.is_empty())
                            .unwrap_or_else(|| "changes requested on GitHub".to_owned());
                        self.human_decision(
                            github,
                            row,
                            &login,
                            ReviewDecision::Deny,
                            Some(&reason),
                        )
                        .await?
                    }
                    "DISMISSED"
                        if recorded
                            .iter()
                            .any(|x| x.reviewer == login && x.decision == "approve") =>
                    {
                        self.withdraw(
                            row,
                            Some(&login),
                            "the review was dismissed on GitHub",
                            &bot,
                        )
                        .await?
                    }
                    _ => continue,
                };
                tracing::info!(request.id = %row.id, reviewer.name = %login, outcome = %outcome, "reconciled a review from GitHub");
            }
            // `/deny` comments whose webhook was lost. Edited comments are ignored, as live; REST
            // tells an edit only by `updated_at` (whole seconds), so an edit within the second
            // of posting is taken as written.
            for c in github.client.comments(number).await? {
                let (Some(user), Some(body)) = (c.user.as_ref(), c.body.as_deref()) else {
                    continue;
                };
                if c.updated_at != c.created_at {
                    continue;
                }
                let Some(reason) = deny_command(body) else {
                    continue;
                };
                let reason = self.masker.text(reason);
                let outcome = self
                    .human_decision(
                        github,
                        row,
                        &user.login,
                        ReviewDecision::Deny,
                        Some(&reason),
                    )
                    .await?;
                tracing::info!(request.id = %row.id, reviewer.name = %user.login, outcome = %outcome, "reconciled a /deny comment from GitHub");
            }
        }
        Ok(pending.len())
    }
}

/// The reason of a `/deny <reason>` comment (a default when none is given), or `None` when
/// the comment is not a denial.
fn deny_command(body: &str) -> Option<&str> {
    let rest = body.trim_start().strip_prefix("/deny")?;
    if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return None;
    }
    Some(match rest.trim() {
        "" => "denied on GitHub with /deny (no reason given)",
        r => r,
    })
}

/// How long the review inbox waits after `failures` failures in a row.
pub(crate) fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(9)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(repository_id: Option<u64>, installation_id: Option<u64>) -> Source {
        Source {
            repository: Some("acme/gitops".into()),
            repository_id,
            installation_id,
            sender: "bob".into(),
        }
    }

    #[test]
    fn only_countersigns_repository_id_and_installation_are_its_own() {
        let ours = (42, 7);
        assert_eq!(check_origin(&source(Some(42), Some(7)), ours), Ok(()));
        // The same name is not enough: a repository recreated under it has another id.
        assert_eq!(
            check_origin(&source(Some(43), Some(7)), ours),
            Err(Foreign::Repository)
        );
        assert_eq!(
            check_origin(&source(None, Some(7)), ours),
            Err(Foreign::Repository)
        );
        assert_eq!(
            check_origin(&source(Some(42), Some(8)), ours),
            Err(Foreign::Installation)
        );
        assert_eq!(
            check_origin(&source(Some(42), None), ours),
            Err(Foreign::Installation)
        );
    }
}
