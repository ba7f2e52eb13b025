//! The notification outbox on PostgreSQL. Routing an event to its destinations is idempotent
//! (one delivery per event and destination, by primary key); sending is claimed row by row
//! (`FOR UPDATE SKIP LOCKED`, a claim that expires on the database's clock), so two replicas
//! never post one message at once, and a delivery waits for the ones before it on the same
//! request and destination (threads stay in order).

use super::{CLAIM_MS, DB_NOW_MS, PgStore};
use crate::store::backend::NotifyStore;
use crate::store::notify::{DeliveryRow, OutboxRow, Thread};

#[async_trait::async_trait]
impl NotifyStore for PgStore {
    async fn notify_unrouted(&self, limit: i64) -> anyhow::Result<Vec<OutboxRow>> {
        Ok(sqlx::query_as(
            "SELECT id, request_id, event, actor, at FROM notify_outbox WHERE routed = 0 \
             ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn notify_route(
        &self,
        row: &OutboxRow,
        targets: &[String],
        now_ms: i64,
    ) -> anyhow::Result<()> {
        let mut tx = self.write_tx().await?;
        for target in targets {
            sqlx::query(
                "INSERT INTO notify_deliveries (outbox_id, target, request_id, event, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(row.id)
            .bind(target)
            .bind(&row.request_id)
            .bind(&row.event)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE notify_outbox SET routed = 1 WHERE id = $1")
            .bind(row.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims the due deliveries nobody holds for this replica (see `CLAIM_MS`).
    async fn notify_due(&self, now_ms: i64, limit: i64) -> anyhow::Result<Vec<DeliveryRow>> {
        let mut rows: Vec<DeliveryRow> = sqlx::query_as(&format!(
            "WITH due AS (SELECT d.outbox_id, d.target FROM notify_deliveries d \
                 WHERE d.state = 'pending' AND d.next_attempt_at <= $1 \
                 AND (d.claim_until IS NULL OR d.claim_until < {DB_NOW_MS}) \
                 AND NOT EXISTS (SELECT 1 FROM notify_deliveries e WHERE e.request_id = d.request_id \
                     AND e.target = d.target AND e.outbox_id < d.outbox_id AND e.state = 'pending') \
                 ORDER BY d.outbox_id LIMIT $2 FOR UPDATE OF d SKIP LOCKED), \
             claimed AS (UPDATE notify_deliveries n SET claimed_by = $3, \
                 claim_until = {DB_NOW_MS} + $4 FROM due \
                 WHERE n.outbox_id = due.outbox_id AND n.target = due.target \
                 RETURNING n.outbox_id, n.target, n.request_id, n.event, n.attempts, n.in_flight) \
             SELECT c.outbox_id, c.target, c.request_id, c.event, c.attempts, c.in_flight, \
                 o.actor, o.at FROM claimed c JOIN notify_outbox o ON o.id = c.outbox_id"
        ))
        .bind(now_ms)
        .bind(limit)
        .bind(&*self.replica)
        .bind(CLAIM_MS)
        .fetch_all(&self.pool)
        .await?;
        rows.sort_by_key(|r| r.outbox_id);
        Ok(rows)
    }

    async fn notify_sending(&self, d: &DeliveryRow, now_ms: i64) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE notify_deliveries SET attempts = attempts + 1, in_flight = 1, updated_at = $1 \
             WHERE outbox_id = $2 AND target = $3",
        )
        .bind(now_ms)
        .bind(d.outbox_id)
        .bind(&d.target)
        .execute(&self.pool)
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
            "UPDATE notify_deliveries SET state = $1, in_flight = 0, \
             message_ref = COALESCE($2, message_ref), last_error = $3, updated_at = $4, \
             claimed_by = NULL, claim_until = NULL WHERE outbox_id = $5 AND target = $6",
        )
        .bind(state)
        .bind(message_ref)
        .bind(error)
        .bind(now_ms)
        .bind(d.outbox_id)
        .bind(&d.target)
        .execute(&self.pool)
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
            "UPDATE notify_deliveries SET in_flight = 0, next_attempt_at = $1, last_error = $2, \
             updated_at = $3, claimed_by = NULL, claim_until = NULL \
             WHERE outbox_id = $4 AND target = $5",
        )
        .bind(next_attempt_at)
        .bind(error)
        .bind(now_ms)
        .bind(d.outbox_id)
        .bind(&d.target)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn notify_thread(
        &self,
        request_id: &str,
        target: &str,
    ) -> anyhow::Result<Option<Thread>> {
        Ok(sqlx::query_as(
            "SELECT channel, ts FROM notify_threads WHERE request_id = $1 AND target = $2",
        )
        .bind(request_id)
        .bind(target)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn notify_set_thread(
        &self,
        request_id: &str,
        target: &str,
        thread: &Thread,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO notify_threads (request_id, target, channel, ts) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (request_id, target) DO UPDATE SET channel = EXCLUDED.channel, \
             ts = EXCLUDED.ts",
        )
        .bind(request_id)
        .bind(target)
        .bind(&thread.channel)
        .bind(&thread.ts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn notify_prune(&self, before_ms: i64) -> anyhow::Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM notify_deliveries WHERE state != 'pending' AND updated_at < $1")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM notify_outbox WHERE routed = 1 AND at < $1 AND NOT EXISTS \
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
            "SELECT COUNT(*) FILTER (WHERE state = 'pending'), \
             COUNT(*) FILTER (WHERE state = 'failed') FROM notify_deliveries",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((pending, failed))
    }
}
