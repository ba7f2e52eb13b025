//! Group commit of intake on PostgreSQL. Every append to the ledger locks its head row until
//! the transaction commits, so one transaction per submission would let only one submission
//! commit (and wait for its WAL flush) at a time across all replicas. Instead each replica
//! queues its submissions, and one task stores every submission waiting at that moment in one
//! transaction: each in its own savepoint (a refused one leaves nothing), one lock of the
//! ledger head, one commit and WAL flush for all. Each caller gets its answer once the commit
//! is durable; if the commit fails, every submission of the batch fails and none is stored.

use super::requests::insert_one;
use crate::store::{InsertOutcome, NewRequest};
use serde_json::{Map, Value};
use sqlx::PgPool;
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
    let mut answers = Vec::with_capacity(batch.len());
    for job in batch {
        let outcome = insert_one(&mut tx, &job.new, job.ledger).await;
        answers.push((job.reply, outcome));
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
