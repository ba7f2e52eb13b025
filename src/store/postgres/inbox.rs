//! The forge's review inbox on PostgreSQL. Enqueueing is safe from any replica (the unique
//! delivery id keeps one copy of a redelivery); applying the queue in order is leader-only
//! work. Cancelling and withdrawing lock the request's row, so they serialise with decisions
//! recorded through other replicas.

use super::PgStore;
use super::events::{conflict, insert_event, lock_state};
use crate::request::{RequestId, State};
use crate::store::backend::ReviewInboxStore;
use crate::store::github::InboxRow;
use crate::store::{RequestRow, StateConflict, TransitionError};
use serde_json::{Value, json};

#[async_trait::async_trait]
impl ReviewInboxStore for PgStore {
    async fn github_enqueue(
        &self,
        delivery_id: &str,
        event: &str,
        pull: Option<u64>,
        now_ms: i64,
    ) -> anyhow::Result<bool> {
        let r = sqlx::query(
            "INSERT INTO github_inbox (delivery_id, event, pull, received_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (delivery_id) DO NOTHING",
        )
        .bind(delivery_id)
        .bind(event)
        .bind(pull.and_then(|p| i64::try_from(p).ok()))
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn github_pending(&self, limit: i64) -> anyhow::Result<Vec<InboxRow>> {
        Ok(sqlx::query_as(
            "SELECT seq, delivery_id, event FROM github_inbox WHERE processed_at IS NULL \
             ORDER BY seq LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn github_processed(&self, seq: i64, outcome: &str, now_ms: i64) -> anyhow::Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE github_inbox SET processed_at = $1, outcome = $2 WHERE seq = $3")
            .bind(now_ms)
            .bind(outcome)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn github_prune(&self, before_ms: i64) -> anyhow::Result<u64> {
        let mut tx = self.write_tx().await?;
        let r = sqlx::query(
            "DELETE FROM github_inbox WHERE processed_at IS NOT NULL AND received_at < $1",
        )
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }

    async fn request_by_review(&self, reference: &str) -> anyhow::Result<Option<RequestRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM requests WHERE review_ref = $1 LIMIT 1")
                .bind(reference)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn pending_reviews(&self) -> anyhow::Result<Vec<RequestRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM requests WHERE state = 'pending_review' AND review_ref IS NOT NULL \
             ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn withdraw_approvals(
        &self,
        id: &RequestId,
        reviewer: Option<&str>,
        why: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<u64, TransitionError> {
        let mut tx = self.write_tx().await?;
        match lock_state(&mut tx, id).await? {
            None => return Err(TransitionError::NotFound),
            Some(actual) if actual != State::PendingReview => {
                return Err(StateConflict {
                    expected: State::PendingReview,
                    actual,
                }
                .into());
            }
            Some(_) => {}
        }
        let r = sqlx::query(
            "UPDATE reviews SET decision = 'withdrawn' WHERE request_id = $1 \
             AND decision = 'approve' AND ($2::text IS NULL OR reviewer = $2)",
        )
        .bind(id.as_str())
        .bind(reviewer)
        .execute(&mut *tx)
        .await?;
        let n = r.rows_affected();
        if n > 0 {
            let detail = json!({ "reviewer": reviewer, "withdrawn": n, "why": why });
            insert_event(
                &mut tx,
                &self.masker,
                id.as_str(),
                "approval_withdrawn",
                None,
                None,
                actor,
                &detail,
                now_ms,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn cancel(
        &self,
        id: &RequestId,
        actor: &str,
        detail: &Value,
        now_ms: i64,
    ) -> Result<(), TransitionError> {
        let mut tx = self.write_tx().await?;
        let moved = sqlx::query(
            "UPDATE requests SET state = 'cancelled', updated_at = $1, next_attempt_at = 0 \
             WHERE id = $2 AND state = 'pending_review'",
        )
        .bind(now_ms)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            return Err(conflict(&mut tx, id, State::PendingReview).await);
        }
        insert_event(
            &mut tx,
            &self.masker,
            id.as_str(),
            "cancelled",
            Some(State::PendingReview),
            Some(State::Cancelled),
            actor,
            detail,
            now_ms,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn republish(&self, id: &RequestId) -> anyhow::Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE requests SET decision_published = 0, next_attempt_at = 0, forge_attempts = 0 \
             WHERE id = $1 AND state NOT IN ('received', 'pending_review')",
        )
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
