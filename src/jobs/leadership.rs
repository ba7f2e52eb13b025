//! Leadership on PostgreSQL: which replica runs the work that must have one writer (the ledger
//! writer and pusher, the review inbox applied in order, opening and publishing reviews,
//! reconciliation, expiry and retention; see [`super::LeaderWork`]). The leader holds the
//! `leader` lease; a follower waits for the lease to lapse or be given up and takes it (a new
//! epoch). The leader renews every third of the lease's lifetime; when it cannot renew in
//! time, or finds the lease taken, it stops the leader jobs at once and becomes a follower
//! again (with the local forge, whose repository is this replica's own, it exits instead).
//! Every database write the leader jobs make checks the epoch in its own transaction
//! ([`Fence::scope`]), so a leader that was paused past its lease writes nothing when it wakes.
//! Each new leader records a `leader_elected` ledger entry.

use super::LeaderWork;
use crate::store::{Fence, Held, PgStore};
use crate::telemetry::Metrics;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// The lease the leader holds.
pub const LEADER_LEASE: &str = "leader";
/// The exit status of an exclusive replica that lost its lease (EX_TEMPFAIL: start it again).
const LOST_LEASE_EXIT: i32 = 75;

/// Whether this replica may run beside others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Other replicas may run; this one follows while another leads.
    Shared,
    /// The only replica (the local forge's repository is in its data directory): it starts
    /// only if it can lead, and exits when it loses the lease.
    Exclusive,
}

/// Fingerprints of the keys every replica on one database must share (never the keys): what
/// one replica seals, signs or pseudonymises, every other must open, verify or repeat.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SharedKeys {
    /// The payload key's id, and its previous keys' ids (`payload_key`,
    /// `previous_payload_keys`).
    pub payload: String,
    pub payload_previous: Vec<String>,
    /// The JWT signing keys' ids (`jwt_keys_dir`).
    pub jwt: Vec<String>,
    /// A keyed hash of `[masking] pseudonym_key`, if set.
    pub pseudonym: Option<String>,
    /// The ledger signing key's fingerprint (`[ledger] key_file`): every leader signs with
    /// it, so the ledger verifies against the key its first commit published.
    pub ledger: String,
}

impl SharedKeys {
    /// The settings in which `self` and `other` differ.
    fn differences(&self, other: &SharedKeys) -> Vec<&'static str> {
        let mut out = vec![];
        if self.payload != other.payload || self.payload_previous != other.payload_previous {
            out.push("payload_key / previous_payload_keys");
        }
        if self.jwt != other.jwt {
            out.push("jwt_keys_dir (the JWT signing keys)");
        }
        if self.pseudonym != other.pseudonym {
            out.push("[masking] pseudonym_key");
        }
        if self.ledger != other.ledger {
            out.push("[ledger] key_file (the ledger signing key)");
        }
        out
    }
}

/// Competes for the leader lease and runs the leader jobs while it holds it.
pub struct Leadership {
    store: PgStore,
    ttl: Duration,
    mode: Mode,
    metrics: Arc<Metrics>,
    /// The lease taken at start (exclusive mode).
    held: Option<Held>,
    /// Signalled when a leader gives the lease up ([`crate::store::Hint::Lease`]).
    released: Arc<Notify>,
}

/// Why a leader stopped leading.
enum Ended {
    Shutdown,
    Lost(String),
}

