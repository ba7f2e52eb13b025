//! The PostgreSQL side of `migrate-store`: which columns go where (from both databases'
//! catalogs, so a column added later is never dropped silently), the refusal of a target that
//! already holds data, the copy itself in batches, and what the copy leaves to set afterwards
//! (identity sequences, the ledger head).

use super::{Progress, TABLES};
use crate::ledger::entry::GENESIS;
use anyhow::Context as _;
use futures_util::TryStreamExt as _;
use sqlx::sqlite::SqliteConnection;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row as _};
use std::collections::BTreeMap;

/// Tables only PostgreSQL has: the ledger head (set from the copied ledger), the leader
/// leases and the running replicas (replicas' own, left empty).
pub(super) const PG_ONLY: [&str; 3] = ["ledger_head", "leases", "replicas"];

/// A batch is sent once it holds this many bytes of values, however few rows that is.
const BATCH_BYTES: usize = 8 << 20;

/// PostgreSQL takes at most 65,535 bound values per statement.
const MAX_BINDS: usize = 60_000;

/// How a column's values are read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Text,
}

#[derive(Debug)]
struct Column {
    name: String,
    kind: Kind,
    identity: bool,
}

/// How one table is copied: the SQLite columns, each with its PostgreSQL type.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) table: &'static str,
    columns: Vec<Column>,
}

/// One PostgreSQL column, from `information_schema.columns`.
struct PgColumn {
    kind: Option<Kind>,
    data_type: String,
    identity: bool,
    /// NULL or a default is accepted when no value is given.
    optional: bool,
}

