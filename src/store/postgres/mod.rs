//! The PostgreSQL store, for deployments with several replicas sharing one database
//! (`database_url`): every part of [`super::Storage`], plus what replicas need: the leader
//! lease and the fence on the leader's writes (`lease.rs`), claims on queue rows and running
//! executions, wake-up hints (`hints.rs`) and the list of running replicas (`replicas.rs`).
//!
//! The schema is `migrations/postgres/`, applied at open; a database whose schema has a
//! migration this build does not know is refused. Every invariant SQLite's single writer gives
//! is kept with constraints and row locks instead: see `ledger.rs` for the gap-free chain.

mod credentials;
mod events;
mod execution;
mod hints;
mod inbox;
mod intake;
mod lease;
mod ledger;
mod notify;
mod replicas;
mod requests;

pub use hints::{Hint, Hints};
pub use lease::{Fence, FenceError, Held};

use crate::ledger::entry::GENESIS;
use crate::mask::Masker;
use anyhow::Context as _;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long leases and claims last unless configured (`lease_ttl`).
const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// Connections one replica keeps to the database.
const MAX_CONNECTIONS: u32 = 16;

/// The database's clock in unix milliseconds: leases and claims expire by it, never by a
/// replica's clock.
pub(super) const DB_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// How long a claimed queue row (a notification or callback being sent) stays this replica's
/// before another may take it: longer than any one attempt takes.
pub(super) const CLAIM_MS: i64 = 120_000;

/// A replica's handle on the shared PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// This replica's name: claims and leases are held in it.
    replica: Arc<str>,
    /// `database on host:port`, for messages (never the password).
    location: Arc<str>,
    /// Runs over every ledger entry before it is hashed.
    masker: Arc<Masker>,
    /// How long a running execution's claim lasts without renewal (the lease lifetime).
    claim_ttl: Duration,
    /// Submissions waiting for the next group commit.
    intake: intake::Intake,
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/database`), applies the schema
    /// migrations and prepares the ledger head. Errors name the database, never the password.
    pub async fn open(url: &str, masker: Arc<Masker>) -> anyhow::Result<Self> {
        Self::open_with_lease(url, masker, DEFAULT_LEASE).await
    }

    /// [`PgStore::open`] for replicas whose leases and claims last `lease`: claims on running
    /// executions last as long, and a transaction left open by a replica that stopped (paused,
    /// cut off) is ended by the database after half of it, so the row locks it holds (the
    /// ledger head, the lease it is fenced by) never block the other replicas for longer, and
    /// it cannot commit when it wakes.
    pub async fn open_with_lease(
        url: &str,
        masker: Arc<Masker>,
        lease: Duration,
    ) -> anyhow::Result<Self> {
        let idle_ms = (lease / 2).as_millis().max(100).to_string();
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| anyhow::anyhow!("`database_url` is not a valid postgres:// URL"))?
            .options([("idle_in_transaction_session_timeout", idle_ms.as_str())]);
        let location: Arc<str> = format!(
            "PostgreSQL database {} on {}:{}",
            options.get_database().unwrap_or("(default)"),
            options.get_host(),
            options.get_port()
        )
        .into();
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .with_context(|| format!("cannot connect to the {location}"))?;
        MIGRATOR.run(&pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::VersionMissing(v) => anyhow::anyhow!(
                "the {location} has schema migration {v}, which this countersign does not know: \
                 it was migrated by a newer version; run that version (or newer)"
            ),
            e => anyhow::anyhow!("migrating the {location} failed: {e}"),
        })?;
        sqlx::query(
            "INSERT INTO ledger_head (id, seq, hash, at) VALUES (1, 0, $1, 0) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(GENESIS)
        .execute(&pool)
        .await
        .with_context(|| format!("cannot prepare the ledger head in the {location}"))?;
        Ok(Self {
            intake: intake::Intake::start(pool.clone()),
            pool,
            replica: default_replica_name().into(),
            location,
            masker,
            claim_ttl: lease,
        })
    }

    /// The same store, with claims on running executions lasting `ttl` without renewal.
    pub fn with_claim_ttl(mut self, ttl: Duration) -> Self {
        self.claim_ttl = ttl;
        self
    }

    pub(super) fn claim_ms(&self) -> i64 {
        i64::try_from(self.claim_ttl.as_millis()).unwrap_or(i64::MAX)
    }

    /// The same store, acting as replica `name` (claims and leases are held in it).
    pub fn named(mut self, name: &str) -> Self {
        self.replica = name.into();
        self
    }

    /// This replica's name (default: host name and process id).
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Where the data lives, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The connections, for the store's own tools (`migrate-store`).
    pub(in crate::store) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `host-pid`: unique among replicas running at one time.
pub fn default_replica_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "replica".to_owned());
    format!("{host}-{}", std::process::id())
}
