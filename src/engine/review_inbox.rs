//! Decisions people make on the forge itself (GitHub pull request reviews), applied through the
//! forge's [`ReviewHost`] in forge-neutral words ([`ReviewEvent`]). A verified delivery reaches
//! [`Engine::forge_event`], which only queues it (once per delivery id, free text masked); the
//! review inbox job applies the queue in order, one event at a time, so concurrent webhooks
//! cannot race. Reconciliation (at start-up and every `reconcile_interval`) re-reads the pending
//! reviews, their decisions and deny commands and applies whatever a lost webhook missed.
//!
//! Only events about countersign's repository (matched by its numeric id) from its own
//! installation act: a GitHub App has one webhook URL for all its installations and
//! repositories, so a `/deny` on another repository's pull request #10 is not about request
//! #10's. Others are acknowledged and ignored.
//!
//! The rules: an approval counts only on the commit countersign pushed, while that is still the
//! review's head, from a reviewer eligible under the pinned policy (`@org/team` owners checked
//! through the forge's [`TeamDirectory`]); a denial from someone who may deny denies; a
//! dismissed review withdraws the approval; a push by anyone but countersign denies (the content
//! must not change under review); closing the review cancels; a merge by anyone but countersign
//! before the request executed denies it ("merged without approval by @login": the change
//! reached the base branch unapproved, and is never counted as an execution); reopening a
//! decided one shows the decision again.

use super::review::{ReviewDecision, ReviewError, ReviewerIdentity};
use super::{Engine, State};
use crate::forge::{Foreign, ForgeError, ReviewAction, ReviewEvent, ReviewHost, ReviewState};
use crate::policy::approval;
use crate::store::{NewReview, RequestRow, TransitionError};
use serde_json::{Value, json};
use std::time::Duration;

const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long a webhook answer may wait for countersign's repository and installation ids.
const IDENTITY_TIMEOUT: Duration = Duration::from_secs(5);
/// The start of the reason a request is denied with when a person merged its pull request.
pub const MERGED_WITHOUT_APPROVAL: &str = "merged without approval by @";

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued, to be applied in order.
    Queued,
    /// Seen before (a redelivery): not queued again.
    Duplicate,
    /// Nothing countersign acts on (`ping`, other events and actions).
    Ignored,
    /// About another repository or installation of the App: never acted on.
    Foreign(Foreign),
}

/// Why an event could not be applied now.
pub(crate) enum Retry {
    /// The forge could not be asked (down, rate limited): keep the event, try later.
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
    /// A verified delivery from the forge, in the forge's common words (`None`: nothing
    /// countersign acts on); `delivery` is its id (`X-GitHub-Delivery`). Queued once; a
    /// repeated delivery id is acknowledged and ignored, and so is an event about another
    /// repository or installation (nothing is stored for it). When countersign's ids cannot be
    /// learnt now, the event is queued and checked when it is applied.
    pub async fn forge_event(
        &self,
        delivery: &str,
        event: Option<ReviewEvent>,
    ) -> anyhow::Result<Delivery> {
        let (Some(host), Some(event)) = (self.review_host.as_ref(), event) else {
            tracing::debug!(forge.delivery = delivery, "forge delivery ignored");
            return Ok(Delivery::Ignored);
        };
        if let Some(origin) = &event.origin
            && let Ok(Ok(Err(foreign))) =
                tokio::time::timeout(IDENTITY_TIMEOUT, host.check_origin(origin)).await
        {
            tracing::debug!(
                forge.delivery = delivery,
                forge.repository_id = origin.repository_id,
                forge.installation_id = origin.installation_id,
                reason = foreign.as_str(),
                "forge delivery about another repository or installation ignored"
            );
            return Ok(Delivery::Foreign(foreign));
        }
        let event = self.masked(event);
        let fresh = self
            .store
            .github_enqueue(
                delivery,
                &serde_json::to_string(&event)?,
                event.review.parse().ok(),
                self.clock.now_ms(),
            )
            .await?;
        if fresh {
            self.inbox_wake.notify_one();
            Ok(Delivery::Queued)
        } else {
            tracing::info!(
                forge.delivery = delivery,
                "duplicate forge delivery ignored"
            );
            Ok(Delivery::Duplicate)
        }
    }

