//! What every state change writes on PostgreSQL, in its own transaction: the event row, the
//! notification it queues, and its ledger entry (as `insert_event` does on SQLite). Changes
//! that read a request's state before acting lock the request's row first ([`lock_state`]):
//! SQLite's single writer serialises them by itself; on PostgreSQL, replicas acting on the
//! same request at once must wait for each other.

use super::ledger::append;
use crate::mask::Masker;
use crate::request::{RequestId, State};
use crate::store::ledger::event_fields;
use crate::store::notify::NOTIFIED;
use crate::store::{StateConflict, TransitionError};
use serde_json::Value;
use sqlx::{Postgres, Transaction};

/// Records an event, queues its notification and appends its ledger entry.
#[allow(clippy::too_many_arguments)]
pub(super) async fn insert_event(
    tx: &mut Transaction<'_, Postgres>,
    masker: &Masker,
    request_id: &str,
    kind: &str,
    from: Option<State>,
    to: Option<State>,
    actor: &str,
    detail: &Value,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO events (request_id, kind, from_state, to_state, actor, detail, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(request_id)
    .bind(kind)
    .bind(from.map(State::as_str))
    .bind(to.map(State::as_str))
    .bind(actor)
    .bind(detail.to_string())
    .bind(at)
    .execute(&mut **tx)
    .await?;
    if NOTIFIED.contains(&kind) {
        sqlx::query(
            "INSERT INTO notify_outbox (request_id, event, actor, at) VALUES ($1, $2, $3, $4)",
        )
        .bind(request_id)
        .bind(kind)
        .bind(actor)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    }
    let fields = event_fields(detail, from, to);
    append(tx, masker, request_id, kind, actor, at, fields).await
}

/// The request's state, its row locked until the transaction ends (`None`: no such request).
pub(super) async fn lock_state(
    tx: &mut Transaction<'_, Postgres>,
    id: &RequestId,
) -> Result<Option<State>, sqlx::Error> {
    let row: Option<(State,)> =
        sqlx::query_as("SELECT state FROM requests WHERE id = $1 FOR UPDATE")
            .bind(id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.map(|(s,)| s))
}

/// Why a compare-and-set on the request's state changed nothing.
pub(super) async fn conflict(
    tx: &mut Transaction<'_, Postgres>,
    id: &RequestId,
    expected: State,
) -> TransitionError {
    match lock_state(tx, id).await {
        Ok(Some(actual)) => StateConflict { expected, actual }.into(),
        Ok(None) => TransitionError::NotFound,
        Err(e) => e.into(),
    }
}
