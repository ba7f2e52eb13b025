//! Requests, their reviews and events on PostgreSQL. Intake (any replica; group-committed, see
//! `intake.rs`) stores each request in a savepoint: the idempotency key is claimed first and
//! the signature second, both by primary key, so a refused submission leaves nothing and two replicas
//! racing on one key or one signature wait for each other and answer as one would. Recording a
//! review locks the request's row, so concurrent approvals through several replicas are counted
//! against each other and the request moves on exactly once.

use super::events::{conflict, insert_event};
use super::ledger::{insert as insert_ledger, lock_head};
use super::{DB_NOW_MS, PgStore};
use crate::request::{RequestId, State};
use crate::store::backend::RequestStore;
use crate::store::intake::ledger_fields;
use crate::store::ledger::seal_next;
use crate::store::{
    COUNTED_TABLES, EventRow, InsertOutcome, NewRequest, NewReview, RequestRow, ReviewRow,
    StateConflict, TransitionError, is_unique_violation, review_detail,
};
use serde_json::Value;
use sqlx::{Acquire as _, Postgres, QueryBuilder, Transaction};

#[async_trait::async_trait]
impl RequestStore for PgStore {
    fn location(&self) -> String {
        self.location.to_string()
    }

    async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query(&format!(
            "INSERT INTO write_probe (id, at) VALUES (1, {DB_NOW_MS}) \
             ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at"
        ))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn insert_request(&self, new: NewRequest) -> anyhow::Result<InsertOutcome> {
        let ledger = ledger_fields(&self.masker, &new);
        self.intake.submit(new, ledger).await
    }

