//! Background jobs: every loop that runs beside the HTTP server, one struct each, holding what
//! it needs. The engine decides what a transition does; a job decides when it runs (woken by
//! the engine, or on its own interval) and retries after failures. [`Jobs::start`] is the one
//! place that decides which jobs run where:
//!
//! - on **every replica**: executions (each approved request is started by one replica:
//!   compare-and-set), callbacks and notifications (claimed row by row), the policy poll (each
//!   replica's own copy of the policy), and on PostgreSQL the hints listener;
//! - on the **leader** only ([`LeaderWork`]): the ledger writer and pusher, the review inbox
//!   (applied in order), review sync (opening and publishing reviews, reconciliation) and the
//!   sweeper (expiry, retention). With SQLite the one process leads; with PostgreSQL the
//!   replica holding the leader lease does ([`leadership`]), its writes fenced by the lease.
//!
//! Everything a job does is driven by rows in the store, so work interrupted by a crash is
//! picked up again at the next start (or by another replica).

pub mod callbacks;
pub mod executions;
pub mod hints;
pub mod leadership;
pub mod ledger_writer;
pub mod notify;
pub mod policy_poll;
pub mod review_inbox;
pub mod review_sync;
pub mod sweeper;

pub use leadership::{Leadership, Mode};
pub use ledger_writer::{LedgerSource, LedgerWriter};
pub use notify::Notifier;

use crate::engine::Engine;
use crate::ledger::push::PushGate;
use crate::store::{Fence, PgStore};
use anyhow::Context as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the jobs are made of (built by the composition root, `crate::app`).
pub struct Parts {
    pub engine: Arc<Engine>,
    /// `None` when no notification destination is configured.
    pub notifier: Option<Notifier>,
    /// Where the leader writes the ledger.
    pub ledger: LedgerSource,
    /// The writer opened at start (SQLite: this process leads from the start, and a ledger
    /// that disagrees with the database stops it from starting).
    pub opened_ledger: Option<LedgerWriter>,
    /// PostgreSQL: the store and the leader lease this replica competes for.
    pub leadership: Option<(PgStore, Leadership)>,
}

/// The running jobs.
pub struct Jobs {
    shutdown: watch::Sender<bool>,
    running: Vec<(&'static str, JoinHandle<()>)>,
    leader: Leader,
}

/// How the leader jobs run in this process.
enum Leader {
    /// Always (SQLite).
    Always(RunningLeaderJobs),
    /// While this replica holds the lease (PostgreSQL).
    Elected(watch::Sender<bool>, JoinHandle<()>),
}

impl Jobs {
    /// Starts every job this process runs.
    pub fn start(parts: Parts) -> Self {
        let (shutdown, rx) = watch::channel(false);
        let engine = parts.engine;
        let mut running = vec![
            (
                "policy poll",
                tokio::spawn(policy_poll::PolicyPoll::new(engine.clone()).run(rx.clone())),
            ),
            (
                "executions",
                tokio::spawn(executions::Executions::new(engine.clone()).run(rx.clone())),
            ),
            (
                "callbacks",
                tokio::spawn(callbacks::Callbacks::new(engine.clone()).run(rx.clone())),
            ),
        ];
        if let Some(notifier) = parts.notifier {
            running.push(("notifier", tokio::spawn(notifier.run(rx.clone()))));
        }
        let work = LeaderWork {
            engine: engine.clone(),
            ledger: Arc::new(parts.ledger),
            lease_store: parts.leadership.as_ref().map(|(store, _)| store.clone()),
        };
        let leader = match parts.leadership {
            None => Leader::Always(work.start_with(None, parts.opened_ledger)),
            Some((store, leadership)) => {
                let listener = hints::HintsListener {
                    store,
                    engine: engine.clone(),
                    lease_released: leadership.released(),
                };
                running.push(("hints listener", tokio::spawn(listener.run(rx.clone()))));
                let (stop, stop_rx) = watch::channel(false);
                Leader::Elected(stop, tokio::spawn(leadership.run(work, stop_rx)))
            }
        };
        Self {
            shutdown,
            running,
            leader,
        }
    }

