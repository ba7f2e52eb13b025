//! What `migrate-store` checks on PostgreSQL before it commits: every table holds as many rows
//! as the SQLite snapshot it was copied from, and the ledger verifies from genesis (gap-free
//! `seq`, each `prev` the hash before, each line's own hash and form) up to a head that is the
//! SQLite ledger's last entry.

use super::copy::Plan;
use crate::ledger::entry::{GENESIS, check_line};
use anyhow::Context as _;
use futures_util::TryStreamExt as _;
use sqlx::PgConnection;
use sqlx::sqlite::SqliteConnection;

/// The newest ledger entry (`seq` 0 and the genesis hash for an empty ledger).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerHead {
    pub seq: i64,
    pub hash: String,
    pub at: i64,
}

/// Every table's row count on both sides; the first difference is an error naming the table.
pub(super) async fn counts(
    lite: &mut SqliteConnection,
    pg: &mut PgConnection,
    plans: &[Plan],
) -> anyhow::Result<Vec<(&'static str, u64)>> {
    let mut out = Vec::with_capacity(plans.len());
    for plan in plans {
        let statement = format!("SELECT count(*) FROM {}", plan.table);
        let (source,): (i64,) = sqlx::query_as(&statement).fetch_one(&mut *lite).await?;
        let (target,): (i64,) = sqlx::query_as(&statement).fetch_one(&mut *pg).await?;
        if source != target {
            anyhow::bail!(
                "table `{}` has {source} row(s) in SQLite but {target} in PostgreSQL after the copy",
                plan.table
            );
        }
        out.push((plan.table, u64::try_from(target).unwrap_or_default()));
    }
    Ok(out)
}

/// Verifies the whole chain on PostgreSQL, reading it as a stream, and checks that the ledger
/// head is its last entry and the SQLite ledger's last entry. Returns that head.
pub(super) async fn ledger(
    lite: &mut SqliteConnection,
    pg: &mut PgConnection,
) -> anyhow::Result<LedgerHead> {
    let mut head = LedgerHead {
        seq: 0,
        hash: GENESIS.to_owned(),
        at: 0,
    };
    {
        let mut rows = sqlx::query_as::<_, (i64, String, i64, String, String, String)>(
            "SELECT seq, request_id, at, prev, hash, line FROM ledger ORDER BY seq",
        )
        .fetch(&mut *pg);
        while let Some((seq, request_id, at, prev, hash, line)) = rows
            .try_next()
            .await
            .context("cannot read the ledger back from PostgreSQL")?
        {
            let wrong =
                |why: String| anyhow::anyhow!("the ledger does not verify at seq {seq}: {why}");
            if seq != head.seq + 1 {
                return Err(wrong(format!("the entry before it is seq {}", head.seq)));
            }
            if prev != head.hash {
                return Err(wrong(
                    "its `prev` is not the hash of the entry before".into(),
                ));
            }
            let checked = check_line(&line).map_err(|e| wrong(e.to_string()))?;
            if checked.seq != seq
                || checked.prev != prev
                || checked.hash != hash
                || checked.request_id != request_id
            {
                return Err(wrong(
                    "its line disagrees with its row (seq, prev, hash or request id)".into(),
                ));
            }
            head = LedgerHead { seq, hash, at };
        }
    }
    let (seq, hash, at): (i64, String, i64) =
        sqlx::query_as("SELECT seq, hash, at FROM ledger_head WHERE id = 1")
            .fetch_one(&mut *pg)
            .await
            .context("cannot read the ledger head from PostgreSQL")?;
    if (LedgerHead { seq, hash, at }) != head {
        anyhow::bail!(
            "the ledger head in PostgreSQL is seq {seq}, not the last entry (seq {})",
            head.seq
        );
    }
    let source: Option<(i64, String, i64)> =
        sqlx::query_as("SELECT seq, hash, at FROM ledger ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *lite)
            .await?;
    let source = source.map_or((0, GENESIS.to_owned(), 0), |s| s);
    if source != (head.seq, head.hash.clone(), head.at) {
        anyhow::bail!(
            "the ledger in PostgreSQL ends at seq {}, the SQLite one at seq {}",
            head.seq,
            source.0
        );
    }
    Ok(head)
}