    async fn get_request(&self, id: &RequestId) -> anyhow::Result<Option<RequestRow>> {
        Ok(sqlx::query_as("SELECT * FROM requests WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn reviews(&self, id: &RequestId) -> anyhow::Result<Vec<ReviewRow>> {
        Ok(sqlx::query_as(
            "SELECT reviewer, decision, reason, digest, at, teams FROM reviews \
             WHERE request_id = $1 ORDER BY id",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?)
    }

    async fn events(&self, id: &RequestId) -> anyhow::Result<Vec<EventRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM events WHERE request_id = $1 ORDER BY seq")
                .bind(id.as_str())
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn due_for_review(&self, now_ms: i64, limit: i64) -> anyhow::Result<Vec<RequestRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM requests WHERE state = 'received' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn due_for_publication(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<RequestRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM requests WHERE decision_published = 0 AND review_ref IS NOT NULL \
             AND state NOT IN ('received', 'pending_review') AND next_attempt_at <= $1 \
             ORDER BY updated_at LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn review_opened(
        &self,
        id: &RequestId,
        review: &crate::forge::ReviewRef,
        now_ms: i64,
        auto_approved_by: Option<&str>,
    ) -> Result<State, TransitionError> {
        let (review_ref, review_url) = (review.reference.as_str(), review.url.as_str());
        let to = if auto_approved_by.is_some() {
            State::Approved
        } else {
            State::PendingReview
        };
        let mut tx = self.write_tx().await?;
        let updated = sqlx::query(
            "UPDATE requests SET state = $1, review_ref = $2, review_url = $3, review_head = $4, \
             updated_at = $5, last_error = NULL, next_attempt_at = 0, forge_attempts = 0 \
             WHERE id = $6 AND state = 'received'",
        )
        .bind(to.as_str())
        .bind(review_ref)
        .bind(review_url)
        .bind(&review.head)
        .bind(now_ms)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(conflict(&mut tx, id, State::Received).await);
        }
        let detail = serde_json::json!({ "review_ref": review_ref, "review_url": review_url });
        insert_event(
            &mut tx,
            &self.masker,
            id.as_str(),
            "review_opened",
            Some(State::Received),
            Some(State::PendingReview),
            "countersign",
            &detail,
            now_ms,
        )
        .await?;
        if let Some(commit) = auto_approved_by {
            let detail = serde_json::json!({ "decision": "auto_approve", "policy_commit": commit });
            insert_event(
                &mut tx,
                &self.masker,
                id.as_str(),
                "approved",
                Some(State::PendingReview),
                Some(State::Approved),
                "policy",
                &detail,
                now_ms,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(to)
    }

    async fn attach_review(
        &self,
        id: &RequestId,
        review_ref: &str,
        review_url: &str,
    ) -> anyhow::Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE requests SET review_ref = $1, review_url = $2 \
             WHERE id = $3 AND review_ref IS NULL",
        )
        .bind(review_ref)
        .bind(review_url)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn forge_failed(
        &self,
        id: &RequestId,
        attempts: i64,
        next_attempt_at: i64,
        error: &str,
    ) -> anyhow::Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE requests SET forge_attempts = $1, next_attempt_at = $2, last_error = $3 \
             WHERE id = $4",
        )
        .bind(attempts)
        .bind(next_attempt_at)
        .bind(error)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn decision_published(&self, id: &RequestId, state: State) -> anyhow::Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE requests SET decision_published = 1, forge_attempts = 0, next_attempt_at = 0, \
             last_error = NULL WHERE id = $1 AND state = $2",
        )
        .bind(id.as_str())
        .bind(state.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_review(
        &self,
        id: &RequestId,
        review: NewReview<'_>,
        now_ms: i64,
        decide: &(dyn for<'r> Fn(&'r [ReviewRow]) -> Option<State> + Send + Sync),
    ) -> Result<State, TransitionError> {
        let mut tx = self.write_tx().await?;
        let current: Option<(State, i64)> =
            sqlx::query_as("SELECT state, expires_at FROM requests WHERE id = $1 FOR UPDATE")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        match current {
            None => return Err(TransitionError::NotFound),
            Some((actual, expires_at))
                if actual != State::PendingReview || expires_at <= now_ms =>
            {
                return Err(StateConflict {
                    expected: State::PendingReview,
                    actual,
                }
                .into());
            }
            Some(_) => {}
        }
        if review.decision == "approve" {
            let standing: Option<(i64,)> = sqlx::query_as(
                "SELECT id FROM reviews WHERE request_id = $1 AND reviewer = $2 AND digest = $3 \
                 AND decision = 'approve'",
            )
            .bind(id.as_str())
            .bind(review.reviewer)
            .bind(review.digest)
            .fetch_optional(&mut *tx)
            .await?;
            if standing.is_some() {
                return Err(TransitionError::AlreadyApproved);
            }
        }
        let teams = (!review.teams.is_empty()).then(|| serde_json::json!(review.teams).to_string());
        sqlx::query(
            "INSERT INTO reviews (request_id, reviewer, decision, reason, digest, at, teams) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.as_str())
        .bind(review.reviewer)
        .bind(review.decision)
        .bind(review.reason)
        .bind(review.digest)
        .bind(now_ms)
        .bind(teams)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                TransitionError::AlreadyApproved
            } else {
                e.into()
            }
        })?;
        let all: Vec<ReviewRow> = sqlx::query_as(
            "SELECT reviewer, decision, reason, digest, at, teams FROM reviews \
             WHERE request_id = $1 ORDER BY id",
        )
        .bind(id.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let to = decide(&all);
        let detail = review_detail(&review, to, &all);
        let kind = match to {
            Some(to) => {
                sqlx::query(
                    "UPDATE requests SET state = $1, updated_at = $2, next_attempt_at = 0 \
                     WHERE id = $3",
                )
                .bind(to.as_str())
                .bind(now_ms)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
                to.as_str()
            }
            None => "approval_recorded",
        };
        insert_event(
            &mut tx,
            &self.masker,
            id.as_str(),
            kind,
            Some(State::PendingReview),
            Some(to.unwrap_or(State::PendingReview)),
            review.reviewer,
            &detail,
            now_ms,
        )
        .await?;
        tx.commit().await?;
        Ok(to.unwrap_or(State::PendingReview))
    }

    async fn record_refusal(
        &self,
        id: &RequestId,
        reviewer: &str,
        why: &str,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        let mut tx = self.write_tx().await?;
        let detail = serde_json::json!({ "decision": "approve", "counted": false, "refused": why });
        insert_event(
            &mut tx,
            &self.masker,
            id.as_str(),
            "approval_refused",
            None,
            None,
            reviewer,
            &detail,
            now_ms,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn expire_due(&self, now_ms: i64) -> anyhow::Result<Vec<RequestId>> {
        let mut tx = self.write_tx().await?;
        // Rows another replica is expiring (or deciding) right now are skipped, not waited for.
        let due: Vec<(String, State)> = sqlx::query_as(
            "WITH due AS (SELECT id, state FROM requests \
                 WHERE state IN ('received', 'pending_review') AND expires_at <= $1 \
                 ORDER BY expires_at LIMIT 500 FOR UPDATE SKIP LOCKED) \
             UPDATE requests r SET state = 'expired', updated_at = $1, next_attempt_at = 0 \
             FROM due WHERE r.id = due.id RETURNING r.id, due.state",
        )
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        for (id, from) in &due {
            let detail = serde_json::json!({ "reason": "no decision before the request expired" });
            insert_event(
                &mut tx,
                &self.masker,
                id,
                "expired",
                Some(*from),
                Some(State::Expired),
                "countersign",
                &detail,
                now_ms,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(due
            .iter()
            .filter_map(|(id, _)| RequestId::parse(id))
            .collect())
    }

    async fn prune_signatures(&self, now_ms: i64) -> anyhow::Result<u64> {
        let mut tx = self.write_tx().await?;
        let r = sqlx::query("DELETE FROM seen_signatures WHERE expires_at < $1")
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }

    async fn prune_idempotency_keys(&self, before_ms: i64) -> anyhow::Result<u64> {
        let mut tx = self.write_tx().await?;
        let r = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }

    async fn table_counts(&self) -> anyhow::Result<Vec<(&'static str, i64)>> {
        let mut out = Vec::new();
        for table in COUNTED_TABLES {
            let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&self.pool)
                .await?;
            out.push((table, n));
        }
        Ok(out)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// Stores one accepted request inside a savepoint of `tx`, or says why not (then nothing of it
/// remains).
pub(super) async fn insert_one(
    tx: &mut Transaction<'_, Postgres>,
    new: &NewRequest,
    ledger: [serde_json::Map<String, Value>; 2],
) -> anyhow::Result<InsertOutcome> {
    let mut sp = tx.begin().await?;
    if let Some((key, fingerprint)) = &new.idempotency {
        // Claim the key first: a replica storing the same key waits here for the other's
        // commit, then finds its row.
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (agent_id, key, fingerprint, request_id, response, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(new.agent.as_str())
        .bind(key)
        .bind(fingerprint.as_str())
        .bind(new.id.as_str())
        .bind(&new.response)
        .bind(new.now_ms)
        .execute(&mut *sp)
        .await?
        .rows_affected()
            == 1;
        if !claimed {
            let (stored, response): (String, String) = sqlx::query_as(
                "SELECT fingerprint, response FROM idempotency_keys WHERE agent_id = $1 AND key = $2",
            )
            .bind(new.agent.as_str())
            .bind(key)
            .fetch_one(&mut *sp)
            .await?;
            sp.rollback().await?;
            if stored != fingerprint.as_str() {
                return Ok(InsertOutcome::KeyReused);
            }
            return Ok(InsertOutcome::Repeat(serde_json::from_str(&response)?));
        }
    }
    let fresh = sqlx::query(
        "INSERT INTO seen_signatures (agent_id, signature, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(new.agent.as_str())
    .bind(&new.signature)
    .bind(new.signature_expires_at)
    .execute(&mut *sp)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        sp.rollback().await?;
        return Ok(InsertOutcome::Replay);
    }
    store_accepted(&mut sp, &[new], vec![ledger]).await?;
    sp.commit().await?;
    Ok(InsertOutcome::Inserted)
}

/// Stores accepted submissions (their replay and idempotency checks passed): the requests, their
/// `received` and `policy_decision` events, and their ledger entries chained in order after the
/// head, a few multi-row statements for all of them.
pub(super) async fn store_accepted(
    tx: &mut Transaction<'_, Postgres>,
    news: &[&NewRequest],
    ledgers: Vec<[serde_json::Map<String, Value>; 2]>,
) -> Result<(), sqlx::Error> {
    let mut requests = QueryBuilder::new(
        "INSERT INTO requests (id, agent_id, kind, action, resource, environment, digest, \
         submission, state, created_at, updated_at, expires_at, policy_commit, evaluation) ",
    );
    requests.push_values(news, |mut b, new| {
        b.push_bind(new.id.as_str())
            .push_bind(new.agent.as_str())
            .push_bind(new.kind)
            .push_bind(&new.action)
            .push_bind(&new.resource)
            .push_bind(&new.environment)
            .push_bind(new.digest.as_str())
            .push_bind(&new.submission_json)
            .push_bind(State::Received.as_str())
            .push_bind(new.now_ms)
            .push_bind(new.now_ms)
            .push_bind(new.expires_at)
            .push_bind(&new.policy_commit)
            .push_bind(&new.evaluation_json);
    });
    requests.build().execute(&mut **tx).await?;
    let mut events = QueryBuilder::new(
        "INSERT INTO events (request_id, kind, from_state, to_state, actor, detail, at) ",
    );
    let event_rows: Vec<(&NewRequest, bool)> = news
        .iter()
        .flat_map(|new| [(*new, true), (*new, false)])
        .collect();
    events.push_values(&event_rows, |mut b, (new, received)| {
        b.push_bind(new.id.as_str());
        if *received {
            b.push_bind("received")
                .push_bind(None::<&str>)
                .push_bind(Some(State::Received.as_str()))
                .push_bind(new.agent.as_str())
                .push_bind(Value::Object(new.received.clone()).to_string());
        } else {
            b.push_bind("policy_decision")
                .push_bind(None::<&str>)
                .push_bind(None::<&str>)
                .push_bind("policy")
                .push_bind(Value::Object(new.policy_decision.clone()).to_string());
        }
        b.push_bind(new.now_ms);
    });
    events.build().execute(&mut **tx).await?;
    let mut head = lock_head(tx).await?;
    let mut entries = Vec::with_capacity(2 * news.len());
    for (new, [received, policy]) in news.iter().zip(ledgers) {
        let (id, agent) = (new.id.as_str(), new.agent.as_str());
        entries.push(seal_next(
            &mut head, id, "received", agent, new.now_ms, received,
        ));
        entries.push(seal_next(
            &mut head,
            id,
            "policy_decision",
            "policy",
            new.now_ms,
            policy,
        ));
    }
    insert_ledger(tx, &entries).await
}
