//! The notification outbox: events people are told about are queued in the transaction of the
//! event (`insert_event`), routed to destinations by the notifier, and each delivery's attempts,
//! doubt (sent, answer not recorded) and outcome are kept here, so a crash loses nothing.

use super::SqliteStore;
use super::backend::*;
use sqlx::{FromRow, Sqlite, Transaction};

/// The events that reach Slack and Teams.
pub const NOTIFIED: [&str; 10] = [
    "review_opened",
    "approval_recorded",
    "approved",
    "denied",
    "expired",
    "cancelled",
    "execution_succeeded",
    "execution_failed",
    "execution_refused",
    "outcome_unknown",
];

/// Queues a notification for an event, if it is one people are told about.
pub(crate) async fn enqueue(
    tx: &mut Transaction<'_, Sqlite>,
    request_id: &str,
    event: &str,
    actor: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    if !NOTIFIED.contains(&event) {
        return Ok(());
    }
    sqlx::query("INSERT INTO notify_outbox (request_id, event, actor, at) VALUES (?, ?, ?, ?)")
        .bind(request_id)
        .bind(event)
        .bind(actor)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub request_id: String,
    pub event: String,
    pub actor: String,
    pub at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct DeliveryRow {
    pub outbox_id: i64,
    pub target: String,
    pub request_id: String,
    pub event: String,
    pub attempts: i64,
    pub in_flight: i64,
    pub actor: String,
    pub at: i64,
}

/// Where a request's announcement lives on a Slack bot destination.
#[derive(Debug, Clone, FromRow)]
pub struct Thread {
    pub channel: String,
    pub ts: String,
}

#[async_trait::async_trait]
impl NotifyStore for SqliteStore {
    async fn notify_unrouted(&self, limit: i64) -> anyhow::Result<Vec<OutboxRow>> {
        Ok(sqlx::query_as(
            "SELECT id, request_id, event, actor, at FROM notify_outbox WHERE routed = 0 ORDER BY id LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn notify_route(
        &self,
        row: &OutboxRow,
        targets: &[String],
        now_ms: i64,
    ) -> anyhow::Result<()> {
        let mut tx = self.writer.begin().await?;
        for target in targets {
            sqlx::query(
                "INSERT OR IGNORE INTO notify_deliveries (outbox_id, target, request_id, event, updated_at) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(row.id)
            .bind(target)
            .bind(&row.request_id)
            .bind(&row.event)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE notify_outbox SET routed = 1 WHERE id = ?")
            .bind(row.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn notify_due(&self, now_ms: i64, limit: i64) -> anyhow::Result<Vec<DeliveryRow>> {
        Ok(sqlx::query_as(
            "SELECT d.outbox_id, d.target, d.request_id, d.event, d.attempts, d.in_flight, o.actor, o.at \
             FROM notify_deliveries d JOIN notify_outbox o ON o.id = d.outbox_id \
             WHERE d.state = 'pending' AND d.next_attempt_at <= ? \
             AND NOT EXISTS (SELECT 1 FROM notify_deliveries e WHERE e.request_id = d.request_id \
                 AND e.target = d.target AND e.outbox_id < d.outbox_id AND e.state = 'pending') \
             ORDER BY d.outbox_id LIMIT ?",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn notify_sending(&self, d: &DeliveryRow, now_ms: i64) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE notify_deliveries SET attempts = attempts + 1, in_flight = 1, updated_at = ? \
             WHERE outbox_id = ? AND target = ?",
        )
        .bind(now_ms)
        .bind(d.outbox_id)
        .bind(&d.target)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn notify_settled(
        &self,
        d: &DeliveryRow,
        state: &str,
        message_ref: Option<&str>,
        error: Option<&str>,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE notify_deliveries SET state = ?, in_flight = 0, message_ref = COALESCE(?, message_ref), \
             last_error = ?, updated_at = ? WHERE outbox_id = ? AND target = ?",
        )
        .bind(state)
        .bind(message_ref)
        .bind(error)
        .bind(now_ms)
        .bind(d.outbox_id)
        .bind(&d.target)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn notify_retry(
        &self,
        d: &DeliveryRow,
        next_attempt_at: i64,
        error: &str,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE notify_deliveries SET in_flight = 0, next_attempt_at = ?, last_error = ?, updated_at = ? \
             WHERE outbox_id = ? AND target = ?",
        )
        .bind(next_attempt_at)
        .bind(error)
        .bind(now_ms)
        .bind(d.outbox_id)
        .bind(&d.target)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn notify_thread(
        &self,
        request_id: &str,
        target: &str,
    ) -> anyhow::Result<Option<Thread>> {
        Ok(sqlx::query_as(
            "SELECT channel, ts FROM notify_threads WHERE request_id = ? AND target = ?",
        )
        .bind(request_id)
        .bind(target)
        .fetch_optional(&self.reader)
        .await?)
    }

    async fn notify_set_thread(
        &self,
        request_id: &str,
        target: &str,
        thread: &Thread,
    ) -> anyhow::Result<()> {
        sqlx::query("INSERT OR REPLACE INTO notify_threads (request_id, target, channel, ts) VALUES (?, ?, ?, ?)")
            .bind(request_id)
            .bind(target)
            .bind(&thread.channel)
            .bind(&thread.ts)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn notify_prune(&self, before_ms: i64) -> anyhow::Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM notify_deliveries WHERE state != 'pending' AND updated_at < ?")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM notify_outbox WHERE routed = 1 AND at < ? AND NOT EXISTS \
             (SELECT 1 FROM notify_deliveries d WHERE d.outbox_id = notify_outbox.id)",
        )
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn notify_counts(&self) -> anyhow::Result<(i64, i64)> {
        let (pending, failed): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'failed'), 0) FROM notify_deliveries",
        )
        .fetch_one(&self.reader)
        .await?;
        Ok((pending, failed))
    }
}