/// Plans every table of [`TABLES`], refusing a table or column either side has that the other
/// lacks (PostgreSQL's [`PG_ONLY`] tables and its optional columns aside).
pub(super) async fn plan(
    pg: &mut PgConnection,
    sqlite: &BTreeMap<String, Vec<String>>,
) -> anyhow::Result<Vec<Plan>> {
    let rows = sqlx::query(
        "SELECT table_name::text, column_name::text, data_type::text, is_identity::text, \
         is_nullable::text, column_default::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations' \
         ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&mut *pg)
    .await
    .context("cannot read the PostgreSQL schema")?;
    let mut postgres: BTreeMap<String, BTreeMap<String, PgColumn>> = BTreeMap::new();
    for row in rows {
        let (table, column, data_type): (String, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let identity = row.try_get::<String, _>(3)? == "YES";
        let optional = identity
            || row.try_get::<String, _>(4)? == "YES"
            || row.try_get::<Option<String>, _>(5)?.is_some();
        let kind = match data_type.as_str() {
            "bigint" => Some(Kind::Integer),
            "text" => Some(Kind::Text),
            _ => None,
        };
        postgres.entry(table).or_default().insert(
            column,
            PgColumn {
                kind,
                data_type,
                identity,
                optional,
            },
        );
    }
    for table in sqlite.keys() {
        if !TABLES.contains(&table.as_str()) {
            anyhow::bail!(
                "the SQLite database has a table `{table}` this migrate-store does not copy"
            );
        }
    }
    for table in postgres.keys() {
        if !TABLES.contains(&table.as_str()) && !PG_ONLY.contains(&table.as_str()) {
            anyhow::bail!(
                "the PostgreSQL database has a table `{table}` this migrate-store does not fill"
            );
        }
    }
    TABLES
        .iter()
        .map(|&table| {
            let (Some(lite), Some(pg)) = (sqlite.get(table), postgres.get(table)) else {
                anyhow::bail!("table `{table}` is missing from the SQLite or PostgreSQL schema");
            };
            plan_table(table, lite, pg)
        })
        .collect()
}

fn plan_table(
    table: &'static str,
    sqlite: &[String],
    postgres: &BTreeMap<String, PgColumn>,
) -> anyhow::Result<Plan> {
    let mut columns = Vec::with_capacity(sqlite.len());
    for name in sqlite {
        // Names go into statements unquoted: only plain ones.
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            anyhow::bail!("column `{table}.{name}` has a name migrate-store does not expect");
        }
        let Some(pg) = postgres.get(name) else {
            anyhow::bail!(
                "column `{table}.{name}` of the SQLite database has no counterpart in PostgreSQL"
            );
        };
        let Some(kind) = pg.kind else {
            anyhow::bail!(
                "column `{table}.{name}` is {} in PostgreSQL, which migrate-store cannot copy",
                pg.data_type
            );
        };
        columns.push(Column {
            name: name.clone(),
            kind,
            identity: pg.identity,
        });
    }
    for (name, pg) in postgres {
        if !sqlite.contains(name) && !pg.optional {
            anyhow::bail!(
                "column `{table}.{name}` of the PostgreSQL database needs a value the SQLite \
                 database does not have"
            );
        }
    }
    if columns.is_empty() {
        anyhow::bail!("table `{table}` has no columns");
    }
    Ok(Plan { table, columns })
}

/// Locks every table against writers for the rest of the transaction, then refuses a target
/// holding any row but the empty ledger's head: the first table with rows is named, with its
/// count.
pub(super) async fn check_empty(pg: &mut PgConnection, location: &str) -> anyhow::Result<()> {
    let all: Vec<&str> = TABLES.iter().chain(PG_ONLY.iter()).copied().collect();
    sqlx::query(&format!("LOCK TABLE {} IN EXCLUSIVE MODE", all.join(", ")))
        .execute(&mut *pg)
        .await
        .with_context(|| format!("cannot lock the tables of the {location}"))?;
    for table in all {
        let (rows,): (i64,) = if table == "ledger_head" {
            sqlx::query_as("SELECT count(*) FROM ledger_head WHERE NOT (seq = 0 AND hash = $1)")
                .bind(GENESIS)
                .fetch_one(&mut *pg)
                .await?
        } else {
            sqlx::query_as(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&mut *pg)
                .await?
        };
        if rows > 0 {
            anyhow::bail!(
                "the {location} is not empty: table `{table}` has {rows} row(s); migrate-store \
                 copies into an empty database only (nothing was changed)"
            );
        }
    }
    Ok(())
}

/// A value on its way from SQLite to PostgreSQL.
enum Value {
    Integer(Option<i64>),
    Text(Option<String>),
}

/// Copies one table in batches of at most `batch_rows` rows (fewer when its values are large),
/// reading the SQLite rows as a stream: the whole table is never in memory. Identity values are
/// kept. Returns how many rows were copied.
pub(super) async fn copy_table(
    lite: &mut SqliteConnection,
    pg: &mut PgConnection,
    plan: &Plan,
    batch_rows: usize,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> anyhow::Result<u64> {
    let table = plan.table;
    let names: Vec<&str> = plan.columns.iter().map(|c| c.name.as_str()).collect();
    let select = format!("SELECT {} FROM {table}", names.join(", "));
    let insert = format!(
        "INSERT INTO {table} ({}){} ",
        names.join(", "),
        if plan.columns.iter().any(|c| c.identity) {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        }
    );
    let batch_rows = batch_rows.clamp(1, MAX_BINDS / plan.columns.len());
    let mut rows = sqlx::query(&select).fetch(&mut *lite);
    let mut batch: Vec<Vec<Value>> = Vec::with_capacity(batch_rows);
    let (mut bytes, mut copied, mut reported) = (0, 0u64, 0u64);
    loop {
        let row = rows
            .try_next()
            .await
            .with_context(|| format!("cannot read table `{table}` from SQLite"))?;
        let Some(row) = row else { break };
        let mut values = Vec::with_capacity(plan.columns.len());
        for (i, column) in plan.columns.iter().enumerate() {
            let value = match column.kind {
                Kind::Integer => row.try_get(i).map(Value::Integer),
                Kind::Text => row.try_get::<Option<String>, _>(i).map(|text| {
                    bytes += text.as_ref().map_or(0, String::len);
                    Value::Text(text)
                }),
            };
            values.push(value.with_context(|| {
                format!("cannot read column `{table}.{}` from SQLite", column.name)
            })?);
        }
        batch.push(values);
        if batch.len() >= batch_rows || bytes >= BATCH_BYTES {
            copied += insert_batch(pg, &insert, &mut batch, table).await?;
            bytes = 0;
            if copied - reported >= super::REPORT_EVERY {
                progress(Progress::Copying {
                    table,
                    rows: copied,
                });
                reported = copied;
            }
        }
    }
    copied += insert_batch(pg, &insert, &mut batch, table).await?;
    Ok(copied)
}

async fn insert_batch(
    pg: &mut PgConnection,
    insert: &str,
    batch: &mut Vec<Vec<Value>>,
    table: &str,
) -> anyhow::Result<u64> {
    if batch.is_empty() {
        return Ok(0);
    }
    let n = batch.len() as u64;
    let mut query = QueryBuilder::<Postgres>::new(insert);
    query.push_values(batch.drain(..), |mut row, values| {
        for value in values {
            match value {
                Value::Integer(v) => row.push_bind(v),
                Value::Text(v) => row.push_bind(v),
            };
        }
    });
    query
        .build()
        .execute(&mut *pg)
        .await
        .with_context(|| format!("cannot write table `{table}` to PostgreSQL"))?;
    Ok(n)
}

/// Moves every identity sequence past the largest value copied into its column, so the rows
/// the server adds next do not collide with them.
pub(super) async fn move_sequences(pg: &mut PgConnection, plans: &[Plan]) -> anyhow::Result<()> {
    for plan in plans {
        for column in plan.columns.iter().filter(|c| c.identity) {
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence($1, $2), m) \
                 FROM (SELECT max({}) AS m FROM {}) t WHERE m IS NOT NULL",
                column.name, plan.table
            ))
            .bind(plan.table)
            .bind(&column.name)
            .execute(&mut *pg)
            .await
            .with_context(|| {
                format!(
                    "cannot move the sequence of `{}.{}`",
                    plan.table, column.name
                )
            })?;
        }
    }
    Ok(())
}

/// Points the ledger head at the last entry copied (it stays at genesis for an empty ledger).
pub(super) async fn set_ledger_head(pg: &mut PgConnection) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE ledger_head SET seq = l.seq, hash = l.hash, at = l.at \
         FROM (SELECT seq, hash, at FROM ledger ORDER BY seq DESC LIMIT 1) l WHERE id = 1",
    )
    .execute(&mut *pg)
    .await
    .context("cannot set the ledger head")?;
    Ok(())
}
