//! The replicas running on one database (`replicas` table): a replica announces itself with a
//! document of its shared keys' fingerprints, keeps its row fresh while it runs, and removes it
//! when it stops. A row not refreshed within the lease lifetime belongs to a replica that died.

use super::{DB_NOW_MS, PgStore};

impl PgStore {
    /// Records this replica with `keys` (fingerprints, no secret) and returns the other
    /// replicas seen within `within_ms`: `(name, keys)`.
    pub async fn announce_replica(
        &self,
        keys: &str,
        within_ms: i64,
    ) -> anyhow::Result<Vec<(String, String)>> {
        sqlx::query(&format!(
            "INSERT INTO replicas (name, keys, seen_at) VALUES ($1, $2, {DB_NOW_MS}) \
             ON CONFLICT (name) DO UPDATE SET keys = EXCLUDED.keys, seen_at = EXCLUDED.seen_at"
        ))
        .bind(&*self.replica)
        .bind(keys)
        .execute(&self.pool)
        .await?;
        Ok(sqlx::query_as(&format!(
            "SELECT name, keys FROM replicas WHERE name <> $1 AND seen_at > {DB_NOW_MS} - $2 \
             ORDER BY name"
        ))
        .bind(&*self.replica)
        .bind(within_ms)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Keeps this replica's row fresh.
    pub async fn replica_seen(&self) -> anyhow::Result<()> {
        sqlx::query(&format!(
            "UPDATE replicas SET seen_at = {DB_NOW_MS} WHERE name = $1"
        ))
        .bind(&*self.replica)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes this replica's row (it stops).
    pub async fn replica_gone(&self) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM replicas WHERE name = $1")
            .bind(&*self.replica)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
