//! Waiting until a server is idle, from the outside: its database (SQLite opened read-only, or
//! PostgreSQL) and its ledger branch say what is still to do. Idle means no request still `received` (its
//! review not open), `approved` or `executing`; no webhook delivery unapplied; no notification
//! unrouted or undelivered (when the server has destinations: without any, events stay in the
//! outbox unrouted); no callback pending; and every ledger entry on the ledger branch.

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection as _, SqliteConnection};
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// What a server still has to do (counts of rows).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Requests whose review is not open yet.
    pub received: i64,
    /// Requests approved and not yet executed, or executing.
    pub executions: i64,
    /// GitHub webhook deliveries queued and not applied.
    pub github_inbox: i64,
    /// Notification events not routed, and deliveries still to send (or retry).
    pub notifications: i64,
    /// Callbacks to agents still to send (or retry).
    pub callbacks: i64,
    /// Ledger entries in the database and not (yet) on the ledger branch.
    pub ledger: i64,
}

impl Backlog {
    pub fn is_idle(&self) -> bool {
        *self == Backlog::default()
    }
}

impl fmt::Display for Backlog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} received, {} approved or executing, {} webhooks, {} notifications, {} callbacks, {} ledger entries unpublished",
            self.received,
            self.executions,
            self.github_inbox,
            self.notifications,
            self.callbacks,
            self.ledger
        )
    }
}

const COUNTS: &str = "SELECT \
    (SELECT COUNT(*) FROM requests WHERE state = 'received'), \
    (SELECT COUNT(*) FROM requests WHERE state IN ('approved', 'executing')), \
    (SELECT COUNT(*) FROM github_inbox WHERE processed_at IS NULL), \
    (SELECT COUNT(*) FROM notify_outbox WHERE routed = 0 AND ?1) \
      + (SELECT COUNT(*) FROM notify_deliveries WHERE state = 'pending'), \
    (SELECT COUNT(*) FROM callbacks WHERE state = 'pending'), \
    (SELECT COALESCE(MAX(seq), 0) FROM ledger)";

/// Where a server keeps its state.
pub enum Db {
    Sqlite(std::path::PathBuf),
    /// A `postgres://` URL.
    Postgres(String),
}

/// The backlog now: the database `db` and the ledger branch of `ledger_repo`; `notifying`: the
/// server has notification destinations.
pub async fn backlog(db: &Db, ledger_repo: &Path, notifying: bool) -> Backlog {
    let row: (i64, i64, i64, i64, i64, i64) = match db {
        Db::Sqlite(path) => {
            let options = SqliteConnectOptions::new().filename(path).read_only(true);
            let mut conn = SqliteConnection::connect_with(&options)
                .await
                .unwrap_or_else(|e| panic!("cannot open {} read-only: {e}", path.display()));
            let row = sqlx::query_as(COUNTS)
                .bind(notifying)
                .fetch_one(&mut conn)
                .await
                .expect("the backlog query");
            conn.close().await.ok();
            row
        }
        Db::Postgres(url) => {
            let mut conn = sqlx::PgConnection::connect(url)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to the test database: {e}"));
            let row = sqlx::query_as(&COUNTS.replace("?1", "$1"))
                .bind(notifying)
                .fetch_one(&mut conn)
                .await
                .expect("the backlog query");
            conn.close().await.ok();
            row
        }
    };
    let published = crate::ledger_entries(ledger_repo).len() as i64;
    Backlog {
        received: row.0,
        executions: row.1,
        github_inbox: row.2,
        notifications: row.3,
        callbacks: row.4,
        ledger: row.5 - published,
    }
}

/// Waits (up to `timeout`) until the server with database `db` and ledger repository
/// `ledger_repo` (and notification destinations if `notifying`) is idle; on timeout, fails
/// saying what was left.
pub async fn settle(db: &Db, ledger_repo: &Path, notifying: bool, timeout: Duration) {
    let mut last = Backlog::default();
    let idle = crate::wait::poll(timeout, async || {
        last = backlog(db, ledger_repo, notifying).await;
        last.is_idle()
    })
    .await;
    assert!(
        idle.is_some(),
        "the server did not settle within {timeout:?}: {last}"
    );
}
