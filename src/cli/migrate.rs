//! `countersign migrate-store`: the command line side of moving a SQLite deployment to
//! PostgreSQL (the work, and what it guarantees, is in `store::migrate`). Progress and the
//! summary go to stdout; the target is named by database and host, never by its URL.

use crate::config::DatabaseUrl;
use crate::store::migrate::{self, DEFAULT_BATCH_ROWS, Progress};
use clap::Args;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct MigrateStoreArgs {
    /// The SQLite database: sqlite://PATH, a path to the file, or a data directory holding
    /// countersign.db.
    #[arg(long, value_name = "sqlite://PATH")]
    pub from: String,
    /// The empty PostgreSQL database: postgres://user@host:port/database (pass a password
    /// through the environment rather than the command line).
    #[arg(
        long,
        env = "COUNTERSIGN_DATABASE_URL",
        value_name = "postgres://…",
        hide_env_values = true
    )]
    pub to: String,
    /// Rows per INSERT statement (fewer when the rows are large).
    #[arg(long, default_value_t = DEFAULT_BATCH_ROWS, value_name = "ROWS")]
    pub batch_rows: usize,
}

/// The file `--from` names.
pub fn sqlite_path(from: &str) -> anyhow::Result<PathBuf> {
    let path = match from.split_once("://") {
        Some(("sqlite", rest)) => rest,
        Some((scheme, _)) => anyhow::bail!(
            "--from must be a SQLite database (sqlite://PATH or a path), not a {scheme}:// URL"
        ),
        None => from.strip_prefix("sqlite:").unwrap_or(from),
    };
    // `sqlite://db?mode=rw` style options mean nothing here.
    let path = PathBuf::from(path.split('?').next().unwrap_or_default());
    if path.as_os_str().is_empty() {
        anyhow::bail!("--from names no file");
    }
    Ok(if path.is_dir() {
        path.join("countersign.db")
    } else {
        path
    })
}

pub async fn run(args: MigrateStoreArgs) -> anyhow::Result<ExitCode> {
    let source = sqlite_path(&args.from)?;
    let target = DatabaseUrl::parse(args.to)
        .map_err(|_| anyhow::anyhow!("--to must be a postgres:// URL"))?;
    let mut show = |progress: Progress<'_>| {
        let line = match progress {
            Progress::Started { source, target } => {
                format!("copying {} to the {target}", source.display())
            }
            Progress::Copying { table, rows } => format!("  {table}: {rows} rows…"),
            Progress::Copied { table, rows: 1 } => format!("  {table}: 1 row copied"),
            Progress::Copied { table, rows } => format!("  {table}: {rows} rows copied"),
            Progress::Verifying => "verifying row counts and the ledger chain".to_owned(),
        };
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    };
    let summary =
        migrate::migrate_store(&source, target.expose(), args.batch_rows, &mut show).await?;
    println!(
        "migrated {} rows in {} tables to the {} in {:.1}s; ledger verified from genesis: {} \
         entries, head {}",
        summary.rows(),
        summary.tables.len(),
        summary.target,
        summary.elapsed.as_secs_f64(),
        summary.ledger.seq,
        summary.ledger.hash
    );
    println!(
        "next: start countersign with database_url set to this database (keep the data \
         directory: it holds the keys and the git repository)"
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_takes_a_url_a_file_or_a_data_directory() {
        assert_eq!(
            sqlite_path("sqlite:///srv/cs/countersign.db").unwrap(),
            PathBuf::from("/srv/cs/countersign.db")
        );
        assert_eq!(
            sqlite_path("sqlite://data/countersign.db?mode=ro").unwrap(),
            PathBuf::from("data/countersign.db")
        );
        assert_eq!(sqlite_path("sqlite:x.db").unwrap(), PathBuf::from("x.db"));
        assert_eq!(sqlite_path("x.db").unwrap(), PathBuf::from("x.db"));
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            sqlite_path(dir.path().to_str().unwrap()).unwrap(),
            dir.path().join("countersign.db")
        );
        let wrong = sqlite_path("postgres://u:secret@h/db")
            .unwrap_err()
            .to_string();
        assert!(
            wrong.contains("postgres://") && !wrong.contains("secret"),
            "{wrong}"
        );
    }
}
