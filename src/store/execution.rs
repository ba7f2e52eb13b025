//! Execution state: the `approved → executing → succeeded | failed | outcome_unknown` moves,
//! each one transaction with its event (and so its ledger entry and notification), the
//! `executions` row holding the attempt and its masked outcome, the erasure of raw payloads,
//! and the outbox of callbacks to agents.

use super::backend::*;
use super::{RequestRow, SqliteStore, StateConflict, TransitionError, conflict, insert_event};
use crate::request::RequestId;
use crate::request::State;
use serde_json::{Value, json};
use sqlx::FromRow;

/// What ran for a request (its current attempt).
#[derive(Debug, Clone, FromRow)]
pub struct ExecutionRow {
    pub request_id: String,
    pub attempt_id: String,
    pub attempts: i64,
    pub executor: String,
    pub idempotent: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// The masked outcome as JSON.
    pub outcome: Option<String>,
}

/// A new attempt about to start.
pub struct Attempt<'a> {
    pub id: &'a RequestId,
    pub attempt_id: &'a str,
    pub executor: &'a str,
    pub idempotent: bool,
    pub now_ms: i64,
}

/// The end of an execution: the state it leads to and what is recorded.
pub struct Finish<'a> {
    pub id: &'a RequestId,
    /// `None` for a refusal before any attempt (the request is still `approved`).
    pub attempt_id: Option<&'a str>,
    pub to: State,
    /// The event: `execution_succeeded`, `execution_failed`, `outcome_unknown`,
    /// `execution_refused`.
    pub event: &'a str,
    /// The event's detail (masked; goes to the ledger).
    pub detail: Value,
    /// The masked outcome for the `executions` row.
    pub outcome: Option<Value>,
    /// `(url, body)` of the callback to the agent.
    pub callback: Option<(String, String)>,
    /// The sealed masked copy replacing the raw submission now (retention zero).
    pub erase_with: Option<String>,
    pub now_ms: i64,
}

/// A callback waiting to be delivered.
#[derive(Debug, Clone, FromRow)]
pub struct CallbackRow {
    pub id: i64,
    pub request_id: String,
    pub url: String,
    pub body: String,
    pub attempts: i64,
}

/// The states a callback can be in, each counted in the metrics even at zero.
pub(super) const CALLBACK_STATES: [&str; 3] = ["pending", "delivered", "failed"];

/// `(state, count)` for every state in `states`, zero where `found` has none.
pub(super) fn every_state<'a>(
    states: impl IntoIterator<Item = &'a str>,
    found: &[(String, i64)],
) -> Vec<(String, i64)> {
    states
        .into_iter()
        .map(|s| {
            let n = found.iter().find(|f| f.0 == s).map_or(0, |f| f.1);
            (s.to_owned(), n)
        })
        .collect()
}

#[async_trait::async_trait]
impl ExecutionStore for SqliteStore {
    async fn approved_unstarted(&self, limit: i64) -> anyhow::Result<Vec<RequestRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM requests WHERE state = 'approved' ORDER BY updated_at, id LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn executing(&self) -> anyhow::Result<Vec<(RequestRow, ExecutionRow)>> {
        let rows: Vec<RequestRow> =
            sqlx::query_as("SELECT * FROM requests WHERE state = 'executing' ORDER BY id")
                .fetch_all(&self.writer)
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
        None
    }

    /// One process owns the file (the data directory lock): no claims to renew.
    async fn renew_execution_claims(&self, _ids: &[String]) -> anyhow::Result<()> {
        Ok(())
    }

