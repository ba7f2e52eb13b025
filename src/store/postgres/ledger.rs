//! The ledger outbox on PostgreSQL. Replicas append concurrently, so the newest entry lives in
//! one row (`ledger_head`) that every append locks (`SELECT … FOR UPDATE`) inside the
//! transaction of the change it records: appends are serialised by the lock, each numbers its
//! entry after the head it read and moves the head on, and the lock is held until commit, so
//! `seq` is gap-free and `prev` always names the entry before. A transaction that rolls back
//! leaves the head as it was. The primary key on `seq` and the unique `hash` catch any bug.

use super::PgStore;
use crate::ledger::entry::Sealed;
use crate::mask::Masker;
use crate::store::backend::LedgerStore;
use crate::store::ledger::{Head, Row, mask_fields, seal_next};
use serde_json::{Map, Value};
use sqlx::{Postgres, Transaction};

/// Locks and reads the newest entry for the rest of the transaction.
pub(super) async fn lock_head(tx: &mut Transaction<'_, Postgres>) -> Result<Head, sqlx::Error> {
    let (seq, hash, at): (i64, String, i64) =
        sqlx::query_as("SELECT seq, hash, at FROM ledger_head WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut **tx)
            .await?;
    Ok(Head { seq, hash, at })
}

/// Stores sealed entries and moves the head to the last of them.
pub(super) async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    entries: &[Sealed],
) -> Result<(), sqlx::Error> {
    let Some(last) = entries.last() else {
        return Ok(());
    };
    let mut query =
        sqlx::QueryBuilder::new("INSERT INTO ledger (seq, request_id, at, prev, hash, line) ");
    query.push_values(entries, |mut row, e| {
        row.push_bind(e.seq)
            .push_bind(&e.request_id)
            .push_bind(e.at_ms)
            .push_bind(&e.prev)
            .push_bind(&e.hash)
            .push_bind(&e.line);
    });
    query.build().execute(&mut **tx).await?;
    sqlx::query("UPDATE ledger_head SET seq = $1, hash = $2, at = $3 WHERE id = 1")
        .bind(last.seq)
        .bind(&last.hash)
        .bind(last.at_ms)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Appends one entry: masks its fields, numbers and chains it after the head.
pub(super) async fn append(
    tx: &mut Transaction<'_, Postgres>,
    masker: &Masker,
    request_id: &str,
    event: &str,
    actor: &str,
    at: i64,
    fields: Map<String, Value>,
) -> Result<(), sqlx::Error> {
    let masked = mask_fields(masker, fields);
    let mut head = lock_head(tx).await?;
    let sealed = seal_next(&mut head, request_id, event, actor, at, masked);
    insert(tx, std::slice::from_ref(&sealed)).await
}

#[async_trait::async_trait]
impl LedgerStore for PgStore {
    async fn ledger_after(&self, seq: i64, limit: i64) -> anyhow::Result<Vec<Sealed>> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, request_id, at, prev, hash, line FROM ledger WHERE seq > $1 \
             ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Sealed::from).collect())
    }

    async fn ledger_hash(&self, seq: i64) -> anyhow::Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT hash FROM ledger WHERE seq = $1")
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(h,)| h))
    }

    async fn ledger_last_seq(&self) -> anyhow::Result<i64> {
        // Committed entries only: the head row moves in the same transaction as its entries.
        let (seq,): (i64,) = sqlx::query_as("SELECT seq FROM ledger_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(seq)
    }

    async fn ledger_of(&self, request_id: &str) -> anyhow::Result<Vec<Sealed>> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, request_id, at, prev, hash, line FROM ledger WHERE request_id = $1 \
             ORDER BY seq",
        )
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Sealed::from).collect())
    }

    async fn record_intake_refusal(
        &self,
        id: &crate::request::RequestId,
        agent: &str,
        signature: &str,
        signature_expires_at: i64,
        at: i64,
        fields: Map<String, Value>,
    ) -> anyhow::Result<bool> {
        let mut tx = self.write_tx().await?;
        // A signature seen by any replica is refused by every other: the primary key decides
        // (a concurrent insert of the same key waits for the other transaction, then skips).
        let fresh = sqlx::query(
            "INSERT INTO seen_signatures (agent_id, signature, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(agent)
        .bind(signature)
        .bind(signature_expires_at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            return Ok(false);
        }
        append(
            &mut tx,
            &self.masker,
            id.as_str(),
            "intake_refused",
            agent,
            at,
            fields,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
