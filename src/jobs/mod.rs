//! Background jobs: every loop that runs beside the HTTP server, one struct each, holding what
//! it needs. The engine decides what a transition does; a job decides when it runs (woken by
//! the engine, or on its own interval) and retries after failures. [`Jobs`] starts and stops
//! them together, and [`Jobs::start`] is the one place that decides which jobs run in this
//! process (with several replicas, this is where the work will be split).
//!
//! Everything a job does is driven by rows in the store, so work interrupted by a crash is
//! picked up again at the next start.

pub mod callbacks;
pub mod database_lease;
pub mod executions;
pub mod ledger_writer;
pub mod notify;
pub mod policy_poll;
pub mod review_inbox;
pub mod review_sync;
pub mod sweeper;

pub use database_lease::DatabaseLease;
pub use ledger_writer::LedgerWriter;
pub use notify::Notifier;

use crate::engine::Engine;
use anyhow::Context as _;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the jobs are made of (built by the composition root, `crate::app`).
pub struct Parts {
    pub engine: Arc<Engine>,
    /// `None` when no notification destination is configured.
    pub notifier: Option<Notifier>,
    pub ledger: LedgerWriter,
    /// The database lease, on PostgreSQL.
    pub lease: Option<DatabaseLease>,
}

/// The running jobs.
pub struct Jobs {
    shutdown: watch::Sender<bool>,
    running: Vec<(&'static str, JoinHandle<()>)>,
    ledger_shutdown: watch::Sender<bool>,
    ledger: JoinHandle<()>,
    /// Stops after the ledger writer, giving the lease up last.
    lease: Option<(watch::Sender<bool>, JoinHandle<()>)>,
}

impl Jobs {
    /// Starts every job this process runs.
    pub fn start(parts: Parts) -> Self {
        let (shutdown, rx) = watch::channel(false);
        let engine = parts.engine;
        let mut running = vec![
            (
                "review sync",
                tokio::spawn(review_sync::ReviewSync::new(engine.clone()).run(rx.clone())),
            ),
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
            (
                "sweeper",
                tokio::spawn(sweeper::Sweeper::new(engine.clone()).run(rx.clone())),
            ),
        ];
        if engine.review_host().is_some() {
            running.push((
                "review inbox",
                tokio::spawn(review_inbox::ReviewInbox::new(engine.clone()).run(rx.clone())),
            ));
        }
        if let Some(notifier) = parts.notifier {
            running.push(("notifier", tokio::spawn(notifier.run(rx))));
        }
        // The ledger writer stops last, after the other jobs' final writes.
        let (ledger_shutdown, ledger_rx) = watch::channel(false);
        let ledger = tokio::spawn(parts.ledger.run(ledger_rx));
        let lease = parts.lease.map(|lease| {
            let (stop, rx) = watch::channel(false);
            (stop, tokio::spawn(lease.run(rx)))
        });
        Self {
            shutdown,
            running,
            ledger_shutdown,
            ledger,
            lease,
        }
    }

    /// Stops every job: each finishes what it is doing (executions wait `shutdown_grace`),
    /// then the ledger writer commits what they wrote.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        for (name, job) in self.running {
            job.await
                .with_context(|| format!("the {name} job panicked"))?;
        }
        let _ = self.ledger_shutdown.send(true);
        self.ledger
            .await
            .context("the ledger writer job panicked")?;
        if let Some((stop, lease)) = self.lease {
            let _ = stop.send(true);
            lease.await.context("the database lease job panicked")?;
        }
        Ok(())
    }
}