    async fn execution(&self, id: &RequestId) -> anyhow::Result<Option<ExecutionRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM executions WHERE request_id = ?")
                .bind(id.as_str())
                .fetch_optional(&self.writer)
                .await?,
        )
    }

    async fn begin_execution(&self, a: &Attempt<'_>) -> Result<(), TransitionError> {
        let mut tx = self.writer.begin().await?;
        let moved = sqlx::query(
            "UPDATE requests SET state = 'executing', updated_at = ? WHERE id = ? AND state = 'approved'",
        )
        .bind(a.now_ms)
        .bind(a.id.as_str())
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            return Err(conflict(&mut tx, a.id, State::Approved).await);
        }
        sqlx::query("INSERT INTO executions (request_id, attempt_id, attempts, executor, idempotent, started_at) VALUES (?, ?, 1, ?, ?, ?)")
            .bind(a.id.as_str())
            .bind(a.attempt_id)
            .bind(a.executor)
            .bind(i64::from(a.idempotent))
            .bind(a.now_ms)
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
        let mut tx = self.writer.begin().await?;
        let moved = sqlx::query(
            "UPDATE executions SET attempt_id = ?, attempts = attempts + 1, started_at = ? \
             WHERE request_id = ? AND attempt_id = ? AND finished_at IS NULL \
             AND (SELECT state FROM requests WHERE id = ?) = 'executing'",
        )
        .bind(attempt_id)
        .bind(now_ms)
        .bind(id.as_str())
        .bind(previous)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            return Err(conflict(&mut tx, id, State::Executing).await);
        }
        let (attempt,): (i64,) =
            sqlx::query_as("SELECT attempts FROM executions WHERE request_id = ?")
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query("UPDATE requests SET updated_at = ? WHERE id = ?")
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
        let mut tx = self.writer.begin().await?;
        if let Some(attempt) = f.attempt_id {
            let current: Option<(String,)> = sqlx::query_as(
                "SELECT attempt_id FROM executions WHERE request_id = ? AND finished_at IS NULL",
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
            "UPDATE requests SET state = ?, updated_at = ?, decision_published = 0, \
             forge_attempts = 0, next_attempt_at = 0, last_error = NULL WHERE id = ? AND state = ?",
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
            sqlx::query("UPDATE executions SET finished_at = ?, outcome = ? WHERE request_id = ?")
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
            sqlx::query("INSERT INTO callbacks (request_id, url, body, next_attempt_at) VALUES (?, ?, ?, ?)")
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
             AND updated_at <= ? ORDER BY updated_at LIMIT ?",
        )
        .bind(finished_before_ms)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn erase_payload(
        &self,
        id: &RequestId,
        sealed_masked: &str,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        let mut tx = self.writer.begin().await?;
        erase(&mut tx, id, sealed_masked, now_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn due_callbacks(&self, now_ms: i64, limit: i64) -> anyhow::Result<Vec<CallbackRow>> {
        Ok(sqlx::query_as(
            "SELECT id, request_id, url, body, attempts FROM callbacks \
             WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
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
            "UPDATE callbacks SET attempts = attempts + 1, state = ?, next_attempt_at = ?, \
             last_error = ?, finished_at = CASE WHEN ? = 'pending' THEN NULL ELSE ? END WHERE id = ?",
        )
        .bind(state)
        .bind(next_ms)
        .bind(error)
        .bind(state)
        .bind(now_ms)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn state_counts(&self) -> anyhow::Result<(Vec<(String, i64)>, Vec<(String, i64)>)> {
        let found: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM requests GROUP BY state")
                .fetch_all(&self.reader)
                .await?;
        let requests = every_state(State::ALL.iter().map(|s| s.as_str()), &found);
        let found: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM callbacks GROUP BY state")
                .fetch_all(&self.reader)
                .await?;
        Ok((requests, every_state(CALLBACK_STATES, &found)))
    }

    async fn callback_status(
        &self,
        id: &RequestId,
    ) -> anyhow::Result<Option<(String, i64, Option<String>)>> {
        Ok(sqlx::query_as(
            "SELECT state, attempts, last_error FROM callbacks WHERE request_id = ? ORDER BY id DESC LIMIT 1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.reader)
        .await?)
    }
}

/// Not an event: the ledger records what was decided and what ran, not housekeeping.
async fn erase(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: &RequestId,
    sealed_masked: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE requests SET submission = ?, payload_erased_at = ? WHERE id = ? AND payload_erased_at IS NULL",
    )
    .bind(sealed_masked)
    .bind(now_ms)
    .bind(id.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