    /// Free text people typed on the forge is stored masked, like every review reason.
    fn masked(&self, mut event: ReviewEvent) -> ReviewEvent {
        if let ReviewAction::Denied { reason } = &mut event.action {
            *reason = self.masker.text(reason);
        }
        event
    }

    /// Applies the queued events in order.
    pub(crate) async fn apply_inbox(&self, host: &dyn ReviewHost) -> Result<(), Retry> {
        loop {
            let rows = self.store.github_pending(32).await?;
            if rows.is_empty() {
                return Ok(());
            }
            for row in rows {
                let event = serde_json::from_str::<ReviewEvent>(&row.event)
                    .ok()
                    .or_else(|| host.legacy_event(&row.event).map(|e| self.masked(e)));
                let outcome = match event {
                    Some(event) => self.apply(host, &event).await?,
                    None => "unreadable stored event".to_owned(),
                };
                tracing::info!(forge.delivery = %row.delivery_id, outcome = %outcome, "forge delivery applied");
                self.store
                    .github_processed(row.seq, &outcome, self.clock.now_ms())
                    .await?;
            }
        }
    }

    async fn apply(&self, host: &dyn ReviewHost, event: &ReviewEvent) -> Applied {
        let review = event.review.as_str();
        if let Some(origin) = &event.origin
            && let Err(foreign) = host.check_origin(origin).await?
        {
            tracing::debug!(
                reason = foreign.as_str(),
                "forge delivery about another repository or installation ignored"
            );
            return Ok(format!("event on #{review}: {}", foreign.as_str()));
        }
        let Some(row) = self.store.request_by_review(review).await? else {
            return Ok(format!("event on #{review}: not a countersign review"));
        };
        let bot = host.own_login().await?;
        let (forge, noun) = host.labels();
        let actor = event.actor.as_str();
        let by_bot = actor == bot;
        match &event.action {
            ReviewAction::Approved { commit } => {
                self.forge_approval(host, &row, actor, commit.as_deref(), &bot)
                    .await
            }
            ReviewAction::Denied { reason } => {
                self.human_decision(&row, actor, ReviewDecision::Deny, Some(reason))
                    .await
            }
            ReviewAction::Dismissed => {
                let why = format!("the review was dismissed on {forge}");
                self.withdraw(&row, Some(actor), &why, &bot).await
            }
            ReviewAction::Pushed if by_bot => {
                self.withdraw(&row, None, "new commits make earlier approvals stale", &bot)
                    .await
            }
            ReviewAction::Pushed => {
                let reason = format!(
                    "@{actor} pushed to the {noun}; the content under review must not change"
                );
                self.system_deny(&row, &reason).await
            }
            ReviewAction::Merged if by_bot => Ok("merged by countersign".into()),
            ReviewAction::Merged => self.merged_by_someone_else(&row, actor).await,
            ReviewAction::Closed if by_bot => Ok("closed by countersign".into()),
            ReviewAction::Closed => self.cancel(&row, actor, noun).await,
            ReviewAction::Reopened => {
                if row.state().is_final() {
                    self.store.republish(&row.request_id()).await?;
                    self.wake.notify_one();
                    Ok(format!("reopened, but the request is {}", row.state))
                } else {
                    Ok("reopened".into())
                }
            }
            ReviewAction::Noted { note } => Ok(note.clone()),
        }
    }

