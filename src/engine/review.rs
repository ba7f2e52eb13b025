//! Review decisions under the policy: who may approve or deny, counting approvals per
//! requirement from distinct eligible humans, and the transition once every requirement is met.

use super::{Engine, State};
use crate::config::Reviewer;
use crate::policy::Evaluation;
use crate::policy::approval::{self, Exclusions, Ineligible};
use crate::request::RequestId;
use crate::store::{NewReview, RequestRow, ReviewRow, TransitionError};
use crate::time;
use serde_json::json;

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
    /// Who can never approve a request of `agent`.
    pub(super) fn exclusions(&self, agent: &str, eval: &Evaluation) -> Exclusions {
        let mut agent_owners = eval.agent_owners.clone();
        if let Some(a) = crate::request::AgentId::parse(agent).and_then(|a| self.agents.get(&a)) {
            agent_owners.extend(
                a.owners
                    .iter()
                    .map(|o| o.trim_start_matches('@').to_owned()),
            );
        }
        Exclusions {
            agent: agent.to_owned(),
            agent_owners,
            registered_agents: self.agents.keys().map(|a| a.as_str().to_owned()).collect(),
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
        let who = ReviewerIdentity {
            name: &reviewer.name,
            email: reviewer.email.as_deref(),
            teams: &[],
        };
        self.review_as(id, &who, decision, reason).await
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
        let now = time::now_ms();
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
                    tracing::warn!(request.id = %id, reviewer = %reviewer.name, why = why.explain(), "approval refused");
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
        match self.store.record_review(id, review, now, decide).await {
            Ok(to) => {
                tracing::info!(request.id = %id, reviewer = %reviewer.name, decision = decision.as_str(), state = %to, "review recorded");
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
            Err(TransitionError::Store(e)) => Err(ReviewError::Store(e)),
        }
    }
}
