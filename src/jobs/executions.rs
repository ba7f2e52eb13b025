//! Executions: runs approved requests, at most `max_concurrent` at a time, after recovering the
//! ones a restart interrupted; at shutdown, waits `shutdown_grace` for those still running.
//! With replicas (PostgreSQL), every third of the claim lifetime it renews its claims on the
//! executions it runs and recovers those whose replica stopped renewing (died).

use crate::engine::Engine;
use crate::time;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How often the job looks for approved requests when nothing woke it.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// The execution loop.
pub struct Executions {
    engine: Arc<Engine>,
}

impl Executions {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }

    /// Recovers interrupted executions, then runs approved requests as they come, at most
    /// `max_concurrent` at a time, until `shutdown`; then waits `shutdown_grace` for the
    /// running ones.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let engine = self.engine;
        let limit = engine.execution().max_concurrent;
        let permits = Arc::new(Semaphore::new(limit));
        let claimed: Arc<Mutex<HashSet<String>>> = Arc::default();
        let mut tasks = JoinSet::new();
        let claim = engine.store().execution_claim();
        let mut recovery = Instant::now();
        recover(&engine, &mut tasks, &permits, &claimed).await;
        while !*shutdown.borrow() {
            if let Some(ttl) = claim
                && recovery.elapsed() >= ttl / 3
            {
                recovery = Instant::now();
                let ids: Vec<String> = claimed.lock().expect("claims").iter().cloned().collect();
                if let Err(e) = engine.store().renew_execution_claims(&ids).await {
                    tracing::warn!(error = %format!("{e:#}"), executions = ids.len(), "could not renew the claims on running executions; will retry");
                }
                recover(&engine, &mut tasks, &permits, &claimed).await;
            }
            while tasks.try_join_next().is_some() {}
            let free = permits.available_permits();
            let rows = if free > 0 {
                match engine.store().approved_unstarted(free as i64 + 8).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::error!(error = %e, "could not list approved requests");
                        vec![]
                    }
                }
            } else {
                vec![]
            };
            for row in rows {
                if !claimed.lock().expect("claims").insert(row.id.clone()) {
                    continue;
                }
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    claimed.lock().expect("claims").remove(&row.id);
                    break;
                };
                let engine = engine.clone();
                let claimed = claimed.clone();
                tasks.spawn(async move {
                    let id = row.id.clone();
                    engine.start(row).await;
                    claimed.lock().expect("claims").remove(&id);
                    drop(permit);
                });
            }
            let poll = claim.map_or(IDLE_POLL, |ttl| IDLE_POLL.min(ttl / 3));
            tokio::select! {
                _ = engine.execution_wake().notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        let running = tasks.len();
        if running > 0 {
            tracing::info!(
                actions = running,
                grace_ms = time::duration_ms(engine.execution().shutdown_grace),
                "waiting for running actions"
            );
            // With replicas, the claims on the running actions stay renewed meanwhile: no
            // other replica takes one of them for interrupted while it still runs here.
            let renew = async {
                let Some(ttl) = claim else {
                    return std::future::pending().await;
                };
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    let ids: Vec<String> =
                        claimed.lock().expect("claims").iter().cloned().collect();
                    if let Err(e) = engine.store().renew_execution_claims(&ids).await {
                        tracing::warn!(error = %format!("{e:#}"), executions = ids.len(), "could not renew the claims on running executions; will retry");
                    }
                }
            };
            let all = async { while tasks.join_next().await.is_some() {} };
            let finished = tokio::select! {
                r = tokio::time::timeout(engine.execution().shutdown_grace, all) => r.is_ok(),
                never = renew => never,
            };
            if !finished {
                tracing::warn!(
                    "actions still running at shutdown were stopped; they will be outcome_unknown (or retried if idempotent) when recovered: at the next start, or by another replica once their claims lapse"
                );
                tasks.abort_all();
            }
        }
    }
}

/// Recovers interrupted executions (logged here when it fails; tried again next time).
async fn recover(
    engine: &Arc<Engine>,
    tasks: &mut JoinSet<()>,
    permits: &Arc<Semaphore>,
    running: &Arc<Mutex<HashSet<String>>>,
) {
    if let Err(e) = engine.recover_executions(tasks, permits, running).await {
        tracing::error!(
            error = format!("{e:#}"),
            "could not recover interrupted executions"
        );
    }
}
