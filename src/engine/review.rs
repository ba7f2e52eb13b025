//! Review decisions under the policy: who may approve or deny, counting approvals per
//! requirement from distinct eligible humans, and the transition once every requirement is met.

use super::{Engine, State};
use crate::policy::Evaluation;
use crate::policy::approval::{self, Exclusions, Ineligible};
use crate::policy::owners::{self, Resolved};
use crate::request::RequestId;
use crate::request::identity::Reviewer;
use crate::store::{NewReview, RequestRow, ReviewRow, TransitionError};
use serde_json::json;
use std::collections::HashMap;

/// A recorded approval, as the policy counts it.
pub(super) struct Approver {
    name: String,
    email: Option<String>,
    teams: Vec<String>,
}

/// Borrowed views of approvers for the policy functions.
pub(super) fn as_reviewers(list: &[Approver]) -> Vec<approval::Reviewer<'_>> {
    list.iter()
        .map(|a| approval::Reviewer {
            name: &a.name,
            email: a.email.as_deref(),
            teams: &a.teams,
        })
        .collect()
}

/// Who is reviewing: a configured reviewer (API, CLI) or a forge identity (a GitHub login,
/// with the teams GitHub says it is in).
pub struct ReviewerIdentity<'a> {
    pub name: &'a str,
    pub email: Option<&'a str>,
    pub teams: &'a [String],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewDecision {
    Approve,
    Deny,
}

