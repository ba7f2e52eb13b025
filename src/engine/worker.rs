//! Background work: open reviews for newly received requests, show decisions on the forge, expire
//! requests and forget old signatures. Everything it does is driven by rows in the store, so work
//! interrupted by a crash is picked up again on restart.

use super::Engine;
use super::views::stored_digest;
use crate::forge::{Decision, ForgeError, ReviewRequest};
use crate::request::AgentId;
use crate::store::{RequestRow, TransitionError};
use crate::time;
use std::time::{Duration, Instant};

const BATCH: i64 = 32;
const MAX_BACKOFF: Duration = Duration::from_secs(300);

fn backoff(attempts: i64) -> Duration {
    let exp = attempts.clamp(0, 16) as u32;
    Duration::from_secs(1u64 << exp).min(MAX_BACKOFF)
}

impl Engine {
    /// One pass: open due reviews, publish due decisions. Returns how many items it handled.
    pub async fn forge_pass(&self) -> anyhow::Result<usize> {
        let now = self.clock.now_ms();
        let mut handled = 0;
        for row in self.store.due_for_review(now, BATCH).await? {
            if let Err(e) = self.open_review(&row).await {
                self.row_failed(&row, &e, "open review").await?;
            }
            handled += 1;
        }
        for row in self.store.due_for_publication(now, BATCH).await? {
            if let Err(e) = self.publish(&row).await {
                self.row_failed(&row, &e, "publish decision").await?;
            }
            handled += 1;
        }
        Ok(handled)
    }

    /// A row that could not be processed (e.g. unreadable) is retried later like a forge
    /// failure, so it never blocks the rows behind it.
    async fn row_failed(
        &self,
        row: &RequestRow,
        e: &anyhow::Error,
        what: &str,
    ) -> anyhow::Result<()> {
        let attempts = row.forge_attempts + 1;
        let next = self.clock.now_ms() + time::duration_ms(backoff(attempts));
        tracing::error!(request.id = %row.id, attempts, error = format!("{e:#}"), "could not {what}; will retry");
        self.store
            .forge_failed(
                &row.request_id(),
                attempts,
                next,
                &format!("internal error while trying to {what}"),
            )
            .await
    }

    async fn open_review(&self, row: &RequestRow) -> anyhow::Result<()> {
        let id = row.request_id();
        let agent = AgentId::parse(&row.agent_id).expect("stored agent ids are valid");
        let submission = self.submission_of(row)?;
        let masked = self
            .masker
            .mask_request(&submission.payload, &submission.justification);
        let digest = stored_digest(row);
        let evaluation = row.evaluation()?;
        let exclusions = evaluation
            .as_ref()
            .map(|e| self.exclusions(&row.agent_id, e));
        let auto_approved_by = evaluation
            .as_ref()
            .filter(|e| e.outcome == crate::policy::Outcome::AutoApprove)
            .map(|e| e.policy_commit.clone());
        let started = Instant::now();
        let result = self
            .forge
            .open_review(&ReviewRequest {
                id: &id,
                agent: &agent,
                kind: submission.kind,
                action: &submission.action,
                resource: &submission.resource,
                environment: &submission.environment,
                justification: &masked.justification,
                payload: &masked.payload,
                masking: &masked.summary,
                changes: &submission.changes,
                digest: &digest,
                created_at_ms: row.created_at,
                expires_at_ms: row.expires_at,
                evaluation: evaluation.as_ref(),
                exclusions: exclusions.as_ref(),
            })
            .await;
        let duration_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(review) => {
                match self
                    .store
                    .review_opened(
                        &id,
                        &review,
                        self.clock.now_ms(),
                        auto_approved_by.as_deref(),
                    )
                    .await
                {
                    Ok(state) => {
                        tracing::info!(request.id = %id, review.reference = %review.reference, review.head = %review.head, request.state = %state, duration_ms, forge.name = self.forge.name(), "review opened");
                        if state != crate::engine::State::PendingReview {
                            self.wake.notify_one();
                            self.exec_wake.notify_one();
                        }
                    }
                    // Expired or cancelled meanwhile: keep the reference so the forge shows
                    // that outcome on the review too.
                    Err(TransitionError::Conflict(c)) => {
                        self.store
                            .attach_review(&id, &review.reference, &review.url)
                            .await?;
                        tracing::info!(request.id = %id, request.state = %c.actual, "review opened for a request that was already decided");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => {
                self.forge_failed(row, &e, duration_ms, "open review")
                    .await?
            }
        }
        Ok(())
    }

    /// Shows the decision on the forge. A request already running or done shows its approval
    /// first (so the approval is never skipped because execution was quick), then its outcome;
    /// `executing` itself is not published (its outcome will be).
    async fn publish(&self, row: &RequestRow) -> anyhow::Result<()> {
        use crate::engine::State;
        let id = row.request_id();
        let review = row.review_ref.clone().unwrap_or_default();
        let reviews = self.store.reviews(&id).await?;
        let state = row.state();
        let digest = stored_digest(row);
        let approver = || {
            reviews
                .iter()
                .rev()
                .find(|r| r.decision == "approve")
                .map_or("policy".to_owned(), |r| r.reviewer.clone())
        };
        let mut shown: Vec<(State, String, Option<String>)> = Vec::new();
        match state {
            State::Approved => shown.push((state, approver(), None)),
            State::Denied => {
                let last = reviews.iter().rev().find(|r| r.decision == "deny");
                shown.push((
                    state,
                    last.map_or("countersign".to_owned(), |r| r.reviewer.clone()),
                    last.and_then(|r| r.reason.clone()),
                ));
            }
            State::Executing | State::Succeeded | State::Failed | State::OutcomeUnknown => {
                shown.push((State::Approved, approver(), None));
                if state != State::Executing {
                    shown.push((state, "countersign".to_owned(), None));
                }
            }
            _ => shown.push((state, "countersign".to_owned(), None)),
        }
        let started = Instant::now();
        let mut result = Ok(());
        for (state, actor, reason) in &shown {
            let decision = Decision {
                id: &id,
                state: *state,
                actor,
                reason: reason.as_deref(),
                digest: &digest,
            };
            result = self.forge.publish_decision(&review, &decision).await;
            if result.is_err() {
                break;
            }
        }
        let duration_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(()) => {
                self.store.decision_published(&id, state).await?;
                tracing::info!(request.id = %id, request.state = %state, duration_ms, "decision published on the forge");
            }
            Err(e) => {
                self.forge_failed(row, &e, duration_ms, "publish decision")
                    .await?
            }
        }
        Ok(())
    }

    async fn forge_failed(
        &self,
        row: &RequestRow,
        e: &ForgeError,
        duration_ms: u64,
        what: &str,
    ) -> anyhow::Result<()> {
        let attempts = row.forge_attempts + 1;
        let delay = match e {
            ForgeError::Transient(_) => backoff(attempts),
            ForgeError::Permanent(_) => MAX_BACKOFF,
        };
        let next = self.clock.now_ms() + time::duration_ms(delay);
        tracing::warn!(request.id = %row.id, attempts, retry_in_ms = delay.as_millis() as u64, duration_ms, error = %e, "forge could not {what}; will retry");
        self.store
            .forge_failed(&row.request_id(), attempts, next, &e.to_string())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_then_caps() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(40), Duration::from_secs(300));
    }
}