    /// Stops every job: each finishes what it is doing (executions wait `shutdown_grace`),
    /// then the leader jobs stop, the ledger writer last (committing what the others wrote),
    /// and the leader lease is given up.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        for (name, job) in self.running {
            job.await
                .with_context(|| format!("the {name} job panicked"))?;
        }
        match self.leader {
            Leader::Always(jobs) => jobs.stop().await,
            Leader::Elected(stop, leadership) => {
                let _ = stop.send(true);
                leadership.await.context("the leadership job panicked")?;
            }
        }
        Ok(())
    }
}

/// The jobs only the leader runs, started each time this replica becomes the leader.
pub struct LeaderWork {
    pub engine: Arc<Engine>,
    pub ledger: Arc<LedgerSource>,
    /// PostgreSQL: checks the lease before each ledger push.
    pub lease_store: Option<PgStore>,
}

impl LeaderWork {
    /// Starts the leader jobs, every write of theirs fenced by `fence` (PostgreSQL).
    pub fn start(&self, fence: Option<Fence>) -> RunningLeaderJobs {
        self.start_with(fence, None)
    }

    fn start_with(&self, fence: Option<Fence>, opened: Option<LedgerWriter>) -> RunningLeaderJobs {
        let engine = &self.engine;
        let (shutdown, rx) = watch::channel(false);
        let spawn = |job: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>| match &fence {
            Some(f) => tokio::spawn(f.clone().scope(job)),
            None => tokio::spawn(job),
        };
        let mut jobs = vec![
            (
                "review sync",
                spawn(Box::pin(
                    review_sync::ReviewSync::new(engine.clone()).run(rx.clone()),
                )),
            ),
            (
                "sweeper",
                spawn(Box::pin(
                    sweeper::Sweeper::new(engine.clone()).run(rx.clone()),
                )),
            ),
        ];
        if engine.review_host().is_some() {
            jobs.push((
                "review inbox",
                spawn(Box::pin(
                    review_inbox::ReviewInbox::new(engine.clone()).run(rx.clone()),
                )),
            ));
        }
        // The ledger writer stops last, after the other jobs' final writes.
        let (ledger_shutdown, ledger_rx) = watch::channel(false);
        let gate = fence.clone().and_then(|fence| {
            let store = self.lease_store.clone()?;
            Some(Arc::new(leadership::LeaseGate { store, fence }) as Arc<dyn PushGate>)
        });
        let ledger = spawn(Box::pin(write_ledger(
            self.ledger.clone(),
            opened,
            gate,
            ledger_rx,
        )));
        RunningLeaderJobs {
            shutdown,
            jobs,
            ledger_shutdown,
            ledger,
        }
    }
}

/// Opens the ledger writer (retrying with backoff; readiness shows why it cannot) unless it
/// was opened at start, and runs it.
async fn write_ledger(
    source: Arc<LedgerSource>,
    opened: Option<LedgerWriter>,
    gate: Option<Arc<dyn PushGate>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    let writer = match opened {
        Some(w) => w,
        None => loop {
            match source.open(gate.clone()).await {
                Ok(w) => {
                    source.status.set_error(None);
                    break w;
                }
                Err(e) => {
                    let message = format!("cannot open the ledger: {e:#}");
                    if source.status.error().as_deref() != Some(message.as_str()) {
                        tracing::error!(error = %message, "ledger writer not started; entries wait in the database");
                        source.status.set_error(Some(message));
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        },
    };
    writer.run(shutdown).await
}

/// Leader jobs running.
pub struct RunningLeaderJobs {
    shutdown: watch::Sender<bool>,
    jobs: Vec<(&'static str, JoinHandle<()>)>,
    ledger_shutdown: watch::Sender<bool>,
    ledger: JoinHandle<()>,
}

impl RunningLeaderJobs {
    /// Lets each finish what it is doing, the ledger writer last.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for (name, job) in self.jobs {
            if let Err(e) = job.await {
                tracing::error!(job = name, error = %e, "leader job panicked");
            }
        }
        let _ = self.ledger_shutdown.send(true);
        if let Err(e) = self.ledger.await {
            tracing::error!(error = %e, "the ledger writer job panicked");
        }
    }

    /// Stops them at once (the lease is lost: another replica may be leading already).
    pub fn abort(self) {
        for (_, job) in &self.jobs {
            job.abort();
        }
        self.ledger.abort();
    }
}
