//! Group commit for intake: one task owns intake writes, takes every submission waiting at that
//! moment (up to [`MAX_BATCH`]) and stores them in one transaction. Callers are answered only
//! after the transaction has committed.
//!
//! A refused submission leaves nothing behind without needing a savepoint of its own: its
//! writes begin with the seen-signature insert, an idempotent repeat or a reused key is
//! recognised before it, and a replay fails at it (SQLite undoes the failed statement). Any
//! other error fails the whole batch, and every caller gets it.

use super::{InsertOutcome, NewRequest, is_unique_violation, ledger};
use crate::mask::Masker;
use crate::request::State;
use serde_json::{Map, Value};
use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::{mpsc, oneshot};

const MAX_BATCH: usize = 128;
const QUEUE: usize = 1024;

pub(super) struct Job {
    pub new: NewRequest,
    /// The masked fields of the `received` and `policy_decision` ledger entries.
    pub ledger: [Map<String, Value>; 2],
    pub reply: oneshot::Sender<anyhow::Result<InsertOutcome>>,
}

pub(super) fn spawn_writer(pool: SqlitePool) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(pool, rx));
    tx
}

/// The masked fields of a new request's `received` and `policy_decision` entries.
pub(super) fn ledger_fields(masker: &Masker, new: &NewRequest) -> [Map<String, Value>; 2] {
    let received = Value::Object(new.received.clone());
    let policy = Value::Object(new.policy_decision.clone());
    [
        ledger::mask_fields(
            masker,
            ledger::event_fields(&received, None, Some(State::Received)),
        ),
        ledger::mask_fields(masker, ledger::event_fields(&policy, None, None)),
    ]
}

async fn run(pool: SqlitePool, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match store_batch(&pool, &batch).await {
            Ok(outcomes) => {
                for (job, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                // Nothing of this batch was committed; every caller gets the error (500).
                let message = format!("{e:#}");
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(anyhow::anyhow!(
                        "storing the request failed: {message}"
                    )));
                }
            }
        }
    }
}

async fn store_batch(pool: &SqlitePool, jobs: &[Job]) -> anyhow::Result<Vec<InsertOutcome>> {
    let mut tx = pool.begin().await?;
    // The ledger head is read once and carried from one submission to the next.
    let mut head = ledger::head(&mut tx).await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        outcomes.push(store_one(&mut tx, &mut head, job).await?);
    }
    tx.commit().await?;
    Ok(outcomes)
}

async fn store_one(
    tx: &mut Transaction<'_, Sqlite>,
    head: &mut ledger::Head,
    job: &Job,
) -> anyhow::Result<InsertOutcome> {
    let new = &job.new;
    if let Some((key, fingerprint)) = &new.idempotency {
        let prior: Option<(String, String)> = sqlx::query_as(
            "SELECT fingerprint, response FROM idempotency_keys WHERE agent_id = ? AND key = ?",
        )
        .bind(new.agent.as_str())
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some((stored, response)) = prior {
            if stored != fingerprint.as_str() {
                return Ok(InsertOutcome::KeyReused);
            }
            return Ok(InsertOutcome::Repeat(serde_json::from_str(&response)?));
        }
    }
    let seen = sqlx::query(
        "INSERT INTO seen_signatures (agent_id, signature, expires_at) VALUES (?, ?, ?)",
    )
    .bind(new.agent.as_str())
    .bind(&new.signature)
    .bind(new.signature_expires_at)
    .execute(&mut **tx)
    .await;
    match seen {
        Err(e) if is_unique_violation(&e) => return Ok(InsertOutcome::Replay),
        other => {
            other?;
        }
    }
    sqlx::query(
        "INSERT INTO requests (id, agent_id, kind, action, resource, environment, digest, \
         submission, state, created_at, updated_at, expires_at, policy_commit, evaluation) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(new.id.as_str())
    .bind(new.agent.as_str())
    .bind(new.kind)
    .bind(&new.action)
    .bind(&new.resource)
    .bind(&new.environment)
    .bind(new.digest.as_str())
    .bind(&new.submission_json)
    .bind(State::Received.as_str())
    .bind(new.now_ms)
    .bind(new.now_ms)
    .bind(new.expires_at)
    .bind(&new.policy_commit)
    .bind(&new.evaluation_json)
    .execute(&mut **tx)
    .await?;
    // The `received` and `policy_decision` events, and their ledger entries: two statements.
    let (id, agent) = (new.id.as_str(), new.agent.as_str());
    sqlx::query(
        "INSERT INTO events (request_id, kind, from_state, to_state, actor, detail, at) \
         VALUES (?, 'received', NULL, 'received', ?, ?, ?), \
                (?, 'policy_decision', NULL, NULL, 'policy', ?, ?)",
    )
    .bind(id)
    .bind(agent)
    .bind(Value::Object(new.received.clone()).to_string())
    .bind(new.now_ms)
    .bind(id)
    .bind(Value::Object(new.policy_decision.clone()).to_string())
    .bind(new.now_ms)
    .execute(&mut **tx)
    .await?;
    let [received, policy] = job.ledger.clone();
    let entries = [
        ledger::seal_next(head, id, "received", agent, new.now_ms, received),
        ledger::seal_next(head, id, "policy_decision", "policy", new.now_ms, policy),
    ];
    ledger::insert(tx, &entries).await?;
    if let Some((key, fingerprint)) = &new.idempotency {
        sqlx::query(
            "INSERT INTO idempotency_keys (agent_id, key, fingerprint, request_id, response, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(new.agent.as_str())
        .bind(key)
        .bind(fingerprint.as_str())
        .bind(new.id.as_str())
        .bind(&new.response)
        .bind(new.now_ms)
        .execute(&mut **tx)
        .await?;
    }
    Ok(InsertOutcome::Inserted)
}
