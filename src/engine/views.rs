//! Read-side documents: the agent's status and the reviewer's view of a request, including the
//! policy progress (which rule needs whom, how many approvals are in, who cannot approve). They
//! are the typed [`crate::api`] documents the server answers with.

use super::Engine;
use crate::api::{
    CallbackState, CallbackStatus, ChangedFile, Decision, DecisionKind, Excluded, Execution,
    ExecutionOutcome, ForgeRetry, MaskFinding, Masking, NotCounted, PolicyOutcome, PolicyProgress,
    RequestStatus, RequirementProgress, ReviewLink, ReviewView, Risk,
};
use crate::policy::{self, approval};
use crate::request::{AgentId, Digest, RequestId};
use crate::store::{RequestRow, ReviewRow};
use crate::time;
use anyhow::Context as _;
use serde_json::Value;

impl Engine {
    /// The status document for the submitting agent, or `None` if the request does not exist
    /// or belongs to another agent (callers answer 404 in both cases).
    pub async fn status(
        &self,
        id: &RequestId,
        agent: &AgentId,
    ) -> anyhow::Result<Option<RequestStatus>> {
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
    async fn add_execution(&self, doc: &mut RequestStatus, id: &RequestId) -> anyhow::Result<()> {
        let Some(exec) = self.store.execution(id).await? else {
            return Ok(());
        };
        let outcome = exec
            .outcome
            .as_deref()
            .and_then(|o| serde_json::from_str::<ExecutionOutcome>(o).ok());
        let callback = match self.store.callback_status(id).await? {
            None => None,
            Some((state, attempts, last_error)) => Some(CallbackStatus {
                state: CallbackState::parse(&state)
                    .with_context(|| format!("stored callback state `{state}` is unknown"))?,
                attempts,
                last_error,
            }),
        };
        doc.execution = Some(Execution {
            executor: exec.executor,
            attempt_id: exec.attempt_id,
            attempts: exec.attempts,
            idempotent: exec.idempotent != 0,
            started_at: time::rfc3339(exec.started_at),
            finished_at: exec.finished_at.map(time::rfc3339),
            outcome,
            callback,
        });
        Ok(())
    }

    /// The request as a reviewer sees it: masked, with decisions and policy progress.
    pub async fn review_view(&self, id: &RequestId) -> anyhow::Result<Option<ReviewView>> {
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
        Ok(Some(ReviewView {
            request: doc,
            justification: masked.justification,
            masking: Masking {
                summary: masked.summary,
                findings: masked
                    .findings
                    .into_iter()
                    .map(|f| MaskFinding {
                        kind: f.kind.to_owned(),
                        pointer: f.pointer,
                        span: f.span,
                        detector: f.detector.to_owned(),
                    })
                    .collect(),
            },
            payload: masked.payload,
            changes: submission
                .changes
                .iter()
                .map(|c| ChangedFile {
                    path: c.path.clone(),
                    bytes: c.content.len(),
                })
                .collect(),
        }))
    }

    /// Approvals that were refused, and why (self, agent owner, not an owner, ...).
    async fn add_refusals(&self, doc: &mut RequestStatus, id: &RequestId) -> anyhow::Result<()> {
        let Some(policy) = doc.policy.as_mut() else {
            return Ok(());
        };
        policy.not_counted = self
            .store
            .events(id)
            .await?
            .into_iter()
            .filter(|e| e.kind == "approval_refused")
            .map(|e| {
                let detail: Value = serde_json::from_str(&e.detail).unwrap_or(Value::Null);
                NotCounted {
                    reviewer: e.actor,
                    why: detail["refused"].as_str().map(str::to_owned),
                    at: time::rfc3339(e.at),
                }
            })
            .collect();
        Ok(())
    }

    fn status_document(
        &self,
        row: &RequestRow,
        reviews: &[ReviewRow],
    ) -> anyhow::Result<RequestStatus> {
        let review = row.review_ref.as_ref().map(|r| ReviewLink {
            reference: r.clone(),
            url: row.review_url.clone(),
        });
        let decisions = reviews
            .iter()
            .map(|r| {
                Ok(Decision {
                    reviewer: r.reviewer.clone(),
                    decision: DecisionKind::parse(&r.decision)
                        .with_context(|| format!("stored decision `{}` is unknown", r.decision))?,
                    reason: r.reason.clone(),
                    digest: r.digest.clone(),
                    at: time::rfc3339(r.at),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let kind = match row.kind.as_str() {
            "action" => crate::request::Kind::Action,
            "change" => crate::request::Kind::Change,
            other => anyhow::bail!("stored request kind `{other}` is unknown"),
        };
        let mut doc = RequestStatus {
            id: row.request_id(),
            agent: row.agent_id.clone(),
            kind,
            action: row.action.clone(),
            resource: row.resource.clone(),
            environment: row.environment.clone(),
            state: row.state(),
            digest: row.digest.clone(),
            review,
            decisions,
            created_at: time::rfc3339(row.created_at),
            updated_at: time::rfc3339(row.updated_at),
            expires_at: time::rfc3339(row.expires_at),
            payload_erased_at: row.payload_erased_at.map(time::rfc3339),
            policy: None,
            forge: None,
            execution: None,
        };
        if let Some(eval) = row.evaluation()? {
            let exclusions = self.exclusions(&row.agent_id, &eval);
            let approvals = self.approvals(row, reviews);
            let progress =
                approval::progress(&eval, &super::review::as_reviewers(&approvals), &exclusions);
            doc.policy = Some(PolicyProgress {
                commit: eval.policy_commit.clone(),
                outcome: policy_outcome(eval.outcome),
                risk: risk(eval.risk),
                requirements: progress.into_iter().map(requirement).collect(),
                not_counted: Vec::new(),
            });
        }
        if row.state() == super::State::Received && row.forge_attempts > 0 {
            doc.forge = Some(ForgeRetry {
                attempts: row.forge_attempts,
                last_error: row.last_error.clone(),
                next_attempt_at: time::rfc3339(row.next_attempt_at),
            });
        }
        Ok(doc)
    }
}

/// The policy's outcome as the API names it.
pub(super) fn policy_outcome(o: policy::Outcome) -> PolicyOutcome {
    match o {
        policy::Outcome::NeedsReview => PolicyOutcome::NeedsReview,
        policy::Outcome::AutoApprove => PolicyOutcome::AutoApprove,
        policy::Outcome::Deny => PolicyOutcome::Deny,
    }
}

/// The policy's risk as the API names it.
pub(super) fn risk(r: policy::Risk) -> Risk {
    match r {
        policy::Risk::Low => Risk::Low,
        policy::Risk::Medium => Risk::Medium,
        policy::Risk::High => Risk::High,
        policy::Risk::Critical => Risk::Critical,
    }
}

/// An execution's outcome as the API shows it.
pub(super) fn execution_outcome(o: &crate::execute::Outcome) -> ExecutionOutcome {
    ExecutionOutcome {
        success: o.success,
        exit_status: o.exit_status,
        signal: o.signal,
        http_status: o.http_status,
        output: o.output.clone(),
        error: o.error.clone(),
        started_at_ms: o.started_at_ms,
        duration_ms: o.duration_ms,
        credential: o.credential.clone(),
        outcome_unknown: o.outcome_unknown,
    }
}

fn requirement(p: approval::Progress) -> RequirementProgress {
    RequirementProgress {
        section: p.section.to_string(),
        file: p.file.to_string(),
        line: p.line,
        pattern: p.pattern.to_string(),
        subjects: p.subjects.iter().map(|s| s.to_string()).collect(),
        owners: p.owners.to_vec(),
        optional: p.optional,
        required: p.required,
        approved_by: p.approved_by,
        satisfied: p.satisfied,
        eligible: p.eligible,
        excluded: p
            .excluded
            .into_iter()
            .map(|e| Excluded {
                name: e.name,
                why: e.why.to_owned(),
            })
            .collect(),
        unsatisfiable: p.unsatisfiable,
    }
}

/// Digest newtype for a stored row.
pub fn stored_digest(row: &RequestRow) -> Digest {
    Digest::from_stored(row.digest.clone())
}
