//! GitHub's side of reviews: the inbox of webhook deliveries (each stored once per delivery id,
//! applied in order), approvals withdrawn (a dismissed review, a push making them stale), a
//! request cancelled by closing its pull request, and finding a request by its pull request.

use super::backend::*;
use super::{RequestRow, SqliteStore, StateConflict, TransitionError, conflict, insert_event};
use crate::request::RequestId;
use crate::request::State;
use serde_json::{Value, json};

/// A delivery waiting to be applied.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboxRow {
    pub seq: i64,
    pub delivery_id: String,
    /// The typed event as JSON (free text masked).
    pub event: String,
}

#[async_trait::async_trait]
impl ReviewInboxStore for SqliteStore {
    async fn github_enqueue(
        &self,
        delivery_id: &str,
        event: &str,
        pull: Option<u64>,
        now_ms: i64,
    ) -> anyhow::Result<bool> {
        let r = sqlx::query(
            "INSERT INTO github_inbox (delivery_id, event, pull, received_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (delivery_id) DO NOTHING",
        )
        .bind(delivery_id)
        .bind(event)
        .bind(pull.map(|p| p as i64))
        .bind(now_ms)
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn github_pending(&self, limit: i64) -> anyhow::Result<Vec<InboxRow>> {
        Ok(sqlx::query_as(
            "SELECT seq, delivery_id, event FROM github_inbox WHERE processed_at IS NULL ORDER BY seq LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.writer)
        .await?)
    }

    async fn github_processed(&self, seq: i64, outcome: &str, now_ms: i64) -> anyhow::Result<()> {
        sqlx::query("UPDATE github_inbox SET processed_at = ?, outcome = ? WHERE seq = ?")
            .bind(now_ms)
            .bind(outcome)
            .bind(seq)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn github_prune(&self, before_ms: i64) -> anyhow::Result<u64> {
        let r = sqlx::query(
            "DELETE FROM github_inbox WHERE processed_at IS NOT NULL AND received_at < ?",
        )
        .bind(before_ms)
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected())
    }

    async fn request_by_review(&self, reference: &str) -> anyhow::Result<Option<RequestRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM requests WHERE review_ref = ? LIMIT 1")
                .bind(reference)
                .fetch_optional(&self.writer)
                .await?,
        )
    }

    async fn pending_reviews(&self) -> anyhow::Result<Vec<RequestRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM requests WHERE state = 'pending_review' AND review_ref IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.reader)
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
        let mut tx = self.writer.begin().await?;
        let state: Option<(State,)> = sqlx::query_as("SELECT state FROM requests WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        match state {
            None => return Err(TransitionError::NotFound),
            Some((actual,)) if actual != State::PendingReview => {
                return Err(StateConflict {
                    expected: State::PendingReview,
                    actual,
                }
                .into());
            }
            Some(_) => {}
        }
        let r = sqlx::query(
            "UPDATE reviews SET decision = 'withdrawn' WHERE request_id = ? AND decision = 'approve' \
             AND (? IS NULL OR reviewer = ?)",
        )
        .bind(id.as_str())
        .bind(reviewer)
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
        let mut tx = self.writer.begin().await?;
        let moved = sqlx::query(
            "UPDATE requests SET state = 'cancelled', updated_at = ?, next_attempt_at = 0 \
             WHERE id = ? AND state = 'pending_review'",
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
        sqlx::query(
            "UPDATE requests SET decision_published = 0, next_attempt_at = 0, forge_attempts = 0 \
             WHERE id = ? AND state NOT IN ('received', 'pending_review')",
        )
        .bind(id.as_str())
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}
