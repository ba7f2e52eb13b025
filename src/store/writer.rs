//! Database connections kept trustworthy across storage faults (full disk, read-only or failing
//! file).
//!
//! A `COMMIT` or `ROLLBACK` can fail, and SQLite may or may not have rolled the transaction
//! back itself. Reused as it is, the connection would be left "inside" a transaction: sqlx would
//! turn the next `BEGIN` into a `SAVEPOINT` and every later commit into the release of that
//! savepoint, so callers would be told their writes were committed while nothing reached the
//! database. And a connection opened while the file could not be written stays read-only for
//! its whole life — as does, within one process, every connection sharing its WAL index, the
//! readers included — however the file changes after.
//!
//! So every time the writer connection is given back it is checked: still inside a transaction
//! (by sqlx's count or SQLite's own autocommit flag), opened read-only, or its last statement
//! failed for a storage reason (full, read-only, I/O), it is closed, and until a write succeeds
//! again no reader connection is kept either. A write therefore only ever succeeds through a
//! real `COMMIT` on a clean connection, and service resumes by itself once the disk is writable
//! again (`/readyz` commits a one-row write to tell).

use libsqlite3_sys::{
    SQLITE_CANTOPEN, SQLITE_FULL, SQLITE_IOERR, SQLITE_READONLY, sqlite3_db_readonly,
    sqlite3_extended_errcode, sqlite3_get_autocommit,
};
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{Connection as _, SqliteConnection, SqlitePool};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the last write failed for a storage reason. Meanwhile no connection is kept once
/// given back, readers included: within one process, connections to a database share its WAL
/// index, and one opened while the file could not be written keeps it read-only for all of
/// them, until every connection is closed.
#[derive(Default)]
pub(super) struct Health {
    failing: AtomicBool,
}

impl Health {
    fn keep(&self) -> bool {
        !self.failing.load(Ordering::Acquire)
    }
}

/// The writer pool: one connection, discarded whenever it is not clean.
pub(super) fn pool_options(health: &Arc<Health>) -> SqlitePoolOptions {
    let health = health.clone();
    SqlitePoolOptions::new()
        .max_connections(1)
        .after_release(move |conn, _| {
            let health = health.clone();
            Box::pin(async move {
                let clean = is_clean(conn).await;
                health.failing.store(!clean, Ordering::Release);
                Ok(clean)
            })
        })
}

/// The reader pool: while writes fail, each connection is closed once given back.
pub(super) fn reader_pool_options(health: &Arc<Health>) -> SqlitePoolOptions {
    let (on_release, on_acquire) = (health.clone(), health.clone());
    SqlitePoolOptions::new()
        .max_connections(4)
        .after_release(move |_, _| {
            let keep = on_release.keep();
            Box::pin(async move { Ok(keep) })
        })
        .before_acquire(move |_, _| {
            let keep = on_acquire.keep();
            Box::pin(async move { Ok(keep) })
        })
}

/// Whether `conn` can be trusted with the next write: outside any transaction, opened for
/// writing, and its last statement did not fail for a storage reason. Taking the handle waits
/// for the connection's worker to finish what was queued before (the rollback of a dropped
/// transaction), so the state read is the one the next user would see.
async fn is_clean(conn: &mut SqliteConnection) -> bool {
    let (autocommit, read_only, last_error) = match conn.lock_handle().await {
        Ok(mut handle) => {
            let db = handle.as_raw_handle().as_ptr();
            // SAFETY: the locked handle guarantees the worker makes no call on this connection
            // meanwhile; these functions only read its state; "main" is NUL-terminated.
            unsafe {
                (
                    sqlite3_get_autocommit(db) != 0,
                    sqlite3_db_readonly(db, c"main".as_ptr()) == 1,
                    sqlite3_extended_errcode(db),
                )
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "the database writer connection is broken; opening a new one");
            return false;
        }
    };
    let in_transaction = conn.is_in_transaction();
    if !autocommit || in_transaction {
        tracing::warn!(
            store.sqlite_autocommit = autocommit,
            store.sqlx_in_transaction = in_transaction,
            "a database transaction could not be committed or rolled back; discarding the \
             writer connection"
        );
        return false;
    }
    if read_only {
        tracing::warn!("the database writer connection was opened read-only; discarding it");
        return false;
    }
    // The code of the connection's last failed call (a later successful statement replaces
    // it): a storage failure, whatever the caller made of it.
    if matches!(
        last_error & 0xff,
        SQLITE_READONLY | SQLITE_IOERR | SQLITE_FULL | SQLITE_CANTOPEN
    ) {
        tracing::warn!(
            store.sqlite_error = last_error,
            "a database write failed for a storage reason; discarding the writer connection"
        );
        return false;
    }
    true
}

/// Commits a one-row write: fails while the database cannot be written.
pub(super) async fn probe(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let now = crate::time::now_ms();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO write_probe (id, at) VALUES (1, ?) \
         ON CONFLICT (id) DO UPDATE SET at = excluded.at",
    )
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
