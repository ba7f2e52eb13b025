//! Leader leases on PostgreSQL. A lease is one row: its holder (a replica name), an epoch that
//! grows with every change of holder, and an expiry on the **database's** clock, so replicas'
//! clocks never decide who leads. A replica takes a lease that is free or expired (the epoch
//! goes up), keeps it by renewing before it expires, and gives it up at shutdown. A write that
//! only the leader may make checks the epoch in its own transaction (`PgStore::fenced`): the check takes
//! a share lock on the lease row, so a takeover waits for that transaction, and a paused old
//! leader that wakes up finds a newer epoch and writes nothing.

use super::DB_NOW_MS as NOW_MS;
use super::PgStore;
use sqlx::{Postgres, Transaction};
use std::sync::Arc;
use std::time::Duration;

tokio::task_local! {
    /// The lease the current task's writes are fenced by (set by [`Fence::scope`]).
    static FENCE: Fence;
}

/// A lease held, fencing the writes of the work that only its holder may do.
#[derive(Debug, Clone)]
pub struct Fence {
    pub lease: Arc<str>,
    pub held: Held,
}

impl Fence {
    /// Runs `work` with every write transaction it begins on PostgreSQL (on this task)
    /// checking, inside that transaction, that the lease is still at this epoch: a replica
    /// that lost the lease while paused commits nothing when it wakes up.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        FENCE.scope(self, work).await
    }
}

/// A lease held: who holds it under which epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub epoch: i64,
}

/// Why a fenced write was refused.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error("lease `{lease}` moved on to epoch {current} (this replica held epoch {held})")]
    Superseded {
        lease: String,
        held: i64,
        current: i64,
    },
    #[error("lease `{0}` is held by no one")]
    Missing(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl PgStore {
    /// Takes lease `name` for `holder` for `ttl` when it is free or expired (a new epoch), or
    /// `None` while another replica holds it.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> anyhow::Result<Option<Held>> {
        let row: Option<(i64,)> = sqlx::query_as(&format!(
            "INSERT INTO leases (name, holder, epoch, expires_at) VALUES ($1, $2, 1, {NOW_MS} + $3) \
             ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, epoch = leases.epoch + 1, \
             expires_at = EXCLUDED.expires_at WHERE leases.expires_at < {NOW_MS} \
             RETURNING epoch"
        ))
        .bind(name)
        .bind(holder)
        .bind(ttl_ms(ttl))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(epoch,)| Held { epoch }))
    }

    /// Extends a lease held under `held` for `ttl` from now. `false`: another replica took it
    /// (a newer epoch); the caller has lost it and must stop what only the leader does. A lease
    /// that expired but was not taken is renewed: no one else acted under a newer epoch.
    pub async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        held: &Held,
        ttl: Duration,
    ) -> anyhow::Result<bool> {
        let renewed = sqlx::query(&format!(
            "UPDATE leases SET expires_at = {NOW_MS} + $4 \
             WHERE name = $1 AND holder = $2 AND epoch = $3"
        ))
        .bind(name)
        .bind(holder)
        .bind(held.epoch)
        .bind(ttl_ms(ttl))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(renewed == 1)
    }

    /// Whether lease `name` is still at `held`'s epoch and unexpired.
    pub async fn lease_valid(&self, name: &str, held: &Held) -> anyhow::Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as(&format!(
            "SELECT 1::bigint FROM leases WHERE name = $1 AND epoch = $2 AND expires_at > {NOW_MS}"
        ))
        .bind(name)
        .bind(held.epoch)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Who holds lease `name` (expired or not), if anyone ever took it.
    pub async fn lease_holder(&self, name: &str) -> anyhow::Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT holder FROM leases WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(h,)| h))
    }

    /// How long until lease `name` lapses unless renewed (zero: it has; none was ever taken).
    pub async fn lease_remaining(&self, name: &str) -> anyhow::Result<Duration> {
        let row: Option<(i64,)> = sqlx::query_as(&format!(
            "SELECT GREATEST(expires_at - {NOW_MS}, 0) FROM leases WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(Duration::from_millis(
            row.map_or(0, |(ms,)| u64::try_from(ms).unwrap_or(0)),
        ))
    }

    /// Gives a lease up (at shutdown), so another replica need not wait for it to expire: the
    /// replicas waiting for it are told at once ([`super::hints::Hint::Lease`]).
    pub async fn release_lease(&self, name: &str, holder: &str, held: &Held) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2 AND epoch = $3",
        )
        .bind(name)
        .bind(holder)
        .bind(held.epoch)
        .execute(&mut *tx)
        .await?;
        super::hints::notify(&mut tx, super::hints::Hint::Lease).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records in the ledger that this replica leads under `fence` from `at_ms` (entry
    /// `leader_elected` with the replica and epoch, no request), fenced by that lease: so
    /// auditors see which replica wrote what, and a stale leader records nothing.
    pub async fn record_leader_elected(&self, fence: &Fence, at_ms: i64) -> Result<(), FenceError> {
        let mut fields = serde_json::Map::new();
        fields.insert("replica".into(), self.replica().into());
        fields.insert("lease".into(), fence.lease.as_ref().into());
        fields.insert("epoch".into(), fence.held.epoch.into());
        let mut tx = self.pool.begin().await?;
        self::fence(&mut tx, &fence.lease, &fence.held).await?;
        let replica = self.replica.clone();
        super::ledger::append(
            &mut tx,
            &self.masker,
            "",
            "leader_elected",
            &replica,
            at_ms,
            fields,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Runs `write` in one transaction fenced by lease `name` at `held`: committed only if the
    /// epoch is still `held`'s.
    pub async fn fenced<T, F>(&self, name: &str, held: &Held, write: F) -> Result<T, FenceError>
    where
        F: for<'t> AsyncFnOnce(&'t mut Transaction<'static, Postgres>) -> Result<T, sqlx::Error>,
    {
        let mut tx = self.pool.begin().await?;
        fence(&mut tx, name, held).await?;
        let out = write(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }
}

impl PgStore {
    /// Begins a write transaction; inside [`Fence::scope`], fenced by its lease.
    pub(super) async fn write_tx(&self) -> anyhow::Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        if let Ok(f) = FENCE.try_with(Fence::clone) {
            fence(&mut tx, &f.lease, &f.held).await?;
        }
        Ok(tx)
    }
}

/// Checks, inside `tx`, that lease `name` is still at `held`'s epoch, and holds a share lock
/// on it until `tx` ends, so no takeover commits in between.
async fn fence(
    tx: &mut Transaction<'_, Postgres>,
    name: &str,
    held: &Held,
) -> Result<(), FenceError> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT epoch FROM leases WHERE name = $1 FOR SHARE")
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
    match row {
        Some((current,)) if current == held.epoch => Ok(()),
        Some((current,)) => Err(FenceError::Superseded {
            lease: name.to_owned(),
            held: held.epoch,
            current,
        }),
        None => Err(FenceError::Missing(name.to_owned())),
    }
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}
