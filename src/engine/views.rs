//! Read-side documents: the agent's status and the reviewer's view of a request, including the
//! policy progress (which rule needs whom, how many approvals are in, who cannot approve).

use super::Engine;
use crate::policy::approval;
use crate::request::{AgentId, Digest, RequestId};
use crate::store::{RequestRow, ReviewRow};
use crate::time;
use serde_json::{Value, json};

impl Engine {
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
        let mut doc = self.status_document(&row, &reviews)?;
        self.add_refusals(&mut doc, id).await?;
        self.add_execution(&mut doc, id).await?;
        Ok(Some(doc))
    }

    /// What ran and how it ended (masked output, exit or HTTP status, timings), the
    /// credential's id, and whether the agent's callback was delivered.
    async fn add_execution(&self, doc: &mut Value, id: &RequestId) -> anyhow::Result<()> {
        let Some(exec) = self.store.execution(id).await? else {
            return Ok(());
        };
        let outcome: Value = exec
            .outcome
            .as_deref()
            .and_then(|o| serde_json::from_str(o).ok())
            .unwrap_or(Value::Null);
        let callback = self.store.callback_status(id).await?.map(
            |(state, attempts, last_error)| json!({"state": state, "attempts": attempts, "last_error": last_error}),
        );
        doc["execution"] = json!({
            "executor": exec.executor,
            "attempt_id": exec.attempt_id,
            "attempts": exec.attempts,
            "idempotent": exec.idempotent != 0,
            "started_at": time::rfc3339(exec.started_at),
            "finished_at": exec.finished_at.map(time::rfc3339),
            "outcome": outcome,
            "callback": callback,
        });
        Ok(())
    }

    /// The request as a reviewer sees it: masked, with decisions and policy progress.
    pub async fn review_view(&self, id: &RequestId) -> anyhow::Result<Option<Value>> {
        let Some(row) = self.store.get_request(id).await? else {
            return Ok(None);
        };
        let reviews = self.store.reviews(id).await?;
        let mut doc = self.status_document(&row, &reviews)?;
        self.add_refusals(&mut doc, id).await?;
        self.add_execution(&mut doc, id).await?;
        let submission = self.submission_of(&row)?;
        let masked = self
            .masker
            .mask_request(&submission.payload, &submission.justification);
        doc["justification"] = json!(masked.justification);
        doc["masking"] = json!({ "summary": masked.summary, "findings": masked.findings });
        doc["payload"] = masked.payload;
        doc["changes"] = json!(
            submission
                .changes
                .iter()
                .map(|c| json!({"path": c.path, "bytes": c.content.len()}))
                .collect::<Vec<_>>()
        );
        Ok(Some(doc))
    }

    /// Approvals that were refused, and why (self, agent owner, not an owner, ...).
    async fn add_refusals(&self, doc: &mut Value, id: &RequestId) -> anyhow::Result<()> {
        if doc.get("policy").is_none() {
            return Ok(());
        }
        let refused: Vec<Value> = self
            .store
            .events(id)
            .await?
            .into_iter()
            .filter(|e| e.kind == "approval_refused")
            .map(|e| {
                let detail: Value = serde_json::from_str(&e.detail).unwrap_or(Value::Null);
                json!({ "reviewer": e.actor, "why": detail["refused"], "at": time::rfc3339(e.at) })
            })
            .collect();
        doc["policy"]["not_counted"] = Value::Array(refused);
        Ok(())
    }

    fn status_document(&self, row: &RequestRow, reviews: &[ReviewRow]) -> anyhow::Result<Value> {
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
        if let Some(at) = row.payload_erased_at {
            doc["payload_erased_at"] = json!(time::rfc3339(at));
        }
        if let Some(eval) = row.evaluation()? {
            let exclusions = self.exclusions(&row.agent_id, &eval);
            let approvals = self.approvals(row, reviews);
            doc["policy"] = json!({
                "commit": eval.policy_commit,
                "outcome": eval.outcome,
                "risk": eval.risk,
                "requirements": approval::progress(&eval, &super::review::as_reviewers(&approvals), &exclusions),
            });
        }
        if row.state() == super::State::Received && row.forge_attempts > 0 {
            doc["forge"] = json!({
                "attempts": row.forge_attempts,
                "last_error": row.last_error,
                "next_attempt_at": time::rfc3339(row.next_attempt_at),
            });
        }
        Ok(doc)
    }
}

/// Digest newtype for a stored row.
pub fn stored_digest(row: &RequestRow) -> Digest {
    Digest::from_stored(row.digest.clone())
}