impl ReviewDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewDecision::Approve => "approve",
            ReviewDecision::Deny => "deny",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("request not found")]
    NotFound,
    #[error("{reviewer} {} and cannot approve this request", .why.explain())]
    NotEligible { reviewer: String, why: Ineligible },
    #[error("{0} is not an owner of any rule this request matched and cannot deny it")]
    MayNotDeny(String),
    #[error("{0} has already approved this request")]
    AlreadyApproved(String),
    #[error("request is {0}; only pending_review requests can be reviewed")]
    NotPending(State),
    #[error("request has expired")]
    Expired,
    #[error("request has no policy evaluation and can never be approved")]
    NoPolicy,
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl Engine {
    /// Who can never approve a request of `agent`: the agent's owners from `agents.toml` (as
    /// resolved under the request's pinned policy) and from the configuration (resolved now,
    /// through the current `teams.toml`, or left to GitHub for teams it alone knows), every
    /// form through [`owners::resolve`]; e-mail owners also exclude the configured reviewers
    /// with that address. An owner nothing can resolve excludes everyone (fail closed).
    pub(crate) fn exclusions(&self, agent: &str, eval: &Evaluation) -> Exclusions {
        let mut agent_owners = eval.agent_owners.clone();
        let mut unresolved_owners = Vec::new();
        if let Some(a) = crate::request::AgentId::parse(agent).and_then(|a| self.agents.get(&a)) {
            let loaded = self.policy();
            let no_teams = HashMap::new();
            let teams = loaded.policy.as_ref().map_or(&no_teams, |p| p.teams());
            let remote_teams = self.teams.is_some();
            for raw in &a.owners {
                // Checked at start-up; anything else fails closed.
                let Ok(owner) = owners::parse(raw) else {
                    unresolved_owners.push(raw.clone());
                    continue;
                };
                match owners::resolve(&owner, teams, remote_teams) {
                    Resolved::Owners(resolved) => agent_owners.extend(resolved),
                    Resolved::Undefined(team) => unresolved_owners.push(team),
                }
            }
        }
        let by_address: Vec<String> = self
            .reviewers
            .iter()
            .filter(|r| {
                r.email
                    .as_deref()
                    .is_some_and(|e| agent_owners.iter().any(|o| o.eq_ignore_ascii_case(e)))
            })
            .map(|r| r.name.clone())
            .collect();
        agent_owners.extend(by_address);
        if !unresolved_owners.is_empty() {
            // Reported to whoever tries to approve (and recorded as a refusal) rather than
            // here, where every status view passes.
            tracing::debug!(agent.id = agent, agent.owners = ?unresolved_owners, "owners of the agent cannot be resolved (not in teams.toml)");
        }
        Exclusions {
            agent: agent.to_owned(),
            agent_owners,
            registered_agents: self.agents.keys().map(|a| a.as_str().to_owned()).collect(),
            unresolved_owners,
        }
    }

    /// The approvals recorded on the request's current digest, with reviewers' e-mails and
    /// the teams they were in when they approved.
    pub(super) fn approvals(&self, row: &RequestRow, reviews: &[ReviewRow]) -> Vec<Approver> {
        reviews
            .iter()
            .filter(|r| r.decision == "approve" && r.digest == row.digest)
            .map(|r| Approver {
                name: r.reviewer.clone(),
                email: self.email_of(&r.reviewer).map(str::to_owned),
                teams: r.teams(),
            })
            .collect()
    }

    fn email_of(&self, name: &str) -> Option<&str> {
        self.reviewers
            .iter()
            .find(|r| r.name == name)
            .and_then(|r| r.email.as_deref())
    }

    /// Records a reviewer's decision under the request's pinned policy evaluation.
    pub async fn review(
        &self,
        id: &RequestId,
        reviewer: &Reviewer,
        decision: ReviewDecision,
        reason: Option<&str>,
    ) -> Result<State, ReviewError> {
        let teams = self.owner_teams_of(id, &reviewer.name).await?;
        let who = ReviewerIdentity {
            name: &reviewer.name,
            email: reviewer.email.as_deref(),
            teams: &teams,
        };
        self.review_as(id, &who, decision, reason).await
    }

    /// The agent's owner teams known only to the forge that `name` (taken as a forge login) is
    /// a member of, so that the agent's owners are excluded on this path as on the forge.
    async fn owner_teams_of(&self, id: &RequestId, name: &str) -> Result<Vec<String>, ReviewError> {
        let Some(directory) = self.teams.as_ref() else {
            return Ok(vec![]);
        };
        let Some(row) = self.store.get_request(id).await? else {
            return Ok(vec![]);
        };
        let Some(eval) = row.evaluation()? else {
            return Ok(vec![]);
        };
        let wanted = self.exclusions(&row.agent_id, &eval).forge_teams();
        if wanted.is_empty() {
            return Ok(vec![]);
        }
        directory.teams_of(name, wanted).await.map_err(|e| {
            ReviewError::Store(anyhow::anyhow!(
                "cannot ask the forge for team membership: {e}"
            ))
        })
    }

    /// Records a decision by any reviewer identity (see [`Engine::review`]).
    pub async fn review_as(
        &self,
        id: &RequestId,
        reviewer: &ReviewerIdentity<'_>,
        decision: ReviewDecision,
        reason: Option<&str>,
    ) -> Result<State, ReviewError> {
        let row = self
            .store
            .get_request(id)
            .await?
            .ok_or(ReviewError::NotFound)?;
        let eval = row.evaluation()?.ok_or(ReviewError::NoPolicy)?;
        let exclusions = self.exclusions(&row.agent_id, &eval);
        let who = approval::Reviewer {
            name: reviewer.name,
            email: reviewer.email,
            teams: reviewer.teams,
        };
        let now = self.clock.now_ms();
        let counted = match decision {
            ReviewDecision::Approve => match approval::check_approver(&eval, who, &exclusions) {
                Ok(counted) => counted,
                Err(why) => {
                    if let Err(e) = self
                        .store
                        .record_refusal(id, reviewer.name, why.explain(), now)
                        .await
                    {
                        tracing::error!(request.id = %id, error = %e, "could not record a refused approval");
                    }
                    tracing::warn!(request.id = %id, reviewer.name = %reviewer.name, reason = why.explain(), "approval refused");
                    return Err(ReviewError::NotEligible {
                        reviewer: reviewer.name.to_owned(),
                        why,
                    });
                }
            },
            ReviewDecision::Deny if approval::may_deny(&eval, who, &exclusions) => vec![],
            ReviewDecision::Deny => {
                return Err(ReviewError::MayNotDeny(reviewer.name.to_owned()));
            }
        };
        let state = row.state();
        if state == State::PendingReview && row.expires_at <= now {
            self.expire_now(now).await;
            return Err(ReviewError::Expired);
        }
        if state != State::PendingReview {
            return Err(ReviewError::NotPending(state));
        }
        let reviews = self.store.reviews(id).await?;
        if decision == ReviewDecision::Approve
            && self
                .approvals(&row, &reviews)
                .iter()
                .any(|a| a.name == reviewer.name)
        {
            return Err(ReviewError::AlreadyApproved(reviewer.name.to_owned()));
        }
        let counted_for: Vec<_> = counted
            .iter()
            .map(|&i| json!({ "section": eval.requirements[i].section, "line": eval.requirements[i].line }))
            .collect();
        let detail = json!({ "counted_for": counted_for, "policy_commit": eval.policy_commit });
        // Reasons are free text: they are stored and shown masked.
        let masked_reason = reason.map(|r| self.masker.text(r));
        let review = NewReview {
            reviewer: reviewer.name,
            teams: reviewer.teams,
            decision: decision.as_str(),
            reason: masked_reason.as_deref(),
            digest: &row.digest,
            detail: Some(&detail),
        };
        let decide = |all: &[ReviewRow]| match decision {
            ReviewDecision::Deny => Some(State::Denied),
            ReviewDecision::Approve => {
                let approvals = self.approvals(&row, all);
                approval::satisfied(&eval, &as_reviewers(&approvals), &exclusions)
                    .then_some(State::Approved)
            }
        };
        match self.store.record_review(id, review, now, &decide).await {
            Ok(to) => {
                tracing::info!(request.id = %id, reviewer.name = %reviewer.name, review.decision = decision.as_str(), request.state = %to, "review recorded");
                if to != State::PendingReview {
                    self.wake.notify_one();
                }
                if to == State::Approved {
                    self.exec_wake.notify_one();
                }
                Ok(to)
            }
            Err(TransitionError::Conflict(c)) if c.actual == State::PendingReview => {
                // Still pending but past its deadline.
                self.expire_now(now).await;
                Err(ReviewError::Expired)
            }
            Err(TransitionError::Conflict(c)) => Err(ReviewError::NotPending(c.actual)),
            Err(TransitionError::NotFound) => Err(ReviewError::NotFound),
            Err(TransitionError::AlreadyApproved) => {
                Err(ReviewError::AlreadyApproved(reviewer.name.to_owned()))
            }
            Err(TransitionError::Store(e)) => Err(ReviewError::Store(e)),
        }
    }
}
