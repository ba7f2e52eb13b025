//! The request state machine: intake, reviews, expiry, and the background work that opens
//! reviews on the forge and shows decisions there. All state lives in the [`Store`]; this module
//! decides which transitions happen and in what order.

mod state;
mod worker;

pub use state::State;

use crate::config::{Agent, Reviewer, ServerConfig};
use crate::forge::Forge;
use crate::request::{AgentId, Digest, RequestId, Submission};
use crate::store::{InsertOutcome, NewRequest, NewReview, RequestRow, Store, TransitionError};
use crate::time;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::Notify;

/// Shared engine handle.
pub struct Engine {
    store: Store,
    forge: Arc<dyn Forge>,
    agents: HashMap<AgentId, Agent>,
    reviewers: Vec<Reviewer>,
    request_ttl: Duration,
    timestamp_skew: Duration,
    sweep_interval: Duration,
    wake: Notify,
}

/// The agent's view of a signed, verified submission.
pub struct Intake<'a> {
    pub agent: &'a AgentId,
    pub submission: Submission,
    pub signature: &'a str,
    pub timestamp: i64,
    pub idempotency_key: Option<&'a str>,
}

/// Result of a submission.
pub enum SubmitOutcome {
    /// Stored; the body of the 202 answer.
    Accepted(Value),
    /// An idempotent retry: the original answer.
    Repeated(Value),
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("this signature was already used; sign every call afresh")]
    Replay,
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    #[error(transparent)]
    Store(#[from] anyhow::Error),
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
    #[error("{reviewer} owns agent {agent} and cannot approve its requests")]
    SelfApproval { reviewer: String, agent: String },
    #[error("request is {0}; only pending_review requests can be reviewed")]
    NotPending(State),
    #[error("request has expired")]
    Expired,
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl Engine {
    pub fn new(store: Store, forge: Arc<dyn Forge>, config: &ServerConfig) -> Arc<Self> {
        Arc::new(Self {
            store,
            forge,
            agents: config
                .agents
                .iter()
                .map(|a| (a.id.clone(), a.clone()))
                .collect(),
            reviewers: config.reviewers.clone(),
            request_ttl: config.request_ttl,
            timestamp_skew: config.timestamp_skew,
            sweep_interval: config.sweep_interval,
            wake: Notify::new(),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn forge(&self) -> &Arc<dyn Forge> {
        &self.forge
    }

    pub fn agent(&self, id: &AgentId) -> Option<&Agent> {
        self.agents.get(id)
    }

    pub fn timestamp_skew(&self) -> Duration {
        self.timestamp_skew
    }

    /// Finds the reviewer holding `token`, comparing hashes in constant time.
    pub fn reviewer_for_token(&self, token: &str) -> Option<&Reviewer> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for r in &self.reviewers {
            if bool::from(r.token_sha256.ct_eq(&hash)) && found.is_none() {
                found = Some(r);
            }
        }
        found
    }

    /// Stores a verified submission durably; the review is opened in the background.
    pub async fn submit(&self, intake: Intake<'_>) -> Result<SubmitOutcome, SubmitError> {
        let id = RequestId::generate();
        let now = time::now_ms();
        let expires_at = now.saturating_add(time::duration_ms(self.request_ttl));
        let digest = intake.submission.digest(intake.agent);
        let fingerprint = intake.submission.fingerprint(intake.agent);
        let response = json!({
            "id": id.as_str(),
            "state": State::Received.as_str(),
            "digest": digest.as_str(),
            "status_url": format!("/v1/requests/{id}"),
            "created_at": time::rfc3339(now),
            "expires_at": time::rfc3339(expires_at),
        });
        // A signature stays usable while `|now - ts| <= skew` in whole seconds, i.e. until the
        // end of second `ts + skew`; remember it at least that long.
        let skew_ms = time::duration_ms(self.timestamp_skew) + 1000;
        let outcome = self
            .store
            .insert_request(NewRequest {
                id: id.clone(),
                agent: intake.agent.clone(),
                kind: intake.submission.kind.as_str(),
                action: intake.submission.action.clone(),
                resource: intake.submission.resource.clone(),
                environment: intake.submission.environment.clone(),
                digest: digest.clone(),
                submission_json: serde_json::to_string(&intake.submission)
                    .map_err(anyhow::Error::from)?,
                now_ms: now,
                expires_at,
                signature: intake.signature.to_owned(),
                signature_expires_at: intake
                    .timestamp
                    .saturating_mul(1000)
                    .saturating_add(skew_ms),
                idempotency: intake.idempotency_key.map(|k| (k.to_owned(), fingerprint)),
                response: response.to_string(),
            })
            .await?;
        match outcome {
            InsertOutcome::Inserted => {
                tracing::info!(request.id = %id, agent.id = %intake.agent, digest = %digest, "request received");
                self.wake.notify_one();
                Ok(SubmitOutcome::Accepted(response))
            }
            InsertOutcome::Repeat(original) => Ok(SubmitOutcome::Repeated(original)),
            InsertOutcome::KeyReused => Err(SubmitError::IdempotencyKeyReused),
            InsertOutcome::Replay => Err(SubmitError::Replay),
        }
    }

    /// Records a reviewer's decision. One approval approves (until the policy engine lands);
    /// owners of the submitting agent can never approve.
    pub async fn review(
        &self,
        id: &RequestId,
        reviewer: &Reviewer,
        decision: ReviewDecision,
        reason: Option<&str>,
    ) -> Result<State, ReviewError> {
        let row = self
            .store
            .get_request(id)
            .await?
            .ok_or(ReviewError::NotFound)?;
        let agent_id = row.agent_id.clone();
        let owns_agent = AgentId::parse(&agent_id)
            .and_then(|a| self.agents.get(&a))
            .is_some_and(|a| {
                a.owners
                    .iter()
                    .any(|o| o.trim_start_matches('@') == reviewer.name)
            });
        if decision == ReviewDecision::Approve && owns_agent {
            return Err(ReviewError::SelfApproval {
                reviewer: reviewer.name.clone(),
                agent: agent_id,
            });
        }
        let now = time::now_ms();
        let state = row.state();
        if state == State::PendingReview && row.expires_at <= now {
            self.expire_now(now).await;
            return Err(ReviewError::Expired);
        }
        if state != State::PendingReview {
            return Err(ReviewError::NotPending(state));
        }
        let to = match decision {
            ReviewDecision::Approve => State::Approved,
            ReviewDecision::Deny => State::Denied,
        };
        let review = NewReview {
            reviewer: &reviewer.name,
            decision: decision.as_str(),
            reason,
            digest: &row.digest,
        };
        match self.store.record_review(id, review, to, now).await {
            Ok(()) => {
                tracing::info!(request.id = %id, reviewer = %reviewer.name, decision = decision.as_str(), "review recorded");
                self.wake.notify_one();
                Ok(to)
            }
            Err(TransitionError::Conflict(c)) if c.actual == State::PendingReview => {
                // Still pending but the update did not apply: the deadline passed meanwhile.
                self.expire_now(now).await;
                Err(ReviewError::Expired)
            }
            Err(TransitionError::Conflict(c)) => Err(ReviewError::NotPending(c.actual)),
            Err(TransitionError::NotFound) => Err(ReviewError::NotFound),
            Err(TransitionError::Store(e)) => Err(ReviewError::Store(e)),
        }
    }

    /// Runs the expiry sweep immediately (used when a late review notices an expired request).
    async fn expire_now(&self, now: i64) {
        match self.store.expire_due(now).await {
            Ok(ids) if !ids.is_empty() => {
                for id in &ids {
                    tracing::info!(request.id = %id, "request expired");
                }
                self.wake.notify_one();
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "expiry sweep failed"),
        }
    }

    /// The status document for the submitting agent, or `None` if the request does not exist
    /// or belongs to another agent (callers answer 404 in both cases).
    pub async fn status(&self, id: &RequestId, agent: &AgentId) -> anyhow::Result<Option<Value>> {
        let Some(row) = self.store.get_request(id).await? else {
            return Ok(None);
        };
        if row.agent_id != agent.as_str() {
            return Ok(None);
        }
        let reviews = self.store.reviews(id).await?;
        Ok(Some(status_document(&row, &reviews)))
    }

    /// The request as a reviewer sees it: masked, with decisions.
    pub async fn review_view(&self, id: &RequestId) -> anyhow::Result<Option<Value>> {
        let Some(row) = self.store.get_request(id).await? else {
            return Ok(None);
        };
        let reviews = self.store.reviews(id).await?;
        let mut doc = status_document(&row, &reviews);
        let submission = row.submission()?;
        doc["justification"] = json!(submission.justification);
        doc["payload"] = crate::mask::type_skeleton(&submission.payload);
        doc["changes"] = json!(
            submission
                .changes
                .iter()
                .map(|c| json!({"path": c.path, "bytes": c.content.len()}))
                .collect::<Vec<_>>()
        );
        Ok(Some(doc))
    }
}

fn status_document(row: &RequestRow, reviews: &[crate::store::ReviewRow]) -> Value {
    let review = row
        .review_ref
        .as_ref()
        .map(|r| json!({ "reference": r, "url": row.review_url }));
    let decisions: Vec<Value> = reviews
        .iter()
        .map(|r| {
            json!({
                "reviewer": r.reviewer,
                "decision": r.decision,
                "reason": r.reason,
                "digest": r.digest,
                "at": time::rfc3339(r.at),
            })
        })
        .collect();
    let mut doc = json!({
        "id": row.id,
        "agent": row.agent_id,
        "kind": row.kind,
        "action": row.action,
        "resource": row.resource,
        "environment": row.environment,
        "state": row.state,
        "digest": row.digest,
        "review": review,
        "decisions": decisions,
        "created_at": time::rfc3339(row.created_at),
        "updated_at": time::rfc3339(row.updated_at),
        "expires_at": time::rfc3339(row.expires_at),
    });
    if row.state() == State::Received && row.forge_attempts > 0 {
        doc["forge"] = json!({
            "attempts": row.forge_attempts,
            "last_error": row.last_error,
            "next_attempt_at": time::rfc3339(row.next_attempt_at),
        });
    }
    doc
}

/// Digest newtype re-export for callers that only hold stored strings.
pub fn stored_digest(row: &RequestRow) -> Digest {
    Digest::from_stored(row.digest.clone())
}
