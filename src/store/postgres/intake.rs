//! Group commit of intake on PostgreSQL. Every append to the ledger locks its head row until
//! the transaction commits, so one transaction per submission would let only one submission
//! commit (and wait for its WAL flush) at a time across all replicas. Instead each replica
//! queues its submissions, and one task stores every submission waiting at that moment in one
//! transaction: those with an idempotency key each in its own savepoint (a refused one leaves
//! nothing), the others in a few multi-row statements for the whole batch (a replayed signature
//! stores nothing else); one lock of the ledger head, one commit and WAL flush for all. Each caller gets its answer once the commit
//! is durable; if the commit fails, every submission of the batch fails and none is stored.

use super::requests::{insert_one, store_accepted};
use crate::store::{InsertOutcome, NewRequest};
use serde_json::{Map, Value};
use sqlx::{PgPool, Postgres, QueryBuilder, Transaction};
use std::collections::HashSet;
use tokio::sync::{mpsc, oneshot};

/// The most submissions one transaction takes.
const MAX_BATCH: usize = 256;

/// A replica's intake queue.
#[derive(Clone)]
pub(super) struct Intake {
    queue: mpsc::Sender<Job>,
}

struct Job {
    new: NewRequest,
    ledger: [Map<String, Value>; 2],
    reply: oneshot::Sender<anyhow::Result<InsertOutcome>>,
}

impl Intake {
    /// Starts the task that commits batches; it ends when the last handle is dropped.
    pub(super) fn start(pool: PgPool) -> Self {
        let (queue, jobs) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(pool, jobs));
        Self { queue }
    }

    /// Stores `new` (with its two ledger entries' fields) in the next batch.
    pub(super) async fn submit(
        &self,
        new: NewRequest,
        ledger: [Map<String, Value>; 2],
    ) -> anyhow::Result<InsertOutcome> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { new, ledger, reply })
            .await
            .map_err(|_| anyhow::anyhow!("the intake queue is closed"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the intake batch was abandoned"))?
    }
}

async fn run(pool: PgPool, mut jobs: mpsc::Receiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit(&pool, batch).await;
    }
}

/// Stores a batch in one transaction and answers each caller.
async fn commit(pool: &PgPool, batch: Vec<Job>) {
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            let why = format!("{e:#}");
            for job in batch {
                let _ = job.reply.send(Err(sqlx_error(&why, &e)));
            }
            return;
        }
    };
    // Submissions with an idempotency key one by one (each in a savepoint: a reused key leaves
    // nothing); the others together, a few statements for the whole batch.
    let (keyed, plain): (Vec<Job>, Vec<Job>) =
        batch.into_iter().partition(|j| j.new.idempotency.is_some());
    let mut answers = Vec::with_capacity(keyed.len() + plain.len());
    for job in keyed {
        let outcome = insert_one(&mut tx, &job.new, job.ledger).await;
        answers.push((job.reply, outcome));
    }
    if !plain.is_empty() {
        let (replies, rows): (Vec<_>, Vec<_>) = plain
            .into_iter()
            .map(|j| (j.reply, (j.new, j.ledger)))
            .unzip();
        match insert_plain(&mut tx, rows).await {
            Ok(outcomes) => answers.extend(replies.into_iter().zip(outcomes.into_iter().map(Ok))),
            Err(e) => {
                // The transaction is aborted: nothing of the batch is stored.
                let why = format!("{e:#}");
                for (reply, _) in answers {
                    let _ = reply.send(Err(anyhow::anyhow!(
                        "storing the intake batch failed: {why}"
                    )));
                }
                for reply in replies {
                    let _ = reply.send(Err(anyhow::anyhow!(
                        "storing the intake batch failed: {why}"
                    )));
                }
                return;
            }
        }
    }
    let inserted = answers
        .iter()
        .any(|(_, o)| matches!(o, Ok(InsertOutcome::Inserted)));
    let hinted = if inserted {
        // Delivered at commit: wakes the leader's review sync on whichever replica leads.
        super::hints::notify(&mut tx, super::hints::Hint::Review).await
    } else {
        Ok(())
    };
    let committed = match hinted {
        Ok(()) => tx.commit().await,
        Err(e) => Err(e),
    };
    match committed {
        Ok(()) => {
            for (reply, outcome) in answers {
                let _ = reply.send(outcome);
            }
        }
        Err(e) => {
            let why = format!("{e:#}");
            for (reply, _) in answers {
                let _ = reply.send(Err(sqlx_error(&why, &e)));
            }
        }
    }
}

/// The batch's error for each of its callers (kept an `sqlx::Error` where it says the
/// database is unreachable, so callers answer 503).
fn sqlx_error(why: &str, e: &sqlx::Error) -> anyhow::Error {
    match e {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut.into(),
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed.into(),
        sqlx::Error::Io(io) => {
            sqlx::Error::Io(std::io::Error::new(io.kind(), why.to_owned())).into()
        }
        _ => anyhow::anyhow!("storing the intake batch failed: {why}"),
    }
}

/// Stores submissions without an idempotency key in a few statements: their signatures (a
/// signature seen before, or twice in the batch, is a replay and stores nothing else), then the
/// fresh ones' requests, events and ledger entries (chained in order after the head).
async fn insert_plain(
    tx: &mut Transaction<'_, Postgres>,
    rows: Vec<(NewRequest, [Map<String, Value>; 2])>,
) -> Result<Vec<InsertOutcome>, sqlx::Error> {
    let mut signatures =
        QueryBuilder::new("INSERT INTO seen_signatures (agent_id, signature, expires_at) ");
    signatures.push_values(&rows, |mut b, (new, _)| {
        b.push_bind(new.agent.as_str())
            .push_bind(&new.signature)
            .push_bind(new.signature_expires_at);
    });
    signatures.push(" ON CONFLICT DO NOTHING RETURNING agent_id, signature");
    let stored: Vec<(String, String)> = signatures.build_query_as().fetch_all(&mut **tx).await?;
    let mut fresh_keys: HashSet<(String, String)> = stored.into_iter().collect();
    let mut outcomes = Vec::with_capacity(rows.len());
    let mut fresh = Vec::new();
    for (new, ledger) in rows {
        // The first submission of a stored signature is the fresh one.
        if fresh_keys.remove(&(new.agent.as_str().to_owned(), new.signature.clone())) {
            outcomes.push(InsertOutcome::Inserted);
            fresh.push((new, ledger));
        } else {
            outcomes.push(InsertOutcome::Replay);
        }
    }
    if fresh.is_empty() {
        return Ok(outcomes);
    }
    let (news, ledgers): (Vec<NewRequest>, Vec<_>) = fresh.into_iter().unzip();
    let news: Vec<&NewRequest> = news.iter().collect();
    store_accepted(tx, &news, ledgers).await?;
    Ok(outcomes)
}
