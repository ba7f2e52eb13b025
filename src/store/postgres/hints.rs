//! Wake-up hints between replicas (`LISTEN`/`NOTIFY` on one channel): a transaction that
//! creates work for another replica sends a hint, delivered when it commits, and every
//! replica's [`Hints`] listener hears it. Hints only shorten waits: every job also polls, so a
//! hint lost while a listener reconnects delays work by one polling interval, never loses it.

use super::PgStore;
use sqlx::postgres::PgListener;
use sqlx::{Postgres, Transaction};

const CHANNEL: &str = "countersign";

/// What a hint says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// A request was accepted: the leader opens its review.
    Review,
    /// The leader lease was given up: a follower may take it now.
    Lease,
}

impl Hint {
    fn as_str(self) -> &'static str {
        match self {
            Hint::Review => "review",
            Hint::Lease => "lease",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "review" => Some(Hint::Review),
            "lease" => Some(Hint::Lease),
            _ => None,
        }
    }
}

/// Sends `hint` when `tx` commits.
pub(super) async fn notify(tx: &mut Transaction<'_, Postgres>, hint: Hint) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(hint.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A replica's listener (one connection of its own).
pub struct Hints {
    listener: PgListener,
}

impl Hints {
    /// The next hint; reconnects by itself after a lost connection (hints sent meanwhile are
    /// lost: the jobs' polling covers them).
    pub async fn next(&mut self) -> anyhow::Result<Hint> {
        loop {
            let n = self.listener.recv().await?;
            if let Some(hint) = Hint::parse(n.payload()) {
                return Ok(hint);
            }
        }
    }
}

impl PgStore {
    /// Starts listening for hints.
    pub async fn hints(&self) -> anyhow::Result<Hints> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(Hints { listener })
    }
}
