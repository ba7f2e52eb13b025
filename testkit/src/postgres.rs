//! A fresh PostgreSQL database per test, on the server the machine (or `.ci/run`) provides:
//! `COUNTERSIGN_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`) names a
//! database to connect to for creating others. In CI (`CI=true`) a missing server fails the
//! test; elsewhere the test says it was skipped and passes, so `cargo test` works on a machine
//! without PostgreSQL.

use sqlx::{Connection as _, Executor as _, PgConnection};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database created for one test, dropped by [`TestDatabase::drop`].
pub struct TestDatabase {
    /// Its `postgres://` URL.
    pub url: String,
    admin: String,
    name: String,
}

impl TestDatabase {
    /// A new, empty database with a fresh name, or `None` (printed) when no PostgreSQL answers
    /// outside CI.
    pub async fn create(test: &str) -> Option<Self> {
        let admin =
            std::env::var("COUNTERSIGN_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_ADMIN_URL.into());
        let mut conn = match PgConnection::connect(&admin).await {
            Ok(conn) => conn,
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("no PostgreSQL at {admin} (set COUNTERSIGN_TEST_POSTGRES): {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED {test}: no PostgreSQL at {admin} ({e})");
                return None;
            }
        };
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "countersign_test_{}_{nanos}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        let url = match admin.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("COUNTERSIGN_TEST_POSTGRES must end in /<database>"),
        };
        Some(Self { url, admin, name })
    }

    /// Drops the database (connections still open to it are ended).
    pub async fn drop(self) {
        if let Ok(mut conn) = PgConnection::connect(&self.admin).await {
            let _ = conn
                .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
                .await;
        }
    }
}
