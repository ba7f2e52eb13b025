//! The ledger outbox: an entry is numbered, chained to the previous one, masked and hashed
//! inside the transaction of the change that causes it, so an entry exists exactly when its
//! change does. The ledger writer (`ledger::writer`) reads them back in order.

use super::SqliteStore;
use super::backend::*;
use crate::ledger::entry::{Draft, GENESIS, Sealed, seal};
use crate::mask::Masker;
use crate::request::State;
use serde_json::{Map, Value};
use sqlx::{Sqlite, Transaction};

/// The newest entry, from which the next one is numbered and chained.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) seq: i64,
    pub(crate) hash: String,
    pub(crate) at: i64,
}

impl Head {
    /// The head of an empty ledger.
    pub(crate) fn genesis() -> Self {
        Head {
            seq: 0,
            hash: GENESIS.to_owned(),
            at: 0,
        }
    }
}

/// Reads the newest entry inside the transaction.
pub(crate) async fn head(tx: &mut Transaction<'_, Sqlite>) -> Result<Head, sqlx::Error> {
    let last: Option<(i64, String, i64)> =
        sqlx::query_as("SELECT seq, hash, at FROM ledger ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
    Ok(match last {
        Some((seq, hash, at)) => Head { seq, hash, at },
        None => Head::genesis(),
    })
}

/// Runs the masking engine over an entry's fields.
pub(crate) fn mask_fields(masker: &Masker, fields: Map<String, Value>) -> Map<String, Value> {
    match masker.mask_json(&Value::Object(fields)).value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The fields of an event's entry: its detail plus the states it moved between.
pub(crate) fn event_fields(
    detail: &Value,
    from: Option<State>,
    to: Option<State>,
) -> Map<String, Value> {
    let mut fields = match detail {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    if let Some(from) = from {
        fields.insert("from_state".into(), from.as_str().into());
    }
    if let Some(to) = to {
        fields.insert("to_state".into(), to.as_str().into());
    }
    fields
}

/// Numbers and chains the next entry after `head` (fields already masked) and advances
/// `head`. Its timestamp is `at`, or the previous entry's if that is later, so timestamps
/// (and the daily files entries go to) never run backwards.
pub(crate) fn seal_next(
    head: &mut Head,
    request_id: &str,
    event: &str,
    actor: &str,
    at: i64,
    masked: Map<String, Value>,
) -> Sealed {
    let at = at.max(head.at);
    let draft = Draft {
        request_id,
        event,
        actor,
        fields: masked,
    };
    let sealed = seal(head.seq + 1, at, draft, &head.hash);
    *head = Head {
        seq: sealed.seq,
        hash: sealed.hash.clone(),
        at,
    };
    sealed
}

/// Stores sealed entries (one statement).
pub(crate) async fn insert(
    tx: &mut Transaction<'_, Sqlite>,
    entries: &[Sealed],
) -> Result<(), sqlx::Error> {
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
    Ok(())
}

/// Appends one entry: masks its fields, numbers and chains it after the newest entry.
pub(crate) async fn append(
    tx: &mut Transaction<'_, Sqlite>,
    masker: &Masker,
    request_id: &str,
    event: &str,
    actor: &str,
    at: i64,
    fields: Map<String, Value>,
) -> Result<(), sqlx::Error> {
    let mut head = head(tx).await?;
    let masked = mask_fields(masker, fields);
    let sealed = seal_next(&mut head, request_id, event, actor, at, masked);
    insert(tx, std::slice::from_ref(&sealed)).await
}

#[derive(sqlx::FromRow)]
pub(super) struct Row {
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

#[async_trait::async_trait]
impl LedgerStore for SqliteStore {
    async fn ledger_after(&self, seq: i64, limit: i64) -> anyhow::Result<Vec<Sealed>> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, request_id, at, prev, hash, line FROM ledger WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(seq)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(Sealed::from).collect())
    }

    async fn ledger_hash(&self, seq: i64) -> anyhow::Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT hash FROM ledger WHERE seq = ?")
            .bind(seq)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|(h,)| h))
    }

    async fn ledger_last_seq(&self) -> anyhow::Result<i64> {
        let (seq,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM ledger")
            .fetch_one(&self.reader)
            .await?;
        Ok(seq)
    }

    async fn ledger_of(&self, request_id: &str) -> anyhow::Result<Vec<Sealed>> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, request_id, at, prev, hash, line FROM ledger WHERE request_id = ? ORDER BY seq",
        )
        .bind(request_id)
        .fetch_all(&self.reader)
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

/// Gives the events of a database from before the ledger existed their entries, in order,
/// once: only when the ledger is empty and events exist. Returns how many were written.
pub(super) async fn backfill(pool: &sqlx::SqlitePool, masker: &Masker) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let (existing,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM ledger")
        .fetch_one(&mut *tx)
        .await?;
    if existing > 0 {
        return Ok(0);
    }
    let events: Vec<super::EventRow> = sqlx::query_as("SELECT * FROM events ORDER BY seq")
        .fetch_all(&mut *tx)
        .await?;
    let mut head = head(&mut tx).await?;
    let entries: Vec<Sealed> = events
        .iter()
        .map(|e| {
            let detail: Value = serde_json::from_str(&e.detail).unwrap_or(Value::Null);
            let from = e.from_state.as_deref().and_then(State::parse);
            let to = e.to_state.as_deref().and_then(State::parse);
            let masked = mask_fields(masker, event_fields(&detail, from, to));
            seal_next(&mut head, &e.request_id, &e.kind, &e.actor, e.at, masked)
        })
        .collect();
    // Six parameters a row, well under SQLite's limit of bound parameters per statement.
    for chunk in entries.chunks(1000) {
        insert(&mut tx, chunk).await?;
    }
    tx.commit().await?;
    Ok(entries.len())
}
