//! Executions and callbacks on PostgreSQL. Exactly once holds across replicas because starting
//! an attempt is a compare-and-set (`approved → executing`, one transaction with the attempt
//! row): of several replicas claiming one approved request, one wins and the others get a
//! conflict and run nothing. Finishing checks the attempt id under a row lock, so a retried
//! attempt cannot be finished by the one it replaced.
//!
//! Callbacks are claimed row by row (`FOR UPDATE SKIP LOCKED`, a claim that expires on the
//! database's clock), so two replicas never send one callback at once and a dead replica's
//! claims are taken over. A running execution is claimed too, by the replica running it,
//! which renews the claim while the action runs; an execution whose claim lapsed (its replica
//! died) is recovered by whichever replica finds it first (`executing`, then a compare-and-set
//! on the attempt id).

use super::events::{conflict, insert_event};
use super::{CLAIM_MS, DB_NOW_MS, PgStore};
use crate::request::{RequestId, State};
use crate::store::backend::ExecutionStore;
use crate::store::execution::{
    Attempt, CALLBACK_STATES, CallbackRow, ExecutionRow, Finish, every_state,
};
use crate::store::{RequestRow, StateConflict, TransitionError};
use serde_json::{Value, json};
use sqlx::{Postgres, Transaction};

#[async_trait::async_trait]
impl ExecutionStore for PgStore {
    async fn approved_unstarted(&self, limit: i64) -> anyhow::Result<Vec<RequestRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM requests WHERE state = 'approved' ORDER BY updated_at, id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn executing(&self) -> anyhow::Result<Vec<(RequestRow, ExecutionRow)>> {
        let rows: Vec<RequestRow> = sqlx::query_as(&format!(
            "SELECT r.* FROM requests r JOIN executions e ON e.request_id = r.id \
             WHERE r.state = 'executing' AND e.finished_at IS NULL \
             AND (e.claim_until IS NULL OR e.claim_until < {DB_NOW_MS}) ORDER BY r.id"
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(exec) = self.execution(&row.request_id()).await? {
                out.push((row, exec));
            }
        }
        Ok(out)
    }

    fn execution_claim(&self) -> Option<std::time::Duration> {
        Some(self.claim_ttl)
    }

    async fn renew_execution_claims(&self, ids: &[String]) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(&format!(
            "UPDATE executions SET claim_until = {DB_NOW_MS} + $1 \
             WHERE claimed_by = $2 AND request_id = ANY($3) AND finished_at IS NULL"
        ))
        .bind(self.claim_ms())
        .bind(&*self.replica)
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn execution(&self, id: &RequestId) -> anyhow::Result<Option<ExecutionRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM executions WHERE request_id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn begin_execution(&self, a: &Attempt<'_>) -> Result<(), TransitionError> {
        let mut tx = self.write_tx().await?;
        let moved = sqlx::query(
            "UPDATE requests SET state = 'executing', updated_at = $1 \
             WHERE id = $2 AND state = 'approved'",
        )
        .bind(a.now_ms)
        .bind(a.id.as_str())
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            return Err(conflict(&mut tx, a.id, State::Approved).await);
        }
        sqlx::query(
            &format!("INSERT INTO executions (request_id, attempt_id, attempts, executor, idempotent, \
             started_at, claimed_by, claim_until) VALUES ($1, $2, 1, $3, $4, $5, $6, {DB_NOW_MS} + $7)"),
        )
        .bind(a.id.as_str())
        .bind(a.attempt_id)
        .bind(a.executor)
        .bind(i64::from(a.idempotent))
        .bind(a.now_ms)
        .bind(&*self.replica)
        .bind(self.claim_ms())
        .execute(&mut *tx)
        .await?;
        let detail = json!({ "attempt_id": a.attempt_id, "attempt": 1, "executor": a.executor, "idempotent": a.idempotent });
        insert_event(
            &mut tx,
            &self.masker,
            a.id.as_str(),
            "execution_started",
            Some(State::Approved),
            Some(State::Executing),
            "countersign",
            &detail,
            a.now_ms,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn retry_execution(
        &self,
        id: &RequestId,
        previous: &str,
        attempt_id: &str,
        now_ms: i64,
    ) -> Result<i64, TransitionError> {
        let mut tx = self.write_tx().await?;
        let moved: Option<(i64,)> = sqlx::query_as(&format!(
            "UPDATE executions SET attempt_id = $1, attempts = attempts + 1, started_at = $2, \
             claimed_by = $5, claim_until = {DB_NOW_MS} + $6 \
             WHERE request_id = $3 AND attempt_id = $4 AND finished_at IS NULL \
             AND (SELECT state FROM requests WHERE id = $3) = 'executing' RETURNING attempts"
        ))
        .bind(attempt_id)
        .bind(now_ms)
        .bind(id.as_str())
        .bind(previous)
        .bind(&*self.replica)
        .bind(self.claim_ms())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((attempt,)) = moved else {
            return Err(conflict(&mut tx, id, State::Executing).await);
        };
        sqlx::query("UPDATE requests SET updated_at = $1 WHERE id = $2")
            .bind(now_ms)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        let detail = json!({
            "attempt_id": attempt_id,
            "attempt": attempt,
            "previous_attempt_id": previous,
            "reason": "countersign stopped during the previous attempt; the action is idempotent",
        });
        insert_event(
            &mut tx,
            &self.masker,
            id.as_str(),
            "execution_retried",
            Some(State::Executing),
            Some(State::Executing),
            "countersign",
            &detail,
            now_ms,
        )
        .await?;
        tx.commit().await?;
        Ok(attempt)
    }

    async fn finish_execution(&self, f: Finish<'_>) -> Result<(), TransitionError> {
        let from = if f.attempt_id.is_some() {
            State::Executing
        } else {
            State::Approved
        };
        debug_assert!(from.can_become(f.to));
        let mut tx = self.write_tx().await?;
        if let Some(attempt) = f.attempt_id {
            let current: Option<(String,)> = sqlx::query_as(
                "SELECT attempt_id FROM executions WHERE request_id = $1 AND finished_at IS NULL \
                 FOR UPDATE",
            )
            .bind(f.id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if current.as_ref().map(|c| c.0.as_str()) != Some(attempt) {
                return Err(StateConflict {
                    expected: State::Executing,
                    actual: State::Executing,
                }
                .into());
            }
        }
        let moved = sqlx::query(
            "UPDATE requests SET state = $1, updated_at = $2, decision_published = 0, \
             forge_attempts = 0, next_attempt_at = 0, last_error = NULL WHERE id = $3 AND state = $4",
        )
        .bind(f.to.as_str())
        .bind(f.now_ms)
        .bind(f.id.as_str())
        .bind(from.as_str())
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            return Err(conflict(&mut tx, f.id, from).await);
        }
        if f.attempt_id.is_some() {
            sqlx::query(
                "UPDATE executions SET finished_at = $1, outcome = $2 WHERE request_id = $3",
            )
            .bind(f.now_ms)
            .bind(f.outcome.as_ref().map(Value::to_string))
            .bind(f.id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        insert_event(
            &mut tx,
            &self.masker,
            f.id.as_str(),
            f.event,
            Some(from),
            Some(f.to),
            "countersign",
            &f.detail,
            f.now_ms,
        )
        .await?;
        if let Some((url, body)) = &f.callback {
            sqlx::query(
                "INSERT INTO callbacks (request_id, url, body, next_attempt_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(f.id.as_str())
            .bind(url)
            .bind(body)
            .bind(f.now_ms)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(sealed) = &f.erase_with {
            erase(&mut tx, f.id, sealed, f.now_ms).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn due_for_erasure(
        &self,
        finished_before_ms: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<RequestRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM requests WHERE payload_erased_at IS NULL \
             AND state IN ('denied', 'expired', 'cancelled', 'succeeded', 'failed', 'outcome_unknown') \
             AND updated_at <= $1 ORDER BY updated_at LIMIT $2",
        )
        .bind(finished_before_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn erase_payload(
        &self,
        id: &RequestId,
        sealed_masked: &str,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        let mut tx = self.write_tx().await?;
        erase(&mut tx, id, sealed_masked, now_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims the due callbacks nobody holds for this replica (see `CLAIM_MS`).
    async fn due_callbacks(&self, now_ms: i64, limit: i64) -> anyhow::Result<Vec<CallbackRow>> {
        let mut rows: Vec<CallbackRow> = sqlx::query_as(&format!(
            "WITH due AS (SELECT id FROM callbacks WHERE state = 'pending' AND next_attempt_at <= $1 \
                 AND (claim_until IS NULL OR claim_until < {DB_NOW_MS}) \
                 ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
             UPDATE callbacks c SET claimed_by = $3, claim_until = {DB_NOW_MS} + $4 \
             FROM due WHERE c.id = due.id \
             RETURNING c.id, c.request_id, c.url, c.body, c.attempts"
        ))
        .bind(now_ms)
        .bind(limit)
        .bind(&*self.replica)
        .bind(CLAIM_MS)
        .fetch_all(&self.pool)
        .await?;
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    async fn callback_attempted(
        &self,
        id: i64,
        state: &str,
        next_ms: i64,
        error: Option<&str>,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE callbacks SET attempts = attempts + 1, state = $1, next_attempt_at = $2, \
             last_error = $3, finished_at = CASE WHEN $1 = 'pending' THEN NULL ELSE $4 END, \
             claimed_by = NULL, claim_until = NULL WHERE id = $5",
        )
        .bind(state)
        .bind(next_ms)
        .bind(error)
        .bind(now_ms)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn state_counts(&self) -> anyhow::Result<(Vec<(String, i64)>, Vec<(String, i64)>)> {
        let found: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM requests GROUP BY state")
                .fetch_all(&self.pool)
                .await?;
        let requests = every_state(State::ALL.iter().map(|s| s.as_str()), &found);
        let found: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM callbacks GROUP BY state")
                .fetch_all(&self.pool)
                .await?;
        Ok((requests, every_state(CALLBACK_STATES, &found)))
    }

    async fn callback_status(
        &self,
        id: &RequestId,
    ) -> anyhow::Result<Option<(String, i64, Option<String>)>> {
        Ok(sqlx::query_as(
            "SELECT state, attempts, last_error FROM callbacks WHERE request_id = $1 \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?)
    }
}

/// Replaces the raw submission by its sealed masked copy, once.
async fn erase(
    tx: &mut Transaction<'_, Postgres>,
    id: &RequestId,
    sealed_masked: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE requests SET submission = $1, payload_erased_at = $2 \
         WHERE id = $3 AND payload_erased_at IS NULL",
    )
    .bind(sealed_masked)
    .bind(now_ms)
    .bind(id.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