impl Leadership {
    /// Exclusive mode takes the lease now, or says who holds it; shared mode starts as a
    /// follower.
    /// A replica whose `keys` differ from those of a replica running on the database is
    /// refused, naming the replica and the settings.
    pub async fn new(
        store: PgStore,
        ttl: Duration,
        mode: Mode,
        metrics: Arc<Metrics>,
        keys: &SharedKeys,
    ) -> anyhow::Result<Self> {
        let held = match mode {
            Mode::Shared => None,
            Mode::Exclusive => match store
                .acquire_lease(LEADER_LEASE, store.replica(), ttl)
                .await?
            {
                Some(held) => Some(held),
                None => {
                    let holder = store.lease_holder(LEADER_LEASE).await?.unwrap_or_default();
                    anyhow::bail!(
                        "replica `{holder}` is running on the {}, and with the local forge (no \
                         `[github]`) only one replica may: its repository lives in its data \
                         directory. Stop it, or wait up to {} s for its lease to lapse if it is \
                         gone; several replicas need `[github]` (docs/DEPLOYMENT.md)",
                        store.location(),
                        ttl.as_secs()
                    )
                }
            },
        };
        let document = serde_json::to_string(keys)?;
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let others = store.announce_replica(&document, ttl_ms).await?;
        // An exclusive replica holds the lease: no other runs (a recent row is one that died).
        for (name, theirs) in others.into_iter().filter(|_| mode == Mode::Shared) {
            let differ = match serde_json::from_str::<SharedKeys>(&theirs) {
                Ok(theirs) => keys.differences(&theirs),
                Err(_) => vec!["(its key document is from another version)"],
            };
            if !differ.is_empty() {
                let _ = store.replica_gone().await;
                anyhow::bail!(
                    "replica `{name}` is running on the {} with other keys: {}. Replicas sharing \
                     a database must share these keys (docs/DEPLOYMENT.md); to change one, stop \
                     every replica first",
                    store.location(),
                    differ.join(", ")
                );
            }
        }
        let me = Self {
            store,
            ttl,
            mode,
            metrics,
            held,
            released: Arc::default(),
        };
        // A follower until it has recorded its leadership (`serve`).
        me.set_role(None);
        Ok(me)
    }

    /// What the hints listener signals when a leader gives the lease up.
    pub fn released(&self) -> Arc<Notify> {
        self.released.clone()
    }

    /// Follows and leads until `shutdown`; then stops the leader jobs, gives the lease up and
    /// leaves the list of running replicas.
    pub async fn run(mut self, work: LeaderWork, shutdown: watch::Receiver<bool>) {
        self.serve(work, shutdown).await;
        if let Err(e) = self.store.replica_gone().await {
            tracing::warn!(replica.name = self.store.replica(), error = %format!("{e:#}"), "could not remove this replica from the running ones; its row lapses");
        }
    }

    async fn serve(&mut self, work: LeaderWork, mut shutdown: watch::Receiver<bool>) {
        loop {
            let held = match self.held.take() {
                Some(held) => held,
                None => match self.follow(&mut shutdown).await {
                    Some(held) => held,
                    None => return,
                },
            };
            let fence = Fence {
                lease: LEADER_LEASE.into(),
                held: held.clone(),
            };
            let at = work.engine.clock().now_ms();
            if let Err(e) = self.store.record_leader_elected(&fence, at).await {
                tracing::error!(replica.name = self.store.replica(), lease.epoch = held.epoch, error = %e, "could not record the leadership in the ledger; giving the lease up");
                self.release(&held).await;
                self.pause(&mut shutdown).await;
                continue;
            }
            self.set_role(Some(&held));
            tracing::info!(
                replica.name = self.store.replica(),
                lease.epoch = held.epoch,
                "leading: running the ledger writer, review inbox, review sync and sweeper"
            );
            let running = work.start(Some(fence));
            match self.keep(&held, &mut shutdown).await {
                Ended::Shutdown => {
                    running.stop().await;
                    self.release(&held).await;
                    return;
                }
                Ended::Lost(why) => {
                    running.abort();
                    self.set_role(None);
                    if self.mode == Mode::Exclusive {
                        tracing::error!(replica.name = self.store.replica(), lease.epoch = held.epoch, reason = %why, "leader lease lost; exiting so that two replicas never write at once");
                        std::process::exit(LOST_LEASE_EXIT);
                    }
                    tracing::warn!(replica.name = self.store.replica(), lease.epoch = held.epoch, reason = %why, "leader lease lost; stopped the leader jobs and following");
                }
            }
        }
    }