    /// An approval: counted only on the head countersign pushed, still current.
    async fn forge_approval(
        &self,
        host: &dyn ReviewHost,
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
        let status = host.status(row.review_ref.as_deref().unwrap_or("")).await?;
        if let ReviewState::Merged { by } = &status.state
            && by.as_deref() != Some(bot)
        {
            // The merge's event was lost or is still queued behind this one.
            let by = by.as_deref().unwrap_or("someone");
            return self.merged_by_someone_else(row, by).await;
        }
        if commit != Some(expected) || status.head != expected {
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
        self.human_decision(row, login, ReviewDecision::Approve, None)
            .await
    }

    /// Records a human's decision with the teams the forge says they are in.
    async fn human_decision(
        &self,
        row: &RequestRow,
        login: &str,
        decision: ReviewDecision,
        reason: Option<&str>,
    ) -> Applied {
        let teams = self.teams_of(row, login).await?;
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
    /// known only to the forge, that `login` is an active member of.
    async fn teams_of(&self, row: &RequestRow, login: &str) -> Result<Vec<String>, Retry> {
        let Some(directory) = self.teams.as_ref() else {
            return Ok(vec![]);
        };
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
        Ok(directory.teams_of(login, wanted).await?)
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
            .deny_as_countersign(row, reason, json!({ "source": self.forge.name() }))
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
            .record_review(&row.request_id(), review, self.clock.now_ms(), &|_| {
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
        tracing::error!(request.id = %row.id, forge.user = by, "the request's review was merged without countersign");
        let detail = json!({ "source": self.forge.name(), "merged_by": by });
        let denied = self.deny_as_countersign(row, &reason, detail).await?;
        Ok(denied.unwrap_or_else(|e| format!("merged by @{by}; not denied: {e}")))
    }

    async fn cancel(&self, row: &RequestRow, by: &str, noun: &str) -> Applied {
        let id = row.request_id();
        let detail = json!({ "reason": format!("the {noun} was closed by @{by}") });
        match self
            .store
            .cancel(&id, by, &detail, self.clock.now_ms())
            .await
        {
            Ok(()) => {
                tracing::info!(request.id = %id, forge.user = by, "request cancelled: its review was closed");
                self.wake.notify_one();
                Ok("cancelled".into())
            }
            Err(TransitionError::Store(e)) => Err(e.into()),
            Err(e) => Ok(format!("not cancelled: {e}")),
        }
    }

    /// Applies what lost webhooks would have: closed and merged reviews, foreign pushes, the
    /// latest decision of each reviewer and deny commands. Returns how many requests were
    /// pending.
    pub(crate) async fn reconcile(&self, host: &dyn ReviewHost) -> Result<usize, Retry> {
        let pending = self.store.pending_reviews().await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let bot = host.own_login().await?;
        let (_, noun) = host.labels();
        // Only countersign's own reviews are read, one by one: never every open pull request
        // of a busy repository.
        for row in &pending {
            let Some(review) = row.review_ref.as_deref().filter(|r| !r.is_empty()) else {
                continue;
            };
            let status = host.status(review).await?;
            match &status.state {
                ReviewState::Merged { by } => {
                    if by.as_deref() != Some(bot.as_str()) {
                        let by = by.as_deref().unwrap_or("someone");
                        let outcome = self.merged_by_someone_else(row, by).await?;
                        tracing::info!(request.id = %row.id, outcome = %outcome, "reconciled a merge from the forge");
                    }
                    continue;
                }
                ReviewState::Closed => {
                    self.cancel(row, self.forge.name(), noun).await?;
                    continue;
                }
                ReviewState::Open => {}
            }
            if row
                .review_head
                .as_deref()
                .is_some_and(|head| head != status.head)
            {
                let reason = format!(
                    "the {noun}'s head moved after countersign opened it; the content under review must not change"
                );
                self.system_deny(row, &reason).await?;
                continue;
            }
            let events = self.store.events(&row.request_id()).await?;
            let recorded = self.store.reviews(&row.request_id()).await?;
            for event in host.decisions(review).await? {
                let login = event.actor.as_str();
                let outcome = match &event.action {
                    ReviewAction::Approved { commit } => {
                        let seen = recorded.iter().any(|x| x.reviewer == login)
                            || events
                                .iter()
                                .any(|e| e.kind == "approval_refused" && e.actor == login);
                        if seen {
                            continue;
                        }
                        self.forge_approval(host, row, login, commit.as_deref(), &bot)
                            .await?
                    }
                    ReviewAction::Denied { reason } => {
                        let reason = self.masker.text(reason);
                        self.human_decision(row, login, ReviewDecision::Deny, Some(&reason))
                            .await?
                    }
                    ReviewAction::Dismissed
                        if recorded
                            .iter()
                            .any(|x| x.reviewer == login && x.decision == "approve") =>
                    {
                        let (forge, _) = host.labels();
                        let why = format!("the review was dismissed on {forge}");
                        self.withdraw(row, Some(login), &why, &bot).await?
                    }
                    _ => continue,
                };
                tracing::info!(request.id = %row.id, reviewer.name = %login, outcome = %outcome, "reconciled a decision from the forge");
            }
        }
        Ok(pending.len())
    }
}

/// How long the review inbox waits after `failures` failures in a row.
pub(crate) fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(9)).min(MAX_BACKOFF)
}
