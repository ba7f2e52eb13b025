//! The ledger outbox: an entry is numbered, chained to the previous one, masked and hashed
//! inside the transaction of the change that causes it, so an entry exists exactly when its
//! change does. The ledger writer (`ledger::writer`) reads them back in order.

use super::Store;
use crate::ledger::entry::{Draft, GENESIS, Sealed, seal};
use crate::mask::Masker;
use serde_json::{Map, Value};
use sqlx::{Sqlite, Transaction};

/// Appends one entry. Its timestamp is `at`, or the previous entry's if that is later (so
/// timestamps, and the daily files they go to, never run backwards).
pub(crate) async fn append(
    tx: &mut Transaction<'_, Sqlite>,
    masker: &Masker,
    request_id: &str,
    event: &str,
    actor: &str,
    at: i64,
    fields: Map<String, Value>,
) -> Result<(), sqlx::Error> {
    let last: Option<(i64, String, i64)> =
        sqlx::query_as("SELECT seq, hash, at FROM ledger ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
    let (seq, prev, at) = match last {
        Some((seq, hash, last_at)) => (seq + 1, hash, at.max(last_at)),
        None => (1, GENESIS.to_owned(), at),
    };
    let fields = match masker.mask_json(&Value::Object(fields)).value {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let draft = Draft {
        request_id,
        event,
        actor,
        fields,
    };
    let sealed = seal(seq, at, draft, &prev);
    sqlx::query(
        "INSERT INTO ledger (seq, request_id, at, prev, hash, line) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(sealed.seq)
    .bind(&sealed.request_id)
    .bind(sealed.at_ms)
    .bind(&sealed.prev)
    .bind(&sealed.hash)
    .bind(&sealed.line)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    request_id: String,
    at: i64,
    prev: String,
    hash: String,
    line: String,
}

impl From<Row> for Sealed {
    fn from(r: Row) -> Sealed {
        Sealed {
            seq: r.seq,
            at_ms: r.at,
            request_id: r.request_id,
            prev: r.prev,
            line: r.line,
            hash: r.hash,
        }
    }
}

impl Store {
    /// Entries after `seq`, in order, at most `limit`.
    pub async fn ledger_after(&self, seq: i64, limit: i64) -> anyhow::Result<Vec<Sealed>> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, request_id, at, prev, hash, line FROM ledger WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(seq)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(Sealed::from).collect())
    }

    /// The hash of entry `seq`, if the database has it.
    pub async fn ledger_hash(&self, seq: i64) -> anyhow::Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT hash FROM ledger WHERE seq = ?")
            .bind(seq)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|(h,)| h))
    }

    /// The newest entry's `seq` (0 when the ledger is empty).
    pub async fn ledger_last_seq(&self) -> anyhow::Result<i64> {
        let (seq,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM ledger")
            .fetch_one(&self.reader)
            .await?;
        Ok(seq)
    }

    /// Every entry of one request, in order (the status timeline and tests).
    pub async fn ledger_of(&self, request_id: &str) -> anyhow::Result<Vec<Sealed>> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, request_id, at, prev, hash, line FROM ledger WHERE request_id = ? ORDER BY seq",
        )
        .bind(request_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(Sealed::from).collect())
    }
}

impl Store {
    /// Records a signed submission the policy refused: its signature (so a replay records
    /// nothing) and an `intake_refused` entry. Returns false for a replay.
    pub async fn record_intake_refusal(
        &self,
        id: &crate::request::RequestId,
        agent: &str,
        signature: &str,
        signature_expires_at: i64,
        at: i64,
        fields: Map<String, Value>,
    ) -> anyhow::Result<bool> {
        let mut tx = self.writer.begin().await?;
        let seen = sqlx::query(
            "INSERT INTO seen_signatures (agent_id, signature, expires_at) VALUES (?, ?, ?)",
        )
        .bind(agent)
        .bind(signature)
        .bind(signature_expires_at)
        .execute(&mut *tx)
        .await;
        match seen {
            Err(e) if super::is_unique_violation(&e) => return Ok(false),
            other => {
                other?;
            }
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
