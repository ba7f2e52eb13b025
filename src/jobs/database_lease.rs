//! The database lease (PostgreSQL): while several replicas on one database are not supported
//! yet (issue 15), a server on PostgreSQL takes the `server` lease at start (refusing to start
//! while another replica holds it) and this job keeps it, renewing every third of its lifetime.
//! A replica that cannot renew before its lease would lapse, or finds it taken, exits at once:
//! its writes are not fenced yet, so stopping is the only way two replicas never write
//! together. At shutdown, after every other job, the lease is given up for the next start.

use crate::store::{Held, PgStore};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The lease one server on a database holds.
pub const SERVER_LEASE: &str = "server";
/// How long the lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(30);
/// The exit status of a replica that lost its lease (EX_TEMPFAIL: start it again).
const LOST_LEASE_EXIT: i32 = 75;

/// Keeps the database lease.
pub struct DatabaseLease {
    store: PgStore,
    held: Held,
}

impl DatabaseLease {
    /// Takes the lease for this replica, or says who holds it.
    pub async fn acquire(store: PgStore) -> anyhow::Result<Self> {
        match store
            .acquire_lease(SERVER_LEASE, store.replica(), LEASE_TTL)
            .await?
        {
            Some(held) => {
                tracing::info!(
                    replica.name = store.replica(),
                    lease.epoch = held.epoch,
                    "database lease taken"
                );
                Ok(Self { store, held })
            }
            None => {
                let holder = store.lease_holder(SERVER_LEASE).await?.unwrap_or_default();
                anyhow::bail!(
                    "replica `{holder}` is running on the {}: several countersign replicas on \
                     one database are not supported yet. Stop it, or wait up to {} s for its \
                     lease to lapse if it is gone",
                    store.location(),
                    LEASE_TTL.as_secs()
                )
            }
        }
    }

    /// The epoch this replica holds the lease under.
    pub fn epoch(&self) -> i64 {
        self.held.epoch
    }

    /// Renews the lease until `shutdown`, then gives it up.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut renewed = Instant::now();
        while !*shutdown.borrow() {
            tokio::select! {
                _ = tokio::time::sleep(LEASE_TTL / 3) => {}
                changed = shutdown.changed() => match changed {
                    Ok(()) => continue,
                    // The jobs were dropped without being stopped: stop too.
                    Err(_) => break,
                },
            }
            let attempt = Instant::now();
            match self
                .store
                .renew_lease(SERVER_LEASE, self.store.replica(), &self.held, LEASE_TTL)
                .await
            {
                Ok(true) => renewed = attempt,
                Ok(false) => lost(&self.store, "another replica took it"),
                Err(e) if renewed.elapsed() + LEASE_TTL / 3 >= LEASE_TTL => lost(
                    &self.store,
                    &format!("it could not be renewed in time: {e:#}"),
                ),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "could not renew the database lease; will retry")
                }
            }
        }
        if let Err(e) = self
            .store
            .release_lease(SERVER_LEASE, self.store.replica(), &self.held)
            .await
        {
            tracing::warn!(error = %format!("{e:#}"), "could not give up the database lease; the next start waits for it to lapse");
        }
    }
}

fn lost(store: &PgStore, why: &str) -> ! {
    tracing::error!(
        replica.name = store.replica(),
        reason = why,
        "database lease lost; exiting so that two replicas never write at once"
    );
    std::process::exit(LOST_LEASE_EXIT)
}