    /// Waits for the lease and takes it (`None`: shut down first).
    async fn follow(&self, shutdown: &mut watch::Receiver<bool>) -> Option<Held> {
        loop {
            if *shutdown.borrow() {
                return None;
            }
            self.seen().await;
            let wait = match self
                .store
                .acquire_lease(LEADER_LEASE, self.store.replica(), self.ttl)
                .await
            {
                Ok(Some(held)) => return Some(held),
                // Wake up just after the holder's lease would lapse (checking at least every
                // third of its lifetime: it may be given up early).
                Ok(None) => match self.store.lease_remaining(LEADER_LEASE).await {
                    Ok(left) => (left + Duration::from_millis(20)).min(self.ttl / 3),
                    Err(_) => self.ttl / 3,
                },
                Err(e) => {
                    tracing::warn!(replica.name = self.store.replica(), error = %format!("{e:#}"), "cannot read the leader lease; will retry");
                    self.ttl / 3
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.released.notified() => {}
                changed = shutdown.changed() => if changed.is_err() { return None },
            }
        }
    }

    /// Renews the lease every third of its lifetime until shutdown or until it is lost: taken
    /// by another replica, or not renewed before it would lapse.
    async fn keep(&self, held: &Held, shutdown: &mut watch::Receiver<bool>) -> Ended {
        let mut renewed = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.ttl / 3) => {}
                changed = shutdown.changed() => match changed {
                    Ok(()) if *shutdown.borrow() => return Ended::Shutdown,
                    Ok(()) => continue,
                    Err(_) => return Ended::Shutdown,
                },
            }
            let attempt = Instant::now();
            // A renewal that hangs (a half-open connection) counts as failed after a third of
            // the lease, so the lease is given up in time.
            let renewal = tokio::time::timeout(
                self.ttl / 3,
                self.store
                    .renew_lease(LEADER_LEASE, self.store.replica(), held, self.ttl),
            )
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within a third of the lease")));
            match renewal {
                Ok(true) => {
                    renewed = attempt;
                    self.seen().await;
                }
                Ok(false) => {
                    return Ended::Lost(
                        "another replica took it (this one was paused or cut off past its lease)"
                            .into(),
                    );
                }
                Err(e) if renewed.elapsed() + self.ttl / 3 >= self.ttl => {
                    return Ended::Lost(format!("it could not be renewed in time: {e:#}"));
                }
                Err(e) => {
                    tracing::warn!(replica.name = self.store.replica(), error = %format!("{e:#}"), "could not renew the leader lease; will retry")
                }
            }
        }
    }

    /// Waits a third of the lease's lifetime (or until shutdown).
    async fn pause(&self, shutdown: &mut watch::Receiver<bool>) {
        tokio::select! {
            _ = tokio::time::sleep(self.ttl / 3) => {}
            _ = shutdown.changed() => {}
        }
    }

    /// Keeps this replica in the list of running ones (a failure only matters to a replica
    /// starting with other keys meanwhile: logged).
    async fn seen(&self) {
        match tokio::time::timeout(self.ttl / 3, self.store.replica_seen()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %format!("{e:#}"), "could not refresh this replica's row")
            }
            Err(_) => tracing::debug!("could not refresh this replica's row in time"),
        }
    }

    async fn release(&self, held: &Held) {
        if let Err(e) = self
            .store
            .release_lease(LEADER_LEASE, self.store.replica(), held)
            .await
        {
            tracing::warn!(replica.name = self.store.replica(), error = %format!("{e:#}"), "could not give up the leader lease; another replica takes it when it lapses");
        }
    }

    fn set_role(&self, held: Option<&Held>) {
        self.metrics.leader.set(i64::from(held.is_some()));
        self.metrics.lease_epoch.set(held.map_or(0, |h| h.epoch));
    }
}

/// The ledger push gate of a leader: pushes only while the lease is still at its epoch and
/// unexpired, by the database's answer (no answer: no push).
pub struct LeaseGate {
    pub store: PgStore,
    pub fence: Fence,
}

/// How long the gate waits for the database.
const GATE_TIMEOUT: Duration = Duration::from_secs(2);

#[async_trait::async_trait]
impl crate::ledger::push::PushGate for LeaseGate {
    async fn may_push(&self) -> Result<(), String> {
        let check = self.store.lease_valid(&self.fence.lease, &self.fence.held);
        match tokio::time::timeout(GATE_TIMEOUT, check).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(format!(
                "this replica no longer holds the leader lease at epoch {}",
                self.fence.held.epoch
            )),
            Ok(Err(e)) => Err(format!("cannot check the leader lease: {e:#}")),
            Err(_) => Err("cannot check the leader lease: no answer from the database".into()),
        }
    }
}
