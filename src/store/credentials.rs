//! Issued credentials (`credentials` table): a row per token for introspection and single use,
//! written with its `credential_issued` ledger entry. Only the token's id, binding, audience,
//! scope and lifetime are stored: never the token.

use super::SqliteStore;
use super::backend::*;
use super::ledger::append;
use serde_json::{Map, Value, json};
use sqlx::FromRow;

/// A token about to be recorded.
#[derive(Debug, Clone)]
pub struct NewCredential<'a> {
    pub jti: &'a str,
    pub request_id: &'a str,
    pub agent_id: &'a str,
    pub audience: &'a str,
    /// `<action>:<environment>:<resource>` (ledger only).
    pub scope: &'a str,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
}

/// A GitHub installation token about to be used for a request.
#[derive(Debug, Clone)]
pub struct NewGitHubCredential<'a> {
    /// countersign's id for the token (a ULID).
    pub id: &'a str,
    pub request_id: &'a str,
    pub agent_id: &'a str,
    /// `owner/name`.
    pub repository: &'a str,
    /// Permission → `read`/`write`, as GitHub granted them.
    pub permissions: &'a std::collections::BTreeMap<String, String>,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct CredentialRow {
    pub jti: String,
    pub request_id: String,
    pub agent_id: String,
    pub audience: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

impl NewCredential<'_> {
    /// The fields of its `credential_issued` ledger entry (never the token).
    pub(super) fn ledger_fields(&self) -> Map<String, Value> {
        object(json!({
            "jti": self.jti,
            "audience": self.audience,
            "scope": self.scope,
            "expires_at": crate::time::rfc3339(self.expires_at_ms),
        }))
    }
}

impl NewGitHubCredential<'_> {
    /// The fields of its `credential_issued` ledger entry (never the token).
    pub(super) fn ledger_fields(&self) -> Map<String, Value> {
        object(json!({
            "kind": "github_installation_token",
            "id": self.id,
            "agent": self.agent_id,
            "repository": self.repository,
            "permissions": self.permissions,
            "expires_at": crate::time::rfc3339(self.expires_at_ms),
        }))
    }
}

/// The fields of a `credential_used` ledger entry.
pub(super) fn used_fields(jti: &str) -> Map<String, Value> {
    object(json!({ "jti": jti }))
}

#[async_trait::async_trait]
impl CredentialStore for SqliteStore {
    async fn record_credential(&self, c: &NewCredential<'_>) -> anyhow::Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO credentials (jti, request_id, agent_id, audience, issued_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
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
        let mut tx = self.writer.begin().await?;
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
             FROM credentials WHERE jti = ?",
        )
        .bind(jti)
        .fetch_optional(&self.reader)
        .await?)
    }

    async fn consume_credential(&self, jti: &str, now_ms: i64) -> anyhow::Result<bool> {
        let mut tx = self.writer.begin().await?;
        let row: Option<(String,)> = sqlx::query_as(
            "UPDATE credentials SET used_at = ? \
             WHERE jti = ? AND used_at IS NULL AND expires_at > ? RETURNING request_id",
        )
        .bind(now_ms)
        .bind(jti)
        .bind(now_ms)
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

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
