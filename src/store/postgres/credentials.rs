//! Issued credentials on PostgreSQL: a row per token with its `credential_issued` ledger entry
//! in one transaction; single use is a compare-and-set on `used_at`, so a token introspected
//! with `consume` through two replicas at once is used once.

use super::PgStore;
use super::ledger::append;
use crate::store::backend::CredentialStore;
use crate::store::credentials::{CredentialRow, NewCredential, NewGitHubCredential, used_fields};

#[async_trait::async_trait]
impl CredentialStore for PgStore {
    async fn record_credential(&self, c: &NewCredential<'_>) -> anyhow::Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO credentials (jti, request_id, agent_id, audience, issued_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(c.jti)
        .bind(c.request_id)
        .bind(c.agent_id)
        .bind(c.audience)
        .bind(c.issued_at_ms)
        .bind(c.expires_at_ms)
        .execute(&mut *tx)
        .await?;
        append(
            &mut tx,
            &self.masker,
            c.request_id,
            "credential_issued",
            "countersign",
            c.issued_at_ms,
            c.ledger_fields(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_github_credential(&self, c: &NewGitHubCredential<'_>) -> anyhow::Result<()> {
        let mut tx = self.write_tx().await?;
        append(
            &mut tx,
            &self.masker,
            c.request_id,
            "credential_issued",
            "countersign",
            c.issued_at_ms,
            c.ledger_fields(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn credential(&self, jti: &str) -> anyhow::Result<Option<CredentialRow>> {
        Ok(sqlx::query_as(
            "SELECT jti, request_id, agent_id, audience, issued_at, expires_at, used_at \
             FROM credentials WHERE jti = $1",
        )
        .bind(jti)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn consume_credential(&self, jti: &str, now_ms: i64) -> anyhow::Result<bool> {
        let mut tx = self.write_tx().await?;
        let row: Option<(String,)> = sqlx::query_as(
            "UPDATE credentials SET used_at = $1 \
             WHERE jti = $2 AND used_at IS NULL AND expires_at > $1 RETURNING request_id",
        )
        .bind(now_ms)
        .bind(jti)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((request_id,)) = row else {
            return Ok(false);
        };
        append(
            &mut tx,
            &self.masker,
            &request_id,
            "credential_used",
            "countersign",
            now_ms,
            used_fields(jti),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
