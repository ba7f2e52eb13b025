//! The SQLite side of `migrate-store`: the data directory lock, opening the file without ever
//! creating or migrating it, and checking that its schema is exactly the one this build knows.

use crate::store::DataDirLock;
use anyhow::Context as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions as _, Row as _};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Holds the lock of the database's data directory, if a server ever ran there: a running
/// server holds it for its whole life, so holding it here proves none runs (and none can start
/// while the copy runs).
pub(super) fn lock(path: &Path) -> anyhow::Result<Option<DataDirLock>> {
    if !path.is_file() {
        anyhow::bail!("there is no SQLite database at {}", path.display());
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    DataDirLock::acquire_existing(dir).with_context(|| {
        format!(
            "the SQLite database {} is in use and cannot be migrated",
            path.display()
        )
    })
}

/// One connection to the existing file (never created). It is only read: in one transaction
/// for a consistent snapshot, so the counts compared at the end are the rows copied.
pub(super) async fn open(path: &Path) -> anyhow::Result<SqliteConnection> {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("cannot open the SQLite database {}", path.display()))?;
    let check: Vec<(String,)> = sqlx::query_as("PRAGMA quick_check(5)")
        .fetch_all(&mut conn)
        .await
        .with_context(|| format!("cannot check the SQLite database {}", path.display()))?;
    if !(check.len() == 1 && check[0].0 == "ok") {
        let problems: Vec<String> = check.into_iter().map(|(line,)| line).collect();
        anyhow::bail!(
            "the SQLite database {} is damaged ({}); restore it from a backup first",
            path.display(),
            problems.join("; ")
        );
    }
    Ok(conn)
}

/// Refuses a database whose schema is not exactly this build's: one migrated by a newer
/// countersign (a migration this build does not know), an older one (a migration not applied
/// yet: this version's server applies it at start-up), or one where a migration failed.
pub(super) async fn check_schema(conn: &mut SqliteConnection, path: &Path) -> anyhow::Result<()> {
    let has_table: Option<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?")
            .bind("_sqlx_migrations")
            .fetch_optional(&mut *conn)
            .await?;
    if has_table.is_none() {
        anyhow::bail!(
            "{} is not a countersign database (it has no schema migrations table)",
            path.display()
        );
    }
    let applied: BTreeMap<i64, (bool, Vec<u8>)> =
        sqlx::query("SELECT version, success, checksum FROM _sqlx_migrations")
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(|row| {
                let version: i64 = row.try_get(0)?;
                Ok((version, (row.try_get(1)?, row.try_get(2)?)))
            })
            .collect::<Result<_, sqlx::Error>>()?;
    let known: BTreeMap<i64, &sqlx::migrate::Migration> = crate::store::MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| (m.version, m))
        .collect();
    for (version, (success, checksum)) in &applied {
        let Some(migration) = known.get(version) else {
            anyhow::bail!(
                "the SQLite database {} has schema migration {version}, which this countersign \
                 does not know: it was migrated by a newer version; run migrate-store of that \
                 version (or newer)",
                path.display()
            );
        };
        if !success {
            anyhow::bail!(
                "schema migration {version} of the SQLite database {} did not complete; \
                 restore it from a backup",
                path.display()
            );
        }
        if checksum.as_slice() != &*migration.checksum {
            anyhow::bail!(
                "schema migration {version} of the SQLite database {} differs from this \
                 countersign's: it was not made by a released countersign",
                path.display()
            );
        }
    }
    if let Some((version, migration)) = known.iter().find(|(v, _)| !applied.contains_key(v)) {
        anyhow::bail!(
            "the SQLite database {} is older than this countersign (schema migration \
             {version}, {}, is not applied): start this version's server on it once (it \
             migrates the schema at start-up), stop it, then run migrate-store again",
            path.display(),
            migration.description
        );
    }
    Ok(())
}

/// The database's tables (not SQLite's own, not the migrations table), each with its columns
/// in order.
pub(super) async fn tables(
    conn: &mut SqliteConnection,
) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         AND m.name <> '_sqlx_migrations' ORDER BY m.name, p.cid",
    )
    .fetch_all(&mut *conn)
    .await
    .context("cannot read the SQLite schema")?;
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (table, column) in rows {
        tables.entry(table).or_default().push(column);
    }
    Ok(tables)
}
