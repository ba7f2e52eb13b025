//! `countersign migrate-store`: moves a SQLite deployment's state into an empty PostgreSQL
//! database (issue 15), so an existing installation can grow to several replicas.
//!
//! - **Source.** The SQLite file is opened as it is (never created) and only read, in one read
//!   transaction: a consistent snapshot. The lock of its data directory is held throughout, so
//!   no server runs on it while it is copied; one that does is reported and nothing happens.
//!   Its schema must be exactly this build's (every migration applied, none unknown): an older
//!   database is brought up to date by starting this version's server on it once, which also
//!   writes the ledger entries of events older than the ledger. Migrating it here instead
//!   would make a tool that reads write too.
//! - **Target.** Opened like a replica opens it ([`PgStore::open`]: schema created or
//!   migrated). Everything else happens in one transaction that first locks every table and
//!   refuses any row already there (the empty ledger's head aside), naming the table.
//! - **Copy.** Every table in [`TABLES`], in batches read as a stream (a table may have
//!   millions of rows), with the columns both catalogs name: a column either side has and the
//!   other cannot take is an error, never dropped. Identity values (`events.seq`, `reviews.id`,
//!   …) are kept, and their sequences moved past them. PostgreSQL's own tables: the ledger
//!   head is set to the last entry copied; the leader leases stay empty.
//! - **Verify, then commit.** Row counts of every table on both sides, and the ledger chain on
//!   PostgreSQL from genesis to a head that must be the SQLite ledger's last entry. Any error
//!   rolls the transaction back: the target ends up complete and verified, or as it was.
//!
//! Messages name the SQLite file and the PostgreSQL database and host, never the URL (it may
//! hold a password) and never row contents.

mod copy;
mod source;
mod verify;

pub use verify::LedgerHead;

use super::PgStore;
use crate::mask::Masker;
use anyhow::Context as _;
use sqlx::Connection as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every table copied, in an order that satisfies the foreign keys.
pub const TABLES: [&str; 14] = [
    "requests",
    "events",
    "reviews",
    "seen_signatures",
    "idempotency_keys",
    "ledger",
    "notify_outbox",
    "notify_deliveries",
    "notify_threads",
    "credentials",
    "executions",
    "callbacks",
    "github_inbox",
    "write_probe",
];

/// Rows per `INSERT` unless told otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 1000;

/// A large table reports its progress every this many rows.
const REPORT_EVERY: u64 = 100_000;

/// What the migration is doing, for a progress display.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// Both databases are open and checked; the copy starts.
    Started { source: &'a Path, target: &'a str },
    /// A large table is part-way: `rows` copied so far.
    Copying { table: &'a str, rows: u64 },
    /// A table is copied completely.
    Copied { table: &'a str, rows: u64 },
    /// Every table is copied; counts and the ledger are being verified.
    Verifying,
}

/// What was migrated.
#[derive(Debug, Clone)]
pub struct Summary {
    pub source: PathBuf,
    /// `PostgreSQL database X on host:port`.
    pub target: String,
    /// Every table copied and its rows (equal on both sides).
    pub tables: Vec<(&'static str, u64)>,
    /// The ledger's last entry, verified from genesis on PostgreSQL.
    pub ledger: LedgerHead,
    pub elapsed: Duration,
}

impl Summary {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, rows)| rows).sum()
    }
}

/// Copies the SQLite database at `source` into the empty PostgreSQL database at `target_url`
/// (see the module documentation), `batch_rows` rows per statement at most.
pub async fn migrate_store(
    source: &Path,
    target_url: &str,
    batch_rows: usize,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let _lock = source::lock(source)?;
    let mut lite = source::open(source).await?;
    source::check_schema(&mut lite, source).await?;
    let sqlite_tables = source::tables(&mut lite).await?;

    let pg = PgStore::open(target_url, Arc::new(Masker::new(None, None))).await?;
    let target = pg.location().to_owned();
    let outcome = copy_and_verify(
        &mut lite,
        &pg,
        &sqlite_tables,
        source,
        &target,
        batch_rows,
        progress,
    )
    .await;
    pg.close().await;
    let _ = lite.close().await;
    let (tables, ledger) = outcome?;
    let summary = Summary {
        source: source.to_owned(),
        target,
        tables,
        ledger,
        elapsed: started.elapsed(),
    };
    tracing::info!(
        store.source = %summary.source.display(),
        store.target = %summary.target,
        store.rows = summary.rows(),
        ledger.seq = summary.ledger.seq,
        "store migrated to PostgreSQL and verified"
    );
    Ok(summary)
}

async fn copy_and_verify(
    lite: &mut sqlx::SqliteConnection,
    pg: &PgStore,
    sqlite_tables: &std::collections::BTreeMap<String, Vec<String>>,
    source: &Path,
    target: &str,
    batch_rows: usize,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> anyhow::Result<(Vec<(&'static str, u64)>, LedgerHead)> {
    let mut tx = pg
        .pool()
        .begin()
        .await
        .with_context(|| format!("cannot start a transaction in the {target}"))?;
    let plans = copy::plan(&mut tx, sqlite_tables).await?;
    copy::check_empty(&mut tx, target).await?;
    // Read in one transaction: every table from the same snapshot.
    let mut snapshot = lite.begin().await?;
    progress(Progress::Started { source, target });
    let copied = async {
        for plan in &plans {
            let rows = copy::copy_table(&mut snapshot, &mut tx, plan, batch_rows, progress).await?;
            tracing::debug!(store.table = plan.table, store.rows = rows, "table copied");
            progress(Progress::Copied {
                table: plan.table,
                rows,
            });
        }
        copy::move_sequences(&mut tx, &plans).await?;
        copy::set_ledger_head(&mut tx).await
    }
    .await;
    if let Err(e) = copied {
        tx.rollback().await.ok();
        return Err(e.context(format!(
            "the copy failed: nothing was written to the {target}"
        )));
    }
    progress(Progress::Verifying);
    let verified = async {
        let tables = verify::counts(&mut snapshot, &mut tx, &plans).await?;
        let ledger = verify::ledger(&mut snapshot, &mut tx).await?;
        anyhow::Ok((tables, ledger))
    }
    .await;
    let (tables, ledger) = match verified {
        Ok(verified) => verified,
        Err(e) => {
            tx.rollback().await.ok();
            return Err(e.context(format!(
                "verification failed: nothing was written to the {target}"
            )));
        }
    };
    tx.commit()
        .await
        .with_context(|| format!("cannot commit the copy to the {target}"))?;
    snapshot.rollback().await.ok();
    Ok((tables, ledger))
}
